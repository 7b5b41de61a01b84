//! The epoll driver: level-triggered readiness. The driver does the reads and writes
//! itself when epoll says a socket is ready, and keeps each socket's interest (read
//! while the connection takes input, write while it has output) registered.

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::buffer::InputBuffer;
use super::conn::{CloseReason, Conn};
use super::worker::{Driver, Entry, Ready, WAIT_FOREVER};
use super::{WorkerShared, READ_BUDGET_BYTES};
use crate::output::Iovecs;

/// Token of the worker's wake-up eventfd; connection `i` has token `i + 1`.
const WAKE_TOKEN: u64 = 0;
const EVENTS_PER_WAIT: usize = 256;

/// An epoll timeout of `ms` milliseconds (saturating).
pub(super) fn timeout_ms(ms: u64) -> EpollTimeout {
    EpollTimeout::try_from(ms.min(i32::MAX as u64)).unwrap_or(EpollTimeout::MAX)
}

/// Rounds up, so that a wait for a deadline never returns just before it (a busy loop
/// of zero-timeout waits until the millisecond passes); `WAIT_FOREVER` blocks.
fn timeout_of(d: Duration) -> EpollTimeout {
    if d == WAIT_FOREVER {
        return EpollTimeout::NONE;
    }
    let ms = d.as_nanos().div_ceil(1_000_000);
    timeout_ms(u64::try_from(ms).unwrap_or(u64::MAX))
}

pub(super) struct EpollDriver {
    epoll: Epoll,
    shared: Arc<WorkerShared>,
    events: Vec<EpollEvent>,
    /// Scratch for each vectored send.
    iov: Iovecs,
}

/// The interest registered for a connection, to skip redundant epoll_ctl calls.
pub(super) struct EpollIo {
    registered: EpollFlags,
}

impl EpollDriver {
    pub(super) fn new(shared: Arc<WorkerShared>) -> io::Result<EpollDriver> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(
            shared.wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
        )?;
        Ok(EpollDriver {
            epoll,
            shared,
            events: vec![EpollEvent::empty(); EVENTS_PER_WAIT],
            iov: Iovecs::with_capacity(),
        })
    }
}

/// Reads what the socket has (up to the read budget). Err(Eof) when the peer closed.
fn read_available<B: InputBuffer>(
    stream: &TcpStream,
    conn: &mut Conn<B>,
) -> Result<(), CloseReason> {
    let mut read_bytes = 0;
    while read_bytes < READ_BUDGET_BYTES {
        let spare = conn.input().spare();
        let spare_bytes = spare.len();
        if spare_bytes == 0 {
            // Full of complete frames: process them first (level-triggered, so the
            // rest is reported again).
            return Ok(());
        }
        // SAFETY: `spare` is writable memory owned by the input buffer, `spare.len()`
        // bytes long; recv writes at most that many bytes and returns how many.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare_bytes,
                0,
            )
        };
        match n {
            0 => return Err(CloseReason::Eof),
            n if n > 0 => {
                // SAFETY: recv initialized exactly `n` bytes at the start of `spare`.
                unsafe { conn.input().commit(n as usize) };
                read_bytes += n as usize;
                if (n as usize) < spare_bytes {
                    // A short read means the socket is drained for now; the
                    // level-triggered loop reports it again when more arrives. This saves
                    // the recv that would only say EAGAIN, one syscall a request.
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

/// Writes pending output until done or the socket would block: one vectored send of
/// the owned bytes and the mapped slices between them (`fetch_zero_copy`), resumed
/// where the kernel stopped taking bytes, even in the middle of a piece.
fn write_pending<B: InputBuffer>(
    stream: &TcpStream,
    conn: &mut Conn<B>,
    iov: &mut Iovecs,
) -> Result<(), CloseReason> {
    while !conn.output().is_empty() {
        conn.output().fill_iovecs(iov);
        // SAFETY: an all-zero msghdr is valid (no address, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.0.as_mut_ptr();
        msg.msg_iovlen = iov.0.len() as _;
        // SAFETY: the iovecs point into the connection's output (owned bytes and
        // mapped slices kept alive by it), which is not changed until after the call;
        // sendmsg only reads them. MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
        let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        iov.0.clear();
        match n {
            0 => return Err(CloseReason::Eof),
            n if n > 0 => conn.consume_output(n as usize),
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

impl Driver for EpollDriver {
    type Io = EpollIo;

    fn register(&mut self, idx: usize, stream: &TcpStream) -> io::Result<EpollIo> {
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        self.epoll
            .add(stream.as_fd(), EpollEvent::new(flags, idx as u64 + 1))?;
        Ok(EpollIo { registered: flags })
    }

    fn poll<B: InputBuffer>(
        &mut self,
        timeout: Duration,
        conns: &mut [Option<Entry<B, EpollIo>>],
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        let n = match self.epoll.wait(&mut self.events, timeout_of(timeout)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        for ev in &self.events[..n] {
            if ev.data() == WAKE_TOKEN {
                let _ = self.shared.wake.read();
                ready.push(Ready::Woken);
                continue;
            }
            let idx = (ev.data() - 1) as usize;
            let Some(entry) = conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if entry.closing {
                continue;
            }
            let flags = ev.events();
            let mut result = Ok(());
            if flags.intersects(EpollFlags::EPOLLOUT) {
                result = write_pending(&entry.stream, &mut entry.conn, &mut self.iov);
            }
            if result.is_ok()
                && flags
                    .intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP)
            {
                if entry.conn.wants_read() {
                    result = read_available(&entry.stream, &mut entry.conn);
                } else if flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
                    result = Err(CloseReason::Eof);
                }
            }
            ready.push(match result {
                Ok(()) => Ready::Service(idx),
                Err(reason) => Ready::Close(idx, reason),
            });
        }
        Ok(())
    }

    fn input_free(&self, _io: &EpollIo) -> bool {
        true
    }

    fn send<B: InputBuffer>(
        &mut self,
        _idx: usize,
        entry: &mut Entry<B, EpollIo>,
    ) -> Result<(), CloseReason> {
        write_pending(&entry.stream, &mut entry.conn, &mut self.iov)
    }

    fn arm<B: InputBuffer>(
        &mut self,
        idx: usize,
        entry: &mut Entry<B, EpollIo>,
    ) -> Result<(), CloseReason> {
        let mut want = EpollFlags::EPOLLRDHUP;
        if entry.conn.wants_read() {
            want |= EpollFlags::EPOLLIN;
        }
        if entry.conn.wants_write() {
            want |= EpollFlags::EPOLLOUT;
        }
        if want != entry.io.registered {
            let mut ev = EpollEvent::new(want, idx as u64 + 1);
            self.epoll
                .modify(entry.stream.as_fd(), &mut ev)
                .map_err(io::Error::from)?;
            entry.io.registered = want;
        }
        Ok(())
    }

    fn sending<B: InputBuffer>(&self, entry: &Entry<B, EpollIo>) -> bool {
        entry.conn.wants_write()
    }

    fn close<B: InputBuffer>(&mut self, _idx: usize, entry: &mut Entry<B, EpollIo>) -> bool {
        let _ = self.epoll.delete(entry.stream.as_fd());
        true
    }

    fn release(&mut self, _io: EpollIo) {}

    fn stop(&mut self) {}

    fn abandon(&mut self) {}
}
