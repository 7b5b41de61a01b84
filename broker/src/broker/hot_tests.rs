//! Produce and Fetch, whose responses are hand-encoded (`protocol::encode`), checked
//! against `kafka_protocol` as the oracle for every supported version: each response
//! must decode with its decoder, consume every byte, and re-encode with its encoder to
//! exactly the same bytes. Plus the parked-fetch rules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::{code, Broker, Outcome, Parked};
use crate::config::{Config, EffectiveConfig, Profile};
use crate::output::{Output, RecordsOut};
use crate::protocol::request::supported_versions;
use crate::protocol::response::write_response;
use crate::storage::{Storage, StorageConfig, TopicConfig};

const TOPIC: &str = "hot";
const CORRELATION_ID: i32 = 0x0a0b_0c0d;

fn broker(dir: &std::path::Path) -> Broker {
    let mut cfg = Config::profile(Profile::Baseline);
    cfg.data_dir = dir.to_path_buf();
    let storage = Storage::open(StorageConfig::from_config(&cfg)).unwrap();
    storage
        .create_topic(TOPIC, 2, TopicConfig::default())
        .unwrap();
    Broker::new(
        EffectiveConfig::new(cfg, Vec::new()),
        Arc::new(storage),
        std::sync::Arc::new(crate::group::Coordinator::in_memory(crate::group::no_wake())),
        crate::group::no_wake(),
        ("127.0.0.1".into(), 9092),
    )
}

fn one_batch(value: &'static [u8]) -> Bytes {
    batch_with(value, Compression::None)
}

fn batch_with(value: &'static [u8], compression: Compression) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(value)),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &[record], &options).unwrap();
    buf.freeze()
}

fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, req: &R) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("hot-tests")))
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    buf.freeze()
}

/// Decodes one framed response with the oracle and checks that it re-encodes to the
/// very same bytes.
fn oracle_decode<R: Decodable + Encodable + HeaderVersion>(out: &[u8], version: i16) -> R {
    let mut buf = out;
    let size = buf.get_i32() as usize;
    assert_eq!(size, buf.len(), "v{version}: size prefix");
    let header = ResponseHeader::decode(&mut buf, R::header_version(version)).unwrap();
    assert_eq!(header.correlation_id, CORRELATION_ID, "v{version}");
    let body = R::decode(&mut buf, version).unwrap();
    assert!(buf.is_empty(), "v{version}: {} bytes left", buf.len());
    let mut again = Vec::new();
    write_response(&mut again, CORRELATION_ID, version, &body).unwrap();
    assert_eq!(again, out, "v{version}: oracle re-encodes differently");
    body
}

fn name(text: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(text))
}

fn produce_request(records: Bytes) -> ProduceRequest {
    let partition = |index: i32, records: Option<Bytes>| {
        PartitionProduceData::default()
            .with_index(index)
            .with_records(records)
    };
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![
                    partition(0, Some(records.clone())),
                    partition(9, Some(records.clone())),
                    partition(1, None),
                ]),
            TopicProduceData::default()
                .with_name(name("not a valid name!"))
                .with_partition_data(vec![partition(0, Some(records))]),
        ])
}

#[test]
fn produce_responses_match_the_oracle_in_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let records = one_batch(b"value");
    let (min, max) = supported_versions(ApiKey::Produce as i16).unwrap();
    for (i, version) in (min..=max).enumerate() {
        let mut out = Output::new(RecordsOut::Splice);
        let f = frame(ApiKey::Produce, version, &produce_request(records.clone()));
        let outcome = broker.handle(f, &mut out).unwrap();
        assert!(matches!(outcome, Outcome::Responded), "v{version}");
        let resp: ProduceResponse = oracle_decode(&out.to_vec(), version);
        assert_eq!(resp.responses.len(), 2, "v{version}");
        let t = &resp.responses[0];
        assert_eq!(t.name.0.as_str(), TOPIC);
        let codes: Vec<i16> = t.partition_responses.iter().map(|p| p.error_code).collect();
        assert_eq!(
            codes,
            [
                code::NONE,
                code::UNKNOWN_TOPIC_OR_PARTITION,
                code::CORRUPT_MESSAGE
            ],
            "v{version}"
        );
        assert_eq!(t.partition_responses[0].base_offset, i as i64, "v{version}");
        assert_eq!(t.partition_responses[1].base_offset, -1, "v{version}");
        if version >= 8 {
            let message = t.partition_responses[2].error_message.as_ref().unwrap();
            assert_eq!(message.as_str(), "no records");
        }
        let bad = &resp.responses[1].partition_responses[0];
        assert_eq!(bad.error_code, code::INVALID_TOPIC_EXCEPTION, "v{version}");
    }
}

#[test]
fn zstd_before_produce_v7_is_refused_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let zstd = batch_with(b"squeezed", Compression::Zstd);
    let (min, max) = supported_versions(ApiKey::Produce as i16).unwrap();
    for version in min..=max {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(1)
                    .with_records(Some(zstd.clone()))])]);
        let mut out = Output::new(RecordsOut::Copy);
        broker
            .handle(frame(ApiKey::Produce, version, &req), &mut out)
            .unwrap();
        let resp: ProduceResponse = oracle_decode(&out.to_vec(), version);
        let got = resp.responses[0].partition_responses[0].error_code;
        let want = if version < 7 {
            code::UNSUPPORTED_COMPRESSION_TYPE
        } else {
            code::NONE
        };
        assert_eq!(got, want, "v{version}");
    }
    let appended = (max - 7 + 1).max(0) as i64;
    let p = broker.storage.partition(TOPIC, 1).unwrap();
    assert_eq!(p.offsets().log_end_offset, appended, "only v7+ appended");
}

#[test]
fn two_batches_for_one_partition_are_refused_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let one = batch_with(b"first", Compression::None);
    let mut two = one.to_vec();
    two.extend_from_slice(&batch_with(b"second", Compression::None));
    // A whole batch and a few stray bytes after it: not a second batch, left to the
    // append's validation (which refuses the stray bytes as corrupt).
    let mut stray = one.to_vec();
    stray.extend_from_slice(&[0, 0, 0]);
    let (min, max) = supported_versions(ApiKey::Produce as i16).unwrap();
    for version in min..=max {
        for (records, want) in [
            (two.clone(), code::INVALID_RECORD),
            (stray.clone(), code::CORRUPT_MESSAGE),
            (one.to_vec(), code::NONE),
        ] {
            let req = produce_request(bytes::Bytes::from(records)).with_acks(-1);
            let mut out = Output::new(RecordsOut::Copy);
            broker
                .handle(frame(ApiKey::Produce, version, &req), &mut out)
                .unwrap();
            let resp: ProduceResponse = oracle_decode(&out.to_vec(), version);
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(p.error_code, want, "v{version}");
            if want == code::INVALID_RECORD && version >= 8 {
                let message = p.error_message.as_ref().unwrap();
                assert!(message.contains("exactly one record batch"), "{message}");
            }
        }
    }
    // Only the single batches were appended, one per version.
    let p = broker.storage.partition(TOPIC, 0).unwrap();
    assert_eq!(p.offsets().log_end_offset, i64::from(max - min + 1));
}

#[test]
fn produce_with_acks_zero_appends_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let req = produce_request(one_batch(b"quiet")).with_acks(0);
    let mut out = Output::new(RecordsOut::Copy);
    out.bytes_mut().push(7);
    let outcome = broker
        .handle(frame(ApiKey::Produce, 9, &req), &mut out)
        .unwrap();
    assert!(matches!(outcome, Outcome::NoResponse));
    assert_eq!(out.to_vec(), [7u8], "existing bytes kept, nothing added");
    let p = broker.storage.partition(TOPIC, 0).unwrap();
    assert_eq!(p.offsets().log_end_offset, 1);
}

fn fetch_request(version: i16, topic_id: uuid::Uuid, isolation_level: i8) -> FetchRequest {
    let part = |partition: i32, fetch_offset: i64| {
        let mut p = FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(fetch_offset)
            .with_partition_max_bytes(1 << 20);
        if version >= 5 {
            p.log_start_offset = 0;
        }
        p
    };
    let topic = |t: FetchTopic| {
        if version >= 13 {
            t.with_topic_id(topic_id)
        } else {
            t.with_topic(name(TOPIC))
        }
    };
    let mut unknown = FetchTopic::default().with_partitions(vec![part(0, 0)]);
    if version >= 13 {
        unknown.topic_id = uuid::Uuid::from_u128(42);
    } else {
        unknown.topic = name("no-such-topic");
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            topic(FetchTopic::default()).with_partitions(vec![
                part(0, 0),
                part(1, 0),
                part(0, 999),
                part(7, 0),
            ]),
            unknown,
        ]);
    if version <= 14 {
        req.replica_id = (-1).into();
    }
    req
}

#[test]
fn fetch_responses_match_the_oracle_in_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let records = one_batch(b"fetched");
    broker
        .storage
        .partition(TOPIC, 0)
        .unwrap()
        .append(&records)
        .unwrap();
    let topic_id = broker.storage.topic(TOPIC).unwrap().id;
    let (min, max) = supported_versions(ApiKey::Fetch as i16).unwrap();
    for version in min..=max {
        for isolation_level in [0, 1] {
            let mut out = Output::new(RecordsOut::Splice);
            let req = fetch_request(version, topic_id, isolation_level);
            let outcome = broker
                .handle(frame(ApiKey::Fetch, version, &req), &mut out)
                .unwrap();
            assert!(matches!(outcome, Outcome::Responded), "v{version}");
            // The copying path writes the very same bytes (`fetch_zero_copy` off).
            let mut copied = Output::new(RecordsOut::Copy);
            broker
                .handle(frame(ApiKey::Fetch, version, &req), &mut copied)
                .unwrap();
            assert_eq!(copied.to_vec(), out.to_vec(), "v{version}");
            let resp: FetchResponse = oracle_decode(&out.to_vec(), version);
            assert_eq!(resp.error_code, code::NONE, "v{version}");
            let parts = &resp.responses[0].partitions;
            let codes: Vec<i16> = parts.iter().map(|p| p.error_code).collect();
            assert_eq!(
                codes,
                [
                    code::NONE,
                    code::NONE,
                    code::OFFSET_OUT_OF_RANGE,
                    code::UNKNOWN_TOPIC_OR_PARTITION
                ],
                "v{version}"
            );
            assert_eq!(
                parts[0].records.as_deref(),
                Some(&records[..]),
                "v{version}"
            );
            assert_eq!(parts[0].high_watermark, 1, "v{version}");
            assert_eq!(parts[1].records.as_deref(), Some(&[][..]), "v{version}");
            assert_eq!(parts[2].high_watermark, 1, "v{version}");
            assert_eq!(
                parts[0].aborted_transactions.is_some(),
                isolation_level == 1,
                "v{version}"
            );
            let unknown = resp.responses[1].partitions[0].error_code;
            let expected = if version >= 13 {
                code::UNKNOWN_TOPIC_ID
            } else {
                code::UNKNOWN_TOPIC_OR_PARTITION
            };
            assert_eq!(unknown, expected, "v{version}");
        }
    }
}

#[test]
fn fetch_with_a_session_id_is_refused_in_every_session_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let topic_id = broker.storage.topic(TOPIC).unwrap().id;
    for version in 7..=16 {
        let req = fetch_request(version, topic_id, 0).with_session_id(5);
        let mut out = Output::new(RecordsOut::Splice);
        broker
            .handle(frame(ApiKey::Fetch, version, &req), &mut out)
            .unwrap();
        let resp: FetchResponse = oracle_decode(&out.to_vec(), version);
        assert_eq!(
            resp.error_code,
            code::FETCH_SESSION_ID_NOT_FOUND,
            "v{version}"
        );
        assert!(resp.responses.is_empty(), "v{version}");
    }
}

fn waiting_fetch(max_wait_ms: i32) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(1)
                .with_partition_max_bytes(1 << 20)])]);
    frame(ApiKey::Fetch, 12, &req)
}

fn park(broker: &Broker, f: Bytes) -> Box<Parked> {
    let mut out = Output::new(RecordsOut::Splice);
    match broker.handle(f, &mut out).unwrap() {
        Outcome::Park(parked) => {
            assert!(out.is_empty(), "a parked fetch writes nothing");
            parked
        }
        other => panic!("expected to park, got {other:?}"),
    }
}

#[test]
fn a_parked_fetch_answers_when_its_partition_gets_data_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let mut parked = park(&broker, waiting_fetch(60_000));
    let mut out = Output::new(RecordsOut::Splice);
    assert!(!broker.resume(&mut parked, &mut out, false).unwrap());
    // Data on another partition is not this fetch's event.
    let records = one_batch(b"elsewhere");
    broker
        .storage
        .partition(TOPIC, 0)
        .unwrap()
        .append(&records)
        .unwrap();
    assert!(!broker.resume(&mut parked, &mut out, false).unwrap());
    assert!(out.is_empty());
    broker
        .storage
        .partition(TOPIC, 1)
        .unwrap()
        .append(&records)
        .unwrap();
    assert!(broker.resume(&mut parked, &mut out, false).unwrap());
    let resp: FetchResponse = oracle_decode(&out.to_vec(), 12);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.records.as_deref(), Some(&records[..]));
}

#[test]
fn a_parked_fetch_answers_empty_at_its_deadline_or_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let started = Instant::now();
    let mut parked = park(&broker, waiting_fetch(50));
    let mut out = Output::new(RecordsOut::Splice);
    while !broker.resume(&mut parked, &mut out, false).unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never answered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(started.elapsed() >= Duration::from_millis(50));
    let resp: FetchResponse = oracle_decode(&out.to_vec(), 12);
    assert_eq!(
        resp.responses[0].partitions[0].records.as_deref(),
        Some(&[][..])
    );

    let mut parked = park(&broker, waiting_fetch(60_000));
    let mut out = Output::new(RecordsOut::Splice);
    assert!(broker.resume(&mut parked, &mut out, true).unwrap());
    let _: FetchResponse = oracle_decode(&out.to_vec(), 12);
}
