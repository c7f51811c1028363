//! The endpoints: switches (500, 429), signature check, then
//! `/auth/v2/ping`, `check`, `preauth`, `auth`, `auth_status`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::verify::{decode_form, verify_signature};
use super::{Call, Decision, Phone, Preauth, Shared, Txn};

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ok(response: Value) -> (StatusCode, Value) {
    (StatusCode::OK, json!({"stat": "OK", "response": response}))
}

pub(super) fn fail(
    status: u16,
    code: u64,
    message: &str,
    detail: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"stat": "FAIL", "code": code, "message": message});
    if let Some(detail) = detail {
        body["message_detail"] = json!(detail);
    }
    (StatusCode::from_u16(status).unwrap(), body)
}

pub(super) async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let params = if method == Method::GET {
        decode_form(uri.query().unwrap_or(""))
    } else {
        decode_form(std::str::from_utf8(&body).unwrap_or("\u{fffd}"))
    };
    let (status, json) = answer(&state, &method, &path, &headers, &params).await;
    let code = json.get("code").and_then(Value::as_u64);
    state.lock().unwrap().calls.push(Call {
        method: method.to_string(),
        path,
        params,
        status: status.as_u16(),
        code,
    });
    (status, axum::Json(json)).into_response()
}

/// Checks the request as Duo does, then runs the endpoint.
async fn answer(
    state: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> (StatusCode, Value) {
    let hanging = state.lock().unwrap().hanging;
    if hanging {
        std::future::pending::<()>().await;
    }
    {
        let mut s = state.lock().unwrap();
        if s.failing {
            return fail(500, 50000, "Internal server error", None);
        }
        if s.rate_limit > 0 {
            s.rate_limit -= 1;
            return fail(429, 42901, "Too Many Requests", None);
        }
    }
    let endpoint = (method.as_str(), path);
    if endpoint == ("GET", "/auth/v2/ping") {
        return ok(json!({"time": unix_now()}));
    }
    if !matches!(
        endpoint,
        ("GET", "/auth/v2/check")
            | ("POST", "/auth/v2/preauth")
            | ("POST", "/auth/v2/auth")
            | ("GET", "/auth/v2/auth_status")
    ) {
        return fail(404, 40401, "Resource not found", None);
    }
    if method == Method::POST
        && headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| !v.starts_with("application/x-www-form-urlencoded"))
    {
        return fail(400, 40003, "Invalid Content-Type", None);
    }
    if let Err(refusal) = verify_signature(state, method, path, headers, params) {
        return refusal;
    }
    match path {
        "/auth/v2/check" => ok(json!({"time": unix_now()})),
        "/auth/v2/preauth" => preauth(state, params),
        "/auth/v2/auth" => auth(state, params).await,
        _ => auth_status(state, params).await,
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `username` (or `user_id`), required by preauth and auth.
fn user_of(params: &[(String, String)]) -> Result<String, (StatusCode, Value)> {
    param(params, "username")
        .or_else(|| param(params, "user_id"))
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            fail(
                400,
                40001,
                "Missing required request parameters",
                Some("username"),
            )
        })
}

fn check_ipaddr(params: &[(String, String)]) -> Result<(), (StatusCode, Value)> {
    match param(params, "ipaddr") {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_err() => Err(fail(
            400,
            40002,
            "Invalid request parameters",
            Some("ipaddr"),
        )),
        _ => Ok(()),
    }
}

fn preauth(state: &Shared, params: &[(String, String)]) -> (StatusCode, Value) {
    let user = match user_of(params).and_then(|u| check_ipaddr(params).map(|_| u)) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let script = state.lock().unwrap().users.get(&user).cloned();
    let Some(script) = script else {
        return ok(json!({
            "result": "enroll",
            "status_msg": "Enroll an authentication device to proceed",
            "enroll_portal_url": "https://api-emulator.duosecurity.com/portal?code=abc"
        }));
    };
    match script.preauth {
        Preauth::Allow => ok(json!({"result": "allow", "status_msg": "Allowing unknown user"})),
        Preauth::Deny => ok(json!({"result": "deny", "status_msg": "Your account is disabled"})),
        Preauth::Enroll => ok(json!({
            "result": "enroll",
            "status_msg": "Enroll an authentication device to proceed",
            "enroll_portal_url": "https://api-emulator.duosecurity.com/portal?code=abc"
        })),
        Preauth::Auth => ok(json!({
            "result": "auth",
            "status_msg": "Account is active",
            "devices": [{
                "device": "DPFZRS9FB0D46QFTM899",
                "type": "phone",
                "number": "XXX-XXX-0100",
                "name": "",
                "display_name": "iOS (XXX-XXX-0100)",
                "capabilities": script.capabilities,
            }]
        })),
    }
}

fn decided(decision: Decision) -> Value {
    match decision {
        Decision::Approve => {
            json!({"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})
        }
        Decision::Deny => {
            json!({"result": "deny", "status": "deny", "status_msg": "Login request denied."})
        }
        Decision::Fraud => {
            json!({"result": "deny", "status": "fraud", "status_msg": "Login request reported as fraudulent."})
        }
    }
}

fn waiting() -> Value {
    json!({"result": "waiting", "status": "pushed", "status_msg": "Pushed a login request to your device..."})
}

/// The phone's decision for a transaction, if it made one yet.
fn decision_of(txn: &Txn) -> Option<Decision> {
    match txn.phone {
        Phone::Approve => Some(Decision::Approve),
        Phone::Deny => Some(Decision::Deny),
        Phone::Fraud => Some(Decision::Fraud),
        Phone::Never => None,
        Phone::ApproveAfter(after) => (txn.started.elapsed() >= after).then_some(Decision::Approve),
        Phone::Hold => txn.decision,
    }
}

/// Holds until the transaction is decided or `hold` passes.
async fn wait_for_decision(state: &Shared, txid: &str, hold: Duration) -> Value {
    let until = Instant::now() + hold;
    loop {
        let decision = state.lock().unwrap().txns.get(txid).and_then(decision_of);
        if let Some(decision) = decision {
            return decided(decision);
        }
        if Instant::now() >= until {
            return waiting();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn auth(state: &Shared, params: &[(String, String)]) -> (StatusCode, Value) {
    let user = match user_of(params).and_then(|u| check_ipaddr(params).map(|_| u)) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let invalid = |detail| fail(400, 40002, "Invalid request parameters", Some(detail));
    let missing = |detail| {
        fail(
            400,
            40001,
            "Missing required request parameters",
            Some(detail),
        )
    };
    let Some(factor) = param(params, "factor") else {
        return missing("factor");
    };
    if !matches!(factor, "auto" | "push" | "passcode" | "phone" | "sms") {
        return invalid("factor");
    }
    if factor != "passcode" && param(params, "device").is_none() {
        return missing("device");
    }
    let is_async = match param(params, "async") {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return invalid("async"),
    };
    if let Some(info) = param(params, "pushinfo")
        && info.len() > 20_000
    {
        return invalid("pushinfo");
    }
    let (script, hold) = {
        let s = state.lock().unwrap();
        (s.users.get(&user).cloned(), s.hold)
    };
    let Some(script) = script.filter(|s| s.preauth == Preauth::Auth) else {
        return invalid("username");
    };
    if factor == "passcode" {
        let Some(passcode) = param(params, "passcode") else {
            return missing("passcode");
        };
        let mut s = state.lock().unwrap();
        let codes = &mut s.users.get_mut(&user).unwrap().passcodes;
        return match codes.iter().position(|c| c == passcode) {
            Some(i) => {
                codes.remove(i);
                ok(decided(Decision::Approve))
            }
            None => ok(
                json!({"result": "deny", "status": "deny", "status_msg": "Incorrect passcode. Please try again."}),
            ),
        };
    }
    if !script.capabilities.contains(&factor) {
        return invalid("factor");
    }
    if factor == "sms" {
        return ok(
            json!({"result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent."}),
        );
    }
    let txid = format!("{:032x}", rand::random::<u128>());
    state.lock().unwrap().txns.insert(
        txid.clone(),
        Txn {
            user,
            started: Instant::now(),
            phone: script.phone,
            decision: None,
        },
    );
    if is_async {
        ok(json!({"txid": txid}))
    } else {
        // Synchronous push/call: Duo answers when the user does (its own
        // limit is 60 s).
        let mut answer = wait_for_decision(state, &txid, Duration::from_secs(60).max(hold)).await;
        if answer["result"] == "waiting" {
            answer =
                json!({"result": "deny", "status": "timeout", "status_msg": "Login timed out."});
        }
        ok(answer)
    }
}

async fn auth_status(state: &Shared, params: &[(String, String)]) -> (StatusCode, Value) {
    let Some(txid) = param(params, "txid") else {
        return fail(
            400,
            40001,
            "Missing required request parameters",
            Some("txid"),
        );
    };
    let (known, hold) = {
        let s = state.lock().unwrap();
        (s.txns.contains_key(txid), s.hold)
    };
    if !known {
        return fail(400, 40002, "Invalid request parameters", Some("txid"));
    }
    ok(wait_for_decision(state, txid, hold).await)
}
