//! The request path. [`Pipeline::decide`] reads top to bottom: user name →
//! pending challenge → lockout → password (with an appended code split off) →
//! hosted MFA (Duo) → enrollment policy → second factor (a typed code, or a
//! push / call / SMS held in [`out_of_band`]) → decision. Every error becomes
//! a [`Decision`] here and nowhere else, and every decision gets one audit line.

mod out_of_band;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::audit::AuditLog;
use crate::auth::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};
use crate::config::{Policy, Unenrolled};
use crate::factor::app_password;
use crate::factor::oob::{Channel, OutOfBand};
use crate::factor::recovery::RecoveryCodes;
use crate::factor::totp::{TotpError, TotpFactor, TotpOutcome};
use crate::factor::{Response, classify};
use crate::radius::{AccessRequest, Attribute, Decision, Handler};
use crate::seal::SealKey;
use crate::secret::Secret;
use crate::session::Challenges;
use crate::store::health::StoreHealth;
use crate::store::{AuditEvent, LoginState, Store};
use crate::username::UsernameConfig;

/// Prompt sent with an Access-Challenge.
pub const CHALLENGE_PROMPT: &str = "Enter the 6-digit code from your authenticator app";

/// The decision and what the audit line says about it.
struct Verdict {
    decision: Decision,
    reason: &'static str,
    factor: &'static str,
    /// A login still waiting for a push or call: `handle` finishes it.
    held: Option<Box<out_of_band::Held>>,
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
            held: None,
        }
    }

    /// A login waiting for an out-of-band answer.
    fn held(held: out_of_band::Held) -> Verdict {
        Verdict {
            decision: Decision::Reject {
                reply_message: None,
            },
            reason: "held",
            factor: "none",
            held: Some(Box::new(held)),
        }
    }

    fn reject(reason: &'static str, factor: &'static str, message: Option<&str>) -> Verdict {
        Verdict {
            decision: Decision::Reject {
                reply_message: message.map(str::to_string),
            },
            reason,
            factor,
            held: None,
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
    challenges: Arc<Challenges>,
    key: Arc<SealKey>,
    oob: Option<Arc<OutOfBand>>,
    audit: Option<AuditLog>,
    app_password_clients: HashSet<Arc<str>>,
    /// Whether the store takes writes; when not, every login is rejected
    /// without touching it (fail closed, see [`StoreHealth`]).
    health: Arc<StoreHealth>,
}

/// What the user typed after the password (or, without a password backend,
/// instead of it).
pub(crate) enum Asked {
    /// A TOTP, SMS or recovery code.
    Code(Secret<String>),
    /// `push`, `phone` or `sms` (Duo-compatible keywords).
    Keyword(Channel),
    /// Nothing: the preferred factor (`auto`).
    Nothing,
}

/// Time spent per stage of a request: `primary` (the password backend),
/// `factor` (the second factor: a code check, or the whole wait for a push,
/// call or Duo), `total` (the request, as the NAS sees it minus the network).
pub const STAGE_SECONDS: &str = "rampart_stage_duration_seconds";

fn stage_done(stage: &'static str, started: Instant) {
    metrics::histogram!(STAGE_SECONDS, "stage" => stage).record(started.elapsed().as_secs_f64());
}

/// Counts a store failure seen on the request path (`rampart_store_errors_total{operation}`).
fn store_error(operation: &'static str) {
    metrics::counter!("rampart_store_errors_total", "operation" => operation).increment(1);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Splits `password,123456` at the last separator when what follows looks like
/// a code (six digits or a recovery code) or, when `keywords` is on, is a
/// factor keyword (`push`, `phone`, `sms`); otherwise the whole text is the
/// password.
pub(crate) fn split_code(
    password: &str,
    separator: &str,
    keywords: bool,
    long_codes: bool,
) -> (Secret<String>, Asked) {
    if let Some(index) = password.rfind(separator) {
        let suffix = &password[index + separator.len()..];
        let asked = if classify(suffix).is_some() || (long_codes && is_hosted_passcode(suffix)) {
            Some(Asked::Code(Secret::new(suffix.to_string())))
        } else if keywords {
            Channel::from_keyword(suffix).map(Asked::Keyword)
        } else {
            None
        };
        if let Some(asked) = asked {
            return (Secret::new(password[..index].to_string()), asked);
        }
    }
    (Secret::new(password.to_string()), Asked::Nothing)
}

/// Passcodes a hosted service (Duo) accepts beyond 6 digits: 7–10-digit
/// token and bypass codes, and YubiKey OTPs (44 modhex characters).
fn is_hosted_passcode(text: &str) -> bool {
    let digits = (7..=10).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    let modhex = text.len() == 44 && text.bytes().all(|b| b"cbdefghijklnrtuv".contains(&b));
    digits || modhex
}

/// What a request without a password backend carries in User-Password: a
/// code, a keyword, or nothing.
pub(crate) fn asked_alone(typed: Option<&Secret<String>>, keywords: bool) -> Asked {
    let Some(typed) = typed.filter(|t| !t.expose().trim().is_empty()) else {
        return Asked::Nothing;
    };
    match Channel::from_keyword(typed.expose()) {
        Some(channel) if keywords => Asked::Keyword(channel),
        _ => Asked::Code(typed.clone()),
    }
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
        key: Arc<SealKey>,
    ) -> Pipeline {
        let challenges = Arc::new(Challenges::new(policy.challenge_ttl));
        Pipeline {
            primary,
            totp,
            recovery,
            store,
            policy,
            username,
            challenges,
            key,
            oob: None,
            audit: None,
            app_password_clients: HashSet::new(),
            health: Arc::new(StoreHealth::default()),
        }
    }

    /// Takes over the running pipeline's pending Access-Challenges (a
    /// reload), so a user who was just asked for a code can still answer.
    pub fn with_challenges(mut self, challenges: Arc<Challenges>) -> Pipeline {
        challenges.set_ttl(self.policy.challenge_ttl);
        self.challenges = challenges;
        self
    }

    /// The pending Access-Challenges, for the next pipeline after a reload.
    pub fn challenges(&self) -> Arc<Challenges> {
        self.challenges.clone()
    }

    /// Shares the store's health with the monitor, `/readyz` and the audit
    /// writer (the same one across reloads).
    pub fn with_store_health(mut self, health: Arc<StoreHealth>) -> Pipeline {
        self.health = health;
        self
    }

    /// Writes every decision to the store's audit log too.
    pub fn with_audit(mut self, audit: AuditLog) -> Pipeline {
        self.audit = Some(audit);
        self
    }

    /// Clients (by name) on which app passwords replace password + second factor.
    pub fn with_app_password_clients(mut self, clients: HashSet<Arc<str>>) -> Pipeline {
        self.app_password_clients = clients;
        self
    }

    /// Adds out-of-band factors (push, phone, SMS, hosted MFA).
    pub fn with_out_of_band(mut self, oob: Arc<OutOfBand>) -> Pipeline {
        self.oob = Some(oob);
        self
    }

    /// The primary backend (the portal signs in with it, the admin API lists users).
    pub fn primary(&self) -> Arc<dyn PrimaryAuth> {
        self.primary.clone()
    }

    /// The out-of-band providers and tables, shared with the HTTP listener.
    pub fn out_of_band(&self) -> Option<Arc<OutOfBand>> {
        self.oob.clone()
    }

    /// Whether `push`/`phone`/`sms` after the password mean a factor.
    fn keywords(&self) -> bool {
        self.oob.is_some()
    }

    /// Decides one request.
    async fn decide(&self, request: &AccessRequest, user: &str) -> Verdict {
        if user.is_empty() {
            return Verdict::reject("missing_user_name", "none", None);
        }
        if !self.health.admit() {
            // Nothing this login needs written could be: the same reply as
            // any failure, for every login, until the store takes writes.
            return Verdict::reject("store_unavailable", "none", None);
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
            let started = Instant::now();
            let verdict = self
                .second_factor(user, &state, code.expose(), now, pending.attributes)
                .await;
            stage_done("factor", started);
            return verdict;
        }

        let state = match self.login_state(user, now).await {
            Ok(state) => state,
            Err(verdict) => return verdict,
        };
        // With a password backend, User-Password is "password" or "password,code";
        // without one (backend = "none") it is the code itself, if present.
        // An app password (Outlook and other apps that cannot do a second
        // factor) replaces password + second factor, on clients that allow it.
        if self.app_password_clients.contains(&request.client)
            && let Some(typed) = &request.password
            && app_password::is_shaped(typed.expose())
        {
            let hash = app_password::hash(&self.key, user, typed.expose());
            match self.store.use_app_password(user, &hash, now as i64).await {
                Ok(Some(_label)) => {
                    if let Err(verdict) = self.record_success(user, now, &state).await {
                        return verdict;
                    }
                    return Verdict::accept("ok", "app_password", None, Vec::new());
                }
                Ok(None) => {}
                Err(error) => return self.store_failed("app_password", &error, user),
            }
        }

        let keywords = self.keywords();
        let hosted = self.oob.as_ref().is_some_and(|o| o.hosted.is_some());
        let (password, asked) = match (&request.password, self.primary.requires_password()) {
            (Some(typed), true) => {
                let (password, asked) = split_code(
                    typed.expose(),
                    &self.policy.code_separator,
                    keywords,
                    hosted,
                );
                (Some(password), asked)
            }
            (typed, false) => (None, asked_alone(typed.as_ref(), keywords)),
            // CHAP or MS-CHAPv2 for a backend that forwards them: the code
            // cannot be appended to a hashed password, so it is challenged for.
            (None, true) if self.primary.forwards_credentials() => (None, Asked::Nothing),
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
        let started = Instant::now();
        let verified = self.primary.verify(&primary_request).await;
        stage_done("primary", started);
        let info: UserInfo = match verified {
            Ok(PrimaryOutcome::Accepted(info)) => info,
            Ok(PrimaryOutcome::UnknownUser) => {
                return match self.record_failure(user, now).await {
                    Ok(locked_now) => {
                        Verdict::reject("unknown_user", "none", locked_now.as_deref())
                    }
                    Err(verdict) => verdict,
                };
            }
            Ok(PrimaryOutcome::BadPassword) => {
                return match self.record_failure(user, now).await {
                    Ok(locked_now) => {
                        Verdict::reject("bad_password", "none", locked_now.as_deref())
                    }
                    Err(verdict) => verdict,
                };
            }
            Ok(PrimaryOutcome::Denied { reason, message }) => {
                return Verdict::reject(reason, "none", message.as_deref());
            }
            // Counted where it is refused; a flood must not flood the log too.
            Err(PrimaryError::Overloaded) => {
                return Verdict::reject(PrimaryError::Overloaded.reason(), "none", None);
            }
            Err(error) => {
                warn!(%error, user, "primary authentication unavailable");
                return Verdict::reject(error.reason(), "none", None);
            }
        };
        if info.mfa_exempt {
            if let Err(verdict) = self.record_success(user, now, &state).await {
                return verdict;
            }
            return Verdict::accept("mfa_exempt", "none", None, info.reply_attributes);
        }

        if let Some(oob) = &self.oob
            && let Some(hosted) = &oob.hosted
        {
            let started = Instant::now();
            let verdict = self
                .hosted(
                    oob,
                    hosted.as_ref(),
                    request,
                    user,
                    &state,
                    asked,
                    info,
                    now,
                )
                .await;
            stage_done("factor", started);
            return verdict;
        }

        // Out-of-band devices are read only when they can matter: a typed
        // code with TOTP enrolled goes straight to the hot path.
        let devices = match (&self.oob, &asked, state.totp.is_some()) {
            (Some(oob), asked, totp) if !matches!(asked, Asked::Code(_)) || !totp => {
                match self.channels(oob, user, &info).await {
                    Ok(channels) => Some(channels),
                    Err(verdict) => return verdict,
                }
            }
            _ => None,
        };
        let enrolled_out_of_band = devices.as_ref().is_some_and(|d| !d.is_empty());

        if state.totp.is_none() && !enrolled_out_of_band {
            return match self.policy.unenrolled {
                Unenrolled::Allow => {
                    if let Err(verdict) = self.record_success(user, now, &state).await {
                        return verdict;
                    }
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

        let choice = match (asked, &devices) {
            (Asked::Code(code), _) => {
                let started = Instant::now();
                let verdict = self
                    .second_factor(user, &state, code.expose(), now, info.reply_attributes)
                    .await;
                stage_done("factor", started);
                return verdict;
            }
            (Asked::Keyword(channel), Some(devices)) => Some(devices.pick(channel)),
            (Asked::Keyword(_), None) => None,
            (Asked::Nothing, Some(devices)) => {
                let out_of_band_only = !self.primary.requires_password();
                devices.auto(state.totp.is_some(), out_of_band_only)
            }
            (Asked::Nothing, None) => None,
        };
        if let (Some(choice), Some(oob)) = (choice, &self.oob) {
            let started = Instant::now();
            let mut verdict = self
                .run_out_of_band(oob, choice, request, user, &state, info, now)
                .await;
            match verdict.held.as_mut() {
                // The wait is still to come: `finish_held` records the stage.
                Some(held) => held.factor_started = started,
                None => stage_done("factor", started),
            }
            return verdict;
        }
        self.challenge(
            request,
            user,
            info.reply_attributes,
            CHALLENGE_PROMPT,
            "totp",
        )
    }

    /// Answers with an Access-Challenge asking for a code (RFC 2865 §4.4).
    fn challenge(
        &self,
        request: &AccessRequest,
        user: &str,
        reply_attributes: Vec<Attribute>,
        prompt: &str,
        factor: &'static str,
    ) -> Verdict {
        let issued = self.challenges.issue(
            user,
            request.client.clone(),
            reply_attributes,
            Instant::now(),
        );
        match issued {
            Some(state) => Verdict {
                decision: Decision::Challenge {
                    state,
                    reply_message: prompt.to_string(),
                },
                reason: "code_required",
                factor,
                held: None,
            },
            None => Verdict::reject("too_many_pending_challenges", factor, None),
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
                let locked_now = match self.record_failure(user, now).await {
                    Ok(locked_now) => locked_now,
                    Err(verdict) => return verdict,
                };
                return Verdict::reject(
                    "malformed_code",
                    "totp",
                    Some(locked_now.as_deref().unwrap_or(CHALLENGE_PROMPT)),
                );
            }
            Some(Response::Totp(code)) => {
                let checked = self.check_totp(user, state, &code, now).await;
                // Not the app's code: it may be the one we texted.
                if matches!(checked, Ok(TotpOutcome::Wrong | TotpOutcome::NotEnrolled)) {
                    match self.sms_code_matches(user, &code, now).await {
                        Ok(false) => {}
                        Ok(true) => {
                            if let Err(verdict) = self.record_success(user, now, state).await {
                                return verdict;
                            }
                            return Verdict::accept("ok", "sms", None, reply_attributes);
                        }
                        Err(verdict) => return verdict,
                    }
                }
                match checked {
                    // The success was recorded with the claim (`check_totp`).
                    Ok(TotpOutcome::Accepted) => {
                        return Verdict::accept("ok", "totp", None, reply_attributes);
                    }
                    Ok(TotpOutcome::Wrong) => ("bad_code", "totp", "Wrong code."),
                    Ok(TotpOutcome::Replayed) => (
                        "replayed_code",
                        "totp",
                        "This code was already used. Wait for the next code and sign in again.",
                    ),
                    Ok(TotpOutcome::NotEnrolled)
                        if self.oob.as_ref().is_some_and(|o| o.sms.is_some()) =>
                    {
                        ("bad_code", "sms", "Wrong or expired code.")
                    }
                    Ok(TotpOutcome::NotEnrolled) => {
                        ("not_enrolled", "totp", "No authenticator app is enrolled.")
                    }
                    Err(TotpError::Store(error)) => return self.store_failed("totp", &error, user),
                    Err(error) => {
                        warn!(%error, user, "TOTP check failed");
                        return Verdict::reject("store_unavailable", "totp", None);
                    }
                }
            }
            Some(Response::Recovery(code)) => match self.recovery.redeem(user, &code).await {
                Ok(true) => {
                    if let Err(verdict) = self.record_success(user, now, state).await {
                        return verdict;
                    }
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
                Err(error) => return self.store_failed("recovery", &error, user),
            },
        };
        let (reason, factor, message) = outcome;
        let locked_now = match self.record_failure(user, now).await {
            Ok(locked_now) => locked_now,
            Err(verdict) => return verdict,
        };
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
            Some(record) => {
                let success_at = success_due(state, now).then_some(now as i64);
                self.totp
                    .verify_record(user, record, code, now, success_at)
                    .await
            }
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
                store_error("login_state");
                warn!(%error, user, "store unavailable");
                Err(Verdict::reject("store_unavailable", "none", None))
            }
        }
    }

    /// A write the login needed failed: log it, fail the store closed (see
    /// [`StoreHealth`]) and answer with the generic reply.
    fn store_failed(
        &self,
        operation: &'static str,
        error: &dyn std::fmt::Display,
        user: &str,
    ) -> Verdict {
        warn!(%error, user, operation, "store write failed: login rejected");
        self.health.failed(operation, error);
        Verdict::reject("store_unavailable", "none", None)
    }

    /// Counts a consecutive failure; the lockout message if this one locked
    /// the user. A failure that cannot be counted is the generic Reject:
    /// answering "wrong code" without counting would be a guessing oracle
    /// without a limit.
    async fn record_failure(&self, user: &str, now: u64) -> Result<Option<String>, Verdict> {
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
                Ok(Some(format!(
                    "Too many failed attempts: this account is locked for {} minute(s).",
                    lock_secs / 60
                )))
            }
            Ok(None) => Ok(None),
            Err(error) => Err(self.store_failed("record_failure", &error, user)),
        }
    }

    /// Resets the failure count and records the login time. Skipped when there
    /// is nothing to reset and the last login was recorded less than a minute
    /// ago: one write fewer per login on a busy gateway.
    /// A success that cannot be recorded is the generic Reject too: the
    /// store is failing, and every other login now gets that reply.
    async fn record_success(
        &self,
        user: &str,
        now: u64,
        state: &LoginState,
    ) -> Result<(), Verdict> {
        if !success_due(state, now) {
            return Ok(());
        }
        self.store
            .record_success(user, now as i64)
            .await
            .map_err(|error| self.store_failed("record_success", &error, user))
    }
}

/// Whether a successful login has anything to write: a failure count or an
/// expired lock to clear, or a `last_login` older than a minute. Without an
/// account row there is no last_login to keep (a directory user who never
/// enrolled), so only a failure count needs resetting.
fn success_due(state: &LoginState, now: u64) -> bool {
    let now = now as i64;
    let recent = !state.has_account || state.last_login.is_some_and(|t| (now - t).abs() < 60);
    !(state.failures == 0 && state.locked_until.is_none() && recent)
}

// Written out instead of `#[async_trait]`: the macro rebinds the request
// inside its future, so a held login (tens of seconds, tens of thousands at
// once) would carry the decoded request twice. Here the future holds one
// pointer to it (`benches/hold.sh` measures the difference).
impl Handler for Pipeline {
    fn handle<'life0, 'async_trait>(
        &'life0 self,
        request: AccessRequest,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.respond(Box::new(request)))
    }
}

impl Pipeline {
    /// Decides one request; a held login waits for its answer after the big
    /// decision future is freed, keeping only the request's audit fields.
    async fn respond(&self, mut request: Box<AccessRequest>) -> Decision {
        let started = Instant::now();
        let user = self.username.normalize(&request.user_name);
        // Boxed so it is freed before a held login waits (see `Held`).
        let mut verdict = Box::pin(self.decide(&request, &user)).await;
        let Some(held) = verdict.held.take() else {
            return self.conclude(&request, user, started, verdict);
        };
        drop(verdict);
        // While the person answers, keep only what the audit line needs.
        request.password = None;
        request.attributes = Vec::new();
        request.state = None;
        let verdict = self.finish_held(*held).await;
        self.conclude(&request, user, started, verdict)
    }
    /// Audit line, audit row and metrics for a decision.
    fn conclude(
        &self,
        request: &AccessRequest,
        user: String,
        started: Instant,
        verdict: Verdict,
    ) -> Decision {
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
        metrics::histogram!(STAGE_SECONDS, "stage" => "total").record(elapsed.as_secs_f64());
        if let Some(audit) = &self.audit {
            audit.record(AuditEvent {
                time: unix_now() as i64,
                user,
                client: request.client.to_string(),
                station: request.calling_station_id.clone(),
                outcome: outcome.to_string(),
                reason: verdict.reason.to_string(),
                factor: verdict.factor.to_string(),
                duration_ms: elapsed.as_millis() as i64,
            });
        }
        verdict.decision
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    fn split(text: &str, separator: &str, keywords: bool) -> (String, String) {
        split_with(text, separator, keywords, false)
    }

    fn split_with(text: &str, separator: &str, keywords: bool, long: bool) -> (String, String) {
        let (password, asked) = split_code(text, separator, keywords, long);
        let asked = match asked {
            Asked::Code(code) => code.expose().clone(),
            Asked::Keyword(channel) => format!("<{}>", channel.as_str()),
            Asked::Nothing => "-".to_string(),
        };
        (password.expose().clone(), asked)
    }

    #[test]
    fn appended_codes_split_only_when_code_shaped() {
        let cases = [
            ("hunter2,123456", ",", "hunter2", "123456"),
            ("a,b,123456", ",", "a,b", "123456"),
            ("pass,word", ",", "pass,word", "-"),
            ("pw,abcd-efgh-jkmn", ",", "pw", "abcd-efgh-jkmn"),
            ("pw|123456", "|", "pw", "123456"),
            // Keywords only mean something when out-of-band factors exist.
            ("pw,push", ",", "pw,push", "-"),
        ];
        for (text, separator, password, asked) in cases {
            assert_eq!(
                split(text, separator, false),
                (password.to_string(), asked.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn keywords_split_when_out_of_band_is_configured() {
        assert_eq!(split("pw,push", ",", true), ("pw".into(), "<push>".into()));
        assert_eq!(
            split("pw,PHONE", ",", true),
            ("pw".into(), "<phone>".into())
        );
        assert_eq!(split("p,w,sms", ",", true), ("p,w".into(), "<sms>".into()));
        assert_eq!(
            split("pw,123456", ",", true),
            ("pw".into(), "123456".into())
        );
        assert_eq!(split("pushpw", ",", true), ("pushpw".into(), "-".into()));
        // Duo bypass codes and YubiKey OTPs, only with out-of-band factors on.
        assert_eq!(
            split_with("pw,123456789", ",", true, true),
            ("pw".into(), "123456789".into())
        );
        assert_eq!(
            split("pw,123456789", ",", true),
            ("pw,123456789".into(), "-".into())
        );
        let otp = "cccccbhuinjdlbtnhdbnkkdfhkrdvjdcfltuecnkkdlc";
        assert_eq!(
            split_with(&format!("pw,{otp}"), ",", true, true),
            ("pw".into(), otp.into())
        );
        let alone = |t: Option<&str>| match asked_alone(
            t.map(|t| Secret::new(t.to_string())).as_ref(),
            true,
        ) {
            Asked::Code(code) => code.expose().clone(),
            Asked::Keyword(channel) => format!("<{}>", channel.as_str()),
            Asked::Nothing => "-".to_string(),
        };
        assert_eq!(alone(None), "-");
        assert_eq!(alone(Some("")), "-");
        assert_eq!(alone(Some("push")), "<push>");
        assert_eq!(alone(Some("123456")), "123456");
    }
}
