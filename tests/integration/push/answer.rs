//! The HTTP answer endpoint (`/oob/v1/answer`): GET shows, POST answers once;
//! ntfy buttons calling it directly; the webhook format answered through its
//! link.

use rampart::factor::oob::token::Tokens;
use rampart::factor::oob::{Answer, ProviderError};
use rampart::factor::push;

use super::*;
use crate::common::phone::{Phone, Script, WebhookReceiver};

#[tokio::test]
async fn answer_page_get_changes_nothing_and_post_answers_once() {
    let _counting = COUNTERS.lock().await;
    let (base, oob, cancel) = http_listener(|base| out_of_band(Some(base))).await;
    let http = reqwest::Client::new();
    let user = "<b>eve&co</b>";
    let parked = park(&oob, user);
    let txn = parked.txn();
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
        &bob.txn(),
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
    assert!(oob.pending.user_of(&bob.txn()).is_some());
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
            &oob.approval(&parked.txn(), context("alice")),
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
    let approval = oob.approval(&parked.txn(), context("alice"));
    sender.send(&default_target, &approval).await.unwrap();
    let pushed = receiver.next_push(0, WAIT).await.unwrap();
    assert_eq!(pushed["type"], "rampart.push.v1");
    assert_eq!(pushed["txn"], parked.txn().as_str());
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
