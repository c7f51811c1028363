//! Duo Auth API v2 as a [`HostedMfa`]: for sites that already run Duo, the
//! whole second factor happens at Duo and rampart only asks.
//!
//! One login (`../shared/notes/protocol.md` §5.2; Duo Auth API v2 docs):
//! 1. `POST /auth/v2/preauth` (`username`, `ipaddr`): `allow` (a bypass
//!    user) → Allow, `deny` → Deny with Duo's message, `enroll` → Enroll
//!    with the portal URL, `auth` → step 2.
//! 2. `POST /auth/v2/auth` with the factor the user asked for
//!    (`secret` → `auto`, `secret,push`, `secret,phone`, `secret,sms`,
//!    `secret,123456` → `passcode`). Push, phone and auto run with
//!    `async=1` and `device=auto`; passcode and sms are answered at once
//!    (sms answers `deny` with status `sent`: codes went out, sign in again
//!    with one).
//! 3. `GET /auth/v2/auth_status?txid=` long-polls until `allow` or `deny`
//!    (status `fraud` when the user reported it) or the login's deadline.
//!
//! Failures that mean "Duo is not usable" (timeout, connection, TLS, 5xx,
//! 401 for our keys or clock, unreadable JSON, rate limit with no time left)
//! become [`HostedOutcome::Unavailable`] and the pipeline applies
//! `failmode`; a 4xx about the request itself is a Deny (fail closed).
//! Every request is signed ([`sign`]); the secret key, the Authorization
//! header and passcodes are never logged.

pub mod client;
pub mod config;
mod flow;
pub mod sign;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use tracing::{info, warn};

pub use client::DuoError;
pub use config::DuoConfig;

use crate::factor::oob::{HostedMfa, HostedOutcome, HostedRequest};

/// A Duo Auth API v2 client for one integration (ikey/skey/api_host).
pub struct DuoClient {
    transport: client::Transport,
    push_type: Option<String>,
    pushinfo: bool,
}

/// What `/auth/v2/check` told us at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Duo's clock minus ours, seconds (Duo refuses requests whose `Date`
    /// is more than a few minutes off).
    pub clock_skew_secs: i64,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn outcome_label(outcome: &HostedOutcome) -> &'static str {
    match outcome {
        HostedOutcome::Allow { reason: "bypass" } => "bypass",
        HostedOutcome::Allow { .. } => "allow",
        HostedOutcome::Deny {
            reason: "fraud", ..
        } => "fraud",
        HostedOutcome::Deny {
            reason: "timeout", ..
        } => "timeout",
        HostedOutcome::Deny { .. } => "deny",
        HostedOutcome::Enroll { .. } => "enroll",
        HostedOutcome::SmsSent => "sms_sent",
        HostedOutcome::Unavailable { .. } => "unavailable",
    }
}

/// Counts a failed call by reason.
fn count_error(error: &DuoError) {
    metrics::counter!("rampart_provider_errors_total", "provider" => "duo", "reason" => error.reason())
        .increment(1);
}

impl DuoClient {
    /// A client for the configured integration. Reads `skey_file` and
    /// `ca_file`; makes no request.
    pub fn new(config: &DuoConfig) -> Result<DuoClient, DuoError> {
        Ok(DuoClient {
            transport: client::Transport::new(config)?,
            push_type: config.push_type.clone(),
            pushinfo: config.pushinfo,
        })
    }

    /// One signed call; a failure is counted by reason and logged (never
    /// with the request's parameters: they hold passcodes).
    async fn call(
        &self,
        method: Method,
        path: &'static str,
        params: &[(&str, String)],
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Value, DuoError> {
        let result = self
            .transport
            .call(method, path, params, timeout, deadline)
            .await;
        if let Err(error) = &result {
            count_error(error);
            warn!(path, reason = error.reason(), %error, "Duo request failed");
        }
        result
    }

    /// The time limit for a short call: `timeout_secs`, or less if the
    /// login has less left.
    fn short(&self, deadline: Instant) -> Duration {
        self.transport
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }

    /// Start-up probe: `/auth/v2/ping` (unsigned: is Duo reachable) then
    /// `/auth/v2/check` (signed: are ikey, skey and our clock accepted).
    pub async fn check(&self) -> Result<CheckReport, DuoError> {
        let deadline = Instant::now() + self.transport.timeout * 2;
        let timeout = self.transport.timeout;
        let probe = async {
            let ping = self
                .transport
                .send(Method::GET, "/auth/v2/ping", &[], timeout, false)
                .await?;
            self.transport
                .call(Method::GET, "/auth/v2/check", &[], timeout, deadline)
                .await?;
            Ok(ping.get("time").and_then(Value::as_i64))
        };
        match probe.await {
            Ok(duo_time) => Ok(CheckReport {
                clock_skew_secs: duo_time.map_or(0, |t| t - unix_now()),
            }),
            Err(error) => {
                count_error(&error);
                Err(error)
            }
        }
    }

    /// Runs [`DuoClient::check`] and logs the result; never fails (Duo may
    /// come back later, and `failmode` decides meanwhile).
    pub async fn log_check(&self) {
        match self.check().await {
            Ok(report) if report.clock_skew_secs.abs() > 60 => warn!(
                skew_secs = report.clock_skew_secs,
                "Duo reachable and keys accepted, but this host's clock is off: Duo refuses requests dated more than a few minutes off"
            ),
            Ok(_) => info!("Duo reachable, integration key and secret key accepted"),
            Err(error) => warn!(
                reason = error.reason(),
                %error,
                "Duo check failed at start-up: logins will use failmode until Duo answers"
            ),
        }
    }
}

#[async_trait]
impl HostedMfa for DuoClient {
    async fn authenticate(&self, request: &HostedRequest<'_>) -> HostedOutcome {
        let deadline = Instant::now() + request.deadline;
        let outcome = match self.run(request, deadline).await {
            Ok(outcome) => outcome,
            Err(error) if error.is_unavailable() => HostedOutcome::Unavailable {
                reason: error.reason(),
            },
            Err(_) => HostedOutcome::Deny {
                reason: "rejected",
                message: Some("Duo refused the request".into()),
            },
        };
        metrics::counter!("rampart_provider_requests_total", "provider" => "duo", "outcome" => outcome_label(&outcome))
            .increment(1);
        info!(user = %request.context.user, outcome = outcome_label(&outcome), "Duo second factor");
        outcome
    }
}
