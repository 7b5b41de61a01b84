//! The io_uring backend (`io_backend = io_uring | io_uring_sqpoll`): each worker owns
//! one ring and drives its connections with completions instead of readiness.
//!
//! The driver of the one worker loop (`worker.rs`) for `io_backend = io_uring |
//! io_uring_sqpoll`: receives and sends are submitted, and their completions move
//! bytes into and out of the connections' buffers.
//!
//! Buffer ownership, which is what makes every submission below sound:
//! - A connection has at most ONE receive and ONE send in flight. The memory an
//!   operation names is not touched, moved or freed by us until its completion:
//!   * plain receive: the spare room of the connection's input buffer. While it is in
//!     flight, nothing frames, appends to or reserves that buffer (the worker does
//!     not process a connection whose plain receive is in flight: `input_free`; such
//!     a connection has no complete frame buffered, see `arm`).
//!   * send: a `Vec` taken out of the connection (`sending`). New responses go to the
//!     connection's other buffer; `sending` is only cleared, or swapped for the next
//!     batch, after its completion. (StrikeMQ's io_uring build re-submits a response
//!     buffer still in flight, which corrupts the stream; this is the fix.)
//!   * registered buffers / provided buffers belong to the worker and live as long
//!     as the ring (they are declared after it, so dropped after it).
//! - A closed connection keeps its slot (and buffers) until every operation on it has
//!   completed: close shuts the socket down (so pending operations finish at once)
//!   and cancels them, and the slot is freed on the last completion (`Released`).
//! - At exit the worker cancels everything and waits for the completions; if they do
//!   not arrive in time it leaks the buffers rather than free memory the kernel might
//!   still write.
//!
//! Optional parts, each its own toggle, probed at start-up by [`probe`]:
//! - SQPOLL (`io_uring_sqpoll`): a kernel thread polls the submission queue, so
//!   submitting needs no system call while it is awake; it sleeps after
//!   `sqpoll_idle_ms` without work (then the next submit wakes it with a syscall).
//! - `uring_registered_buffers`: each of the first [`FIXED_PAIRS`] connections of a
//!   worker receives with READ_FIXED and sends with WRITE_FIXED from registered
//!   (pinned once) buffers, copied to/from the connection buffers. Later connections
//!   use plain operations.
//! - `uring_multishot_recv`: one multishot receive per connection that stays armed,
//!   picking buffers from a provided buffer ring of the worker; the bytes are copied
//!   into the connection buffer and the provided buffer goes straight back.
//!
//! Waiting: a blocking wait submits and waits in one `io_uring_enter` with a timeout;
//! a non-blocking look (`idle_spin_us`) only peeks at the completion queue. Without
//! SQPOLL it enters the kernel only when there is something to submit or the kernel
//! flagged pending completion work (IORING_SQ_TASKRUN, set up with
//! IORING_SETUP_TASKRUN_FLAG); with SQPOLL the kernel thread does both.
//!
//! The acceptor stays an epoll loop (it is not on the request path).

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use tracing::warn;

use super::buffer::InputBuffer;
use super::conn::CloseReason;
use super::worker::{Driver, Entry, Ready, WAIT_FOREVER};
use super::WorkerShared;
use crate::config::{enum_name, Config, Fallback, IoBackend};
use crate::output::{Iovecs, Output, RecordsOut};

/// Connections per worker that get a pair of registered buffers.
pub const FIXED_PAIRS: usize = 32;
/// Size of one registered buffer (receive or send).
pub const FIXED_BUFFER_BYTES: usize = 32 * 1024;
/// Provided buffers per worker for multishot receive (a power of two).
pub const PROVIDED_BUFFERS: u16 = 256;
/// Size of one provided buffer.
pub const PROVIDED_BUFFER_BYTES: usize = 16 * 1024;
/// The provided-buffer group id of the worker's ring.
const PROVIDED_GROUP: u16 = 0;
/// Completions handled per pass before looking at the ring again.
const CQE_BATCH: usize = 64;

// user_data: slot index << 3 | kind.
const KIND_WAKE: u64 = 0;
const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_CANCEL: u64 = 3;
const KIND_BITS: u32 = 3;

fn user_data(idx: usize, kind: u64) -> u64 {
    ((idx as u64) << KIND_BITS) | kind
}

/// What the worker rings are built with (the effective configuration).
#[derive(Debug, Clone, Copy)]
pub struct UringOptions {
    pub sq_entries: u32,
    /// `Some((idle_ms, cpu))` for SQPOLL.
    pub sqpoll: Option<(u32, Option<u32>)>,
    pub registered_buffers: bool,
    pub multishot_recv: bool,
}

impl UringOptions {
    pub fn from_config(cfg: &Config) -> UringOptions {
        UringOptions {
            sq_entries: cfg.sq_entries,
            sqpoll: (cfg.io_backend == IoBackend::IoUringSqpoll)
                .then_some((cfg.sqpoll_idle_ms, cfg.sqpoll_cpu)),
            registered_buffers: cfg.uring_registered_buffers,
            multishot_recv: cfg.uring_multishot_recv,
        }
    }
}

/// Builds a ring as the workers do.
pub fn build_ring(opts: &UringOptions) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    // Ring memory is not inherited by children (none are forked, but be explicit).
    builder.dontfork();
    match opts.sqpoll {
        Some((idle_ms, cpu)) => {
            builder.setup_sqpoll(idle_ms);
            if let Some(cpu) = cpu {
                builder.setup_sqpoll_cpu(cpu);
            }
        }
        None => {
            // Completion task work runs at the next kernel entry instead of
            // interrupting the worker, and the kernel flags it in the SQ ring so that a
            // spinning worker knows when to enter (5.19+; ignored flags fail, so the
            // probe decides).
            builder.setup_coop_taskrun();
            builder.setup_taskrun_flag();
        }
    }
    builder.setup_cqsize(opts.sq_entries.saturating_mul(4));
    builder.build(opts.sq_entries)
}

/// The result of probing: what can run, and why not what was asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub backend: IoBackend,
    pub registered_buffers: bool,
    pub multishot_recv: bool,
    /// One for each requested value that could not be honoured.
    pub fallbacks: Vec<Fallback>,
    requested_backend: IoBackend,
}

impl Probed {
    /// Records that `key` runs as `effective` instead of what was asked, and why; a
    /// later fallback of the same key replaces an earlier one.
    fn fall(&mut self, key: &str, effective: &str, reason: String) {
        let requested = match key {
            "io_backend" => enum_name(&self.requested_backend),
            // The extras only fall back when they were asked for.
            _ => "true".to_string(),
        };
        self.fallbacks.retain(|f| f.key != key);
        self.fallbacks.push(Fallback {
            key: key.to_string(),
            requested,
            effective: effective.to_string(),
            reason,
        });
    }
}

fn errno_text(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => " (EPERM)",
        Some(libc::EINVAL) => " (EINVAL)",
        Some(libc::ENOMEM) => " (ENOMEM)",
        Some(libc::ENOSYS) => " (ENOSYS)",
        Some(libc::EOPNOTSUPP) => " (EOPNOTSUPP)",
        _ => "",
    };
    format!("{e}{name}")
}

fn io_uring_disabled_hint() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(v) if v.trim() != "0" => format!("; kernel.io_uring_disabled = {}", v.trim()),
        _ => String::new(),
    }
}

/// Probes what the kernel gives for `cfg` (as monoio's `uring_detect` does): builds a
/// tiny ring with the requested flags and entries, asks the opcode probe, and tries
/// registered buffers and a multishot receive for real on a socket pair.
pub fn probe(cfg: &Config) -> Probed {
    let mut p = Probed {
        backend: cfg.io_backend,
        registered_buffers: cfg.uring_registered_buffers,
        multishot_recv: cfg.uring_multishot_recv,
        fallbacks: Vec::new(),
        requested_backend: cfg.io_backend,
    };
    let mut opts = UringOptions::from_config(cfg);
    if cfg.io_backend == IoBackend::Epoll {
        refuse_uring_extras(&mut p, "needs io_backend = io_uring or io_uring_sqpoll");
        return p;
    }
    let mut ring = match build_ring(&opts) {
        Ok(ring) => Some(ring),
        Err(e) if opts.sqpoll.is_some() => {
            let reason = format!(
                "io_uring_setup with SQPOLL (sq_entries={}) refused: {}{}",
                opts.sq_entries,
                errno_text(&e),
                io_uring_disabled_hint()
            );
            opts.sqpoll = None;
            p.backend = IoBackend::IoUring;
            p.fall("io_backend", "io_uring", reason);
            None
        }
        Err(_) => None,
    };
    if ring.is_none() {
        match build_ring(&opts) {
            Ok(r) => ring = Some(r),
            Err(e) => {
                let reason = format!(
                    "io_uring_setup(sq_entries={}) refused: {}{}",
                    opts.sq_entries,
                    errno_text(&e),
                    io_uring_disabled_hint()
                );
                p.fall("io_backend", "epoll", reason);
                p.backend = IoBackend::Epoll;
                refuse_uring_extras(&mut p, "needs the io_uring backend, which fell back");
                return p;
            }
        }
    }
    let ring = ring.expect("built above");
    let mut probe = io_uring::Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return fall_to_epoll(p, format!("opcode probe refused: {}", errno_text(&e)));
    }
    let needed = [
        ("RECV", opcode::Recv::CODE),
        ("SEND", opcode::Send::CODE),
        ("SENDMSG", opcode::SendMsg::CODE),
        ("POLL_ADD", opcode::PollAdd::CODE),
        ("ASYNC_CANCEL", opcode::AsyncCancel::CODE),
    ];
    for (name, code) in needed {
        if !probe.is_supported(code) {
            return fall_to_epoll(p, format!("kernel lacks io_uring opcode {name}"));
        }
    }
    if p.registered_buffers {
        if let Err(why) = try_registered_buffers(&probe, &opts) {
            p.registered_buffers = false;
            p.fall("uring_registered_buffers", "false", why);
        }
    }
    if p.multishot_recv {
        if let Err(why) = try_multishot(&opts) {
            p.multishot_recv = false;
            p.fall("uring_multishot_recv", "false", why);
        }
    }
    p
}

fn fall_to_epoll(mut p: Probed, reason: String) -> Probed {
    p.backend = IoBackend::Epoll;
    p.fall("io_backend", "epoll", reason);
    refuse_uring_extras(&mut p, "needs the io_uring backend, which fell back");
    p
}

fn refuse_uring_extras(p: &mut Probed, why: &str) {
    if p.registered_buffers {
        p.registered_buffers = false;
        p.fall("uring_registered_buffers", "false", why.into());
    }
    if p.multishot_recv {
        p.multishot_recv = false;
        p.fall("uring_multishot_recv", "false", why.into());
    }
}

fn socket_pair() -> io::Result<(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
)> {
    std::os::unix::net::UnixStream::pair()
}

/// Waits for one completion with a deadline.
fn wait_one(ring: &mut IoUring) -> Result<cqueue::Entry, String> {
    let ts = types::Timespec::from(Duration::from_secs(1));
    let args = types::SubmitArgs::new().timespec(&ts);
    match ring.submitter().submit_with_args(1, &args) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
        Err(e) => return Err(format!("io_uring_enter: {}", errno_text(&e))),
    }
    ring.completion()
        .next()
        .ok_or_else(|| "no completion within 1 s".to_string())
}

/// Registers the worker's full pool and moves bytes through WRITE_FIXED / READ_FIXED on a socket pair.
fn try_registered_buffers(probe: &io_uring::Probe, opts: &UringOptions) -> Result<(), String> {
    for (name, code) in [
        ("READ_FIXED", opcode::ReadFixed::CODE),
        ("WRITE_FIXED", opcode::WriteFixed::CODE),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("kernel lacks io_uring opcode {name}"));
        }
    }
    let mut ring = build_ring(opts).map_err(|e| errno_text(&e))?;
    // The worker's full pool, so RLIMIT_MEMLOCK is tested at the real size.
    let mut pool = FixedPool::new(FIXED_PAIRS);
    pool.register(&ring).map_err(|e| {
        format!(
            "register_buffers of {} KiB refused: {} (RLIMIT_MEMLOCK?)",
            FixedPool::bytes(FIXED_PAIRS) / 1024,
            errno_text(&e)
        )
    })?;
    let (a, b) = socket_pair().map_err(|e| e.to_string())?;
    let msg = b"strikemq-fixed";
    pool.send_buf(0)[..msg.len()].copy_from_slice(msg);
    let write = opcode::WriteFixed::new(
        types::Fd(a.as_raw_fd()),
        pool.send_ptr(0),
        msg.len() as u32,
        pool.send_index(0),
    )
    .build()
    .user_data(1);
    // SAFETY: the send buffer is part of `pool`, registered with `ring`, and both live
    // until after the completion is reaped below (or the ring is dropped first).
    unsafe { ring.submission().push(&write) }.map_err(|_| "submission queue full")?;
    let cqe = wait_one(&mut ring)?;
    if cqe.result() != msg.len() as i32 {
        return Err(format!("WRITE_FIXED on a socket returned {}", cqe.result()));
    }
    let read = opcode::ReadFixed::new(
        types::Fd(b.as_raw_fd()),
        pool.recv_ptr(0),
        FIXED_BUFFER_BYTES as u32,
        pool.recv_index(0),
    )
    .build()
    .user_data(2);
    // SAFETY: as above, for the receive buffer.
    unsafe { ring.submission().push(&read) }.map_err(|_| "submission queue full")?;
    let cqe = wait_one(&mut ring)?;
    if cqe.result() != msg.len() as i32 || &pool.recv_buf(0)[..msg.len()] != msg {
        return Err(format!("READ_FIXED on a socket returned {}", cqe.result()));
    }
    drop(ring);
    Ok(())
}

/// Registers a provided buffer ring and receives twice with one multishot receive.
fn try_multishot(opts: &UringOptions) -> Result<(), String> {
    let mut ring = build_ring(opts).map_err(|e| errno_text(&e))?;
    let mut provided = ProvidedBuffers::new(8, 4096);
    provided
        .register(&ring)
        .map_err(|e| format!("provided buffer ring refused: {}", errno_text(&e)))?;
    let (a, b) = socket_pair().map_err(|e| e.to_string())?;
    let recv = opcode::RecvMulti::new(types::Fd(b.as_raw_fd()), PROVIDED_GROUP)
        .build()
        .user_data(1);
    // SAFETY: the receive names no memory of ours beyond the provided buffers, which
    // live in `provided` until after the ring is dropped below.
    unsafe { ring.submission().push(&recv) }.map_err(|_| "submission queue full")?;
    ring.submit().map_err(|e| errno_text(&e))?;
    for round in 0..2 {
        use std::io::Write;
        (&a).write_all(b"ping").map_err(|e| e.to_string())?;
        let cqe = wait_one(&mut ring)?;
        if cqe.result() != 4 {
            return Err(format!(
                "multishot recv returned {} ({})",
                cqe.result(),
                errno_text(&io::Error::from_raw_os_error(-cqe.result().min(0)))
            ));
        }
        if !cqueue::more(cqe.flags()) && round == 0 {
            return Err("receive did not stay armed (no multishot support)".into());
        }
        match cqueue::buffer_select(cqe.flags()) {
            Some(bid) => provided.recycle(bid),
            None => return Err("completion without a provided buffer".into()),
        }
    }
    drop(a);
    drop(b);
    // The ring goes first (cancelling the receive), then the buffers.
    drop(ring);
    drop(provided);
    Ok(())
}

/// Registered buffers: `pairs` (receive, send) buffers in one allocation.
struct FixedPool {
    mem: Box<[u8]>,
}

impl FixedPool {
    fn bytes(pairs: usize) -> usize {
        pairs * 2 * FIXED_BUFFER_BYTES
    }
    fn new(pairs: usize) -> FixedPool {
        FixedPool {
            mem: vec![0u8; Self::bytes(pairs)].into_boxed_slice(),
        }
    }
    fn register(&mut self, ring: &IoUring) -> io::Result<()> {
        let iovecs: Vec<libc::iovec> = self
            .mem
            .chunks_mut(FIXED_BUFFER_BYTES)
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr().cast(),
                iov_len: c.len(),
            })
            .collect();
        // SAFETY: the iovecs cover `self.mem`, which lives at a fixed heap address as
        // long as the pool, and every pool outlives its ring (field order in Worker,
        // explicit drops in the probe).
        unsafe { ring.submitter().register_buffers(&iovecs) }
    }
    fn recv_index(&self, pair: usize) -> u16 {
        (2 * pair) as u16
    }
    fn send_index(&self, pair: usize) -> u16 {
        (2 * pair + 1) as u16
    }
    fn recv_ptr(&mut self, pair: usize) -> *mut u8 {
        self.mem[2 * pair * FIXED_BUFFER_BYTES..].as_mut_ptr()
    }
    fn send_ptr(&mut self, pair: usize) -> *mut u8 {
        self.mem[(2 * pair + 1) * FIXED_BUFFER_BYTES..].as_mut_ptr()
    }
    fn recv_buf(&self, pair: usize) -> &[u8] {
        let at = 2 * pair * FIXED_BUFFER_BYTES;
        &self.mem[at..at + FIXED_BUFFER_BYTES]
    }
    fn send_buf(&mut self, pair: usize) -> &mut [u8] {
        let at = (2 * pair + 1) * FIXED_BUFFER_BYTES;
        &mut self.mem[at..at + FIXED_BUFFER_BYTES]
    }
}

/// A provided buffer ring (5.19+): the kernel picks a buffer per receive completion.
struct ProvidedBuffers {
    /// Page-aligned ring of `entries` descriptors, shared with the kernel.
    ring: *mut types::BufRingEntry,
    ring_layout: std::alloc::Layout,
    entries: u16,
    /// Our next tail (descriptors published so far).
    tail: u16,
    mem: Box<[u8]>,
    buffer_bytes: usize,
}

// SAFETY: the raw ring pointer is owned memory used by one worker thread at a time.
unsafe impl Send for ProvidedBuffers {}

impl ProvidedBuffers {
    fn new(entries: u16, buffer_bytes: usize) -> ProvidedBuffers {
        assert!(entries.is_power_of_two());
        let size = std::mem::size_of::<types::BufRingEntry>() * entries as usize;
        let ring_layout =
            std::alloc::Layout::from_size_align(size, 4096).expect("valid buffer ring layout");
        // SAFETY: the layout has non-zero size; zeroed memory is a valid empty ring.
        let ring = unsafe { std::alloc::alloc_zeroed(ring_layout) }.cast::<types::BufRingEntry>();
        if ring.is_null() {
            std::alloc::handle_alloc_error(ring_layout);
        }
        let mut p = ProvidedBuffers {
            ring,
            ring_layout,
            entries,
            tail: 0,
            mem: vec![0u8; entries as usize * buffer_bytes].into_boxed_slice(),
            buffer_bytes,
        };
        for bid in 0..entries {
            p.recycle(bid);
        }
        p
    }

    fn register(&mut self, ring: &IoUring) -> io::Result<()> {
        // SAFETY: `self.ring` spans `entries` descriptors and stays allocated until
        // `self` is dropped, which happens after the ring (see module doc).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                self.ring as u64,
                self.entries,
                PROVIDED_GROUP,
                0,
            )
        }
    }

    /// The bytes the kernel put in buffer `bid`.
    fn data(&self, bid: u16, len: usize) -> &[u8] {
        let at = bid as usize * self.buffer_bytes;
        &self.mem[at..at + len.min(self.buffer_bytes)]
    }

    /// Gives buffer `bid` back to the kernel.
    fn recycle(&mut self, bid: u16) {
        let slot = (self.tail & (self.entries - 1)) as usize;
        let addr = self.mem[bid as usize * self.buffer_bytes..].as_mut_ptr() as u64;
        // SAFETY: `slot < entries`, inside the ring allocation; the kernel reads a
        // descriptor only after the tail store below publishes it.
        let entry = unsafe { &mut *self.ring.add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.buffer_bytes as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field is a u16 inside the first descriptor, suitably
        // aligned; the kernel reads it concurrently, hence the atomic release store.
        let tail = unsafe { &*(types::BufRingEntry::tail(self.ring).cast::<AtomicU16>()) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ring.cast(), self.ring_layout) }
    }
}

/// The driver's state of one connection and its operations in flight.
pub(super) struct UringIo {
    fd: RawFd,
    /// Plain/fixed receive in flight, or multishot receive armed.
    recv_in_flight: bool,
    send_in_flight: bool,
    /// A cancel of the armed multishot receive was submitted (backpressure).
    recv_cancel_sent: bool,
    /// Output being sent (taken from the connection; what is not yet consumed is
    /// still to go). Untouched while a send is in flight: its owned bytes and the
    /// mappings of its spliced slices stay alive until the completion.
    sending: Output,
    /// The iovecs and message header of the send in flight, on the heap so that
    /// their addresses survive a move of the entry (the connection table grows).
    iov: Iovecs,
    msg: Box<libc::msghdr>,
    /// The registered buffer pair of this connection, if it got one.
    fixed: Option<usize>,
}

impl UringIo {
    fn ops_in_flight(&self) -> bool {
        self.recv_in_flight || self.send_in_flight
    }
}

pub(super) struct UringDriver {
    // Declared first: dropped before the buffers it may name (module doc).
    ring: IoUring,
    shared: Arc<WorkerShared>,
    fixed: Option<FixedPool>,
    free_pairs: Vec<usize>,
    provided: Option<ProvidedBuffers>,
    wake_armed: bool,
    /// Exit: the eventfd poll is not armed again.
    stopped: bool,
    multishot: bool,
    sqpoll: bool,
    cqes: Vec<(u64, i32, u32)>,
}

impl UringDriver {
    /// Builds the worker's ring and buffers (on the starting thread, so a refusal stops
    /// the start-up instead of a worker).
    pub(super) fn new(cfg: &Config, shared: Arc<WorkerShared>) -> io::Result<UringDriver> {
        let opts = UringOptions::from_config(cfg);
        let ring = build_ring(&opts)?;
        let fixed = if opts.registered_buffers {
            let mut pool = FixedPool::new(FIXED_PAIRS);
            pool.register(&ring)?;
            Some(pool)
        } else {
            None
        };
        let provided = if opts.multishot_recv {
            let mut p = ProvidedBuffers::new(PROVIDED_BUFFERS, PROVIDED_BUFFER_BYTES);
            p.register(&ring)?;
            Some(p)
        } else {
            None
        };
        Ok(UringDriver {
            ring,
            shared,
            free_pairs: if fixed.is_some() {
                (0..FIXED_PAIRS).rev().collect()
            } else {
                Vec::new()
            },
            fixed,
            multishot: provided.is_some(),
            provided,
            wake_armed: false,
            stopped: false,
            sqpoll: opts.sqpoll.is_some(),
            cqes: Vec::with_capacity(CQE_BATCH),
        })
    }

    /// Pushes one submission, flushing the queue to the kernel when it is full.
    ///
    /// # Safety
    /// Every buffer `sqe` names must stay valid, and not be moved or accessed in a
    /// conflicting way, until its completion is reaped (module doc).
    unsafe fn push(&mut self, sqe: squeue::Entry) {
        loop {
            // SAFETY: forwarded from the caller's contract.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                warn!(error = %e, "io_uring submit failed while the queue was full");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Submits what is queued and waits for one completion or the timeout.
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if timeout == WAIT_FOREVER {
            return self.wait_forever();
        }
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        let result = if self.sqpoll && self.ring.submission().is_empty() {
            // Nothing to submit: wait without waking the SQPOLL thread. (The crate's
            // submit_with_args wakes a sleeping SQPOLL thread even with an empty queue,
            // so with a 1 ms loop timeout the thread never got to idle: 40% CPU of an
            // idle broker.)
            let flags = (io_uring::EnterFlags::GETEVENTS | io_uring::EnterFlags::EXT_ARG).bits();
            // SAFETY: EXT_ARG with a pointer to a live `SubmitArgs` (a transparent
            // io_uring_getevents_arg, whose size `enter` passes); no submissions.
            unsafe { self.ring.submitter().enter(0, 1, flags, Some(&args)) }
        } else {
            self.ring.submitter().submit_with_args(1, &args)
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits what is queued and waits for one completion, however long it takes.
    fn wait_forever(&mut self) -> io::Result<()> {
        let result = if self.sqpoll && self.ring.submission().is_empty() {
            // As in `wait`: do not wake a sleeping SQPOLL thread for nothing.
            let flags = io_uring::EnterFlags::GETEVENTS.bits();
            // SAFETY: no argument and no submissions: only waits for a completion.
            unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(0, 1, flags, None)
            }
        } else {
            self.ring.submit_and_wait(1)
        };
        match result {
            Err(e) if !is_transient(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// The non-blocking look of a spinning worker: the completion queue is read in user
    /// space; the kernel is entered only to submit, or (without SQPOLL) when it flagged
    /// completion work to run.
    fn look(&mut self) -> io::Result<()> {
        let queued = !self.ring.submission().is_empty();
        let result = if self.sqpoll {
            if queued {
                // Wakes the SQPOLL thread if it went to sleep.
                self.ring.submit().map(drop)
            } else {
                Ok(())
            }
        } else if queued || self.ring.submission().taskrun() {
            let to_submit = self.ring.submission().len() as u32;
            let flags = io_uring::EnterFlags::GETEVENTS.bits();
            // SAFETY: no argument is passed; `to_submit` entries were pushed (and
            // published) through `push`, whose callers keep their buffers valid.
            unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(to_submit, 0, flags, None)
            }
            .map(drop)
        } else {
            Ok(())
        };
        match result {
            Err(e) if !is_transient(&e) => Err(e),
            _ => Ok(()),
        }
    }

    fn arm_wake(&mut self) {
        if self.wake_armed || self.stopped {
            return;
        }
        let fd = self.shared.wake.as_raw_fd();
        let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(user_data(0, KIND_WAKE));
        // SAFETY: a poll names no memory; the eventfd lives in `shared`, which
        // outlives the ring.
        unsafe { self.push(sqe) };
        self.wake_armed = true;
    }

    fn cancel(&mut self, idx: usize, kind: u64) {
        let sqe = opcode::AsyncCancel::new(user_data(idx, kind))
            .build()
            .user_data(user_data(idx, KIND_CANCEL));
        // SAFETY: a cancel names no memory.
        unsafe { self.push(sqe) };
    }

    fn on_recv<B: InputBuffer>(
        &mut self,
        idx: usize,
        res: i32,
        flags: u32,
        conns: &mut [Option<Entry<B, UringIo>>],
        ready: &mut Vec<Ready>,
    ) {
        let picked = if self.multishot {
            cqueue::buffer_select(flags)
        } else {
            None
        };
        let Some(entry) = conns.get_mut(idx).and_then(Option::as_mut) else {
            if let (Some(bid), Some(provided)) = (picked, self.provided.as_mut()) {
                provided.recycle(bid);
            }
            return;
        };
        let io = &mut entry.io;
        if !(self.multishot && cqueue::more(flags)) {
            io.recv_in_flight = false;
            io.recv_cancel_sent = false;
        }
        let result: Result<(), CloseReason> = if res > 0 {
            let n = res as usize;
            if let Some(bid) = picked {
                let provided = self.provided.as_mut().expect("multishot has buffers");
                if !entry.closing {
                    entry.conn.input().extend_from_slice(provided.data(bid, n));
                }
                provided.recycle(bid);
            } else if let (Some(pair), Some(pool)) = (io.fixed, self.fixed.as_ref()) {
                if !entry.closing {
                    entry
                        .conn
                        .input()
                        .extend_from_slice(&pool.recv_buf(pair)[..n.min(FIXED_BUFFER_BYTES)]);
                }
            } else {
                // SAFETY: the kernel wrote `n` bytes into the spare room named by the
                // receive (`arm`), untouched by us since.
                unsafe { entry.conn.input().commit(n) };
            }
            Ok(())
        } else if res == 0 {
            Err(CloseReason::Eof)
        } else {
            if let (Some(bid), Some(provided)) = (picked, self.provided.as_mut()) {
                provided.recycle(bid);
            }
            match -res {
                // Out of provided buffers: re-armed when the worker serves it.
                libc::ENOBUFS | libc::ECANCELED | libc::EINTR | libc::EAGAIN => Ok(()),
                errno => Err(CloseReason::Io(io::Error::from_raw_os_error(errno))),
            }
        };
        report(idx, entry, result, ready);
    }

    fn on_send<B: InputBuffer>(
        &mut self,
        idx: usize,
        res: i32,
        conns: &mut [Option<Entry<B, UringIo>>],
        ready: &mut Vec<Ready>,
    ) {
        let Some(entry) = conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let io = &mut entry.io;
        io.send_in_flight = false;
        let result = if res < 0 {
            match -res {
                libc::EINTR | libc::EAGAIN => Ok(()),
                errno => Err(CloseReason::Io(io::Error::from_raw_os_error(errno))),
            }
        } else if res == 0 && !io.sending.is_empty() {
            Err(CloseReason::Eof)
        } else {
            // Releases the owned bytes and mapped slices the kernel has taken.
            io.sending.consume(res as usize);
            entry.conn.inflight_write_bytes = io.sending.len();
            Ok(())
        };
        report(idx, entry, result, ready);
    }
}

/// What a completion means for the worker: a closing connection is released after its
/// last operation; an open one is served or closed.
fn report<B>(
    idx: usize,
    entry: &Entry<B, UringIo>,
    result: Result<(), CloseReason>,
    ready: &mut Vec<Ready>,
) {
    if entry.closing {
        if !entry.io.ops_in_flight() {
            ready.push(Ready::Released(idx));
        }
        return;
    }
    ready.push(match result {
        Ok(()) => Ready::Service(idx),
        Err(reason) => Ready::Close(idx, reason),
    });
}

/// A wait that ended early or found the ring busy: not an error.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
    )
}

impl Driver for UringDriver {
    type Io = UringIo;

    fn register(&mut self, _idx: usize, stream: &TcpStream) -> io::Result<UringIo> {
        // io_uring does its own non-blocking attempt and then waits for readiness; on
        // an O_NONBLOCK file READ_FIXED/WRITE_FIXED would complete with EAGAIN instead
        // of waiting (a busy loop).
        stream.set_nonblocking(false)?;
        Ok(UringIo {
            fd: stream.as_raw_fd(),
            recv_in_flight: false,
            send_in_flight: false,
            recv_cancel_sent: false,
            sending: Output::new(RecordsOut::Copy),
            iov: Iovecs::with_capacity(),
            // SAFETY: an all-zero msghdr is valid (no address, no iovecs, no control).
            msg: Box::new(unsafe { std::mem::zeroed() }),
            fixed: self.free_pairs.pop(),
        })
    }

    fn poll<B: InputBuffer>(
        &mut self,
        timeout: Duration,
        conns: &mut [Option<Entry<B, UringIo>>],
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        self.arm_wake();
        if timeout.is_zero() {
            self.look()?;
        } else {
            self.wait(timeout)?;
        }
        let mut cqes = std::mem::take(&mut self.cqes);
        loop {
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .take(CQE_BATCH)
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if cqes.is_empty() {
                break;
            }
            for &(ud, res, flags) in &cqes {
                let idx = (ud >> KIND_BITS) as usize;
                match ud & ((1 << KIND_BITS) - 1) {
                    KIND_WAKE => {
                        self.wake_armed = false;
                        let _ = self.shared.wake.read();
                        ready.push(Ready::Woken);
                    }
                    KIND_RECV => self.on_recv(idx, res, flags, conns, ready),
                    KIND_SEND => self.on_send(idx, res, conns, ready),
                    _ => {} // KIND_CANCEL: the cancelled operation completes on its own.
                }
            }
        }
        self.cqes = cqes;
        Ok(())
    }

    fn input_free(&self, io: &UringIo) -> bool {
        // A plain receive in flight owns the input buffer's spare room (module doc).
        self.multishot || io.fixed.is_some() || !io.recv_in_flight
    }

    fn send<B: InputBuffer>(
        &mut self,
        idx: usize,
        entry: &mut Entry<B, UringIo>,
    ) -> Result<(), CloseReason> {
        let io = &mut entry.io;
        if io.send_in_flight || entry.closing {
            return Ok(());
        }
        if io.sending.is_empty() {
            if entry.conn.unsent_bytes() == 0 {
                return Ok(());
            }
            // The drained output goes back to the connection with its capacity.
            entry.conn.swap_output(&mut io.sending);
            entry.conn.inflight_write_bytes = io.sending.len();
        }
        let sqe = match (io.fixed, self.fixed.as_mut()) {
            (Some(pair), Some(pool)) => {
                let chunk = io
                    .sending
                    .copy_front(&mut pool.send_buf(pair)[..FIXED_BUFFER_BYTES]);
                opcode::WriteFixed::new(
                    types::Fd(io.fd),
                    pool.send_ptr(pair),
                    chunk as u32,
                    pool.send_index(pair),
                )
                .build()
            }
            _ => {
                // One piece (no spliced records): a plain send; else the same iovecs
                // the epoll driver hands to sendmsg.
                io.sending.fill_iovecs(&mut io.iov);
                if let [one] = io.iov.0[..] {
                    opcode::Send::new(types::Fd(io.fd), one.iov_base.cast(), one.iov_len as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                } else {
                    io.msg.msg_iov = io.iov.0.as_mut_ptr();
                    io.msg.msg_iovlen = io.iov.0.len() as _;
                    opcode::SendMsg::new(types::Fd(io.fd), &*io.msg)
                        .flags(libc::MSG_NOSIGNAL as u32)
                        .build()
                }
            }
        };
        io.send_in_flight = true;
        // SAFETY: the send names either pieces of `io.sending` (owned bytes, and
        // mapped slices whose mappings it keeps alive) through `io.iov`/`io.msg`, all
        // of which are heap storage that is neither touched nor freed until this send
        // completes (`send_in_flight`; new output goes to the connection's own
        // buffer; a closed entry is kept until its last completion), or the
        // connection's registered send buffer, which is only refilled by the next
        // `send`, after this completion.
        unsafe { self.push(sqe.user_data(user_data(idx, KIND_SEND))) };
        Ok(())
    }

    fn arm<B: InputBuffer>(
        &mut self,
        idx: usize,
        entry: &mut Entry<B, UringIo>,
    ) -> Result<(), CloseReason> {
        if entry.closing {
            return Ok(());
        }
        if !entry.conn.wants_read() {
            if self.multishot && entry.io.recv_in_flight && !entry.io.recv_cancel_sent {
                // Backpressure: stop the armed receive (what is already received
                // still lands in the input buffer).
                entry.io.recv_cancel_sent = true;
                self.cancel(idx, KIND_RECV);
            }
            return Ok(());
        }
        if entry.io.recv_in_flight || entry.conn.has_complete_frame() {
            return Ok(());
        }
        let fd = types::Fd(entry.io.fd);
        let sqe = if self.multishot {
            opcode::RecvMulti::new(fd, PROVIDED_GROUP).build()
        } else if let (Some(pair), Some(pool)) = (entry.io.fixed, self.fixed.as_mut()) {
            opcode::ReadFixed::new(
                fd,
                pool.recv_ptr(pair),
                FIXED_BUFFER_BYTES as u32,
                pool.recv_index(pair),
            )
            .build()
        } else {
            let spare = entry.conn.input().spare();
            if spare.is_empty() {
                return Ok(());
            }
            opcode::Recv::new(fd, spare.as_mut_ptr().cast(), spare.len() as u32).build()
        };
        entry.io.recv_in_flight = true;
        // SAFETY: multishot receives into provided buffers owned by the driver (they
        // outlive the ring); a fixed receive into this connection's registered receive
        // buffer, read only after this completion; a plain receive into the input
        // buffer's spare room, which nothing touches until the completion: the worker
        // does not process while it is in flight (`input_free`), nothing else appends
        // to the buffer, and the entry (with its buffer) is kept until the completion
        // even if closed (`close` / `Ready::Released`).
        unsafe { self.push(sqe.user_data(user_data(idx, KIND_RECV))) };
        Ok(())
    }

    fn sending<B: InputBuffer>(&self, entry: &Entry<B, UringIo>) -> bool {
        entry.io.send_in_flight || entry.conn.unsent_bytes() > 0
    }

    fn close<B: InputBuffer>(&mut self, idx: usize, entry: &mut Entry<B, UringIo>) -> bool {
        if !entry.io.ops_in_flight() {
            return true;
        }
        // Pending operations end at once on a shut-down socket; cancel too, for any
        // that would not notice.
        // SAFETY: shutdown on a descriptor the entry owns (closed only when freed).
        unsafe { libc::shutdown(entry.io.fd, libc::SHUT_RDWR) };
        if entry.io.recv_in_flight {
            self.cancel(idx, KIND_RECV);
        }
        if entry.io.send_in_flight {
            self.cancel(idx, KIND_SEND);
        }
        false
    }

    fn release(&mut self, io: UringIo) {
        if let Some(pair) = io.fixed {
            self.free_pairs.push(pair);
        }
        // Dropping `io.sending` releases what it still holds (a closed connection's
        // unsent output and its mappings).
    }

    fn stop(&mut self) {
        self.stopped = true;
        if self.wake_armed {
            self.cancel(0, KIND_WAKE);
        }
    }

    fn abandon(&mut self) {
        std::mem::forget(self.provided.take());
        std::mem::forget(self.fixed.take());
    }
}
