//! The NAS clients rampart answers: over UDP matched by source address (an IP
//! or a CIDR), each with its own shared secret; over RadSec matched by the
//! certificate's name and/or the source address (RFC 6614 §2.3), with the
//! fixed secret `radsec`. Each has its own Message-Authenticator policy.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::radsec::identity::{CertName, PeerIdentity};
use crate::secret::Secret;

/// One configured RADIUS client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Name used in logs, audit lines and metrics.
    pub name: Arc<str>,
    /// Source addresses this client may send from.
    pub network: IpNet,
    /// Shared secret (RFC 2865 §3).
    pub secret: Secret<Vec<u8>>,
    /// Drop Access-Requests without a valid Message-Authenticator (BLAST-RADIUS).
    pub require_message_authenticator: bool,
    /// App passwords replace password + second factor from this client.
    pub allow_app_passwords: bool,
}

/// A client that may connect over RadSec, and how it is recognised.
#[derive(Debug, Clone)]
pub struct RadsecClient {
    /// The client; its secret is `radsec` (RFC 6614 §2.3) and its `network`
    /// is unused here (see `address`).
    pub client: Arc<Client>,
    /// The name its certificate must carry, if the certificate identifies it.
    pub cert_name: Option<CertName>,
    /// The addresses it may connect from, if the address identifies it (or
    /// restricts a certificate name further).
    pub address: Option<IpNet>,
}

impl RadsecClient {
    fn matches(&self, ip: IpAddr, identity: &PeerIdentity) -> bool {
        self.address.is_none_or(|net| net.contains(&ip))
            && self
                .cert_name
                .as_ref()
                .is_none_or(|name| identity.matches(name))
    }
}

/// The client table. The most specific network wins, so a /32 entry can carve a
/// device out of a wider subnet entry.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    /// Shared, so a request holds its client by reference count (a held
    /// login keeps it for tens of seconds) instead of a copy of its secret.
    by_specificity: Vec<Arc<Client>>,
    radsec: Vec<RadsecClient>,
}

impl Clients {
    /// Builds the table of UDP clients.
    pub fn new(mut clients: Vec<Client>) -> Clients {
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        Clients {
            by_specificity: clients.into_iter().map(Arc::new).collect(),
            radsec: Vec::new(),
        }
    }

    /// Adds the RadSec clients. A certificate-name entry is more specific than
    /// an address-only one; among equals the narrower address wins.
    pub fn with_radsec(mut self, mut clients: Vec<RadsecClient>) -> Clients {
        clients.sort_by_key(|c| {
            std::cmp::Reverse((
                c.cert_name.is_some(),
                c.address.map_or(0, |net| net.prefix_len()),
            ))
        });
        self.radsec = clients;
        self
    }

    /// The client a datagram from `ip` belongs to, if any. IPv4-mapped IPv6 source
    /// addresses match IPv4 entries.
    pub fn lookup(&self, ip: IpAddr) -> Option<&Arc<Client>> {
        let ip = unmapped(ip);
        self.by_specificity.iter().find(|c| c.network.contains(&ip))
    }

    /// The client a RadSec connection from `ip` whose certificate says
    /// `identity` belongs to, if any: an unknown peer is refused even with a
    /// certificate from the trusted CA.
    pub fn lookup_radsec(&self, ip: IpAddr, identity: &PeerIdentity) -> Option<&Arc<Client>> {
        let ip = unmapped(ip);
        self.radsec
            .iter()
            .find(|c| c.matches(ip, identity))
            .map(|c| &c.client)
    }

    /// The names of the clients that may connect over RadSec.
    pub fn radsec_names(&self) -> impl Iterator<Item = &str> {
        self.radsec.iter().map(|c| &*c.client.name)
    }

    /// Whether any client may connect over RadSec.
    pub fn has_radsec(&self) -> bool {
        !self.radsec.is_empty()
    }

    /// Every client, each once: UDP clients most specific first, then the
    /// RadSec-only ones.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        let udp = &self.by_specificity;
        udp.iter().map(|c| &**c).chain(
            self.radsec
                .iter()
                .map(|c| &*c.client)
                .filter(move |c| !udp.iter().any(|u| u.name == c.name)),
        )
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, net: &str) -> Client {
        Client {
            name: name.into(),
            network: net.parse().unwrap(),
            secret: Secret::new(b"x".to_vec()),
            require_message_authenticator: true,
            allow_app_passwords: false,
        }
    }

    #[test]
    fn most_specific_network_wins() {
        let clients = Clients::new(vec![
            client("lan", "10.0.0.0/8"),
            client("vpn", "10.1.2.3/32"),
        ]);
        assert_eq!(
            &*clients.lookup("10.1.2.3".parse().unwrap()).unwrap().name,
            "vpn"
        );
        assert_eq!(
            &*clients.lookup("10.9.9.9".parse().unwrap()).unwrap().name,
            "lan"
        );
        assert!(clients.lookup("192.168.0.1".parse().unwrap()).is_none());
        assert_eq!(
            &*clients
                .lookup("::ffff:10.1.2.3".parse().unwrap())
                .unwrap()
                .name,
            "vpn"
        );
    }

    fn identity(dns: &[&str], cn: Option<&str>) -> PeerIdentity {
        PeerIdentity {
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: Vec::new(),
            cn: cn.map(str::to_string),
        }
    }

    fn radsec(name: &str, cert: Option<&str>, address: Option<&str>) -> RadsecClient {
        RadsecClient {
            client: Arc::new(client(name, "0.0.0.0/0")),
            cert_name: cert.map(|c| CertName::parse(c).unwrap()),
            address: address.map(|a| a.parse().unwrap()),
        }
    }

    #[test]
    fn radsec_peers_are_recognised_by_certificate_name_and_address() {
        let clients = Clients::new(vec![client("udp", "10.0.0.0/8")]).with_radsec(vec![
            radsec("by-address", None, Some("192.0.2.0/24")),
            radsec("nas1", Some("nas1.example.com"), None),
            radsec(
                "nas2-pinned",
                Some("nas2.example.com"),
                Some("198.51.100.7/32"),
            ),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let name = |c: Option<&Arc<Client>>| c.map(|c| c.name.to_string());
        let nas1 = identity(&["NAS1.example.com"], Some("whatever"));
        assert_eq!(
            name(clients.lookup_radsec(ip("203.0.113.1"), &nas1)),
            Some("nas1".into())
        );
        // The certificate name wins over an address-only entry.
        assert_eq!(
            name(clients.lookup_radsec(ip("192.0.2.9"), &nas1)),
            Some("nas1".into())
        );
        let stranger = identity(&["other.example.com"], None);
        assert_eq!(
            name(clients.lookup_radsec(ip("192.0.2.9"), &stranger)),
            Some("by-address".into())
        );
        assert!(
            clients
                .lookup_radsec(ip("203.0.113.1"), &stranger)
                .is_none()
        );
        let nas2 = identity(&[], Some("nas2.example.com"));
        assert_eq!(
            name(clients.lookup_radsec(ip("::ffff:198.51.100.7"), &nas2)),
            Some("nas2-pinned".into())
        );
        assert!(clients.lookup_radsec(ip("198.51.100.8"), &nas2).is_none());
        // RadSec clients are not UDP clients.
        assert!(clients.lookup(ip("192.0.2.9")).is_none());
        let names: Vec<_> = clients.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["udp", "nas2-pinned", "nas1", "by-address"]);
    }
}
