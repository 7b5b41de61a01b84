//! Workload shape: which (topic, partition) each message goes to, with which key, and how
//! producers, connections and consumers divide the partitions and the rate.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::drivers::native::Target;
use crate::verify::{encode_value, seq_word, ValueHeader};

/// Most distinct keys `--keys uniform:N` accepts (keys are decimal text, so any count
/// works; the cap catches a typo).
pub const MAX_UNIFORM_KEYS: u64 = 1 << 40;

/// How record keys are chosen; keyed records go to the partition the key hashes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDist {
    /// No key: partitions in turn (round-robin).
    None,
    /// A key drawn uniformly from N distinct keys.
    Uniform(u64),
    /// A new key for every message (its global message number).
    Sequential,
}

impl FromStr for KeyDist {
    type Err = String;

    fn from_str(s: &str) -> Result<KeyDist, String> {
        let bad = || format!("--keys {s:?}: expected none, sequential or uniform:N (N >= 1)");
        match s {
            "none" => Ok(KeyDist::None),
            "sequential" => Ok(KeyDist::Sequential),
            _ => {
                let n: u64 = s
                    .strip_prefix("uniform:")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if n == 0 || n > MAX_UNIFORM_KEYS {
                    return Err(format!(
                        "--keys {s:?}: uniform needs between 1 and {MAX_UNIFORM_KEYS} keys"
                    ));
                }
                Ok(KeyDist::Uniform(n))
            }
        }
    }
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDist::None => f.write_str("none"),
            KeyDist::Uniform(n) => write!(f, "uniform:{n}"),
            KeyDist::Sequential => f.write_str("sequential"),
        }
    }
}

impl Serialize for KeyDist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Kafka's murmur2 and default partitioner, so that keyed records land where a Java
/// producer would put them: the broker's own source file (no dependency on the broker
/// crate, and one implementation for both).
#[path = "../../broker/src/partitioner.rs"]
mod partitioner;
pub use partitioner::{murmur2, partition_for_key};

/// splitmix64: a tiny seeded generator, reproducible per stream, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (the modulo bias is below 2^-24 for any n up to 2^40).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Picks each message's target (an index into a stream's targets) and key.
#[derive(Debug, Clone)]
pub struct Picker {
    dist: KeyDist,
    targets: usize,
    /// This stream's number and the number of streams, so that sequential keys are
    /// distinct across streams.
    stream: u64,
    streams: u64,
    rng: Rng,
}

impl Picker {
    pub fn new(dist: KeyDist, targets: usize, stream: u64, streams: u64) -> Picker {
        Picker {
            dist,
            targets: targets.max(1),
            stream,
            streams: streams.max(1),
            rng: Rng::new(0x5eed ^ stream.wrapping_mul(0x1000_0001)),
        }
    }

    /// Target index of message `index`; its key (decimal text) replaces `key`, which is
    /// left empty for "no key".
    pub fn pick(&mut self, index: u64, key: &mut Vec<u8>) -> usize {
        key.clear();
        let n = match self.dist {
            KeyDist::None => return (index % self.targets as u64) as usize,
            KeyDist::Uniform(n) => self.rng.below(n),
            KeyDist::Sequential => index * self.streams + self.stream,
        };
        // itoa without an allocation.
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        key.extend_from_slice(&digits[i..]);
        partition_for_key(key, self.targets)
    }
}

/// Records per target that a stream has produced so far (its sequence numbers there
/// are 0..count), readable by the workload once the stream is done.
pub type Counts = Arc<Vec<AtomicU64>>;

pub fn new_counts(n: usize) -> Counts {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

/// Produces the messages of one stream: target, key and value for each message index.
/// With `sequenced`, values carry (stream, per-target sequence number, intended time,
/// stamp) for verification and end-to-end latency; otherwise they are `size` zero bytes.
pub struct Messages {
    pub targets: Vec<Target>,
    picker: Picker,
    size: usize,
    stream: u16,
    sequenced: Option<(Counts, crate::schedule::Clock)>,
    next_seq: Vec<u64>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Messages {
    pub fn new(targets: Vec<Target>, picker: Picker, size: usize, stream: u16) -> Messages {
        let n = targets.len();
        Messages {
            targets,
            picker,
            size,
            stream,
            sequenced: None,
            next_seq: vec![0; n],
            key: Vec::new(),
            value: vec![0; size],
        }
    }

    /// Self-describing values, with per-target counts published to `counts`.
    pub fn sequenced(mut self, counts: Counts, clock: crate::schedule::Clock) -> Messages {
        self.sequenced = Some((counts, clock));
        self
    }

    pub fn stream(&self) -> u16 {
        self.stream
    }

    /// Fills `self.key` and `self.value` for message `index`; returns the target index.
    pub fn next(&mut self, index: u64, intended_ns: u64) -> usize {
        let t = self.picker.pick(index, &mut self.key);
        if let Some((counts, clock)) = &self.sequenced {
            let seq = self.next_seq[t];
            self.next_seq[t] += 1;
            counts[t].store(seq + 1, Ordering::Release);
            self.value.clear();
            let h = ValueHeader {
                seq: seq_word(self.stream, seq),
                intended_ns,
                stamp_ns: clock.now_ns(),
            };
            encode_value(h, self.size, &mut self.value);
        }
        t
    }

    pub fn key(&self) -> Option<&[u8]> {
        (!self.key.is_empty()).then_some(&self.key[..])
    }
}

/// One producing stream: one thread, one connection to one leader, some targets.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub id: u16,
    pub producer: u32,
    pub leader: String,
    pub targets: Vec<Target>,
}

/// Groups targets by leader, keeping their order; one group per leader.
pub fn by_leader(targets: &[Target]) -> Vec<(String, Vec<Target>)> {
    let mut groups: Vec<(String, Vec<Target>)> = Vec::new();
    for t in targets {
        match groups.iter_mut().find(|(l, _)| *l == t.leader_addr) {
            Some((_, g)) => g.push(t.clone()),
            None => groups.push((t.leader_addr.clone(), vec![t.clone()])),
        }
    }
    groups
}

/// Producer streams: every producer has `connections` connections to each leader of
/// the targets, each its own stream (thread + connection) over that leader's targets.
pub fn producer_streams(targets: &[Target], producers: u32, connections: u32) -> Vec<StreamPlan> {
    let groups = by_leader(targets);
    let mut out = Vec::new();
    for p in 0..producers {
        for _ in 0..connections {
            for (leader, ts) in &groups {
                out.push(StreamPlan {
                    id: out.len() as u16,
                    producer: p,
                    leader: leader.clone(),
                    targets: ts.clone(),
                });
            }
        }
    }
    out
}

/// Consumer assignment: targets dealt round-robin to `consumers`, then split by leader
/// (one connection per leader); empty assignments are dropped.
pub fn consumer_assignments(targets: &[Target], consumers: u32) -> Vec<Vec<Target>> {
    let consumers = consumers.max(1) as usize;
    let mut dealt = vec![Vec::new(); consumers];
    for (i, t) in targets.iter().enumerate() {
        dealt[i % consumers].push(t.clone());
    }
    dealt
        .iter()
        .flat_map(|d| by_leader(d).into_iter().map(|(_, ts)| ts))
        .filter(|ts| !ts.is_empty())
        .collect()
}

/// A stream's share of an open-loop rate: proportional to its targets, so that with
/// round-robin placement every partition sees the same rate.
pub fn rate_share(rate_per_s: f64, stream: &StreamPlan, streams: &[StreamPlan]) -> f64 {
    let total: usize = streams.iter().map(|s| s.targets.len()).sum();
    rate_per_s * stream.targets.len() as f64 / total.max(1) as f64
}

/// Topic names: `base` alone, or `base-0 … base-(n-1)` for several topics.
pub fn topic_names(base: &str, n: u32) -> Vec<String> {
    if n <= 1 {
        vec![base.to_string()]
    } else {
        (0..n).map(|i| format!("{base}-{i}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_distribution_parses_and_names_bad_values() {
        assert_eq!("none".parse(), Ok(KeyDist::None));
        assert_eq!("sequential".parse(), Ok(KeyDist::Sequential));
        assert_eq!("uniform:10".parse(), Ok(KeyDist::Uniform(10)));
        for bad in ["uniform:0", "uniform:", "uniform:x", "zipf:3", ""] {
            let e = bad.parse::<KeyDist>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert_eq!(KeyDist::Uniform(7).to_string(), "uniform:7");
    }

    #[test]
    fn no_key_is_round_robin() {
        let mut p = Picker::new(KeyDist::None, 3, 0, 1);
        let mut key = vec![1];
        let got: Vec<usize> = (0..7).map(|i| p.pick(i, &mut key)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
        assert!(key.is_empty());
    }

    #[test]
    fn uniform_keys_stay_in_range_spread_evenly_and_map_consistently() {
        let (keys, parts, n) = (100u64, 4usize, 100_000u64);
        let mut p = Picker::new(KeyDist::Uniform(keys), parts, 0, 1);
        let mut key = Vec::new();
        let mut per_key = std::collections::HashMap::<Vec<u8>, (u64, usize)>::new();
        let mut per_part = vec![0u64; parts];
        for i in 0..n {
            let t = p.pick(i, &mut key);
            let k: u64 = std::str::from_utf8(&key).unwrap().parse().unwrap();
            assert!(k < keys);
            let e = per_key.entry(key.clone()).or_insert((0, t));
            assert_eq!(e.1, t, "key {k} must always map to the same partition");
            e.0 += 1;
            per_part[t] += 1;
        }
        assert_eq!(per_key.len() as u64, keys, "every key drawn");
        // Each key is drawn n/keys = 1000 times: within ±20 % (binomial sd ≈ 31).
        for (k, (c, _)) in &per_key {
            assert!((800..=1200).contains(c), "{k:?} drawn {c} times");
        }
        assert!(per_part.iter().all(|&c| c > 0), "{per_part:?}");
    }

    #[test]
    fn sequential_keys_are_distinct_across_streams() {
        let mut a = Picker::new(KeyDist::Sequential, 5, 0, 2);
        let mut b = Picker::new(KeyDist::Sequential, 5, 1, 2);
        let mut key = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..100 {
            let t = a.pick(i, &mut key);
            assert_eq!(t, partition_for_key(&key, 5));
            assert!(seen.insert(key.clone()));
            b.pick(i, &mut key);
            assert!(seen.insert(key.clone()));
        }
        a.pick(3, &mut key);
        assert_eq!(key, b"6");
    }

    fn target(topic: &str, p: i32, leader: &str) -> Target {
        Target {
            topic: topic.into(),
            partition: p,
            leader_addr: leader.into(),
        }
    }

    #[test]
    fn streams_per_producer_connection_and_leader() {
        let ts = vec![
            target("t", 0, "a"),
            target("t", 1, "b"),
            target("t", 2, "a"),
        ];
        let s = producer_streams(&ts, 2, 1);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].targets.len(), 2);
        assert_eq!(s[1].leader, "b");
        assert_eq!(s[3].producer, 1);
        let r: f64 = s.iter().map(|x| rate_share(3000.0, x, &s)).sum();
        assert!((r - 3000.0).abs() < 1e-6);
        assert!((rate_share(3000.0, &s[0], &s) - 1000.0).abs() < 1e-6);
        // Consumer 0 gets partitions 0 and 2 (both on a), consumer 1 gets 1 (on b).
        let c = consumer_assignments(&ts, 2);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].len(), 2);
        assert_eq!(consumer_assignments(&ts, 5).len(), 3);
    }

    #[test]
    fn sequenced_messages_count_per_target() {
        let ts = vec![target("t", 0, "a"), target("t", 1, "a")];
        let counts = new_counts(2);
        let mut m = Messages::new(ts, Picker::new(KeyDist::None, 2, 3, 4), 32, 3)
            .sequenced(counts.clone(), crate::schedule::Clock::new());
        for i in 0..5 {
            m.next(i, 0);
        }
        let h = crate::verify::decode_value(&m.value).unwrap();
        assert_eq!(crate::verify::split_seq_word(h.seq), (3, 2));
        assert_eq!(counts[0].load(Ordering::Acquire), 3);
        assert_eq!(counts[1].load(Ordering::Acquire), 2);
        assert_eq!(topic_names("x", 1), vec!["x"]);
        assert_eq!(topic_names("x", 2), vec!["x-0", "x-1"]);
    }
}
