//! Storage: per-partition logs of Kafka v2 record batches in memory-mapped segments.
//!
//! Knows nothing of the network. Appends whole record batches as received (any
//! compression passes through untouched), assigns offsets by rewriting the batch's
//! base offset (the CRC does not cover it), and serves reads as byte ranges of the
//! mapped segments (`Bytes` that keep the mapping alive, no copy).
//!
//! THIS FILE IS THE CONTRACT the broker layer compiles against. The storage
//! implementation may add modules and private items freely but keeps these public
//! signatures (or changes them together with `broker/`).

use std::path::PathBuf;

use crate::output::MappedSlice;
use bytes::Bytes;
use uuid::Uuid;

mod log;
mod prefault;
mod producer;
mod segment;
#[cfg(test)]
mod tests;
mod topic_config;
mod topics;

pub use log::{Compacted, CompactionPolicy, DeleteRecordsError, DELETE_RECORDS_HIGH_WATERMARK};
pub use topic_config::{
    accepted_topic_configs, is_list_config, list_items, spec_of, validate_topic_config,
    CleanupPolicy, ConfigValues, LogOverrides, TopicConfigSpec, CLEANUP_POLICY_CONFIG,
    RETENTION_BYTES_CONFIG, RETENTION_MS_CONFIG, TOPIC_CONFIGS,
};
pub use topics::MAX_PARTITIONS_PER_TOPIC;

/// When acknowledged data reaches the disk (the `flush` configuration key, also
/// changeable while running: `Storage::set_flush_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Never msync/fsync explicitly: the kernel writes dirty pages back when it likes.
    /// A broker crash (process) loses nothing; a machine crash can lose recent data.
    Never,
    /// Flush dirty segments at most this often (by a background pass or on the next append).
    IntervalMs(u64),
    /// msync the appended range (and fsync new files/dirs) before `append` returns.
    Always,
}

impl std::str::FromStr for FlushPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(FlushPolicy::Never),
            "always" => Ok(FlushPolicy::Always),
            other => other
                .strip_suffix("ms")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .map(FlushPolicy::IntervalMs)
                .ok_or_else(|| format!("flush must be never, always or <N>ms, got {other:?}")),
        }
    }
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushPolicy::Never => f.write_str("never"),
            FlushPolicy::Always => f.write_str("always"),
            FlushPolicy::IntervalMs(n) => write!(f, "{n}ms"),
        }
    }
}

/// As configured: `"never"`, `"always"` or `"<N>ms"`.
impl serde::Serialize for FlushPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FlushPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The flush policy in force, changeable while running (`Storage::set_flush_policy`):
/// every partition reads it with one relaxed atomic load per append.
#[derive(Debug)]
pub(crate) struct FlushCell(std::sync::atomic::AtomicU64);

impl FlushCell {
    const NEVER: u64 = 0;
    const ALWAYS: u64 = u64::MAX;

    pub(crate) fn new(policy: FlushPolicy) -> FlushCell {
        let cell = FlushCell(std::sync::atomic::AtomicU64::new(Self::NEVER));
        cell.set(policy);
        cell
    }
    pub(crate) fn get(&self) -> FlushPolicy {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::NEVER => FlushPolicy::Never,
            Self::ALWAYS => FlushPolicy::Always,
            ms => FlushPolicy::IntervalMs(ms),
        }
    }
    pub(crate) fn set(&self, policy: FlushPolicy) {
        let raw = match policy {
            FlushPolicy::Never => Self::NEVER,
            FlushPolicy::Always => Self::ALWAYS,
            // 0 ms behaves like 1 ms (flush on every append after a millisecond).
            FlushPolicy::IntervalMs(ms) => ms.clamp(1, Self::ALWAYS - 1),
        };
        self.0.store(raw, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Storage settings fixed at startup.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Segment roll size. A new segment is created when a batch does not fit.
    pub segment_bytes: u64,
    /// One sparse index entry at least every this many bytes of log.
    pub index_interval_bytes: u32,
    /// The initial flush policy (see `Storage::set_flush_policy`).
    pub flush: FlushPolicy,
    /// 0 = off; else the pre-fault window: this many bytes ahead of each active
    /// segment's append position are kept reserved and faulted in by a background
    /// thread (`prefault.rs`), and the next segment is prepared before the roll.
    pub segment_prefault_bytes: u64,
    /// How appends reach the segment file (reads always come from the mapping).
    pub segment_write: SegmentWrite,
    /// With the window on and `segment_write = mmap`: how an append that runs past
    /// the populated window is written.
    pub segment_prefault_outrun: PrefaultOutrun,
    /// madvise(MADV_HUGEPAGE) on segment mappings.
    pub segment_hugepages: bool,
    /// Largest record batch accepted (Kafka's `message.max.bytes`).
    pub max_batch_bytes: usize,
    /// How the topic-partition map is locked.
    pub log_map: LogMapKind,
    /// Shards of `LogMapKind::Sharded`.
    pub log_map_shards: usize,
}

impl StorageConfig {
    /// The storage settings of a broker configuration: the one place they are mapped
    /// (start-up, tests and benches all build them here).
    pub fn from_config(cfg: &crate::config::Config) -> StorageConfig {
        StorageConfig {
            data_dir: cfg.data_dir.clone(),
            segment_bytes: cfg.segment_bytes,
            index_interval_bytes: cfg.index_interval_bytes,
            flush: cfg.flush,
            segment_prefault_bytes: cfg.segment_prefault_bytes,
            segment_hugepages: cfg.segment_hugepages,
            segment_write: cfg.segment_write,
            segment_prefault_outrun: cfg.segment_prefault_outrun,
            max_batch_bytes: cfg.max_message_bytes,
            log_map: cfg.log_map,
            log_map_shards: cfg.log_map_shards,
        }
    }

    /// The baseline profile's storage settings over `data_dir` (the documented
    /// default for tests and benches).
    pub fn defaults_in(data_dir: &std::path::Path) -> StorageConfig {
        let mut cfg = crate::config::Config::profile(crate::config::Profile::Baseline);
        cfg.data_dir = data_dir.to_path_buf();
        StorageConfig::from_config(&cfg)
    }
}

/// How appended bytes reach a segment file (`segment_write`, chosen once at startup).
/// Reads are zero-copy from the segment mapping either way, and both keep the same
/// guarantees: disk blocks reserved with `fallocate` before any byte is written (a
/// full disk is KAFKA_STORAGE_ERROR, never SIGBUS), the same recovery, and with
/// `flush=always` the data on disk before the ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentWrite {
    /// memcpy into the shared writable mapping (each new page is a page fault unless
    /// the pre-fault window got there first); `flush=always` msyncs the range.
    #[default]
    Mmap,
    /// pwrite(2)/pwritev(2) into the segment file at the append position, as Kafka
    /// does (no page fault on the write path; one system call per append);
    /// `flush=always` fdatasyncs the file.
    Pwrite,
}

/// What an mmap-path append does when it runs past the pre-fault window's populated
/// pages, i.e. when the appender outran the pre-fault thread
/// (`segment_prefault_outrun`, chosen once at startup; only with the window on).
/// A trade-off, measured (indicative, loaded 2-vCPU VM, `log_append_1kib_window_outrun`,
/// 220k 1 KiB appends): `pwrite` p50 160-270 ns, p99 3.8-4.2 µs, p99.9 7.2-8.9 µs;
/// `fault` p50 140-150 ns, p99 5.3-6.4 µs, p99.9 9.6-23 µs; sustained means
/// (criterion) within each other's spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefaultOutrun {
    /// pwritev into the same page cache: the kernel allocates the pages without a
    /// trap per page (~1.2 µs per 1 KiB append), readers still read the mapping.
    /// Lower tail, higher median.
    #[default]
    Pwrite,
    /// Copy through the mapping as inside the window and take the page faults (one
    /// per new 4 KiB page, 5-30 µs each here): the median of a plain copy, a longer
    /// tail.
    Fault,
}

/// How the topic-partition map is locked (`log_map`, chosen once at startup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogMapKind {
    /// One reader-writer lock over the whole map.
    #[default]
    Global,
    /// `log_map_shards` cache-line-aligned locks, a topic's shard chosen by hashing
    /// its name.
    Sharded,
}

/// How much of a partition to keep (Kafka's `retention.ms` / `retention.bytes`);
/// a negative value means unlimited. Broker defaults come from the configuration,
/// a topic's own `retention.*` configs override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete a sealed segment once its largest timestamp is older than this.
    pub retention_ms: i64,
    /// Delete the oldest sealed segments while the partition stays at least this big.
    pub retention_bytes: i64,
}

impl RetentionPolicy {
    /// This policy with the topic's own `retention.*` configs applied. Values were
    /// validated when set; one that does not parse (a hand-edited file) keeps the
    /// broker default.
    pub fn for_topic(self, config: &TopicConfig) -> RetentionPolicy {
        let get = |key: &str, default: i64| {
            config
                .configs
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        // As Kafka: without `delete` in `cleanup.policy` nothing expires.
        if !CleanupPolicy::of(config).delete {
            return RetentionPolicy {
                retention_ms: -1,
                retention_bytes: -1,
            };
        }
        RetentionPolicy {
            retention_ms: get(RETENTION_MS_CONFIG, self.retention_ms),
            retention_bytes: get(RETENTION_BYTES_CONFIG, self.retention_bytes),
        }
    }
}

/// What one retention pass deleted from one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDeleted {
    pub segments: usize,
    pub bytes: u64,
    /// The partition's log start offset after the pass.
    pub log_start_offset: i64,
}

/// Per-topic settings persisted with the topic.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopicConfig {
    /// Configs given at creation (e.g. "retention.ms"), kept and reported as given.
    pub configs: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, &'static str),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    /// Refused by the broker's `max_topics` (checked by the broker, not by storage).
    #[error("the broker already has {limit} topics (max_topics); delete one first")]
    TooManyTopics { limit: usize },
    /// Refused by the broker's `max_partitions_per_topic`.
    #[error("{requested} partitions exceed max_partitions_per_topic = {limit}")]
    TooManyPartitions { requested: i32, limit: i32 },
    /// An unknown topic config or an invalid value (INVALID_CONFIG).
    #[error("{0}")]
    InvalidConfig(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt data in {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Why a produce to one partition was refused. Maps 1:1 to Kafka error codes in `broker`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppendError {
    /// CRC32C mismatch, bad lengths, or a malformed batch header (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    Corrupt(&'static str),
    /// Magic 0/1 (INVALID_RECORD / UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// Records that had to be read (decompressed, bounded) and could not be: a
    /// compression bomb, an unknown codec, records unlike the header (CORRUPT_MESSAGE).
    #[error("invalid records: {0}")]
    Records(crate::protocol::batch::RecordsError),
    /// A batch larger than `max_batch_bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {0} bytes is too large")]
    TooLarge(usize),
    /// Idempotent producer sequence gap (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    /// Producer epoch older than the one seen (INVALID_PRODUCER_EPOCH).
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
    /// Writing failed (KAFKA_STORAGE_ERROR); nothing of this append is visible.
    #[error("storage error: {0}")]
    Io(String),
    /// Records without a key on a topic whose `cleanup.policy` includes `compact`
    /// (INVALID_RECORD with one record error per index, KIP-467). The indexes count
    /// the records of the partition's data from 0.
    #[error("Compacted topic cannot accept message without key")]
    KeylessRecords(Vec<i32>),
}

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// True when the batch was an idempotent duplicate: nothing was written and
    /// `base_offset`/`last_offset` are those of the original append.
    pub duplicate: bool,
    /// The append time the broker stamped on the batches of a
    /// `message.timestamp.type=LogAppendTime` topic; -1 otherwise.
    pub log_append_time_ms: i64,
}

/// Offsets of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start_offset: i64,
    /// Next offset to be assigned (= high watermark on a single node).
    pub log_end_offset: i64,
}

/// A read of whole batches from one partition.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole record batches (the first one contains `offset`); empty when at the end.
    pub records: Bytes,
    pub offsets: Offsets,
}

/// Whole batches of a read, borrowed under the partition lock: copy [`Committed::bytes`],
/// or take a [`Committed::share`] that keeps the segment mapped without copying.
pub struct Committed<'a> {
    pub bytes: &'a [u8],
    segment: Option<&'a segment::Segment>,
    /// Where `bytes` starts in the segment.
    start: u64,
}

impl Committed<'_> {
    /// The same bytes as a slice of the segment mapping that outlives the lock (an
    /// `Arc` clone of the mapping: retention, a roll or a topic deletion cannot unmap
    /// it while it lives). `None` for an empty read.
    pub fn share(&self) -> Option<MappedSlice> {
        self.segment?.mapped(self.start, self.bytes.len() as u64)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// offset < log start or > log end (OFFSET_OUT_OF_RANGE).
    #[error("offset out of range")]
    OffsetOutOfRange,
    #[error("storage error: {0}")]
    Io(String),
}

/// What the broker knows of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    /// Stable topic id (Kafka topic ids, Metadata v10+/Fetch v13+), persisted.
    pub id: Uuid,
    pub partitions: i32,
    pub config: TopicConfig,
}

/// Validates a topic name as Kafka does: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.`/`..`.
/// A valid name can never escape the data directory.
pub fn validate_topic_name(name: &str) -> Result<(), StorageError> {
    const MAX_TOPIC_NAME_CHARS: usize = 249;
    if name.is_empty() {
        return Err(StorageError::InvalidTopic(name.into(), "empty"));
    }
    if name == "." || name == ".." {
        return Err(StorageError::InvalidTopic(
            name.into(),
            "'.' and '..' are not allowed",
        ));
    }
    if name.len() > MAX_TOPIC_NAME_CHARS {
        return Err(StorageError::InvalidTopic(
            name.into(),
            "longer than 249 characters",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(StorageError::InvalidTopic(
            name.into(),
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The contract below is implemented by the storage modules (segment, index, log,
// topics). Signatures are fixed; bodies are the implementation's.
// ---------------------------------------------------------------------------

/// All topics and partitions of the broker. Shared by every I/O thread (`Arc<Storage>`);
/// every method takes `&self` and locks internally. Lookups never hold a lock while
/// doing file I/O for another partition.
pub struct Storage {
    store: topics::TopicStore,
}

/// A topic's partitions, looked up once for a request that reads several of them (a
/// Fetch): by name, or by id without copying the topic's name.
pub struct TopicPartitions(std::sync::Arc<topics::Topic>);

impl TopicPartitions {
    pub fn partition(&self, partition: i32) -> Option<std::sync::Arc<Partition>> {
        let index = usize::try_from(partition).ok()?;
        self.0.partitions.get(index).cloned()
    }
}

/// Visits the aborted transactions of a read_committed read, calling its argument
/// with (producer id, first offset) for each; returns how many there were.
pub type EachAborted<'a> = dyn FnMut(&mut dyn FnMut(i64, i64)) -> usize + 'a;

/// One partition's log. Shared (`Arc<Partition>`); appends are serialized internally.
pub struct Partition {
    log: log::PartitionLog,
}

impl Storage {
    /// Opens (creating if needed) the data directory and recovers every topic found:
    /// validates the tail of each partition's last segment batch by batch (length, CRC),
    /// truncates a torn tail, rebuilds the offset index and idempotent-producer state.
    pub fn open(cfg: StorageConfig) -> Result<Storage, StorageError> {
        Ok(Storage {
            store: topics::TopicStore::open(cfg)?,
        })
    }
    pub fn config(&self) -> &StorageConfig {
        &self.store.cfg
    }
    /// Creates a topic with `partitions` empty partitions and a fresh topic id.
    /// Cheap: no pre-touching of segments unless `segment_prefault_bytes` asks for it.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<TopicInfo, StorageError> {
        self.store.create_topic(name, partitions, config)
    }
    /// Deletes a topic and its files. Outstanding `Bytes` from reads stay valid.
    pub fn delete_topic(&self, name: &str) -> Result<TopicInfo, StorageError> {
        self.store.delete_topic(name)
    }
    /// Grows a topic to `total_partitions` (must be larger than now).
    pub fn create_partitions(
        &self,
        name: &str,
        total_partitions: i32,
    ) -> Result<TopicInfo, StorageError> {
        self.store.create_partitions(name, total_partitions)
    }
    pub fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.store.topic(name)
    }
    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicInfo> {
        self.store.topic_by_id(id)
    }
    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.store.topics()
    }
    /// The partitions of topic `name` (see [`TopicPartitions`]).
    pub fn topic_partitions(&self, name: &str) -> Option<TopicPartitions> {
        self.store.entry(name).map(TopicPartitions)
    }
    /// The partitions of the topic with id `id` (see [`TopicPartitions`]).
    pub fn topic_partitions_by_id(&self, id: Uuid) -> Option<TopicPartitions> {
        self.store.entry_by_id(id).map(TopicPartitions)
    }
    pub fn partition(&self, topic: &str, partition: i32) -> Option<std::sync::Arc<Partition>> {
        self.store.partition(topic, partition)
    }
    /// Flushes every partition (used at shutdown and by the interval flusher).
    pub fn flush_all(&self) -> std::io::Result<()> {
        self.store.flush_all()
    }
    /// Replaces a topic's configs (validated, persisted in its metadata file before
    /// they take effect).
    pub fn set_topic_config(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<TopicInfo, StorageError> {
        self.store.set_topic_config(name, config)
    }
    /// One retention pass over every partition (see [`RetentionPolicy`]): `defaults`
    /// with each topic's overrides. Logs one line per partition that lost segments.
    /// Returns the segments deleted in total.
    pub fn enforce_retention(&self, defaults: RetentionPolicy, now_ms: i64) -> usize {
        self.store.enforce_retention(defaults, now_ms)
    }
    /// The flush policy in force now.
    /// One compaction pass over every partition of every topic whose
    /// `cleanup.policy` includes `compact` (`storage/log/compaction.rs`); returns the
    /// segments rewritten. Called by the retention thread after retention.
    pub fn compact(&self, now_ms: i64) -> usize {
        self.store.compact(now_ms)
    }

    pub fn flush_policy(&self) -> FlushPolicy {
        self.store.flush.get()
    }
    /// Changes the flush policy while running; appends from now on follow it. Data
    /// appended before a switch to `Always` is not flushed by the switch itself.
    pub fn set_flush_policy(&self, policy: FlushPolicy) {
        self.store.flush.set(policy);
    }
}

impl Partition {
    /// Validates and appends the record batches in `records` (one or more v2 batches,
    /// concatenated, as in a Produce request). All-or-nothing: on any error nothing is
    /// appended. Checks per batch: length framing, magic == 2, CRC32C, size limit,
    /// idempotent producer sequence (duplicate of one of the last 5 batches of that
    /// producer → `Appended { duplicate: true, .. }` with the original offsets; a gap →
    /// `OutOfOrderSequence`; an old epoch → `InvalidProducerEpoch`). Honors the flush
    /// policy before returning.
    pub fn append(&self, records: &[u8]) -> Result<Appended, AppendError> {
        self.log.append(records)
    }
    /// Reads whole batches starting with the batch that contains `offset`, up to
    /// `max_bytes` in total, but always at least one whole batch when one exists at
    /// `offset` (so a batch larger than `max_bytes` is still delivered, as Kafka does).
    /// `offset == log_end_offset` returns empty records.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, ReadError> {
        self.log.read(offset, max_bytes)
    }
    /// As [`Partition::read`], handing the records to `f` as bytes borrowed under
    /// the partition lock (no allocation; `f` copies them or shares their mapping).
    pub fn read_with<R>(
        &self,
        offset: i64,
        max_bytes: usize,
        f: impl FnOnce(Offsets, Committed<'_>) -> R,
    ) -> Result<R, ReadError> {
        self.log.read_with(offset, max_bytes, f)
    }
    /// As [`Partition::read_with`] for a `read_committed` reader: records end before
    /// the last stable offset; `f` gets the offsets, the LSO, the records and a way to
    /// visit the aborted transactions (producer id, first offset) overlapping them
    /// (it returns how many it visited; call it once to count, again to write).
    pub fn read_committed_with<R>(
        &self,
        offset: i64,
        max_bytes: usize,
        f: impl FnOnce(Offsets, i64, Committed<'_>, &mut EachAborted<'_>) -> R,
    ) -> Result<R, ReadError> {
        self.log
            .read_committed_with(offset, max_bytes, |o, lso, records, each| {
                let mut visit = |g: &mut dyn FnMut(i64, i64)| {
                    each(&mut |a: &log::txn_index::AbortedTxn| g(a.producer_id, a.first_offset))
                };
                f(o, lso, records, &mut visit)
            })
    }
    /// The last stable offset: the first offset of the earliest open transaction on
    /// the partition, else the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset()
    }
    pub fn offsets(&self) -> Offsets {
        self.log.offsets()
    }
    /// True once the partition's topic was deleted (its handle answers nothing new).
    pub fn is_deleted(&self) -> bool {
        self.log.is_deleted()
    }
    /// The first offset whose record timestamp is >= `timestamp_ms`, with that
    /// timestamp (batch granularity is acceptable: the batch's first offset whose
    /// max_timestamp >= timestamp_ms). None when no such record exists.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Option<(i64, i64)> {
        self.log.offset_for_timestamp(timestamp_ms)
    }
    /// The offset and timestamp of the record with the largest timestamp (ListOffsets
    /// -3): the log knows the batch holding it; the record is found in that batch (read
    /// and, if compressed, inflated outside the partition lock), as Kafka does at query
    /// time. Should the batch be unreadable, its last offset is answered.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let (batch_last_offset, ts) = self.log.max_timestamp()?;
        let exact = self.log.read(batch_last_offset, 1).ok().and_then(|r| {
            let batch = crate::protocol::batch::Batches::new(&r.records)
                .next()?
                .ok()?;
            (batch.base_offset() <= batch_last_offset && batch.last_offset() >= batch_last_offset)
                .then(|| crate::protocol::batch::offset_of_max_timestamp(&batch, ts))
                .flatten()
        });
        Some((exact.unwrap_or(batch_last_offset), ts))
    }
    /// Applies a retention policy to this partition now (the broker's timer calls
    /// [`Storage::enforce_retention`]); None when nothing expired.
    pub fn apply_retention(
        &self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Option<RetentionDeleted> {
        self.log.apply_retention(policy, now_ms)
    }
    /// Kafka's DeleteRecords: moves the log start offset up to `offset` (-1 = the
    /// high watermark), persisted before it returns; returns the log start offset
    /// afterwards. See `storage/log/log_start.rs`.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        self.log.delete_records_before(offset)
    }
    /// Bytes on disk used by this partition's segments.
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }
    /// How far ahead of the append position the pre-fault window has made the log
    /// writable (populated pages of the active segment, plus the prepared next
    /// segment's head once the active one is populated to its end); None with the
    /// window off. Appends within this many bytes copy into present pages. For
    /// benchmarks and diagnostics: it reads the state the pre-fault thread publishes.
    pub fn prefaulted_ahead_bytes(&self) -> Option<u64> {
        self.log.prefaulted_ahead_bytes()
    }
    pub fn flush(&self) -> std::io::Result<()> {
        self.log.flush()
    }
}
