//! The transaction apis over the coordinator (`crate::txn`), and the marker writer
//! the coordinator uses to append COMMIT/ABORT control batches to partitions.

use std::io;
use std::sync::Arc;

use crate::group::Waker;
use crate::protocol::batch::control_batch;
use crate::storage::{AppendError, Storage};
use crate::txn::Markers;

/// Writes transaction markers into storage and wakes parked fetches.
pub(crate) struct StorageMarkers {
    pub(crate) storage: Arc<Storage>,
    pub(crate) wake: Waker,
}

/// This broker's coordinator epoch in markers: one coordinator, never moved.
const COORDINATOR_EPOCH: i32 = 0;

impl Markers for StorageMarkers {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> io::Result<()> {
        let Some(p) = self.storage.partition(topic, partition) else {
            // Deleted meanwhile: nothing to mark.
            return Ok(());
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut batch = Vec::with_capacity(80);
        control_batch(
            &mut batch,
            producer_id,
            epoch,
            commit,
            COORDINATOR_EPOCH,
            now_ms,
        );
        match p.append(&batch) {
            Ok(_) => {
                (self.wake)();
                Ok(())
            }
            Err(AppendError::Io(e)) => Err(io::Error::other(e)),
            Err(e) => Err(io::Error::other(format!(
                "marker for {topic}-{partition} refused: {e}"
            ))),
        }
    }
}
