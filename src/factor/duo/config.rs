//! `[duo]`: the Duo Auth API application rampart signs requests for. The
//! values come from the Duo Admin Panel, Applications → "Auth API" (or
//! "RADIUS") → Details: "API hostname", "Integration key", "Secret key".

use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::factor::oob::FailMode;
use crate::secret::Secret;

/// `[duo]`.
///
/// ```toml
/// [duo]
/// api_host = "api-xxxxxxxx.duosecurity.com"
/// ikey = "DIXXXXXXXXXXXXXXXXXX"
/// skey_file = "/etc/rampart/duo.skey"
/// failmode = "secure"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuoConfig {
    /// API hostname, `host` or `host:port`, without `https://`. Required.
    #[serde(default)]
    pub api_host: String,
    /// Integration key (20 characters, `DI...`). Required.
    #[serde(default)]
    pub ikey: String,
    /// Secret key (40 characters), inline.
    #[serde(default, deserialize_with = "secret")]
    pub skey: Option<Secret<String>>,
    /// Secret key read from a file (systemd credentials), trailing newline removed.
    #[serde(default)]
    pub skey_file: Option<String>,
    /// When Duo cannot be reached: `secure` (reject, default) or `safe`
    /// (accept on the password alone, logged and counted).
    #[serde(default)]
    pub failmode: FailMode,
    /// Seconds each HTTP request to Duo may take (connect and answer),
    /// except the status long-poll, which may take what is left of the
    /// login's `[out_of_band] timeout_secs`. Default 10.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// PEM file of CA certificates to trust for `api_host` *instead of* the
    /// system trust store (a TLS-inspecting proxy's CA, a test emulator).
    /// Unset: the operating system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Label shown in the Duo Mobile push and phone call ("Login request"
    /// when unset): Duo's `type` parameter.
    #[serde(default)]
    pub push_type: Option<String>,
    /// Send the NAS name, NAS-Identifier and Calling-Station-Id to Duo as
    /// `pushinfo`, shown in the push. Default true.
    #[serde(default = "default_true")]
    pub pushinfo: bool,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

fn default_timeout() -> u64 {
    10
}

fn default_true() -> bool {
    true
}

/// Duo integration keys are 20 upper-case letters and digits starting `DI`
/// (Duo's own clients check the length: `IKEY_LEN = 20` in duo_python).
fn ikey_problem(ikey: &str) -> Option<String> {
    if ikey.is_empty() {
        return Some("missing: the Integration key from the Duo Admin Panel (\"DI...\")".into());
    }
    let shaped = ikey.len() == 20
        && ikey.starts_with("DI")
        && ikey
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    (!shaped).then(|| {
        "does not look like a Duo integration key: 20 upper-case letters and digits starting with \"DI\"".into()
    })
}

/// Duo secret keys are 40 characters (`SKEY_LEN = 40` in duo_python).
fn skey_problem(skey: &str) -> Option<String> {
    if skey.len() != 40 || !skey.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some(format!(
            "does not look like a Duo secret key: 40 letters and digits, this has {} characters",
            skey.chars().count()
        ));
    }
    None
}

impl DuoConfig {
    /// The secret key, inline or from its file; on error the key to blame.
    pub fn skey(&self) -> Result<Secret<String>, (&'static str, String)> {
        match (&self.skey, &self.skey_file) {
            (Some(_), Some(_)) => Err(("skey", "set either skey or skey_file, not both".into())),
            (None, None) => Err(("skey", "missing: set skey or skey_file".into())),
            (Some(skey), None) => Ok(skey.clone()),
            (None, Some(path)) => crate::config::read_secret_file(path)
                .map(Secret::new)
                .map_err(|message| ("skey_file", message)),
        }
    }

    /// `https://{api_host}`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.api_host.trim())
    }

    /// Problems as `(key, message)`, keys relative to `[duo]`. Never echoes
    /// the secret key.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut add = |key: &str, message: String| problems.push((key.to_string(), message));

        let host = self.api_host.trim();
        if host.is_empty() {
            add(
                "api_host",
                "missing: the API hostname from the Duo Admin Panel, e.g. \"api-xxxxxxxx.duosecurity.com\"".into(),
            );
        } else if host.contains("://") || host.contains('/') {
            add(
                "api_host",
                "host name only (optionally :port), without https:// or a path".into(),
            );
        } else if reqwest::Url::parse(&format!("https://{host}/"))
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .is_none()
            || host.contains('@')
        {
            add(
                "api_host",
                format!("{host:?} is not a host name or host:port"),
            );
        }

        if let Some(message) = ikey_problem(&self.ikey) {
            add("ikey", message);
        }
        match self.skey() {
            Ok(skey) => {
                if let Some(message) = skey_problem(skey.expose()) {
                    let key = if self.skey_file.is_some() {
                        "skey_file"
                    } else {
                        "skey"
                    };
                    add(key, message);
                }
            }
            Err((key, message)) => add(key, message),
        }

        if !(1..=60).contains(&self.timeout_secs) {
            add("timeout_secs", "must be between 1 and 60 seconds".into());
        }
        if let Some(path) = &self.ca_file
            && let Err(message) = load_ca(Path::new(path))
        {
            add("ca_file", message);
        }
        if let Some(label) = &self.push_type
            && (label.trim().is_empty() || label.len() > 100)
        {
            add(
                "push_type",
                "must be a short label (1 to 100 characters) when set".into(),
            );
        }
        problems
    }
}

/// The CA certificates in a PEM file; an error when there are none.
pub fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{shown}: not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{shown}: no PEM certificate in it"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
    const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

    fn parse(json: serde_json::Value) -> DuoConfig {
        serde_json::from_value(json).unwrap()
    }

    fn keys(config: &DuoConfig) -> Vec<String> {
        config.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn minimal_config_has_documented_defaults() {
        let config = parse(serde_json::json!({
            "api_host": "api-xxxxxxxx.duosecurity.com", "ikey": IKEY, "skey": SKEY
        }));
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert_eq!(config.failmode, FailMode::Secure);
        assert_eq!(config.timeout_secs, 10);
        assert!(config.pushinfo);
        assert_eq!(config.base_url(), "https://api-xxxxxxxx.duosecurity.com");
        assert!(!format!("{config:?}").contains(SKEY));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let result = serde_json::from_value::<DuoConfig>(serde_json::json!({
            "api_host": "h", "ikey": IKEY, "skey": SKEY, "fail_mode": "safe"
        }));
        assert!(result.is_err());
    }

    #[test]
    fn each_mistake_names_its_key_without_the_secret() {
        let config = parse(serde_json::json!({
            "api_host": "https://api-x.duosecurity.com", "ikey": "XX123", "skey": "s3cr3tXY",
            "timeout_secs": 0, "ca_file": "/nonexistent/ca.pem", "push_type": ""
        }));
        assert_eq!(
            keys(&config),
            [
                "api_host",
                "ikey",
                "skey",
                "timeout_secs",
                "ca_file",
                "push_type"
            ]
        );
        assert!(!format!("{:?}", config.problems()).contains("s3cr3tXY"));

        let missing = parse(serde_json::json!({}));
        assert_eq!(keys(&missing), ["api_host", "ikey", "skey"]);

        let both = parse(serde_json::json!({
            "api_host": "h:8443", "ikey": IKEY, "skey": SKEY, "skey_file": "/x"
        }));
        assert_eq!(keys(&both), ["skey"]);

        let bad_port = parse(serde_json::json!({
            "api_host": "h:99999", "ikey": IKEY, "skey": SKEY
        }));
        assert_eq!(keys(&bad_port), ["api_host"]);
    }

    #[test]
    fn skey_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skey");
        std::fs::write(&path, format!("{SKEY}\n")).unwrap();
        let config = parse(serde_json::json!({
            "api_host": "h", "ikey": IKEY, "skey_file": path.to_str().unwrap()
        }));
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert_eq!(config.skey().unwrap().expose(), SKEY);

        std::fs::write(&path, "tooshort").unwrap();
        assert_eq!(keys(&config), ["skey_file"]);
        let gone = parse(serde_json::json!({
            "api_host": "h", "ikey": IKEY, "skey_file": "/nonexistent/skey"
        }));
        assert_eq!(keys(&gone), ["skey_file"]);
    }
}
