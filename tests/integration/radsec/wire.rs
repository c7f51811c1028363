//! RadSec on the wire, with our own TLS client (rustls, blocking) presenting
//! the `nas1.example.com` certificate: per-connection duplicate detection,
//! RFC 6613 §2.6.4 (a packet that fails a check closes the connection, an
//! unknown code does not), Status-Server, and SIGTERM draining requests that
//! are in flight on a connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rampart::radius::attr;
use rampart::radius::crypto::{hide_password, sign_request, verify_response};
use rampart::radius::{Attribute, Code};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::*;
use crate::common::certs::revocation_list;

type Tls = StreamOwned<ClientConnection, TcpStream>;

const RADSEC: &[u8] = b"radsec";

/// A TLS connection to rampart's RadSec listener as `identity`.
fn connect(rampart: &Rampart, certs: &RadsecCerts, identity: &Identity) -> Tls {
    try_connect(rampart, certs, identity).expect("TLS handshake")
}

/// Whether a Status-Server sent as `identity` gets an answer: false when the
/// handshake fails or rampart closes the connection instead (with TLS 1.3 the
/// client may finish its side before the server has checked its certificate).
fn answered(rampart: &Rampart, certs: &RadsecCerts, identity: &Identity) -> bool {
    let Ok(mut tls) = try_connect(rampart, certs, identity) else {
        return false;
    };
    let (status, _) = status_server(7);
    tls.write_all(&status).is_ok() && read_packet(&mut tls).is_some()
}

fn try_connect(
    rampart: &Rampart,
    certs: &RadsecCerts,
    identity: &Identity,
) -> Result<Tls, rustls::Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&certs.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(&identity.0)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&identity.1).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let address = rampart.radsec();
    let tcp = TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::IpAddress(address.ip().into());
    let connection = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = StreamOwned::new(connection, tcp);
    // Finish the handshake now, so a refusal shows here.
    while tls.conn.is_handshaking() {
        if let Err(error) = tls.conn.complete_io(&mut tls.sock) {
            return Err(rustls::Error::General(error.to_string()));
        }
    }
    Ok(tls)
}

/// The next packet, or `None` once rampart closed the connection.
fn read_packet(tls: &mut Tls) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    if tls.read_exact(&mut header).is_err() {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut packet = header.to_vec();
    packet.resize(length, 0);
    tls.read_exact(&mut packet[4..]).ok()?;
    Some(packet)
}

/// Whether rampart ended the connection (clean close or reset) within 10 s.
fn closed(tls: &mut Tls) -> bool {
    let mut byte = [0u8; 1];
    match tls.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A signed Access-Request (secret `radsec`) and its authenticator.
fn access_request(id: u8, user: &str, password: &str) -> (Vec<u8>, [u8; 16]) {
    let authenticator: [u8; 16] = rand::random();
    let attributes = [
        Attribute::new(attr::USER_NAME, user),
        Attribute::new(
            attr::USER_PASSWORD,
            hide_password(password.as_bytes(), RADSEC, &authenticator).unwrap(),
        ),
    ];
    let bytes = sign_request(
        Code::AccessRequest,
        id,
        &authenticator,
        &attributes,
        RADSEC,
        true,
    )
    .unwrap();
    (bytes, authenticator)
}

fn status_server(id: u8) -> (Vec<u8>, [u8; 16]) {
    let authenticator: [u8; 16] = rand::random();
    let bytes = sign_request(Code::StatusServer, id, &authenticator, &[], RADSEC, true).unwrap();
    (bytes, authenticator)
}

/// rampart whose primary is `upstream`, users without a second factor allowed.
fn start_with_upstream(dir: &Path, upstream: &HoldingUpstream) -> (Rampart, RadsecCerts) {
    start_rampart(
        dir,
        Options {
            primary: Some(upstream.primary()),
            policy: "unenrolled = \"allow\"".into(),
            ..Options::default()
        },
    )
}

#[test]
fn duplicates_on_a_stream_are_processed_once_and_answered_from_the_cache() {
    // The upstream holds the first login until a second, different one is
    // outstanding: the copy of the first sent meanwhile is still in flight.
    let upstream = HoldingUpstream::start(2, Duration::from_secs(20));
    let dir = tempfile::tempdir().unwrap();
    let (rampart, certs) = start_with_upstream(dir.path(), &upstream);
    let mut tls = connect(&rampart, &certs, &certs.nas1);
    let (first, first_auth) = access_request(1, "alice", "pw-a");
    let (second, second_auth) = access_request(2, "bob", "pw-b");
    tls.write_all(&[first.clone(), first.clone()].concat())
        .unwrap();
    tls.write_all(&second).unwrap();
    let mut replies = [
        read_packet(&mut tls).unwrap(),
        read_packet(&mut tls).unwrap(),
    ];
    replies.sort_by_key(|r| r[1]);
    let accept = verify_response(&replies[0], &first_auth, RADSEC, true).unwrap();
    assert_eq!((accept.code, accept.identifier), (Code::AccessAccept, 1));
    let accept = verify_response(&replies[1], &second_auth, RADSEC, true).unwrap();
    assert_eq!((accept.code, accept.identifier), (Code::AccessAccept, 2));
    // Answered: a copy now gets the very same bytes, without a new login.
    tls.write_all(&first).unwrap();
    assert_eq!(read_packet(&mut tls).unwrap(), replies[0]);
    assert_eq!(upstream.received.load(Ordering::SeqCst), 2);
    assert_eq!(rampart.wait_for_decisions(2), 2);
    assert!(rampart.metric(r#"rampart_radius_duplicates_total{kind="in_flight"}"#) >= 1.0);
    assert!(rampart.metric(r#"rampart_radius_duplicates_total{kind="resent"}"#) >= 1.0);
}

#[test]
fn a_packet_that_fails_a_check_closes_the_connection_an_unknown_code_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (rampart, certs) = start_rampart(dir.path(), Options::default());

    // Accounting-Request: not served, dropped, but the stream stays usable.
    let mut tls = connect(&rampart, &certs, &certs.nas1);
    let accounting = sign_request(
        Code::AccountingRequest,
        7,
        &[0; 16],
        &[Attribute::new(attr::USER_NAME, "alice")],
        RADSEC,
        false,
    )
    .unwrap();
    tls.write_all(&accounting).unwrap();
    let (status, status_auth) = status_server(8);
    tls.write_all(&status).unwrap();
    let reply = read_packet(&mut tls).expect("Status-Server answered");
    let reply = verify_response(&reply, &status_auth, RADSEC, true).unwrap();
    assert_eq!((reply.code, reply.identifier), (Code::AccessAccept, 8));

    // A Length field below the header: the stream cannot be framed any more.
    tls.write_all(&[1, 9, 0, 19]).unwrap();
    assert!(closed(&mut tls));
    assert!(rampart.metric(r#"rampart_radius_dropped_total{reason="too_short"}"#) >= 1.0);

    // A Message-Authenticator that does not verify.
    let mut tls = connect(&rampart, &certs, &certs.nas1);
    let (mut bad, _) = access_request(3, "alice", "pw");
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    tls.write_all(&bad).unwrap();
    assert!(closed(&mut tls));
    assert!(
        rampart.metric(r#"rampart_radius_dropped_total{reason="bad_message_authenticator"}"#)
            >= 1.0
    );
    assert_eq!(rampart.decisions(), 0);
    assert_eq!(
        rampart.metric(r#"rampart_radsec_connections_total{client="nas1"}"#),
        2.0
    );
}

#[test]
fn sigterm_answers_requests_in_flight_on_a_connection_then_exits() {
    // Two logins held upstream for 2 s after the first arrives; SIGTERM
    // comes while both are held.
    let upstream = HoldingUpstream::start(3, Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let (mut rampart, certs) = start_with_upstream(dir.path(), &upstream);
    let mut tls = connect(&rampart, &certs, &certs.nas1);
    let (first, first_auth) = access_request(1, "alice", "pw-a");
    let (second, second_auth) = access_request(2, "bob", "pw-b");
    tls.write_all(&[first, second].concat()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.received.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(upstream.received.load(Ordering::SeqCst), 2);
    let status = rampart.terminate();
    assert!(
        status.success(),
        "clean exit: {status:?}\n{}",
        rampart.logs()
    );
    let mut replies = [
        read_packet(&mut tls).unwrap(),
        read_packet(&mut tls).unwrap(),
    ];
    replies.sort_by_key(|r| r[1]);
    for (reply, authenticator) in replies.iter().zip([first_auth, second_auth]) {
        let reply = verify_response(reply, &authenticator, RADSEC, true).unwrap();
        assert_eq!(reply.code, Code::AccessAccept);
    }
    assert!(closed(&mut tls), "connection closed after the replies");
    let logs = rampart.logs();
    assert!(
        logs.contains("RadSec listener stopped accepting; finishing in-flight requests"),
        "{logs}"
    );
}

#[test]
fn a_reload_remaps_radsec_clients_on_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (rampart, certs) = start_rampart(dir.path(), Options::default());
    let mut tls = connect(&rampart, &certs, &certs.nas1);
    let (status, _) = status_server(1);
    tls.write_all(&status).unwrap();
    assert!(
        read_packet(&mut tls).is_some(),
        "answered before the reload"
    );

    // The entry now names another certificate: nas1's no longer matches.
    let applied = rampart.reload_after(|| {
        let text = std::fs::read_to_string(&rampart.config).unwrap();
        let text = text.replace("\"nas1.example.com\"", "\"nas9.example.com\"");
        std::fs::write(&rampart.config, text).unwrap();
    });
    assert!(applied, "{}", rampart.logs());
    let (status, _) = status_server(2);
    tls.write_all(&status).unwrap();
    assert!(
        closed(&mut tls),
        "the open connection ends at its next packet"
    );
    // The log line is read from stderr by another thread: wait for it.
    assert!(rampart.wait_for_log(
        "RadSec client no longer configured",
        std::time::Duration::from_secs(5)
    ));
    // A new connection with the same certificate is refused.
    let mut tls = connect(&rampart, &certs, &certs.nas1);
    assert!(closed(&mut tls));
    assert!(
        wait_for_metric(
            &rampart,
            r#"rampart_radsec_handshake_failures_total{reason="unknown_client"}"#,
            1.0
        ) >= 1.0
    );
}

#[test]
fn a_revoked_nas_certificate_is_refused_once_the_renewed_crl_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_radsec_certificates(dir.path());
    // The CA's CRL revokes another certificate, not nas1's.
    let crl = revocation_list(dir.path(), &[&certs.stranger.0], false);
    let rampart = Rampart::start_with(Options {
        extra: radsec_toml(&certs, &format!("crl_file = \"{}\"", crl.display())),
        ..Options::default()
    });
    assert!(
        answered(&rampart, &certs, &certs.nas1),
        "{}",
        rampart.logs()
    );

    // The CA revokes nas1 and publishes a new CRL: a reload reads it.
    let applied = rampart.reload_after(|| {
        revocation_list(dir.path(), &[&certs.stranger.0, &certs.nas1.0], false);
    });
    assert!(applied, "{}", rampart.logs());
    assert!(rampart.wait_for_log(
        "RadSec: certificate, CA bundle and CRLs re-read",
        Duration::from_secs(5)
    ));
    assert!(!answered(&rampart, &certs, &certs.nas1));
    assert!(
        wait_for_metric(
            &rampart,
            r#"rampart_radsec_handshake_failures_total{reason="certificate_revoked"}"#,
            1.0
        ) >= 1.0,
        "{}",
        rampart.metrics()
    );
}

#[test]
fn an_outdated_crl_refuses_every_nas_until_a_fresh_one_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_radsec_certificates(dir.path());
    let crl = revocation_list(dir.path(), &[], true);
    let rampart = Rampart::start_with(Options {
        extra: radsec_toml(&certs, &format!("crl_file = \"{}\"", crl.display())),
        ..Options::default()
    });
    // Fail closed: nothing is revoked, but the CRL's nextUpdate has passed.
    assert!(!answered(&rampart, &certs, &certs.nas1));
    assert!(
        wait_for_metric(
            &rampart,
            r#"rampart_radsec_handshake_failures_total{reason="crl_expired"}"#,
            1.0
        ) >= 1.0,
        "{}",
        rampart.metrics()
    );
    assert!(rampart.wait_for_log("past its nextUpdate", Duration::from_secs(5)));

    // A reload with an unreadable CRL is refused and changes nothing ...
    let refused = rampart.reload_after(|| std::fs::write(&crl, "not a CRL").unwrap());
    assert!(!refused);
    assert!(
        rampart.logs().contains("radsec.crl_file"),
        "{}",
        rampart.logs()
    );
    // ... and one with a current CRL lets the NAS in again.
    let applied = rampart.reload_after(|| {
        revocation_list(dir.path(), &[], false);
    });
    assert!(applied, "{}", rampart.logs());
    assert!(
        answered(&rampart, &certs, &certs.nas1),
        "{}",
        rampart.logs()
    );
}
