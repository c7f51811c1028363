//! Duplicate detection (RFC 5080 §2.2.2): a request is identified by the client's
//! source address and port, the Identifier and the Request Authenticator. While
//! the first copy is being processed a retransmission is dropped; once answered,
//! the cached reply is resent for `ttl`, so a NAS retrying during a slow second
//! factor never starts a second login (one push, one SMS, one used code).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Identity of a request on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// Source address and port.
    pub peer: SocketAddr,
    /// RADIUS Identifier.
    pub identifier: u8,
    /// Request Authenticator.
    pub authenticator: [u8; 16],
}

/// What to do with an arriving request.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// First copy: process it and call [`DuplicateCache::complete`].
    New,
    /// The first copy is still being processed: drop this one.
    InFlight,
    /// Already answered: resend these bytes.
    Answered(Vec<u8>),
}

enum Entry {
    InFlight,
    Answered { reply: Vec<u8>, until: Instant },
}

/// The cache; one per listener, shared by all request tasks.
pub struct DuplicateCache {
    ttl: Duration,
    entries: Mutex<HashMap<RequestKey, Entry>>,
}

impl DuplicateCache {
    /// A cache keeping answered replies for `ttl`.
    pub fn new(ttl: Duration) -> DuplicateCache {
        DuplicateCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Registers an arriving request.
    pub fn begin(&self, key: RequestKey, now: Instant) -> Seen {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key) {
            Some(Entry::InFlight) => Seen::InFlight,
            Some(Entry::Answered { reply, until }) if *until > now => Seen::Answered(reply.clone()),
            _ => {
                entries.insert(key, Entry::InFlight);
                Seen::New
            }
        }
    }

    /// Stores the reply sent for a request.
    pub fn complete(&self, key: RequestKey, reply: Vec<u8>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            key,
            Entry::Answered {
                reply,
                until: now + self.ttl,
            },
        );
    }

    /// Forgets a request that produced no reply, so a retransmission is processed.
    pub fn abandon(&self, key: RequestKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&key);
    }

    /// Drops expired answers; called periodically by the server.
    pub fn purge(&self, now: Instant) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let before = entries.len();
        entries.retain(|_, e| match e {
            Entry::InFlight => true,
            Entry::Answered { until, .. } => *until > now,
        });
        before - entries.len()
    }

    /// Number of tracked requests (in flight and answered).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> RequestKey {
        RequestKey {
            peer: "127.0.0.1:5000".parse().unwrap(),
            identifier: id,
            authenticator: [id; 16],
        }
    }

    #[test]
    fn retransmissions_are_dropped_then_answered_from_cache_then_expire() {
        let cache = DuplicateCache::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(cache.begin(key(1), t0), Seen::New);
        assert_eq!(cache.begin(key(1), t0), Seen::InFlight);
        assert_eq!(
            cache.begin(key(2), t0),
            Seen::New,
            "other identifier is another request"
        );
        cache.complete(key(1), vec![1, 2, 3], t0);
        assert_eq!(cache.begin(key(1), t0), Seen::Answered(vec![1, 2, 3]));
        let later = t0 + Duration::from_secs(31);
        assert_eq!(cache.purge(later), 1);
        assert_eq!(cache.begin(key(1), later), Seen::New);
    }

    #[test]
    fn same_identifier_with_new_authenticator_is_a_new_request() {
        let cache = DuplicateCache::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let first = key(1);
        let mut second = first;
        second.authenticator = [9; 16];
        assert_eq!(cache.begin(first, t0), Seen::New);
        assert_eq!(cache.begin(second, t0), Seen::New);
    }
}
