//! App passwords (for Outlook and other non-browser apps that cannot do a
//! second factor): 20 random characters from an unambiguous alphabet, shown
//! once, stored as keyed hashes (high entropy, so a keyed HMAC is enough and
//! checking one costs microseconds, not an argon2 run). Accepted in place of
//! password + second factor only on clients with `allow_app_passwords = true`.

use crate::seal::SealKey;
use crate::secret::Secret;

/// Letters and digits without look-alikes (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// 20 characters of 31: about 99 bits.
pub const LENGTH: usize = 20;

/// A new app password, grouped `xxxxx-xxxxx-xxxxx-xxxxx` for reading aloud.
pub fn generate() -> Secret<String> {
    let mut out = String::with_capacity(LENGTH + 3);
    for i in 0..LENGTH {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(ALPHABET[rand::random_range(0..ALPHABET.len())] as char);
    }
    Secret::new(out)
}

/// Whether typed text has the shape of an app password (so a normal password
/// is never looked up as one).
pub fn is_shaped(typed: &str) -> bool {
    let bare: Vec<u8> = typed.bytes().filter(|b| *b != b'-').collect();
    bare.len() == LENGTH
        && bare
            .iter()
            .all(|b| ALPHABET.contains(&b.to_ascii_lowercase()))
}

/// The stored form: keyed hash of the normalised password (no dashes, lowercase).
pub fn hash(key: &SealKey, user: &str, typed: &str) -> String {
    let bare: String = typed
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    key.code_hash("app-password", user, &bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_have_the_shape_and_hash_without_dashes() {
        let key = SealKey::from_bytes([1; 32]);
        let password = generate();
        assert_eq!(password.expose().len(), LENGTH + 3);
        assert!(is_shaped(password.expose()));
        assert_ne!(generate().expose(), password.expose());
        let typed = password.expose().replace('-', "").to_uppercase();
        assert_eq!(
            hash(&key, "alice", &typed),
            hash(&key, "alice", password.expose())
        );
        assert_ne!(
            hash(&key, "bob", password.expose()),
            hash(&key, "alice", password.expose())
        );
        assert!(!is_shaped("hunter2"));
        assert!(!is_shaped("abcde-abcde-abcde-abcd0"));
    }
}
