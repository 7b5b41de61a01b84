//! `segment_prefault_bytes`: 1 KiB appends across segment rolls. Segments are 4 MiB
//! so a roll happens every ~3800 appends inside the measurement; the pre-fault (of
//! the head of each new segment) is paid at the roll, in the measured path, as in the
//! broker.

use criterion::{BenchmarkId, Criterion, Throughput};
use strikemq::storage::{Storage, StorageConfig, TopicConfig};

const SEGMENT_BYTES: u64 = 4 << 20;

pub fn bench(c: &mut Criterion) {
    let batch = crate::common::one_record_batch(1024);
    let mut group = c.benchmark_group("segment_prefault");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    for prefault_bytes in [0u64, 2 << 20, SEGMENT_BYTES] {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(StorageConfig {
            segment_bytes: SEGMENT_BYTES,
            segment_prefault_bytes: prefault_bytes,
            ..StorageConfig::defaults_in(dir.path())
        })
        .expect("open");
        storage
            .create_topic("bench", 1, TopicConfig::default())
            .expect("topic");
        let partition = storage.partition("bench", 0).expect("partition");
        let id = BenchmarkId::new(
            "append_1KiB_4MiB_segments",
            format!("prefault_{prefault_bytes}"),
        );
        group.bench_function(id, |b| b.iter(|| partition.append(&batch).expect("append")));
    }
    group.finish();
}
