//! Being a native systemd service: `sd_notify` readiness, status and watchdog,
//! and sockets passed by socket activation (`LISTEN_FDS`).
//!
//! Everything here is a no-op when not started by systemd (no `NOTIFY_SOCKET`,
//! no `LISTEN_PID` naming us), so the daemons run the same by hand.

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};
use sd_notify::NotifyState;

/// Tell systemd we are ready, with a status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Update the status line `systemctl status` shows.
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// Still starting, for as long as it takes (an agent waiting to be
/// accepted): push the start timeout out by a minute, with a status line.
pub fn waiting(status: &str) {
    notify(&[
        NotifyState::ExtendTimeoutUsec(60_000_000),
        NotifyState::Status(status),
    ]);
}

/// Tell systemd we are shutting down.
pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The environment variables of the service manager's protocols, which a child
/// process (nats-server) must not inherit.
pub const MANAGER_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// When `WatchdogSec=` is set, ping `WATCHDOG=1` at half the interval — but only
/// while `healthy()` says so, so a wedged daemon is restarted by systemd instead
/// of being kept alive by a timer.
pub fn spawn_watchdog<F, Fut>(healthy: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let interval = sd_notify::watchdog_enabled()? / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        // The first tick is immediate; READY=1 itself counts as the first sign of life.
        tick.tick().await;
        loop {
            tick.tick().await;
            if healthy().await {
                notify(&[NotifyState::Watchdog]);
            } else {
                tracing::warn!("unhealthy: withholding the watchdog ping");
            }
        }
    }))
}

/// A socket passed by the service manager.
#[derive(Debug)]
pub enum Activated {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Take the sockets passed to this process (checks `LISTEN_PID`), with their
/// `FileDescriptorName=` names. Empty when not socket-activated.
pub fn activated_sockets() -> io::Result<Vec<(Activated, String)>> {
    let mut out = Vec::new();
    for (fd, name) in sd_notify::listen_fds_with_names()? {
        out.push((adopt(fd)?, name));
    }
    Ok(out)
}

fn adopt(fd: RawFd) -> io::Result<Activated> {
    let family = getsockname::<SockaddrStorage>(fd)
        .map_err(io::Error::from)?
        .family();
    // SAFETY: systemd passed us this descriptor (LISTEN_PID named us) and nothing
    // else in the process owns it; we take it exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match family {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let l = std::net::TcpListener::from(owned);
            l.set_nonblocking(true)?;
            Ok(Activated::Tcp(l))
        }
        Some(AddressFamily::Unix) => {
            let l = std::os::unix::net::UnixListener::from(owned);
            l.set_nonblocking(true)?;
            Ok(Activated::Unix(l))
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("passed socket {fd} has unsupported family {other:?}"),
        )),
    }
}
