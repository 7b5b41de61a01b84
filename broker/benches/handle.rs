//! The broker's own share of a produce and a fetch (and of ApiVersions, Metadata,
//! Heartbeat and a one-partition OffsetCommit): `Broker::handle` on an encoded
//! request frame, in process (no sockets). Produce is measured three times: with the
//! baseline profile (pre-fault window off), with a 64 MiB pre-fault window in a tight
//! loop (which outruns the pre-fault thread), and with the same window timing only
//! requests that fit in the populated window (`_inside`: waits for the pre-fault
//! thread between timed stretches). Also counts heap allocations per request
//! with a counting global allocator (deterministic, unlike the timings;
//! `tests/allocations.rs` asserts they are zero).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiVersionsRequest, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, MetadataRequest, OffsetCommitRequest, OffsetCommitResponse, ResponseHeader,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
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

/// Appends the response to `frame` to a fresh buffer, resuming a parked request
/// (JoinGroup, SyncGroup) until it is answered.
fn respond(broker: &Broker, frame: Bytes) -> Vec<u8> {
    let mut out = Output::new(RecordsOut::Copy);
    match broker.handle(frame, &mut out).expect("handled") {
        Outcome::Responded => out.to_vec(),
        Outcome::Park(mut parked) => {
            let started = Instant::now();
            while !broker
                .resume(&mut parked, &mut out, false)
                .expect("resumed")
            {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "never answered"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            out.to_vec()
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// The body of a response (size prefix and response header skipped).
fn response_body<R: Decodable + HeaderVersion>(out: &[u8], version: i16) -> R {
    const SIZE_PREFIX_BYTES: usize = 4;
    let mut body = &out[SIZE_PREFIX_BYTES..];
    ResponseHeader::decode(&mut body, R::header_version(version)).expect("response header");
    R::decode(&mut body, version).expect("response")
}

const GROUP: &str = "bench-group";

/// A Heartbeat v3 frame of the only member of `GROUP`, joined and synced through
/// `Broker::handle` first (generation 1, session timeout 5 minutes: longer than the
/// bench).
fn heartbeat_frame(broker: &Broker) -> Bytes {
    const JOIN_VERSION: i16 = 3; // before KIP-394's member-id round trip
    const SYNC_VERSION: i16 = 2;
    const HEARTBEAT_VERSION: i16 = 3;
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_session_timeout_ms(300_000)
        .with_rebalance_timeout_ms(300_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"metadata"))]);
    let joined: JoinGroupResponse = response_body(
        &respond(broker, common::request_frame(11, JOIN_VERSION, &join)),
        JOIN_VERSION,
    );
    assert_eq!(joined.error_code, 0, "join");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(joined.member_id.clone())
            .with_assignment(Bytes::from_static(b"assignment"))]);
    let synced: SyncGroupResponse = response_body(
        &respond(broker, common::request_frame(14, SYNC_VERSION, &sync)),
        SYNC_VERSION,
    );
    assert_eq!(synced.error_code, 0, "sync");
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id);
    let frame = common::request_frame(12, HEARTBEAT_VERSION, &heartbeat);
    let answered: HeartbeatResponse =
        response_body(&respond(broker, frame.clone()), HEARTBEAT_VERSION);
    assert_eq!(answered.error_code, 0, "heartbeat");
    frame
}

/// An OffsetCommit v8 of one partition by a consumer outside group management
/// (generation -1: assign + commit), to the in-memory offset store.
fn offset_commit_frame(broker: &Broker) -> Bytes {
    const VERSION: i16 = 8;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("bench-commits")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(42)])]);
    let frame = common::request_frame(8, VERSION, &commit);
    let answered: OffsetCommitResponse = response_body(&respond(broker, frame.clone()), VERSION);
    assert_eq!(answered.topics[0].partitions[0].error_code, 0, "commit");
    frame
}

/// `segment_prefault_bytes` of the "window on" rows: one 64 MiB segment's worth.
const WINDOW_ON_BYTES: u64 = 64 << 20;

fn handle(c: &mut Criterion) {
    // The baseline profile (pre-fault window off: the appender faults each new page
    // of the mapped segment in itself) and the same with the window on.
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::broker_with_topic(dir.path(), TOPIC);
    let dir_window = tempfile::tempdir().expect("tempdir");
    let broker_window = common::broker_with_topic_window(dir_window.path(), TOPIC, WINDOW_ON_BYTES);
    let dir_inside = tempfile::tempdir().expect("tempdir");
    let (broker_inside, storage_inside) =
        common::broker_and_storage(dir_inside.path(), TOPIC, WINDOW_ON_BYTES);
    let produce = common::produce_frame(TOPIC, PRODUCE_VERSION, RECORD_VALUE_BYTES);
    let fetch = common::fetch_frame(TOPIC, FETCH_VERSION, RECORD_VALUE_BYTES as i32);
    // Measured here for issue 15 item 3 (allocation-free only where worth it).
    let api_versions = common::request_frame(18, 3, &ApiVersionsRequest::default());
    let metadata = common::request_frame(
        3,
        12,
        &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))])),
    );
    let heartbeat = heartbeat_frame(&broker);
    let offset_commit = offset_commit_frame(&broker);
    eprintln!(
        "heap allocations per request: produce {:.2}, fetch {:.2}, api_versions {:.2}, metadata_1_topic {:.2}, heartbeat {:.2}, offset_commit_1_partition {:.2}",
        allocations_per_request(&broker, &produce),
        allocations_per_request(&broker, &fetch),
        allocations_per_request(&broker, &api_versions),
        allocations_per_request(&broker, &metadata),
        allocations_per_request(&broker, &heartbeat),
        allocations_per_request(&broker, &offset_commit),
    );
    let mut out = output(RecordsOut::Copy);
    let mut spliced = output(RecordsOut::Splice);
    let mut group = c.benchmark_group("broker_handle");
    group.throughput(Throughput::Bytes(produce.len() as u64));
    group.bench_function("produce_1KiB_window_off", |b| {
        b.iter(|| handle_once(&broker, &produce, &mut out))
    });
    // A tight loop outruns the pre-fault thread (and writes more new page cache per
    // second than the VM provides): appends past the window go through pwritev.
    group.bench_function("produce_1KiB_window_64MiB", |b| {
        b.iter(|| handle_once(&broker_window, &produce, &mut out))
    });
    // What the window is for: appends into pages it already populated. Each timed
    // stretch is at most as many requests as fit in the populated window, after an
    // untimed wait for the pre-fault thread (`common::wait_for_window`).
    handle_once(&broker_inside, &produce, &mut out); // the first segment and its window
    let partition_inside = storage_inside.partition(TOPIC, 0).expect("partition");
    let batch_bytes = common::one_record_batch(RECORD_VALUE_BYTES).len() as u64;
    // Bounded: every request is 1 KiB of new page cache and disk, so this row runs
    // 1 s of warm-up and 2 s of timed requests (~3 M requests, ~3.5 GB in the
    // temporary data dir at ~0.7 µs each) instead of criterion's 3 s + 5 s.
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("produce_1KiB_window_64MiB_inside", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let fits =
                    common::wait_for_window(&partition_inside, WINDOW_ON_BYTES) / batch_bytes;
                let n = fits.min(left);
                let started = Instant::now();
                for _ in 0..n {
                    handle_once(&broker_inside, &produce, &mut out);
                }
                timed += started.elapsed();
                left -= n;
            }
            timed
        })
    });
    group.warm_up_time(Duration::from_secs(3));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("fetch_one_1KiB_batch", |b| {
        b.iter(|| handle_once(&broker, &fetch, &mut out))
    });
    // `fetch_zero_copy`: the record bytes are spliced in (a reference on the segment
    // mapping) instead of copied.
    group.bench_function("fetch_one_1KiB_batch_zero_copy", |b| {
        b.iter(|| handle_once(&broker, &fetch, &mut spliced))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("api_versions_v3", |b| {
        b.iter(|| handle_once(&broker, &api_versions, &mut out))
    });
    group.bench_function("metadata_v12_1_topic", |b| {
        b.iter(|| handle_once(&broker, &metadata, &mut out))
    });
    group.bench_function("heartbeat_v3", |b| {
        b.iter(|| handle_once(&broker, &heartbeat, &mut out))
    });
    group.bench_function("offset_commit_v8_1_partition", |b| {
        b.iter(|| handle_once(&broker, &offset_commit, &mut out))
    });
    group.finish();
}

criterion_group!(benches, handle);
criterion_main!(benches);
