//! One request/reply exchange, whatever carried it: the checks every received
//! packet passes and the signed reply, shared by the UDP listener
//! ([`super::server`]) and the RadSec listener ([`super::radsec`]). The
//! transports only find the client (source address for UDP, certificate for
//! RadSec), apply their own limits, and move bytes.
//!
//! In order: decode → code check → attributes repeated that may appear once →
//! Message-Authenticator (BLAST-RADIUS, and required with EAP-Message) →
//! Status-Server answer → duplicate cache → the [`Handler`] → a signed reply
//! that echoes Proxy-State. Anything that fails a check is dropped silently as
//! RFC 2865 §3 and RFC 3579 §3.2 require, logged at debug with its reason and
//! counted in `rampart_radius_dropped_total{reason}`.

use std::net::SocketAddr;
use std::time::Instant;

use async_trait::async_trait;
use tracing::{debug, warn};

use super::attr;
use super::clients::Client;
use super::crypto::{MessageAuthenticatorCheck, check_request_message_authenticator};
use super::dedup::{DuplicateCache, RequestKey, Seen};
use super::packet::{Code, Packet};
use super::reply::{Decision, encode_reply, encode_status_reply};
use super::request::{AccessRequest, repeated_single_attribute};

/// Answers authenticated Access-Requests. Implemented by the pipeline, and by
/// small stubs in tests. Infallible: every error is already a [`Decision`].
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Decides one request.
    async fn handle(&self, request: AccessRequest) -> Decision;
}

/// Logs and counts a dropped packet; `reason` is the label of
/// `rampart_radius_dropped_total`, the same for every transport.
pub fn drop_packet(reason: &'static str, peer: SocketAddr) {
    debug!(%peer, reason, "dropped RADIUS packet");
    metrics::counter!("rampart_radius_dropped_total", "reason" => reason).increment(1);
}

/// What to do with one received packet after [`admit`].
#[derive(Debug)]
pub enum Admission {
    /// Dropped and already counted under this reason.
    Dropped(&'static str),
    /// A retransmission of a request still being processed: ignored (counted
    /// as a duplicate, RFC 5080 §2.2.2).
    InFlight,
    /// Send these bytes now: the answer to a Status-Server, or the cached
    /// reply to a retransmission.
    Reply(Vec<u8>),
    /// A new Access-Request: run it with [`process`], or, when the transport
    /// cannot take it, hand it back with [`refuse`].
    New(NewRequest),
}

/// An admitted Access-Request, registered in the duplicate cache as in flight.
#[derive(Debug)]
pub struct NewRequest {
    /// Boxed: the request's task keeps it for as long as the handler runs
    /// (tens of seconds for a held login), and each future on the way moves
    /// one pointer instead of a copy of the packet and key.
    admitted: Box<Admitted>,
}

#[derive(Debug)]
struct Admitted {
    packet: Packet,
    key: RequestKey,
}

impl NewRequest {
    /// The RADIUS Identifier, for logs.
    pub fn identifier(&self) -> u8 {
        self.admitted.packet.identifier
    }
}

/// Checks one received packet from `client` (already identified by the
/// transport) and registers a new request in `dedup`. Never blocks.
pub fn admit(bytes: &[u8], client: &Client, peer: SocketAddr, dedup: &DuplicateCache) -> Admission {
    let packet = match Packet::decode(bytes) {
        Ok(packet) => packet,
        Err(error) => return dropped(error.reason(), peer),
    };
    if !matches!(packet.code, Code::AccessRequest | Code::StatusServer) {
        return dropped("unsupported_code", peer);
    }
    // Two User-Names (or States, ...) would let rampart check one while an
    // upstream server reads the other: discarded as invalid (RFC 2865 §3, §5.44).
    if packet.code == Code::AccessRequest
        && let Some(typ) = repeated_single_attribute(&packet)
    {
        debug!(%peer, attribute = typ, "attribute repeated in an Access-Request");
        return dropped("duplicate_attribute", peer);
    }
    match check_request_message_authenticator(bytes, client.secret.expose()) {
        MessageAuthenticatorCheck::Valid => {}
        MessageAuthenticatorCheck::Invalid => return dropped("bad_message_authenticator", peer),
        // RFC 3579 §3.2: an Access-Request with EAP-Message and no
        // Message-Authenticator MUST be silently discarded, whatever the
        // client's own setting.
        MessageAuthenticatorCheck::Absent if packet.attribute(attr::EAP_MESSAGE).is_some() => {
            return dropped("eap_without_message_authenticator", peer);
        }
        // BLAST-RADIUS: a client that requires it gets nothing without it.
        // RFC 5997 §3: Status-Server always carries Message-Authenticator.
        MessageAuthenticatorCheck::Absent
            if client.require_message_authenticator || packet.code == Code::StatusServer =>
        {
            return dropped("missing_message_authenticator", peer);
        }
        MessageAuthenticatorCheck::Absent => {}
    }
    if packet.code == Code::StatusServer {
        // RFC 5997 §4: answered directly, not subject to duplicate detection.
        return match encode_status_reply(&packet, client.secret.expose()) {
            Ok(reply) => Admission::Reply(reply),
            Err(error) => {
                warn!(%error, "cannot encode Status-Server reply");
                Admission::Dropped("encode_error")
            }
        };
    }
    let key = RequestKey {
        peer,
        identifier: packet.identifier,
        authenticator: packet.authenticator,
    };
    match dedup.begin(key, Instant::now()) {
        Seen::New => Admission::New(NewRequest {
            admitted: Box::new(Admitted { packet, key }),
        }),
        Seen::InFlight => {
            debug!(%peer, id = packet.identifier, "retransmission while in flight: dropped");
            metrics::counter!("rampart_radius_duplicates_total", "kind" => "in_flight")
                .increment(1);
            Admission::InFlight
        }
        Seen::Answered(reply) => {
            debug!(%peer, id = packet.identifier, "retransmission: cached reply resent");
            metrics::counter!("rampart_radius_duplicates_total", "kind" => "resent").increment(1);
            Admission::Reply(reply)
        }
    }
}

fn dropped(reason: &'static str, peer: SocketAddr) -> Admission {
    drop_packet(reason, peer);
    Admission::Dropped(reason)
}

/// Gives back an admitted request the transport cannot process (overload):
/// counted as dropped under `reason` and forgotten by the duplicate cache, so
/// a retransmission is processed.
pub fn refuse(request: NewRequest, reason: &'static str, peer: SocketAddr, dedup: &DuplicateCache) {
    dedup.abandon(request.admitted.key);
    drop_packet(reason, peer);
}

/// Runs an admitted Access-Request through the handler and returns the signed
/// reply, which is also stored for retransmissions. `None` (nothing to send)
/// when the request cannot be decoded with the client's secret; the cache then
/// forgets it.
pub async fn process(
    request: NewRequest,
    client: &Client,
    peer: SocketAddr,
    handler: &dyn Handler,
    dedup: &DuplicateCache,
) -> Option<Vec<u8>> {
    let mut admitted = request.admitted;
    match answer(&mut admitted.packet, client, peer, handler).await {
        Some(reply) => {
            dedup.complete(admitted.key, reply.clone(), Instant::now());
            Some(reply)
        }
        None => {
            dedup.abandon(admitted.key);
            None
        }
    }
}

/// Runs one Access-Request through the handler and encodes the reply.
async fn answer(
    packet: &mut Packet,
    client: &Client,
    peer: SocketAddr,
    handler: &dyn Handler,
) -> Option<Vec<u8>> {
    let secret = client.secret.expose();
    let request = match AccessRequest::from_packet(packet, secret, client.name.clone(), peer) {
        Ok(request) => request,
        Err(error) => {
            debug!(%peer, %error, "undecodable Access-Request");
            drop_packet("bad_user_password", peer);
            return None;
        }
    };
    // The reply needs only the identifier, the authenticator and Proxy-State
    // (RFC 2865 §5.33): keep just those while the handler runs, which for a
    // push or call is tens of seconds.
    packet.attributes.retain(|a| a.typ == attr::PROXY_STATE);
    packet.attributes.shrink_to_fit();
    let decision = handler.handle(request).await;
    match encode_reply(&decision, packet, secret) {
        Ok(reply) => Some(reply),
        Err(error) => {
            warn!(%error, "cannot encode reply");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::radius::attr;
    use crate::radius::crypto::{hide_password, sign_request, verify_response};
    use crate::radius::packet::Attribute;
    use crate::secret::Secret;

    struct AcceptAll;

    #[async_trait]
    impl Handler for AcceptAll {
        async fn handle(&self, _: AccessRequest) -> Decision {
            Decision::Accept {
                reply_message: None,
                attributes: Vec::new(),
            }
        }
    }

    fn client(require: bool) -> Client {
        Client {
            name: Arc::from("nas"),
            network: "127.0.0.1/32".parse().unwrap(),
            secret: Secret::new(b"radsec".to_vec()),
            require_message_authenticator: require,
            allow_app_passwords: false,
        }
    }

    fn request(id: u8, signed: bool, extra: Vec<Attribute>) -> Vec<u8> {
        let authenticator = [id; 16];
        let hidden = hide_password(b"pw", b"radsec", &authenticator).unwrap();
        let mut attributes = vec![
            Attribute::new(attr::USER_NAME, "alice"),
            Attribute::new(attr::USER_PASSWORD, hidden),
        ];
        attributes.extend(extra);
        sign_request(
            Code::AccessRequest,
            id,
            &authenticator,
            &attributes,
            b"radsec",
            signed,
        )
        .unwrap()
    }

    const PEER: &str = "127.0.0.1:5000";

    #[tokio::test]
    async fn a_request_is_answered_once_then_resent_from_the_cache() {
        let dedup = DuplicateCache::new(Duration::from_secs(30));
        let peer = PEER.parse().unwrap();
        let proxy = vec![Attribute::new(attr::PROXY_STATE, "p1")];
        let bytes = request(7, true, proxy);
        let Admission::New(new) = admit(&bytes, &client(true), peer, &dedup) else {
            panic!("new request expected")
        };
        assert!(matches!(
            admit(&bytes, &client(true), peer, &dedup),
            Admission::InFlight
        ));
        let reply = process(new, &client(true), peer, &AcceptAll, &dedup)
            .await
            .unwrap();
        let decoded = verify_response(&reply, &[7; 16], b"radsec", true).unwrap();
        assert_eq!(decoded.code, Code::AccessAccept);
        assert_eq!(decoded.attribute(attr::PROXY_STATE), Some(&b"p1"[..]));
        match admit(&bytes, &client(true), peer, &dedup) {
            Admission::Reply(again) => assert_eq!(again, reply),
            other => panic!("cached reply expected, got {other:?}"),
        }
    }

    #[test]
    fn blast_radius_rules_apply_per_client() {
        let dedup = DuplicateCache::new(Duration::from_secs(30));
        let peer = PEER.parse().unwrap();
        let unsigned = request(1, false, Vec::new());
        assert!(matches!(
            admit(&unsigned, &client(true), peer, &dedup),
            Admission::Dropped("missing_message_authenticator")
        ));
        assert!(matches!(
            admit(&unsigned, &client(false), peer, &dedup),
            Admission::New(_)
        ));
        let mut tampered = request(2, true, Vec::new());
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            admit(&tampered, &client(false), peer, &dedup),
            Admission::Dropped("bad_message_authenticator")
        ));
    }

    #[test]
    fn a_repeated_single_attribute_drops_the_request() {
        let dedup = DuplicateCache::new(Duration::from_secs(30));
        let peer = PEER.parse().unwrap();
        let second_name = vec![Attribute::new(attr::USER_NAME, "mallory")];
        for (id, require) in [(1, true), (2, false)] {
            let bytes = request(id, true, second_name.clone());
            assert!(matches!(
                admit(&bytes, &client(require), peer, &dedup),
                Admission::Dropped("duplicate_attribute")
            ));
        }
        // Attributes a request may repeat are fine (RFC 2865 §5.44 "0+").
        let repeated_proxy_state = vec![
            Attribute::new(attr::PROXY_STATE, "a"),
            Attribute::new(attr::PROXY_STATE, "b"),
        ];
        let bytes = request(3, true, repeated_proxy_state);
        assert!(matches!(
            admit(&bytes, &client(true), peer, &dedup),
            Admission::New(_)
        ));
    }

    #[test]
    fn eap_without_message_authenticator_is_dropped_even_for_a_lax_client() {
        let dedup = DuplicateCache::new(Duration::from_secs(30));
        let peer = PEER.parse().unwrap();
        // EAP-Response/Identity (RFC 3748 §5.1).
        let eap = vec![Attribute::new(
            attr::EAP_MESSAGE,
            &b"\x02\x01\x00\x06\x01a"[..],
        )];
        let unsigned = request(4, false, eap.clone());
        assert!(matches!(
            admit(&unsigned, &client(false), peer, &dedup),
            Admission::Dropped("eap_without_message_authenticator")
        ));
        let signed = request(5, true, eap);
        assert!(matches!(
            admit(&signed, &client(false), peer, &dedup),
            Admission::New(_)
        ));
    }

    #[test]
    fn refused_requests_are_forgotten() {
        let dedup = DuplicateCache::new(Duration::from_secs(30));
        let peer = PEER.parse().unwrap();
        let bytes = request(3, true, Vec::new());
        let Admission::New(new) = admit(&bytes, &client(true), peer, &dedup) else {
            panic!("new request expected")
        };
        refuse(new, "overloaded", peer, &dedup);
        assert!(matches!(
            admit(&bytes, &client(true), peer, &dedup),
            Admission::New(_)
        ));
    }
}
