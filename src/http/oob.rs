//! The answer endpoint for out-of-band approvals:
//!
//! - `GET /oob/v1/answer?t=TOKEN` shows a confirmation page (who, where,
//!   until when) with the answer buttons as POST forms. A GET never changes
//!   anything: mail and chat link scanners and previewers fetch URLs on their
//!   own, and must not approve a login by doing so.
//! - `POST /oob/v1/answer` with the token in the form (`t=`) or in the query
//!   (ntfy's `http` action buttons POST to the URL as published) checks the
//!   token and resolves the parked login ([`crate::factor::push::answer`]).
//!   200 answered; 410 expired or already answered; 400 not a token; 403
//!   forged or for another user.
//!
//! Every response is `no-store`, cannot be framed, sends no referrer (the
//! URL carries a token) and allows no scripts; everything shown is
//! HTML-escaped.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::HttpState;
use crate::factor::oob::token::TokenError;
use crate::factor::oob::{Answer, OutOfBand};
use crate::factor::push::answer::{self, Via};

/// The path, relative to `[out_of_band] public_url`.
pub const ANSWER_PATH: &str = "/oob/v1/answer";

pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route(ANSWER_PATH, get(show).post(submit))
        // A form with one token is a few hundred bytes.
        .layer(DefaultBodyLimit::max(4096))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn show(State(state): State<HttpState>, RawQuery(query): RawQuery) -> Response {
    let Some(oob) = state.oob.current() else {
        return not_configured();
    };
    let token = query.as_deref().and_then(|q| form_value(q, "t"));
    let Some(token) = token else {
        return refusal(TokenError::Malformed);
    };
    match oob.tokens.verify(&token, &oob.pending, now()) {
        Ok((txn, asked)) => confirmation(&oob, &token, &txn, asked),
        Err(error) => refusal(error),
    }
}

async fn submit(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(oob) = state.oob.current() else {
        return not_configured();
    };
    let form = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| form_value(b, "t"));
    let token = form
        .or_else(|| query.as_deref().and_then(|q| form_value(q, "t")))
        .unwrap_or_default();
    match answer::apply(&oob, &token, now(), Via::Http) {
        Ok(Answer::Approved) => page(
            StatusCode::OK,
            "Approved",
            "<p>Sign-in approved. You can close this page.</p>",
        ),
        Ok(Answer::Fraud) => page(
            StatusCode::OK,
            "Reported",
            "<p>The sign-in was denied and reported. Your IT team has been alerted; consider changing your password.</p>",
        ),
        Ok(_) => page(
            StatusCode::OK,
            "Denied",
            "<p>Sign-in denied. You can close this page.</p>",
        ),
        Err(error) => refusal(error),
    }
}

/// The page for a valid token: what is being approved, and the buttons. The
/// link's own answer comes first; Deny and Report fraud are always offered
/// (a link may only ever be used to answer *more* safely, never to approve
/// when it was a Deny link).
fn confirmation(oob: &OutOfBand, token: &str, txn: &str, asked: Answer) -> Response {
    let Some((user, join)) = oob.pending.describe(txn) else {
        return refusal(TokenError::Unknown);
    };
    let expires_at: u64 = token
        .split('.')
        .nth(3)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let mut buttons = vec![(asked, token.to_string())];
    for safer in [Answer::Denied, Answer::Fraud] {
        if safer != asked {
            buttons.push((safer, oob.tokens.sign(&user, txn, safer, expires_at)));
        }
    }
    let mut html = format!(
        "<p>Sign-in as <b>{}</b> to <b>{}</b>",
        escape(&user),
        escape(&join.client)
    );
    if let Some(station) = join.station.as_deref().filter(|s| !s.is_empty()) {
        html.push_str(&format!(" from <b>{}</b>", escape(station)));
    }
    html.push_str(&format!(
        ".</p><p>This request expires at {} UTC. Approve only if you are signing in right now.</p>",
        clock(expires_at)
    ));
    for (answer, token) in buttons {
        let label = match answer {
            Answer::Approved => "Approve",
            Answer::Fraud => "Deny and report fraud",
            _ => "Deny",
        };
        // "answer" is relative, so a reverse proxy's path prefix is kept.
        html.push_str(&format!(
            "<form method=\"post\" action=\"answer\"><input type=\"hidden\" name=\"t\" value=\"{}\"><button type=\"submit\">{label}</button></form>",
            escape(&token)
        ));
    }
    page(StatusCode::OK, "Sign-in request", &html)
}

fn refusal(error: TokenError) -> Response {
    let (status, text) = match error {
        TokenError::Expired | TokenError::Unknown => (
            StatusCode::GONE,
            "This request expired or was already answered.",
        ),
        TokenError::Malformed => (StatusCode::BAD_REQUEST, "This link is not valid."),
        TokenError::BadSignature => (StatusCode::FORBIDDEN, "This link is not valid."),
    };
    page(status, "Sign-in request", &format!("<p>{text}</p>"))
}

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "<p>Out-of-band approval is not configured.</p>",
    )
}

/// A small HTML page with the security headers.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title><style>body{{font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em}}button{{font-size:1.1em;margin:.3em 0;padding:.5em 1em;width:100%}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `HH:MM:SS` of a unix time.
fn clock(unix: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        (unix / 3600) % 24,
        (unix / 60) % 60,
        unix % 60
    )
}

/// The first value of `name` in an `application/x-www-form-urlencoded`
/// string (a form body or a query), decoded.
pub fn form_value(encoded: &str, name: &str) -> Option<String> {
    encoded.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key)? == name).then(|| percent_decode(value))?
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn reads_form_values() {
        assert_eq!(
            form_value("a=1&t=v1.ab.a.9.cd", "t").as_deref(),
            Some("v1.ab.a.9.cd")
        );
        assert_eq!(form_value("t=a%2Eb+c", "t").as_deref(), Some("a.b c"));
        assert_eq!(form_value("x=1", "t"), None);
        assert_eq!(form_value("t=%zz", "t"), None);
        assert_eq!(form_value("t", "t").as_deref(), Some(""));
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        assert_eq!(clock(3600 * 14 + 60 * 3 + 7), "14:03:07");
    }
}
