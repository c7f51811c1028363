//! The local user store: argon2id password hashes (RFC 9106) kept in rampart's
//! store, verified on the blocking pool because each check costs tens of
//! milliseconds of CPU and memory by design.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::{PasswordHasher, PasswordVerifier};
use async_trait::async_trait;
use serde::Deserialize;

use super::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};
use crate::secret::Secret;
use crate::store::Store;

/// `[primary] backend = "local"`: no settings yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {}

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

fn verify_hash(password: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password, &hash).is_ok(),
        Err(_) => false,
    }
}

/// Local users.
pub struct LocalAuth {
    store: Arc<dyn Store>,
    /// Verified against for unknown users, so they cost the same time.
    decoy_hash: Arc<str>,
}

impl LocalAuth {
    /// A backend over `store`.
    pub fn new(store: Arc<dyn Store>) -> Result<LocalAuth, String> {
        let decoy: [u8; 16] = rand::random();
        Ok(LocalAuth {
            store,
            decoy_hash: hash_password(&hex::encode(decoy))?.into(),
        })
    }
}

#[async_trait]
impl PrimaryAuth for LocalAuth {
    async fn verify(&self, request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError> {
        let user = request.user;
        let Some(password) = request.password else {
            return Ok(PrimaryOutcome::BadPassword);
        };
        let stored = self
            .store
            .password_hash(user)
            .await
            .map_err(|e| PrimaryError::Unavailable(e.to_string()))?;
        let known = stored.is_some();
        let phc: Arc<str> = stored
            .map(Into::into)
            .unwrap_or_else(|| self.decoy_hash.clone());
        let candidate = Secret::new(password.expose().as_bytes().to_vec());
        let matches = tokio::task::spawn_blocking(move || verify_hash(candidate.expose(), &phc))
            .await
            .map_err(|e| PrimaryError::Unavailable(format!("password check failed: {e}")))?;
        Ok(match (known, matches) {
            (true, true) => PrimaryOutcome::Accepted(UserInfo::default()),
            (true, false) => PrimaryOutcome::BadPassword,
            (false, _) => PrimaryOutcome::UnknownUser,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_hash(b"correct horse", &a));
        assert!(!verify_hash(b"correct hors", &a));
        assert!(!verify_hash(b"x", "not a hash"));
    }
}
