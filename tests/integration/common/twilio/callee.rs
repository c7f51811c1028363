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

/// What Twilio's `<Gather>` reports in `Digits` when `keys` are pressed:
/// collection stops at a `finishOnKey` key (default `#`, not included; `""`
/// disables it) or once `numDigits` keys are in; keys after that are not
/// heard. twilio.com/docs/voice/twiml/gather, "finishOnKey" and "numDigits".
pub(super) fn digits(gather: &std::collections::HashMap<String, String>, keys: &str) -> String {
    let finish = gather.get("finishOnKey").map_or("#", String::as_str);
    let limit: Option<usize> = gather.get("numDigits").and_then(|n| n.parse().ok());
    let mut collected = String::new();
    for key in keys.chars() {
        if finish.contains(key) {
            break;
        }
        collected.push(key);
        if limit.is_some_and(|n| collected.chars().count() >= n) {
            break;
        }
    }
    collected
}

async fn gather(shared: &Arc<Shared>, call: &Call, keys: &str) {
    let digits = digits(&call.gather, keys);
    if digits.is_empty() {
        // Nothing collected: Twilio skips the action (actionOnEmptyResult
        // is false by default) and the call goes on to the next verb.
        return;
    }
    let mut params = common_params(call, "in-progress");
    params.push(("Digits".into(), digits));
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

#[test]
fn digits_follow_finish_on_key_and_num_digits() {
    let gather = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let one_key = gather(&[("numDigits", "1"), ("finishOnKey", "")]);
    assert_eq!(digits(&one_key, "#"), "#");
    assert_eq!(digits(&one_key, "91"), "9");
    let pin = gather(&[("finishOnKey", "#")]);
    assert_eq!(digits(&pin, "4829#"), "4829");
    assert_eq!(digits(&pin, "4829#77"), "4829");
    assert_eq!(digits(&pin, "#"), "");
    // Without finishOnKey Twilio's default is `#`.
    assert_eq!(digits(&gather(&[]), "12#3"), "12");
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
