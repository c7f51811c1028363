//! Request-path tests of the out-of-band logic with in-process providers:
//! the test plays the phone, answering through the same pending table and
//! signed tokens the HTTP listener and relays use. The real providers are
//! tested end to end against their emulators in `tests/integration`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Pipeline, Verdict};
use crate::auth::NoPrimary;
use crate::config::{Policy, Unenrolled};
use crate::factor::oob::{
    Answer, Approval, CallPrompt, Caller, FailMode, HostedMfa, HostedOutcome, HostedRequest,
    OutOfBand, OutOfBandConfig, ProviderError, PushSender, PushTarget, SmsSender,
};
use crate::factor::phone::{PinMode, pin};
use crate::factor::recovery::RecoveryCodes;
use crate::factor::totp::{TotpConfig, TotpFactor};
use crate::radius::AccessRequest;
use crate::seal::SealKey;
use crate::secret::Secret;
use crate::store::{DeviceKind, SqliteStore, Store};
use crate::username::UsernameConfig;

/// Hands every approval to the test, which plays the phone.
struct Phone(mpsc::UnboundedSender<Approval>);

#[async_trait]
impl PushSender for Phone {
    async fn send(&self, _target: &PushTarget, approval: &Approval) -> Result<(), ProviderError> {
        self.0.send(approval.clone()).unwrap();
        Ok(())
    }
}

#[async_trait]
impl Caller for Phone {
    async fn call(
        &self,
        _number: &str,
        approval: &Approval,
        _prompt: CallPrompt,
    ) -> Result<(), ProviderError> {
        self.0.send(approval.clone()).unwrap();
        Ok(())
    }
}

/// Records texts.
#[derive(Default)]
struct Texts(Mutex<Vec<(String, String)>>);

#[async_trait]
impl SmsSender for Arc<Texts> {
    async fn send(&self, number: &str, text: &Secret<String>) -> Result<(), ProviderError> {
        self.0
            .lock()
            .unwrap()
            .push((number.to_string(), text.expose().clone()));
        Ok(())
    }
}

struct Down;

#[async_trait]
impl HostedMfa for Down {
    async fn authenticate(&self, _request: &HostedRequest<'_>) -> HostedOutcome {
        HostedOutcome::Unavailable { reason: "connect" }
    }
}

struct Setup {
    pipeline: Arc<Pipeline>,
    oob: Arc<OutOfBand>,
    store: Arc<dyn Store>,
    approvals: mpsc::UnboundedReceiver<Approval>,
    texts: Arc<Texts>,
}

async fn setup(adjust: impl FnOnce(&mut OutOfBandConfig)) -> Setup {
    setup_with(adjust, PinMode::Off).await
}

async fn setup_with(adjust: impl FnOnce(&mut OutOfBandConfig), pin: PinMode) -> Setup {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let key = Arc::new(SealKey::from_bytes([3; 32]));
    let mut config = OutOfBandConfig::default();
    adjust(&mut config);
    let (sender, approvals) = mpsc::unbounded_channel();
    let texts = Arc::new(Texts::default());
    let mut oob = OutOfBand::new(config, key.clone());
    oob.push = Some(Arc::new(Phone(sender.clone())));
    oob.caller = Some(Arc::new(Phone(sender)));
    oob.sms = Some(Arc::new(texts.clone()));
    oob.phone_pin = pin;
    let oob = Arc::new(oob);
    let policy = Policy {
        code_separator: ",".into(),
        unenrolled: Unenrolled::Reject,
        enroll_url: None,
        max_failures: 5,
        lockout: Duration::from_secs(900),
        challenge_ttl: Duration::from_secs(120),
    };
    let pipeline = Pipeline::new(
        Arc::new(NoPrimary),
        TotpFactor::new(store.clone(), key.clone(), TotpConfig::default()),
        RecoveryCodes::new(store.clone(), key.clone()),
        store.clone(),
        policy,
        UsernameConfig::default(),
        key.clone(),
    )
    .with_out_of_band(oob.clone());
    for user in ["alice", "bob"] {
        let sealed = key.seal(user.as_bytes(), b"https://ntfy.example/topic-xyz");
        store
            .add_device(user, DeviceKind::Push, "phone", &sealed, 1)
            .await
            .unwrap();
        let sealed = key.seal(user.as_bytes(), b"+15550001234");
        store
            .add_device(user, DeviceKind::Phone, "primary", &sealed, 1)
            .await
            .unwrap();
    }
    Setup {
        pipeline: Arc::new(pipeline),
        oob,
        store,
        approvals,
        texts,
    }
}

fn request(user: &str, typed: Option<&str>, station: &str) -> AccessRequest {
    AccessRequest {
        user_name: user.to_string(),
        password: typed.map(|t| Secret::new(t.to_string())),
        state: None,
        client: Arc::from("rdgw"),
        peer: "192.0.2.10:40000".parse().unwrap(),
        nas_ip: None,
        nas_identifier: None,
        calling_station_id: Some(station.to_string()),
        authenticator: [0; 16],
        attributes: Vec::new(),
    }
}

/// What `Handler::handle` does: decide, then finish a held login.
async fn decide(pipeline: &Arc<Pipeline>, request: AccessRequest) -> Verdict {
    let user = request.user_name.clone();
    let mut verdict = pipeline.decide(&request, &user).await;
    if let Some(held) = verdict.held.take() {
        verdict = pipeline.finish_held(*held).await;
    }
    verdict
}

/// The phone taps a button: the token is checked and the login resolved,
/// exactly as the HTTP listener and the ntfy relay do it.
fn tap(oob: &OutOfBand, approval: &Approval, answer: Answer) {
    let token = match answer {
        Answer::Approved => &approval.approve.token,
        Answer::Fraud => &approval.fraud.token,
        _ => &approval.deny.token,
    };
    let (txn, answer) = oob
        .tokens
        .verify(token, &oob.pending, approval.context.time)
        .unwrap();
    oob.pending.resolve(&txn, answer).unwrap();
}

#[tokio::test]
async fn rd_gateway_login_waits_for_the_push_and_a_retry_joins_it() {
    let mut s = setup(|_| {}).await;
    // RD Gateway through NPS: no password, auto means push.
    let first = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("alice", None, "10.0.0.5")).await }
    });
    let approval = s.approvals.recv().await.unwrap();
    assert_eq!(approval.context.user, "alice");
    assert!(approval.message.contains("rdgw"), "{}", approval.message);
    // The user clicks Connect again: a new packet for the same attempt joins.
    let retry = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("alice", None, "10.0.0.5")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    tap(&s.oob, &approval, Answer::Approved);
    assert_eq!(first.await.unwrap().reason, "ok");
    assert_eq!(retry.await.unwrap().reason, "ok");
    // Exactly one push for the two packets.
    assert!(s.approvals.try_recv().is_err());
    assert!(s.oob.pending.is_empty());
}

#[tokio::test]
async fn deny_locks_and_fraud_locks_even_without_deny_lock() {
    let mut s = setup(|c| c.deny_lock_minutes = 0).await;
    let login = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("alice", Some("push"), "a")).await }
    });
    let approval = s.approvals.recv().await.unwrap();
    tap(&s.oob, &approval, Answer::Denied);
    assert_eq!(login.await.unwrap().reason, "denied");
    // deny_lock_minutes = 0: a plain deny does not lock.
    assert_eq!(
        s.store.login_state("alice", 0).await.unwrap().locked_until,
        None
    );

    let login = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("alice", Some("push"), "a")).await }
    });
    let approval = s.approvals.recv().await.unwrap();
    tap(&s.oob, &approval, Answer::Fraud);
    assert_eq!(login.await.unwrap().reason, "fraud_reported");
    let next = decide(&s.pipeline, request("alice", Some("push"), "a")).await;
    assert_eq!(next.reason, "locked_out");
    assert!(
        s.approvals.try_recv().is_err(),
        "a locked user gets no push"
    );
}

#[tokio::test]
async fn timeout_rejects_and_the_rate_limit_stops_push_fatigue() {
    let mut s = setup(|c| {
        c.timeout_secs = 1;
        c.max_per_window = 2;
    })
    .await;
    for _ in 0..2 {
        let verdict = decide(&s.pipeline, request("bob", Some("phone"), "a")).await;
        assert_eq!(verdict.reason, "timeout");
        s.approvals.recv().await.unwrap();
    }
    let verdict = decide(&s.pipeline, request("bob", Some("phone"), "a")).await;
    assert_eq!(verdict.reason, "rate_limited");
    assert!(s.approvals.try_recv().is_err());
}

#[tokio::test]
async fn one_pending_per_user_from_elsewhere_is_refused() {
    let mut s = setup(|_| {}).await;
    let first = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("alice", Some("push"), "home")).await }
    });
    let approval = s.approvals.recv().await.unwrap();
    let elsewhere = decide(&s.pipeline, request("alice", Some("push"), "attacker")).await;
    assert_eq!(elsewhere.reason, "approval_pending_elsewhere");
    // Another user is independent.
    let bob = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("bob", Some("push"), "x")).await }
    });
    let bob_approval = s.approvals.recv().await.unwrap();
    tap(&s.oob, &bob_approval, Answer::Approved);
    tap(&s.oob, &approval, Answer::Approved);
    assert_eq!(bob.await.unwrap().reason, "ok");
    assert_eq!(first.await.unwrap().reason, "ok");
}

#[tokio::test]
async fn sms_keyword_sends_a_single_use_code() {
    let s = setup(|_| {}).await;
    let sent = decide(&s.pipeline, request("alice", Some("sms"), "a")).await;
    assert_eq!(sent.reason, "sms_sent");
    let (number, text) = s.texts.0.lock().unwrap().pop().unwrap();
    assert_eq!(number, "+15550001234");
    let code: String = text.chars().filter(char::is_ascii_digit).take(6).collect();
    assert_eq!(code.len(), 6, "{text}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let verdict = decide(&s.pipeline, request("alice", Some(wrong), "a")).await;
    assert_eq!(verdict.reason, "bad_code");
    let verdict = decide(&s.pipeline, request("alice", Some(&code), "a")).await;
    assert_eq!((verdict.reason, verdict.factor), ("ok", "sms"));
    let verdict = decide(&s.pipeline, request("alice", Some(&code), "a")).await;
    assert_eq!(verdict.reason, "bad_code", "an SMS code is single use");
}

#[tokio::test]
async fn users_without_devices_are_not_enrolled_and_keywords_need_a_device() {
    let s = setup(|_| {}).await;
    let verdict = decide(&s.pipeline, request("carol", None, "a")).await;
    assert_eq!(verdict.reason, "not_enrolled");
    s.store
        .remove_device("alice", DeviceKind::Phone, "primary")
        .await
        .unwrap();
    let verdict = decide(&s.pipeline, request("alice", Some("phone"), "a")).await;
    assert_eq!(verdict.reason, "factor_not_enrolled");
}

async fn hosted_down(failmode: FailMode) -> Verdict {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let key = Arc::new(SealKey::from_bytes([4; 32]));
    let mut oob = OutOfBand::new(OutOfBandConfig::default(), key.clone());
    oob.hosted = Some(Arc::new(Down));
    oob.hosted_failmode = failmode;
    let pipeline = Arc::new(
        Pipeline::new(
            Arc::new(NoPrimary),
            TotpFactor::new(store.clone(), key.clone(), TotpConfig::default()),
            RecoveryCodes::new(store.clone(), key.clone()),
            store,
            Policy {
                code_separator: ",".into(),
                unenrolled: Unenrolled::Reject,
                enroll_url: None,
                max_failures: 5,
                lockout: Duration::from_secs(900),
                challenge_ttl: Duration::from_secs(120),
            },
            UsernameConfig::default(),
            key,
        )
        .with_out_of_band(Arc::new(oob)),
    );
    decide(&pipeline, request("dave", Some("push"), "a")).await
}

#[tokio::test]
async fn hosted_service_down_follows_the_fail_mode() {
    let open = hosted_down(FailMode::Safe).await;
    assert_eq!(
        (open.decision.outcome(), open.reason),
        ("accept", "failopen")
    );
    let closed = hosted_down(FailMode::Secure).await;
    assert_eq!(
        (closed.decision.outcome(), closed.reason),
        ("reject", "mfa_unavailable")
    );
}

#[tokio::test]
async fn a_required_pin_is_checked_and_a_wrong_one_counts_as_a_failure() {
    let mut s = setup_with(|_| {}, PinMode::Required).await;
    // No PIN yet: refused before any call.
    let verdict = decide(&s.pipeline, request("alice", Some("phone"), "a")).await;
    assert_eq!(verdict.reason, "pin_not_enrolled");
    assert!(s.approvals.try_recv().is_err());

    let key = SealKey::from_bytes([3; 32]);
    s.store
        .set_phone_pin("alice", &pin::hash(&key, "alice", "4829"), 1)
        .await
        .unwrap();
    let login = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("alice", Some("phone"), "a")).await }
    });
    let approval = s.approvals.recv().await.unwrap();
    // The call was placed with the PIN's hash registered for its keypress.
    let judge = |digits| s.oob.judge_pin(&approval.txn, Some(digits));
    assert_eq!(judge("4829"), Some(Answer::Approved));
    assert_eq!(judge("4828"), Some(Answer::WrongPin));
    assert_eq!(judge("9"), Some(Answer::Fraud));
    s.oob
        .pending
        .resolve(&approval.txn, Answer::WrongPin)
        .unwrap();
    let verdict = login.await.unwrap();
    assert_eq!(verdict.reason, "wrong_pin");
    let state = s.store.login_state("alice", 0).await.unwrap();
    assert_eq!((state.failures, state.locked_until), (1, None));

    // Pushes never ask for the PIN.
    let login = tokio::spawn({
        let p = s.pipeline.clone();
        async move { decide(&p, request("alice", Some("push"), "a")).await }
    });
    let approval = s.approvals.recv().await.unwrap();
    assert_eq!(s.oob.judge_pin(&approval.txn, Some("4829")), None);
    tap(&s.oob, &approval, Answer::Approved);
    assert_eq!(login.await.unwrap().reason, "ok");
}

#[tokio::test]
async fn an_accepted_code_clears_the_failures_and_records_the_login() {
    // The success bookkeeping rides on the code's claim (one commit per
    // login), so an accepted code must still reset the count and set
    // last_login.
    let s = setup(|_| {}).await;
    let seed = b"12345678901234567890";
    let key = SealKey::from_bytes([3; 32]);
    s.store
        .set_totp("carol", &key.seal(b"carol", seed), 1)
        .await
        .unwrap();
    let wrong = decide(&s.pipeline, request("carol", Some("000000"), "a")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = crate::factor::totp::code_at(seed, now);
    // "000000" could be the current code once in a million runs.
    if code != "000000" {
        assert_eq!(wrong.reason, "bad_code");
        assert_eq!(
            s.store
                .login_state("carol", now as i64)
                .await
                .unwrap()
                .failures,
            1
        );
    }
    let right = decide(&s.pipeline, request("carol", Some(&code), "a")).await;
    assert_eq!((right.reason, right.factor), ("ok", "totp"));
    let state = s.store.login_state("carol", now as i64).await.unwrap();
    assert_eq!(state.failures, 0);
    assert!(state.last_login.is_some_and(|t| t >= now as i64 - 5));
}
