//! The broker's own share of a produce and a fetch: `Broker::handle` on an encoded
//! request frame, in process (no sockets). Also counts heap allocations per request
//! with a counting global allocator, to say how far the hot path is from
//! allocation-free.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use strikemq::broker::{Broker, Outcome};
use strikemq::config::{Config, EffectiveConfig, Profile};
use strikemq::storage::{FlushPolicy, LogMapLayout, Storage, StorageConfig, TopicConfig};

#[path = "common/mod.rs"]
mod common;

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RECORD_VALUE_BYTES: usize = 1024;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

/// A request frame without its size prefix, as the data plane hands it over.
fn frame<R: Encodable + HeaderVersion>(api_key: i16, version: i16, req: &R) -> Bytes {
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

fn broker(dir: &std::path::Path) -> Broker {
    let mut cfg = Config::profile(Profile::Baseline);
    cfg.data_dir = dir.to_path_buf();
    let storage = Storage::open(StorageConfig {
        data_dir: dir.to_path_buf(),
        segment_bytes: 64 << 20,
        index_interval_bytes: 4096,
        flush: FlushPolicy::Never,
        segment_prefault_bytes: 0,
        segment_hugepages: false,
        segment_write: strikemq::storage::SegmentWrite::Mmap,
        max_batch_bytes: 8 << 20,
        log_map: LogMapLayout::Global,
    })
    .expect("open storage");
    storage
        .create_topic("bench", 1, TopicConfig::default())
        .expect("topic");
    Broker::new(
        EffectiveConfig::resolve(cfg),
        Arc::new(storage),
        ("127.0.0.1".into(), 9092),
    )
}

fn produce_frame() -> Bytes {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(common::one_record_batch(
                    RECORD_VALUE_BYTES,
                ))))])]);
    frame(0, PRODUCE_VERSION, &req)
}

fn fetch_frame() -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(RECORD_VALUE_BYTES as i32)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("bench")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(RECORD_VALUE_BYTES as i32)])]);
    frame(1, FETCH_VERSION, &req)
}

fn handle_once(broker: &Broker, frame: &Bytes, out: &mut Vec<u8>) {
    out.clear();
    match broker.handle(frame.clone(), out).expect("handled") {
        Outcome::Responded => {}
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn allocations_per_request(broker: &Broker, frame: &Bytes) -> f64 {
    const REQUESTS: u64 = 10_000;
    let mut out = Vec::with_capacity(64 * 1024);
    handle_once(broker, frame, &mut out); // warm: lazy statics, first segment
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..REQUESTS {
        handle_once(broker, frame, &mut out);
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / REQUESTS as f64
}

fn handle(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path());
    let produce = produce_frame();
    let fetch = fetch_frame();
    eprintln!(
        "heap allocations per request: produce {:.1}, fetch {:.1}",
        allocations_per_request(&broker, &produce),
        allocations_per_request(&broker, &fetch)
    );
    let mut out = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("broker_handle");
    group.throughput(Throughput::Bytes(produce.len() as u64));
    group.bench_function("produce_1KiB", |b| {
        b.iter(|| handle_once(&broker, &produce, &mut out))
    });
    group.bench_function("fetch_one_1KiB_batch", |b| {
        b.iter(|| handle_once(&broker, &fetch, &mut out))
    });
    group.finish();
}

criterion_group!(benches, handle);
criterion_main!(benches);
