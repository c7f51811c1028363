//! TOTP (RFC 6238) with totp-rs: HMAC-SHA1, 6 digits, 30-second steps — what
//! every authenticator app supports. Seeds are sealed at rest with the store key
//! ([`SealKey`], bound to the user name). A code is accepted within ±`skew`
//! steps and at most once: the matched step must be newer than every step
//! accepted before for that user (RFC 6238 §5.2), claimed atomically in the store.

use std::sync::Arc;

use serde::Deserialize;
use totp_rs::{Algorithm, Builder, Totp};

use crate::seal::SealKey;
use crate::secret::Secret;
use crate::store::{Store, StoreError, TotpRecord};

/// Digits in a code.
pub const DIGITS: usize = 6;
/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Seed length in octets (RFC 4226 §4 recommends 160 bits).
pub const SEED_LEN: usize = 20;

/// `[totp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfig {
    /// Issuer shown in the authenticator app.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Steps of clock drift accepted on either side: 0 or 1.
    #[serde(default = "default_skew")]
    pub skew: u8,
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            issuer: default_issuer(),
            skew: default_skew(),
        }
    }
}

fn default_issuer() -> String {
    "rampart".into()
}
fn default_skew() -> u8 {
    1
}

impl TotpConfig {
    /// Problems as (key, message), for the config validator.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.skew > 1 {
            problems.push((
                "skew",
                "must be 0 or 1: a wider window accepts more guesses".to_string(),
            ));
        }
        if self.issuer.trim().is_empty() || self.issuer.contains(':') {
            problems.push(("issuer", "must be non-empty and contain no ':'".to_string()));
        }
        problems
    }
}

/// Whether text has the shape of a TOTP code.
pub fn is_code_shaped(text: &str) -> bool {
    text.len() == DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

/// Builds the generator for a seed. Never fails for seeds of [`SEED_LEN`].
fn generator(seed: &[u8], skew: u8, issuer: Option<&str>, account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_skew(u16::from(skew))
        .with_secret(seed.to_vec())
        .with_issuer(issuer)
        .with_account_name(account.replace(':', "_"))
        .build()
        .ok()
}

/// The result of checking a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpOutcome {
    /// Right code, first use.
    Accepted,
    /// The user has no TOTP seed.
    NotEnrolled,
    /// Wrong code.
    Wrong,
    /// Right code, already used (or older than one already used).
    Replayed,
}

/// Why TOTP could not answer.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sealed seed did not open: wrong key file or tampered row.
    #[error("stored TOTP seed cannot be decrypted (wrong key file?)")]
    Unsealable,
}

/// A new enrollment: what the user's app needs.
pub struct Enrollment {
    /// `otpauth://totp/...` URI with the seed: show once, never log.
    pub uri: Secret<String>,
    /// The seed in base32, for typing by hand.
    pub base32: Secret<String>,
}

/// The TOTP factor.
pub struct TotpFactor {
    store: Arc<dyn Store>,
    key: Arc<SealKey>,
    config: TotpConfig,
}

impl TotpFactor {
    /// Over a store and key.
    pub fn new(store: Arc<dyn Store>, key: Arc<SealKey>, config: TotpConfig) -> TotpFactor {
        TotpFactor { store, key, config }
    }

    /// Enrolls (or re-enrolls) a user with a fresh random seed; the old seed stops working.
    pub async fn enroll(&self, user: &str, now: i64) -> Result<Enrollment, TotpError> {
        let seed = new_seed();
        let enrollment = self.enrollment(user, &seed)?;
        self.store_seed(user, &seed, now).await?;
        Ok(enrollment)
    }

    /// The issuer shown in authenticator apps (`[totp] issuer`).
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// What the user's app needs for `seed`, without storing anything (the
    /// portal keeps a pending seed in its session until a code proves the
    /// app has it).
    pub fn enrollment(&self, user: &str, seed: &Secret<Vec<u8>>) -> Result<Enrollment, TotpError> {
        let totp = generator(
            seed.expose(),
            self.config.skew,
            Some(&self.config.issuer),
            user,
        )
        .ok_or(TotpError::Unsealable)?;
        let uri = Secret::new(totp.to_url().map_err(|_| TotpError::Unsealable)?);
        let base32 = Secret::new(totp.secret().to_base32());
        Ok(Enrollment { uri, base32 })
    }

    /// The step `code` matches for a seed that is not stored yet (within
    /// ±`skew`), or `None`.
    pub fn check_pending(&self, seed: &Secret<Vec<u8>>, code: &str, now: u64) -> Option<i64> {
        let totp = generator(seed.expose(), self.config.skew, None, "x")?;
        totp.check(code, now)
            .map(|step| i64::try_from(step).unwrap_or(i64::MAX))
    }

    /// Activates a verified pending seed: seals and stores it (replacing any
    /// old one), then claims the step of the code that verified it, so that
    /// code cannot also sign in (RFC 6238 §5.2).
    pub async fn activate(
        &self,
        user: &str,
        seed: &Secret<Vec<u8>>,
        step: i64,
        now: i64,
    ) -> Result<(), TotpError> {
        self.store_seed(user, seed, now).await?;
        self.store.claim_totp_step(user, step).await?;
        Ok(())
    }

    async fn store_seed(
        &self,
        user: &str,
        seed: &Secret<Vec<u8>>,
        now: i64,
    ) -> Result<(), TotpError> {
        let sealed = self.key.seal(user.as_bytes(), seed.expose());
        self.store.set_totp(user, &sealed, now).await?;
        Ok(())
    }

    /// Checks a code at unix time `now` and, if right, claims its step.
    pub async fn verify(&self, user: &str, code: &str, now: u64) -> Result<TotpOutcome, TotpError> {
        match self.store.totp(user).await? {
            Some(record) => self.verify_record(user, &record, code, now, None).await,
            None => Ok(TotpOutcome::NotEnrolled),
        }
    }

    /// Like [`TotpFactor::verify`] with the enrollment already read (the login
    /// path reads it together with the lockout state, in one query). With
    /// `success_at`, an accepted code also records the successful login, in
    /// the claim's transaction ([`Store::claim_totp_login`]).
    pub async fn verify_record(
        &self,
        user: &str,
        record: &TotpRecord,
        code: &str,
        now: u64,
        success_at: Option<i64>,
    ) -> Result<TotpOutcome, TotpError> {
        let seed = self
            .key
            .open(user.as_bytes(), &record.sealed_secret)
            .map_err(|_| TotpError::Unsealable)?;
        let totp = generator(&seed, self.config.skew, None, "x").ok_or(TotpError::Unsealable)?;
        let Some(step) = matching_step(&totp, code, now, self.config.skew, record.last_step) else {
            return Ok(TotpOutcome::Wrong);
        };
        // Cheap early answer from the row already read; the claim below is the
        // atomic check that counts when two requests race.
        if record.last_step.is_some_and(|last| step <= last) {
            return Ok(TotpOutcome::Replayed);
        }
        if self.store.claim_totp_login(user, step, success_at).await? {
            Ok(TotpOutcome::Accepted)
        } else {
            Ok(TotpOutcome::Replayed)
        }
    }
}

/// The step `code` belongs to within `skew` steps of `now`: the oldest one
/// not yet claimed (newer than `last`), else the newest that matched (a
/// replay), else none (a wrong code). Six digits collide between adjacent
/// steps once in a million; taking the first match, as `Totp::check` does,
/// turned such a collision with an already claimed step into a false
/// "already used" (RFC 6238 §5.2 forbids reusing a step, not a code value).
/// Compared in constant time, every step of the window.
fn matching_step(totp: &Totp, code: &str, now: u64, skew: u8, last: Option<i64>) -> Option<i64> {
    use subtle::ConstantTimeEq;
    let origin = now / STEP_SECS;
    let window = origin.saturating_sub(u64::from(skew))..=origin.saturating_add(u64::from(skew));
    let mut matched = None;
    for counter in window {
        let expected = totp.generate(counter.saturating_mul(STEP_SECS)).to_string();
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            let step = i64::try_from(counter).unwrap_or(i64::MAX);
            if last.is_none_or(|last| step > last) {
                return Some(step);
            }
            matched = Some(step);
        }
    }
    matched
}

/// A fresh random seed of [`SEED_LEN`] octets.
pub fn new_seed() -> Secret<Vec<u8>> {
    Secret::new(rand::random::<[u8; SEED_LEN]>().to_vec())
}

/// The code for a seed at a time; for tests, benches and `radtest` helpers.
pub fn code_at(seed: &[u8], unix_time: u64) -> String {
    generator(seed, 0, None, "x")
        .map(|t| t.generate(unix_time).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// The RFC 6238 seed gives the same code, 911617, at steps 910737 and
    /// 910738 (found by search). With the older step claimed, the code
    /// typed in the newer step is that step's, not a replay.
    #[test]
    fn a_code_shared_by_two_steps_belongs_to_the_unclaimed_one() {
        let totp = generator(b"12345678901234567890", 1, None, "x").unwrap();
        let now = 910_738 * STEP_SECS + 5;
        assert_eq!(code_at(b"12345678901234567890", now), "911617");
        assert_eq!(code_at(b"12345678901234567890", now - STEP_SECS), "911617");
        assert_eq!(matching_step(&totp, "911617", now, 1, None), Some(910_737));
        assert_eq!(
            matching_step(&totp, "911617", now, 1, Some(910_737)),
            Some(910_738),
            "the first match is claimed already: the next one counts"
        );
        assert_eq!(
            matching_step(&totp, "911617", now, 1, Some(910_738)),
            Some(910_738),
            "both claimed: a replay of the newest"
        );
        assert_eq!(matching_step(&totp, "000000", now, 1, None), None);
    }

    /// RFC 6238 Appendix B, SHA1 seed "12345678901234567890". The RFC lists
    /// 8-digit codes; a 6-digit code is the same truncation mod 10^6, i.e. the
    /// last six digits.
    const RFC6238_SHA1: [(u64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn generates_rfc6238_appendix_b_codes() {
        for (time, code8) in RFC6238_SHA1 {
            assert_eq!(
                code_at(b"12345678901234567890", time),
                code8[2..],
                "T={time}"
            );
        }
    }

    async fn factor_with_seed(seed: &[u8], skew: u8) -> TotpFactor {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let key = Arc::new(SealKey::from_bytes([1; 32]));
        store
            .set_totp("alice", &key.seal(b"alice", seed), 0)
            .await
            .unwrap();
        TotpFactor::new(
            store,
            key,
            TotpConfig {
                issuer: "t".into(),
                skew,
            },
        )
    }

    #[tokio::test]
    async fn verifies_rfc_vectors_once_each() {
        let factor = factor_with_seed(b"12345678901234567890", 1).await;
        for (time, code8) in RFC6238_SHA1 {
            assert_eq!(
                factor.verify("alice", &code8[2..], time).await.unwrap(),
                TotpOutcome::Accepted,
                "T={time}"
            );
            assert_eq!(
                factor.verify("alice", &code8[2..], time).await.unwrap(),
                TotpOutcome::Replayed,
                "replay at T={time}"
            );
        }
    }

    #[tokio::test]
    async fn skew_window_is_one_step_either_side() {
        let seed = b"abcdefghijklmnopqrst";
        let now = 1_700_000_000u64;
        for (offset, expected) in [
            (-60i64, TotpOutcome::Wrong),
            (-30, TotpOutcome::Accepted),
            (0, TotpOutcome::Accepted),
            (30, TotpOutcome::Accepted),
            (60, TotpOutcome::Wrong),
        ] {
            let factor = factor_with_seed(seed, 1).await;
            let code = code_at(seed, (now as i64 + offset) as u64);
            assert_eq!(
                factor.verify("alice", &code, now).await.unwrap(),
                expected,
                "offset {offset}"
            );
        }
        let strict = factor_with_seed(seed, 0).await;
        let code = code_at(seed, now - 30);
        assert_eq!(
            strict.verify("alice", &code, now).await.unwrap(),
            TotpOutcome::Wrong
        );
    }

    #[tokio::test]
    async fn an_older_code_is_refused_after_a_newer_one() {
        let seed = b"abcdefghijklmnopqrst";
        let now = 1_700_000_000u64;
        let factor = factor_with_seed(seed, 1).await;
        let current = code_at(seed, now);
        let previous = code_at(seed, now - 30);
        assert_eq!(
            factor.verify("alice", &current, now).await.unwrap(),
            TotpOutcome::Accepted
        );
        assert_eq!(
            factor.verify("alice", &previous, now).await.unwrap(),
            TotpOutcome::Replayed
        );
    }

    #[tokio::test]
    async fn enrollment_produces_a_working_uri_and_sealed_seed() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let key = Arc::new(SealKey::from_bytes([2; 32]));
        let factor = TotpFactor::new(store.clone(), key, TotpConfig::default());
        let enrollment = factor.enroll("bob", 0).await.unwrap();
        let uri = enrollment.uri.expose();
        assert!(uri.starts_with("otpauth://totp/rampart:bob?"), "{uri}");
        assert!(uri.contains(&format!("secret={}", enrollment.base32.expose())));
        let stored = store.totp("bob").await.unwrap().unwrap();
        let seed = totp_rs::Secret::try_from_base32(enrollment.base32.expose()).unwrap();
        assert!(
            !stored
                .sealed_secret
                .windows(SEED_LEN)
                .any(|w| w == seed.as_ref()),
            "sealed, not plain"
        );
        let now = 1_800_000_000;
        let code = code_at(seed.as_ref(), now);
        assert_eq!(
            factor.verify("bob", &code, now).await.unwrap(),
            TotpOutcome::Accepted
        );
        assert_eq!(
            factor.verify("carol", &code, now).await.unwrap(),
            TotpOutcome::NotEnrolled
        );
    }
}
