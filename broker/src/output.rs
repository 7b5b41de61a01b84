//! A connection's response output: owned bytes with shared, read-only slices of
//! segment mappings spliced in (`fetch_zero_copy`).
//!
//! The handlers encode every header into [`Output::bytes_mut`] as before; a Fetch
//! with `fetch_zero_copy = true` appends its record bytes as a [`MappedSlice`] (a
//! reference-counted view of the segment mapping: no copy, no allocation) instead of
//! copying them. The data plane sends the whole output in order with one vectored
//! send (`sendmsg` on epoll, `SendMsg` on io_uring) and knows nothing of the APIs:
//! it sees owned bytes and borrowed mapped bytes.
//!
//! The logical byte stream is `buf[..s0.at] ++ s0 ++ buf[s0.at..s1.at] ++ s1 ++ ...
//! ++ buf[last.at..]`: a splice sits *before* the owned byte at its position, and
//! splices at the same position keep the order they were appended in.
//!
//! A spliced slice keeps its mapping alive (`Arc`) until it has been handed to the
//! kernel, so a segment deleted by retention, sealed or rolled while a response is
//! still being sent is never unmapped under the send (no SIGBUS, no stale bytes: the
//! mapped bytes are committed and never written again, see `storage/segment.rs`).

use std::collections::VecDeque;
use std::sync::Arc;

use memmap2::MmapRaw;

/// Owned-byte capacity kept after a large response has drained.
const KEEP_CAPACITY_BYTES: usize = 1024 * 1024;
/// Bytes of the size prefix of every frame.
const SIZE_PREFIX_BYTES: usize = 4;
/// Most pieces handed to one vectored send (far below IOV_MAX, 1024): a 1 MiB Fetch
/// of one partition is three pieces; what does not fit goes with the next send.
pub const MAX_IOVECS_PER_SEND: usize = 64;

/// Committed, immutable bytes `[start, start + len)` of a segment mapping, kept
/// mapped for as long as this value (or a clone of its mapping) lives.
pub struct MappedSlice {
    map: Arc<MmapRaw>,
    start: usize,
    len: usize,
}

impl MappedSlice {
    /// # Safety
    /// `[start, start + len)` lies inside `map`, and those bytes are never written
    /// again while any clone of `map` lives (storage hands out only committed bytes
    /// of its append-only segments).
    pub(crate) unsafe fn new(map: Arc<MmapRaw>, start: usize, len: usize) -> MappedSlice {
        debug_assert!(start.checked_add(len).is_some_and(|end| end <= map.len()));
        MappedSlice { map, start, len }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: in bounds and immutable for the mapping's life (the contract of
        // `new`); `self.map` keeps the mapping alive while the slice is borrowed.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.start), self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reusable storage for the iovecs of one vectored send (no allocation per send once
/// warm). It holds pointers only between [`Output::fill_iovecs`] and the send that
/// uses them.
#[derive(Default)]
pub struct Iovecs(pub Vec<libc::iovec>);

// SAFETY: the pointers are used only on the thread that filled them, during the send
// that follows; a driver (and this scratch) is built on the starting thread and moved
// to its worker thread before any is filled.
unsafe impl Send for Iovecs {}

impl Iovecs {
    pub fn with_capacity() -> Iovecs {
        Iovecs(Vec::with_capacity(MAX_IOVECS_PER_SEND))
    }
}

/// A mapped slice and where in the owned bytes it goes.
struct Splice {
    /// It is sent right before `buf[at]` (after everything before `at`).
    at: usize,
    data: MappedSlice,
}

/// Whether record bytes are spliced in or copied (`fetch_zero_copy`, fixed per
/// connection at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordsOut {
    /// Copy the records into the owned bytes (one contiguous send).
    Copy,
    /// Splice slices of the mapping (vectored send, no copy in user space).
    Splice,
}

/// A response frame being written to an [`Output`].
#[must_use]
pub struct OutFrame {
    start: usize,
    splices: usize,
    spliced_total: u64,
}

/// Responses waiting to be sent on one connection, in order.
pub struct Output {
    buf: Vec<u8>,
    splices: VecDeque<Splice>,
    /// `buf[..sent]` was handed to the kernel.
    sent: usize,
    /// Bytes of the front splice already handed over; non-zero only while
    /// `sent == splices[0].at`.
    front_sent: usize,
    /// Splice bytes not yet handed over.
    splice_pending: usize,
    /// Splice bytes ever appended (frames measure their spliced bytes with it).
    spliced_total: u64,
    records: RecordsOut,
}

impl Output {
    pub fn new(records: RecordsOut) -> Output {
        Output {
            buf: Vec::new(),
            splices: VecDeque::new(),
            sent: 0,
            front_sent: 0,
            splice_pending: 0,
            spliced_total: 0,
            records,
        }
    }

    /// Exchanges the contents (bytes, splices, send position) with `other`, each
    /// keeping its record mode: the io_uring driver takes a connection's output for
    /// one send this way, and gives back the drained one with its capacity.
    pub fn swap_contents(&mut self, other: &mut Output) {
        std::mem::swap(&mut self.buf, &mut other.buf);
        std::mem::swap(&mut self.splices, &mut other.splices);
        std::mem::swap(&mut self.sent, &mut other.sent);
        std::mem::swap(&mut self.front_sent, &mut other.front_sent);
        std::mem::swap(&mut self.splice_pending, &mut other.splice_pending);
        std::mem::swap(&mut self.spliced_total, &mut other.spliced_total);
    }

    /// The owned bytes, to encode into (appending only).
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Bytes not yet handed to the kernel.
    pub fn len(&self) -> usize {
        self.buf.len() - self.sent + self.splice_pending
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends record bytes: spliced as `share()` when this connection splices,
    /// copied from `bytes` otherwise.
    pub fn put_records(&mut self, bytes: &[u8], share: impl FnOnce() -> Option<MappedSlice>) {
        if bytes.is_empty() {
            return;
        }
        if self.records == RecordsOut::Splice {
            if let Some(data) = share() {
                debug_assert_eq!(data.len(), bytes.len());
                self.splice(data);
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    fn splice(&mut self, data: MappedSlice) {
        if data.is_empty() {
            return;
        }
        self.splice_pending += data.len();
        self.spliced_total += data.len() as u64;
        self.splices.push_back(Splice {
            at: self.buf.len(),
            data,
        });
    }

    /// Starts a response frame (see `protocol::encode::begin_frame`).
    pub fn begin_frame(&mut self, correlation_id: i32, flexible_header: bool) -> OutFrame {
        let start =
            crate::protocol::encode::begin_frame(&mut self.buf, correlation_id, flexible_header);
        OutFrame {
            start: start.position(),
            splices: self.splices.len(),
            spliced_total: self.spliced_total,
        }
    }

    /// Writes the size of `frame` (owned and spliced bytes); a frame too large for
    /// Kafka's i32 size is removed and refused.
    pub fn finish_frame(&mut self, frame: OutFrame) -> anyhow::Result<()> {
        let spliced = (self.spliced_total - frame.spliced_total) as usize;
        let frame_bytes = self.buf.len() - frame.start - SIZE_PREFIX_BYTES + spliced;
        let Ok(size) = i32::try_from(frame_bytes) else {
            self.abandon_frame(frame);
            anyhow::bail!("response of {frame_bytes} bytes does not fit a Kafka frame");
        };
        self.buf[frame.start..frame.start + SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }

    /// Drops the frame begun with `frame` (nothing is to be sent after all).
    pub fn abandon_frame(&mut self, frame: OutFrame) {
        self.buf.truncate(frame.start);
        for s in self.splices.drain(frame.splices..) {
            self.splice_pending -= s.data.len();
        }
        self.spliced_total = frame.spliced_total;
    }

    /// Visits the bytes not yet handed over, in order, as at most `max_pieces`
    /// contiguous pieces.
    pub fn pieces(&self, max_pieces: usize, mut f: impl FnMut(&[u8])) {
        let mut pos = self.sent;
        let mut n = 0;
        for (i, s) in self.splices.iter().enumerate() {
            if n == max_pieces {
                return;
            }
            if s.at > pos {
                f(&self.buf[pos..s.at]);
                pos = s.at;
                n += 1;
                if n == max_pieces {
                    return;
                }
            }
            let skip = if i == 0 { self.front_sent } else { 0 };
            f(&s.data.as_slice()[skip..]);
            n += 1;
        }
        if n < max_pieces && pos < self.buf.len() {
            f(&self.buf[pos..]);
        }
    }

    /// Fills `iov` (cleared first) with the pending pieces, for a vectored send.
    /// The pointers are valid until `self` is next changed or dropped.
    pub fn fill_iovecs(&self, iov: &mut Iovecs) {
        let iov = &mut iov.0;
        iov.clear();
        self.pieces(MAX_IOVECS_PER_SEND, |p| {
            iov.push(libc::iovec {
                iov_base: p.as_ptr().cast_mut().cast(),
                iov_len: p.len(),
            })
        });
    }

    /// Copies pending bytes, in order, into `dst`; returns how many (a registered
    /// send buffer is filled this way).
    pub fn copy_front(&self, dst: &mut [u8]) -> usize {
        let mut at = 0;
        self.pieces(usize::MAX, |p| {
            let n = p.len().min(dst.len() - at);
            dst[at..at + n].copy_from_slice(&p[..n]);
            at += n;
        });
        at
    }

    /// The first `n` pending bytes were handed to the kernel.
    pub fn consume(&mut self, mut n: usize) {
        while n > 0 {
            match self.splices.front() {
                Some(s) if s.at == self.sent => {
                    let k = n.min(s.data.len() - self.front_sent);
                    self.front_sent += k;
                    self.splice_pending -= k;
                    n -= k;
                    if self.front_sent == s.data.len() {
                        // Releases this slice's hold on its mapping.
                        self.splices.pop_front();
                        self.front_sent = 0;
                    }
                }
                Some(s) => {
                    let k = n.min(s.at - self.sent);
                    self.sent += k;
                    n -= k;
                }
                None => {
                    let k = n.min(self.buf.len() - self.sent);
                    if k == 0 {
                        break;
                    }
                    self.sent += k;
                    n -= k;
                }
            }
        }
        if self.is_empty() {
            self.clear();
        } else if self.sent > self.buf.len() / 2 {
            self.buf.drain(..self.sent);
            for s in &mut self.splices {
                s.at -= self.sent;
            }
            self.sent = 0;
        }
    }

    /// Forgets everything (sent or not), keeping bounded capacity for reuse.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.splices.clear();
        self.sent = 0;
        self.front_sent = 0;
        self.splice_pending = 0;
        if self.buf.capacity() > KEEP_CAPACITY_BYTES {
            self.buf.shrink_to(KEEP_CAPACITY_BYTES);
        }
    }

    /// The pending bytes as one contiguous copy (tests, benches, fuzzing).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.pieces(usize::MAX, |p| v.extend_from_slice(p));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mapping with bytes 0..=255 repeated, standing in for a segment.
    fn mapping(len: usize) -> Arc<MmapRaw> {
        let mut m = memmap2::MmapMut::map_anon(len).unwrap();
        for (i, b) in m.iter_mut().enumerate() {
            *b = i as u8;
        }
        Arc::new(MmapRaw::from(m.make_read_only().unwrap()))
    }

    fn slice(map: &Arc<MmapRaw>, start: usize, len: usize) -> MappedSlice {
        // SAFETY: in bounds; nothing writes the anonymous mapping after `mapping`.
        unsafe { MappedSlice::new(map.clone(), start, len) }
    }

    /// Two frames written with `mode` (spliced records at the end of the first frame,
    /// in the middle of the second): the logical bytes.
    fn two_frames(mode: RecordsOut, map: &Arc<MmapRaw>) -> Output {
        let mut out = Output::new(mode);
        let f = out.begin_frame(7, false);
        out.bytes_mut().extend_from_slice(b"head");
        let m = map.as_ptr();
        // SAFETY: reading bytes of the live anonymous mapping.
        let bytes = unsafe { std::slice::from_raw_parts(m.add(10), 300) };
        out.put_records(bytes, || Some(slice(map, 10, 300)));
        out.finish_frame(f).unwrap();
        let f = out.begin_frame(8, true);
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(m.add(1000), 5) };
        out.put_records(bytes, || Some(slice(map, 1000, 5)));
        out.bytes_mut().extend_from_slice(b"tail");
        out.finish_frame(f).unwrap();
        out
    }

    #[test]
    fn splicing_and_copying_give_the_same_bytes() {
        let map = mapping(4096);
        let copied = two_frames(RecordsOut::Copy, &map).to_vec();
        let spliced = two_frames(RecordsOut::Splice, &map);
        assert_eq!(spliced.to_vec(), copied);
        assert_eq!(spliced.len(), copied.len());
        // The size prefixes count the spliced bytes.
        assert_eq!(&copied[..4], &(4 + 4 + 300i32).to_be_bytes());
    }

    #[test]
    fn partial_sends_resume_mid_piece_in_order() {
        let map = mapping(4096);
        let expected = two_frames(RecordsOut::Copy, &map).to_vec();
        for step in [1, 3, 7, 64, 301, 1000] {
            let mut out = two_frames(RecordsOut::Splice, &map);
            let mut got = Vec::new();
            while !out.is_empty() {
                // Send at most `step` bytes of what a vectored send would carry.
                let mut iov = Iovecs::default();
                out.fill_iovecs(&mut iov);
                let mut room = step;
                for v in &iov.0 {
                    // SAFETY: the iovecs point into `out`, unchanged until consume.
                    let p =
                        unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
                    let n = p.len().min(room);
                    got.extend_from_slice(&p[..n]);
                    room -= n;
                }
                out.consume(step.min(out.len()));
                assert_eq!(out.len(), expected.len() - got.len(), "step {step}");
            }
            assert_eq!(got, expected, "step {step}");
            assert_eq!(Arc::strong_count(&map), 1, "slices released after sending");
        }
    }

    #[test]
    fn abandoned_frames_leave_nothing_behind() {
        let map = mapping(4096);
        let mut out = two_frames(RecordsOut::Splice, &map);
        let before = out.to_vec();
        let f = out.begin_frame(9, false);
        out.put_records(&[0; 100], || Some(slice(&map, 0, 100)));
        out.abandon_frame(f);
        assert_eq!(out.to_vec(), before);
        assert_eq!(out.len(), before.len());
    }

    #[test]
    fn copy_front_fills_a_registered_buffer_in_order() {
        let map = mapping(4096);
        let mut out = two_frames(RecordsOut::Splice, &map);
        let expected = out.to_vec();
        out.consume(5);
        let mut dst = [0u8; 200];
        let n = out.copy_front(&mut dst);
        assert_eq!(&dst[..n], &expected[5..205]);
    }
}
