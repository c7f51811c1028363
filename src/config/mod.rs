//! Configuration: a TOML file read with the `config` crate, layered with
//! `RAMPART__SECTION__KEY` environment variables, deserialized strictly
//! ([`file`]) and then validated into real types ([`validate`]).
//!
//! Every problem is reported as `FILE: key.path: what is wrong`, all of them at
//! once (unknown keys and value checks together), so an admin fixes a file in
//! one pass. Weak but workable settings are warnings
//! (`FILE: key.path: warning: ...`): `check-config` prints them and `serve`
//! logs them at WARN. `rampart check-config` and `rampart serve` run exactly
//! this code.

mod client_secret;
mod clients;
pub mod file;
mod tree;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Value};

use tree::{find_key, has_path, join_key, path_segments, remove_path};

pub use file::{LogFormat, Unenrolled};
pub use validate::{Config, Policy};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `clients[0].secret`; empty for the whole file.
    pub key: String,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

/// `FILE: key: message`, or `FILE: key: warning: message`.
fn line(file: &Path, problem: &Problem, warning: bool) -> String {
    let label = if warning { "warning: " } else { "" };
    if problem.key.is_empty() {
        format!("{}: {label}{}", file.display(), problem.message)
    } else {
        format!(
            "{}: {}: {label}{}",
            file.display(),
            problem.key,
            problem.message
        )
    }
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Problems that stop it from being used.
    pub problems: Vec<Problem>,
    /// Weaknesses found as well (shown, marked `warning:`).
    pub warnings: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut all: Vec<(&Problem, bool)> = self.problems.iter().map(|p| (p, false)).collect();
        all.extend(self.warnings.iter().map(|p| (p, true)));
        all.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        for (i, (problem, warning)) in all.into_iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(&line(&self.file, problem, warning))?;
        }
        Ok(())
    }
}

impl Config {
    /// The warnings as `check-config` prints them, one line each: weak
    /// settings that still work (see [`validate`]).
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|problem| line(&self.source, problem, true))
            .collect()
    }
}

/// Reads, layers, deserializes and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<Problem>, warnings: Vec<Problem>| ConfigError {
        file: path.to_path_buf(),
        problems,
        warnings,
    };
    let whole_file = |message: String| {
        fail(
            vec![Problem {
                key: String::new(),
                message,
            }],
            Vec::new(),
        )
    };
    if !path.is_file() {
        return Err(whole_file(format!(
            "cannot read configuration file: {}",
            match std::fs::metadata(path) {
                Ok(_) => "not a regular file".to_string(),
                Err(e) => e.to_string(),
            }
        )));
    }
    let layered = config::Config::builder()
        .add_source(File::from(path).format(FileFormat::Toml).required(true))
        .add_source(
            Environment::with_prefix("RAMPART")
                .prefix_separator("__")
                .separator("__"),
        )
        .build()
        .map_err(|e| whole_file(strip_origin(&e.to_string(), path)))?;
    let tree: Value = layered
        .try_deserialize()
        .map_err(|e| whole_file(e.to_string()))?;
    let (file, mut problems) = deserialize_collecting(tree);
    let Some(file) = file else {
        return Err(fail(problems, Vec::new()));
    };
    // The value checks run even when keys were refused above, on the file
    // without those keys, so one run lists everything. What they say about a
    // refused key (or below it: "missing" after a mistyped value was
    // removed) would only repeat that problem, so it is left out.
    let refused: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
    let fresh = |found: Vec<Problem>| -> Vec<Problem> {
        found
            .into_iter()
            .filter(|p| !refused.iter().any(|r| covers(r, &p.key)))
            .collect()
    };
    match validate::validate(file, path) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(config) => Err(fail(problems, fresh(config.warnings))),
        Err(found) => {
            problems.extend(fresh(found.errors));
            Err(fail(problems, fresh(found.warnings)))
        }
    }
}

/// Whether `key` is `parent` or a key below it (`clients[0]` covers
/// `clients[0].secret`; an empty `parent` is the whole file).
fn covers(parent: &str, key: &str) -> bool {
    parent.is_empty()
        || key
            .strip_prefix(parent)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Deserializes the tree; on an error, records it, removes the offending key
/// and tries again, so every unknown or mistyped key is reported, not the
/// first. Returns the file without the refused keys (for the value checks),
/// unless a key could not be removed, and the problems.
///
/// Why this and not a permissive parse (`serde_ignored`, or a second set of
/// structs without `deny_unknown_fields`): `[primary]` and `[sms]` are
/// internally tagged enums, which serde buffers before their fields are seen,
/// so such tracking misses keys there, and a second set of structs would
/// drift from the first. Retrying serde's own strict parse finds exactly
/// what the daemon refuses.
fn deserialize_collecting(mut tree: Value) -> (Option<file::ConfigFile>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut parsed = None;
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, file::ConfigFile>(tree.clone()) {
            Ok(file) => {
                parsed = Some(file);
                break;
            }
            Err(error) => {
                let mut segments = path_segments(error.path());
                let message = error.inner().to_string();
                if let Some(field) = unknown_field(&message)
                    && segments.last() != Some(&field)
                {
                    segments.push(field.clone());
                    // Inside an internally tagged table ([primary]) serde loses
                    // the path below the table; find the key where it really is.
                    if !has_path(&tree, &segments) {
                        let parent = &segments[..segments.len() - 1];
                        if let Some(found) = find_key(&tree, parent, &field) {
                            segments = found;
                        }
                    }
                }
                let key = join_key(&segments);
                let redact = unknown_field(&message).is_none()
                    && segments
                        .last()
                        .is_some_and(|s| s.contains("secret") || s.contains("password"));
                problems.push(Problem {
                    key: key.clone(),
                    message: if redact {
                        "invalid value (not shown: it may be a secret)".into()
                    } else {
                        clean_message(&message)
                    },
                });
                if !remove_path(&mut tree, &segments) {
                    break;
                }
            }
        }
    }
    problems.sort_by(|a, b| a.key.cmp(&b.key));
    problems.dedup();
    (parsed, problems)
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn clean_message(message: &str) -> String {
    // The config crate appends its own " for key `...`": the key is already in front.
    let message = match message.find(" for key `") {
        Some(index) => &message[..index],
        None => message,
    };
    if let Some(rest) = message.strip_prefix("enum ")
        && let Some((_, value)) = rest.split_once(" does not have variant constructor ")
    {
        return format!("unknown value `{value}`");
    }
    match message.split_once(", expected one of") {
        Some((head, tail)) => format!("{head} (known keys:{})", tail.trim_end()),
        None => message.to_string(),
    }
    .replace("unknown field", "unknown key")
}

fn strip_origin(message: &str, path: &Path) -> String {
    message.replace(&format!(" in {}", path.display()), "")
}

/// Where systemd puts a unit's credentials when `$CREDENTIALS_DIRECTORY` is
/// not set: admin commands run from a shell read the same files as the
/// service (systemd.exec(5), "Credentials").
const UNIT_CREDENTIALS: &str = "/run/credentials/rampart.service";

/// A `*_file` path with the systemd credentials directory expanded:
/// `%d/NAME` (the unit-file specifier), `$CREDENTIALS_DIRECTORY/NAME` or
/// `${CREDENTIALS_DIRECTORY}/NAME` become `$CREDENTIALS_DIRECTORY/NAME`
/// (`LoadCredential=NAME:...` in the unit), or, outside the service,
/// [`UNIT_CREDENTIALS`]`/NAME`. Other paths are used as written.
pub fn credential_path(path: &str) -> PathBuf {
    credential_path_in(path, std::env::var_os("CREDENTIALS_DIRECTORY"))
}

fn credential_path_in(path: &str, credentials: Option<std::ffi::OsString>) -> PathBuf {
    let name = [
        "%d/",
        "$CREDENTIALS_DIRECTORY/",
        "${CREDENTIALS_DIRECTORY}/",
    ]
    .iter()
    .find_map(|prefix| path.strip_prefix(prefix));
    match name {
        Some(name) => {
            let directory = credentials
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(UNIT_CREDENTIALS));
            directory.join(name)
        }
        None => PathBuf::from(path),
    }
}

/// Reads a secret from a `*_file` key: the whole file, one trailing newline
/// removed. The path may name a systemd credential ([`credential_path`]).
pub(crate) fn read_secret_file(path: &str) -> Result<String, String> {
    let resolved = credential_path(path);
    let mut text = std::fs::read_to_string(&resolved).map_err(|e| {
        if resolved.as_os_str() == path {
            format!("cannot read {path}: {e}")
        } else {
            format!("cannot read {path} ({}): {e}", resolved.display())
        }
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_key_covers_the_keys_below_it_only() {
        assert!(covers("clients[0].secret", "clients[0].secret"));
        assert!(covers("clients[0]", "clients[0].secret"));
        assert!(covers("primary", "primary.servers[1].secret"));
        assert!(covers("clients", "clients[3]"));
        assert!(covers("", "radius.listen"));
        // A misspelt `secrett` says nothing about the missing `secret`.
        assert!(!covers("clients[0].secrett", "clients[0].secret"));
        assert!(!covers("clients[0].secret", "clients[0].secret_file"));
        assert!(!covers("clients[1]", "clients[10].name"));
    }

    #[test]
    fn credential_paths_expand_to_the_credentials_directory() {
        let dir = Some(std::ffi::OsString::from("/run/credentials/x.service"));
        for written in [
            "%d/radius-secret",
            "$CREDENTIALS_DIRECTORY/radius-secret",
            "${CREDENTIALS_DIRECTORY}/radius-secret",
        ] {
            assert_eq!(
                credential_path_in(written, dir.clone()),
                PathBuf::from("/run/credentials/x.service/radius-secret")
            );
            // Outside the service: the directory systemd gives this unit.
            assert_eq!(
                credential_path_in(written, None),
                PathBuf::from("/run/credentials/rampart.service/radius-secret")
            );
        }
        assert_eq!(
            credential_path_in("/etc/rampart/secret", dir),
            PathBuf::from("/etc/rampart/secret")
        );
    }
}
