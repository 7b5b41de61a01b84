//! One client connection, independent of the I/O backend: framing, request order,
//! parked requests, output backpressure and its two timeouts. No system calls: the
//! driver moves bytes in (`input`) and out (`output` / `consume_output`). The output
//! is owned bytes with mapped slices spliced in (`crate::output`); the connection
//! does not know which responses carry them.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use bytes::Bytes;

use super::buffer::InputBuffer;
use super::{ConnLimits, ConnPermit, WRITE_BACKLOG_LIMIT_BYTES};
use crate::broker::metrics::Limit;
use crate::broker::{Broker, ConnContext, FrameError, Outcome, Parked};
use crate::output::{Output, RecordsOut};

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
    /// Received bytes not yet framed.
    rbuf: B,
    /// Encoded responses not yet handed to the kernel.
    out: Output,
    /// Response bytes the backend has taken from `out` and is still sending
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
    /// `frames_handled` when the worker last looked ([`Conn::note_activity`]).
    frames_seen: u64,
    /// When the connection last made progress (a frame handled, a request parked), as
    /// the worker's loop clock saw it.
    active_at: Instant,
    /// Since when a frame has been partly received (loop clock).
    partial_since: Option<Instant>,
    /// Keeps this connection counted against max_connections(_per_ip) until dropped.
    permit: ConnPermit,
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
        permit: ConnPermit,
        limits: ConnLimits,
        buffer_bytes: usize,
        records: RecordsOut,
        now: Instant,
    ) -> Conn<B> {
        Conn {
            rbuf: B::with_capacity(buffer_bytes),
            out: Output::new(records),
            inflight_write_bytes: 0,
            parked: None,
            limits,
            response_ends: VecDeque::new(),
            queued_bytes_total: 0,
            inflight_stopped: false,
            frames_handled: 0,
            frames_seen: 0,
            active_at: now,
            partial_since: None,
            permit,
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

    /// Records a response appended to `out` (which held `len_before` bytes).
    fn note_response(&mut self, len_before: usize) {
        let appended = self.out.len().saturating_sub(len_before) as u64;
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

    /// Brings the timeout state up to date after the worker served this connection
    /// (`now` is the loop's clock, so a request costs no clock read of its own).
    pub fn note_activity(&mut self, now: Instant) {
        let progressed = self.frames_handled != self.frames_seen;
        self.frames_seen = self.frames_handled;
        if progressed || self.parked.is_some() {
            self.active_at = now;
        }
        // Only a frame the broker is waiting to receive counts: input held back by
        // the broker itself (parked, backlog) is not the client's fault.
        let receiving = self.rbuf.len() > 0 && self.wants_read() && !self.has_complete_frame();
        if !receiving {
            self.partial_since = None;
        } else if progressed || self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
    }

    /// When this connection times out if nothing happens before: idle, or stuck in the
    /// middle of a frame, whichever comes first.
    pub fn expiry(&self) -> Instant {
        let idle = self.active_at + self.limits.idle_timeout;
        match self.partial_since {
            Some(since) => idle.min(since + self.limits.partial_frame_timeout),
            None => idle,
        }
    }

    /// Called when [`Conn::expiry`] has come: why to close, or (a parked request keeps a
    /// connection alive) the next expiry.
    pub fn expire(&mut self, now: Instant, broker: &Broker) -> Result<Instant, CloseReason> {
        if self.parked.is_some() {
            self.active_at = now;
        }
        if let Some(since) = self.partial_since {
            if now >= since + self.limits.partial_frame_timeout {
                let ms = self.limits.partial_frame_timeout.as_millis() as u64;
                broker.metrics.limits.hit(
                    Limit::PartialFrameTimeout,
                    format_args!(
                        "closing a connection stuck {ms} ms in the middle of a \
                         request frame ({} bytes received)",
                        self.rbuf.len()
                    ),
                );
                return Err(CloseReason::PartialFrameTimeout(ms));
            }
        }
        if now >= self.active_at + self.limits.idle_timeout {
            let ms = self.limits.idle_timeout.as_millis() as u64;
            broker.metrics.limits.hit(
                Limit::IdleTimeout,
                format_args!("closing a connection without a complete request for {ms} ms"),
            );
            return Err(CloseReason::IdleTimeout(ms));
        }
        Ok(self.expiry())
    }

    pub fn wants_write(&self) -> bool {
        self.pending_write_bytes() > 0
    }

    pub fn pending_write_bytes(&self) -> usize {
        self.out.len() + self.inflight_write_bytes
    }

    /// Output not yet handed to the kernel (excludes what is in flight).
    pub fn unsent_bytes(&self) -> usize {
        self.out.len()
    }

    /// io_uring: takes the pending output for one send, leaving `drained` (an
    /// emptied output, so its capacity is reused) in its place.
    pub fn swap_output(&mut self, drained: &mut Output) {
        debug_assert!(drained.is_empty());
        self.out.swap_contents(drained);
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
            let len_before = self.out.len();
            let ctx = ConnContext {
                peer_ip: Some(self.permit.ip),
            };
            let outcome = broker.handle_on(&ctx, frame, &mut self.out);
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
        let len_before = self.out.len();
        let answered = broker.resume(parked, &mut self.out, force);
        self.note_response(len_before);
        if answered? {
            self.parked = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Output not yet handed to the kernel (epoll: what to write next, as pieces
    /// for a vectored send).
    pub fn output(&self) -> &Output {
        &self.out
    }

    /// The driver handed `n` bytes of [`Conn::output`] to the kernel.
    pub fn consume_output(&mut self, n: usize) {
        self.out.consume(n);
    }
}
