//! Recording: HdrHistograms of latency (from the intended send), service time (from the
//! actual send) and send lag, with warm-up excluded, plus optional 1 s interval
//! histograms handed to a log writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::schedule::Sample;

/// Largest value a histogram holds (1 hour in ns); larger samples are clamped to it.
pub const HIST_MAX_NS: u64 = 3_600 * 1_000_000_000;
/// HdrHistogram precision: 3 significant digits, 0.1% value resolution.
pub const HIST_SIGFIGS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, HIST_SIGFIGS).expect("static histogram bounds")
}

/// A finished interval histogram (run clock, ns) for the interval log.
pub struct Interval {
    pub start_ns: u64,
    pub end_ns: u64,
    pub latency: Histogram<u64>,
}

struct IntervalState {
    len_ns: u64,
    start_ns: u64,
    latency: Histogram<u64>,
    sink: Sender<Interval>,
}

/// Counts samples and errors of one run. Owned by the thread that sees completions.
pub struct Recorder {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    /// Samples intended before this instant are warm-up and not recorded.
    pub warmup_end_ns: u64,
    /// Requests answered with an error (anywhere in the run, warm-up included: an error
    /// is never excused).
    pub errors: u64,
    /// Requests that never completed (no response before the drain deadline).
    pub timeouts: u64,
    /// Payload bytes (record values) carried by recorded samples.
    pub payload_bytes: u64,
    /// Measured samples, readable by a progress thread.
    pub progress: Arc<AtomicU64>,
    interval: Option<IntervalState>,
}

impl Recorder {
    pub fn new(warmup_end_ns: u64) -> Recorder {
        Recorder {
            latency: new_histogram(),
            service: new_histogram(),
            send_lag: new_histogram(),
            warmup_end_ns,
            errors: 0,
            timeouts: 0,
            payload_bytes: 0,
            progress: Arc::new(AtomicU64::new(0)),
            interval: None,
        }
    }

    /// Sends a latency histogram per `len_ns` of run time (from the end of warm-up) to `sink`.
    pub fn with_intervals(mut self, len_ns: u64, sink: Sender<Interval>) -> Recorder {
        self.interval = Some(IntervalState {
            len_ns,
            start_ns: self.warmup_end_ns,
            latency: new_histogram(),
            sink,
        });
        self
    }

    pub fn count(&self) -> u64 {
        self.latency.len()
    }

    /// Records one successful request carrying `payload_bytes`.
    pub fn record(&mut self, s: Sample, payload_bytes: u64) {
        if s.intended_ns < self.warmup_end_ns {
            return;
        }
        let latency_ns = s.latency_ns().max(1);
        self.latency.saturating_record(latency_ns);
        self.service.saturating_record(s.service_ns().max(1));
        // Send lag is often exactly 0 in closed loop; HdrHistogram's lowest value is 1.
        self.send_lag.saturating_record(s.send_lag_ns().max(1));
        self.payload_bytes += payload_bytes;
        self.progress.fetch_add(1, Ordering::Relaxed);
        if let Some(iv) = &mut self.interval {
            roll_intervals(iv, s.done_ns);
            iv.latency.saturating_record(latency_ns);
        }
    }

    pub fn error(&mut self) {
        self.errors += 1;
    }

    /// Adds another thread's recording to this one (HdrHistogram `add`: exact, the
    /// merged percentiles are those of all samples together).
    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so `add` cannot fail; saturating keeps it panic-free.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.send_lag.add(&other.send_lag);
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.payload_bytes += other.payload_bytes;
    }

    /// Counts into `counter` (shared by every recorder of a run, for the progress bar).
    pub fn with_progress(mut self, counter: Arc<AtomicU64>) -> Recorder {
        self.progress = counter;
        self
    }

    /// Closes the last interval at `end_ns`.
    pub fn finish(&mut self, end_ns: u64) {
        if let Some(iv) = &mut self.interval {
            roll_intervals(iv, end_ns);
            let last = std::mem::replace(&mut iv.latency, new_histogram());
            if end_ns > iv.start_ns {
                let _ = iv.sink.send(Interval {
                    start_ns: iv.start_ns,
                    end_ns,
                    latency: last,
                });
            }
            self.interval = None;
        }
    }
}

/// Emits every interval that ended before `now_ns` (empty ones too, so a stall shows as
/// a gap with no completions rather than vanishing).
fn roll_intervals(iv: &mut IntervalState, now_ns: u64) {
    while now_ns >= iv.start_ns + iv.len_ns {
        // A fresh histogram is a zeroed allocation (calloc): cheap on the recording thread;
        // serialisation happens on the log writer's thread.
        let done = std::mem::replace(&mut iv.latency, new_histogram());
        let _ = iv.sink.send(Interval {
            start_ns: iv.start_ns,
            end_ns: iv.start_ns + iv.len_ns,
            latency: done,
        });
        iv.start_ns += iv.len_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::intended_send_ns;

    fn sample(intended_ns: u64, sent_ns: u64, done_ns: u64) -> Sample {
        Sample {
            intended_ns,
            sent_ns,
            done_ns,
        }
    }

    #[test]
    fn warmup_is_excluded_errors_are_not() {
        let mut r = Recorder::new(1_000);
        r.record(sample(999, 999, 2_000), 10);
        r.error();
        r.record(sample(1_000, 1_000, 3_000), 10);
        assert_eq!(r.count(), 1);
        assert_eq!(r.errors, 1);
        assert_eq!(r.payload_bytes, 10);
        assert_eq!(r.latency.max(), r.latency.highest_equivalent(2_000));
    }

    #[test]
    fn corrected_latency_goes_to_latency_actual_to_service() {
        let mut r = Recorder::new(0);
        r.record(sample(1_000, 51_000, 61_000), 0);
        assert_eq!(
            r.latency.value_at_quantile(0.5),
            r.latency.highest_equivalent(60_000)
        );
        assert_eq!(
            r.service.value_at_quantile(0.5),
            r.service.highest_equivalent(10_000)
        );
        assert_eq!(
            r.send_lag.value_at_quantile(0.5),
            r.send_lag.highest_equivalent(50_000)
        );
    }

    #[test]
    fn synthetic_stall_in_the_histogram() {
        // 10k/s for 2 s, each answered 20 µs after its intended time, except that nothing
        // completes during a 100 ms stall starting at 1 s: everything intended in the stall
        // completes when it ends.
        let mut r = Recorder::new(0);
        let (stall_start, stall_end) = (1_000_000_000, 1_100_000_000);
        for i in 0..20_000 {
            let t = intended_send_ns(0, i, 10_000.0);
            let mut done = t + 20_000;
            if (stall_start..stall_end).contains(&done) {
                done = stall_end;
            }
            r.record(sample(t, t, done), 0);
        }
        let delayed = r.latency.count_between(1_000_000, HIST_MAX_NS);
        assert!((990..=1010).contains(&delayed), "delayed = {delayed}");
        assert!(r.latency.value_at_quantile(0.99) > 10_000_000);
    }

    #[test]
    fn merged_recorders_hold_every_sample() {
        let (mut a, mut b) = (Recorder::new(0), Recorder::new(0));
        for i in 1..=100u64 {
            a.record(sample(0, 0, i * 1_000), 1);
            b.record(sample(0, 0, (100 + i) * 1_000), 1);
        }
        b.error();
        b.timeouts = 2;
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!((a.errors, a.timeouts, a.payload_bytes), (1, 2, 200));
        assert_eq!(
            a.latency.value_at_quantile(0.5),
            a.latency.highest_equivalent(100_000)
        );
        assert_eq!(a.latency.max(), a.latency.highest_equivalent(200_000));
    }

    #[test]
    fn intervals_cover_the_run_including_empty_ones() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut r = Recorder::new(100).with_intervals(1_000, tx);
        r.record(sample(100, 100, 150), 0);
        r.record(sample(200, 200, 3_500), 0);
        r.finish(3_800);
        let got: Vec<(u64, u64, u64)> = rx
            .try_iter()
            .map(|i| (i.start_ns, i.end_ns, i.latency.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (100, 1_100, 1),
                (1_100, 2_100, 0),
                (2_100, 3_100, 0),
                (3_100, 3_800, 1)
            ]
        );
    }
}
