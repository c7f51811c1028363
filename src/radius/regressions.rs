//! Inputs the fuzz targets in `fuzz/` found to crash the wire code, kept as
//! unit tests so the fixes stay fixed (docs/fuzzing.md lists the runs).

use super::crypto::{MessageAuthenticatorCheck, check_request_message_authenticator};
use super::packet::{DecodeError, Packet};

/// `packet_decode`: a datagram whose Length field (80) exceeds the octets
/// received (68), with a Message-Authenticator inside what did arrive. The
/// check sliced the datagram to its Length field and panicked.
#[test]
fn message_authenticator_check_of_a_truncated_datagram_is_invalid_not_a_panic() {
    let datagram: [u8; 68] = [
        1, 6, 0, 80, 200, 189, 72, 245, 73, 4, 145, 137, 221, 163, 92, 97, 108, 105, 99, 101, 32,
        11, 114, 100, 103, 97, 116, 101, 119, 97, 121, 31, 13, 50, 48, 51, 46, 48, 46, 49, 49, 51,
        46, 53, 6, 6, 0, 0, 0, 2, 80, 18, 104, 190, 133, 48, 171, 251, 248, 22, 76, 243, 159, 184,
        119, 210, 185, 118,
    ];
    assert_eq!(
        check_request_message_authenticator(&datagram, b"testing123"),
        MessageAuthenticatorCheck::Invalid
    );
    assert_eq!(Packet::decode(&datagram), Err(DecodeError::Truncated));
}
