//! Twilio's callbacks for `[phone]` verification calls:
//!
//! - `POST /oob/v1/twilio/gather/{txn}`: the `<Gather>` action, with the key
//!   pressed in `Digits`: `#` approves, `9` denies and reports fraud, any
//!   other key denies. On a call that asked for the PIN (`[phone] pin`),
//!   `Digits` holds what was typed before `#`: the user's PIN approves, `9`
//!   reports fraud, anything else is a wrong PIN (see
//!   [`crate::factor::phone::pin::judge`]). Answered with TwiML that confirms
//!   and hangs up. The digits are never logged.
//! - `POST /oob/v1/twilio/status/{txn}`: the status callback when the call
//!   ends. `busy`, `no-answer`, `failed`, `canceled`, or `completed` while the
//!   login still waits (answered, no key pressed: voicemail, hung up), end the
//!   login as not answered — at once, instead of at the timeout.
//!
//! Both must carry Twilio's `X-Twilio-Signature` for the URL Twilio was given
//! (`public_url` + path) and the form parameters, keyed with the auth token
//! (see [`crate::factor::twilio::signature`]), and our `AccountSid`; anything
//! else is refused with 403 and counted in
//! `rampart_twilio_callbacks_total{callback, outcome}`.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tracing::{debug, info, warn};

use super::HttpState;
use crate::factor::oob::{Answer, OutOfBand};
use crate::factor::phone::{Callback, PhoneCallbacks, twiml};

/// The callback routes.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/oob/v1/twilio/gather/{txn}", post(gather))
        .route("/oob/v1/twilio/status/{txn}", post(status))
}

type Params = Vec<(String, String)>;

fn count(callback: Callback, outcome: &'static str) {
    metrics::counter!("rampart_twilio_callbacks_total", "callback" => callback.as_str(), "outcome" => outcome)
        .increment(1);
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Checks that the request is Twilio's, for our account. Returns the shared
/// state, or the status that refuses it (already counted).
fn authenticate(
    state: &HttpState,
    callback: Callback,
    txn: &str,
    uri: &Uri,
    headers: &HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<(Arc<OutOfBand>, Arc<PhoneCallbacks>, Params), StatusCode> {
    let Some((oob, callbacks)) = state
        .oob
        .current()
        .and_then(|oob| Some((oob.clone(), oob.phone_callbacks.clone()?)))
    else {
        count(callback, "not_configured");
        return Err(StatusCode::NOT_FOUND);
    };
    let Ok(Form(params)) = form else {
        count(callback, "bad_request");
        return Err(StatusCode::BAD_REQUEST);
    };
    // The URL exactly as Twilio was given it: public_url, path, and a query
    // string if one was added on the way (Twilio signs it too).
    let mut url = callbacks.url(callback, txn);
    if let Some(query) = uri.query() {
        url.push('?');
        url.push_str(query);
    }
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !callbacks.verify(&url, &params, signature) {
        count(callback, "bad_signature");
        warn!(
            callback = callback.as_str(),
            "Twilio callback refused: X-Twilio-Signature does not match (forged, or a different auth token or public_url)"
        );
        return Err(StatusCode::FORBIDDEN);
    }
    if param(&params, "AccountSid") != Some(callbacks.account_sid.as_str()) {
        count(callback, "wrong_account");
        warn!(
            callback = callback.as_str(),
            "Twilio callback refused: AccountSid is not [phone] account_sid"
        );
        return Err(StatusCode::FORBIDDEN);
    }
    Ok((oob, callbacks, params))
}

fn twiml_response(status: StatusCode, document: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        document,
    )
        .into_response()
}

async fn gather(
    State(state): State<HttpState>,
    Path(txn): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let (oob, callbacks, params) =
        match authenticate(&state, Callback::Gather, &txn, &uri, &headers, form) {
            Ok(checked) => checked,
            Err(status) => return status.into_response(),
        };
    let digits = param(&params, "Digits");
    // A PIN call is judged against the PIN hash it was placed with; on a
    // plain call only `#` approves, and a missing key never does.
    let answer = match oob.judge_pin(&txn, digits) {
        Some(answer) => answer,
        None => match digits {
            Some("#") => Answer::Approved,
            Some("9") => Answer::Fraud,
            _ => Answer::Denied,
        },
    };
    let voice = &callbacks.voice;
    if oob.pending.resolve(&txn, answer).is_err() {
        count(Callback::Gather, "unknown_txn");
        debug!(%txn, "keypress for a login that is no longer waiting");
        return twiml_response(
            StatusCode::NOT_FOUND,
            twiml::say_and_hang_up("This sign-in request has expired. Goodbye.", voice),
        );
    }
    count(Callback::Gather, answer.as_str());
    info!(%txn, answer = answer.as_str(), "phone call answered");
    let text = match answer {
        Answer::Approved => "Sign-in approved. Goodbye.",
        Answer::Fraud => "Sign-in denied and reported. Goodbye.",
        Answer::WrongPin => "Wrong PIN. Sign-in denied. Goodbye.",
        _ => "Sign-in denied. Goodbye.",
    };
    twiml_response(StatusCode::OK, twiml::say_and_hang_up(text, voice))
}

async fn status(
    State(state): State<HttpState>,
    Path(txn): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let (oob, _, params) = match authenticate(&state, Callback::Status, &txn, &uri, &headers, form)
    {
        Ok(checked) => checked,
        Err(status) => return status.into_response(),
    };
    // Call status values: twilio.com/docs/voice/api/call-resource#call-status-values.
    let call_status = param(&params, "CallStatus").unwrap_or("");
    match call_status {
        "busy" | "no-answer" | "failed" | "canceled" | "completed" => {}
        _ => {
            count(Callback::Status, "ignored");
            return StatusCode::NO_CONTENT.into_response();
        }
    }
    match oob.pending.resolve(&txn, Answer::NotAnswered) {
        Ok(()) => {
            count(Callback::Status, "not_answered");
            info!(%txn, call_status, "phone call ended without an answer");
            StatusCode::NO_CONTENT.into_response()
        }
        // The normal end of an answered call: the gather already resolved it.
        Err(_) if call_status == "completed" => {
            count(Callback::Status, "after_answer");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => {
            count(Callback::Status, "unknown_txn");
            debug!(%txn, call_status, "call status for a login that is no longer waiting");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}
