//! Storage scenario tests on temp dirs. Batches are built with kafka_protocol's
//! encoder so the bytes are what a real client sends.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::protocol::batch::{Batches, RecordBatch};

const NO_PRODUCER: Option<(i64, i16, i32)> = None;

/// The settings every scenario runs under, once per write path and with the
/// pre-fault window off and on (a window larger than the test segments, so the
/// next segment is prepared and adopted at nearly every roll).
fn config_for(dir: &Path, segment_write: SegmentWrite, window_bytes: u64) -> StorageConfig {
    StorageConfig {
        segment_prefault_bytes: window_bytes,
        segment_write,
        segment_prefault_outrun: test_outrun(),
        segment_bytes: 1 << 20,
        max_batch_bytes: 1 << 20,
        ..StorageConfig::defaults_in(dir)
    }
}

/// One v2 batch of `count` records with `value_bytes`-byte values; timestamps
/// `timestamp_ms + i`; optional idempotent producer (id, epoch, base sequence).
fn batch(
    count: i64,
    value_bytes: usize,
    producer: Option<(i64, i16, i32)>,
    timestamp_ms: i64,
) -> Vec<u8> {
    let (producer_id, producer_epoch, base_sequence) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // The encoder starts a new batch unless offset - sequence stays constant;
            // for a non-idempotent batch only base_sequence (-1) is written.
            sequence: base_sequence + i as i32,
            timestamp: timestamp_ms + i,
            key: None,
            value: Some(Bytes::from(vec![b'x'; value_bytes])),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    assert_eq!(
        Batches::new(&buf).count(),
        1,
        "helper must build exactly one batch"
    );
    buf.to_vec()
}

fn plain(count: i64) -> Vec<u8> {
    batch(count, 10, NO_PRODUCER, 1_000)
}

/// Record offsets in read bytes, decoded by the crate (which also checks the CRC).
fn record_offsets(bytes: &Bytes) -> Vec<i64> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .iter()
        .flat_map(|set| set.records.iter().map(|r| r.offset))
        .collect()
}

/// Reads everything from `offset` on, batch run by batch run.
fn read_all_offsets(p: &Partition, mut offset: i64) -> Vec<i64> {
    let mut out = Vec::new();
    loop {
        let r = p.read(offset, 1 << 20).unwrap();
        if r.records.is_empty() {
            return out;
        }
        let offsets = record_offsets(&r.records);
        offset = offsets.last().unwrap() + 1;
        out.extend(offsets);
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Opens storage with topic "t" (created on first open) and returns partition 0.
fn open_with_topic(_dir: &Path, cfg: StorageConfig) -> (Storage, std::sync::Arc<Partition>) {
    let storage = Storage::open(cfg).unwrap();
    if storage.topic("t").is_none() {
        storage
            .create_topic("t", 1, TopicConfig::default())
            .unwrap();
    }
    let p = storage.partition("t", 0).unwrap();
    (storage, p)
}
/// Every scenario below, instantiated once per configuration (the modules at the end).
macro_rules! scenarios {
    () => {
        #[test]
        fn append_read_round_trip_rewrites_offsets_and_keeps_crc() {
            let dir = tempfile::tempdir().unwrap();
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            let a = p.append(&plain(3)).unwrap();
            assert_eq!((a.base_offset, a.last_offset, a.duplicate), (0, 2, false));
            let b = p.append(&plain(2)).unwrap();
            assert_eq!((b.base_offset, b.last_offset), (3, 4));
            assert_eq!(
                p.offsets(),
                Offsets {
                    log_start_offset: 0,
                    log_end_offset: 5
                }
            );

            let r = p.read(0, 1 << 20).unwrap();
            let batches: Vec<RecordBatch<'_>> = Batches::new(&r.records).map(|b| b.unwrap()).collect();
            assert_eq!(batches.len(), 2);
            assert_eq!(batches[1].base_offset(), 3);
            assert!(batches.iter().all(|b| b.verify_crc().is_ok()));
            assert_eq!(record_offsets(&r.records), vec![0, 1, 2, 3, 4]);
            assert_eq!(p.read(5, 100).unwrap().records.len(), 0);
            assert_eq!(p.read(6, 100).unwrap_err(), ReadError::OffsetOutOfRange);
            assert_eq!(p.read(-1, 100).unwrap_err(), ReadError::OffsetOutOfRange);
        }

        #[test]
        fn multiple_batches_in_one_append_get_consecutive_offsets() {
            let dir = tempfile::tempdir().unwrap();
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            let mut records = plain(2);
            records.extend(plain(3));
            let a = p.append(&records).unwrap();
            assert_eq!((a.base_offset, a.last_offset), (0, 4));
            assert_eq!(read_all_offsets(&p, 0), vec![0, 1, 2, 3, 4]);
        }

        #[test]
        fn read_from_offset_inside_batch_returns_that_batch() {
            let dir = tempfile::tempdir().unwrap();
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            p.append(&plain(4)).unwrap();
            p.append(&plain(4)).unwrap();
            let r = p.read(6, 1 << 20).unwrap();
            assert_eq!(record_offsets(&r.records), vec![4, 5, 6, 7]);
        }

        #[test]
        fn read_honours_max_bytes_but_returns_at_least_one_batch() {
            let dir = tempfile::tempdir().unwrap();
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            let one = batch(1, 500, NO_PRODUCER, 0);
            for _ in 0..4 {
                p.append(&one).unwrap();
            }
            // Smaller than one batch: still one whole batch.
            assert_eq!(record_offsets(&p.read(0, 10).unwrap().records), vec![0]);
            // Room for two and a half batches: exactly two.
            let r = p.read(1, one.len() * 2 + one.len() / 2).unwrap();
            assert_eq!(r.records.len(), one.len() * 2);
            assert_eq!(record_offsets(&r.records), vec![1, 2]);
        }

        #[test]
        fn segments_roll_and_reads_cross_segments() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(dir.path());
            cfg.segment_bytes = 8192;
            cfg.index_interval_bytes = 1500;
            let (_s, p) = open_with_topic(dir.path(), cfg);
            for i in 0..60 {
                let a = p.append(&batch(2, 400, NO_PRODUCER, i)).unwrap();
                assert_eq!(a.base_offset, i * 2);
            }
            let files = segment_files(&dir.path().join("t-0"));
            assert!(files.len() > 5, "{} segments", files.len());
            // Sealed segments are cut to their used length.
            for f in &files[..files.len() - 1] {
                assert!(fs::metadata(f).unwrap().len() <= 8192);
            }
            assert_eq!(read_all_offsets(&p, 0), (0..120).collect::<Vec<_>>());
            for offset in [0, 1, 37, 64, 119] {
                let r = p.read(offset, 1).unwrap();
                let offsets = record_offsets(&r.records);
                assert!(offsets.contains(&offset), "offset {offset}: {offsets:?}");
            }
            // The sum of committed bytes is what size_bytes reports.
            let total: u64 = files
                .iter()
                .take(files.len() - 1)
                .map(|f| fs::metadata(f).unwrap().len())
                .sum();
            assert!(p.size_bytes() > total);
        }

        #[test]
        fn batch_larger_than_segment_gets_its_own_segment() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(dir.path());
            cfg.segment_bytes = 4096;
            let (_s, p) = open_with_topic(dir.path(), cfg);
            p.append(&plain(1)).unwrap();
            let big = batch(1, 20_000, NO_PRODUCER, 0);
            assert_eq!(p.append(&big).unwrap().base_offset, 1);
            // Also as the very first append of a fresh (lazily created) segment.
            p.append(&batch(1, 30_000, NO_PRODUCER, 0)).unwrap();
            p.append(&plain(1)).unwrap();
            assert_eq!(read_all_offsets(&p, 0), vec![0, 1, 2, 3]);
        }

        #[test]
        fn restart_recovers_all_data_and_continues_offsets() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(dir.path());
            cfg.segment_bytes = 8192;
            {
                let (_s, p) = open_with_topic(dir.path(), cfg.clone());
                for i in 0..30 {
                    p.append(&batch(3, 300, NO_PRODUCER, 10 * i)).unwrap();
                }
            }
            let (_s, p) = open_with_topic(dir.path(), cfg);
            assert_eq!(
                p.offsets(),
                Offsets {
                    log_start_offset: 0,
                    log_end_offset: 90
                }
            );
            assert_eq!(p.append(&plain(1)).unwrap().base_offset, 90);
            assert_eq!(read_all_offsets(&p, 0), (0..91).collect::<Vec<_>>());
            assert_eq!(
                record_offsets(&p.read(44, 1).unwrap().records),
                vec![42, 43, 44]
            );
        }

        #[test]
        fn a_prepared_next_segment_left_by_a_crash_is_removed_and_nothing_else_changes() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(dir.path());
            cfg.segment_bytes = 8192;
            {
                let (_s, p) = open_with_topic(dir.path(), cfg.clone());
                for i in 0..10 {
                    p.append(&batch(3, 300, NO_PRODUCER, 10 * i)).unwrap();
                }
            }
            // What a kill -9 leaves when the pre-fault thread had prepared a segment.
            let prepared = dir.path().join("t-0").join(segment::PREPARED_SEGMENT_FILE);
            fs::write(&prepared, vec![0x5a; 8192]).unwrap();
            let (_s, p) = open_with_topic(dir.path(), cfg);
            // The leftover is gone. With the window on (larger than these segments),
            // the pre-fault thread may already have prepared a fresh, zeroed next
            // segment under the same name, so look for the leftover's bytes.
            let leftover = fs::read(&prepared).is_ok_and(|b| b.contains(&0x5a));
            assert!(!leftover, "the crash's prepared segment survived start-up");
            assert_eq!(read_all_offsets(&p, 0), (0..30).collect::<Vec<_>>());
            assert_eq!(p.append(&plain(1)).unwrap().base_offset, 30);
        }

        /// The last segment file of partition t-0.
        fn active_segment(dir: &Path) -> PathBuf {
            segment_files(&dir.join("t-0")).pop().unwrap()
        }

        #[test]
        fn recover_after_torn_tail_truncates_and_continues_without_gap() {
            let dir = tempfile::tempdir().unwrap();
            let one = plain(2);
            {
                let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
                for _ in 0..3 {
                    p.append(&one).unwrap();
                }
            }
            // Cut the third batch in half, as a crash mid-write would.
            let seg = active_segment(dir.path());
            let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
            f.set_len((one.len() * 2 + one.len() / 2) as u64).unwrap();
            drop(f);

            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            assert_eq!(p.offsets().log_end_offset, 4);
            assert_eq!(p.append(&one).unwrap().base_offset, 4);
            assert_eq!(read_all_offsets(&p, 0), vec![0, 1, 2, 3, 4, 5]);
        }

        #[test]
        fn garbage_appended_after_last_batch_is_cut() {
            let dir = tempfile::tempdir().unwrap();
            let one = plain(1);
            {
                let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
                p.append(&one).unwrap();
                p.append(&one).unwrap();
            }
            let seg = active_segment(dir.path());
            let mut bytes = fs::read(&seg).unwrap();
            let valid = one.len() * 2;
            for (i, b) in bytes[valid..valid + 100].iter_mut().enumerate() {
                *b = 0x5a ^ i as u8;
            }
            fs::write(&seg, &bytes).unwrap();

            {
                let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
                assert_eq!(p.offsets().log_end_offset, 2);
                // The garbage is physically gone: the bytes after the data read as zeros.
                let after = fs::read(&seg).unwrap();
                assert!(after[valid..valid + 100].iter().all(|&b| b == 0));
                p.append(&plain(3)).unwrap();
            }
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            assert_eq!(read_all_offsets(&p, 0), vec![0, 1, 2, 3, 4]);
        }

        #[test]
        fn bad_crc_old_magic_and_too_large_are_refused_and_nothing_is_appended() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(dir.path());
            cfg.max_batch_bytes = 2000;
            let (_s, p) = open_with_topic(dir.path(), cfg);

            let mut bad_crc = plain(1);
            let last = bad_crc.len() - 1;
            bad_crc[last] ^= 1;
            assert!(matches!(p.append(&bad_crc), Err(AppendError::Corrupt(_))));

            let mut magic1 = plain(1);
            magic1[16] = 1;
            assert_eq!(p.append(&magic1), Err(AppendError::UnsupportedMagic(1)));

            let big = batch(1, 3000, NO_PRODUCER, 0);
            assert_eq!(p.append(&big), Err(AppendError::TooLarge(big.len())));

            let good = plain(1);
            assert!(matches!(
                p.append(&good[..good.len() - 3]),
                Err(AppendError::Corrupt(_))
            ));
            assert!(matches!(p.append(&[]), Err(AppendError::Corrupt(_))));

            // A good batch followed by a bad one: all-or-nothing.
            let mut mixed = plain(1);
            mixed.extend(&bad_crc);
            assert!(matches!(p.append(&mixed), Err(AppendError::Corrupt(_))));

            assert_eq!(
                p.offsets(),
                Offsets {
                    log_start_offset: 0,
                    log_end_offset: 0
                }
            );
            assert_eq!(p.size_bytes(), 0);
            assert_eq!(p.append(&good).unwrap().base_offset, 0);
        }

        #[test]
        fn idempotent_duplicate_gap_and_old_epoch_and_state_survives_restart() {
            let dir = tempfile::tempdir().unwrap();
            let pid = 4242;
            {
                let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
                p.append(&plain(1)).unwrap(); // offset 0, not idempotent
                let first = p.append(&batch(3, 10, Some((pid, 1, 0)), 0)).unwrap();
                assert_eq!((first.base_offset, first.last_offset), (1, 3));
                let dup = p.append(&batch(3, 10, Some((pid, 1, 0)), 0)).unwrap();
                assert_eq!(
                    dup,
                    Appended {
                        base_offset: 1,
                        last_offset: 3,
                        log_start_offset: 0,
                        duplicate: true,
                        log_append_time_ms: -1,
                    }
                );
                assert_eq!(p.offsets().log_end_offset, 4, "a duplicate writes nothing");
                assert_eq!(
                    p.append(&batch(1, 10, Some((pid, 1, 5)), 0)),
                    Err(AppendError::OutOfOrderSequence)
                );
                assert_eq!(
                    p.append(&batch(1, 10, Some((pid, 0, 3)), 0)),
                    Err(AppendError::InvalidProducerEpoch)
                );
                assert_eq!(
                    p.append(&batch(2, 10, Some((pid, 1, 3)), 0))
                        .unwrap()
                        .base_offset,
                    4
                );
            }
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            let dup = p.append(&batch(2, 10, Some((pid, 1, 3)), 0)).unwrap();
            assert_eq!(
                (dup.base_offset, dup.last_offset, dup.duplicate),
                (4, 5, true)
            );
            assert_eq!(
                p.append(&batch(1, 10, Some((pid, 1, 9)), 0)),
                Err(AppendError::OutOfOrderSequence)
            );
            assert_eq!(
                p.append(&batch(1, 10, Some((pid, 0, 5)), 0)),
                Err(AppendError::InvalidProducerEpoch)
            );
            assert_eq!(
                p.append(&batch(1, 10, Some((pid, 1, 5)), 0))
                    .unwrap()
                    .base_offset,
                6
            );
            // A new epoch must restart at sequence 0.
            assert_eq!(
                p.append(&batch(1, 10, Some((pid, 2, 6)), 0)),
                Err(AppendError::OutOfOrderSequence)
            );
            assert_eq!(
                p.append(&batch(1, 10, Some((pid, 2, 0)), 0))
                    .unwrap()
                    .base_offset,
                7
            );
        }

        #[test]
        fn topics_create_delete_and_grow_persist_across_restart_with_same_id() {
            let dir = tempfile::tempdir().unwrap();
            let mut config_map = TopicConfig::default();
            config_map
                .configs
                .insert("retention.ms".into(), "1000".into());
            let (a, b) = {
                let s = Storage::open(config(dir.path())).unwrap();
                let a = s.create_topic("alpha", 2, config_map.clone()).unwrap();
                let b = s
                    .create_topic("beta.x_y-z", 1, TopicConfig::default())
                    .unwrap();
                s.create_topic("gone", 3, TopicConfig::default()).unwrap();
                assert!(matches!(
                    s.create_topic("alpha", 1, TopicConfig::default()),
                    Err(StorageError::TopicExists(_))
                ));
                s.partition("alpha", 1).unwrap().append(&plain(2)).unwrap();
                assert!(matches!(
                    s.create_partitions("alpha", 2),
                    Err(StorageError::InvalidPartitions(2))
                ));
                let grown = s.create_partitions("alpha", 4).unwrap();
                assert_eq!((grown.partitions, grown.id), (4, a.id));
                s.partition("alpha", 3).unwrap().append(&plain(1)).unwrap();
                s.delete_topic("gone").unwrap();
                assert!(matches!(
                    s.delete_topic("gone"),
                    Err(StorageError::UnknownTopicOrPartition)
                ));
                assert!(s.partition("gone", 0).is_none());
                (a, b)
            };
            assert!(!dir.path().join("gone-0").exists());

            let s = Storage::open(config(dir.path())).unwrap();
            let names: Vec<String> = s.topics().into_iter().map(|t| t.name).collect();
            assert_eq!(names, vec!["alpha", "beta.x_y-z"]);
            let alpha = s.topic("alpha").unwrap();
            assert_eq!(
                (alpha.id, alpha.partitions, &alpha.config),
                (a.id, 4, &config_map)
            );
            assert_eq!(s.topic_by_id(b.id).unwrap().name, "beta.x_y-z");
            assert_eq!(s.partition("alpha", 1).unwrap().offsets().log_end_offset, 2);
            assert_eq!(s.partition("alpha", 3).unwrap().offsets().log_end_offset, 1);
            assert!(s.partition("alpha", 4).is_none());
            assert!(s.partition("alpha", -1).is_none());
            // The name can be reused, with a new id.
            let again = s.create_topic("gone", 1, TopicConfig::default()).unwrap();
            assert_eq!(s.partition("gone", 0).unwrap().offsets().log_end_offset, 0);
            assert_ne!(again.id, a.id);
        }

        #[test]
        fn invalid_topic_names_and_partition_counts_are_refused_and_nothing_is_created() {
            let dir = tempfile::tempdir().unwrap();
            let s = Storage::open(config(dir.path())).unwrap();
            let long = "a".repeat(250);
            for name in ["a$#!", "..", ".", "../x", "", "a/b", long.as_str()] {
                let r = s.create_topic(name, 1, TopicConfig::default());
                assert!(
                    matches!(r, Err(StorageError::InvalidTopic(..))),
                    "{name:?}: {r:?}"
                );
            }
            for partitions in [0, -1, MAX_PARTITIONS_PER_TOPIC + 1] {
                let r = s.create_topic("ok", partitions, TopicConfig::default());
                assert!(
                    matches!(r, Err(StorageError::InvalidPartitions(p)) if p == partitions),
                    "{r:?}"
                );
            }
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
            assert!(!dir.path().parent().unwrap().join("x-0").exists());
            assert!(s.topics().is_empty());
        }

        #[test]
        fn creating_a_topic_allocates_no_segment_until_the_first_append() {
            let dir = tempfile::tempdir().unwrap();
            let s = Storage::open(config(dir.path())).unwrap();
            s.create_topic("many", 200, TopicConfig::default()).unwrap();
            assert!(segment_files(&dir.path().join("many-199")).is_empty());
            let p = s.partition("many", 199).unwrap();
            p.append(&plain(1)).unwrap();
            let files = segment_files(&dir.path().join("many-199"));
            assert_eq!(files.len(), 1);
            // The active segment is sized to segment_bytes but sparse, except for
            // what the pre-fault window reserves ahead.
            use std::os::unix::fs::MetadataExt;
            let meta = fs::metadata(&files[0]).unwrap();
            assert_eq!(meta.len(), 1 << 20);
            let window_bytes = config(dir.path()).segment_prefault_bytes;
            assert!(
                meta.blocks() * 512 < (256 << 10) + window_bytes,
                "{} blocks",
                meta.blocks()
            );
        }

        #[test]
        fn read_bytes_outlive_topic_delete() {
            let dir = tempfile::tempdir().unwrap();
            let s = Storage::open(config(dir.path())).unwrap();
            s.create_topic("t", 1, TopicConfig::default()).unwrap();
            let p = s.partition("t", 0).unwrap();
            p.append(&plain(3)).unwrap();
            let r = p.read(0, 1 << 20).unwrap();
            s.delete_topic("t").unwrap();
            assert!(!dir.path().join("t-0").exists());
            assert_eq!(record_offsets(&r.records), vec![0, 1, 2]);
            // The old Arc still reads; appends are refused.
            assert_eq!(
                record_offsets(&p.read(0, 1 << 20).unwrap().records),
                vec![0, 1, 2]
            );
            assert!(matches!(p.append(&plain(1)), Err(AppendError::Io(_))));
            drop(p);
            assert_eq!(record_offsets(&r.records), vec![0, 1, 2]);
        }

        #[test]
        fn offset_for_timestamp_and_max_timestamp() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(dir.path());
            cfg.segment_bytes = 4096;
            let (_s, p) = open_with_topic(dir.path(), cfg.clone());
            assert_eq!(p.offset_for_timestamp(0), None);
            assert_eq!(p.max_timestamp(), None);
            // Batches of 2 records, timestamps 100,101 / 200,201 / ... / 1000,1001.
            for i in 1..=10 {
                p.append(&batch(2, 500, NO_PRODUCER, i * 100)).unwrap();
            }
            assert_eq!(p.offset_for_timestamp(0), Some((0, 100)));
            assert_eq!(p.offset_for_timestamp(300), Some((4, 300)));
            // Inside a batch: the first record of the batch that qualifies (Kafka's answer).
            assert_eq!(p.offset_for_timestamp(501), Some((9, 501)));
            assert_eq!(p.offset_for_timestamp(502), Some((10, 600)));
            assert_eq!(p.offset_for_timestamp(1002), None);
            assert_eq!(p.max_timestamp(), Some((19, 1001)));
            // An older timestamp later does not move the max.
            p.append(&batch(1, 10, NO_PRODUCER, 5)).unwrap();
            assert_eq!(p.max_timestamp(), Some((19, 1001)));
            drop((_s, p));
            let (_s, p) = open_with_topic(dir.path(), cfg);
            assert_eq!(p.max_timestamp(), Some((19, 1001)));
            assert_eq!(p.offset_for_timestamp(950), Some((18, 1000)));
            assert_eq!(p.offset_for_timestamp(1001), Some((19, 1001)));
        }

        #[test]
        fn flush_always_and_interval_keep_data_readable_after_restart() {
            for flush in [
                FlushPolicy::Always,
                FlushPolicy::IntervalMs(0),
                FlushPolicy::Never,
            ] {
                let dir = tempfile::tempdir().unwrap();
                let mut cfg = config(dir.path());
                cfg.flush = flush;
                cfg.segment_bytes = 4096;
                cfg.segment_prefault_bytes = 8192;
                {
                    let (s, p) = open_with_topic(dir.path(), cfg.clone());
                    for _ in 0..10 {
                        p.append(&batch(1, 700, NO_PRODUCER, 0)).unwrap();
                    }
                    s.flush_all().unwrap();
                }
                let (_s, p) = open_with_topic(dir.path(), cfg);
                assert_eq!(
                    read_all_offsets(&p, 0),
                    (0..10).collect::<Vec<_>>(),
                    "{flush:?}"
                );
            }
        }

        #[test]
        fn empty_partition_reads_are_empty_and_offsets_zero() {
            let dir = tempfile::tempdir().unwrap();
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            assert_eq!(
                p.offsets(),
                Offsets {
                    log_start_offset: 0,
                    log_end_offset: 0
                }
            );
            assert!(p.read(0, 100).unwrap().records.is_empty());
            assert_eq!(p.read(1, 100).unwrap_err(), ReadError::OffsetOutOfRange);
            p.flush().unwrap();
        }

        #[test]
        fn concurrent_appenders_and_readers_see_only_whole_valid_batches() {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(dir.path());
            cfg.segment_bytes = 16 << 10;
            cfg.segment_hugepages = true;
            let (_s, p) = open_with_topic(dir.path(), cfg);
            const APPENDERS: usize = 3;
            const APPENDS_EACH: usize = 300;
            std::thread::scope(|scope| {
                let mut handles = Vec::new();
                for _ in 0..APPENDERS {
                    let p = &p;
                    handles.push(scope.spawn(move || {
                        (0..APPENDS_EACH)
                            .map(|_| {
                                p.append(&batch(2, 200, NO_PRODUCER, 0))
                                    .unwrap()
                                    .base_offset
                            })
                            .collect::<Vec<_>>()
                    }));
                }
                let reader = scope.spawn(|| {
                    let mut offset = 0;
                    while offset < (APPENDERS * APPENDS_EACH * 2) as i64 {
                        let r = p.read(offset, 4096).unwrap();
                        if r.records.is_empty() {
                            std::thread::yield_now();
                            continue;
                        }
                        // The crate decoder checks every CRC: a torn read would fail here.
                        let offsets = record_offsets(&r.records);
                        assert_eq!(offsets[0], offset);
                        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1));
                        offset = offsets.last().unwrap() + 1;
                    }
                });
                let mut bases: Vec<i64> = handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect();
                reader.join().unwrap();
                bases.sort();
                let expected: Vec<i64> = (0..(APPENDERS * APPENDS_EACH) as i64)
                    .map(|i| i * 2)
                    .collect();
                assert_eq!(bases, expected);
            });
        }

        #[test]
        fn delete_and_lookup_refuse_invalid_names() {
            let dir = tempfile::tempdir().unwrap();
            let s = Storage::open(config(dir.path())).unwrap();
            assert!(matches!(
                s.delete_topic("../x"),
                Err(StorageError::InvalidTopic(..))
            ));
            assert!(matches!(
                s.create_partitions("..", 3),
                Err(StorageError::InvalidTopic(..))
            ));
            assert!(s.partition("../x", 0).is_none());
        }

        /// Regression (found by the client compatibility matrix with sarama 1.22, which sends
        /// maxTimestamp -1): an impossible batch maxTimestamp is recomputed from the records
        /// and written, with a fresh CRC, into the stored header, so timestamp lookups find it.
        #[test]
        fn impossible_max_timestamp_is_repaired_on_append() {
            use crate::protocol::batch::{set_max_timestamp, RecordBatch};
            let dir = tempfile::tempdir().unwrap();
            let (_s, p) = open_with_topic(dir.path(), config(dir.path()));
            let mut b = batch(10, 20, NO_PRODUCER, 1000);
            set_max_timestamp(&mut b, -1).unwrap();
            assert_eq!(RecordBatch::parse(&b).unwrap().max_timestamp(), -1);
            p.append(&b).unwrap();
            assert_eq!(p.offset_for_timestamp(1005), Some((5, 1005)));
            assert_eq!(p.max_timestamp(), Some((9, 1009)));
            let read = p.read(0, 1 << 20).unwrap();
            let stored = RecordBatch::parse(&read.records).unwrap();
            assert_eq!(stored.max_timestamp(), 1009);
            stored.verify_crc().unwrap();
        }

        const UNLIMITED: RetentionPolicy = RetentionPolicy {
            retention_ms: -1,
            retention_bytes: -1,
        };

        /// 60 appends of 2 records (~450 bytes) into 8 KiB segments: ~18 batches a segment,
        /// timestamps 1_000 + 10 * i.
        fn rolled_partition(dir: &Path) -> (Storage, std::sync::Arc<Partition>) {
            let mut cfg = config(dir);
            cfg.segment_bytes = 8192;
            let (s, p) = open_with_topic(dir, cfg);
            for i in 0..60 {
                p.append(&batch(2, 400, NO_PRODUCER, 1_000 + 10 * i))
                    .unwrap();
            }
            (s, p)
        }

        #[test]
        fn retention_by_bytes_deletes_oldest_sealed_segments_and_moves_the_start() {
            let dir = tempfile::tempdir().unwrap();
            let (s, p) = rolled_partition(dir.path());
            let part_dir = dir.path().join("t-0");
            let before = segment_files(&part_dir);
            assert!(before.len() >= 4, "{} segments", before.len());
            let held = p.read(0, 1).unwrap().records;
            let held_copy = held.to_vec();
            // Unlimited deletes nothing.
            assert_eq!(p.apply_retention(UNLIMITED, i64::MAX), None);
            let size = p.size_bytes();
            let limit = size - 8192; // Room for about one segment less.
            let policy = RetentionPolicy {
                retention_ms: -1,
                retention_bytes: limit as i64,
            };
            let deleted = p.apply_retention(policy, 0).unwrap();
            assert!(deleted.segments >= 1);
            // Kafka's rule: what is left is still at least retention.bytes.
            assert!(p.size_bytes() >= limit, "{} < {limit}", p.size_bytes());
            assert!(p.size_bytes() < size);
            let after = segment_files(&part_dir);
            assert_eq!(after.len(), before.len() - deleted.segments);
            assert_eq!(after[..], before[deleted.segments..]);
            let start = p.offsets().log_start_offset;
            assert_eq!(start, deleted.log_start_offset);
            assert!(start > 0);
            assert_eq!(
                p.read(start - 1, 1 << 20).unwrap_err(),
                ReadError::OffsetOutOfRange
            );
            assert_eq!(
                read_all_offsets(&p, start),
                (start..120).collect::<Vec<_>>()
            );
            // A reader's bytes of a deleted segment stay valid (the mapping keeps the pages).
            assert_eq!(&held[..], &held_copy[..]);
            // Zero bytes keeps only the active segment, never deletes it.
            let zero = RetentionPolicy {
                retention_ms: -1,
                retention_bytes: 0,
            };
            p.apply_retention(zero, 0);
            assert_eq!(segment_files(&part_dir).len(), 1);
            let start = p.offsets().log_start_offset;
            assert_eq!(
                read_all_offsets(&p, start),
                (start..120).collect::<Vec<_>>()
            );
            // Restart: the start offset is the first remaining segment's base offset.
            drop(p);
            drop(s);
            let mut cfg = config(dir.path());
            cfg.segment_bytes = 8192;
            let (_s, p) = open_with_topic(dir.path(), cfg);
            assert_eq!(p.offsets().log_start_offset, start);
            assert_eq!(p.offsets().log_end_offset, 120);
            assert_eq!(p.append(&plain(1)).unwrap().base_offset, 120);
        }

        #[test]
        fn retention_by_time_uses_the_segments_largest_timestamp() {
            let dir = tempfile::tempdir().unwrap();
            let (_s, p) = rolled_partition(dir.path());
            // Batch i has records at 1_000 + 10 * i (+1); the newest is 1_591. The second
            // segment's name says how many 2-record batches the first one holds.
            let files = segment_files(&dir.path().join("t-0"));
            let second_base: i64 = files[1]
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .unwrap();
            let first_largest_ts = 1_000 + 10 * (second_base / 2 - 1) + 1;
            let policy = RetentionPolicy {
                retention_ms: 100,
                retention_bytes: -1,
            };
            // Exactly retention_ms old is not yet expired (Kafka: age > retention.ms).
            assert_eq!(p.apply_retention(policy, first_largest_ts + 100), None);
            let deleted = p.apply_retention(policy, first_largest_ts + 101).unwrap();
            assert_eq!(deleted.segments, 1, "only the first segment is that old");
            assert_eq!(p.offsets().log_start_offset, second_base);
            assert_eq!(segment_files(&dir.path().join("t-0"))[..], files[1..]);
            // Far in the future everything but the active segment expires.
            let deleted = p.apply_retention(policy, i64::MAX / 2).unwrap();
            assert_eq!(segment_files(&dir.path().join("t-0")).len(), 1);
            assert_eq!(deleted.segments, files.len() - 2);
            let start = p.offsets().log_start_offset;
            assert_eq!(
                read_all_offsets(&p, start),
                (start..120).collect::<Vec<_>>()
            );
            // Max timestamp (ListOffsets -3) points into what is left.
            let (offset, ts) = p.max_timestamp().unwrap();
            assert!(offset >= start && ts == 1_591, "{offset} {ts}");
        }

        #[test]
        fn topic_retention_configs_are_validated_persisted_and_override_defaults() {
            let dir = tempfile::tempdir().unwrap();
            let s = Storage::open(config(dir.path())).unwrap();
            let bad = |k: &str, v: &str| {
                let mut c = TopicConfig::default();
                c.configs.insert(k.into(), v.into());
                c
            };
            for (k, v) in [
                ("retention.ms", "soon"),
                ("retention.ms", "-2"),
                ("retention.bytes", "1.5"),
                ("no.such.config", "1"),
            ] {
                let r = s.create_topic("t", 1, bad(k, v));
                assert!(
                    matches!(r, Err(StorageError::InvalidConfig(_))),
                    "{k}={v}: {r:?}"
                );
            }
            assert!(s.topics().is_empty() && fs::read_dir(dir.path()).unwrap().count() == 0);
            s.create_topic("t", 1, bad("retention.ms", "5000")).unwrap();
            let defaults = RetentionPolicy {
                retention_ms: 1,
                retention_bytes: 7,
            };
            assert_eq!(
                defaults.for_topic(&s.topic("t").unwrap().config),
                RetentionPolicy {
                    retention_ms: 5000,
                    retention_bytes: 7
                }
            );
            s.set_topic_config("t", bad("retention.bytes", "1024"))
                .unwrap();
            assert!(s
                .set_topic_config("t", bad("retention.bytes", "x"))
                .is_err());
            drop(s);
            let s = Storage::open(config(dir.path())).unwrap();
            assert_eq!(
                defaults.for_topic(&s.topic("t").unwrap().config),
                RetentionPolicy {
                    retention_ms: 1,
                    retention_bytes: 1024
                }
            );
        }

        #[test]
        fn topic_metadata_without_configs_still_loads() {
            // The format of topic.json before per-topic configs had effect: configs empty.
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("old-0")).unwrap();
            fs::write(
                dir.path().join("old-0/topic.json"),
                r#"{"format_version":1,"name":"old","id":"6f1d2c3b-1111-4222-8333-944455556666","partitions":1,"config":{"configs":{}}}"#,
            )
            .unwrap();
            let s = Storage::open(config(dir.path())).unwrap();
            let info = s.topic("old").unwrap();
            assert!(info.config.configs.is_empty());
            assert_eq!(
                UNLIMITED.for_topic(&info.config),
                UNLIMITED,
                "no overrides: broker defaults"
            );
        }
    };
}

/// `segment_prefault_outrun` of the variants that do not name one: the default.
fn test_outrun() -> crate::storage::PrefaultOutrun {
    crate::storage::PrefaultOutrun::Pwrite
}

/// Window sizes of the "window on" variants: larger than the 1 MiB test segments.
const TEST_WINDOW_BYTES: u64 = 1536 << 10;

macro_rules! variant {
    ($name:ident, $write:expr, $window:expr) => {
        variant!($name, $write, $window, test_outrun());
    };
    ($name:ident, $write:expr, $window:expr, $outrun:expr) => {
        mod $name {
            use super::*;

            fn config(dir: &Path) -> StorageConfig {
                StorageConfig {
                    segment_prefault_outrun: $outrun,
                    ..config_for(dir, $write, $window)
                }
            }

            scenarios!();
        }
    };
}

variant!(mmap, SegmentWrite::Mmap, 0);
variant!(pwrite, SegmentWrite::Pwrite, 0);
variant!(mmap_window, SegmentWrite::Mmap, TEST_WINDOW_BYTES);
variant!(pwrite_window, SegmentWrite::Pwrite, TEST_WINDOW_BYTES);
// An mmap append past the window copies through the mapping and takes the faults.
variant!(
    mmap_window_fault,
    SegmentWrite::Mmap,
    TEST_WINDOW_BYTES,
    crate::storage::PrefaultOutrun::Fault
);
