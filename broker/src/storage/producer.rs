//! Idempotent producer state of one partition: per producer id, its epoch and the
//! last few batches' sequence ranges and offsets, to detect duplicates and gaps.
//!
//! Nothing here allocates per append once a producer is known: an entry is a fixed
//! ring of [`PRODUCER_BATCHES_KEPT`] batches (so copying it is a memcpy), and the
//! pending entries of one append live in a caller-owned, reused [`Pending`] list.

use std::collections::HashMap;

use crate::protocol::batch::{RecordBatch, NO_PRODUCER_ID, NO_SEQUENCE};

use super::AppendError;

/// Batches remembered per producer (Kafka keeps 5: max.in.flight for idempotence).
pub(crate) const PRODUCER_BATCHES_KEPT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSeq {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
}

/// The last [`PRODUCER_BATCHES_KEPT`] batches of a producer, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqRing {
    slots: [BatchSeq; PRODUCER_BATCHES_KEPT],
    /// Index of the oldest batch.
    head: usize,
    len: usize,
}

const EMPTY_SEQ: BatchSeq = BatchSeq {
    first_seq: 0,
    last_seq: 0,
    base_offset: 0,
    last_offset: 0,
};

impl SeqRing {
    const fn new() -> SeqRing {
        SeqRing {
            slots: [EMPTY_SEQ; PRODUCER_BATCHES_KEPT],
            head: 0,
            len: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
    }

    /// Oldest first.
    fn iter(&self) -> impl Iterator<Item = &BatchSeq> {
        (0..self.len).map(|i| &self.slots[(self.head + i) % PRODUCER_BATCHES_KEPT])
    }

    fn back(&self) -> Option<&BatchSeq> {
        self.len
            .checked_sub(1)
            .map(|i| &self.slots[(self.head + i) % PRODUCER_BATCHES_KEPT])
    }

    /// Appends `seq`, forgetting the oldest batch when full.
    fn push(&mut self, seq: BatchSeq) {
        if self.len == PRODUCER_BATCHES_KEPT {
            self.slots[self.head] = seq;
            self.head = (self.head + 1) % PRODUCER_BATCHES_KEPT;
        } else {
            self.slots[(self.head + self.len) % PRODUCER_BATCHES_KEPT] = seq;
            self.len += 1;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    pub(crate) batches: SeqRing,
}

/// Producer entries updated by the batches of one append, not yet committed (usually
/// one; searched linearly). Reused across appends, so it allocates only to grow.
pub(crate) type Pending = Vec<(i64, ProducerEntry)>;

fn pending_entry(pending: &Pending, producer_id: i64) -> Option<&ProducerEntry> {
    pending
        .iter()
        .find(|(id, _)| *id == producer_id)
        .map(|(_, e)| e)
}

/// What to do with one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// Not idempotent (no producer id / no sequence / control batch): append, track nothing.
    Untracked,
    /// Append and then record it for this producer.
    Accept,
    /// Already appended: these were its offsets.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// `sequence + increment`, wrapping from i32::MAX to 0 as Kafka does.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Fields of a batch that the producer state needs (so the check can run before the
/// batch has its final offsets).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchProducerInfo {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) last_offset_delta: i32,
    pub(crate) is_control: bool,
}

impl From<&RecordBatch<'_>> for BatchProducerInfo {
    fn from(b: &RecordBatch<'_>) -> Self {
        BatchProducerInfo {
            producer_id: b.producer_id(),
            producer_epoch: b.producer_epoch(),
            base_sequence: b.base_sequence(),
            last_offset_delta: b.last_offset_delta(),
            is_control: b.is_control(),
        }
    }
}

impl BatchProducerInfo {
    fn last_seq(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}
#[derive(Debug, Default, Clone)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    #[cfg(test)]
    pub(crate) fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks one batch against the state of its producer, where `pending` holds the
    /// entries already updated by earlier batches of the same append (all-or-nothing).
    pub(crate) fn check(
        &self,
        pending: &Pending,
        b: &BatchProducerInfo,
    ) -> Result<SeqCheck, AppendError> {
        if !tracked(b) {
            return Ok(SeqCheck::Untracked);
        }
        let Some(entry) =
            pending_entry(pending, b.producer_id).or_else(|| self.producers.get(&b.producer_id))
        else {
            // Unknown producer (new, or its state was lost): accept any first sequence.
            return Ok(SeqCheck::Accept);
        };
        if b.producer_epoch < entry.epoch {
            return Err(AppendError::InvalidProducerEpoch);
        }
        if b.producer_epoch > entry.epoch {
            // A new epoch restarts the sequence at 0.
            return if b.base_sequence == 0 {
                Ok(SeqCheck::Accept)
            } else {
                Err(AppendError::OutOfOrderSequence)
            };
        }
        let last_seq = b.last_seq();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|s| s.first_seq == b.base_sequence && s.last_seq == last_seq)
        {
            return Ok(SeqCheck::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            });
        }
        match entry.batches.back() {
            Some(last) if increment_sequence(last.last_seq, 1) == b.base_sequence => {
                Ok(SeqCheck::Accept)
            }
            // An entry with no batches (cannot happen today) accepts like an unknown one.
            None => Ok(SeqCheck::Accept),
            Some(_) => Err(AppendError::OutOfOrderSequence),
        }
    }

    /// Records an accepted batch at its final offsets into `pending`.
    pub(crate) fn record_pending(
        &self,
        pending: &mut Pending,
        b: &BatchProducerInfo,
        base_offset: i64,
        last_offset: i64,
    ) {
        if !tracked(b) {
            return;
        }
        let at = match pending.iter().position(|(id, _)| *id == b.producer_id) {
            Some(at) => at,
            None => {
                let entry = self
                    .producers
                    .get(&b.producer_id)
                    .copied()
                    .unwrap_or(ProducerEntry {
                        epoch: b.producer_epoch,
                        batches: SeqRing::new(),
                    });
                pending.push((b.producer_id, entry));
                pending.len() - 1
            }
        };
        push_batch(&mut pending[at].1, b, base_offset, last_offset);
    }

    /// Makes the pending entries of a successful append current, leaving `pending`
    /// empty (its capacity kept for the next append).
    pub(crate) fn commit(&mut self, pending: &mut Pending) {
        for (id, entry) in pending.drain(..) {
            match self.producers.get_mut(&id) {
                Some(current) => *current = entry,
                None => {
                    self.producers.insert(id, entry);
                }
            }
        }
    }

    /// Recovery: replays a stored batch without checks.
    pub(crate) fn replay(&mut self, batch: &RecordBatch<'_>) {
        let b = BatchProducerInfo::from(batch);
        if !tracked(&b) {
            return;
        }
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: b.producer_epoch,
                batches: SeqRing::new(),
            });
        push_batch(entry, &b, batch.base_offset(), batch.last_offset());
    }
}

/// Kafka checks sequences only for idempotent data batches.
fn tracked(b: &BatchProducerInfo) -> bool {
    b.producer_id != NO_PRODUCER_ID && b.base_sequence != NO_SEQUENCE && !b.is_control
}

fn push_batch(
    entry: &mut ProducerEntry,
    b: &BatchProducerInfo,
    base_offset: i64,
    last_offset: i64,
) {
    if b.producer_epoch != entry.epoch {
        entry.epoch = b.producer_epoch;
        entry.batches.clear();
    }
    entry.batches.push(BatchSeq {
        first_seq: b.base_sequence,
        last_seq: b.last_seq(),
        base_offset,
        last_offset,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(producer_id: i64, epoch: i16, base_sequence: i32, count: i32) -> BatchProducerInfo {
        BatchProducerInfo {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            last_offset_delta: count - 1,
            is_control: false,
        }
    }

    /// Checks and, if accepted, records and commits; returns the check.
    fn apply(
        states: &mut ProducerStates,
        b: BatchProducerInfo,
        base_offset: i64,
    ) -> Result<SeqCheck, AppendError> {
        let mut pending = Pending::new();
        let check = states.check(&pending, &b)?;
        if check == SeqCheck::Accept {
            states.record_pending(
                &mut pending,
                &b,
                base_offset,
                base_offset + i64::from(b.last_offset_delta),
            );
            states.commit(&mut pending);
        }
        Ok(check)
    }

    #[test]
    fn sequence_wraps_at_i32_max_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
    }

    #[test]
    fn unknown_producer_accepts_any_first_sequence_then_requires_contiguity() {
        let mut s = ProducerStates::default();
        assert_eq!(apply(&mut s, info(7, 0, 40, 3), 0), Ok(SeqCheck::Accept));
        assert_eq!(apply(&mut s, info(7, 0, 43, 1), 3), Ok(SeqCheck::Accept));
        assert_eq!(
            apply(&mut s, info(7, 0, 45, 1), 4),
            Err(AppendError::OutOfOrderSequence)
        );
    }

    #[test]
    fn duplicate_of_any_of_last_five_returns_original_offsets() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            apply(&mut s, info(1, 0, i * 2, 2), i64::from(i) * 10).unwrap();
        }
        // Batches 2..=6 are remembered (seqs 4..=13); batch 1 (seqs 2-3) is forgotten.
        assert_eq!(
            apply(&mut s, info(1, 0, 4, 2), 999),
            Ok(SeqCheck::Duplicate {
                base_offset: 20,
                last_offset: 21
            })
        );
        assert_eq!(
            apply(&mut s, info(1, 0, 2, 2), 999),
            Err(AppendError::OutOfOrderSequence)
        );
    }

    #[test]
    fn epoch_rules() {
        let mut s = ProducerStates::default();
        apply(&mut s, info(1, 3, 0, 5), 0).unwrap();
        assert_eq!(
            apply(&mut s, info(1, 2, 5, 1), 5),
            Err(AppendError::InvalidProducerEpoch)
        );
        assert_eq!(
            apply(&mut s, info(1, 4, 5, 1), 5),
            Err(AppendError::OutOfOrderSequence)
        );
        assert_eq!(apply(&mut s, info(1, 4, 0, 1), 5), Ok(SeqCheck::Accept));
        assert_eq!(s.get(1).unwrap().epoch, 4);
        assert_eq!(s.get(1).unwrap().batches.len(), 1);
    }

    #[test]
    fn non_idempotent_batches_are_not_checked() {
        let mut s = ProducerStates::default();
        assert_eq!(
            apply(&mut s, info(NO_PRODUCER_ID, -1, NO_SEQUENCE, 1), 0),
            Ok(SeqCheck::Untracked)
        );
        assert_eq!(
            apply(&mut s, info(NO_PRODUCER_ID, -1, NO_SEQUENCE, 1), 1),
            Ok(SeqCheck::Untracked)
        );
        assert!(s.get(NO_PRODUCER_ID).is_none());
    }

    #[test]
    fn batches_of_one_append_see_each_other() {
        let s = ProducerStates::default();
        let mut pending = Pending::new();
        let first = info(9, 0, 0, 2);
        assert_eq!(s.check(&pending, &first), Ok(SeqCheck::Accept));
        s.record_pending(&mut pending, &first, 0, 1);
        assert_eq!(s.check(&pending, &info(9, 0, 2, 1)), Ok(SeqCheck::Accept));
        assert_eq!(
            s.check(&pending, &info(9, 0, 3, 1)),
            Err(AppendError::OutOfOrderSequence)
        );
        // Nothing committed: the state is unchanged.
        assert!(s.get(9).is_none());
    }
}
