//! The local user store: argon2id password hashes (RFC 9106) kept in rampart's
//! store, verified by the bounded worker pool of [`super::hasher`] because
//! each check costs tens of milliseconds of CPU and megabytes of memory by
//! design.

use std::sync::Arc;

use argon2::Argon2;
use argon2::PasswordHasher;
use async_trait::async_trait;
use serde::Deserialize;

use super::hasher::{HashError, Hasher};
use super::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};
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

/// A PHC string with the parameters of [`hash_password`], a random salt and
/// a random output: checking a password against it costs what checking a
/// real user's does, and nothing ever matches. Made without running argon2:
/// a hash computed here, on whatever thread builds the backend (at start and
/// at every reload), would leave 19 MiB in that thread's allocator arena.
fn decoy_hash() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let params = argon2::Params::default();
    let salt: [u8; 16] = rand::random();
    let output: [u8; 32] = rand::random();
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(output)
    )
}

/// Local users.
pub struct LocalAuth {
    store: Arc<dyn Store>,
    /// Verified against for unknown users, so they cost the same time.
    decoy_hash: Arc<str>,
    /// The process's one password-check pool.
    hasher: Hasher,
}

/// One pool for the whole process, so reloads and the portal share its bound.
fn shared_hasher() -> Result<Hasher, String> {
    static HASHER: std::sync::OnceLock<Hasher> = std::sync::OnceLock::new();
    if let Some(hasher) = HASHER.get() {
        return Ok(hasher.clone());
    }
    let hasher = Hasher::new().map_err(|e| format!("cannot start password-check workers: {e}"))?;
    Ok(HASHER.get_or_init(|| hasher).clone())
}

impl LocalAuth {
    /// A backend over `store`.
    pub fn new(store: Arc<dyn Store>) -> Result<LocalAuth, String> {
        Ok(LocalAuth {
            store,
            decoy_hash: decoy_hash().into(),
            hasher: shared_hasher()?,
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
        let matches = match self.hasher.verify(password.expose().as_bytes(), phc).await {
            Ok(matches) => matches,
            Err(HashError::Busy) => return Err(PrimaryError::Overloaded),
            Err(error @ HashError::Stopped) => {
                return Err(PrimaryError::Unavailable(error.to_string()));
            }
        };
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
        let mut memory = Vec::new();
        assert!(super::super::hasher::verify_in(
            &mut memory,
            b"correct horse",
            &a
        ));
        assert!(!super::super::hasher::verify_in(
            &mut memory,
            b"correct hors",
            &a
        ));
    }

    /// The decoy has the same parameters as a real hash (so the same cost)
    /// and is a well-formed hash that matches nothing.
    #[test]
    fn the_decoy_costs_what_a_real_hash_costs_and_matches_nothing() {
        let real = hash_password("pw").unwrap();
        let decoy = decoy_hash();
        let params = |phc: &str| phc.split('$').nth(3).map(str::to_string);
        assert_eq!(params(&decoy), params(&real));
        assert_eq!(decoy.split('$').count(), real.split('$').count());
        let mut memory = Vec::new();
        assert!(!super::super::hasher::verify_in(&mut memory, b"pw", &decoy));
        assert!(!memory.is_empty(), "argon2 ran on it");
        assert_ne!(decoy_hash(), decoy, "random");
    }
}
