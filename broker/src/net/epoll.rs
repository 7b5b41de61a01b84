//! The epoll backend: level-triggered readiness loops for the acceptor and the workers.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::EventFd;
use tracing::{debug, info, warn};

use super::buffer::InputBuffer;
use super::conn::{CloseReason, Conn};
use super::{
    sockopt, Accepted, ConnLimiter, ConnLimits, WorkerShared, MAX_CONNECTIONS_PER_WORKER,
    SHUTDOWN_DRAIN_MS,
};
use crate::broker::metrics::Limit;
use crate::broker::Broker;
use crate::config::{Config, LiveToggles};

/// Token of the worker's wake-up eventfd; connection `i` has token `i + 1`.
const WAKE_TOKEN: u64 = 0;
const EVENTS_PER_WAIT: usize = 256;

fn timeout_ms(ms: u64) -> EpollTimeout {
    EpollTimeout::try_from(ms.min(i32::MAX as u64)).unwrap_or(EpollTimeout::MAX)
}

/// The acceptor's borrowed state (one thread, for the life of the server).
pub(super) struct Acceptor<'a> {
    pub cfg: &'a Config,
    pub broker: &'a Broker,
    pub limiter: &'a Arc<ConnLimiter>,
    pub workers: &'a [Arc<WorkerShared>],
    pub wake: &'a EventFd,
    pub shutdown: &'a AtomicBool,
}

impl Acceptor<'_> {
    /// Accepts connections and deals them round-robin to the workers; a connection
    /// beyond `max_connections` or `max_connections_per_ip` is closed at once (the
    /// client sees EOF, as with Kafka's connection quotas).
    pub(super) fn run(&self, listener: TcpListener) -> io::Result<()> {
        let live = &self.broker.live;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(listener.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))?;
        epoll.add(self.wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        let mut events = [EpollEvent::empty(); 4];
        let mut next_worker = 0usize;
        while !self.shutdown.load(Ordering::Acquire) {
            match epoll.wait(&mut events, timeout_ms(live.loop_timeout_ms())) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            loop {
                let (stream, peer) = match listener.accept() {
                    Ok((stream, peer)) => {
                        debug!(%peer, "accepted");
                        (stream, peer)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // EMFILE and friends: log, back off a little, keep serving.
                        warn!(error = %e, "accept failed");
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                };
                let permit = match self.limiter.try_acquire(peer.ip()) {
                    Ok(permit) => permit,
                    Err(limit) => {
                        let max = match limit {
                            Limit::MaxConnectionsPerIp => self.cfg.max_connections_per_ip,
                            _ => self.cfg.max_connections,
                        };
                        self.broker.metrics.limits.hit(
                            limit,
                            format_args!(
                                "closing a new connection from {peer}: {} = {max} reached",
                                limit.key()
                            ),
                        );
                        continue; // dropping `stream` closes it
                    }
                };
                if let Err(e) = prepare_socket(&stream, self.cfg, live) {
                    warn!(error = %e, "could not configure an accepted socket; closing it");
                    continue;
                }
                let worker = &self.workers[next_worker % self.workers.len()];
                next_worker = next_worker.wrapping_add(1);
                let accepted = Accepted { stream, permit };
                match worker.inbox.lock() {
                    Ok(mut inbox) => inbox.push(accepted),
                    Err(poisoned) => poisoned.into_inner().push(accepted),
                }
                worker.wake();
            }
        }
        info!("acceptor stopped");
        Ok(())
    }
}

/// Busy polling comes from the live toggles, so a change applies to new connections.
fn prepare_socket(stream: &TcpStream, cfg: &Config, live: &LiveToggles) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay(cfg.tcp_nodelay)?;
    let busy_poll_us = live.busy_poll_us();
    if busy_poll_us > 0 {
        sockopt::set_busy_poll(stream, busy_poll_us, live.prefer_busy_poll())?;
    }
    Ok(())
}

struct Worker<B> {
    broker: Arc<Broker>,
    shared: Arc<WorkerShared>,
    epoll: Epoll,
    conns: Vec<Option<Conn<B>>>,
    free: Vec<usize>,
    /// Interest currently registered per connection, to skip redundant epoll_ctl calls.
    registered: Vec<EpollFlags>,
    limits: ConnLimits,
    conn_buffer_bytes: usize,
    /// When the idle / partial-frame deadlines are checked next (only while there
    /// are connections: an empty worker never wakes for it).
    next_sweep: Instant,
}

/// One worker's event loop; returns at shutdown after answering parked fetches and
/// draining responses (bounded by `SHUTDOWN_DRAIN_MS`).
/// `B` is the connection input buffer (`conn_buffer`), fixed for the worker's life.
pub(super) fn run_worker<B: InputBuffer>(
    broker: Arc<Broker>,
    shared: Arc<WorkerShared>,
    limits: ConnLimits,
) -> io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(
        shared.wake.as_fd(),
        EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
    )?;
    let cfg = &broker.effective.config;
    let mut w = Worker::<B> {
        limits,
        next_sweep: Instant::now() + limits.sweep_interval,
        conn_buffer_bytes: cfg.conn_buffer_bytes,
        broker: broker.clone(),
        shared,
        epoll,
        conns: Vec::new(),
        free: Vec::new(),
        registered: Vec::new(),
    };
    let mut events = vec![EpollEvent::empty(); EVENTS_PER_WAIT];
    loop {
        let wait_ms = w.next_wait_ms();
        let n = match w.epoll.wait(&mut events, timeout_ms(wait_ms)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        let mut woken = false;
        for ev in &events[..n] {
            if ev.data() == WAKE_TOKEN {
                let _ = w.shared.wake.read();
                woken = true;
            } else {
                w.on_ready((ev.data() - 1) as usize, ev.events());
            }
        }
        if w.shared.shutdown.load(Ordering::Acquire) {
            w.drain_for_shutdown();
            return Ok(());
        }
        if woken {
            w.adopt_new_connections();
        }
        w.resume_parked(false);
        w.sweep_deadlines();
    }
}

impl<B: InputBuffer> Worker<B> {
    /// The loop timeout (live: a change applies from the next wait), shortened to the
    /// nearest parked-fetch deadline.
    fn next_wait_ms(&self) -> u64 {
        let mut wait_ms = self.broker.live.loop_timeout_ms();
        let now = Instant::now();
        if self.conns.len() > self.free.len() {
            let sweep_ms = self.next_sweep.saturating_duration_since(now).as_millis() as u64;
            wait_ms = wait_ms.min(sweep_ms + 1);
        }
        self.conns
            .iter()
            .flatten()
            .filter_map(|c| c.parked.as_ref())
            .map(|p| p.deadline().saturating_duration_since(now).as_millis() as u64 + 1)
            .fold(wait_ms, u64::min)
    }

    /// Closes connections past `idle_timeout_ms` or `partial_frame_timeout_ms`, at
    /// most once per sweep interval.
    fn sweep_deadlines(&mut self) {
        if self.conns.len() == self.free.len() {
            return;
        }
        let now = Instant::now();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + self.limits.sweep_interval;
        for idx in 0..self.conns.len() {
            let expired = match self.conns[idx].as_mut() {
                Some(conn) => conn.check_deadlines(now, &self.limits, &self.broker),
                None => None,
            };
            if let Some(reason) = expired {
                self.close(idx, reason);
            }
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
                self.registered.push(EpollFlags::empty());
                self.conns.len() - 1
            });
            let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
            if let Err(e) = self
                .epoll
                .add(stream.as_fd(), EpollEvent::new(flags, idx as u64 + 1))
            {
                warn!(error = %e, "epoll add failed; closing connection");
                self.free.push(idx);
                continue;
            }
            self.registered[idx] = flags;
            self.conns[idx] = Some(Conn::new(
                stream,
                permit,
                self.limits,
                self.conn_buffer_bytes,
            ));
            self.shared.connections.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_ready(&mut self, idx: usize, flags: EpollFlags) {
        let result = match self.conns.get_mut(idx).and_then(Option::as_mut) {
            Some(conn) => Self::on_io(conn, flags).and_then(|()| self.service(idx)),
            None => return,
        };
        if let Err(reason) = result {
            self.close(idx, reason);
        }
    }

    fn on_io(conn: &mut Conn<B>, flags: EpollFlags) -> Result<(), CloseReason> {
        if flags.intersects(EpollFlags::EPOLLOUT) {
            conn.write_pending()?;
        }
        if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP) {
            if conn.wants_read() {
                conn.read_available()?;
            } else if flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
                return Err(CloseReason::Eof);
            }
        }
        Ok(())
    }

    /// Processes buffered requests, writes, and updates the epoll interest.
    fn service(&mut self, idx: usize) -> Result<(), CloseReason> {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Ok(());
        };
        loop {
            if conn.process(&self.broker)? {
                self.shared.parked_requests.fetch_add(1, Ordering::AcqRel);
                // Data may have arrived between the first look and the parking.
                if conn.resume(&self.broker, false)? {
                    self.shared.parked_requests.fetch_sub(1, Ordering::AcqRel);
                }
            }
            conn.write_pending()?;
            // Frames that waited behind a parked fetch or a full backlog can go now.
            if !(conn.wants_read() && conn.has_complete_frame()) {
                break;
            }
        }
        let mut want = EpollFlags::EPOLLRDHUP;
        if conn.wants_read() {
            want |= EpollFlags::EPOLLIN;
        }
        if conn.wants_write() {
            want |= EpollFlags::EPOLLOUT;
        }
        if want != self.registered[idx] {
            let mut ev = EpollEvent::new(want, idx as u64 + 1);
            self.epoll
                .modify(conn.stream.as_fd(), &mut ev)
                .map_err(io::Error::from)?;
            self.registered[idx] = want;
        }
        Ok(())
    }

    fn resume_parked(&mut self, force: bool) {
        for idx in 0..self.conns.len() {
            let answered = match self.conns[idx].as_mut() {
                Some(conn) if conn.parked.is_some() => conn.resume(&self.broker, force),
                _ => continue,
            };
            let result = answered.and_then(|answered| {
                if answered {
                    self.shared.parked_requests.fetch_sub(1, Ordering::AcqRel);
                    self.service(idx)
                } else {
                    Ok(())
                }
            });
            if let Err(reason) = result {
                self.close(idx, reason);
            }
        }
    }

    fn close(&mut self, idx: usize, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(idx).and_then(Option::take) {
            match &reason {
                CloseReason::Eof => debug!("connection closed by peer"),
                other if other.logged_as_limit() => {
                    debug!(reason = %other, "closing connection")
                }
                other => info!(reason = %other, "closing connection"),
            }
            if conn.parked.is_some() {
                self.shared.parked_requests.fetch_sub(1, Ordering::AcqRel);
            }
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            let _ = self.epoll.delete(conn.stream.as_fd());
            self.registered[idx] = EpollFlags::empty();
            self.free.push(idx);
        }
    }

    /// Shutdown: answer parked fetches now, then give responses a bounded time to drain.
    fn drain_for_shutdown(&mut self) {
        self.resume_parked(true);
        let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
        let mut events = vec![EpollEvent::empty(); EVENTS_PER_WAIT];
        while Instant::now() < deadline && self.conns.iter().flatten().any(Conn::<B>::wants_write) {
            let n = self.epoll.wait(&mut events, timeout_ms(10)).unwrap_or(0);
            for ev in &events[..n] {
                if ev.data() == WAKE_TOKEN {
                    let _ = self.shared.wake.read();
                    continue;
                }
                let idx = (ev.data() - 1) as usize;
                if let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                    if let Err(reason) = conn.write_pending() {
                        self.close(idx, reason);
                    }
                }
            }
        }
    }
}
