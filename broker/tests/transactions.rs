//! Transactions (KIP-98) with librdkafka's transactional producer (the `rdkafka`
//! crate) and read_committed / read_uncommitted consumers against the real broker;
//! raw requests for the error codes a client cannot show directly.

mod common;

use std::time::Duration;

use kafka_protocol::messages::{AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::Offset;

use common::raw::RawConn;
use common::rdkafka_util::*;
use common::{unique_topic, TestBroker};

const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a consumer keeps polling for records that must not arrive.
const QUIET: Duration = Duration::from_millis(1500);

fn txn_producer(broker: &TestBroker, id: &str, timeout_ms: u64) -> TestProducer {
    let mut config: ClientConfig = producer_config(broker);
    config
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("message.timeout.ms", timeout_ms.min(30_000).to_string())
        // librdkafka: socket.timeout.ms <= transaction.timeout.ms + 100.
        .set("socket.timeout.ms", timeout_ms.min(10_000).to_string());
    let p = create_producer(&config);
    p.init_transactions(Timeout::After(TXN_TIMEOUT))
        .expect("init_transactions");
    p
}

fn send(p: &TestProducer, topic: &str, partition: i32, values: &[String]) {
    for v in values {
        p.send(
            BaseRecord::<(), [u8], usize>::with_opaque_to(topic, 0)
                .partition(partition)
                .payload(v.as_bytes()),
        )
        .expect("enqueue");
    }
    p.flush(Timeout::After(TXN_TIMEOUT)).expect("flush");
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every value on `topic` partitions `0..partitions` as `isolation` reads it from the
/// beginning: polls until `expected` arrived, then for QUIET more.
fn read_all(
    broker: &TestBroker,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: usize,
) -> Vec<String> {
    let mut config = consumer_config(broker);
    config.set("isolation.level", isolation);
    let consumer = create_consumer(&config);
    assign(
        &consumer,
        topic,
        &(0..partitions).collect::<Vec<_>>(),
        Offset::Beginning,
    );
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut quiet_end = None;
    loop {
        let now = std::time::Instant::now();
        if out.len() >= expected && quiet_end.is_none() {
            quiet_end = Some(now + QUIET);
        }
        if quiet_end.is_some_and(|q| now >= q) || now >= deadline {
            break;
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            out.push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap());
        }
    }
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn committed_visible_aborted_only_to_read_uncommitted() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("txn-visibility");
    create_topic(&broker, &topic, 2);
    let p = txn_producer(&broker, "txn-visibility", 60_000);

    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &values("c1", 5));
    send(&p, &topic, 1, &values("c1b", 2));
    p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();

    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &values("aborted", 4));
    send(&p, &topic, 1, &values("abortedb", 3));
    p.abort_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();

    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &values("c2", 3));
    p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();

    let committed = sorted([values("c1", 5), values("c1b", 2), values("c2", 3)].concat());
    let aborted = [values("aborted", 4), values("abortedb", 3)].concat();
    assert_eq!(
        read_all(&broker, &topic, 2, "read_committed", committed.len()),
        committed
    );
    let everything = sorted([committed.clone(), aborted].concat());
    assert_eq!(
        read_all(&broker, &topic, 2, "read_uncommitted", everything.len()),
        everything
    );
}

#[test]
fn open_transaction_holds_back_read_committed_until_commit() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("txn-lso");
    create_topic(&broker, &topic, 1);
    let p = txn_producer(&broker, "txn-lso", 60_000);
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &values("pending", 3));
    // Open: nothing for read_committed yet, everything for read_uncommitted.
    assert_eq!(
        read_all(&broker, &topic, 1, "read_committed", 0),
        Vec::<String>::new()
    );
    assert_eq!(
        read_all(&broker, &topic, 1, "read_uncommitted", 3),
        values("pending", 3)
    );
    p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();
    assert_eq!(
        read_all(&broker, &topic, 1, "read_committed", 3),
        values("pending", 3)
    );
}

#[test]
fn zombie_producer_is_fenced() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("txn-zombie");
    create_topic(&broker, &topic, 1);
    let zombie = txn_producer(&broker, "txn-zombie", 60_000);
    zombie.begin_transaction().unwrap();
    send(&zombie, &topic, 0, &values("zombie", 3));
    // The same transactional id starts again elsewhere: the zombie's open
    // transaction is aborted and its epoch fenced.
    let fresh = txn_producer(&broker, "txn-zombie", 60_000);
    let err = zombie
        .commit_transaction(Timeout::After(TXN_TIMEOUT))
        .expect_err("the fenced producer's commit must fail");
    // librdkafka treats the fencing answer as fatal for the zombie.
    match &err {
        rdkafka::error::KafkaError::Transaction(e) => {
            assert!(e.is_fatal(), "a fatal (fenced) error expected, got {e}")
        }
        other => panic!("a transaction error expected, got {other}"),
    }
    fresh.begin_transaction().unwrap();
    send(&fresh, &topic, 0, &values("fresh", 2));
    fresh
        .commit_transaction(Timeout::After(TXN_TIMEOUT))
        .unwrap();
    assert_eq!(
        read_all(&broker, &topic, 1, "read_committed", 2),
        values("fresh", 2)
    );
}

#[test]
fn timed_out_transaction_is_aborted() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("txn-timeout");
    create_topic(&broker, &topic, 1);
    let p = txn_producer(&broker, "txn-timeout", 2_000);
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &values("late", 3));
    // The broker aborts the transaction after its 2 s timeout: the abort marker
    // shows as the partition's end moving past the 3 records.
    common::wait_until("the abort marker", Duration::from_secs(30), || {
        high_watermark(&broker, &topic) == 4
    });
    assert!(p.commit_transaction(Timeout::After(TXN_TIMEOUT)).is_err());
    assert_eq!(
        read_all(&broker, &topic, 1, "read_committed", 0),
        Vec::<String>::new()
    );
    assert_eq!(
        read_all(&broker, &topic, 1, "read_uncommitted", 3),
        values("late", 3)
    );
}

fn high_watermark(broker: &TestBroker, topic: &str) -> i64 {
    let consumer = create_consumer(&consumer_config(broker));
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

#[test]
fn kill9_mid_transaction_aborts_it_and_keeps_committed_ones() {
    let mut broker = TestBroker::start(&[]);
    let topic = unique_topic("txn-kill9");
    create_topic(&broker, &topic, 2);
    let (mut committed, mut everything) = (Vec::new(), Vec::new());
    // A few rounds: each commits one transaction, leaves the next open (its records
    // acknowledged) and kills the broker with SIGKILL.
    for round in 0..3 {
        let p = txn_producer(&broker, "txn-kill9", 60_000);
        p.begin_transaction().unwrap();
        let kept = [
            values(&format!("kept{round}"), 4),
            values(&format!("keptb{round}"), 2),
        ];
        send(&p, &topic, 0, &kept[0]);
        send(&p, &topic, 1, &kept[1]);
        p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();
        p.begin_transaction().unwrap();
        let lost = [
            values(&format!("lost{round}"), 3),
            values(&format!("lostb{round}"), 3),
        ];
        send(&p, &topic, 0, &lost[0]);
        send(&p, &topic, 1, &lost[1]);
        broker.kill9();
        drop(p);
        broker.restart();
        committed.extend(kept.concat());
        everything.extend([kept.concat(), lost.concat()].concat());
        let want = sorted(committed.clone());
        assert_eq!(
            read_all(&broker, &topic, 2, "read_committed", want.len()),
            want,
            "round {round}"
        );
        let all = sorted(everything.clone());
        assert_eq!(
            read_all(&broker, &topic, 2, "read_uncommitted", all.len()),
            all,
            "round {round}"
        );
    }
    // The transactional id lives on.
    let p = txn_producer(&broker, "txn-kill9", 60_000);
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, &values("after", 1));
    p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();
    committed.extend(values("after", 1));
    let want = sorted(committed);
    assert_eq!(
        read_all(&broker, &topic, 2, "read_committed", want.len()),
        want
    );
}

#[test]
fn error_codes_of_the_coordinator() {
    let broker = TestBroker::start(&["--set", "transaction_max_timeout_ms=60000"]);
    let mut conn = RawConn::connect(&broker);
    let init = |timeout_ms: i32| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
                "raw".to_string().into(),
            )))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    // INVALID_TRANSACTION_TIMEOUT (50) above the broker's maximum.
    assert_eq!(conn.call(&init(60_001), 4).error_code, 50);
    let ok = conn.call(&init(60_000), 4);
    assert_eq!(ok.error_code, 0);
    let (pid, epoch) = (ok.producer_id, ok.producer_epoch);
    let again = conn.call(&init(60_000), 4);
    assert_eq!((again.producer_id, again.producer_epoch), (pid, epoch + 1));
    // The old epoch is fenced: PRODUCER_FENCED (90) from EndTxn v2, INVALID_PRODUCER_EPOCH
    // (47) before.
    let end = EndTxnRequest::default()
        .with_transactional_id(kafka_protocol::messages::TransactionalId(
            "raw".to_string().into(),
        ))
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
        .with_committed(true);
    assert_eq!(conn.call(&end, 3).error_code, 90);
    assert_eq!(conn.call(&end, 1).error_code, 47);
    // KIP-360: bumping with a stale epoch is fenced too.
    let stale = init(60_000)
        .with_producer_id(pid)
        .with_producer_epoch(epoch);
    assert_eq!(conn.call(&stale, 4).error_code, 90);
    assert_eq!(conn.call(&stale, 3).error_code, 47);
    // AddPartitionsToTxn to an unknown partition: UNKNOWN_TOPIC_OR_PARTITION (3).
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(kafka_protocol::messages::TransactionalId("raw".to_string().into()))
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch + 1)
        .with_v3_and_below_topics(vec![
            kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(common::raw::topic_name("no-such-topic"))
                .with_partitions(vec![0]),
        ]);
    let resp = conn.call(&add, 3);
    // Unknown transactional ids: TRANSACTIONAL_ID_NOT_FOUND (105); an unknown state
    // filter is reported back.
    let describe = kafka_protocol::messages::DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![kafka_protocol::messages::TransactionalId(
            "nope".to_string().into(),
        )]);
    assert_eq!(
        conn.call(&describe, 0).transaction_states[0].error_code,
        105
    );
    let list = kafka_protocol::messages::ListTransactionsRequest::default()
        .with_state_filters(vec!["Bogus".to_string().into()]);
    let listed = conn.call(&list, 1);
    assert_eq!(listed.unknown_state_filters.len(), 1);
    assert!(listed.transaction_states.is_empty());
    assert_eq!(
        resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        3
    );
}

/// Consume-transform-produce as Kafka Streams does it: the consumed offsets are
/// committed inside the transaction (AddOffsetsToTxn + TxnOffsetCommit), so they move
/// only when it commits.
#[test]
fn consumed_offsets_commit_with_the_transaction_only() {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::TopicPartitionList;
    let broker = TestBroker::start(&[]);
    let input = unique_topic("ctp-in");
    let output = unique_topic("ctp-out");
    create_topic(&broker, &input, 1);
    create_topic(&broker, &output, 1);
    let plain = create_producer(&producer_config(&broker));
    produce_ok(
        &plain,
        &input,
        &(0..10)
            .map(|i| TestRecord::value(format!("in-{i}")))
            .collect::<Vec<_>>(),
    );

    let group = "ctp-group";
    let mut config = consumer_config(&broker);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[&input]).expect("subscribe");
    let mut consumed = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while consumed.len() < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed {consumed:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            consumed.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap()).to_string(),
            ));
        }
    }
    let p = txn_producer(&broker, "ctp", 60_000);
    let offsets_at = |next: i64| {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&input, 0, Offset::Offset(next))
            .unwrap();
        list
    };
    let meta = consumer.group_metadata().expect("group metadata");
    // The first five, committed with their offsets.
    p.begin_transaction().unwrap();
    send(
        &p,
        &output,
        0,
        &consumed[..5]
            .iter()
            .map(|(_, v)| format!("out-{v}"))
            .collect::<Vec<_>>(),
    );
    p.send_offsets_to_transaction(&offsets_at(5), &meta, Timeout::After(TXN_TIMEOUT))
        .expect("send offsets");
    p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();
    // The rest, aborted: neither their output nor their offsets count.
    p.begin_transaction().unwrap();
    send(
        &p,
        &output,
        0,
        &consumed[5..]
            .iter()
            .map(|(_, v)| format!("out-{v}"))
            .collect::<Vec<_>>(),
    );
    p.send_offsets_to_transaction(&offsets_at(10), &meta, Timeout::After(TXN_TIMEOUT))
        .expect("send offsets");
    p.abort_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();

    let committed = consumer
        .committed_offsets(offsets_at(0), Duration::from_secs(10))
        .expect("committed offsets");
    assert_eq!(
        committed.find_partition(&input, 0).unwrap().offset(),
        Offset::Offset(5)
    );
    let expected: Vec<String> = sorted((0..5).map(|i| format!("out-in-{i}")).collect());
    assert_eq!(read_all(&broker, &output, 1, "read_committed", 5), expected);
}

fn send_keyed(p: &TestProducer, topic: &str, records: &[(&str, &str)]) {
    for (k, v) in records {
        p.send(
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, 0)
                .partition(0)
                .key(k.as_bytes())
                .payload(v.as_bytes()),
        )
        .expect("enqueue");
    }
    p.flush(Timeout::After(TXN_TIMEOUT)).expect("flush");
}

/// Compaction never lets an aborted record supersede a committed one: Kafka Streams'
/// exactly-once changelogs are compacted topics.
#[test]
fn compaction_keeps_the_committed_value_over_a_later_aborted_one() {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    use kafka_protocol::protocol::StrBytes;
    let broker = TestBroker::start(&[
        "--set",
        "retention_check_interval_ms=100",
        "--set",
        "log_cleaner_backoff_ms=100",
    ]);
    let topic = unique_topic("txn-compacted");
    let mut conn = RawConn::connect(&broker);
    let mut req = common::raw::create_topics_request(&[&topic], 1);
    req.topics[0].configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ]
    .iter()
    .map(|(k, v)| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(k))
            .with_value(Some(StrBytes::from_static_str(v)))
    })
    .collect();
    assert_eq!(conn.call(&req, 5).topics[0].error_code, 0);

    let p = txn_producer(&broker, "txn-compacted", 60_000);
    p.begin_transaction().unwrap();
    send_keyed(&p, &topic, &[("k", "committed"), ("other", "old")]);
    p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();
    p.begin_transaction().unwrap();
    send_keyed(&p, &topic, &[("k", "aborted")]);
    p.abort_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();
    p.begin_transaction().unwrap();
    send_keyed(&p, &topic, &[("other", "new")]);
    p.commit_transaction(Timeout::After(TXN_TIMEOUT)).unwrap();
    // A record bigger than what is left of a 2 KiB segment seals the ones above.
    let sentinel = "s".repeat(1900);
    let plain = create_producer(&producer_config(&broker));
    for _ in 0..2 {
        produce_ok(
            &plain,
            &topic,
            &[TestRecord {
                partition: Some(0),
                key: Some(b"sentinel".to_vec()),
                value: Some(sentinel.clone().into_bytes()),
                headers: Vec::new(),
            }],
        );
    }
    // Compaction ran once "other"'s old value is gone.
    common::wait_until("compaction", Duration::from_secs(60), || {
        !read_all(&broker, &topic, 1, "read_uncommitted", 5).contains(&"old".to_string())
    });
    let seen = read_all(&broker, &topic, 1, "read_committed", 4);
    let short: Vec<&String> = seen.iter().filter(|v| v.len() < 100).collect();
    assert!(seen.contains(&"committed".to_string()), "{short:?}");
    assert!(!seen.contains(&"aborted".to_string()), "{short:?}");
}

// ---------------------------------------------------------------------------------
// The Java client (kafka-clients 4.x, `tests/java/TxnCheck.java`) where the machine has
// java and its jars (`STRIKEMQ_KAFKA_LIBS` or `~/.cache/strikemq/kafka-*/lib`, which
// `just kafka` fills); skipped otherwise, as the other Java test is.

const JAVA_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/TxnCheck.java");
/// Bound of one Java run (compiling the source included).
const JAVA_TIMEOUT: Duration = Duration::from_secs(240);

fn java_libs() -> Option<String> {
    let has_java = std::process::Command::new("java")
        .arg("-version")
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let libs = common::kafka_client_libs().filter(|_| has_java);
    if libs.is_none() {
        eprintln!("SKIP: no java or no kafka-clients 4.x jars (set STRIKEMQ_KAFKA_LIBS)");
    }
    libs
}

/// `TxnCheck.java MODE ARGS...` with stdout lines (JSON) on a channel; stderr echoed.
fn spawn_java(
    libs: &str,
    args: &[&str],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<serde_json::Value>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new("java")
        .args(["-Xmx256m", "-cp", &format!("{libs}/*"), JAVA_SOURCE])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn java");
    let stdout = child.stdout.take().expect("stdout piped");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value =
                serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line.clone()));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("java: {line}");
        }
    });
    (child, rx)
}

/// Stdout lines of `child` until one has `key` (and, with `exit`, the process's exit).
fn java_lines_until(
    child: &mut std::process::Child,
    lines: &std::sync::mpsc::Receiver<serde_json::Value>,
    key: &str,
    exit: bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + JAVA_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.get(key).is_some();
                seen.push(line);
                if found {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("java: no {key:?} line ({e}); got {seen:?}");
            }
        }
    }
    if exit {
        let status = common::wait_timeout(child, Duration::from_secs(30));
        if status.is_none() {
            let _ = child.kill();
        }
        assert!(status.is_some_and(|s| s.success()), "java exit {status:?}");
    }
    seen
}

fn run_java(libs: &str, args: &[&str], key: &str) -> serde_json::Value {
    let (mut child, lines) = spawn_java(libs, args);
    java_lines_until(&mut child, &lines, key, true)
        .pop()
        .expect("the line")
}

#[test]
fn java_zombie_producer_is_fenced() {
    let Some(libs) = java_libs() else { return };
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("java-txn-zombie");
    create_topic(&broker, &topic, 1);
    let report = run_java(
        &libs,
        &["zombie", &broker.bootstrap(), &topic, "java-zombie"],
        "zombie_error",
    );
    assert_eq!(
        report["zombie_error"], "ProducerFencedException",
        "{report}"
    );
    assert_eq!(
        read_all(&broker, &topic, 1, "read_committed", 2),
        values("fresh", 2)
    );
}

#[test]
fn java_timed_out_transaction_is_aborted() {
    let Some(libs) = java_libs() else { return };
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("java-txn-timeout");
    create_topic(&broker, &topic, 1);
    let report = run_java(
        &libs,
        &["timeout", &broker.bootstrap(), &topic, "java-timeout"],
        "commit_error",
    );
    // transaction.timeout.ms=2000, counted from the transaction's first partition.
    let after = report["aborted_after_s"].as_f64().expect("aborted_after_s");
    assert!(after >= 1.9, "aborted before its timeout: {report}");
    assert_eq!(
        read_all(&broker, &topic, 1, "read_committed", 0),
        Vec::<String>::new()
    );
    assert_eq!(
        read_all(&broker, &topic, 1, "read_uncommitted", 3),
        values("late", 3)
    );
}

/// The Java client's consume-transform-produce loop, exactly once across two SIGKILLs
/// of the worker process, each with a transaction open (records written, offsets sent).
#[test]
fn java_consume_transform_produce_is_exactly_once_across_kill9_of_the_worker() {
    use rdkafka::TopicPartitionList;
    let Some(libs) = java_libs() else { return };
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 300;
    let broker = TestBroker::start(&[]);
    let (input, output) = (unique_topic("java-ctp-in"), unique_topic("java-ctp-out"));
    let group = "java-ctp";
    create_topic(&broker, &input, PARTITIONS);
    create_topic(&broker, &output, PARTITIONS);
    let plain = create_producer(&producer_config(&broker));
    let records: Vec<TestRecord> = (0..RECORDS)
        .map(|i| TestRecord {
            partition: Some(i as i32 % PARTITIONS),
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: Vec::new(),
        })
        .collect();
    produce_ok(&plain, &input, &records);
    let bootstrap = broker.bootstrap();
    let args = |hang_after: i32| {
        [
            "worker".to_string(),
            bootstrap.clone(),
            input.clone(),
            output.clone(),
            group.to_string(),
            "java-ctp-worker".to_string(),
            "20".to_string(),
            hang_after.to_string(),
        ]
    };
    let mut left_open = 0;
    for (round, hang_after) in [3, 2].into_iter().enumerate() {
        let args = args(hang_after);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut child, lines) = spawn_java(&libs, &refs);
        let seen = java_lines_until(&mut child, &lines, "open", false);
        // SIGKILL: no abort, no leave-group, no close.
        child.kill().expect("SIGKILL the worker");
        child.wait().expect("reap the worker");
        let commits = seen.iter().filter(|l| l.get("committed").is_some()).count();
        assert_eq!(commits, hang_after as usize, "worker {round}: {seen:?}");
        left_open += seen.last().expect("the open line")["open"]
            .as_u64()
            .expect("records in the open transaction") as usize;
    }
    let args = args(-1);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = run_java(&libs, &refs, "done");
    eprintln!("java worker: {done}; {left_open} records left in open transactions");

    let want = sorted((0..RECORDS).map(|i| format!("out-v{i}")).collect());
    let got = read_all(&broker, &output, PARTITIONS, "read_committed", RECORDS);
    assert_eq!(got.len(), RECORDS, "exactly once: no duplicate");
    assert_eq!(got, want, "exactly once: every input");
    assert_eq!(
        read_all(
            &broker,
            &output,
            PARTITIONS,
            "read_uncommitted",
            RECORDS + left_open
        )
        .len(),
        RECORDS + left_open,
        "the killed workers' open transactions left their records in the log"
    );
    let mut config = consumer_config(&broker);
    config.set("group.id", group);
    let consumer = create_consumer(&config);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&input, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    for p in 0..PARTITIONS {
        assert_eq!(
            committed.find_partition(&input, p).unwrap().offset(),
            Offset::Offset((RECORDS as i64) / i64::from(PARTITIONS)),
            "partition {p}: the group's offset is the input's end"
        );
    }
}
