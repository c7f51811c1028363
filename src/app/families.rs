//! The metric families rampart exports: their help text, and zero values for
//! the series a configuration makes possible, so that every family is in the
//! first scrape. Prometheus' advice ("Avoid missing metrics", Instrumentation
//! best practices): a series that appears only after its first event breaks
//! `rate()` and alerts on it, and a dashboard would show "no data" instead
//! of 0. Label values come from the configuration (client names, channels)
//! or are fixed words; never a user name.

use metrics::{describe_counter, describe_gauge, describe_histogram};

use crate::config::Config;
use crate::pipeline::STAGE_SECONDS;

/// `(name, help)` of the counters.
const COUNTERS: &[(&str, &str)] = &[
    (
        crate::auth::hasher::HASH_REFUSED,
        "Local password checks refused without running, by reason: queue_full, deadline.",
    ),
    (
        "rampart_requests_total",
        "Access-Requests decided, by client and outcome (accept, reject, challenge).",
    ),
    (
        "rampart_rejects_total",
        "Access-Rejects by audit reason (bad_password, bad_code, locked_out, ...).",
    ),
    (
        "rampart_radius_dropped_total",
        "Datagrams dropped without an answer, by reason.",
    ),
    (
        "rampart_radius_duplicates_total",
        "NAS retransmissions: dropped while in flight, or answered from the cache (resent).",
    ),
    (
        "rampart_lockouts_total",
        "Users locked: too many failures, or a denied or fraud-reported approval.",
    ),
    (
        "rampart_fraud_reports_total",
        "Approvals answered with 'deny and report fraud', by channel.",
    ),
    (
        "rampart_oob_outcomes_total",
        "Held logins by channel and how they ended (approved, denied, fraud, not_answered, timeout, error).",
    ),
    (
        "rampart_oob_delivery_failures_total",
        "Pushes, calls and texts a provider did not accept, by channel and reason (timeout, connect, status, protocol; busy: no delivery slot in time).",
    ),
    (
        "rampart_oob_rate_limited_total",
        "Pushes, calls and texts refused by the per-user limit.",
    ),
    (
        "rampart_oob_answers_refused_total",
        "Approve/Deny answers refused (expired, replayed, forged), by reason.",
    ),
    (
        "rampart_provider_requests_total",
        "Calls to provider APIs (Twilio, SMS gateway, Duo) by provider and outcome.",
    ),
    (
        crate::factor::sms::SMS_CODES_SENT,
        "SMS sign-in codes the provider accepted.",
    ),
    (
        "rampart_provider_errors_total",
        "Provider API failures by provider and reason.",
    ),
    (
        "rampart_failopen_total",
        "Logins accepted on the password alone because the MFA service was unreachable (failmode = safe).",
    ),
    (
        "rampart_store_errors_total",
        "Store operations that failed, by operation.",
    ),
    (
        "rampart_audit_dropped_total",
        "Audit rows dropped because the store writer fell behind (the log line remains).",
    ),
    (
        "rampart_ldap_errors_total",
        "LDAP failures by server and kind (connect, refused, timeout, broken).",
    ),
    (
        "rampart_config_reloads_total",
        "SIGHUP reloads by outcome (ok, refused).",
    ),
    (
        "rampart_radsec_connections_total",
        "RadSec (RADIUS over TLS) connections established, by client.",
    ),
    (
        "rampart_radsec_handshake_failures_total",
        "RadSec connections refused before carrying a request, by reason (unknown_ca, unknown_client, timeout, ...).",
    ),
];

/// `(name, help)` of the gauges.
const GAUGES: &[(&str, &str)] = &[
    (
        crate::auth::hasher::HASH_QUEUED,
        "Local password checks waiting for a worker now.",
    ),
    (
        crate::store::health::STORE_WRITABLE,
        "1 while the store takes writes; 0 while every login is rejected until it does again.",
    ),
    (
        "rampart_build_info",
        "Always 1; the version label says which rampart runs.",
    ),
    (
        "rampart_oob_pending",
        "Logins held now, waiting for a push, call or Duo answer.",
    ),
    (
        "rampart_ldap_pool_size",
        "Connections each LDAP pool may hold (pool_size).",
    ),
    (
        "rampart_ldap_connections",
        "Open LDAP connections by server and pool.",
    ),
    (
        "rampart_ldap_connections_busy",
        "LDAP connections held by a request now; at pool size, requests queue.",
    ),
    (
        "rampart_config_last_reload_successful",
        "1 if the last reload was applied (or none was asked), 0 if it was refused.",
    ),
    (
        "rampart_push_relay_connected",
        "1 while the ntfy reply relay is subscribed.",
    ),
    (
        "rampart_radsec_open_connections",
        "RadSec connections open now.",
    ),
];

/// Why a datagram is dropped in the listener itself (decode errors add theirs).
const DROP_REASONS: &[&str] = &[
    "unknown_client",
    "missing_message_authenticator",
    "bad_message_authenticator",
    "oversized",
    "unsupported_code",
    "overloaded",
    "bad_user_password",
    "duplicate_attribute",
    "eap_without_message_authenticator",
];

/// The rejects an operator watches first.
const REJECT_REASONS: &[&str] = &[
    "bad_password",
    "unknown_user",
    "bad_code",
    "replayed_code",
    "locked_out",
    "not_enrolled",
    "directory_unavailable",
    "store_unavailable",
    "overloaded",
];

/// The store failures an operator watches first: reads and writes of the
/// login path, the audit writer, and the health probe and file watcher.
const STORE_OPERATIONS: &[&str] = &[
    "login_state",
    "record_failure",
    "record_success",
    "totp",
    "audit",
    "probe",
    "files",
];

/// The provider API series a fault shows first (a hung or failing SMS
/// gateway, Twilio, Duo), at zero for the providers configured.
fn register_providers(config: &Config) {
    let mut delivering = Vec::new();
    if let Some(sms) = &config.sms {
        delivering.push(match sms {
            crate::factor::sms::SmsConfig::Twilio(_) => "twilio_sms",
            crate::factor::sms::SmsConfig::Template(_) => "sms_template",
        });
        metrics::counter!(crate::factor::sms::SMS_CODES_SENT).increment(0);
    }
    if config.phone.is_some() {
        delivering.push("twilio_call");
    }
    for provider in delivering {
        for outcome in ["ok", "timeout", "connect", "status"] {
            metrics::counter!("rampart_provider_requests_total", "provider" => provider, "outcome" => outcome)
                .increment(0);
        }
    }
    if config.duo.is_some() {
        for outcome in ["allow", "deny", "timeout", "unavailable"] {
            metrics::counter!("rampart_provider_requests_total", "provider" => "duo", "outcome" => outcome)
                .increment(0);
        }
        for reason in [
            "timeout",
            "connect",
            "server",
            "credentials",
            "rate_limited",
        ] {
            metrics::counter!("rampart_provider_errors_total", "provider" => "duo", "reason" => reason)
                .increment(0);
        }
    }
}

/// Describes every family once, at start.
pub fn describe() {
    for (name, help) in COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, help) in GAUGES {
        describe_gauge!(*name, *help);
    }
    describe_histogram!(
        STAGE_SECONDS,
        metrics::Unit::Seconds,
        "Time per request stage: primary (password backend), factor (second factor, holds included), total."
    );
    metrics::gauge!("rampart_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("rampart_config_last_reload_successful").set(1.0);
    for outcome in ["ok", "refused"] {
        metrics::counter!("rampart_config_reloads_total", "outcome" => outcome).absolute(0);
    }
}

/// Registers at zero the series `config` makes possible; run at start and
/// after each reload (new clients, new channels). Existing values are kept:
/// `increment(0)` registers without resetting.
pub fn register(config: &Config) {
    for client in config.clients.iter() {
        for outcome in ["accept", "reject", "challenge"] {
            metrics::counter!("rampart_requests_total", "client" => client.name.to_string(), "outcome" => outcome)
                .increment(0);
        }
    }
    for reason in REJECT_REASONS {
        metrics::counter!("rampart_rejects_total", "reason" => *reason).increment(0);
    }
    for reason in DROP_REASONS {
        metrics::counter!("rampart_radius_dropped_total", "reason" => *reason).increment(0);
    }
    for kind in ["in_flight", "resent"] {
        metrics::counter!("rampart_radius_duplicates_total", "kind" => kind).increment(0);
    }
    for stage in ["primary", "factor", "total"] {
        // Registered without a sample: exported with zero counts.
        let _ = metrics::histogram!(STAGE_SECONDS, "stage" => stage);
    }
    metrics::counter!("rampart_lockouts_total").increment(0);
    for reason in ["queue_full", "deadline"] {
        metrics::counter!(crate::auth::hasher::HASH_REFUSED, "reason" => reason).increment(0);
    }
    for operation in STORE_OPERATIONS {
        metrics::counter!(crate::store::health::STORE_ERRORS, "operation" => *operation)
            .increment(0);
    }
    metrics::counter!("rampart_audit_dropped_total").increment(0);

    let mut channels = Vec::new();
    if config.push.is_some() {
        channels.push("push");
    }
    if config.phone.is_some() {
        channels.push("phone");
    }
    if config.sms.is_some() {
        channels.push("sms");
    }
    if !channels.is_empty() || config.duo.is_some() {
        metrics::gauge!("rampart_oob_pending").increment(0.0);
    }
    for channel in channels {
        if channel != "sms" {
            for outcome in ["approved", "denied", "fraud", "timeout", "error"] {
                metrics::counter!("rampart_oob_outcomes_total", "channel" => channel, "outcome" => outcome)
                    .increment(0);
            }
            metrics::counter!("rampart_fraud_reports_total", "channel" => channel).increment(0);
        }
        for reason in ["timeout", "connect", "status"] {
            metrics::counter!("rampart_oob_delivery_failures_total", "channel" => channel, "reason" => reason)
                .increment(0);
        }
        if channel != "sms" {
            // No delivery slot within `DELIVERY_SLOT_WAIT` (pushes and calls).
            metrics::counter!("rampart_oob_delivery_failures_total", "channel" => channel, "reason" => "busy")
                .increment(0);
        }
        metrics::counter!("rampart_oob_rate_limited_total", "channel" => channel).increment(0);
    }
    if config.duo.is_some() {
        metrics::counter!("rampart_failopen_total", "provider" => "duo").increment(0);
    }
    register_providers(config);
    if config.radsec.is_some() {
        metrics::gauge!("rampart_radsec_open_connections").increment(0.0);
        for reason in ["unknown_ca", "unknown_client", "no_certificate", "timeout"] {
            metrics::counter!("rampart_radsec_handshake_failures_total", "reason" => reason)
                .increment(0);
        }
        for client in config.clients.radsec_names() {
            metrics::counter!("rampart_radsec_connections_total", "client" => client.to_string())
                .increment(0);
        }
    }
    // LDAP series are registered by the connection pools (auth::ldap::pool),
    // which know their servers.
}
