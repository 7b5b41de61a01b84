//! The physical floor: an in-process TCP echo server that answers each request frame
//! (sized like a Produce request) with a frame sized like a Produce response, over the
//! same loopback, with the same client loop as the broker runs.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use anyhow::{bail, Context};

pub use crate::fs_type::fs_type;
use crate::runner::Checker;
use crate::wire::{write_all, FrameReader, PollMode};

/// Offset of the correlation id in a request payload: api_key(2) api_version(2).
const REQUEST_PAYLOAD_CID_OFFSET: usize = 4;
/// Offset of the correlation id in a response frame: the length prefix.
const RESPONSE_FRAME_CID_OFFSET: usize = 4;

/// The file the sink floor's echo server writes every request into before answering.
pub struct Sink {
    file: std::fs::File,
    path: std::path::PathBuf,
    /// fdatasync after every write.
    sync: bool,
    /// The file's size: writes go sequentially up to it, then round and round within it
    /// (bounded disk and memory).
    cap_bytes: u64,
    pos: u64,
}

impl Sink {
    /// A new file in `dir`, removed when the sink is dropped.
    pub fn create(dir: &std::path::Path, sync: bool, cap_bytes: u64) -> anyhow::Result<Sink> {
        let path = dir.join(format!("loadgen-sink-floor-{}.dat", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Sink {
            file,
            path,
            sync,
            cap_bytes,
            pos: 0,
        })
    }

    /// Writes one request's bytes at the next position (from the start again when they
    /// would pass the cap), as a broker appends a batch to its segment.
    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.pos + bytes.len() as u64 > self.cap_bytes {
            self.pos = 0;
        }
        self.file
            .write_all_at(bytes, self.pos)
            .with_context(|| format!("writing {}", self.path.display()))?;
        if self.sync {
            self.file
                .sync_data()
                .with_context(|| format!("fdatasync of {}", self.path.display()))?;
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The fetch floor's answers: where the record batch's base offset is in the response
/// frame, and how many records each answer carries (the next answer starts after them).
#[derive(Debug, Clone, Copy)]
pub struct Advance {
    pub base_offset_at: usize,
    pub records: i64,
}

/// Starts the echo server on 127.0.0.1:0 for one connection; the thread ends (returning
/// the number of requests answered) when the client disconnects. With a sink, each
/// request is written into its file before the answer; with an advance, each answer's
/// record batch starts where the previous one ended (8 bytes patched, not in the CRC).
pub fn start_echo_server(
    mode: PollMode,
    response_frame: Vec<u8>,
    mut sink: Option<Sink>,
    advance: Option<Advance>,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<u64>>)> {
    if let Some(a) = advance {
        if a.base_offset_at + 8 > response_frame.len() {
            bail!(
                "base offset at {} is outside the response frame",
                a.base_offset_at
            );
        }
    }
    if response_frame.len() < RESPONSE_FRAME_CID_OFFSET + 4 {
        bail!(
            "response frame of {} bytes has no room for a header",
            response_frame.len()
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the echo server")?;
    let addr = listener.local_addr()?;
    let handle = std::thread::Builder::new()
        .name("loadgen-echo".into())
        .spawn(move || -> anyhow::Result<u64> {
            let (stream, _) = listener.accept().context("accepting the floor client")?;
            stream.set_nodelay(true)?;
            let writer = stream.try_clone()?;
            let mut reader = FrameReader::new(stream, mode)?;
            let mut response = response_frame;
            let mut answered = 0u64;
            loop {
                let payload = match reader.read_frame(None) {
                    Ok(p) => p,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(answered),
                    Err(e) => return Err(e).context("echo server read"),
                };
                let cid = payload
                    .get(REQUEST_PAYLOAD_CID_OFFSET..REQUEST_PAYLOAD_CID_OFFSET + 4)
                    .context("request shorter than a header")?;
                if let Some(sink) = sink.as_mut() {
                    sink.write(payload)?;
                }
                response[RESPONSE_FRAME_CID_OFFSET..RESPONSE_FRAME_CID_OFFSET + 4]
                    .copy_from_slice(cid);
                if let Some(a) = advance {
                    let base = answered as i64 * a.records;
                    response[a.base_offset_at..a.base_offset_at + 8]
                        .copy_from_slice(&base.to_be_bytes());
                }
                if let Err(e) = write_all(&writer, &response) {
                    // The client closing mid-write at the end of a run is not a failure.
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    ) {
                        return Ok(answered);
                    }
                    return Err(e).context("echo server write");
                }
                answered += 1;
            }
        })
        .context("starting the echo server")?;
    Ok((addr, handle))
}

/// Accepts a response of the expected size.
pub struct EchoChecker {
    pub response_payload_bytes: usize,
}

impl Checker for EchoChecker {
    fn check(&mut self, payload: &[u8]) -> anyhow::Result<bool> {
        Ok(payload.len() == self.response_payload_bytes)
    }
}

/// The storage floor: what the file system itself does with the broker's write sizes.
pub struct StorageFloor {
    pub dir: std::path::PathBuf,
    /// Bytes per write(2): one request's record batch, as the broker appends it.
    pub write_bytes: usize,
    /// Record value bytes per write (for B/s comparable with produce's payload rate).
    pub payload_bytes: u64,
    /// fdatasync after every write.
    pub sync: bool,
    /// The first pass writes this long before it measures (as a produce run warms up
    /// for `--warmup-s`, writing all the while), or until half of `max_bytes`…
    pub warmup_ns: u64,
    /// …then measures this long…
    pub duration_ns: u64,
    /// …or stops at this file size, whichever comes first.
    pub max_bytes: u64,
}

/// One sequential pass over the file (the first pass: its measured part, after the
/// warm-up).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoragePass {
    pub writes: u64,
    pub bytes: u64,
    pub ns: u64,
    pub seconds: f64,
    /// File bytes written per second / 10^6.
    pub mb_per_s: f64,
}

/// Both passes: a new file (page-cache pages allocated and zeroed as the broker's new
/// segments need them), then the same bytes rewritten in place (pages already there).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StorageReport {
    pub dir: String,
    /// The file system type of `dir` (statfs), e.g. ext4 or tmpfs.
    pub fs: String,
    pub sync: bool,
    pub write_bytes: usize,
    /// The file's cap: `--storage-max-bytes`, at most half the free space.
    pub max_bytes: u64,
    /// Bytes the first pass wrote during its warm-up (not measured).
    pub warmup_bytes: u64,
    pub first_pass: StoragePass,
    /// The whole file (warm-up included) rewritten in place.
    pub rewrite_pass: StoragePass,
}

/// Removes the floor's file however the run ends.
struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs both passes; the recorder holds the first pass's per-write latencies.
pub fn run_storage_floor(
    cfg: &StorageFloor,
) -> anyhow::Result<(crate::recorder::Recorder, StorageReport)> {
    use std::io::{Seek, SeekFrom, Write};

    let path = cfg
        .dir
        .join(format!("loadgen-storage-floor-{}.dat", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let _remove = RemoveOnDrop(path.clone());
    let buf = vec![0x5au8; cfg.write_bytes];
    let clock = crate::schedule::Clock::new();
    let mut rec = crate::recorder::Recorder::new(0);
    let write_one = |file: &mut std::fs::File| -> anyhow::Result<(u64, u64)> {
        let t0 = clock.now_ns();
        file.write_all(&buf)
            .with_context(|| format!("writing {}", path.display()))?;
        if cfg.sync {
            file.sync_data()
                .with_context(|| format!("fdatasync of {}", path.display()))?;
        }
        Ok((t0, clock.now_ns()))
    };

    // The first pass: `warmup_ns` unmeasured, then `duration_ns` measured, all into
    // the new file, so the measured writes meet the page cache a broker meets after the
    // same time writing (dirty pages, writeback) and not an empty one.
    let start = clock.now_ns();
    // No warm-up: every write is measured, the first included.
    let mut measuring_from = (cfg.warmup_ns == 0).then_some(start);
    let (mut writes, mut warmup_writes) = (0u64, 0u64);
    loop {
        let (t0, t1) = write_one(&mut file)?;
        writes += 1;
        let written = writes * cfg.write_bytes as u64;
        match measuring_from {
            None if t1 - start >= cfg.warmup_ns || written >= cfg.max_bytes / 2 => {
                // This write ends the warm-up; the next one is the first measured.
                warmup_writes = writes;
                measuring_from = Some(t1);
            }
            None => {}
            Some(_) => rec.record(
                crate::schedule::Sample {
                    intended_ns: t0,
                    sent_ns: t0,
                    done_ns: t1,
                },
                cfg.payload_bytes,
            ),
        }
        let measured_long_enough = measuring_from.is_some_and(|m| t1 - m >= cfg.duration_ns);
        if measured_long_enough || written + cfg.write_bytes as u64 > cfg.max_bytes {
            break;
        }
    }
    let measured_writes = writes - warmup_writes;
    let measured_ns = clock.now_ns() - measuring_from.unwrap_or(start);
    let first = pass(measured_writes, cfg.write_bytes, measured_ns);

    file.seek(SeekFrom::Start(0)).context("rewinding")?;
    let start = clock.now_ns();
    for _ in 0..writes {
        write_one(&mut file)?;
    }
    let rewrite = pass(writes, cfg.write_bytes, clock.now_ns() - start);
    let report = StorageReport {
        dir: cfg.dir.display().to_string(),
        fs: fs_type(&cfg.dir),
        sync: cfg.sync,
        write_bytes: cfg.write_bytes,
        max_bytes: cfg.max_bytes,
        warmup_bytes: warmup_writes * cfg.write_bytes as u64,
        first_pass: first,
        rewrite_pass: rewrite,
    };
    Ok((rec, report))
}

fn pass(writes: u64, write_bytes: usize, ns: u64) -> StoragePass {
    let bytes = writes * write_bytes as u64;
    let seconds = ns as f64 / crate::schedule::NS_PER_S as f64;
    StoragePass {
        writes,
        bytes,
        ns,
        seconds,
        mb_per_s: bytes as f64 / seconds.max(f64::MIN_POSITIVE) / 1e6,
    }
}
