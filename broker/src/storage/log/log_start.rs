//! Moving a partition's log start offset on request (Kafka's DeleteRecords), and the
//! checkpoint file that makes such a move survive a restart and a kill -9.
//!
//! Retention moves the log start offset by deleting whole segments, so after a restart
//! it is the first segment's base offset. DeleteRecords can move it into the middle of
//! a segment, which no segment file records: the offset is written to
//! `log-start-offset` in the partition directory (to a temporary file, fsynced, then
//! renamed over the old one and the directory fsynced) *before* the new start becomes
//! visible and the request is acknowledged. On open the log start offset is the larger
//! of the first segment's base offset and the checkpoint. Segments wholly below the
//! log start offset are deleted by the retention thread (`apply_retention`).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::{lock, LogState, PartitionLog};
use crate::storage::segment::sync_dir;

/// The checkpoint's file name in the partition directory.
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
/// Where a new checkpoint is written before it is renamed over the old one.
const LOG_START_TMP_FILE: &str = "log-start-offset.tmp";
/// The checkpoint's content is one decimal i64 and a newline; anything longer is not
/// ours and is ignored.
const LOG_START_FILE_BYTES_MAX: u64 = 32;

/// Why the log start offset could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    /// The offset is above the high watermark, or negative other than -1.
    #[error("offset {offset} is outside [0, {high_watermark}] (-1 = the high watermark)")]
    OffsetOutOfRange { offset: i64, high_watermark: i64 },
    /// The checkpoint could not be written: nothing was moved.
    #[error("writing the log start offset: {0}")]
    Io(#[from] io::Error),
    #[error("partition was deleted")]
    Deleted,
}

/// The "delete up to the high watermark" offset of DeleteRecords.
pub const DELETE_RECORDS_HIGH_WATERMARK: i64 = -1;

impl PartitionLog {
    /// Moves the log start offset up to `offset` (-1 = the high watermark), as Kafka's
    /// DeleteRecords: an offset above the high watermark or below -1 is out of range,
    /// an offset at or below the current start changes nothing. Returns the log start
    /// offset afterwards (the response's low watermark). Records below it are no
    /// longer served; their segments go on the retention thread's next pass.
    pub(crate) fn delete_records_before(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        if self.is_deleted() {
            return Err(DeleteRecordsError::Deleted);
        }
        // One move at a time per partition, so checkpoints are written in order; the
        // data lock is not held across the file I/O.
        let _one_at_a_time = self
            .start_checkpoint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (target, current) = {
            let st = lock(&self.state);
            let high_watermark = st.next_offset;
            let target = if offset == DELETE_RECORDS_HIGH_WATERMARK {
                high_watermark
            } else {
                offset
            };
            if target < 0 || target > high_watermark {
                return Err(DeleteRecordsError::OffsetOutOfRange {
                    offset,
                    high_watermark,
                });
            }
            (target, st.log_start_offset)
        };
        if target <= current {
            return Ok(current);
        }
        write_checkpoint(&self.dir, target)?;
        let mut st = lock(&self.state);
        st.log_start_offset = st.log_start_offset.max(target);
        if st
            .max_timestamp
            .is_some_and(|(_, last)| last < st.log_start_offset)
        {
            // The maximum's batch is no longer served; ListOffsets -3 falls back to the
            // maximum over what remains (segment granularity, as after retention).
            st.max_timestamp = super::recompute_max_timestamp(&st.segments);
        }
        Ok(st.log_start_offset)
    }
}

/// The log start offset recovered on open: the first segment's base offset, raised to
/// the checkpoint when one exists, and never above the log end (a checkpoint beyond a
/// torn tail means everything that survived was deleted).
pub(super) fn recovered_log_start_offset(dir: &Path, st: &LogState) -> i64 {
    let from_segments = st.log_start_offset;
    match read_checkpoint(dir) {
        Ok(Some(checkpoint)) => from_segments.max(checkpoint).min(st.next_offset),
        Ok(None) => from_segments,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "ignoring unreadable log start offset checkpoint");
            from_segments
        }
    }
}

fn read_checkpoint(dir: &Path) -> io::Result<Option<i64>> {
    let path = dir.join(LOG_START_FILE);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.len() > LOG_START_FILE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes, expected at most {LOG_START_FILE_BYTES_MAX}",
                meta.len()
            ),
        ));
    }
    let text = fs::read_to_string(&path)?;
    match text.trim().parse::<i64>() {
        Ok(offset) if offset >= 0 => Ok(Some(offset)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an offset: {:?}", text.trim()),
        )),
    }
}

/// Writes `offset` as the checkpoint: temporary file, fsync, rename, fsync of the
/// directory. A crash at any point leaves the old checkpoint or the new one.
fn write_checkpoint(dir: &Path, offset: i64) -> io::Result<()> {
    let tmp = dir.join(LOG_START_TMP_FILE);
    {
        let mut file = fs::File::create(&tmp)?;
        writeln!(file, "{offset}")?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(LOG_START_FILE))?;
    sync_dir(dir)
}
