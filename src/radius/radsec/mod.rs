//! The RadSec listener (RADIUS over TLS, RFC 6614): the only code that reads
//! from or writes to RadSec connections.
//!
//! Per connection: TLS handshake with a required client certificate from the
//! configured CA → the client is found by the certificate's names and/or the
//! source address (an unknown peer is refused, counted as a handshake failure)
//! → packets are framed by their Length field and go through the same checks
//! as UDP ([`super::exchange`]) with the shared secret `radsec` (RFC 6614
//! §2.3) → each new request runs in its own task, so many are outstanding at
//! once → replies are written by one writer task per connection.
//!
//! Differences from UDP, all from RFC 6613/6614:
//! - a packet that fails a check (malformed, bad or missing
//!   Message-Authenticator) closes the connection: after a "silently discard"
//!   the stream cannot be trusted (RFC 6613 §2.6.4);
//! - RadSec clients never retransmit (RFC 6613 §2.6.1), so a request is never
//!   dropped for overload: the reader waits for a free slot and TCP pushes back;
//! - the duplicate cache belongs to the connection and dies with it.

pub mod config;
pub mod framing;
pub mod identity;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::clients::{Client, Clients};
use super::dedup::DuplicateCache;
use super::exchange::{Admission, Handler, admit, drop_packet, process, refuse};
use framing::Framer;
use identity::PeerIdentity;

pub use config::RadsecConfig;

/// The shared secret of every RadSec client (RFC 6614 §2.3 item 4).
pub const RADSEC_SECRET: &[u8] = b"radsec";

/// Listener limits.
#[derive(Debug, Clone)]
pub struct RadsecOptions {
    /// Requests processed at once over all connections; beyond it readers wait.
    pub max_in_flight: usize,
    /// How long an answered request's reply is kept (per connection).
    pub duplicate_ttl: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a connection without outstanding requests may stay silent.
    pub idle_timeout: Duration,
    /// Connections open at once, handshakes included.
    pub max_connections: usize,
}

impl Default for RadsecOptions {
    fn default() -> Self {
        RadsecOptions {
            max_in_flight: 4096,
            duplicate_ttl: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_connections: 1024,
        }
    }
}

impl RadsecOptions {
    /// The limits `[radsec]` and `[radius]` configure.
    pub fn from_config(
        radsec: &RadsecConfig,
        max_in_flight: usize,
        duplicate_ttl: Duration,
    ) -> RadsecOptions {
        RadsecOptions {
            max_in_flight,
            duplicate_ttl,
            handshake_timeout: radsec.handshake_timeout(),
            idle_timeout: radsec.idle_timeout(),
            max_connections: radsec.max_connections,
            ..RadsecOptions::default()
        }
    }
}

/// Why the RadSec listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A certificate, key or CA file is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// `listen` does not parse.
    #[error("radsec.listen: {0:?} is not an address:port")]
    Address(String),
    /// The port cannot be bound.
    #[error("cannot listen for RadSec on tcp/{0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Binds `[radsec] listen` and builds the TLS configuration: everything that
/// can fail at start-up, before [`serve`] runs.
pub async fn bind(
    config: &RadsecConfig,
) -> Result<(TcpListener, Arc<rustls::ServerConfig>), StartError> {
    let tls = tls::server_config(config)?;
    let addr = config
        .listen_addr()
        .ok_or_else(|| StartError::Address(config.listen.clone()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| StartError::Bind(addr, error))?;
    Ok((listener, tls))
}

/// Everything a connection needs, shared by all of them.
struct Shared {
    acceptor: TlsAcceptor,
    clients: Arc<Clients>,
    handler: Arc<dyn Handler>,
    options: RadsecOptions,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    token: CancellationToken,
}

fn handshake_failure(reason: &'static str, peer: SocketAddr) {
    debug!(%peer, reason, "RadSec connection refused");
    metrics::counter!("rampart_radsec_handshake_failures_total", "reason" => reason).increment(1);
}

/// Serves RadSec on `listener` until `token` is cancelled, then stops
/// accepting and reading, lets in-flight requests finish and their replies
/// be written (up to `shutdown_grace`), closes the connections and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    clients: Arc<Clients>,
    handler: Arc<dyn Handler>,
    options: RadsecOptions,
    token: CancellationToken,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(options.max_connections));
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls),
        clients,
        handler,
        permits: Arc::new(Semaphore::new(options.max_in_flight)),
        options,
        tracker: TaskTracker::new(),
        token: token.clone(),
    });
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: concerns this
                    // moment, not the listener. Wait a little instead of spinning.
                    warn!(%error, "RadSec accept error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = token.cancelled() => break,
        };
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            handshake_failure("too_many_connections", peer);
            continue;
        };
        shared
            .tracker
            .spawn(connection(tcp, peer, shared.clone(), slot));
    }

    shared.tracker.close();
    if !shared.tracker.is_empty() {
        info!(
            tasks = shared.tracker.len(),
            "RadSec listener stopped accepting; finishing in-flight requests"
        );
    }
    if tokio::time::timeout(shared.options.shutdown_grace, shared.tracker.wait())
        .await
        .is_err()
    {
        warn!(
            abandoned = shared.tracker.len(),
            "shutdown grace period over; abandoning RadSec requests"
        );
    }
    Ok(())
}

/// One connection: handshake, identification, then the reader loop.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
) {
    // Replies are small and latency matters more than segment count.
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(
        shared.options.handshake_timeout,
        shared.acceptor.accept(tcp),
    );
    let mut stream = tokio::select! {
        outcome = handshake => match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                let reason = tls::handshake_failure_reason(&error);
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
    let Some(client) = identify(&stream, peer, &shared.clients) else {
        // close_notify, so the peer sees a clean refusal rather than a reset.
        let _ = stream.shutdown().await;
        return;
    };
    info!(%peer, client = %client.name, "RadSec connection established");
    metrics::counter!("rampart_radsec_connections_total", "client" => client.name.to_string())
        .increment(1);
    let _open = OpenGauge::new();

    let (reader, writer) = tokio::io::split(stream);
    // Bounded: when the peer stops reading, request tasks wait here, hold
    // their in-flight slots, and the reader stops taking new requests.
    let (replies, outbox) = mpsc::channel::<Vec<u8>>(256);
    let writer = shared.tracker.spawn(write_replies(writer, outbox, peer));
    let why = read_requests(reader, peer, client, &shared, replies).await;
    debug!(%peer, why, "RadSec connection: reader done");
    // The writer ends once the last in-flight request has sent its reply.
    let _ = writer.await;
    info!(%peer, why, "RadSec connection closed");
}

/// The client a verified peer certificate and source address belong to.
fn identify(stream: &TlsStream<TcpStream>, peer: SocketAddr, clients: &Clients) -> Option<Client> {
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
    match clients.lookup_radsec(peer.ip(), &identity) {
        Some(client) => Some(client.clone()),
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
    client: Client,
    shared: &Arc<Shared>,
    replies: mpsc::Sender<Vec<u8>>,
) -> &'static str {
    let client = Arc::new(client);
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
            let request = match admit(packet, &client, peer, &dedup) {
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
                let (handler, busy) = (shared.handler.clone(), outstanding.clone());
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
        if let Err(error) = written.await {
            debug!(%peer, %error, "RadSec write error");
            return;
        }
    }
    let _ = writer.shutdown().await;
}
