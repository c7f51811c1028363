//! The `[sms]` providers through the library API: Twilio against the
//! emulator (parameters, wrong token, throttling, no resend after an ambiguous
//! failure) and the template gateway against a tiny receiver (escaping).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart::factor::oob::{ProviderError, SmsSender};
use rampart::factor::sms::SmsConfig;
use rampart::secret::Secret;

use crate::common::recorder::counter;
use crate::common::twilio::{ACCOUNT_SID, AUTH_TOKEN, FROM, Twilio};

fn sms(twilio: &Twilio, extra: serde_json::Value) -> Arc<dyn SmsSender> {
    let mut config = serde_json::json!({
        "provider": "twilio",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": FROM,
        "api_base": twilio.api_base,
    });
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    let config: SmsConfig = serde_json::from_value(config).unwrap();
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    config.build().unwrap()
}

fn text(s: &str) -> Secret<String> {
    Secret::new(s.to_string())
}

#[tokio::test]
async fn sms_is_delivered_with_twilio_parameters() {
    let twilio = Twilio::start();
    let sender = sms(&twilio, serde_json::json!({}));
    sender
        .send("+15551230001", &text("Your rampart code is 482913"))
        .await
        .unwrap();
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, "+15551230001");
    assert_eq!(messages[0].sender, ("From".to_string(), FROM.to_string()));
    assert_eq!(messages[0].body, "Your rampart code is 482913");

    let service = "MG0123456789abcdef0123456789abcdef";
    let sender = sms(
        &twilio,
        serde_json::json!({"from": null, "messaging_service_sid": service}),
    );
    sender.send("+15551230001", &text("x")).await.unwrap();
    assert_eq!(twilio.last_sms_to("+15551230001").as_deref(), Some("x"));
    assert_eq!(
        twilio.messages()[1].sender,
        ("MessagingServiceSid".to_string(), service.to_string())
    );

    // Not E.164: refused before anything is sent.
    let error = sender.send("5551230001", &text("x")).await.unwrap_err();
    assert!(matches!(error, ProviderError::NoTarget(_)), "{error:?}");
    assert_eq!(twilio.requests(), 2);
}

#[tokio::test]
async fn wrong_token_is_a_status_error_and_counted() {
    let twilio = Twilio::start();
    let series = r#"rampart_provider_requests_total{provider="twilio_sms",outcome="status"}"#;
    let before = counter(series);
    let sender = sms(&twilio, serde_json::json!({"auth_token": "not-the-token"}));
    let error = sender
        .send("+15551230002", &text("code 111111"))
        .await
        .unwrap_err();
    match &error {
        ProviderError::Status { status, message } => {
            assert_eq!(*status, 401);
            assert_eq!(message, "Twilio error 20003: Authenticate");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert_eq!(error.reason(), "status");
    assert!(!format!("{error} {error:?}").contains("not-the-token"));
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.requests(), 1, "an auth failure is not retried");
    assert!(counter(series) >= before + 1.0);

    // The emulator checks the account in the path against the credentials.
    let other_account = sms(
        &twilio,
        serde_json::json!({"account_sid": "AC00000000000000000000000000000000"}),
    );
    let error = other_account
        .send("+15551230002", &text("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 401, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn throttling_is_retried_only_with_a_short_retry_after() {
    let twilio = Twilio::start();
    let sender = sms(&twilio, serde_json::json!({}));
    twilio.fail_next(429, Some(1));
    sender.send("+15551230003", &text("a")).await.unwrap();
    assert_eq!(twilio.requests(), 2);
    assert_eq!(twilio.messages().len(), 1);

    twilio.fail_next(503, Some(30));
    let error = sender.send("+15551230003", &text("b")).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(twilio.requests(), 3, "a long Retry-After is not waited for");

    twilio.fail_next(429, None);
    assert!(sender.send("+15551230003", &text("c")).await.is_err());
    assert_eq!(twilio.requests(), 4, "no Retry-After, no retry");
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_timeout_is_never_resent() {
    let twilio = Twilio::start();
    twilio.respond_after(Duration::from_secs(5));
    let sender = sms(&twilio, serde_json::json!({"timeout_secs": 1}));
    let started = std::time::Instant::now();
    let error = sender
        .send("+15551230004", &text("code 222222"))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Timeout), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Twilio got it (the user will get the code), and only once.
    assert_eq!(twilio.requests(), 1);
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_never_resent() {
    let twilio = Twilio::start();
    twilio.drop_next();
    // Plenty of budget left for a retry: only the rule prevents it.
    let sender = sms(&twilio, serde_json::json!({"timeout_secs": 20}));
    let error = sender
        .send("+15551230008", &text("code 444444"))
        .await
        .unwrap_err();
    assert!(!matches!(error, ProviderError::Timeout), "{error:?}");
    assert_eq!(twilio.requests(), 1);
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_within_the_budget() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let series = r#"rampart_provider_retries_total{provider="twilio_sms",reason="connect"}"#;
    let before = counter(series);
    let config: SmsConfig = serde_json::from_value(serde_json::json!({
        "provider": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
        "from": FROM, "api_base": format!("http://{closed}"),
    }))
    .unwrap();
    let error = config
        .build()
        .unwrap()
        .send("+15551230005", &text("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Connect(_)), "{error:?}");
    // Three attempts in all: two retries.
    assert_eq!(counter(series) - before, 2.0);
}

/// A template gateway: records (method, path and query, headers, body).
type Seen = Arc<Mutex<Vec<(String, String, axum::http::HeaderMap, String)>>>;

async fn gateway(status: u16) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: String| {
            let record = record.clone();
            async move {
                record
                    .lock()
                    .unwrap()
                    .push((method.to_string(), uri.to_string(), headers, body));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, seen)
}

const NASTY: &str = "Code 123456 & to=+1999 \"}{message}\\ é";

fn template(address: SocketAddr, extra: serde_json::Value) -> Arc<dyn SmsSender> {
    let mut config = serde_json::json!({
        "provider": "template",
        "url": format!("http://{address}/api/send"),
    });
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    let config: SmsConfig = serde_json::from_value(config).unwrap();
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    config.build().unwrap()
}

#[tokio::test]
async fn template_gateway_gets_escaped_form_and_json_bodies() {
    let (address, seen) = gateway(200).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("gateway-key");
    std::fs::write(&key_file, "Bearer gw-s3cret\n").unwrap();

    template(
        address,
        serde_json::json!({
            "body": "to={to}&text={message}&from=rampart",
            "headers": {"X-Source": "rampart"},
            "auth_value_file": key_file.to_str().unwrap(),
        }),
    )
    .send("+15551230006", &text(NASTY))
    .await
    .unwrap();
    template(
        address,
        serde_json::json!({
            "method": "PUT",
            "content_type": "json",
            "body": r#"{"recipient": "{to}", "text": "{message}", "flash": false}"#,
            "auth_header": "X-Api-Key",
            "auth_value": "k3y",
        }),
    )
    .send("+15551230006", &text(NASTY))
    .await
    .unwrap();
    template(
        address,
        serde_json::json!({
            "url": format!("http://{address}/get?to={{to}}&msg={{message}}"),
            "method": "GET",
        }),
    )
    .send("+15551230006", &text(NASTY))
    .await
    .unwrap();

    let seen = seen.lock().unwrap();
    let (method, path, headers, body) = &seen[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/api/send"));
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(headers["authorization"], "Bearer gw-s3cret");
    assert_eq!(headers["x-source"], "rampart");
    assert_eq!(
        url_pairs(body),
        [
            ("to".to_string(), "+15551230006".to_string()),
            ("text".to_string(), NASTY.to_string()),
            ("from".to_string(), "rampart".to_string()),
        ]
    );

    let (method, _, headers, body) = &seen[1];
    assert_eq!(method, "PUT");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-api-key"], "k3y");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"recipient": "+15551230006", "text": NASTY, "flash": false})
    );

    let (method, path, _, body) = &seen[2];
    assert_eq!(method, "GET");
    assert!(body.is_empty());
    let query = path.split_once('?').unwrap().1;
    assert_eq!(
        url_pairs(query),
        [
            ("to".to_string(), "+15551230006".to_string()),
            ("msg".to_string(), NASTY.to_string()),
        ]
    );
}

/// Decodes `a=b&c=d` (form or query) with reqwest's URL parser, not ours.
fn url_pairs(encoded: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{encoded}"))
        .unwrap()
        .query_pairs()
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn template_gateway_refusal_is_a_status_error_without_the_message() {
    let (address, _) = gateway(500).await;
    let series = r#"rampart_provider_requests_total{provider="sms_template",outcome="status"}"#;
    let before = counter(series);
    let error = template(
        address,
        serde_json::json!({"body": "to={to}&text={message}"}),
    )
    .send("+15551230007", &text("code 333333"))
    .await
    .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 500, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("333333"));
    assert!(counter(series) >= before + 1.0);
}

/// The emulator is only worth something if it refuses what Twilio refuses.
#[tokio::test]
async fn emulator_refuses_what_twilio_refuses() {
    let twilio = Twilio::start();
    let client = reqwest::Client::new();
    let post = |resource: &str, form: &[(&str, &str)]| {
        client
            .post(format!(
                "{}/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}.json",
                twilio.api_base
            ))
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .form(form)
            .send()
    };
    let long = "x".repeat(1601);
    let twiml = "<Response><Gather action=\"https://x/g\"><Say>Hi</Say></Gather></Response>";
    for (resource, form, code) in [
        (
            "Messages",
            vec![("To", "+15551230009"), ("Body", "x")],
            21603,
        ),
        (
            "Messages",
            vec![("To", "5551230009"), ("From", FROM), ("Body", "x")],
            21211,
        ),
        (
            "Messages",
            vec![("To", "+15551230009"), ("From", FROM)],
            21602,
        ),
        (
            "Messages",
            vec![("To", "+15551230009"), ("From", FROM), ("Body", &long)],
            21617,
        ),
        ("Calls", vec![("To", "+15551230009"), ("From", FROM)], 21205),
        (
            "Calls",
            vec![("To", "+15551230009"), ("Twiml", twiml)],
            21213,
        ),
        (
            "Calls",
            vec![
                ("To", "+15551230009"),
                ("From", FROM),
                ("Twiml", "<Response><Say>a & b</Say>"),
            ],
            12100,
        ),
    ] {
        let response = post(resource, &form).await.unwrap();
        assert_eq!(response.status(), 400, "{form:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{form:?}");
    }
    let ok = post(
        "Calls",
        &[("To", "+15551230009"), ("From", FROM), ("Twiml", twiml)],
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 201);
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.calls().len(), 1);
}
