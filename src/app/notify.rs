//! systemd service notifications (sd_notify(3)) for `Type=notify` units:
//! `READY=1` once both listeners are bound, `RELOADING=1` with
//! `MONOTONIC_USEC` when a SIGHUP reload starts and `READY=1` when it ends
//! (refused or not: the service runs either way), `STOPPING=1` on SIGTERM.
//! Without `$NOTIFY_SOCKET` (not started by systemd) each call does nothing.
//!
//! `MONOTONIC_USEC` goes in the same datagram as `RELOADING=1`: systemd 253
//! and later require it for `Type=notify-reload` (sd_notify(3), "RELOADING=1")
//! and older versions ignore it.

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// The service is up: both listeners are bound.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A configuration reload starts.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(error) => debug!(%error, "cannot read CLOCK_MONOTONIC for MONOTONIC_USEC"),
    }
    send(&states);
}

/// The service is stopping (SIGTERM or SIGINT): it finishes what is in flight.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing requests in flight"),
    ]);
}

fn send(states: &[NotifyState<'_>]) {
    // Not fatal: a supervisor that cannot be told is the supervisor's problem,
    // and the daemon must keep answering NAS requests regardless.
    if let Err(error) = sd_notify::notify(states) {
        warn!(%error, "cannot notify the service manager ($NOTIFY_SOCKET)");
    }
}
