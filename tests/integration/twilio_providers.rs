//! The `sms` and `phone` providers through the library API, against the Twilio
//! emulator (and a tiny template gateway): what is sent, how errors and
//! throttling are handled, and the signed callbacks resolving parked logins
//! through rampart's real HTTP router.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rampart::factor::oob::pending::{JoinKey, Park, Parked};
use rampart::factor::oob::{
    Answer, Caller, Channel, LoginContext, OutOfBand, OutOfBandConfig, ProviderError, SmsSender,
};
use rampart::factor::phone::{PhoneConfig, TwilioCaller};
use rampart::factor::sms::SmsConfig;
use rampart::secret::Secret;

use crate::common::twilio::{self, ACCOUNT_SID, AUTH_TOKEN, Callee, FROM, Twilio};

/// The process-wide metrics recorder (one per test binary).
fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

/// Value of a counter series such as `name{a="b",c="d"}` (0 when absent).
fn counter(series: &str) -> f64 {
    metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

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
    twilio.respond_after(Duration::from_secs(3));
    let sender = sms(&twilio, serde_json::json!({"timeout_secs": 1}));
    let started = std::time::Instant::now();
    let error = sender
        .send("+15551230004", &text("code 222222"))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Timeout), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
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

/// rampart's HTTP router with an `OutOfBand` whose caller points at the
/// emulator; Twilio reaches it "through a proxy" at `https://mfa.example.test`.
struct PhoneRig {
    twilio: Twilio,
    oob: Arc<OutOfBand>,
    caller: TwilioCaller,
    http: SocketAddr,
}

const PUBLIC_URL: &str = "https://mfa.example.test";

async fn phone_rig() -> PhoneRig {
    let twilio = Twilio::start();
    let config: PhoneConfig = serde_json::from_value(serde_json::json!({
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": FROM,
        "api_base": twilio.api_base,
        "voice": "Polly.Joanna",
        "language": "en-US",
    }))
    .unwrap();
    assert!(config.problems(Some(PUBLIC_URL)).is_empty());
    let caller = TwilioCaller::new(&config, PUBLIC_URL).unwrap();
    let oob_config = OutOfBandConfig {
        public_url: Some(PUBLIC_URL.into()),
        ..OutOfBandConfig::default()
    };
    let key = Arc::new(rampart::seal::SealKey::from_bytes([7; 32]));
    let mut oob = OutOfBand::new(oob_config, key);
    oob.phone_callbacks = Some(caller.callbacks());
    let oob = Arc::new(oob);
    let store = rampart::store::SqliteStore::open_in_memory().await.unwrap();
    let router = rampart::http::router(rampart::http::HttpState {
        metrics: metrics().clone(),
        store: Arc::new(store),
        oob: Some(oob.clone()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    twilio.deliver_callbacks_to(http);
    PhoneRig {
        twilio,
        oob,
        caller,
        http,
    }
}

impl PhoneRig {
    fn park(&self, user: &str) -> Parked {
        let join = JoinKey {
            client: Arc::from("vpn"),
            station: Some("203.0.113.7".into()),
        };
        match self.oob.pending.park(user, join, Channel::Phone) {
            Park::New(parked) => parked,
            _ => panic!("user already parked"),
        }
    }

    fn context(user: &str) -> LoginContext {
        LoginContext {
            user: user.into(),
            client: "vpn".into(),
            client_address: "192.0.2.1".parse().unwrap(),
            nas_identifier: None,
            calling_station_id: Some("203.0.113.7 <&>".into()),
            time: 1_700_000_000,
        }
    }

    /// Calls `number` for a new login of `user`; returns the answer and txn.
    async fn login(&self, user: &str, number: &str) -> (Answer, String) {
        let parked = self.park(user);
        let txn = parked.txn.clone();
        let approval = self.oob.approval(&txn, Self::context(user));
        self.caller.call(number, &approval).await.unwrap();
        (parked.wait(Duration::from_secs(10)).await, txn)
    }
}

#[tokio::test]
async fn keypresses_and_call_outcomes_resolve_the_login() {
    let rig = phone_rig().await;
    let cases = [
        ("+15551240001", Callee::Press("#"), Answer::Approved),
        ("+15551240002", Callee::Press("9"), Answer::Fraud),
        ("+15551240003", Callee::Press("1"), Answer::Denied),
        ("+15551240004", Callee::NoAnswer, Answer::NotAnswered),
        ("+15551240005", Callee::Busy, Answer::NotAnswered),
        ("+15551240006", Callee::Silent, Answer::NotAnswered),
    ];
    for (i, (number, callee, expected)) in cases.into_iter().enumerate() {
        rig.twilio.set_callee(number, callee);
        let user = format!("user{i}");
        let (answer, txn) = rig.login(&user, number).await;
        assert_eq!(answer, expected, "{callee:?}");

        let call = rig
            .twilio
            .calls()
            .into_iter()
            .find(|c| c.to == number)
            .unwrap();
        let param = |name: &str| {
            call.params
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(param("From"), [FROM]);
        assert_eq!(param("Timeout"), ["30"]);
        assert_eq!(
            param("StatusCallback"),
            [format!("{PUBLIC_URL}/oob/v1/twilio/status/{txn}").as_str()]
        );
        assert_eq!(param("StatusCallbackEvent"), ["completed"]);
        assert_eq!(
            call.gather["action"],
            format!("{PUBLIC_URL}/oob/v1/twilio/gather/{txn}")
        );
        assert_eq!(call.gather["numDigits"], "1");
        assert_eq!(call.gather["finishOnKey"], "");
        assert!(
            call.said[0].starts_with(
                "Sign-in as user{i} to vpn from 203.0.113.7 <&> at 22:13 UTC Press pound to approve."
                    .replace("{i}", &i.to_string())
                    .as_str()
            ),
            "{:?}",
            call.said
        );
    }

    // Every callback was accepted; an answered call's final `completed`
    // finds the login already decided and is acknowledged.
    let twilio = rig.twilio;
    let calls = tokio::task::spawn_blocking(move || {
        twilio.wait_for_finished_calls("+15551240001", 1);
        twilio.wait_for_finished_calls("+15551240006", 1);
        twilio.calls()
    })
    .await
    .unwrap();
    for call in &calls {
        for delivered in &call.callbacks {
            assert!(
                delivered.status == 200 || delivered.status == 204,
                "{delivered:?}"
            );
        }
    }
    let approved = calls.iter().find(|c| c.to == "+15551240001").unwrap();
    assert_eq!(approved.callbacks.len(), 2);
    assert_eq!(approved.callbacks[0].kind, "gather");
    assert!(
        approved.callbacks[0]
            .body
            .contains("<Say voice=\"Polly.Joanna\" language=\"en-US\">Sign-in approved.")
    );
    assert_eq!(approved.callbacks[1].kind, "status");
    assert!(
        counter(r#"rampart_twilio_callbacks_total{callback="status",outcome="after_answer"}"#)
            >= 1.0
    );
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let rig = phone_rig().await;
    let before =
        counter(r#"rampart_twilio_callbacks_total{callback="gather",outcome="bad_signature"}"#);
    rig.twilio.sign_with("not-the-auth-token");
    let parked = rig.park("mallory-target");
    let txn = parked.txn.clone();
    let approval = rig.oob.approval(&txn, PhoneRig::context("mallory-target"));
    rig.caller.call("+15551250001", &approval).await.unwrap();
    let twilio = rig.twilio;
    let (twilio, calls) = tokio::task::spawn_blocking(move || {
        let calls = twilio.wait_for_finished_calls("+15551250001", 1);
        (twilio, calls)
    })
    .await
    .unwrap();
    let statuses: Vec<u16> = calls[0].callbacks.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [403, 403]);
    // Still waiting: neither the forged keypress nor the forged end counted.
    assert_eq!(
        rig.oob.pending.user_of(&txn).as_deref(),
        Some("mallory-target")
    );
    assert!(
        counter(r#"rampart_twilio_callbacks_total{callback="gather",outcome="bad_signature"}"#)
            >= before + 1.0
    );

    // A correct signature for another account, and an unknown transaction.
    let client = reqwest::Client::new();
    let post = |path: String, params: Vec<(String, String)>| {
        let url = format!("{PUBLIC_URL}{path}");
        let signature = twilio::sign(AUTH_TOKEN, &url, &params);
        client
            .post(format!("http://{}{path}", rig.http))
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
    };
    let params = |account: &str| {
        vec![
            ("AccountSid".to_string(), account.to_string()),
            ("Digits".to_string(), "#".to_string()),
        ]
    };
    let response = post(
        format!("/oob/v1/twilio/gather/{txn}"),
        params("AC00000000000000000000000000000000"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        rig.oob.pending.user_of(&txn).as_deref(),
        Some("mallory-target")
    );
    let response = post(
        "/oob/v1/twilio/gather/0123456789abcdef0123456789abcdef".into(),
        params(ACCOUNT_SID),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    // Unsigned: refused.
    let response = client
        .post(format!("http://{}/oob/v1/twilio/gather/{txn}", rig.http))
        .form(&params(ACCOUNT_SID))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // The genuine one still works.
    let response = post(format!("/oob/v1/twilio/gather/{txn}"), params(ACCOUNT_SID))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(parked.wait(Duration::from_secs(5)).await, Answer::Approved);
    drop(twilio);
}

#[tokio::test]
async fn call_with_a_wrong_token_is_a_status_error() {
    let twilio = Twilio::start();
    let config: PhoneConfig = serde_json::from_value(serde_json::json!({
        "account_sid": ACCOUNT_SID, "auth_token": "wrong", "from": FROM,
        "api_base": twilio.api_base,
    }))
    .unwrap();
    let caller = TwilioCaller::new(&config, PUBLIC_URL).unwrap();
    let oob = OutOfBand::new(
        OutOfBandConfig::default(),
        Arc::new(rampart::seal::SealKey::from_bytes([1; 32])),
    );
    let approval = oob.approval("00ff", PhoneRig::context("alice"));
    let error = caller.call("+15551260001", &approval).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 401, .. }),
        "{error:?}"
    );
    assert!(twilio.calls().is_empty());
}
