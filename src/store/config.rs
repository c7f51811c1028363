//! `[store]`: where enrollment lives. SQLite by default (`path`), or one
//! PostgreSQL database shared by several nodes (`url`); the key file seals
//! TOTP seeds at rest and keys the recovery-code hashes, and stays a local
//! file on every node (each node needs the same one).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[store]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file; relative paths are relative to the working
    /// directory. Default `var/rampart.db`. Not with `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// PostgreSQL instead of SQLite: `postgres://user@host:5432/database`,
    /// libpq's URL form (`sslmode`, `sslrootcert`, `application_name` and
    /// the other libpq parameters sqlx knows may follow `?`). Unset: SQLite.
    #[serde(default)]
    pub url: Option<String>,
    /// PostgreSQL: the password, read from this file (systemd credentials),
    /// one trailing newline removed. Instead of a password in `url`.
    #[serde(default)]
    pub password_file: Option<String>,
    /// PostgreSQL: TLS as libpq's `sslmode`: `disable`, `prefer`, `require`,
    /// `verify-ca` or `verify-full`. Default: the URL's `sslmode`, else `prefer`.
    #[serde(default)]
    pub tls_mode: Option<TlsMode>,
    /// PostgreSQL: PEM bundle of the CA(s) that sign the server's
    /// certificate (`sslrootcert`); without it the WebPKI roots are used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL: PEM client certificate (chain), for `cert` authentication.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PostgreSQL: PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// PostgreSQL: connections kept open to the server. Default 8.
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// PostgreSQL: milliseconds a store operation may take, waiting for a
    /// connection (and opening one) included; bulk import, the full user
    /// listing and audit pruning excepted. While the server is down, logins
    /// fail (`store_unavailable`) after this long. Default 2000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// 32-byte key file, created with mode 0600 on first start.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Days the audit log keeps decisions (queried by the admin API).
    #[serde(default = "default_audit_days")]
    pub audit_retention_days: u64,
}

/// libpq's `sslmode` values, as sqlx implements them with rustls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, certificate not verified.
    Prefer,
    /// TLS or fail; certificate not verified (verified if `ca_file` is set, as libpq does).
    Require,
    /// TLS with a certificate signed by a trusted CA; any host name.
    VerifyCa,
    /// TLS with a trusted certificate for the host name in `url`.
    VerifyFull,
}

/// Which backend a configuration selects.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// A local SQLite file.
    Sqlite(&'a Path),
    /// A PostgreSQL database shared by the nodes.
    Postgres(&'a str),
}

/// Default `pool_size`.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// Default `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

/// Query parameters sqlx understands in a PostgreSQL URL (sqlx-postgres
/// `options/parse.rs`); anything else is a typo we report rather than let sqlx
/// log and ignore.
const URL_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: None,
            url: None,
            password_file: None,
            tls_mode: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            pool_size: None,
            timeout_ms: None,
            key_file: default_key_file(),
            audit_retention_days: default_audit_days(),
        }
    }
}

// Hand-written: a password in `url` must not reach a log through `{:?}`.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(redacted_url))
            .field("password_file", &self.password_file)
            .field("tls_mode", &self.tls_mode)
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("pool_size", &self.pool_size)
            .field("timeout_ms", &self.timeout_ms)
            .field("key_file", &self.key_file)
            .field("audit_retention_days", &self.audit_retention_days)
            .finish()
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

/// A PostgreSQL URL fit for logs: scheme, user, host, port and database;
/// the password and every query parameter dropped.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let user = match parsed.username() {
                "" => String::new(),
                user => format!("{user}@"),
            };
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{user}{}{port}{}",
                parsed.scheme(),
                parsed.host_str().unwrap_or(""),
                parsed.path()
            )
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

impl StoreConfig {
    /// The backend selected: PostgreSQL when `url` is set, else SQLite.
    pub fn backend(&self) -> Backend<'_> {
        match (&self.url, &self.path) {
            (Some(url), _) => Backend::Postgres(url),
            (None, Some(path)) => Backend::Sqlite(path),
            (None, None) => Backend::Sqlite(Path::new("var/rampart.db")),
        }
    }

    /// The SQLite file (the configured or default `path`).
    pub fn sqlite_path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(default_path)
    }

    /// PostgreSQL pool size.
    pub fn pool_size(&self) -> u32 {
        self.pool_size.unwrap_or(DEFAULT_POOL_SIZE)
    }

    /// PostgreSQL operation timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    /// Problems as (key, message), for the config validator.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.key_file.as_os_str().is_empty() {
            problems.push(("key_file", "must not be empty".to_string()));
        }
        if self.audit_retention_days == 0 {
            problems.push(("audit_retention_days", "must be at least 1".to_string()));
        }
        match &self.url {
            None => {
                if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                    problems.push(("path", "must not be empty".to_string()));
                }
                if self.sqlite_path() == self.key_file {
                    problems.push(("key_file", "must differ from store.path".to_string()));
                }
                for key in self.postgres_keys_set() {
                    problems.push((
                        key,
                        "only for PostgreSQL: set store.url, or remove this key for the SQLite store"
                            .to_string(),
                    ));
                }
            }
            Some(url) => {
                if self.path.is_some() {
                    problems.push((
                        "path",
                        "SQLite only: remove it, store.url selects PostgreSQL".to_string(),
                    ));
                }
                self.postgres_problems(url, &mut problems);
            }
        }
        problems
    }

    /// PostgreSQL-only keys that are set.
    fn postgres_keys_set(&self) -> Vec<&'static str> {
        [
            ("password_file", self.password_file.is_some()),
            ("tls_mode", self.tls_mode.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("client_cert_file", self.client_cert_file.is_some()),
            ("client_key_file", self.client_key_file.is_some()),
            ("pool_size", self.pool_size.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    fn postgres_problems(&self, url: &str, problems: &mut Vec<(&'static str, String)>) {
        // Messages never repeat the URL: it may hold a password.
        match url::Url::parse(url) {
            Err(e) => problems.push(("url", format!("not a URL: {e}"))),
            Ok(parsed) => {
                if !matches!(parsed.scheme(), "postgres" | "postgresql") {
                    problems.push((
                        "url",
                        "must start with postgres:// (or postgresql://)".to_string(),
                    ));
                }
                for (key, _) in parsed.query_pairs() {
                    if !URL_PARAMETERS.contains(&&*key) && !key.starts_with("options[") {
                        problems.push(("url", format!("unknown parameter {key:?}")));
                    }
                }
                if parsed.password().is_some() && self.password_file.is_some() {
                    problems.push((
                        "password_file",
                        "the URL has a password too: keep one of them".to_string(),
                    ));
                }
                if let Err(e) =
                    <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
                {
                    problems.push(("url", e.to_string()));
                }
            }
        }
        if let Some(path) = &self.password_file
            && let Err(message) = crate::config::read_secret_file(path)
        {
            problems.push(("password_file", message));
        }
        for (key, file) in [
            ("ca_file", &self.ca_file),
            ("client_cert_file", &self.client_cert_file),
            ("client_key_file", &self.client_key_file),
        ] {
            if let Some(path) = file
                && let Err(e) = std::fs::metadata(path)
            {
                problems.push((key, format!("cannot read {}: {e}", path.display())));
            }
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => problems.push((
                "client_key_file",
                "missing: set it with client_cert_file".to_string(),
            )),
            (None, Some(_)) => problems.push((
                "client_cert_file",
                "missing: set it with client_key_file".to_string(),
            )),
            _ => {}
        }
        if self.tls_mode == Some(TlsMode::Disable)
            && (self.ca_file.is_some() || self.client_cert_file.is_some())
        {
            problems.push((
                "tls_mode",
                "is disable, but ca_file or client_cert_file is set".to_string(),
            ));
        }
        if self.pool_size == Some(0) {
            problems.push(("pool_size", "must be at least 1".to_string()));
        }
        if self.timeout_ms.is_some_and(|ms| ms < 100) {
            problems.push(("timeout_ms", "must be at least 100".to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> StoreConfig {
        toml_from(text)
    }

    fn toml_from(text: &str) -> StoreConfig {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    fn keys(c: &StoreConfig) -> Vec<&'static str> {
        c.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn sqlite_is_the_default() {
        let c = parse("");
        assert!(matches!(c.backend(), Backend::Sqlite(p) if p == Path::new("var/rampart.db")));
        assert!(c.problems().is_empty());
    }

    #[test]
    fn keys_belong_to_their_backend() {
        let c = parse("pool_size = 4\ntimeout_ms = 500\ntls_mode = \"require\"");
        assert_eq!(keys(&c), ["tls_mode", "pool_size", "timeout_ms"]);
        let c = parse("url = \"postgres://r@127.0.0.1/db\"\npath = \"x.db\"");
        assert_eq!(keys(&c), ["path"]);
        let c =
            parse("url = \"postgres://r@127.0.0.1/db\"\npool_size = 4\ntls_mode = \"verify-full\"");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert!(matches!(c.backend(), Backend::Postgres(_)));
    }

    #[test]
    fn bad_urls_are_named_without_echoing_the_password() {
        for url in [
            "mysql://r:hunter2@h/db",
            "postgres://r:hunter2@h/db?sslmod=require",
            "postgres://r:hunter2@h/db?sslmode=sometimes",
        ] {
            let c = parse(&format!("url = \"{url}\""));
            let problems = c.problems();
            assert_eq!(problems.len(), 1, "{url}: {problems:?}");
            assert_eq!(problems[0].0, "url");
            assert!(!problems[0].1.contains("hunter2"), "{problems:?}");
        }
        let c = parse("url = \"postgres://r:hunter2@h/db\"\npassword_file = \"/nonexistent\"");
        assert_eq!(keys(&c), ["password_file", "password_file"]);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            redacted_url("postgres://r:hunter2@h:5433/db?sslmode=require&password=x"),
            "postgres://r@h:5433/db"
        );
    }

    #[test]
    fn tls_keys_are_checked() {
        let c = parse(
            "url = \"postgres://r@h/db\"\ntls_mode = \"disable\"\nca_file = \"/nonexistent.pem\"\nclient_key_file = \"/etc/hostname\"",
        );
        assert_eq!(keys(&c), ["ca_file", "client_cert_file", "tls_mode"]);
        let c = parse("url = \"postgres://r@h/db\"\npool_size = 0\ntimeout_ms = 5");
        assert_eq!(keys(&c), ["pool_size", "timeout_ms"]);
    }
}
