//! Property tests of the wire code: the attribute codec (RFC 2865 §5),
//! User-Password hiding (RFC 2865 §5.2) and the duplicate cache (RFC 5080
//! §2.2.2). The fuzz targets in `fuzz/` throw arbitrary bytes at the same
//! code; these state what must hold for every valid input.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use super::attr::MESSAGE_AUTHENTICATOR;
use super::clients::Client;
use super::crypto::{MAX_PASSWORD_LEN, hide_password, reveal_password, sign_request};
use super::dedup::{DuplicateCache, RequestKey, Seen};
use super::exchange::{Admission, admit};
use super::packet::{Attribute, Code, HEADER_LEN, MAX_PACKET_LEN, Packet};
use crate::secret::Secret;

/// One attribute of a valid length: 1..=253 value octets (RFC 2865 §5), and
/// exactly 16 for Message-Authenticator (RFC 3579 §3.2), which decode checks.
fn attribute() -> impl Strategy<Value = Attribute> {
    (any::<u8>(), vec(any::<u8>(), 1..=253)).prop_map(|(typ, mut value)| {
        if typ == MESSAGE_AUTHENTICATOR {
            value.resize(16, 0);
        }
        Attribute::new(typ, value)
    })
}

/// Attributes that fit in one packet (4096 octets with the header).
fn attributes() -> impl Strategy<Value = Vec<Attribute>> {
    vec(attribute(), 0..40).prop_map(|mut list| {
        let mut room = MAX_PACKET_LEN - HEADER_LEN;
        list.retain(|a| {
            let size = 2 + a.value.len();
            let fits = size <= room;
            if fits {
                room -= size;
            }
            fits
        });
        list
    })
}

fn peer(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, host)), port)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn attributes_encode_then_decode_to_the_same_list(
        code in any::<u8>(),
        identifier in any::<u8>(),
        authenticator in any::<[u8; 16]>(),
        attributes in attributes(),
    ) {
        let packet = Packet { code: Code::from_u8(code), identifier, authenticator, attributes };
        let bytes = packet.encode().expect("valid lengths encode");
        prop_assert_eq!(bytes.len(), HEADER_LEN + packet.attributes.iter().map(|a| 2 + a.value.len()).sum::<usize>());
        let decoded = Packet::decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(&decoded, &packet);
        prop_assert_eq!(decoded.encode().expect("re-encodes"), bytes);
    }

    /// Every length 1–128 in each case: hiding pads to 16-octet blocks, and
    /// revealing with the same secret and authenticator gives the password back.
    #[test]
    fn user_password_hide_then_reveal_round_trips_at_every_length(
        secret in vec(any::<u8>(), 1..64),
        authenticator in any::<[u8; 16]>(),
        // No NUL: NULs are the padding (RFC 2865 §5.2), stripped on reveal.
        text in vec(1u8..=255, MAX_PASSWORD_LEN),
    ) {
        for len in 1..=MAX_PASSWORD_LEN {
            let password = &text[..len];
            let hidden = hide_password(password, &secret, &authenticator).expect("≤128 hides");
            prop_assert_eq!(hidden.len(), len.div_ceil(16) * 16);
            let revealed = reveal_password(&hidden, &secret, &authenticator).expect("reveals");
            prop_assert_eq!(&revealed[..], password);
        }
        prop_assert!(hide_password(&[b'x'; MAX_PASSWORD_LEN + 1], &secret, &authenticator).is_err());
    }

    /// A request that differs from an earlier one in source, Identifier or
    /// Request Authenticator is new: never dropped as in flight, never
    /// answered with the other's reply.
    #[test]
    fn the_duplicate_cache_never_answers_a_different_request(
        keys in vec((0u8..3, 0u16..3, 0u8..3, 0u8..3), 1..40),
        answer in vec(any::<bool>(), 40),
    ) {
        let cache = DuplicateCache::new(Duration::from_secs(30));
        let now = Instant::now();
        let mut replies: std::collections::HashMap<RequestKey, Option<Vec<u8>>> = Default::default();
        for (i, &(host, port, identifier, auth)) in keys.iter().enumerate() {
            let key = RequestKey { peer: peer(host, 1812 + port), identifier, authenticator: [auth; 16] };
            let reply = format!("{key:?}").into_bytes();
            match (cache.begin(key, now), replies.get(&key)) {
                (Seen::New, None) => {
                    if answer[i] {
                        cache.complete(key, reply.clone(), now);
                        replies.insert(key, Some(reply));
                    } else {
                        replies.insert(key, None);
                    }
                }
                (Seen::InFlight, Some(None)) => {}
                (Seen::Answered(sent), Some(Some(stored))) => {
                    prop_assert_eq!(&sent, stored);
                    prop_assert_eq!(sent, reply);
                }
                (seen, known) => prop_assert!(false, "{key:?}: {seen:?} but earlier {known:?}"),
            }
        }
    }

    /// The same through the listener's admission path with real packets: a
    /// second Access-Request from the same source and Identifier is a
    /// retransmission only when its Request Authenticator is the same.
    #[test]
    fn admission_treats_a_new_authenticator_as_a_new_request(
        identifier in any::<u8>(),
        first in any::<[u8; 16]>(),
        second in any::<[u8; 16]>(),
        user in "[a-z]{1,20}",
        other_user in "[a-z]{1,20}",
    ) {
        let client = Client {
            name: Arc::from("nas"),
            network: "192.0.2.0/24".parse().expect("network"),
            secret: Secret::new(b"testing123".to_vec()),
            require_message_authenticator: true,
            allow_app_passwords: false,
        };
        let cache = DuplicateCache::new(Duration::from_secs(30));
        let request = |authenticator: &[u8; 16], name: &str| {
            let attributes = [Attribute::new(super::attr::USER_NAME, name.as_bytes())];
            sign_request(Code::AccessRequest, identifier, authenticator, &attributes, b"testing123", true)
                .expect("signs")
        };
        let source = peer(1, 1812);
        let one = request(&first, &user);
        let Admission::New(admitted) = admit(&one, &client, source, &cache) else {
            return Err(TestCaseError::fail("first copy is new"));
        };
        // Still in flight: the identical copy is dropped; a new authenticator is new.
        prop_assert!(matches!(admit(&one, &client, source, &cache), Admission::InFlight));
        let two = request(&second, &other_user);
        let again = admit(&two, &client, source, &cache);
        prop_assert_eq!(matches!(again, Admission::New(_)), first != second);
        drop(admitted);
    }
}
