//! The hot path allocates nothing: a warmed-up 1-partition 1 KiB Produce and a
//! one-batch Fetch through `Broker::handle` make zero heap allocations. Counted with a
//! counting global allocator on this thread only (deterministic, not timed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use strikemq::broker::{Broker, Outcome};
use strikemq::config::{Config, EffectiveConfig, Profile};
use strikemq::storage::{Storage, StorageConfig, TopicConfig};

#[path = "../benches/common/mod.rs"]
mod batches;

thread_local! {
    // `const` initialisation: reading it never allocates (no lazy registration).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const RECORD_VALUE_BYTES: usize = 1024;
/// Requests before counting: lazy statics, the first segment, the index, buffers.
const WARM_UP_REQUESTS: usize = 64;
/// Requests counted (each must allocate nothing).
const COUNTED_REQUESTS: usize = 256;

fn frame<R: Encodable + HeaderVersion>(api_key: i16, version: i16, req: &R) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("alloc-test")))
        .encode(&mut buf, R::header_version(version))
        .expect("header");
    req.encode(&mut buf, version).expect("body");
    buf.freeze()
}

fn broker(dir: &std::path::Path) -> Broker {
    let mut cfg = Config::profile(Profile::Baseline);
    cfg.data_dir = dir.to_path_buf();
    let storage = Storage::open(StorageConfig::from_config(&cfg)).expect("open storage");
    storage
        .create_topic("hot", 1, TopicConfig::default())
        .expect("topic");
    Broker::new(
        EffectiveConfig::resolve(cfg),
        Arc::new(storage),
        ("127.0.0.1".into(), 9092),
    )
}

fn produce_frame(version: i16) -> Bytes {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("hot")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batches::one_record_batch(
                    RECORD_VALUE_BYTES,
                ))))])]);
    frame(0, version, &req)
}

fn fetch_frame(version: i16) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(RECORD_VALUE_BYTES as i32)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("hot")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(RECORD_VALUE_BYTES as i32)])]);
    frame(1, version, &req)
}

/// Allocations of each of `COUNTED_REQUESTS` handlings of `frame` after a warm-up.
fn allocations_of(broker: &Broker, frame: &Bytes) -> Vec<u64> {
    let mut out = Vec::with_capacity(64 * 1024);
    let once = |out: &mut Vec<u8>| {
        out.clear();
        let outcome = broker.handle(frame.clone(), out).expect("handled");
        assert!(matches!(outcome, Outcome::Responded), "{outcome:?}");
        assert!(out.len() > 8, "a response was written");
    };
    for _ in 0..WARM_UP_REQUESTS {
        once(&mut out);
    }
    (0..COUNTED_REQUESTS)
        .map(|_| {
            let before = allocations();
            once(&mut out);
            allocations() - before
        })
        .collect()
}

#[test]
fn a_warmed_up_produce_and_fetch_allocate_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path());
    // The versions librdkafka and the Java client send today, classic and flexible.
    for version in [7, 9, 11] {
        let counts = allocations_of(&broker, &produce_frame(version));
        assert!(
            counts.iter().all(|&n| n == 0),
            "Produce v{version} allocations per request: {counts:?}"
        );
    }
    for version in [11, 12] {
        let counts = allocations_of(&broker, &fetch_frame(version));
        assert!(
            counts.iter().all(|&n| n == 0),
            "Fetch v{version} allocations per request: {counts:?}"
        );
    }
}
