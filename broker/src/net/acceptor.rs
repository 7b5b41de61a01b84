//! The acceptor: one thread, one epoll loop over the listener and its wake-up eventfd.
//! It never spins and never wakes on a timer: it blocks until a connection arrives or
//! shutdown writes its eventfd, accepts everything ready, applies the connection limits
//! and deals the sockets round-robin to the workers. (The seed's `loop_timeout_ms`
//! covered the acceptor too; here a timeout would only cost wake-ups.)

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::EventFd;
use tracing::{debug, info, warn};

use super::{sockopt, Accepted, ConnLimiter, WorkerShared};
use crate::broker::metrics::Limit;
use crate::broker::Broker;
use crate::config::Config;
use crate::live::LiveToggles;

/// The acceptor's borrowed state (one thread, for the life of the server).
pub(super) struct Acceptor<'a> {
    pub cfg: &'a Config,
    pub broker: &'a Broker,
    pub limiter: &'a Arc<ConnLimiter>,
    pub workers: &'a [Arc<WorkerShared>],
    pub wake: &'a EventFd,
    pub shutdown: &'a AtomicBool,
}

impl Acceptor<'_> {
    /// Accepts connections and deals them round-robin to the workers; a connection
    /// beyond `max_connections` or `max_connections_per_ip` is closed at once (the
    /// client sees EOF, as with Kafka's connection quotas).
    pub(super) fn run(&self, listener: TcpListener) -> io::Result<()> {
        let live = &self.broker.live;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(listener.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))?;
        epoll.add(self.wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        let mut events = [EpollEvent::empty(); 4];
        let mut next_worker = 0usize;
        while !self.shutdown.load(Ordering::Acquire) {
            // No timeout: the eventfd wakes the acceptor for shutdown, so an idle
            // broker's acceptor never wakes.
            match epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            loop {
                let (stream, peer) = match listener.accept() {
                    Ok((stream, peer)) => {
                        debug!(%peer, "accepted");
                        (stream, peer)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // EMFILE and friends: log, back off a little, keep serving.
                        warn!(error = %e, "accept failed");
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                };
                let permit = match self.limiter.try_acquire(peer.ip()) {
                    Ok(permit) => permit,
                    Err(limit) => {
                        let max = match limit {
                            Limit::MaxConnectionsPerIp => self.cfg.max_connections_per_ip,
                            _ => self.cfg.max_connections,
                        };
                        self.broker.metrics.limits.hit(
                            limit,
                            format_args!(
                                "closing a new connection from {peer}: {} = {max} reached",
                                limit.key()
                            ),
                        );
                        continue; // dropping `stream` closes it
                    }
                };
                if let Err(e) = prepare_socket(&stream, self.cfg, live) {
                    warn!(error = %e, "could not configure an accepted socket; closing it");
                    continue;
                }
                let worker = &self.workers[next_worker % self.workers.len()];
                next_worker = next_worker.wrapping_add(1);
                let accepted = Accepted { stream, permit };
                match worker.inbox.lock() {
                    Ok(mut inbox) => inbox.push(accepted),
                    Err(poisoned) => poisoned.into_inner().push(accepted),
                }
                worker.wake();
            }
        }
        info!("acceptor stopped");
        Ok(())
    }
}

/// Busy polling comes from the live toggles, so a change applies to new connections.
fn prepare_socket(stream: &TcpStream, cfg: &Config, live: &LiveToggles) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay(cfg.tcp_nodelay)?;
    let busy_poll_us = live.busy_poll_us();
    if busy_poll_us > 0 {
        sockopt::set_busy_poll(stream, busy_poll_us, live.prefer_busy_poll())?;
    }
    Ok(())
}
