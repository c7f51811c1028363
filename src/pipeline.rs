//! The request path. [`Pipeline::decide`] reads top to bottom: user name →
//! pending challenge → lockout → password (with an appended code split off) →
//! enrollment policy → second factor → decision. Every error becomes a
//! [`Decision`] here and nowhere else, and every decision gets one audit line.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tracing::{info, warn};

use crate::auth::{PrimaryAuth, PrimaryOutcome, PrimaryRequest, UserInfo};
use crate::config::{Policy, Unenrolled};
use crate::factor::recovery::RecoveryCodes;
use crate::factor::totp::{TotpError, TotpFactor, TotpOutcome};
use crate::factor::{Response, classify};
use crate::radius::{AccessRequest, Attribute, Decision, Handler};
use crate::secret::Secret;
use crate::session::Challenges;
use crate::store::{LoginState, Store};
use crate::username::UsernameConfig;

/// Prompt sent with an Access-Challenge.
pub const CHALLENGE_PROMPT: &str = "Enter the 6-digit code from your authenticator app";

/// The decision and what the audit line says about it.
struct Verdict {
    decision: Decision,
    reason: &'static str,
    factor: &'static str,
}

impl Verdict {
    fn accept(
        reason: &'static str,
        factor: &'static str,
        message: Option<String>,
        attributes: Vec<Attribute>,
    ) -> Verdict {
        Verdict {
            decision: Decision::Accept {
                reply_message: message,
                attributes,
            },
            reason,
            factor,
        }
    }

    fn reject(reason: &'static str, factor: &'static str, message: Option<&str>) -> Verdict {
        Verdict {
            decision: Decision::Reject {
                reply_message: message.map(str::to_string),
            },
            reason,
            factor,
        }
    }
}

/// The MFA pipeline.
pub struct Pipeline {
    primary: Arc<dyn PrimaryAuth>,
    totp: TotpFactor,
    recovery: RecoveryCodes,
    store: Arc<dyn Store>,
    policy: Policy,
    username: UsernameConfig,
    challenges: Challenges,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Splits `password,123456` at the last separator when what follows looks like
/// a code (six digits or a recovery code); otherwise the whole text is the password.
fn split_code(password: &str, separator: &str) -> (Secret<String>, Option<Secret<String>>) {
    if let Some(index) = password.rfind(separator) {
        let suffix = &password[index + separator.len()..];
        if classify(suffix).is_some() {
            return (
                Secret::new(password[..index].to_string()),
                Some(Secret::new(suffix.to_string())),
            );
        }
    }
    (Secret::new(password.to_string()), None)
}

impl Pipeline {
    /// Assembles the pipeline.
    pub fn new(
        primary: Arc<dyn PrimaryAuth>,
        totp: TotpFactor,
        recovery: RecoveryCodes,
        store: Arc<dyn Store>,
        policy: Policy,
        username: UsernameConfig,
    ) -> Pipeline {
        let challenges = Challenges::new(policy.challenge_ttl);
        Pipeline {
            primary,
            totp,
            recovery,
            store,
            policy,
            username,
            challenges,
        }
    }

    /// Decides one request.
    async fn decide(&self, request: &AccessRequest, user: &str) -> Verdict {
        if user.is_empty() {
            return Verdict::reject("missing_user_name", "none", None);
        }
        let now = unix_now();

        // The answer to an Access-Challenge: State + code in User-Password.
        if let Some(state) = &request.state {
            let Some(pending) = self.challenges.take(state, Instant::now()) else {
                return Verdict::reject(
                    "unknown_or_expired_state",
                    "totp",
                    Some("The sign-in took too long or was already used. Please start again."),
                );
            };
            if pending.user != user || pending.client != request.client {
                return Verdict::reject("state_mismatch", "totp", None);
            }
            let state = match self.login_state(user, now).await {
                Ok(state) => state,
                Err(verdict) => return verdict,
            };
            let Some(code) = &request.password else {
                return Verdict::reject("missing_code", "totp", Some(CHALLENGE_PROMPT));
            };
            return self
                .second_factor(user, &state, code.expose(), now, pending.attributes)
                .await;
        }

        let state = match self.login_state(user, now).await {
            Ok(state) => state,
            Err(verdict) => return verdict,
        };
        // With a password backend, User-Password is "password" or "password,code";
        // without one (backend = "none") it is the code itself, if present.
        let (password, code) = match (&request.password, self.primary.requires_password()) {
            (Some(typed), true) => {
                let (password, code) = split_code(typed.expose(), &self.policy.code_separator);
                (Some(password), code)
            }
            (typed, false) => (None, typed.clone()),
            // CHAP or MS-CHAPv2 for a backend that forwards them: the code
            // cannot be appended to a hashed password, so it is challenged for.
            (None, true) if self.primary.forwards_credentials() => (None, None),
            (None, true) => {
                return Verdict::reject(
                    "no_password",
                    "none",
                    Some("This server needs the password sent as PAP (User-Password)."),
                );
            }
        };
        if password.as_ref().is_some_and(|p| p.expose().is_empty()) {
            // An empty password is an unauthenticated bind in LDAP: never pass it on.
            return Verdict::reject("empty_password", "none", None);
        }

        let primary_request = PrimaryRequest {
            user,
            password: password.as_ref(),
            request,
        };
        let info: UserInfo = match self.primary.verify(&primary_request).await {
            Ok(PrimaryOutcome::Accepted(info)) => info,
            Ok(PrimaryOutcome::UnknownUser) => {
                let locked_now = self.record_failure(user, now).await;
                return Verdict::reject("unknown_user", "none", locked_now.as_deref());
            }
            Ok(PrimaryOutcome::BadPassword) => {
                let locked_now = self.record_failure(user, now).await;
                return Verdict::reject("bad_password", "none", locked_now.as_deref());
            }
            Ok(PrimaryOutcome::Denied { reason, message }) => {
                return Verdict::reject(reason, "none", message.as_deref());
            }
            Err(error) => {
                warn!(%error, user, "primary authentication unavailable");
                return Verdict::reject(error.reason(), "none", None);
            }
        };
        if info.mfa_exempt {
            self.record_success(user, now, &state).await;
            return Verdict::accept("mfa_exempt", "none", None, info.reply_attributes);
        }

        if state.totp.is_none() {
            return match self.policy.unenrolled {
                Unenrolled::Allow => {
                    self.record_success(user, now, &state).await;
                    Verdict::accept("unenrolled_allowed", "none", None, info.reply_attributes)
                }
                Unenrolled::Reject => {
                    let message = match &self.policy.enroll_url {
                        Some(url) => format!(
                            "A second factor is required. Enroll an authenticator app at {url}, then sign in again."
                        ),
                        None => "A second factor is required. Ask your administrator to enroll your authenticator app.".to_string(),
                    };
                    Verdict::reject("not_enrolled", "none", Some(&message))
                }
            };
        }

        match code {
            Some(code) => {
                self.second_factor(user, &state, code.expose(), now, info.reply_attributes)
                    .await
            }
            None => match self.challenges.issue(
                user,
                request.client.clone(),
                info.reply_attributes,
                Instant::now(),
            ) {
                Some(state) => Verdict {
                    decision: Decision::Challenge {
                        state,
                        reply_message: CHALLENGE_PROMPT.to_string(),
                    },
                    reason: "code_required",
                    factor: "totp",
                },
                None => Verdict::reject("too_many_pending_challenges", "totp", None),
            },
        }
    }

    /// Checks a TOTP or recovery code for a user whose password was right.
    async fn second_factor(
        &self,
        user: &str,
        state: &LoginState,
        typed: &str,
        now: u64,
        reply_attributes: Vec<Attribute>,
    ) -> Verdict {
        let outcome = match classify(typed) {
            None => {
                let locked_now = self.record_failure(user, now).await;
                return Verdict::reject(
                    "malformed_code",
                    "totp",
                    Some(locked_now.as_deref().unwrap_or(CHALLENGE_PROMPT)),
                );
            }
            Some(Response::Totp(code)) => match self.check_totp(user, state, &code, now).await {
                Ok(TotpOutcome::Accepted) => {
                    self.record_success(user, now, state).await;
                    return Verdict::accept("ok", "totp", None, reply_attributes);
                }
                Ok(TotpOutcome::Wrong) => ("bad_code", "totp", "Wrong code."),
                Ok(TotpOutcome::Replayed) => (
                    "replayed_code",
                    "totp",
                    "This code was already used. Wait for the next code and sign in again.",
                ),
                Ok(TotpOutcome::NotEnrolled) => {
                    ("not_enrolled", "totp", "No authenticator app is enrolled.")
                }
                Err(error) => {
                    warn!(%error, user, "TOTP check failed");
                    return Verdict::reject("store_unavailable", "totp", None);
                }
            },
            Some(Response::Recovery(code)) => match self.recovery.redeem(user, &code).await {
                Ok(true) => {
                    self.record_success(user, now, state).await;
                    let left = self
                        .store
                        .user(user)
                        .await
                        .ok()
                        .flatten()
                        .map_or(0, |u| u.recovery_codes_left);
                    return Verdict::accept(
                        "ok",
                        "recovery",
                        Some(format!(
                            "You signed in with a recovery code; {left} left. Enroll your authenticator again if your phone is lost."
                        )),
                        reply_attributes,
                    );
                }
                Ok(false) => (
                    "bad_recovery_code",
                    "recovery",
                    "Wrong or already used recovery code.",
                ),
                Err(error) => {
                    warn!(%error, user, "recovery code check failed");
                    return Verdict::reject("store_unavailable", "recovery", None);
                }
            },
        };
        let (reason, factor, message) = outcome;
        let locked_now = self.record_failure(user, now).await;
        Verdict::reject(
            reason,
            factor,
            Some(locked_now.as_deref().unwrap_or(message)),
        )
    }

    /// Checks a TOTP code against the enrollment read with the login state.
    async fn check_totp(
        &self,
        user: &str,
        state: &LoginState,
        code: &str,
        now: u64,
    ) -> Result<TotpOutcome, TotpError> {
        match &state.totp {
            None => Ok(TotpOutcome::NotEnrolled),
            Some(record) => self.totp.verify_record(user, record, code, now).await,
        }
    }

    /// Reads the user's login state; a Reject if the user is locked out now
    /// or the store cannot answer.
    async fn login_state(&self, user: &str, now: u64) -> Result<LoginState, Verdict> {
        match self.store.login_state(user, now as i64).await {
            Ok(LoginState {
                locked_until: Some(until),
                ..
            }) => {
                let minutes = ((until - now as i64) + 59) / 60;
                Err(Verdict::reject(
                    "locked_out",
                    "none",
                    Some(&format!(
                        "Too many failed attempts: this account is locked. Try again in {minutes} minute(s)."
                    )),
                ))
            }
            Ok(state) => Ok(state),
            Err(error) => {
                warn!(%error, user, "store unavailable");
                Err(Verdict::reject("store_unavailable", "none", None))
            }
        }
    }

    /// Counts a consecutive failure; returns the lockout message if this one locked the user.
    async fn record_failure(&self, user: &str, now: u64) -> Option<String> {
        let lock_secs = self.policy.lockout.as_secs() as i64;
        match self
            .store
            .record_failure(user, now as i64, self.policy.max_failures, lock_secs)
            .await
        {
            Ok(Some(_)) => {
                warn!(
                    user,
                    minutes = lock_secs / 60,
                    "user locked out after repeated failures"
                );
                metrics::counter!("rampart_lockouts_total").increment(1);
                Some(format!(
                    "Too many failed attempts: this account is locked for {} minute(s).",
                    lock_secs / 60
                ))
            }
            Ok(None) => None,
            Err(error) => {
                warn!(%error, user, "cannot record failed attempt");
                None
            }
        }
    }

    /// Resets the failure count and records the login time. Skipped when there
    /// is nothing to reset and the last login was recorded less than a minute
    /// ago: one write fewer per login on a busy gateway.
    async fn record_success(&self, user: &str, now: u64, state: &LoginState) {
        let now = now as i64;
        // Without an account row there is no last_login to keep (a directory
        // user who never enrolled), so only a failure count needs resetting.
        let recent = !state.has_account || state.last_login.is_some_and(|t| (now - t).abs() < 60);
        if state.failures == 0 && state.locked_until.is_none() && recent {
            return;
        }
        if let Err(error) = self.store.record_success(user, now).await {
            warn!(%error, user, "cannot record successful login");
        }
    }
}

#[async_trait]
impl Handler for Pipeline {
    async fn handle(&self, request: AccessRequest) -> Decision {
        let started = Instant::now();
        let user = self.username.normalize(&request.user_name);
        let verdict = self.decide(&request, &user).await;
        let elapsed = started.elapsed();
        let outcome = verdict.decision.outcome();
        // The audit line: who, from where, what was decided and why. Never a
        // password, code, State or secret.
        info!(
            target: "rampart::audit",
            user = %user,
            client = %request.client,
            nas_ip = %request.nas_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            nas_identifier = %request.nas_identifier.as_deref().unwrap_or_default(),
            calling_station_id = %request.calling_station_id.as_deref().unwrap_or_default(),
            outcome,
            reason = verdict.reason,
            factor = verdict.factor,
            duration_ms = elapsed.as_millis() as u64,
            "decision"
        );
        metrics::counter!("rampart_requests_total", "client" => request.client.to_string(), "outcome" => outcome)
            .increment(1);
        if outcome == "reject" {
            metrics::counter!("rampart_rejects_total", "reason" => verdict.reason).increment(1);
        }
        metrics::histogram!("rampart_request_duration_seconds").record(elapsed.as_secs_f64());
        verdict.decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_codes_split_only_when_code_shaped() {
        let (p, c) = split_code("hunter2,123456", ",");
        assert_eq!(p.expose(), "hunter2");
        assert_eq!(c.unwrap().expose(), "123456");
        let (p, c) = split_code("a,b,123456", ",");
        assert_eq!(p.expose(), "a,b");
        assert_eq!(c.unwrap().expose(), "123456");
        let (p, c) = split_code("pass,word", ",");
        assert_eq!(p.expose(), "pass,word");
        assert!(c.is_none());
        let (p, c) = split_code("pw,abcd-efgh-jkmn", ",");
        assert_eq!(p.expose(), "pw");
        assert_eq!(c.unwrap().expose(), "abcd-efgh-jkmn");
        let (p, c) = split_code("pw|123456", "|");
        assert_eq!(
            (p.expose().as_str(), c.unwrap().expose().as_str()),
            ("pw", "123456")
        );
    }
}
