//! Recovery codes: ten single-use codes a user keeps on paper for when the phone
//! is lost. Stored only as keyed hashes ([`SealKey::code_hash`]); redeeming one
//! deletes it atomically, so a code works exactly once even across nodes.
//!
//! Format `abcd-efgh-jkmn`: 12 letters from a 23-letter alphabet without
//! look-alikes (i, l, o), about 54 bits each — never mistaken for a TOTP code.

use std::sync::Arc;

use rand::seq::IndexedRandom;

use crate::seal::SealKey;
use crate::secret::Secret;
use crate::store::{Store, StoreError};

/// Codes issued at a time.
pub const COUNT: usize = 10;
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz";
const LETTERS: usize = 12;
const HASH_DOMAIN: &str = "recovery";

/// Normalises a typed code (case, dashes, spaces); `None` if it is not code-shaped.
pub fn normalize(text: &str) -> Option<String> {
    let letters: String = text
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (letters.len() == LETTERS && letters.bytes().all(|b| ALPHABET.contains(&b))).then_some(letters)
}

fn generate_one() -> Secret<String> {
    let mut rng = rand::rng();
    let letters: Vec<u8> = (0..LETTERS)
        .map(|_| *ALPHABET.choose(&mut rng).expect("alphabet is not empty"))
        .collect();
    let text = String::from_utf8(letters).expect("ASCII");
    Secret::new(format!("{}-{}-{}", &text[0..4], &text[4..8], &text[8..12]))
}

/// Issues and redeems recovery codes.
pub struct RecoveryCodes {
    store: Arc<dyn Store>,
    key: Arc<SealKey>,
}

impl RecoveryCodes {
    /// Over a store, hashing with `key`.
    pub fn new(store: Arc<dyn Store>, key: Arc<SealKey>) -> RecoveryCodes {
        RecoveryCodes { store, key }
    }

    /// Issues a fresh set, replacing (invalidating) any previous one in one transaction.
    pub async fn issue(&self, user: &str, now: i64) -> Result<Vec<Secret<String>>, StoreError> {
        let codes: Vec<Secret<String>> = (0..COUNT).map(|_| generate_one()).collect();
        let hashes: Vec<String> = codes
            .iter()
            .map(|code| {
                let normalized = normalize(code.expose()).expect("generated codes are well-formed");
                self.key.code_hash(HASH_DOMAIN, user, &normalized)
            })
            .collect();
        self.store
            .replace_recovery_codes(user, &hashes, now)
            .await?;
        Ok(codes)
    }

    /// Redeems a normalised code: true once, false afterwards or if wrong.
    pub async fn redeem(&self, user: &str, normalized: &str) -> Result<bool, StoreError> {
        let hash = self.key.code_hash(HASH_DOMAIN, user, normalized);
        self.store.consume_recovery_code(user, &hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn generated_codes_are_well_formed_and_distinct() {
        let codes: Vec<_> = (0..200).map(|_| generate_one()).collect();
        for code in &codes {
            assert_eq!(code.expose().len(), 14);
            assert!(normalize(code.expose()).is_some(), "{}", code.expose());
        }
        let unique: std::collections::HashSet<_> =
            codes.iter().map(|c| c.expose().clone()).collect();
        assert_eq!(unique.len(), codes.len());
        assert_eq!(normalize("ABCD EFGH JKMN").as_deref(), Some("abcdefghjkmn"));
        assert_eq!(
            normalize("abcd-efgh-jkml"),
            None,
            "l is not in the alphabet"
        );
    }

    #[tokio::test]
    async fn codes_are_single_use_and_reissue_invalidates_the_old_set() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let codes = RecoveryCodes::new(store, Arc::new(SealKey::from_bytes([7; 32])));
        let first = codes.issue("alice", 1).await.unwrap();
        assert_eq!(first.len(), COUNT);
        let one = normalize(first[0].expose()).unwrap();
        assert!(codes.redeem("alice", &one).await.unwrap());
        assert!(!codes.redeem("alice", &one).await.unwrap(), "second use");
        assert!(
            !codes
                .redeem("bob", &normalize(first[1].expose()).unwrap())
                .await
                .unwrap(),
            "other user"
        );
        let second = codes.issue("alice", 2).await.unwrap();
        assert!(
            !codes
                .redeem("alice", &normalize(first[1].expose()).unwrap())
                .await
                .unwrap(),
            "old set"
        );
        assert!(
            codes
                .redeem("alice", &normalize(second[1].expose()).unwrap())
                .await
                .unwrap()
        );
    }
}
