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
pub mod sign;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use tracing::{debug, info, warn};

pub use client::DuoError;
pub use config::DuoConfig;

use crate::factor::oob::{
    Channel, HostedFactor, HostedMfa, HostedOutcome, HostedRequest, LoginContext, ProviderError,
};

/// When a status long-poll comes back sooner than this with `waiting`, wait
/// the rest before asking again, so a server that does not hold the request
/// is not hammered.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

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

/// Preauth's `result`.
enum Preauth {
    Auth { capabilities: Vec<String> },
    Decided(HostedOutcome),
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

fn protocol(message: &str) -> DuoError {
    DuoError::Transport(ProviderError::Protocol(message.into()))
}

/// The user's address for Duo's `ipaddr` (Duo policies and "remembered
/// devices" key on it): Calling-Station-Id when it is an IP address (VPNs
/// send the client's address there). Never the NAS's own address, which
/// would make every login look like it comes from the NAS network.
fn user_ip(context: &LoginContext) -> Option<String> {
    context
        .calling_station_id
        .as_deref()
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_string())
}

/// Duo's `pushinfo`: a URL-encoded `key=value&...` string shown in the push.
fn pushinfo(context: &LoginContext) -> String {
    let mut pairs = vec![("client", context.client.as_str())];
    if let Some(nas) = context.nas_identifier.as_deref().filter(|s| !s.is_empty()) {
        pairs.push(("nas", nas));
    }
    if let Some(station) = context
        .calling_station_id
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        pairs.push(("station", station));
    }
    let mut info = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", sign::quote(v)))
        .collect::<Vec<_>>()
        .join("&");
    // Duo's limit is 20,000 bytes; RADIUS attributes are at most 253 each.
    info.truncate(20_000);
    info
}

/// Audit reason and user message for a `deny` answer, from Duo's `status`.
fn denied(response: &Value) -> HostedOutcome {
    let reason = match response.get("status").and_then(Value::as_str) {
        Some("fraud") => "fraud",
        Some("locked_out") => "locked_out",
        Some("timeout") => "timeout",
        _ => "denied",
    };
    HostedOutcome::Deny {
        reason,
        message: text(response, "status_msg"),
    }
}

fn allowed(response: &Value) -> HostedOutcome {
    HostedOutcome::Allow {
        reason: match response.get("status").and_then(Value::as_str) {
            Some("bypass") => "bypass",
            _ => "ok",
        },
    }
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
            metrics::counter!("rampart_provider_errors_total", "provider" => "duo", "reason" => error.reason())
                .increment(1);
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
        let ping = self
            .transport
            .send(Method::GET, "/auth/v2/ping", &[], timeout, false)
            .await?;
        let duo_time = ping.get("time").and_then(Value::as_i64);
        self.transport
            .call(Method::GET, "/auth/v2/check", &[], timeout, deadline)
            .await?;
        Ok(CheckReport {
            clock_skew_secs: duo_time.map_or(0, |t| t - unix_now()),
        })
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

    async fn preauth(
        &self,
        context: &LoginContext,
        deadline: Instant,
    ) -> Result<Preauth, DuoError> {
        let mut params = vec![("username", context.user.clone())];
        if let Some(ip) = user_ip(context) {
            params.push(("ipaddr", ip));
        }
        let response = self
            .call(
                Method::POST,
                "/auth/v2/preauth",
                &params,
                self.short(deadline),
                deadline,
            )
            .await?;
        let message = text(&response, "status_msg");
        Ok(match response.get("result").and_then(Value::as_str) {
            Some("auth") => Preauth::Auth {
                capabilities: response
                    .get("devices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.get("capabilities").and_then(Value::as_array))
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            },
            Some("allow") => Preauth::Decided(HostedOutcome::Allow { reason: "bypass" }),
            Some("deny") => Preauth::Decided(HostedOutcome::Deny {
                reason: "policy",
                message,
            }),
            Some("enroll") => Preauth::Decided(HostedOutcome::Enroll {
                url: text(&response, "enroll_portal_url"),
            }),
            _ => {
                return Err(protocol(
                    "preauth result is not auth, allow, deny or enroll",
                ));
            }
        })
    }

    /// `/auth/v2/auth` parameters shared by every factor.
    fn auth_params(&self, context: &LoginContext, factor: &str) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("username", context.user.clone()),
            ("factor", factor.to_string()),
        ];
        if let Some(ip) = user_ip(context) {
            params.push(("ipaddr", ip));
        }
        params
    }

    /// Passcode, or SMS: answered in the same request.
    async fn auth_sync(
        &self,
        params: Vec<(&'static str, String)>,
        deadline: Instant,
    ) -> Result<HostedOutcome, DuoError> {
        let response = self
            .call(
                Method::POST,
                "/auth/v2/auth",
                &params,
                self.short(deadline),
                deadline,
            )
            .await?;
        Ok(match response.get("result").and_then(Value::as_str) {
            Some("allow") => allowed(&response),
            // Duo answers an SMS request with deny/"sent": nothing was
            // decided, passcodes are on their way.
            Some("deny") if response.get("status").and_then(Value::as_str) == Some("sent") => {
                HostedOutcome::SmsSent
            }
            Some("deny") => denied(&response),
            _ => return Err(protocol("auth result is not allow or deny")),
        })
    }

    /// Push, phone or auto: start with `async=1`, then long-poll.
    async fn auth_async(
        &self,
        context: &LoginContext,
        factor: &str,
        deadline: Instant,
    ) -> Result<HostedOutcome, DuoError> {
        let mut params = self.auth_params(context, factor);
        params.push(("device", "auto".into()));
        params.push(("async", "1".into()));
        if let Some(label) = &self.push_type {
            params.push(("type", label.clone()));
        }
        if self.pushinfo {
            params.push(("pushinfo", pushinfo(context)));
        }
        let started = self
            .call(
                Method::POST,
                "/auth/v2/auth",
                &params,
                self.short(deadline),
                deadline,
            )
            .await?;
        let txid = text(&started, "txid").ok_or_else(|| protocol("async auth without txid"))?;
        debug!(user = %context.user, factor, %txid, "Duo auth started");

        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(timed_out());
            }
            let asked = Instant::now();
            // The long-poll may hold the request until the user answers:
            // give it what is left of the login.
            let status = match self
                .call(
                    Method::GET,
                    "/auth/v2/auth_status",
                    &[("txid", txid.clone())],
                    left,
                    deadline,
                )
                .await
            {
                // Duo took the request and held it past our deadline: the
                // user did not answer in time (fail closed, not failmode).
                Err(DuoError::Transport(ProviderError::Timeout))
                    if Instant::now() + Duration::from_millis(50) >= deadline =>
                {
                    return Ok(timed_out());
                }
                other => other?,
            };
            match status.get("result").and_then(Value::as_str) {
                Some("allow") => return Ok(allowed(&status)),
                Some("deny") => return Ok(denied(&status)),
                Some("waiting") => {
                    let elapsed = asked.elapsed();
                    if elapsed < MIN_POLL_INTERVAL {
                        let pause = (MIN_POLL_INTERVAL - elapsed)
                            .min(deadline.saturating_duration_since(Instant::now()));
                        tokio::time::sleep(pause).await;
                    }
                }
                _ => return Err(protocol("auth_status result is not waiting, allow or deny")),
            }
        }
    }

    async fn run(
        &self,
        request: &HostedRequest<'_>,
        deadline: Instant,
    ) -> Result<HostedOutcome, DuoError> {
        let context = request.context;
        let capabilities = match self.preauth(context, deadline).await? {
            Preauth::Decided(outcome) => return Ok(outcome),
            Preauth::Auth { capabilities } => capabilities,
        };
        let has = |capability: &str| capabilities.iter().any(|c| c == capability);
        let no_device = |what: &str| HostedOutcome::Deny {
            reason: "no_device",
            message: Some(format!(
                "No Duo device can {what}: type a passcode after your password"
            )),
        };
        match &request.factor {
            HostedFactor::Passcode(code) => {
                let mut params = self.auth_params(context, "passcode");
                params.push(("passcode", code.expose().clone()));
                self.auth_sync(params, deadline).await
            }
            HostedFactor::Channel(Channel::Sms) if !has("sms") => Ok(no_device("receive SMS")),
            HostedFactor::Channel(Channel::Sms) => {
                let mut params = self.auth_params(context, "sms");
                params.push(("device", "auto".into()));
                self.auth_sync(params, deadline).await
            }
            HostedFactor::Channel(Channel::Push) if !has("push") => Ok(no_device("receive a push")),
            HostedFactor::Channel(Channel::Push) => {
                self.auth_async(context, "push", deadline).await
            }
            HostedFactor::Channel(Channel::Phone) if !has("phone") => Ok(no_device("take a call")),
            HostedFactor::Channel(Channel::Phone) => {
                self.auth_async(context, "phone", deadline).await
            }
            HostedFactor::Auto if !has("auto") => Ok(no_device("receive a push or call")),
            HostedFactor::Auto => self.auth_async(context, "auto", deadline).await,
        }
    }
}

fn timed_out() -> HostedOutcome {
    HostedOutcome::Deny {
        reason: "timeout",
        message: Some("No answer from Duo in time".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context(station: Option<&str>) -> LoginContext {
        LoginContext {
            user: "alice".into(),
            client: "vpn gw".into(),
            client_address: "192.0.2.1".parse().unwrap(),
            nas_identifier: Some("asa-1".into()),
            calling_station_id: station.map(str::to_string),
            time: 0,
        }
    }

    #[test]
    fn ipaddr_is_the_users_address_only() {
        assert_eq!(
            user_ip(&context(Some("203.0.113.7"))).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            user_ip(&context(Some("2001:db8::1"))).as_deref(),
            Some("2001:db8::1")
        );
        // A MAC address (Wi-Fi) or nothing: no ipaddr, never the NAS's.
        assert_eq!(user_ip(&context(Some("00-11-22-33-44-55"))), None);
        assert_eq!(user_ip(&context(None)), None);
    }

    #[test]
    fn pushinfo_is_url_encoded_pairs() {
        assert_eq!(
            pushinfo(&context(Some("203.0.113.7"))),
            "client=vpn%20gw&nas=asa-1&station=203.0.113.7"
        );
    }

    #[test]
    fn statuses_map_to_reasons() {
        let deny = |status: &str| {
            denied(&serde_json::json!({"result": "deny", "status": status, "status_msg": "m"}))
        };
        assert_eq!(
            deny("fraud"),
            HostedOutcome::Deny {
                reason: "fraud",
                message: Some("m".into())
            }
        );
        assert!(matches!(
            deny("deny"),
            HostedOutcome::Deny {
                reason: "denied",
                ..
            }
        ));
        assert!(matches!(
            deny("locked_out"),
            HostedOutcome::Deny {
                reason: "locked_out",
                ..
            }
        ));
        assert_eq!(
            allowed(&serde_json::json!({"status": "bypass"})),
            HostedOutcome::Allow { reason: "bypass" }
        );
        assert_eq!(outcome_label(&HostedOutcome::SmsSent), "sms_sent");
    }
}
