//! Sign-in rate limit: at most N attempts per user name and M per client
//! address in any 15 minutes, whatever the outcome (a right password does
//! not refill the budget: the limit is there to slow guessing). Reuses the
//! out-of-band sliding window ([`SendLimit`]).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::factor::oob::limit::SendLimit;

/// The window the limits count in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Per-user and per-address sign-in limits.
pub struct SignInLimit {
    per_user: SendLimit,
    per_address: SendLimit,
}

impl SignInLimit {
    /// `per_user` and `per_address` attempts per [`WINDOW`].
    pub fn new(per_user: u32, per_address: u32) -> SignInLimit {
        SignInLimit {
            per_user: SendLimit::new(per_user, WINDOW),
            per_address: SendLimit::new(per_address, WINDOW),
        }
    }

    /// Records an attempt; false when either budget is spent (then the
    /// attempt must not reach the password backend).
    pub fn try_attempt(&self, user: &str, address: Option<IpAddr>, now: Instant) -> bool {
        let address_ok = address.is_none_or(|ip| self.per_address.try_send(&ip.to_string(), now));
        address_ok && self.per_user.try_send(user, now)
    }

    /// Records an attempt that names no user (an invitation link); false
    /// when the address's budget is spent.
    pub fn try_address(&self, address: Option<IpAddr>, now: Instant) -> bool {
        address.is_none_or(|ip| self.per_address.try_send(&ip.to_string(), now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_budgets_limit() {
        let limit = SignInLimit::new(2, 3);
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limit.try_attempt("alice", Some(a), t));
        assert!(limit.try_attempt("alice", Some(a), t));
        assert!(!limit.try_attempt("alice", Some(a), t), "user budget");
        assert!(!limit.try_attempt("bob", Some(a), t), "address budget");
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limit.try_attempt("bob", Some(b), t));
        assert!(
            limit.try_attempt("alice", Some(b), t + WINDOW),
            "window slides"
        );
    }
}
