//! Storage micro benchmarks: the cost of appending a 1 KiB batch (the "log append"
//! row of the release table) and of creating a topic (the target is ≤ 5 ms; StrikeMQ
//! v0.1.5 takes over a second because it maps and populates 1 GiB per topic).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use strikemq::storage::{FlushPolicy, LogMapLayout, Storage, StorageConfig, TopicConfig};

#[path = "common/mod.rs"]
mod common;
use common::one_record_batch;

const RECORD_VALUE_BYTES: usize = 1024;

fn config(dir: &std::path::Path, segment_bytes: u64) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_path_buf(),
        segment_bytes,
        index_interval_bytes: 4096,
        flush: FlushPolicy::Never,
        segment_prefault_bytes: 0,
        segment_hugepages: false,
        segment_write: strikemq::storage::SegmentWrite::Mmap,
        max_batch_bytes: 8 << 20,
        log_map: LogMapLayout::Global,
    }
}

fn log_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small segments so rolls happen inside the measurement, as in a long run.
    let storage = Storage::open(config(dir.path(), 64 << 20)).expect("open");
    storage
        .create_topic("bench", 1, TopicConfig::default())
        .expect("topic");
    let partition = storage.partition("bench", 0).expect("partition");
    let batch = one_record_batch(RECORD_VALUE_BYTES);
    let mut group = c.benchmark_group("log_append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("1KiB_record_batch", |b| {
        b.iter(|| partition.append(&batch).expect("append"))
    });
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
