//! Per-partition index of transactions, for `read_committed` readers: the first offset
//! of each open transaction (the last stable offset is the smallest of them, else the
//! high watermark) and the aborted transactions (producer id, first offset, offset of
//! the ABORT marker) that a Fetch lists so the client can drop their records.
//!
//! Fed by appended batches that carry the transactional bit (one branch per batch on
//! the append path; a partition without transactions never touches it) and rebuilt
//! from the log's batches at recovery. Bounded: at most [`ABORTED_KEPT`] aborted
//! ranges and [`OPEN_KEPT`] open transactions; beyond, the oldest aborted ranges are
//! forgotten (a read_committed reader far behind could then see records of a very
//! old aborted transaction: documented in docs/transactions.md).

use std::collections::{HashMap, VecDeque};

/// Aborted transactions remembered per partition.
pub(crate) const ABORTED_KEPT: usize = 100_000;
/// Open transactions per partition (one per producer id at most; the coordinator's
/// `max_transactional_ids` bounds them anyway).
pub(crate) const OPEN_KEPT: usize = 100_000;

/// One aborted transaction of the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    /// Offset of the ABORT marker.
    pub(crate) last_offset: i64,
}

#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    /// Producer id → first offset of its open transaction.
    open: HashMap<i64, i64>,
    /// Ordered by `last_offset` (markers are appended in offset order).
    aborted: VecDeque<AbortedTxn>,
}

impl TxnIndex {
    /// A transactional batch at `base_offset`: data opens (or continues) the
    /// producer's transaction; a control batch (`control` = Some(commit?)) closes it,
    /// recording an abort.
    pub(crate) fn on_batch(&mut self, producer_id: i64, base_offset: i64, control: Option<bool>) {
        match control {
            None => {
                if self.open.len() < OPEN_KEPT || self.open.contains_key(&producer_id) {
                    self.open.entry(producer_id).or_insert(base_offset);
                }
            }
            Some(commit) => {
                let Some(first_offset) = self.open.remove(&producer_id) else {
                    // A marker with nothing open (a repeated marker after a restart,
                    // or an empty transaction): nothing to do.
                    return;
                };
                if !commit {
                    if self.aborted.len() >= ABORTED_KEPT {
                        self.aborted.pop_front();
                    }
                    self.aborted.push_back(AbortedTxn {
                        producer_id,
                        first_offset,
                        last_offset: base_offset,
                    });
                }
            }
        }
    }

    /// The last stable offset: the first offset of the earliest open transaction,
    /// else `high_watermark`.
    pub(crate) fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open
            .values()
            .copied()
            .min()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Aborted transactions that overlap the offsets `[from, to)`.
    pub(crate) fn aborted_overlapping(
        &self,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = &AbortedTxn> + Clone {
        // Entries are ordered by last_offset: skip those that ended before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .range(start..)
            .filter(move |a| a.first_offset < to)
    }

    /// Whether any transaction ever touched the partition (since start-up or in the
    /// recovered log): when not, read_committed costs nothing extra.
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty() && self.aborted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_and_aborted_ranges() {
        let mut idx = TxnIndex::default();
        assert_eq!(idx.last_stable_offset(10), 10);
        idx.on_batch(1, 10, None); // pid 1 opens at 10
        idx.on_batch(2, 12, None); // pid 2 opens at 12
        idx.on_batch(1, 13, None);
        assert_eq!(idx.last_stable_offset(20), 10);
        idx.on_batch(1, 14, Some(false)); // pid 1 aborted at 14
        assert_eq!(idx.last_stable_offset(20), 12);
        idx.on_batch(2, 15, Some(true)); // pid 2 committed
        assert_eq!(idx.last_stable_offset(20), 20);
        let a: Vec<_> = idx.aborted_overlapping(0, 20).copied().collect();
        assert_eq!(
            a,
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 14
            }]
        );
        assert_eq!(idx.aborted_overlapping(15, 20).count(), 0);
        assert_eq!(idx.aborted_overlapping(0, 10).count(), 0);
        assert_eq!(idx.aborted_overlapping(14, 15).count(), 1);
        // A repeated marker changes nothing.
        idx.on_batch(1, 16, Some(false));
        assert_eq!(idx.aborted_overlapping(0, 20).count(), 1);
    }

    #[test]
    fn aborted_ranges_are_bounded() {
        let mut idx = TxnIndex::default();
        for i in 0..(ABORTED_KEPT as i64 + 5) {
            idx.on_batch(7, 2 * i, None);
            idx.on_batch(7, 2 * i + 1, Some(false));
        }
        assert_eq!(idx.aborted.len(), ABORTED_KEPT);
        assert_eq!(idx.aborted.front().unwrap().first_offset, 10);
    }
}
