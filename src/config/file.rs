//! Stage one of configuration: the file as written, in serde structs with
//! `deny_unknown_fields` so a misspelt key is an error, not silently ignored.
//! Defaults here are the documented defaults. Backend sections own their
//! structs in their own modules (`auth::local`, `factor::totp`, `store`).

use serde::Deserialize;

use crate::auth::PrimaryConfig;
use crate::factor::duo::DuoConfig;
use crate::factor::oob::OutOfBandConfig;
use crate::factor::phone::PhoneConfig;
use crate::factor::sms::SmsConfig;
use crate::factor::totp::TotpConfig;
use crate::portal::PortalConfig;
use crate::store::StoreConfig;
use crate::username::UsernameConfig;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[radius]`
    #[serde(default)]
    pub radius: RadiusSection,
    /// `[[clients]]`
    #[serde(default)]
    pub clients: Vec<ClientSection>,
    /// `[primary]`
    #[serde(default)]
    pub primary: PrimaryConfig,
    /// `[totp]`
    #[serde(default)]
    pub totp: TotpConfig,
    /// `[policy]`
    #[serde(default)]
    pub policy: PolicySection,
    /// `[username]`
    #[serde(default)]
    pub username: UsernameConfig,
    /// `[store]`
    #[serde(default)]
    pub store: StoreConfig,
    /// `[log]`
    #[serde(default)]
    pub log: LogSection,
    /// `[http]`
    #[serde(default)]
    pub http: HttpSection,
    /// `[out_of_band]`: holding logins for push, phone and SMS.
    #[serde(default)]
    pub out_of_band: OutOfBandConfig,
    /// `[duo]`: Duo Auth API v2 runs the whole second factor.
    #[serde(default)]
    pub duo: Option<DuoConfig>,
    /// `[push]`: webhook or ntfy push notifications.
    #[serde(default)]
    pub push: Option<crate::factor::push::PushConfig>,
    /// `[sms]`: text-message gateway (Twilio or a templated HTTP gateway).
    #[serde(default)]
    pub sms: Option<SmsConfig>,
    /// `[admin]`: the JSON admin API and invitations.
    #[serde(default)]
    pub admin: crate::http::admin::AdminConfig,
    /// `[smtp]`: outgoing mail for invitations.
    #[serde(default)]
    pub smtp: Option<crate::mail::SmtpConfig>,
    /// `[phone]`: verification calls (Twilio).
    #[serde(default)]
    pub phone: Option<PhoneConfig>,
    /// `[portal]`: the self-enrollment portal.
    #[serde(default)]
    pub portal: PortalConfig,
    /// `[radsec]`: the RADIUS over TLS listener; absent = none.
    #[serde(default)]
    pub radsec: Option<crate::radius::radsec::RadsecConfig>,
}

/// `[radius]`: the UDP listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusSection {
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Requests processed at once, including logins held for a push or
    /// call (each costs a few KiB while it waits).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Seconds an answer is kept for retransmissions (RFC 5080 §2.2.2).
    #[serde(default = "default_duplicate_cache_secs")]
    pub duplicate_cache_secs: u64,
}

impl Default for RadiusSection {
    fn default() -> Self {
        RadiusSection {
            listen: default_listen(),
            max_in_flight: default_max_in_flight(),
            duplicate_cache_secs: default_duplicate_cache_secs(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:1812".into()
}
fn default_max_in_flight() -> usize {
    65_536
}
fn default_duplicate_cache_secs() -> u64 {
    30
}

/// `[[clients]]`: one NAS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Name for logs and metrics.
    #[serde(default)]
    pub name: String,
    /// IP address or CIDR the NAS sends from. Over RadSec optional: when set,
    /// connections must also come from it.
    #[serde(default)]
    pub address: String,
    /// Accept `0.0.0.0/0` or `::/0` as `address`: every source shares this
    /// secret. Refused without this explicit opt-in.
    #[serde(default)]
    pub allow_any_address: bool,
    /// Shared secret, inline.
    pub secret: Option<String>,
    /// Shared secret read from a file (systemd credentials), trailing newline removed.
    pub secret_file: Option<String>,
    /// Drop Access-Requests without a valid Message-Authenticator (BLAST-RADIUS).
    #[serde(default = "default_true")]
    pub require_message_authenticator: bool,
    /// Accept app passwords (made on the portal) in place of password +
    /// second factor, for mail and other apps that cannot do MFA. Off by default.
    #[serde(default)]
    pub allow_app_passwords: bool,
    /// RadSec: the name the NAS's certificate must carry (subjectAltName DNS
    /// or IP, else the CN; RFC 6614 §2.3). Setting it allows RadSec.
    #[serde(default)]
    pub radsec_cert_name: Option<String>,
    /// RadSec: allow this client over RadSec (default: when
    /// `radsec_cert_name` is set). With `address` alone, any certificate from
    /// `[radsec] ca_file` connecting from that address is this client.
    #[serde(default)]
    pub radsec: Option<bool>,
}

fn default_true() -> bool {
    true
}

/// What to do with a user who has no second factor enrolled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unenrolled {
    /// Reject, telling where to enroll.
    #[default]
    Reject,
    /// Accept on the password alone.
    Allow,
}

/// `[policy]`: how codes arrive and how failures are limited.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Separator between password and appended code (`secret,123456`).
    #[serde(default = "default_separator")]
    pub code_separator: String,
    /// Policy for users without a second factor.
    #[serde(default)]
    pub unenrolled: Unenrolled,
    /// Where users enroll; included in the Reply-Message that rejects an unenrolled user.
    #[serde(default)]
    pub enroll_url: Option<String>,
    /// Consecutive failures before a lockout.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Minutes a lockout lasts.
    #[serde(default = "default_lockout_minutes")]
    pub lockout_minutes: u64,
    /// Seconds an Access-Challenge State stays valid.
    #[serde(default = "default_challenge_secs")]
    pub challenge_timeout_secs: u64,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            code_separator: default_separator(),
            unenrolled: Unenrolled::default(),
            enroll_url: None,
            max_failures: default_max_failures(),
            lockout_minutes: default_lockout_minutes(),
            challenge_timeout_secs: default_challenge_secs(),
        }
    }
}

fn default_separator() -> String {
    ",".into()
}
fn default_max_failures() -> u32 {
    5
}
fn default_lockout_minutes() -> u64 {
    15
}
fn default_challenge_secs() -> u64 {
    120
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, for collectors.
    Json,
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// tracing filter, e.g. `info` or `info,rampart::radius=debug`; `RUST_LOG` overrides.
    #[serde(default = "default_level")]
    pub level: String,
    /// `human` or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: default_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

/// `[http]`: the HTTP listener (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Address:port; unset = no HTTP listener.
    pub listen: Option<String>,
    /// How users, phones and Twilio reach this listener, e.g.
    /// `https://mfa.example.com` (a reverse proxy terminating TLS). Used for
    /// portal and invitation links, and for out-of-band answers unless
    /// `[out_of_band] public_url` says otherwise.
    pub public_url: Option<String>,
}
