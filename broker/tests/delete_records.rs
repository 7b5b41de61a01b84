//! DeleteRecords against the real `strikemq` binary: rdkafka's AdminClient moves a
//! partition's log start offset; Fetch below it answers OFFSET_OUT_OF_RANGE, ListOffsets
//! and a consumer from the beginning start at it; the retention thread deletes the
//! segments wholly below it; and the move survives a kill -9. The error cases answer
//! Kafka's codes (raw protocol).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult;
use kafka_protocol::messages::DeleteRecordsRequest;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use common::raw::{self, produce, *};
use common::rdkafka_util::*;
use common::{unique_topic, wait_until, TestBroker};

/// Small segments, frequent retention passes, and no time retention (the shared
/// record helper stamps 2023).
const BROKER_ARGS: &[&str] = &[
    "--set",
    "segment_bytes=16384",
    "--set",
    "retention_check_interval_ms=200",
    "--set",
    "retention_ms=-1",
];
const RECORDS: i64 = 120;
const RECORD_VALUE_BYTES: usize = 1000;
const RETENTION_WAIT: Duration = Duration::from_secs(20);
const POLICY_VIOLATION: i16 = 44;
const DELETE_RECORDS_VERSION: i16 = 2;

fn value_of(i: i64) -> Vec<u8> {
    format!("record-{i:06}-")
        .bytes()
        .cycle()
        .take(RECORD_VALUE_BYTES)
        .collect()
}

fn produce_all(conn: &mut RawConn, topic: &str) {
    for i in 0..RECORDS {
        let batch = record_batch(&[&value_of(i)], None);
        assert_eq!(produce(conn, topic, 0, batch), (NONE, i), "produce {i}");
    }
}

/// Base offsets of partition 0's segment files, ascending.
fn segment_bases(broker: &TestBroker, topic: &str) -> Vec<i64> {
    let dir: PathBuf = broker.data_dir().join(format!("{topic}-0"));
    let mut bases: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.expect("dir entry").file_name();
            name.to_str()?.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

fn watermarks(broker: &TestBroker, topic: &str) -> (i64, i64) {
    create_consumer(&consumer_config(broker))
        .fetch_watermarks(topic, 0, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("ListOffsets of {topic}: {e}"))
}

/// rdkafka's DeleteRecords of partition 0 up to `offset`: the low watermark.
fn admin_delete_records(broker: &TestBroker, topic: &str, offset: Offset) -> i64 {
    let admin = create_admin(broker);
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, offset)
        .expect("add partition offset");
    let result = block_on(
        admin.delete_records(&list, &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("DeleteRecords request");
    let element = &result.elements()[0];
    element
        .error()
        .unwrap_or_else(|e| panic!("DeleteRecords of {topic}: {e}"));
    match element.offset() {
        Offset::Offset(low_watermark) => low_watermark,
        other => panic!("DeleteRecords answered {other:?}"),
    }
}

fn raw_delete_records(
    conn: &mut RawConn,
    topic: &str,
    partition: i32,
    offset: i64,
) -> DeleteRecordsPartitionResult {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let mut resp = conn.call(&req, DELETE_RECORDS_VERSION);
    resp.topics.remove(0).partitions.remove(0)
}

/// What every reader sees once the log start offset is `start`.
fn assert_starts_at(broker: &TestBroker, conn: &mut RawConn, topic: &str, start: i64) {
    assert_eq!(watermarks(broker, topic), (start, RECORDS), "ListOffsets");
    if start > 0 {
        let below = raw::fetch(conn, topic, 0, start - 1, 0);
        assert_eq!(
            below.error_code, OFFSET_OUT_OF_RANGE,
            "Fetch below the start"
        );
    }
    let at = raw::fetch(conn, topic, 0, start, 0);
    assert_eq!(at.error_code, NONE, "Fetch at the start");
    assert_eq!(at.records[0].offset, start, "first record fetched");
    let consumer = create_consumer(&consumer_config(broker));
    assign(&consumer, topic, &[0], Offset::Beginning);
    let records = consume_exactly(
        &consumer,
        (RECORDS - start) as usize,
        CLIENT_TIMEOUT * 3,
        Duration::from_millis(300),
    );
    assert_contiguous(&records, start);
    assert_eq!(records[0].value.as_deref(), Some(&value_of(start)[..]));
}

#[test]
fn delete_records_moves_the_start_deletes_old_segments_and_survives_kill9() {
    let mut broker = TestBroker::start(BROKER_ARGS);
    let topic = unique_topic("delete-records");
    let mut conn = RawConn::connect(&broker);
    raw::create_topics(&mut conn, &[&topic], 1);
    produce_all(&mut conn, &topic);
    let segments_before = segment_bases(&broker, &topic);
    assert!(segments_before.len() > 4, "{segments_before:?}");

    // Into the middle of a segment.
    let start = 50;
    assert!(!segments_before.contains(&start), "{segments_before:?}");
    assert_eq!(
        admin_delete_records(&broker, &topic, Offset::Offset(start)),
        start
    );
    assert_starts_at(&broker, &mut conn, &topic, start);

    // The retention thread deletes every segment wholly below the start, and only those.
    wait_until("segments below the start deleted", RETENTION_WAIT, || {
        segment_bases(&broker, &topic)
            .get(1)
            .is_some_and(|&b| b > start)
    });
    let bases = segment_bases(&broker, &topic);
    assert!(bases[0] <= start, "{bases:?}");
    assert!(bases.len() < segments_before.len(), "{bases:?}");

    // A move to a lower offset changes nothing.
    assert_eq!(
        admin_delete_records(&broker, &topic, Offset::Offset(10)),
        start
    );

    broker.kill9();
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    assert_starts_at(&broker, &mut conn, &topic, start);

    // -1 (rdkafka's Offset::End) deletes up to the high watermark; appends continue.
    assert_eq!(admin_delete_records(&broker, &topic, Offset::End), RECORDS);
    assert_eq!(watermarks(&broker, &topic), (RECORDS, RECORDS));
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    assert_eq!(watermarks(&broker, &topic), (RECORDS, RECORDS));
    let batch = record_batch(&[b"after"], None);
    assert_eq!(produce(&mut conn, &topic, 0, batch), (NONE, RECORDS));
}

#[test]
fn delete_records_errors_are_kafkas() {
    let broker = TestBroker::start(BROKER_ARGS);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("delete-records-errors");
    raw::create_topics(&mut conn, &[&topic], 1);
    produce_all(&mut conn, &topic);

    // Above the high watermark, or negative other than -1: OFFSET_OUT_OF_RANGE, and
    // nothing moved.
    for offset in [RECORDS + 1, -2, i64::MIN] {
        let r = raw_delete_records(&mut conn, &topic, 0, offset);
        assert_eq!(
            (r.error_code, r.low_watermark),
            (OFFSET_OUT_OF_RANGE, -1),
            "offset {offset}"
        );
    }
    assert_eq!(watermarks(&broker, &topic), (0, RECORDS));
    // Exactly the high watermark is allowed.
    let r = raw_delete_records(&mut conn, &topic, 0, RECORDS);
    assert_eq!((r.error_code, r.low_watermark), (NONE, RECORDS));

    let r = raw_delete_records(&mut conn, &topic, 1, 0);
    assert_eq!(
        r.error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "unknown partition"
    );
    let r = raw_delete_records(&mut conn, "no-such-topic", 0, 0);
    assert_eq!(r.error_code, UNKNOWN_TOPIC_OR_PARTITION, "unknown topic");

    // A compacted topic's records cannot be deleted (Kafka: POLICY_VIOLATION).
    let compacted = unique_topic("delete-records-compacted");
    let mut req = raw::create_topics_request(&[&compacted], 1);
    req.topics[0].configs = vec![
        kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
            .with_name("cleanup.policy".into())
            .with_value(Some("compact".into())),
    ];
    let resp = conn.call(&req, CREATE_TOPICS_VERSION);
    assert_eq!(resp.topics[0].error_code, NONE);
    let r = raw_delete_records(&mut conn, &compacted, 0, 0);
    assert_eq!(r.error_code, POLICY_VIOLATION, "compacted topic");
}
