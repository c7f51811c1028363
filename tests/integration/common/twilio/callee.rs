//! The callee's side of a call: the scripted keypress or call outcome,
//! delivered to rampart as Twilio's signed callbacks.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};

use super::api::{param, random_sid};
use super::{ACCOUNT_SID, AUTH_TOKEN, Call, Callee, Delivered, Shared};

/// Twilio's signature, written independently of rampart's: base64 of
/// HMAC-SHA1(token, url + name1 + value1 + name2 + value2 ...), sorted by name.
pub fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String = std::iter::once(url.to_string())
        .chain(sorted.into_iter().map(|(n, v)| n + &v))
        .collect();
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Plays the callee's part of a call, then marks it finished.
pub(super) async fn run_call(shared: Arc<Shared>, call: Call, callee: Callee) {
    // Let the create request's answer go out first, as with the real service.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let final_status = match callee {
        Callee::Press(key) => {
            gather(&shared, &call, key).await;
            "completed"
        }
        Callee::Late(delay, key) => {
            tokio::time::sleep(delay).await;
            gather(&shared, &call, key).await;
            "completed"
        }
        Callee::NoAnswer => "no-answer",
        Callee::Busy => "busy",
        Callee::Silent => "completed",
    };
    let events: Vec<&str> = call
        .params
        .iter()
        .filter(|(n, _)| n == "StatusCallbackEvent")
        .map(|(_, v)| v.as_str())
        .collect();
    // Without StatusCallbackEvent Twilio reports only `completed` (the end,
    // whatever the final status).
    if let Some(url) = param(&call.params, "StatusCallback")
        && (events.is_empty() || events.contains(&"completed"))
    {
        let mut params = common_params(&call, final_status);
        if final_status == "completed" {
            params.push(("CallDuration".into(), "7".into()));
        }
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("SequenceNumber".into(), "0".into()));
        deliver(&shared, &call.sid, "status", url, params).await;
    }
    shared.update(|s| {
        if let Some(c) = s.calls.iter_mut().find(|c| c.sid == call.sid) {
            c.finished = true;
        }
    });
}

fn common_params(call: &Call, status: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", &call.sid),
        ("CallStatus", status),
        ("Called", &call.to),
        ("Caller", &call.from),
        ("Direction", "outbound-api"),
        ("From", &call.from),
        ("To", &call.to),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

async fn gather(shared: &Arc<Shared>, call: &Call, key: &str) {
    let mut params = common_params(call, "in-progress");
    params.push(("Digits".into(), key.into()));
    params.push(("msg".into(), "Gather End".into()));
    deliver(shared, &call.sid, "gather", &call.gather["action"], params).await;
}

/// POSTs a signed callback and records rampart's answer.
async fn deliver(
    shared: &Arc<Shared>,
    call_sid: &str,
    kind: &'static str,
    url: &str,
    params: Vec<(String, String)>,
) {
    let (token, target) = {
        let inner = shared.inner.lock().unwrap();
        (
            inner
                .sign_token
                .clone()
                .unwrap_or_else(|| AUTH_TOKEN.to_string()),
            inner.callback_target,
        )
    };
    let signature = sign(&token, url, &params);
    let send_to = match target {
        Some(address) => {
            let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
            let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
            format!("http://{address}{path}")
        }
        None => url.to_string(),
    };
    let result = shared
        .http
        .post(&send_to)
        .header("X-Twilio-Signature", signature)
        .header("I-Twilio-Idempotency-Token", random_sid(""))
        .form(&params)
        .send()
        .await;
    let (status, body) = match result {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    };
    shared.update(|s| {
        if let Some(call) = s.calls.iter_mut().find(|c| c.sid == call_sid) {
            call.callbacks.push(Delivered {
                kind,
                url: url.to_string(),
                params,
                status,
                body,
            });
        }
    });
}

/// twilio-python's `tests/unit/test_request_validator.py` vector: the
/// emulator signs exactly as Twilio does, independently of rampart.
#[test]
fn emulator_signs_like_twilio() {
    assert_eq!(
        sign(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &[
                ("CallSid".into(), "CA1234567890ABCDE".into()),
                ("Caller".into(), "+14158675309".into()),
                ("Digits".into(), "1234".into()),
                ("From".into(), "+14158675309".into()),
                ("To".into(), "+18005551212".into()),
            ]
        ),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
}
