//! Stage two of configuration: checks every value and turns the file structs
//! into [`Config`], whose fields have real types (addresses, networks,
//! durations, secrets). Collects every problem instead of stopping at the first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::clients::parse_network;

use super::Problem;
use super::file::{ConfigFile, LogFormat, Unenrolled};
use crate::auth::PrimaryConfig;
use crate::factor::duo::DuoConfig;
use crate::factor::oob::OutOfBandConfig;
use crate::factor::phone::PhoneConfig;
use crate::factor::sms::SmsConfig;
use crate::factor::totp::TotpConfig;
use crate::portal::PortalConfig;
use crate::radius::clients::Clients;
use crate::radius::radsec::RadsecConfig;
use crate::store::StoreConfig;
use crate::username::UsernameConfig;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// Weak settings that still work; see [`Config::warning_lines`].
    pub warnings: Vec<Problem>,
    /// RADIUS listener address.
    pub listen: SocketAddr,
    /// Requests processed at once.
    pub max_in_flight: usize,
    /// Lifetime of cached answers for retransmissions.
    pub duplicate_ttl: Duration,
    /// `[out_of_band]`.
    pub out_of_band: OutOfBandConfig,
    /// `[duo]`, if configured.
    pub duo: Option<DuoConfig>,
    /// `[push]`, if configured.
    pub push: Option<crate::factor::push::PushConfig>,
    /// `[sms]`, if configured.
    pub sms: Option<SmsConfig>,
    /// `[phone]`, if configured.
    pub phone: Option<PhoneConfig>,
    /// `[admin]`.
    pub admin: crate::http::admin::AdminConfig,
    /// `[smtp]`, if configured.
    pub smtp: Option<crate::mail::SmtpConfig>,
    /// `[http] public_url`.
    pub public_url: Option<String>,
    /// The NAS clients.
    pub clients: Clients,
    /// Primary authentication backend.
    pub primary: PrimaryConfig,
    /// TOTP settings.
    pub totp: TotpConfig,
    /// Login policy.
    pub policy: Policy,
    /// User-name normalisation.
    pub username: UsernameConfig,
    /// Store settings.
    pub store: StoreConfig,
    /// tracing filter directives.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// HTTP listener (metrics, health, portal), if any.
    pub http_listen: Option<SocketAddr>,
    /// `[portal]`.
    pub portal: PortalConfig,
    /// `[radsec]`, if configured.
    pub radsec: Option<RadsecConfig>,
}

/// Login policy, validated.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Separator between password and appended code.
    pub code_separator: String,
    /// What to do with users without a second factor.
    pub unenrolled: Unenrolled,
    /// Where users enroll.
    pub enroll_url: Option<String>,
    /// Consecutive failures before a lockout.
    pub max_failures: u32,
    /// Lockout length.
    pub lockout: Duration,
    /// Access-Challenge State lifetime.
    pub challenge_ttl: Duration,
}

/// What validation found.
#[derive(Debug, Default)]
pub struct Problems {
    /// The file cannot be used.
    pub errors: Vec<Problem>,
    /// Weak but workable (RFC 2865 §3's SHOULDs): logged at WARN at start.
    pub warnings: Vec<Problem>,
}

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Validates a deserialized file: the configuration (with its warnings), or
/// every error and warning.
pub fn validate(mut file: ConfigFile, source: &Path) -> Result<Config, Problems> {
    let mut problems = Problems::default();
    // One public address for the whole listener unless out-of-band answers
    // need another (e.g. Twilio reaching a public proxy, users an internal name).
    if file.out_of_band.public_url.is_none() {
        file.out_of_band.public_url = file.http.public_url.clone();
    }
    if let Some(url) = &file.http.public_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        problems.add(
            "http.public_url",
            "must start with https:// (or http:// behind a TLS proxy)",
        );
    }
    for (key, message) in file.admin.problems() {
        problems.add(format!("admin.{key}"), message);
    }
    if let Some(smtp) = &file.smtp {
        for (key, message) in smtp.problems() {
            problems.add(format!("smtp.{key}"), message);
        }
    }
    if file.admin.token_file.is_some() && file.http.listen.is_none() {
        problems.add("admin.token_file", "the admin API needs [http] listen");
    }

    let listen = file
        .radius
        .listen
        .parse::<SocketAddr>()
        .unwrap_or_else(|_| {
            problems.add(
                "radius.listen",
                format!(
                    "{:?} is not an address:port such as \"0.0.0.0:1812\"",
                    file.radius.listen
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 1812))
        });
    if file.radius.max_in_flight == 0 {
        problems.add("radius.max_in_flight", "must be at least 1");
    }
    if file.radius.duplicate_cache_secs == 0 {
        problems.add(
            "radius.duplicate_cache_secs",
            "must be at least 1: without it a NAS retransmission repeats a login",
        );
    }

    let clients = super::clients::validate_clients(&file, &mut problems);
    if let Some(radsec) = &file.radsec {
        for (key, message) in radsec.problems() {
            problems.add(format!("radsec.{key}"), message);
        }
        if !clients.has_radsec() && !file.clients.is_empty() {
            problems.add(
                "radsec",
                "no [[clients]] entry may use RadSec: set radsec_cert_name (or radsec = true with address) on the NAS that connects",
            );
        }
    }

    let policy = &file.policy;
    if policy.code_separator.is_empty()
        || policy
            .code_separator
            .chars()
            .any(|c| c.is_ascii_alphanumeric())
    {
        problems.add(
            "policy.code_separator",
            "must be non-empty punctuation such as \",\" (letters and digits would split passwords)",
        );
    }
    if policy.max_failures == 0 {
        problems.add("policy.max_failures", "must be at least 1");
    }
    if policy.lockout_minutes == 0 {
        problems.add("policy.lockout_minutes", "must be at least 1");
    }
    if !(10..=600).contains(&policy.challenge_timeout_secs) {
        problems.add(
            "policy.challenge_timeout_secs",
            "must be between 10 and 600 seconds",
        );
    }
    if let Some(url) = &policy.enroll_url
        && url.trim().is_empty()
    {
        problems.add("policy.enroll_url", "must not be empty when set");
    }

    for (key, message) in file.primary.problems() {
        problems.add(format!("primary.{key}"), message);
    }
    for (key, message) in file.totp.problems() {
        problems.add(format!("totp.{key}"), message);
    }
    for (key, message) in file.store.problems() {
        problems.add(format!("store.{key}"), message);
    }
    for (key, message) in file.out_of_band.problems() {
        problems.add(format!("out_of_band.{key}"), message);
    }
    if let Some(duo) = &file.duo {
        for (key, message) in duo.problems() {
            problems.add(format!("duo.{key}"), message);
        }
    }
    if let Some(sms) = &file.sms {
        for (key, message) in sms.problems() {
            problems.add(format!("sms.{key}"), message);
        }
    }
    if let Some(phone) = &file.phone {
        for (key, message) in phone.problems(file.out_of_band.public_url.as_deref()) {
            // An empty key is about the whole section ("phone: needs ...").
            let key = match key.as_str() {
                "" => "phone".to_string(),
                key => format!("phone.{key}"),
            };
            problems.add(key, message);
        }
    }
    if file.out_of_band.public_url.is_some() && file.http.listen.is_none() {
        problems.add(
            "out_of_band.public_url",
            "needs [http] listen: the answers arrive on rampart's HTTP listener",
        );
    }

    for (key, message) in file.portal.problems() {
        problems.add(format!("portal.{key}"), message);
    }
    if file.portal.enabled && file.http.listen.is_none() {
        problems.add(
            "portal.enabled",
            "needs [http] listen: the portal is served on rampart's HTTP listener",
        );
    }

    if let Some(push) = &file.push {
        for (key, message) in push.problems() {
            problems.add(format!("push.{key}"), message);
        }
        // The answer has to come back somewhere: the reply topic, or links
        // to rampart's HTTP listener.
        let relayed =
            push.format == crate::factor::push::PushFormat::Ntfy && push.reply_topic.is_some();
        if !relayed && file.out_of_band.public_url.is_none() {
            problems.add(
                "out_of_band.public_url",
                match push.format {
                    crate::factor::push::PushFormat::Webhook => {
                        "missing: webhook answers come back to rampart's HTTP listener; set public_url to the address the receiver (or the phone) reaches it at"
                    }
                    crate::factor::push::PushFormat::Ntfy => {
                        "missing: set public_url (the phone reaches rampart) or [push] reply_topic (answers relayed through the ntfy server)"
                    }
                },
            );
        }
    }

    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&file.log.level) {
        problems.add("log.level", format!("not a valid filter: {error}"));
    }

    let http_listen = match &file.http.listen {
        None => None,
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.add(
                    "http.listen",
                    format!("{text:?} is not an address:port such as \"127.0.0.1:9812\""),
                );
                None
            }
        },
    };

    if !problems.errors.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        source: source.to_path_buf(),
        warnings: problems.warnings,
        listen,
        max_in_flight: file.radius.max_in_flight,
        duplicate_ttl: Duration::from_secs(file.radius.duplicate_cache_secs),
        out_of_band: file.out_of_band,
        admin: file.admin,
        smtp: file.smtp,
        public_url: file.http.public_url.clone(),
        duo: file.duo,
        push: file.push,
        sms: file.sms,
        phone: file.phone,
        clients,
        primary: file.primary,
        totp: file.totp,
        policy: Policy {
            code_separator: file.policy.code_separator,
            unenrolled: file.policy.unenrolled,
            // With the portal on, unenrolled users are told its address by default.
            enroll_url: file.policy.enroll_url.or_else(|| {
                file.portal
                    .enabled
                    .then_some(file.http.public_url.as_ref())
                    .flatten()
                    .map(|base| format!("{}/enroll", base.trim_end_matches('/')))
            }),
            max_failures: file.policy.max_failures,
            lockout: Duration::from_secs(file.policy.lockout_minutes * 60),
            challenge_ttl: Duration::from_secs(file.policy.challenge_timeout_secs),
        },
        store: file.store,
        username: file.username,
        log_level: file.log.level,
        log_format: file.log.format,
        http_listen,
        portal: file.portal,
        radsec: file.radsec,
    })
}
