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
//!   answer with (KAFKA_STORAGE_ERROR). Only `[0, reserved_len)` is ever written.
//!
//! External processes truncating or writing our files are outside this model.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Advice, MmapOptions, MmapRaw};

/// Digits in a segment file name (`i64::MAX` has 19; Kafka uses 20).
const SEGMENT_NAME_DIGITS: usize = 20;
pub(crate) const SEGMENT_SUFFIX: &str = ".log";
/// Smallest mapping we create, so a tiny `segment_bytes` still maps something.
const MIN_SEGMENT_CAPACITY_BYTES: u64 = 4096;
const PAGE_BYTES: usize = 4096;
/// Most disk blocks reserved per `fallocate` call ahead of the append position. One
/// system call (with the open and close around it) per MiB of appends; the most a
/// segment holds reserved but unwritten is this much (given back when the segment is
/// sealed and truncated). 8 MiB chunks were tried against a p99.9 rise after this was
/// added and made no difference there (fallocate itself takes ~3 µs here).
pub(crate) const RESERVE_CHUNK_BYTES: u64 = 1 << 20;
/// First reservation of a segment; each later one reserves as much again as is
/// already reserved (doubling up to [`RESERVE_CHUNK_BYTES`]), so a thousand quiet
/// partitions with a record each hold 64 MiB of disk, not a GiB.
pub(crate) const RESERVE_MIN_BYTES: u64 = 64 << 10;

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
    /// Bytes `[0, reserved_len)` have disk blocks (written, or `fallocate`d); only
    /// they may be written through the mapping (module doc).
    reserved_len: u64,
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

/// How a new mapping should be prepared.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapOptions {
    pub(crate) prefault_bytes: u64,
    pub(crate) hugepages: bool,
}

fn map_file(file: &File, capacity: u64, path: &Path, opts: MapOptions) -> io::Result<MmapRaw> {
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
/// instead of ~2.3 µs on a loaded 2-core VM); `segment_prefault_bytes` buys it back.
/// Reverted to normal on seal so sequential reads of sealed segments keep readahead.
fn advise_no_readahead(map: &MmapRaw, from: u64) {
    let from = from as usize;
    if from >= map.len() {
        return;
    }
    if let Err(e) = map.advise_range(Advice::Random, from, map.len() - from) {
        tracing::debug!(error = %e, "madvise(MADV_RANDOM) refused");
    }
}

impl Segment {
    /// Creates (or reuses an empty) segment file sized to `capacity_bytes`. The file
    /// is sparse: `set_len` allocates no blocks and the mapping costs no RSS until
    /// touched, unless `opts.prefault_bytes` asks for it.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        capacity_bytes: u64,
        opts: MapOptions,
    ) -> io::Result<Segment> {
        let capacity = capacity_bytes.max(MIN_SEGMENT_CAPACITY_BYTES);
        let path = dir.join(segment_file_name(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.set_len(capacity)?;
        let map = map_file(&file, capacity, &path, opts)?;
        advise_no_readahead(&map, 0);
        let mut segment = Segment {
            base_offset,
            path,
            map: Arc::new(map),
            len: 0,
            reserved_len: 0,
            flushed_len: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            bytes_since_index: 0,
            sealed: false,
        };
        segment.prefault(opts.prefault_bytes);
        Ok(segment)
    }

    /// Opens an existing segment and maps `max(file length, min_capacity_bytes)` bytes
    /// (extending the file, sparsely, when it is the active segment). The caller
    /// recovers `len` by scanning and then calls [`Segment::truncate_to`].
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        min_capacity_bytes: u64,
        opts: MapOptions,
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
        let map = map_file(&file, capacity, path, opts)?;
        Ok(Segment {
            base_offset,
            path: path.to_path_buf(),
            map: Arc::new(map),
            len: 0,
            // Recovery sets it to the valid length (`truncate_to`) or the sealed length.
            reserved_len: 0,
            flushed_len: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            bytes_since_index: 0,
            sealed: min_capacity_bytes == 0,
        })
    }

    /// Recovery of a sealed segment whose file is exactly its valid data.
    pub(crate) fn set_recovered_len(&mut self, valid_len: u64) {
        self.len = valid_len;
        self.reserved_len = valid_len;
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
        // before any reader can hold the segment; the mapping spans `map.len()` bytes
        // of the file, which is at least that long (set in `open`).
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

    /// Makes sure `[len, len + n)` has disk blocks, reserving ahead with `fallocate`
    /// when it does not: at least [`RESERVE_MIN_BYTES`], then doubling up to
    /// [`RESERVE_CHUNK_BYTES`] per call (capped at the capacity). On ENOSPC/EDQUOT nothing changes and the error is returned; the next
    /// append tries again, so the log recovers by itself once space returns.
    pub(crate) fn reserve(&mut self, n: u64) -> io::Result<()> {
        let end = self.len.saturating_add(n).min(self.capacity());
        if end <= self.reserved_len {
            return Ok(());
        }
        let chunk = self
            .reserved_len
            .clamp(RESERVE_MIN_BYTES, RESERVE_CHUNK_BYTES);
        let target = end
            .max(self.reserved_len.saturating_add(chunk))
            .next_multiple_of(chunk)
            .min(self.capacity());
        let file = self.open_file()?;
        let (Ok(offset), Ok(len)) = (
            libc::off_t::try_from(self.reserved_len),
            libc::off_t::try_from(target - self.reserved_len),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "reservation beyond off_t",
            ));
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: plain system call on a descriptor we own for the duration of the call;
        // mode 0 only allocates blocks inside the file size (never changes content).
        let mut rc = unsafe { libc::fallocate(fd, 0, offset, len) };
        let mut target = target;
        if rc != 0 && end < target && is_out_of_space(&io::Error::last_os_error()) {
            // The chunk does not fit but what this append needs may: reserve only
            // that, so a nearly full disk is used to its last page before appends fail.
            target = end.next_multiple_of(PAGE_BYTES as u64).min(self.capacity());
            // Smaller than the chunk length, which fit an off_t above.
            let len = (target - self.reserved_len) as libc::off_t;
            // SAFETY: as above.
            rc = unsafe { libc::fallocate(fd, 0, offset, len) };
        }
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                // A file system without fallocate (rare for a data dir): nothing to
                // reserve with, so behave as before (writes fault blocks in).
                tracing::debug!(path = %self.path.display(), "fallocate not supported");
                self.reserved_len = self.capacity();
                return Ok(());
            }
            return Err(e);
        }
        self.reserved_len = target;
        Ok(())
    }

    /// The uncommitted region `[len, len + n)` for the appender to fill.
    /// Returns None if it does not fit or has no disk blocks reserved ([`Segment::reserve`]).
    pub(crate) fn uncommitted_mut(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.sealed || (n as u64) > self.remaining() || self.len + n as u64 > self.reserved_len {
            return None;
        }
        // SAFETY: `&mut self` means we hold the partition mutex, so no other writer
        // exists; readers only touch `[0, len)` (module doc), which is disjoint from
        // `[len, len + n)`; `len + n <= map.len()` was checked just above.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(self.len as usize), n)
        })
    }

    /// Touches the first `prefault_bytes` of the uncommitted area with writes so the
    /// first appends do not page-fault (and the blocks get allocated now). Only
    /// reserved bytes are touched: when the reservation fails (disk full) nothing is.
    fn prefault(&mut self, prefault_bytes: u64) {
        if prefault_bytes == 0 {
            return;
        }
        if let Err(e) = self.reserve(prefault_bytes) {
            tracing::debug!(path = %self.path.display(), error = %e, "no prefault: reservation failed");
        }
        let start = self.len as usize;
        let end = (self.len.saturating_add(prefault_bytes)).min(self.reserved_len) as usize;
        if end <= start {
            return;
        }
        if let Err(e) = self.map.advise_range(Advice::WillNeed, start, end - start) {
            tracing::debug!(error = %e, "madvise(MADV_WILLNEED) refused");
        }
        let mut at = start;
        while at < end {
            // SAFETY: `at` lies in the uncommitted area `[len, capacity)` of a segment
            // that no reader can see yet (it is being created or recovered under
            // exclusive access); the byte is zero already (fresh sparse file or
            // truncated-then-extended tail), so writing zero changes no content.
            unsafe { std::ptr::write_volatile(self.map.as_mut_ptr().add(at), 0) };
            at += PAGE_BYTES;
        }
    }

    /// Recovery: sets the committed length, and physically cuts everything after it
    /// (the file is truncated to `valid_len` then re-extended to the capacity, so the
    /// tail reads as zeros again). Invalidates nothing shared: only called in `open`.
    pub(crate) fn truncate_to(&mut self, valid_len: u64, opts: MapOptions) -> io::Result<()> {
        let capacity = self.capacity();
        let file = self.open_file()?;
        file.set_len(valid_len)?;
        if !self.sealed {
            file.set_len(capacity)?;
        }
        self.len = valid_len;
        self.reserved_len = valid_len;
        self.flushed_len = valid_len;
        if !self.sealed {
            advise_no_readahead(&self.map, valid_len.next_multiple_of(PAGE_BYTES as u64));
            self.prefault(opts.prefault_bytes);
        }
        Ok(())
    }

    /// Publishes `n` more bytes as committed. The caller holds the partition mutex.
    pub(crate) fn commit(&mut self, n: u64) {
        debug_assert!(self.len + n <= self.reserved_len);
        self.len += n;
    }

    /// Stops appends and truncates the file to the used length (so a sealed segment
    /// takes only its data on disk). The mapping stays for readers.
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        self.sealed = true;
        self.reserved_len = self.len;
        if let Err(e) = self.map.advise(Advice::Normal) {
            tracing::debug!(error = %e, "madvise(MADV_NORMAL) refused");
        }
        self.open_file()?.set_len(self.len)
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

    #[test]
    fn new_segment_is_sparse_and_bytes_outlive_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let opts = MapOptions {
            prefault_bytes: 0,
            hugepages: false,
        };
        let mut seg = Segment::create(dir.path(), 0, 64 << 20, opts).unwrap();
        let meta = std::fs::metadata(&seg.path).unwrap();
        assert_eq!(meta.len(), 64 << 20);
        // Sparse: (almost) no blocks allocated for a 64 MiB file.
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 < 1 << 20, "blocks {}", meta.blocks());
        assert!(
            seg.uncommitted_mut(5).is_none(),
            "unreserved bytes are not writable"
        );
        seg.reserve(5).unwrap();
        let blocks_bytes = std::fs::metadata(&seg.path).unwrap().blocks() * 512;
        assert!(
            (RESERVE_MIN_BYTES..2 * RESERVE_MIN_BYTES).contains(&blocks_bytes),
            "the first reservation, got {blocks_bytes} bytes of blocks"
        );
        seg.uncommitted_mut(5).unwrap().copy_from_slice(b"hello");
        seg.commit(5);
        let bytes = seg.bytes(1, 4).unwrap();
        seg.seal().unwrap();
        std::fs::remove_file(&seg.path).unwrap();
        drop(seg);
        assert_eq!(&bytes[..], b"ello");
    }
}
