//! A datagram as the UDP listener receives it: decode (RFC 2865 §3, §5), the
//! request's Message-Authenticator check (RFC 3579 §3.2) and the client-side
//! Response Authenticator check, all with a fixed secret; then what the
//! request path does with a packet that decoded (User-Password reveal and the
//! full `admit` path with its duplicate cache).
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rampart::radius::clients::Client;
use rampart::radius::crypto::{
    MessageAuthenticatorCheck, check_request_message_authenticator, sign_request, sign_response,
    verify_response,
};
use rampart::radius::dedup::DuplicateCache;
use rampart::radius::exchange::{Admission, admit};
use rampart::radius::{AccessRequest, Code, Packet};
use rampart::secret::Secret;

const SECRET: &[u8] = b"testing123";

fuzz_target!(|data: &[u8]| {
    let check = check_request_message_authenticator(data, SECRET);
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    // Decoding is lossless: the first Length octets encode back identically.
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    assert_eq!(
        packet.encode().expect("decoded packets encode"),
        &data[..length]
    );
    // As if it were a reply to a request carrying its own authenticator.
    let _ = verify_response(data, &packet.authenticator, SECRET, true);

    let peer: SocketAddr = "192.0.2.1:1812".parse().unwrap();
    let request = AccessRequest::from_packet(&packet, SECRET, Arc::from("nas"), peer);
    if let Ok(request) = request {
        assert_eq!(request.authenticator, packet.authenticator);
    }

    // Re-signed with the secret, the same attributes always verify.
    if let Ok(signed) = sign_request(
        packet.code,
        packet.identifier,
        &packet.authenticator,
        &packet.attributes,
        SECRET,
        true,
    ) {
        assert_eq!(
            check_request_message_authenticator(&signed, SECRET),
            MessageAuthenticatorCheck::Valid
        );
        // The same bytes with the MAC's last octet flipped never verify.
        let mut forged = signed.clone();
        forged[37] ^= 1;
        assert_eq!(
            check_request_message_authenticator(&forged, SECRET),
            MessageAuthenticatorCheck::Invalid
        );
    }
    if let Ok(reply) = sign_response(
        Code::AccessAccept,
        packet.identifier,
        &packet.authenticator,
        &packet.attributes,
        SECRET,
    ) {
        verify_response(&reply, &packet.authenticator, SECRET, true).expect("own reply verifies");
    }

    // The whole admission path; a second copy is a retransmission, never new.
    let client = Client {
        name: Arc::from("nas"),
        network: "192.0.2.0/24".parse().unwrap(),
        secret: Secret::new(SECRET.to_vec()),
        require_message_authenticator: false,
        allow_app_passwords: false,
    };
    let dedup = DuplicateCache::new(Duration::from_secs(30));
    if let Admission::New(_) = admit(data, &client, peer, &dedup) {
        assert_eq!(packet.code, Code::AccessRequest);
        assert_ne!(check, MessageAuthenticatorCheck::Invalid);
        assert!(!matches!(
            admit(data, &client, peer, &dedup),
            Admission::New(_)
        ));
    }
});
