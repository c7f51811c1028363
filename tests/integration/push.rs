//! The push provider through the library API, against the ntfy emulator, a
//! webhook receiver and a scripted phone: message and button shapes, access
//! tokens, the reply relay resolving parked logins (and refusing replayed,
//! forged, expired and other users' tokens), and the HTTP answer endpoint.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use rampart::factor::oob::pending::{JoinKey, Park, Parked};
use rampart::factor::oob::token::Tokens;
use rampart::factor::oob::{
    Answer, Channel, LoginContext, OutOfBand, OutOfBandConfig, ProviderError, PushTarget,
};
use rampart::factor::push::{self, PushConfig};
use rampart::seal::SealKey;
use rampart::secret::Secret;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::ntfy::{Auth, Ntfy, Options, Perm};
use crate::common::phone::{Phone, Script, WebhookReceiver};
use crate::common::unix_now;

const REPLY_TOPIC: &str = "rampart-replies-Q7m2x9K4v1Zt8b";
const ALICE_TOPIC: &str = "alice-Hk38dPq0Lm2v";
const WAIT: Duration = Duration::from_secs(10);

// ---- helpers ----

/// The test process's recorder (shared with the other in-process tests).
fn recorder() -> &'static PrometheusHandle {
    crate::common::recorder::metrics()
}

/// Tests here that read counters run one at a time.
static COUNTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn counter(series: &str) -> f64 {
    crate::common::recorder::counter(series)
}

fn refused(reason: &str) -> f64 {
    counter(&format!(
        "rampart_oob_answers_refused_total{{reason=\"{reason}\"}}"
    ))
}

async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// Captures this thread's logs (the tests run on a current-thread runtime,
/// so the relay's and the HTTP handlers' logs land here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

fn out_of_band(public_url: Option<String>) -> Arc<OutOfBand> {
    let config = OutOfBandConfig {
        timeout_secs: 60,
        public_url,
        ..OutOfBandConfig::default()
    };
    Arc::new(OutOfBand::new(
        config,
        Arc::new(SealKey::from_bytes(rand::random())),
    ))
}

fn context(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        client: "vpn".into(),
        client_address: "192.0.2.1".parse().unwrap(),
        nas_identifier: Some("gw1".into()),
        calling_station_id: Some("203.0.113.7".into()),
        time: unix_now(),
    }
}

fn park(oob: &OutOfBand, user: &str) -> Parked {
    let join = JoinKey {
        client: Arc::from("vpn"),
        station: Some("203.0.113.7".into()),
    };
    match oob.pending.park(user, join, Channel::Push) {
        Park::New(parked) => parked,
        _ => panic!("{user} already has a transaction"),
    }
}

fn ntfy_config(ntfy: &Ntfy, extra: Value) -> PushConfig {
    let mut config = json!({"format": "ntfy", "url": ntfy.url});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(config).unwrap()
}

fn target(url: String) -> PushTarget {
    PushTarget {
        url: Secret::new(url),
    }
}

/// rampart's HTTP listener (the real router) on 127.0.0.1:0, with `oob`
/// built by `make` once the address is known (it goes into public_url).
async fn http_listener(
    make: impl FnOnce(String) -> Arc<OutOfBand>,
) -> (String, Arc<OutOfBand>, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let oob = make(base.clone());
    let store = rampart::store::sqlite::SqliteStore::open_in_memory()
        .await
        .unwrap();
    let router = rampart::http::router(rampart::http::HttpState {
        metrics: recorder().clone(),
        store: Arc::new(store),
        oob: Some(oob.clone()),
    });
    let cancel = CancellationToken::new();
    tokio::spawn(rampart::http::serve(listener, router, cancel.clone()));
    (base, oob, cancel)
}

// ---- ntfy sender ----

#[tokio::test]
async fn ntfy_push_has_three_reply_buttons_on_the_users_topic() {
    let ntfy = Ntfy::start();
    let config = ntfy_config(&ntfy, json!({"reply_topic": REPLY_TOPIC}));
    let (sender, default_target) = push::build(&config).unwrap();
    assert!(default_target.is_none(), "ntfy has no shared topic");
    let oob = out_of_band(None);
    let parked = park(&oob, "alice");
    let approval = oob.approval(&parked.txn, context("alice"));
    sender
        .send(&target(ntfy.topic_url(ALICE_TOPIC)), &approval)
        .await
        .unwrap();

    let messages = ntfy.messages(ALICE_TOPIC);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["title"], "Approve sign-in?");
    assert_eq!(message["priority"], 4);
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .starts_with("Sign-in as alice to vpn from 203.0.113.7"),
        "{message}"
    );
    let actions = message["actions"].as_array().unwrap();
    let reply_url = format!("{}/{REPLY_TOPIC}", ntfy.url);
    let expected = [
        ("Approve", &approval.approve.token),
        ("Deny", &approval.deny.token),
        ("Report fraud", &approval.fraud.token),
    ];
    assert_eq!(actions.len(), 3);
    for (action, (label, token)) in actions.iter().zip(expected) {
        assert_eq!(action["action"], "http");
        assert_eq!(action["label"], label);
        assert_eq!(action["url"], reply_url.as_str());
        assert_eq!(action["method"], "POST");
        assert_eq!(action["body"], token.as_str());
        assert_eq!(action["clear"], true);
    }
    // Published as JSON to the server root, not with the topic in the URL.
    let request = ntfy.requests().pop().unwrap();
    assert_eq!(request.path, "/");
    assert_eq!(request.headers["content-type"], "application/json");
}

#[tokio::test]
async fn ntfy_buttons_point_at_rampart_without_a_reply_topic() {
    let ntfy = Ntfy::start();
    let (sender, _) = push::build(&ntfy_config(&ntfy, json!({}))).unwrap();
    let oob = out_of_band(Some("https://mfa.example.com/".into()));
    let parked = park(&oob, "alice");
    let approval = oob.approval(&parked.txn, context("alice"));
    sender
        .send(&target(ntfy.topic_url(ALICE_TOPIC)), &approval)
        .await
        .unwrap();
    let message = ntfy.messages(ALICE_TOPIC).pop().unwrap();
    let approve = &message["actions"][0];
    assert_eq!(
        approve["url"],
        format!(
            "https://mfa.example.com/oob/v1/answer?t={}",
            approval.approve.token
        )
    );
    assert_eq!(approve["method"], "POST");
    assert!(approve.get("body").is_none(), "the token is in the URL");

    // Neither a reply topic nor a public URL: nothing could answer.
    let nowhere = out_of_band(None);
    let parked = park(&nowhere, "bob");
    let approval = nowhere.approval(&parked.txn, context("bob"));
    let error = sender
        .send(&target(ntfy.topic_url("bob-topic-xyz")), &approval)
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::NoTarget(_)), "{error}");
    assert!(ntfy.messages("bob-topic-xyz").is_empty());

    // A bare topic resolves against [push] url; a bad name never leaves.
    sender
        .send(
            &target("bare-topic-name".into()),
            &oob.approval(&park(&oob, "carol").txn, context("carol")),
        )
        .await
        .unwrap();
    assert_eq!(ntfy.messages("bare-topic-name").len(), 1);
    let error = sender
        .send(&target(ntfy.topic_url("not.a.topic")), &approval)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "no_target");
}

#[tokio::test]
async fn ntfy_emulator_rejects_what_ntfy_rejects() {
    let ntfy = Ntfy::start();
    let http = reqwest::Client::new();
    let publish = async |body: &str| {
        let response = http
            .post(format!("{}/", ntfy.url))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["code"].as_u64().unwrap_or(0))
    };
    let http_action = json!({"action": "http", "label": "x", "url": "https://a.example/"});
    assert_eq!(publish("not json").await, (400, 40024));
    assert_eq!(publish(r#"{"topic":"a/b"}"#).await, (400, 40009));
    assert_eq!(publish(r#"{"message":"no topic"}"#).await, (400, 40009));
    assert_eq!(
        publish(r#"{"topic":"ok","priority":9}"#).await,
        (400, 40007)
    );
    let four =
        json!({"topic": "ok", "actions": [http_action, http_action, http_action, http_action]});
    assert_eq!(publish(&four.to_string()).await, (400, 40018));
    let no_label =
        json!({"topic": "ok", "actions": [{"action": "http", "url": "https://a.example/"}]});
    assert_eq!(publish(&no_label.to_string()).await, (400, 40018));
    let no_url = json!({"topic": "ok", "actions": [{"action": "view", "label": "x"}]});
    assert_eq!(publish(&no_url.to_string()).await, (400, 40018));
    let get_body = json!({"topic": "ok", "actions": [{"action": "http", "label": "x", "url": "https://a.example/", "method": "get", "body": "b"}]});
    assert_eq!(publish(&get_body.to_string()).await, (400, 40018));
    let unknown = json!({"topic": "ok", "actions": [{"action": "launch", "label": "x"}]});
    assert_eq!(publish(&unknown.to_string()).await, (400, 40018));
    assert!(ntfy.messages("ok").is_empty());
    let three = json!({"topic": "ok", "actions": [http_action, http_action, http_action]});
    let (status, _) = publish(&three.to_string()).await;
    assert_eq!(status, 200);
    let stored = ntfy.messages("ok").pop().unwrap();
    assert_eq!(stored["message"], "triggered", "ntfy's empty-message body");
    assert_eq!(stored["actions"][0]["id"].as_str().unwrap().len(), 10);
}

#[tokio::test]
async fn ntfy_token_is_checked_and_only_sent_to_the_configured_server() {
    let auth = Auth {
        tokens: vec![(
            "tk_rampart_good".into(),
            ALICE_TOPIC.into(),
            Perm::WriteOnly,
        )],
        everyone: vec![],
    };
    let ntfy = Ntfy::start_with(Options {
        auth: Some(auth.clone()),
        ..Options::default()
    });
    let other = Ntfy::start_with(Options {
        auth: Some(auth),
        ..Options::default()
    });
    let oob = out_of_band(Some("https://mfa.example.com".into()));
    let parked = park(&oob, "alice");
    let approval = oob.approval(&parked.txn, context("alice"));
    let alice = target(ntfy.topic_url(ALICE_TOPIC));

    let (wrong, _) = push::build(&ntfy_config(&ntfy, json!({"token": "tk_wrong"}))).unwrap();
    match wrong.send(&alice, &approval).await.unwrap_err() {
        ProviderError::Status { status, message } => {
            assert_eq!((status, message.as_str()), (401, "unauthorized"))
        }
        error => panic!("{error}"),
    }
    let (anonymous, _) = push::build(&ntfy_config(&ntfy, json!({}))).unwrap();
    match anonymous.send(&alice, &approval).await.unwrap_err() {
        ProviderError::Status { status, .. } => assert_eq!(status, 403),
        error => panic!("{error}"),
    }
    let (good, _) = push::build(&ntfy_config(&ntfy, json!({"token": "tk_rampart_good"}))).unwrap();
    let error = good
        .send(&target(ntfy.topic_url("somebody-elses-topic")), &approval)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 403, .. }),
        "{error}"
    );
    assert!(ntfy.messages(ALICE_TOPIC).is_empty());
    good.send(&alice, &approval).await.unwrap();
    assert_eq!(ntfy.messages(ALICE_TOPIC).len(), 1);
    let sent = ntfy.requests().pop().unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer tk_rampart_good");

    // A user enrolled on another server: our token stays home.
    let error = good
        .send(&target(other.topic_url(ALICE_TOPIC)), &approval)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 403, .. }),
        "{error}"
    );
    let seen = other.requests().pop().unwrap();
    assert!(!seen.headers.contains_key("authorization"), "{seen:?}");
}

// ---- the reply relay ----

#[tokio::test]
async fn relay_resolves_the_parked_login_when_the_phone_taps_approve() {
    let (_guard, logs) = capture_logs();
    // Readers need the token; anyone may write (the phone sends no credentials).
    let ntfy = Ntfy::start_with(Options {
        auth: Some(Auth {
            tokens: vec![("tk_rampart_relay".into(), "*".into(), Perm::ReadWrite)],
            everyone: vec![(REPLY_TOPIC.into(), Perm::WriteOnly)],
        }),
        keepalive: Duration::from_millis(100),
    });
    let config = ntfy_config(
        &ntfy,
        json!({"reply_topic": REPLY_TOPIC, "token": "tk_rampart_relay"}),
    );
    let (sender, _) = push::build(&config).unwrap();
    let oob = out_of_band(None);
    let cancel = CancellationToken::new();
    let relay = push::spawn_reply_relay(&config, oob.clone(), cancel.clone())
        .unwrap()
        .expect("ntfy with a reply topic runs a relay");
    assert!(ntfy.wait_for_subscribers(1, WAIT).await);
    let subscription = ntfy
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/json"))
        .unwrap();
    assert_eq!(subscription.path, format!("/{REPLY_TOPIC}/json"));
    assert_eq!(
        subscription.headers["authorization"],
        "Bearer tk_rampart_relay"
    );
    assert!(subscription.query.unwrap().starts_with("since="));

    let parked = park(&oob, "alice");
    let txn = parked.txn.clone();
    let approval = oob.approval(&txn, context("alice"));
    sender
        .send(&target(ntfy.topic_url(ALICE_TOPIC)), &approval)
        .await
        .unwrap();
    // Some keepalives go by first; they are not answers.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(oob.pending.user_of(&txn).is_some());

    let phone = Phone::new();
    let (_, tap) = phone.run(&ntfy, ALICE_TOPIC, 0, Script::Approve).await;
    let tap = tap.unwrap();
    assert_eq!(tap.status, 200, "ntfy accepted the anonymous reply");
    assert!(!tap.headers.contains_key("Authorization"));
    assert_eq!(parked.wait(WAIT).await, Answer::Approved);
    let reply = ntfy.messages(REPLY_TOPIC).pop().unwrap();
    assert_eq!(reply["message"], approval.approve.token.as_str());

    cancel.cancel();
    relay.await.unwrap();
    assert!(ntfy.wait_for_subscribers(0, WAIT).await);
    let text = logs.text();
    assert!(text.contains("out-of-band answer accepted"), "{text}");
    for secret in [
        REPLY_TOPIC,
        ALICE_TOPIC,
        "tk_rampart_relay",
        &approval.approve.token,
    ] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
}

#[tokio::test]
async fn relay_catches_up_on_answers_sent_while_the_stream_was_down() {
    let ntfy = Ntfy::start();
    let config = ntfy_config(&ntfy, json!({"reply_topic": REPLY_TOPIC}));
    let (sender, _) = push::build(&config).unwrap();
    let oob = out_of_band(None);
    let cancel = CancellationToken::new();
    push::spawn_reply_relay(&config, oob.clone(), cancel.clone())
        .unwrap()
        .unwrap();
    assert!(ntfy.wait_for_subscribers(1, WAIT).await);
    let phone = Phone::new();

    // Before any message: the stream drops, the user taps while it is down;
    // the relay comes back asking for everything since the server's `open`.
    let first = park(&oob, "alice");
    sender
        .send(
            &target(ntfy.topic_url(ALICE_TOPIC)),
            &oob.approval(&first.txn, context("alice")),
        )
        .await
        .unwrap();
    ntfy.cut_streams();
    assert!(ntfy.wait_for_subscribers(0, WAIT).await);
    let (_, tap) = phone.run(&ntfy, ALICE_TOPIC, 0, Script::Deny).await;
    assert_eq!(tap.unwrap().status, 200);
    assert_eq!(first.wait(WAIT).await, Answer::Denied);
    let resubscribe = ntfy
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/json"))
        .unwrap();
    let since = resubscribe.query.unwrap();
    let since: i64 = since.strip_prefix("since=").unwrap().parse().unwrap();
    assert!(
        (unix_now() as i64 - since).abs() < 30,
        "since={since}: a time"
    );
    let first_reply_id = ntfy.messages(REPLY_TOPIC)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The connection drops; the user taps before the relay is back.
    let second = park(&oob, "alice");
    sender
        .send(
            &target(ntfy.topic_url(ALICE_TOPIC)),
            &oob.approval(&second.txn, context("alice")),
        )
        .await
        .unwrap();
    ntfy.cut_streams();
    assert!(ntfy.wait_for_subscribers(0, WAIT).await);
    let (_, tap) = phone.run(&ntfy, ALICE_TOPIC, 1, Script::Approve).await;
    assert_eq!(tap.unwrap().status, 200);
    assert_eq!(second.wait(WAIT).await, Answer::Approved);
    let resubscribe = ntfy
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/json"))
        .unwrap();
    assert_eq!(
        resubscribe.query.as_deref(),
        Some(format!("since={first_reply_id}").as_str()),
        "the relay asks for what it missed"
    );
    cancel.cancel();
}

#[tokio::test]
async fn relay_refuses_replayed_forged_expired_and_other_users_tokens() {
    let _counting = COUNTERS.lock().await;
    let (_guard, logs) = capture_logs();
    recorder();
    let ntfy = Ntfy::start();
    let config = ntfy_config(&ntfy, json!({"reply_topic": REPLY_TOPIC}));
    let (sender, _) = push::build(&config).unwrap();
    let oob = out_of_band(None);
    let cancel = CancellationToken::new();
    push::spawn_reply_relay(&config, oob.clone(), cancel.clone())
        .unwrap()
        .unwrap();
    assert!(ntfy.wait_for_subscribers(1, WAIT).await);

    let alice = park(&oob, "alice");
    let bob = park(&oob, "bob");
    let expires = unix_now() + 60;
    let publish = async |body: String| {
        let status = reqwest::Client::new()
            .post(format!("{}/{REPLY_TOPIC}", ntfy.url))
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    };
    let before = [
        "bad_signature",
        "malformed",
        "expired",
        "unknown_transaction",
    ]
    .map(refused);

    // Signed with another key; signed for alice but naming bob's transaction.
    let forged = Tokens::new(Arc::new(SealKey::from_bytes([9; 32]))).sign(
        "alice",
        &alice.txn,
        Answer::Approved,
        expires,
    );
    publish(forged.clone()).await;
    let crossed = oob
        .tokens
        .sign("alice", &bob.txn, Answer::Approved, expires);
    publish(crossed.clone()).await;
    publish("approve please".into()).await;
    let stale = oob
        .tokens
        .sign("alice", &alice.txn, Answer::Approved, unix_now() - 5);
    publish(stale).await;
    assert!(wait_for(|| refused("bad_signature") >= before[0] + 2.0).await);
    assert!(wait_for(|| refused("malformed") >= before[1] + 1.0).await);
    assert!(wait_for(|| refused("expired") >= before[2] + 1.0).await);
    assert!(oob.pending.user_of(&alice.txn).is_some());
    assert!(oob.pending.user_of(&bob.txn).is_some());

    // The real answer, then its replay once the transaction is over.
    let approval = oob.approval(&alice.txn, context("alice"));
    sender
        .send(&target(ntfy.topic_url(ALICE_TOPIC)), &approval)
        .await
        .unwrap();
    let phone = Phone::new();
    let (_, tap) = phone.run(&ntfy, ALICE_TOPIC, 0, Script::Approve).await;
    assert_eq!(alice.wait(WAIT).await, Answer::Approved);
    assert_eq!(phone.replay(&tap.unwrap()).await, 200, "ntfy takes it");
    assert!(wait_for(|| refused("unknown_transaction") >= before[3] + 1.0).await);
    // Bob's login is untouched by all of it.
    assert!(oob.pending.user_of(&bob.txn).is_some());

    let text = logs.text();
    assert!(
        text.contains("reason=\"bad_signature\"") || text.contains("reason=bad_signature"),
        "{text}"
    );
    for secret in [
        forged.as_str(),
        crossed.as_str(),
        approval.approve.token.as_str(),
        REPLY_TOPIC,
    ] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
    drop(bob);
    cancel.cancel();
}

#[tokio::test]
async fn relay_reports_a_fraud_answer() {
    let ntfy = Ntfy::start();
    let config = ntfy_config(&ntfy, json!({"reply_topic": REPLY_TOPIC}));
    let (sender, _) = push::build(&config).unwrap();
    let oob = out_of_band(None);
    let cancel = CancellationToken::new();
    push::spawn_reply_relay(&config, oob.clone(), cancel.clone())
        .unwrap()
        .unwrap();
    assert!(ntfy.wait_for_subscribers(1, WAIT).await);
    let parked = park(&oob, "alice");
    sender
        .send(
            &target(ntfy.topic_url(ALICE_TOPIC)),
            &oob.approval(&parked.txn, context("alice")),
        )
        .await
        .unwrap();
    Phone::new().run(&ntfy, ALICE_TOPIC, 0, Script::Fraud).await;
    assert_eq!(parked.wait(WAIT).await, Answer::Fraud);
    cancel.cancel();
}

// ---- the HTTP answer endpoint ----

#[tokio::test]
async fn answer_page_get_changes_nothing_and_post_answers_once() {
    let _counting = COUNTERS.lock().await;
    let (base, oob, cancel) = http_listener(|base| out_of_band(Some(base))).await;
    let http = reqwest::Client::new();
    let user = "<b>eve&co</b>";
    let parked = park(&oob, user);
    let txn = parked.txn.clone();
    let approval = oob.approval(&txn, context(user));
    let approve_url = approval.approve.url.clone().unwrap();
    assert!(approve_url.starts_with(&format!("{base}/oob/v1/answer?t=")));

    // GET (a link scanner, a preview, the user's browser): a page, no answer.
    for _ in 0..2 {
        let page = http.get(&approve_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let html = page.text().await.unwrap();
        assert!(html.contains("&lt;b&gt;eve&amp;co&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>eve"), "{html}");
        assert!(html.contains("203.0.113.7"));
        assert_eq!(html.matches("<form method=\"post\"").count(), 3, "{html}");
        assert!(oob.pending.user_of(&txn).is_some(), "GET must not answer");
    }
    // A Deny link never offers Approve.
    let deny_page = http
        .get(approval.deny.url.as_ref().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!deny_page.contains(">Approve<"), "{deny_page}");
    assert_eq!(deny_page.matches("<form method=\"post\"").count(), 2);

    // The browser submits the form: answered once.
    let waiter = tokio::spawn(parked.wait(WAIT));
    let (status, posted) = Phone::new().click(&approve_url).await;
    assert_eq!(status, 200);
    let (code, text) = posted.unwrap();
    assert_eq!(code, 200);
    assert!(text.contains("Sign-in approved"), "{text}");
    assert_eq!(waiter.await.unwrap(), Answer::Approved);

    let before = refused("unknown_transaction");
    let again = http
        .post(format!("{base}/oob/v1/answer"))
        .form(&[("t", approval.approve.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("expired or was already answered")
    );
    assert_eq!(refused("unknown_transaction"), before + 1.0);
    assert_eq!(http.get(&approve_url).send().await.unwrap().status(), 410);

    // Not a token; forged for a live transaction; no token at all.
    let bob = park(&oob, "bob");
    let forged = Tokens::new(Arc::new(SealKey::from_bytes([3; 32]))).sign(
        "bob",
        &bob.txn,
        Answer::Approved,
        unix_now() + 60,
    );
    let post = async |body: String| {
        http.post(format!("{base}/oob/v1/answer"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("t=garbage".into()).await, 400);
    assert_eq!(post(format!("t={forged}")).await, 403);
    assert_eq!(post(String::new()).await, 400);
    assert!(oob.pending.user_of(&bob.txn).is_some());
    cancel.cancel();
}

#[tokio::test]
async fn ntfy_buttons_answer_through_the_http_endpoint_without_a_relay() {
    let ntfy = Ntfy::start();
    let (sender, _) = push::build(&ntfy_config(&ntfy, json!({}))).unwrap();
    let (_, oob, cancel) = http_listener(|base| out_of_band(Some(base))).await;
    let phone = Phone::new();

    let parked = park(&oob, "alice");
    sender
        .send(
            &target(ntfy.topic_url(ALICE_TOPIC)),
            &oob.approval(&parked.txn, context("alice")),
        )
        .await
        .unwrap();
    let waiter = tokio::spawn(parked.wait(WAIT));
    // The app POSTs to the URL with an empty body; the token is in the query.
    let (_, tap) = phone.run(&ntfy, ALICE_TOPIC, 0, Script::Deny).await;
    let tap = tap.unwrap();
    assert_eq!(tap.body.as_deref(), Some(""));
    assert_eq!(tap.status, 200);
    assert_eq!(waiter.await.unwrap(), Answer::Denied);
    assert_eq!(phone.replay(&tap).await, 410, "a replay finds nothing");
    cancel.cancel();
}

// ---- webhook ----

#[tokio::test]
async fn webhook_push_is_signed_and_answered_through_its_link() {
    let secret = "whsec_0123456789abcdef0123";
    let receiver = WebhookReceiver::start(secret);
    let (_, oob, cancel) = http_listener(|base| out_of_band(Some(base))).await;
    let config: PushConfig = serde_json::from_value(json!({
        "format": "webhook", "url": receiver.url, "signing_secret": secret,
    }))
    .unwrap();
    let (sender, default_target) = push::build(&config).unwrap();
    let default_target = default_target.expect("the webhook URL is everybody's target");

    let parked = park(&oob, "alice");
    let approval = oob.approval(&parked.txn, context("alice"));
    sender.send(&default_target, &approval).await.unwrap();
    let pushed = receiver.next_push(0, WAIT).await.unwrap();
    assert_eq!(pushed["type"], "rampart.push.v1");
    assert_eq!(pushed["txn"], parked.txn.as_str());
    assert_eq!(pushed["user"], "alice");
    assert_eq!(pushed["client"], "vpn");
    assert_eq!(pushed["client_address"], "192.0.2.1");
    assert_eq!(pushed["nas_identifier"], "gw1");
    assert_eq!(pushed["calling_station_id"], "203.0.113.7");
    assert_eq!(pushed["expires_at"], approval.expires_at);
    assert_eq!(pushed["approve_token"], approval.approve.token.as_str());
    assert_eq!(pushed["fraud_url"], approval.fraud.url.as_deref().unwrap());

    // The receiver refuses a push signed with another secret; the sender reports it.
    let wrong: PushConfig = serde_json::from_value(json!({
        "format": "webhook", "url": receiver.url, "signing_secret": "whsec_not_the_right_one_00",
    }))
    .unwrap();
    let (forger, _) = push::build(&wrong).unwrap();
    let error = forger.send(&default_target, &approval).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Status { status: 401, .. }),
        "{error}"
    );
    assert_eq!(receiver.refused(), 1);
    assert_eq!(receiver.pushes().len(), 1);

    let waiter = tokio::spawn(parked.wait(WAIT));
    let (status, answered) = Phone::new()
        .click(pushed["approve_url"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(answered.unwrap().0, 200);
    assert_eq!(waiter.await.unwrap(), Answer::Approved);
    cancel.cancel();
}
