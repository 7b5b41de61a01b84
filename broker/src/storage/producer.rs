//! Idempotent producer state of one partition: per producer id, its epoch and the
//! last few batches' sequence ranges and offsets, to detect duplicates and gaps.

use std::collections::{HashMap, VecDeque};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    /// Oldest first, at most PRODUCER_BATCHES_KEPT.
    pub(crate) batches: VecDeque<BatchSeq>,
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
        pending: &HashMap<i64, ProducerEntry>,
        b: &BatchProducerInfo,
    ) -> Result<SeqCheck, AppendError> {
        if !tracked(b) {
            return Ok(SeqCheck::Untracked);
        }
        let Some(entry) = pending
            .get(&b.producer_id)
            .or_else(|| self.producers.get(&b.producer_id))
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
        pending: &mut HashMap<i64, ProducerEntry>,
        b: &BatchProducerInfo,
        base_offset: i64,
        last_offset: i64,
    ) {
        if !tracked(b) {
            return;
        }
        let entry = pending.entry(b.producer_id).or_insert_with(|| {
            self.producers
                .get(&b.producer_id)
                .cloned()
                .unwrap_or(ProducerEntry {
                    epoch: b.producer_epoch,
                    batches: VecDeque::new(),
                })
        });
        push_batch(entry, b, base_offset, last_offset);
    }

    /// Makes the pending entries of a successful append current.
    pub(crate) fn commit(&mut self, pending: HashMap<i64, ProducerEntry>) {
        self.producers.extend(pending);
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
                batches: VecDeque::new(),
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
    if entry.batches.len() == PRODUCER_BATCHES_KEPT {
        entry.batches.pop_front();
    }
    entry.batches.push_back(BatchSeq {
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
        let mut pending = HashMap::new();
        let check = states.check(&pending, &b)?;
        if check == SeqCheck::Accept {
            states.record_pending(
                &mut pending,
                &b,
                base_offset,
                base_offset + i64::from(b.last_offset_delta),
            );
            states.commit(pending);
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
        let mut pending = HashMap::new();
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
