//! The out-of-band part of the request path: which channel a login uses,
//! holding the request while a push or call runs, SMS codes, and the hosted
//! (Duo) second factor. Answers become verdicts here, next to the rest of
//! [`Pipeline::decide`]'s decisions.

use std::time::Instant;

use rand::RngExt;
use tracing::{debug, info, warn};

use super::{Asked, Pipeline, Verdict, store_error};
use crate::auth::UserInfo;
use crate::factor::oob::pending::{JoinKey, Park};
use crate::factor::oob::{
    Answer, CallPrompt, Channel, FailMode, HostedFactor, HostedMfa, HostedOutcome, HostedRequest,
    LoginContext, OutOfBand, PushTarget, e164,
};
use crate::factor::phone::PinMode;
use crate::radius::AccessRequest;
use crate::secret::Secret;
use crate::store::{DeviceKind, LoginState};

/// A login waiting for a push or call answer. The pipeline hands it back
/// inside the [`Verdict`] instead of awaiting it in place: the future that
/// decided the login (thousands of bytes: every branch of the request path)
/// is then freed, and only this and a small waiting future stay alive for
/// the tens of seconds a person takes to answer.
pub(super) struct Held {
    waiting: Waiting,
    user: String,
    factor: &'static str,
    state: LoginState,
    reply_attributes: Vec<crate::radius::Attribute>,
    now: u64,
    timeout: std::time::Duration,
    /// When the second factor started (delivery included), for
    /// `rampart_stage_duration_seconds{stage="factor"}`.
    pub(super) factor_started: Instant,
}

enum Waiting {
    Parked(crate::factor::oob::pending::Parked),
    Joined(crate::factor::oob::pending::Joined),
}

/// Where each channel would reach this user, for the providers configured.
#[derive(Default)]
pub(super) struct Channels {
    push: Option<PushTarget>,
    phone: Option<String>,
    sms: Option<String>,
    preferred: Option<String>,
}

/// The factor a login runs.
pub(super) enum Choice {
    Push(PushTarget),
    Phone(String),
    Sms {
        number: String,
        /// Typed as `secret,sms`: reject with "code sent" instead of challenging.
        keyword: bool,
    },
    /// Asked for a channel the user has no device (or the server no provider) for.
    Unavailable(Channel),
}

impl Channels {
    /// Whether any out-of-band channel can reach the user.
    pub(super) fn is_empty(&self) -> bool {
        self.push.is_none() && self.phone.is_none() && self.sms.is_none()
    }

    fn get(&self, channel: Channel, keyword: bool) -> Option<Choice> {
        match channel {
            Channel::Push => self.push.clone().map(Choice::Push),
            Channel::Phone => self.phone.clone().map(Choice::Phone),
            Channel::Sms => self
                .sms
                .clone()
                .map(|number| Choice::Sms { number, keyword }),
        }
    }

    /// The channel a keyword asked for.
    pub(super) fn pick(&self, channel: Channel) -> Choice {
        self.get(channel, true)
            .unwrap_or(Choice::Unavailable(channel))
    }

    /// The preferred factor when nothing was typed; `None` means a TOTP
    /// challenge. Without a password backend (RD Gateway behind NPS, which
    /// cannot show a prompt) out-of-band channels come first whatever the
    /// preference says.
    pub(super) fn auto(&self, totp: bool, out_of_band_only: bool) -> Option<Choice> {
        let preferred = self.preferred.as_deref();
        if let Some(channel) = preferred.and_then(Channel::from_keyword)
            && (!out_of_band_only || channel != Channel::Sms)
            && let Some(choice) = self.get(channel, false)
        {
            return Some(choice);
        }
        if preferred == Some("totp") && totp && !out_of_band_only {
            return None;
        }
        if let Some(choice) = self
            .get(Channel::Push, false)
            .or_else(|| self.get(Channel::Phone, false))
        {
            return Some(choice);
        }
        if totp {
            return None;
        }
        self.get(Channel::Sms, false)
    }
}

/// "ending in 67": enough for the user to recognise the phone.
fn last_digits(number: &str) -> &str {
    &number[number.len().saturating_sub(2)..]
}

impl Pipeline {
    fn context(&self, request: &AccessRequest, user: &str, now: u64) -> LoginContext {
        LoginContext {
            user: user.to_string(),
            client: request.client.to_string(),
            client_address: request.peer.ip(),
            nas_identifier: request.nas_identifier.clone(),
            calling_station_id: request.calling_station_id.clone(),
            time: now,
        }
    }

    /// Reads the user's devices and works out which channels can reach them.
    pub(super) async fn channels(
        &self,
        oob: &OutOfBand,
        user: &str,
        info: &UserInfo,
    ) -> Result<Channels, Verdict> {
        let enrollment = self.store.out_of_band(user).await.map_err(|error| {
            store_error("devices");
            warn!(%error, user, "store unavailable");
            Verdict::reject("store_unavailable", "none", None)
        })?;
        let open = |sealed: &[u8]| -> Option<String> {
            let plain = self.key.open(user.as_bytes(), sealed).ok()?;
            String::from_utf8(plain.to_vec()).ok()
        };
        let mut push = None;
        let mut phones = Vec::new();
        for device in &enrollment.devices {
            let Some(target) = open(&device.sealed_target) else {
                warn!(user, label = %device.label, "cannot open a device record (wrong key or corrupt): skipped");
                continue;
            };
            match device.kind {
                DeviceKind::Push if push.is_none() => {
                    push = Some(PushTarget {
                        url: Secret::new(target),
                    })
                }
                DeviceKind::Push => {}
                DeviceKind::Phone => phones.push((device.label != "primary", target)),
            }
        }
        // The primary number first, then the others by label.
        phones.sort_by_key(|(not_primary, _)| *not_primary);
        let mut number = phones.into_iter().map(|(_, n)| n).next();
        if number.is_none() && oob.config.directory_phone {
            number = info.phone.as_deref().and_then(e164);
            if number.is_none() && info.phone.is_some() {
                debug!(user, "directory phone number is not E.164: not used");
            }
        }
        if push.is_none() {
            push = oob.default_push_target.clone();
        }
        Ok(Channels {
            push: push.filter(|_| oob.push.is_some()),
            phone: number.clone().filter(|_| oob.caller.is_some()),
            sms: number.filter(|_| oob.sms.is_some()),
            preferred: enrollment.preferred,
        })
    }

    /// Runs the chosen out-of-band factor for a user whose password was right.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_out_of_band(
        &self,
        oob: &OutOfBand,
        choice: Choice,
        request: &AccessRequest,
        user: &str,
        state: &LoginState,
        info: UserInfo,
        now: u64,
    ) -> Verdict {
        match choice {
            Choice::Unavailable(channel) => {
                let message = format!(
                    "{} is not set up for your account. Sign in with your code, or enroll {} first.",
                    match channel {
                        Channel::Push => "Push approval",
                        Channel::Phone => "A phone call",
                        Channel::Sms => "A text message",
                    },
                    match &self.policy.enroll_url {
                        Some(url) => format!("at {url}"),
                        None => "with your administrator".to_string(),
                    }
                );
                Verdict::reject("factor_not_enrolled", channel.as_str(), Some(&message))
            }
            Choice::Sms { number, keyword } => {
                if let Err(verdict) = self.send_sms_code(oob, user, &number, now).await {
                    return verdict;
                }
                let ending = last_digits(&number);
                if keyword {
                    let message = format!(
                        "A code was sent to your phone ending in {ending}. Sign in again with your password followed by {}CODE.",
                        self.policy.code_separator
                    );
                    return Verdict::reject("sms_sent", "sms", Some(&message));
                }
                let prompt = format!("Enter the code sent to your phone ending in {ending}");
                self.challenge(request, user, info.reply_attributes, &prompt, "sms")
            }
            Choice::Push(target) => {
                let context = self.context(request, user, now);
                let deliver = async |approval| {
                    let Some(push) = &oob.push else {
                        return Err(crate::factor::oob::ProviderError::NoTarget("push"));
                    };
                    push.send(&target, &approval).await
                };
                self.hold(oob, Channel::Push, context, deliver, state, info, now)
                    .await
            }
            Choice::Phone(number) => {
                let pin = match self.phone_pin(oob, user).await {
                    Ok(pin) => pin,
                    Err(verdict) => return verdict,
                };
                let context = self.context(request, user, now);
                let deliver = async |approval: crate::factor::oob::Approval| {
                    let Some(caller) = &oob.caller else {
                        return Err(crate::factor::oob::ProviderError::NoTarget("phone"));
                    };
                    let prompt = match pin {
                        Some(hash) => {
                            // Before the call: the keypress cannot come first.
                            oob.pending.expect_pin(&approval.txn, hash);
                            CallPrompt::Pin
                        }
                        None => CallPrompt::Pound,
                    };
                    caller.call(&number, &approval, prompt).await
                };
                self.hold(oob, Channel::Phone, context, deliver, state, info, now)
                    .await
            }
        }
    }

    /// The PIN hash a call for `user` asks for (`[phone] pin`): `None` when
    /// PINs are off or the user set none (optional); a Reject, before any
    /// call is placed, when a PIN is required and the user has none.
    async fn phone_pin(&self, oob: &OutOfBand, user: &str) -> Result<Option<String>, Verdict> {
        if oob.phone_pin == PinMode::Off {
            return Ok(None);
        }
        let hash = self.store.phone_pin_hash(user).await.map_err(|error| {
            warn!(%error, user, "store unavailable");
            Verdict::reject("store_unavailable", "phone", None)
        })?;
        if hash.is_none() && oob.phone_pin == PinMode::Required {
            let message = format!(
                "Sign-in by phone call needs a call PIN, and none is set for your account. Set one {}, or sign in with another method.",
                match &self.policy.enroll_url {
                    Some(url) => format!("on the phone page at {url}"),
                    None => "with your administrator".to_string(),
                }
            );
            return Err(Verdict::reject("pin_not_enrolled", "phone", Some(&message)));
        }
        Ok(hash)
    }

    /// Parks the login, delivers the push or call once, and waits for the
    /// answer. A retry of the same attempt (same user, NAS and station, a new
    /// packet) joins the wait instead of sending again; retransmissions of
    /// the same packet never get here (the duplicate cache drops them).
    #[allow(clippy::too_many_arguments)]
    async fn hold(
        &self,
        oob: &OutOfBand,
        channel: Channel,
        context: LoginContext,
        deliver: impl AsyncFnOnce(
            crate::factor::oob::Approval,
        ) -> Result<(), crate::factor::oob::ProviderError>,
        state: &LoginState,
        info: UserInfo,
        now: u64,
    ) -> Verdict {
        let user = context.user.clone();
        let join = JoinKey {
            client: context.client.as_str().into(),
            station: context.calling_station_id.clone(),
        };
        let factor = channel.as_str();
        let parked = match oob.pending.park(&user, join, channel) {
            Park::Busy => {
                return Verdict::reject(
                    "approval_pending_elsewhere",
                    factor,
                    Some(
                        "Another sign-in is already waiting for your approval. Answer it or wait a minute, then try again.",
                    ),
                );
            }
            Park::Joined(joined) => {
                return Verdict::held(Held {
                    waiting: Waiting::Joined(joined),
                    user,
                    factor,
                    state: state.without_seed(),
                    reply_attributes: info.reply_attributes,
                    now,
                    timeout: oob.config.timeout(),
                    factor_started: Instant::now(),
                });
            }
            Park::New(parked) => parked,
        };
        if !oob.limit.try_send(&user, Instant::now()) {
            metrics::counter!("rampart_oob_rate_limited_total", "channel" => factor).increment(1);
            let minutes = oob.config.rate_window_secs.div_ceil(60);
            return Verdict::reject(
                "rate_limited",
                factor,
                Some(&format!(
                    "Too many approval requests. Wait {minutes} minute(s) or sign in with a code."
                )),
            );
        }
        let approval = oob.approval(&parked.txn(), context);
        // The semaphore is never closed, so acquiring only waits, and only
        // so long (see `DELIVERY_SLOT_WAIT`).
        let delivered = match tokio::time::timeout(
            crate::factor::oob::DELIVERY_SLOT_WAIT,
            oob.deliveries.acquire(),
        )
        .await
        {
            Ok(slot) => {
                let delivered = deliver(approval)
                    .await
                    .map_err(|e| (e.reason(), e.to_string()));
                drop(slot);
                delivered
            }
            Err(_) => Err((
                "busy",
                "every delivery slot stayed busy: the service is slow or hung".to_string(),
            )),
        };
        if let Err((reason, error)) = delivered {
            warn!(%error, reason, user, channel = factor, "out-of-band delivery failed");
            metrics::counter!("rampart_oob_delivery_failures_total", "channel" => factor, "reason" => reason)
                .increment(1);
            // The outcome family covers every way a held login ends.
            metrics::counter!("rampart_oob_outcomes_total", "channel" => factor, "outcome" => "error")
                .increment(1);
            return Verdict::reject(
                "provider_unavailable",
                factor,
                Some("The approval could not be sent. Sign in with a code, or try again later."),
            );
        }
        Verdict::held(Held {
            waiting: Waiting::Parked(parked),
            user,
            factor,
            state: state.without_seed(),
            reply_attributes: info.reply_attributes,
            now,
            timeout: oob.config.timeout(),
            factor_started: Instant::now(),
        })
    }

    /// Waits for a held login's answer and decides. Runs after the request's
    /// big decision future is gone (see [`Held`]), so a parked login costs
    /// only this small future and the table entries.
    pub(super) async fn finish_held(&self, held: Held) -> Verdict {
        // Fields are used in place, not destructured: an async fn keeps its
        // argument for the whole wait, and bindings moved out of it would be
        // kept beside it.
        let factor = held.factor;
        let (answer, joined) = match held.waiting {
            Waiting::Parked(parked) => {
                metrics::gauge!("rampart_oob_pending").increment(1.0);
                let answer = parked.wait(held.timeout).await;
                metrics::gauge!("rampart_oob_pending").decrement(1.0);
                metrics::counter!("rampart_oob_outcomes_total", "channel" => factor, "outcome" => answer.as_str())
                    .increment(1);
                (answer, false)
            }
            Waiting::Joined(joined) => (joined.wait(held.timeout).await, true),
        };
        // Boxed: its state exists only after the answer, so the waiting
        // future does not carry its size for the tens of seconds of a wait.
        let verdict = Box::pin(self.answer_verdict(
            &held.user,
            answer,
            factor,
            &held.state,
            held.reply_attributes,
            held.now,
            joined,
        ))
        .await;
        super::stage_done("factor", held.factor_started);
        verdict
    }

    /// Turns an answer into the decision. Only the owner of a transaction
    /// (not a joined retry) locks and alerts, so one Deny locks once.
    #[allow(clippy::too_many_arguments)]
    async fn answer_verdict(
        &self,
        user: &str,
        answer: Answer,
        factor: &'static str,
        state: &LoginState,
        reply_attributes: Vec<crate::radius::Attribute>,
        now: u64,
        joined: bool,
    ) -> Verdict {
        let Some(oob) = &self.oob else {
            return Verdict::reject("internal", factor, None);
        };
        match answer {
            Answer::Approved => {
                if !joined && let Err(verdict) = self.record_success(user, now, state).await {
                    return verdict;
                }
                Verdict::accept("ok", factor, None, reply_attributes)
            }
            Answer::Denied | Answer::Fraud => {
                let fraud = answer == Answer::Fraud;
                let minutes = match (fraud, oob.config.deny_lock_minutes) {
                    // A fraud report always locks: someone else has the password.
                    (true, 0) => 15,
                    (_, minutes) => minutes,
                };
                if !joined && minutes > 0 {
                    let until = now as i64 + minutes as i64 * 60;
                    if let Err(error) = self.store.lock_user(user, until).await {
                        // The reply is a Reject either way; what matters is
                        // that nothing else is let in while the lock is missing.
                        self.store_failed("lock_user", &error, user);
                    }
                    metrics::counter!("rampart_lockouts_total").increment(1);
                }
                if fraud && !joined {
                    warn!(
                        target: "rampart::audit",
                        user,
                        channel = factor,
                        minutes,
                        "FRAUD REPORTED: the user denied a sign-in they did not start; their password is likely known to someone else. Account locked."
                    );
                    metrics::counter!("rampart_fraud_reports_total", "channel" => factor)
                        .increment(1);
                }
                let message = if minutes > 0 {
                    format!(
                        "Sign-in denied on your phone. The account is locked for {minutes} minute(s); contact your IT team if this was not you."
                    )
                } else {
                    "Sign-in denied on your phone.".to_string()
                };
                let reason = if fraud { "fraud_reported" } else { "denied" };
                Verdict::reject(reason, factor, Some(&message))
            }
            Answer::WrongPin => {
                // A failed attempt like a wrong code: counted toward the
                // lockout, not a fraud lock (it may be a typo).
                let locked_now = if joined {
                    None
                } else {
                    match self.record_failure(user, now).await {
                        Ok(locked_now) => locked_now,
                        Err(verdict) => return verdict,
                    }
                };
                Verdict::reject(
                    "wrong_pin",
                    factor,
                    Some(
                        locked_now
                            .as_deref()
                            .unwrap_or("Wrong PIN on the call. Sign in again to get a new call."),
                    ),
                )
            }
            Answer::NotAnswered => Verdict::reject(
                "not_answered",
                factor,
                Some("The call was not answered. Try again, or sign in with a code."),
            ),
            Answer::TimedOut => Verdict::reject(
                "timeout",
                factor,
                Some("No answer in time. Try again, or sign in with a code."),
            ),
        }
    }

    /// Generates a 6-digit code, stores its keyed hash and texts it.
    async fn send_sms_code(
        &self,
        oob: &OutOfBand,
        user: &str,
        number: &str,
        now: u64,
    ) -> Result<(), Verdict> {
        let Some(sms) = &oob.sms else {
            return Err(Verdict::reject("factor_not_enrolled", "sms", None));
        };
        if !oob.limit.try_send(user, Instant::now()) {
            metrics::counter!("rampart_oob_rate_limited_total", "channel" => "sms").increment(1);
            return Err(Verdict::reject(
                "rate_limited",
                "sms",
                Some("Too many codes requested. Wait a few minutes, then try again."),
            ));
        }
        let code = Secret::new(format!("{:06}", rand::rng().random_range(0..1_000_000u32)));
        let hash = self.key.code_hash("sms", user, code.expose());
        let expires = now as i64 + oob.config.sms_code_secs as i64;
        if let Err(error) = self.store.put_sms_code(user, &hash, expires).await {
            return Err(self.store_failed("sms_code", &error, user));
        }
        let minutes = oob.config.sms_code_secs.div_ceil(60);
        let text = Secret::new(format!(
            "Your sign-in code is {}. It expires in {minutes} minutes. If you did not just sign in, tell your IT team.",
            code.expose()
        ));
        if let Err(error) = sms.send(number, &text).await {
            warn!(%error, user, "SMS delivery failed");
            metrics::counter!("rampart_oob_delivery_failures_total", "channel" => "sms", "reason" => error.reason())
                .increment(1);
            return Err(Verdict::reject(
                "provider_unavailable",
                "sms",
                Some(
                    "The code could not be sent. Sign in with your authenticator app, or try again later.",
                ),
            ));
        }
        metrics::counter!(crate::factor::sms::SMS_CODES_SENT).increment(1);
        Ok(())
    }

    /// Whether `code` is the user's outstanding SMS code; consumes it if so
    /// (a code whose use cannot be recorded fails closed).
    pub(super) async fn sms_code_matches(
        &self,
        user: &str,
        code: &str,
        now: u64,
    ) -> Result<bool, Verdict> {
        if self.oob.as_ref().is_none_or(|oob| oob.sms.is_none()) {
            return Ok(false);
        }
        let hash = self.key.code_hash("sms", user, code);
        self.store
            .take_sms_code(user, &hash, now as i64)
            .await
            .map_err(|error| self.store_failed("sms_code", &error, user))
    }

    /// The whole second factor through a hosted service (Duo). Pushes and
    /// calls are parked like local ones, so a retry joins instead of pushing
    /// again; an unreachable service gets the configured fail mode.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hosted(
        &self,
        oob: &OutOfBand,
        hosted: &dyn HostedMfa,
        request: &AccessRequest,
        user: &str,
        state: &LoginState,
        asked: Asked,
        info: UserInfo,
        now: u64,
    ) -> Verdict {
        let factor = match asked {
            Asked::Code(code) => HostedFactor::Passcode(code),
            Asked::Keyword(channel) => HostedFactor::Channel(channel),
            Asked::Nothing => HostedFactor::Auto,
        };
        let holds = !matches!(
            factor,
            HostedFactor::Passcode(_) | HostedFactor::Channel(Channel::Sms)
        );
        let context = self.context(request, user, now);
        let parked = if holds {
            let join = JoinKey {
                client: request.client.clone(),
                station: request.calling_station_id.clone(),
            };
            match oob.pending.park(user, join, Channel::Push) {
                Park::New(parked) => Some(parked),
                Park::Joined(joined) => {
                    let answer = joined.wait(oob.config.timeout()).await;
                    return match answer {
                        Answer::Approved => {
                            Verdict::accept("ok", "duo", None, info.reply_attributes)
                        }
                        _ => {
                            Verdict::reject("denied", "duo", Some("The sign-in was not approved."))
                        }
                    };
                }
                Park::Busy => {
                    return Verdict::reject(
                        "approval_pending_elsewhere",
                        "duo",
                        Some("Another sign-in is already waiting for your approval."),
                    );
                }
            }
        } else {
            None
        };
        if parked.is_some() {
            metrics::gauge!("rampart_oob_pending").increment(1.0);
        }
        let outcome = hosted
            .authenticate(&HostedRequest {
                context: &context,
                factor,
                deadline: oob.config.timeout(),
            })
            .await;
        let verdict = self
            .hosted_verdict(oob, user, state, info, outcome, now)
            .await;
        if let Some(parked) = parked {
            metrics::gauge!("rampart_oob_pending").decrement(1.0);
            // Joined retries get what this login got, fail-open included.
            let answer = match verdict.decision.outcome() {
                "accept" => Answer::Approved,
                _ => Answer::Denied,
            };
            let _ = oob.pending.resolve(&parked.txn(), answer);
        }
        verdict
    }

    /// The decision for a hosted service's outcome, fail mode applied.
    async fn hosted_verdict(
        &self,
        oob: &OutOfBand,
        user: &str,
        state: &LoginState,
        info: UserInfo,
        outcome: HostedOutcome,
        now: u64,
    ) -> Verdict {
        match outcome {
            HostedOutcome::Allow { reason } => {
                if let Err(verdict) = self.record_success(user, now, state).await {
                    return verdict;
                }
                Verdict::accept(reason, "duo", None, info.reply_attributes)
            }
            HostedOutcome::Deny { reason, message } => {
                Verdict::reject(reason, "duo", message.as_deref())
            }
            HostedOutcome::Enroll { url } => {
                let message = match url {
                    Some(url) => {
                        format!("A second factor is required. Enroll at {url}, then sign in again.")
                    }
                    None => "A second factor is required. Ask your administrator to enroll you."
                        .to_string(),
                };
                Verdict::reject("not_enrolled", "duo", Some(&message))
            }
            HostedOutcome::SmsSent => Verdict::reject(
                "sms_sent",
                "duo",
                Some(&format!(
                    "Codes were sent by text message. Sign in again with your password followed by {}CODE.",
                    self.policy.code_separator
                )),
            ),
            HostedOutcome::Unavailable { reason } => match oob.hosted_failmode {
                FailMode::Safe => {
                    warn!(
                        user,
                        reason,
                        "second-factor service unreachable: failmode = safe lets the password alone through"
                    );
                    metrics::counter!("rampart_failopen_total", "provider" => "duo").increment(1);
                    info!(user, "accepted without a second factor (fail open)");
                    if let Err(verdict) = self.record_success(user, now, state).await {
                        return verdict;
                    }
                    Verdict::accept("failopen", "duo", None, info.reply_attributes)
                }
                FailMode::Secure => {
                    warn!(
                        user,
                        reason, "second-factor service unreachable: failmode = secure rejects"
                    );
                    Verdict::reject(
                        "mfa_unavailable",
                        "duo",
                        Some("The second-factor service is unavailable. Try again later."),
                    )
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels(push: bool, phone: bool, sms: bool, preferred: Option<&str>) -> Channels {
        Channels {
            push: push.then(|| PushTarget {
                url: Secret::new("https://ntfy.example/t".into()),
            }),
            phone: phone.then(|| "+15550001111".to_string()),
            sms: sms.then(|| "+15550001111".to_string()),
            preferred: preferred.map(str::to_string),
        }
    }

    fn name(choice: Option<Choice>) -> &'static str {
        match choice {
            None => "totp",
            Some(Choice::Push(_)) => "push",
            Some(Choice::Phone(_)) => "phone",
            Some(Choice::Sms { .. }) => "sms",
            Some(Choice::Unavailable(_)) => "unavailable",
        }
    }

    #[test]
    fn auto_follows_preference_then_push_phone_totp_sms() {
        assert_eq!(
            name(channels(true, true, true, None).auto(true, false)),
            "push"
        );
        assert_eq!(
            name(channels(false, true, true, None).auto(true, false)),
            "phone"
        );
        assert_eq!(
            name(channels(false, false, true, None).auto(true, false)),
            "totp"
        );
        assert_eq!(
            name(channels(false, false, true, None).auto(false, false)),
            "sms"
        );
        assert_eq!(
            name(channels(true, true, true, Some("totp")).auto(true, false)),
            "totp"
        );
        assert_eq!(
            name(channels(true, true, true, Some("phone")).auto(true, false)),
            "phone"
        );
        assert_eq!(
            name(channels(true, false, true, Some("sms")).auto(true, false)),
            "sms"
        );
        // Preferred but not available: the default order.
        assert_eq!(
            name(channels(true, false, false, Some("phone")).auto(true, false)),
            "push"
        );
    }

    #[test]
    fn without_a_password_backend_auto_prefers_out_of_band() {
        // RD Gateway cannot show a challenge: push or phone even if TOTP is preferred.
        assert_eq!(
            name(channels(true, false, false, Some("totp")).auto(true, true)),
            "push"
        );
        assert_eq!(
            name(channels(false, true, true, Some("sms")).auto(true, true)),
            "phone"
        );
        assert_eq!(
            name(channels(false, false, false, None).auto(true, true)),
            "totp"
        );
    }

    #[test]
    fn keyword_for_a_missing_channel_is_unavailable() {
        assert_eq!(
            name(Some(
                channels(true, false, false, None).pick(Channel::Phone)
            )),
            "unavailable"
        );
        assert!(matches!(
            channels(false, false, true, None).pick(Channel::Sms),
            Choice::Sms { keyword: true, .. }
        ));
    }

    #[test]
    fn phones_are_named_by_their_last_digits() {
        assert_eq!(last_digits("+15551234567"), "67");
    }
}
