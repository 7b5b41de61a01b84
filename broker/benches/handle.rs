//! The broker's own share of a produce and a fetch: `Broker::handle` on an encoded
//! request frame, in process (no sockets). Also counts heap allocations per request
//! with a counting global allocator (deterministic, unlike the timings;
//! `tests/allocations.rs` asserts they are zero).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strikemq::broker::{Broker, Outcome};
use strikemq::output::{Output, RecordsOut};

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
const TOPIC: &str = "bench";

fn handle_once(broker: &Broker, frame: &Bytes, out: &mut Output) {
    out.clear();
    match broker.handle(frame.clone(), out).expect("handled") {
        Outcome::Responded => {}
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// A reused output buffer, as a connection has.
fn output(records: RecordsOut) -> Output {
    let mut out = Output::new(records);
    out.bytes_mut().reserve(64 * 1024);
    out
}

fn allocations_per_request(broker: &Broker, frame: &Bytes) -> f64 {
    const REQUESTS: u64 = 10_000;
    let mut out = output(RecordsOut::Copy);
    handle_once(broker, frame, &mut out); // warm: lazy statics, first segment
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..REQUESTS {
        handle_once(broker, frame, &mut out);
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / REQUESTS as f64
}

fn handle(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::broker_with_topic(dir.path(), TOPIC);
    let produce = common::produce_frame(TOPIC, PRODUCE_VERSION, RECORD_VALUE_BYTES);
    let fetch = common::fetch_frame(TOPIC, FETCH_VERSION, RECORD_VALUE_BYTES as i32);
    // Not yet allocation-free (issue 15 item 3: measured here first).
    let api_versions = common::request_frame(18, 3, &ApiVersionsRequest::default());
    let metadata = common::request_frame(
        3,
        12,
        &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))])),
    );
    eprintln!(
        "heap allocations per request: produce {:.2}, fetch {:.2}, api_versions {:.2}, metadata_1_topic {:.2}",
        allocations_per_request(&broker, &produce),
        allocations_per_request(&broker, &fetch),
        allocations_per_request(&broker, &api_versions),
        allocations_per_request(&broker, &metadata),
    );
    let mut out = output(RecordsOut::Copy);
    let mut spliced = output(RecordsOut::Splice);
    let mut group = c.benchmark_group("broker_handle");
    group.throughput(Throughput::Bytes(produce.len() as u64));
    group.bench_function("produce_1KiB", |b| {
        b.iter(|| handle_once(&broker, &produce, &mut out))
    });
    group.bench_function("fetch_one_1KiB_batch", |b| {
        b.iter(|| handle_once(&broker, &fetch, &mut out))
    });
    // `fetch_zero_copy`: the record bytes are spliced in (a reference on the segment
    // mapping) instead of copied.
    group.bench_function("fetch_one_1KiB_batch_zero_copy", |b| {
        b.iter(|| handle_once(&broker, &fetch, &mut spliced))
    });
    group.bench_function("api_versions_v3", |b| {
        b.iter(|| handle_once(&broker, &api_versions, &mut out))
    });
    group.bench_function("metadata_v12_1_topic", |b| {
        b.iter(|| handle_once(&broker, &metadata, &mut out))
    });
    group.finish();
}

criterion_group!(benches, handle);
criterion_main!(benches);
