//! `rampart enroll import FILE`: bulk TOTP enrollment from a CSV of
//! `user,base32_seed` lines — the migration path for sites leaving another MFA
//! system, and how benchmarks enroll tens of thousands of users. The whole file
//! is validated first and every bad line reported as `FILE:LINE: problem`;
//! only a clean file is sealed and written, in one store transaction. Seeds
//! are never printed, not even in error messages.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use zeroize::Zeroizing;

use crate::auth::PrimaryConfig;
use crate::config::Config;
use crate::secret::Secret;

/// Fewest seed bits accepted: RFC 4226 §4 requires at least 128.
pub const MIN_SEED_BITS: usize = 128;
/// Most seed bits accepted; anything longer is a wrong column, not a seed.
pub const MAX_SEED_BITS: usize = 1024;
/// First-field spellings that mark an optional header line.
const HEADER_NAMES: [&str; 5] = ["user", "username", "user_name", "login", "uid"];

/// One valid line of an import file.
pub struct SeedLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The normalised user name.
    pub user: String,
    /// The decoded seed.
    pub seed: Secret<Vec<u8>>,
}

/// One invalid line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: usize,
    /// What is wrong; never contains the seed.
    pub message: String,
}

/// Removes one pair of surrounding double quotes, as spreadsheets write them.
fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .map_or(field, str::trim)
}

/// Decodes a base32 seed (RFC 4648 alphabet), tolerating lower case, spaces
/// and `=` padding as authenticator exports write them.
fn decode_seed(text: &str) -> Result<Secret<Vec<u8>>, String> {
    // Built in place so no unzeroized copy of the seed is left behind.
    let mut compact = Zeroizing::new(String::with_capacity(text.len()));
    compact.extend(
        text.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase()),
    );
    let unpadded = compact.trim_end_matches('=').len();
    compact.truncate(unpadded);
    if compact.is_empty() {
        return Err("empty seed".into());
    }
    if !compact
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return Err("seed is not base32 (letters A-Z and digits 2-7 only)".into());
    }
    let seed = totp_rs::Secret::try_from_base32(compact.as_str())
        .map(|s| Secret::new(s.as_ref().to_vec()))
        .map_err(|_| "seed is not valid base32".to_string())?;
    let bits = seed.expose().len() * 8;
    if bits < MIN_SEED_BITS {
        return Err(format!(
            "seed has {bits} bits; at least {MIN_SEED_BITS} (26 base32 characters) are required"
        ));
    }
    if bits > MAX_SEED_BITS {
        return Err(format!(
            "seed has {bits} bits; at most {MAX_SEED_BITS} are accepted"
        ));
    }
    Ok(seed)
}

fn checked_user(field: &str) -> Result<String, String> {
    let user = crate::username::normalize(field);
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.len() > 253 || user.chars().any(char::is_control) {
        return Err("invalid user name: 1 to 253 printable characters".into());
    }
    Ok(user)
}

/// Parses an import file: `user,base32_seed` per line; blank lines and lines
/// starting with `#` are skipped, and the first record may be a header (its
/// first field is `user`, `username`, `user_name`, `login` or `uid` and its
/// second is not a valid seed). User names are normalised like the daemon's
/// defaults (`CORP\alice` → `alice`). Every problem is reported, not the first.
pub fn parse(text: &str) -> Result<Vec<SeedLine>, Vec<LineError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut seeds = Vec::new();
    let mut errors = Vec::new();
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    let mut first_record = true;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let is_first = std::mem::take(&mut first_record);
        let fields: Vec<&str> = trimmed.split(',').collect();
        let fail = |message: String| LineError { line, message };
        if fields.len() != 2 {
            errors.push(fail(format!(
                "expected 2 fields `user,base32_seed`, found {}",
                fields.len()
            )));
            continue;
        }
        let (user_field, seed_field) = (unquote(fields[0]), unquote(fields[1]));
        let seed = decode_seed(seed_field);
        if is_first
            && seed.is_err()
            && HEADER_NAMES.contains(&user_field.to_ascii_lowercase().as_str())
        {
            continue;
        }
        let user = match checked_user(user_field) {
            Ok(user) => user,
            Err(message) => {
                errors.push(fail(message));
                continue;
            }
        };
        let seed = match seed {
            Ok(seed) => seed,
            Err(message) => {
                errors.push(fail(format!("{user}: {message}")));
                continue;
            }
        };
        if let Some(earlier) = first_line_of.get(&user) {
            errors.push(fail(format!("{user}: also on line {earlier}")));
            continue;
        }
        first_line_of.insert(user.clone(), line);
        seeds.push(SeedLine { line, user, seed });
    }
    if errors.is_empty() {
        Ok(seeds)
    } else {
        Err(errors)
    }
}

/// `rampart enroll import FILE`. Returns the exit code: 0 imported, 2 the
/// file has problems (all printed, nothing written).
pub async fn enroll_import(config: &Config, file: &Path) -> anyhow::Result<i32> {
    let started = Instant::now();
    let bytes = Zeroizing::new(
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let Ok(text) = std::str::from_utf8(&bytes) else {
        eprintln!("{}: not UTF-8 text; nothing imported", file.display());
        return Ok(2);
    };
    let lines = match parse(text) {
        Ok(lines) if lines.is_empty() => {
            eprintln!(
                "{}: no `user,base32_seed` lines; nothing imported",
                file.display()
            );
            return Ok(2);
        }
        Ok(lines) => lines,
        Err(errors) => {
            for error in &errors {
                eprintln!("{}:{}: {}", file.display(), error.line, error.message);
            }
            eprintln!("{} problem(s); nothing imported", errors.len());
            return Ok(2);
        }
    };

    let (store, key) = crate::app::open_store(config).await?;
    let known = store.list_users().await?;
    let enrolled: HashSet<&str> = known
        .iter()
        .filter(|u| u.totp)
        .map(|u| u.name.as_str())
        .collect();
    let replaced = lines
        .iter()
        .filter(|l| enrolled.contains(l.user.as_str()))
        .count();
    let without_local_user = if matches!(config.primary, PrimaryConfig::Local(_)) {
        let local: HashSet<&str> = known
            .iter()
            .filter(|u| u.local_password)
            .map(|u| u.name.as_str())
            .collect();
        lines
            .iter()
            .filter(|l| !local.contains(l.user.as_str()))
            .count()
    } else {
        0
    };

    // Sealed exactly as `TotpFactor::enroll` does: bound to the user name.
    let sealed: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| (l.user.clone(), key.seal(l.user.as_bytes(), l.seed.expose())))
        .collect();
    drop(lines);
    store
        .import_totp(&sealed, super::now())
        .await
        .context("nothing imported")?;
    println!(
        "imported {} TOTP seed(s) from {} in {:.2} s",
        sealed.len(),
        file.display(),
        started.elapsed().as_secs_f64()
    );
    if replaced > 0 {
        println!(
            "{replaced} of them replaced an earlier seed: those users' old authenticators stop working now"
        );
    }
    if without_local_user > 0 {
        eprintln!(
            "warning: {without_local_user} of them have no local user here (backend = \"local\"); they cannot log in until added with `rampart user add NAME`"
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B seed "12345678901234567890" (160 bits).
    const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn errors(text: &str) -> Vec<(usize, String)> {
        match parse(text) {
            Ok(_) => panic!("expected problems"),
            Err(errors) => errors.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    #[test]
    fn parses_header_comments_blanks_quotes_and_normalises_names() {
        let text = format!(
            "\u{feff}user,base32_seed\r\n# exported 2026-11-01\n\n  CORP\\Alice , {SEED}\r\n\"bob\",\"{}\"\ncarol,{}==\n",
            SEED.to_lowercase(),
            &SEED[..26],
        );
        let lines = parse(&text).unwrap();
        let got: Vec<(usize, &str)> = lines.iter().map(|l| (l.line, l.user.as_str())).collect();
        assert_eq!(got, vec![(4, "alice"), (5, "bob"), (6, "carol")]);
        assert_eq!(lines[0].seed.expose(), b"12345678901234567890");
        assert_eq!(lines[1].seed.expose(), b"12345678901234567890");
        assert_eq!(lines[2].seed.expose().len(), 16, "26 characters = 128 bits");
        // Spaces inside the seed, as apps display it in groups of four.
        let spaced = parse("dave,GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ").unwrap();
        assert_eq!(spaced[0].seed.expose(), b"12345678901234567890");
    }

    #[test]
    fn reports_every_bad_line_with_its_number_and_never_the_seed() {
        let text = format!(
            "alice,{SEED}\n\
             bob\n\
             carol,{SEED},extra\n\
             ,{SEED}\n\
             dave,GEZDGNBVGY3TQOJQ\n\
             erin,GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ\n\
             frank,\n\
             ALICE,{SEED}\n\
             user,{SEED}\n"
        );
        let got = errors(&text);
        assert_eq!(
            got,
            vec![
                (
                    2,
                    "expected 2 fields `user,base32_seed`, found 1".to_string()
                ),
                (
                    3,
                    "expected 2 fields `user,base32_seed`, found 3".to_string()
                ),
                (4, "empty user name".to_string()),
                (
                    5,
                    "dave: seed has 80 bits; at least 128 (26 base32 characters) are required"
                        .to_string()
                ),
                (
                    6,
                    "erin: seed is not base32 (letters A-Z and digits 2-7 only)".to_string()
                ),
                (7, "frank: empty seed".to_string()),
                (8, "alice: also on line 1".to_string()),
            ],
            "a user literally named `user` with a valid seed is data, not a header"
        );
        for (_, message) in &got {
            assert!(!message.contains("GEZD"), "{message}");
        }
    }

    #[test]
    fn a_header_is_only_recognised_on_the_first_record() {
        assert_eq!(
            errors(&format!("# c\nalice,{SEED}\nuser,base32_seed\n")),
            vec![(
                3,
                "user: seed is not base32 (letters A-Z and digits 2-7 only)".to_string()
            )]
        );
        assert_eq!(parse("username,secret\n").unwrap().len(), 0);
    }

    #[test]
    fn rejects_absurdly_long_seeds() {
        let long = "A".repeat(210); // 1050 bits
        assert_eq!(
            errors(&format!("alice,{long}")),
            vec![(
                1,
                "alice: seed has 1048 bits; at most 1024 are accepted".to_string()
            )]
        );
    }
}
