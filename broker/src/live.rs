//! The data-plane toggles that may change while the broker runs (`PUT /v1/config`).
//!
//! Each reader does one relaxed atomic load where the value is used: a worker once per
//! loop iteration, the acceptor once per accepted socket. Relaxed is enough: a new value
//! only has to be seen eventually, and no other memory is published with it. (`flush`,
//! the fifth live key, lives in storage: `Storage::set_flush_policy`.)

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::config::{
    Config, MAX_BUSY_POLL_US, MAX_IDLE_SPIN_US, MAX_LOOP_TIMEOUT_MS, MIN_LOOP_TIMEOUT_MS,
};

#[derive(Debug)]
pub struct LiveToggles {
    loop_timeout_ms: AtomicU64,
    idle_spin_us: AtomicU32,
    busy_poll_us: AtomicU32,
    prefer_busy_poll: AtomicBool,
}

impl LiveToggles {
    pub fn new(cfg: &Config) -> LiveToggles {
        LiveToggles {
            loop_timeout_ms: AtomicU64::new(cfg.loop_timeout_ms),
            idle_spin_us: AtomicU32::new(cfg.idle_spin_us),
            busy_poll_us: AtomicU32::new(cfg.busy_poll_us),
            prefer_busy_poll: AtomicBool::new(cfg.prefer_busy_poll),
        }
    }
    /// Longest wait of a worker with connections; picked up on its next wait.
    pub fn loop_timeout_ms(&self) -> u64 {
        self.loop_timeout_ms.load(Ordering::Relaxed)
    }
    pub fn set_loop_timeout_ms(&self, ms: u64) {
        self.loop_timeout_ms.store(
            ms.clamp(MIN_LOOP_TIMEOUT_MS, MAX_LOOP_TIMEOUT_MS),
            Ordering::Relaxed,
        );
    }
    /// How long a worker keeps polling after its last event (0 = block at once).
    pub fn idle_spin_us(&self) -> u32 {
        self.idle_spin_us.load(Ordering::Relaxed)
    }
    pub fn set_idle_spin_us(&self, us: u32) {
        self.idle_spin_us
            .store(us.min(MAX_IDLE_SPIN_US), Ordering::Relaxed);
    }
    /// SO_BUSY_POLL µs (0 = off) for connections accepted from now on.
    pub fn busy_poll_us(&self) -> u32 {
        self.busy_poll_us.load(Ordering::Relaxed)
    }
    pub fn set_busy_poll_us(&self, us: u32) {
        self.busy_poll_us
            .store(us.min(MAX_BUSY_POLL_US), Ordering::Relaxed);
    }
    /// SO_PREFER_BUSY_POLL for connections accepted from now on.
    pub fn prefer_busy_poll(&self) -> bool {
        self.prefer_busy_poll.load(Ordering::Relaxed)
    }
    pub fn set_prefer_busy_poll(&self, on: bool) {
        self.prefer_busy_poll.store(on, Ordering::Relaxed);
    }
}
