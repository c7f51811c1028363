//! SIGHUP: read the configuration file again and switch to it without a
//! restart — clients and their secrets, `[policy]`, `[primary]`, `[totp]`,
//! `[username]`, and the out-of-band providers with their secrets.
//!
//! - The new file goes through exactly what `check-config` runs; if it has
//!   problems they are logged as `FILE: key: message` and the running
//!   configuration stays. So does it when a backend cannot be built from it
//!   (an unreadable CA file).
//! - A new pipeline is built over the same store, key and audit writer, and
//!   takes over the parked out-of-band logins (one pending table for the life
//!   of the process), the per-user send history and the pending
//!   Access-Challenges. The RADIUS listener picks it up with the new client
//!   table in one swap ([`Routes`]); requests already running finish on the
//!   old pipeline, and the duplicate cache, owned by the listener, is
//!   untouched. A login waiting for a push keeps waiting, and its answer
//!   still reaches it.
//! - What is bound or opened once — listener addresses, `[store]`, `[log]`,
//!   the listener's limits, the portal and admin API — needs a restart; a
//!   reload that changes them says so in the log and applies the rest.

use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Carry, build_out_of_band_relay, build_pipeline, families, notify};
use crate::audit::AuditLog;
use crate::config::Config;
use crate::factor::oob::OobHandle;
use crate::factor::push::PushConfig;
use crate::live::Live;
use crate::pipeline::Pipeline;
use crate::radius::Routes;
use crate::radius::radsec::config::RadsecConfig;
use crate::seal::SealKey;
use crate::secret::Secret;
use crate::store::Store;

/// The running daemon as a reload sees it: what it keeps, and the handles
/// through which the listeners read what it replaces.
pub(super) struct Running {
    /// The configuration the listeners were started with (the reference for
    /// settings that need a restart).
    pub started: Config,
    /// The store, sealing key and audit writer: kept.
    pub store: Arc<dyn Store>,
    pub key: Arc<SealKey>,
    pub audit: AuditLog,
    /// Parked logins, reused tables: kept.
    pub carry: Mutex<Carry>,
    /// The pipeline in use (admin API, portal and `/readyz` read its primary).
    pub pipeline: Arc<Live<Pipeline>>,
    /// What the RADIUS listener reads per datagram.
    pub routes: Arc<Live<Routes>>,
    /// The RadSec listener's TLS configuration, read per handshake.
    pub radsec_tls: Option<Arc<Live<rustls::ServerConfig>>>,
    /// What the HTTP listener and the portal read for out-of-band answers.
    pub oob: OobHandle,
    /// The ntfy reply relay, if one runs.
    pub relay: Mutex<Option<Relay>>,
    /// Cancelled at shutdown; relays run on child tokens of it.
    pub shutdown: CancellationToken,
}

/// A running ntfy reply relay and what it was started with.
pub(super) struct Relay {
    pub key: RelayKey,
    pub cancel: CancellationToken,
}

/// What a reply relay depends on; a reload restarts the relay only when it
/// changes (a reconnection could miss an answer published meanwhile).
pub(super) struct RelayKey {
    subscription: String,
    token: Option<Secret<String>>,
}

impl RelayKey {
    /// `None` when `[push]` runs no relay.
    pub fn of(push: &PushConfig) -> Option<RelayKey> {
        let topic = push.reply_topic.as_ref()?;
        Some(RelayKey {
            subscription: format!("{:?} {:?} {topic}", push.format, push.base_url()),
            token: push.token().ok().flatten(),
        })
    }

    fn same(&self, other: &RelayKey) -> bool {
        let tokens = match (&self.token, &other.token) {
            (Some(a), Some(b)) => bool::from(a.expose().as_bytes().ct_eq(b.expose().as_bytes())),
            (None, None) => true,
            _ => false,
        };
        self.subscription == other.subscription && tokens
    }
}

/// Reloads on every SIGHUP until shutdown, telling systemd (`RELOADING=1`,
/// then `READY=1`).
pub(super) async fn on_hangup(running: Arc<Running>, mut hangup: Signal) {
    loop {
        tokio::select! {
            received = hangup.recv() => if received.is_none() { return },
            _ = running.shutdown.cancelled() => return,
        }
        info!("SIGHUP: reloading {}", running.started.source.display());
        notify::reloading();
        let status = if running.reload() {
            "running; configuration reloaded"
        } else {
            "running; the last reload was refused (see the log), previous configuration in use"
        };
        notify::ready(status);
    }
}

impl Running {
    /// Reads and applies the configuration file; false if it was refused.
    pub fn reload(&self) -> bool {
        let applied = self.try_reload();
        let outcome = if applied { "ok" } else { "refused" };
        metrics::counter!("rampart_config_reloads_total", "outcome" => outcome).increment(1);
        metrics::gauge!("rampart_config_last_reload_successful").set(f64::from(u8::from(applied)));
        applied
    }

    fn try_reload(&self) -> bool {
        let config = match crate::config::load(&self.started.source) {
            Ok(config) => config,
            Err(problems) => {
                // The same lines `rampart check-config` prints.
                for line in problems.to_string().lines() {
                    error!("{line}");
                }
                error!(
                    problems = problems.problems.len(),
                    "reload refused: the configuration file has problems; the running configuration stays"
                );
                return false;
            }
        };
        for line in config.warning_lines() {
            warn!("{line}");
        }
        let carry = self.carry.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let pipeline = match build_pipeline(
            &config,
            self.store.clone(),
            self.key.clone(),
            Some(self.audit.clone()),
            &carry,
        ) {
            Ok(pipeline) => Arc::new(pipeline),
            Err(error) => {
                error!("reload refused: {error:#}; the running configuration stays");
                return false;
            }
        };
        let oob = pipeline.out_of_band();
        // Certificates, CA bundle and CRLs are re-read, so that a renewed
        // certificate or CRL needs no restart. Read before anything changes.
        let radsec_tls = match (&self.radsec_tls, &config.radsec) {
            (Some(_), Some(radsec)) => match crate::radius::radsec::tls::server_config(radsec) {
                Ok(tls) => Some(tls),
                Err(error) => {
                    error!("reload refused: {error}; the running configuration stays");
                    return false;
                }
            },
            _ => None,
        };

        // The relay first: if it cannot start, nothing has changed yet.
        let mut relay = self.relay.lock().unwrap_or_else(|e| e.into_inner());
        let wanted = config.push.as_ref().and_then(RelayKey::of);
        let keep =
            matches!((&*relay, &wanted), (Some(running), Some(wanted)) if running.key.same(wanted));
        let mut replaced = None;
        if !keep {
            let started = match (&config.push, &oob, wanted) {
                (Some(push), Some(oob), Some(key)) => {
                    let cancel = self.shutdown.child_token();
                    match build_out_of_band_relay(push, oob.clone(), cancel.clone()) {
                        Ok(true) => Some(Relay { key, cancel }),
                        Ok(false) => None,
                        Err(error) => {
                            error!("reload refused: {error:#}; the running configuration stays");
                            return false;
                        }
                    }
                }
                _ => None,
            };
            replaced = std::mem::replace(&mut *relay, started);
        }
        drop(relay);

        // The switch. New datagrams see the new clients and pipeline together.
        self.routes.store(Arc::new(Routes {
            clients: Arc::new(config.clients.clone()),
            handler: pipeline.clone(),
        }));
        self.oob.replace(oob.clone());
        self.pipeline.store(pipeline.clone());
        if let (Some(live), Some(tls)) = (&self.radsec_tls, radsec_tls) {
            live.store(tls);
            info!("RadSec: certificate, CA bundle and CRLs re-read; new connections use them");
        }
        if let Some(old) = replaced {
            old.cancel.cancel();
            info!("push: ntfy reply relay restarted with the new [push] settings");
        }
        *self.carry.lock().unwrap_or_else(|e| e.into_inner()) = carry.after(&pipeline);
        families::register(&config);

        for client in config.clients.iter() {
            if !client.require_message_authenticator {
                warn!(client = %client.name, "client does not require Message-Authenticator: exposed to BLAST-RADIUS (CVE-2024-3596)");
            }
        }
        let restart = needs_restart(&self.started, &config);
        if !restart.is_empty() {
            warn!(
                keys = %restart.join(", "),
                "these settings take effect only after a restart (systemctl restart rampart); everything else is applied"
            );
        }
        info!(
            clients = config.clients.iter().count(),
            parked = carry.pending.len(),
            "configuration reloaded"
        );
        true
    }
}

/// Settings a reload cannot apply: sockets bound, files opened and
/// components built once at start. Compared with what the daemon started with.
fn needs_restart(started: &Config, new: &Config) -> Vec<&'static str> {
    let differ = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        // Compared, never logged (these may hold secrets).
        format!("{a:?}") != format!("{b:?}")
    };
    let mut keys = Vec::new();
    if started.listen != new.listen {
        keys.push("radius.listen");
    }
    if started.http_listen != new.http_listen {
        keys.push("http.listen");
    }
    if started.max_in_flight != new.max_in_flight {
        keys.push("radius.max_in_flight");
    }
    if started.duplicate_ttl != new.duplicate_ttl {
        keys.push("radius.duplicate_cache_secs");
    }
    if differ(&started.store, &new.store) {
        keys.push("store");
    }
    if started.log_level != new.log_level || started.log_format != new.log_format {
        keys.push("log");
    }
    if started.public_url != new.public_url {
        keys.push("http.public_url");
    }
    if differ(&started.portal, &new.portal) {
        keys.push("portal");
    }
    if differ(&started.admin, &new.admin) {
        keys.push("admin");
    }
    if differ(&started.smtp, &new.smtp) {
        keys.push("smtp");
    }
    // The RadSec socket and its limits are set up once; its files (re-read)
    // and which clients may connect (`[[clients]]`) are reloaded.
    let sockets_only = |radsec: &Option<RadsecConfig>| {
        radsec.clone().map(|radsec| RadsecConfig {
            cert_file: String::new(),
            key_file: String::new(),
            ca_file: String::new(),
            crl_file: None,
            ..radsec
        })
    };
    if differ(&sockets_only(&started.radsec), &sockets_only(&new.radsec)) {
        keys.push("radsec");
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(json: &str) -> PushConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_relay_restarts_only_when_its_subscription_or_token_changes() {
        let base = r#"{"format": "ntfy", "url": "https://ntfy.example", "reply_topic": "rampart-replies-0123456789abcdef", "token": "tk_one"}"#;
        let key = |json: &str| RelayKey::of(&push(json));
        let running = key(base).unwrap();
        assert!(running.same(&key(base).unwrap()));
        // Other [push] settings do not touch the subscription.
        let slower = base.replace("\"token\"", "\"timeout_secs\": 9, \"token\"");
        assert!(running.same(&key(&slower).unwrap()));
        for changed in [
            base.replace("tk_one", "tk_two"),
            base.replace("ntfy.example", "ntfy2.example"),
            base.replace("0123456789abcdef", "fedcba9876543210"),
        ] {
            assert!(!running.same(&key(&changed).unwrap()), "{changed}");
        }
        // No reply topic: no relay at all.
        assert!(key(r#"{"format": "ntfy", "url": "https://ntfy.example"}"#).is_none());
    }
}
