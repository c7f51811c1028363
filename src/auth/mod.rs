//! Primary authentication: "is this the user's password?". One trait, one file
//! per backend, each owning its config struct. Later backends (LDAP, upstream
//! RADIUS, none) plug in as further [`PrimaryConfig`] variants.

pub mod local;

use async_trait::async_trait;
use serde::Deserialize;

use crate::secret::Secret;

pub use local::{LocalAuth, LocalConfig};

/// `[primary]`: which backend checks passwords.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum PrimaryConfig {
    /// Users in rampart's own store with argon2id hashes.
    Local(LocalConfig),
}

impl Default for PrimaryConfig {
    fn default() -> Self {
        PrimaryConfig::Local(LocalConfig::default())
    }
}

/// The answer of a backend that could be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryOutcome {
    /// Password right.
    Accepted,
    /// No such user (the reply to the NAS is the same as for a wrong password).
    UnknownUser,
    /// Password wrong.
    BadPassword,
}

impl PrimaryOutcome {
    /// Audit reason for a rejection.
    pub fn reason(self) -> &'static str {
        match self {
            PrimaryOutcome::Accepted => "ok",
            PrimaryOutcome::UnknownUser => "unknown_user",
            PrimaryOutcome::BadPassword => "bad_password",
        }
    }
}

/// The backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PrimaryError {
    /// Store or directory unreachable or failing.
    #[error("primary backend unavailable: {0}")]
    Unavailable(String),
}

/// First factor.
#[async_trait]
pub trait PrimaryAuth: Send + Sync + 'static {
    /// Checks a password. Must take about as long for unknown users as for known
    /// ones so that timing does not reveal which user names exist.
    async fn verify(
        &self,
        user: &str,
        password: &Secret<String>,
    ) -> Result<PrimaryOutcome, PrimaryError>;
}
