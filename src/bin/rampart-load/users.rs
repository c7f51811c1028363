//! Who logs in: numbered user names and passwords from format strings
//! (`user{:04}` / `pass{:04}`, matching the peer slapd's `userNNNN`/`passNNNN`),
//! the deterministic per-user TOTP seed shared with the import file, and the
//! round-robin picker that never sends the same (user, 30-second step) twice,
//! because rampart's replay guard (RFC 6238 §5.2) rejects a reused code.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A format with at most one `{}` / `{:N}` / `{:0N}` placeholder for a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat {
    prefix: String,
    /// `None` when the format has no placeholder (one fixed string for all).
    number: Option<(usize, bool)>,
    suffix: String,
}

impl NumberFormat {
    /// Parses `user{:04}`; an error names what is wrong.
    pub fn parse(text: &str) -> Result<NumberFormat, String> {
        let Some(open) = text.find('{') else {
            if text.contains('}') {
                return Err(format!("{text:?}: unmatched `}}`"));
            }
            return Ok(NumberFormat {
                prefix: text.to_string(),
                number: None,
                suffix: String::new(),
            });
        };
        let close = text[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or_else(|| format!("{text:?}: unmatched `{{`"))?;
        let spec = &text[open + 1..close];
        let number = match spec.strip_prefix(':') {
            None if spec.is_empty() => (0, false),
            Some(width) if !width.is_empty() && width.bytes().all(|b| b.is_ascii_digit()) => {
                let zero = width.starts_with('0');
                let width = width
                    .parse::<usize>()
                    .ok()
                    .filter(|w| *w <= 20)
                    .ok_or_else(|| format!("{text:?}: width above 20"))?;
                (width, zero)
            }
            _ => {
                return Err(format!(
                    "{text:?}: the placeholder must be {{}}, {{:N}} or {{:0N}}"
                ));
            }
        };
        let suffix = &text[close + 1..];
        if suffix.contains('{') || suffix.contains('}') {
            return Err(format!("{text:?}: only one placeholder is allowed"));
        }
        Ok(NumberFormat {
            prefix: text[..open].to_string(),
            number: Some(number),
            suffix: suffix.to_string(),
        })
    }

    /// Whether the format produces a different string per user.
    pub fn is_numbered(&self) -> bool {
        self.number.is_some()
    }

    /// The string for user number `n`.
    pub fn render(&self, n: u64) -> String {
        match self.number {
            None => self.prefix.clone(),
            Some((width, true)) => format!("{}{n:0width$}{}", self.prefix, self.suffix),
            Some((width, false)) => format!("{}{n:width$}{}", self.prefix, self.suffix),
        }
    }
}

/// The benchmark seed of a user: HMAC-SHA256(key, user)[..20]. Deterministic,
/// so `rampart-load seeds` and the load run agree without sharing a file.
pub fn seed_for(key: &[u8], user: &str) -> [u8; 20] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(user.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut seed = [0u8; 20];
    seed.copy_from_slice(&digest[..20]);
    seed
}

/// Writes the `rampart enroll import` CSV for users `first..first+count`.
pub fn write_seeds(
    out: &mut impl std::io::Write,
    format: &NumberFormat,
    first: u64,
    count: u64,
    key: &[u8],
) -> std::io::Result<()> {
    writeln!(out, "user,base32_seed")?;
    for n in first..first + count {
        let user = format.render(n);
        let seed = totp_rs::Secret::from(seed_for(key, &user)).to_base32();
        writeln!(out, "{user},{seed}")?;
    }
    out.flush()
}

/// What the picker hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Use this user index (0-based within the range) in this step.
    User(usize),
    /// Every user already logged in during this step: wait for the next one.
    Exhausted,
}

/// Round-robin over the users. With TOTP it remembers the step each user
/// last used; going round-robin, the next user is always the one that logged
/// in longest ago, so if even it has used the current step, all have.
pub struct Picker {
    next: usize,
    users: usize,
    last_step: Option<Vec<u64>>,
}

impl Picker {
    /// A picker over `users` users; `totp` turns the per-step guard on.
    pub fn new(users: usize, totp: bool) -> Picker {
        let users = users.max(1);
        Picker {
            next: 0,
            users,
            last_step: totp.then(|| vec![u64::MAX; users]),
        }
    }

    /// The next user for a request sent during TOTP step `step`.
    pub fn pick(&mut self, step: u64) -> Pick {
        let index = self.next;
        if let Some(last) = &mut self.last_step {
            // u64::MAX marks "never used".
            if last[index] != u64::MAX && last[index] >= step {
                return Pick::Exhausted;
            }
            last[index] = step;
        }
        self.next = (index + 1) % self.users;
        Pick::User(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_like_the_peer_directory() {
        let f = NumberFormat::parse("user{:04}").unwrap();
        assert_eq!(f.render(7), "user0007");
        assert_eq!(f.render(12345), "user12345");
        assert_eq!(NumberFormat::parse("u{}@x").unwrap().render(42), "u42@x");
        assert_eq!(NumberFormat::parse("u{:3}").unwrap().render(5), "u  5");
        let fixed = NumberFormat::parse("secret").unwrap();
        assert!(!fixed.is_numbered());
        assert_eq!(fixed.render(9), "secret");
        for bad in ["u{", "u}", "u{x}", "u{:}", "u{}{}", "u{:99}"] {
            assert!(NumberFormat::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seeds_are_deterministic_per_user_and_key() {
        let a = seed_for(b"k", "user0001");
        assert_eq!(a, seed_for(b"k", "user0001"));
        assert_ne!(a, seed_for(b"k", "user0002"));
        assert_ne!(a, seed_for(b"other", "user0001"));
        // HMAC-SHA256 (RFC 4231 test case 2), first 20 octets.
        assert_eq!(
            hex::encode(seed_for(b"Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f08"
        );
    }

    #[test]
    fn seed_file_is_what_the_import_reads() {
        let mut out = Vec::new();
        let f = NumberFormat::parse("user{:04}").unwrap();
        write_seeds(&mut out, &f, 10, 2, b"k").unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "user,base32_seed");
        let (user, seed) = lines[2].split_once(',').unwrap();
        assert_eq!(user, "user0011");
        let parsed = rampart::cli::import::parse(&text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].seed.expose(), &seed_for(b"k", "user0011"));
        assert_eq!(seed.len(), 32, "160 bits");
    }

    #[test]
    fn picker_never_reuses_a_user_within_a_step() {
        let mut p = Picker::new(3, true);
        let mut used = std::collections::HashSet::new();
        for step in [100, 100, 100, 100, 101, 101, 101, 101, 105] {
            match p.pick(step) {
                Pick::User(u) => assert!(used.insert((u, step)), "reused {u} in {step}"),
                Pick::Exhausted => assert_eq!(
                    used.iter().filter(|(_, s)| *s == step).count(),
                    3,
                    "exhausted only when all 3 users used step {step}"
                ),
            }
        }
        assert_eq!(used.len(), 7);
        // Without TOTP it just goes round.
        let mut p = Picker::new(3, false);
        let picks: Vec<usize> = (0..5)
            .map(|_| match p.pick(1) {
                Pick::User(u) => u,
                Pick::Exhausted => unreachable!(),
            })
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1]);
    }
}
