//! Persistence: this module owns the [`Store`] trait, the one interface the
//! daemon uses for accounts, local password hashes, sealed TOTP seeds and
//! their replay guard, recovery-code hashes, and lockout state. Backends
//! (SQLite for one node, PostgreSQL for several) implement it so the rest of the daemon
//! holds an `Arc<dyn Store>` and never sees SQL. Every operation that must be
//! race-free (step claiming, code consumption, failure counting) is atomic in
//! the backend, not read-modify-write in the caller. Secrets only ever arrive
//! here already hashed or sealed; times are unix seconds and user names are
//! already normalised.

pub mod config;
#[cfg(test)]
pub(crate) mod conformance;
pub mod health;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use std::fmt;

pub use config::StoreConfig;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Errors returned by a [`Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A local user of that name already exists.
    #[error("user {0:?} already exists")]
    AlreadyExists(String),
    /// The operation needs a user (or local user) that does not exist.
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    /// The backend failed. The message never includes bound values, so no
    /// secret can leak into logs through it.
    #[error("store unavailable: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What an administrator sees about one account.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSummary {
    /// Normalised user name.
    pub name: String,
    /// Whether the account has a local password (false for directory users
    /// that only enrolled a factor here).
    pub local_password: bool,
    /// Whether a TOTP seed is enrolled.
    pub totp: bool,
    /// Number of unused recovery codes.
    pub recovery_codes_left: u32,
    /// Consecutive failed logins since the last success or lock.
    pub failures: u32,
    /// End of the current or most recent lock, if one was ever set and not
    /// cleared; compare with the current time to know whether it is active.
    pub locked_until: Option<i64>,
    /// Time of the last successful login.
    pub last_login: Option<i64>,
    /// Time the account row was created.
    pub created_at: i64,
}

/// A user's enrolled TOTP factor.
#[derive(Clone)]
pub struct TotpRecord {
    /// The seed as sealed by `crate::seal::SealKey::seal`, with the user name
    /// as associated data.
    pub sealed_secret: Vec<u8>,
    /// The last time step accepted for this user, if any (replay guard).
    pub last_step: Option<i64>,
}

/// The kind of an out-of-band device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A push target (ntfy topic or webhook URL).
    Push,
    /// A phone number (E.164), for calls and SMS.
    Phone,
}

impl DeviceKind {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Push => "push",
            DeviceKind::Phone => "phone",
        }
    }

    /// Parses a stored or typed kind.
    pub fn parse(text: &str) -> Option<DeviceKind> {
        match text {
            "push" => Some(DeviceKind::Push),
            "phone" => Some(DeviceKind::Phone),
            _ => None,
        }
    }
}

/// One enrolled out-of-band device.
#[derive(Clone, PartialEq)]
pub struct DeviceRecord {
    /// Push or phone.
    pub kind: DeviceKind,
    /// The user's name for it (`primary`, `backup`, `pixel`).
    pub label: String,
    /// The target sealed with the user name as associated data.
    pub sealed_target: Vec<u8>,
    /// When it was enrolled.
    pub created_at: i64,
}

// Hand-written: the sealed target stays out of logs.
impl fmt::Debug for DeviceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceRecord")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A user's out-of-band enrollment, read in one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutOfBandEnrollment {
    /// The factor used without a keyword (`push`, `phone`, `totp`, `sms`), if chosen.
    pub preferred: Option<String>,
    /// Devices, ordered by kind then label.
    pub devices: Vec<DeviceRecord>,
}

/// One app password as an administrator or the user sees it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPasswordSummary {
    /// The user's name for it ("outlook-laptop").
    pub label: String,
    /// When it was created.
    pub created_at: i64,
    /// When it last signed in, if ever.
    pub last_used: Option<i64>,
}

/// One decision in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix seconds.
    pub time: i64,
    /// Normalised user name.
    pub user: String,
    /// Client (NAS) name.
    pub client: String,
    /// Calling-Station-Id, if sent.
    pub station: Option<String>,
    /// `accept`, `reject` or `challenge`.
    pub outcome: String,
    /// Why (`ok`, `bad_password`, `denied`, ...).
    pub reason: String,
    /// Which factor decided (`totp`, `push`, `none`, ...).
    pub factor: String,
    /// Time to decide, milliseconds.
    pub duration_ms: i64,
}

/// Everything the login path needs to know about a user, read in one query.
#[derive(Debug, Clone, Default)]
pub struct LoginState {
    /// Set while the user is locked out (`locked_until > now`).
    pub locked_until: Option<i64>,
    /// Consecutive failures so far.
    pub failures: u32,
    /// Last successful login, if the user has an account row.
    pub last_login: Option<i64>,
    /// Whether an account row exists (a local user, or anyone who enrolled).
    pub has_account: bool,
    /// The TOTP enrollment, if any.
    pub totp: Option<TotpRecord>,
}

impl LoginState {
    /// A copy without the sealed seed, for logins that no longer need it.
    pub fn without_seed(&self) -> LoginState {
        LoginState {
            totp: None,
            ..self.clone()
        }
    }
}

// Hand-written so the sealed seed never ends up in logs, even encrypted.
impl fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpRecord")
            .field("sealed_secret_len", &self.sealed_secret.len())
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// [`Store::claim_totp_login`] in two steps: the claim, then the success
/// bookkeeping. A failure of the second is logged and counted but does not
/// undo the claim (the code is used; the login stands).
pub async fn claim_then_record<S: Store + ?Sized>(
    store: &S,
    name: &str,
    step: i64,
    success_at: Option<i64>,
) -> Result<bool, StoreError> {
    let claimed = store.claim_totp_step(name, step).await?;
    if let (true, Some(now)) = (claimed, success_at)
        && let Err(error) = store.record_success(name, now).await
    {
        tracing::warn!(%error, user = name, "cannot record successful login");
        metrics::counter!("rampart_store_errors_total", "operation" => "record_success")
            .increment(1);
    }
    Ok(claimed)
}

/// The persistence interface of the daemon. Object-safe: held as
/// `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a local user with an argon2id PHC hash.
    /// [`StoreError::AlreadyExists`] if a local user of that name exists. If
    /// an account row exists without a local password (e.g. a directory user
    /// who enrolled a factor), it gets the password.
    async fn add_user(&self, name: &str, password_hash: &str, now: i64) -> Result<(), StoreError>;

    /// Replaces the password hash of a local user; [`StoreError::NoSuchUser`]
    /// if there is no local user of that name.
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError>;

    /// Deletes the account and every factor, recovery code and lockout record
    /// of it, in one transaction. [`StoreError::NoSuchUser`] if nothing existed.
    async fn delete_user(&self, name: &str) -> Result<(), StoreError>;

    /// All accounts ordered by name, including those without a local password.
    async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError>;

    /// One account, if its row exists.
    async fn user(&self, name: &str) -> Result<Option<UserSummary>, StoreError>;

    /// The local password hash, if the user has one.
    async fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Enrolls (or replaces) the TOTP seed; creates the account row if
    /// needed; resets `last_step` to `None`. One transaction.
    async fn set_totp(&self, name: &str, sealed_secret: &[u8], now: i64) -> Result<(), StoreError>;

    /// Bulk form of [`Store::set_totp`] for migrations: enrolls (or
    /// replaces) every `(name, sealed_secret)` pair, creating account rows as
    /// needed and resetting each `last_step`, all in one transaction: either
    /// every seed is stored or, on any error, none is.
    async fn import_totp(&self, seeds: &[(String, Vec<u8>)], now: i64) -> Result<(), StoreError>;

    /// The enrolled TOTP factor, if any.
    async fn totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError>;

    /// Lockout, failure count, last login and TOTP enrollment in one read: the
    /// login path's only query before the replay claim.
    async fn login_state(&self, name: &str, now: i64) -> Result<LoginState, StoreError>;

    /// Removes the TOTP factor; returns whether one was enrolled.
    async fn remove_totp(&self, name: &str) -> Result<bool, StoreError>;

    /// RFC 6238 §5.2 replay guard, atomic: records `step` as used and returns
    /// true only if it is newer than every step accepted before for this
    /// user. Of concurrent calls with the same step exactly one gets true.
    /// False when no TOTP is enrolled.
    async fn claim_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError>;

    /// A login's TOTP claim ([`Store::claim_totp_step`]) and, when it wins and
    /// `success_at` is given, its [`Store::record_success`] — in one
    /// transaction where the backend can (one commit per login instead of
    /// two), else as [`claim_then_record`] does.
    async fn claim_totp_login(
        &self,
        name: &str,
        step: i64,
        success_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        claim_then_record(self, name, step, success_at).await
    }

    /// Replaces the whole set of recovery-code hashes in one transaction (the
    /// old set is invalid afterwards); creates the account row if needed.
    async fn replace_recovery_codes(
        &self,
        name: &str,
        hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError>;

    /// Single use, atomic: deletes the matching hash and returns true, or
    /// false if absent (already used or wrong). Of concurrent calls with the
    /// same code exactly one gets true.
    async fn consume_recovery_code(&self, name: &str, hash: &str) -> Result<bool, StoreError>;

    /// Atomically adds one consecutive failure, creating the lockout row if
    /// needed (unknown users are tracked too so probing cannot bypass it).
    /// When the count reaches `max_failures`, sets
    /// `locked_until = now + lock_secs`, resets the count to 0 and returns
    /// `Some(locked_until)`; otherwise `None`.
    async fn record_failure(
        &self,
        name: &str,
        now: i64,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// A successful login: failures = 0, and `last_login = now` if an
    /// account row exists.
    async fn record_success(&self, name: &str, now: i64) -> Result<(), StoreError>;

    /// Enrolls (or replaces) a device; creates the account row if needed.
    async fn add_device(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
        sealed_target: &[u8],
        now: i64,
    ) -> Result<(), StoreError>;

    /// Removes one device; returns whether it existed.
    async fn remove_device(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
    ) -> Result<bool, StoreError>;

    /// The preferred factor and every device of a user (empty if none).
    async fn out_of_band(&self, name: &str) -> Result<OutOfBandEnrollment, StoreError>;

    /// Sets or clears the preferred factor; [`StoreError::NoSuchUser`]
    /// without an account row.
    async fn set_preferred_factor(
        &self,
        name: &str,
        factor: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Stores the user's outstanding SMS code hash, replacing any earlier one.
    async fn put_sms_code(&self, name: &str, hash: &str, expires_at: i64)
    -> Result<(), StoreError>;

    /// Single use, atomic: deletes the user's SMS code and returns true if
    /// `hash` matches and it has not expired; false otherwise (a wrong code
    /// leaves the outstanding one in place).
    async fn take_sms_code(&self, name: &str, hash: &str, now: i64) -> Result<bool, StoreError>;

    /// Sets (or replaces) the keyed hash of the user's phone-call PIN
    /// (`SealKey::code_hash("phone-pin", user, pin)`); creates the account
    /// row if needed.
    async fn set_phone_pin(&self, name: &str, hash: &str, now: i64) -> Result<(), StoreError>;

    /// The keyed hash of the user's phone-call PIN, if one is set.
    async fn phone_pin_hash(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Removes the phone-call PIN; returns whether one was set.
    async fn clear_phone_pin(&self, name: &str) -> Result<bool, StoreError>;

    /// Locks the user until `until` (a denied push, a fraud report),
    /// whatever the failure count.
    async fn lock_user(&self, name: &str, until: i64) -> Result<(), StoreError>;

    /// Stores an app password's keyed hash under a label; creates the account
    /// row if needed. [`StoreError::AlreadyExists`] if the label is taken.
    async fn add_app_password(
        &self,
        name: &str,
        label: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The user's app passwords, by label.
    async fn app_passwords(&self, name: &str) -> Result<Vec<AppPasswordSummary>, StoreError>;

    /// Revokes one app password (`Some(label)`) or all (`None`); returns how many.
    async fn revoke_app_password(&self, name: &str, label: Option<&str>)
    -> Result<u64, StoreError>;

    /// If `hash` is one of the user's app passwords, records the use and
    /// returns its label.
    async fn use_app_password(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;

    /// Stores an invitation (the keyed hash of its token) for `name`.
    async fn create_invitation(
        &self,
        hash: &str,
        name: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Single use, atomic: deletes the invitation and returns its user if it
    /// exists and has not expired.
    async fn redeem_invitation(&self, hash: &str, now: i64) -> Result<Option<String>, StoreError>;

    /// Users holding an invitation still valid at `now`, sorted, each once.
    async fn invited_users(&self, now: i64) -> Result<Vec<String>, StoreError>;

    /// Appends decisions to the audit log, in one transaction.
    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;

    /// Deletes audit events older than `before`; returns how many.
    async fn prune_audit(&self, before: i64) -> Result<u64, StoreError>;

    /// Audit events in `[since, until]`, of one user or all, newest first, at most `limit`.
    async fn audit(
        &self,
        name: Option<&str>,
        since: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Admin unlock: clears failures and `locked_until`. Returns whether
    /// anything was locked.
    async fn unlock(&self, name: &str) -> Result<bool, StoreError>;

    /// Deletes lockout rows whose lock is over at `now` and whose last
    /// failure is older than `before`; returns how many.
    async fn purge_lockouts(&self, now: i64, before: i64) -> Result<u64, StoreError>;

    /// Proves the store takes writes now: the files are where they were
    /// opened and writable (SQLite), and one row per node is rewritten.
    /// What the health monitor ([`health`]) runs.
    async fn probe(&self, node: &str, now: i64) -> Result<(), StoreError>;

    /// Fails `health` closed as soon as the store's files are deleted,
    /// replaced or made unwritable under the running process; a no-op for
    /// stores without local files.
    fn watch_files(&self, _health: std::sync::Arc<health::StoreHealth>) -> std::io::Result<()> {
        Ok(())
    }
}
