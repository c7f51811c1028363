//! The two REST resources, checked as Twilio checks them.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::callee::run_call;
use super::twiml::read_twiml;
use super::{ACCOUNT_SID, AUTH_TOKEN, Call, Callee, Fault, Shared, Sms};

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"Twilio API\"".parse().unwrap(),
        );
    }
    response
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn random_sid(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// The common front of both resources: count, injected failures, Basic auth,
/// account in the path. `Some` is the refusal to send.
fn front(shared: &Shared, path_sid: &str, headers: &HeaderMap) -> Option<Response> {
    let injected = shared.update(|s| {
        s.requests += 1;
        s.fail_next.pop_front()
    });
    if let Some((status, retry_after)) = injected {
        let status = StatusCode::from_u16(status).unwrap();
        let mut response = error(status, 20429, "Too Many Requests");
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.to_string().parse().unwrap());
        }
        return Some(response);
    }
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return Some(error(StatusCode::UNAUTHORIZED, 20003, "Authenticate"));
    };
    if user != ACCOUNT_SID || password != AUTH_TOKEN {
        return Some(error(StatusCode::UNAUTHORIZED, 20003, "Authenticate"));
    }
    if path_sid != user {
        return Some(error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource /2010-04-01/Accounts/{path_sid} was not found"),
        ));
    }
    None
}

/// A lasting fault, if one is set: counted, then never answered or refused.
async fn faulted(shared: &Shared) -> Option<Response> {
    let fault = shared.update(|s| {
        if s.fault.is_some() {
            s.requests += 1;
        }
        s.fault
    })?;
    match fault {
        Fault::Hang => std::future::pending().await,
        Fault::Status(status) => Some(error(
            StatusCode::from_u16(status).unwrap(),
            20500,
            "Internal Server Error",
        )),
    }
}

async fn respond(shared: &Shared, body: serde_json::Value) -> Response {
    let (delay, drop) = shared.update(|s| (s.respond_after, std::mem::take(&mut s.drop_next)));
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if drop {
        // Unwinding out of the handler ends hyper's connection task: the
        // client sees the connection closed with no response.
        // `resume_unwind` skips the panic hook, so nothing is printed.
        std::panic::resume_unwind(Box::new("emulated lost answer"));
    }
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

pub(super) async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = faulted(&shared).await {
        return response;
    }
    if let Some(response) = front(&shared, &sid, &headers) {
        return response;
    }
    let to = param(&params, "To").unwrap_or("");
    if !is_e164(to) {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("Invalid 'To' Phone Number: {to}"),
        );
    }
    let sender = match (
        param(&params, "From"),
        param(&params, "MessagingServiceSid"),
    ) {
        (Some(from), _) if !is_e164(from) => {
            return error(StatusCode::BAD_REQUEST, 21212, "Invalid From Number");
        }
        (Some(from), _) => ("From".to_string(), from.to_string()),
        (None, Some(service)) => ("MessagingServiceSid".to_string(), service.to_string()),
        (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
            );
        }
    };
    let body = param(&params, "Body").unwrap_or("");
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if body.chars().count() > 1600 {
        return error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let sid = random_sid("SM");
    shared.update(|s| {
        s.messages.push(Sms {
            to: to.to_string(),
            sender: sender.clone(),
            body: body.to_string(),
        })
    });
    respond(
        &shared,
        serde_json::json!({
            "sid": sid, "account_sid": ACCOUNT_SID, "to": to, "body": body,
            "status": "queued", "api_version": "2010-04-01",
        }),
    )
    .await
}

pub(super) async fn calls(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = faulted(&shared).await {
        return response;
    }
    if let Some(response) = front(&shared, &sid, &headers) {
        return response;
    }
    let to = param(&params, "To").unwrap_or("");
    if !is_e164(to) {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("Invalid 'To' Phone Number: {to}"),
        );
    }
    let from = match param(&params, "From") {
        None | Some("") => {
            return error(
                StatusCode::BAD_REQUEST,
                21213,
                "No 'From' number is specified",
            );
        }
        Some(from) if !is_e164(from) => {
            return error(
                StatusCode::BAD_REQUEST,
                21212,
                "Invalid 'From' Phone Number",
            );
        }
        Some(from) => from,
    };
    let Some(twiml) = param(&params, "Twiml") else {
        // rampart always sends inline TwiML; a Url would be fetched here.
        return error(
            StatusCode::BAD_REQUEST,
            21205,
            "Url, Twiml or ApplicationSid parameter is required",
        );
    };
    let Some((gather, said)) = read_twiml(twiml) else {
        return error(StatusCode::BAD_REQUEST, 12100, "Document parse failure");
    };
    let action_ok = gather
        .get("action")
        .is_some_and(|a| a.starts_with("https://") || a.starts_with("http://"));
    if !action_ok || gather.get("method").is_some_and(|m| m != "POST") {
        return error(StatusCode::BAD_REQUEST, 12100, "Document parse failure");
    }
    if let Some(timeout) = param(&params, "Timeout")
        && timeout.parse::<u32>().map_or(true, |t| t == 0 || t > 600)
    {
        return error(StatusCode::BAD_REQUEST, 21208, "Invalid Timeout");
    }
    let sid = random_sid("CA");
    let call = Call {
        sid: sid.clone(),
        to: to.to_string(),
        from: from.to_string(),
        params: params.clone(),
        gather,
        said,
        callbacks: Vec::new(),
        finished: false,
    };
    let callee = shared.update(|s| {
        s.calls.push(call.clone());
        s.callees.get(to).copied().unwrap_or(Callee::Press("#"))
    });
    tokio::spawn(run_call(shared.clone(), call, callee));
    respond(
        &shared,
        serde_json::json!({
            "sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": from,
            "status": "queued", "api_version": "2010-04-01",
        }),
    )
    .await
}
