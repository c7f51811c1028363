//! The `[phone]` provider and the Twilio callbacks through the library API:
//! calls placed on the emulator, its scripted callees answering through
//! rampart's real HTTP router, parked logins resolved (or not, when forged).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart::factor::oob::pending::{JoinKey, Park, Parked};
use rampart::factor::oob::{
    Answer, CallPrompt, Caller, Channel, LoginContext, OutOfBand, OutOfBandConfig, ProviderError,
};
use rampart::factor::phone::{PhoneConfig, TwilioCaller};

use crate::common::recorder::{counter, metrics};
use crate::common::twilio::{self, ACCOUNT_SID, AUTH_TOKEN, Callee, FROM, Twilio};

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
        oob: rampart::factor::oob::OobHandle::new(Some(oob.clone())),
        ..rampart::http::HttpState::new(metrics().clone(), Arc::new(store))
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
        let txn = parked.txn();
        let approval = self.oob.approval(&txn, Self::context(user));
        self.caller
            .call(number, &approval, CallPrompt::Pound)
            .await
            .unwrap();
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
    let txn = parked.txn();
    let approval = rig.oob.approval(&txn, PhoneRig::context("mallory-target"));
    rig.caller
        .call("+15551250001", &approval, CallPrompt::Pound)
        .await
        .unwrap();
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
    let error = caller
        .call("+15551260001", &approval, CallPrompt::Pound)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 401, .. }),
        "{error:?}"
    );
    assert!(twilio.calls().is_empty());
}
