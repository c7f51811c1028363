//! Tests of the transport against in-process UDP responders on loopback:
//! routing by Identifier across sockets, retransmission, forged replies.

use super::*;
use crate::radius::attr;
use crate::radius::crypto::sign_response;
use std::time::Instant;

const SECRET: &[u8] = b"upstream-secret";

fn transport(server: SocketAddr) -> Transport {
    Transport::new(server, Arc::new(Secret::new(SECRET.to_vec())), true)
}

fn user(name: &str) -> Vec<Attribute> {
    vec![Attribute::new(attr::USER_NAME, name.as_bytes())]
}

/// A reply to `request` carrying its User-Name as Class, signed with `secret`.
fn reply_to(request: &[u8], secret: &[u8]) -> Vec<u8> {
    let packet = Packet::decode(request).unwrap();
    let name = packet
        .attribute(attr::USER_NAME)
        .unwrap_or_default()
        .to_vec();
    sign_response(
        Code::AccessAccept,
        packet.identifier,
        &packet.authenticator,
        &[Attribute::new(attr::CLASS, name)],
        secret,
    )
    .unwrap()
}

/// Receives `batch` requests, answers them in reverse order, reports how
/// many source sockets they came from, then answers anything else at once.
async fn reverse_responder(batch: usize) -> (SocketAddr, oneshot::Receiver<usize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let (report, sources) = oneshot::channel();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; MAX_PACKET_LEN];
        let mut received = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while received.len() < batch {
            let (len, peer) = socket.recv_from(&mut buffer).await.unwrap();
            // A retransmission (after a drop in a full socket buffer) counts once.
            if seen.insert((peer, buffer[1])) {
                received.push((buffer[..len].to_vec(), peer));
            }
        }
        let peers: std::collections::HashSet<SocketAddr> =
            received.iter().map(|(_, p)| *p).collect();
        let _ = report.send(peers.len());
        for (i, (request, peer)) in received.iter().rev().enumerate() {
            socket
                .send_to(&reply_to(request, SECRET), peer)
                .await
                .unwrap();
            if i % 16 == 0 {
                tokio::task::yield_now().await; // let the readers drain
            }
        }
        loop {
            let (len, peer) = socket.recv_from(&mut buffer).await.unwrap();
            let reply = reply_to(&buffer[..len], SECRET);
            socket.send_to(&reply, peer).await.unwrap();
        }
    });
    (address, sources)
}

#[tokio::test]
async fn replies_reach_their_own_request_across_several_sockets() {
    let n = 600; // more than two sockets' worth of Identifiers
    let (server, sources) = reverse_responder(n).await;
    let transport = Arc::new(transport(server));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..n {
        let transport = transport.clone();
        requests.spawn(async move {
            let name = format!("user{i}");
            let reply = transport
                .access_request(rand::random(), &user(&name), Duration::from_secs(2), 5)
                .await
                .unwrap();
            assert_eq!(reply.attribute(attr::CLASS), Some(name.as_bytes()));
        });
        if i % 32 == 0 {
            // Let the responder drain its socket buffer.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    while let Some(done) = requests.join_next().await {
        done.unwrap();
    }
    assert_eq!(sources.await.unwrap(), 3, "600 requests need 3 sockets");
    assert_eq!(transport.sockets(), 3);
    assert_eq!(transport.outstanding(), 0, "every slot freed");
}

#[tokio::test]
async fn a_lost_request_is_retransmitted_identically() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = socket.local_addr().unwrap();
    let responder = tokio::spawn(async move {
        let mut buffer = vec![0u8; MAX_PACKET_LEN];
        let (len, _) = socket.recv_from(&mut buffer).await.unwrap();
        let first = buffer[..len].to_vec(); // "lost": not answered
        let (len, peer) = socket.recv_from(&mut buffer).await.unwrap();
        let second = buffer[..len].to_vec();
        socket
            .send_to(&reply_to(&second, SECRET), peer)
            .await
            .unwrap();
        (first, second)
    });
    let transport = transport(server);
    let started = Instant::now();
    let reply = transport
        .access_request([7; 16], &user("ann"), Duration::from_millis(200), 2)
        .await
        .unwrap();
    assert_eq!(reply.code, Code::AccessAccept);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let (first, second) = responder.await.unwrap();
    assert_eq!(first, second, "same Identifier, authenticator and bytes");
    let signed = Packet::decode(&first).unwrap();
    assert_eq!(
        signed.attributes[0].typ,
        attr::MESSAGE_AUTHENTICATOR,
        "signed with Message-Authenticator first"
    );
}

#[tokio::test]
async fn forged_or_unsigned_replies_are_discarded_and_the_real_one_wins() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; MAX_PACKET_LEN];
        let (len, peer) = socket.recv_from(&mut buffer).await.unwrap();
        let request = Packet::decode(&buffer[..len]).unwrap();
        // Wrong secret.
        let forged = sign_response(
            Code::AccessAccept,
            request.identifier,
            &request.authenticator,
            &[Attribute::new(attr::CLASS, "forged")],
            b"guessed",
        )
        .unwrap();
        // Right secret, but no Message-Authenticator: a BLAST-RADIUS shape.
        let mut unsigned = Packet {
            code: Code::AccessAccept,
            identifier: request.identifier,
            authenticator: request.authenticator,
            attributes: vec![Attribute::new(attr::CLASS, "unsigned")],
        }
        .encode()
        .unwrap();
        let response_authenticator: [u8; 16] = {
            use md5::{Digest, Md5};
            Md5::new()
                .chain_update(&unsigned)
                .chain_update(SECRET)
                .finalize()
                .into()
        };
        unsigned[4..20].copy_from_slice(&response_authenticator);
        let real = reply_to(&buffer[..len], SECRET);
        for reply in [forged, unsigned, real] {
            socket.send_to(&reply, peer).await.unwrap();
        }
    });
    let reply = transport(server)
        .access_request(rand::random(), &user("real"), Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert_eq!(reply.attribute(attr::CLASS), Some(&b"real"[..]));
}

#[tokio::test]
async fn only_bad_replies_end_in_a_timeout_that_counts_them() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; MAX_PACKET_LEN];
        loop {
            let (len, peer) = socket.recv_from(&mut buffer).await.unwrap();
            let forged = reply_to(&buffer[..len], b"wrong-secret");
            socket.send_to(&forged, peer).await.unwrap();
        }
    });
    let error = transport(server)
        .access_request(rand::random(), &user("x"), Duration::from_millis(100), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Timeout {
                attempts: 2,
                discarded: 2
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("failed verification"));
}

#[tokio::test]
async fn nothing_listening_is_refused_without_waiting_for_the_timeout() {
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let started = Instant::now();
    let error = transport(closed)
        .access_request(rand::random(), &user("x"), Duration::from_secs(5), 3)
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Refused), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn an_abandoned_request_frees_its_identifier() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let transport = transport(silent.local_addr().unwrap());
    let attributes = user("x");
    let request = transport.access_request(rand::random(), &attributes, Duration::from_secs(30), 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), request)
            .await
            .is_err()
    );
    assert_eq!(transport.sockets(), 1);
    assert_eq!(transport.outstanding(), 0);
}
