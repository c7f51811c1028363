//! Signed single-use Approve/Deny tokens (`../shared/notes/protocol.md` §3).
//!
//! `v1.{txn}.{action}.{expires}.{mac}`: the transaction id, `a` (approve),
//! `d` (deny) or `f` (deny and report fraud), unix expiry, and a keyed
//! HMAC-SHA256 (128 bits, hex) over all of it *and the user name*, under the
//! store's key. The token travels in a notification and comes back either to
//! rampart's HTTP listener or through a relay (ntfy reply topic), so it must
//! stand on its own: it names its transaction, expires with it, is bound to
//! the user the transaction belongs to, and is single use because the
//! transaction ends with the first answer.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::Answer;
use super::pending::PendingTable;
use crate::seal::SealKey;

const MAC_HEX_LEN: usize = 32;

/// Makes and checks tokens.
#[derive(Clone)]
pub struct Tokens {
    key: Arc<SealKey>,
}

/// Why a token was refused; each has a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all.
    #[error("malformed token")]
    Malformed,
    /// Past its expiry.
    #[error("expired token")]
    Expired,
    /// The transaction is finished or unknown (a replay, or too late).
    #[error("unknown or finished transaction")]
    Unknown,
    /// The MAC does not match (forged, or for another user).
    #[error("bad signature")]
    BadSignature,
}

impl TokenError {
    /// Label for `rampart_oob_answers_refused_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Expired => "expired",
            TokenError::Unknown => "unknown_transaction",
            TokenError::BadSignature => "bad_signature",
        }
    }
}

fn action_letter(answer: Answer) -> Option<&'static str> {
    match answer {
        Answer::Approved => Some("a"),
        Answer::Denied => Some("d"),
        Answer::Fraud => Some("f"),
        _ => None,
    }
}

impl Tokens {
    /// Tokens keyed by the store key.
    pub fn new(key: Arc<SealKey>) -> Tokens {
        Tokens { key }
    }

    fn mac(&self, user: &str, body: &str) -> String {
        let mut mac = self.key.code_hash("oob-action-v1", user, body);
        mac.truncate(MAC_HEX_LEN);
        mac
    }

    /// A token answering `txn` of `user` with `answer` (approve, deny or fraud).
    pub fn sign(&self, user: &str, txn: &str, answer: Answer, expires_at: u64) -> String {
        let letter = action_letter(answer).unwrap_or("d");
        let body = format!("v1.{txn}.{letter}.{expires_at}");
        let mac = self.mac(user, &body);
        format!("{body}.{mac}")
    }

    /// Checks a token against the pending table and returns the transaction
    /// and the answer it carries. Does not resolve: the caller does, so a
    /// confirmation page can show before anything changes.
    pub fn verify(
        &self,
        token: &str,
        pending: &PendingTable,
        now: u64,
    ) -> Result<(String, Answer), TokenError> {
        let token = token.trim();
        let parts: Vec<&str> = token.split('.').collect();
        let [version, txn, letter, expires, mac] = parts[..] else {
            return Err(TokenError::Malformed);
        };
        if version != "v1"
            || txn.len() != 32
            || !txn.bytes().all(|b| b.is_ascii_hexdigit())
            || mac.len() != MAC_HEX_LEN
        {
            return Err(TokenError::Malformed);
        }
        let answer = match letter {
            "a" => Answer::Approved,
            "d" => Answer::Denied,
            "f" => Answer::Fraud,
            _ => return Err(TokenError::Malformed),
        };
        let expires_at: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if now > expires_at {
            return Err(TokenError::Expired);
        }
        let user = pending.user_of(txn).ok_or(TokenError::Unknown)?;
        let body = &token[..token.len() - MAC_HEX_LEN - 1];
        let expected = self.mac(&user, body);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(TokenError::BadSignature);
        }
        Ok((txn.to_string(), answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factor::oob::Channel;
    use crate::factor::oob::pending::{JoinKey, Park};

    fn setup() -> (Tokens, Arc<PendingTable>, String, String) {
        let tokens = Tokens::new(Arc::new(SealKey::from_bytes([7; 32])));
        let table = PendingTable::new();
        let join = JoinKey {
            client: Arc::from("vpn"),
            station: None,
        };
        let Park::New(alice) = table.park("alice", join.clone(), Channel::Push) else {
            panic!()
        };
        let Park::New(bob) = table.park("bob", join, Channel::Push) else {
            panic!()
        };
        let (a, b) = (alice.txn(), bob.txn());
        std::mem::forget(alice);
        std::mem::forget(bob);
        (tokens, table, a, b)
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let (tokens, table, alice, bob) = setup();
        let token = tokens.sign("alice", &alice, Answer::Approved, 1000);
        assert_eq!(
            tokens.verify(&token, &table, 999),
            Ok((alice.clone(), Answer::Approved))
        );
        let fraud = tokens.sign("alice", &alice, Answer::Fraud, 1000);
        assert_eq!(tokens.verify(&fraud, &table, 999).unwrap().1, Answer::Fraud);
        assert_eq!(
            tokens.verify(&token, &table, 1001),
            Err(TokenError::Expired)
        );
        // Flipping the action letter breaks the MAC.
        let flipped = token.replacen(".a.", ".d.", 1);
        assert_eq!(
            tokens.verify(&flipped, &table, 999),
            Err(TokenError::BadSignature)
        );
        // A token signed for alice but naming bob's transaction.
        let crossed = tokens.sign("alice", &bob, Answer::Approved, 1000);
        assert_eq!(
            tokens.verify(&crossed, &table, 999),
            Err(TokenError::BadSignature)
        );
        // Another key.
        let other = Tokens::new(Arc::new(SealKey::from_bytes([8; 32])));
        let forged = other.sign("alice", &alice, Answer::Approved, 1000);
        assert_eq!(
            tokens.verify(&forged, &table, 999),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            tokens.verify("v1.zz.a.1.00", &table, 0),
            Err(TokenError::Malformed)
        );
        assert_eq!(tokens.verify("", &table, 0), Err(TokenError::Malformed));
        // Once answered, the same token is refused.
        table.resolve(&alice, Answer::Approved).unwrap();
        assert_eq!(tokens.verify(&token, &table, 999), Err(TokenError::Unknown));
    }
}
