//! The NAS clients rampart answers: matched by source address (an IP or a CIDR),
//! each with its own shared secret and Message-Authenticator policy.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

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

/// The client table. The most specific network wins, so a /32 entry can carve a
/// device out of a wider subnet entry.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    by_specificity: Vec<Client>,
}

impl Clients {
    /// Builds the table.
    pub fn new(mut clients: Vec<Client>) -> Clients {
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        Clients {
            by_specificity: clients,
        }
    }

    /// The client a datagram from `ip` belongs to, if any. IPv4-mapped IPv6 source
    /// addresses match IPv4 entries.
    pub fn lookup(&self, ip: IpAddr) -> Option<&Client> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.by_specificity.iter().find(|c| c.network.contains(&ip))
    }

    /// Every client, most specific first.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.by_specificity.iter()
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
}
