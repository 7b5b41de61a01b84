//! One client connection, independent of the I/O backend: framing, request order,
//! parked fetches and output backpressure.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Instant;

use bytes::Bytes;

use super::buffer::InputBuffer;
use super::{ConnLimits, ConnPermit, READ_BUDGET_BYTES, WRITE_BACKLOG_LIMIT_BYTES};
use crate::broker::metrics::Limit;
use crate::broker::{Broker, FrameError, Outcome, Parked};

/// Output buffer capacity kept after a large response has drained.
const WRITE_BUFFER_KEEP_BYTES: usize = 1024 * 1024;
const SIZE_PREFIX_BYTES: usize = 4;

/// Why a connection is being closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    #[error("peer closed the connection")]
    Eof,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("frame size {0} outside 0..={1}")]
    BadFrameSize(i64, usize),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("no complete request for idle_timeout_ms = {0}")]
    IdleTimeout(u64),
    #[error("request frame still incomplete after partial_frame_timeout_ms = {0}")]
    PartialFrameTimeout(u64),
}

impl CloseReason {
    /// Whether the close was already logged (rate-limited) as a limit hit, so the
    /// per-connection close line would only repeat it, once per connection of a flood.
    pub fn logged_as_limit(&self) -> bool {
        matches!(
            self,
            CloseReason::IdleTimeout(_)
                | CloseReason::PartialFrameTimeout(_)
                | CloseReason::BadFrameSize(..)
        )
    }
}

/// A connection whose input waits in a `B` (the `conn_buffer` choice).
pub(crate) struct Conn<B> {
    pub stream: TcpStream,
    /// Received bytes not yet framed.
    rbuf: B,
    /// Encoded responses; `wbuf[wpos..]` is still to be written.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Response bytes the backend has taken from `wbuf` and is still sending
    /// (io_uring); they count towards the output backlog.
    pub inflight_write_bytes: usize,
    /// A request waiting for an event; while set, later requests wait in `rbuf`.
    pub parked: Option<Box<Parked>>,
    limits: ConnLimits,
    /// Position (in all response bytes ever queued) where each response not yet
    /// handed to the kernel ends; its length is the unanswered responses.
    response_ends: VecDeque<u64>,
    /// Response bytes ever queued on this connection.
    queued_bytes_total: u64,
    /// Whether reading is stopped by `max_inflight_requests` (a hit is counted once
    /// per stop, not once per check).
    inflight_stopped: bool,
    /// Complete request frames handled so far.
    frames_handled: u64,
    /// `frames_handled` at the last deadline sweep.
    frames_at_sweep: u64,
    /// When the connection last made progress (a frame handled, a long-poll parked),
    /// as seen by the sweeps.
    active_at: Instant,
    /// Since when (as seen by the sweeps) a frame has been partly received.
    partial_since: Option<Instant>,
    /// Keeps this connection counted against max_connections(_per_ip) until dropped.
    _permit: ConnPermit,
}

/// Splits the next request frame (the bytes after its 4-byte size prefix) off the
/// front of `rbuf`. `Ok(None)` while the frame is incomplete (after asking the buffer
/// to make room for all of it); an error for a size outside `0..=max_frame_bytes`,
/// which closes the connection. Public so the fuzz target `frame_header` drives the
/// very framing the data plane uses.
pub fn next_frame<B: InputBuffer>(
    rbuf: &mut B,
    max_frame_bytes: usize,
) -> Result<Option<Bytes>, CloseReason> {
    let Some(size) = rbuf.peek_i32() else {
        return Ok(None);
    };
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= max_frame_bytes)
        .ok_or(CloseReason::BadFrameSize(i64::from(size), max_frame_bytes))?;
    let frame_bytes = SIZE_PREFIX_BYTES + size;
    if rbuf.len() < frame_bytes {
        // Make room for the whole frame once, not chunk by chunk.
        rbuf.expect_frame(frame_bytes);
        return Ok(None);
    }
    let mut frame = rbuf.take_front(frame_bytes);
    let _ = frame.split_to(SIZE_PREFIX_BYTES);
    Ok(Some(frame))
}

impl<B: InputBuffer> Conn<B> {
    pub fn new(
        stream: TcpStream,
        permit: ConnPermit,
        limits: ConnLimits,
        buffer_bytes: usize,
    ) -> Conn<B> {
        Conn {
            stream,
            rbuf: B::with_capacity(buffer_bytes),
            wbuf: Vec::new(),
            wpos: 0,
            inflight_write_bytes: 0,
            parked: None,
            limits,
            response_ends: VecDeque::new(),
            queued_bytes_total: 0,
            inflight_stopped: false,
            frames_handled: 0,
            frames_at_sweep: 0,
            active_at: Instant::now(),
            partial_since: None,
            _permit: permit,
        }
    }

    /// Whether new input may be read and processed now.
    pub fn wants_read(&self) -> bool {
        self.parked.is_none()
            && self.pending_write_bytes() < WRITE_BACKLOG_LIMIT_BYTES
            && self.unanswered_responses() < self.limits.max_inflight_requests
    }

    /// Responses queued but not yet fully handed to the kernel (the client has not
    /// read enough of the earlier ones). A parked request is not counted here: it
    /// stops reading on its own.
    fn unanswered_responses(&self) -> usize {
        let handed_over = self
            .queued_bytes_total
            .saturating_sub(self.pending_write_bytes() as u64);
        let done = self
            .response_ends
            .partition_point(|end| *end <= handed_over);
        self.response_ends.len() - done
    }

    /// Records a response appended to `wbuf` (from `len_before` on).
    fn note_response(&mut self, len_before: usize) {
        let appended = self.wbuf.len().saturating_sub(len_before) as u64;
        if appended > 0 {
            self.queued_bytes_total += appended;
            self.response_ends.push_back(self.queued_bytes_total);
        }
    }

    /// Forgets answered responses and counts a `max_inflight_requests` hit when
    /// reading stops because of it.
    fn note_inflight_limit(&mut self, broker: &Broker) {
        let handed_over = self
            .queued_bytes_total
            .saturating_sub(self.pending_write_bytes() as u64);
        while self
            .response_ends
            .front()
            .is_some_and(|end| *end <= handed_over)
        {
            self.response_ends.pop_front();
        }
        let stopped = self.response_ends.len() >= self.limits.max_inflight_requests;
        if stopped && !self.inflight_stopped {
            broker.metrics.limits.hit(
                Limit::MaxInflightRequests,
                format_args!(
                    "stopped reading a connection with {} unanswered responses \
                     (max_inflight_requests = {}) until its client reads",
                    self.response_ends.len(),
                    self.limits.max_inflight_requests
                ),
            );
        }
        self.inflight_stopped = stopped;
    }

    /// Checks the idle and partial-frame deadlines (called by the worker's periodic
    /// sweep, so a request costs no clock read). Returns why to close, if it must.
    pub fn check_deadlines(
        &mut self,
        now: Instant,
        limits: &ConnLimits,
        broker: &Broker,
    ) -> Option<CloseReason> {
        let progressed = self.frames_handled != self.frames_at_sweep;
        self.frames_at_sweep = self.frames_handled;
        if progressed || self.parked.is_some() {
            self.active_at = now;
        }
        // Only a frame the broker is waiting to receive counts: input held back by
        // the broker itself (parked, backlog) is not the client's fault.
        let receiving = self.rbuf.len() > 0 && self.wants_read() && !self.has_complete_frame();
        if !receiving {
            self.partial_since = None;
        } else {
            match self.partial_since {
                Some(since) if !progressed => {
                    if now.duration_since(since) >= limits.partial_frame_timeout {
                        let ms = limits.partial_frame_timeout.as_millis() as u64;
                        broker.metrics.limits.hit(
                            Limit::PartialFrameTimeout,
                            format_args!(
                                "closing a connection stuck {ms} ms in the middle of a \
                                 request frame ({} bytes received)",
                                self.rbuf.len()
                            ),
                        );
                        return Some(CloseReason::PartialFrameTimeout(ms));
                    }
                }
                _ => self.partial_since = Some(now),
            }
        }
        if now.duration_since(self.active_at) >= limits.idle_timeout {
            let ms = limits.idle_timeout.as_millis() as u64;
            broker.metrics.limits.hit(
                Limit::IdleTimeout,
                format_args!("closing a connection without a complete request for {ms} ms"),
            );
            return Some(CloseReason::IdleTimeout(ms));
        }
        None
    }

    pub fn wants_write(&self) -> bool {
        self.pending_write_bytes() > 0
    }

    pub fn pending_write_bytes(&self) -> usize {
        self.wbuf.len() - self.wpos + self.inflight_write_bytes
    }

    /// Output not yet handed to the kernel (excludes what is in flight).
    pub fn unsent_bytes(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// io_uring: takes the pending output for one send, leaving `empty` (a cleared
    /// buffer, so its capacity is reused) in its place.
    pub fn swap_output(&mut self, empty: Vec<u8>) -> Vec<u8> {
        debug_assert!(empty.is_empty() && self.wpos == 0);
        std::mem::replace(&mut self.wbuf, empty)
    }

    /// io_uring: the input buffer, to receive into (`spare`/`commit`) or append to.
    pub fn input(&mut self) -> &mut B {
        &mut self.rbuf
    }

    /// Whether a whole request frame is buffered (an invalid size counts: processing
    /// it closes the connection).
    pub fn has_complete_frame(&self) -> bool {
        let Some(size) = self.rbuf.peek_i32() else {
            return false;
        };
        usize::try_from(size).map_or(true, |s| self.rbuf.len() >= SIZE_PREFIX_BYTES + s)
    }

    /// Reads what the socket has (up to the read budget). Err(Eof) when the peer closed.
    pub fn read_available(&mut self) -> Result<(), CloseReason> {
        let mut read_bytes = 0;
        while read_bytes < READ_BUDGET_BYTES {
            let spare = self.rbuf.spare();
            let spare_bytes = spare.len();
            if spare_bytes == 0 {
                // Full of complete frames: process them first (level-triggered, so
                // the rest is reported again).
                return Ok(());
            }
            // SAFETY: `spare` is writable memory owned by `rbuf` of `spare.len()` bytes;
            // recv writes at most that many bytes and returns how many it wrote.
            let n = unsafe {
                libc::recv(
                    self.stream.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    0,
                )
            };
            match n {
                0 => return Err(CloseReason::Eof),
                n if n > 0 => {
                    // SAFETY: recv initialized exactly `n` bytes at the start of `spare`.
                    unsafe { self.rbuf.commit(n as usize) };
                    read_bytes += n as usize;
                    if (n as usize) < spare_bytes {
                        // A short read means the socket is drained for now; the
                        // level-triggered loop reports it again when more arrives. This
                        // saves the recv that would only say EAGAIN, one syscall a request.
                        return Ok(());
                    }
                }
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(()),
                        io::ErrorKind::Interrupted => continue,
                        _ => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles the complete frames in the input buffer, in order, until the input runs
    /// out, a fetch parks, or the output backlog is full. Returns true if a fetch parked.
    pub fn process(&mut self, broker: &Broker) -> Result<bool, CloseReason> {
        let parked = self.process_frames(broker);
        self.note_inflight_limit(broker);
        parked
    }

    fn process_frames(&mut self, broker: &Broker) -> Result<bool, CloseReason> {
        let max_frame_bytes = self.limits.max_frame_bytes;
        while self.wants_read() {
            let frame = match next_frame(&mut self.rbuf, max_frame_bytes) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(CloseReason::BadFrameSize(size, limit)) if size > 0 => {
                    broker.metrics.limits.hit(
                        Limit::MaxFrameBytes,
                        format_args!(
                            "closing a connection that sent a {size}-byte frame \
                             (max_frame_bytes = {limit})"
                        ),
                    );
                    return Err(CloseReason::BadFrameSize(size, limit));
                }
                Err(e) => return Err(e),
            };
            self.frames_handled += 1;
            let len_before = self.wbuf.len();
            let outcome = broker.handle(frame, &mut self.wbuf);
            self.note_response(len_before);
            match outcome? {
                Outcome::Responded | Outcome::NoResponse => {}
                Outcome::Park(fetch) => {
                    self.parked = Some(fetch);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Re-examines the parked request. Returns true when it was answered.
    pub fn resume(&mut self, broker: &Broker, force: bool) -> Result<bool, CloseReason> {
        let Some(parked) = self.parked.as_mut() else {
            return Ok(false);
        };
        let len_before = self.wbuf.len();
        let answered = broker.resume(parked, &mut self.wbuf, force);
        self.note_response(len_before);
        if answered? {
            self.parked = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes pending output until done or the socket would block.
    pub fn write_pending(&mut self) -> Result<(), CloseReason> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(CloseReason::Eof),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            if self.wbuf.capacity() > WRITE_BUFFER_KEEP_BYTES {
                self.wbuf.shrink_to(WRITE_BUFFER_KEEP_BYTES);
            }
        } else if self.wpos > self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }
}
