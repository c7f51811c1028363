//! `[radsec]`: the RADIUS over TLS listener (RFC 6614). Which NAS may connect
//! is said per `[[clients]]` entry (`radsec_cert_name`, `radsec`, `address`).
//!
//! ```toml
//! [radsec]
//! listen = "0.0.0.0:2083"
//! cert_file = "/etc/rampart/radsec.pem"      # rampart's certificate chain
//! key_file = "/etc/rampart/radsec.key"
//! ca_file = "/etc/rampart/radsec-ca.pem"     # CA(s) that sign the NAS certificates
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[radsec]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadsecConfig {
    /// TCP address and port. Default `0.0.0.0:2083`, the RadSec port (RFC 6614 §2.1):
    /// every connection must present a client certificate from `ca_file`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// PEM certificate chain rampart presents (its own certificate first). Required.
    #[serde(default)]
    pub cert_file: String,
    /// PEM private key of `cert_file`. Required.
    #[serde(default)]
    pub key_file: String,
    /// PEM bundle of the CA certificates that sign NAS (client) certificates. Required.
    #[serde(default)]
    pub ca_file: String,
    /// PEM file with the certificate revocation lists (X.509 CRLs) of the CAs
    /// that issue NAS certificates. Unset: revocation is not checked. Set:
    /// a NAS certificate listed as revoked is refused, and so is one whose
    /// issuer has no CRL in the file or whose CRL has passed its nextUpdate
    /// (fail closed, as OpenSSL does). Re-read on SIGHUP with the
    /// certificates.
    #[serde(default)]
    pub crl_file: Option<String>,
    /// Seconds a TLS handshake may take. Default 10.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// Seconds a connection with no request outstanding may stay silent
    /// before rampart closes it (RFC 6613 §2.6.3); the NAS reconnects when it
    /// needs to. Default 600.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Connections open at once, handshakes included (the handshake comes
    /// before the peer is known). Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_listen() -> String {
    "0.0.0.0:2083".into()
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    600
}
fn default_max_connections() -> usize {
    1024
}

impl RadsecConfig {
    /// The listen address, if it parses.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    /// How long a handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// How long an idle connection is kept.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// Every problem as (key below `radsec.`, message). Reads the files, so a
    /// wrong path or a key that does not match its certificate is reported
    /// before the daemon starts.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut add = |key: &str, message: String| problems.push((key.to_string(), message));
        if self.listen_addr().is_none() {
            add(
                "listen",
                format!(
                    "{:?} is not an address:port such as \"0.0.0.0:2083\"",
                    self.listen
                ),
            );
        }
        if !(1..=300).contains(&self.handshake_timeout_secs) {
            add("handshake_timeout_secs", "must be between 1 and 300".into());
        }
        if self.idle_timeout_secs == 0 {
            add(
                "idle_timeout_secs",
                "must be at least 1 (seconds without a request before closing)".into(),
            );
        }
        if self.max_connections == 0 {
            add("max_connections", "must be at least 1".into());
        }
        for (key, value, what) in [
            (
                "cert_file",
                &self.cert_file,
                "rampart's PEM certificate chain",
            ),
            (
                "key_file",
                &self.key_file,
                "the PEM private key of cert_file",
            ),
            (
                "ca_file",
                &self.ca_file,
                "the PEM CA bundle that signs the NAS certificates",
            ),
        ] {
            if value.trim().is_empty() {
                add(key, format!("missing: set it to {what}"));
            }
        }
        if self.cert_file.trim().is_empty()
            || self.key_file.trim().is_empty()
            || self.ca_file.trim().is_empty()
        {
            return problems;
        }
        if let Err(error) = super::tls::server_config(self) {
            add(error.key, error.message);
        }
        problems
    }
}
