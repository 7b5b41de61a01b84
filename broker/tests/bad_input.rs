//! Hostile and malformed input over raw TCP. Every case must end in the right Kafka
//! error or a closed connection, never a crash or a hang, and a second well-behaved
//! connection must still be served afterwards.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsRequest, InitProducerIdRequest, MetadataRequest,
    ProduceRequest, ProducerId, ResponseHeader,
};
use kafka_protocol::protocol::Decodable;

use common::raw::*;
use common::{list_tree, unique_topic, TestBroker};

/// How long the broker may take to reject a malformed request.
const REJECT_WITHIN: Duration = Duration::from_secs(5);
/// The broker's RSS after hostile input must stay below this.
const RSS_KIB_MAX: u64 = 200 * 1024;
/// The broker's default `max_frame_bytes` (100 MiB).
const DEFAULT_FRAME_BYTES_MAX: i32 = 100 * 1024 * 1024;

#[test]
fn truncated_frames_followed_by_close_leave_the_broker_serving() {
    let mut broker = TestBroker::start(&[]);
    let complete = encode_request(&api_versions_request(), API_VERSIONS_VERSION, 7);

    // Half a length prefix.
    let mut conn = RawConn::connect(&broker);
    conn.send_raw(&[0, 0]);
    drop(conn);
    assert_broker_healthy(&mut broker);

    // A length prefix promising more than is sent.
    let mut conn = RawConn::connect(&broker);
    let mut partial = Vec::new();
    partial.extend_from_slice(&(complete.len() as i32 + 100).to_be_bytes());
    partial.extend_from_slice(&complete);
    conn.send_raw(&partial);
    drop(conn);
    assert_broker_healthy(&mut broker);

    // A frame whose body stops in the middle of the request header.
    let mut conn = RawConn::connect(&broker);
    conn.send_frame(&complete[..5]);
    conn.expect_closed(REJECT_WITHIN, "frame ending inside the request header");
    assert_broker_healthy(&mut broker);
}

#[test]
fn zero_negative_and_oversized_length_prefixes_close_the_connection() {
    let mut broker = TestBroker::start(&[]);
    for length in [0, -1, i32::MIN, DEFAULT_FRAME_BYTES_MAX + 1, i32::MAX] {
        let mut conn = RawConn::connect(&broker);
        conn.send_raw(&length.to_be_bytes());
        conn.expect_closed(REJECT_WITHIN, &format!("length prefix {length}"));
        assert_broker_healthy(&mut broker);
    }
    let rss_kib = broker.rss_kib();
    assert!(
        rss_kib < RSS_KIB_MAX,
        "broker RSS {rss_kib} KiB after huge length prefixes"
    );
}

#[test]
fn frames_above_max_frame_bytes_close_the_connection() {
    let mut broker = TestBroker::start(&["--set", "max_frame_bytes=65536"]);
    let mut conn = RawConn::connect(&broker);
    // Only the prefix: the broker must refuse before reading (or buffering) the body.
    conn.send_raw(&65_537i32.to_be_bytes());
    conn.expect_closed(REJECT_WITHIN, "frame of max_frame_bytes + 1");
    assert_broker_healthy(&mut broker);
}

/// A request body that claims a huge count/length right after a valid prefix.
fn hostile_bodies() -> Vec<(&'static str, BytesMut)> {
    let mut cases = Vec::new();

    let mut b = header_for::<MetadataRequest>(4, 11);
    b.put_i32(i32::MAX); // topics array count
    cases.push(("Metadata v4 topics count 2^31-1", b));

    let mut b = header_for::<MetadataRequest>(9, 12);
    // Compact array: unsigned varint of count + 1 = 2^31.
    b.put_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    cases.push(("Metadata v9 compact topics count 2^31-1", b));

    let mut b = header_for::<ProduceRequest>(3, 13);
    b.put_i16(-1); // transactional id: null
    b.put_i16(-1); // acks
    b.put_i32(1_000); // timeout
    b.put_i32(i32::MAX); // topic_data count
    cases.push(("Produce v3 topic count 2^31-1", b));

    let mut b = header_for::<ProduceRequest>(3, 14);
    b.put_i16(-1);
    b.put_i16(-1);
    b.put_i32(1_000);
    b.put_i32(1); // one topic
    b.put_i16(1);
    b.put_u8(b't');
    b.put_i32(i32::MAX); // partition count
    cases.push(("Produce v3 partition count 2^31-1", b));

    let mut b = header_for::<ProduceRequest>(3, 15);
    b.put_i16(-1);
    b.put_i16(-1);
    b.put_i32(1_000);
    b.put_i32(1);
    b.put_i16(1);
    b.put_u8(b't');
    b.put_i32(1);
    b.put_i32(0); // partition index
    b.put_i32(i32::MAX); // records length
    b.put_slice(&[0u8; 64]);
    cases.push(("Produce v3 records length 2^31-1", b));

    let mut b = header_for::<CreateTopicsRequest>(2, 16);
    b.put_i32(i32::MAX); // topics count
    cases.push(("CreateTopics v2 topics count 2^31-1", b));

    // Request header v1: api key, version, correlation id, then a client id whose
    // length says 32767 with nothing after it.
    let mut b = BytesMut::new();
    b.put_i16(ApiKey::Metadata as i16);
    b.put_i16(4);
    b.put_i32(17);
    b.put_i16(i16::MAX);
    cases.push(("client id length 32767 without bytes", b));

    cases
}

#[test]
fn huge_counts_and_lengths_inside_a_frame_are_rejected_quickly_without_allocating() {
    let mut broker = TestBroker::start(&[]);
    for (what, body) in hostile_bodies() {
        let mut conn = RawConn::connect(&broker);
        let started = Instant::now();
        conn.send_frame(&body);
        // Either a Kafka error response or a closed connection is acceptable; the
        // call panics if neither happens within REJECT_WITHIN.
        let outcome = conn.outcome(REJECT_WITHIN);
        eprintln!("{what}: {outcome:?} after {:?}", started.elapsed());
        let rss_kib = broker.rss_kib();
        assert!(
            rss_kib < RSS_KIB_MAX,
            "{what}: broker RSS grew to {rss_kib} KiB"
        );
        assert_broker_healthy(&mut broker);
    }
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let mut broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let mut body = BytesMut::new();
    encode_header(&mut body, 9999, 0, 21, 1);
    conn.send_frame(&body);
    conn.expect_closed(REJECT_WITHIN, "api key 9999");
    assert_broker_healthy(&mut broker);
}

#[test]
fn unsupported_api_versions_version_gets_a_v0_answer_with_unsupported_version_and_the_api_list() {
    let mut broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let correlation_id = 4242;
    // What a future client sends: flexible header v2 and an (empty) flexible body.
    let mut body = BytesMut::new();
    encode_header(&mut body, ApiKey::ApiVersions as i16, 99, correlation_id, 2);
    body.put_u8(0); // client software name: compact string ""
    body.put_u8(0); // client software version: ""
    body.put_u8(0); // no tagged fields
    conn.send_frame(&body);

    let mut frame = conn.read_frame().expect("answer to ApiVersions v99");
    let header = ResponseHeader::decode(&mut frame, 0).expect("response header v0");
    assert_eq!(header.correlation_id, correlation_id);
    let response = ApiVersionsResponse::decode(&mut frame, 0).expect("ApiVersions v0 body");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    let api_versions = response
        .api_keys
        .iter()
        .find(|a| a.api_key == ApiKey::ApiVersions as i16)
        .expect("the list in the error response includes ApiVersions itself");
    assert_eq!((api_versions.min_version, api_versions.max_version), (0, 4));
    assert!(response.api_keys.len() >= 10, "the full api list");
    assert_broker_healthy(&mut broker);
}

#[test]
fn produce_with_a_corrupted_crc_is_rejected_with_corrupt_message_and_not_stored() {
    let mut broker = TestBroker::start(&[]);
    let topic = unique_topic("bad-crc");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);

    let batch = record_batch(&[b"one", b"two", b"three"], None);
    let mut corrupted = BytesMut::from(&batch[..]);
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0xFF; // inside the last record, covered by the CRC
    let (error_code, _) = produce(&mut conn, &topic, 0, corrupted.freeze());
    assert_eq!(error_code, CORRUPT_MESSAGE);

    let fetched = fetch(&mut conn, &topic, 0, 0, 0);
    assert_eq!(fetched.error_code, NONE);
    assert_eq!(fetched.high_watermark, 0, "nothing appended");
    assert!(fetched.records.is_empty());

    // The intact batch is accepted on the same connection.
    assert_eq!(produce(&mut conn, &topic, 0, batch), (NONE, 0));
    assert_broker_healthy(&mut broker);
}

#[test]
fn produce_with_a_magic_1_message_set_is_rejected_and_nothing_is_readable() {
    let mut broker = TestBroker::start(&[]);
    let topic = unique_topic("magic-1");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);

    let (error_code, _) = produce(&mut conn, &topic, 0, magic_1_message_set(b"legacy"));
    assert_ne!(
        error_code, NONE,
        "a magic 1 message set must not be acknowledged"
    );

    let fetched = fetch(&mut conn, &topic, 0, 0, 0);
    assert_eq!(fetched.error_code, NONE);
    assert_eq!(fetched.high_watermark, 0, "nothing appended");
    assert!(fetched.records.is_empty());
    assert_broker_healthy(&mut broker);
}

/// Names Kafka rejects; none of them may create anything on disk.
fn invalid_topic_names() -> Vec<String> {
    vec![
        "a$#!".to_string(),
        "..".to_string(),
        ".".to_string(),
        String::new(),
        "x".repeat(250),
        "../escape".to_string(),
        "a/b".to_string(),
        "with space".to_string(),
    ]
}

#[test]
fn create_topics_with_invalid_names_fails_with_invalid_topic_and_touches_no_files() {
    let mut broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let before = list_tree(broker.root_dir());

    let names = invalid_topic_names();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let response = conn.call(&create_topics_request(&name_refs, 1), CREATE_TOPICS_VERSION);
    assert_eq!(response.topics.len(), names.len(), "one result per topic");
    for result in &response.topics {
        assert_eq!(
            result.error_code,
            INVALID_TOPIC_EXCEPTION,
            "CreateTopics {:?}",
            result.name.0.as_str()
        );
    }
    assert_eq!(
        list_tree(broker.root_dir()),
        before,
        "invalid topic names changed files"
    );

    // 249 characters is the longest legal name.
    let longest = "y".repeat(249);
    create_topics(&mut conn, &[&longest], 1);
    assert_broker_healthy(&mut broker);
}

#[test]
fn metadata_and_produce_for_invalid_topic_names_report_an_error_and_touch_no_files() {
    let mut broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let before = list_tree(broker.root_dir());
    let acceptable = [INVALID_TOPIC_EXCEPTION, UNKNOWN_TOPIC_OR_PARTITION];

    for name in invalid_topic_names() {
        let metadata = conn.call(&metadata_request(&[&name], true), METADATA_VERSION);
        assert_eq!(metadata.topics.len(), 1, "Metadata for {name:?}");
        assert!(
            acceptable.contains(&metadata.topics[0].error_code),
            "Metadata for {name:?}: error {}",
            metadata.topics[0].error_code
        );

        let (error_code, _) = produce(&mut conn, &name, 0, record_batch(&[b"v"], None));
        assert!(
            acceptable.contains(&error_code),
            "Produce to {name:?}: error {error_code}"
        );
    }
    assert_eq!(
        list_tree(broker.root_dir()),
        before,
        "invalid topic names changed files"
    );
    assert_broker_healthy(&mut broker);
}

#[test]
fn fetch_beyond_the_log_end_or_before_its_start_is_offset_out_of_range() {
    let mut broker = TestBroker::start(&[]);
    let topic = unique_topic("range");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);
    assert_eq!(
        produce(
            &mut conn,
            &topic,
            0,
            record_batch(&[b"a", b"b", b"c"], None)
        ),
        (NONE, 0)
    );

    // At the end: nothing yet, but not an error.
    let at_end = fetch(&mut conn, &topic, 0, 3, 0);
    assert_eq!(at_end.error_code, NONE);
    assert_eq!(at_end.high_watermark, 3);
    assert!(at_end.records.is_empty());

    for offset in [4, 1_000_000, -5] {
        let fetched = fetch(&mut conn, &topic, 0, offset, 0);
        assert_eq!(
            fetched.error_code, OFFSET_OUT_OF_RANGE,
            "fetch at offset {offset}"
        );
        assert!(fetched.records.is_empty());
    }

    // Inside a batch: the whole batch comes back, so offset 1 is readable.
    let inside = fetch(&mut conn, &topic, 0, 1, 0);
    assert_eq!(inside.error_code, NONE);
    assert!(inside.records.iter().any(|r| r.offset == 1));
    assert_broker_healthy(&mut broker);
}

fn init_producer_id(conn: &mut RawConn) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response = conn.call(&request, 4);
    assert_eq!(response.error_code, NONE, "InitProducerId error");
    assert!(response.producer_id.0 >= 0, "producer id assigned");
    assert!(response.producer_epoch >= 0, "producer epoch assigned");
    (response.producer_id.0, response.producer_epoch)
}

#[test]
fn idempotent_produce_dedups_a_resent_batch_and_rejects_a_sequence_gap() {
    let mut broker = TestBroker::start(&[]);
    let topic = unique_topic("idempotent-raw");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);
    let (producer_id, producer_epoch) = init_producer_id(&mut conn);
    let state = |base_sequence| {
        Some(ProducerState {
            producer_id,
            producer_epoch,
            base_sequence,
        })
    };

    let values: [&[u8]; 5] = [b"r0", b"r1", b"r2", b"r3", b"r4"];
    let first = record_batch(&values, state(0));
    assert_eq!(produce(&mut conn, &topic, 0, first.clone()), (NONE, 0));
    // A retry of the same batch (as after a lost response) is acknowledged with the
    // original offset and not stored again.
    assert_eq!(
        produce(&mut conn, &topic, 0, first),
        (NONE, 0),
        "duplicate batch"
    );
    let fetched = fetch(&mut conn, &topic, 0, 0, 0);
    assert_eq!(fetched.high_watermark, 5, "duplicate was not appended");
    assert_eq!(fetched.records.len(), 5);

    // The next sequence continues; a gap is refused.
    assert_eq!(
        produce(&mut conn, &topic, 0, record_batch(&values, state(5))),
        (NONE, 5)
    );
    let (error_code, _) = produce(&mut conn, &topic, 0, record_batch(&values, state(20)));
    assert_eq!(error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let fetched = fetch(&mut conn, &topic, 0, 0, 0);
    assert_eq!(
        fetched.high_watermark, 10,
        "the gapped batch was not appended"
    );
    let offsets: Vec<i64> = fetched.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    assert_broker_healthy(&mut broker);
}

#[test]
fn fetch_on_an_empty_partition_waits_for_max_wait_ms() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("wait");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);

    let started = Instant::now();
    let fetched = fetch(&mut conn, &topic, 0, 0, 500);
    let waited = started.elapsed();
    assert_eq!(fetched.error_code, NONE);
    assert!(fetched.records.is_empty());
    assert!(
        waited >= Duration::from_millis(400),
        "empty fetch with max_wait_ms=500 returned after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "empty fetch with max_wait_ms=500 took {waited:?}"
    );
}

#[test]
fn waiting_fetch_returns_soon_after_a_produce_from_another_connection() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("wake");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);

    let mut producer_conn = RawConn::connect(&broker);
    let producer_topic = topic.clone();
    let producer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        let result = produce(
            &mut producer_conn,
            &producer_topic,
            0,
            record_batch(&[b"wake"], None),
        );
        (result, Instant::now())
    });

    let started = Instant::now();
    let fetched = fetch(&mut conn, &topic, 0, 0, 5_000);
    let returned_at = Instant::now();
    let (produce_result, acked_at) = producer.join().expect("producer thread");
    assert_eq!(produce_result, (NONE, 0));
    assert_eq!(fetched.error_code, NONE);
    assert_eq!(fetched.records.len(), 1, "the produced record");
    assert_eq!(fetched.records[0].value, Some(Bytes::from_static(b"wake")));
    let after_ack = returned_at.saturating_duration_since(acked_at);
    eprintln!(
        "fetch waited {:?}; returned {after_ack:?} after the produce ack",
        started.elapsed()
    );
    assert!(
        returned_at.duration_since(started) < Duration::from_millis(1_300),
        "fetch with max_wait_ms=5000 returned only after {:?}",
        started.elapsed()
    );
    assert!(
        after_ack < Duration::from_secs(1),
        "fetch returned {after_ack:?} after the produce was acknowledged"
    );
}
