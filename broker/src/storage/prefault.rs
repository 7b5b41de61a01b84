//! The pre-fault thread: keeps `segment_prefault_bytes` ahead of each active
//! segment's append position reserved (`fallocate`) and faulted in, so appends find
//! their pages present and writable instead of taking one page fault (with the
//! kernel zeroing the page) per 4 KiB, and prepares the next segment before the roll.
//!
//! - One thread per `Storage`, started by `Storage::open` when the window is on,
//!   stopped and joined when the storage is dropped. Workers never pre-fault.
//! - Wake-up policy: it sleeps on a condition variable with no timeout. An appender
//!   wakes it (one queue push and a notify) once a refill step of the window has
//!   been consumed ([`Window::refill_step_bytes`]: a quarter of the window, at most
//!   1 MiB), and the thread keeps refilling, pass after pass, as long as the
//!   appender consumed a step during its last pass. An idle broker never wakes it
//!   (0% idle CPU).
//! - Bounded: the queue holds each active segment at most once (`Tail::queued`),
//!   and each partition being written has one window: the rest of its active
//!   segment's window, plus the head of the prepared next segment when the window
//!   runs past the end. A sealed segment gives its unused reservation back
//!   (truncated to its data).
//! - Never past the reservation: each step reserves first and populates only
//!   reserved bytes; on a full disk the window stops and the appender's own
//!   reservation reports the error (KAFKA_STORAGE_ERROR).
//! - Cost: the faults (page allocation and zeroing) move from the worker to this
//!   thread (CPU on another core, not less CPU); the window's pages
//!   (`segment_prefault_bytes` per partition being written) are page cache that is
//!   dirty (zeros) until the appends overwrite them, and the kernel may write those
//!   zeros back once before they are; one `fallocate` per window refill instead of
//!   per MiB in the worker. A seal, or an appender that outran the window and needs
//!   more reservation, waits for the step in progress (at most
//!   [`POPULATE_STEP_BYTES`]). When the appender writes faster than the thread can
//!   fault (a 1 KiB micro loop fills a page in ~0.6 µs; populating one costs
//!   ~1.1-3.8 µs on a loaded 2-vCPU VM whose memory is under reclaim; or 1 MiB
//!   produce requests against a 2 MiB window), it catches up. An mmap append that
//!   would then run past the populated window is written with pwritev into the
//!   same page cache instead (`Segment::write`; `segment_prefault_outrun = pwrite`,
//!   the default): the kernel allocates the pages without a trap per page, and
//!   readers read them through the mapping as before. `segment_prefault_outrun =
//!   fault` copies through the mapping anyway and takes the faults: a lower median,
//!   a longer tail (measured in `PrefaultOutrun`'s doc). With the window off, the
//!   mapping path is left as it is (the toggle compares against it).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use memmap2::MmapRaw;

use super::segment::{Tail, PAGE_BYTES};
use super::PrefaultOutrun;

/// Bytes pre-faulted per step, each under the tail's lock: long enough to amortize
/// the lock and the system call, short enough that a seal (or an appender that
/// outran the window) waits little for it (256 KiB = 64 pages, ~0.1-1 ms).
pub(crate) const POPULATE_STEP_BYTES: u64 = 256 << 10;

/// How pages are faulted in, found out on the first use.
static METHOD: AtomicU8 = AtomicU8::new(METHOD_UNKNOWN);
const METHOD_UNKNOWN: u8 = 0;
const METHOD_POPULATE_WRITE: u8 = 1;
const METHOD_TOUCH: u8 = 2;

/// What appenders and segments hold to reach the thread: the window size and the
/// queue. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Window {
    /// `segment_prefault_bytes`.
    pub(crate) bytes: u64,
    /// `segment_bytes`: the size of the next segment to prepare.
    pub(crate) segment_bytes: u64,
    /// `segment_prefault_outrun`: how an append past the populated window is written.
    pub(crate) outrun: PrefaultOutrun,
    queue: Arc<Queue>,
}

impl Window {
    /// Window bytes the appender consumes before it wakes the thread again: a
    /// quarter of the window, at most a MiB (one queue push and notify per MiB of
    /// appends), at least a page, whole pages. Waking after half the window, as first built, let
    /// a fast appender (a 1 KiB micro loop, batched produce) run into pages not yet
    /// faulted in while the thread was still asleep or filling the other half.
    pub(crate) fn refill_step_bytes(&self) -> u64 {
        let page = PAGE_BYTES as u64;
        (self.bytes / 4 / page * page).clamp(page, REFILL_STEP_MAX_BYTES)
    }
}

/// The most a window is consumed before the appender wakes the thread.
const REFILL_STEP_MAX_BYTES: u64 = 1 << 20;

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("bytes", &self.bytes)
            .field("segment_bytes", &self.segment_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Default)]
struct QueueState {
    tails: VecDeque<Arc<Tail>>,
    stop: bool,
    /// The thread waits on the condition variable: only then does a request notify
    /// it. A notify is a futex system call (std's condition variable makes it whether
    /// or not anyone waits), ~1-3 µs here, paid by the appender once per refill step
    /// while the thread is busy refilling: the p99.9 of an append inside the window.
    sleeping: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Window {
    /// Queues `tail` for the thread unless it is queued already.
    pub(crate) fn request(&self, tail: &Arc<Tail>) {
        // The plain load first: an appender that outruns the thread asks on every
        // append, and a load of a shared line is cheaper than a swap.
        if tail.queued.load(Ordering::Relaxed) || tail.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut st = self.queue.lock();
        if st.stop {
            return;
        }
        st.tails.push_back(Arc::clone(tail));
        let sleeping = st.sleeping;
        drop(st);
        if sleeping {
            self.queue.wake.notify_one();
        }
    }
}

/// The thread and its queue; dropping it stops and joins the thread.
pub(crate) struct Prefaulter {
    window: Window,
    thread: Option<JoinHandle<()>>,
}

impl Prefaulter {
    /// Starts the thread for a window of `window_bytes` (> 0).
    pub(crate) fn start(
        window_bytes: u64,
        segment_bytes: u64,
        outrun: PrefaultOutrun,
    ) -> io::Result<Prefaulter> {
        let window = Window {
            bytes: window_bytes,
            segment_bytes,
            outrun,
            queue: Arc::new(Queue::default()),
        };
        let queue = Arc::clone(&window.queue);
        let thread_window = window.clone();
        let thread = std::thread::Builder::new()
            .name("strikemq-prefault".into())
            .spawn(move || run(&queue, &thread_window))?;
        tracing::info!(
            window_bytes,
            method = probe_method(),
            "pre-fault window thread started"
        );
        Ok(Prefaulter {
            window,
            thread: Some(thread),
        })
    }

    pub(crate) fn window(&self) -> Window {
        self.window.clone()
    }
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        self.window.queue.lock().stop = true;
        self.window.queue.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(queue: &Queue, window: &Window) {
    loop {
        let tail = {
            let mut st = queue.lock();
            loop {
                if st.stop {
                    return;
                }
                if let Some(tail) = st.tails.pop_front() {
                    break tail;
                }
                // Set and cleared under the lock that `request` pushes under, so a
                // push either finds the thread awake (it pops the tail next) or
                // notifies it.
                st.sleeping = true;
                st = queue.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                st.sleeping = false;
            }
        };
        // Cleared before the work, so appends made meanwhile can queue it again.
        tail.queued.store(false, Ordering::Release);
        tail.advance(window);
    }
}

/// Which method this kernel offers, for the start-up log line: MADV_POPULATE_WRITE
/// (Linux 5.14+) tried on one anonymous page.
fn probe_method() -> &'static str {
    if METHOD.load(Ordering::Relaxed) == METHOD_UNKNOWN {
        let ok = match memmap2::MmapMut::map_anon(PAGE_BYTES) {
            // SAFETY: madvise on a mapping we own for the call's duration; POPULATE_WRITE
            // only faults pages in.
            Ok(map) => unsafe {
                libc::madvise(
                    map.as_ptr() as *mut libc::c_void,
                    PAGE_BYTES,
                    libc::MADV_POPULATE_WRITE,
                ) == 0
            },
            Err(_) => false,
        };
        let method = if ok {
            METHOD_POPULATE_WRITE
        } else {
            METHOD_TOUCH
        };
        METHOD.store(method, Ordering::Relaxed);
    }
    match METHOD.load(Ordering::Relaxed) {
        METHOD_POPULATE_WRITE => "madvise(MADV_POPULATE_WRITE)",
        _ => "touching one byte per page (no MADV_POPULATE_WRITE on this kernel)",
    }
}

/// Faults the anonymous pages `[addr, addr + len)` in, writable, without changing a
/// byte (MADV_POPULATE_WRITE; nothing on kernels without it, where touching pages
/// that other allocations share would not be ours to do). The caller guarantees the
/// range is page aligned and every page in it is mapped.
pub(crate) fn populate_anon(addr: usize, len: usize) -> io::Result<()> {
    if len == 0 || METHOD.load(Ordering::Relaxed) == METHOD_TOUCH {
        return Ok(());
    }
    // SAFETY: the caller guarantees a page-aligned range of mapped pages;
    // MADV_POPULATE_WRITE only simulates write faults and changes no content, so it
    // is harmless to concurrent writers of those pages.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Faults `[from, to)` of `map` in, writable, without changing a byte. The caller
/// guarantees the range has disk blocks (reserved) and lies inside the file.
pub(crate) fn populate(map: &MmapRaw, from: u64, to: u64) -> io::Result<()> {
    let (from, to) = (from as usize, (to as usize).min(map.len()));
    if to <= from {
        return Ok(());
    }
    if METHOD.load(Ordering::Relaxed) != METHOD_TOUCH {
        // SAFETY: `[from, to)` lies inside the mapping (capped above) and `from` is
        // page aligned (callers round down); MADV_POPULATE_WRITE simulates write
        // faults and changes no content, so it is harmless to concurrent appends.
        let rc = unsafe {
            libc::madvise(
                map.as_mut_ptr().add(from) as *mut libc::c_void,
                to - from,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if rc == 0 {
            METHOD.store(METHOD_POPULATE_WRITE, Ordering::Relaxed);
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
        // EINVAL: a kernel older than 5.14; touch from now on.
        METHOD.store(METHOD_TOUCH, Ordering::Relaxed);
    }
    let mut at = from;
    while at < to {
        // SAFETY: `at` lies inside the mapping, on reserved blocks inside the file
        // (caller), so the store cannot SIGBUS. An atomic OR with 0 writes the byte
        // back unchanged even while the appender stores into the same page (or
        // byte): the read-modify-write is one indivisible instruction (or an LL/SC
        // loop that retries), so no appended byte is lost.
        let byte = unsafe { std::sync::atomic::AtomicU8::from_ptr(map.as_mut_ptr().add(at)) };
        byte.fetch_or(0, Ordering::Relaxed);
        at += PAGE_BYTES;
    }
    Ok(())
}
