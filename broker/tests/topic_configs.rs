//! Topic configs honoured or refused, against the real `strikemq` binary with rdkafka
//! and raw protocol: `message.timestamp.type=LogAppendTime` (consumers and the Produce
//! response see the append time), `max.message.bytes`, `segment.bytes`, `segment.ms`,
//! `cleanup.policy` (keyless records refused on compacted topics with per-record
//! errors, KIP-467; no time retention without `delete`), configs refused with
//! INVALID_CONFIG naming them, DescribeConfigs sources, IncrementalAlterConfigs APPEND
//! and SUBTRACT of `cleanup.policy`, and configs kept across a restart.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    alter_configs_request, AlterConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::admin::{ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, Timestamp};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;

use common::raw::{self, *};
use common::rdkafka_util::*;
use common::{unique_topic, wait_until, TestBroker};

const INVALID_CONFIG: i16 = 40;
const INVALID_RECORD: i16 = 87;
const MESSAGE_TOO_LARGE: i16 = 10;
const PRODUCE_V8: i16 = 8;
const INCREMENTAL_ALTER_VERSION: i16 = 1;
const OP_SET: i8 = 0;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// A timestamp far in the past: LogAppendTime must replace it.
const OLD_TIMESTAMP_MS: i64 = 1_000_000_000_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// One v2 batch of `records` (key, value), stamped `timestamp_ms`.
fn batch(records: &[(Option<&[u8]>, &[u8])], timestamp_ms: i64) -> Bytes {
    let records: Vec<_> = records
        .iter()
        .map(|&(key, value)| (key, Some(value), timestamp_ms))
        .collect();
    batch_of(&records, Compression::None)
}

fn produce_v8(conn: &mut RawConn, topic: &str, records: Bytes) -> PartitionProduceResponse {
    let mut resp = conn.call(&raw::produce_request(topic, 0, records), PRODUCE_V8);
    resp.responses.remove(0).partition_responses.remove(0)
}

/// CreateTopics (raw) of one partition with `configs`: (error code, message).
fn create_with(conn: &mut RawConn, topic: &str, configs: &[(&str, &str)]) -> (i16, String) {
    let mut req = raw::create_topics_request(&[topic], 1);
    req.topics[0].configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let resp = conn.call(&req, CREATE_TOPICS_VERSION);
    let t = &resp.topics[0];
    (
        t.error_code,
        t.error_message.as_deref().unwrap_or("").to_string(),
    )
}

fn create_ok(conn: &mut RawConn, topic: &str, configs: &[(&str, &str)]) {
    let (code, message) = create_with(conn, topic, configs);
    assert_eq!(code, NONE, "creating {topic} with {configs:?}: {message}");
}

fn segment_count(broker: &TestBroker, topic: &str) -> usize {
    let dir: PathBuf = broker.data_dir().join(format!("{topic}-0"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter(|e| {
            e.as_ref()
                .expect("dir entry")
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
}

/// (value, source as rdkafka names it) of one topic config through DescribeConfigs.
fn described(broker: &TestBroker, topic: &str, name: &str) -> (Option<String>, String) {
    let admin = create_admin(broker);
    let results = block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("DescribeConfigs request");
    let resource = results
        .into_iter()
        .next()
        .expect("one resource")
        .expect("DescribeConfigs of the topic");
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("{name} not reported: {resource:?}"));
    let source: &ConfigSource = &entry.source;
    (entry.value.clone(), format!("{source:?}"))
}

fn incremental(conn: &mut RawConn, topic: &str, name: &str, op: i8, value: &str) -> (i16, String) {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_config_operation(op)
                .with_value(Some(StrBytes::from_string(value.to_string())))]),
    ]);
    let resp = conn.call(&req, INCREMENTAL_ALTER_VERSION);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_deref().unwrap_or("").to_string(),
    )
}

#[test]
fn log_append_time_is_stamped_by_the_broker_and_seen_by_consumers() {
    let mut broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("log-append-time");
    create_ok(
        &mut conn,
        &topic,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let plain = unique_topic("create-time");
    create_ok(&mut conn, &plain, &[]);

    let before = now_ms();
    let p = produce_v8(
        &mut conn,
        &topic,
        batch(&[(None, b"a"), (None, b"b")], OLD_TIMESTAMP_MS),
    );
    let after = now_ms();
    assert_eq!(p.error_code, NONE);
    assert!(
        (before..=after).contains(&p.log_append_time_ms),
        "log_append_time_ms {} not in [{before}, {after}]",
        p.log_append_time_ms
    );
    // A CreateTime topic answers -1, as Kafka.
    let q = produce_v8(&mut conn, &plain, batch(&[(None, b"a")], OLD_TIMESTAMP_MS));
    assert_eq!((q.error_code, q.log_append_time_ms), (NONE, -1));

    // rdkafka (which checks CRCs here) sees the append time on every record.
    let check = |broker: &TestBroker| {
        let mut config = consumer_config(broker);
        config.set("check.crcs", "true");
        let consumer = create_consumer(&config);
        assign(&consumer, &topic, &[0], Offset::Beginning);
        let deadline = Instant::now() + CLIENT_TIMEOUT * 2;
        let mut seen = Vec::new();
        while seen.len() < 2 {
            assert!(Instant::now() < deadline, "consumed {seen:?}");
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                seen.push(m.expect("consume").timestamp());
            }
        }
        for ts in seen {
            assert_eq!(ts, Timestamp::LogAppendTime(p.log_append_time_ms));
        }
    };
    check(&broker);
    // Stored as stamped: the same after a restart.
    broker.restart();
    check(&broker);
}

#[test]
fn max_message_bytes_segment_bytes_and_segment_ms_are_per_topic() {
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let small = unique_topic("max-message-bytes");
    create_ok(&mut conn, &small, &[("max.message.bytes", "2000")]);
    let plain = unique_topic("plain");
    create_ok(&mut conn, &plain, &[]);
    let big = vec![b'x'; 3000];
    let p = produce_v8(&mut conn, &small, batch(&[(None, &big)], now_ms()));
    assert_eq!(p.error_code, MESSAGE_TOO_LARGE, "{:?}", p.error_message);
    let p = produce_v8(&mut conn, &small, batch(&[(None, &big[..1000])], now_ms()));
    assert_eq!(p.error_code, NONE);
    let p = produce_v8(&mut conn, &plain, batch(&[(None, &big)], now_ms()));
    assert_eq!(
        p.error_code, NONE,
        "the broker's own limit still applies elsewhere"
    );

    // segment.bytes: 20 batches of ~1 KiB roll several 4 KiB segments; the same into
    // a topic without the config stay in one (the broker's default is far larger).
    let segmented = unique_topic("segment-bytes");
    create_ok(&mut conn, &segmented, &[("segment.bytes", "4096")]);
    for _ in 0..20 {
        for t in [&segmented, &plain] {
            let p = produce_v8(&mut conn, t, batch(&[(None, &big[..1000])], now_ms()));
            assert_eq!(p.error_code, NONE);
        }
    }
    assert!(segment_count(&broker, &segmented) >= 5);
    assert_eq!(segment_count(&broker, &plain), 1);

    // segment.ms: an append after the active segment is older rolls it.
    let timed = unique_topic("segment-ms");
    create_ok(&mut conn, &timed, &[("segment.ms", "100")]);
    let p = produce_v8(&mut conn, &timed, batch(&[(None, b"first")], now_ms()));
    assert_eq!(p.error_code, NONE);
    std::thread::sleep(Duration::from_millis(200));
    let p = produce_v8(&mut conn, &timed, batch(&[(None, b"second")], now_ms()));
    assert_eq!(p.error_code, NONE);
    assert_eq!(segment_count(&broker, &timed), 2);
    // Both still read back, in order.
    let fetched = raw::fetch(&mut conn, &timed, 0, 0, 0);
    assert_eq!(fetched.records[0].offset, 0);
}

#[test]
fn compacted_topics_refuse_keyless_records_record_by_record() {
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("compacted");
    create_ok(&mut conn, &topic, &[("cleanup.policy", "compact")]);

    // Raw: the whole batch refused, the keyless records named (KIP-467).
    let records = batch(
        &[
            (Some(b"k0"), b"v0"),
            (None, b"v1"),
            (Some(b"k2"), b"v2"),
            (None, b"v3"),
        ],
        now_ms(),
    );
    let p = produce_v8(&mut conn, &topic, records);
    assert_eq!(p.error_code, INVALID_RECORD);
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, [1, 3]);
    let message = p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .unwrap_or("");
    assert!(message.contains("without key"), "{message}");
    assert_eq!(raw::fetch(&mut conn, &topic, 0, 0, 0).high_watermark, 0);

    // rdkafka: keyed records are stored, keyless ones fail with INVALID_RECORD.
    let producer = create_producer(&producer_config(&broker));
    let keyed = TestRecord {
        key: Some(b"key".to_vec()),
        ..TestRecord::value("with key")
    };
    let deliveries = common::rdkafka_util::produce(&producer, &topic, &[keyed]);
    assert!(deliveries[0].is_ok(), "{deliveries:?}");
    let deliveries =
        common::rdkafka_util::produce(&producer, &topic, &[TestRecord::value("no key")]);
    match &deliveries[0] {
        Err(e) => assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::InvalidRecord),
            "{e}"
        ),
        Ok(at) => panic!("a keyless record was stored at {at:?}"),
    }
}

#[test]
fn time_retention_needs_delete_in_the_cleanup_policy() {
    let broker = TestBroker::start(&["--set", "retention_check_interval_ms=100"]);
    let mut conn = RawConn::connect(&broker);
    let compact = unique_topic("compact-only");
    let both = unique_topic("compact-delete");
    // One ~1 KiB record per segment, all of them long expired.
    let expiring = [("retention.ms", "1"), ("segment.bytes", "1024")];
    create_ok(
        &mut conn,
        &compact,
        &[&[("cleanup.policy", "compact")][..], &expiring].concat(),
    );
    create_ok(
        &mut conn,
        &both,
        &[&[("cleanup.policy", "compact,delete")][..], &expiring].concat(),
    );
    let value = vec![b'v'; 900];
    for t in [&compact, &both] {
        for i in 0..4 {
            let key = format!("k{i}");
            let p = produce_v8(
                &mut conn,
                t,
                batch(&[(Some(key.as_bytes()), &value)], OLD_TIMESTAMP_MS),
            );
            assert_eq!(p.error_code, NONE);
        }
    }
    wait_until("compact,delete expired", Duration::from_secs(20), || {
        create_consumer(&consumer_config(&broker))
            .fetch_watermarks(&both, 0, CLIENT_TIMEOUT)
            .is_ok_and(|(low, _)| low > 0)
    });
    // Several more passes over both topics.
    std::thread::sleep(Duration::from_millis(500));
    let (low, high) = create_consumer(&consumer_config(&broker))
        .fetch_watermarks(&compact, 0, CLIENT_TIMEOUT)
        .expect("watermarks");
    assert_eq!(
        (low, high),
        (0, 4),
        "compact-only topic lost records to retention"
    );
}

#[test]
fn unsupported_configs_are_refused_naming_them_and_sources_are_reported() {
    let mut broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    for (name, value) in [
        ("compression.type", "gzip"),
        ("flush.ms", "1000"),
        ("min.insync.replicas", "2"),
        ("message.format.version", "3.0-IV1"),
        ("cleanup.policy", "shred"),
        ("segment.bytes", "100"),
        ("message.timestamp.type", "Now"),
    ] {
        let topic = unique_topic("refused");
        let (code, message) = create_with(&mut conn, &topic, &[(name, value)]);
        assert_eq!(code, INVALID_CONFIG, "{name}={value}: {message}");
        assert!(message.contains(name), "{name}={value}: {message}");
        let meta = conn.call(&raw::metadata_request(&[&topic], false), METADATA_VERSION);
        assert_ne!(meta.topics[0].error_code, NONE, "{topic} was created");
    }
    // The values that describe what the broker does are accepted.
    let topic = unique_topic("accepted");
    create_ok(
        &mut conn,
        &topic,
        &[
            ("compression.type", "producer"),
            ("min.insync.replicas", "1"),
            ("segment.bytes", "52428800"),
            ("retention.ms", "-1"),
        ],
    );
    assert_eq!(
        described(&broker, &topic, "cleanup.policy"),
        (Some("delete".into()), "Default".into())
    );
    assert_eq!(
        described(&broker, &topic, "segment.bytes"),
        (Some("52428800".into()), "DynamicTopic".into())
    );

    // APPEND and SUBTRACT of the list config cleanup.policy, from its default.
    let policy = |broker: &TestBroker| described(broker, &topic, "cleanup.policy").0;
    assert_eq!(
        incremental(&mut conn, &topic, "cleanup.policy", OP_APPEND, "compact").0,
        NONE
    );
    assert_eq!(policy(&broker).as_deref(), Some("delete,compact"));
    // ... and it is honoured at once: keyless records are refused now.
    let p = produce_v8(&mut conn, &topic, batch(&[(None, b"v")], now_ms()));
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(
        incremental(&mut conn, &topic, "cleanup.policy", OP_SUBTRACT, "delete").0,
        NONE
    );
    assert_eq!(policy(&broker).as_deref(), Some("compact"));
    let (code, message) = incremental(&mut conn, &topic, "cleanup.policy", OP_SUBTRACT, "compact");
    assert_eq!(code, INVALID_CONFIG, "an empty cleanup.policy: {message}");
    let (code, message) = incremental(&mut conn, &topic, "retention.ms", OP_APPEND, "5");
    assert_eq!(code, INVALID_CONFIG, "{message}");
    assert!(message.contains("retention.ms"), "{message}");
    let (code, _) = incremental(
        &mut conn,
        &topic,
        "message.timestamp.type",
        OP_SET,
        "LogAppendTime",
    );
    assert_eq!(code, NONE);

    // AlterConfigs (replaces the topic's configs) with a refused value: raw, because
    // rdkafka 0.39 reports every AlterConfigs resource as a success.
    let alter = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("flush.messages"))
                .with_value(Some(StrBytes::from_static_str("1")))]),
    ]);
    let resp = conn.call(&alter, 1);
    assert_eq!(resp.responses[0].error_code, INVALID_CONFIG);
    let message = resp.responses[0].error_message.as_deref().unwrap_or("");
    assert!(message.contains("flush.messages"), "{message}");

    // Kept across a restart, and still honoured.
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    assert_eq!(policy(&broker).as_deref(), Some("compact"));
    let p = produce_v8(&mut conn, &topic, batch(&[(None, b"v")], now_ms()));
    assert_eq!(p.error_code, INVALID_RECORD);
    let p = produce_v8(
        &mut conn,
        &topic,
        batch(&[(Some(b"k"), b"v")], OLD_TIMESTAMP_MS),
    );
    assert_eq!(p.error_code, NONE);
    assert!(p.log_append_time_ms > OLD_TIMESTAMP_MS);
}
