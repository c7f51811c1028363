//! One RadSec connection: TLS handshake, identification of the client by
//! its certificate and address, then a reader (framing, the shared checks,
//! one task per new request) and a writer (replies in arrival order).
//!
//! Like UDP, every packet is handled with the routes current when it arrives
//! (a SIGHUP reload may change them): the client is looked up again by the
//! connection's certificate names and address, so a reload that changes its
//! Message-Authenticator policy applies at once, and one that removes the
//! client closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use super::framing::Framer;
use super::identity::PeerIdentity;
use super::{Shared, handshake_failure, tls};
use crate::radius::clients::{Client, Clients};
use crate::radius::dedup::DuplicateCache;
use crate::radius::exchange::{Admission, admit, drop_packet, process, refuse};

/// How long writing a batch of replies may take before the peer is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection: handshake, identification, then the reader loop.
pub(super) async fn run(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
) {
    // Replies are small and latency matters more than segment count.
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(
        shared.options.handshake_timeout,
        TlsAcceptor::from(shared.tls.load()).accept(tcp),
    );
    let mut stream = tokio::select! {
        outcome = handshake => match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                let reason = tls::handshake_failure_reason(&error);
                if reason == "crl_expired" {
                    // Every NAS of that CA is refused until the file is renewed.
                    warn!(%peer, "RadSec: the CRL for this NAS certificate's issuer is past its nextUpdate; replace [radsec] crl_file and send SIGHUP");
                }
                info!(%peer, reason, %error, "RadSec TLS handshake failed");
                handshake_failure(reason, peer);
                return;
            }
            Err(_) => {
                info!(%peer, "RadSec TLS handshake timed out");
                handshake_failure("timeout", peer);
                return;
            }
        },
        _ = shared.token.cancelled() => return,
    };
    let Some((identity, client)) = identify(&stream, peer, &shared.routes.load().clients) else {
        // close_notify, so the peer sees a clean refusal rather than a reset.
        let _ = stream.shutdown().await;
        return;
    };
    info!(%peer, client = %client.name, certificate = %identity.describe(), "RadSec connection established");
    metrics::counter!("rampart_radsec_connections_total", "client" => client.name.to_string())
        .increment(1);
    let _open = OpenGauge::new();

    let (reader, writer) = tokio::io::split(stream);
    // Bounded: when the peer stops reading, request tasks wait here, hold
    // their in-flight slots, and the reader stops taking new requests.
    let (replies, outbox) = mpsc::channel::<Vec<u8>>(256);
    let writer = shared.tracker.spawn(write_replies(writer, outbox, peer));
    let why = read_requests(reader, peer, &identity, &shared, replies).await;
    debug!(%peer, why, "RadSec connection: reader done");
    // The writer ends once the last in-flight request has sent its reply.
    let _ = writer.await;
    info!(%peer, why, "RadSec connection closed");
}

/// The names of a verified peer certificate, and the client they and the
/// source address belong to.
fn identify(
    stream: &TlsStream<TcpStream>,
    peer: SocketAddr,
    clients: &Clients,
) -> Option<(PeerIdentity, Arc<Client>)> {
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    let Some(certificate) = certificate else {
        // The verifier requires one; kept as a guard.
        handshake_failure("no_certificate", peer);
        return None;
    };
    let identity = match PeerIdentity::from_der(certificate) {
        Ok(identity) => identity,
        Err(error) => {
            info!(%peer, %error, "RadSec connection refused");
            handshake_failure("bad_certificate", peer);
            return None;
        }
    };
    match clients.lookup_radsec(peer.ip(), &identity).cloned() {
        Some(client) => Some((identity, client)),
        None => {
            info!(
                %peer,
                certificate = %identity.describe(),
                "RadSec connection refused: the certificate is valid but names no configured client (radsec_cert_name / address)"
            );
            handshake_failure("unknown_client", peer);
            None
        }
    }
}

/// Keeps `rampart_radsec_open_connections` right on every exit path.
struct OpenGauge;

impl OpenGauge {
    fn new() -> OpenGauge {
        metrics::gauge!("rampart_radsec_open_connections").increment(1.0);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("rampart_radsec_open_connections").decrement(1.0);
    }
}

/// Whether a drop reason ends the connection (RFC 6613 §2.6.4: "silently
/// discard" becomes "silently discard and close the connection"; an unknown
/// code MAY leave it open).
fn closes_connection(reason: &'static str) -> bool {
    !matches!(reason, "unsupported_code" | "encode_error")
}

/// Reads packets until the peer closes, a packet breaks the rules, the
/// connection is idle too long, or shutdown. Returns why, for the log.
async fn read_requests(
    mut reader: ReadHalf<TlsStream<TcpStream>>,
    peer: SocketAddr,
    identity: &PeerIdentity,
    shared: &Arc<Shared>,
    replies: mpsc::Sender<Vec<u8>>,
) -> &'static str {
    let dedup = Arc::new(DuplicateCache::new(shared.options.duplicate_ttl));
    let mut framer = Framer::default();
    let mut chunk = vec![0u8; 16 * 1024];
    let tick = shared.options.idle_timeout.min(Duration::from_secs(5));
    let mut housekeeping = tokio::time::interval(tick);
    let mut last_read = Instant::now();
    // Each request task holds a clone: more than one owner = work outstanding.
    let outstanding = Arc::new(());
    loop {
        loop {
            let packet = match framer.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(error) => {
                    drop_packet(error.reason(), peer);
                    return "unframeable packet";
                }
            };
            // One read of the current routes per packet, as for UDP.
            let current = shared.routes.load();
            let Some(client) = current.clients.lookup_radsec(peer.ip(), identity) else {
                info!(%peer, "RadSec client no longer configured (reload): closing");
                return "client removed";
            };
            let request = match admit(packet, client, peer, &dedup) {
                Admission::New(request) => request,
                Admission::Reply(reply) => {
                    if replies.send(reply).await.is_err() {
                        return "writer closed";
                    }
                    continue;
                }
                Admission::InFlight => continue,
                Admission::Dropped(reason) if closes_connection(reason) => {
                    return "packet failed a check";
                }
                Admission::Dropped(_) => continue,
            };
            // No retransmission will come (RFC 6613 §2.6.1): wait for a slot
            // rather than drop, which stops reading and lets TCP push back.
            let permit = tokio::select! {
                permit = shared.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return "listener closed",
                },
                _ = shared.token.cancelled() => {
                    refuse(request, "shutting_down", peer, &dedup);
                    return "shutdown";
                }
            };
            let task = {
                let (client, dedup, replies) = (client.clone(), dedup.clone(), replies.clone());
                let (handler, busy) = (current.handler.clone(), outstanding.clone());
                async move {
                    let _permit = permit;
                    let _busy = busy;
                    if let Some(reply) =
                        process(request, &client, peer, handler.as_ref(), &dedup).await
                    {
                        // The writer is gone when the peer is: nothing to do then.
                        let _ = replies.send(reply).await;
                    }
                }
            };
            shared.tracker.spawn(task);
        }
        tokio::select! {
            read = reader.read(&mut chunk) => match read {
                Ok(0) => return "closed by peer",
                Ok(n) => {
                    framer.extend(&chunk[..n]);
                    last_read = Instant::now();
                }
                Err(error) => {
                    debug!(%peer, %error, "RadSec read error");
                    return "read error";
                }
            },
            _ = housekeeping.tick() => {
                dedup.purge(Instant::now());
                let idle = Arc::strong_count(&outstanding) == 1
                    && last_read.elapsed() >= shared.options.idle_timeout;
                if idle {
                    return "idle";
                }
            }
            _ = shared.token.cancelled() => return "shutdown",
        }
    }
}

/// Writes replies in arrival order, several per flush when they queue up,
/// then closes the TLS session (close_notify) when every sender is gone.
async fn write_replies(
    mut writer: WriteHalf<TlsStream<TcpStream>>,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    peer: SocketAddr,
) {
    let mut batch = Vec::new();
    while let Some(reply) = outbox.recv().await {
        batch.clear();
        batch.extend_from_slice(&reply);
        while batch.len() < 64 * 1024 {
            match outbox.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        let written = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        // A peer that stops reading would otherwise hold its requests' slots
        // (and through them every other connection's) for ever.
        match tokio::time::timeout(WRITE_TIMEOUT, written).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                debug!(%peer, %error, "RadSec write error");
                return;
            }
            Err(_) => {
                warn!(%peer, "RadSec peer stopped reading replies: connection dropped");
                return;
            }
        }
    }
    let _ = writer.shutdown().await;
}
