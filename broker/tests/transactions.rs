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
    let broker = TestBroker::start(&["--set", "retention_check_interval_ms=100"]);
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
