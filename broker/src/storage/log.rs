//! One partition's log: an ordered list of segments, the last one active.
//!
//! The sparse offset index is kept in memory only and rebuilt on open by scanning
//! batch headers (no `.index` files): one header read per batch, and the index can
//! never disagree with the log.

mod compaction;
mod log_start;
mod overrides;
pub(crate) mod txn_index;

pub use compaction::{Compacted, CompactionPolicy};
pub use log_start::{DeleteRecordsError, DELETE_RECORDS_HIGH_WATERMARK};

use std::cell::RefCell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memmap2::MmapRaw;

use crate::protocol::batch::{
    first_record_at_or_after, records_max_timestamp, BatchError, Batches, RecordBatch,
    RECORD_BATCH_HEADER_BYTES,
};

use super::producer::{BatchProducerInfo, Pending, ProducerStates, SeqCheck};
use super::segment::{
    parse_segment_file_name, sync_dir, BatchPatch, MapOptions, Segment, PREPARED_SEGMENT_FILE,
};
use super::{
    AppendError, Appended, Committed, FlushCell, FlushPolicy, LogOverrides, Offsets, ReadError,
    ReadResult, RetentionDeleted, RetentionPolicy, StorageConfig, StorageError,
};

/// Recovery looks at most this far past the valid end of a segment for non-zero
/// bytes, to report how much garbage it cut (the rest is cut unseen).
const MAX_GARBAGE_SCAN_BYTES: u64 = 64 << 20;

pub(crate) struct PartitionLog {
    dir: PathBuf,
    cfg: Arc<StorageConfig>,
    /// The live flush policy (`cfg.flush` is only its initial value).
    flush: Arc<FlushCell>,
    /// How segments are mapped and written (`segment_write`, the pre-fault window).
    opts: MapOptions,
    state: Mutex<LogState>,
    deleted: AtomicBool,
    /// Serializes moves of the log start offset and their checkpoint (`log_start.rs`).
    start_checkpoint: Mutex<()>,
    /// The topic's configs as the data path needs them (`overrides.rs`); read only
    /// when `has_overrides` is set, so a topic without configs pays one relaxed load.
    overrides: Mutex<LogOverrides>,
    has_overrides: AtomicBool,
    /// Sealed segments below this offset were compacted since start-up
    /// (`compaction.rs`); only the compaction pass touches it.
    compacted_up_to: AtomicI64,
}

struct LogState {
    /// Sorted by base offset; the last one receives appends.
    segments: Vec<Segment>,
    log_start_offset: i64,
    next_offset: i64,
    producers: ProducerStates,
    /// Open and aborted transactions (read_committed Fetch, ListOffsets).
    txns: txn_index::TxnIndex,
    /// (max timestamp, offset of the batch's last record) over the whole log.
    max_timestamp: Option<(i64, i64)>,
    last_flush: Instant,
    /// When the active segment was created (or the log opened): `segment.ms` rolls
    /// it once it is that old.
    active_since: Instant,
}

/// What append checked about one input batch before taking the lock.
struct ValidBatch {
    producer: BatchProducerInfo,
    total_bytes: usize,
    max_timestamp: i64,
    /// Set when the producer sent a maxTimestamp below the first record's timestamp
    /// (sarama 1.22 sends -1): the real maximum, written into the stored header.
    repaired_max_timestamp: Option<i64>,
    /// Offsets assigned under the lock: the batch's first and last.
    base_offset: i64,
    last_offset: i64,
    /// `message.timestamp.type=LogAppendTime`: the stored header gets the timestamp
    /// type bit and `repaired_max_timestamp` (the append time) as its max timestamp.
    log_append_time: bool,
    /// The transactional attribute bit: the partition's transaction index follows it.
    transactional: bool,
    /// For a transactional control batch: whether it is a COMMIT marker.
    commit_marker: Option<bool>,
}

/// What an append needs besides the log, reused by every append on one thread (a
/// data-plane worker), so a steady-state append allocates nothing.
struct AppendScratch {
    batches: Vec<ValidBatch>,
    pending: Pending,
}

impl AppendScratch {
    const fn new() -> AppendScratch {
        AppendScratch {
            batches: Vec::new(),
            pending: Vec::new(),
        }
    }
}

/// Scratch capacity kept between appends; a request with more batches than this
/// gives the excess back afterwards.
const SCRATCH_BATCHES_KEPT: usize = 1024;

thread_local! {
    static APPEND_SCRATCH: RefCell<AppendScratch> = const { RefCell::new(AppendScratch::new()) };
}

/// Index entries a segment of `capacity_bytes` can need: one at most every
/// `index_interval_bytes` and never two in one batch, plus the first.
fn index_entries_max(capacity_bytes: u64, index_interval_bytes: u32) -> usize {
    let spacing = index_spacing_bytes(index_interval_bytes);
    usize::try_from(capacity_bytes / spacing + 1).unwrap_or(usize::MAX)
}

/// Log bytes between two index entries at the least.
fn index_spacing_bytes(index_interval_bytes: u32) -> u64 {
    u64::from(index_interval_bytes).max(RECORD_BATCH_HEADER_BYTES as u64)
}

/// A range to msync, captured under the lock and flushed without it.
struct DirtyRange {
    map: Arc<MmapRaw>,
    segment_base_offset: i64,
    from: u64,
    to: u64,
}

fn batch_error_to_append(e: BatchError) -> AppendError {
    match e {
        BatchError::UnsupportedMagic(m) => AppendError::UnsupportedMagic(m),
        BatchError::Truncated { .. } => AppendError::Corrupt("truncated record batch"),
        BatchError::BadLength(_) => AppendError::Corrupt("bad record batch length"),
        BatchError::CrcMismatch { .. } => AppendError::Corrupt("record batch crc mismatch"),
    }
}

fn lock(state: &Mutex<LogState>) -> MutexGuard<'_, LogState> {
    // A panic while holding the lock cannot leave committed data half-written (the
    // commit is the last step), so the state is still usable.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PartitionLog {
    fn empty(
        dir: PathBuf,
        cfg: Arc<StorageConfig>,
        flush: Arc<FlushCell>,
        opts: MapOptions,
        state: LogState,
    ) -> PartitionLog {
        PartitionLog {
            dir,
            cfg,
            flush,
            opts,
            state: Mutex::new(state),
            deleted: AtomicBool::new(false),
            start_checkpoint: Mutex::new(()),
            overrides: Mutex::new(LogOverrides::NONE),
            has_overrides: AtomicBool::new(false),
            compacted_up_to: AtomicI64::new(0),
        }
    }

    /// Creates a new, empty partition directory (removing a stale one left by a
    /// crashed delete). No segment file is created until the first append, so a
    /// topic with many partitions costs one mkdir per partition.
    pub(crate) fn create(
        dir: PathBuf,
        cfg: Arc<StorageConfig>,
        flush: Arc<FlushCell>,
        opts: MapOptions,
    ) -> Result<PartitionLog, StorageError> {
        if dir.exists() {
            tracing::warn!(dir = %dir.display(), "removing stale partition directory");
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir(&dir)?;
        let state = LogState {
            segments: Vec::new(),
            log_start_offset: 0,
            next_offset: 0,
            producers: ProducerStates::default(),
            txns: txn_index::TxnIndex::default(),
            max_timestamp: None,
            last_flush: Instant::now(),
            active_since: Instant::now(),
        };
        Ok(Self::empty(dir, cfg, flush, opts, state))
    }

    /// Opens a partition directory and recovers it (see `Storage::open`).
    pub(crate) fn open(
        dir: PathBuf,
        cfg: Arc<StorageConfig>,
        flush: Arc<FlushCell>,
        opts: MapOptions,
    ) -> Result<PartitionLog, StorageError> {
        if !dir.exists() {
            tracing::warn!(dir = %dir.display(), "partition directory missing, starting empty");
            return Self::create(dir, cfg, flush, opts);
        }
        let mut files: Vec<(i64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            match name.to_str().and_then(parse_segment_file_name) {
                Some(base) => files.push((base, entry.path())),
                // A next segment the pre-fault thread prepared before a crash.
                None if name == PREPARED_SEGMENT_FILE => fs::remove_file(entry.path())?,
                // A compaction that did not reach its rename: the segment is whole.
                None if name
                    .to_str()
                    .is_some_and(|n| n.ends_with(compaction::CLEANED_SUFFIX)) =>
                {
                    fs::remove_file(entry.path())?
                }
                None => tracing::debug!(file = ?entry.path(), "ignoring non-segment file"),
            }
        }
        files.sort_by_key(|(base, _)| *base);

        let mut state = LogState {
            segments: Vec::with_capacity(files.len()),
            log_start_offset: files.first().map_or(0, |(base, _)| *base),
            next_offset: 0,
            producers: ProducerStates::default(),
            txns: txn_index::TxnIndex::default(),
            max_timestamp: None,
            last_flush: Instant::now(),
            active_since: Instant::now(),
        };
        let last_index = files.len().saturating_sub(1);
        let next_bases: Vec<Option<i64>> = (0..files.len())
            .map(|i| files.get(i + 1).map(|(base, _)| *base))
            .collect();
        for (i, (base, path)) in files.into_iter().enumerate() {
            let is_active = i == last_index;
            let file_len = fs::metadata(&path)?.len();
            if !is_active && file_len == 0 {
                tracing::warn!(file = %path.display(), "removing empty sealed segment");
                fs::remove_file(&path)?;
                continue;
            }
            let min_capacity_bytes = if is_active { cfg.segment_bytes } else { 0 };
            let mut segment = Segment::open(&path, base, min_capacity_bytes, &opts)?;
            let expected_offset = state.next_offset.max(base);
            recover_segment(
                &mut segment,
                file_len,
                expected_offset,
                next_bases[i],
                &mut state,
                &cfg,
            )?;
            state.next_offset = segment.next_offset;
            if is_active {
                // As for a new segment (`ensure_room`): appends never grow the index.
                segment.reserve_index(
                    index_entries_max(segment.capacity(), cfg.index_interval_bytes),
                    index_spacing_bytes(cfg.index_interval_bytes),
                );
            }
            state.segments.push(segment);
        }
        if state.segments.is_empty() {
            state.log_start_offset = 0;
        }
        state.log_start_offset = log_start::recovered_log_start_offset(&dir, &state);
        Ok(Self::empty(dir, cfg, flush, opts, state))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// After a topic delete: appends fail, reads of what is mapped keep working.
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    pub(crate) fn offsets(&self) -> Offsets {
        let st = lock(&self.state);
        Offsets {
            log_start_offset: st.log_start_offset,
            log_end_offset: st.next_offset,
        }
    }

    pub(crate) fn append(&self, records: &[u8]) -> Result<Appended, AppendError> {
        let appended = APPEND_SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let appended = self.append_with(records, &mut scratch);
                scratch.batches.shrink_to(SCRATCH_BATCHES_KEPT);
                appended
            }
            // Re-entered on this thread (nothing does that today): a scratch of its own.
            Err(_) => self.append_with(records, &mut AppendScratch::new()),
        });
        // The thread is exiting (its scratch is gone): a scratch of its own.
        appended.unwrap_or_else(|_| self.append_with(records, &mut AppendScratch::new()))
    }

    fn append_with(
        &self,
        records: &[u8],
        scratch: &mut AppendScratch,
    ) -> Result<Appended, AppendError> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(AppendError::Io("partition was deleted".into()));
        }
        let overrides = self.overrides();
        // Validation is pure CPU on the caller's bytes: do it before taking the lock.
        let valid = &mut scratch.batches;
        let pending = &mut scratch.pending;
        self.validate(records, valid, &overrides)?;
        pending.clear();
        let total_bytes = records.len() as u64;

        let mut st = lock(&self.state);
        let log_start_offset = st.log_start_offset;

        // Sequence checks and offset assignment, without touching the log yet.
        let mut next = st.next_offset;
        for b in valid.iter_mut() {
            let last = next + i64::from(b.producer.last_offset_delta);
            match st.producers.check(pending, &b.producer)? {
                // As Kafka does: a duplicate makes the whole append a duplicate.
                SeqCheck::Duplicate {
                    base_offset,
                    last_offset,
                } => {
                    return Ok(Appended {
                        base_offset,
                        last_offset,
                        log_start_offset,
                        duplicate: true,
                        log_append_time_ms: -1,
                    });
                }
                SeqCheck::Accept => st
                    .producers
                    .record_pending(pending, &b.producer, next, last),
                SeqCheck::Untracked => {}
            }
            b.base_offset = next;
            b.last_offset = last;
            next = last + 1;
        }

        let flush = self.flush.get();
        let always = flush == FlushPolicy::Always;
        self.ensure_room(&mut st, total_bytes, &overrides)
            .map_err(|e| AppendError::Io(e.to_string()))?;
        let index_interval_bytes = self.cfg.index_interval_bytes;
        let Some(segment) = st.segments.last_mut() else {
            return Err(AppendError::Io("no active segment".into()));
        };
        let start = segment.len;
        // Disk blocks first: on a full disk this is an error, not a SIGBUS on the copy.
        segment
            .reserve(total_bytes)
            .map_err(|e| AppendError::Io(format!("reserving disk space: {e}")))?;
        // Durable before visible with `always`: if the sync fails nothing is
        // committed and the bytes are overwritten by the next append.
        let patches = valid.iter().scan(0usize, |at, b| {
            let patch = BatchPatch {
                position: *at,
                base_offset: b.base_offset,
                repaired_max_timestamp: b.repaired_max_timestamp,
                log_append_time: b.log_append_time,
            };
            *at += b.total_bytes;
            Some(patch)
        });
        segment
            .write(records, patches, self.opts.write, always)
            .map_err(|e| AppendError::Io(e.to_string()))?;
        let mut at = start;
        for b in valid.iter() {
            // The index was reserved for the whole segment (`index_entries_max`), so
            // this never allocates.
            segment.note_batch(
                at,
                b.base_offset,
                b.total_bytes as u64,
                b.last_offset + 1,
                b.max_timestamp,
                index_interval_bytes,
            );
            at += b.total_bytes as u64;
        }
        segment.commit(total_bytes);
        if always {
            segment.flushed_len = segment.len;
        }
        // Commit point: from here on the batches are visible to readers.
        for b in valid.iter() {
            if st.max_timestamp.is_none_or(|(ts, _)| b.max_timestamp > ts) {
                st.max_timestamp = Some((b.max_timestamp, b.last_offset));
            }
            if b.transactional {
                st.txns
                    .on_batch(b.producer.producer_id, b.base_offset, b.commit_marker);
            }
        }
        st.next_offset = next;
        st.producers.commit(pending);
        let appended = Appended {
            base_offset: valid.first().map_or(next, |b| b.base_offset),
            last_offset: next - 1,
            log_start_offset,
            duplicate: false,
            log_append_time_ms: match valid.first() {
                Some(b) if b.log_append_time => b.max_timestamp,
                _ => -1,
            },
        };

        if let FlushPolicy::IntervalMs(interval_ms) = flush {
            if st.last_flush.elapsed() >= Duration::from_millis(interval_ms) {
                let dirty = take_dirty(&mut st);
                drop(st);
                // The append is committed; a failed background-style flush is not its
                // failure. The next flush retries the same range.
                if let Err(e) = self.flush_dirty(dirty) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "interval flush failed");
                }
            }
        }
        Ok(appended)
    }

    /// Checks every batch of `records`, describing them in `valid` (cleared first).
    /// `overrides` are the topic's configs (`max.message.bytes`, keys required on a
    /// compacted topic, LogAppendTime).
    fn validate(
        &self,
        records: &[u8],
        valid: &mut Vec<ValidBatch>,
        overrides: &LogOverrides,
    ) -> Result<(), AppendError> {
        valid.clear();
        let max_batch_bytes = overrides
            .max_batch_bytes
            .unwrap_or(self.cfg.max_batch_bytes);
        for item in Batches::new(records) {
            let b = item.map_err(batch_error_to_append)?;
            if b.total_bytes() > max_batch_bytes {
                return Err(AppendError::TooLarge(b.total_bytes()));
            }
            b.verify_crc().map_err(batch_error_to_append)?;
            if b.last_offset_delta() < 0 {
                return Err(AppendError::Corrupt("negative lastOffsetDelta"));
            }
            // Kafka recomputes maxTimestamp from the records; a batch stored as received
            // keeps the producer's, unless it is impossible (below the first record's),
            // which would hide the batch from timestamp lookups.
            // Reading the records inflates them (bounded): a batch that does not
            // decode, or a compression bomb, is refused here rather than stored.
            let repaired_max_timestamp =
                if !b.is_log_append_time() && b.max_timestamp() < b.base_timestamp() {
                    records_max_timestamp(b.as_bytes()).map_err(AppendError::Records)?
                } else {
                    None
                };
            valid.push(ValidBatch {
                producer: BatchProducerInfo::from(&b),
                total_bytes: b.total_bytes(),
                max_timestamp: repaired_max_timestamp.unwrap_or(b.max_timestamp()),
                repaired_max_timestamp,
                base_offset: 0,
                last_offset: 0,
                log_append_time: false,
                transactional: b.is_transactional(),
                commit_marker: if b.is_transactional() && b.is_control() {
                    Some(
                        crate::protocol::batch::control_type(b.as_bytes())
                            == Some(crate::protocol::batch::CONTROL_TYPE_COMMIT),
                    )
                } else {
                    None
                },
            });
        }
        if valid.is_empty() {
            return Err(AppendError::Corrupt("no record batch"));
        }
        if *overrides != LogOverrides::NONE {
            overrides::apply_to_batches(records, valid, overrides)?;
        }
        Ok(())
    }

    /// Makes the active segment able to take `total_bytes` contiguous bytes: rolls to
    /// a new segment when they do not fit (one big enough for an oversized append).
    fn ensure_room(
        &self,
        st: &mut LogState,
        total_bytes: u64,
        overrides: &LogOverrides,
    ) -> io::Result<()> {
        let segment_bytes = overrides.segment_bytes.unwrap_or(self.cfg.segment_bytes);
        let capacity_bytes = segment_bytes.max(total_bytes);
        let roll_due = overrides::roll_due(st, total_bytes, overrides);
        let mut prepared = None;
        if let Some(active) = st.segments.last_mut() {
            if active.remaining() >= total_bytes && !roll_due {
                return Ok(());
            }
            if active.len == 0 {
                // Empty and too small: replace it by a bigger file of the same name.
                // No reader can hold bytes of an empty segment.
                st.segments.pop();
            } else {
                prepared = active.seal()?;
                // A sealed segment's index is final: give back the reserve.
                active.index.shrink_to_fit();
                if self.flush.get() == FlushPolicy::Always {
                    active.sync_file()?;
                }
            }
        }
        let mut segment = Segment::create(
            &self.dir,
            st.next_offset,
            capacity_bytes,
            &self.opts,
            prepared,
        )?;
        // Reserved whole now so that appends never grow it; untouched pages of the
        // reserve cost address space, not memory (~0.4% of the segment size at the
        // default 4 KiB interval).
        segment.reserve_index(
            index_entries_max(segment.capacity(), self.cfg.index_interval_bytes),
            index_spacing_bytes(self.cfg.index_interval_bytes),
        );
        if self.flush.get() == FlushPolicy::Always {
            segment.sync_file()?;
            sync_dir(&self.dir)?;
        }
        if st.segments.is_empty() {
            st.log_start_offset = segment.base_offset;
        }
        st.segments.push(segment);
        st.active_since = Instant::now();
        Ok(())
    }

    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, ReadError> {
        let st = lock(&self.state);
        let (offsets, found) = locate(&st, offset, max_bytes)?;
        let records = match found {
            None => Bytes::new(),
            Some(at) => st.segments[at.segment]
                .bytes(at.start as u64, (at.end - at.start) as u64)
                .ok_or_else(|| ReadError::Io("read past committed length".into()))?,
        };
        Ok(ReadResult { records, offsets })
    }

    /// As [`PartitionLog::read`], handing the records to `f` as [`Committed`] bytes
    /// borrowed under the partition lock instead of as a `Bytes` (which would
    /// allocate its owner): the Fetch handler copies them into the response, or
    /// shares them (`Committed::share`, an `Arc` clone of the mapping) for a
    /// zero-copy send.
    pub(crate) fn read_with<R>(
        &self,
        offset: i64,
        max_bytes: usize,
        f: impl FnOnce(Offsets, Committed<'_>) -> R,
    ) -> Result<R, ReadError> {
        let st = lock(&self.state);
        let (offsets, found) = locate(&st, offset, max_bytes)?;
        let records = match found {
            None => Committed {
                bytes: &[],
                segment: None,
                start: 0,
            },
            Some(at) => {
                let segment = &st.segments[at.segment];
                let bytes = segment
                    .committed()
                    .get(at.start..at.end)
                    .ok_or_else(|| ReadError::Io("read past committed length".into()))?;
                Committed {
                    bytes,
                    segment: Some(segment),
                    start: at.start as u64,
                }
            }
        };
        Ok(f(offsets, records))
    }

    /// [`PartitionLog::read_with`] for a read_committed reader: the records end before
    /// the last stable offset, and `f` also gets the LSO and the aborted transactions
    /// overlapping what is returned (from `offset` to the end of the records).
    pub(crate) fn read_committed_with<R>(
        &self,
        offset: i64,
        max_bytes: usize,
        f: impl FnOnce(
            Offsets,
            i64,
            Committed<'_>,
            &mut dyn FnMut(&mut dyn FnMut(&txn_index::AbortedTxn)) -> usize,
        ) -> R,
    ) -> Result<R, ReadError> {
        let st = lock(&self.state);
        let (offsets, found) = locate(&st, offset, max_bytes)?;
        let (mut records, segment, start) = match found {
            None => (&[][..], None, 0),
            Some(at) => {
                let segment = &st.segments[at.segment];
                let bytes = segment
                    .committed()
                    .get(at.start..at.end)
                    .ok_or_else(|| ReadError::Io("read past committed length".into()))?;
                (bytes, Some(segment), at.start as u64)
            }
        };
        let lso = st.txns.last_stable_offset(offsets.log_end_offset);
        let mut end_offset = offset;
        if !st.txns.is_empty() {
            // Whole batches below the LSO only; note where they end.
            let mut keep = 0usize;
            for b in Batches::new(records) {
                let Ok(b) = b else { break };
                if b.base_offset() >= lso {
                    break;
                }
                keep += b.total_bytes();
                end_offset = end_offset.max(b.last_offset() + 1);
            }
            records = &records[..keep];
        }
        let txns = &st.txns;
        let mut each_aborted = |g: &mut dyn FnMut(&txn_index::AbortedTxn)| {
            let mut n = 0;
            for a in txns.aborted_overlapping(offset, end_offset) {
                g(a);
                n += 1;
            }
            n
        };
        let records = Committed {
            bytes: records,
            segment,
            start,
        };
        Ok(f(offsets, lso, records, &mut each_aborted))
    }

    /// The last stable offset (ListOffsets with read_committed).
    pub(crate) fn last_stable_offset(&self) -> i64 {
        let st = lock(&self.state);
        st.txns.last_stable_offset(st.next_offset)
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// The first record with a timestamp at least `timestamp_ms`, as Kafka answers it:
    /// a linear scan of batch headers (skipping whole segments by their max timestamp)
    /// finds the first batch whose max timestamp qualifies; unless its first record
    /// already does, that batch is copied out and its records (decompressed when
    /// needed) are searched without the partition lock.
    pub(crate) fn offset_for_timestamp(&self, timestamp_ms: i64) -> Option<(i64, i64)> {
        let (candidate, log_start_offset) = {
            let st = lock(&self.state);
            let log_start_offset = st.log_start_offset;
            let mut found = None;
            'segments: for segment in st
                .segments
                .iter()
                .filter(|s| s.max_timestamp >= timestamp_ms)
            {
                for b in Batches::new(segment.committed()) {
                    let Ok(b) = b else { break };
                    // Below the log start offset (DeleteRecords): no longer served.
                    if b.last_offset() < log_start_offset {
                        continue;
                    }
                    if b.max_timestamp() >= timestamp_ms {
                        found = Some(if b.base_timestamp() >= timestamp_ms {
                            Ok((b.base_offset(), b.base_timestamp()))
                        } else {
                            Err((b.base_offset(), b.max_timestamp(), b.as_bytes().to_vec()))
                        });
                        break 'segments;
                    }
                }
            }
            (found?, log_start_offset)
        };
        let hit = match candidate {
            Ok(hit) => Some(hit),
            // A batch that does not decode still answers at batch granularity.
            Err((base_offset, max_timestamp, bytes)) => {
                first_record_at_or_after(&bytes, timestamp_ms)
                    .ok()
                    .flatten()
                    .or(Some((base_offset, max_timestamp)))
            }
        };
        // A batch that straddles the log start offset answers from the start on.
        hit.map(|(offset, ts)| (offset.max(log_start_offset), ts))
    }

    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        lock(&self.state)
            .max_timestamp
            .map(|(ts, offset)| (offset, ts))
    }

    /// Deletes the oldest sealed segments that Kafka's retention rules expire, never
    /// the active one, and moves the log start offset to the first one left:
    /// - first the segments wholly below the log start offset (moved by DeleteRecords,
    ///   Kafka's `deleteLogStartOffsetBreachedSegments`), whatever the policy;
    /// - time: from the oldest on, while a segment's largest timestamp is more than
    ///   `retention_ms` before `now_ms` (Kafka's `deleteRetentionMsBreachedSegments`);
    /// - size: then, while the partition would still hold at least `retention_bytes`
    ///   without the oldest segment, that segment goes
    ///   (`deleteRetentionSizeBreachedSegments`).
    ///
    /// The partition lock is held only to detach the segments; unlinking and
    /// unmapping happen after it is released. A reader holding `Bytes` of a deleted
    /// segment keeps its mapping (and so its pages) alive. Returns what was deleted.
    pub(crate) fn apply_retention(
        &self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Option<RetentionDeleted> {
        let (removed, log_start_offset) = {
            let mut st = lock(&self.state);
            let sealed = st.segments.len().saturating_sub(1);
            // Segments wholly below a log start offset that DeleteRecords moved.
            let log_start_offset = st.log_start_offset;
            let mut count = st.segments[..sealed]
                .iter()
                .take_while(|s| s.next_offset <= log_start_offset)
                .count();
            if policy.retention_ms >= 0 {
                count += st.segments[count..sealed]
                    .iter()
                    .take_while(|s| {
                        now_ms.saturating_sub(segment_largest_timestamp(s)) > policy.retention_ms
                    })
                    .count();
            }
            if policy.retention_bytes >= 0 {
                let size: u64 = st.segments[count..].iter().map(|s| s.len).sum();
                let retention_bytes = policy.retention_bytes as u64;
                if size > retention_bytes {
                    let mut excess = size - retention_bytes;
                    for s in &st.segments[count..sealed] {
                        if s.len > excess {
                            break;
                        }
                        excess -= s.len;
                        count += 1;
                    }
                }
            }
            if count == 0 {
                return None;
            }
            let removed: Vec<Segment> = st.segments.drain(..count).collect();
            // The active segment is never removed, so one segment is left.
            let new_start = st
                .segments
                .first()
                .map_or(st.next_offset, |s| s.base_offset);
            st.log_start_offset = st.log_start_offset.max(new_start);
            if st
                .max_timestamp
                .is_some_and(|(_, offset)| offset < st.log_start_offset)
            {
                st.max_timestamp = recompute_max_timestamp(&st.segments);
            }
            (removed, st.log_start_offset)
        };
        let mut deleted = RetentionDeleted {
            segments: removed.len(),
            bytes: removed.iter().map(|s| s.len).sum(),
            log_start_offset,
        };
        for segment in &removed {
            // Oldest first: a crash in between leaves a prefix deleted, which restart
            // reads as a later log start offset, never as a hole.
            if let Err(e) = fs::remove_file(&segment.path) {
                tracing::warn!(segment = %segment.path.display(), error = %e, "cannot delete expired segment");
                deleted.segments -= 1;
            }
        }
        if self.flush.get() == FlushPolicy::Always {
            if let Err(e) = sync_dir(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "fsync after retention failed");
            }
        }
        // Dropping `removed` unmaps each segment unless a reader still holds its bytes.
        drop(removed);
        Some(deleted)
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        lock(&self.state).segments.iter().map(|s| s.len).sum()
    }

    /// See [`crate::storage::Partition::prefaulted_ahead_bytes`].
    pub(crate) fn prefaulted_ahead_bytes(&self) -> Option<u64> {
        self.opts.window.as_ref()?;
        let st = lock(&self.state);
        Some(
            st.segments
                .last()
                .map_or(0, |segment| segment.prefaulted_ahead_bytes()),
        )
    }

    /// msyncs everything committed and not yet flushed. The msync runs without the
    /// partition lock so appends continue meanwhile.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let dirty = take_dirty(&mut lock(&self.state));
        self.flush_dirty(dirty)
    }

    fn flush_dirty(&self, dirty: Vec<DirtyRange>) -> io::Result<()> {
        if dirty.is_empty() {
            return Ok(());
        }
        for range in &dirty {
            Segment::flush_range(&range.map, range.from, range.to)?;
        }
        let mut st = lock(&self.state);
        for range in &dirty {
            if let Some(s) = st
                .segments
                .iter_mut()
                .find(|s| s.base_offset == range.segment_base_offset)
            {
                s.flushed_len = s.flushed_len.max(range.to);
            }
        }
        Ok(())
    }
}

/// Where a read of `offset` finds its batches: segment index and byte range.
struct Located {
    segment: usize,
    start: usize,
    end: usize,
}

/// Finds the whole batches starting with the one that contains `offset`, up to
/// `max_bytes` in total but at least one batch (see `Partition::read`).
fn locate(
    st: &LogState,
    offset: i64,
    max_bytes: usize,
) -> Result<(Offsets, Option<Located>), ReadError> {
    let offsets = Offsets {
        log_start_offset: st.log_start_offset,
        log_end_offset: st.next_offset,
    };
    if offset < offsets.log_start_offset || offset > offsets.log_end_offset {
        return Err(ReadError::OffsetOutOfRange);
    }
    let corrupt = |e: BatchError| ReadError::Io(format!("corrupt committed batch: {e}"));
    let first = st
        .segments
        .partition_point(|s| s.base_offset <= offset)
        .saturating_sub(1);
    for (i, segment) in st.segments.iter().enumerate().skip(first) {
        // Skips segments wholly below `offset` (possible after a recovered gap).
        if segment.next_offset <= offset {
            continue;
        }
        let data = segment.committed();
        let mut start = segment.scan_start(offset) as usize;
        let first_batch = loop {
            if start >= data.len() {
                break None;
            }
            let b = RecordBatch::parse(&data[start..]).map_err(corrupt)?;
            if b.last_offset() >= offset {
                break Some(b);
            }
            start += b.total_bytes();
        };
        let Some(first_batch) = first_batch else {
            continue;
        };
        let mut end = start + first_batch.total_bytes();
        while end < data.len() {
            let b = RecordBatch::parse(&data[end..]).map_err(corrupt)?;
            if end + b.total_bytes() - start > max_bytes {
                break;
            }
            end += b.total_bytes();
        }
        let at = Located {
            segment: i,
            start,
            end,
        };
        return Ok((offsets, Some(at)));
    }
    Ok((offsets, None))
}

/// A segment's largest timestamp as Kafka's time retention uses it: the largest batch
/// max timestamp, or the file's modification time when no batch carried a timestamp.
fn segment_largest_timestamp(segment: &Segment) -> i64 {
    if segment.max_timestamp >= 0 {
        return segment.max_timestamp;
    }
    fs::metadata(&segment.path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(i64::MAX)
}

/// (max timestamp, offset of its batch's last record) over `segments`, scanning the
/// batch headers of the one segment that holds it. Only needed when retention
/// deleted the batch that held the old maximum.
fn recompute_max_timestamp(segments: &[Segment]) -> Option<(i64, i64)> {
    let best = segments
        .iter()
        .filter(|s| s.len > 0)
        .max_by_key(|s| s.max_timestamp)?;
    let mut found: Option<(i64, i64)> = None;
    for b in Batches::new(best.committed()) {
        let Ok(b) = b else { break };
        if found.is_none_or(|(ts, _)| b.max_timestamp() > ts) {
            found = Some((b.max_timestamp(), b.last_offset()));
        }
    }
    found
}

/// Ranges committed but not yet flushed. Sealed segments are included until flushed.
fn take_dirty(st: &mut LogState) -> Vec<DirtyRange> {
    st.last_flush = Instant::now();
    st.segments
        .iter()
        .filter(|s| s.flushed_len < s.len)
        .map(|s| DirtyRange {
            map: s.map(),
            segment_base_offset: s.base_offset,
            from: s.flushed_len,
            to: s.len,
        })
        .collect()
}

/// Scans a segment's batches from the start, stops at the first invalid one, cuts
/// everything after it, and feeds the valid batches to the index, the producer
/// state and the max timestamp. CRCs are checked only on the active segment; a sealed
/// one is also cut where it would run into the next segment's offsets.
fn recover_segment(
    segment: &mut Segment,
    file_len: u64,
    expected_offset: i64,
    next_segment_base: Option<i64>,
    st: &mut LogState,
    cfg: &StorageConfig,
) -> Result<(), StorageError> {
    struct Seen {
        position: u64,
        base_offset: i64,
        total_bytes: u64,
        next_offset: i64,
        max_timestamp: i64,
    }
    // Only the active segment (no next one) is CRC-checked: a sealed one was synced
    // whole before the next one began. It must still end where the next one begins: a
    // batch running past that is damage in this segment (appended by something else),
    // and accepting it would make the whole next segment look like a duplicate.
    let is_active = next_segment_base.is_none();
    let mut seen = Vec::new();
    let mut stop_reason: Option<String> = None;
    let path = segment.path.clone();
    let scan_len = file_len.min(segment.capacity()) as usize;
    let data = &segment.mapped_for_recovery()[..scan_len];
    let mut batches = Batches::new(data);
    let mut next = expected_offset;
    let mut valid_len = 0u64;
    for item in batches.by_ref() {
        let b = match item {
            Ok(b) => b,
            Err(e) => {
                stop_reason = Some(e.to_string());
                break;
            }
        };
        if is_active {
            if let Err(e) = b.verify_crc() {
                stop_reason = Some(e.to_string());
                break;
            }
        }
        if b.base_offset() < next || b.last_offset_delta() < 0 {
            stop_reason = Some(format!(
                "batch offset {} below expected {next}",
                b.base_offset()
            ));
            break;
        }
        if let Some(next_base) = next_segment_base {
            if b.last_offset() >= next_base {
                stop_reason = Some(format!(
                    "batch offsets {}..={} run into the next segment at {next_base}",
                    b.base_offset(),
                    b.last_offset()
                ));
                break;
            }
        }
        seen.push(Seen {
            position: valid_len,
            base_offset: b.base_offset(),
            total_bytes: b.total_bytes() as u64,
            next_offset: b.last_offset() + 1,
            max_timestamp: b.max_timestamp(),
        });
        st.producers.replay(&b);
        if b.is_transactional() {
            let marker = b.is_control().then(|| {
                crate::protocol::batch::control_type(b.as_bytes())
                    == Some(crate::protocol::batch::CONTROL_TYPE_COMMIT)
            });
            st.txns.on_batch(b.producer_id(), b.base_offset(), marker);
        }
        if st
            .max_timestamp
            .is_none_or(|(ts, _)| b.max_timestamp() > ts)
        {
            st.max_timestamp = Some((b.max_timestamp(), b.last_offset()));
        }
        next = b.last_offset() + 1;
        valid_len += b.total_bytes() as u64;
    }

    if (valid_len as usize) < scan_len {
        // Zeros after the valid end are the sparse preallocated tail, not damage.
        let look_end = segment
            .data_end_from(valid_len)
            .min(valid_len + MAX_GARBAGE_SCAN_BYTES)
            .min(scan_len as u64);
        let tail = &segment.mapped_for_recovery()[valid_len as usize..look_end as usize];
        if let Some(last_nonzero) = tail.iter().rposition(|&b| b != 0) {
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = valid_len,
                cut_bytes = last_nonzero + 1,
                reason = stop_reason.as_deref().unwrap_or("invalid batch"),
                "truncating invalid tail of segment"
            );
        }
    }
    if valid_len != file_len || is_active {
        segment.truncate_to(valid_len)?;
    } else {
        segment.set_recovered_len(valid_len);
    }
    segment.next_offset = expected_offset.max(segment.base_offset);
    for s in seen {
        segment.note_batch(
            s.position,
            s.base_offset,
            s.total_bytes,
            s.next_offset,
            s.max_timestamp,
            cfg.index_interval_bytes,
        );
    }
    Ok(())
}
