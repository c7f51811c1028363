//! `backend = "radius"`: the password is checked by upstream RADIUS servers
//! (Microsoft NPS, FreeRADIUS, ...), asked in order with failover.
//!
//! The credentials go upstream as they came: a PAP password re-hidden with the
//! upstream secret and a fresh Request Authenticator (RFC 2865 §5.2), with any
//! appended code already split off by the pipeline; CHAP and MS-CHAPv2
//! attributes untouched (RFC 2865 §5.3, RFC 2548 §2.3). rampart's own State and
//! the NAS's Proxy-State never go upstream. Every request is signed with
//! Message-Authenticator first and every reply must verify (see [`transport`]).
//!
//! A server that does not answer is marked down for `down_secs` and skipped,
//! so only the logins that meet a failure pay its timeouts. When every server
//! is down the backend answers "unavailable" at once.

pub mod config;
pub mod pass_through;
pub mod transport;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::{debug, info, warn};

use super::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};
use crate::radius::attr;
use crate::radius::crypto::{PasswordError, hide_password};
use crate::radius::{Attribute, Code, Packet};
use crate::secret::Secret;
pub use config::{ServerConfig, UpstreamConfig};
use pass_through::PassThrough;
use transport::{Transport, TransportError};

/// Microsoft's vendor number, which carries MS-CHAP and MS-CHAPv2 (RFC 2548 §2).
const MICROSOFT: [u8; 4] = 311u32.to_be_bytes();

/// One upstream server and its health.
struct Upstream {
    transport: Transport,
    secret: Arc<Secret<Vec<u8>>>,
    /// Skipped until then after it failed to answer.
    down_until: Mutex<Option<Instant>>,
}

impl Upstream {
    fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| now < until)
    }

    fn mark_down(&self, until: Instant) {
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    /// Clears a down mark; true if there was one.
    fn mark_up(&self) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
    }
}

/// The upstream RADIUS backend.
pub struct UpstreamAuth {
    servers: Vec<Upstream>,
    timeout: Duration,
    attempts: u32,
    down_for: Duration,
    pass_through: PassThrough,
}

impl UpstreamAuth {
    /// A backend for a validated configuration (addresses are resolved now).
    pub fn new(config: &UpstreamConfig) -> Result<UpstreamAuth, String> {
        let pass_through = PassThrough::parse(&config.pass_through).map_err(|errors| {
            errors
                .into_iter()
                .map(|(i, m)| format!("primary.pass_through[{i}]: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let mut servers = Vec::with_capacity(config.servers.len());
        for (i, server) in config.servers.iter().enumerate() {
            let address = server
                .resolve()
                .map_err(|m| format!("primary.servers[{i}].address: {m}"))?;
            let secret = Arc::new(
                server
                    .load_secret()
                    .map_err(|(field, m)| format!("primary.servers[{i}].{field}: {m}"))?,
            );
            if !server.require_message_authenticator {
                warn!(server = %address, "upstream replies are accepted without Message-Authenticator: exposed to BLAST-RADIUS (CVE-2024-3596)");
            }
            servers.push(Upstream {
                transport: Transport::new(
                    address,
                    secret.clone(),
                    server.require_message_authenticator,
                ),
                secret,
                down_until: Mutex::new(None),
            });
        }
        if servers.is_empty() {
            return Err("primary.servers: no upstream server configured".into());
        }
        Ok(UpstreamAuth {
            servers,
            timeout: config.timeout(),
            attempts: config.retries + 1,
            down_for: config.down_for(),
            pass_through,
        })
    }

    /// The server addresses, in failover order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.transport.server()).collect()
    }

    fn outcome(&self, reply: &Packet) -> Result<PrimaryOutcome, PrimaryError> {
        match reply.code {
            Code::AccessAccept => Ok(PrimaryOutcome::Accepted(UserInfo {
                reply_attributes: self.pass_through.filter(&reply.attributes),
                ..UserInfo::default()
            })),
            // The upstream Reply-Message is not shown: a Denied outcome would not
            // count toward rampart's lockout, and an upstream that adds a message
            // to every reject would then switch the lockout off.
            Code::AccessReject => Ok(PrimaryOutcome::BadPassword),
            Code::AccessChallenge => Ok(PrimaryOutcome::Denied {
                reason: "upstream_challenge_unsupported",
                message: None,
            }),
            other => Err(PrimaryError::Unavailable(format!(
                "upstream answered an Access-Request with {}",
                other.name()
            ))),
        }
    }
}

/// True when the request carries credentials other than a PAP password that the
/// upstream server can check in one round: CHAP, MS-CHAP or MS-CHAPv2. (EAP
/// needs upstream Access-Challenges, which are not relayed yet.)
fn has_forwardable_credentials(attributes: &[Attribute]) -> bool {
    attributes.iter().any(|a| match a.typ {
        attr::CHAP_PASSWORD => true,
        // MS-CHAP-Response (1), MS-CHAP2-Response (25) (RFC 2548 §2.3).
        attr::VENDOR_SPECIFIC => {
            a.value.len() > 4 && a.value[..4] == MICROSOFT && matches!(a.value[4], 1 | 25)
        }
        _ => false,
    })
}

/// The attributes sent upstream: everything the NAS sent except what belongs to
/// the NAS–rampart hop, plus the re-hidden password or the CHAP challenge.
fn forwarded_attributes(
    request: &PrimaryRequest<'_>,
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<Attribute>, PasswordError> {
    let received = &request.request.attributes;
    let mut attributes: Vec<Attribute> = received
        .iter()
        .filter(|a| {
            // Already absent from AccessRequest::attributes; filtered again so
            // that this function alone guarantees none of them goes upstream.
            !matches!(
                a.typ,
                attr::USER_PASSWORD | attr::MESSAGE_AUTHENTICATOR | attr::STATE | attr::PROXY_STATE
            )
        })
        .cloned()
        .collect();
    if let Some(password) = request.password {
        let hidden = hide_password(password.expose().as_bytes(), secret, authenticator)?;
        attributes.push(Attribute::new(attr::USER_PASSWORD, hidden));
    } else if received.iter().any(|a| a.typ == attr::CHAP_PASSWORD)
        && !received.iter().any(|a| a.typ == attr::CHAP_CHALLENGE)
    {
        // Without CHAP-Challenge the NAS's Request Authenticator was the challenge
        // (RFC 2865 §5.3); ours is a different one, so name it explicitly.
        attributes.push(Attribute::new(
            attr::CHAP_CHALLENGE,
            request.request.authenticator,
        ));
    }
    Ok(attributes)
}

#[async_trait]
impl PrimaryAuth for UpstreamAuth {
    fn forwards_credentials(&self) -> bool {
        true
    }

    async fn verify(&self, request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError> {
        if request.password.is_none() && !has_forwardable_credentials(&request.request.attributes) {
            return Ok(PrimaryOutcome::Denied {
                reason: "no_password",
                message: Some(
                    "This server needs the password sent as PAP, CHAP or MS-CHAPv2.".into(),
                ),
            });
        }
        let mut failures = Vec::new();
        for upstream in &self.servers {
            let server = upstream.transport.server();
            if upstream.is_down(Instant::now()) {
                debug!(%server, "upstream RADIUS server marked down: skipped");
                failures.push(format!("{server}: marked down"));
                continue;
            }
            // A fresh Request Authenticator per server: it keys the password hiding.
            let authenticator: [u8; 16] = rand::random();
            let attributes =
                forwarded_attributes(request, upstream.secret.expose(), &authenticator).map_err(
                    |e| PrimaryError::Unavailable(format!("cannot forward the password: {e}")),
                )?;
            let answer = upstream
                .transport
                .access_request(authenticator, &attributes, self.timeout, self.attempts)
                .await;
            match answer {
                Ok(reply) => {
                    if upstream.mark_up() {
                        info!(%server, "upstream RADIUS server answers again");
                    }
                    debug!(%server, code = reply.code.name(), "upstream reply");
                    return self.outcome(&reply);
                }
                Err(error @ TransportError::Encode(_)) => {
                    return Err(PrimaryError::Unavailable(format!(
                        "cannot forward the request: {error}"
                    )));
                }
                Err(error @ TransportError::Busy(_)) => {
                    // Overloaded here, not down there: try the next server.
                    warn!(%server, %error, "upstream RADIUS transport full");
                    failures.push(format!("{server}: {error}"));
                }
                Err(error) => {
                    upstream.mark_down(Instant::now() + self.down_for);
                    metrics::counter!("rampart_upstream_failures_total", "server" => server.to_string())
                        .increment(1);
                    warn!(%server, %error, down_secs = self.down_for.as_secs(), "upstream RADIUS server did not answer: skipping it");
                    failures.push(format!("{server}: {error}"));
                }
            }
        }
        Err(PrimaryError::Unavailable(format!(
            "no upstream RADIUS server answered ({})",
            failures.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests;
