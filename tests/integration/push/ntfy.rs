//! The ntfy sender against the emulator: the message and its buttons, where
//! the buttons point, the access token, and the emulator refusing what ntfy
//! refuses.

use rampart::factor::oob::ProviderError;
use rampart::factor::push;

use super::*;
use crate::common::ntfy::{Auth, Options, Perm};

#[tokio::test]
async fn ntfy_push_has_three_reply_buttons_on_the_users_topic() {
    let ntfy = Ntfy::start();
    let config = ntfy_config(&ntfy, json!({"reply_topic": REPLY_TOPIC}));
    let (sender, default_target) = push::build(&config).unwrap();
    assert!(default_target.is_none(), "ntfy has no shared topic");
    let oob = out_of_band(None);
    let parked = park(&oob, "alice");
    let approval = oob.approval(&parked.txn(), context("alice"));
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
    let approval = oob.approval(&parked.txn(), context("alice"));
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
    let approval = nowhere.approval(&parked.txn(), context("bob"));
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
            &oob.approval(&park(&oob, "carol").txn(), context("carol")),
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
    let approval = oob.approval(&parked.txn(), context("alice"));
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
