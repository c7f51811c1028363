//! Issue 5, admin side: every `/admin/v1` endpoint with the right token, a
//! wrong one and none; the matching CLI commands; invitations e-mailed
//! through a real SMTP server (aiosmtpd, Debian's python3-aiosmtpd); app
//! passwords accepted by RADIUS only on clients that allow them; the audit
//! log filled by real logins.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Options, Rampart, cli, code, radclient_auth, unix_now};

const TOKEN: &str = "0123456789abcdef0123456789abcdef-admin";
const PUBLIC_URL: &str = "https://mfa.example.test";

struct Admin {
    rampart: Rampart,
    http: reqwest::Client,
    base: String,
    _token_dir: tempfile::TempDir,
}

fn start(extra: &str, allow_app_passwords: bool) -> Admin {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let rampart = Rampart::start_with(Options {
        extra: format!(
            "[admin]\ntoken_file = \"{}\"\ninvitation_hours = 48\n\n{extra}",
            token_file.display()
        ),
        http_public_url: Some(PUBLIC_URL.into()),
        allow_app_passwords,
        ..Options::default()
    });
    let base = format!("http://{}/admin/v1", rampart.metrics);
    Admin {
        rampart,
        http: reqwest::Client::new(),
        base,
        _token_dir: token_dir,
    }
}

impl Admin {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "DELETE" => self.http.delete(url),
            other => panic!("method {other}"),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, Some(TOKEN), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/users"),
    ("GET", "/users/alice"),
    ("DELETE", "/users/alice"),
    ("POST", "/users/alice/unlock"),
    ("DELETE", "/users/alice/factors/totp"),
    ("DELETE", "/users/alice/devices/phone/primary"),
    ("DELETE", "/users/alice/app-passwords"),
    ("DELETE", "/users/alice/app-passwords/outlook"),
    ("POST", "/invitations"),
    ("GET", "/unenrolled"),
    ("GET", "/audit"),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_refuses_a_missing_or_wrong_token_and_changes_nothing() {
    let admin = start("", false);
    admin.rampart.user_with_totp("alice", "pw-alice");
    for (method, path) in ENDPOINTS {
        let body = (*method == "POST").then(|| json!({ "user": "alice" }));
        for token in [None, Some("wrong-token"), Some(&TOKEN[..TOKEN.len() - 1])] {
            let (status, value) = admin.call(method, path, token, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {value}");
        }
    }
    // Nothing was deleted, reset or invited.
    let users = admin.ok("GET", "/users", None).await;
    assert_eq!(users["users"][0]["name"], "alice");
    assert_eq!(users["users"][0]["totp"], true);
    assert!(
        admin
            .rampart
            .metric("rampart_admin_unauthorized_total{reason=\"missing_token\"}")
            >= 11.0
    );
    assert!(
        admin
            .rampart
            .metric("rampart_admin_unauthorized_total{reason=\"wrong_token\"}")
            >= 22.0
    );
    assert!(
        !admin.rampart.logs().contains(TOKEN),
        "the admin token leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn users_unlock_reset_devices_and_delete() {
    let admin = start("", false);
    let r = &admin.rampart;
    let seed = r.user_with_totp("alice", "pw-alice");
    r.add_user("bob", "pw-bob");
    let (status, out, err) = cli(&r.config, &["enroll", "phone", "alice", "+15550001234"], "");
    assert_eq!(status, 0, "{out}{err}");
    radclient_auth(r, "alice", &format!("pw-alice,{}", code(&seed))).assert_code("Access-Accept");
    for _ in 0..5 {
        radclient_auth(r, "bob", "wrong").assert_code("Access-Reject");
    }

    let users = admin.ok("GET", "/users", None).await;
    let by_name = |name: &str| {
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap()
            .clone()
    };
    let alice = by_name("alice");
    assert_eq!(
        (alice["enrolled"].clone(), alice["totp"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(alice["devices"][0]["kind"], "phone");
    assert!(alice["last_login"].as_i64().unwrap() >= unix_now() as i64 - 60);
    let bob = by_name("bob");
    assert_eq!(bob["enrolled"], false);
    assert!(
        bob["locked_until"].as_i64().is_some(),
        "bob is locked: {bob}"
    );

    // One user in detail, with recent decisions from the audit log.
    let detail = admin.ok("GET", "/users/alice", None).await;
    let recent = detail["recent"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|e| e["outcome"] == "accept" && e["factor"] == "totp"),
        "{detail}"
    );
    let (status, _) = admin.call("GET", "/users/nobody", Some(TOKEN), None).await;
    assert_eq!(status, 404);

    // Unlock: bob's next login gets past the lockout (and is asked to enroll).
    let unlocked = admin.ok("POST", "/users/bob/unlock", None).await;
    assert_eq!(unlocked["was_locked"], true);
    let reply = radclient_auth(r, "bob", "pw-bob");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| !m.contains("locked")),
        "{}",
        reply.output
    );

    // Factor reset: TOTP gone, the old code path now says "enroll".
    let reset = admin.ok("DELETE", "/users/alice/factors/totp", None).await;
    assert_eq!(reset["removed"], 1);
    assert_eq!(admin.ok("GET", "/users/alice", None).await["totp"], false);
    let (status, _) = admin
        .call("DELETE", "/users/alice/factors/bogus", Some(TOKEN), None)
        .await;
    assert_eq!(status, 400);
    let removed = admin
        .ok("DELETE", "/users/alice/devices/phone/primary", None)
        .await;
    assert_eq!(removed["removed"], 1);
    let (status, _) = admin
        .call(
            "DELETE",
            "/users/alice/devices/phone/primary",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Unenrolled: both are now without a factor (local backend: from the store).
    let unenrolled = admin.ok("GET", "/unenrolled", None).await;
    assert_eq!(unenrolled["source"], "store");
    assert_eq!(unenrolled["users"], json!(["alice", "bob"]));

    let deleted = admin.ok("DELETE", "/users/bob", None).await;
    assert_eq!(deleted["deleted"], "bob");
    let (status, _) = admin.call("DELETE", "/users/bob", Some(TOKEN), None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_is_queried_by_user_and_time() {
    let admin = start("", false);
    let r = &admin.rampart;
    let seed = r.user_with_totp("alice", "pw-alice");
    r.add_user("bob", "pw-bob");
    let before = unix_now() as i64;
    radclient_auth(r, "alice", &format!("pw-alice,{}", code(&seed))).assert_code("Access-Accept");
    radclient_auth(r, "bob", "wrong").assert_code("Access-Reject");
    // Rows are written in batches off the request path: wait for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = admin.ok("GET", "/audit", None).await["events"]
            .as_array()
            .unwrap()
            .clone();
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["user"], "bob", "newest first");
    assert_eq!(events[0]["reason"], "bad_password");
    let alice = admin.ok("GET", "/audit?user=alice", None).await;
    assert_eq!(alice["events"].as_array().unwrap().len(), 1);
    assert_eq!(alice["events"][0]["outcome"], "accept");
    let later = admin
        .ok("GET", &format!("/audit?since={}", before + 3600), None)
        .await;
    assert!(later["events"].as_array().unwrap().is_empty());
    let limited = admin.ok("GET", "/audit?limit=1", None).await;
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
    // The CLI reads the same log.
    let (status, out, err) = cli(&r.config, &["audit", "--user", "bob"], "");
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("bad_password") && !out.contains("alice"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn app_passwords_sign_in_only_where_allowed_and_are_revocable() {
    let admin = start("", true);
    let r = &admin.rampart;
    r.user_with_totp("carol", "pw-carol");
    let (status, password, err) = cli(&r.config, &["app-password", "add", "carol", "outlook"], "");
    assert_eq!(status, 0, "{err}");
    let password = password.trim().to_string();
    assert_eq!(password.len(), 23, "{password}");
    // In place of password + code, on a client with allow_app_passwords.
    radclient_auth(r, "carol", &password).assert_code("Access-Accept");
    // Typed without dashes and in capitals, as people do.
    radclient_auth(r, "carol", &password.replace('-', "").to_uppercase())
        .assert_code("Access-Accept");
    // Another user's name with carol's app password does nothing.
    r.user_with_totp("dave", "pw-dave");
    radclient_auth(r, "dave", &password).assert_code("Access-Reject");

    let detail = admin.ok("GET", "/users/carol", None).await;
    assert_eq!(detail["app_passwords"][0]["label"], "outlook");
    assert!(detail["app_passwords"][0]["last_used"].as_i64().is_some());
    let revoked = admin
        .ok("DELETE", "/users/carol/app-passwords/outlook", None)
        .await;
    assert_eq!(revoked["revoked"], 1);
    radclient_auth(r, "carol", &password).assert_code("Access-Reject");
    let (status, _) = admin
        .call(
            "DELETE",
            "/users/carol/app-passwords/outlook",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, second, _) = cli(&r.config, &["app-password", "add", "carol", "phone"], "");
    let all = admin.ok("DELETE", "/users/carol/app-passwords", None).await;
    assert_eq!(all["revoked"], 1);
    radclient_auth(r, "carol", second.trim()).assert_code("Access-Reject");
    assert!(
        !r.logs().contains(&password),
        "an app password leaked into the logs"
    );
}

#[test]
fn app_passwords_are_refused_on_clients_that_do_not_allow_them() {
    let r = Rampart::start();
    r.user_with_totp("carol", "pw-carol");
    let (status, password, _) = cli(&r.config, &["app-password", "add", "carol", "outlook"], "");
    assert_eq!(status, 0);
    radclient_auth(&r, "carol", password.trim()).assert_code("Access-Reject");
}

/// aiosmtpd (Debian's python3-aiosmtpd, an RFC 5321 server), printing every
/// message it receives. Debian's own interpreter, whose packages it is in.
struct Smtpd {
    child: Child,
    port: u16,
    output: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Smtpd {
    fn start() -> Smtpd {
        let port = crate::common::ports::free_port();
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("mail.txt");
        let child = Command::new("timeout")
            .args([
                "--signal=KILL",
                "120",
                "/usr/bin/python3",
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::from(std::fs::File::create(&output).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/python3 runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtpd {
            child,
            port,
            output,
            _dir: dir,
        }
    }

    /// Message text as a mail client shows it: quoted-printable soft line
    /// breaks are joined.
    fn received(&self) -> String {
        let raw = std::fs::read_to_string(&self.output).unwrap_or_default();
        let mut text = String::new();
        for line in raw.lines() {
            match line.strip_suffix('=') {
                Some(soft) => text.push_str(soft),
                None => {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invitations_are_printed_mailed_and_single_use_links() {
    let smtpd = Smtpd::start();
    let admin = start(
        &format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"IT <it@example.test>\"\n",
            smtpd.port
        ),
        false,
    );
    let r = &admin.rampart;
    r.add_user("erin", "pw-erin");

    // CLI: the link is printed and e-mailed.
    let (status, link, err) = cli(
        &r.config,
        &["invite", "erin", "--email", "erin@example.test"],
        "",
    );
    assert_eq!(status, 0, "{err}");
    let link = link.trim();
    assert!(
        link.starts_with(&format!("{PUBLIC_URL}/enroll/invite/")),
        "{link}"
    );
    let token = link.rsplit('/').next().unwrap();
    assert_eq!(token.len(), 64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !smtpd.received().contains(token) {
        assert!(
            Instant::now() < deadline,
            "no mail with the link: {}",
            smtpd.received()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mail = smtpd.received();
    assert!(
        mail.contains("erin@example.test") || mail.contains("Hello erin"),
        "{mail}"
    );

    // API: created, 48 h by config, e-mailed on request.
    let created = admin
        .ok(
            "POST",
            "/invitations",
            Some(json!({ "user": "erin", "email": "erin@example.test" })),
        )
        .await;
    assert_eq!(created["emailed"], true);
    let expires = created["expires_at"].as_i64().unwrap() - unix_now() as i64;
    assert!((47 * 3600..=48 * 3600).contains(&expires), "{expires}");
    let api_token = created["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(api_token, token, "every invitation has its own token");

    // The store keeps only a keyed hash: the token itself is nowhere in the database.
    let db = std::fs::read(r.dir.path().join("var/rampart.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    // Without [smtp], asking for e-mail is a clear error (the link is still made).
    assert!(
        !r.logs().contains(token),
        "an invitation token leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invitation_email_without_smtp_is_a_clear_error() {
    let admin = start("", false);
    let (status, value) = admin
        .call(
            "POST",
            "/invitations",
            Some(TOKEN),
            Some(json!({ "user": "frank", "email": "f@example.test" })),
        )
        .await;
    assert_eq!(status, 409, "{value}");
    assert!(value["error"].as_str().unwrap().contains("[smtp]"));
    let (status, _, err) = cli(
        &admin.rampart.config,
        &["invite", "frank", "--email", "f@example.test"],
        "",
    );
    assert_ne!(status, 0);
    assert!(err.contains("[smtp]"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invitations_go_to_the_directory_address_when_asked() {
    let slapd = crate::common::slapd::Slapd::start();
    let smtpd = Smtpd::start();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let rampart = Rampart::start_with(Options {
        primary: Some(slapd.primary("")),
        extra: format!(
            "[admin]\ntoken_file = \"{}\"\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"IT <it@example.test>\"\n",
            token_file.display(),
            smtpd.port
        ),
        http_public_url: Some(PUBLIC_URL.into()),
        ..Options::default()
    });
    let admin = Admin {
        base: format!("http://{}/admin/v1", rampart.metrics),
        rampart,
        http: reqwest::Client::new(),
        _token_dir: token_dir,
    };
    let mailed = |token: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mail = smtpd.received();
            if mail.contains(token) {
                return mail;
            }
            assert!(Instant::now() < deadline, "no mail with the link: {mail}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // API: alice's address comes from her `mail` attribute.
    let created = admin
        .ok(
            "POST",
            "/invitations",
            Some(json!({ "user": "alice", "email_from_directory": true })),
        )
        .await;
    assert_eq!(created["emailed"], true, "{created}");
    assert_eq!(created["emailed_to"], "alice@example.org");
    let url = created["url"].as_str().unwrap();
    let mail = mailed(url.rsplit('/').next().unwrap());
    assert!(mail.contains("alice@example.org"), "{mail}");

    // bob has no address there: refused before any invitation exists.
    let before = admin
        .rampart
        .logs()
        .matches("admin: invitation created")
        .count();
    let (status, value) = admin
        .call(
            "POST",
            "/invitations",
            Some(TOKEN),
            Some(json!({ "user": "bob", "email_from_directory": true })),
        )
        .await;
    assert_eq!(status, 409, "{value}");
    assert!(
        value["error"]
            .as_str()
            .unwrap()
            .contains("no e-mail address"),
        "{value}"
    );
    assert_eq!(
        admin
            .rampart
            .logs()
            .matches("admin: invitation created")
            .count(),
        before
    );
    // Both an address and the directory: which one?
    let (status, _) = admin
        .call(
            "POST",
            "/invitations",
            Some(TOKEN),
            Some(
                json!({ "user": "alice", "email": "a@example.test", "email_from_directory": true }),
            ),
        )
        .await;
    assert_eq!(status, 400);

    // CLI: the same for dave.
    let (status, link, err) = cli(
        &admin.rampart.config,
        &["invite", "dave", "--email-from-directory"],
        "",
    );
    assert_eq!(status, 0, "{err}");
    let mail = mailed(link.trim().rsplit('/').next().unwrap());
    assert!(mail.contains("dave@example.org"), "{mail}");
    let (status, _, err) = cli(
        &admin.rampart.config,
        &["invite", "bob", "--email-from-directory"],
        "",
    );
    assert_ne!(status, 0);
    assert!(err.contains("no e-mail address"), "{err}");

    // Everyone who has not enrolled, at once. alice has a factor now; dave
    // (the one other user with an address) holds the link mailed above, so
    // a rollout leaves him alone unless asked to invite again.
    admin.rampart.enroll_totp("alice");
    let config = &admin.rampart.config;
    let rollout = |args: &[&str]| {
        let mut all = vec!["invite", "--unenrolled"];
        all.extend(args);
        let (status, out, err) = cli(config, &all, "");
        assert_eq!(status, 0, "{all:?}: {err}");
        assert!(!err.contains("alice"), "alice is enrolled: {err}");
        (out, err)
    };
    let (out, err) = rollout(&["--email-from-directory", "--dry-run"]);
    assert_eq!(out.trim(), "", "{err}");
    assert!(err.contains("bob: skipped, no e-mail address"), "{err}");
    assert!(
        err.contains("dave: skipped, an earlier invitation is still valid"),
        "{err}"
    );
    let (out, err) = rollout(&["--email-from-directory", "--dry-run", "--reinvite"]);
    assert_eq!(out.trim(), "dave\tdave@example.org", "{err}");
    let mails_before = smtpd.received().matches("Subject:").count();
    let (out, err) = rollout(&["--email-from-directory", "--reinvite"]);
    assert!(
        out.trim().is_empty(),
        "links go by mail, not to stdout: {out}"
    );
    assert!(err.contains("1 invited, 1 e-mailed"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while smtpd.received().matches("Subject:").count() < mails_before + 1 {
        assert!(Instant::now() < deadline, "{}", smtpd.received());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Without e-mail, the links are printed, one `user<TAB>link` per line;
    // a second run finds everyone invited already.
    let (out, err) = rollout(&[]);
    let users: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert!(users.contains(&"bob") && users.contains(&"carol"), "{out}");
    assert!(!users.contains(&"dave"), "{out}\n{err}");
    assert!(
        out.lines()
            .all(|l| l.contains(&format!("\t{PUBLIC_URL}/enroll/invite/"))),
        "{out}"
    );
    let (out, err) = rollout(&[]);
    assert_eq!(out.trim(), "", "{err}");
    assert!(err.contains(" 0 invited, 0 e-mailed"), "{err}");
}
