//! Tests of the upstream backend against in-process RADIUS responders on
//! loopback: what goes upstream, how replies map to outcomes, failover.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tokio::net::UdpSocket;

use super::*;
use crate::radius::AccessRequest;
use crate::radius::crypto::{reveal_password, sign_response};
use crate::radius::packet::MAX_PACKET_LEN;

const UPSTREAM_SECRET: &str = "upstream-s3cret";
const NAS_SECRET: &[u8] = b"nas-secret";

/// Answers every request with `answer(request)`, signed with `secret`.
async fn responder<F>(secret: &'static str, answer: F) -> SocketAddr
where
    F: Fn(&Packet) -> (Code, Vec<Attribute>) + Send + 'static,
{
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; MAX_PACKET_LEN];
        loop {
            let (len, peer) = socket.recv_from(&mut buffer).await.unwrap();
            let request = Packet::decode(&buffer[..len]).unwrap();
            let (code, attributes) = answer(&request);
            let reply = sign_response(
                code,
                request.identifier,
                &request.authenticator,
                &attributes,
                secret.as_bytes(),
            )
            .unwrap();
            socket.send_to(&reply, peer).await.unwrap();
        }
    });
    address
}

/// A server that checks PAP password "right" and CHAP password "right", and
/// answers an Accept with Class, Filter-Id and Session-Timeout.
async fn checking_server() -> SocketAddr {
    responder(UPSTREAM_SECRET, |request| {
        let ok = match (
            request.attribute(attr::USER_PASSWORD),
            request.attribute(attr::CHAP_PASSWORD),
        ) {
            (Some(hidden), None) => {
                reveal_password(hidden, UPSTREAM_SECRET.as_bytes(), &request.authenticator)
                    .is_ok_and(|p| &p[..] == b"right")
            }
            (None, Some(chap)) => {
                let challenge = request
                    .attribute(attr::CHAP_CHALLENGE)
                    .unwrap_or(&request.authenticator);
                let expected = Md5::new()
                    .chain_update([chap[0]])
                    .chain_update(b"right")
                    .chain_update(challenge)
                    .finalize();
                chap[1..] == expected[..]
            }
            _ => false,
        };
        if ok {
            (
                Code::AccessAccept,
                vec![
                    Attribute::new(attr::CLASS, "cls"),
                    Attribute::new(11, "vpn-users"),
                    Attribute::new(attr::SESSION_TIMEOUT, 3600u32.to_be_bytes()),
                ],
            )
        } else {
            (Code::AccessReject, Vec::new())
        }
    })
    .await
}

fn backend(servers: &[SocketAddr], timeout_ms: u64) -> UpstreamAuth {
    backend_passing(servers, timeout_ms, &["Class", "Filter-Id"])
}

fn backend_passing(servers: &[SocketAddr], timeout_ms: u64, pass: &[&str]) -> UpstreamAuth {
    UpstreamAuth::new(&UpstreamConfig {
        servers: servers
            .iter()
            .map(|address| ServerConfig {
                address: address.to_string(),
                secret: Some(Secret::new(UPSTREAM_SECRET.into())),
                secret_file: None,
                require_message_authenticator: true,
            })
            .collect(),
        timeout_ms,
        retries: 0,
        down_secs: 60,
        pass_through: pass.iter().map(|p| p.to_string()).collect(),
    })
    .unwrap()
}

/// An Access-Request as the listener would hand it over, from NAS attributes.
fn nas_request(attributes: Vec<Attribute>) -> AccessRequest {
    let packet = Packet {
        code: Code::AccessRequest,
        identifier: 9,
        authenticator: [0x5a; 16],
        attributes,
    };
    AccessRequest::from_packet(
        &packet,
        NAS_SECRET,
        "nas".into(),
        "127.0.0.1:5000".parse().unwrap(),
    )
    .unwrap()
}

fn pap(typed: &str) -> AccessRequest {
    let hidden = hide_password(typed.as_bytes(), NAS_SECRET, &[0x5a; 16]).unwrap();
    nas_request(vec![
        Attribute::new(attr::USER_NAME, "alice"),
        Attribute::new(attr::USER_PASSWORD, hidden),
        Attribute::new(attr::NAS_IDENTIFIER, "vpn-1"),
        Attribute::new(attr::PROXY_STATE, "nas-proxy-state"),
    ])
}

/// CHAP as a NAS sends it: no CHAP-Challenge, the Request Authenticator is the challenge.
fn chap(password: &str) -> AccessRequest {
    let mut value = vec![42u8];
    value.extend(
        Md5::new()
            .chain_update([42u8])
            .chain_update(password.as_bytes())
            .chain_update([0x5a; 16])
            .finalize(),
    );
    nas_request(vec![
        Attribute::new(attr::USER_NAME, "alice"),
        Attribute::new(attr::CHAP_PASSWORD, value),
    ])
}

async fn verify(
    backend: &UpstreamAuth,
    request: &AccessRequest,
    password: Option<&str>,
) -> Result<PrimaryOutcome, PrimaryError> {
    let password = password.map(|p| Secret::new(p.to_string()));
    backend
        .verify(&PrimaryRequest {
            user: "alice",
            password: password.as_ref(),
            request,
        })
        .await
}

#[tokio::test]
async fn pap_is_re_hidden_with_the_upstream_secret_and_accept_attributes_pass_through() {
    let backend = backend(&[checking_server().await], 2000);
    // The pipeline split "right,123456" into the password "right".
    let outcome = verify(&backend, &pap("right,123456"), Some("right"))
        .await
        .unwrap();
    let PrimaryOutcome::Accepted(info) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        info.reply_attributes,
        vec![
            Attribute::new(attr::CLASS, "cls"),
            Attribute::new(11, "vpn-users")
        ],
        "Session-Timeout is not in pass_through"
    );
    let wrong = verify(&backend, &pap("wrong"), Some("wrong"))
        .await
        .unwrap();
    assert!(matches!(wrong, PrimaryOutcome::BadPassword), "{wrong:?}");
}

#[tokio::test]
async fn chap_goes_upstream_untouched_with_the_nas_authenticator_as_challenge() {
    let backend = backend(&[checking_server().await], 2000);
    let accepted = verify(&backend, &chap("right"), None).await.unwrap();
    assert!(
        matches!(accepted, PrimaryOutcome::Accepted(_)),
        "{accepted:?}"
    );
    let rejected = verify(&backend, &chap("wrong"), None).await.unwrap();
    assert!(
        matches!(rejected, PrimaryOutcome::BadPassword),
        "{rejected:?}"
    );
}

#[test]
fn forwarded_attributes_drop_the_nas_hop_and_keep_an_explicit_chap_challenge() {
    let request = pap("pw,123456");
    let primary = PrimaryRequest {
        user: "alice",
        password: Some(&Secret::new("pw".to_string())),
        request: &request,
    };
    let authenticator = [3u8; 16];
    let sent = forwarded_attributes(&primary, b"up", &authenticator).unwrap();
    let types: Vec<u8> = sent.iter().map(|a| a.typ).collect();
    assert_eq!(
        types,
        [attr::USER_NAME, attr::NAS_IDENTIFIER, attr::USER_PASSWORD]
    );
    let revealed = reveal_password(&sent[2].value, b"up", &authenticator).unwrap();
    assert_eq!(
        &revealed[..],
        b"pw",
        "the appended code never goes upstream"
    );

    // A CHAP-Challenge the NAS sent is kept as it is, not replaced.
    let mut with_challenge = chap("x");
    with_challenge
        .attributes
        .push(Attribute::new(attr::CHAP_CHALLENGE, [1u8; 16]));
    let primary = PrimaryRequest {
        user: "alice",
        password: None,
        request: &with_challenge,
    };
    let sent = forwarded_attributes(&primary, b"up", &authenticator).unwrap();
    let challenges: Vec<&Attribute> = sent
        .iter()
        .filter(|a| a.typ == attr::CHAP_CHALLENGE)
        .collect();
    assert_eq!(
        challenges,
        [&Attribute::new(attr::CHAP_CHALLENGE, [1u8; 16])]
    );
}

#[tokio::test]
async fn upstream_challenge_is_denied_and_no_credentials_are_never_forwarded() {
    let server = responder(UPSTREAM_SECRET, |_| {
        (
            Code::AccessChallenge,
            vec![Attribute::new(attr::STATE, "up")],
        )
    })
    .await;
    let backend = backend(&[server], 2000);
    let outcome = verify(&backend, &pap("pw"), Some("pw")).await.unwrap();
    assert!(matches!(
        outcome,
        PrimaryOutcome::Denied {
            reason: "upstream_challenge_unsupported",
            ..
        }
    ));
    let bare = nas_request(vec![Attribute::new(attr::USER_NAME, "alice")]);
    let outcome = verify(&backend, &bare, None).await.unwrap();
    assert!(matches!(
        outcome,
        PrimaryOutcome::Denied {
            reason: "no_password",
            ..
        }
    ));
}

#[tokio::test]
async fn a_silent_server_is_failed_over_then_skipped_while_down() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let good = checking_server().await;
    let backend = backend(&[silent.local_addr().unwrap(), good], 300);

    let started = Instant::now();
    let first = verify(&backend, &pap("right"), Some("right"))
        .await
        .unwrap();
    assert!(matches!(first, PrimaryOutcome::Accepted(_)));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited once"
    );

    let started = Instant::now();
    let second = verify(&backend, &pap("right"), Some("right"))
        .await
        .unwrap();
    assert!(matches!(second, PrimaryOutcome::Accepted(_)));
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "the down server is skipped: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn all_servers_down_is_unavailable_and_then_immediate() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let wrong_secret = responder("not-the-secret", |_| (Code::AccessAccept, Vec::new())).await;
    let backend = Arc::new(backend(&[silent.local_addr().unwrap(), wrong_secret], 200));

    let error = verify(&backend, &pap("right"), Some("right"))
        .await
        .unwrap_err();
    let PrimaryError::Unavailable(message) = error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(message.contains("failed verification"), "{message}");
    assert!(!message.contains(UPSTREAM_SECRET), "{message}");

    let started = Instant::now();
    assert!(
        verify(&backend, &pap("right"), Some("right"))
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_millis(50));
}

/// A Microsoft VSA holding one sub-attribute (RFC 2548 §2).
fn microsoft(typ: u8, value: &[u8]) -> Attribute {
    let mut bytes = 311u32.to_be_bytes().to_vec();
    bytes.extend([typ, 2 + value.len() as u8]);
    bytes.extend_from_slice(value);
    Attribute::new(attr::VENDOR_SPECIFIC, bytes)
}

#[tokio::test]
async fn ms_chap_v2_goes_upstream_untouched_and_its_keys_never_come_back() {
    let challenge = microsoft(11, &[1; 16]); // MS-CHAP-Challenge
    let response = microsoft(25, &[2; 50]); // MS-CHAP2-Response
    let success = microsoft(26, b"\x01S=0123456789ABCDEF0123456789ABCDEF01234567");
    let (expected, answer) = (
        vec![challenge.clone(), response.clone()],
        vec![
            success.clone(),
            microsoft(16, &[3; 34]), // MS-MPPE-Send-Key, encrypted upstream
            microsoft(17, &[4; 34]), // MS-MPPE-Recv-Key
        ],
    );
    let server = responder(UPSTREAM_SECRET, move |request| {
        let vsas: Vec<Attribute> = request
            .attributes
            .iter()
            .filter(|a| a.typ == attr::VENDOR_SPECIFIC)
            .cloned()
            .collect();
        if vsas == expected && request.attribute(attr::USER_PASSWORD).is_none() {
            (Code::AccessAccept, answer.clone())
        } else {
            (Code::AccessReject, Vec::new())
        }
    })
    .await;
    let backend = backend_passing(&[server], 2000, &["Vendor-Specific:311"]);
    let request = nas_request(vec![
        Attribute::new(attr::USER_NAME, "alice"),
        challenge,
        response,
    ]);
    let outcome = verify(&backend, &request, None).await.unwrap();
    let PrimaryOutcome::Accepted(info) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(info.reply_attributes, vec![success]);
}
