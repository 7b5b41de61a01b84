//! Log compaction of `cleanup.policy=compact` topics (Kafka's log cleaner, simplified),
//! run by the retention thread, never on a data-plane thread.
//!
//! A pass over one partition, when the sealed segments not yet compacted since the
//! broker started are at least `min.cleanable.dirty.ratio` of the sealed bytes:
//! 1. Under the partition lock, take zero-copy views of the sealed segments (the
//!    active one is never touched), oldest first, up to [`PASS_BYTES_MAX`].
//! 2. Without the lock, map each key to the offset of its latest record over those
//!    segments (keys stored whole, so no hash collision can drop a record; at most
//!    [`KEY_MAP_BYTES_MAX`] of keys: beyond, the remaining segments wait for a later
//!    pass).
//! 3. For each segment, oldest first: keep a record when it is the latest of its key
//!    (records without a key and control batches are always kept); drop a latest
//!    record that is a tombstone once its batch's max timestamp is more than
//!    `delete.retention.ms` old. A batch that lost records is rewritten uncompressed
//!    with the same base offset and last offset delta, so no offset changes; a batch
//!    that lost them all is dropped (librdkafka refuses a fetch answer holding only an
//!    empty batch), leaving a gap of offsets that readers skip as on Kafka. The
//!    result goes to `<segment>.cleaned`, fsynced, then under the lock renamed over
//!    the segment (directory fsynced) and swapped into the log; a segment left with
//!    nothing is deleted instead (the log start offset moves past it when it was the
//!    first, as after retention). A crash leaves the old segment or the new one,
//!    whole; a leftover `.cleaned` file is removed on start-up. Oldest first means a
//!    crash between two swaps can never resurrect a value whose tombstone was
//!    dropped.
//!
//! Transactions: only segments wholly below the last stable offset are compacted,
//! and records of aborted transactions never count as the latest of their key (so
//! one is dropped when its key has a later record in the pass, kept otherwise;
//! read_committed readers skip them either way).
//!
//! Readers holding bytes of a replaced segment keep its old mapping (the inode lives
//! until they drop it). Not compacted: the active segment, and records superseded
//! only by records in it (as in Kafka).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::{lock, recompute_max_timestamp, recover_segment, LogState, PartitionLog};
use crate::protocol::batch::{batch_records, for_each_record, rebuild_batch, Batches};
use crate::storage::producer::ProducerStates;
use crate::storage::segment::{sync_dir, Segment};
use crate::storage::StorageError;

/// Sealed segment bytes one pass over one partition looks at.
pub const PASS_BYTES_MAX: u64 = 256 << 20;
/// Memory the key map of one pass may hold (key bytes plus a per-entry overhead).
pub const KEY_MAP_BYTES_MAX: usize = 64 << 20;
const KEY_ENTRY_OVERHEAD_BYTES: usize = 64;
/// Suffix of a segment being rewritten.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

/// A compacted topic's settings (`min.cleanable.dirty.ratio`, `delete.retention.ms`,
/// `max.compaction.lag.ms`).
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    pub min_cleanable_dirty_ratio: f64,
    pub delete_retention_ms: i64,
    /// A dirty sealed segment whose newest record is older than this is compacted
    /// whatever the dirty ratio (Kafka's bound on how long a record stays uncompacted;
    /// Kafka measures from the segment's first record, so this fires no earlier).
    pub max_compaction_lag_ms: i64,
}

/// What one pass did to one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A sealed segment as the pass saw it.
struct SealedView {
    base_offset: i64,
    len: u64,
    path: PathBuf,
    /// The base offset of the segment after it (where this one must still end).
    next_base: i64,
    data: Bytes,
}

impl PartitionLog {
    /// One compaction pass (module doc); `Ok(None)` when nothing was due.
    pub(crate) fn compact(
        &self,
        policy: CompactionPolicy,
        now_ms: i64,
    ) -> Result<Option<Compacted>, StorageError> {
        if self.is_deleted() {
            return Ok(None);
        }
        let (views, aborted) = match self.cleanable_segments(policy, now_ms)? {
            Some(v) => v,
            None => return Ok(None),
        };
        let latest = latest_offsets(&views, &aborted)?;
        let horizon_ms = now_ms.saturating_sub(policy.delete_retention_ms);
        let mut done = Compacted::default();
        let mut cleaned_to = self.compacted_up_to.load(Ordering::Acquire);
        for view in &views {
            let Some(rewritten) = rewrite_segment(view, &latest, horizon_ms)? else {
                cleaned_to = cleaned_to.max(view.next_base);
                continue;
            };
            let (bytes, removed) = rewritten;
            if self.swap_in(view, &bytes)? {
                done.segments_rewritten += 1;
                done.records_removed += removed;
                done.bytes_before += view.len;
                done.bytes_after += bytes.len() as u64;
            }
            cleaned_to = cleaned_to.max(view.next_base);
        }
        self.compacted_up_to.store(cleaned_to, Ordering::Release);
        Ok(Some(done))
    }

    /// The sealed segments of this pass (only those wholly below the last stable
    /// offset: an undecided transaction's records must not supersede anything), with
    /// the aborted transactions by producer id, or None when the dirty ratio is not
    /// reached.
    fn cleanable_segments(
        &self,
        policy: CompactionPolicy,
        now_ms: i64,
    ) -> Result<Option<(Vec<SealedView>, AbortedByProducer)>, StorageError> {
        let st = lock(&self.state);
        let lso = st.txns.last_stable_offset(st.next_offset);
        let sealed = st.segments.len().saturating_sub(1);
        if sealed == 0 {
            return Ok(None);
        }
        let compacted_up_to = self.compacted_up_to.load(Ordering::Acquire);
        let total: u64 = st.segments[..sealed].iter().map(|s| s.len).sum();
        let dirty: u64 = st.segments[..sealed]
            .iter()
            .filter(|s| s.base_offset >= compacted_up_to)
            .map(|s| s.len)
            .sum();
        // max.compaction.lag.ms: the oldest dirty sealed segment's newest record is due.
        let overdue = st.segments[..sealed]
            .iter()
            .find(|s| s.base_offset >= compacted_up_to && s.len > 0)
            .is_some_and(|s| {
                s.max_timestamp != i64::MIN
                    && now_ms.saturating_sub(s.max_timestamp) > policy.max_compaction_lag_ms
            });
        if total == 0
            || dirty == 0
            || ((dirty as f64) / (total as f64) < policy.min_cleanable_dirty_ratio && !overdue)
        {
            return Ok(None);
        }
        let mut views = Vec::new();
        let mut taken = 0u64;
        for (i, s) in st.segments[..sealed].iter().enumerate() {
            if taken > 0 && taken + s.len > PASS_BYTES_MAX {
                break;
            }
            if st.segments[i + 1].base_offset > lso {
                break;
            }
            taken += s.len;
            let data = s.bytes(0, s.len).ok_or_else(|| StorageError::Corrupt {
                path: s.path.clone(),
                reason: "sealed segment shorter than its length".into(),
            })?;
            views.push(SealedView {
                base_offset: s.base_offset,
                len: s.len,
                path: s.path.clone(),
                next_base: st.segments[i + 1].base_offset,
                data,
            });
        }
        if views.is_empty() {
            return Ok(None);
        }
        let from = views.first().map_or(0, |v| v.base_offset);
        let to = views.last().map_or(0, |v| v.next_base);
        let mut aborted: AbortedByProducer = HashMap::new();
        for a in st.txns.aborted_overlapping(from, to) {
            aborted
                .entry(a.producer_id)
                .or_default()
                .push((a.first_offset, a.last_offset));
        }
        Ok(Some((views, aborted)))
    }

    /// Writes `bytes` as the new content of `view`'s segment and swaps it in, unless
    /// the segment went away meanwhile (retention, DeleteRecords). True when swapped.
    fn swap_in(&self, view: &SealedView, bytes: &[u8]) -> Result<bool, StorageError> {
        if bytes.is_empty() {
            return self.remove_emptied(view);
        }
        let mut cleaned_name = view.path.as_os_str().to_owned();
        cleaned_name.push(CLEANED_SUFFIX);
        let cleaned = PathBuf::from(cleaned_name);
        {
            let mut file = fs::File::create(&cleaned)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        let mut segment = Segment::open(&cleaned, view.base_offset, 0, &self.opts)?;
        // Recovery builds the sparse index and checks the rewritten batches; its
        // producer and timestamp findings are not wanted here.
        let mut scratch = LogState {
            segments: Vec::new(),
            log_start_offset: view.base_offset,
            next_offset: view.base_offset,
            producers: ProducerStates::default(),
            txns: super::txn_index::TxnIndex::default(),
            max_timestamp: None,
            last_flush: Instant::now(),
            active_since: Instant::now(),
        };
        recover_segment(
            &mut segment,
            bytes.len() as u64,
            view.base_offset,
            Some(view.next_base),
            &mut scratch,
            &self.cfg,
        )?;
        if segment.len != bytes.len() as u64 {
            let _ = fs::remove_file(&cleaned);
            return Err(StorageError::Corrupt {
                path: cleaned,
                reason: "rewritten segment does not read back whole".into(),
            });
        }
        let mut st = lock(&self.state);
        let sealed = st.segments.len().saturating_sub(1);
        let Some(at) = st.segments[..sealed]
            .iter()
            .position(|s| s.base_offset == view.base_offset && s.len == view.len)
        else {
            drop(st);
            let _ = fs::remove_file(&cleaned);
            return Ok(false);
        };
        fs::rename(&cleaned, &view.path)?;
        sync_dir(&self.dir)?;
        segment.path = view.path.clone();
        segment.sealed = true;
        st.segments[at] = segment;
        st.max_timestamp = recompute_max_timestamp(&st.segments);
        Ok(true)
    }
}

impl PartitionLog {
    /// Deletes a sealed segment that compaction emptied (oldest-first order, so the
    /// values it held are superseded by records that stay).
    fn remove_emptied(&self, view: &SealedView) -> Result<bool, StorageError> {
        let removed = {
            let mut st = lock(&self.state);
            let sealed = st.segments.len().saturating_sub(1);
            let Some(at) = st.segments[..sealed]
                .iter()
                .position(|s| s.base_offset == view.base_offset && s.len == view.len)
            else {
                return Ok(false);
            };
            let removed = st.segments.remove(at);
            if at == 0 {
                let next_base = st
                    .segments
                    .first()
                    .map_or(st.next_offset, |s| s.base_offset);
                st.log_start_offset = st.log_start_offset.max(next_base);
            }
            st.max_timestamp = recompute_max_timestamp(&st.segments);
            removed
        };
        fs::remove_file(&removed.path)?;
        sync_dir(&self.dir)?;
        Ok(true)
    }
}

/// What the rewrite needs to know about the segments of a pass.
struct Latest {
    /// Key → offset of its latest record, bounded by [`KEY_MAP_BYTES_MAX`].
    offsets: HashMap<Vec<u8>, i64>,
    /// Producer id → base offset of its last batch: that batch is never dropped
    /// whole, so idempotent producer state rebuilt on start-up stays what it was
    /// (Kafka keeps the last batch of every producer for the same reason).
    last_batch_of_producer: HashMap<i64, i64>,
}

/// Aborted transactions of a pass: producer id → (first offset, marker offset).
type AbortedByProducer = HashMap<i64, Vec<(i64, i64)>>;

/// Whether the transactional batch of `producer_id` at `base_offset` was aborted.
fn is_aborted(aborted: &AbortedByProducer, producer_id: i64, base_offset: i64) -> bool {
    aborted.get(&producer_id).is_some_and(|ranges| {
        ranges
            .iter()
            .any(|&(first, last)| first <= base_offset && base_offset <= last)
    })
}

/// Builds [`Latest`] over `views`. Records of aborted transactions never become the
/// latest of their key (Kafka's cleaner discards them first): a committed value is
/// never dropped in favour of one read_committed readers cannot see.
fn latest_offsets(
    views: &[SealedView],
    aborted: &AbortedByProducer,
) -> Result<Latest, StorageError> {
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut last_batch_of_producer: HashMap<i64, i64> = HashMap::new();
    let mut bytes = 0usize;
    'segments: for view in views {
        for item in Batches::new(&view.data) {
            let b = item.map_err(|e| corrupt(view, e.to_string()))?;
            if b.producer_id() >= 0 {
                last_batch_of_producer.insert(b.producer_id(), b.base_offset());
            }
            if b.is_control() {
                continue;
            }
            if b.is_transactional() && is_aborted(aborted, b.producer_id(), b.base_offset()) {
                continue;
            }
            let records = batch_records(&b).map_err(|e| corrupt(view, e.to_string()))?;
            let base = b.base_offset();
            let mut full = false;
            for_each_record(&records, b.records_count(), |r| {
                let Some(key) = r.key else { return };
                let offset = base.saturating_add(r.offset_delta);
                if let Some(at) = latest.get_mut(key) {
                    *at = (*at).max(offset);
                } else if bytes + key.len() + KEY_ENTRY_OVERHEAD_BYTES <= KEY_MAP_BYTES_MAX {
                    bytes += key.len() + KEY_ENTRY_OVERHEAD_BYTES;
                    latest.insert(key.to_vec(), offset);
                } else {
                    full = true;
                }
            })
            .map_err(|e| corrupt(view, e.to_string()))?;
            if full {
                // Keys not mapped are kept wherever they are; nothing is lost.
                tracing::info!(segment = %view.path.display(), "compaction key map full; the rest waits for a later pass");
                break 'segments;
            }
        }
    }
    Ok(Latest {
        offsets: latest,
        last_batch_of_producer,
    })
}

fn corrupt(view: &SealedView, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: view.path.clone(),
        reason: format!("compaction cannot read a batch: {reason}"),
    }
}

/// The compacted content of one segment and the number of records removed, or None
/// when nothing would be removed.
fn rewrite_segment(
    view: &SealedView,
    latest: &Latest,
    horizon_ms: i64,
) -> Result<Option<(Vec<u8>, u64)>, StorageError> {
    let mut out = Vec::with_capacity(view.data.len());
    let mut removed = 0u64;
    for item in Batches::new(&view.data) {
        let b = &item.map_err(|e| corrupt(view, e.to_string()))?;
        if b.is_control() {
            out.extend_from_slice(b.as_bytes());
            continue;
        }
        let records = batch_records(b).map_err(|e| corrupt(view, e.to_string()))?;
        let base = b.base_offset();
        let expired_tombstones = b.max_timestamp() < horizon_ms;
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut all = true;
        for_each_record(&records, b.records_count(), |r| {
            let keep = match r.key {
                None => true,
                Some(key) => match latest.offsets.get(key) {
                    // Not in the map (it filled up): kept.
                    None => true,
                    Some(&at) => {
                        let offset = base.saturating_add(r.offset_delta);
                        offset >= at && !(r.is_tombstone && expired_tombstones)
                    }
                },
            };
            if keep {
                kept.push(r.raw);
            } else {
                all = false;
            }
        })
        .map_err(|e| corrupt(view, e.to_string()))?;
        if all {
            out.extend_from_slice(b.as_bytes());
            continue;
        }
        let producers_last = b.producer_id() >= 0
            && latest.last_batch_of_producer.get(&b.producer_id()) == Some(&b.base_offset());
        if kept.is_empty() && producers_last {
            out.extend_from_slice(b.as_bytes());
            continue;
        }
        removed += u64::try_from(b.records_count()).unwrap_or(0) - kept.len() as u64;
        if kept.is_empty() {
            continue;
        }
        rebuild_batch(b, &kept, &mut out).map_err(|e| corrupt(view, e.to_string()))?;
    }
    Ok((removed > 0).then_some((out, removed)))
}
