//! The data plane: moves bytes between sockets and [`Broker::handle`].
//!
//! - `acceptor.rs`: one thread accepts, applies the connection limits and deals
//!   sockets round-robin to the workers. It always blocks (never spins).
//! - `worker.rs`: THE worker loop, written once: connection table, adoption, framing
//!   through `conn.rs`, parked requests, one deadline heap (parked requests, idle and
//!   partial-frame timeouts), closing, spin-then-block waiting, shutdown drain.
//! - a driver, the only place where the backend matters: `epoll.rs` (readiness: the
//!   driver reads and writes when told the socket is ready) or `uring.rs` (completions:
//!   receives and sends are submitted and complete into the connection's buffers).
//! - `conn.rs`: one connection's framing, response order and backpressure; no system
//!   calls. `buffer.rs`: its input buffer (`vec` | `circular`).
//! - `probe.rs`: what this kernel gives (io_uring, SQPOLL, registered buffers,
//!   multishot), as typed fallbacks in the effective configuration.
//!
//! Requests on a connection are answered strictly in order: while a Fetch is parked
//! (long-poll), later requests of that connection wait in its buffer, as in Kafka.
//! The driver and the connection buffer are chosen once at start-up: each worker runs
//! the loop monomorphized for that pair, so the choice costs nothing per request.

mod acceptor;
pub mod buffer;
mod conn;
mod epoll;
pub mod probe;
mod sockopt;
pub mod uring;
mod worker;

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::broker::metrics::Limit;
use crate::broker::Broker;
use crate::config::{Config, ConnBufferKind, IoBackend};
use crate::group::Waker;
use buffer::{RingInput, VecInput};
pub use conn::{next_frame, CloseReason};

/// Largest number of bytes read from one socket per readiness event, so one busy
/// connection cannot starve the others of its worker.
pub const READ_BUDGET_BYTES: usize = 1024 * 1024;
/// Pending response bytes above which a connection stops taking new requests until the
/// client reads (bounds memory for clients that never read).
pub const WRITE_BACKLOG_LIMIT_BYTES: usize = 8 * 1024 * 1024;
/// Most connections one worker serves.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 16 * 1024;
/// How long shutdown waits for responses to drain: a quarter of the one second a
/// SIGTERM may take (the rest is for joining threads, the final flush and process
/// teardown, which took up to ~450 ms under load in tests/shutdown.rs). A reading
/// client drains even the full write backlog over loopback in milliseconds; only a
/// client that stopped reading uses this up, and its connection is then closed.
pub const SHUTDOWN_DRAIN_MS: u64 = 250;
/// The per-connection timeouts and request limit, copied once into each worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_frame_bytes: usize,
    pub max_inflight_requests: usize,
    pub idle_timeout: Duration,
    pub partial_frame_timeout: Duration,
}

impl ConnLimits {
    fn from_config(cfg: &Config) -> ConnLimits {
        ConnLimits {
            max_frame_bytes: cfg.max_frame_bytes,
            max_inflight_requests: cfg.max_inflight_requests,
            idle_timeout: Duration::from_millis(cfg.idle_timeout_ms),
            partial_frame_timeout: Duration::from_millis(cfg.partial_frame_timeout_ms),
        }
    }
}

/// Counts open connections, in total and per peer IP, for `max_connections` and
/// `max_connections_per_ip`. The acceptor takes a [`ConnPermit`] per connection; the
/// connection gives it back when it is dropped, whichever backend owns it.
#[derive(Debug)]
pub(crate) struct ConnLimiter {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<OpenConns>,
}

#[derive(Debug, Default)]
struct OpenConns {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnLimiter {
    fn new(cfg: &Config) -> ConnLimiter {
        ConnLimiter {
            max_total: cfg.max_connections,
            max_per_ip: cfg.max_connections_per_ip,
            open: Mutex::new(OpenConns::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenConns> {
        // The counts stay consistent even if a holder panicked: every update is one
        // statement.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit for one more connection from `ip`, or the limit that refuses it.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Limit> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Limit::MaxConnections);
        }
        let from_ip = open.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Limit::MaxConnectionsPerIp);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(ConnPermit {
            limiter: self.clone(),
            ip,
        })
    }
}

/// One counted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // Keeps the map as small as the set of connected peers.
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// An accepted socket on its way to a worker, with its place in the limits.
pub(crate) struct Accepted {
    pub stream: TcpStream,
    pub permit: ConnPermit,
}

/// What a worker shares with the acceptor and with the threads that wake it.
pub(crate) struct WorkerShared {
    /// This worker's index, to recognise a wake-up raised on its own thread.
    id: usize,
    /// Wakes the worker: new sockets, parked requests may be answerable, shutdown.
    wake: EventFd,
    /// Sockets accepted for this worker, not yet registered.
    inbox: Mutex<Vec<Accepted>>,
    /// Requests parked on this worker; a wake-up goes only to workers that have some.
    parked_requests: AtomicUsize,
    /// Open connections of this worker (for `/metrics`).
    connections: AtomicUsize,
    shutdown: Arc<AtomicBool>,
}

thread_local! {
    /// The id of the worker running on this thread (`usize::MAX` elsewhere).
    static CURRENT_WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Set when a request handled on this worker's own thread (a Produce) may have made
    /// its parked requests answerable: the worker looks at them after the current
    /// batch, without a round trip through its eventfd.
    static LOCAL_WAKE: Cell<bool> = const { Cell::new(false) };
}

impl WorkerShared {
    fn new(id: usize, shutdown: Arc<AtomicBool>) -> io::Result<WorkerShared> {
        Ok(WorkerShared {
            id,
            wake: EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
            inbox: Mutex::new(Vec::new()),
            parked_requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            shutdown,
        })
    }

    fn wake(&self) {
        // EAGAIN means the counter is already non-zero: the worker will wake anyway.
        let _ = self.wake.write(1);
    }

    /// Parked requests may be answerable: a flag if we are on this worker's thread, the
    /// eventfd otherwise.
    fn wake_parked(&self) {
        if CURRENT_WORKER.with(Cell::get) == self.id {
            LOCAL_WAKE.with(|w| w.set(true));
        } else {
            self.wake();
        }
    }
}

/// The data plane before it serves: the workers' shared state exists (so its wake-up
/// can be handed to the coordinator and the broker), no thread runs yet.
pub struct DataPlane {
    shutdown: Arc<AtomicBool>,
    workers: Vec<Arc<WorkerShared>>,
}

impl DataPlane {
    pub fn new(cfg: &Config) -> io::Result<DataPlane> {
        let shutdown = Arc::new(AtomicBool::new(false));
        let workers = (0..cfg.io_threads)
            .map(|id| WorkerShared::new(id, shutdown.clone()).map(Arc::new))
            .collect::<io::Result<_>>()?;
        Ok(DataPlane { shutdown, workers })
    }

    /// Wakes the workers that have parked requests (data appended, a group moved on).
    pub fn waker(&self) -> Waker {
        let workers = self.workers.clone();
        Arc::new(move || {
            for w in &workers {
                if w.parked_requests.load(Ordering::Acquire) > 0 {
                    w.wake_parked();
                }
            }
        })
    }

    /// Starts the acceptor and the workers on an already bound listener.
    pub fn start(self, broker: Arc<Broker>, listener: TcpListener) -> io::Result<Server> {
        let DataPlane { shutdown, workers } = self;
        let cfg = broker.effective.config.clone();
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let limiter = Arc::new(ConnLimiter::new(&cfg));
        let conn_limits = ConnLimits::from_config(&cfg);
        let cores = if cfg.pin_cores {
            sockopt::available_cores()
        } else {
            Vec::new()
        };
        let mut threads = Vec::new();
        for (i, shared) in workers.iter().enumerate() {
            let shared = shared.clone();
            let broker = broker.clone();
            let core = cores.get((i + 1) % cores.len().max(1)).copied();
            // The driver is built here, on the starting thread, so that a refusal stops
            // the start-up instead of a worker.
            let driver = match cfg.io_backend {
                IoBackend::Epoll => Backend::Epoll(epoll::EpollDriver::new(shared.clone())?),
                IoBackend::IoUring | IoBackend::IoUringSqpoll => {
                    Backend::Uring(uring::UringDriver::new(&cfg, shared.clone())?)
                }
            };
            let conn_buffer = cfg.conn_buffer;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("strikemq-io-{i}"))
                    .spawn(move || {
                        if let Some(core) = core {
                            sockopt::pin_to_core(core);
                        }
                        CURRENT_WORKER.with(|c| c.set(shared.id));
                        // The (driver, buffer) pair is chosen here, once: each arm runs
                        // the worker loop monomorphized for it.
                        let result = match (driver, conn_buffer) {
                            (Backend::Epoll(d), ConnBufferKind::Vec) => {
                                worker::run::<_, VecInput>(broker, shared, d, conn_limits)
                            }
                            (Backend::Epoll(d), ConnBufferKind::Circular) => {
                                worker::run::<_, RingInput>(broker, shared, d, conn_limits)
                            }
                            (Backend::Uring(d), ConnBufferKind::Vec) => {
                                worker::run::<_, VecInput>(broker, shared, d, conn_limits)
                            }
                            (Backend::Uring(d), ConnBufferKind::Circular) => {
                                worker::run::<_, RingInput>(broker, shared, d, conn_limits)
                            }
                        };
                        if let Err(e) = result {
                            tracing::error!(error = %e, "worker stopped with an error");
                        }
                    })?,
            );
        }
        let acceptor_wake = Arc::new(EventFd::from_value_and_flags(
            0,
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?);
        {
            let workers = workers.clone();
            let wake = acceptor_wake.clone();
            let shutdown = shutdown.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("strikemq-accept".into())
                    .spawn(move || {
                        let acceptor = acceptor::Acceptor {
                            cfg: &cfg,
                            broker: &broker,
                            limiter: &limiter,
                            workers: &workers,
                            wake: &wake,
                            shutdown: &shutdown,
                        };
                        if let Err(e) = acceptor.run(listener) {
                            tracing::error!(error = %e, "acceptor stopped with an error");
                        }
                    })?,
            );
        }
        Ok(Server {
            local_addr,
            shutdown,
            acceptor_wake,
            workers,
            threads,
        })
    }
}

/// The driver of one worker, built at start-up (moved once into its thread, so the
/// size difference of the variants costs nothing).
#[allow(clippy::large_enum_variant)]
enum Backend {
    Epoll(epoll::EpollDriver),
    Uring(uring::UringDriver),
}

/// A running data plane.
pub struct Server {
    local_addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    acceptor_wake: Arc<EventFd>,
    workers: Vec<Arc<WorkerShared>>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A read-only view of the data plane's gauges, for the admin thread.
    pub fn stats(&self) -> NetStats {
        NetStats {
            workers: self.workers.clone(),
        }
    }

    /// Stops accepting, answers parked fetches, drains responses, joins every thread.
    pub fn shutdown(self) {
        self.shutdown.store(true, Ordering::Release);
        let _ = self.acceptor_wake.write(1);
        for w in &self.workers {
            w.wake();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Gauges of a running data plane (open connections, parked requests), readable from
/// another thread at the cost of one atomic load per worker.
#[derive(Clone, Default)]
pub struct NetStats {
    workers: Vec<Arc<WorkerShared>>,
}

impl NetStats {
    pub fn open_connections(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.connections.load(Ordering::Relaxed))
            .sum()
    }

    /// Requests waiting for an event (Fetch long-polls) right now.
    pub fn parked_requests(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.parked_requests.load(Ordering::Relaxed))
            .sum()
    }
}
