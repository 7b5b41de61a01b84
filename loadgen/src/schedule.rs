//! When to send: closed loop (N in flight) or open loop (a fixed-rate schedule), and the
//! arithmetic that turns send/receive instants into coordinated-omission-corrected samples.

use std::time::{Duration, Instant};

use serde::Serialize;

pub const NS_PER_S: u64 = 1_000_000_000;
/// Below this much remaining wait the pacer spins instead of sleeping: a sleep overshoots
/// by several µs even with 1 ns timer slack, which would show up as send lag.
const PACE_SPIN_NS: u64 = 10_000;

/// How requests are issued.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The next request is sent when a response arrives; `inflight` requests outstanding.
    /// Latency is measured from the actual send (there is no intended time).
    Closed { inflight: u32 },
    /// Requests are sent at fixed intended times, whatever the responses do. `max_inflight`
    /// bounds memory; when it is hit the sender waits and that wait shows as send lag.
    Open { rate_per_s: f64, max_inflight: u32 },
}

/// A monotonic clock shared by every thread of a run, in ns since the run's epoch, so
/// timestamps taken on different threads (and carried in records) are comparable.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// Intended send time of the `index`-th message of an open-loop schedule starting at
/// `start_ns`. Computed from the index (not by adding intervals) so rounding never
/// accumulates into drift.
pub fn intended_send_ns(start_ns: u64, index: u64, rate_per_s: f64) -> u64 {
    start_ns + (index as f64 * NS_PER_S as f64 / rate_per_s) as u64
}

/// Number of messages whose intended send time falls in `[start, start + duration)`.
pub fn messages_in_window(duration_ns: u64, rate_per_s: f64) -> u64 {
    (duration_ns as f64 * rate_per_s / NS_PER_S as f64).ceil() as u64
}

/// One request's three instants on the run clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When the schedule wanted it sent (equals `sent_ns` in closed loop).
    pub intended_ns: u64,
    /// When it was actually written to the socket.
    pub sent_ns: u64,
    /// When its response (or delivery report, or consumed record) arrived.
    pub done_ns: u64,
}

impl Sample {
    /// What a user of the system would feel: from the intended send time. This is the
    /// coordinated-omission-corrected latency.
    pub fn latency_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.intended_ns)
    }

    /// Time the request spent in the system after it actually left the client.
    pub fn service_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.sent_ns)
    }

    /// How late the client was in sending: a saturated client shows here, not as broker
    /// latency.
    pub fn send_lag_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.intended_ns)
    }
}

/// Sets this thread's timer slack to 1 ns so that short sleeps end close to when asked
/// (the default slack is 50 µs, as long as the 20k/s interval).
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and only affects this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Waits until the clock reads `target_ns`: sleeps while far away, spins the last stretch.
pub fn pace_until(clock: &Clock, target_ns: u64) {
    loop {
        let now = clock.now_ns();
        if now >= target_ns {
            return;
        }
        let remaining_ns = target_ns - now;
        if remaining_ns > PACE_SPIN_NS {
            std::thread::sleep(Duration::from_nanos(remaining_ns - PACE_SPIN_NS));
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_follow_the_rate_without_drift() {
        assert_eq!(intended_send_ns(0, 0, 10_000.0), 0);
        assert_eq!(intended_send_ns(0, 1, 10_000.0), 100_000);
        assert_eq!(intended_send_ns(5, 3, 20_000.0), 5 + 150_000);
        // A rate whose interval is not a whole number of ns: the millionth message is still
        // exactly where the rate says, not a million rounding errors later.
        assert_eq!(intended_send_ns(0, 3_000_000, 3.0), 1_000_000 * NS_PER_S);
        assert_eq!(intended_send_ns(0, 1, 3.0), 333_333_333);
    }

    #[test]
    fn window_message_count() {
        assert_eq!(messages_in_window(NS_PER_S, 10_000.0), 10_000);
        assert_eq!(messages_in_window(NS_PER_S / 2, 3.0), 2);
    }

    #[test]
    fn sample_components() {
        let s = Sample {
            intended_ns: 100,
            sent_ns: 130,
            done_ns: 200,
        };
        assert_eq!(s.latency_ns(), 100);
        assert_eq!(s.service_ns(), 70);
        assert_eq!(s.send_lag_ns(), 30);
    }

    /// A client that, like a closed-loop tool, cannot send while the system is stalled:
    /// every send happens at max(intended, when the client is free again).
    fn simulate_stall(rate_per_s: f64, n: u64, stall_at_ns: u64, stall_ns: u64) -> Vec<Sample> {
        // Short against the 100 µs interval so the backlog after the stall drains at once
        // and only the stall itself delays samples.
        const SERVICE_NS: u64 = 1_000;
        let mut free_at_ns = 0;
        (0..n)
            .map(|i| {
                let intended = intended_send_ns(0, i, rate_per_s);
                let sent = intended.max(free_at_ns);
                let mut done = sent + SERVICE_NS;
                if sent <= stall_at_ns && stall_at_ns < done {
                    done += stall_ns;
                }
                free_at_ns = done;
                Sample {
                    intended_ns: intended,
                    sent_ns: sent,
                    done_ns: done,
                }
            })
            .collect()
    }

    #[test]
    fn stall_shows_as_about_a_thousand_samples_not_one() {
        // 100 ms stall at 10k/s: 1000 messages should have been sent during it.
        let samples = simulate_stall(10_000.0, 20_000, NS_PER_S + 500, 100_000_000);
        let over_1ms = |f: fn(&Sample) -> u64| samples.iter().filter(|s| f(s) > 1_000_000).count();
        let corrected = over_1ms(Sample::latency_ns);
        let naive = over_1ms(Sample::service_ns);
        assert!(
            (990..=1010).contains(&corrected),
            "corrected delayed samples = {corrected}"
        );
        assert_eq!(naive, 1, "service time sees the stall once");
        // The send lag makes the blocked client visible.
        let lagging = samples.iter().filter(|s| s.send_lag_ns() > 0).count();
        assert!((990..=1010).contains(&lagging), "lagging = {lagging}");
    }

    #[test]
    fn pacing_reaches_the_target() {
        let clock = Clock::new();
        let target = clock.now_ns() + 2_000_000;
        pace_until(&clock, target);
        assert!(clock.now_ns() >= target);
    }
}
