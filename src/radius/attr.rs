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
/// Framed-Protocol (RFC 2865 §5.7).
pub const FRAMED_PROTOCOL: u8 = 7;
/// Framed-IP-Address (RFC 2865 §5.8).
pub const FRAMED_IP_ADDRESS: u8 = 8;
/// Framed-IP-Netmask (RFC 2865 §5.9).
pub const FRAMED_IP_NETMASK: u8 = 9;
/// Framed-MTU (RFC 2865 §5.12).
pub const FRAMED_MTU: u8 = 12;
/// Reply-Message (RFC 2865 §5.18).
pub const REPLY_MESSAGE: u8 = 18;
/// Callback-Number (RFC 2865 §5.19).
pub const CALLBACK_NUMBER: u8 = 19;
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
/// Login-LAT-Service (RFC 2865 §5.34).
pub const LOGIN_LAT_SERVICE: u8 = 34;
/// Login-LAT-Node (RFC 2865 §5.35).
pub const LOGIN_LAT_NODE: u8 = 35;
/// Login-LAT-Group (RFC 2865 §5.36).
pub const LOGIN_LAT_GROUP: u8 = 36;
/// CHAP-Challenge; when absent the Request Authenticator is the challenge (RFC 2865 §5.40).
pub const CHAP_CHALLENGE: u8 = 60;
/// NAS-Port-Type (RFC 2865 §5.41).
pub const NAS_PORT_TYPE: u8 = 61;
/// Port-Limit (RFC 2865 §5.42).
pub const PORT_LIMIT: u8 = 62;
/// Login-LAT-Port (RFC 2865 §5.43).
pub const LOGIN_LAT_PORT: u8 = 63;
/// Prompt: 0 = no echo, 1 = echo (RFC 2869 §5.10).
pub const PROMPT: u8 = 76;
/// Connect-Info (RFC 2869 §5.11).
pub const CONNECT_INFO: u8 = 77;
/// EAP-Message (RFC 3579 §3.1).
pub const EAP_MESSAGE: u8 = 79;
/// Message-Authenticator, HMAC-MD5 over the packet (RFC 3579 §3.2).
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// NAS-Port-Id (RFC 2869 §5.17).
pub const NAS_PORT_ID: u8 = 87;
/// NAS-IPv6-Address (RFC 3162 §2.1).
pub const NAS_IPV6_ADDRESS: u8 = 95;

/// Attributes an Access-Request may carry at most once: the "0-1" entries of
/// the Request column in RFC 2865 §5.44, RFC 2869 §5.19 (Connect-Info,
/// Message-Authenticator, NAS-Port-Id) and RFC 3162 §3 (NAS-IPv6-Address).
/// A second copy is never legitimate, and dangerous in a proxy: rampart reads
/// the first User-Name while an upstream server may read the last, so an
/// Access-Request with two is discarded (RFC 2865 §3: invalid packets are
/// silently discarded). Login-IP-Host (0+), Login-Service and Login-TCP-Port
/// (0: not in requests at all) are not "0-1" in §5.44 and are not listed.
pub const AT_MOST_ONCE_IN_ACCESS_REQUEST: &[u8] = &[
    USER_NAME,
    USER_PASSWORD,
    CHAP_PASSWORD,
    NAS_IP_ADDRESS,
    NAS_PORT,
    SERVICE_TYPE,
    FRAMED_PROTOCOL,
    FRAMED_IP_ADDRESS,
    FRAMED_IP_NETMASK,
    FRAMED_MTU,
    CALLBACK_NUMBER,
    STATE,
    CALLED_STATION_ID,
    CALLING_STATION_ID,
    NAS_IDENTIFIER,
    LOGIN_LAT_SERVICE,
    LOGIN_LAT_NODE,
    LOGIN_LAT_GROUP,
    CHAP_CHALLENGE,
    NAS_PORT_TYPE,
    PORT_LIMIT,
    LOGIN_LAT_PORT,
    CONNECT_INFO,
    MESSAGE_AUTHENTICATOR,
    NAS_PORT_ID,
    NAS_IPV6_ADDRESS,
];

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
