//! The shared-secret cryptography of RADIUS: User-Password hiding (RFC 2865 §5.2),
//! Response Authenticator (RFC 2865 §3), Message-Authenticator (RFC 3579 §3.2),
//! and signing whole requests and responses with them.
//!
//! Pure functions over bytes; MAC comparisons are constant time (`subtle`).
//! Every response rampart sends goes through [`sign_response`], which puts
//! Message-Authenticator first as the BLAST-RADIUS mitigation requires
//! (draft-ietf-radext-deprecating-radius; CVE-2024-3596).

use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::attr::MESSAGE_AUTHENTICATOR;
use super::packet::{Attribute, Code, EncodeError, HEADER_LEN, Packet};

type HmacMd5 = hmac::Hmac<Md5>;

/// Longest User-Password plaintext (RFC 2865 §5.2).
pub const MAX_PASSWORD_LEN: usize = 128;

/// Why a User-Password could not be hidden or revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Plaintext longer than 128 octets.
    #[error("password longer than 128 octets")]
    TooLong,
    /// Hidden value not a multiple of 16 octets between 16 and 128.
    #[error("hidden User-Password is not 16..=128 octets in blocks of 16")]
    BadLength,
}

/// Result of checking a request's Message-Authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuthenticatorCheck {
    /// The packet carries none.
    Absent,
    /// Present and correct for this secret.
    Valid,
    /// Present and wrong: a forged or mangled packet, or the wrong secret.
    Invalid,
}

/// Hides a password: `c(i) = p(i) XOR MD5(secret + c(i-1))`, `c(0) = authenticator` (RFC 2865 §5.2).
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, PasswordError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    // An empty password still occupies one block of padding.
    let blocks = password.len().div_ceil(16).max(1);
    let mut out = Zeroizing::new(vec![0u8; blocks * 16]);
    out[..password.len()].copy_from_slice(password);
    let mut previous: [u8; 16] = *authenticator;
    for block in out.chunks_exact_mut(16) {
        let pad = Md5::new()
            .chain_update(secret)
            .chain_update(previous)
            .finalize();
        for (byte, key) in block.iter_mut().zip(pad.iter()) {
            *byte ^= key;
        }
        previous.copy_from_slice(block);
    }
    Ok(out.to_vec())
}

/// Reveals a hidden password and strips the NUL padding (RFC 2865 §5.2).
pub fn reveal_password(
    hidden: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Zeroizing<Vec<u8>>, PasswordError> {
    if hidden.is_empty() || hidden.len() > MAX_PASSWORD_LEN || !hidden.len().is_multiple_of(16) {
        return Err(PasswordError::BadLength);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(hidden.len()));
    let mut previous: &[u8] = authenticator;
    for block in hidden.chunks_exact(16) {
        let pad = Md5::new()
            .chain_update(secret)
            .chain_update(previous)
            .finalize();
        out.extend(block.iter().zip(pad.iter()).map(|(c, k)| c ^ k));
        previous = block;
    }
    let end = out.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    out.truncate(end);
    Ok(out)
}

/// HMAC-MD5 over `packet` keyed with the secret (RFC 3579 §3.2). The caller has
/// already zeroed the Message-Authenticator value and set the authenticator field
/// as the RFC requires for this packet type.
pub fn message_authenticator(packet: &[u8], secret: &[u8]) -> [u8; 16] {
    let mut mac =
        <HmacMd5 as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(packet);
    mac.finalize().into_bytes().into()
}

/// Checks the Message-Authenticator of a received request (Access-Request,
/// Status-Server), whose authenticator field is the Request Authenticator itself.
/// `raw` is the datagram; only its first Length octets count.
pub fn check_request_message_authenticator(raw: &[u8], secret: &[u8]) -> MessageAuthenticatorCheck {
    let Some((length, offset)) = find_message_authenticator(raw) else {
        return MessageAuthenticatorCheck::Absent;
    };
    // Shorter than its Length field: discarded anyway (RFC 2865 §3), and the
    // MAC covers octets that never arrived, so it cannot be valid.
    let Some(packet) = raw.get(..length) else {
        return MessageAuthenticatorCheck::Invalid;
    };
    let mut copy = packet.to_vec();
    let received: [u8; 16] = copy[offset..offset + 16].try_into().unwrap_or([0; 16]);
    copy[offset..offset + 16].fill(0);
    let expected = message_authenticator(&copy, secret);
    if bool::from(expected.ct_eq(&received)) {
        MessageAuthenticatorCheck::Valid
    } else {
        MessageAuthenticatorCheck::Invalid
    }
}

/// Finds the first Message-Authenticator value in a well-formed packet:
/// returns (packet length, offset of the 16 value octets).
fn find_message_authenticator(raw: &[u8]) -> Option<(usize, usize)> {
    let length = usize::from(u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?]));
    let mut offset = HEADER_LEN;
    while offset + 2 <= length.min(raw.len()) {
        let typ = raw[offset];
        let len = usize::from(raw[offset + 1]);
        if len < 3 || offset + len > length {
            return None;
        }
        if typ == MESSAGE_AUTHENTICATOR && len == 18 {
            return Some((length, offset + 2));
        }
        offset += len;
    }
    None
}

/// Builds and signs a response (Access-Accept/Reject/Challenge) to a request.
///
/// Message-Authenticator goes first (BLAST-RADIUS), computed over the packet with
/// the Request Authenticator in the authenticator field (RFC 3579 §3.2); then the
/// Response Authenticator `MD5(Code+ID+Length+RequestAuth+Attributes+Secret)`
/// replaces it (RFC 2865 §3). Any Message-Authenticator in `attributes` is dropped.
pub fn sign_response(
    code: Code,
    identifier: u8,
    request_authenticator: &[u8; 16],
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut all = Vec::with_capacity(attributes.len() + 1);
    all.push(Attribute::new(MESSAGE_AUTHENTICATOR, [0u8; 16]));
    all.extend(
        attributes
            .iter()
            .filter(|a| a.typ != MESSAGE_AUTHENTICATOR)
            .cloned(),
    );
    let packet = Packet {
        code,
        identifier,
        authenticator: *request_authenticator,
        attributes: all,
    };
    let mut bytes = packet.encode()?;
    let ma_offset = HEADER_LEN + 2;
    let ma = message_authenticator(&bytes, secret);
    bytes[ma_offset..ma_offset + 16].copy_from_slice(&ma);
    let response_authenticator: [u8; 16] = Md5::new()
        .chain_update(&bytes)
        .chain_update(secret)
        .finalize()
        .into();
    bytes[4..20].copy_from_slice(&response_authenticator);
    Ok(bytes)
}

/// Builds and signs a request (Access-Request or Status-Server) with a random-
/// looking authenticator chosen by the caller and Message-Authenticator first
/// when `with_message_authenticator` (RFC 3579 §3.2, RFC 5997 §3).
/// Used by `rampart radtest`, the tests and the load generator.
pub fn sign_request(
    code: Code,
    identifier: u8,
    authenticator: &[u8; 16],
    attributes: &[Attribute],
    secret: &[u8],
    with_message_authenticator: bool,
) -> Result<Vec<u8>, EncodeError> {
    let mut all = Vec::with_capacity(attributes.len() + 1);
    if with_message_authenticator {
        all.push(Attribute::new(MESSAGE_AUTHENTICATOR, [0u8; 16]));
    }
    all.extend(
        attributes
            .iter()
            .filter(|a| a.typ != MESSAGE_AUTHENTICATOR)
            .cloned(),
    );
    let packet = Packet {
        code,
        identifier,
        authenticator: *authenticator,
        attributes: all,
    };
    let mut bytes = packet.encode()?;
    if with_message_authenticator {
        let ma = message_authenticator(&bytes, secret);
        bytes[HEADER_LEN + 2..HEADER_LEN + 18].copy_from_slice(&ma);
    }
    Ok(bytes)
}

/// Why a response failed verification on the client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not a decodable packet.
    #[error("malformed response: {0}")]
    Malformed(#[from] super::packet::DecodeError),
    /// The Response Authenticator does not match (wrong secret or forged).
    #[error("bad Response Authenticator")]
    BadAuthenticator,
    /// Message-Authenticator missing (required of servers since BLAST-RADIUS).
    #[error("response has no Message-Authenticator")]
    MissingMessageAuthenticator,
    /// Message-Authenticator present but wrong.
    #[error("bad Message-Authenticator in response")]
    BadMessageAuthenticator,
}

/// Verifies a response against the request it answers: Response Authenticator
/// (RFC 2865 §3) and, when `require_message_authenticator`, a valid
/// Message-Authenticator (RFC 3579 §3.2). Returns the decoded packet.
pub fn verify_response(
    raw: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Packet, ResponseError> {
    let packet = Packet::decode(raw)?;
    let length = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
    let mut copy = raw[..length].to_vec();
    copy[4..20].copy_from_slice(request_authenticator);
    let expected: [u8; 16] = Md5::new()
        .chain_update(&copy)
        .chain_update(secret)
        .finalize()
        .into();
    if !bool::from(expected.ct_eq(&packet.authenticator)) {
        return Err(ResponseError::BadAuthenticator);
    }
    match find_message_authenticator(&copy) {
        Some((_, offset)) => {
            let received: [u8; 16] = copy[offset..offset + 16].try_into().unwrap_or([0; 16]);
            copy[offset..offset + 16].fill(0);
            let ma = message_authenticator(&copy, secret);
            if !bool::from(ma.ct_eq(&received)) {
                return Err(ResponseError::BadMessageAuthenticator);
            }
        }
        None if require_message_authenticator => {
            return Err(ResponseError::MissingMessageAuthenticator);
        }
        None => {}
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attr;
    use crate::radius::packet::hex_bytes;

    const RFC2865_SECRET: &[u8] = b"xyzzy5461";
    const RFC2865_7_1_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee
        04 06 c0 a8 01 10 05 06 00 00 00 03";
    /// RFC 2865 §7.1: the Access-Accept answering the request above.
    const RFC2865_7_1_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
        9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";

    fn request_authenticator(bytes: &[u8]) -> [u8; 16] {
        bytes[4..20].try_into().unwrap()
    }

    #[test]
    fn reveals_the_rfc2865_example_password() {
        let bytes = hex_bytes(RFC2865_7_1_REQUEST);
        let packet = Packet::decode(&bytes).unwrap();
        let hidden = packet.attribute(attr::USER_PASSWORD).unwrap();
        let password = reveal_password(hidden, RFC2865_SECRET, &packet.authenticator).unwrap();
        assert_eq!(&password[..], b"arctangent");
        // And hiding it again gives the octets on the wire.
        assert_eq!(
            hide_password(b"arctangent", RFC2865_SECRET, &packet.authenticator).unwrap(),
            hidden
        );
    }

    #[test]
    fn rfc2865_example_accept_verifies_and_our_signing_matches_its_authenticator() {
        let request = hex_bytes(RFC2865_7_1_REQUEST);
        let accept = hex_bytes(RFC2865_7_1_ACCEPT);
        let req_auth = request_authenticator(&request);
        let packet = verify_response(&accept, &req_auth, RFC2865_SECRET, false).unwrap();
        assert_eq!(packet.code, Code::AccessAccept);
        // The RFC reply predates Message-Authenticator: a strict client refuses it.
        assert_eq!(
            verify_response(&accept, &req_auth, RFC2865_SECRET, true).unwrap_err(),
            ResponseError::MissingMessageAuthenticator
        );
        assert_eq!(
            verify_response(&accept, &req_auth, b"wrong", false).unwrap_err(),
            ResponseError::BadAuthenticator
        );
    }

    /// An Access-Request signed by FreeRADIUS 3.2.1 `radclient` (an independent
    /// implementation), secret "xyzzy5461": Message-Authenticator is the last
    /// attribute there, so this also checks that its position does not matter.
    const RADCLIENT_REQUEST_WITH_MA: &str = "01a200440948592690f54fc3985036b059451ddb01066e656d6f\
        02121d1cf27d180506a5da834449cc1caae40406c0a801105012f9183dcfb4d040c92ef360605fb728b1";

    #[test]
    fn verifies_a_message_authenticator_computed_by_radclient() {
        let bytes = hex_bytes(RADCLIENT_REQUEST_WITH_MA);
        assert_eq!(
            check_request_message_authenticator(&bytes, RFC2865_SECRET),
            MessageAuthenticatorCheck::Valid
        );
        assert_eq!(
            check_request_message_authenticator(&bytes, b"xyzzy5462"),
            MessageAuthenticatorCheck::Invalid
        );
        let packet = Packet::decode(&bytes).unwrap();
        let password = reveal_password(
            packet.attribute(attr::USER_PASSWORD).unwrap(),
            RFC2865_SECRET,
            &packet.authenticator,
        )
        .unwrap();
        assert_eq!(&password[..], b"arctangent");
        // Re-signing the same attributes with MA first gives a packet that verifies too.
        let resigned = sign_request(
            Code::AccessRequest,
            packet.identifier,
            &packet.authenticator,
            &packet.attributes,
            RFC2865_SECRET,
            true,
        )
        .unwrap();
        assert_eq!(
            check_request_message_authenticator(&resigned, RFC2865_SECRET),
            MessageAuthenticatorCheck::Valid
        );
    }

    #[test]
    fn hmac_md5_matches_rfc2202_vectors() {
        // RFC 2202 §2, test cases 1 and 2.
        assert_eq!(
            hex::encode(message_authenticator(b"Hi There", &[0x0b; 16])),
            "9294727a3638bb1c13f48ef8158bfc9d"
        );
        assert_eq!(
            hex::encode(message_authenticator(
                b"what do ya want for nothing?",
                b"Jefe"
            )),
            "750c783e6ab0b503eaa86e310a5db738"
        );
    }

    #[test]
    fn passwords_of_every_length_round_trip() {
        let auth = [7u8; 16];
        for len in 0..=MAX_PASSWORD_LEN {
            let password: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let hidden = hide_password(&password, b"s3cret", &auth).unwrap();
            assert_eq!(hidden.len() % 16, 0);
            assert_eq!(
                &reveal_password(&hidden, b"s3cret", &auth).unwrap()[..],
                &password[..]
            );
        }
        assert_eq!(
            hide_password(&[b'a'; 129], b"s", &auth),
            Err(PasswordError::TooLong)
        );
        assert_eq!(
            reveal_password(&[0; 15], b"s", &auth).unwrap_err(),
            PasswordError::BadLength
        );
        assert_eq!(
            reveal_password(&[0; 144], b"s", &auth).unwrap_err(),
            PasswordError::BadLength
        );
    }

    #[test]
    fn signed_request_message_authenticator_checks() {
        let auth = [3u8; 16];
        let attrs = [Attribute::new(attr::USER_NAME, "alice")];
        let signed =
            sign_request(Code::AccessRequest, 9, &auth, &attrs, b"testing123", true).unwrap();
        assert_eq!(signed[20], attr::MESSAGE_AUTHENTICATOR, "first attribute");
        assert_eq!(
            check_request_message_authenticator(&signed, b"testing123"),
            MessageAuthenticatorCheck::Valid
        );
        assert_eq!(
            check_request_message_authenticator(&signed, b"other"),
            MessageAuthenticatorCheck::Invalid
        );
        let mut tampered = signed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            check_request_message_authenticator(&tampered, b"testing123"),
            MessageAuthenticatorCheck::Invalid
        );
        let unsigned =
            sign_request(Code::AccessRequest, 9, &auth, &attrs, b"testing123", false).unwrap();
        assert_eq!(
            check_request_message_authenticator(&unsigned, b"testing123"),
            MessageAuthenticatorCheck::Absent
        );
    }

    #[test]
    fn signed_response_has_message_authenticator_first_and_verifies() {
        let req_auth = [5u8; 16];
        let attrs = [
            Attribute::new(attr::REPLY_MESSAGE, "hello"),
            Attribute::new(attr::PROXY_STATE, "a"),
            Attribute::new(attr::PROXY_STATE, "b"),
        ];
        for code in [
            Code::AccessAccept,
            Code::AccessReject,
            Code::AccessChallenge,
        ] {
            let bytes = sign_response(code, 42, &req_auth, &attrs, b"testing123").unwrap();
            assert_eq!(bytes[20], attr::MESSAGE_AUTHENTICATOR);
            let packet = verify_response(&bytes, &req_auth, b"testing123", true).unwrap();
            assert_eq!(packet.code, code);
            assert_eq!(packet.identifier, 42);
            let proxy: Vec<&[u8]> = packet.attributes_of(attr::PROXY_STATE).collect();
            assert_eq!(proxy, vec![&b"a"[..], &b"b"[..]]);
            let mut tampered = bytes.clone();
            *tampered.last_mut().unwrap() ^= 1;
            assert!(verify_response(&tampered, &req_auth, b"testing123", true).is_err());
        }
    }

    #[test]
    fn interoperates_with_the_radius_crate() {
        // Differential check against an independent implementation (radius 0.4):
        // a request we sign decodes there with the same user and password.
        use radius::core::rfc2865;
        let auth = [9u8; 16];
        let secret = b"testing123";
        let hidden = hide_password(b"correct horse battery staple", secret, &auth).unwrap();
        let bytes = sign_request(
            Code::AccessRequest,
            7,
            &auth,
            &[
                Attribute::new(attr::USER_NAME, "alice"),
                Attribute::new(attr::USER_PASSWORD, hidden),
            ],
            secret,
            true,
        )
        .unwrap();
        let theirs = radius::core::packet::Packet::decode(&bytes, secret).unwrap();
        assert_eq!(
            rfc2865::lookup_user_name(&theirs).unwrap().unwrap(),
            "alice"
        );
        assert_eq!(
            rfc2865::lookup_user_password(&theirs).unwrap().unwrap(),
            b"correct horse battery staple"
        );
        // And a password the radius crate hides reveals correctly here.
        let mut packet =
            radius::core::packet::Packet::new(radius::core::code::Code::AccessRequest, secret);
        rfc2865::add_user_password(&mut packet, b"p@ss,123456").unwrap();
        let encoded = packet.encode().unwrap();
        let ours = Packet::decode(&encoded).unwrap();
        let revealed = reveal_password(
            ours.attribute(attr::USER_PASSWORD).unwrap(),
            secret,
            &ours.authenticator,
        )
        .unwrap();
        assert_eq!(&revealed[..], b"p@ss,123456");
    }
}
