//! One answer, whichever way it came back: the HTTP answer endpoint and the
//! ntfy reply relay both hand the token here. It is checked (signature, user,
//! expiry — [`crate::factor::oob::token`]) and the parked login resolved;
//! the first answer wins, so a replayed or late token finds nothing.
//!
//! Refusals are counted as `rampart_oob_answers_refused_total{reason}` and
//! logged — never with the token, which is a bearer capability until the
//! transaction ends.

use tracing::{info, warn};

use crate::factor::oob::token::TokenError;
use crate::factor::oob::{Answer, OutOfBand};

/// Where an answer came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /oob/v1/answer` on the HTTP listener.
    Http,
    /// The ntfy reply topic.
    NtfyRelay,
}

impl Via {
    /// Name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::NtfyRelay => "ntfy_relay",
        }
    }
}

/// Checks `token` and resolves its transaction with the answer it carries.
pub fn apply(oob: &OutOfBand, token: &str, now: u64, via: Via) -> Result<Answer, TokenError> {
    let checked = oob
        .tokens
        .verify(token, &oob.pending, now)
        .and_then(|(txn, answer)| {
            // Between verify and resolve another answer can win: same refusal
            // as a replay.
            oob.pending
                .resolve(&txn, answer)
                .map(|()| (txn, answer))
                .map_err(|_| TokenError::Unknown)
        });
    match checked {
        Ok((txn, answer)) => {
            info!(
                txn = %txn,
                answer = answer.as_str(),
                via = via.as_str(),
                "out-of-band answer accepted"
            );
            Ok(answer)
        }
        Err(error) => {
            metrics::counter!("rampart_oob_answers_refused_total", "reason" => error.reason())
                .increment(1);
            warn!(
                reason = error.reason(),
                via = via.as_str(),
                "out-of-band answer refused"
            );
            Err(error)
        }
    }
}
