//! The small Twilio REST client the `sms` and `phone` providers share, and
//! Twilio's request signature (`X-Twilio-Signature`) for the call callbacks.
//!
//! Only what rampart uses: creating a resource (`Messages.json`, `Calls.json`)
//! under `{api_base}/2010-04-01/Accounts/{AccountSid}/` with a form-encoded
//! POST and HTTP Basic `AccountSid:AuthToken`, answered by `201 Created` and a
//! JSON body carrying the new resource's `sid`; errors are JSON
//! `{"code": 20003, "message": "Authenticate", "status": 401, ...}`.
//! `api_base` is overridable for Twilio-compatible gateways.

use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use super::delivery;
use super::oob::ProviderError;
use crate::secret::Secret;

/// Twilio's API host.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// The REST API version in every path.
pub const API_VERSION: &str = "2010-04-01";

/// Default HTTP timeout for one delivery, seconds.
pub fn default_timeout_secs() -> u64 {
    10
}

/// Default `api_base`.
pub fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

/// Whether `number` is E.164: `+`, a non-zero digit, at most 15 digits in all
/// (ITU-T E.164 §6.1). Twilio wants this form in `To` and `From`.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Twilio's signature of a request it sends: base64 of HMAC-SHA1, keyed with
/// the auth token, over the full URL as Twilio requested it followed by every
/// POST parameter's name and value, sorted by name (then value, for repeated
/// names), without separators (twilio.com/docs/usage/security, "Validating
/// requests are coming from Twilio"; twilio-python `RequestValidator`).
pub fn signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(auth_token)
        .expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks an `X-Twilio-Signature` in constant time. Also accepts the URL
/// without an explicit default port (`:443`, `:80`), which Twilio may or may
/// not keep when it signs (its helper libraries try both).
pub fn signature_matches(
    auth_token: &Secret<String>,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let token = auth_token.expose().as_bytes();
    let mut urls = vec![url.to_string()];
    if let Some(bare) = without_default_port(url) {
        urls.push(bare);
    }
    let mut matched = subtle::Choice::from(0);
    for candidate in &urls {
        let expected = signature(token, candidate, params);
        matched |= expected.as_bytes().ct_eq(header.trim().as_bytes());
    }
    matched.into()
}

fn without_default_port(url: &str) -> Option<String> {
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let host_end = rest.find('/').unwrap_or(rest.len());
            let host = rest[..host_end].strip_suffix(port)?;
            return Some(format!("{scheme}{host}{}", &rest[host_end..]));
        }
    }
    None
}

/// The account part of a `[sms]` or `[phone]` Twilio section, validated.
#[derive(Debug, Clone)]
pub struct TwilioAccount {
    /// `AC...` (Twilio) or the gateway's project id; goes into the path.
    pub account_sid: String,
    /// The auth token: HTTP Basic password, and key of callback signatures.
    pub auth_token: Secret<String>,
    /// Scheme, host and optional path prefix, no trailing `/`.
    pub api_base: String,
    /// Overall time for one delivery, retries included.
    pub timeout: Duration,
}

/// The raw keys, as both sections spell them.
pub(crate) struct AccountKeys<'a> {
    pub account_sid: &'a str,
    pub auth_token: Option<&'a Secret<String>>,
    pub auth_token_file: Option<&'a str>,
    pub api_base: &'a str,
    pub timeout_secs: u64,
}

impl AccountKeys<'_> {
    /// Problems as (key, message), keys relative to the section.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut add =
            |key: &str, message: &str| problems.push((key.to_string(), message.to_string()));
        let sid = self.account_sid;
        if sid.is_empty() {
            add(
                "account_sid",
                "missing: the Account SID (AC...) from the Twilio console",
            );
        } else if !sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            add("account_sid", "must contain only letters, digits and '-'");
        } else if self.api_base.trim_end_matches('/') == DEFAULT_API_BASE
            && !(sid.len() == 34
                && sid.starts_with("AC")
                && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            add(
                "account_sid",
                "a Twilio Account SID is \"AC\" and 32 hex digits",
            );
        }
        match (self.auth_token, self.auth_token_file) {
            (Some(_), Some(_)) => add(
                "auth_token",
                "set either auth_token or auth_token_file, not both",
            ),
            (None, None) => add("auth_token", "missing: set auth_token or auth_token_file"),
            (Some(token), None) if token.expose().is_empty() => {
                add("auth_token", "must not be empty")
            }
            (None, Some(path)) => match crate::config::read_secret_file(path) {
                Ok(token) if token.is_empty() => add("auth_token_file", "the file is empty"),
                Ok(_) => {}
                Err(message) => add("auth_token_file", &message),
            },
            _ => {}
        }
        if let Some(message) = url_problem(self.api_base) {
            add("api_base", &message);
        }
        if !(1..=60).contains(&self.timeout_secs) {
            add("timeout_secs", "must be between 1 and 60 seconds");
        }
        problems
    }

    /// The validated account (run [`AccountKeys::problems`] first).
    pub fn account(&self) -> Result<TwilioAccount, String> {
        let auth_token = match (self.auth_token, self.auth_token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(path)) => Secret::new(
                crate::config::read_secret_file(path)
                    .map_err(|e| format!("auth_token_file: {e}"))?,
            ),
            (None, None) => return Err("auth_token: missing".into()),
        };
        Ok(TwilioAccount {
            account_sid: self.account_sid.to_string(),
            auth_token,
            api_base: self.api_base.trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(self.timeout_secs),
        })
    }
}

/// Why a URL key is unusable, if it is: it must be `https://host...`, or
/// `http://` (a gateway on the local network, a test emulator).
pub(crate) fn url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        None => Some(format!("{url:?} must start with https:// (or http://)")),
        Some(rest) if rest.split('/').next().is_none_or(str::is_empty) => {
            Some(format!("{url:?} has no host"))
        }
        Some(rest) if rest.contains(char::is_whitespace) => {
            Some(format!("{url:?} contains spaces"))
        }
        Some(_) => None,
    }
}

/// Creates resources in one Twilio account.
pub(crate) struct TwilioClient {
    http: reqwest::Client,
    account: TwilioAccount,
    /// Metric label: `twilio_sms` or `twilio_call`.
    provider: &'static str,
}

impl TwilioClient {
    /// A client for `account`; `provider` labels its metrics.
    pub fn new(account: TwilioAccount, provider: &'static str) -> Result<TwilioClient, String> {
        Ok(TwilioClient {
            http: delivery::client(account.timeout)?,
            account,
            provider,
        })
    }

    /// POSTs `form` to `{resource}.json` (`Messages`, `Calls`) and returns
    /// the new resource's sid. Counts every outcome in
    /// `rampart_provider_requests_total{provider, outcome}`.
    pub async fn create(
        &self,
        resource: &str,
        form: &[(&str, &str)],
    ) -> Result<String, ProviderError> {
        let url = format!(
            "{}/{API_VERSION}/Accounts/{}/{resource}.json",
            self.account.api_base, self.account.account_sid
        );
        let result = self.create_at(&url, form).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.reason(),
        };
        metrics::counter!("rampart_provider_requests_total", "provider" => self.provider, "outcome" => outcome)
            .increment(1);
        result
    }

    async fn create_at(&self, url: &str, form: &[(&str, &str)]) -> Result<String, ProviderError> {
        let response = delivery::send(self.provider, self.account.timeout, || {
            self.http
                .post(url)
                .basic_auth(
                    &self.account.account_sid,
                    Some(self.account.auth_token.expose()),
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .form(form)
        })
        .await?;
        let status = response.status();
        let body = delivery::read_body(response).await?;
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            return Err(ProviderError::Status {
                status: status.as_u16(),
                message: error_message(json.as_ref()),
            });
        }
        json.as_ref()
            .and_then(|j| j.get("sid"))
            .and_then(|s| s.as_str())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::Protocol(format!("HTTP {status} without a sid")))
    }
}

/// Twilio's error as "code: message", trimmed. Twilio's error texts name the
/// parameter at fault, never the message body.
fn error_message(json: Option<&serde_json::Value>) -> String {
    let Some(json) = json else {
        return "no Twilio error body".into();
    };
    let code = json.get("code").and_then(|c| c.as_u64());
    let message = json
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("no message");
    let mut text = match code {
        Some(code) => format!("Twilio error {code}: {message}"),
        None => message.to_string(),
    };
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// The vector of twilio-python's tests/unit/test_request_validator.py
    /// (twilio/twilio-python on GitHub): token "12345", the documentation's
    /// example URL and Gather parameters.
    #[test]
    fn signature_matches_twilio_python_vector() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]);
        assert_eq!(
            signature(b"12345", url, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        let token = Secret::new("12345".to_string());
        assert!(signature_matches(
            &token,
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // The same test file: with ":443" Twilio may sign without the port.
        let with_port = url.replace(".com", ".com:443");
        assert!(signature_matches(
            &token,
            &with_port,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // Anything changed fails: token, URL, a value, an added parameter.
        let wrong = Secret::new("12346".to_string());
        assert!(!signature_matches(
            &wrong,
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!signature_matches(
            &token,
            "https://mycompany.com/myapp.php",
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let mut changed = params.clone();
        changed[1].1 = "1235".into();
        assert!(!signature_matches(
            &token,
            url,
            &changed,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        changed = params.clone();
        changed.push(("Extra".into(), String::new()));
        assert!(!signature_matches(
            &token,
            url,
            &changed,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!signature_matches(&token, url, &params, ""));
    }

    /// Same source, `test_compute_signature_duplicate_multi_dict`: a repeated
    /// name is signed once per value, values sorted.
    #[test]
    fn repeated_parameters_are_sorted_by_value() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            signature(b"12345", url, &params),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn e164() {
        assert!(is_e164("+15005550006"));
        assert!(is_e164("+447700900123"));
        for bad in [
            "15005550006",
            "+0123",
            "+1",
            "+1 500 555",
            "+1234567890123456",
            "",
            "+",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn account_keys_are_checked() {
        let token = Secret::new("t".to_string());
        let keys = AccountKeys {
            account_sid: "AC0123456789abcdef0123456789abcdef",
            auth_token: Some(&token),
            auth_token_file: None,
            api_base: DEFAULT_API_BASE,
            timeout_secs: 10,
        };
        assert!(keys.problems().is_empty());
        let bad = AccountKeys {
            account_sid: "AC12/../x",
            auth_token: None,
            auth_token_file: None,
            api_base: "ftp://x",
            timeout_secs: 0,
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["account_sid", "auth_token", "api_base", "timeout_secs"]
        );
        // A compatible gateway may use other account ids.
        let gateway = AccountKeys {
            account_sid: "0b8f6c1e-7a2d-4c5e-9f00-123456789abc",
            api_base: "http://127.0.0.1:8080",
            ..keys_with(&token)
        };
        assert!(gateway.problems().is_empty());
    }

    fn keys_with(token: &Secret<String>) -> AccountKeys<'_> {
        AccountKeys {
            account_sid: "AC0123456789abcdef0123456789abcdef",
            auth_token: Some(token),
            auth_token_file: None,
            api_base: DEFAULT_API_BASE,
            timeout_secs: 10,
        }
    }

    #[test]
    fn error_message_is_code_and_text() {
        let json = serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401});
        assert_eq!(
            error_message(Some(&json)),
            "Twilio error 20003: Authenticate"
        );
        assert_eq!(error_message(None), "no Twilio error body");
    }
}
