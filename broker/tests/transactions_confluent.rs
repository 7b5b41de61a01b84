//! Transactions (KIP-98) with confluent-kafka (Python, librdkafka underneath), driven
//! by `transactions_confluent.py` against the real binary: committed vs aborted
//! visibility per isolation level, a fenced zombie, a transaction the broker aborts at
//! its timeout, and a consume-transform-produce loop that stays exactly once across
//! `kill -9` of the worker process: twice with a transaction open, once at a moment
//! the clock chooses.
//!
//! Without confluent-kafka the tests print a SKIP line (and fail under CI). Time bounds
//! only catch hangs, except that the timeout test checks the broker did not abort
//! before the transaction's timeout.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::raw::{self, topic_name, RawConn};
use common::{unique_topic, TestBroker};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/transactions_confluent.py"
);
/// Bound of one driver run (its own waits are shorter).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(150);
const OFFSET_FETCH_VERSION: i16 = 7;

fn has_confluent_kafka() -> bool {
    let present = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    common::tool_or_skip(
        present,
        "confluent-kafka (Python)",
        "python3 -m pip install confluent-kafka",
    )
}

fn spawn_driver(args: &[&str]) -> Child {
    Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3")
}

/// Runs a mode of the driver to its end (bounded) and returns its stdout lines as JSON.
fn run_lines(args: &[&str]) -> Vec<Value> {
    let mut child = spawn_driver(args);
    let status = common::wait_timeout(&mut child, DRIVER_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("driver output");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "driver {args:?} failed ({status:?}); stdout:\n{out}\nstderr:\n{err}"
    );
    out.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn run_driver(args: &[&str]) -> Value {
    let mut lines = run_lines(args);
    assert_eq!(lines.len(), 1, "one JSON report from {args:?}: {lines:?}");
    lines.pop().expect("one line")
}

/// One record as the driver's `read` reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Read {
    partition: i64,
    offset: i64,
    key: Option<String>,
    value: String,
}

/// `topic` read from the beginning by a confluent-kafka consumer with `isolation`.
fn read(
    broker: &TestBroker,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: usize,
) -> Vec<Read> {
    let report = run_driver(&[
        "read",
        &broker.bootstrap(),
        topic,
        &partitions.to_string(),
        isolation,
        &expected.to_string(),
    ]);
    let mut records: Vec<Read> = report
        .as_array()
        .expect("records")
        .iter()
        .map(|r| Read {
            partition: r[0].as_i64().expect("partition"),
            offset: r[1].as_i64().expect("offset"),
            key: r[2].as_str().map(str::to_string),
            value: r[3].as_str().expect("value").to_string(),
        })
        .collect();
    records.sort();
    records
}

fn sorted_values(records: &[Read]) -> Vec<String> {
    let mut values: Vec<String> = records.iter().map(|r| r.value.clone()).collect();
    values.sort();
    values
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array of strings")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn committed_visible_to_read_committed_aborted_only_to_read_uncommitted() {
    if !has_confluent_kafka() {
        return;
    }
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("ck-txn-visibility");
    raw::create_topics(&mut RawConn::connect(&broker), &[&topic], 2);
    let report = run_driver(&["visibility", &broker.bootstrap(), &topic, "ck-visibility"]);
    let committed = strings(&report["committed"]);
    let aborted = strings(&report["aborted"]);
    assert!(!committed.is_empty() && !aborted.is_empty(), "{report}");

    let seen = read(&broker, &topic, 2, "read_committed", committed.len());
    assert_eq!(sorted_values(&seen), committed, "read_committed");
    let mut everything = [committed.clone(), aborted].concat();
    everything.sort();
    let seen = read(&broker, &topic, 2, "read_uncommitted", everything.len());
    assert_eq!(sorted_values(&seen), everything, "read_uncommitted");
}

#[test]
fn zombie_with_the_same_transactional_id_is_fenced() {
    if !has_confluent_kafka() {
        return;
    }
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("ck-txn-zombie");
    raw::create_topics(&mut RawConn::connect(&broker), &[&topic], 1);
    let report = run_driver(&["zombie", &broker.bootstrap(), &topic, "ck-zombie"]);
    let error = &report["zombie_error"];
    // librdkafka turns PRODUCER_FENCED / INVALID_PRODUCER_EPOCH from EndTxn into its
    // fatal local _FENCED error: the zombie can do nothing more.
    assert_eq!(error["name"], "_FENCED", "{report}");
    assert_eq!(error["fatal"], true, "{report}");
    let fresh = strings(&report["fresh"]);
    let seen = read(&broker, &topic, 1, "read_committed", fresh.len());
    assert_eq!(
        sorted_values(&seen),
        fresh,
        "only the new producer's commit"
    );
}

#[test]
fn transaction_left_open_past_its_timeout_is_aborted_by_the_broker() {
    if !has_confluent_kafka() {
        return;
    }
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("ck-txn-timeout");
    raw::create_topics(&mut RawConn::connect(&broker), &[&topic], 1);
    let report = run_driver(&["timeout", &broker.bootstrap(), &topic, "ck-timeout"]);
    let after = report["aborted_after_s"].as_f64().expect("aborted_after_s");
    // transaction.timeout.ms=2000, counted by the broker from the transaction's first
    // partition, which came after the driver's clock started: never earlier.
    assert!(after >= 1.9, "aborted before its timeout: {report}");
    assert_eq!(report["commit_error"]["fatal"], true, "{report}");
    let late = strings(&report["late"]);
    assert_eq!(read(&broker, &topic, 1, "read_committed", 0), Vec::new());
    let seen = read(&broker, &topic, 1, "read_uncommitted", late.len());
    assert_eq!(sorted_values(&seen), late);
}

/// Reads a worker's stdout lines until one has `key`; returns every line read.
fn lines_until(lines: &mpsc::Receiver<Value>, key: &str, what: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(DRIVER_TIMEOUT) {
            Ok(line) => {
                let found = line.get(key).is_some();
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(e) => panic!("{what}: no {key:?} line ({e}); got {seen:?}"),
        }
    }
}

/// A worker process whose stdout lines (JSON) arrive on a channel.
fn spawn_worker(args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
    let mut child = spawn_driver(args);
    let stdout = child.stdout.take().expect("stdout piped");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    // Drained so that librdkafka's logging never blocks the worker; echoed for
    // failure reports (libtest shows it only for failing tests).
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("worker: {line}");
        }
    });
    (child, rx)
}

fn committed_offsets(broker: &TestBroker, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let mut conn = RawConn::connect(broker);
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes((0..partitions).collect())]));
    let response = conn.call(&request, OFFSET_FETCH_VERSION);
    assert_eq!(response.error_code, raw::NONE, "OffsetFetch");
    let mut offsets = vec![-1; partitions as usize];
    for p in &response.topics[0].partitions {
        assert_eq!(p.error_code, raw::NONE, "OffsetFetch partition");
        offsets[p.partition_index as usize] = p.committed_offset;
    }
    offsets
}

/// Exactly once across a crashed worker: every input record's transformation is in
/// the output exactly once for read_committed readers, and the group's offsets end
/// at the input's end, although two workers died with a transaction open (its output
/// records in the log, its offsets sent to the transaction).
#[test]
fn consume_transform_produce_is_exactly_once_across_kill9_of_the_worker() {
    if !has_confluent_kafka() {
        return;
    }
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 300;
    const BATCH: &str = "20";
    let broker = TestBroker::start(&[]);
    let (input, output) = (unique_topic("ck-ctp-in"), unique_topic("ck-ctp-out"));
    let group = "ck-ctp";
    let txid = "ck-ctp-worker";
    raw::create_topics(
        &mut RawConn::connect(&broker),
        &[&input, &output],
        PARTITIONS,
    );
    run_driver(&[
        "fill",
        &broker.bootstrap(),
        &input,
        &PARTITIONS.to_string(),
        &RECORDS.to_string(),
    ]);
    let bootstrap = broker.bootstrap();
    let worker_args = |hang_after: i32| {
        [
            "worker".to_string(),
            bootstrap.clone(),
            input.clone(),
            output.clone(),
            group.to_string(),
            txid.to_string(),
            BATCH.to_string(),
            hang_after.to_string(),
        ]
    };

    // Two workers die with a transaction open, after 3 and 2 commits of their own.
    let mut left_open = 0;
    let mut committed_before_kills = 0;
    for (round, hang_after) in [3, 2].into_iter().enumerate() {
        let args = worker_args(hang_after);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut child, lines) = spawn_worker(&refs);
        let seen = lines_until(&lines, "open", &format!("worker {round}"));
        // SIGKILL: no abort, no leave-group, no close.
        child.kill().expect("SIGKILL the worker");
        child.wait().expect("reap the worker");
        let commits = seen.iter().filter(|l| l.get("committed").is_some()).count();
        assert_eq!(commits, hang_after as usize, "worker {round}: {seen:?}");
        committed_before_kills += commits;
        left_open += seen.last().expect("the open line")["open"]
            .as_u64()
            .expect("records in the open transaction") as usize;
    }
    assert!(left_open > 0, "the killed workers left nothing open");

    // A third dies at a moment of the clock's choosing: inside the transaction after
    // its k-th commit (k in 1..=5), 0 to 4 ms after that commit's line (in a produce,
    // in sendOffsets, in the commit, or between transactions).
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let (k, kill_after_us) = (1 + clock % 5, (clock / 5) % 4_000);
    let args = worker_args(-1);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut child, lines) = spawn_worker(&refs);
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|l: &&Value| l.get("committed").is_some())
        .count()
        < k as usize
    {
        seen.extend(lines_until(&lines, "committed", "worker 2"));
    }
    std::thread::sleep(Duration::from_micros(kill_after_us));
    child.kill().expect("SIGKILL the worker");
    child.wait().expect("reap the worker");
    seen.extend(lines.try_iter());
    let commits = seen.iter().filter(|l| l.get("committed").is_some()).count();
    eprintln!("worker 2 killed {kill_after_us} µs after its commit {k}, after {commits} commits");

    // The last runs until the group's committed offsets reach the input's end.
    let args = worker_args(-1);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = run_lines(&refs);
    assert!(
        report.last().is_some_and(|l| l.get("done").is_some()),
        "{report:?}"
    );

    let seen = read(&broker, &output, PARTITIONS, "read_committed", RECORDS);
    let mut by_input: BTreeMap<usize, Vec<&Read>> = BTreeMap::new();
    for r in &seen {
        let i: usize = r
            .value
            .strip_prefix("out-v")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a transformed record: {r:?}"));
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_str()), "{r:?}");
        assert_eq!(r.partition, (i % PARTITIONS as usize) as i64, "{r:?}");
        by_input.entry(i).or_default().push(r);
    }
    let missing: Vec<usize> = (0..RECORDS).filter(|i| !by_input.contains_key(i)).collect();
    let doubled: Vec<&Vec<&Read>> = by_input.values().filter(|v| v.len() > 1).collect();
    assert!(
        missing.is_empty() && doubled.is_empty(),
        "not exactly once: missing inputs {missing:?}, duplicated {doubled:?}"
    );
    // In input order within each partition.
    for p in 0..PARTITIONS as i64 {
        let order: Vec<usize> = seen
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.value["out-v".len()..].parse().expect("index"))
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "partition {p}: {order:?}"
        );
    }
    // The aborted output is in the log all the same: the kills did leave transactions
    // open with their records written (the third kill may have left more).
    let everything = read(
        &broker,
        &output,
        PARTITIONS,
        "read_uncommitted",
        RECORDS + left_open,
    );
    assert!(
        everything.len() >= RECORDS + left_open,
        "{}",
        everything.len()
    );

    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            (0..RECORDS)
                .filter(|i| i % PARTITIONS as usize == p as usize)
                .count() as i64
        })
        .collect();
    assert_eq!(
        committed_offsets(&broker, group, &input, PARTITIONS),
        ends,
        "the group's committed offsets end at the input's end"
    );
    eprintln!(
        "exactly once: {RECORDS} records, {committed_before_kills} transactions committed \
         before two kills, {left_open} records left in open transactions, then {report:?}"
    );
}
