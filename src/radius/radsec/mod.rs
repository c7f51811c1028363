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
mod connection;
pub mod framing;
pub mod identity;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::server::Routes;
use crate::live::Live;

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
    /// Certificates, CA bundle and CRLs, replaced whole by a reload; each
    /// handshake uses the one current when the connection arrived.
    tls: Arc<Live<rustls::ServerConfig>>,
    /// Clients and handler, replaced whole by a reload.
    routes: Arc<Live<Routes>>,
    options: RadsecOptions,
    /// In-flight requests over all connections (`max_in_flight`).
    permits: Arc<Semaphore>,
    /// Connections, writers and requests: shutdown waits for all of them.
    tracker: TaskTracker,
    token: CancellationToken,
}

/// Counts a connection refused before it carried a request.
fn handshake_failure(reason: &'static str, peer: SocketAddr) {
    debug!(%peer, reason, "RadSec connection refused");
    metrics::counter!("rampart_radsec_handshake_failures_total", "reason" => reason).increment(1);
}

/// Serves RadSec on `listener` until `token` is cancelled, then stops
/// accepting and reading, lets in-flight requests finish and their replies
/// be written (up to `shutdown_grace`), closes the connections and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<Live<rustls::ServerConfig>>,
    routes: Arc<Live<Routes>>,
    options: RadsecOptions,
    token: CancellationToken,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(options.max_connections));
    let shared = Arc::new(Shared {
        tls,
        routes,
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
            .spawn(connection::run(tcp, peer, shared.clone(), slot));
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
