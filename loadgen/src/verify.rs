//! Record values that identify themselves, and the check that every produced record
//! arrives exactly once and in order per partition.

use std::collections::BTreeSet;
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
            foreign: self.foreign,
            tracking_overflowed: self.gaps_overflowed,
            first_lost,
            examples: self.examples.clone(),
        }
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
}

impl VerifyReport {
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
