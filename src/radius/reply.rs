//! [`Decision`]: the pipeline's answer, and its encoding as a signed reply that
//! echoes the request's Proxy-State attributes in order (RFC 2865 §5.33).

use super::attr;
use super::crypto::sign_response;
use super::packet::{Attribute, Code, EncodeError, MAX_ATTRIBUTE_VALUE_LEN, Packet};

/// What to answer an Access-Request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Access-Accept.
    Accept {
        /// Text for the user, if any.
        reply_message: Option<String>,
        /// Further attributes for the NAS (e.g. Class, Filter-Id passed through from an upstream server).
        attributes: Vec<Attribute>,
    },
    /// Access-Reject.
    Reject {
        /// Text for the user, if any (e.g. where to enroll, how long a lockout lasts).
        reply_message: Option<String>,
    },
    /// Access-Challenge: ask for a code and expect `state` back (RFC 2865 §4.4).
    Challenge {
        /// Opaque single-use token the NAS echoes in its next request.
        state: Vec<u8>,
        /// The prompt shown to the user.
        reply_message: String,
    },
}

impl Decision {
    /// The RADIUS code of this decision.
    pub fn code(&self) -> Code {
        match self {
            Decision::Accept { .. } => Code::AccessAccept,
            Decision::Reject { .. } => Code::AccessReject,
            Decision::Challenge { .. } => Code::AccessChallenge,
        }
    }

    /// Short label for audit logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Decision::Accept { .. } => "accept",
            Decision::Reject { .. } => "reject",
            Decision::Challenge { .. } => "challenge",
        }
    }
}

/// Encodes the reply to `request`, signed with the client's secret.
pub fn encode_reply(
    decision: &Decision,
    request: &Packet,
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut attributes = Vec::new();
    let message = match decision {
        Decision::Accept {
            reply_message,
            attributes: extra,
        } => {
            attributes.extend(
                extra
                    .iter()
                    .filter(|a| !matches!(a.typ, attr::MESSAGE_AUTHENTICATOR | attr::PROXY_STATE))
                    .cloned(),
            );
            reply_message.as_deref()
        }
        Decision::Reject { reply_message } => reply_message.as_deref(),
        Decision::Challenge {
            state,
            reply_message,
        } => {
            attributes.push(Attribute::new(attr::STATE, state.clone()));
            // Prompt: echo off would hide the code as it is typed; codes are not secret
            // once used, and echo helps the user catch typos (RFC 2869 §5.10).
            attributes.push(Attribute::new(attr::PROMPT, 1u32.to_be_bytes()));
            Some(reply_message.as_str())
        }
    };
    if let Some(text) = message {
        // Longer texts are split over several Reply-Message attributes (RFC 2865 §5.18).
        for chunk in split_utf8(text, MAX_ATTRIBUTE_VALUE_LEN) {
            attributes.push(Attribute::new(attr::REPLY_MESSAGE, chunk.as_bytes()));
        }
    }
    for proxy_state in request.attributes_of(attr::PROXY_STATE) {
        attributes.push(Attribute::new(attr::PROXY_STATE, proxy_state));
    }
    sign_response(
        decision.code(),
        request.identifier,
        &request.authenticator,
        &attributes,
        secret,
    )
}

/// The Access-Accept answering a Status-Server (RFC 5997 §3).
pub fn encode_status_reply(request: &Packet, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
    sign_response(
        Code::AccessAccept,
        request.identifier,
        &request.authenticator,
        &[],
        secret,
    )
}

fn split_utf8(text: &str, max: usize) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (chunk, tail) = rest.split_at(end);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::crypto::verify_response;

    fn request_with_proxy_states() -> Packet {
        Packet {
            code: Code::AccessRequest,
            identifier: 17,
            authenticator: [1; 16],
            attributes: vec![
                Attribute::new(attr::PROXY_STATE, "first"),
                Attribute::new(attr::USER_NAME, "bob"),
                Attribute::new(attr::PROXY_STATE, "second"),
            ],
        }
    }

    #[test]
    fn challenge_carries_state_prompt_and_proxy_state_in_order() {
        let request = request_with_proxy_states();
        let decision = Decision::Challenge {
            state: vec![9; 24],
            reply_message: "Enter the 6-digit code from your authenticator app".into(),
        };
        let bytes = encode_reply(&decision, &request, b"s").unwrap();
        let reply = verify_response(&bytes, &request.authenticator, b"s", true).unwrap();
        assert_eq!(reply.code, Code::AccessChallenge);
        assert_eq!(reply.identifier, 17);
        assert_eq!(reply.attributes[0].typ, attr::MESSAGE_AUTHENTICATOR);
        assert_eq!(reply.attribute(attr::STATE), Some(&[9u8; 24][..]));
        let proxy: Vec<&[u8]> = reply.attributes_of(attr::PROXY_STATE).collect();
        assert_eq!(proxy, vec![&b"first"[..], &b"second"[..]]);
    }

    #[test]
    fn long_reply_messages_are_split_on_char_boundaries() {
        let text = "é".repeat(200); // 400 octets
        let bytes = encode_reply(
            &Decision::Reject {
                reply_message: Some(text.clone()),
            },
            &request_with_proxy_states(),
            b"s",
        )
        .unwrap();
        let reply = Packet::decode(&bytes).unwrap();
        let joined: Vec<u8> = reply
            .attributes_of(attr::REPLY_MESSAGE)
            .flat_map(|v| v.iter().copied())
            .collect();
        assert_eq!(String::from_utf8(joined).unwrap(), text);
        assert!(reply.attributes_of(attr::REPLY_MESSAGE).count() >= 2);
    }
}
