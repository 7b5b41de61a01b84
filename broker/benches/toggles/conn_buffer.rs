//! `conn_buffer = vec | circular`: the cost of receiving pipelined frames into the
//! connection buffer and taking them out as owned frames (what `Conn::process` does
//! before the handler runs). Receives are simulated by copying 64 KiB chunks of a
//! prepared byte stream into the buffer's spare room, as recv would.

use criterion::{BenchmarkId, Criterion, Throughput};
use strikemq::net::buffer::{InputBuffer, RingInput, VecInput};

/// One recv's worth at most (the epoll loop's read chunk).
const RECV_BYTES: usize = 64 * 1024;
/// The circular buffer's size (`conn_buffer_bytes` default).
const RING_BYTES: usize = 128 * 1024;
/// Bytes of frames per iteration (at least one frame).
const STREAM_BYTES: usize = 4 << 20;

fn stream(frame_bytes: usize) -> Vec<u8> {
    let frames = (STREAM_BYTES / (frame_bytes + 4)).max(1);
    let mut s = Vec::with_capacity(frames * (frame_bytes + 4));
    for i in 0..frames {
        s.extend_from_slice(&(frame_bytes as i32).to_be_bytes());
        s.extend((0..frame_bytes).map(|j| (i + j) as u8));
    }
    s
}

/// Feeds `stream` through `buf`; returns the payload bytes taken (to defeat DCE).
fn pump<B: InputBuffer>(buf: &mut B, stream: &[u8]) -> usize {
    let mut at = 0;
    let mut taken = 0;
    loop {
        while let Some(size) = buf.peek_i32() {
            let frame_bytes = 4 + size as usize;
            if buf.len() < frame_bytes {
                buf.expect_frame(frame_bytes);
                break;
            }
            let frame = buf.take_front(frame_bytes);
            taken += frame.len();
            drop(frame);
        }
        if at == stream.len() {
            return taken;
        }
        let spare = buf.spare();
        let n = spare.len().min(RECV_BYTES).min(stream.len() - at);
        // SAFETY: `spare` has at least `n` writable bytes, `stream[at..]` at least `n`
        // readable ones, and they do not overlap (different allocations).
        unsafe {
            std::ptr::copy_nonoverlapping(stream[at..].as_ptr(), spare.as_mut_ptr().cast(), n)
        };
        // SAFETY: `n` bytes were initialized just above.
        unsafe { buf.commit(n) };
        at += n;
    }
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("conn_buffer");
    for frame_bytes in [100usize, 1024, 16 * 1024, 256 * 1024, 1 << 20] {
        let s = stream(frame_bytes);
        group.throughput(Throughput::Bytes(s.len() as u64));
        group.bench_with_input(BenchmarkId::new("vec", frame_bytes), &s, |b, s| {
            let mut buf = VecInput::with_capacity(RING_BYTES);
            b.iter(|| pump(&mut buf, s))
        });
        group.bench_with_input(BenchmarkId::new("circular", frame_bytes), &s, |b, s| {
            let mut buf = RingInput::with_capacity(RING_BYTES);
            b.iter(|| pump(&mut buf, s))
        });
    }
    group.finish();
}
