//! `log_map = global | sharded`: the partition lookup every produce and fetch does
//! (`Storage::partition`), from 1 and 2 threads, over 1, 10 and 1000 topics of one
//! partition each (a topic's shard is chosen by its name).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use strikemq::storage::{FlushPolicy, LogMapLayout, Storage, StorageConfig, TopicConfig};

const LOOKUPS_PER_THREAD: u64 = 1000;

fn storage(dir: &std::path::Path, layout: LogMapLayout, topics: usize) -> Storage {
    let storage = Storage::open(StorageConfig {
        data_dir: dir.to_path_buf(),
        segment_bytes: 64 * 1024,
        index_interval_bytes: 4096,
        flush: FlushPolicy::Never,
        segment_prefault_bytes: 0,
        segment_hugepages: false,
        segment_write: strikemq::storage::SegmentWrite::Mmap,
        max_batch_bytes: 1 << 20,
        log_map: layout,
    })
    .expect("open storage");
    for t in 0..topics {
        storage
            .create_topic(&format!("topic-{t}"), 1, TopicConfig::default())
            .expect("create topic");
    }
    storage
}

/// `threads` threads each look up `LOOKUPS_PER_THREAD` partitions, round-robin over
/// the topics (starting at different ones); returns the wall time of the slowest.
fn lookups(storage: &Storage, names: &[String], threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let mut i = t * names.len() / threads.max(1);
                    for _ in 0..iters * LOOKUPS_PER_THREAD {
                        i = (i + 1) % names.len();
                        let p = storage.partition(&names[i], 0);
                        std::hint::black_box(p);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("lookup thread"))
            .max()
            .unwrap_or_default()
    })
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_map");
    group.sample_size(20);
    for topics in [1usize, 10, 1000] {
        let names: Vec<String> = (0..topics).map(|t| format!("topic-{t}")).collect();
        for (label, layout) in [
            ("global", LogMapLayout::Global),
            ("sharded64", LogMapLayout::Sharded { shards: 64 }),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = storage(dir.path(), layout, topics);
            for threads in [1usize, 2] {
                group.throughput(Throughput::Elements(LOOKUPS_PER_THREAD * threads as u64));
                let id = BenchmarkId::new(format!("{label}/{threads}threads"), topics);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| lookups(&storage, &names, threads, iters))
                });
            }
        }
    }
    group.finish();
}
