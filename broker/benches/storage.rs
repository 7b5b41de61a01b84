//! Storage micro benchmarks: the cost of appending a 1 KiB batch (the "log append"
//! row of the release table, measured with the pre-fault window on; here beside the
//! window off and the pwrite path) and of creating a topic (the target is ≤ 5 ms; StrikeMQ
//! v0.1.5 takes over a second because it maps and populates 1 GiB per topic).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use strikemq::storage::{SegmentWrite, Storage, StorageConfig, TopicConfig};

#[path = "common/mod.rs"]
mod common;
use common::one_record_batch;

const RECORD_VALUE_BYTES: usize = 1024;

fn config(dir: &std::path::Path, segment_bytes: u64) -> StorageConfig {
    config_with(dir, segment_bytes, SegmentWrite::Mmap, 0)
}

/// `segment_prefault_bytes` of the "window on" rows: one 64 MiB segment's worth, so
/// the thread also prepares the next segment before each roll.
const WINDOW_BYTES: u64 = 64 << 20;

fn config_with(
    dir: &std::path::Path,
    segment_bytes: u64,
    segment_write: SegmentWrite,
    segment_prefault_bytes: u64,
) -> StorageConfig {
    StorageConfig {
        segment_bytes,
        segment_prefault_bytes,
        segment_write,
        ..StorageConfig::defaults_in(dir)
    }
}

/// 1 KiB appends with the pre-fault window on (the release table's row) and off, for
/// each write path: the window's effect is the difference.
fn log_append(c: &mut Criterion) {
    let batch = one_record_batch(RECORD_VALUE_BYTES);
    let mut group = c.benchmark_group("log_append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    for (segment_write, window_bytes) in [
        (SegmentWrite::Mmap, WINDOW_BYTES),
        (SegmentWrite::Mmap, 0),
        (SegmentWrite::Pwrite, WINDOW_BYTES),
        (SegmentWrite::Pwrite, 0),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        // Small segments so rolls happen inside the measurement, as in a long run.
        let cfg = config_with(dir.path(), 64 << 20, segment_write, window_bytes);
        let storage = Storage::open(cfg).expect("open");
        storage
            .create_topic("bench", 1, TopicConfig::default())
            .expect("topic");
        let partition = storage.partition("bench", 0).expect("partition");
        let id =
            format!("1KiB_record_batch/{segment_write:?}/window_{window_bytes}").to_lowercase();
        group.bench_function(id, |b| b.iter(|| partition.append(&batch).expect("append")));
    }
    group.finish();
}

fn topic_create(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(config(dir.path(), 1 << 30)).expect("open");
    let mut n = 0u64;
    c.bench_function("topic_create_1_partition", |b| {
        b.iter_batched(
            || {
                n += 1;
                format!("t{n}")
            },
            |name| {
                storage
                    .create_topic(&name, 1, TopicConfig::default())
                    .expect("create")
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, log_append, topic_create);
criterion_main!(benches);
