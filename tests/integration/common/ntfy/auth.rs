//! Errors as server/errors.go, and auth as `maybeAuthenticate` /
//! `authorizeTopic*` in server/server.go.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Perm, Shared};

/// ntfy's `errHTTP`.
pub struct NtfyError {
    http: u16,
    code: u32,
    message: String,
}

pub(super) fn error(http: u16, code: u32, message: &str) -> NtfyError {
    NtfyError {
        http,
        code,
        message: message.to_string(),
    }
}

impl IntoResponse for NtfyError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.code, "http": self.http, "error": self.message});
        (
            StatusCode::from_u16(self.http).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response()
    }
}

pub(super) fn unauthorized() -> NtfyError {
    error(401, 40101, "unauthorized")
}
pub(super) fn forbidden() -> NtfyError {
    error(403, 40301, "forbidden")
}

pub(super) enum Caller {
    Anonymous,
    Token(String),
}

pub(super) fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, NtfyError> {
    let Some(auth) = &shared.options.auth else {
        return Ok(Caller::Anonymous);
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_string();
    let lower = value.to_ascii_lowercase();
    if !(lower.starts_with("basic ") || lower.starts_with("bearer ")) {
        return Ok(Caller::Anonymous);
    }
    let token = if let Some(rest) = value.strip_prefix("Bearer") {
        rest.trim().to_string()
    } else {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value[6..].trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(unauthorized)?;
        match decoded.split_once(':') {
            // An empty user name means "the password is a token".
            Some(("", password)) => password.to_string(),
            _ => return Err(unauthorized()),
        }
    };
    if auth.tokens.iter().any(|(t, _, _)| *t == token) {
        Ok(Caller::Token(token))
    } else {
        Err(unauthorized())
    }
}

pub(super) fn authorize(
    shared: &Shared,
    caller: &Caller,
    topic: &str,
    write: bool,
) -> Result<(), NtfyError> {
    let Some(auth) = &shared.options.auth else {
        return Ok(());
    };
    let allows = |pattern: &str, perm: Perm| {
        (pattern == "*" || pattern == topic) && if write { perm.write() } else { perm.read() }
    };
    let granted = match caller {
        Caller::Anonymous => auth.everyone.iter().any(|(t, p)| allows(t, *p)),
        Caller::Token(token) => {
            auth.tokens
                .iter()
                .any(|(t, topic, p)| t == token && allows(topic, *p))
                || auth.everyone.iter().any(|(t, p)| allows(t, *p))
        }
    };
    if granted { Ok(()) } else { Err(forbidden()) }
}
