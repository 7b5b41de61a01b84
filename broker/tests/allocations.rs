//! The hot path allocates nothing: a warmed-up 1-partition 1 KiB Produce and a
//! one-batch Fetch (copied or zero-copy) through `Broker::handle` make zero heap
//! allocations. Counted with a
//! counting global allocator on this thread only (deterministic, not timed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use strikemq::broker::{Broker, Outcome};
use strikemq::output::{Output, RecordsOut};

#[path = "../benches/common/mod.rs"]
mod common;

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

const TOPIC: &str = "hot";

/// Allocations of each of `COUNTED_REQUESTS` handlings of `frame` after a warm-up.
fn allocations_of(broker: &Broker, frame: &Bytes, records: RecordsOut) -> Vec<u64> {
    let mut out = Output::new(records);
    out.bytes_mut().reserve(64 * 1024);
    let once = |out: &mut Output| {
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
    let broker = common::broker_with_topic(dir.path(), TOPIC);
    // The versions librdkafka and the Java client send today, classic and flexible.
    for version in [7, 9, 11] {
        let counts = allocations_of(
            &broker,
            &common::produce_frame(TOPIC, version, RECORD_VALUE_BYTES),
            RecordsOut::Copy,
        );
        assert!(
            counts.iter().all(|&n| n == 0),
            "Produce v{version} allocations per request: {counts:?}"
        );
    }
    let topic_id = broker.storage.topic(TOPIC).expect("topic").id;
    // Names before v13, topic ids from v13 (librdkafka 2.x and the Java client).
    for version in [11, 12, 13, 16] {
        let frame = common::fetch_frame_by(TOPIC, topic_id, version, RECORD_VALUE_BYTES as i32);
        // Copied records, and spliced ones (`fetch_zero_copy`: a reference on the
        // mapping in the output's reusable splice list).
        for records in [RecordsOut::Copy, RecordsOut::Splice] {
            let counts = allocations_of(&broker, &frame, records);
            assert!(
                counts.iter().all(|&n| n == 0),
                "Fetch v{version} ({records:?}) allocations per request: {counts:?}"
            );
        }
        // librdkafka's default isolation.level is read_committed.
        let frame = read_committed_fetch_frame(topic_id, version);
        for records in [RecordsOut::Copy, RecordsOut::Splice] {
            let counts = allocations_of(&broker, &frame, records);
            assert!(
                counts.iter().all(|&n| n == 0),
                "read_committed Fetch v{version} ({records:?}) allocations per request: {counts:?}"
            );
        }
    }
}

/// `common::fetch_frame_by` with `isolation_level = 1` (READ_COMMITTED).
fn read_committed_fetch_frame(topic_id: uuid::Uuid, version: i16) -> Bytes {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let max_bytes = RECORD_VALUE_BYTES as i32;
    let by_id = version >= 13;
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(if by_id {
                ""
            } else {
                TOPIC
            })))
            .with_topic_id(if by_id { topic_id } else { uuid::Uuid::nil() })
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(max_bytes)])]);
    common::request_frame(1, version, &req)
}
