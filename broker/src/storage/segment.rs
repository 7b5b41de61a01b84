//! One log segment: a file `<20-digit base offset>.log` mapped shared and writable.
//!
//! Concurrency model (what makes the `unsafe` below sound):
//! - Bytes `[0, len)` are *committed*. They were written before `len` was advanced
//!   under the partition mutex and are never written again while the mapping lives:
//!   the log is append-only, and recovery truncation runs in `open`, before the
//!   segment is shared. Readers may therefore hold `&[u8]` (and `Bytes`) over the
//!   committed range with no lock.
//! - Bytes `[len, capacity)` are written only by the appender, which holds the
//!   partition mutex, and only become visible to readers after `len` is advanced
//!   under that same mutex (the mutex gives the happens-before edge).
//! - The mapping lives in an `Arc<MmapRaw>`: a `Bytes` handed to a reader keeps it
//!   mapped even after the segment is sealed, the topic deleted or the file unlinked.
//! - Sealing truncates the *file* to `len`; pages wholly past the new end would
//!   SIGBUS if touched, but nobody reads past `len` and nobody writes to a sealed
//!   segment.
//!
//! - Disk blocks are reserved with `fallocate` ahead of the append position, in
//!   chunks of [`RESERVE_CHUNK_BYTES`], before any byte of them is written through
//!   the mapping: a store into a hole of a shared file mapping on a full disk is a
//!   SIGBUS, while `fallocate` reports ENOSPC/EDQUOT as an error the appender can
//!   answer with (KAFKA_STORAGE_ERROR). Only reserved bytes are ever written or
//!   faulted in.
//! - Appends reach `[len, len + n)` one of two ways (`segment_write`, fixed at
//!   start-up): a copy into the mapping, or `pwritev` into the file (the same page
//!   cache pages the mapping reads). With the pre-fault window on, an mmap-path
//!   append that runs past the populated window also uses `pwritev` (no page
//!   fault per new page). Either way the bytes are committed by the same `len`
//!   advance under the partition mutex.
//! - The writable end of an active segment is a [`Tail`], shared with the pre-fault
//!   thread (`prefault.rs`): it holds the reservation, the pre-fault window, the open
//!   file and the next segment prepared ahead of the roll. The thread never changes
//!   a byte, and stops for good when the segment is sealed (see [`Tail`]).
//!
//! External processes truncating or writing our files are outside this model.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use memmap2::{Advice, MmapOptions, MmapRaw};

use super::prefault::{self, Window};
use super::{PrefaultOutrun, SegmentWrite};
use crate::output::MappedSlice;
use crate::protocol::batch::{
    set_base_offset, set_log_append_time, set_max_timestamp, BatchError, RecordBatch,
    RECORD_BATCH_HEADER_BYTES,
};

/// Digits in a segment file name (`i64::MAX` has 19; Kafka uses 20).
const SEGMENT_NAME_DIGITS: usize = 20;
pub(crate) const SEGMENT_SUFFIX: &str = ".log";
/// The next segment, prepared by the pre-fault thread before the roll, is created
/// under this name and renamed to its base offset's name when the roll adopts it.
/// Not a segment name, so recovery never reads it as one (it deletes it).
pub(crate) const PREPARED_SEGMENT_FILE: &str = "next-segment.prepared";
/// Smallest mapping we create, so a tiny `segment_bytes` still maps something.
const MIN_SEGMENT_CAPACITY_BYTES: u64 = 4096;
pub(crate) const PAGE_BYTES: usize = 4096;
/// Most disk blocks reserved per `fallocate` call ahead of the append position. One
/// system call per MiB of appends; the most a segment holds reserved but unwritten
/// is this much, plus the pre-fault window when it is on (given back when the
/// segment is sealed and truncated). 8 MiB chunks were tried against a p99.9 rise
/// after this was added and made no difference there (fallocate itself takes ~3 µs
/// here).
pub(crate) const RESERVE_CHUNK_BYTES: u64 = 1 << 20;
/// First reservation of a segment; each later one reserves as much again as is
/// already reserved (doubling up to [`RESERVE_CHUNK_BYTES`]), so a thousand quiet
/// partitions with a record each hold 64 MiB of disk, not a GiB.
pub(crate) const RESERVE_MIN_BYTES: u64 = 64 << 10;
/// Batches per `pwritev` call on the pwrite path: two iovecs each (the patched
/// header copy, the rest of the batch as received), far below IOV_MAX (1024).
const PWRITE_BATCHES_PER_CALL: usize = 32;

/// ENOSPC or EDQUOT: the disk (or the quota) is full.
fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// A sparse index entry: the batch with `base_offset` starts at byte `position`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry {
    pub(crate) base_offset: i64,
    pub(crate) position: u64,
}

pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) path: PathBuf,
    map: Arc<MmapRaw>,
    /// Committed bytes (see module doc).
    pub(crate) len: u64,
    /// The writable end while the segment is active (reservation, pre-fault window,
    /// the open file); None once sealed.
    tail: Option<Arc<Tail>>,
    /// Bytes known to be on disk (msync'ed).
    pub(crate) flushed_len: u64,
    /// Offset after the last batch in this segment (= base offset when empty).
    pub(crate) next_offset: i64,
    /// Largest batch max timestamp in this segment (i64::MIN when empty).
    pub(crate) max_timestamp: i64,
    pub(crate) index: Vec<IndexEntry>,
    /// Bytes appended since the last index entry.
    pub(crate) bytes_since_index: u64,
    pub(crate) sealed: bool,
}

/// Owner of a committed byte range, for `Bytes::from_owner`.
struct SegmentSlice {
    map: Arc<MmapRaw>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for SegmentSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `start + len <= committed len <= map.len()` (checked in `Segment::bytes`);
        // committed bytes are never written again while the mapping lives (module doc),
        // and `self.map` keeps the mapping alive for as long as this slice exists.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.start), self.len) }
    }
}

pub(crate) fn segment_file_name(base_offset: i64) -> String {
    format!(
        "{base_offset:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

/// The base offset encoded in a segment file name, or None if it is not one of ours.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// How segments are mapped and written, fixed at startup.
#[derive(Debug, Clone)]
pub(crate) struct MapOptions {
    pub(crate) hugepages: bool,
    pub(crate) write: SegmentWrite,
    /// The pre-fault window (None when `segment_prefault_bytes` is 0).
    pub(crate) window: Option<Window>,
}

fn map_file(file: &File, capacity: u64, path: &Path, opts: &MapOptions) -> io::Result<MmapRaw> {
    let capacity_usize = usize::try_from(capacity).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "segment larger than address space",
        )
    })?;
    let map = MmapOptions::new().len(capacity_usize).map_raw(file)?;
    if opts.hugepages {
        // File-backed THP needs kernel support; EINVAL just means "not here".
        if let Err(e) = map.advise(Advice::HugePage) {
            tracing::debug!(path = %path.display(), error = %e, "madvise(MADV_HUGEPAGE) refused");
        }
    }
    Ok(map)
}

/// Turns off fault readahead on the not-yet-written part of an active segment.
/// Without it, the first write fault on a large sparse file reads ahead (and zeroes)
/// a large window of page cache. Measured with 1 GiB segments, first append on 1000
/// new partitions: 6-8.5 s and +8 GiB page cache with readahead, 0.2 s and +3 MiB
/// without. The price: every new page is its own fault (1 KiB appends p99 ~5 µs
/// instead of ~2.3 µs on a loaded 2-core VM); the pre-fault window takes those faults
/// off the write path. Reverted to normal on seal so sequential reads of sealed
/// segments keep readahead.
fn advise_no_readahead(map: &MmapRaw, from: u64) {
    let from = from as usize;
    if from >= map.len() {
        return;
    }
    if let Err(e) = map.advise_range(Advice::Random, from, map.len() - from) {
        tracing::debug!(error = %e, "madvise(MADV_RANDOM) refused");
    }
}

fn off_t(value: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(value)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset beyond off_t"))
}

/// One batch of an append: where it starts in the appended bytes, the base offset
/// assigned to it, and the max timestamp to write when the producer's was impossible.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchPatch {
    pub(crate) position: usize,
    pub(crate) base_offset: i64,
    pub(crate) repaired_max_timestamp: Option<i64>,
    /// `repaired_max_timestamp` is a LogAppendTime stamp: set the timestamp type too.
    pub(crate) log_append_time: bool,
}

impl BatchPatch {
    /// Writes `max_timestamp` into `batch` (and the LogAppendTime bit when asked),
    /// with the CRC that covers them.
    fn rewrite_max_timestamp(
        &self,
        batch: &mut [u8],
        max_timestamp: i64,
    ) -> Result<(), BatchError> {
        if self.log_append_time {
            set_log_append_time(batch, max_timestamp)
        } else {
            set_max_timestamp(batch, max_timestamp)
        }
    }
}

/// The writable end of an active segment, shared by the appender (which holds the
/// partition mutex) and the pre-fault thread (which does not).
///
/// - `[0, reserved)` has disk blocks. Only `fallocate` under `state` grows it, and
///   after `sealed` is set (under `state`) nobody does: the file can then be
///   truncated without racing a reservation or a pre-fault.
/// - `[populated_from, populated)` is the pre-fault window: faulted in, writable,
///   and always inside `[0, reserved)`.
/// - Pre-faulting never changes a byte (MADV_POPULATE_WRITE, or an atomic OR with 0
///   where the kernel lacks it), so it may run over bytes the appender is writing.
pub(crate) struct Tail {
    map: Arc<MmapRaw>,
    /// The directory the next segment is prepared in.
    dir: PathBuf,
    capacity: u64,
    hugepages: bool,
    /// The file, opened on first need and kept while the segment is active: pwrite,
    /// fdatasync and fallocate go through it (one descriptor per partition being
    /// written; closed when the segment is sealed).
    file: OnceLock<File>,
    /// Where to open `file` from (the file may be renamed once it is open).
    open_path: PathBuf,
    /// Committed length, published after each append: the window is measured from it.
    append_pos: AtomicU64,
    reserved: AtomicU64,
    populated: AtomicU64,
    /// The (uncapped) position up to which the last pre-fault pass served the window,
    /// next segment included; the appender compares its position with it.
    satisfied_to: AtomicU64,
    /// Set while this tail waits in the pre-fault thread's queue, so it is queued once.
    pub(crate) queued: AtomicBool,
    window: Option<Window>,
    state: Mutex<TailState>,
}

#[derive(Default)]
struct TailState {
    sealed: bool,
    /// The next segment, prepared ahead of the roll by the pre-fault thread.
    next: Option<Arc<Tail>>,
    /// The segment's index buffer, whose pages the window populates too.
    index: Option<IndexPages>,
}

/// The reserved buffer of an active segment's sparse index (`Segment::index`, never
/// reallocated while the segment is active), so the pre-fault thread faults its pages
/// in ahead of the appender as it does the segment's: otherwise the first entry on
/// each new 4 KiB page of the index (one page per MiB of log at the default 4 KiB
/// interval) is an anonymous page fault in the appender, ~1-3 µs here, and the
/// p99.9 of a 1 KiB append inside the window.
struct IndexPages {
    /// Address and length of the buffer (its capacity).
    addr: usize,
    bytes: usize,
    /// Buffer bytes populated so far (from the start).
    populated: usize,
    /// Log bytes per index entry at the least.
    spacing: u64,
}

impl IndexPages {
    /// Populates the buffer as far as the entries of log positions below `log_end`
    /// can reach. Called under the tail's lock, while the segment is not sealed (so
    /// the buffer is alive: sealing shrinks it only after `retire`, under the lock).
    fn populate_to(&mut self, log_end: u64) {
        let entry = std::mem::size_of::<IndexEntry>();
        let entries = usize::try_from(log_end / self.spacing + 1).unwrap_or(usize::MAX);
        let want = entries.saturating_mul(entry).min(self.bytes);
        if want <= self.populated {
            return;
        }
        // Whole pages, each holding at least one byte of the buffer (so mapped).
        let from = (self.addr + self.populated) / PAGE_BYTES * PAGE_BYTES;
        let to = (self.addr + want).next_multiple_of(PAGE_BYTES);
        if let Err(e) = prefault::populate_anon(from, to - from) {
            tracing::debug!(error = %e, "pre-fault of the index failed");
        }
        self.populated = want;
    }
}

impl Tail {
    fn new(
        map: Arc<MmapRaw>,
        dir: &Path,
        open_path: &Path,
        file: Option<File>,
        committed_len: u64,
        opts: &MapOptions,
    ) -> Arc<Tail> {
        let cell = OnceLock::new();
        if let Some(file) = file {
            let _ = cell.set(file);
        }
        Arc::new(Tail {
            capacity: map.len() as u64,
            map,
            dir: dir.to_path_buf(),
            hugepages: opts.hugepages,
            file: cell,
            open_path: open_path.to_path_buf(),
            append_pos: AtomicU64::new(committed_len),
            reserved: AtomicU64::new(committed_len),
            populated: AtomicU64::new(committed_len),
            satisfied_to: AtomicU64::new(committed_len),
            queued: AtomicBool::new(false),
            window: opts.window.clone(),
            state: Mutex::new(TailState::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TailState> {
        // Nothing in the state can be left half-updated by a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self) -> io::Result<&File> {
        if let Some(file) = self.file.get() {
            return Ok(file);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.open_path)?;
        // A racing opener may have won; either descriptor is the same file.
        let _ = self.file.set(file);
        self.file
            .get()
            .ok_or_else(|| io::Error::other("segment file not open"))
    }

    /// Makes sure `[0, end)` has disk blocks (`end` capped at the capacity), reserving
    /// ahead: at least [`RESERVE_MIN_BYTES`], then doubling up to
    /// [`RESERVE_CHUNK_BYTES`] per call. With `exact_on_full`, a chunk that does not
    /// fit falls back to just `end` (page-rounded), so a nearly full disk is used to
    /// its last page. On ENOSPC/EDQUOT nothing changes and the error is returned.
    fn reserve_locked(&self, st: &TailState, end: u64, exact_on_full: bool) -> io::Result<()> {
        if st.sealed {
            return Err(io::Error::other("segment is sealed"));
        }
        let reserved = self.reserved.load(Ordering::Acquire);
        let end = end.min(self.capacity);
        if end <= reserved {
            return Ok(());
        }
        let chunk = reserved.clamp(RESERVE_MIN_BYTES, RESERVE_CHUNK_BYTES);
        let mut target = end
            .max(reserved.saturating_add(chunk))
            .next_multiple_of(chunk)
            .min(self.capacity);
        let fd = std::os::fd::AsRawFd::as_raw_fd(self.file()?);
        let offset = off_t(reserved)?;
        // SAFETY: plain system call on a descriptor `self` owns for the call's length;
        // mode 0 only allocates blocks inside the file size (never changes content).
        let mut rc = unsafe { libc::fallocate(fd, 0, offset, off_t(target - reserved)?) };
        if rc != 0 && exact_on_full && end < target && is_out_of_space(&io::Error::last_os_error())
        {
            target = end.next_multiple_of(PAGE_BYTES as u64).min(self.capacity);
            // SAFETY: as above.
            rc = unsafe { libc::fallocate(fd, 0, offset, off_t(target - reserved)?) };
        }
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                // A file system without fallocate (rare for a data dir): nothing to
                // reserve with, so behave as before (writes fault blocks in).
                tracing::debug!(dir = %self.dir.display(), "fallocate not supported");
                self.reserved.store(self.capacity, Ordering::Release);
                return Ok(());
            }
            return Err(e);
        }
        self.reserved.store(target, Ordering::Release);
        Ok(())
    }

    /// Pre-faults up to `end` (capped at the capacity), in bounded steps so that a
    /// seal or an appender short of reservation waits for one step at most. Each
    /// step first extends the reservation (so the window never leaves it), and
    /// stops quietly when that fails (disk full: the appender reports it) or when the
    /// segment was sealed meanwhile. Returns whether `end` was reached.
    fn populate_to(&self, end: u64) -> bool {
        let page = PAGE_BYTES as u64;
        // Whole pages only, except the segment's last.
        let end = if end < self.capacity {
            end / page * page
        } else {
            self.capacity
        };
        loop {
            let pos = self.append_pos.load(Ordering::Relaxed) / page * page;
            let from = self.populated.load(Ordering::Relaxed).max(pos);
            if from >= end {
                return true;
            }
            let step_end = (from + prefault::POPULATE_STEP_BYTES).min(end);
            let mut st = self.lock();
            // The whole window's blocks at once, so an appender that outruns the
            // faulting still finds its bytes reserved and does not wait for this
            // lock; on a nearly full disk, at least this step's.
            let reserved = self
                .reserve_locked(&st, end, false)
                .or_else(|_| self.reserve_locked(&st, step_end, false));
            if let Err(e) = reserved {
                tracing::debug!(dir = %self.dir.display(), error = %e, "pre-fault window stops: no reservation");
                return false;
            }
            let reserved = self.reserved.load(Ordering::Acquire);
            let mut to = step_end.min(reserved);
            if to < self.capacity {
                to = to / page * page;
            }
            if to <= from {
                return false;
            }
            if let Err(e) = prefault::populate(&self.map, from, to) {
                tracing::debug!(dir = %self.dir.display(), error = %e, "pre-fault failed");
                return false;
            }
            self.populated.store(to, Ordering::Relaxed);
            if let Some(index) = st.index.as_mut() {
                index.populate_to(to);
            }
            drop(st);
        }
    }

    /// The pre-fault thread's work on this tail: keep `window` bytes ahead of the
    /// append position faulted in; the part of the window past this segment's end
    /// goes to the next segment, prepared now so the roll finds its head populated.
    ///
    /// Passes repeat while the appender consumed at least a refill step during the
    /// last one: a fast appender (a micro loop, a batched producer) keeps the thread
    /// busy instead of waiting to be woken, so the window stays ahead as long as the
    /// thread faults pages faster than the appender fills them.
    pub(crate) fn advance(&self, window: &Window) {
        loop {
            let pos = self.append_pos.load(Ordering::Relaxed);
            let want_end = pos.saturating_add(window.bytes);
            let complete = self.advance_to(want_end, window);
            self.populate_index();
            // Also when the pass stopped early (disk full): the next try comes after
            // another refill step of appends, not on every append.
            self.satisfied_to.store(want_end, Ordering::Relaxed);
            let moved = self.append_pos.load(Ordering::Relaxed).saturating_sub(pos);
            if !complete || moved < window.refill_step_bytes() || self.lock().sealed {
                return;
            }
        }
    }

    /// Brings the index buffer's populated pages up to the populated window (each
    /// populate step does so too; this catches up an index registered after the
    /// window was populated, e.g. a prepared segment's head).
    fn populate_index(&self) {
        let mut st = self.lock();
        if st.sealed {
            return;
        }
        let populated = self.populated.load(Ordering::Relaxed);
        if let Some(index) = st.index.as_mut() {
            index.populate_to(populated);
        }
    }

    /// Returns whether the window was served to `want_end` (false: the segment was
    /// sealed, or no reservation or next segment could be had).
    fn advance_to(&self, want_end: u64, window: &Window) -> bool {
        if !self.populate_to(want_end) {
            return false;
        }
        if want_end <= self.capacity {
            return true;
        }
        let next = {
            let mut st = self.lock();
            if st.sealed {
                return false;
            }
            if st.next.is_none() {
                match self.prepare_next(window) {
                    Ok(next) => st.next = Some(next),
                    Err(e) => {
                        tracing::debug!(dir = %self.dir.display(), error = %e, "cannot prepare the next segment");
                        return false;
                    }
                }
            }
            st.next.clone()
        };
        match next {
            Some(next) => next.populate_to(want_end - self.capacity),
            None => false,
        }
    }

    /// Creates the next segment's file under [`PREPARED_SEGMENT_FILE`] (sparse, mapped,
    /// nothing reserved yet). Called under the active tail's lock, so a seal waits
    /// for it and then takes the result.
    fn prepare_next(&self, window: &Window) -> io::Result<Arc<Tail>> {
        let capacity = window.segment_bytes.max(MIN_SEGMENT_CAPACITY_BYTES);
        let path = self.dir.join(PREPARED_SEGMENT_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.set_len(capacity)?;
        let opts = MapOptions {
            hugepages: self.hugepages,
            write: SegmentWrite::Mmap,
            window: Some(window.clone()),
        };
        let map = map_file(&file, capacity, &path, &opts)?;
        advise_no_readahead(&map, 0);
        Ok(Tail::new(
            Arc::new(map),
            &self.dir,
            &path,
            Some(file),
            0,
            &opts,
        ))
    }

    /// Stops all work on this tail for good (seal, or the segment is gone) and hands
    /// back the prepared next segment, if any.
    fn retire(&self) -> Option<Arc<Tail>> {
        let mut st = self.lock();
        st.sealed = true;
        // The index buffer may be shrunk or freed from now on.
        st.index = None;
        st.next.take()
    }

    /// A prepared next segment that will not be used: stop it and remove its file.
    fn discard(&self) {
        if let Some(next) = self.retire() {
            next.discard();
        }
        if let Err(e) = std::fs::remove_file(&self.open_path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!(path = %self.open_path.display(), error = %e, "cannot remove prepared segment");
            }
        }
    }

    /// After an append committed `len` bytes: publish the position and, once a
    /// refill step of the window has been consumed, wake the pre-fault thread (so it
    /// wakes at most once per refill step of appends, never while nothing is
    /// appended, and refills long before the appender reaches unpopulated pages).
    fn committed(self: &Arc<Self>, len: u64) {
        self.append_pos.store(len, Ordering::Relaxed);
        let Some(window) = &self.window else {
            return;
        };
        let satisfied_to = self.satisfied_to.load(Ordering::Relaxed);
        if satisfied_to.saturating_add(window.refill_step_bytes())
            <= len.saturating_add(window.bytes)
        {
            window.request(self);
        }
    }
}

impl Drop for Segment {
    /// A segment dropped while active (replaced when empty, its topic deleted, the
    /// storage closed) stops the pre-fault thread's work on it and removes a
    /// prepared next segment nobody will adopt.
    fn drop(&mut self) {
        if let Some(next) = self.tail.take().and_then(|tail| tail.retire()) {
            next.discard();
        }
    }
}

/// pwritev of `records` at `position` of `file`, each batch's header replaced by a
/// patched copy (base offset; max timestamp and CRC when repaired) and its records
/// written as received: no copy of the payload in user space, one system call per
/// [`PWRITE_BATCHES_PER_CALL`] batches. `patches` must cover `records` batch by batch.
fn pwrite_batches(
    file: &File,
    records: &[u8],
    mut patches: impl Iterator<Item = BatchPatch>,
    position: u64,
) -> io::Result<()> {
    let mut headers = [[0u8; RECORD_BATCH_HEADER_BYTES]; PWRITE_BATCHES_PER_CALL];
    let mut group_start = 0usize;
    while group_start < records.len() {
        // (start, end) in `records` of each batch of this group.
        let mut spans = [(0usize, 0usize); PWRITE_BATCHES_PER_CALL];
        let mut count = 0;
        for (header, span) in headers.iter_mut().zip(spans.iter_mut()) {
            let Some(p) = patches.next() else { break };
            let batch = records.get(p.position..).unwrap_or_default();
            let total = RecordBatch::parse(batch)
                .map_err(io::Error::other)?
                .total_bytes();
            if let Some(ts) = p.repaired_max_timestamp {
                // Rare (a producer's impossible maxTimestamp, or a LogAppendTime
                // topic): the CRC covers the records, so patch a whole copy and keep
                // its header.
                let mut whole = batch[..total].to_vec();
                p.rewrite_max_timestamp(&mut whole, ts)
                    .map_err(io::Error::other)?;
                header.copy_from_slice(&whole[..RECORD_BATCH_HEADER_BYTES]);
            } else {
                header.copy_from_slice(&batch[..RECORD_BATCH_HEADER_BYTES]);
            }
            set_base_offset(header, p.base_offset).map_err(io::Error::other)?;
            *span = (p.position, p.position + total);
            count += 1;
        }
        let contiguous = count > 0
            && spans[0].0 == group_start
            && spans[..count].windows(2).all(|w| w[0].1 == w[1].0);
        if !contiguous {
            return Err(io::Error::other("batch patches do not cover the append"));
        }
        let mut slices = [IoSlice::new(&[]); 2 * PWRITE_BATCHES_PER_CALL];
        for (i, (header, &(start, end))) in headers.iter().zip(&spans[..count]).enumerate() {
            slices[2 * i] = IoSlice::new(header);
            slices[2 * i + 1] = IoSlice::new(&records[start + RECORD_BATCH_HEADER_BYTES..end]);
        }
        pwritev_all(
            file,
            &mut slices[..2 * count],
            position + group_start as u64,
        )?;
        group_start = spans[count - 1].1;
    }
    Ok(())
}

/// pwritev until every byte of `slices` is written (short writes and EINTR retried).
fn pwritev_all(file: &File, mut slices: &mut [IoSlice<'_>], mut offset: u64) -> io::Result<()> {
    while !slices.is_empty() {
        match nix::sys::uio::pwritev(file, slices, off_t(offset)?) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Segment {
    /// Creates (or reuses an empty) segment file sized to `capacity_bytes`, adopting
    /// `prepared` (the next segment the pre-fault thread made ready) when its size
    /// fits: then the roll is a rename and the head is already populated. The file is
    /// sparse: `set_len` allocates no blocks and the mapping costs no RSS until
    /// touched.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        capacity_bytes: u64,
        opts: &MapOptions,
        prepared: Option<Arc<Tail>>,
    ) -> io::Result<Segment> {
        let capacity = capacity_bytes.max(MIN_SEGMENT_CAPACITY_BYTES);
        let path = dir.join(segment_file_name(base_offset));
        let tail = match prepared {
            Some(next) if next.capacity == capacity => {
                std::fs::rename(&next.open_path, &path)?;
                next
            }
            other => {
                if let Some(next) = other {
                    next.discard();
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                file.set_len(capacity)?;
                let map = map_file(&file, capacity, &path, opts)?;
                advise_no_readahead(&map, 0);
                Tail::new(Arc::new(map), dir, &path, Some(file), 0, opts)
            }
        };
        let segment = Segment {
            base_offset,
            path,
            map: Arc::clone(&tail.map),
            len: 0,
            tail: Some(tail),
            flushed_len: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            bytes_since_index: 0,
            sealed: false,
        };
        segment.request_window();
        Ok(segment)
    }

    /// Opens an existing segment and maps `max(file length, min_capacity_bytes)` bytes
    /// (extending the file, sparsely, when it is the active segment). The caller
    /// recovers `len` by scanning and then calls [`Segment::truncate_to`].
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        min_capacity_bytes: u64,
        opts: &MapOptions,
    ) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let file_len = file.metadata()?.len();
        let capacity = file_len.max(min_capacity_bytes);
        if capacity == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty sealed segment",
            ));
        }
        if capacity > file_len {
            file.set_len(capacity)?;
        }
        let map = Arc::new(map_file(&file, capacity, path, opts)?);
        let sealed = min_capacity_bytes == 0;
        // The descriptor is not kept: a recovered partition that is never written
        // again holds none (the tail opens one on its first append).
        let tail = (!sealed).then(|| {
            let dir = path.parent().unwrap_or(Path::new("."));
            Tail::new(Arc::clone(&map), dir, path, None, 0, opts)
        });
        Ok(Segment {
            base_offset,
            path: path.to_path_buf(),
            map,
            len: 0,
            // Recovery sets the reservation to the valid length (`truncate_to`).
            tail,
            flushed_len: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            bytes_since_index: 0,
            sealed,
        })
    }

    /// Recovery of a sealed segment whose file is exactly its valid data.
    pub(crate) fn set_recovered_len(&mut self, valid_len: u64) {
        self.len = valid_len;
        self.flushed_len = valid_len;
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.map.len() as u64
    }

    pub(crate) fn remaining(&self) -> u64 {
        if self.sealed {
            0
        } else {
            self.capacity().saturating_sub(self.len)
        }
    }

    /// The whole mapping as bytes. Only for recovery, before the segment is shared.
    pub(crate) fn mapped_for_recovery(&mut self) -> &[u8] {
        // SAFETY: `&mut self` proves no appender runs, and recovery happens in `open`
        // before any reader can hold the segment (and before the pre-fault thread is
        // asked to touch it, which would change no byte anyway); the mapping spans
        // `map.len()` bytes of the file, which is at least that long (set in `open`).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// The committed bytes `[0, len)`.
    pub(crate) fn committed(&self) -> &[u8] {
        // SAFETY: committed bytes are immutable while the mapping lives (module doc);
        // `len <= map.len()` is kept by `append_at`/`truncate_to`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.len as usize) }
    }

    /// A zero-copy `Bytes` over committed bytes `[start, start + len)`.
    pub(crate) fn bytes(&self, start: u64, len: u64) -> Option<Bytes> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        if len == 0 {
            return Some(Bytes::new());
        }
        Some(Bytes::from_owner(SegmentSlice {
            map: Arc::clone(&self.map),
            start: start as usize,
            len: len as usize,
        }))
    }

    /// Committed bytes `[start, start + len)` as a [`MappedSlice`] (zero-copy fetch):
    /// an `Arc` clone of the mapping, no allocation.
    pub(crate) fn mapped(&self, start: u64, len: u64) -> Option<MappedSlice> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `end <= len <= map.len()`, and committed bytes are never written
        // again while the mapping lives (module doc); the slice holds the mapping.
        Some(unsafe { MappedSlice::new(Arc::clone(&self.map), start as usize, len as usize) })
    }

    fn active_tail(&self) -> io::Result<&Arc<Tail>> {
        match &self.tail {
            Some(tail) if !self.sealed => Ok(tail),
            _ => Err(io::Error::other("segment is sealed")),
        }
    }

    /// Makes sure `[len, len + n)` has disk blocks, reserving ahead with `fallocate`
    /// when it does not (see [`Tail::reserve_locked`]). With the pre-fault window on,
    /// the thread has usually reserved already and this is one atomic load. On
    /// ENOSPC/EDQUOT nothing changes and the error is returned; the next append tries
    /// again, so the log recovers by itself once space returns.
    pub(crate) fn reserve(&mut self, n: u64) -> io::Result<()> {
        let tail = self.active_tail()?;
        let end = self.len.saturating_add(n);
        if end <= tail.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        let st = tail.lock();
        tail.reserve_locked(&st, end, true)
    }

    fn reserved_len(&self) -> u64 {
        self.tail
            .as_ref()
            .map_or(self.len, |t| t.reserved.load(Ordering::Acquire))
    }

    /// Writes `records` at the append position, with each batch's base offset (and
    /// repaired max timestamp) from `patches`, through the mapping or with pwritev
    /// (`segment_write`); with `sync`, the bytes are on disk when this returns (msync
    /// of the range, or fdatasync). Nothing becomes visible: the caller commits.
    /// Fails, writing nothing through the mapping, unless `[len, len + records.len())`
    /// fits and is reserved ([`Segment::reserve`]).
    pub(crate) fn write(
        &mut self,
        records: &[u8],
        patches: impl Iterator<Item = BatchPatch>,
        write: SegmentWrite,
        sync: bool,
    ) -> io::Result<()> {
        let n = records.len() as u64;
        let start = self.len;
        if self.sealed || n > self.remaining() || start + n > self.reserved_len() {
            return Err(io::Error::other("active segment has no reserved room"));
        }
        match write {
            SegmentWrite::Mmap if self.outruns_window(start + n) => {
                // Past the pre-fault window (the appender outran the thread): the
                // copy through the mapping would take a page fault per new page
                // (allocation and zeroing in the trap, 5-30 µs each on a loaded VM),
                // so these bytes go into the same page cache pages with pwritev
                // instead, which allocates them without a fault. Readers still read
                // them through the mapping (one page cache, coherent).
                let file = self.active_tail()?.file()?;
                pwrite_batches(file, records, patches, start)?;
                if sync {
                    nix::unistd::fdatasync(file).map_err(io::Error::from)?;
                }
            }
            SegmentWrite::Mmap => {
                // SAFETY: `&mut self` means we hold the partition mutex, so no other
                // appender exists; readers only touch `[0, len)` (module doc), which is
                // disjoint from `[len, len + n)`; the pre-fault thread changes no byte;
                // `len + n <= map.len()` was checked just above.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(
                        self.map.as_mut_ptr().add(start as usize),
                        records.len(),
                    )
                };
                dst.copy_from_slice(records);
                for p in patches {
                    let batch = &mut dst[p.position..];
                    set_base_offset(batch, p.base_offset).map_err(io::Error::other)?;
                    if let Some(ts) = p.repaired_max_timestamp {
                        p.rewrite_max_timestamp(batch, ts)
                            .map_err(io::Error::other)?;
                    }
                }
                if sync {
                    Segment::flush_range(&self.map, start, start + n)?;
                }
            }
            SegmentWrite::Pwrite => {
                let file = self.active_tail()?.file()?;
                pwrite_batches(file, records, patches, start)?;
                if sync {
                    nix::unistd::fdatasync(file).map_err(io::Error::from)?;
                }
            }
        }
        Ok(())
    }

    /// Whether an append ending at `end` runs past the populated pre-fault window and
    /// is to be written with pwritev (`segment_prefault_outrun = pwrite`; never with
    /// the window off: then the mapping path stays as it is).
    fn outruns_window(&self, end: u64) -> bool {
        self.tail.as_ref().is_some_and(|tail| {
            tail.window
                .as_ref()
                .is_some_and(|w| w.outrun == PrefaultOutrun::Pwrite)
                && end > tail.populated.load(Ordering::Relaxed)
        })
    }

    /// Reserves the sparse index for `entries` (never grown by appends afterwards) and,
    /// with the pre-fault window on, hands its buffer to the window so the thread
    /// faults its pages in ahead of the appender (`IndexPages`). `spacing_bytes`: log
    /// bytes per index entry at the least.
    pub(crate) fn reserve_index(&mut self, entries: usize, spacing_bytes: u64) {
        self.index
            .reserve_exact(entries.saturating_sub(self.index.len()));
        let Some(tail) = self.tail.as_ref().filter(|t| t.window.is_some()) else {
            return;
        };
        if self.sealed {
            return;
        }
        let mut st = tail.lock();
        if st.sealed {
            return;
        }
        let entry = std::mem::size_of::<IndexEntry>();
        st.index = Some(IndexPages {
            addr: self.index.as_ptr() as usize,
            bytes: self.index.capacity() * entry,
            populated: self.index.len() * entry,
            spacing: spacing_bytes.max(1),
        });
        drop(st);
        // The thread populates it (the worker never pre-faults), up to the window it
        // has already populated (a prepared head) on its next pass.
        self.request_window();
    }

    /// Populated bytes past the committed length: this segment's window, plus the
    /// prepared next segment's populated head when this one is populated to its
    /// end (0 when sealed or the window is off).
    pub(crate) fn prefaulted_ahead_bytes(&self) -> u64 {
        let Some(tail) = self.tail.as_ref().filter(|t| t.window.is_some()) else {
            return 0;
        };
        let populated = tail.populated.load(Ordering::Relaxed);
        let mut ahead = populated.saturating_sub(self.len);
        if populated >= tail.capacity {
            if let Some(next) = tail.lock().next.as_ref() {
                ahead += next.populated.load(Ordering::Relaxed);
            }
        }
        ahead
    }

    /// Asks the pre-fault thread to (re)fill this segment's window.
    fn request_window(&self) {
        if let (Some(tail), false) = (&self.tail, self.sealed) {
            if let Some(window) = &tail.window {
                window.request(tail);
            }
        }
    }

    /// Recovery: sets the committed length, and physically cuts everything after it
    /// (the file is truncated to `valid_len` then re-extended to the capacity, so the
    /// tail reads as zeros again). Invalidates nothing shared: only called in `open`.
    pub(crate) fn truncate_to(&mut self, valid_len: u64) -> io::Result<()> {
        let capacity = self.capacity();
        let file = self.open_file()?;
        file.set_len(valid_len)?;
        if !self.sealed {
            file.set_len(capacity)?;
        }
        self.len = valid_len;
        self.flushed_len = valid_len;
        if let (Some(tail), false) = (&self.tail, self.sealed) {
            tail.reserved.store(valid_len, Ordering::Release);
            tail.populated.store(valid_len, Ordering::Relaxed);
            tail.append_pos.store(valid_len, Ordering::Relaxed);
            advise_no_readahead(&self.map, valid_len.next_multiple_of(PAGE_BYTES as u64));
            self.request_window();
        }
        Ok(())
    }

    /// Publishes `n` more bytes as committed. The caller holds the partition mutex.
    pub(crate) fn commit(&mut self, n: u64) {
        debug_assert!(self.len + n <= self.reserved_len());
        self.len += n;
        if let Some(tail) = &self.tail {
            tail.committed(self.len);
        }
    }

    /// Stops appends and truncates the file to the used length (so a sealed segment
    /// takes only its data on disk, the unused reservation and window given back).
    /// The mapping stays for readers. Returns the next segment the pre-fault thread
    /// prepared, for [`Segment::create`] to adopt.
    pub(crate) fn seal(&mut self) -> io::Result<Option<Arc<Tail>>> {
        self.sealed = true;
        // After `retire` the pre-fault thread neither reserves nor touches this
        // segment again, so cutting the file under it is safe.
        let next = self.tail.take().and_then(|tail| tail.retire());
        if let Err(e) = self.map.advise(Advice::Normal) {
            tracing::debug!(error = %e, "madvise(MADV_NORMAL) refused");
        }
        self.open_file()?.set_len(self.len)?;
        Ok(next)
    }

    /// msync `[from, to)` of a mapping (page-aligned by memmap2).
    pub(crate) fn flush_range(map: &MmapRaw, from: u64, to: u64) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        map.flush_range(from as usize, (to - from) as usize)
    }

    /// End of the file's data region that contains `position` (SEEK_HOLE), so
    /// recovery can look for garbage without reading gigabytes of sparse zeros.
    /// Falls back to the mapping length where SEEK_HOLE is unsupported.
    pub(crate) fn data_end_from(&self, position: u64) -> u64 {
        let capacity = self.capacity();
        let Ok(at) = i64::try_from(position) else {
            return capacity;
        };
        let Ok(file) = self.open_file() else {
            return capacity;
        };
        match nix::unistd::lseek(&file, at, nix::unistd::Whence::SeekHole) {
            Ok(end) => u64::try_from(end).map_or(capacity, |end| end.min(capacity)),
            Err(_) => capacity,
        }
    }

    pub(crate) fn map(&self) -> Arc<MmapRaw> {
        Arc::clone(&self.map)
    }

    /// The file is reopened for the rare operations that need it (seal, fsync,
    /// recovery): the mapping does not need an open descriptor, and keeping one per
    /// segment would run thousands of partitions into the fd limit.
    fn open_file(&self) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(&self.path)
    }

    pub(crate) fn sync_file(&self) -> io::Result<()> {
        self.open_file()?.sync_all()
    }

    /// Adds an index entry for the batch at `position` if enough bytes passed since
    /// the last one (the first batch of a segment is always indexed).
    pub(crate) fn note_batch(
        &mut self,
        position: u64,
        base_offset: i64,
        batch_bytes: u64,
        next_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u32,
    ) {
        if self.index.is_empty() || self.bytes_since_index >= u64::from(index_interval_bytes) {
            self.index.push(IndexEntry {
                base_offset,
                position,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch_bytes;
        self.next_offset = next_offset;
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
    }

    /// Byte position from which to scan for `offset`: the last indexed batch whose
    /// base offset is <= `offset` (0 when none).
    pub(crate) fn scan_start(&self, offset: i64) -> u64 {
        let i = self.index.partition_point(|e| e.base_offset <= offset);
        if i == 0 {
            0
        } else {
            self.index[i - 1].position
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_round_trip_and_reject_strangers() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.log"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.index"), None);
    }

    fn opts(write: SegmentWrite) -> MapOptions {
        MapOptions {
            hugepages: false,
            write,
            window: None,
        }
    }

    fn patch_at_zero(base_offset: i64) -> BatchPatch {
        BatchPatch {
            position: 0,
            base_offset,
            repaired_max_timestamp: None,
            log_append_time: false,
        }
    }

    /// A minimal v2 batch header (61 bytes) plus `payload`, lengths consistent.
    fn fake_batch(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; RECORD_BATCH_HEADER_BYTES];
        let batch_length = (RECORD_BATCH_HEADER_BYTES - 12 + payload.len()) as i32;
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[16] = 2;
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn new_segment_is_sparse_and_bytes_outlive_the_segment() {
        for write in [SegmentWrite::Mmap, SegmentWrite::Pwrite] {
            let dir = tempfile::tempdir().unwrap();
            let mut seg = Segment::create(dir.path(), 0, 64 << 20, &opts(write), None).unwrap();
            let meta = std::fs::metadata(&seg.path).unwrap();
            assert_eq!(meta.len(), 64 << 20);
            // Sparse: (almost) no blocks allocated for a 64 MiB file.
            use std::os::unix::fs::MetadataExt;
            assert!(meta.blocks() * 512 < 1 << 20, "blocks {}", meta.blocks());
            let batch = fake_batch(b"hello");
            let n = batch.len();
            assert!(
                seg.write(&batch, [patch_at_zero(7)].into_iter(), write, false)
                    .is_err(),
                "{write:?}: unreserved bytes are not writable"
            );
            seg.reserve(n as u64).unwrap();
            let blocks_bytes = std::fs::metadata(&seg.path).unwrap().blocks() * 512;
            assert!(
                (RESERVE_MIN_BYTES..2 * RESERVE_MIN_BYTES).contains(&blocks_bytes),
                "{write:?}: the first reservation, got {blocks_bytes} bytes of blocks"
            );
            seg.write(&batch, [patch_at_zero(7)].into_iter(), write, true)
                .unwrap();
            seg.commit(n as u64);
            let bytes = seg.bytes(0, n as u64).unwrap();
            assert_eq!(
                &bytes[..8],
                &7i64.to_be_bytes(),
                "{write:?}: base offset patched"
            );
            assert_eq!(&bytes[RECORD_BATCH_HEADER_BYTES..], b"hello", "{write:?}");
            assert!(seg.seal().unwrap().is_none());
            assert_eq!(std::fs::metadata(&seg.path).unwrap().len(), n as u64);
            std::fs::remove_file(&seg.path).unwrap();
            drop(seg);
            assert_eq!(
                &bytes[RECORD_BATCH_HEADER_BYTES + 1..],
                b"ello",
                "{write:?}"
            );
        }
    }

    #[test]
    fn pwrite_of_many_batches_spans_several_calls_and_patches_every_header() {
        let dir = tempfile::tempdir().unwrap();
        let write = SegmentWrite::Pwrite;
        let mut seg = Segment::create(dir.path(), 0, 1 << 20, &opts(write), None).unwrap();
        let batches: Vec<Vec<u8>> = (0..PWRITE_BATCHES_PER_CALL * 2 + 3)
            .map(|i| fake_batch(format!("payload-{i}").as_bytes()))
            .collect();
        let records = batches.concat();
        let mut at = 0;
        let patches: Vec<BatchPatch> = batches
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let p = BatchPatch {
                    position: at,
                    base_offset: 100 + i as i64,
                    repaired_max_timestamp: None,
                    log_append_time: false,
                };
                at += b.len();
                p
            })
            .collect();
        seg.reserve(records.len() as u64).unwrap();
        seg.write(&records, patches.iter().copied(), write, false)
            .unwrap();
        seg.commit(records.len() as u64);
        let stored = seg.committed();
        for (p, b) in patches.iter().zip(&batches) {
            let got = &stored[p.position..p.position + b.len()];
            assert_eq!(&got[..8], &p.base_offset.to_be_bytes());
            assert_eq!(&got[8..], &b[8..]);
        }
        // Patches that do not cover the bytes are refused, not half written.
        seg.reserve(records.len() as u64).unwrap();
        let err = seg.write(&records, patches[1..].iter().copied(), write, false);
        assert!(err.is_err());
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use crate::storage::prefault::Prefaulter;
    use std::time::{Duration, Instant};

    const WINDOW_BYTES: u64 = 256 << 10;
    const SEGMENT_BYTES: u64 = 1 << 20;
    const WAIT: Duration = Duration::from_secs(10);

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Pages of `[from, to)` of the mapping resident in memory (mincore).
    fn resident_pages(map: &MmapRaw, from: u64, to: u64) -> usize {
        let pages = ((to - from) as usize).div_ceil(PAGE_BYTES);
        let mut vec = vec![0u8; pages];
        // SAFETY: the range lies inside the mapping, `vec` has one byte per page.
        let rc = unsafe {
            libc::mincore(
                map.as_ptr().add(from as usize) as *mut libc::c_void,
                (to - from) as usize,
                vec.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        vec.iter().filter(|&&b| b & 1 == 1).count()
    }

    /// Pages of `[from, to)` of `map` present in this process's page table
    /// (`/proc/self/pagemap` bit 63): the ones written or read through the mapping,
    /// or populated by the pre-fault thread, not those only in the page cache.
    fn mapped_pages(map: &MmapRaw, from: u64, to: u64) -> usize {
        mapped_pages_at(map.as_ptr() as usize + from as usize, (to - from) as usize)
    }

    /// [`mapped_pages`] of any address range.
    fn mapped_pages_at(addr: usize, len: usize) -> usize {
        use std::os::unix::fs::FileExt;
        let pagemap = File::open("/proc/self/pagemap").unwrap();
        let first = addr / PAGE_BYTES;
        let pages = len.div_ceil(PAGE_BYTES);
        let mut entries = vec![0u8; pages * 8];
        pagemap
            .read_exact_at(&mut entries, (first * 8) as u64)
            .unwrap();
        entries
            .chunks_exact(8)
            .filter(|e| u64::from_ne_bytes((*e).try_into().unwrap()) >> 63 == 1)
            .count()
    }

    /// Appends one `n`-byte batch (header and filler) through the mapping, or with
    /// pwritev when it runs past the window: either needs the batch's patch.
    fn append_zeros(seg: &mut Segment, n: u64) {
        seg.reserve(n).unwrap();
        let mut records = vec![0x11u8; n as usize];
        let batch_length = (n as usize - 12) as i32;
        records[8..12].copy_from_slice(&batch_length.to_be_bytes());
        records[16] = 2;
        let patch = BatchPatch {
            position: 0,
            base_offset: 0,
            repaired_max_timestamp: None,
            log_append_time: false,
        };
        seg.write(&records, std::iter::once(patch), SegmentWrite::Mmap, false)
            .unwrap();
        seg.commit(n);
    }

    /// A pre-fault thread with the tests' window, and segment options that use it.
    fn with_window(outrun: PrefaultOutrun, write: SegmentWrite) -> (Prefaulter, MapOptions) {
        let prefaulter = Prefaulter::start(WINDOW_BYTES, SEGMENT_BYTES, outrun).unwrap();
        let opts = MapOptions {
            hugepages: false,
            write,
            window: Some(prefaulter.window()),
        };
        (prefaulter, opts)
    }

    #[test]
    fn window_runs_ahead_inside_the_reservation_and_the_roll_adopts_a_populated_head() {
        let dir = tempfile::tempdir().unwrap();
        let (prefaulter, opts) = with_window(PrefaultOutrun::Pwrite, SegmentWrite::Mmap);
        let mut seg = Segment::create(dir.path(), 0, SEGMENT_BYTES, &opts, None).unwrap();
        let tail = Arc::clone(seg.tail.as_ref().unwrap());
        // The new segment's head is populated by the thread, not by the appender.
        wait_for("the first window", || {
            tail.populated.load(Ordering::Relaxed) >= WINDOW_BYTES
        });
        assert!(tail.reserved.load(Ordering::Acquire) >= tail.populated.load(Ordering::Relaxed));
        assert_eq!(
            resident_pages(&seg.map, 0, WINDOW_BYTES),
            WINDOW_BYTES as usize / PAGE_BYTES
        );

        // Appends move the window along; it never leaves the reservation.
        let step = 96 << 10;
        while seg.len + step <= SEGMENT_BYTES - (64 << 10) {
            append_zeros(&mut seg, step);
            // Each append consumed more than a refill step: the thread refills to a
            // whole window ahead (to the page), not just half of it.
            let refill = prefaulter.window().refill_step_bytes();
            assert!(step > refill);
            let want = (seg.len + WINDOW_BYTES - refill).min(SEGMENT_BYTES);
            wait_for("the window to follow the appends", || {
                tail.populated.load(Ordering::Relaxed) >= want
            });
            assert!(
                tail.reserved.load(Ordering::Acquire) >= tail.populated.load(Ordering::Relaxed)
            );
        }
        // Near the end the window runs into the next segment, prepared ahead.
        let prepared_path = dir.path().join(PREPARED_SEGMENT_FILE);
        wait_for("the prepared next segment", || {
            tail.lock()
                .next
                .as_ref()
                .is_some_and(|n| n.populated.load(Ordering::Relaxed) > 0)
        });
        assert!(prepared_path.exists());
        let next = seg.seal().unwrap().expect("the prepared next segment");
        assert_eq!(
            std::fs::metadata(&seg.path).unwrap().len(),
            seg.len,
            "sealed to its data"
        );
        let populated_head = next.populated.load(Ordering::Relaxed);
        let seg2 = Segment::create(dir.path(), 1000, SEGMENT_BYTES, &opts, Some(next)).unwrap();
        assert!(!prepared_path.exists(), "adopted by rename");
        assert_eq!(std::fs::metadata(&seg2.path).unwrap().len(), SEGMENT_BYTES);
        assert!(
            resident_pages(&seg2.map, 0, populated_head) * PAGE_BYTES >= populated_head as usize
        );
        drop(seg2);
        drop(seg);
    }

    #[test]
    fn an_append_past_the_window_is_written_without_the_mapping_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (_prefaulter, opts) = with_window(PrefaultOutrun::Pwrite, SegmentWrite::Mmap);
        let mut seg = Segment::create(dir.path(), 0, SEGMENT_BYTES, &opts, None).unwrap();
        // Larger than the whole window: it cannot have been populated yet.
        let n = 2 * WINDOW_BYTES;
        assert!(seg.outruns_window(n));
        append_zeros(&mut seg, n);
        // Past the first window nothing touched the mapping (the thread populates
        // from the append position on, which is now past these pages).
        assert_eq!(
            mapped_pages(&seg.map, WINDOW_BYTES, n),
            0,
            "written with pwritev"
        );
        let committed = seg.committed();
        assert_eq!(committed.len() as u64, n);
        assert_eq!(&committed[8..12], &((n as usize - 12) as i32).to_be_bytes());
        assert!(committed[RECORD_BATCH_HEADER_BYTES..]
            .iter()
            .all(|&b| b == 0x11));
        // The window off: the mapping path, whatever is populated.
        let plain = MapOptions {
            window: None,
            ..opts.clone()
        };
        let seg2 = Segment::create(dir.path(), 1000, SEGMENT_BYTES, &plain, None).unwrap();
        assert!(!seg2.outruns_window(n));
    }

    #[test]
    fn with_outrun_fault_an_append_past_the_window_goes_through_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let (_prefaulter, opts) = with_window(PrefaultOutrun::Fault, SegmentWrite::Mmap);
        let mut seg = Segment::create(dir.path(), 0, SEGMENT_BYTES, &opts, None).unwrap();
        let n = 2 * WINDOW_BYTES;
        assert!(!seg.outruns_window(n), "the mapping path, window or not");
        append_zeros(&mut seg, n);
        // The appender faulted every page in itself, before anything read them.
        assert_eq!(
            mapped_pages(&seg.map, 0, n),
            n as usize / PAGE_BYTES,
            "written through the mapping"
        );
        let committed = seg.committed();
        assert_eq!(committed.len() as u64, n);
        assert_eq!(&committed[8..12], &((n as usize - 12) as i32).to_be_bytes());
        assert!(committed[RECORD_BATCH_HEADER_BYTES..]
            .iter()
            .all(|&b| b == 0x11));
    }

    #[test]
    fn the_window_populates_the_index_buffer_ahead_of_the_appender() {
        let dir = tempfile::tempdir().unwrap();
        let (_prefaulter, opts) = with_window(PrefaultOutrun::Pwrite, SegmentWrite::Mmap);
        let mut seg = Segment::create(dir.path(), 0, SEGMENT_BYTES, &opts, None).unwrap();
        // One entry per 64 log bytes at the most: the window's 256 KiB need 64 KiB of
        // index. The buffer is reserved larger than 32 MiB so the allocator maps it
        // fresh (untouched pages are absent until something faults them in).
        const SPACING: u64 = 64;
        let entries = (40 << 20) / std::mem::size_of::<IndexEntry>();
        seg.reserve_index(entries, SPACING);
        let tail = Arc::clone(seg.tail.as_ref().unwrap());
        let addr = seg.index.as_ptr() as usize;
        let want = (WINDOW_BYTES / SPACING) as usize * std::mem::size_of::<IndexEntry>();
        // By the pre-fault thread, not by `reserve_index` (the appender's call).
        wait_for("the first window and its index pages", || {
            tail.lock()
                .index
                .as_ref()
                .is_some_and(|index| index.populated >= want)
        });
        // Whole pages after the first (which the allocator's header may share).
        let first = (addr / PAGE_BYTES + 1) * PAGE_BYTES;
        let last = (addr + want) / PAGE_BYTES * PAGE_BYTES;
        assert!(last > first);
        assert_eq!(
            mapped_pages_at(first, last - first),
            (last - first) / PAGE_BYTES,
            "the index pages of the window's entries are populated"
        );
        let end = (addr + seg.index.capacity() * std::mem::size_of::<IndexEntry>()) / PAGE_BYTES
            * PAGE_BYTES;
        assert_eq!(
            mapped_pages_at(end - PAGE_BYTES, PAGE_BYTES),
            0,
            "not the pages far past the window"
        );
        // Sealing hands the buffer back: the thread no longer knows it.
        seg.seal().unwrap();
        assert!(tail.lock().index.is_none());
    }

    #[test]
    fn an_unadoptable_prepared_segment_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (_prefaulter, opts) = with_window(PrefaultOutrun::Pwrite, SegmentWrite::Pwrite);
        let mut seg = Segment::create(dir.path(), 0, SEGMENT_BYTES, &opts, None).unwrap();
        append_zeros(&mut seg, SEGMENT_BYTES - (64 << 10));
        let tail = Arc::clone(seg.tail.as_ref().unwrap());
        wait_for("the prepared next segment", || tail.lock().next.is_some());
        let next = seg.seal().unwrap();
        // An oversized append needs a bigger segment: the prepared one goes away.
        let big = Segment::create(dir.path(), 5, 4 * SEGMENT_BYTES, &opts, next).unwrap();
        assert!(!dir.path().join(PREPARED_SEGMENT_FILE).exists());
        assert_eq!(big.capacity(), 4 * SEGMENT_BYTES);
    }
}
