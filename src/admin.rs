//! Administration shared by the JSON admin API and the CLI: `[admin]`, the
//! user summaries both show, factor resets, the "not enrolled yet" list and
//! the audit-log rows. Handlers and commands only translate.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{PrimaryAuth, PrimaryError};
use crate::store::{DeviceKind, Store, StoreError, UserSummary};

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// File with the API's bearer token (e.g. a systemd credential); the API
    /// is off without it. Generate one with `openssl rand -hex 32`.
    pub token_file: Option<String>,
    /// Hours an invitation link stays valid.
    #[serde(default = "default_invitation_hours")]
    pub invitation_hours: u64,
    /// Directory group (DN) whose members should enroll, for the
    /// "not enrolled" list; unset = every directory user.
    pub enrollment_group: Option<String>,
    /// Organisation name used in invitation e-mails.
    #[serde(default = "default_organisation")]
    pub organisation: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token_file: None,
            invitation_hours: default_invitation_hours(),
            enrollment_group: None,
            organisation: default_organisation(),
        }
    }
}

fn default_invitation_hours() -> u64 {
    72
}
fn default_organisation() -> String {
    "Your IT team".into()
}

impl AdminConfig {
    /// Problems as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(1..=24 * 30).contains(&self.invitation_hours) {
            problems.push((
                "invitation_hours".into(),
                "must be between 1 and 720".into(),
            ));
        }
        if let Some(path) = &self.token_file {
            match crate::config::read_secret_file(path) {
                Ok(token) if token.trim().len() < 32 => problems.push((
                    "token_file".into(),
                    format!(
                        "{path}: the token must be at least 32 characters (openssl rand -hex 32)"
                    ),
                )),
                Ok(_) => {}
                Err(message) => problems.push(("token_file".into(), message)),
            }
        }
        problems
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The store failed (or the user does not exist).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The directory could not be listed.
    #[error(transparent)]
    Directory(#[from] PrimaryError),
    /// The request names something that does not exist.
    #[error("{0}")]
    BadRequest(&'static str),
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// One user's enrollment state, as the API and `rampart user show` print it.
pub async fn summary_json(
    store: &dyn Store,
    user: &UserSummary,
    now: i64,
) -> Result<Value, StoreError> {
    let oob = store.out_of_band(&user.name).await?;
    let app_passwords = store.app_passwords(&user.name).await?;
    let phone_pin = store.phone_pin_hash(&user.name).await?.is_some();
    let devices: Vec<Value> = oob
        .devices
        .iter()
        .map(|d| json!({ "kind": d.kind.as_str(), "label": d.label, "created_at": d.created_at }))
        .collect();
    let enrolled = user.totp || !devices.is_empty();
    Ok(json!({
        "name": user.name,
        "local_password": user.local_password,
        "enrolled": enrolled,
        "totp": user.totp,
        "devices": devices,
        "preferred_factor": oob.preferred,
        "phone_pin": phone_pin,
        "recovery_codes_left": user.recovery_codes_left,
        "app_passwords": app_passwords.len(),
        "failures": user.failures,
        "locked_until": user.locked_until.filter(|t| *t > now),
        "last_login": user.last_login,
        "created_at": user.created_at,
    }))
}

/// Removes one kind of factor: `totp`, `recovery`, `push`, `phone` or `pin`
/// (the phone-call PIN); returns how many were removed.
pub async fn reset_factor(store: &dyn Store, name: &str, factor: &str) -> Result<u64, OpError> {
    Ok(match factor {
        "totp" => u64::from(store.remove_totp(name).await?),
        "recovery" => reset_recovery(store, name).await?,
        "push" => remove_devices(store, name, DeviceKind::Push).await?,
        "phone" => remove_devices(store, name, DeviceKind::Phone).await?,
        "pin" => u64::from(store.clear_phone_pin(name).await?),
        _ => {
            return Err(OpError::BadRequest(
                "factor must be totp, recovery, push, phone or pin",
            ));
        }
    })
}

async fn reset_recovery(store: &dyn Store, name: &str) -> Result<u64, StoreError> {
    let Some(user) = store.user(name).await? else {
        return Err(StoreError::NoSuchUser(name.to_string()));
    };
    store.replace_recovery_codes(name, &[], now()).await?;
    Ok(u64::from(user.recovery_codes_left))
}

async fn remove_devices(
    store: &dyn Store,
    name: &str,
    kind: DeviceKind,
) -> Result<u64, StoreError> {
    let mut removed = 0;
    for device in store.out_of_band(name).await?.devices {
        if device.kind == kind && store.remove_device(name, kind, &device.label).await? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Where an invitation for `user` is mailed when the admin asks for the
/// directory's address: the `email_attribute` of the user's entry.
pub async fn directory_email(primary: &dyn PrimaryAuth, user: &str) -> Result<String, OpError> {
    match primary.email_of(user).await? {
        Some(address) if address.contains('@') => Ok(address),
        _ => Err(OpError::BadRequest(
            "the directory has no e-mail address for this user (email_attribute); give one",
        )),
    }
}

/// Users who should enroll and have not: accounts in the store without a
/// factor, plus directory users (members of `group` if set) when the primary
/// backend can list them. Returns where the names came from and the names.
pub async fn unenrolled(
    store: &dyn Store,
    primary: &dyn PrimaryAuth,
    group: Option<&str>,
) -> Result<(&'static str, Vec<String>), OpError> {
    let mut enrolled = std::collections::HashSet::new();
    let mut candidates = Vec::new();
    for account in store.list_users().await? {
        let devices = store.out_of_band(&account.name).await?.devices.len();
        if account.totp || devices > 0 {
            enrolled.insert(account.name);
        } else {
            candidates.push(account.name);
        }
    }
    let source = match primary.list_users(group).await? {
        Some(directory) => {
            candidates.extend(directory);
            "directory"
        }
        None => "store",
    };
    candidates.retain(|name| !enrolled.contains(name));
    candidates.sort();
    candidates.dedup();
    Ok((source, candidates))
}

/// One audit row as JSON.
pub fn audit_json(event: &crate::store::AuditEvent) -> Value {
    json!({
        "time": event.time,
        "user": event.user,
        "client": event.client,
        "calling_station_id": event.station,
        "outcome": event.outcome,
        "reason": event.reason,
        "factor": event.factor,
        "duration_ms": event.duration_ms,
    })
}
