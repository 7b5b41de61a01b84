//! The floor workload end to end through the binary (no broker needed).

use std::process::Command;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let out = loadgen()
        .args(args)
        .args(["--no-progress", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

#[test]
fn floor_closed_and_open_loop_in_both_modes() {
    for mode in ["blocking", "busy-poll"] {
        let s = run_json(&[
            "floor",
            "--size",
            "1024",
            "--duration-s",
            "0.5",
            "--warmup-s",
            "0.1",
            "--mode",
            mode,
        ]);
        assert!(s["count"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["errors"], 0);
        assert_eq!(s["params"]["mode"], mode);
        assert!(s["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    }
    let s = run_json(&[
        "floor",
        "--rate",
        "2000",
        "--duration-s",
        "0.5",
        "--warmup-s",
        "0.1",
    ]);
    // The schedule fixes the count: 2000/s for 0.5 s.
    assert_eq!(s["count"], 1000, "{s}");
    assert_eq!(s["schedule"]["kind"], "open");
    assert!(s["send_lag_us"]["p50"].is_number());
}

#[test]
fn interval_log_is_written_in_hdrhistogram_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("i.hlog");
    let out = loadgen()
        .args([
            "floor",
            "--rate",
            "1000",
            "--duration-s",
            "2.5",
            "--warmup-s",
            "0.1",
        ])
        .args(["--no-progress", "--interval-log", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read(&log).unwrap();
    let intervals: Vec<_> =
        hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&text)
            .filter_map(|e| match e {
                Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(i)) => {
                    Some(i.duration())
                }
                _ => None,
            })
            .collect();
    // 2.5 s in 1 s intervals: two full ones and a partial one.
    assert_eq!(intervals.len(), 3, "{}", String::from_utf8_lossy(&text));
}

#[test]
fn bad_parameters_exit_2_with_a_message() {
    for (args, needle) in [
        (vec!["floor", "--rate", "0"], "--rate 0"),
        (vec!["floor", "--rate", "-3"], "--rate -3"),
        (vec!["floor", "--size", "0"], "--size 0"),
        (vec!["floor", "--no-such-flag"], "--no-such-flag"),
        (
            vec!["produce", "--bootstrap", "127.0.0.1:1", "--duration-s", "1"],
            "127.0.0.1:1",
        ),
    ] {
        let out = loadgen().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn floor_with_a_busy_polling_client_and_a_blocking_server() {
    let s = run_json(&[
        "floor",
        "--duration-s",
        "0.3",
        "--warmup-s",
        "0.1",
        "--mode",
        "client-busy-poll",
    ]);
    assert!(s["count"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["driver"], "echo-client-busy-poll");
    assert_eq!(s["client_wait"], "busy-poll");
    assert_eq!(s["server_wait"], "blocking");
}

#[test]
fn batched_floor_carries_batch_times_size_bytes() {
    let s = run_json(&[
        "floor",
        "--size",
        "1024",
        "--batch",
        "64",
        "--inflight",
        "4",
        "--duration-s",
        "0.3",
        "--warmup-s",
        "0.1",
    ]);
    let count = s["count"].as_f64().unwrap();
    let bytes_per_s = s["bytes_per_s"].as_f64().unwrap();
    let rate = s["rate_per_s"].as_f64().unwrap();
    assert!(count > 0.0, "{s}");
    // Each request carries 64 records of 1 KiB.
    assert!((bytes_per_s / rate - 65_536.0).abs() < 1.0, "{s}");
}

#[test]
fn storage_floor_writes_two_passes_and_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    for sync in [false, true] {
        let mut args = vec![
            "floor",
            "--storage",
            dir.path().to_str().unwrap(),
            "--size",
            "1024",
            "--batch",
            "16",
            "--duration-s",
            "0.2",
            "--warmup-s",
            "0.05",
            "--storage-max-bytes",
            "4000000",
        ];
        if sync {
            args.push("--sync");
        }
        let s = run_json(&args);
        let st = &s["storage"];
        assert_eq!(st["sync"], sync, "{s}");
        let first = st["first_pass"]["bytes"].as_u64().unwrap();
        let warmup = st["warmup_bytes"].as_u64().unwrap();
        // The warm-up ends by half the cap at the latest, so the measured part has bytes.
        assert!(warmup > 0 && warmup <= 2_000_000 + 16 * 1024 + 100, "{s}");
        assert!(first > 0 && warmup + first <= 4_000_000, "{s}");
        assert_eq!(st["max_bytes"].as_u64(), Some(4_000_000), "{s}");
        // The rewrite covers exactly the bytes of the first pass, warm-up included.
        assert_eq!(
            st["rewrite_pass"]["bytes"].as_u64().unwrap(),
            warmup + first
        );
        assert!(st["first_pass"]["mb_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(s["count"], st["first_pass"]["writes"]);
        assert!(st["fs"].as_str().is_some_and(|f| !f.is_empty()));
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "file left behind"
    );
}

#[test]
fn sink_floor_writes_every_request_into_its_file_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let json = dir.path().join("s.json.out");
    // Watch the file grow while the floor runs: the server does write what it receives.
    let mut child = loadgen()
        .args([
            "floor",
            "--sink",
            &d,
            "--size",
            "1024",
            "--batch",
            "16",
            "--inflight",
            "2",
            "--duration-s",
            "1",
            "--warmup-s",
            "0.1",
            "--no-progress",
            "--json",
        ])
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = 0u64;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen == 0 && std::time::Instant::now() < until {
        for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("loadgen-sink-floor-")
            {
                seen = seen.max(e.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(seen > 16 * 1024, "the sink file never grew ({seen} bytes)");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(s["driver"], "echo-sink-write-blocking", "{s}");
    assert_eq!(s["storage"]["sink"], d.as_str());
    assert!(s["count"].as_u64().unwrap() > 0, "{s}");
    std::fs::remove_file(&json).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "file left behind"
    );
}

#[test]
fn fetch_floor_answers_each_fetch_with_the_next_batch() {
    let s = run_json(&[
        "floor",
        "--like",
        "fetch",
        "--size",
        "512",
        "--batch",
        "100",
        "--duration-s",
        "0.3",
        "--warmup-s",
        "0.1",
    ]);
    assert_eq!(s["driver"], "fetch-echo-blocking", "{s}");
    let rate = s["rate_per_s"].as_f64().unwrap();
    let bytes_per_s = s["bytes_per_s"].as_f64().unwrap();
    assert!(s["count"].as_u64().unwrap() > 0, "{s}");
    // Every answer's 100 records of 512 B were decoded as new records (the consumer skips
    // records below its fetch offset, so a base offset that did not advance would count 0).
    assert!((bytes_per_s / rate - 51_200.0).abs() < 1.0, "{s}");
}
