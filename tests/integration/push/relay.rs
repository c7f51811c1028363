//! The ntfy reply relay: a tap on the reply-topic button resolves the held
//! login; catching up after a dropped stream; refused tokens counted and
//! logged without the token.

use rampart::factor::oob::Answer;
use rampart::factor::oob::token::Tokens;
use rampart::factor::push;

use super::*;
use crate::common::ntfy::{Auth, Options, Perm};
use crate::common::phone::{Phone, Script};

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
    let txn = parked.txn();
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
            &oob.approval(&first.txn(), context("alice")),
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
            &oob.approval(&second.txn(), context("alice")),
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
        &alice.txn(),
        Answer::Approved,
        expires,
    );
    publish(forged.clone()).await;
    let crossed = oob
        .tokens
        .sign("alice", &bob.txn(), Answer::Approved, expires);
    publish(crossed.clone()).await;
    publish("approve please".into()).await;
    let stale = oob
        .tokens
        .sign("alice", &alice.txn(), Answer::Approved, unix_now() - 5);
    publish(stale).await;
    assert!(wait_for(|| refused("bad_signature") >= before[0] + 2.0).await);
    assert!(wait_for(|| refused("malformed") >= before[1] + 1.0).await);
    assert!(wait_for(|| refused("expired") >= before[2] + 1.0).await);
    assert!(oob.pending.user_of(&alice.txn()).is_some());
    assert!(oob.pending.user_of(&bob.txn()).is_some());

    // The real answer, then its replay once the transaction is over.
    let approval = oob.approval(&alice.txn(), context("alice"));
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
    assert!(oob.pending.user_of(&bob.txn()).is_some());

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
            &oob.approval(&parked.txn(), context("alice")),
        )
        .await
        .unwrap();
    Phone::new().run(&ntfy, ALICE_TOPIC, 0, Script::Fraud).await;
    assert_eq!(parked.wait(WAIT).await, Answer::Fraud);
    cancel.cancel();
}
