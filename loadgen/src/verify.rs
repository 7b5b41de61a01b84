//! Record values that identify themselves, and the check that every produced record
//! arrives exactly once and in order per partition.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Value layout: sequence number, intended send time, producer stamp (run clock, ns),
/// then padding up to the requested size.
pub const VALUE_HEADER_BYTES: usize = 24;
/// Marks the padding so a value that is not ours is recognised.
const PAD_BYTE: u8 = 0xA5;
/// At most this many individual problems are kept for the report (counts stay exact).
const MAX_REPORTED: usize = 20;
/// At most this many missing sequence numbers are tracked to tell a late arrival
/// (reorder) from a duplicate; beyond that the report says the tracking overflowed.
const MAX_TRACKED_GAPS: usize = 1_000_000;

/// The sequence word carries the producing stream in its top bits, so that several
/// producers writing to one partition are each checked for exactly-once, in-order.
const STREAM_SHIFT: u32 = 48;
/// Most producing streams a run may have (the stream number must fit the top bits).
pub const MAX_STREAMS: usize = 1 << (64 - STREAM_SHIFT);

/// The sequence word of record `seq` of `stream`.
pub fn seq_word(stream: u16, seq: u64) -> u64 {
    ((stream as u64) << STREAM_SHIFT) | (seq & ((1 << STREAM_SHIFT) - 1))
}

/// (stream, per-stream sequence number) of a sequence word.
pub fn split_seq_word(word: u64) -> (u16, u64) {
    (
        (word >> STREAM_SHIFT) as u16,
        word & ((1 << STREAM_SHIFT) - 1),
    )
}

/// What a record value says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueHeader {
    pub seq: u64,
    pub intended_ns: u64,
    pub stamp_ns: u64,
}

/// Writes a value of exactly `size` bytes (`size >= VALUE_HEADER_BYTES`).
pub fn encode_value(h: ValueHeader, size: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.intended_ns.to_be_bytes());
    out.extend_from_slice(&h.stamp_ns.to_be_bytes());
    out.resize(
        out.len() + size.saturating_sub(VALUE_HEADER_BYTES),
        PAD_BYTE,
    );
}

pub fn decode_value(v: &[u8]) -> Option<ValueHeader> {
    let word = |i: usize| u64::from_be_bytes(v[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    if v.len() < VALUE_HEADER_BYTES {
        return None;
    }
    Some(ValueHeader {
        seq: word(0),
        intended_ns: word(1),
        stamp_ns: word(2),
    })
}

/// One observed problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `seq` arrived again.
    Duplicate { seq: u64, offset: i64 },
    /// `seq` arrived after a later one.
    Reordered { seq: u64, offset: i64 },
    /// A value that does not decode, or a sequence number never produced.
    Foreign { offset: i64 },
}

/// Checks one partition's stream of sequence numbers against `0..expected`.
#[derive(Debug)]
pub struct Verifier {
    expected: u64,
    next: u64,
    missing: BTreeSet<u64>,
    gaps_overflowed: bool,
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub foreign: u64,
    examples: Vec<Problem>,
}

impl Verifier {
    /// `expected`: how many records (sequence numbers 0..expected) were produced.
    pub fn new(expected: u64) -> Verifier {
        Verifier {
            expected,
            next: 0,
            missing: BTreeSet::new(),
            gaps_overflowed: false,
            received: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
            examples: Vec::new(),
        }
    }

    /// Raises the number of records expected (e2e learns it as it produces).
    pub fn set_expected(&mut self, expected: u64) {
        self.expected = expected;
    }

    fn note(&mut self, p: Problem) {
        if self.examples.len() < MAX_REPORTED {
            self.examples.push(p);
        }
    }

    /// Feeds the record at `offset` whose value decoded to `seq` (None: undecodable).
    pub fn observe(&mut self, seq: Option<u64>, offset: i64) {
        self.received += 1;
        let Some(seq) = seq.filter(|&s| s < self.expected) else {
            self.foreign += 1;
            self.note(Problem::Foreign { offset });
            return;
        };
        if seq == self.next {
            self.next += 1;
        } else if seq > self.next {
            if self.missing.len() + (seq - self.next) as usize > MAX_TRACKED_GAPS {
                self.gaps_overflowed = true;
            } else {
                self.missing.extend(self.next..seq);
            }
            self.next = seq + 1;
        } else if self.missing.remove(&seq) {
            self.reordered += 1;
            self.note(Problem::Reordered { seq, offset });
        } else {
            self.duplicates += 1;
            self.note(Problem::Duplicate { seq, offset });
        }
    }

    /// True once every expected record has arrived (in whatever order).
    pub fn complete(&self) -> bool {
        self.next >= self.expected && self.missing.is_empty()
    }

    /// The final verdict.
    pub fn report(&self) -> VerifyReport {
        let lost = self.missing.len() as u64 + self.expected.saturating_sub(self.next);
        // Sequence numbers accepted while the count was still unknown (e2e) but beyond
        // what was finally produced were never produced: foreign.
        let beyond = self.next.saturating_sub(self.expected);
        let first_lost: Vec<u64> = self
            .missing
            .iter()
            .copied()
            .chain(self.next..self.expected)
            .take(MAX_REPORTED)
            .collect();
        VerifyReport {
            expected: self.expected,
            received: self.received,
            lost,
            duplicates: self.duplicates,
            reordered: self.reordered,
            foreign: self.foreign + beyond,
            tracking_overflowed: self.gaps_overflowed,
            first_lost,
            examples: self.examples.clone(),
            partitions: 1,
            streams: 1,
            failed: Vec::new(),
        }
    }
}

/// (topic, partition): where a record was read.
pub type PartitionKey = (String, i32);
/// Records produced per (topic, partition, stream): sequence numbers 0..n each.
pub type Expected = BTreeMap<(String, i32, u16), u64>;

/// Exactly-once, in-order checks of several partitions, each possibly written by several
/// streams: one `Verifier` per (partition, stream).
#[derive(Debug, Default)]
pub struct VerifySet {
    verifiers: BTreeMap<(String, i32, u16), Verifier>,
    /// Records whose value did not decode, per partition.
    undecodable: u64,
    undecodable_examples: Vec<(PartitionKey, i64)>,
    expected_known: bool,
}

impl VerifySet {
    pub fn new() -> VerifySet {
        VerifySet::default()
    }

    /// With the expected counts known up front (fetch).
    pub fn with_expected(expected: &Expected) -> VerifySet {
        let mut v = VerifySet::new();
        v.set_expected(expected);
        v
    }

    /// Feeds one record of `topic`/`partition` at `offset` whose value carried `word`.
    pub fn observe(&mut self, topic: &str, partition: i32, word: Option<u64>, offset: i64) {
        let Some(word) = word else {
            self.undecodable += 1;
            if self.undecodable_examples.len() < MAX_REPORTED {
                self.undecodable_examples
                    .push(((topic.to_string(), partition), offset));
            }
            return;
        };
        let (stream, seq) = split_seq_word(word);
        let key = (topic.to_string(), partition, stream);
        let known = self.expected_known;
        self.verifiers
            .entry(key)
            // Before the counts are known every sequence number is plausible; a stream
            // that was never expected gets 0 once they are (all its records foreign).
            .or_insert_with(|| Verifier::new(if known { 0 } else { u64::MAX }))
            .observe(Some(seq), offset);
    }

    /// Sets the final counts: every (partition, stream) not in `expected` expects nothing.
    pub fn set_expected(&mut self, expected: &Expected) {
        for (k, &n) in expected {
            self.verifiers
                .entry(k.clone())
                .or_insert_with(|| Verifier::new(n))
                .set_expected(n);
        }
        for (k, v) in self.verifiers.iter_mut() {
            if !expected.contains_key(k) {
                v.set_expected(0);
            }
        }
        self.expected_known = true;
    }

    /// True once the counts are known and every expected record has arrived.
    pub fn complete(&self) -> bool {
        self.expected_known && self.verifiers.values().all(Verifier::complete)
    }

    /// The combined verdict, naming the first failing (partition, stream) pairs.
    pub fn report(&self) -> VerifyReport {
        let mut total = VerifyReport::empty();
        let mut partitions = BTreeSet::new();
        for ((topic, p, stream), v) in &self.verifiers {
            let r = v.report();
            partitions.insert((topic.clone(), *p));
            if !r.ok() && total.failed.len() < MAX_REPORTED {
                total
                    .failed
                    .push(format!("{topic}/{p} stream {stream}: {r}"));
            }
            total.absorb(&r);
        }
        total.received += self.undecodable;
        total.foreign += self.undecodable;
        for ((t, p), offset) in &self.undecodable_examples {
            if total.failed.len() < MAX_REPORTED {
                total
                    .failed
                    .push(format!("{t}/{p}: undecodable value at offset {offset}"));
            }
        }
        total.partitions = partitions.len();
        total.streams = self.verifiers.len();
        total
    }
}

/// Outcome of a verification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub foreign: u64,
    pub tracking_overflowed: bool,
    pub first_lost: Vec<u64>,
    #[serde(skip)]
    pub examples: Vec<Problem>,
    /// Partitions and (partition, producing stream) pairs checked.
    pub partitions: usize,
    pub streams: usize,
    /// The first failing (partition, stream) pairs with what went wrong.
    pub failed: Vec<String>,
}

impl VerifyReport {
    /// Nothing checked yet: the identity of `absorb`.
    pub fn empty() -> VerifyReport {
        VerifyReport {
            expected: 0,
            received: 0,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
            tracking_overflowed: false,
            first_lost: Vec::new(),
            examples: Vec::new(),
            partitions: 0,
            streams: 0,
            failed: Vec::new(),
        }
    }

    /// Adds the counts of `r` (consumers checking disjoint partitions combine this way).
    pub fn absorb(&mut self, r: &VerifyReport) {
        self.expected += r.expected;
        self.received += r.received;
        self.lost += r.lost;
        self.duplicates += r.duplicates;
        self.reordered += r.reordered;
        self.foreign += r.foreign;
        self.tracking_overflowed |= r.tracking_overflowed;
        if self.first_lost.is_empty() {
            self.first_lost = r.first_lost.clone();
        }
        let room = MAX_REPORTED.saturating_sub(self.examples.len());
        self.examples.extend(r.examples.iter().take(room).cloned());
        let room = MAX_REPORTED.saturating_sub(self.failed.len());
        self.failed.extend(r.failed.iter().take(room).cloned());
    }

    /// Combines the reports of consumers over disjoint partitions.
    pub fn combine(reports: &[VerifyReport]) -> VerifyReport {
        let mut total = VerifyReport::empty();
        for r in reports {
            total.absorb(r);
            total.partitions += r.partitions;
            total.streams += r.streams;
        }
        total
    }

    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.reordered == 0
            && self.foreign == 0
            && !self.tracking_overflowed
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {}, received {}, lost {}, duplicates {}, reordered {}, foreign {}",
            self.expected, self.received, self.lost, self.duplicates, self.reordered, self.foreign
        )?;
        if self.tracking_overflowed {
            write!(f, " (gap tracking overflowed: lost count is a lower bound)")?;
        }
        if !self.first_lost.is_empty() {
            write!(f, "; first lost seq {:?}", self.first_lost)?;
        }
        if !self.examples.is_empty() {
            write!(f, "; first problems {:?}", self.examples)?;
        }
        if !self.failed.is_empty() {
            write!(f, "; failing partitions: {}", self.failed.join(" | "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expected: u64, seqs: &[u64]) -> VerifyReport {
        let mut v = Verifier::new(expected);
        for (i, &s) in seqs.iter().enumerate() {
            v.observe(Some(s), i as i64);
        }
        v.report()
    }

    #[test]
    fn in_order_exactly_once_is_ok() {
        let r = run(5, &[0, 1, 2, 3, 4]);
        assert!(r.ok(), "{r}");
        assert_eq!(r.received, 5);
    }

    #[test]
    fn loss_in_the_middle_and_at_the_end() {
        let r = run(6, &[0, 1, 3, 4]);
        assert!(!r.ok());
        assert_eq!(r.lost, 2);
        assert_eq!(r.first_lost, vec![2, 5]);
    }

    #[test]
    fn duplicate_detected() {
        let r = run(3, &[0, 1, 1, 2]);
        assert!(!r.ok());
        assert_eq!((r.duplicates, r.lost, r.reordered), (1, 0, 0));
        assert_eq!(r.examples, vec![Problem::Duplicate { seq: 1, offset: 2 }]);
    }

    #[test]
    fn reorder_detected_and_not_counted_as_loss() {
        let r = run(4, &[0, 2, 1, 3]);
        assert!(!r.ok());
        assert_eq!((r.reordered, r.lost, r.duplicates), (1, 0, 0));
    }

    #[test]
    fn foreign_and_undecodable_values() {
        let mut v = Verifier::new(2);
        v.observe(Some(0), 0);
        v.observe(Some(7), 1);
        v.observe(None, 2);
        v.observe(Some(1), 3);
        let r = v.report();
        assert_eq!(r.foreign, 2);
        assert!(!r.ok());
    }

    #[test]
    fn completeness_tracks_gaps() {
        let mut v = Verifier::new(3);
        v.observe(Some(0), 0);
        v.observe(Some(2), 1);
        assert!(!v.complete());
        v.observe(Some(1), 2);
        assert!(v.complete());
    }

    fn expected(entries: &[(&str, i32, u16, u64)]) -> Expected {
        entries
            .iter()
            .map(|&(t, p, s, n)| ((t.to_string(), p, s), n))
            .collect()
    }

    #[test]
    fn several_partitions_and_streams_interleaved_are_ok() {
        let exp = expected(&[("t", 0, 0, 3), ("t", 0, 1, 2), ("t", 1, 0, 2)]);
        let mut v = VerifySet::with_expected(&exp);
        // Two streams interleave on partition 0; each is in order by itself.
        for (p, s, n) in [(0, 0, 0), (0, 1, 0), (1, 0, 0), (0, 0, 1), (0, 1, 1)] {
            assert!(!v.complete());
            v.observe("t", p, Some(seq_word(s, n)), 0);
        }
        v.observe("t", 1, Some(seq_word(0, 1)), 1);
        v.observe("t", 0, Some(seq_word(0, 2)), 2);
        assert!(v.complete());
        let r = v.report();
        assert!(r.ok(), "{r}");
        assert_eq!(
            (r.expected, r.received, r.partitions, r.streams),
            (7, 7, 2, 3)
        );
    }

    #[test]
    fn a_problem_in_one_partition_is_named() {
        let exp = expected(&[("t", 0, 0, 2), ("t", 1, 0, 2)]);
        let mut v = VerifySet::with_expected(&exp);
        v.observe("t", 0, Some(seq_word(0, 0)), 0);
        v.observe("t", 0, Some(seq_word(0, 1)), 1);
        v.observe("t", 1, Some(seq_word(0, 1)), 0);
        v.observe("t", 1, Some(seq_word(0, 0)), 1);
        let r = v.report();
        assert!(!r.ok());
        assert_eq!((r.reordered, r.lost), (1, 0));
        assert_eq!(r.failed.len(), 1);
        assert!(r.failed[0].starts_with("t/1 stream 0"), "{r}");
    }

    #[test]
    fn the_same_sequence_on_another_partition_is_not_a_duplicate_but_a_stray_is_foreign() {
        let exp = expected(&[("t", 0, 0, 1), ("t", 1, 0, 1)]);
        let mut v = VerifySet::with_expected(&exp);
        v.observe("t", 0, Some(seq_word(0, 0)), 0);
        v.observe("t", 1, Some(seq_word(0, 0)), 0);
        assert!(v.report().ok());
        // A stream that never wrote to partition 1, and a value that is not ours.
        v.observe("t", 1, Some(seq_word(5, 0)), 1);
        v.observe("t", 1, None, 2);
        let r = v.report();
        assert_eq!(r.foreign, 2, "{r}");
        assert!(!r.ok());
    }

    #[test]
    fn counts_learnt_late_catch_loss_and_extras() {
        // e2e: records arrive before the producer has said how many it sent.
        let mut v = VerifySet::new();
        v.observe("t", 0, Some(seq_word(0, 0)), 0);
        v.observe("t", 0, Some(seq_word(0, 1)), 1);
        v.observe("t", 0, Some(seq_word(1, 0)), 2);
        assert!(!v.complete(), "counts unknown");
        v.set_expected(&expected(&[("t", 0, 0, 3), ("t", 1, 0, 1)]));
        let r = v.report();
        // Stream 0 lost seq 2, stream 1 was not expected on t/0, t/1 got nothing.
        assert_eq!((r.lost, r.foreign), (2, 1), "{r}");
        assert!(!v.complete());
    }

    #[test]
    fn seq_words_round_trip() {
        assert_eq!(split_seq_word(seq_word(7, 123)), (7, 123));
        assert_eq!(split_seq_word(seq_word(0, 5)), (0, 5));
        assert_eq!(
            split_seq_word(seq_word(u16::MAX, (1 << 48) - 1)),
            (u16::MAX, (1 << 48) - 1)
        );
    }

    #[test]
    fn value_round_trip_and_size() {
        let h = ValueHeader {
            seq: 42,
            intended_ns: 7,
            stamp_ns: 9,
        };
        let mut out = Vec::new();
        encode_value(h, 100, &mut out);
        assert_eq!(out.len(), 100);
        assert_eq!(decode_value(&out), Some(h));
        assert_eq!(decode_value(&out[..23]), None);
    }
}
