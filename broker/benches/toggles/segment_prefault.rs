//! `segment_prefault_bytes` × `segment_write`: 1 KiB appends across segment rolls.
//! Segments are 4 MiB so a roll happens every ~3800 appends inside the measurement;
//! with the window on, the pre-fault thread keeps the pages ahead faulted in and
//! prepares the next segment, off the measured path, as in the broker.

use criterion::{BenchmarkId, Criterion, Throughput};
use strikemq::storage::{SegmentWrite, Storage, StorageConfig, TopicConfig};

const SEGMENT_BYTES: u64 = 4 << 20;

pub fn bench(c: &mut Criterion) {
    let batch = crate::common::one_record_batch(1024);
    let mut group = c.benchmark_group("segment_prefault");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    let sweep = [SegmentWrite::Mmap, SegmentWrite::Pwrite]
        .into_iter()
        .flat_map(|w| [0u64, 2 << 20, SEGMENT_BYTES].map(|p| (w, p)));
    for (segment_write, prefault_bytes) in sweep {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(StorageConfig {
            segment_bytes: SEGMENT_BYTES,
            segment_prefault_bytes: prefault_bytes,
            segment_write,
            ..StorageConfig::defaults_in(dir.path())
        })
        .expect("open");
        storage
            .create_topic("bench", 1, TopicConfig::default())
            .expect("topic");
        let partition = storage.partition("bench", 0).expect("partition");
        let id = BenchmarkId::new(
            "append_1KiB_4MiB_segments",
            format!("{segment_write:?}_prefault_{prefault_bytes}").to_lowercase(),
        );
        group.bench_function(id, |b| b.iter(|| partition.append(&batch).expect("append")));
    }
    group.finish();
}
