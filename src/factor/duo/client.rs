//! The signed HTTPS transport to the Duo API: one call = one signed request,
//! the `{"stat": ...}` envelope unwrapped, errors sorted into what they mean
//! for a login (service unavailable vs. request refused), HTTP 429 retried
//! with back-off while the login's time allows.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::Value;

use super::config::{DuoConfig, load_ca};
use super::sign;
use crate::factor::oob::ProviderError;
use crate::secret::Secret;

/// Why a Duo call failed.
#[derive(Debug, thiserror::Error)]
pub enum DuoError {
    /// The configuration cannot be used (CA file, client set-up).
    #[error("Duo configuration: {0}")]
    Config(String),
    /// Nothing usable came back: timeout, connection, TLS, unreadable body.
    #[error(transparent)]
    Transport(#[from] ProviderError),
    /// Duo answered with an error envelope (`stat` = `FAIL`).
    #[error("Duo answered HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// Duo's numeric error code (e.g. 40103 "Invalid signature").
        code: Option<u64>,
        /// Duo's `message` and `message_detail`, trimmed. Duo's error texts
        /// name parameters, never their values, so no secret is in here.
        message: String,
    },
}

impl DuoError {
    /// Short label for `rampart_provider_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            DuoError::Config(_) => "config",
            DuoError::Transport(error) => error.reason(),
            DuoError::Api { status: 401, .. } => "credentials",
            DuoError::Api { status: 429, .. } => "rate_limited",
            DuoError::Api { status, .. } if *status >= 500 => "server",
            DuoError::Api { .. } => "rejected",
        }
    }

    /// Whether this means "Duo is not usable right now" (the fail mode
    /// applies) rather than "Duo refused this particular request". A 4xx
    /// other than 401 (our keys or clock) and 429 (rate limit) depends on
    /// what the user sent — e.g. a user name Duo calls invalid — and must
    /// not open the door under `failmode = "safe"`.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, DuoError::Api { status, .. } if (400..500).contains(status) && *status != 401 && *status != 429)
    }
}

/// First wait after a 429, doubled each time up to [`BACKOFF_MAX`]
/// (duo_client: 1 s, factor 2, capped at 32 s).
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(32);
/// Largest answer read: Duo's are a few hundred bytes (preauth with many
/// devices a few KiB).
const MAX_BODY: usize = 64 * 1024;

/// Signs and sends Auth API requests.
pub(crate) struct Transport {
    http: reqwest::Client,
    base: String,
    host: String,
    ikey: String,
    skey: Secret<String>,
    /// Per-request time limit (`timeout_secs`).
    pub(crate) timeout: Duration,
}

impl Transport {
    pub(crate) fn new(config: &DuoConfig) -> Result<Transport, DuoError> {
        let skey = config
            .skey()
            .map_err(|(key, message)| DuoError::Config(format!("{key}: {message}")))?;
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .https_only(true)
            // Duo does not redirect; following one would resend the
            // signed Authorization header somewhere else.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_file {
            let certs = load_ca(std::path::Path::new(path)).map_err(DuoError::Config)?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| DuoError::Config(format!("HTTP client: {e}")))?;
        Ok(Transport {
            http,
            base: config.base_url(),
            host: config.api_host.trim().to_ascii_lowercase(),
            ikey: config.ikey.clone(),
            skey,
            timeout,
        })
    }

    /// Sends one signed request and returns the envelope's `response`.
    /// A 429 is retried after 1, 2, 4 ... s while the wait plus one more
    /// try still ends before `deadline`. Each try may take `timeout`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Value, DuoError> {
        let mut backoff = BACKOFF_START;
        loop {
            match self.send(method.clone(), path, params, timeout, true).await {
                Err(DuoError::Api { status: 429, .. })
                    if Instant::now() + backoff + Duration::from_millis(100) < deadline =>
                {
                    metrics::counter!("rampart_provider_errors_total", "provider" => "duo", "reason" => "rate_limited")
                        .increment(1);
                    tracing::warn!(
                        path,
                        wait_ms = backoff.as_millis() as u64,
                        "Duo rate limit (HTTP 429): retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                other => return other,
            }
        }
    }

    /// One request, signed unless `signed` is false (`/auth/v2/ping`).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        timeout: Duration,
        signed: bool,
    ) -> Result<Value, DuoError> {
        let canon_params = sign::canon_params(params);
        let url = format!("{}{path}", self.base);
        let mut request = if method == Method::GET || method == Method::DELETE {
            let url = if canon_params.is_empty() {
                url
            } else {
                format!("{url}?{canon_params}")
            };
            self.http.request(method.clone(), url)
        } else {
            // The canonical string is itself valid form encoding: send
            // exactly what was signed.
            self.http
                .request(method.clone(), url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(canon_params.clone())
        };
        if signed {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let date = sign::rfc2822_date(now);
            let canon = sign::canonicalize(&date, method.as_str(), &self.host, path, &canon_params);
            let authorization =
                sign::authorization(&self.ikey, self.skey.expose().as_bytes(), &canon);
            let mut value = reqwest::header::HeaderValue::from_str(&authorization)
                .map_err(|_| DuoError::Config("ikey is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request
                .header(reqwest::header::DATE, date)
                .header(reqwest::header::AUTHORIZATION, value);
        }
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(ProviderError::from_reqwest)?;
        let status = response.status().as_u16();
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(ProviderError::from_reqwest)?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ProviderError::Protocol("Duo answer larger than 64 KiB".into()).into());
            }
            body.extend_from_slice(&chunk);
        }
        parse_envelope(status, &body)
    }
}

/// Unwraps `{"stat":"OK","response":...}`; turns `{"stat":"FAIL",...}` and
/// any non-200 into [`DuoError::Api`] (duo_client's `parse_json_response`).
pub(crate) fn parse_envelope(status: u16, body: &[u8]) -> Result<Value, DuoError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status != 200 {
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut message = field("message").unwrap_or_else(|| "no Duo error envelope".into());
        if let Some(detail) = field("message_detail") {
            message.push_str(&format!(" ({detail})"));
        }
        return Err(DuoError::Api {
            status,
            code: json
                .as_ref()
                .and_then(|j| j.get("code"))
                .and_then(Value::as_u64),
            // Cut by characters: a byte cut could split one and panic.
            message: message.chars().take(200).collect(),
        });
    }
    let Some(mut json) = json else {
        return Err(ProviderError::Protocol(
            "Duo answered 200 with a body that is not JSON".into(),
        )
        .into());
    };
    match json.get("stat").and_then(Value::as_str) {
        Some("OK") => json.get_mut("response").map(Value::take).ok_or_else(|| {
            ProviderError::Protocol("Duo answered OK without a response".into()).into()
        }),
        Some("FAIL") => Err(DuoError::Api {
            status,
            code: json.get("code").and_then(Value::as_u64),
            message: json
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("FAIL")
                .chars()
                .take(200)
                .collect(),
        }),
        _ => Err(ProviderError::Protocol("Duo answer has no \"stat\"".into()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_unwrapped_and_errors_sorted() {
        let ok = parse_envelope(200, br#"{"stat":"OK","response":{"time":1}}"#).unwrap();
        assert_eq!(ok["time"], 1);

        let unauthorized = parse_envelope(
            401,
            br#"{"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}"#,
        )
        .unwrap_err();
        assert_eq!(unauthorized.reason(), "credentials");
        assert!(unauthorized.is_unavailable());
        assert!(unauthorized.to_string().contains("40103"));

        let invalid = parse_envelope(
            400,
            br#"{"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"}"#,
        )
        .unwrap_err();
        assert_eq!(invalid.reason(), "rejected");
        assert!(!invalid.is_unavailable());
        assert!(invalid.to_string().contains("(username)"));

        let long = format!(
            r#"{{"stat":"FAIL","code":40002,"message":"a{}"}}"#,
            "é".repeat(250)
        );
        let long = parse_envelope(400, long.as_bytes()).unwrap_err();
        assert!(
            matches!(long, DuoError::Api { ref message, .. } if message.chars().count() == 200)
        );

        let server = parse_envelope(503, b"<html>busy</html>").unwrap_err();
        assert_eq!(server.reason(), "server");
        assert!(server.is_unavailable());

        assert_eq!(
            parse_envelope(429, b"").unwrap_err().reason(),
            "rate_limited"
        );
        assert_eq!(
            parse_envelope(200, b"not json").unwrap_err().reason(),
            "protocol"
        );
        assert_eq!(
            parse_envelope(200, br#"{"stat":"OK"}"#)
                .unwrap_err()
                .reason(),
            "protocol"
        );
        assert_eq!(
            parse_envelope(200, br#"{"x":1}"#).unwrap_err().reason(),
            "protocol"
        );
    }
}
