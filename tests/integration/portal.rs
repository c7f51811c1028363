//! The self-enrollment portal. End to end with the real `rampart` binary: the
//! whole TOTP enrollment in a real headless Chromium (QR decoded from a
//! screenshot with zbarimg, then a RADIUS login through radclient), CSRF and
//! rate limits, abandoning half-way, invitations, and phone verification
//! through the Twilio emulator. Through the library (the portal router on a
//! loopback port, with recording push and SMS senders): session expiry,
//! the directory phone prefill, and push enrollment with a real approval.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fantoccini::Locator;
use rampart::auth::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};
use rampart::factor::oob::{
    Answer, Approval, OutOfBand, OutOfBandConfig, ProviderError, PushSender, PushTarget, SmsSender,
};
use rampart::factor::totp::{TotpConfig, code_at};
use rampart::portal::{Portal, PortalConfig, PortalParts, invitation_hash};
use rampart::seal::SealKey;
use rampart::secret::Secret;
use rampart::store::{DeviceKind, SqliteStore, Store};

use crate::common::browser::{Browser, decode_qr};
use crate::common::twilio::{ACCOUNT_SID, AUTH_TOKEN, FROM, Twilio};
use crate::common::web::{Page, Web};
use crate::common::*;

fn portal_options(more: &str) -> Options {
    Options {
        extra: format!(
            "[portal]\nenabled = true\ntitle = \"Example Corp\"\nsecure_cookies = false\n{more}\n"
        ),
        ..Options::default()
    }
}

/// The base32 key shown on the TOTP page, as seed bytes.
fn shown_seed(page: &Page) -> Vec<u8> {
    let key = page.text_of_class("key").expect("key on the page");
    let key: String = key.split_whitespace().collect();
    totp_rs::Secret::try_from_base32(&key)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn sign_in(web: &mut Web, user: &str, password: &str) -> Page {
    let form = web.get("/enroll/signin");
    let csrf = form.csrf();
    web.post(
        "/enroll/signin",
        &[("csrf", &csrf), ("user", user), ("password", password)],
    )
}

fn assert_not_logged(rampart: &Rampart, secrets: &[&str]) {
    let logs = rampart.logs();
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret:?} in rampart's logs");
    }
}

/// The `data-screen` of the page shown now, once it differs from
/// `previous`: a click returns before the next page has loaded, and the old
/// page's elements go stale under the reader.
async fn next_screen(client: &fantoccini::Client, previous: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = match client.find(Locator::Css("main")).await {
            Ok(main) => main.attr("data-screen").await.ok().flatten(),
            Err(_) => None,
        };
        if let Some(shown) = shown
            && Some(shown.as_str()) != previous
        {
            return shown;
        }
        assert!(Instant::now() < deadline, "still on screen {previous:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sign-in → QR page → done: three screens, one trip to the phone (scan,
/// then type the code), in a real Chromium; then the VPN login works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrollment_in_headless_chromium_then_radius_login() {
    let rampart = Rampart::start_with(portal_options(""));
    let password = "Corr3ct-h0rse-battery";
    rampart.add_user("alice", password);
    let browser = Browser::start().await;
    let c = &browser.client;
    let mut screens = Vec::new();

    c.goto(&format!("http://{}/enroll", rampart.metrics))
        .await
        .unwrap();
    screens.push(next_screen(c, None).await);
    c.find(Locator::Css("#user"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/enroll/signin'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    screens.push(next_screen(c, Some("signin")).await);

    // The phone's part: scan the QR code on the screen.
    let png = c.screenshot().await.unwrap();
    let decoded = decode_qr(&png);
    let uri = decoded
        .iter()
        .find(|text| text.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth QR code on the screen: {decoded:?}"));
    assert!(
        uri.contains("alice") && uri.contains("issuer=rampart"),
        "{uri}"
    );
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("secret in the URI");
    let seed = totp_rs::Secret::try_from_base32(secret)
        .unwrap()
        .as_ref()
        .to_vec();
    let code = code_at(&seed, unix_now());
    // ...and type the code it shows.
    c.find(Locator::Css("#code"))
        .await
        .unwrap()
        .send_keys(&code)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/enroll/totp'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    screens.push(next_screen(c, Some("totp")).await);
    let source = c.source().await.unwrap();
    browser.close().await;

    assert_eq!(screens, ["signin", "totp", "home"]);
    assert!(screens.len() <= 3, "at most 3 screens: {screens:?}");
    assert!(
        source.contains("Your authenticator app is active"),
        "{source}"
    );

    // The code that activated the app is used up (RFC 6238 §5.2); the next one signs in.
    let next = code_at(&seed, unix_now() + 30);
    radclient_auth(&rampart, "alice", &format!("{password},{next}")).assert_code("Access-Accept");
    radclient_auth(&rampart, "alice", &format!("{password},{code}")).assert_code("Access-Reject");
    assert_not_logged(&rampart, &[password, secret, &code, &next]);
    assert!(
        rampart
            .logs()
            .contains("portal: authenticator app enrolled")
    );
}

#[test]
fn signin_needs_csrf_and_is_rate_limited_per_user_and_per_address() {
    let rampart = Rampart::start_with(portal_options(
        "signin_limit_per_user = 3\nsignin_limit_per_address = 6",
    ));
    rampart.add_user("bob", "pw-Bob-right");
    let mut web = Web::new(rampart.metrics);

    let page = web.get("/enroll");
    page.assert_status(200);
    assert_eq!(page.screen(), Some("signin"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(!page.body.contains("<script"), "no scripts");
    let cookie = page.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let csrf = page.csrf();

    // Without the token, or with another one: 403, and no attempt counted.
    let right = [("user", "bob"), ("password", "pw-Bob-right")];
    web.post("/enroll/signin", &right)
        .assert_status(403)
        .assert_contains("Nothing was changed");
    let wrong_token = "0".repeat(64);
    web.post(
        "/enroll/signin",
        &[
            ("csrf", &wrong_token),
            ("user", "bob"),
            ("password", "pw-Bob-right"),
        ],
    )
    .assert_status(403);
    assert!(!web.cookies.contains_key("rampart_session"));

    for _ in 0..3 {
        web.post(
            "/enroll/signin",
            &[("csrf", &csrf), ("user", "bob"), ("password", "wrong")],
        )
        .assert_status(401)
        .assert_contains("user name or password is not right");
    }
    // The 4th attempt for bob is refused before the password is checked, even a right one.
    web.post(
        "/enroll/signin",
        &[
            ("csrf", &csrf),
            ("user", "bob"),
            ("password", "pw-Bob-right"),
        ],
    )
    .assert_status(429)
    .assert_contains("Too many sign-in attempts. Wait 15 minutes, then try again.");
    assert!(!web.cookies.contains_key("rampart_session"));

    // Per address: 4 attempts so far from 127.0.0.1; 2 more for other names, then none.
    for user in ["carol", "dave"] {
        web.post(
            "/enroll/signin",
            &[("csrf", &csrf), ("user", user), ("password", "x")],
        )
        .assert_status(401);
    }
    web.post(
        "/enroll/signin",
        &[("csrf", &csrf), ("user", "erin"), ("password", "x")],
    )
    .assert_status(429);
    assert!(
        rampart.metric(r#"rampart_portal_signins_total{outcome="rate_limited"}"#) >= 2.0,
        "{}",
        rampart.metrics()
    );
    assert!(rampart.metric(r#"rampart_portal_signins_total{outcome="csrf"}"#) >= 2.0);
    assert_not_logged(&rampart, &["pw-Bob-right", &csrf]);
}

/// A wrong-password sign-in; the status says whether the limit refused it.
fn failed_sign_in(web: &mut Web, user: &str) -> u16 {
    let csrf = web.get("/enroll/signin").csrf();
    web.post(
        "/enroll/signin",
        &[("csrf", &csrf), ("user", user), ("password", "wrong")],
    )
    .status
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit() {
    let rampart = Rampart::start_with(portal_options(
        "signin_limit_per_address = 2\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]",
    ));
    // The proxy (127.0.0.1) forwards two offices; each gets two attempts.
    let mut office = Web::new(rampart.metrics).forwarded_for("198.51.100.7");
    assert_eq!(failed_sign_in(&mut office, "u1"), 401);
    assert_eq!(failed_sign_in(&mut office, "u2"), 401);
    assert_eq!(failed_sign_in(&mut office, "u3"), 429);
    // Naming another address to the left of what the proxy saw changes nothing:
    // only entries written by trusted proxies are believed, read from the right.
    let mut spoofing =
        Web::new(rampart.metrics).forwarded_for("203.0.113.99, 198.51.100.7, 10.1.2.3");
    assert_eq!(failed_sign_in(&mut spoofing, "u4"), 429);
    let mut other = Web::new(rampart.metrics).forwarded_for("198.51.100.8");
    assert_eq!(failed_sign_in(&mut other, "u5"), 401);

    // Without trusted_proxies the header is ignored: everyone is 127.0.0.1.
    let direct = Rampart::start_with(portal_options("signin_limit_per_address = 2"));
    for (address, status) in [
        ("198.51.100.1", 401),
        ("198.51.100.2", 401),
        ("198.51.100.3", 429),
    ] {
        let mut web = Web::new(direct.metrics).forwarded_for(address);
        assert_eq!(failed_sign_in(&mut web, "someone"), status, "{address}");
    }
}

#[test]
fn signed_in_forms_need_the_session_token_and_change_nothing_without_it() {
    let rampart = Rampart::start_with(portal_options(""));
    rampart.add_user("erin", "pw-Erin-1");
    let mut web = Web::new(rampart.metrics);
    let signin_csrf = web.get("/enroll/signin").csrf();
    let totp = sign_in(&mut web, "erin", "pw-Erin-1");
    assert_eq!(totp.screen(), Some("totp"), "{}", totp.body);
    let session_csrf = totp.csrf();
    assert_ne!(session_csrf, signin_csrf, "a session gets its own token");
    let seed = shown_seed(&totp);
    let code = code_at(&seed, unix_now());

    for token in [None, Some(signin_csrf.as_str()), Some("f00d")] {
        let mut fields = vec![("code", code.as_str())];
        if let Some(token) = token {
            fields.push(("csrf", token));
        }
        web.post("/enroll/totp", &fields).assert_status(403);
        let mut fields = vec![];
        if let Some(token) = token {
            fields.push(("csrf", token));
        }
        web.post("/enroll/recovery/new", &fields).assert_status(403);
        fields.push(("name", "outlook"));
        web.post("/enroll/app-passwords", &fields)
            .assert_status(403);
    }
    // Nothing changed: no TOTP, no recovery codes, no app password.
    let (status, out, _) = cli(&rampart.config, &["enroll", "list", "erin"], "");
    assert_eq!(status, 0);
    assert!(out.contains("TOTP not enrolled"), "{out}");
    web.get("/enroll/recovery")
        .assert_status(200)
        .assert_contains("Unused codes: <strong>0</strong>");
    web.get("/enroll/app-passwords")
        .assert_contains("You have no app passwords");

    // With the session's token the same code activates the app.
    web.post("/enroll/totp", &[("csrf", &session_csrf), ("code", &code)])
        .assert_status(200)
        .assert_contains("Your authenticator app is active");

    // Recovery codes: shown once, downloadable, regenerating invalidates the old set.
    let codes_page = web.post("/enroll/recovery/new", &[("csrf", &session_csrf)]);
    assert_eq!(codes_page.screen(), Some("recovery-codes"));
    let first: Vec<String> = codes_page
        .body
        .split("<li>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_string())
        .collect();
    assert_eq!(first.len(), 10);
    let download = web.post("/enroll/recovery/download", &[("csrf", &session_csrf)]);
    download.assert_status(200);
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename=\"recovery-codes.txt\"")
    );
    for code in &first {
        assert!(download.body.contains(code.as_str()));
    }
    // Leaving the page discards them.
    web.get("/enroll");
    web.post("/enroll/recovery/download", &[("csrf", &session_csrf)])
        .assert_status(410);
    let second = web.post("/enroll/recovery/new", &[("csrf", &session_csrf)]);
    let new_code = second
        .body
        .split("<li>")
        .nth(1)
        .map(|s| s[..s.find('<').unwrap()].to_string())
        .unwrap();
    radclient_auth(&rampart, "erin", &format!("pw-Erin-1,{}", first[0]))
        .assert_code("Access-Reject");
    radclient_auth(&rampart, "erin", &format!("pw-Erin-1,{new_code}")).assert_code("Access-Accept");

    // App passwords: named, shown once, listed, revocable.
    let created = web.post(
        "/enroll/app-passwords",
        &[("csrf", &session_csrf), ("name", "Outlook laptop")],
    );
    assert_eq!(created.screen(), Some("app-password-new"));
    let app_password = created.text_of_class("key").unwrap();
    assert_eq!(app_password.len(), 23, "{app_password}");
    let list = web.get("/enroll/app-passwords");
    list.assert_contains("Outlook laptop")
        .assert_contains("never");
    assert!(!list.body.contains(&app_password), "shown only once");
    web.post(
        "/enroll/app-passwords",
        &[("csrf", &session_csrf), ("name", "Outlook laptop")],
    )
    .assert_status(409);
    web.post(
        "/enroll/app-passwords/revoke",
        &[("csrf", &session_csrf), ("name", "Outlook laptop")],
    )
    .assert_contains("is revoked");
    web.get("/enroll/app-passwords")
        .assert_contains("You have no app passwords");

    // Verify now: a current code is accepted once.
    let now_code = code_at(&seed, unix_now() + 30);
    web.post(
        "/enroll/verify/totp",
        &[("csrf", &session_csrf), ("code", &now_code)],
    )
    .assert_contains("It works");
    web.post(
        "/enroll/verify/totp",
        &[("csrf", &session_csrf), ("code", &now_code)],
    )
    .assert_status(422)
    .assert_contains("already used");

    // Sign-out ends the session.
    web.post("/enroll/signout", &[("csrf", &session_csrf)]);
    let after = web.get("/enroll/totp");
    assert_eq!(after.screen(), Some("signin"));
    assert_not_logged(
        &rampart,
        &["pw-Erin-1", &code, &app_password, &first[0], &new_code],
    );
}

#[test]
fn abandoned_enrollment_leaves_the_old_app_working_and_stores_nothing() {
    let rampart = Rampart::start_with(portal_options(""));
    let old_seed = rampart.user_with_totp("frank", "pw-Frank-1");
    let mut web = Web::new(rampart.metrics);

    // The password alone is not enough to change anything.
    let confirm = sign_in(&mut web, "frank", "pw-Frank-1");
    assert_eq!(confirm.screen(), Some("confirm"), "{}", confirm.body);
    let csrf = confirm.csrf();
    assert_eq!(web.get("/enroll/totp").screen(), Some("confirm"));
    web.post("/enroll/recovery/new", &[("csrf", &csrf)]);
    assert_eq!(web.get("/enroll/recovery").screen(), Some("confirm"));
    web.post("/enroll/confirm", &[("csrf", &csrf), ("code", "000000")])
        .assert_status(401)
        .assert_contains("not right");
    web.post(
        "/enroll/confirm",
        &[("csrf", &csrf), ("code", &code_at(&old_seed, unix_now()))],
    )
    .assert_status(200);

    // Start a new enrollment, get as far as a wrong code, then walk away.
    let totp = web.get("/enroll/totp");
    assert_eq!(totp.screen(), Some("totp"));
    let new_seed = shown_seed(&totp);
    assert_eq!(
        shown_seed(&web.get("/enroll/totp")),
        new_seed,
        "the pending seed survives a reload"
    );
    web.post("/enroll/totp", &[("csrf", &csrf), ("code", "123456")])
        .assert_status(422);
    web.post("/enroll/signout", &[("csrf", &csrf)]);

    // The new seed was never stored; the old one still signs in.
    radclient_auth(
        &rampart,
        "frank",
        &format!("pw-Frank-1,{}", code_at(&new_seed, unix_now())),
    )
    .assert_code("Access-Reject");
    radclient_auth(
        &rampart,
        "frank",
        &format!("pw-Frank-1,{}", code_at(&old_seed, unix_now() + 30)),
    )
    .assert_code("Access-Accept");
}

#[test]
fn invitation_links_sign_in_once_and_expire_without_a_password_backend() {
    let rampart = Rampart::start_with(Options {
        primary: Some("backend = \"none\"".into()),
        ..portal_options("")
    });
    let mut web = Web::new(rampart.metrics);
    let signin = web.get("/enroll");
    signin
        .assert_contains("Open the invitation link")
        .assert_contains("does not check passwords");
    assert!(!signin.body.contains("name=\"password\""));

    // An invitation as the admin API creates it, and an expired one.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let expired = "Expired-invitation-token";
    let invitation = runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&rampart.dir.path().join("var/rampart.db"))
                .await
                .unwrap(),
        );
        let key = SealKey::load_or_create(&rampart.dir.path().join("var/rampart.key")).unwrap();
        let now = unix_now() as i64;
        store
            .create_invitation(&invitation_hash(&key, expired), "hank", now - 1, now - 7200)
            .await
            .unwrap();
        rampart::invite::create(&store, &key, "gina", 1, "https://mfa.example.test", now)
            .await
            .unwrap()
    });
    let url = invitation.url.expose().clone();
    let valid = url
        .strip_prefix("https://mfa.example.test/enroll/invite/")
        .expect("link to the portal");

    let landing = web.get(&format!("/enroll/invite/{valid}"));
    landing.assert_status(200);
    assert_eq!(landing.screen(), Some("invitation"));
    let csrf = landing.csrf();
    // No token: refused, and the invitation is not used up.
    web.post(&format!("/enroll/invite/{valid}"), &[])
        .assert_status(403);
    let totp = web.post(&format!("/enroll/invite/{valid}"), &[("csrf", &csrf)]);
    assert_eq!(totp.screen(), Some("totp"), "{}", totp.body);
    let seed = shown_seed(&totp);
    let code = code_at(&seed, unix_now());
    web.post("/enroll/totp", &[("csrf", &totp.csrf()), ("code", &code)])
        .assert_contains("Your authenticator app is active")
        .assert_contains("Signed in as gina");
    // Without a password backend the code alone signs in.
    radclient_auth(&rampart, "gina", &code_at(&seed, unix_now() + 30)).assert_code("Access-Accept");

    // Single use.
    let mut other = Web::new(rampart.metrics);
    let csrf = other.get(&format!("/enroll/invite/{valid}")).csrf();
    other
        .post(&format!("/enroll/invite/{valid}"), &[("csrf", &csrf)])
        .assert_status(410)
        .assert_contains("already used or has expired");
    // Expired.
    other
        .post(&format!("/enroll/invite/{expired}"), &[("csrf", &csrf)])
        .assert_status(410);
    assert!(!other.cookies.contains_key("rampart_session"));
    assert_not_logged(&rampart, &[valid, expired, &code]);
}

/// rampart with `[sms]` on the Twilio emulator and the portal.
fn start_with_sms(twilio: &Twilio) -> Rampart {
    Rampart::start_with(portal_options(&format!(
        r#"
[sms]
provider = "twilio"
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from = "{FROM}"
api_base = "{api}"
"#,
        api = twilio.api_base
    )))
}

fn six_digits(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

#[test]
fn phone_number_is_verified_by_sms_through_the_twilio_emulator_then_signs_in() {
    let twilio = Twilio::start();
    let rampart = start_with_sms(&twilio);
    rampart.add_user("ivan", "pw-Ivan-1");
    let mut web = Web::new(rampart.metrics);
    sign_in(&mut web, "ivan", "pw-Ivan-1");
    let home = web.get("/enroll");
    home.assert_contains("Phone (text messages)");
    let form = web.get("/enroll/phone");
    assert_eq!(form.screen(), Some("phone"));
    let csrf = form.csrf();

    web.post(
        "/enroll/phone",
        &[
            ("csrf", &csrf),
            ("number", "555-1234"),
            ("label", "primary"),
        ],
    )
    .assert_status(422)
    .assert_contains("not an international number");
    assert!(twilio.messages().is_empty());

    let number = "+15552220099";
    let sent = web.post(
        "/enroll/phone",
        &[
            ("csrf", &csrf),
            ("number", "+1 (555) 222-0099"),
            ("label", "primary"),
        ],
    );
    assert_eq!(sent.screen(), Some("phone-code"), "{}", sent.body);
    sent.assert_contains("ending in 99");
    let code = six_digits(&twilio.wait_for_sms(number, 1).expect("a text message"));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    web.post("/enroll/phone/code", &[("csrf", &csrf), ("code", wrong)])
        .assert_status(422)
        .assert_contains("not right");
    let (_, listed, _) = cli(&rampart.config, &["enroll", "list", "ivan"], "");
    assert!(
        !listed.contains(number),
        "not stored before the code: {listed}"
    );
    web.post("/enroll/phone/code", &[("csrf", &csrf), ("code", &code)])
        .assert_status(200)
        .assert_contains("primary number ending in 99 is verified and active");
    let (_, listed, _) = cli(&rampart.config, &["enroll", "list", "ivan"], "");
    assert!(
        listed.contains(number) && listed.contains("primary"),
        "{listed}"
    );

    // The verified number now carries the login's SMS code.
    let reply = radclient_auth(&rampart, "ivan", "pw-Ivan-1,sms");
    reply.assert_code("Access-Reject");
    let login_code = six_digits(&twilio.wait_for_sms(number, 2).expect("a login code"));
    radclient_auth(&rampart, "ivan", &format!("pw-Ivan-1,{login_code}"))
        .assert_code("Access-Accept");
    assert_not_logged(&rampart, &[&code, &login_code, AUTH_TOKEN, "pw-Ivan-1"]);
}

// ---- Through the library: the portal router alone on a loopback port. ----

/// A directory that knows dave (with a phone number) and paul (without).
struct Directory;

#[async_trait]
impl PrimaryAuth for Directory {
    async fn verify(&self, request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError> {
        let password = request.password.map(|p| p.expose().as_str());
        Ok(match (request.user, password) {
            ("dave", Some("pw-Dave-1")) => PrimaryOutcome::Accepted(UserInfo {
                phone: Some("+44 20 7946 0958".into()),
                ..UserInfo::default()
            }),
            ("paul", Some("pw-Paul-1")) => PrimaryOutcome::Accepted(UserInfo::default()),
            _ => PrimaryOutcome::BadPassword,
        })
    }
}

/// Records pushes.
#[derive(Default, Clone)]
struct Pushes(Arc<Mutex<Vec<(String, Approval)>>>);

#[async_trait]
impl PushSender for Pushes {
    async fn send(&self, target: &PushTarget, approval: &Approval) -> Result<(), ProviderError> {
        self.0
            .lock()
            .unwrap()
            .push((target.url.expose().clone(), approval.clone()));
        Ok(())
    }
}

/// Records texts.
#[derive(Default, Clone)]
struct Texts(Arc<Mutex<Vec<(String, String)>>>);

#[async_trait]
impl SmsSender for Texts {
    async fn send(&self, number: &str, text: &Secret<String>) -> Result<(), ProviderError> {
        self.0
            .lock()
            .unwrap()
            .push((number.to_string(), text.expose().clone()));
        Ok(())
    }
}

struct Served {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    key: Arc<SealKey>,
    oob: Arc<OutOfBand>,
    pushes: Pushes,
    texts: Texts,
    portal: Arc<Portal>,
    runtime: tokio::runtime::Runtime,
}

fn serve_portal(idle: Option<Duration>) -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(runtime.block_on(SqliteStore::open_in_memory()).unwrap());
    let key = Arc::new(SealKey::from_bytes([9; 32]));
    let pushes = Pushes::default();
    let mut oob = OutOfBand::new(
        OutOfBandConfig {
            timeout_secs: 20,
            max_per_window: 10,
            ..OutOfBandConfig::default()
        },
        key.clone(),
    );
    oob.push = Some(Arc::new(pushes.clone()));
    let texts = Texts::default();
    oob.sms = Some(Arc::new(texts.clone()));
    let oob = Arc::new(oob);
    let mut portal = Portal::new(PortalParts {
        config: PortalConfig {
            enabled: true,
            ntfy_server: Some("https://ntfy.example.test".into()),
            secure_cookies: false,
            ..PortalConfig::default()
        },
        primary: Arc::new(Directory),
        store: store.clone(),
        key: key.clone(),
        totp: TotpConfig::default(),
        oob: rampart::factor::oob::OobHandle::new(Some(oob.clone())),
        username: Default::default(),
    });
    if let Some(idle) = idle {
        portal = portal.with_session_idle(idle);
    }
    let portal = Arc::new(portal);
    let router: axum::Router = rampart::portal::routes(portal.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Served {
        addr,
        store,
        key,
        oob,
        pushes,
        texts,
        portal,
        runtime,
    }
}

#[test]
fn an_idle_session_expires_and_sends_the_user_back_to_sign_in() {
    let served = serve_portal(Some(Duration::from_millis(400)));
    let mut web = Web::new(served.addr);
    let totp = sign_in(&mut web, "paul", "pw-Paul-1");
    assert_eq!(totp.screen(), Some("totp"));
    assert_eq!(served.portal.session_count(), 1);
    // Activity keeps it alive...
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(web.get("/enroll/totp").screen(), Some("totp"));
    }
    // ...idleness ends it (and with it the pending seed).
    std::thread::sleep(Duration::from_millis(500));
    let page = web.get("/enroll/totp");
    assert_eq!(page.path, "/enroll/signin?expired=1");
    assert_eq!(page.screen(), Some("signin"));
    page.assert_contains("Your session ended after 1 minute without activity. Sign in again.");
    assert_eq!(served.portal.session_count(), 0);
    // A POST with the dead session changes nothing either.
    let after = web.post(
        "/enroll/totp",
        &[("csrf", &totp.csrf()), ("code", "123456")],
    );
    assert_eq!(after.screen(), Some("signin"));
    assert!(
        served
            .runtime
            .block_on(served.store.totp("paul"))
            .unwrap()
            .is_none()
    );
}

/// dave has nothing enrolled, but logins would text his directory number:
/// that number must confirm the portal sign-in too (a password alone must
/// not let anyone enroll their own authenticator).
fn sign_in_dave(served: &Served, web: &mut Web) {
    let confirm = sign_in(web, "dave", "pw-Dave-1");
    assert_eq!(confirm.screen(), Some("confirm"), "{}", confirm.body);
    assert_eq!(web.get("/enroll/totp").screen(), Some("confirm"));
    let csrf = confirm.csrf();
    let sent = web.post("/enroll/confirm/sms", &[("csrf", &csrf)]);
    assert_eq!(sent.screen(), Some("phone-code"), "{}", sent.body);
    let (number, text) = served.texts.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(number, "+442079460958");
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_string();
    let home = web.post("/enroll/phone/code", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(home.screen(), Some("home"), "{}", home.body);
}

#[test]
fn the_directory_number_confirms_the_sign_in_and_is_prefilled() {
    let served = serve_portal(None);
    let mut web = Web::new(served.addr);
    sign_in_dave(&served, &mut web);
    let page = web.get("/enroll/phone");
    assert_eq!(page.field_value("number").as_deref(), Some("+442079460958"));
    page.assert_contains("Check the number we found in the directory");
}

/// Waits (bounded) until the push-wait page shows an answer.
fn wait_for_answer(web: &mut Web) -> Page {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = web.get("/enroll/push/wait");
        if page.screen() != Some("push-wait") {
            return page;
        }
        assert!(
            page.body.contains("http-equiv=\"refresh\""),
            "waits without scripts"
        );
        assert!(Instant::now() < deadline, "no answer shown");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn push_is_enrolled_only_after_an_approved_test_push() {
    let served = serve_portal(None);
    let mut web = Web::new(served.addr);
    sign_in_dave(&served, &mut web);
    let page = web.get("/enroll/push");
    assert_eq!(page.screen(), Some("push"), "{}", page.body);
    let topic = page.text_of_class("key").unwrap();
    assert!(
        topic.starts_with("https://ntfy.example.test/rampart-"),
        "{topic}"
    );
    assert!(page.body.contains("<svg"), "QR code of the topic");
    let csrf = page.csrf();
    let devices = |served: &Served| {
        served
            .runtime
            .block_on(served.store.out_of_band("dave"))
            .unwrap()
            .devices
    };

    // First test: denied on the phone. Nothing is stored.
    let waiting = web.post("/enroll/push/test", &[("csrf", &csrf)]);
    assert_eq!(waiting.screen(), Some("push-wait"));
    let (target, approval) = served.pushes.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(target, topic, "the push goes to the new topic");
    assert!(
        approval.message.contains("finish setting up push"),
        "{}",
        approval.message
    );
    let (txn, answer) = served
        .oob
        .tokens
        .verify(&approval.deny.token, &served.oob.pending, unix_now())
        .unwrap();
    assert_eq!(answer, Answer::Denied);
    served.oob.pending.resolve(&txn, answer).unwrap();
    wait_for_answer(&mut web).assert_contains("You tapped Deny, so nothing was changed");
    assert!(devices(&served).is_empty());

    // Second test: approved. Now the topic is stored, sealed.
    web.post("/enroll/push/test", &[("csrf", &csrf)]);
    let (_, approval) = served.pushes.0.lock().unwrap().last().cloned().unwrap();
    let (txn, answer) = served
        .oob
        .tokens
        .verify(&approval.approve.token, &served.oob.pending, unix_now())
        .unwrap();
    served.oob.pending.resolve(&txn, answer).unwrap();
    wait_for_answer(&mut web).assert_contains("Push approval is active");
    let stored = devices(&served);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, DeviceKind::Push);
    let opened = served.key.open(b"dave", &stored[0].sealed_target).unwrap();
    assert_eq!(opened.as_slice(), topic.as_bytes());

    // Verify now: a real push to the stored topic that must be approved.
    web.post("/enroll/verify/push", &[("csrf", &csrf)]);
    let (target, approval) = served.pushes.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(target, topic);
    let (txn, answer) = served
        .oob
        .tokens
        .verify(&approval.approve.token, &served.oob.pending, unix_now())
        .unwrap();
    served.oob.pending.resolve(&txn, answer).unwrap();
    wait_for_answer(&mut web).assert_contains("It works: you approved the test push");

    // Next sign-in: the password alone is not enough; the push confirms it.
    let mut again = Web::new(served.addr);
    let confirm = sign_in(&mut again, "dave", "pw-Dave-1");
    assert_eq!(confirm.screen(), Some("confirm"));
    again.post("/enroll/confirm/push", &[("csrf", &confirm.csrf())]);
    let (_, approval) = served.pushes.0.lock().unwrap().last().cloned().unwrap();
    assert!(approval.message.contains("Approve only if this is you"));
    let (txn, answer) = served
        .oob
        .tokens
        .verify(&approval.approve.token, &served.oob.pending, unix_now())
        .unwrap();
    served.oob.pending.resolve(&txn, answer).unwrap();
    let home = wait_for_answer(&mut again);
    assert_eq!(home.screen(), Some("home"), "{}", home.body);
}

#[test]
fn bad_portal_configuration_names_each_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[clients]]
name = "vpn"
address = "127.0.0.1"
secret = "{SECRET}"

[portal]
enabled = true
session_minutes = 0
signin_limit_per_address = 0
ntfy_server = "ntfy.sh"
trusted_proxies = ["10.0.0.0/8", "proxy.example"]
colour = "blue"
"#
        ),
    )
    .unwrap();
    let (status, _, err) = cli(&path, &["check-config"], "");
    assert_ne!(status, 0);
    let file = path.display().to_string();
    assert!(
        err.contains(&format!("{file}: portal.colour: unknown key")),
        "{err}"
    );
    // With the unknown key gone, the values are checked.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("colour = \"blue\"\n", "");
    std::fs::write(&path, text).unwrap();
    let (status, _, err) = cli(&path, &["check-config"], "");
    assert_ne!(status, 0);
    for expected in [
        "portal.enabled: needs [http] listen",
        "portal.ntfy_server: must be an http(s) URL",
        "portal.session_minutes: must be between 1 and 1440 minutes",
        "portal.signin_limit_per_address: must be at least 1",
        "portal.trusted_proxies: \"proxy.example\" is not an IP address or a network",
    ] {
        assert!(
            err.contains(&format!("{file}: {expected}")),
            "{expected:?} in {err}"
        );
    }
}

/// Push end to end: the portal creates a topic on the ntfy emulator, the
/// scripted phone (which taps buttons as the ntfy app does) approves the
/// test push through the reply relay, the topic is stored, and a VPN login
/// with `,push` is then approved on the same topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_enrolled_in_the_portal_through_the_ntfy_emulator_then_signs_in() {
    use crate::common::ntfy::{Auth, Ntfy, Options as NtfyOptions, Perm};
    use crate::common::phone::{Phone, Script};
    const REPLY_TOPIC: &str = "rampart-replies-portal-0123456789";
    const NTFY_TOKEN: &str = "tk_portalrampartrelaytoken0000001";

    let ntfy = Ntfy::start_with(NtfyOptions {
        auth: Some(Auth {
            tokens: vec![(NTFY_TOKEN.into(), "*".into(), Perm::ReadWrite)],
            everyone: vec![(REPLY_TOPIC.into(), Perm::WriteOnly)],
        }),
        ..NtfyOptions::default()
    });
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("ntfy.token");
    std::fs::write(&token_file, format!("{NTFY_TOKEN}\n")).unwrap();
    let rampart = Rampart::start_with(portal_options(&format!(
        r#"ntfy_server = "{url}"

[out_of_band]
timeout_secs = 20

[push]
format = "ntfy"
url = "{url}"
token_file = "{token}"
reply_topic = "{REPLY_TOPIC}"
"#,
        url = ntfy.url,
        token = token_file.display(),
    )));
    assert!(
        rampart.wait_for_log("ntfy reply relay subscribed", Duration::from_secs(10)),
        "{}",
        rampart.logs()
    );
    rampart.add_user("judy", "pw-Judy-1");
    let mut web = Web::new(rampart.metrics);
    let page = tokio::task::block_in_place(|| {
        sign_in(&mut web, "judy", "pw-Judy-1");
        web.get("/enroll/push")
    });
    assert_eq!(page.screen(), Some("push"), "{}", page.body);
    let topic_url = page.text_of_class("key").unwrap();
    let topic = topic_url
        .strip_prefix(&format!("{}/", ntfy.url))
        .expect("a topic on the configured ntfy server")
        .to_string();
    let csrf = page.csrf();
    let waiting = tokio::task::block_in_place(|| web.post("/enroll/push/test", &[("csrf", &csrf)]));
    assert_eq!(waiting.screen(), Some("push-wait"), "{}", waiting.body);
    let (_, devices, _) = cli(&rampart.config, &["enroll", "list", "judy"], "");
    assert!(
        !devices.contains("push"),
        "nothing stored before approval: {devices}"
    );

    let (notification, tap) = Phone::new().run(&ntfy, &topic, 0, Script::Approve).await;
    assert_eq!(tap.unwrap().status, 200);
    assert!(
        notification.to_string().contains("finish setting up push"),
        "{notification}"
    );
    let done = tokio::task::block_in_place(|| wait_for_answer(&mut web));
    done.assert_contains("Push approval is active");
    let (_, devices, _) = cli(&rampart.config, &["enroll", "list", "judy"], "");
    assert!(
        devices.contains("push") && devices.contains("phone"),
        "{devices}"
    );

    // The VPN login now pushes to the enrolled topic.
    let server = rampart.radius;
    let login = tokio::task::spawn_blocking(move || {
        radclient(
            server,
            SECRET,
            "User-Name = \"judy\", User-Password = \"pw-Judy-1,push\", Message-Authenticator = 0x00",
            5,
            3,
        )
    });
    let (_, tap) = Phone::new().run(&ntfy, &topic, 1, Script::Approve).await;
    assert_eq!(tap.unwrap().status, 200);
    login.await.unwrap().assert_code("Access-Accept");
    assert_not_logged(&rampart, &[&topic, NTFY_TOKEN, "pw-Judy-1"]);
}
