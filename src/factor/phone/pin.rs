//! The phone-call PIN (`[phone] pin`): a second thing to know on top of the
//! phone itself, so that whoever picks up — a colleague at the desk phone, a
//! thief with the handset, voicemail that "presses" keys — cannot approve.
//!
//! A PIN is 4 to 8 digits, chosen by the user on the portal or set by an
//! administrator (`rampart enroll pin NAME`, read from stdin), and stored only
//! as a keyed hash ([`SealKey::code_hash`] in domain [`HASH_DOMAIN`]), like
//! SMS and recovery codes: a leaked database without the key file allows no
//! offline guessing. On the call the user types the PIN followed by `#`;
//! `9` alone (then `#`) denies and reports fraud, the same key as on a call
//! without a PIN. A PIN is at least 4 digits, so `9` is never one.
//!
//! Guessing is bounded by what already bounds calls: one attempt per call,
//! calls per user rate-limited (`[out_of_band] max_per_window`), and every
//! wrong PIN counted toward the password lockout (`max_failures`).

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::factor::oob::Answer;
use crate::seal::SealKey;

/// Key-hash domain of phone PINs (distinct from SMS, recovery and portal codes).
pub const HASH_DOMAIN: &str = "phone-pin";
/// Fewest digits.
pub const MIN_DIGITS: usize = 4;
/// Most digits.
pub const MAX_DIGITS: usize = 8;
/// What the caller types (then `#`) to deny and report fraud.
pub const FRAUD_DIGITS: &str = "9";

/// `[phone] pin`: whether calls ask for a PIN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// Never ask; `#` approves. The default.
    #[default]
    Off,
    /// Ask users who set a PIN; the others press `#`.
    Optional,
    /// Ask everyone; a user without a PIN cannot sign in by phone call.
    Required,
}

impl PinMode {
    /// Whether users can set a PIN that calls will ask for.
    pub fn enabled(self) -> bool {
        self != PinMode::Off
    }
}

/// Why a PIN was refused when set. The message is for the person typing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not 4 to 8 digits.
    #[error("the PIN must be 4 to 8 digits (0-9)")]
    Format,
    /// One repeated digit or a straight run (1111, 1234, 9876).
    #[error(
        "the PIN is too easy to guess (one digit repeated, or a run like 1234); choose another"
    )]
    Weak,
}

/// Checks a new PIN: 4 to 8 ASCII digits, not one digit repeated and not a
/// straight ascending or descending run (the first guesses anyone tries).
pub fn check_new(pin: &str) -> Result<(), PinError> {
    if !well_formed(pin) {
        return Err(PinError::Format);
    }
    let digits: Vec<i8> = pin.bytes().map(|b| (b - b'0') as i8).collect();
    let steps: Vec<i8> = digits.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.iter().all(|&s| s == 0)
        || steps.iter().all(|&s| s == 1)
        || steps.iter().all(|&s| s == -1)
    {
        return Err(PinError::Weak);
    }
    Ok(())
}

fn well_formed(pin: &str) -> bool {
    (MIN_DIGITS..=MAX_DIGITS).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// The stored form of `user`'s PIN.
pub fn hash(key: &SealKey, user: &str, pin: &str) -> String {
    key.code_hash(HASH_DOMAIN, user, pin)
}

/// What the digits typed on a PIN call (`Digits`, without the final `#`)
/// mean for `user`, whose PIN hash the call was placed with: the PIN
/// approves, [`FRAUD_DIGITS`] reports fraud, anything else (or nothing) is a
/// wrong PIN. The hashes are compared in constant time.
pub fn judge(key: &SealKey, user: &str, digits: Option<&str>, expected: &str) -> Answer {
    let digits = digits.unwrap_or("");
    if digits == FRAUD_DIGITS {
        return Answer::Fraud;
    }
    // Hash whatever was typed, well-formed or not, so the time taken does
    // not say which; only a well-formed match approves.
    let typed = hash(key, user, digits);
    let matches = bool::from(typed.as_bytes().ct_eq(expected.as_bytes()));
    if matches && well_formed(digits) {
        Answer::Approved
    } else {
        Answer::WrongPin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_pins_are_4_to_8_digits_and_not_trivial() {
        for good in ["4829", "48291637", "0451", "1235", "2580"] {
            assert_eq!(check_new(good), Ok(()), "{good}");
        }
        for bad in ["", "123", "123456789", "12a4", "12 34", "１２３４", "-1234"] {
            assert_eq!(check_new(bad), Err(PinError::Format), "{bad:?}");
        }
        for weak in ["0000", "11111111", "1234", "3456789", "9876", "43210"] {
            assert_eq!(check_new(weak), Err(PinError::Weak), "{weak}");
        }
    }

    #[test]
    fn judge_approves_only_the_users_pin() {
        let key = SealKey::from_bytes([9; 32]);
        let stored = hash(&key, "alice", "48291637");
        assert_eq!(
            judge(&key, "alice", Some("48291637"), &stored),
            Answer::Approved
        );
        assert_eq!(
            judge(&key, "alice", Some("48291638"), &stored),
            Answer::WrongPin
        );
        assert_eq!(judge(&key, "alice", Some("9"), &stored), Answer::Fraud);
        assert_eq!(judge(&key, "alice", None, &stored), Answer::WrongPin);
        assert_eq!(judge(&key, "alice", Some(""), &stored), Answer::WrongPin);
        // Bound to the user and to the key.
        assert_eq!(
            judge(&key, "bob", Some("48291637"), &stored),
            Answer::WrongPin
        );
        let other = SealKey::from_bytes([8; 32]);
        assert_eq!(
            judge(&other, "alice", Some("48291637"), &stored),
            Answer::WrongPin
        );
        // The stored form is not the PIN.
        assert!(!stored.contains("48291637"));
    }

    #[test]
    fn mode_parses_from_config_words() {
        let mode: PinMode = serde_json::from_str("\"required\"").unwrap();
        assert_eq!(mode, PinMode::Required);
        assert!(mode.enabled());
        assert!(!PinMode::default().enabled());
        assert!(serde_json::from_str::<PinMode>("\"yes\"").is_err());
    }
}
