//! What a topic's configs change on the append path (`storage/topic_config.rs` has
//! the table): `max.message.bytes`, `segment.bytes`, `segment.ms`,
//! `message.timestamp.type=LogAppendTime`, and keys required by
//! `cleanup.policy=compact`. Kept apart from the append itself so that a topic
//! without configs pays one relaxed load per append ([`PartitionLog::overrides`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::protocol::batch::{keyless_records, Batches};

use super::{batch_error_to_append, LogState, PartitionLog, ValidBatch};
use crate::storage::{AppendError, LogOverrides};

impl PartitionLog {
    /// Replaces the topic's overrides (topic created, opened or altered).
    pub(crate) fn set_overrides(&self, overrides: LogOverrides) {
        let mut current = self
            .overrides
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = overrides;
        self.has_overrides
            .store(overrides != LogOverrides::NONE, Ordering::Release);
    }

    /// The overrides an append follows: `NONE` without touching the mutex unless the
    /// topic has configs.
    pub(super) fn overrides(&self) -> LogOverrides {
        if !self.has_overrides.load(Ordering::Acquire) {
            return LogOverrides::NONE;
        }
        *self
            .overrides
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether the active segment must roll before `total_bytes` more: it holds data
/// and either `segment.bytes` (smaller than the broker's, so not its capacity) would
/// be passed, or it is older than `segment.ms`.
pub(super) fn roll_due(st: &LogState, total_bytes: u64, overrides: &LogOverrides) -> bool {
    let Some(active) = st.segments.last() else {
        return false;
    };
    if active.len == 0 {
        return false;
    }
    let too_big = overrides
        .segment_bytes
        .is_some_and(|limit| active.len.saturating_add(total_bytes) > limit);
    let too_old = overrides
        .segment_ms
        .is_some_and(|ms| st.active_since.elapsed() >= Duration::from_millis(ms));
    too_big || too_old
}

/// The topic-config checks and stamps of one append's batches (already validated in
/// `valid`): keys required on a compacted topic (every keyless record of the append is
/// reported, KIP-467), and the LogAppendTime stamp.
pub(super) fn apply_to_batches(
    records: &[u8],
    valid: &mut [ValidBatch],
    overrides: &LogOverrides,
) -> Result<(), AppendError> {
    if overrides.keys_required {
        let mut keyless = Vec::new();
        let mut index = 0i32;
        for item in Batches::new(records) {
            let b = item.map_err(batch_error_to_append)?;
            // Control batches (transaction markers) carry their own keys.
            if b.is_control() {
                continue;
            }
            let read =
                keyless_records(b.as_bytes(), index, &mut keyless).map_err(AppendError::Records)?;
            index = index.saturating_add(read);
        }
        if !keyless.is_empty() {
            return Err(AppendError::KeylessRecords(keyless));
        }
    }
    if overrides.log_append_time {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        for b in valid.iter_mut() {
            b.log_append_time = true;
            b.repaired_max_timestamp = Some(now_ms);
            b.max_timestamp = now_ms;
        }
    }
    Ok(())
}
