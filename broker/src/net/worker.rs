//! The worker loop, written once for every backend.
//!
//! A worker owns its connections: the table, adoption of sockets from the acceptor,
//! framing and request handling (through `conn.rs`), parked requests, one deadline heap,
//! closing, and the shutdown drain. The [`Driver`] is the only backend-specific part: it
//! waits, moves bytes between the sockets and the connections' buffers, and reports
//! which connections need the worker.
//!
//! How a worker waits (`idle_spin_us`, live): for that long after its last event it
//! polls without blocking (a zero timeout), so a request arriving meanwhile finds it
//! awake instead of a halted vCPU to wake; then it blocks until the next deadline or
//! `loop_timeout_ms`, and with no connection at all until its eventfd fires. With no
//! traffic it blocks at once, and with no client it never wakes (0% CPU).
//!
//! Deadlines come from one heap: each parked request's, and each connection's next
//! possible timeout (idle, partial frame). A connection keeps at most one live heap
//! entry, pushed again only when its expiry moves earlier, so the heap stays as large
//! as the connection count and no loop iteration scans every connection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::buffer::InputBuffer;
use super::conn::{CloseReason, Conn};
use super::{
    Accepted, ConnLimits, WorkerShared, LOCAL_WAKE, MAX_CONNECTIONS_PER_WORKER, SHUTDOWN_DRAIN_MS,
};
use crate::broker::Broker;
use crate::output::RecordsOut;

/// The deadline heap is compacted when it holds more than this many entries per live
/// connection (plus the slack): each live connection needs one, two with a parked
/// request.
const STALE_DEADLINES_FACTOR: usize = 4;
const STALE_DEADLINES_SLACK: usize = 64;
/// A wait without timeout: the driver blocks until an event.
pub(super) const WAIT_FOREVER: Duration = Duration::MAX;
/// How long exit waits for a driver's operations in flight to complete.
const QUIESCE_MS: u64 = 1000;
/// Longest wait of one poll during the shutdown drain.
const DRAIN_POLL_MS: u64 = 10;

/// One connection of a worker: the backend-independent state and the driver's.
pub(super) struct Entry<B, I> {
    pub conn: Conn<B>,
    pub stream: TcpStream,
    pub io: I,
    /// Set once closing began; the entry is freed when the driver releases it.
    pub closing: bool,
    /// The expiry of this connection's live entry in the deadline heap.
    timer_at: Option<Instant>,
    /// Distinguishes this connection from later ones in the same slot (heap entries
    /// of a closed connection are ignored).
    generation: u32,
}

/// What a driver tells the worker after a wait.
#[derive(Debug)]
pub(super) enum Ready {
    /// The worker's eventfd fired: new sockets, parked requests to look at, shutdown.
    Woken,
    /// Bytes moved for this connection: process its input, send its output.
    Service(usize),
    /// This connection failed or its peer closed it.
    Close(usize, CloseReason),
    /// A closing connection has nothing in flight any more: free its slot.
    Released(usize),
}

/// The backend-specific half of a worker (epoll readiness, io_uring completions).
pub(super) trait Driver {
    /// The driver's state of one connection.
    type Io;
    /// Starts watching a newly adopted socket in slot `idx`.
    fn register(&mut self, idx: usize, stream: &TcpStream) -> io::Result<Self::Io>;
    /// Waits up to `timeout` (zero: only looks; [`WAIT_FOREVER`]: until an event),
    /// moves the bytes each event names
    /// between socket and connection, and appends what the worker must do to `ready`.
    fn poll<B: InputBuffer>(
        &mut self,
        timeout: Duration,
        conns: &mut [Option<Entry<B, Self::Io>>],
        ready: &mut Vec<Ready>,
    ) -> io::Result<()>;
    /// Whether the connection's input buffer may be framed now (an io_uring receive
    /// in flight owns its spare room).
    fn input_free(&self, io: &Self::Io) -> bool;
    /// Starts (or continues) sending the connection's output.
    fn send<B: InputBuffer>(
        &mut self,
        idx: usize,
        entry: &mut Entry<B, Self::Io>,
    ) -> Result<(), CloseReason>;
    /// After the worker served a connection: (re)arm receiving as its backpressure allows.
    fn arm<B: InputBuffer>(
        &mut self,
        idx: usize,
        entry: &mut Entry<B, Self::Io>,
    ) -> Result<(), CloseReason>;
    /// Whether output of this connection is still on its way to the kernel.
    fn sending<B: InputBuffer>(&self, entry: &Entry<B, Self::Io>) -> bool;
    /// Begins closing; true when nothing is in flight and the slot can be freed now
    /// (otherwise a later [`Ready::Released`] says so).
    fn close<B: InputBuffer>(&mut self, idx: usize, entry: &mut Entry<B, Self::Io>) -> bool;
    /// Takes back the resources of a freed connection (buffers for reuse).
    fn release(&mut self, io: Self::Io);
    /// At exit, after every connection was closed: stop watching the eventfd.
    fn stop(&mut self);
    /// At exit, when operations are still in flight after [`QUIESCE_MS`]: never free
    /// memory the kernel may still write (leak it instead).
    fn abandon(&mut self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A parked request's deadline.
    Parked,
    /// A connection's idle / partial-frame expiry.
    Conn,
}

/// (when, slot, generation, what) in a min-heap.
type Deadline = Reverse<(Instant, usize, u32, Timer)>;

struct Worker<D: Driver, B> {
    broker: Arc<Broker>,
    shared: Arc<WorkerShared>,
    driver: D,
    conns: Vec<Option<Entry<B, D::Io>>>,
    free: Vec<usize>,
    /// Generation of the next connection in each slot.
    generations: Vec<u32>,
    deadlines: BinaryHeap<Deadline>,
    /// Slots with a parked request (looked at on a wake-up, nothing else is).
    parked: Vec<usize>,
    /// Scratch for `resume_parked` and for the driver's reports (kept, not reallocated).
    parked_scratch: Vec<usize>,
    ready: Vec<Ready>,
    limits: ConnLimits,
    conn_buffer_bytes: usize,
    /// Whether Fetch splices record bytes into the output (`fetch_zero_copy`).
    records_out: RecordsOut,
    /// The loop's clock, read once per iteration.
    now: Instant,
}

/// One worker's loop; returns at shutdown after answering parked requests, draining
/// responses (bounded by `SHUTDOWN_DRAIN_MS`) and reaping the driver's operations.
/// `D` is the backend and `B` the connection input buffer, both fixed for its life.
pub(super) fn run<D: Driver, B: InputBuffer>(
    broker: Arc<Broker>,
    shared: Arc<WorkerShared>,
    driver: D,
    limits: ConnLimits,
) -> io::Result<()> {
    let now = Instant::now();
    let mut w = Worker::<D, B> {
        conn_buffer_bytes: broker.effective.config.conn_buffer_bytes,
        records_out: if broker.effective.config.fetch_zero_copy {
            RecordsOut::Splice
        } else {
            RecordsOut::Copy
        },
        broker,
        shared,
        driver,
        conns: Vec::new(),
        free: Vec::new(),
        generations: Vec::new(),
        deadlines: BinaryHeap::new(),
        parked: Vec::new(),
        parked_scratch: Vec::new(),
        ready: Vec::with_capacity(256),
        limits,
        now,
    };
    // When the last event arrived: the worker polls without blocking until
    // `idle_spin_us` after it.
    let mut last_event = now;
    loop {
        let spin = Duration::from_micros(u64::from(w.broker.live.idle_spin_us()));
        let timeout = if !spin.is_zero() && w.now.duration_since(last_event) < spin {
            Duration::ZERO
        } else {
            w.next_wait()
        };
        let mut ready = std::mem::take(&mut w.ready);
        w.driver.poll(timeout, &mut w.conns, &mut ready)?;
        w.now = Instant::now();
        if !ready.is_empty() {
            last_event = w.now;
        }
        let mut woken = false;
        for r in ready.drain(..) {
            match r {
                Ready::Woken => woken = true,
                Ready::Service(idx) => w.service_or_close(idx),
                Ready::Close(idx, reason) => w.close(idx, reason),
                Ready::Released(idx) => w.free_slot(idx),
            }
        }
        w.ready = ready;
        if w.shared.shutdown.load(Ordering::Acquire) {
            w.drain_for_shutdown();
            return Ok(());
        }
        if woken {
            w.adopt_new_connections();
        }
        // A wake-up through the eventfd (another thread appended data, a group moved
        // on) or raised by a request of this very worker (LOCAL_WAKE).
        if woken | LOCAL_WAKE.with(|l| l.replace(false)) {
            w.resume_parked(false);
        }
        w.fire_deadlines();
    }
}

impl<D: Driver, B: InputBuffer> Worker<D, B> {
    /// Until the nearest deadline, at most the (live) loop timeout; [`WAIT_FOREVER`]
    /// when the worker has no connection and no deadline: then only its eventfd (a
    /// new socket, shutdown) can give it work, so an idle broker never wakes.
    fn next_wait(&self) -> Duration {
        let max = Duration::from_millis(self.broker.live.loop_timeout_ms());
        match self.deadlines.peek() {
            Some(Reverse((at, ..))) => at.saturating_duration_since(self.now).min(max),
            None if self.conns.len() == self.free.len() => WAIT_FOREVER,
            None => max,
        }
    }

    fn adopt_new_connections(&mut self) {
        let streams = match self.shared.inbox.lock() {
            Ok(mut inbox) => std::mem::take(&mut *inbox),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for Accepted { stream, permit } in streams {
            let live = self.conns.len() - self.free.len();
            if live >= MAX_CONNECTIONS_PER_WORKER {
                warn!(
                    limit = MAX_CONNECTIONS_PER_WORKER,
                    "connection limit reached; refusing"
                );
                continue;
            }
            let idx = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.generations.push(0);
                self.conns.len() - 1
            });
            let io = match self.driver.register(idx, &stream) {
                Ok(io) => io,
                Err(e) => {
                    warn!(error = %e, "could not register an accepted socket; closing it");
                    self.free.push(idx);
                    continue;
                }
            };
            self.conns[idx] = Some(Entry {
                conn: Conn::new(
                    permit,
                    self.limits,
                    self.conn_buffer_bytes,
                    self.records_out,
                    self.now,
                ),
                stream,
                io,
                closing: false,
                timer_at: None,
                generation: self.generations[idx],
            });
            self.shared.connections.fetch_add(1, Ordering::Relaxed);
            self.service_or_close(idx);
        }
    }

    fn service_or_close(&mut self, idx: usize) {
        if let Err(reason) = self.service(idx) {
            self.close(idx, reason);
        }
    }

    /// Processes buffered requests, sends, re-arms receiving, updates the timeouts.
    fn service(&mut self, idx: usize) -> Result<(), CloseReason> {
        let Some(entry) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Ok(());
        };
        if entry.closing {
            return Ok(());
        }
        if self.driver.input_free(&entry.io) {
            loop {
                if entry.conn.process(&self.broker)? {
                    // Counted before the second look: data appended on another thread
                    // after it is then seen by this look or wakes us (the waker only
                    // wakes workers with parked requests).
                    self.shared.parked_requests.fetch_add(1, Ordering::AcqRel);
                    if entry.conn.resume(&self.broker, false)? {
                        self.shared.parked_requests.fetch_sub(1, Ordering::AcqRel);
                    } else {
                        if let Some(p) = entry.conn.parked.as_ref() {
                            let at = p.deadline();
                            self.deadlines.push(Reverse((
                                at,
                                idx,
                                entry.generation,
                                Timer::Parked,
                            )));
                        }
                        self.parked.push(idx);
                    }
                }
                self.driver.send(idx, entry)?;
                // Frames that waited behind a parked request or a full backlog can go now.
                if !(entry.conn.wants_read() && entry.conn.has_complete_frame()) {
                    break;
                }
            }
        } else {
            self.driver.send(idx, entry)?;
        }
        self.driver.arm(idx, entry)?;
        entry.conn.note_activity(self.now);
        let expiry = entry.conn.expiry();
        if entry.timer_at.is_none_or(|t| expiry < t) {
            entry.timer_at = Some(expiry);
            self.deadlines
                .push(Reverse((expiry, idx, entry.generation, Timer::Conn)));
        }
        Ok(())
    }

    /// Re-examines the parked requests (each answers cheaply when nothing it waits for
    /// happened); `force` answers them all (shutdown).
    fn resume_parked(&mut self, force: bool) {
        let mut list = std::mem::take(&mut self.parked_scratch);
        std::mem::swap(&mut list, &mut self.parked);
        for &idx in &list {
            match self.resume_one(idx, force) {
                Ok(true) => {}
                Ok(false) => self.parked.push(idx),
                Err(reason) => self.close(idx, reason),
            }
        }
        list.clear();
        self.parked_scratch = list;
    }

    /// Ok(true) when the slot's parked request was answered (or is gone), and the
    /// connection served.
    fn resume_one(&mut self, idx: usize, force: bool) -> Result<bool, CloseReason> {
        let Some(entry) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Ok(true);
        };
        if entry.closing || entry.conn.parked.is_none() {
            return Ok(true);
        }
        if !entry.conn.resume(&self.broker, force)? {
            return Ok(false);
        }
        self.shared.parked_requests.fetch_sub(1, Ordering::AcqRel);
        self.service(idx)?;
        Ok(true)
    }

    /// Answers parked requests whose deadline passed and closes timed-out connections.
    fn fire_deadlines(&mut self) {
        while let Some(&Reverse((at, idx, generation, timer))) = self.deadlines.peek() {
            if at > self.now {
                return;
            }
            self.deadlines.pop();
            let Some(entry) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if entry.generation != generation || entry.closing {
                continue;
            }
            match timer {
                Timer::Parked => {
                    if let Some(pos) = self.parked.iter().position(|&p| p == idx) {
                        match self.resume_one(idx, false) {
                            Ok(true) => {
                                self.parked.swap_remove(pos);
                            }
                            Ok(false) => {}
                            Err(reason) => {
                                self.parked.swap_remove(pos);
                                self.close(idx, reason);
                            }
                        }
                    }
                }
                Timer::Conn => {
                    if entry.timer_at != Some(at) {
                        continue; // superseded by an earlier entry
                    }
                    match entry.conn.expire(self.now, &self.broker) {
                        Ok(next) => {
                            entry.timer_at = Some(next);
                            self.deadlines
                                .push(Reverse((next, idx, generation, Timer::Conn)));
                        }
                        Err(reason) => {
                            entry.timer_at = None;
                            self.close(idx, reason);
                        }
                    }
                }
            }
        }
    }

    fn close(&mut self, idx: usize, reason: CloseReason) {
        let Some(entry) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if entry.closing {
            return;
        }
        match &reason {
            CloseReason::Eof => debug!("connection closed by peer"),
            other if other.logged_as_limit() => debug!(reason = %other, "closing connection"),
            other => info!(reason = %other, "closing connection"),
        }
        entry.closing = true;
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        if entry.conn.parked.take().is_some() {
            self.shared.parked_requests.fetch_sub(1, Ordering::AcqRel);
            if let Some(pos) = self.parked.iter().position(|&p| p == idx) {
                self.parked.swap_remove(pos);
            }
        }
        if self.driver.close(idx, entry) {
            self.free_slot(idx);
        }
    }

    /// Frees a closed connection's slot: the socket closes, the permit is returned.
    fn free_slot(&mut self, idx: usize) {
        let Some(entry) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        debug_assert!(entry.closing);
        self.generations[idx] = self.generations[idx].wrapping_add(1);
        self.driver.release(entry.io);
        self.free.push(idx);
        let live = self.conns.len() - self.free.len();
        if live == 0 {
            // Every deadline belonged to a connection, so all are stale now; dropped,
            // they cannot wake an idle worker.
            self.deadlines.clear();
        } else if self.deadlines.len() > STALE_DEADLINES_FACTOR * live + STALE_DEADLINES_SLACK {
            // Entries of closed connections would otherwise stay until they come due
            // (idle_timeout_ms): under connection churn, rate x timeout of them. Keep
            // the heap proportional to the live connections (amortized O(1) per close).
            let conns = &self.conns;
            self.deadlines
                .retain(|Reverse((at, idx, generation, timer))| {
                    conns.get(*idx).and_then(Option::as_ref).is_some_and(|e| {
                        e.generation == *generation
                            && !e.closing
                            && match timer {
                                Timer::Conn => e.timer_at == Some(*at),
                                Timer::Parked => e.conn.parked.is_some(),
                            }
                    })
                });
        }
    }

    /// Shutdown: answer parked requests now, give responses a bounded time to drain,
    /// then close everything and reap every operation in flight.
    fn drain_for_shutdown(&mut self) {
        self.resume_parked(true);
        let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
        let mut ready = std::mem::take(&mut self.ready);
        while Instant::now() < deadline && self.any_output() {
            if !self.drain_poll(&mut ready) {
                break;
            }
            for r in ready.drain(..) {
                match r {
                    // Only what is already answered goes out; nothing new is processed.
                    Ready::Service(idx) => {
                        if let Some(entry) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                            if let Err(reason) = self.driver.send(idx, entry) {
                                self.close(idx, reason);
                            }
                        }
                    }
                    Ready::Close(idx, reason) => self.close(idx, reason),
                    Ready::Released(idx) => self.free_slot(idx),
                    Ready::Woken => {}
                }
            }
        }
        for idx in 0..self.conns.len() {
            self.close(idx, CloseReason::Eof);
        }
        self.driver.stop();
        let deadline = Instant::now() + Duration::from_millis(QUIESCE_MS);
        while Instant::now() < deadline && self.conns.iter().any(Option::is_some) {
            if !self.drain_poll(&mut ready) {
                break;
            }
            for r in ready.drain(..) {
                if let Ready::Released(idx) = r {
                    self.free_slot(idx);
                }
            }
        }
        if self.conns.iter().any(Option::is_some) {
            warn!("operations still in flight at exit; leaking their buffers");
            std::mem::forget(std::mem::take(&mut self.conns));
            self.driver.abandon();
        }
    }

    /// One short wait of the shutdown drain; false when the driver failed.
    fn drain_poll(&mut self, ready: &mut Vec<Ready>) -> bool {
        let wait = Duration::from_millis(DRAIN_POLL_MS);
        self.driver.poll(wait, &mut self.conns, ready).is_ok()
    }

    fn any_output(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|e| !e.closing && self.driver.sending(e))
    }
}
