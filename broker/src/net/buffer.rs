//! Connection input buffers (`conn_buffer`), chosen once at start-up as the type
//! parameter of the worker loop, so the choice costs no branch per byte or request.
//!
//! Both hand out request frames as owned `Bytes` (the request handlers keep slices of
//! them, e.g. a parked Fetch) and both accept frames of any size up to
//! `max_frame_bytes`; neither ever truncates or drops one.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of spare room a growable buffer guarantees before each read.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Where received bytes wait to be framed.
pub trait InputBuffer: Sized + 'static {
    /// A buffer of the configured size (`conn_buffer_bytes`; the growable one treats
    /// it as a starting capacity).
    fn with_capacity(bytes: usize) -> Self;
    /// Bytes buffered and not yet taken.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first four buffered bytes as a big-endian i32 (the frame size prefix).
    fn peek_i32(&self) -> Option<i32>;
    /// Writable room for the next read: contiguous, non-empty. After the read,
    /// [`InputBuffer::commit`] the bytes written into its start.
    fn spare(&mut self) -> &mut [MaybeUninit<u8>];
    /// Marks `n` bytes at the start of the last [`InputBuffer::spare`] as received.
    ///
    /// # Safety
    /// Those `n` bytes must have been initialized (written by recv).
    unsafe fn commit(&mut self, n: usize);
    /// Appends bytes received elsewhere (io_uring provided or registered buffers).
    fn extend_from_slice(&mut self, data: &[u8]);
    /// Announces that a frame of `frame_bytes` (size prefix included) is coming, so
    /// the buffer can make room for all of it at once.
    fn expect_frame(&mut self, frame_bytes: usize);
    /// Removes the first `n` bytes (`n <= len`) and returns them, owned.
    fn take_front(&mut self, n: usize) -> Bytes;
}

/// `conn_buffer = vec`: a growable buffer. Frames are split off without copying
/// (`split_to().freeze()`); once a frame is dropped its storage is reclaimed by the
/// next `reserve`, which moves the unread tail to the front (the "erase-from-front").
pub struct VecInput {
    buf: BytesMut,
}

impl InputBuffer for VecInput {
    fn with_capacity(_bytes: usize) -> Self {
        VecInput {
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        }
    }
    fn len(&self) -> usize {
        self.buf.len()
    }
    fn peek_i32(&self) -> Option<i32> {
        let b = self.buf.get(..4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn spare(&mut self) -> &mut [MaybeUninit<u8>] {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK_BYTES / 4 {
            self.buf.reserve(READ_CHUNK_BYTES);
        }
        self.buf.spare_capacity_mut()
    }
    unsafe fn commit(&mut self, n: usize) {
        // SAFETY: the caller initialized `n` bytes of the spare capacity.
        unsafe { self.buf.advance_mut(n) }
    }
    fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    fn expect_frame(&mut self, frame_bytes: usize) {
        self.buf.reserve(frame_bytes.saturating_sub(self.buf.len()));
    }
    fn take_front(&mut self, n: usize) -> Bytes {
        self.buf.split_to(n).freeze()
    }
}

/// `conn_buffer = circular`: a fixed power-of-two ring with monotonic `head`/`tail`
/// counters (position = counter & mask), so nothing is ever moved to the front and
/// the buffer never grows. A frame is copied out into a reusable `BytesMut`
/// (allocation-free once earlier frames are dropped).
///
/// A frame larger than the ring "spills": the buffered bytes move to a one-off heap
/// buffer sized for the whole frame, and reads go straight there until it is
/// complete. Nothing is truncated or dropped. The logical content is always
/// `spill ++ ring[head..tail]`: the spill holds the oldest bytes.
pub struct RingInput {
    ring: Box<[MaybeUninit<u8>]>,
    mask: usize,
    /// Total bytes ever taken out of the ring (front).
    head: usize,
    /// Total bytes ever received into the ring (back). `tail - head <= ring.len()`.
    tail: usize,
    /// Bytes older than the ring's, and how many it wants before the ring receives
    /// again (`want >= buf.len()`; while `want > buf.len()` the ring is empty).
    spill: Option<Spill>,
    /// Where frames are copied to be handed out.
    out: BytesMut,
}

struct Spill {
    buf: BytesMut,
    want: usize,
}

impl RingInput {
    fn used(&self) -> usize {
        self.tail - self.head
    }

    /// The two contiguous pieces of the ring's `[head, head + n)`.
    fn ring_front(&self, n: usize) -> (&[u8], &[u8]) {
        debug_assert!(n <= self.used());
        let start = self.head & self.mask;
        let first = n.min(self.ring.len() - start);
        let a = &self.ring[start..start + first];
        let b = &self.ring[..n - first];
        // SAFETY: both pieces lie inside `[head, tail)`, every byte of which was
        // written (recv + commit, or extend_from_slice) before `tail` moved past it;
        // MaybeUninit<u8> and u8 have the same layout.
        unsafe {
            (
                std::slice::from_raw_parts(a.as_ptr().cast(), a.len()),
                std::slice::from_raw_parts(b.as_ptr().cast(), b.len()),
            )
        }
    }

    /// Moves the ring's first `n` bytes to the end of `dst`.
    fn drain_ring_into(&mut self, n: usize, dst: &mut BytesMut) {
        let (a, b) = self.ring_front(n);
        dst.reserve(n);
        dst.extend_from_slice(a);
        dst.extend_from_slice(b);
        self.head += n;
    }

    /// The ring's contiguous free room at the tail (empty when full).
    fn ring_room(&mut self) -> &mut [MaybeUninit<u8>] {
        let used = self.used();
        if used == self.ring.len() {
            return &mut [];
        }
        if used == 0 {
            // Empty: restart at position 0 so the next read gets the whole ring.
            self.head = 0;
            self.tail = 0;
        }
        let start = self.tail & self.mask;
        let head_pos = self.head & self.mask;
        let end = if used > 0 && head_pos > start {
            head_pos
        } else {
            self.ring.len()
        };
        &mut self.ring[start..end]
    }

    fn spill_wants_more(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.buf.len() < s.want)
    }

    /// Moves every ring byte into the spill (created if needed), which then wants
    /// at least `want` bytes.
    fn spill_all(&mut self, want: usize) {
        let mut spill = self.spill.take().unwrap_or(Spill {
            buf: BytesMut::new(),
            want: 0,
        });
        let used = self.used();
        self.drain_ring_into(used, &mut spill.buf);
        spill.want = want.max(spill.buf.len());
        spill.buf.reserve(spill.want - spill.buf.len());
        self.spill = Some(spill);
    }
}

impl InputBuffer for RingInput {
    fn with_capacity(bytes: usize) -> Self {
        let size = bytes.max(4096).next_power_of_two();
        RingInput {
            // Uninitialized and untouched: a connection's ring costs RSS only for
            // the pages it really receives into (`vec![uninit; n]` wrote every
            // element in debug builds: 128 KiB of RSS per idle connection).
            ring: Box::new_uninit_slice(size),
            mask: size - 1,
            head: 0,
            tail: 0,
            spill: None,
            out: BytesMut::new(),
        }
    }
    fn len(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.buf.len()) + self.used()
    }
    fn peek_i32(&self) -> Option<i32> {
        if self.len() < 4 {
            return None;
        }
        let mut b = [0u8; 4];
        let spilled = self.spill.as_ref().map_or(&[][..], |s| &s.buf[..]);
        let from_spill = spilled.len().min(4);
        b[..from_spill].copy_from_slice(&spilled[..from_spill]);
        let (r1, r2) = self.ring_front(4 - from_spill);
        let n1 = r1.len();
        b[from_spill..from_spill + n1].copy_from_slice(r1);
        b[from_spill + n1..].copy_from_slice(r2);
        Some(i32::from_be_bytes(b))
    }
    fn spare(&mut self) -> &mut [MaybeUninit<u8>] {
        if self.spill_wants_more() {
            let spill = self.spill.as_mut().expect("checked just above");
            let want = spill.want - spill.buf.len();
            spill.buf.reserve(want);
            // Only the rest of the spilled frame: what follows it goes to the ring.
            return &mut spill.buf.spare_capacity_mut()[..want];
        }
        self.ring_room()
    }
    unsafe fn commit(&mut self, n: usize) {
        if self.spill_wants_more() {
            let spill = self.spill.as_mut().expect("checked just above");
            // SAFETY: the caller initialized `n` bytes of the spill's spare capacity
            // (what `spare` returned).
            unsafe { spill.buf.advance_mut(n) };
        } else {
            debug_assert!(self.used() + n <= self.ring.len());
            self.tail += n;
        }
    }
    fn extend_from_slice(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.spill_wants_more() {
                let spill = self.spill.as_mut().expect("checked just above");
                let take = (spill.want - spill.buf.len()).min(data.len());
                spill.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                continue;
            }
            let room = self.ring_room();
            if room.is_empty() {
                // Ring full before anyone framed it: keep everything, in order, in
                // the spill; frames are taken from there.
                self.spill_all(0);
                let spill = self.spill.as_mut().expect("spill_all creates it");
                spill.buf.extend_from_slice(data);
                spill.want = spill.buf.len();
                return;
            }
            let n = room.len().min(data.len());
            for (dst, src) in room[..n].iter_mut().zip(&data[..n]) {
                dst.write(*src);
            }
            self.tail += n;
            data = &data[n..];
        }
    }
    fn expect_frame(&mut self, frame_bytes: usize) {
        if self.spill.is_some() || frame_bytes > self.ring.len() {
            self.spill_all(frame_bytes);
        }
    }
    fn take_front(&mut self, n: usize) -> Bytes {
        debug_assert!(n <= self.len());
        let Some(mut spill) = self.spill.take() else {
            self.out.reserve(n);
            let mut out = std::mem::take(&mut self.out);
            self.drain_ring_into(n, &mut out);
            let frame = out.split().freeze();
            self.out = out;
            return frame;
        };
        if n > spill.buf.len() {
            let from_ring = n - spill.buf.len();
            self.drain_ring_into(from_ring, &mut spill.buf);
        }
        let frame = spill.buf.split_to(n).freeze();
        spill.want = spill.want.saturating_sub(n).max(spill.buf.len());
        if !spill.buf.is_empty() || spill.want > 0 {
            self.spill = Some(spill);
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` through `buf` in reads of `chunk` bytes via spare/commit, taking
    /// frames as they complete; returns the frames' payloads.
    fn frames_through<B: InputBuffer>(mut buf: B, stream: &[u8], chunk: usize) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let mut at = 0;
        loop {
            // Take every complete frame.
            while let Some(size) = buf.peek_i32() {
                let frame_bytes = 4 + size as usize;
                if buf.len() < frame_bytes {
                    buf.expect_frame(frame_bytes);
                    break;
                }
                let mut f = buf.take_front(frame_bytes);
                let _ = f.split_to(4);
                frames.push(f);
            }
            if at == stream.len() {
                break;
            }
            let spare = buf.spare();
            assert!(!spare.is_empty(), "no room to read into");
            let n = spare.len().min(chunk).min(stream.len() - at);
            for (d, s) in spare[..n].iter_mut().zip(&stream[at..at + n]) {
                d.write(*s);
            }
            // SAFETY: n bytes written just above.
            unsafe { buf.commit(n) };
            at += n;
        }
        assert_eq!(buf.len(), 0, "bytes left over");
        frames
    }

    fn stream_of(sizes: &[usize]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut stream = Vec::new();
        let mut payloads = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..size).map(|j| (i * 31 + j * 7) as u8).collect();
            stream.extend_from_slice(&(size as i32).to_be_bytes());
            stream.extend_from_slice(&payload);
            payloads.push(payload);
        }
        (stream, payloads)
    }

    #[test]
    fn both_buffers_frame_small_wrapping_and_oversized_frames() {
        // Sizes chosen to wrap a 4 KiB ring at odd places and to exceed it (spill).
        let sizes = [
            0,
            1,
            100,
            4000,
            4092,
            4096,
            5000,
            3,
            70_000,
            17,
            1 << 20,
            2048,
            2047,
        ];
        let (stream, payloads) = stream_of(&sizes);
        for chunk in [1, 7, 1000, 4096, 65536, usize::MAX] {
            let got = frames_through(RingInput::with_capacity(4096), &stream, chunk);
            assert_eq!(got.len(), payloads.len(), "ring, chunk {chunk}");
            for (g, p) in got.iter().zip(&payloads) {
                assert_eq!(&g[..], &p[..], "ring, chunk {chunk}");
            }
            let got = frames_through(VecInput::with_capacity(4096), &stream, chunk);
            for (g, p) in got.iter().zip(&payloads) {
                assert_eq!(&g[..], &p[..], "vec, chunk {chunk}");
            }
        }
    }

    #[test]
    fn ring_extend_from_slice_spills_rather_than_drops() {
        let (stream, payloads) = stream_of(&[10, 9000, 20]);
        let mut ring = RingInput::with_capacity(4096);
        let mut got = Vec::new();
        for piece in stream.chunks(3000) {
            ring.extend_from_slice(piece);
            while let Some(size) = ring.peek_i32() {
                let frame_bytes = 4 + size as usize;
                if ring.len() < frame_bytes {
                    ring.expect_frame(frame_bytes);
                    break;
                }
                let mut f = ring.take_front(frame_bytes);
                let _ = f.split_to(4);
                got.push(f);
            }
        }
        assert_eq!(got.len(), 3);
        for (g, p) in got.iter().zip(&payloads) {
            assert_eq!(&g[..], &p[..]);
        }
    }
}
