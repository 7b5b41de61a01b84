//! Shared by the benchmark binaries and `tests/allocations.rs` (each includes it with
//! `#[path]`; not every includer uses every helper).
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One uncompressed v2 record batch holding one record of `value_bytes`, as a
/// non-idempotent producer sends it.
pub fn one_record_batch(value_bytes: usize) -> Vec<u8> {
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
        value: Some(Bytes::from(vec![b'x'; value_bytes])),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &[record], &options).expect("encode batch");
    buf.to_vec()
}

/// A broker over `dir` (baseline profile, 64 MiB segments) with topic `topic` of one
/// partition, for `Broker::handle` in process.
pub fn broker_with_topic(dir: &std::path::Path, topic: &str) -> strikemq::broker::Broker {
    broker_with_topic_window(dir, topic, 0)
}

/// [`broker_with_topic`] with a pre-fault window of `window_bytes` (0: off, as the
/// baseline profile has it).
pub fn broker_with_topic_window(
    dir: &std::path::Path,
    topic: &str,
    window_bytes: u64,
) -> strikemq::broker::Broker {
    broker_and_storage(dir, topic, window_bytes).0
}

/// Polls with the same populated figure after which the pre-fault thread counts as
/// idle (one 256 KiB populate step takes well under 5 ms, even on a loaded VM).
pub const WINDOW_STABLE_POLLS: u32 = 5;

/// Waits until the pre-fault thread has populated at least half of `window_bytes`
/// ahead of `partition`'s append position and is idle (the figure unchanged over
/// [`WINDOW_STABLE_POLLS`] polls 1 ms apart), and returns how many bytes ahead are
/// populated: appends within them copy into present pages, which is what the window
/// is for. Polls what the broker publishes (`Partition::prefaulted_ahead_bytes`);
/// does nothing the broker does not. Panics after a minute (a full disk stops the
/// window).
pub fn wait_for_window(partition: &strikemq::storage::Partition, window_bytes: u64) -> u64 {
    use std::time::{Duration, Instant};
    const POLL: Duration = Duration::from_millis(1);
    const PATIENCE: Duration = Duration::from_secs(60);
    let started = Instant::now();
    let (mut last, mut stable) = (u64::MAX, 0);
    loop {
        let ahead = partition
            .prefaulted_ahead_bytes()
            .expect("the pre-fault window is on");
        stable = if ahead == last { stable + 1 } else { 0 };
        if ahead >= window_bytes / 2 && stable >= WINDOW_STABLE_POLLS {
            return ahead;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the pre-fault window never filled: {ahead} of {window_bytes} bytes after {PATIENCE:?}"
        );
        last = ahead;
        std::thread::sleep(POLL);
    }
}

/// [`broker_with_topic_window`], also handing back the storage (to watch the window).
pub fn broker_and_storage(
    dir: &std::path::Path,
    topic: &str,
    window_bytes: u64,
) -> (
    strikemq::broker::Broker,
    std::sync::Arc<strikemq::storage::Storage>,
) {
    use strikemq::config::{Config, EffectiveConfig, Profile};
    use strikemq::storage::{Storage, StorageConfig, TopicConfig};
    let mut cfg = Config::profile(Profile::Baseline);
    cfg.data_dir = dir.to_path_buf();
    cfg.segment_bytes = 64 << 20;
    cfg.segment_prefault_bytes = window_bytes;
    let storage = Storage::open(StorageConfig::from_config(&cfg)).expect("open storage");
    storage
        .create_topic(topic, 1, TopicConfig::default())
        .expect("topic");
    let storage = std::sync::Arc::new(storage);
    let broker = strikemq::broker::Broker::new(
        EffectiveConfig::new(cfg, Vec::new()),
        std::sync::Arc::clone(&storage),
        std::sync::Arc::new(strikemq::group::Coordinator::in_memory(
            strikemq::group::no_wake(),
        )),
        strikemq::group::no_wake(),
        ("127.0.0.1".into(), 9092),
    );
    (broker, storage)
}

/// A request frame without its size prefix, as the data plane hands it over.
pub fn request_frame<R>(api_key: i16, version: i16, req: &R) -> Bytes
where
    R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
{
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, R::header_version(version))
        .expect("header");
    req.encode(&mut buf, version).expect("body");
    buf.freeze()
}

/// A Produce (acks=1) of one `value_bytes` record to partition 0 of `topic`.
pub fn produce_frame(topic: &'static str, version: i16, value_bytes: usize) -> Bytes {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(one_record_batch(value_bytes))))])]);
    request_frame(0, version, &req)
}

/// A Fetch (no wait) from offset 0 of partition 0 of `topic`, at most `max_bytes`
/// (whole batches, at least one). From v13 the topic is named by `topic_id`.
pub fn fetch_frame_by(
    topic: &'static str,
    topic_id: uuid::Uuid,
    version: i16,
    max_bytes: i32,
) -> Bytes {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(if version < 13 {
                topic
            } else {
                ""
            })))
            .with_topic_id(if version < 13 {
                uuid::Uuid::nil()
            } else {
                topic_id
            })
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(max_bytes)])]);
    request_frame(1, version, &req)
}

/// [`fetch_frame_by`] for versions before 13 (topics by name).
pub fn fetch_frame(topic: &'static str, version: i16, max_bytes: i32) -> Bytes {
    fetch_frame_by(topic, uuid::Uuid::nil(), version, max_bytes)
}
