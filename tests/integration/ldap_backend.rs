//! The LDAP backend on its own (`LdapAuth::verify`) against a real slapd: the
//! cases a RADIUS reply cannot tell apart (unknown user vs. bad password vs.
//! ambiguous), user-name injection, group strategies, TLS and client
//! certificates, and Active Directory bind errors from an in-process stand-in.

use std::time::{Duration, Instant};

use rampart::auth::{
    LdapAuth, PrimaryAuth, PrimaryConfig, PrimaryError, PrimaryOutcome, PrimaryRequest,
};
use rampart::radius::AccessRequest;
use rampart::secret::Secret;

use crate::common::mock_ad::MockAd;
use crate::common::slapd::*;

/// A backend from `[primary]` TOML, which must validate cleanly.
fn backend(toml: &str) -> LdapAuth {
    let primary: PrimaryConfig = config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    let problems = primary.problems();
    assert!(problems.is_empty(), "{problems:?}");
    let PrimaryConfig::Ldap(config) = primary else {
        panic!("not ldap")
    };
    LdapAuth::new(&config).unwrap()
}

async fn verify(
    auth: &LdapAuth,
    user: &str,
    password: &str,
) -> Result<PrimaryOutcome, PrimaryError> {
    let password = Secret::new(password.to_string());
    let request = AccessRequest {
        user_name: user.into(),
        password: Some(password.clone()),
        state: None,
        client: "test".into(),
        peer: "127.0.0.1:1".parse().unwrap(),
        nas_ip: None,
        nas_identifier: None,
        calling_station_id: None,
        authenticator: [0; 16],
        attributes: Vec::new(),
    };
    auth.verify(&PrimaryRequest {
        user,
        password: Some(&password),
        request: &request,
    })
    .await
}

/// A short name for an outcome, to compare in asserts.
fn name(result: &Result<PrimaryOutcome, PrimaryError>) -> String {
    match result {
        Ok(PrimaryOutcome::Accepted(info)) if info.mfa_exempt => "accepted(exempt)".into(),
        Ok(PrimaryOutcome::Accepted(_)) => "accepted".into(),
        Ok(PrimaryOutcome::UnknownUser) => "unknown_user".into(),
        Ok(PrimaryOutcome::BadPassword) => "bad_password".into(),
        Ok(PrimaryOutcome::Denied { reason, .. }) => format!("denied:{reason}"),
        Err(error) => format!("error:{}", error.reason()),
    }
}

async fn expect(auth: &LdapAuth, user: &str, password: &str, expected: &str) {
    let result = verify(auth, user, password).await;
    assert_eq!(name(&result), expected, "{user:?}: {result:?}");
}

#[tokio::test]
async fn search_then_bind_finds_exactly_one_user_and_reads_attributes() {
    let slapd = Slapd::start();
    let auth = backend(&slapd.primary(""));
    match verify(&auth, ALICE.0, ALICE.1).await {
        Ok(PrimaryOutcome::Accepted(info)) => {
            assert_eq!(info.phone.as_deref(), Some("+15550100001"));
            assert_eq!(info.email.as_deref(), Some("alice@example.org"));
            assert!(!info.mfa_exempt);
        }
        other => panic!("alice: {other:?}"),
    }
    match verify(&auth, BOB.0, BOB.1).await {
        Ok(PrimaryOutcome::Accepted(info)) => assert_eq!((info.phone, info.email), (None, None)),
        other => panic!("bob: {other:?}"),
    }
    expect(&auth, ALICE.0, BOB.1, "bad_password").await;
    expect(&auth, "nobody", ALICE.1, "unknown_user").await;
    expect(&auth, TWIN.0, TWIN.1, "denied:ambiguous_user").await;

    // The harness's service account can search but never read a password.
    let read = slapd.ldapsearch(
        SERVICE_DN,
        SERVICE_PASSWORD,
        BASE,
        "(uid=alice)",
        &["userPassword", "mail"],
    );
    assert!(
        read.contains("mail: alice@example.org") && !read.contains("userPassword"),
        "{read}"
    );
}

#[tokio::test]
async fn an_empty_password_never_reaches_the_directory() {
    let slapd = Slapd::start();
    let auth = backend(&slapd.primary(""));
    let before = slapd.counters();
    expect(&auth, ALICE.0, "", "bad_password").await;
    let after = slapd.counters();
    // Only the first counters() call's own connection and bind happened between.
    assert_eq!(
        after.connections,
        before.connections + 1,
        "{before:?} {after:?}"
    );
    assert_eq!(after.binds, before.binds + 1, "{before:?} {after:?}");
}

#[tokio::test]
async fn user_names_cannot_inject_filters_or_dns() {
    let slapd = Slapd::start();
    let search = backend(&slapd.primary(""));
    let template = backend(&format!(
        "backend = \"ldap\"\nurls = [\"{}\"]\nbase_dn = \"{BASE}\"\nbind_template = \"uid={{user}},ou=people,{BASE}\"\n",
        slapd.url()
    ));
    for user in [
        "*)(uid=*",
        "admin)(|(uid=*",
        "*",
        "adm*",
        "*)(|(objectClass=*)",
        "admin,ou=people",
        "admin\\",
    ] {
        for password in [ADMIN.1, ALICE.1] {
            expect(&search, user, password, "unknown_user").await;
            // A direct bind to a DN that does not exist is "invalid credentials".
            expect(&template, user, password, "bad_password").await;
        }
    }
    // The filters really went out escaped: slapd logs them.
    assert!(
        slapd
            .log()
            .contains("filter=\"(uid=admin\\29\\28|\\28uid=\\2A)\""),
        "{}",
        slapd.log()
    );
    expect(&search, ADMIN.0, ADMIN.1, "accepted").await;
}

#[tokio::test]
async fn the_user_filter_can_exclude_disabled_accounts() {
    let slapd = Slapd::start();
    let auth =
        backend(&slapd.primary("user_filter = \"(&(uid={user})(!(employeeType=disabled)))\""));
    expect(&auth, FRANK.0, FRANK.1, "unknown_user").await;
    expect(&auth, ALICE.0, ALICE.1, "accepted").await;
}

#[tokio::test]
async fn required_and_exempt_groups_with_nesting() {
    let slapd = Slapd::start();
    let groups =
        format!("required_groups = [\"{VPN_USERS}\"]\nmfa_exempt_groups = [\"{MFA_EXEMPT}\"]\n");
    let auth = backend(&slapd.primary(&groups));
    expect(&auth, ALICE.0, ALICE.1, "accepted").await;
    expect(&auth, CAROL.0, CAROL.1, "accepted").await; // through cn=contractors
    expect(&auth, ERIN.0, ERIN.1, "accepted(exempt)").await;
    match verify(&auth, DAVE.0, DAVE.1).await {
        Ok(PrimaryOutcome::Denied { reason, message }) => {
            assert_eq!(reason, "not_in_required_group");
            assert_eq!(
                message.as_deref(),
                Some("You are not allowed to use this service")
            );
        }
        other => panic!("dave: {other:?}"),
    }
    // The password is checked before the groups.
    expect(&auth, DAVE.0, ALICE.1, "bad_password").await;

    let direct_only = backend(&slapd.primary(&format!("{groups}group_nesting_depth = 0")));
    expect(
        &direct_only,
        CAROL.0,
        CAROL.1,
        "denied:not_in_required_group",
    )
    .await;
    expect(&direct_only, ALICE.0, ALICE.1, "accepted").await;

    let member_of = backend(&slapd.primary(&format!("{groups}group_membership = \"memberof\"")));
    expect(&member_of, ALICE.0, ALICE.1, "accepted").await;
    expect(&member_of, ERIN.0, ERIN.1, "accepted(exempt)").await;
    expect(&member_of, CAROL.0, CAROL.1, "denied:not_in_required_group").await;
    expect(&member_of, DAVE.0, DAVE.1, "denied:not_in_required_group").await;
}

#[tokio::test]
async fn direct_bind_with_a_dn_template() {
    let slapd = Slapd::start();
    let auth = backend(&format!(
        "backend = \"ldap\"\nurls = [\"{}\"]\nbase_dn = \"{BASE}\"\nbind_template = \"uid={{user}},ou=people,{BASE}\"\nrequired_groups = [\"{VPN_USERS}\"]\nmfa_exempt_groups = [\"{MFA_EXEMPT}\"]\n",
        slapd.url()
    ));
    match verify(&auth, ALICE.0, ALICE.1).await {
        Ok(PrimaryOutcome::Accepted(info)) => {
            assert_eq!(
                info.phone.as_deref(),
                Some("+15550100001"),
                "own entry read as alice"
            );
        }
        other => panic!("alice: {other:?}"),
    }
    expect(&auth, ALICE.0, "wrong", "bad_password").await;
    expect(&auth, CAROL.0, CAROL.1, "accepted").await;
    expect(&auth, ERIN.0, ERIN.1, "accepted(exempt)").await;
    expect(&auth, DAVE.0, DAVE.1, "denied:not_in_required_group").await;
    // Reused bind connections are rebound per request: alice's identity does not leak.
    expect(&auth, DAVE.0, "wrong", "bad_password").await;
    expect(&auth, ALICE.0, ALICE.1, "accepted").await;
}

fn tls_primary(
    slapd: &Slapd,
    url: &str,
    starttls: bool,
    ca: &std::path::Path,
    client: bool,
) -> String {
    let mut toml = format!(
        "backend = \"ldap\"\nurls = [\"{url}\"]\nstarttls = {starttls}\nca_file = \"{}\"\nbind_dn = \"{SERVICE_DN}\"\nbind_password = \"{SERVICE_PASSWORD}\"\nbase_dn = \"{BASE}\"\ntimeout_ms = 5000\nconnect_timeout_ms = 5000\n",
        ca.display()
    );
    if client {
        toml += &format!(
            "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
            slapd.tls.client_cert.display(),
            slapd.tls.client_key.display()
        );
    }
    toml
}

#[tokio::test]
async fn starttls_and_ldaps_verify_the_server_certificate() {
    let slapd = Slapd::start();
    let ca = &slapd.tls.ca;
    for (url, starttls) in [
        (slapd.starttls_url(), true),
        (slapd.ldaps_url("localhost"), false),
    ] {
        let auth = backend(&tls_primary(&slapd, &url, starttls, ca, false));
        expect(&auth, ALICE.0, ALICE.1, "accepted").await;
        expect(&auth, ALICE.0, "wrong", "bad_password").await;
    }
    // A CA that did not sign the server's certificate, or a host name the
    // certificate does not name: no connection, so no password is sent.
    for (url, starttls, ca, what) in [
        (
            slapd.ldaps_url("localhost"),
            false,
            &slapd.tls.other_ca,
            "UnknownIssuer",
        ),
        (
            slapd.starttls_url(),
            true,
            &slapd.tls.other_ca,
            "UnknownIssuer",
        ),
        (
            slapd.ldaps_url("127.0.0.1"),
            false,
            &slapd.tls.ca,
            "not valid for name",
        ),
    ] {
        let auth = backend(&tls_primary(&slapd, &url, starttls, ca, false));
        let result = verify(&auth, ALICE.0, ALICE.1).await;
        assert_eq!(
            name(&result),
            "error:directory_unavailable",
            "{url}: {result:?}"
        );
        let error = result.unwrap_err().to_string();
        assert!(error.contains(what), "{url}: {error}");
    }
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let slapd = Slapd::start_with(SlapdOptions {
        require_client_cert: true,
    });
    let url = slapd.ldaps_url("localhost");
    let without = backend(&tls_primary(&slapd, &url, false, &slapd.tls.ca, false));
    expect(&without, ALICE.0, ALICE.1, "error:directory_unavailable").await;
    let with = backend(&tls_primary(&slapd, &url, false, &slapd.tls.ca, true));
    expect(&with, ALICE.0, ALICE.1, "accepted").await;
}

#[tokio::test]
async fn active_directory_bind_errors_become_reasons_and_messages() {
    let ad = MockAd::start(&[
        ("locked@corp.example", "775"),
        ("expired@corp.example", "532"),
        ("disabled@corp.example", "533"),
        ("mustchange@corp.example", "773"),
        ("ghost@corp.example", "525"),
    ]);
    let auth = backend(&format!(
        "backend = \"ldap\"\nurls = [\"{}\"]\nactive_directory = true\nbind_template = \"{{user}}@corp.example\"\nbase_dn = \"dc=corp,dc=example\"\n",
        ad.url
    ));
    match verify(&auth, "locked", "pw").await {
        Ok(PrimaryOutcome::Denied { reason, message }) => {
            assert_eq!(reason, "ad_locked_out");
            assert!(message.unwrap().contains("locked"));
        }
        other => panic!("locked: {other:?}"),
    }
    expect(&auth, "expired", "pw", "denied:ad_password_expired").await;
    expect(&auth, "disabled", "pw", "denied:ad_account_disabled").await;
    expect(&auth, "mustchange", "pw", "denied:ad_must_change_password").await;
    expect(&auth, "ghost", "pw", "unknown_user").await;
    expect(&auth, "anyone", "pw", "bad_password").await;
    // A user name cannot pick another domain through the template.
    expect(&auth, "locked@other.example", "pw", "unknown_user").await;
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_times_out() {
    // The kernel completes the TCP handshake; nobody ever reads.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://127.0.0.1:{}", hung.local_addr().unwrap().port());
    let auth = backend(&format!(
        "backend = \"ldap\"\nurls = [\"{url}\"]\nbind_dn = \"{SERVICE_DN}\"\nbind_password = \"x\"\nbase_dn = \"{BASE}\"\ntimeout_ms = 500\nconnect_timeout_ms = 300\n"
    ));
    let started = Instant::now();
    expect(&auth, ALICE.0, ALICE.1, "error:directory_unavailable").await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

/// The admin's "not enrolled yet" list reads the directory: everyone, or
/// the members of one group, by `memberOf` or by the group's `member` values.
#[tokio::test]
async fn directory_users_are_listed_whole_or_by_group() {
    let slapd = Slapd::start();
    let everyone = backend(&slapd.primary(""))
        .list_users(None)
        .await
        .unwrap()
        .unwrap();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank", "twin"] {
        assert!(
            everyone.contains(&user.to_string()),
            "{user} in {everyone:?}"
        );
    }
    assert_eq!(
        everyone.iter().filter(|u| *u == "twin").count(),
        1,
        "names are listed once"
    );
    // Direct members of vpn-users; carol is only in it through `contractors`.
    for membership in ["memberof", "search"] {
        let auth = backend(&slapd.primary(&format!("group_membership = \"{membership}\"")));
        let members = auth.list_users(Some(VPN_USERS)).await.unwrap().unwrap();
        assert_eq!(
            members,
            vec!["admin", "alice", "bob", "erin", "frank", "twin"],
            "{membership}"
        );
    }
    // An injection attempt in the group DN is escaped, not interpreted.
    let auth = backend(&slapd.primary("group_membership = \"memberof\""));
    let none = auth.list_users(Some("*)(uid=*")).await.unwrap().unwrap();
    assert!(none.is_empty(), "{none:?}");
}

/// Invitations can be mailed to the directory's address: the user's
/// `email_attribute`, found as a login finds the user (escaped, exactly one).
#[tokio::test]
async fn the_directory_gives_a_user_s_e_mail_address() {
    let slapd = Slapd::start();
    let auth = backend(&slapd.primary(""));
    let email = |user: &'static str| {
        let auth = &auth;
        async move { auth.email_of(user).await.unwrap() }
    };
    assert_eq!(email("alice").await.as_deref(), Some("alice@example.org"));
    assert_eq!(email("dave").await.as_deref(), Some("dave@example.org"));
    // No mail attribute, two entries, or a name trying to widen the filter: none.
    assert_eq!(email("bob").await, None);
    assert_eq!(email("twin").await, None);
    assert_eq!(email("*)(mail=*").await, None);
    assert_eq!(email("nobody").await, None);
    // Another attribute, as configured.
    let phone = backend(&slapd.primary("email_attribute = \"mobile\""));
    assert_eq!(
        phone.email_of("alice").await.unwrap().as_deref(),
        Some("+15550100001")
    );
    // Without a service account there is nobody to search with.
    let direct = backend(&format!(
        "backend = \"ldap\"\nurls = [\"{}\"]\nbase_dn = \"{BASE}\"\nbind_template = \"uid={{user}},ou=people,{BASE}\"\n",
        slapd.url()
    ));
    let error = direct.email_of("alice").await.unwrap_err();
    assert!(error.to_string().contains("bind_dn"), "{error}");
}
