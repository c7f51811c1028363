//! The UDP listener: the only code that reads from or writes to the RADIUS socket.
//!
//! For each datagram, in order: size check → client lookup by source address →
//! decode → code check → Message-Authenticator (BLAST-RADIUS) → Status-Server
//! answer → duplicate cache → a task that runs the [`Handler`] and sends the
//! signed reply. Anything that fails a check is dropped silently as RFC 2865 §3
//! and RFC 3579 §3.2 require, logged at debug with its reason and counted in
//! `rampart_radius_dropped_total{reason}`.
//!
//! The client table and the handler come from one [`Routes`] value that a
//! configuration reload replaces whole ([`Live`]): each datagram is looked up
//! and answered with the routes current when it arrived, so a request in
//! flight finishes with the pipeline (and secret) it started with, while the
//! duplicate cache, owned here, outlives every reload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::clients::{Client, Clients};
use super::crypto::{MessageAuthenticatorCheck, check_request_message_authenticator};
use super::dedup::{DuplicateCache, RequestKey, Seen};
use super::packet::{Code, MAX_PACKET_LEN, Packet};
use super::reply::{Decision, encode_reply, encode_status_reply};
use super::request::AccessRequest;
use crate::live::Live;

/// Answers authenticated Access-Requests. Implemented by the pipeline, and by
/// small stubs in tests. Infallible: every error is already a [`Decision`].
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Decides one request.
    async fn handle(&self, request: AccessRequest) -> Decision;
}

/// What the listener answers with: the NAS clients and the handler, from
/// one configuration, so a datagram is never checked with one
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

/// Why a datagram was dropped; the label of `rampart_radius_dropped_total`.
fn drop_packet(reason: &'static str, peer: SocketAddr) {
    debug!(%peer, reason, "dropped RADIUS datagram");
    metrics::counter!("rampart_radius_dropped_total", "reason" => reason).increment(1);
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
        let packet = match Packet::decode(datagram) {
            Ok(packet) => packet,
            Err(error) => {
                drop_packet(error.reason(), peer);
                continue;
            }
        };
        if !matches!(packet.code, Code::AccessRequest | Code::StatusServer) {
            drop_packet("unsupported_code", peer);
            continue;
        }
        match check_request_message_authenticator(datagram, client.secret.expose()) {
            MessageAuthenticatorCheck::Valid => {}
            MessageAuthenticatorCheck::Invalid => {
                drop_packet("bad_message_authenticator", peer);
                continue;
            }
            // RFC 5997 §3: Status-Server always carries Message-Authenticator.
            MessageAuthenticatorCheck::Absent
                if client.require_message_authenticator || packet.code == Code::StatusServer =>
            {
                drop_packet("missing_message_authenticator", peer);
                continue;
            }
            MessageAuthenticatorCheck::Absent => {}
        }
        if packet.code == Code::StatusServer {
            // RFC 5997 §4: answered directly, not subject to duplicate detection.
            match encode_status_reply(&packet, client.secret.expose()) {
                Ok(reply) => send(&socket, &reply, peer).await,
                Err(error) => warn!(%error, "cannot encode Status-Server reply"),
            }
            continue;
        }

        let key = RequestKey {
            peer,
            identifier: packet.identifier,
            authenticator: packet.authenticator,
        };
        match dedup.begin(key, Instant::now()) {
            Seen::New => {}
            Seen::InFlight => {
                debug!(%peer, id = packet.identifier, "retransmission while in flight: dropped");
                metrics::counter!("rampart_radius_duplicates_total", "kind" => "in_flight")
                    .increment(1);
                continue;
            }
            Seen::Answered(reply) => {
                debug!(%peer, id = packet.identifier, "retransmission: cached reply resent");
                metrics::counter!("rampart_radius_duplicates_total", "kind" => "resent")
                    .increment(1);
                send(&socket, &reply, peer).await;
                continue;
            }
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dedup.abandon(key);
            drop_packet("overloaded", peer);
            continue;
        };
        let client = client.clone();
        let (socket, dedup, handler) = (socket.clone(), dedup.clone(), current.handler.clone());
        let request = async move {
            let _permit = permit;
            match answer(&packet, &client, peer, handler.as_ref()).await {
                Some(reply) => {
                    dedup.complete(key, reply.clone(), Instant::now());
                    send(&socket, &reply, peer).await;
                }
                None => dedup.abandon(key),
            }
        };
        match &options.workers {
            Some(workers) => drop(tracker.spawn_on(request, workers)),
            None => drop(tracker.spawn(request)),
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

/// Runs one Access-Request through the handler and encodes the reply.
async fn answer(
    packet: &Packet,
    client: &Client,
    peer: SocketAddr,
    handler: &dyn Handler,
) -> Option<Vec<u8>> {
    let secret = client.secret.expose();
    let request = match AccessRequest::from_packet(packet, secret, client.name.clone(), peer) {
        Ok(request) => request,
        Err(error) => {
            debug!(%peer, %error, "undecodable Access-Request");
            drop_packet("bad_user_password", peer);
            return None;
        }
    };
    let decision = handler.handle(request).await;
    match encode_reply(&decision, packet, secret) {
        Ok(reply) => Some(reply),
        Err(error) => {
            warn!(%error, "cannot encode reply");
            None
        }
    }
}

async fn send(socket: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    if let Err(error) = socket.send_to(reply, peer).await {
        warn!(%peer, %error, "cannot send RADIUS reply");
    }
}
