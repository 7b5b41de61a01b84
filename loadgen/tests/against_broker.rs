//! Every workload for ~2 s against the real broker binary (`strikemq`), started on a free
//! port with a fresh data directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_PREFIX: &str = "strikemq ready kafka=";

/// The broker binary in this test's target directory. Under `cargo test` (CARGO is set)
/// it is (re)built first, so a stale binary from an older checkout is never measured.
fn broker_binary() -> PathBuf {
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    let bin = profile_dir.join("strikemq");
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "strikemq", "--bin", "strikemq"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build -p strikemq");
        assert!(status.success(), "cargo build -p strikemq failed");
    }
    assert!(bin.exists(), "no broker binary at {}", bin.display());
    bin
}

struct Broker {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(broker_binary())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting strikemq");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                    // `kafka=HOST:PORT admin=HOST:PORT`: the first field.
                    let kafka = addr.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(kafka.to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("broker did not print its ready line within {READY_TIMEOUT:?}");
            }
        };
        Broker {
            child,
            addr,
            _data: data,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs loadgen with `args` plus a JSON summary; returns the summary.
fn loadgen(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--json", json.to_str().unwrap()])
        .output()
        .expect("running loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    eprintln!("{args:?}\n{stdout}");
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

fn assert_clean(s: &serde_json::Value) {
    assert!(s["count"].as_u64().unwrap() > 0, "no samples: {s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert_eq!(s["timeouts"], 0, "{s}");
}

fn assert_verified(s: &serde_json::Value) {
    let v = &s["verification"];
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["reordered"], 0, "{v}");
    assert_eq!(v["foreign"], 0, "{v}");
    assert_eq!(v["received"], v["expected"], "{v}");
    assert!(v["received"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn every_workload_against_the_broker() {
    let broker = Broker::start();
    let b = broker.addr.as_str();
    let common = ["--duration-s", "1.5", "--warmup-s", "0.5", "--no-progress"];

    let mut args = vec!["produce", "--bootstrap", b, "--topic", "closed"];
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_eq!(s["schedule"]["kind"], "closed");

    let mut args = vec!["produce", "--bootstrap", b, "--topic", "batched"];
    args.extend(["--batch", "10", "--inflight", "4", "--size", "100"]);
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    let per_request = s["bytes_per_s"].as_f64().unwrap() / s["rate_per_s"].as_f64().unwrap();
    assert!(
        (per_request - 1000.0).abs() < 1.0,
        "10 records of 100 bytes: {s}"
    );

    let mut args = vec![
        "produce",
        "--bootstrap",
        b,
        "--topic",
        "open",
        "--rate",
        "2000",
    ];
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_eq!(s["count"], 3000, "2000/s for 1.5 s: {s}");

    for rate in [None, Some("2000")] {
        let mut args = vec![
            "produce",
            "--driver",
            "rdkafka",
            "--bootstrap",
            b,
            "--topic",
            "rk",
        ];
        args.extend(["-X", "compression.type=lz4"]);
        if let Some(r) = rate {
            args.extend(["--rate", r]);
        }
        args.extend(common);
        let s = loadgen(&args);
        assert_clean(&s);
        assert_eq!(s["driver"], "rdkafka");
    }

    let s = loadgen(&[
        "fetch",
        "--bootstrap",
        b,
        "--topic",
        "backlog",
        "--records",
        "20000",
        "--size",
        "512",
    ]);
    assert_eq!(s["errors"], 0, "{s}");
    assert_verified(&s);
    assert_eq!(s["verification"]["received"], 20000);

    let mut args = vec!["e2e", "--bootstrap", b, "--topic", "e2e"];
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_verified(&s);

    let mut args = vec![
        "e2e",
        "--bootstrap",
        b,
        "--topic",
        "e2e-open",
        "--rate",
        "2000",
    ];
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_verified(&s);
}

/// Several partitions, producers and consumers, and librdkafka on the consuming side.
#[test]
fn multi_partition_workloads_against_the_broker() {
    use loadgen::drivers::native::{connect_leader, discover, log_end_offsets, PartitionSpec};
    use loadgen::wire::PollMode;

    let broker = Broker::start();
    let b = broker.addr.as_str();
    let short = ["--duration-s", "1", "--warmup-s", "0.5", "--no-progress"];

    // 3 partitions × 2 producers: every record sent lands, spread round-robin.
    let mut args = vec!["produce", "--bootstrap", b, "--topic", "multi"];
    args.extend(["--partitions", "3", "--producers", "2", "--size", "100"]);
    args.extend(short);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_eq!(s["layout"]["producer_streams"], 2, "{s}");
    assert_eq!(s["params"]["target"]["partitions"], 3, "{s}");
    let targets = discover(b, &["multi".to_string()], &PartitionSpec::First(3)).unwrap();
    assert_eq!(targets.len(), 3);
    let mut client = connect_leader(&targets[0].leader_addr, PollMode::Blocking).unwrap();
    let ends = log_end_offsets(&mut client, &targets).unwrap();
    let sent = s["sent"].as_u64().unwrap();
    assert_eq!(ends.iter().sum::<i64>() as u64, sent, "{ends:?}");
    let (lo, hi) = (ends.iter().min().unwrap(), ends.iter().max().unwrap());
    // Round-robin: each producer's partitions differ by at most one record.
    assert!(hi - lo <= 2, "{ends:?}");

    // A 3-partition backlog read by two consumers, verified per partition.
    let s = loadgen(&[
        "fetch",
        "--bootstrap",
        b,
        "--topic",
        "multi-backlog",
        "--partitions",
        "3",
        "--consumers",
        "2",
        "--records",
        "9001",
        "--size",
        "256",
    ]);
    assert_eq!(s["errors"], 0, "{s}");
    assert_verified(&s);
    assert_eq!(s["verification"]["received"], 9001);
    assert_eq!(s["verification"]["partitions"], 3, "{s}");

    // The same backlog shape consumed by librdkafka (assign(), no group).
    let s = loadgen(&[
        "fetch",
        "--driver",
        "rdkafka",
        "--bootstrap",
        b,
        "--topic",
        "rk-backlog",
        "--partitions",
        "3",
        "--records",
        "3000",
    ]);
    assert_verified(&s);
    assert_eq!(s["driver"], "rdkafka");

    // librdkafka end to end: 2 producers, keyed records over 2 topics × 3 partitions,
    // 2 consumers; every record exactly once and in order per partition and producer.
    let mut args = vec![
        "e2e",
        "--driver",
        "rdkafka",
        "--bootstrap",
        b,
        "--topic",
        "rk-e2e",
    ];
    args.extend(["--topics", "2", "--partitions", "3", "--producers", "2"]);
    args.extend(["--consumers", "2", "--keys", "uniform:50", "--rate", "1000"]);
    args.extend(short);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_verified(&s);
    assert_eq!(s["verification"]["partitions"], 6, "{s}");
    assert_eq!(s["driver"], "rdkafka");

    // Native end to end over 3 partitions with 2 producers and sequential keys.
    let mut args = vec!["e2e", "--bootstrap", b, "--topic", "native-e2e"];
    args.extend(["--partitions", "3", "--producers", "2", "--consumers", "3"]);
    args.extend(["--keys", "sequential"]);
    args.extend(short);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_verified(&s);
}

#[test]
fn produce_errors_are_counted_and_fail_the_run() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    // Above the broker's default max_message_bytes (8 MiB): every Produce is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["produce", "--bootstrap", &broker.addr, "--topic", "big"])
        .args([
            "--size",
            "9000000",
            "--duration-s",
            "0.5",
            "--warmup-s",
            "0",
        ])
        .args(["--no-progress", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(s["errors"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["count"], 0, "{s}");
}

#[test]
fn fetch_twice_from_the_same_topic_verifies_only_the_new_backlog() {
    let broker = Broker::start();
    let b = broker.addr.as_str();
    for _ in 0..2 {
        let s = loadgen(&[
            "fetch",
            "--bootstrap",
            b,
            "--topic",
            "again",
            "--records",
            "3000",
        ]);
        assert_verified(&s);
    }
}

/// `--wait busy-poll`: every native workload still completes, verified, and says how
/// its client waited.
#[test]
fn busy_polling_client_against_the_broker() {
    let broker = Broker::start();
    let b = broker.addr.as_str();
    let common = ["--duration-s", "1", "--warmup-s", "0.2", "--no-progress"];
    let busy = ["--wait", "busy-poll"];

    let mut args = vec!["produce", "--bootstrap", b, "--topic", "bp-closed"];
    args.extend(busy);
    args.extend(["--inflight", "2"]);
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_eq!(s["client_wait"], "busy-poll", "{s}");

    let mut args = vec!["produce", "--bootstrap", b, "--topic", "bp-open"];
    args.extend(busy);
    args.extend(["--rate", "1000"]);
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_eq!(s["count"], 1000, "1000/s for 1 s: {s}");

    let mut args = vec!["fetch", "--bootstrap", b, "--topic", "bp-backlog"];
    args.extend(busy);
    args.extend(["--records", "5000", "--size", "256"]);
    let s = loadgen(&args);
    assert_verified(&s);
    assert_eq!(s["client_wait"], "busy-poll", "{s}");

    let mut args = vec!["e2e", "--bootstrap", b, "--topic", "bp-e2e"];
    args.extend(busy);
    args.extend(common);
    let s = loadgen(&args);
    assert_clean(&s);
    assert_verified(&s);
    assert_eq!(s["client_wait"], "busy-poll", "{s}");

    let mut args = vec!["produce", "--bootstrap", b, "--topic", "blocking"];
    args.extend(common);
    assert_eq!(loadgen(&args)["client_wait"], "blocking");
}
