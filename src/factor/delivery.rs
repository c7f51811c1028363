//! One HTTP delivery request (an SMS, a call) with only the retries that
//! cannot deliver twice.
//!
//! A text or a call reaches a person: sending it twice means two codes or two
//! rings, and the second code would make the first one look wrong. So a request
//! is repeated only when the service cannot have acted on it:
//!
//! - the connection was refused (or DNS/TLS failed) before the request left —
//!   nothing was sent;
//! - the service answered 429 Too Many Requests or 503 Service Unavailable
//!   with a `Retry-After` of a few seconds (RFC 9110 §15.5.20, §15.6.4, §10.2.3):
//!   it refused the request and says when to come back.
//!
//! A timeout after the request was written is ambiguous (the service may have
//! queued the message and only the answer was lost), so it is never repeated.
//! Every attempt fits in the one overall deadline.

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response, StatusCode};

use super::oob::ProviderError;

/// Attempts per delivery, the first included.
const MAX_ATTEMPTS: u32 = 3;
/// Longest `Retry-After` honoured; a longer wait would outlast the login.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3);
/// Pause before reconnecting after a refused connection (times the attempt).
const CONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// Largest response body read; services answer a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Use this result (success or final error).
    Done,
    /// Send again after waiting this long.
    RetryAfter(Duration),
}

/// What one attempt produced, reduced to what the retry decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The connection could not be made: the request never left.
    NotConnected,
    /// The request was sent and may have been acted on (timeout, reset, ...).
    Ambiguous,
    /// An HTTP answer, with its `Retry-After` in seconds when it had one.
    Answered(StatusCode, Option<u64>),
}

/// The retry rule, kept pure so it is tested without a network.
pub(crate) fn decide(attempt: Attempt, number: u32, left: Duration) -> Next {
    if number >= MAX_ATTEMPTS {
        return Next::Done;
    }
    let wait = match attempt {
        Attempt::NotConnected => CONNECT_BACKOFF * number,
        Attempt::Answered(status, Some(seconds))
            if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE =>
        {
            let wait = Duration::from_secs(seconds);
            if wait > MAX_RETRY_AFTER {
                return Next::Done;
            }
            wait
        }
        Attempt::Answered(..) | Attempt::Ambiguous => return Next::Done,
    };
    // Leave time for the next attempt itself, or it only turns into a timeout.
    if wait + Duration::from_millis(500) >= left {
        return Next::Done;
    }
    Next::RetryAfter(wait)
}

/// `Retry-After` as delta-seconds; an HTTP-date is not honoured (no retry).
fn retry_after(response: &Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Sends the request `build` makes, repeating it only where safe (see the
/// module doc), all within `timeout`. Returns the final HTTP answer, whatever
/// its status; the caller interprets it. `provider` labels the retry counter.
pub(crate) async fn send(
    provider: &'static str,
    timeout: Duration,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, ProviderError> {
    let deadline = Instant::now() + timeout;
    let mut number = 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProviderError::Timeout);
        }
        let result = build().timeout(left).send().await;
        let attempt = match &result {
            // A connect timeout is also "not sent", but the budget is gone.
            Err(e) if e.is_connect() && !e.is_timeout() => Attempt::NotConnected,
            Err(_) => Attempt::Ambiguous,
            Ok(response) => Attempt::Answered(response.status(), retry_after(response)),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match decide(attempt, number, left) {
            Next::Done => return result.map_err(ProviderError::from_reqwest),
            Next::RetryAfter(wait) => {
                let reason = match attempt {
                    Attempt::NotConnected => "connect",
                    _ => "throttled",
                };
                metrics::counter!("rampart_provider_retries_total", "provider" => provider, "reason" => reason)
                    .increment(1);
                tracing::debug!(
                    provider,
                    reason,
                    ?wait,
                    "delivery refused before sending; retrying"
                );
                tokio::time::sleep(wait).await;
                number += 1;
            }
        }
    }
}

/// Reads at most 64 KiB of a response body (a misbehaving gateway cannot
/// make rampart buffer without end).
pub(crate) async fn read_body(mut response: Response) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(ProviderError::from_reqwest)?
    {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

/// Builds the HTTP client of one provider: rustls, no redirects (a redirect
/// would resend credentials and the message elsewhere), connect timeout
/// within the overall one.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEFT: Duration = Duration::from_secs(10);

    #[test]
    fn refused_connection_is_retried() {
        assert_eq!(
            decide(Attempt::NotConnected, 1, LEFT),
            Next::RetryAfter(CONNECT_BACKOFF)
        );
        assert_eq!(
            decide(Attempt::NotConnected, 2, LEFT),
            Next::RetryAfter(CONNECT_BACKOFF * 2)
        );
        assert_eq!(decide(Attempt::NotConnected, 3, LEFT), Next::Done);
    }

    #[test]
    fn ambiguous_failure_is_never_retried() {
        assert_eq!(decide(Attempt::Ambiguous, 1, LEFT), Next::Done);
    }

    #[test]
    fn throttling_with_short_retry_after_is_retried() {
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert_eq!(
                decide(Attempt::Answered(status, Some(1)), 1, LEFT),
                Next::RetryAfter(Duration::from_secs(1))
            );
            // Too long a wait, no Retry-After, or no time left: give up.
            assert_eq!(
                decide(Attempt::Answered(status, Some(30)), 1, LEFT),
                Next::Done
            );
            assert_eq!(decide(Attempt::Answered(status, None), 1, LEFT), Next::Done);
            assert_eq!(
                decide(
                    Attempt::Answered(status, Some(2)),
                    1,
                    Duration::from_secs(2)
                ),
                Next::Done
            );
        }
    }

    #[test]
    fn other_answers_are_final() {
        for status in [
            StatusCode::CREATED,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
        ] {
            assert_eq!(
                decide(Attempt::Answered(status, Some(1)), 1, LEFT),
                Next::Done
            );
        }
    }
}
