//! Several rampart nodes on one PostgreSQL database (`[store] url`): the
//! real binary twice, a real PostgreSQL started by the harness, radclient,
//! the Twilio emulator for SMS and the portal for invitations. What is
//! single-use at one node is used up at the other; a lockout holds on both;
//! a PostgreSQL restart costs the requests made while it is down and nothing
//! else.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart::factor::totp::code_at;
use rampart::seal::SealKey;
use rampart::store::{PostgresStore, Store, StoreConfig};

use crate::common::postgres::{PASSWORD, Postgres};
use crate::common::twilio::{ACCOUNT_SID, AUTH_TOKEN, FROM, Twilio};
use crate::common::web::Web;
use crate::common::*;

const PUBLIC_URL: &str = "https://mfa.example.test";

/// `[store]` for a node: the database, the password from a file, and the
/// key file every node shares (in `shared`).
fn store_section(pg: &Postgres, database: &str, shared: &Path, extra: &str) -> String {
    let password_file = shared.join("pg-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    format!(
        "url = \"{url}\"\npassword_file = \"{pw}\"\nkey_file = \"{key}\"\n{extra}",
        url = pg.url_without_password(database),
        pw = password_file.display(),
        key = shared.join("rampart.key").display(),
    )
}

fn node(store: &str, extra: &str) -> Rampart {
    Rampart::start_with(Options {
        store: Some(store.to_string()),
        extra: extra.to_string(),
        http_public_url: Some(PUBLIC_URL.into()),
        ..Options::default()
    })
}

fn six_digits(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

fn reply_message(reply: &RadclientReply) -> String {
    reply
        .attribute("Reply-Message")
        .unwrap_or_default()
        .to_string()
}

#[test]
fn two_nodes_share_replay_lockout_sms_and_invitations() {
    let pg = Postgres::start();
    pg.create_database("rampart");
    let shared = tempfile::tempdir().unwrap();
    let store = store_section(&pg, "rampart", shared.path(), "");
    let twilio = Twilio::start();
    let extra = format!(
        "[portal]\nenabled = true\nsecure_cookies = false\n\n\
         [sms]\nprovider = \"twilio\"\naccount_sid = \"{ACCOUNT_SID}\"\nauth_token = \"{AUTH_TOKEN}\"\n\
         from = \"{FROM}\"\napi_base = \"{api}\"\n",
        api = twilio.api_base
    );
    let a = node(&store, &extra);
    let b = node(&store, &extra);
    assert!(a.logs().contains("PostgreSQL store"), "{}", a.logs());
    assert!(!a.logs().contains(PASSWORD) && !b.logs().contains(PASSWORD));

    // TOTP: enrolled through node A's CLI, so sealed with the shared key.
    let seed = a.user_with_totp("alice", "pw-Alice-1");
    let now = unix_now();
    let code = code_at(&seed, now);
    radclient_auth(&a, "alice", &format!("pw-Alice-1,{code}")).assert_code("Access-Accept");
    let replay = radclient_auth(&b, "alice", &format!("pw-Alice-1,{code}"));
    replay.assert_code("Access-Reject");
    assert!(
        reply_message(&replay).contains("already used"),
        "{}",
        replay.output
    );
    // B opens the seed A sealed: the next code is accepted there.
    radclient_auth(
        &b,
        "alice",
        &format!("pw-Alice-1,{}", code_at(&seed, now + 30)),
    )
    .assert_code("Access-Accept");

    // Lockout: five failures at A (the harness's max_failures) lock bob at B too.
    let bob_seed = b.user_with_totp("bob", "pw-Bob-2");
    for _ in 0..5 {
        radclient_auth(&a, "bob", "wrong-password,000000").assert_code("Access-Reject");
    }
    let locked = radclient_auth(
        &b,
        "bob",
        &format!("pw-Bob-2,{}", code_at(&bob_seed, unix_now())),
    );
    locked.assert_code("Access-Reject");
    assert!(
        reply_message(&locked).contains("locked"),
        "{}",
        locked.output
    );

    // SMS: the code texted on A's request works once, wherever it is typed.
    let number = "+15552220031";
    a.add_user("carol", "pw-Carol-3");
    let (status, out, err) = cli(&a.config, &["enroll", "phone", "carol", number], "");
    assert_eq!(status, 0, "{out} {err}");
    radclient_auth(&a, "carol", "pw-Carol-3,sms").assert_code("Access-Reject");
    let sms = six_digits(&twilio.wait_for_sms(number, 1).expect("an SMS"));
    radclient_auth(&b, "carol", &format!("pw-Carol-3,{sms}")).assert_code("Access-Accept");
    radclient_auth(&a, "carol", &format!("pw-Carol-3,{sms}")).assert_code("Access-Reject");

    // Invitation: made through the library on the same database and key,
    // opened at A, refused at B afterwards.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(async {
        let config = StoreConfig {
            url: Some(pg.url("rampart")),
            ..StoreConfig::default()
        };
        let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&config).await.unwrap());
        let key = SealKey::load_or_create(&shared.path().join("rampart.key")).unwrap();
        rampart::invite::create(&store, &key, "dave", 1, PUBLIC_URL, unix_now() as i64)
            .await
            .unwrap()
            .url
            .expose()
            .clone()
    });
    let path = url.strip_prefix(PUBLIC_URL).unwrap();
    let mut at_a = Web::new(a.metrics);
    let mut at_b = Web::new(b.metrics);
    let csrf_b = at_b.get(path).csrf();
    let csrf_a = at_a.get(path).csrf();
    let opened = at_a.post(path, &[("csrf", &csrf_a)]);
    assert_eq!(opened.screen(), Some("totp"), "{}", opened.body);
    at_b.post(path, &[("csrf", &csrf_b)])
        .assert_status(410)
        .assert_contains("already used or has expired");

    // Both nodes' decisions end up in the one audit log.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count: u32 = pg
            .psql("rampart", "SELECT count(*) FROM audit")
            .trim()
            .parse()
            .unwrap();
        if count >= 11 {
            break;
        }
        assert!(Instant::now() < deadline, "{count} audit rows");
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in [&a, &b] {
        let logs = node.logs();
        for secret in [PASSWORD, AUTH_TOKEN, &code, &sms, path] {
            assert!(!logs.contains(secret), "{secret:?} in a node's logs");
        }
    }
}

#[test]
fn postgres_restart_rejects_meanwhile_and_recovers_without_losing_anything() {
    let mut pg = Postgres::start();
    pg.create_database("rampart");
    let shared = tempfile::tempdir().unwrap();
    let store = store_section(&pg, "rampart", shared.path(), "timeout_ms = 1000\n");
    let r = node(&store, "");
    let seed = r.user_with_totp("erin", "pw-Erin-5");
    let now = unix_now();
    let first = code_at(&seed, now);
    radclient_auth(&r, "erin", &format!("pw-Erin-5,{first}")).assert_code("Access-Accept");
    assert_eq!(r.readyz(), 200);

    pg.stop();
    let started = Instant::now();
    let during = radclient(
        r.radius,
        SECRET,
        &format!(
            "User-Name = \"erin\", User-Password = \"pw-Erin-5,{}\", Message-Authenticator = 0x00",
            code_at(&seed, now + 30)
        ),
        1,
        8,
    );
    during.assert_code("Access-Reject");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "rejected after {:?}",
        started.elapsed()
    );
    assert!(r.wait_for_log("store_unavailable", Duration::from_secs(5)));
    assert!(r.metric(r#"rampart_rejects_total{reason="store_unavailable"}"#) >= 1.0);
    // The login's own read, or the health probe if it saw the outage first
    // (then the login was refused without touching the store).
    assert!(
        r.metric(r#"rampart_store_errors_total{operation="login_state"}"#)
            + r.metric(r#"rampart_store_errors_total{operation="probe"}"#)
            >= 1.0
    );
    assert_eq!(r.readyz(), 503);

    pg.start_again();
    // Same daemon, no restart: ready again once its probe writes (every
    // second), the enrollment made before is there, the step claimed
    // before is still claimed, the next code works.
    assert!(r.wait_for_readyz(200, Duration::from_secs(5)));
    let replay = radclient_auth(&r, "erin", &format!("pw-Erin-5,{first}"));
    replay.assert_code("Access-Reject");
    assert!(reply_message(&replay).contains("already used"));
    radclient_auth(
        &r,
        "erin",
        &format!("pw-Erin-5,{}", code_at(&seed, now + 30)),
    )
    .assert_code("Access-Accept");
    assert!(!r.logs().contains(PASSWORD));
}

#[test]
fn a_node_with_another_key_file_refuses_the_shared_database() {
    let pg = Postgres::start();
    pg.create_database("rampart");
    let shared = tempfile::tempdir().unwrap();
    let first = node(&store_section(&pg, "rampart", shared.path(), ""), "");
    first.user_with_totp("frank", "pw-Frank-6");

    // A second node whose key file was not copied over.
    let other = tempfile::tempdir().unwrap();
    let config = write_config(
        other.path(),
        &Options {
            store: Some(store_section(&pg, "rampart", other.path(), "")),
            ..Options::default()
        },
    );
    let (status, _, err) = cli(&config, &["user", "list"], "");
    assert_ne!(status, 0);
    assert!(err.contains("does not open the TOTP seeds"), "{err}");
    assert!(err.contains("same key file"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(
        !other.path().join("rampart.key").exists(),
        "no stray key file left behind"
    );
}

#[test]
fn store_keys_are_checked_per_backend() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &Options {
            store: Some(
                "url = \"postgres://rampart:hunter2-Pw@127.0.0.1/rampart\"\npath = \"x.db\"\npassword_file = \"/nonexistent\"\n"
                    .into(),
            ),
            ..Options::default()
        },
    );
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let file = config.display().to_string();
    assert!(
        err.contains(&format!("{file}: store.path: SQLite only")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}: store.password_file: the URL has a password too"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let config = write_config(
        dir.path(),
        &Options {
            store: Some("pool_size = 4\n".into()),
            ..Options::default()
        },
    );
    let (status, _, err) = cli(&config, &["check-config"], "");
    assert_eq!(status, 2, "{err}");
    assert!(
        err.contains("store.pool_size: only for PostgreSQL"),
        "{err}"
    );
}

/// `rampart user list` against `[store]`: (exit code, stderr).
fn list_users(dir: &Path, store: &str) -> (i32, String) {
    let config = write_config(
        dir,
        &Options {
            store: Some(store.to_string()),
            ..Options::default()
        },
    );
    let (status, _, err) = cli(&config, &["user", "list"], "");
    (status, err)
}

#[test]
fn tls_is_verified_and_client_certificates_authenticate() {
    let certs = tempfile::tempdir().unwrap();
    let tls = crate::common::certs::make_certificates(certs.path());
    let pg = Postgres::start_tls(
        &certs.path().join("server.pem"),
        &certs.path().join("server.key"),
        &tls.ca,
    );
    pg.create_database("rampart");
    pg.create_database("certdb");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rampart.key");
    let url = |host: &str, database: &str, password: bool| {
        let secret = if password {
            format!(":{PASSWORD}")
        } else {
            String::new()
        };
        format!(
            "url = \"postgres://rampart{secret}@{host}:{}/{database}\"\nkey_file = \"{}\"\n",
            pg.port,
            key.display()
        )
    };
    let ca = |file: &Path| format!("ca_file = \"{}\"\n", file.display());

    // verify-full with the right CA and host name: connected (password over TLS).
    let good = format!(
        "{}tls_mode = \"verify-full\"\n{}",
        url("localhost", "rampart", true),
        ca(&tls.ca)
    );
    let (status, err) = list_users(dir.path(), &good);
    assert_eq!(status, 0, "{err}");
    // The server takes no plain TCP, so that was TLS; without it, refused.
    let (status, err) = list_users(
        dir.path(),
        &format!(
            "{}tls_mode = \"disable\"\n",
            url("localhost", "rampart", true)
        ),
    );
    assert_ne!(status, 0);
    assert!(err.contains("no encryption"), "{err}");
    // Another CA: the certificate is not trusted.
    let (status, err) = list_users(
        dir.path(),
        &format!(
            "{}tls_mode = \"verify-full\"\n{}",
            url("localhost", "rampart", true),
            ca(&tls.other_ca)
        ),
    );
    assert_ne!(status, 0);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The certificate is for localhost: 127.0.0.1 fails verify-full, passes verify-ca.
    let (status, err) = list_users(
        dir.path(),
        &format!(
            "{}tls_mode = \"verify-full\"\n{}",
            url("127.0.0.1", "rampart", true),
            ca(&tls.ca)
        ),
    );
    assert_ne!(status, 0, "{err}");
    let (status, err) = list_users(
        dir.path(),
        &format!(
            "{}tls_mode = \"verify-ca\"\n{}",
            url("127.0.0.1", "rampart", true),
            ca(&tls.ca)
        ),
    );
    assert_eq!(status, 0, "{err}");

    // `cert` authentication: the client certificate (CN rampart), no password.
    let client = format!(
        "{}tls_mode = \"verify-full\"\n{}client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        url("localhost", "certdb", false),
        ca(&tls.ca),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let (status, err) = list_users(dir.path(), &client);
    assert_eq!(status, 0, "{err}");
    let (status, err) = list_users(
        dir.path(),
        &format!(
            "{}tls_mode = \"verify-full\"\n{}",
            url("localhost", "certdb", false),
            ca(&tls.ca)
        ),
    );
    assert_ne!(status, 0, "without the client certificate: {err}");
    assert!(!err.contains(PASSWORD));
}
