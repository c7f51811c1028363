//! Configuration: a TOML file read with the `config` crate, layered with
//! `RAMPART__SECTION__KEY` environment variables, deserialized strictly
//! ([`file`]) and then validated into real types ([`validate`]).
//!
//! Every problem is reported as `FILE: key.path: what is wrong`, all of them at
//! once, so an admin fixes a file in one pass. `rampart check-config` and
//! `rampart serve` run exactly this code.

pub mod file;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Value, ValueKind};

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

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Problems, sorted by key.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if problem.key.is_empty() {
                write!(f, "{}: {}", self.file.display(), problem.message)?;
            } else {
                write!(
                    f,
                    "{}: {}: {}",
                    self.file.display(),
                    problem.key,
                    problem.message
                )?;
            }
        }
        Ok(())
    }
}

/// Reads, layers, deserializes and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    let whole_file = |message: String| {
        fail(vec![Problem {
            key: String::new(),
            message,
        }])
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
    let file = deserialize_collecting(tree).map_err(fail)?;
    validate::validate(file, path).map_err(fail)
}

/// Deserializes the tree; on an error, records it, removes the offending key
/// and tries again, so every unknown or mistyped key is reported, not the first.
fn deserialize_collecting(mut tree: Value) -> Result<file::ConfigFile, Vec<Problem>> {
    let mut problems = Vec::new();
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, file::ConfigFile>(tree.clone()) {
            Ok(file) if problems.is_empty() => return Ok(file),
            Ok(_) => break,
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
    Err(problems)
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("[{index}]")),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

fn join_key(segments: &[String]) -> String {
    let mut key = String::new();
    for segment in segments {
        if !key.is_empty() && !segment.starts_with('[') {
            key.push('.');
        }
        key.push_str(segment);
    }
    key
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

/// The value at `segments`, if there is one.
fn value_at<'a>(tree: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut node = tree;
    for segment in segments {
        node = match (&node.kind, segment.strip_prefix('[')) {
            (ValueKind::Array(items), Some(index)) => {
                items.get(index.trim_end_matches(']').parse::<usize>().ok()?)?
            }
            (ValueKind::Table(table), None) => table.get(segment)?,
            _ => return None,
        };
    }
    Some(node)
}

fn has_path(tree: &Value, segments: &[String]) -> bool {
    value_at(tree, segments).is_some()
}

/// The full path of the first key named `name` below `parent` (depth first).
fn find_key(tree: &Value, parent: &[String], name: &str) -> Option<Vec<String>> {
    fn walk(node: &Value, path: &mut Vec<String>, name: &str) -> Option<Vec<String>> {
        match &node.kind {
            ValueKind::Table(table) => {
                let mut keys: Vec<&String> = table.keys().collect();
                keys.sort();
                for key in keys {
                    path.push(key.clone());
                    if key == name {
                        return Some(path.clone());
                    }
                    if let Some(found) = walk(&table[key], path, name) {
                        return Some(found);
                    }
                    path.pop();
                }
                None
            }
            ValueKind::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(format!("[{index}]"));
                    if let Some(found) = walk(item, path, name) {
                        return Some(found);
                    }
                    path.pop();
                }
                None
            }
            _ => None,
        }
    }
    let mut path = parent.to_vec();
    walk(value_at(tree, parent)?, &mut path, name)
}

/// Removes the value at `segments`; false if there was nothing to remove.
fn remove_path(tree: &mut Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        node = match (&mut node.kind, segment.strip_prefix('[')) {
            (ValueKind::Array(items), Some(index)) => {
                match index
                    .trim_end_matches(']')
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i))
                {
                    Some(item) => item,
                    None => return false,
                }
            }
            (ValueKind::Table(table), None) => match table.get_mut(segment) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&mut node.kind, last.strip_prefix('[')) {
        (ValueKind::Table(table), None) => table.remove(last).is_some(),
        (ValueKind::Array(items), Some(index)) => {
            match index.trim_end_matches(']').parse::<usize>() {
                Ok(i) if i < items.len() => {
                    // Keep indices stable for later messages: blank the entry instead.
                    items[i] = Value::new(None, ValueKind::Table(Default::default()));
                    true
                }
                _ => false,
            }
        }
        _ => false,
    }
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
