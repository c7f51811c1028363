//! [`AccessRequest`]: what the pipeline needs from an authenticated Access-Request,
//! with the User-Password already revealed (RFC 2865 §5.2) and wrapped in a
//! [`Secret`]. The pipeline never sees packet bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::attr;
use super::crypto::{PasswordError, reveal_password};
use super::packet::{Attribute, Packet};
use crate::secret::Secret;

/// An Access-Request as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct AccessRequest {
    /// User-Name as sent (RFC 2865 §5.1); empty when absent.
    pub user_name: String,
    /// Revealed User-Password; `None` when the request carries none (CHAP, EAP, RD Gateway).
    pub password: Option<Secret<String>>,
    /// State echoed from an earlier Access-Challenge (RFC 2865 §5.24).
    pub state: Option<Vec<u8>>,
    /// Name of the configured client (NAS) the request came from.
    pub client: Arc<str>,
    /// Source address and port of the datagram.
    pub peer: SocketAddr,
    /// NAS-IP-Address or NAS-IPv6-Address, if sent.
    pub nas_ip: Option<IpAddr>,
    /// NAS-Identifier, if sent.
    pub nas_identifier: Option<String>,
    /// Calling-Station-Id: the end user's address or phone, if sent.
    pub calling_station_id: Option<String>,
    /// The Request Authenticator (the CHAP challenge when no CHAP-Challenge is sent, RFC 2865 §5.3).
    pub authenticator: [u8; 16],
    /// Every other attribute as received, in order, without User-Password,
    /// Message-Authenticator, State and Proxy-State: what an upstream RADIUS
    /// server needs to check CHAP or MS-CHAPv2 credentials untouched.
    pub attributes: Vec<Attribute>,
}

/// Why an Access-Request could not be turned into an [`AccessRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// User-Password has an impossible length.
    #[error("malformed User-Password: {0}")]
    Password(#[from] PasswordError),
    /// User-Password does not decode to UTF-8: almost always a wrong shared secret.
    #[error("User-Password is not UTF-8 (wrong shared secret?)")]
    PasswordNotUtf8,
}

impl AccessRequest {
    /// Extracts the request; the packet's Message-Authenticator was checked by the caller.
    pub fn from_packet(
        packet: &Packet,
        secret: &[u8],
        client: Arc<str>,
        peer: SocketAddr,
    ) -> Result<AccessRequest, RequestError> {
        let password = match packet.attribute(attr::USER_PASSWORD) {
            Some(hidden) => {
                let revealed = reveal_password(hidden, secret, &packet.authenticator)?;
                let text = std::str::from_utf8(&revealed)
                    .map_err(|_| RequestError::PasswordNotUtf8)?
                    .to_owned();
                Some(Secret::new(text))
            }
            None => None,
        };
        let nas_ip = packet
            .attribute(attr::NAS_IP_ADDRESS)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
            .or_else(|| {
                packet
                    .attribute(attr::NAS_IPV6_ADDRESS)
                    .and_then(|v| <[u8; 16]>::try_from(v).ok())
                    .map(|o| IpAddr::V6(Ipv6Addr::from(o)))
            });
        Ok(AccessRequest {
            user_name: packet.text(attr::USER_NAME).unwrap_or_default(),
            password,
            state: packet.attribute(attr::STATE).map(<[u8]>::to_vec),
            client,
            peer,
            nas_ip,
            nas_identifier: packet.text(attr::NAS_IDENTIFIER),
            calling_station_id: packet.text(attr::CALLING_STATION_ID),
            authenticator: packet.authenticator,
            attributes: packet
                .attributes
                .iter()
                .filter(|a| {
                    !matches!(
                        a.typ,
                        attr::USER_PASSWORD
                            | attr::MESSAGE_AUTHENTICATOR
                            | attr::STATE
                            | attr::PROXY_STATE
                    )
                })
                .cloned()
                .collect(),
        })
    }
}

/// The first attribute type `packet` carries more than once although an
/// Access-Request may carry it at most once
/// ([`attr::AT_MOST_ONCE_IN_ACCESS_REQUEST`]); `None` when there is none.
pub fn repeated_single_attribute(packet: &Packet) -> Option<u8> {
    let mut seen = [false; 256];
    packet
        .attributes
        .iter()
        .map(|a| a.typ)
        .filter(|typ| attr::AT_MOST_ONCE_IN_ACCESS_REQUEST.contains(typ))
        .find(|&typ| std::mem::replace(&mut seen[usize::from(typ)], true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::packet::Code;

    fn packet(types: &[u8]) -> Packet {
        Packet {
            code: Code::AccessRequest,
            identifier: 1,
            authenticator: [0; 16],
            attributes: types.iter().map(|&t| Attribute::new(t, "x")).collect(),
        }
    }

    #[test]
    fn a_repeated_single_attribute_is_found() {
        use attr::*;
        let ok = packet(&[USER_NAME, USER_PASSWORD, PROXY_STATE, PROXY_STATE]);
        assert_eq!(repeated_single_attribute(&ok), None);
        // Multi-valued in requests (RFC 2865 §5.44 "0+", RFC 3579 §3.1).
        let multi = packet(&[VENDOR_SPECIFIC, VENDOR_SPECIFIC, EAP_MESSAGE, EAP_MESSAGE]);
        assert_eq!(repeated_single_attribute(&multi), None);
        for &typ in AT_MOST_ONCE_IN_ACCESS_REQUEST {
            let twice = packet(&[typ, CLASS, typ]);
            assert_eq!(repeated_single_attribute(&twice), Some(typ), "{typ}");
        }
        let names = packet(&[USER_NAME, STATE, USER_NAME, STATE]);
        assert_eq!(repeated_single_attribute(&names), Some(USER_NAME));
    }
}
