//! The portal client's address behind a reverse proxy.
//!
//! The per-address sign-in limit and the audit log want the browser's
//! address. Behind nginx, HAProxy or a load balancer the TCP peer is the
//! proxy, which names the client in `X-Forwarded-For` (each hop appends the
//! address it received the request from, so the right-most entries were
//! written by our own proxies and the left-most by whoever sent the request;
//! RFC 7239 §5.2 describes the same chain for `Forwarded: for=`).
//!
//! Only a peer in `[portal] trusted_proxies` is believed, and the chain is
//! read from the right: every entry that is itself a trusted proxy is
//! skipped, the first one that is not is the client. Entries further left
//! were written by the client and are ignored, so a browser cannot pick an
//! address to dodge its limit by sending its own header. A malformed entry
//! stops the walk at the last trusted hop: the request is counted against
//! that proxy, never against an address the client chose.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header the proxies fill in.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address for a request that arrived from `peer`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    // Several header lines form one list, in order (RFC 9110 §5.3).
    let chain: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in chain.iter().rev() {
        let Some(hop) = parse_hop(entry) else {
            break;
        };
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// One entry: an address, optionally with a port (`192.0.2.7:51234`,
/// `[2001:db8::7]:51234`), as some proxies write it.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::parse_network;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|t| parse_network(t).unwrap()).collect()
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let said = headers(&["198.51.100.9"]);
        assert_eq!(
            client_address(ip("203.0.113.5"), &said, &trusted(&["127.0.0.1"])),
            ip("203.0.113.5")
        );
        // No trusted proxies configured: the header is never read.
        assert_eq!(client_address(ip("127.0.0.1"), &said, &[]), ip("127.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // The client claimed 1.2.3.4; the edge proxy saw 198.51.100.9 and an
        // inner proxy 10.1.2.3 appended what it saw.
        let chain = headers(&["1.2.3.4, 198.51.100.9, 10.1.2.3"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &chain, &proxies),
            ip("198.51.100.9")
        );
        // The same chain over two header lines.
        let split = headers(&["1.2.3.4, 198.51.100.9", "10.1.2.3"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &split, &proxies),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn ports_and_ipv6_are_understood() {
        let proxies = trusted(&["::1", "127.0.0.1"]);
        assert_eq!(
            client_address(ip("::1"), &headers(&["[2001:db8::7]:51234"]), &proxies),
            ip("2001:db8::7")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &headers(&["192.0.2.7:443"]), &proxies),
            ip("192.0.2.7")
        );
        // An IPv4-mapped address counts as the IPv4 address.
        assert_eq!(
            client_address(ip("127.0.0.1"), &headers(&["::ffff:192.0.2.8"]), &proxies),
            ip("192.0.2.8")
        );
    }

    #[test]
    fn a_malformed_entry_stops_at_the_last_trusted_hop() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &headers(&["unknown, 10.0.0.2"]), &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &headers(&["not an address"]), &proxies),
            ip("127.0.0.1")
        );
        // A trusted proxy that sent no header is the client.
        assert_eq!(
            client_address(ip("127.0.0.1"), &HeaderMap::new(), &proxies),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn networks_and_single_addresses_parse() {
        assert!(parse_network("10.0.0.0/8").is_some());
        assert!(parse_network("192.0.2.1").is_some());
        assert!(parse_network("2001:db8::/32").is_some());
        assert!(parse_network("proxy.example").is_none());
        assert!(parse_network("10.0.0.0/33").is_none());
    }
}
