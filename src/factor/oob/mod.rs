//! Out-of-band second factors: the login waits (is "parked") while something
//! happens on the user's phone — a push to approve, a call answered with `#`,
//! or an SMS code typed in the next request. This module owns what every
//! provider shares: the provider traits (one small trait per channel, one
//! file per provider), the table of parked logins ([`pending`]), the signed
//! single-use Approve/Deny tokens ([`token`]), the per-user rate limit
//! ([`limit`]) and the `[out_of_band]` policy section.
//!
//! Providers only deliver. Whatever answers — the HTTP callback, the ntfy
//! reply topic, Twilio's call callback, a Duo status poll — resolves the
//! parked login through [`pending::PendingTable::resolve`]; the pipeline alone
//! turns the [`Answer`] into a RADIUS decision.

pub mod limit;
pub mod pending;
pub mod token;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::secret::Secret;

/// The ways a login can be approved out of band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A notification with Approve and Deny buttons.
    Push,
    /// A voice call answered with `#`.
    Phone,
    /// A code sent by SMS and typed back.
    Sms,
}

impl Channel {
    /// Name used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Push => "push",
            Channel::Phone => "phone",
            Channel::Sms => "sms",
        }
    }

    /// Parses a Duo-style keyword typed after the password (`secret,push`).
    pub fn from_keyword(text: &str) -> Option<Channel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "push" => Some(Channel::Push),
            "phone" | "call" => Some(Channel::Phone),
            "sms" | "text" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// How a parked login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The user approved (tapped Approve, pressed `#`).
    Approved,
    /// The user declined.
    Denied,
    /// The user declined and reported the attempt as fraud.
    Fraud,
    /// A PIN call was answered with the wrong PIN: a failed attempt (it
    /// counts toward the lockout), not a "this was not me".
    WrongPin,
    /// The call was not answered, was busy or failed on the carrier side.
    NotAnswered,
    /// No answer before the deadline.
    TimedOut,
}

impl Answer {
    /// Name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Approved => "approved",
            Answer::Denied => "denied",
            Answer::Fraud => "fraud",
            Answer::WrongPin => "wrong_pin",
            Answer::NotAnswered => "not_answered",
            Answer::TimedOut => "timeout",
        }
    }
}

/// What the phone is told about the login it is asked to approve.
#[derive(Debug, Clone)]
pub struct LoginContext {
    /// Normalised user name.
    pub user: String,
    /// The NAS's client name from the configuration.
    pub client: String,
    /// The NAS's address.
    pub client_address: IpAddr,
    /// NAS-Identifier, if sent.
    pub nas_identifier: Option<String>,
    /// Calling-Station-Id (the user's address or device), if sent.
    pub calling_station_id: Option<String>,
    /// Unix seconds when the login arrived.
    pub time: u64,
}

impl LoginContext {
    /// One short human line: "Sign-in as alice to vpn from 203.0.113.7 at 14:03 UTC".
    pub fn summary(&self) -> String {
        let (h, m) = ((self.time / 3600) % 24, (self.time / 60) % 60);
        let mut line = format!("Sign-in as {} to {}", self.user, self.client);
        if let Some(station) = self.calling_station_id.as_deref().filter(|s| !s.is_empty()) {
            line.push_str(&format!(" from {station}"));
        }
        line.push_str(&format!(" at {h:02}:{m:02} UTC"));
        line
    }
}

/// One way to answer a parked login: a URL on rampart's HTTP listener (when
/// `public_url` is set) and the signed token itself, which a relay (the ntfy
/// reply topic) carries back instead.
#[derive(Debug, Clone)]
pub struct ActionLink {
    /// `{public_url}/oob/v1/answer?t={token}`, if rampart is reachable.
    pub url: Option<String>,
    /// The signed single-use token (see [`token`]).
    pub token: String,
}

/// A login waiting for approval, as a provider sees it.
#[derive(Debug, Clone)]
pub struct Approval {
    /// Transaction id: 128 random bits, hex.
    pub txn: String,
    /// Who is signing in, where from.
    pub context: LoginContext,
    /// The human message for the notification.
    pub message: String,
    /// Approve action.
    pub approve: ActionLink,
    /// Deny action.
    pub deny: ActionLink,
    /// Deny-and-report-fraud action.
    pub fraud: ActionLink,
    /// Unix seconds after which the tokens are refused.
    pub expires_at: u64,
}

/// Where a user's push notifications go (from enrollment or `[push] url`).
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// Topic URL (ntfy) or webhook URL. A bearer secret: whoever reads the
    /// notifications can approve, so it is sealed at rest and never logged.
    pub url: Secret<String>,
}

/// Why a provider could not deliver. Every variant has a short metric reason.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Connect or read timeout.
    #[error("timed out")]
    Timeout,
    /// Connection refused, DNS, TLS.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The service answered with an error status.
    #[error("HTTP status {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The service's error text, trimmed (never contains our secrets).
        message: String,
    },
    /// The service answered something we cannot read.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The user has nowhere to deliver to (no number, no topic).
    #[error("no delivery target: {0}")]
    NoTarget(&'static str),
}

impl ProviderError {
    /// Short label for `rampart_provider_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            ProviderError::Timeout => "timeout",
            ProviderError::Connect(_) => "connect",
            ProviderError::Status { .. } => "status",
            ProviderError::Protocol(_) => "protocol",
            ProviderError::NoTarget(_) => "no_target",
        }
    }

    /// Maps a reqwest error without its URL (URLs can carry tokens).
    pub fn from_reqwest(error: reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            ProviderError::Timeout
        } else if error.is_connect() || error.is_request() {
            ProviderError::Connect(error.without_url().to_string())
        } else {
            ProviderError::Protocol(error.without_url().to_string())
        }
    }
}

/// Delivers push notifications (webhook, ntfy).
#[async_trait]
pub trait PushSender: Send + Sync {
    /// Sends the notification for `approval` to `target`. Returns once the
    /// push service accepted it; the answer arrives later through the
    /// pending table.
    async fn send(&self, target: &PushTarget, approval: &Approval) -> Result<(), ProviderError>;
}

/// What a verification call asks the user to type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPrompt {
    /// Press `#` to approve.
    Pound,
    /// Type the PIN followed by `#` (`[phone] pin`); the PIN's hash is
    /// registered with the pending table ([`pending::PendingTable::expect_pin`])
    /// before the call is placed.
    Pin,
}

/// Places voice calls (Twilio-compatible Calls API).
#[async_trait]
pub trait Caller: Send + Sync {
    /// Calls `number` (E.164) for `approval`, asking for what `prompt` says.
    /// Returns once the call is queued; the keypress arrives later through
    /// the provider's callback.
    async fn call(
        &self,
        number: &str,
        approval: &Approval,
        prompt: CallPrompt,
    ) -> Result<(), ProviderError>;
}

/// Sends text messages (Twilio-compatible Messages API, generic template).
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends `text` to `number` (E.164). Returns once the gateway accepted it.
    async fn send(&self, number: &str, text: &Secret<String>) -> Result<(), ProviderError>;
}

/// A hosted MFA service that runs the whole second factor itself (Duo).
#[async_trait]
pub trait HostedMfa: Send + Sync {
    /// Runs the second factor for a user whose password was right and
    /// returns once it is decided or `deadline` passes.
    async fn authenticate(&self, request: &HostedRequest<'_>) -> HostedOutcome;
}

/// What the user asked for after the password.
#[derive(Debug, Clone)]
pub enum HostedFactor {
    /// No keyword: the service's default (Duo `auto`).
    Auto,
    /// `push`, `phone` or `sms`.
    Channel(Channel),
    /// A code typed after the password (Duo `passcode`).
    Passcode(Secret<String>),
}

/// One hosted second-factor request.
#[derive(Debug)]
pub struct HostedRequest<'a> {
    /// The login.
    pub context: &'a LoginContext,
    /// The factor asked for.
    pub factor: HostedFactor,
    /// Give up (and answer [`HostedOutcome::Deny`] with reason `timeout`) after this long.
    pub deadline: Duration,
}

/// The hosted service's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostedOutcome {
    /// Second factor done.
    Allow {
        /// Audit reason (e.g. `ok`, `bypass` when the service allows without a factor).
        reason: &'static str,
    },
    /// Refused; `message` is for the user.
    Deny {
        /// Audit reason (`denied`, `fraud`, `timeout`, `locked_out`, ...).
        reason: &'static str,
        /// Reply-Message, if any.
        message: Option<String>,
    },
    /// The user must enroll at the service first.
    Enroll {
        /// Enrollment portal URL, if the service sent one.
        url: Option<String>,
    },
    /// SMS passcodes were sent: the user signs in again with one.
    SmsSent,
    /// The service could not be reached or answered garbage; the pipeline
    /// applies the configured fail mode.
    Unavailable {
        /// Metric reason.
        reason: &'static str,
    },
}

/// `+` and 8–15 digits after removing spaces, dashes, dots and parentheses
/// (directory attributes are typed by people); `None` if it is not E.164.
pub fn e164(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = cleaned.strip_prefix('+')?;
    ((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(cleaned)
}

/// The out-of-band providers in use now. The HTTP listener and the portal
/// read them through this handle, so a reload that changes `[push]`, `[sms]`
/// or `[phone]` (their secrets included) reaches them as it reaches the
/// pipeline. Every value shares one pending table (see
/// [`OutOfBand::with_tables`]), so an answer finds its login whichever
/// configuration parked it.
#[derive(Clone)]
pub struct OobHandle(Arc<crate::live::Live<Option<Arc<OutOfBand>>>>);

impl OobHandle {
    /// A handle on `oob`.
    pub fn new(oob: Option<Arc<OutOfBand>>) -> OobHandle {
        OobHandle(Arc::new(crate::live::Live::new(Arc::new(oob))))
    }

    /// The providers in use now; `None` when none is configured.
    pub fn current(&self) -> Option<Arc<OutOfBand>> {
        (*self.0.load()).clone()
    }

    /// Switches to a reloaded configuration's providers.
    pub fn replace(&self, oob: Option<Arc<OutOfBand>>) {
        self.0.store(Arc::new(oob));
    }
}

/// Deliveries in flight at once (see [`OutOfBand::deliveries`]).
pub const MAX_CONCURRENT_DELIVERIES: usize = 128;

/// Longest a login waits for a delivery slot. A service that takes
/// deliveries turns the slots over in milliseconds; when every slot stays
/// busy this long the service is hung or failing, and a login waiting on
/// would get its Reject one provider timeout later per round of slots,
/// long past its NAS's deadline. So a login is answered at most this plus
/// the provider's `timeout_secs` after it asked.
pub const DELIVERY_SLOT_WAIT: Duration = Duration::from_secs(5);

/// Everything out of band the daemon has: the policy, the parked logins, the
/// token signer, the send limit, and the configured providers. Shared by the
/// pipeline (which parks and decides) and the HTTP listener (which answers).
pub struct OutOfBand {
    /// `[out_of_band]`.
    pub config: OutOfBandConfig,
    /// Parked logins of this node.
    pub pending: Arc<pending::PendingTable>,
    /// Signs and checks Approve/Deny tokens.
    pub tokens: token::Tokens,
    /// Pushes and calls per user (kept across reloads, like `pending`).
    pub limit: Arc<limit::SendLimit>,
    /// `[push]`, if configured.
    pub push: Option<Arc<dyn PushSender>>,
    /// `[push] url`: where pushes go for users who enrolled no target of their own.
    pub default_push_target: Option<PushTarget>,
    /// `[phone]`, if configured.
    pub caller: Option<Arc<dyn Caller>>,
    /// `[phone]`'s callback checker (account, signing token, public URL),
    /// for the Twilio callbacks on the HTTP listener.
    pub phone_callbacks: Option<Arc<crate::factor::phone::PhoneCallbacks>>,
    /// `[phone] pin`: whether calls ask for the user's PIN.
    pub phone_pin: crate::factor::phone::pin::PinMode,
    /// `[sms]`, if configured.
    pub sms: Option<Arc<dyn SmsSender>>,
    /// `[duo]`, if configured: it then runs every second factor.
    pub hosted: Option<Arc<dyn HostedMfa>>,
    /// `[duo] failmode`.
    pub hosted_failmode: FailMode,
    /// Deliveries (pushes, calls, texts) in flight at once: a burst of
    /// logins queues here instead of opening a connection each to the push
    /// service (measured: 50 000 logins in 10 s against a slow receiver
    /// otherwise cost hundreds of MiB of connection buffers).
    pub deliveries: Arc<tokio::sync::Semaphore>,
    /// The store's key: hashes the PIN typed on a call.
    key: Arc<crate::seal::SealKey>,
}

impl OutOfBand {
    /// Policy and tables without any provider; add providers to the fields.
    pub fn new(config: OutOfBandConfig, key: Arc<crate::seal::SealKey>) -> OutOfBand {
        let limit = Arc::new(limit::SendLimit::new(
            config.max_per_window,
            Duration::from_secs(config.rate_window_secs),
        ));
        OutOfBand {
            config,
            pending: pending::PendingTable::new(),
            tokens: token::Tokens::new(key.clone()),
            limit,
            push: None,
            default_push_target: None,
            caller: None,
            phone_callbacks: None,
            phone_pin: Default::default(),
            sms: None,
            hosted: None,
            hosted_failmode: FailMode::default(),
            deliveries: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DELIVERIES)),
            key,
        }
    }

    /// What the digits typed on a PIN call of transaction `txn` mean, or
    /// `None` if that call asked for no PIN (or the login is no longer
    /// waiting). See [`crate::factor::phone::pin::judge`].
    pub fn judge_pin(&self, txn: &str, digits: Option<&str>) -> Option<Answer> {
        let (user, expected) = self.pending.expected_pin(txn)?;
        Some(crate::factor::phone::pin::judge(
            &self.key, &user, digits, &expected,
        ))
    }

    /// Takes over the parked logins and the send history of the running
    /// configuration (a reload): logins waiting for a push keep waiting in the
    /// same table and their answers still find them. The send history is
    /// kept unless `[out_of_band]` changed the limit itself.
    pub fn with_tables(
        mut self,
        pending: Arc<pending::PendingTable>,
        limit: Arc<limit::SendLimit>,
    ) -> OutOfBand {
        self.pending = pending;
        if limit.is(
            self.config.max_per_window,
            Duration::from_secs(self.config.rate_window_secs),
        ) {
            self.limit = limit;
        }
        self
    }

    /// The approval a provider delivers for transaction `txn`: message,
    /// signed Approve/Deny/Fraud tokens, and their URLs on the HTTP listener
    /// (`{public_url}/oob/v1/answer?t={token}`) when `public_url` is set.
    pub fn approval(&self, txn: &str, context: LoginContext) -> Approval {
        let expires_at = context.time + self.config.timeout_secs;
        let link = |answer| {
            let token = self.tokens.sign(&context.user, txn, answer, expires_at);
            let url = self
                .config
                .public_url
                .as_ref()
                .map(|base| format!("{}/oob/v1/answer?t={token}", base.trim_end_matches('/')));
            ActionLink { url, token }
        };
        let (approve, deny, fraud) = (
            link(Answer::Approved),
            link(Answer::Denied),
            link(Answer::Fraud),
        );
        Approval {
            txn: txn.to_string(),
            message: context.summary(),
            context,
            approve,
            deny,
            fraud,
            expires_at,
        }
    }
}

/// What to do when a hosted MFA service (Duo) cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Fail closed: reject the login. The default; MFA is the point.
    #[default]
    Secure,
    /// Fail open: accept on the password alone, logged and counted
    /// (`rampart_failopen_total`) so nobody finds out weeks later.
    Safe,
}

/// `[out_of_band]`: how long logins are held and how often a user may be pushed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutOfBandConfig {
    /// Seconds a login waits for an answer. Keep it below the NAS timeout
    /// (RD Gateway's NPS is usually set to 60 s), so the NAS gets our Reject
    /// instead of giving up first.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Pushes and calls a user may receive per `rate_window_secs`.
    #[serde(default = "default_max_per_window")]
    pub max_per_window: u32,
    /// The rate-limit window, seconds.
    #[serde(default = "default_window")]
    pub rate_window_secs: u64,
    /// Minutes a user is locked after pressing Deny or reporting fraud
    /// (push-fatigue protection). 0 disables the lock for plain Deny; a fraud
    /// report always locks.
    #[serde(default = "default_deny_lock")]
    pub deny_lock_minutes: u64,
    /// Seconds an SMS code stays valid.
    #[serde(default = "default_sms_ttl")]
    pub sms_code_secs: u64,
    /// Base URL of rampart's HTTP listener as phones (and Twilio) reach it,
    /// e.g. `https://mfa.example.com`. Without it, pushes carry only relay
    /// tokens (ntfy reply topic) and phone calls cannot report back.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Use the directory's phone attribute when the user enrolled no number.
    #[serde(default = "default_true")]
    pub directory_phone: bool,
}

impl Default for OutOfBandConfig {
    fn default() -> Self {
        OutOfBandConfig {
            timeout_secs: default_timeout(),
            max_per_window: default_max_per_window(),
            rate_window_secs: default_window(),
            deny_lock_minutes: default_deny_lock(),
            sms_code_secs: default_sms_ttl(),
            public_url: None,
            directory_phone: true,
        }
    }
}

impl OutOfBandConfig {
    /// How long a login is held.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Problems as `(key, message)`, keys relative to `[out_of_band]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(1..=600).contains(&self.timeout_secs) {
            problems.push((
                "timeout_secs".into(),
                "must be between 1 and 600 seconds".into(),
            ));
        }
        if self.max_per_window == 0 {
            problems.push(("max_per_window".into(), "must be at least 1".into()));
        }
        if self.rate_window_secs == 0 {
            problems.push(("rate_window_secs".into(), "must be at least 1".into()));
        }
        if !(30..=3600).contains(&self.sms_code_secs) {
            problems.push((
                "sms_code_secs".into(),
                "must be between 30 and 3600 seconds".into(),
            ));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push((
                "public_url".into(),
                "must start with https:// (or http:// behind a TLS proxy)".into(),
            ));
        }
        problems
    }
}

fn default_timeout() -> u64 {
    50
}
fn default_max_per_window() -> u32 {
    3
}
fn default_window() -> u64 {
    300
}
fn default_deny_lock() -> u64 {
    15
}
fn default_sms_ttl() -> u64 {
    300
}
fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_duo_compatible() {
        assert_eq!(Channel::from_keyword("push"), Some(Channel::Push));
        assert_eq!(Channel::from_keyword("PHONE"), Some(Channel::Phone));
        assert_eq!(Channel::from_keyword("sms"), Some(Channel::Sms));
        assert_eq!(Channel::from_keyword("123456"), None);
        assert_eq!(Channel::from_keyword("pushy"), None);
    }

    #[test]
    fn numbers_are_cleaned_to_e164() {
        assert_eq!(e164("+1 (555) 123-4567").as_deref(), Some("+15551234567"));
        assert_eq!(e164("+44.20.7946.0958").as_deref(), Some("+442079460958"));
        assert_eq!(e164("555-1234"), None);
        assert_eq!(e164("+12"), None);
        assert_eq!(e164("+1555abc4567"), None);
    }

    #[test]
    fn summary_names_user_client_station_and_time() {
        let context = LoginContext {
            user: "alice".into(),
            client: "vpn".into(),
            client_address: "192.0.2.1".parse().unwrap(),
            nas_identifier: None,
            calling_station_id: Some("203.0.113.7".into()),
            time: 3600 * 14 + 60 * 3,
        };
        assert_eq!(
            context.summary(),
            "Sign-in as alice to vpn from 203.0.113.7 at 14:03 UTC"
        );
    }
}
