//! RADIUS packet framing (RFC 2865 §3, §5): bytes ↔ [`Packet`], nothing else.
//!
//! Pure code: no sockets, no clock, no secrets. Decoding is strict because every
//! byte comes from the network before anything is authenticated: a packet whose
//! header or attribute lengths do not add up is refused with a [`DecodeError`]
//! that names the reason (used as a metric label), never a panic.

/// The RADIUS header is 20 octets: code, identifier, length, authenticator (RFC 2865 §3).
pub const HEADER_LEN: usize = 20;
/// Largest RADIUS packet (RFC 2865 §3).
pub const MAX_PACKET_LEN: usize = 4096;
/// Largest attribute value: the length octet covers type + length + value (RFC 2865 §5).
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 253;

/// Packet type (RFC 2865 §3, RFC 5997 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1
    AccessRequest,
    /// 2
    AccessAccept,
    /// 3
    AccessReject,
    /// 4
    AccountingRequest,
    /// 5
    AccountingResponse,
    /// 11
    AccessChallenge,
    /// 12
    StatusServer,
    /// 13
    StatusClient,
    /// Any other code; carried so it can be counted and dropped.
    Other(u8),
}

impl Code {
    /// The code from its wire value.
    pub fn from_u8(value: u8) -> Code {
        match value {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            13 => Code::StatusClient,
            other => Code::Other(other),
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::StatusClient => 13,
            Code::Other(other) => other,
        }
    }

    /// The name used in logs and `radtest` output.
    pub fn name(self) -> &'static str {
        match self {
            Code::AccessRequest => "Access-Request",
            Code::AccessAccept => "Access-Accept",
            Code::AccessReject => "Access-Reject",
            Code::AccountingRequest => "Accounting-Request",
            Code::AccountingResponse => "Accounting-Response",
            Code::AccessChallenge => "Access-Challenge",
            Code::StatusServer => "Status-Server",
            Code::StatusClient => "Status-Client",
            Code::Other(_) => "Unknown",
        }
    }
}

/// One attribute: type and raw value octets (RFC 2865 §5).
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute type number.
    pub typ: u8,
    /// Value octets, 1 to 253 of them.
    pub value: Vec<u8>,
}

impl Attribute {
    /// A new attribute.
    pub fn new(typ: u8, value: impl Into<Vec<u8>>) -> Attribute {
        Attribute {
            typ,
            value: value.into(),
        }
    }
}

impl std::fmt::Debug for Attribute {
    // Values may be hidden passwords or State tokens: print only type and length.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attribute({}, {} octets)", self.typ, self.value.len())
    }
}

/// A decoded RADIUS packet. The authenticator is not checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Packet type.
    pub code: Code,
    /// Matches a reply to its request (RFC 2865 §3).
    pub identifier: u8,
    /// Request Authenticator (requests) or Response Authenticator (replies).
    pub authenticator: [u8; 16],
    /// Attributes in wire order (order matters for Proxy-State, RFC 2865 §5.33).
    pub attributes: Vec<Attribute>,
}

/// Why bytes were not a RADIUS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than 20 octets arrived, or the Length field says fewer than 20.
    #[error("packet shorter than the 20-octet header")]
    TooShort,
    /// The Length field or the datagram exceeds 4096 octets.
    #[error("packet longer than 4096 octets")]
    TooLong,
    /// The datagram is shorter than its Length field (RFC 2865 §3: silently discard).
    #[error("datagram shorter than its Length field")]
    Truncated,
    /// An attribute runs past the end of the packet.
    #[error("attribute runs past the end of the packet")]
    AttributeOverrun,
    /// An attribute with a length octet below 3 (no value, or a length that cannot even hold its header).
    #[error("attribute with a length below 3")]
    AttributeTooShort,
    /// Message-Authenticator whose value is not exactly 16 octets (RFC 3579 §3.2).
    #[error("Message-Authenticator is not 16 octets")]
    BadMessageAuthenticatorLength,
}

impl DecodeError {
    /// Short stable label for metrics and debug logs.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::TooShort => "too_short",
            DecodeError::TooLong => "too_long",
            DecodeError::Truncated => "truncated",
            DecodeError::AttributeOverrun => "attribute_overrun",
            DecodeError::AttributeTooShort => "attribute_too_short",
            DecodeError::BadMessageAuthenticatorLength => "bad_message_authenticator_length",
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An attribute value was empty or longer than 253 octets.
    #[error("attribute {0} has a value of {1} octets (allowed 1..=253)")]
    AttributeLength(u8, usize),
    /// The whole packet would exceed 4096 octets.
    #[error("packet would be {0} octets, more than 4096")]
    PacketTooLong(usize),
}

impl Packet {
    /// Decodes a datagram (RFC 2865 §3). Octets past the Length field are padding and ignored.
    pub fn decode(datagram: &[u8]) -> Result<Packet, DecodeError> {
        if datagram.len() > MAX_PACKET_LEN {
            return Err(DecodeError::TooLong);
        }
        let header: &[u8; HEADER_LEN] = datagram
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::TooShort)?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if length < HEADER_LEN {
            return Err(DecodeError::TooShort);
        }
        if length > MAX_PACKET_LEN {
            return Err(DecodeError::TooLong);
        }
        let body = datagram
            .get(HEADER_LEN..length)
            .ok_or(DecodeError::Truncated)?;
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&header[4..20]);
        Ok(Packet {
            code: Code::from_u8(header[0]),
            identifier: header[1],
            authenticator,
            attributes: decode_attributes(body)?,
        })
    }

    /// Encodes the packet as it is: the authenticator field is written unchanged.
    /// Signing (authenticators, Message-Authenticator) lives in [`super::crypto`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut length = HEADER_LEN;
        for attribute in &self.attributes {
            let value_len = attribute.value.len();
            if value_len == 0 || value_len > MAX_ATTRIBUTE_VALUE_LEN {
                return Err(EncodeError::AttributeLength(attribute.typ, value_len));
            }
            length += 2 + value_len;
        }
        if length > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong(length));
        }
        let mut out = Vec::with_capacity(length);
        out.push(self.code.as_u8());
        out.push(self.identifier);
        // Fits: checked against MAX_PACKET_LEN above.
        out.extend_from_slice(&(length as u16).to_be_bytes());
        out.extend_from_slice(&self.authenticator);
        for attribute in &self.attributes {
            out.push(attribute.typ);
            out.push((attribute.value.len() + 2) as u8);
            out.extend_from_slice(&attribute.value);
        }
        Ok(out)
    }

    /// The first attribute of a type.
    pub fn attribute(&self, typ: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// Every attribute of a type, in wire order.
    pub fn attributes_of(&self, typ: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// The first attribute of a type as UTF-8 text (lossy: NAS text is not always clean).
    pub fn text(&self, typ: u8) -> Option<String> {
        self.attribute(typ)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

fn decode_attributes(mut body: &[u8]) -> Result<Vec<Attribute>, DecodeError> {
    let mut attributes = Vec::with_capacity(8);
    while !body.is_empty() {
        let (&typ, rest) = body.split_first().ok_or(DecodeError::AttributeOverrun)?;
        let (&len, _) = rest.split_first().ok_or(DecodeError::AttributeOverrun)?;
        let len = usize::from(len);
        if len < 3 {
            return Err(DecodeError::AttributeTooShort);
        }
        let value = body.get(2..len).ok_or(DecodeError::AttributeOverrun)?;
        if typ == super::attr::MESSAGE_AUTHENTICATOR && value.len() != 16 {
            return Err(DecodeError::BadMessageAuthenticatorLength);
        }
        attributes.push(Attribute::new(typ, value));
        body = body.get(len..).unwrap_or_default();
    }
    Ok(attributes)
}

/// Parses spaced or plain hex, for test vectors.
#[cfg(test)]
pub(crate) fn hex_bytes(text: &str) -> Vec<u8> {
    let clean: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex::decode(clean).expect("test vector is hex")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attr;

    /// RFC 2865 §7.1: User Telnet to Specified Host.
    pub(crate) const RFC2865_7_1_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee
        04 06 c0 a8 01 10 05 06 00 00 00 03";

    #[test]
    fn decodes_rfc2865_example_and_reencodes_identically() {
        let bytes = hex_bytes(RFC2865_7_1_REQUEST);
        let packet = Packet::decode(&bytes).unwrap();
        assert_eq!(packet.code, Code::AccessRequest);
        assert_eq!(packet.identifier, 0);
        assert_eq!(packet.attributes.len(), 4);
        assert_eq!(packet.text(attr::USER_NAME).as_deref(), Some("nemo"));
        assert_eq!(
            packet.attribute(attr::NAS_IP_ADDRESS),
            Some(&[192, 168, 1, 16][..])
        );
        assert_eq!(packet.attribute(attr::NAS_PORT), Some(&[0, 0, 0, 3][..]));
        assert_eq!(packet.encode().unwrap(), bytes);
    }

    #[test]
    fn padding_after_length_is_ignored() {
        let mut bytes = hex_bytes(RFC2865_7_1_REQUEST);
        bytes.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(Packet::decode(&bytes).unwrap().attributes.len(), 4);
    }

    #[test]
    fn malformed_packets_are_refused_with_a_reason() {
        let good = hex_bytes(RFC2865_7_1_REQUEST);
        assert_eq!(Packet::decode(&[]), Err(DecodeError::TooShort));
        assert_eq!(Packet::decode(&good[..19]), Err(DecodeError::TooShort));
        assert_eq!(Packet::decode(&good[..40]), Err(DecodeError::Truncated));

        let mut short_length = good.clone();
        short_length[3] = 19;
        assert_eq!(Packet::decode(&short_length), Err(DecodeError::TooShort));

        let mut long_length = good.clone();
        long_length[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(Packet::decode(&long_length), Err(DecodeError::TooLong));
        assert_eq!(Packet::decode(&[0u8; 4097]), Err(DecodeError::TooLong));

        // User-Name claims 0x30 octets: overruns the packet.
        let mut overrun = good.clone();
        overrun[21] = 0x30;
        assert_eq!(Packet::decode(&overrun), Err(DecodeError::AttributeOverrun));

        // Zero-length value (length octet 2) and impossible length octets 0 and 1.
        for bad_len in [0u8, 1, 2] {
            let mut zero = good.clone();
            zero[21] = bad_len;
            assert_eq!(
                Packet::decode(&zero),
                Err(DecodeError::AttributeTooShort),
                "length octet {bad_len}"
            );
        }

        // A lone type octet at the end.
        let mut dangling = good.clone();
        dangling.push(1);
        let len = dangling.len() as u16;
        dangling[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            Packet::decode(&dangling),
            Err(DecodeError::AttributeOverrun)
        );
    }

    #[test]
    fn message_authenticator_must_be_16_octets() {
        let packet = Packet {
            code: Code::AccessRequest,
            identifier: 1,
            authenticator: [0; 16],
            attributes: vec![Attribute::new(attr::MESSAGE_AUTHENTICATOR, vec![0; 15])],
        };
        let bytes = packet.encode().unwrap();
        assert_eq!(
            Packet::decode(&bytes),
            Err(DecodeError::BadMessageAuthenticatorLength)
        );
    }

    #[test]
    fn encode_refuses_bad_lengths() {
        let mut packet = Packet {
            code: Code::AccessAccept,
            identifier: 1,
            authenticator: [0; 16],
            attributes: vec![Attribute::new(attr::REPLY_MESSAGE, vec![b'a'; 254])],
        };
        assert_eq!(
            packet.encode(),
            Err(EncodeError::AttributeLength(attr::REPLY_MESSAGE, 254))
        );
        packet.attributes = vec![Attribute::new(attr::REPLY_MESSAGE, vec![b'a'; 253]); 17];
        assert!(matches!(
            packet.encode(),
            Err(EncodeError::PacketTooLong(_))
        ));
    }

    #[test]
    fn decode_never_panics_on_arbitrary_prefixes_and_mutations() {
        let good = hex_bytes(RFC2865_7_1_REQUEST);
        for cut in 0..good.len() {
            let _ = Packet::decode(&good[..cut]);
        }
        for index in 0..good.len() {
            for value in [0u8, 1, 2, 3, 0x7f, 0xff] {
                let mut mutated = good.clone();
                mutated[index] = value;
                let _ = Packet::decode(&mutated);
            }
        }
    }
}
