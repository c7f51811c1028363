//! `[[clients]]`: each NAS entry checked and turned into a [`Client`], with
//! the rules that keep a shared secret worth having (RFC 2865 §3):
//!
//! - short or sample secrets, and `secret_file` modes: see
//!   [`super::client_secret`];
//! - `0.0.0.0/0` or `::/0` is an error without `allow_any_address = true`:
//!   the whole Internet would share one secret;
//! - two UDP entries with the same network are an error naming both: only one
//!   can ever match, so the other's secret silently never works.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ipnet::IpNet;

use super::client_secret::client_secret;
use super::file::{ClientSection, ConfigFile};
use super::validate::Problems;
use crate::radius::clients::{Client, Clients, RadsecClient};
use crate::radius::radsec::identity::CertName;
use crate::secret::Secret;

/// Checks every `[[clients]]` entry; the UDP and RadSec client tables.
pub(super) fn validate_clients(file: &ConfigFile, problems: &mut Problems) -> Clients {
    if file.clients.is_empty() {
        problems.add(
            "clients",
            "no [[clients]] configured: add one with name, address and secret",
        );
    }
    let mut udp = Vec::new();
    let mut radsec = Vec::new();
    let mut names = HashSet::new();
    // UDP network (truncated: 10.0.0.5/24 is 10.0.0.0/24) → first entry with it.
    let mut networks: HashMap<IpNet, (usize, &str)> = HashMap::new();
    for (i, section) in file.clients.iter().enumerate() {
        if section.name.trim().is_empty() {
            problems.add(
                key(i, "name"),
                "missing: every client needs a name for logs",
            );
        } else if !names.insert(section.name.clone()) {
            problems.add(
                key(i, "name"),
                format!("{:?} is used by another client", section.name),
            );
        }
        let entry = check_entry(i, section, file.radsec.is_some(), problems);
        radsec.extend(entry.radsec);
        let Some(network) = entry.udp_network else {
            continue;
        };
        match networks.get(&network.trunc()) {
            Some(&(first, name)) => problems.add(
                key(i, "address"),
                format!(
                    "{network} is also the address of client {name:?} (clients[{first}]): only one entry can match a datagram, so the other's secret would never be used; remove one of them"
                ),
            ),
            None => {
                networks.insert(network.trunc(), (i, section.name.as_str()));
            }
        }
        udp.extend(entry.udp);
    }
    Clients::new(udp).with_radsec(radsec)
}

fn key(i: usize, field: &str) -> String {
    format!("clients[{i}].{field}")
}

/// One entry, checked.
struct Entry {
    /// The network it sends UDP from, when it uses UDP and it is valid.
    udp_network: Option<IpNet>,
    /// The UDP client, when everything it needs is valid.
    udp: Option<Client>,
    /// The RadSec client, when it may use RadSec.
    radsec: Option<RadsecClient>,
}

fn check_entry(
    i: usize,
    section: &ClientSection,
    radsec_configured: bool,
    problems: &mut Problems,
) -> Entry {
    // RFC 6614 §2.3: over RadSec the certificate (and/or the address)
    // says who the NAS is, and the shared secret is always "radsec".
    let radsec = section.radsec.unwrap_or(section.radsec_cert_name.is_some());
    if section.radsec == Some(false) && section.radsec_cert_name.is_some() {
        problems.add(
            key(i, "radsec"),
            "is false but radsec_cert_name is set: remove one of them",
        );
    }
    let has_secret = section.secret.is_some() || section.secret_file.is_some();
    let udp = !radsec || has_secret;
    let network = check_address(i, section, radsec, udp, problems);
    let radsec = radsec.then(|| radsec_client(i, section, network, radsec_configured, problems));
    if !udp {
        return Entry {
            udp_network: None,
            udp: None,
            radsec,
        };
    }
    let loopback = network.is_some_and(|n| loopback_only(&n));
    let secret = client_secret(i, section, loopback, problems);
    let client = match (network, secret) {
        (Some(network), Some(secret)) => Some(Client {
            name: section.name.as_str().into(),
            network,
            secret,
            require_message_authenticator: section.require_message_authenticator,
            allow_app_passwords: section.allow_app_passwords,
        }),
        _ => None,
    };
    Entry {
        udp_network: network,
        udp: client,
        radsec,
    }
}

/// The entry's network, if it has a valid one.
fn check_address(
    i: usize,
    section: &ClientSection,
    radsec: bool,
    udp: bool,
    problems: &mut Problems,
) -> Option<IpNet> {
    let address_given = !section.address.trim().is_empty();
    let network = match parse_network(&section.address) {
        Some(network) => network,
        // RadSec only, recognised by its certificate alone.
        None if !address_given && !udp => return None,
        None if !address_given && radsec => {
            problems.add(
                key(i, "address"),
                "missing: with a secret this client also sends over UDP, from this address (leave out the secret for a RadSec-only client)",
            );
            return None;
        }
        None => {
            problems.add(
                key(i, "address"),
                format!(
                    "{:?} is not an IP address or CIDR such as \"192.0.2.10\" or \"10.0.0.0/24\"",
                    section.address
                ),
            );
            return None;
        }
    };
    if network.prefix_len() == 0 && !section.allow_any_address {
        problems.add(
            key(i, "address"),
            format!(
                "{network} lets every address on the Internet use this client's secret: give the NAS's address or network, or set allow_any_address = true if that is really meant"
            ),
        );
    }
    Some(network)
}

fn radsec_client(
    i: usize,
    section: &ClientSection,
    network: Option<IpNet>,
    radsec_configured: bool,
    problems: &mut Problems,
) -> RadsecClient {
    let cert_name = match &section.radsec_cert_name {
        None => None,
        Some(text) => match CertName::parse(text.trim()) {
            Ok(name) => Some(name),
            Err(message) => {
                problems.add(key(i, "radsec_cert_name"), message);
                None
            }
        },
    };
    if !radsec_configured {
        problems.add(
            key(
                i,
                if section.radsec_cert_name.is_some() {
                    "radsec_cert_name"
                } else {
                    "radsec"
                },
            ),
            "RadSec needs a [radsec] section with cert_file, key_file and ca_file",
        );
    }
    if section.radsec_cert_name.is_none() && section.address.trim().is_empty() {
        problems.add(
            key(i, "radsec"),
            "needs radsec_cert_name or address to recognise the NAS: any certificate from the CA would do otherwise",
        );
    }
    RadsecClient {
        client: Arc::new(Client {
            name: section.name.as_str().into(),
            network: network.unwrap_or_else(|| IpNet::from(std::net::IpAddr::from([0, 0, 0, 0]))),
            secret: Secret::new(crate::radius::radsec::RADSEC_SECRET.to_vec()),
            require_message_authenticator: section.require_message_authenticator,
            allow_app_passwords: section.allow_app_passwords,
        }),
        cert_name,
        address: network,
    }
}

/// Whether every address of `network` is a loopback address (127.0.0.0/8,
/// ::1): only this machine can send from it.
pub(super) fn loopback_only(network: &IpNet) -> bool {
    match network {
        IpNet::V4(net) => net.prefix_len() >= 8 && net.network().is_loopback(),
        IpNet::V6(net) => net.prefix_len() == 128 && net.addr().is_loopback(),
    }
}

/// An address or a network in CIDR form (`10.0.0.0/8`, `192.0.2.1`).
pub fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_networks_are_recognised() {
        for net in ["127.0.0.1", "127.0.0.0/8", "127.1.0.0/16", "::1"] {
            assert!(loopback_only(&parse_network(net).unwrap()), "{net}");
        }
        for net in [
            "127.0.0.0/7",
            "10.0.0.1",
            "0.0.0.0/0",
            "::/0",
            "::/127",
            "::ffff:10.0.0.1",
        ] {
            assert!(!loopback_only(&parse_network(net).unwrap()), "{net}");
        }
    }
}
