//! The RADIUS wire: BLAST-RADIUS rules, duplicate detection, malformed and
//! unknown packets, Status-Server, Proxy-State, graceful shutdown.

use std::net::UdpSocket;
use std::time::Duration;

use rampart::radius::attr;
use rampart::radius::crypto::{hide_password, sign_request, verify_response};
use rampart::radius::{Attribute, Code};

use crate::common::*;

/// A signed Access-Request as raw bytes, with its authenticator.
fn access_request(id: u8, user: &str, password: &str, extra: &[Attribute]) -> (Vec<u8>, [u8; 16]) {
    let authenticator: [u8; 16] = rand::random();
    let mut attributes = vec![
        Attribute::new(attr::USER_NAME, user),
        Attribute::new(
            attr::USER_PASSWORD,
            hide_password(password.as_bytes(), SECRET.as_bytes(), &authenticator).unwrap(),
        ),
    ];
    attributes.extend_from_slice(extra);
    (
        sign_request(
            Code::AccessRequest,
            id,
            &authenticator,
            &attributes,
            SECRET.as_bytes(),
            true,
        )
        .unwrap(),
        authenticator,
    )
}

fn socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

fn receive(socket: &UdpSocket) -> Option<Vec<u8>> {
    let mut buffer = [0u8; 4096];
    socket.recv(&mut buffer).ok().map(|n| buffer[..n].to_vec())
}

#[test]
fn requests_without_message_authenticator_are_dropped_by_default() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let reply = radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"pw-alice,{}\"",
            code(&seed)
        ),
        1,
        1,
    );
    assert_eq!(reply.code, None, "no reply expected: {}", reply.output);
    assert!(
        rampart.metric("rampart_radius_dropped_total{reason=\"missing_message_authenticator\"}")
            >= 1.0
    );
    assert_eq!(rampart.decisions(), 0, "never reached the pipeline");

    // A legacy NAS can be allowed explicitly; its replies still carry Message-Authenticator.
    let lax = Rampart::start_with(Options {
        lax_message_authenticator: true,
        ..Options::default()
    });
    let seed = lax.user_with_totp("alice", "pw-alice");
    let reply = radclient(
        lax.radius,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"pw-alice,{}\"",
            code(&seed)
        ),
        1,
        3,
    );
    reply.assert_code("Access-Accept");
    assert!(reply.attribute("Message-Authenticator").is_some());
    assert!(
        lax.wait_for_log(
            "does not require Message-Authenticator",
            Duration::from_secs(5)
        ),
        "start-up warning"
    );
}

#[test]
fn a_wrong_shared_secret_gets_no_answer() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let reply = radclient(
        rampart.radius,
        "not-the-secret",
        &format!(
            "User-Name = \"alice\", User-Password = \"pw-alice,{}\", Message-Authenticator = 0x00",
            code(&seed)
        ),
        1,
        1,
    );
    assert_eq!(reply.code, None, "{}", reply.output);
    assert!(
        rampart.metric("rampart_radius_dropped_total{reason=\"bad_message_authenticator\"}") >= 1.0
    );
}

#[test]
fn unknown_clients_are_dropped() {
    let rampart = Rampart::start_with(Options {
        client_address: Some("127.0.0.2".into()),
        ..Options::default()
    });
    let socket = socket();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (request, _) = access_request(1, "x", "y", &[]);
    socket.send_to(&request, rampart.radius).unwrap();
    assert!(receive(&socket).is_none());
    assert_eq!(
        rampart.metric("rampart_radius_dropped_total{reason=\"unknown_client\"}"),
        1.0
    );
}

/// RFC 2865 §5.44: a second User-Name could be the one an upstream server
/// reads; RFC 3579 §3.2: EAP-Message needs Message-Authenticator, even from a
/// NAS allowed to omit it. Both are discarded before the pipeline.
#[test]
fn repeated_user_names_and_unsigned_eap_get_no_answer() {
    let rampart = Rampart::start_with(Options {
        lax_message_authenticator: true,
        ..Options::default()
    });
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let series = |reason: &str| format!("rampart_radius_dropped_total{{reason=\"{reason}\"}}");
    let metrics = rampart.metrics();
    for reason in ["duplicate_attribute", "eap_without_message_authenticator"] {
        assert!(
            metrics.contains(&format!("{} 0", series(reason))),
            "{reason} registered at zero:\n{metrics}"
        );
    }
    let socket = socket();
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let password = format!("pw-alice,{}", code(&seed));
    let mallory = [Attribute::new(attr::USER_NAME, "mallory")];
    let (twice, _) = access_request(9, "alice", &password, &mallory);
    socket.send_to(&twice, rampart.radius).unwrap();
    assert!(receive(&socket).is_none(), "no answer to two User-Names");
    assert_eq!(rampart.metric(&series("duplicate_attribute")), 1.0);

    let authenticator: [u8; 16] = rand::random();
    let eap = [
        Attribute::new(attr::USER_NAME, "alice"),
        Attribute::new(attr::EAP_MESSAGE, &b"\x02\x01\x00\x0a\x01alice"[..]),
    ];
    let unsigned = sign_request(
        Code::AccessRequest,
        10,
        &authenticator,
        &eap,
        SECRET.as_bytes(),
        false,
    )
    .unwrap();
    socket.send_to(&unsigned, rampart.radius).unwrap();
    assert!(receive(&socket).is_none(), "no answer to unsigned EAP");
    assert_eq!(
        rampart.metric(&series("eap_without_message_authenticator")),
        1.0
    );
    assert_eq!(rampart.decisions(), 0, "neither reached the pipeline");

    // The same login with one User-Name is answered.
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (once, authenticator) = access_request(11, "alice", &password, &[]);
    socket.send_to(&once, rampart.radius).unwrap();
    let reply = receive(&socket).expect("a reply");
    let reply = verify_response(&reply, &authenticator, SECRET.as_bytes(), true).unwrap();
    assert_eq!(reply.code, Code::AccessAccept);
}

#[test]
fn a_retransmission_is_processed_once_and_answered_from_cache() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let socket = socket();
    let used = code(&seed);
    let (request, authenticator) = access_request(42, "alice", &format!("pw-alice,{used}"), &[]);
    // The NAS retransmits at once (first copy still in flight), then again after the answer.
    socket.send_to(&request, rampart.radius).unwrap();
    socket.send_to(&request, rampart.radius).unwrap();
    let first = receive(&socket).expect("a reply");
    socket.send_to(&request, rampart.radius).unwrap();
    let second = receive(&socket).expect("the cached reply");
    assert_eq!(first, second, "identical bytes resent");
    let reply = verify_response(&first, &authenticator, SECRET.as_bytes(), true).unwrap();
    // Not "code already used": the retransmission did not run the login again.
    assert_eq!(reply.code, Code::AccessAccept);
    assert!(rampart.wait_for_log("rampart::audit", Duration::from_secs(2)));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rampart.decisions(), 1, "one decision for three copies");
    assert_eq!(
        rampart.metric("rampart_radius_duplicates_total{kind=\"in_flight\"}"),
        1.0
    );
    assert_eq!(
        rampart.metric("rampart_radius_duplicates_total{kind=\"resent\"}"),
        1.0
    );
    assert_eq!(
        rampart.metric("rampart_requests_total{client=\"test-nas\",outcome=\"accept\"}"),
        1.0
    );

    // Same identifier with a new authenticator is a new request, and this
    // code is now used (the same code, not a fresh one: a 30 s step may have
    // begun since).
    let (fresh, _) = access_request(42, "alice", &format!("pw-alice,{used}"), &[]);
    socket.send_to(&fresh, rampart.radius).unwrap();
    let third = receive(&socket).expect("a reply");
    assert_eq!(third[0], 3, "Access-Reject: the code was already used");
}

#[test]
fn malformed_packets_are_dropped_counted_and_harmless() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let socket = socket();
    let (good, _) = access_request(7, "alice", "pw-alice", &[]);

    let mut truncated_length = good.clone();
    truncated_length[2..4].copy_from_slice(&((good.len() + 10) as u16).to_be_bytes());
    // A zero-length attribute (length octet 2).
    let mut bad_attribute = good.clone();
    bad_attribute.extend_from_slice(&[attr::REPLY_MESSAGE, 2]);
    let len = bad_attribute.len() as u16;
    bad_attribute[2..4].copy_from_slice(&len.to_be_bytes());
    let mut overrun = good.clone();
    overrun.extend_from_slice(&[attr::REPLY_MESSAGE, 40, b'x']);
    let len = overrun.len() as u16;
    overrun[2..4].copy_from_slice(&len.to_be_bytes());
    let mut accounting = good.clone();
    accounting[0] = 4;

    for datagram in [
        vec![],
        vec![1, 2, 3],
        good[..19].to_vec(),
        truncated_length,
        bad_attribute,
        overrun,
        vec![1u8; 5000],
        accounting,
    ] {
        socket.send_to(&datagram, rampart.radius).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let metrics = rampart.metrics();
    for reason in [
        "too_short",
        "truncated",
        "attribute_too_short",
        "attribute_overrun",
        "oversized",
        "unsupported_code",
    ] {
        assert!(
            metrics.contains(&format!(
                "rampart_radius_dropped_total{{reason=\"{reason}\"}}"
            )),
            "{reason} counted:\n{metrics}"
        );
    }
    assert_eq!(rampart.decisions(), 0);
    // Still serving.
    let reply = radclient_auth(&rampart, "alice", &format!("pw-alice,{}", code(&seed)));
    assert_eq!(reply.code.as_deref(), Some("Access-Accept"));
    assert!(
        rampart.wait_for_log("dropped RADIUS packet", std::time::Duration::from_secs(5)),
        "debug log with reason"
    );
}

#[test]
fn status_server_is_answered() {
    let rampart = Rampart::start();
    let mut child = std::process::Command::new("radclient")
        .args(["-x", "-r", "2", "-t", "2"])
        .arg(rampart.radius.to_string())
        .args(["status", SECRET])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Message-Authenticator = 0x00\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Received Access-Accept"), "{text}");
    assert_eq!(rampart.decisions(), 0, "Status-Server is not a login");
}

#[test]
fn proxy_state_is_echoed_in_order() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let reply = radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"pw-alice,{}\", Proxy-State = 0x6669727374, Proxy-State = 0x7365636f6e64, Message-Authenticator = 0x00",
            code(&seed)
        ),
        2,
        3,
    );
    reply.assert_code("Access-Accept");
    let proxy: Vec<&str> = reply
        .attributes
        .iter()
        .filter(|(n, _)| n == "Proxy-State")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(proxy, vec!["0x6669727374", "0x7365636f6e64"]);
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits() {
    let mut rampart = Rampart::start();
    rampart.add_user("alice", "pw-alice");
    rampart.enroll_totp("alice");
    let socket = socket();
    // 24 logins (each an argon2id check) keep the pipeline busy for a while.
    let count = 24u8;
    for id in 0..count {
        let (request, _) = access_request(id, "alice", "pw-alice", &[]);
        socket.send_to(&request, rampart.radius).unwrap();
    }
    let first = receive(&socket).expect("first reply");
    let status = rampart.terminate();
    let mut replies = 1;
    while receive(&socket).is_some() {
        replies += 1;
    }
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(replies, count as usize, "every in-flight request answered");
    assert_eq!(first[0], 11, "Access-Challenge");
    assert!(rampart.wait_for_log("SIGTERM: stopping", std::time::Duration::from_secs(5)));
}
