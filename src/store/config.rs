//! `[store]`: where enrollment lives. SQLite by default; the key file seals
//! TOTP seeds at rest and keys the recovery-code hashes.

use std::path::PathBuf;

use serde::Deserialize;

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file; relative paths are relative to the working directory.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// 32-byte key file, created with mode 0600 on first start.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Days the audit log keeps decisions (queried by the admin API).
    #[serde(default = "default_audit_days")]
    pub audit_retention_days: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_path(),
            key_file: default_key_file(),
            audit_retention_days: default_audit_days(),
        }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from("var/rampart.db")
}
fn default_audit_days() -> u64 {
    90
}
fn default_key_file() -> PathBuf {
    PathBuf::from("var/rampart.key")
}

impl StoreConfig {
    /// Problems as (key, message), for the config validator.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push(("path", "must not be empty".to_string()));
        }
        if self.key_file.as_os_str().is_empty() {
            problems.push(("key_file", "must not be empty".to_string()));
        }
        if self.audit_retention_days == 0 {
            problems.push(("audit_retention_days", "must be at least 1".to_string()));
        }
        if self.path == self.key_file {
            problems.push(("key_file", "must differ from store.path".to_string()));
        }
        problems
    }
}
