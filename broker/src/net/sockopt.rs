//! Socket options and CPU placement that std does not offer.

use std::io;
use std::os::fd::AsRawFd;

/// `SO_PREFER_BUSY_POLL` (Linux 5.11); not in every libc crate version.
const SO_PREFER_BUSY_POLL: libc::c_int = 69;

fn set_int_opt(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed; the fd is a valid
    // open socket borrowed from the caller.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SO_BUSY_POLL: the kernel spins up to `busy_poll_us` on the device queue when a read
/// would block. Loopback has no NAPI context, so on `lo` this changes little.
pub fn set_busy_poll(fd: &impl AsRawFd, busy_poll_us: u32, prefer: bool) -> io::Result<()> {
    let us = libc::c_int::try_from(busy_poll_us).unwrap_or(libc::c_int::MAX);
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_BUSY_POLL, us)?;
    if prefer {
        set_int_opt(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, 1)?;
    }
    Ok(())
}

/// The CPUs this process may run on.
pub fn available_cores() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Pins the calling thread to one CPU; logs and carries on when refused.
pub fn pin_to_core(core: usize) {
    let mut set = nix::sched::CpuSet::new();
    let pinned = set
        .set(core)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    match pinned {
        Ok(()) => tracing::info!(core, "pinned thread"),
        Err(e) => tracing::warn!(core, error = %e, "could not pin thread; running unpinned"),
    }
}
