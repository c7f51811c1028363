//! Primary authentication: "is this the user's password?". One trait, one file
//! per backend, each owning its config struct: `local` (rampart's own users),
//! `none` (the NAS already checked it, e.g. RD Gateway behind NPS), `ldap` (an
//! LDAP directory or Active Directory) and `upstream` (RADIUS servers such as
//! NPS check it).

pub mod hasher;
pub mod ldap;
pub mod local;
pub mod none;
pub mod upstream;

use async_trait::async_trait;
use serde::Deserialize;

use crate::radius::{AccessRequest, Attribute};
use crate::secret::Secret;

pub use ldap::{LdapAuth, LdapConfig};
pub use local::{LocalAuth, LocalConfig};
pub use none::{NoPrimary, NoneConfig};
pub use upstream::{UpstreamAuth, UpstreamConfig};

/// `[primary]`: which backend checks passwords.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum PrimaryConfig {
    /// Users in rampart's own store with argon2id hashes.
    Local(LocalConfig),
    /// No password check: second factor only.
    None(NoneConfig),
    /// An LDAP directory or Active Directory.
    Ldap(Box<LdapConfig>),
    /// Upstream RADIUS servers (NPS, FreeRADIUS) check the credentials.
    Radius(UpstreamConfig),
}

impl Default for PrimaryConfig {
    fn default() -> Self {
        PrimaryConfig::Local(LocalConfig::default())
    }
}

impl PrimaryConfig {
    /// Problems as (key, message), for the config validator.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            PrimaryConfig::Local(_) | PrimaryConfig::None(_) => Vec::new(),
            PrimaryConfig::Ldap(ldap) => ldap
                .problems()
                .into_iter()
                .map(|(key, message)| (key.to_string(), message))
                .collect(),
            PrimaryConfig::Radius(config) => config.problems(),
        }
    }
}

/// What a backend is asked.
pub struct PrimaryRequest<'a> {
    /// Normalised user name (store, lockout and audit key).
    pub user: &'a str,
    /// The password with any appended code split off; `None` when none came.
    pub password: Option<&'a Secret<String>>,
    /// The request itself, for backends that forward credentials untouched.
    pub request: &'a AccessRequest,
}

/// What the backend knows about an authenticated user.
#[derive(Debug, Clone, Default)]
pub struct UserInfo {
    /// Member of a group excused from the second factor.
    pub mfa_exempt: bool,
    /// Phone number from the directory, for out-of-band factors.
    pub phone: Option<String>,
    /// E-mail address from the directory.
    pub email: Option<String>,
    /// Attributes to add to the final Access-Accept (upstream pass-through).
    pub reply_attributes: Vec<Attribute>,
}

/// The answer of a backend that could be asked.
#[derive(Debug, Clone)]
pub enum PrimaryOutcome {
    /// Password right.
    Accepted(UserInfo),
    /// No such user (the reply to the NAS is the same as for a wrong password).
    UnknownUser,
    /// Password wrong.
    BadPassword,
    /// Refused for another reason (not in a required group, account disabled,
    /// password expired, ...). Not counted toward rampart's lockout.
    Denied {
        /// Audit reason, e.g. `not_in_required_group`, `ad_password_expired`.
        reason: &'static str,
        /// What to tell the user, if anything helpful.
        message: Option<String>,
    },
}

/// The backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PrimaryError {
    /// Store, directory or upstream server unreachable or failing.
    #[error("primary backend unavailable: {0}")]
    Unavailable(String),
    /// No directory server answered in time, or every one failed.
    #[error("directory unavailable: {0}")]
    DirectoryUnavailable(String),
    /// Too many password checks at once: refused rather than queued
    /// without bound (counted in `rampart_password_checks_refused_total`).
    #[error("too many password checks at once")]
    Overloaded,
}

impl PrimaryError {
    /// The audit reason of the Reject this error causes.
    pub fn reason(&self) -> &'static str {
        match self {
            PrimaryError::Unavailable(_) => "primary_unavailable",
            PrimaryError::DirectoryUnavailable(_) => "directory_unavailable",
            PrimaryError::Overloaded => "overloaded",
        }
    }
}

/// First factor.
#[async_trait]
pub trait PrimaryAuth: Send + Sync + 'static {
    /// Whether requests must carry a password (false for `backend = "none"`).
    fn requires_password(&self) -> bool {
        true
    }

    /// Whether the backend can check credentials other than a PAP password
    /// (CHAP, MS-CHAPv2) by forwarding them untouched; then a request without
    /// User-Password reaches [`PrimaryAuth::verify`] with `password: None`.
    fn forwards_credentials(&self) -> bool {
        false
    }

    /// Checks the credentials. Must take about as long for unknown users as for
    /// known ones so that timing does not reveal which user names exist.
    async fn verify(&self, request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError>;

    /// Whether the backend can check passwords now, for `/readyz`. Cheap:
    /// a load balancer asks every few seconds. Ready by default (local users
    /// live in the store, which `/readyz` checks itself; `none` needs nothing).
    async fn ready(&self) -> Result<(), PrimaryError> {
        Ok(())
    }

    /// The directory's user names, optionally only members of `group` (a
    /// DN), for the admin's "who has not enrolled" list. `None` when the
    /// backend cannot list users (upstream RADIUS, none; local users are in
    /// the store already).
    async fn list_users(&self, group: Option<&str>) -> Result<Option<Vec<String>>, PrimaryError> {
        let _ = group;
        Ok(None)
    }

    /// The user's e-mail address in the directory, for invitations.
    /// `Ok(None)`: the backend has no directory (local, upstream RADIUS,
    /// none) or the user has no address there.
    async fn email_of(&self, user: &str) -> Result<Option<String>, PrimaryError> {
        let _ = user;
        Ok(None)
    }
}
