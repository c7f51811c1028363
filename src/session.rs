//! Pending Access-Challenges (RFC 2865 §4.4): a random single-use State bound
//! to the user and the client it was issued to, expiring after the configured
//! time. Kept in memory: a NAS sends the answer to the server that challenged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::radius::Attribute;

/// State octets: 32 random bytes, unguessable.
pub const STATE_LEN: usize = 32;
/// Above this many entries, expired ones are purged on every insert.
const PURGE_ABOVE: usize = 1024;
/// Hard cap so a flood of challenges cannot exhaust memory.
const MAX_PENDING: usize = 200_000;

/// Whom a State was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Normalised user name.
    pub user: String,
    /// Client name.
    pub client: Arc<str>,
    /// Reply attributes from the primary backend, kept for the final Accept.
    pub attributes: Vec<Attribute>,
    expires: Instant,
}

/// The table of pending challenges.
pub struct Challenges {
    /// Milliseconds; a reload may change it (see [`Challenges::set_ttl`]).
    ttl_ms: AtomicU64,
    entries: Mutex<HashMap<[u8; STATE_LEN], Pending>>,
}

impl Challenges {
    /// States valid for `ttl`.
    pub fn new(ttl: Duration) -> Challenges {
        Challenges {
            ttl_ms: AtomicU64::new(ttl.as_millis() as u64),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// States issued from now on are valid for `ttl` (a reload kept the
    /// table: challenges already issued keep their expiry).
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(ttl.as_millis() as u64, Ordering::Relaxed);
    }

    /// Issues a State; `None` when the table is full (the caller rejects).
    pub fn issue(
        &self,
        user: &str,
        client: Arc<str>,
        attributes: Vec<Attribute>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let state: [u8; STATE_LEN] = rand::random();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > PURGE_ABOVE {
            entries.retain(|_, p| p.expires > now);
        }
        if entries.len() >= MAX_PENDING {
            return None;
        }
        entries.insert(
            state,
            Pending {
                user: user.to_string(),
                client,
                attributes,
                expires: now + Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed)),
            },
        );
        Some(state.to_vec())
    }

    /// Takes a State: it works once, and only before it expires.
    pub fn take(&self, state: &[u8], now: Instant) -> Option<Pending> {
        let key: [u8; STATE_LEN] = state.try_into().ok()?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let pending = entries.remove(&key)?;
        (pending.expires > now).then_some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_single_use_bound_and_expires() {
        let challenges = Challenges::new(Duration::from_secs(120));
        let t0 = Instant::now();
        let state = challenges
            .issue("alice", "nas".into(), Vec::new(), t0)
            .unwrap();
        assert_eq!(state.len(), STATE_LEN);
        let pending = challenges.take(&state, t0).unwrap();
        assert_eq!(pending.user, "alice");
        assert_eq!(&*pending.client, "nas");
        assert!(challenges.take(&state, t0).is_none(), "single use");

        let state = challenges
            .issue("alice", "nas".into(), Vec::new(), t0)
            .unwrap();
        assert!(
            challenges
                .take(&state, t0 + Duration::from_secs(121))
                .is_none(),
            "expired"
        );
        assert!(challenges.take(b"short", t0).is_none());
    }
}
