//! How rampart connects to PostgreSQL: the connect options from `[store]`
//! (URL, password file, TLS through sqlx's rustls with aws-lc-rs) and the
//! pool's sizing and timeouts.
//!
//! Connection loss: while the server is down, opening a connection is
//! retried by sqlx until `timeout_ms` runs out, so a request fails after at
//! most that long. Connections broken by a server restart are weeded out by
//! a liveness check (one round trip) before a connection that sat idle is
//! handed out, so the first requests after the server is back succeed
//! instead of each hitting a dead connection.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use super::{PgStoreError, db};
use crate::store::config::TlsMode;
use crate::store::{StoreConfig, StoreError};

/// Connections unused this long are closed (the server may have a lower
/// `idle_session_timeout`, a firewall may forget idle flows).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A pooled connection idle this long is tested (one round trip) before use.
/// Shorter than any server restart, so a connection broken by one is caught.
const RECHECK_AFTER_IDLE: Duration = Duration::from_millis(100);
/// Connections are replaced after this long, so a failover to a new primary
/// behind the same address is picked up even without errors.
const MAX_LIFETIME: Duration = Duration::from_secs(1800);

/// The connect options `[store]` describes. Reads `password_file`.
pub fn options(config: &StoreConfig) -> Result<PgConnectOptions, StoreError> {
    let url = config
        .url
        .as_deref()
        .ok_or_else(|| db(PgStoreError::NoUrl))?;
    let mut options = PgConnectOptions::from_str(url).map_err(db)?;
    if let Some(path) = &config.password_file {
        let password =
            crate::config::read_secret_file(path).map_err(|e| db(PgStoreError::PasswordFile(e)))?;
        options = options.password(&password);
    }
    if let Some(mode) = config.tls_mode {
        options = options.ssl_mode(match mode {
            TlsMode::Disable => PgSslMode::Disable,
            TlsMode::Prefer => PgSslMode::Prefer,
            TlsMode::Require => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        });
    }
    if let Some(path) = &config.ca_file {
        options = options.ssl_root_cert(path);
    }
    if let Some(path) = &config.client_cert_file {
        options = options.ssl_client_cert(path);
    }
    if let Some(path) = &config.client_key_file {
        options = options.ssl_client_key(path);
    }
    if options.get_application_name().is_none() {
        // Shows in pg_stat_activity, so a DBA can tell rampart's sessions apart.
        options = options.application_name("rampart");
    }
    Ok(options)
}

/// Whether connections to this server are encrypted and verified; for a
/// warning at start when they are not.
pub fn verifies_server(options: &PgConnectOptions) -> bool {
    matches!(
        options.get_ssl_mode(),
        PgSslMode::VerifyCa | PgSslMode::VerifyFull
    )
}

/// The pool settings: `pool_size` connections at most, none kept open when
/// idle for long, and `timeout` to get one (connecting included).
pub(super) fn pool(pool_size: u32, timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(pool_size)
        .min_connections(0)
        .acquire_timeout(timeout)
        .idle_timeout(IDLE_TIMEOUT)
        .max_lifetime(MAX_LIFETIME)
        // sqlx pings every connection when it is returned to the pool; one
        // idle for a while is pinged again before use (a server restart in
        // between would have broken it), a busy one is not: that ping would
        // be a round trip per query.
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= RECHECK_AFTER_IDLE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
}
