//! `[sms] provider = "template"`: any HTTP SMS gateway, described by a URL, a
//! method and a body template with `{to}` and `{message}` placeholders.
//!
//! Each value is escaped for where it lands: percent-encoded in the URL
//! (RFC 3986 §2.1), form-encoded in a `form` body (WHATWG URL Standard,
//! application/x-www-form-urlencoded serializer), a JSON string's content in a
//! `json` body (RFC 8259 §7) — so a message can never add a parameter or break
//! out of its string. The auth header's value is a secret (`auth_value` or
//! `auth_value_file`); gateway answers are not logged, since some echo the
//! message back.
//!
//! ```toml
//! [sms]
//! provider = "template"
//! url = "https://sms.example.com/api/send"
//! content_type = "json"
//! body = '{"recipient": "{to}", "text": "{message}"}'
//! auth_value_file = "/run/credentials/rampart.service/sms-gateway"  # "Bearer ..."
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::factor::delivery;
use crate::factor::oob::{ProviderError, SmsSender};
use crate::factor::twilio::url_problem;
use crate::secret::Secret;

/// HTTP method of the gateway request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// POST with the body (the default).
    #[default]
    Post,
    /// PUT with the body.
    Put,
    /// GET: no body, placeholders in the URL.
    Get,
}

/// How the body is encoded, which decides how values are escaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    /// `application/x-www-form-urlencoded` (the default).
    #[default]
    Form,
    /// `application/json`.
    Json,
}

/// `[sms]` with `provider = "template"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSmsConfig {
    /// Gateway URL; may hold `{to}` and `{message}` (percent-encoded there).
    #[serde(default)]
    pub url: String,
    /// `POST` (default), `PUT` or `GET`.
    #[serde(default)]
    pub method: Method,
    /// `form` (default) or `json`.
    #[serde(default)]
    pub content_type: ContentType,
    /// Body template with `{to}` and `{message}`. Empty for GET.
    #[serde(default)]
    pub body: String,
    /// Extra request headers (not secret: they may be shown in errors).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Name of the header carrying the credential. Default `Authorization`.
    #[serde(default)]
    pub auth_header: Option<String>,
    /// The credential header's value, inline (e.g. `Bearer ...`).
    #[serde(default, deserialize_with = "crate::secret::deserialize_optional")]
    pub auth_value: Option<Secret<String>>,
    /// The credential header's value read from a file (trailing newline removed).
    #[serde(default)]
    pub auth_value_file: Option<String>,
    /// Seconds for one message, retries included. Default 10.
    #[serde(default = "crate::factor::twilio::default_timeout_secs")]
    pub timeout_secs: u64,
}

const PLACEHOLDERS: [&str; 2] = ["{to}", "{message}"];

impl TemplateSmsConfig {
    /// Problems as (key, message), keys relative to `[sms]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut add = |key: &str, message: String| problems.push((key.to_string(), message));
        if self.url.is_empty() {
            add("url", "missing: the gateway's URL".into());
        } else if let Some(message) = url_problem(&self.url) {
            add("url", message);
        }
        for (key, text) in [("url", &self.url), ("body", &self.body)] {
            if let Some(unknown) = unknown_placeholder(text) {
                add(
                    key,
                    format!(
                        "unknown placeholder {unknown}: only {{to}} and {{message}} are filled in"
                    ),
                );
            }
        }
        for placeholder in PLACEHOLDERS {
            if !self.url.contains(placeholder) && !self.body.contains(placeholder) {
                add(
                    "body",
                    format!("{placeholder} appears neither in body nor in url"),
                );
            }
        }
        if self.method == Method::Get && !self.body.is_empty() {
            add(
                "body",
                "GET sends no body: put {to} and {message} in url, or use method = \"POST\"".into(),
            );
        }
        if self.content_type == ContentType::Json && !self.body.is_empty() {
            // Fill in values that need every kind of escaping, then parse.
            let sample = render_body(
                &self.body,
                ContentType::Json,
                "+15005550006",
                "a \"q\" \\ <&>\n\u{1}é",
            );
            if let Err(error) = serde_json::from_str::<serde_json::Value>(&sample) {
                add(
                    "body",
                    format!(
                        "not valid JSON once filled in ({error}); placeholders go inside quotes: \"{{message}}\""
                    ),
                );
            }
        }
        for (name, value) in &self.headers {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                add("headers", format!("{name:?} is not a valid header name"));
            } else if HeaderValue::from_str(value).is_err() {
                add(
                    "headers",
                    format!("the value of {name:?} is not a valid header value"),
                );
            }
        }
        match (&self.auth_value, &self.auth_value_file) {
            (Some(_), Some(_)) => add(
                "auth_value",
                "set either auth_value or auth_value_file, not both".into(),
            ),
            (None, None) if self.auth_header.is_some() => add(
                "auth_header",
                "set auth_value or auth_value_file too".into(),
            ),
            (None, Some(path)) => {
                if let Err(message) = crate::config::read_secret_file(path) {
                    add("auth_value_file", message);
                }
            }
            _ => {}
        }
        if let Some(name) = &self.auth_header
            && HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            add(
                "auth_header",
                format!("{name:?} is not a valid header name"),
            );
        }
        if !(1..=60).contains(&self.timeout_secs) {
            add("timeout_secs", "must be between 1 and 60 seconds".into());
        }
        problems
    }
}

/// The first `{word}` that is not a known placeholder.
fn unknown_placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        if let Some(end) = after.find('}') {
            let word = &after[..end];
            if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                let candidate = &rest[start..start + end + 2];
                if !PLACEHOLDERS.contains(&candidate) {
                    return Some(candidate);
                }
            }
        }
        rest = after;
    }
    None
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// application/x-www-form-urlencoded byte serializer: space becomes `+`.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || b"*-._".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A JSON string's content, without the quotes the template supplies.
fn json_escape(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Replaces `{to}` and `{message}` in one pass, so a value that itself
/// contains `{message}` is never expanded again.
fn fill(template: &str, to: &str, message: &str, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + message.len());
    let mut rest = template;
    loop {
        let next = PLACEHOLDERS
            .iter()
            .filter_map(|p| rest.find(p).map(|at| (at, *p)))
            .min();
        let Some((at, placeholder)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(&escape(if placeholder == "{to}" { to } else { message }));
        rest = &rest[at + placeholder.len()..];
    }
}

fn render_body(template: &str, content_type: ContentType, to: &str, message: &str) -> String {
    match content_type {
        ContentType::Form => fill(template, to, message, form_encode),
        ContentType::Json => fill(template, to, message, json_escape),
    }
}

/// Sends text messages through a templated HTTP gateway.
pub struct TemplateSms {
    http: reqwest::Client,
    url: String,
    method: Method,
    content_type: ContentType,
    body: String,
    headers: HeaderMap,
    timeout: Duration,
}

impl TemplateSms {
    /// A sender for a validated configuration.
    pub fn new(config: &TemplateSmsConfig) -> Result<TemplateSms, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("headers: {e}"))?,
                HeaderValue::from_str(value).map_err(|e| format!("headers: {e}"))?,
            );
        }
        let auth = match (&config.auth_value, &config.auth_value_file) {
            (Some(value), _) => Some(value.clone()),
            (None, Some(path)) => Some(Secret::new(
                crate::config::read_secret_file(path)
                    .map_err(|e| format!("auth_value_file: {e}"))?,
            )),
            (None, None) => None,
        };
        if let Some(auth) = auth {
            let name = config.auth_header.as_deref().unwrap_or("Authorization");
            let mut value = HeaderValue::from_str(auth.expose())
                .map_err(|_| "auth_value: not a valid header value".to_string())?;
            // Keeps it out of any debug output of the request (hyper honours this).
            value.set_sensitive(true);
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("auth_header: {e}"))?,
                value,
            );
        }
        let timeout = Duration::from_secs(config.timeout_secs);
        Ok(TemplateSms {
            http: delivery::client(timeout)?,
            url: config.url.clone(),
            method: config.method,
            content_type: config.content_type,
            body: config.body.clone(),
            headers,
            timeout,
        })
    }

    /// The URL and body for one message.
    fn render(&self, to: &str, message: &str) -> (String, Option<String>) {
        let url = fill(&self.url, to, message, percent_encode);
        let body = (self.method != Method::Get)
            .then(|| render_body(&self.body, self.content_type, to, message));
        (url, body)
    }
}

#[async_trait]
impl SmsSender for TemplateSms {
    async fn send(&self, number: &str, text: &Secret<String>) -> Result<(), ProviderError> {
        let (url, body) = self.render(number, text.expose());
        // The URL and body carry the code: never put them in an error or log.
        let body = body.map(Secret::new);
        let content_type = match self.content_type {
            ContentType::Form => "application/x-www-form-urlencoded",
            ContentType::Json => "application/json",
        };
        let result = delivery::send("sms_template", self.timeout, || {
            let request = match self.method {
                Method::Post => self.http.post(&url),
                Method::Put => self.http.put(&url),
                Method::Get => self.http.get(&url),
            };
            let request = request.headers(self.headers.clone());
            match &body {
                Some(body) => request
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body.expose().clone()),
                None => request,
            }
        })
        .await
        .and_then(|response| {
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(ProviderError::Status {
                    status: status.as_u16(),
                    message: format!("SMS gateway refused the message ({status})"),
                })
            }
        });
        let outcome = match &result {
            Ok(()) => "ok",
            Err(error) => error.reason(),
        };
        metrics::counter!("rampart_provider_requests_total", "provider" => "sms_template", "outcome" => outcome)
            .increment(1);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> TemplateSmsConfig {
        serde_json::from_value(value).unwrap()
    }

    fn keys(config: &TemplateSmsConfig) -> Vec<String> {
        config.problems().into_iter().map(|(k, _)| k).collect()
    }

    const NASTY: &str = "Code 123456 & more=1 \"q\" {to} \\ é+%\n";

    #[test]
    fn form_values_cannot_add_parameters() {
        let body = render_body(
            "to={to}&text={message}",
            ContentType::Form,
            "+15005550006",
            NASTY,
        );
        assert_eq!(
            body,
            "to=%2B15005550006&text=Code+123456+%26+more%3D1+%22q%22+%7Bto%7D+%5C+%C3%A9%2B%25%0A"
        );
        // What a form parser reads back is exactly the two values.
        let parsed: Vec<(String, String)> = serde_urlencoded_like(&body);
        assert_eq!(
            parsed,
            [
                ("to".to_string(), "+15005550006".to_string()),
                ("text".to_string(), NASTY.to_string())
            ]
        );
    }

    /// A minimal form decoder, independent of the encoder under test.
    fn serde_urlencoded_like(body: &str) -> Vec<(String, String)> {
        let decode = |s: &str| {
            let bytes = s.replace('+', " ").into_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        };
        body.split('&')
            .map(|pair| {
                let (n, v) = pair.split_once('=').unwrap();
                (decode(n), decode(v))
            })
            .collect()
    }

    #[test]
    fn json_values_stay_inside_their_string() {
        let body = render_body(
            r#"{"to": "{to}", "text": "{message}"}"#,
            ContentType::Json,
            "+15005550006",
            NASTY,
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["to"], "+15005550006");
        assert_eq!(parsed["text"], NASTY);
        assert_eq!(parsed.as_object().unwrap().len(), 2);
    }

    #[test]
    fn url_values_are_percent_encoded() {
        let sms = TemplateSms::new(&config(serde_json::json!({
            "url": "https://gw.example.com/send?to={to}&msg={message}",
            "method": "GET",
        })))
        .unwrap();
        let (url, body) = sms.render("+15005550006", "a b&c=d/é");
        assert_eq!(
            url,
            "https://gw.example.com/send?to=%2B15005550006&msg=a%20b%26c%3Dd%2F%C3%A9"
        );
        assert!(body.is_none());
    }

    #[test]
    fn problems_name_the_key() {
        let ok = config(serde_json::json!({
            "url": "https://gw.example.com/send",
            "content_type": "json",
            "body": r#"{"to": "{to}", "text": "{message}"}"#,
            "headers": {"X-Source": "rampart"},
            "auth_value": "Bearer x",
        }));
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());

        // {message} missing, JSON placeholder outside quotes, unknown placeholder.
        let bad = config(serde_json::json!({
            "url": "gw.example.com",
            "content_type": "json",
            "body": r#"{"to": {to}, "who": "{user}"}"#,
            "headers": {"Bad Name": "x"},
            "auth_header": "X-Key",
            "timeout_secs": 0,
        }));
        let found = keys(&bad);
        for key in ["url", "body", "headers", "auth_header", "timeout_secs"] {
            assert!(found.contains(&key.to_string()), "{key} in {found:?}");
        }
        let messages: Vec<String> = bad.problems().into_iter().map(|(_, m)| m).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("{message} appears neither"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("unknown placeholder {user}"))
        );
        assert!(messages.iter().any(|m| m.contains("not valid JSON")));

        let get_with_body = config(serde_json::json!({
            "url": "https://gw.example.com/send?to={to}&m={message}",
            "method": "GET",
            "body": "x",
        }));
        assert_eq!(keys(&get_with_body), ["body"]);
    }

    #[test]
    fn a_value_is_never_expanded_twice() {
        assert_eq!(
            fill("{to}|{message}", "{message}", "{to}", |s| s.to_string()),
            "{message}|{to}"
        );
    }
}
