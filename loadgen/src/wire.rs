//! Kafka framing over TCP (a 4-byte big-endian length, then the payload), in a blocking
//! flavour and a busy-polling flavour (non-blocking socket, spin on would-block).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// Largest response frame accepted: a fetch answer is bounded by the fetch's max_bytes
/// (at most this), anything bigger is a broken stream.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;
const LEN_BYTES: usize = 4;
const INITIAL_BUF_BYTES: usize = 64 * 1024;
/// How many spins between deadline checks while busy-polling (Instant::now is not free).
const SPINS_PER_DEADLINE_CHECK: u32 = 1024;

/// How a socket waits for data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PollMode {
    /// Blocking reads: the thread sleeps in the kernel until data arrives.
    Blocking,
    /// Non-blocking socket polled in a loop: no sleep/wake-up in the kernel, one core
    /// burnt. Each empty poll yields the CPU (sched_yield) so that two pollers sharing a
    /// core (2 cores, client + server + anything else) hand over at once instead of each
    /// burning a full scheduler time slice (measured: p50 8 ms instead of 8 µs).
    BusyPoll,
}

impl PollMode {
    /// The command-line spelling, as recorded in summaries.
    pub fn name(self) -> &'static str {
        match self {
            PollMode::Blocking => "blocking",
            PollMode::BusyPoll => "busy-poll",
        }
    }
}

/// Reads whole frames from a stream into one reused buffer.
pub struct FrameReader {
    stream: TcpStream,
    mode: PollMode,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the frame returned last time, dropped at the next call.
    consumed: usize,
}

impl FrameReader {
    pub fn new(stream: TcpStream, mode: PollMode) -> io::Result<FrameReader> {
        stream.set_nonblocking(mode == PollMode::BusyPoll)?;
        Ok(FrameReader {
            stream,
            mode,
            buf: vec![0; INITIAL_BUF_BYTES],
            start: 0,
            end: 0,
            consumed: 0,
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Returns the next frame's payload (without the length prefix). Blocking mode
    /// returns `TimedOut`/`WouldBlock` when the socket's read timeout fires; busy mode
    /// when `deadline` passes. Partial data is kept, so calling again resumes.
    pub fn read_frame(&mut self, deadline: Option<Instant>) -> io::Result<&[u8]> {
        self.start += std::mem::take(&mut self.consumed);
        self.fill(LEN_BYTES, deadline)?;
        let len_bytes: [u8; LEN_BYTES] = self.buf[self.start..self.start + LEN_BYTES]
            .try_into()
            .expect("4 bytes");
        let len = i32::from_be_bytes(len_bytes);
        if len < 0 || len as usize > MAX_FRAME_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame length {len} outside 0..={MAX_FRAME_BYTES}"),
            ));
        }
        let total = LEN_BYTES + len as usize;
        self.fill(total, deadline)?;
        self.consumed = total;
        Ok(&self.buf[self.start + LEN_BYTES..self.start + total])
    }

    /// Ensures `want` bytes are buffered from `start`.
    fn fill(&mut self, want: usize, deadline: Option<Instant>) -> io::Result<()> {
        if self.end - self.start >= want {
            return Ok(());
        }
        if self.start + want > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if want > self.buf.len() {
                self.buf.resize(want.next_power_of_two(), 0);
            }
        }
        let mut spins = 0u32;
        while self.end - self.start < want {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by peer",
                    ))
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock && self.mode == PollMode::BusyPoll =>
                {
                    spins += 1;
                    if spins % SPINS_PER_DEADLINE_CHECK == 0
                        && deadline.is_some_and(|d| Instant::now() >= d)
                    {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "read deadline"));
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Writes all of `bytes`, spinning on would-block (a busy-polling socket is non-blocking
/// for writes too, since the flag belongs to the shared file description).
pub fn write_all(mut stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends a frame: reserves the length prefix, lets `body` write the payload, patches
/// the length.
pub fn frame<E>(
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    body(out)?;
    let len = (out.len() - start - LEN_BYTES) as i32;
    out[start..start + LEN_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Correlation id of a response payload (its first field in every header version).
pub fn response_correlation_id(payload: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(payload.get(0..4)?.try_into().ok()?))
}

/// Offset of the correlation id in a request frame: length(4) api_key(2) api_version(2).
pub const REQUEST_CID_OFFSET: usize = 8;

/// Overwrites the correlation id of an encoded request frame.
pub fn patch_request_correlation_id(frame: &mut [u8], cid: i32) {
    frame[REQUEST_CID_OFFSET..REQUEST_CID_OFFSET + 4].copy_from_slice(&cid.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn frames_split_across_reads_and_buffer_growth() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut out = Vec::new();
            frame::<()>(&mut out, |b| {
                b.extend_from_slice(b"hello");
                Ok(())
            })
            .unwrap();
            frame::<()>(&mut out, |b| {
                b.resize(b.len() + 200_000, 7);
                Ok(())
            })
            .unwrap();
            for chunk in out.chunks(3000) {
                write_all(&s, chunk).unwrap();
            }
        });
        let stream = TcpStream::connect(addr).unwrap();
        let mut r = FrameReader::new(stream, PollMode::BusyPoll).unwrap();
        assert_eq!(r.read_frame(None).unwrap(), b"hello");
        let big = r.read_frame(None).unwrap();
        assert_eq!(big.len(), 200_000);
        assert!(big.iter().all(|&b| b == 7));
        let eof = r.read_frame(None).unwrap_err();
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
        writer.join().unwrap();
    }

    #[test]
    fn negative_length_is_an_error_not_a_panic() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        write_all(&s, &(-5i32).to_be_bytes()).unwrap();
        let mut r = FrameReader::new(c, PollMode::BusyPoll).unwrap();
        let e = r.read_frame(None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn busy_poll_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _s = l.accept().unwrap();
        let mut r = FrameReader::new(c, PollMode::BusyPoll).unwrap();
        let d = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(
            r.read_frame(Some(d)).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn correlation_id_patching() {
        let mut f = vec![0u8; 16];
        patch_request_correlation_id(&mut f, 0x01020304);
        assert_eq!(&f[8..12], &[1, 2, 3, 4]);
        assert_eq!(response_correlation_id(&[0, 0, 1, 0, 9]), Some(256));
        assert_eq!(response_correlation_id(&[0, 0]), None);
    }
}
