//! Request metrics of the data plane: counts, errors and latency histograms per API
//! key, bytes in and out, and how often requests parked.
//!
//! Recording is allocation-free and lock-free: a request costs a handful of relaxed
//! atomic adds (its latency bucket, the latency sum, bytes in and out). Everything is
//! allocated once when the broker starts. Readers (the admin thread's `/metrics`) see
//! each counter eventually; a scrape may mix counters from slightly different moments,
//! which Prometheus tolerates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// API keys 0..API_KEY_SLOTS get their own series; anything else (and negative keys)
/// shares the last slot. Kafka's keys are below 100 today.
pub const API_KEY_SLOTS: usize = 128;
const OTHER_API_SLOT: usize = API_KEY_SLOTS - 1;

/// Upper bounds of the latency buckets, in nanoseconds (Prometheus `le`). Service time
/// inside `Broker::handle` spans ~1 µs (ApiVersions) to milliseconds (flush=always);
/// anything slower lands in +Inf.
pub const LATENCY_BUCKET_BOUNDS_NS: [u64; 16] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    1_000_000_000,
];
/// The bounds plus +Inf.
const BUCKETS: usize = LATENCY_BUCKET_BOUNDS_NS.len() + 1;

/// A fixed-bucket latency histogram: one atomic per bucket plus a running sum.
#[derive(Debug)]
pub struct Histogram {
    /// Non-cumulative counts; `buckets[BUCKETS - 1]` is +Inf.
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record_ns(&self, ns: u64) {
        let bucket = LATENCY_BUCKET_BOUNDS_NS
            .iter()
            .position(|bound| ns <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// A copy of the counts: cumulative per bound (the last is +Inf = the total), and
    /// the sum in nanoseconds.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0u64; BUCKETS];
        let mut total = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            cumulative[i] = total;
        }
        HistogramSnapshot {
            cumulative,
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, Copy)]
pub struct HistogramSnapshot {
    /// Requests at or below each bound of `LATENCY_BUCKET_BOUNDS_NS`, then the total.
    pub cumulative: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.cumulative[BUCKETS - 1]
    }
}

/// Per-API request statistics.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub latency: Histogram,
    /// Requests that could not be answered (undecodable, unsupported version, encode
    /// failure): each one closed its connection. Kafka-level error codes inside a
    /// response are answers, not errors here.
    pub errors: AtomicU64,
}

/// The broker's request metrics.
#[derive(Debug)]
pub struct Metrics {
    apis: Box<[ApiStats]>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Requests that parked to wait for an event (Fetch long-polls).
    pub parked_total: AtomicU64,
    /// How often each configured limit was hit (docs/limits.md).
    pub limits: LimitHits,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            apis: (0..API_KEY_SLOTS).map(|_| ApiStats::default()).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            parked_total: AtomicU64::new(0),
            limits: LimitHits::default(),
        }
    }
}

/// A configured limit (its config key is its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxFrameBytes,
    MaxConnections,
    MaxConnectionsPerIp,
    MaxInflightRequests,
    IdleTimeout,
    PartialFrameTimeout,
    MaxTopics,
    MaxPartitionsPerTopic,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::MaxFrameBytes,
        Limit::MaxConnections,
        Limit::MaxConnectionsPerIp,
        Limit::MaxInflightRequests,
        Limit::IdleTimeout,
        Limit::PartialFrameTimeout,
        Limit::MaxTopics,
        Limit::MaxPartitionsPerTopic,
    ];

    /// The config key, also the `limit` label of the metric.
    pub fn key(self) -> &'static str {
        match self {
            Limit::MaxFrameBytes => "max_frame_bytes",
            Limit::MaxConnections => "max_connections",
            Limit::MaxConnectionsPerIp => "max_connections_per_ip",
            Limit::MaxInflightRequests => "max_inflight_requests",
            Limit::IdleTimeout => "idle_timeout_ms",
            Limit::PartialFrameTimeout => "partial_frame_timeout_ms",
            Limit::MaxTopics => "max_topics",
            Limit::MaxPartitionsPerTopic => "max_partitions_per_topic",
        }
    }
}

/// Minimum time between two log lines about the same limit: a flood of hits (a
/// connection storm, a slowloris army) costs one line per second, not one per hit.
pub const LIMIT_LOG_INTERVAL_MS: u64 = 1000;

/// Hit counters of the limits, plus the state that rate-limits their log lines.
#[derive(Debug)]
pub struct LimitHits {
    hits: [AtomicU64; Limit::ALL.len()],
    /// Hits not logged since the last line, per limit.
    unlogged: [AtomicU64; Limit::ALL.len()],
    /// When the last line per limit was written, ms since `started` (0 = never).
    logged_at_ms: [AtomicU64; Limit::ALL.len()],
    started: Instant,
}

impl Default for LimitHits {
    fn default() -> Self {
        LimitHits {
            hits: std::array::from_fn(|_| AtomicU64::new(0)),
            unlogged: std::array::from_fn(|_| AtomicU64::new(0)),
            logged_at_ms: std::array::from_fn(|_| AtomicU64::new(0)),
            started: Instant::now(),
        }
    }
}

impl LimitHits {
    /// Counts one hit of `limit` and logs it, unless a line about this limit was
    /// written less than `LIMIT_LOG_INTERVAL_MS` ago (then the next line carries the
    /// number of hits left unlogged). `detail` says what was refused.
    pub fn hit(&self, limit: Limit, detail: std::fmt::Arguments<'_>) {
        let i = limit as usize;
        let total = self.hits[i].fetch_add(1, Ordering::Relaxed) + 1;
        // +1 so that 0 can mean "never logged".
        let now_ms = self.started.elapsed().as_millis() as u64 + 1;
        let last_ms = self.logged_at_ms[i].load(Ordering::Relaxed);
        let due = last_ms == 0 || now_ms >= last_ms + LIMIT_LOG_INTERVAL_MS;
        if due
            && self.logged_at_ms[i]
                .compare_exchange(last_ms, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let unlogged = self.unlogged[i].swap(0, Ordering::Relaxed);
            tracing::warn!(
                limit = limit.key(),
                hits_total = total,
                not_logged_since_last_line = unlogged,
                "limit hit: {detail}"
            );
        } else {
            self.unlogged[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count(&self, limit: Limit) -> u64 {
        self.hits[limit as usize].load(Ordering::Relaxed)
    }
}

fn slot(api_key: i16) -> usize {
    usize::try_from(api_key)
        .ok()
        .filter(|k| *k < OTHER_API_SLOT)
        .unwrap_or(OTHER_API_SLOT)
}

impl Metrics {
    /// Records one handled request: its service time and, when it failed, an error.
    pub fn record_request(&self, api_key: i16, elapsed: Duration, failed: bool) {
        let stats = &self.apis[slot(api_key)];
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        stats.latency.record_ns(ns);
        if failed {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn add_bytes(&self, in_bytes: usize, out_bytes: usize) {
        if in_bytes > 0 {
            self.bytes_in.fetch_add(in_bytes as u64, Ordering::Relaxed);
        }
        if out_bytes > 0 {
            self.bytes_out
                .fetch_add(out_bytes as u64, Ordering::Relaxed);
        }
    }

    /// Statistics per API key slot; `None` as the key is the shared "other" slot.
    pub fn apis(&self) -> impl Iterator<Item = (Option<i16>, &ApiStats)> {
        self.apis.iter().enumerate().map(|(i, s)| {
            let key = if i == OTHER_API_SLOT {
                None
            } else {
                i16::try_from(i).ok()
            };
            (key, s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_limit_hits_is_counted_in_full_but_logged_once_per_interval() {
        let limits = LimitHits::default();
        for i in 0..1000 {
            limits.hit(Limit::PartialFrameTimeout, format_args!("hit {i}"));
        }
        assert_eq!(limits.count(Limit::PartialFrameTimeout), 1000);
        assert_eq!(limits.count(Limit::MaxTopics), 0);
        // Only the first was logged (the loop takes far less than the interval); the
        // rest wait for the next line, which reports them.
        let unlogged = limits.unlogged[Limit::PartialFrameTimeout as usize].load(Ordering::Relaxed);
        assert_eq!(unlogged, 999);
        // Another limit has its own interval: its first hit is logged at once.
        limits.hit(Limit::MaxTopics, format_args!("first"));
        assert_eq!(
            limits.unlogged[Limit::MaxTopics as usize].load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn latency_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let h = Histogram::default();
        h.record_ns(1_000); // on the first bound
        h.record_ns(1_001); // just above it
        h.record_ns(u64::MAX); // +Inf
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[BUCKETS - 2], 2);
        assert_eq!(s.count(), 3);
    }

    #[test]
    fn unknown_and_negative_api_keys_share_the_other_slot() {
        let m = Metrics::default();
        m.record_request(0, Duration::from_micros(3), false);
        m.record_request(-1, Duration::from_micros(3), true);
        m.record_request(9999, Duration::from_micros(3), true);
        let by_key: Vec<_> = m
            .apis()
            .filter(|(_, s)| s.latency.snapshot().count() > 0)
            .map(|(k, s)| {
                (
                    k,
                    s.latency.snapshot().count(),
                    s.errors.load(Ordering::Relaxed),
                )
            })
            .collect();
        assert_eq!(by_key, vec![(Some(0), 1, 0), (None, 2, 2)]);
    }
}
