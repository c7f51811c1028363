//! One login at Duo: preauth, then the factor the user asked for, then
//! (push, phone, auto) the status long-poll. See the module docs of
//! [`super`] for the sequence and how each answer maps to an outcome.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tracing::debug;

use super::{DuoClient, DuoError, sign};
use crate::factor::oob::{
    Channel, HostedFactor, HostedOutcome, HostedRequest, LoginContext, ProviderError,
};

/// When a status long-poll comes back sooner than this with `waiting`, wait
/// the rest before asking again, so a server that does not hold the request
/// is not hammered.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Preauth's `result`.
enum Preauth {
    Auth { capabilities: Vec<String> },
    Decided(HostedOutcome),
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

fn timed_out() -> HostedOutcome {
    HostedOutcome::Deny {
        reason: "timeout",
        message: Some("No answer from Duo in time".into()),
    }
}

impl DuoClient {
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

    pub(super) async fn run(
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
        assert_eq!(
            super::super::outcome_label(&HostedOutcome::SmsSent),
            "sms_sent"
        );
    }
}
