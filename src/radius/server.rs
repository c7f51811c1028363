//! The UDP listener: the only code that reads from or writes to the RADIUS
//! UDP socket.
//!
//! For each datagram: size check → client lookup by source address → the
//! checks shared with RadSec ([`super::exchange::admit`]: decode, code,
//! Message-Authenticator, Status-Server, duplicate cache) → an in-flight
//! permit (none left: dropped, the NAS retransmits) → a task that runs the
//! [`Handler`] and sends the signed reply. Drops are counted in
//! `rampart_radius_dropped_total{reason}`.
//!
//! The client table and the handler come from one [`Routes`] value that a
//! configuration reload replaces whole ([`Live`]): each datagram is looked up
//! and answered with the routes current when it arrived, so a request in
//! flight finishes with the pipeline (and secret) it started with, while the
//! duplicate cache, owned here, outlives every reload. The RadSec listener
//! reads the same routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::clients::Clients;
use super::dedup::DuplicateCache;
pub use super::exchange::Handler;
use super::exchange::{Admission, admit, drop_packet, process, refuse};
use super::packet::MAX_PACKET_LEN;
use crate::live::Live;

/// What the listeners answer with: the NAS clients and the handler, from
/// one configuration, so a packet is never checked with one
/// configuration's secret and decided by another's pipeline.
pub struct Routes {
    /// The NAS clients.
    pub clients: Arc<Clients>,
    /// Decides Access-Requests.
    pub handler: Arc<dyn Handler>,
}

impl Routes {
    /// Routes that never change (tests, tools).
    pub fn fixed(clients: Arc<Clients>, handler: Arc<dyn Handler>) -> Arc<Live<Routes>> {
        Arc::new(Live::new(Arc::new(Routes { clients, handler })))
    }
}

/// Listener limits.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Requests processed at once; beyond it datagrams are dropped and the NAS retransmits.
    pub max_in_flight: usize,
    /// How long an answered request's reply is kept for retransmissions.
    pub duplicate_ttl: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Runtime that runs the requests; `None` = the one running `serve`.
    /// `app` runs `serve` on a thread of its own, so the socket is drained
    /// promptly even while every worker is busy, and requests run here.
    pub workers: Option<tokio::runtime::Handle>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_in_flight: 4096,
            duplicate_ttl: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(60),
            workers: None,
        }
    }
}

/// Serves RADIUS on `socket` until `token` is cancelled, then stops reading,
/// lets in-flight requests finish (up to `shutdown_grace`) and returns.
pub async fn serve(
    socket: UdpSocket,
    routes: Arc<Live<Routes>>,
    options: ServerOptions,
    token: CancellationToken,
) -> std::io::Result<()> {
    let socket = Arc::new(socket);
    let dedup = Arc::new(DuplicateCache::new(options.duplicate_ttl));
    let permits = Arc::new(Semaphore::new(options.max_in_flight));
    let tracker = TaskTracker::new();
    // One octet more than the maximum so an oversized datagram is seen as such.
    let mut buffer = vec![0u8; MAX_PACKET_LEN + 1];
    let mut purge = tokio::time::interval(Duration::from_secs(5));

    loop {
        let (len, peer) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    // ICMP port unreachable from an earlier reply surfaces here on some
                    // systems; it concerns one peer, not the listener.
                    warn!(%error, "RADIUS socket receive error");
                    continue;
                }
            },
            _ = purge.tick() => {
                dedup.purge(Instant::now());
                continue;
            }
            _ = token.cancelled() => break,
        };
        let datagram = &buffer[..len];
        if len > MAX_PACKET_LEN {
            drop_packet("oversized", peer);
            continue;
        }
        // One read of the current routes per datagram (see the module doc).
        let current = routes.load();
        let Some(client) = current.clients.lookup(peer.ip()) else {
            drop_packet("unknown_client", peer);
            continue;
        };
        let request = match admit(datagram, client, peer, &dedup) {
            Admission::New(request) => request,
            Admission::Reply(reply) => {
                send(&socket, &reply, peer).await;
                continue;
            }
            Admission::Dropped(_) | Admission::InFlight => continue,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(request, "overloaded", peer, &dedup);
            continue;
        };
        let client = client.clone();
        let (socket, dedup, handler) = (socket.clone(), dedup.clone(), current.handler.clone());
        let task = async move {
            let _permit = permit;
            if let Some(reply) = process(request, &client, peer, handler.as_ref(), &dedup).await {
                send(&socket, &reply, peer).await;
            }
        };
        match &options.workers {
            Some(workers) => drop(tracker.spawn_on(task, workers)),
            None => drop(tracker.spawn(task)),
        }
    }

    tracker.close();
    let in_flight = tracker.len();
    if in_flight > 0 {
        info!(
            in_flight,
            "RADIUS listener stopped reading; finishing in-flight requests"
        );
    }
    if tokio::time::timeout(options.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            abandoned = tracker.len(),
            "shutdown grace period over; abandoning requests"
        );
    }
    Ok(())
}

async fn send(socket: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    // A UDP send almost never has to wait, so try it at once; the waiting
    // send is boxed so that every request task (held logins included, for
    // tens of seconds) does not carry the size of its future.
    let sent = match socket.try_send_to(reply, peer) {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
            Box::pin(socket.send_to(reply, peer)).await
        }
        other => other,
    };
    if let Err(error) = sent {
        warn!(%peer, %error, "cannot send RADIUS reply");
    }
}
