//! RADIUS attribute type numbers used by rampart (RFC 2865 §5, RFC 2869 §5, RFC 3579 §3).
//!
//! Only numbers live here: the codec keeps every attribute as raw octets, so an
//! attribute rampart does not know is still carried, counted and echoed correctly.

/// User-Name (RFC 2865 §5.1).
pub const USER_NAME: u8 = 1;
/// User-Password, hidden with the shared secret (RFC 2865 §5.2).
pub const USER_PASSWORD: u8 = 2;
/// CHAP-Password (RFC 2865 §5.3).
pub const CHAP_PASSWORD: u8 = 3;
/// NAS-IP-Address (RFC 2865 §5.4).
pub const NAS_IP_ADDRESS: u8 = 4;
/// NAS-Port (RFC 2865 §5.5).
pub const NAS_PORT: u8 = 5;
/// Service-Type (RFC 2865 §5.6).
pub const SERVICE_TYPE: u8 = 6;
/// Reply-Message (RFC 2865 §5.18).
pub const REPLY_MESSAGE: u8 = 18;
/// State (RFC 2865 §5.24).
pub const STATE: u8 = 24;
/// Class (RFC 2865 §5.25).
pub const CLASS: u8 = 25;
/// Vendor-Specific (RFC 2865 §5.26).
pub const VENDOR_SPECIFIC: u8 = 26;
/// Session-Timeout (RFC 2865 §5.27).
pub const SESSION_TIMEOUT: u8 = 27;
/// Called-Station-Id (RFC 2865 §5.30).
pub const CALLED_STATION_ID: u8 = 30;
/// Calling-Station-Id (RFC 2865 §5.31).
pub const CALLING_STATION_ID: u8 = 31;
/// NAS-Identifier (RFC 2865 §5.32).
pub const NAS_IDENTIFIER: u8 = 32;
/// Proxy-State (RFC 2865 §5.33).
pub const PROXY_STATE: u8 = 33;
/// CHAP-Challenge; when absent the Request Authenticator is the challenge (RFC 2865 §5.40).
pub const CHAP_CHALLENGE: u8 = 60;
/// NAS-Port-Type (RFC 2865 §5.41).
pub const NAS_PORT_TYPE: u8 = 61;
/// Prompt: 0 = no echo, 1 = echo (RFC 2869 §5.10).
pub const PROMPT: u8 = 76;
/// EAP-Message (RFC 3579 §3.1).
pub const EAP_MESSAGE: u8 = 79;
/// Message-Authenticator, HMAC-MD5 over the packet (RFC 3579 §3.2).
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// NAS-IPv6-Address (RFC 3162 §2.1).
pub const NAS_IPV6_ADDRESS: u8 = 95;

/// A human name for the attributes rampart reads or writes, for `radtest` output.
pub fn name(attribute_type: u8) -> Option<&'static str> {
    Some(match attribute_type {
        USER_NAME => "User-Name",
        USER_PASSWORD => "User-Password",
        CHAP_PASSWORD => "CHAP-Password",
        NAS_IP_ADDRESS => "NAS-IP-Address",
        NAS_PORT => "NAS-Port",
        SERVICE_TYPE => "Service-Type",
        REPLY_MESSAGE => "Reply-Message",
        STATE => "State",
        CLASS => "Class",
        VENDOR_SPECIFIC => "Vendor-Specific",
        SESSION_TIMEOUT => "Session-Timeout",
        CALLED_STATION_ID => "Called-Station-Id",
        CALLING_STATION_ID => "Calling-Station-Id",
        NAS_IDENTIFIER => "NAS-Identifier",
        PROXY_STATE => "Proxy-State",
        CHAP_CHALLENGE => "CHAP-Challenge",
        NAS_PORT_TYPE => "NAS-Port-Type",
        PROMPT => "Prompt",
        EAP_MESSAGE => "EAP-Message",
        MESSAGE_AUTHENTICATOR => "Message-Authenticator",
        NAS_IPV6_ADDRESS => "NAS-IPv6-Address",
        _ => return None,
    })
}
