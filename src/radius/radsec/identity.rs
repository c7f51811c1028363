//! Who a RadSec peer is, from its (already verified) certificate, and whether
//! that matches a configured `radsec_cert_name`.
//!
//! RFC 6614 §2.3: "DNS names and IP addresses can be contained in the Common
//! Name (CN) or subjectAltName entries. For verification, only one of these
//! entries is to be considered. The following precedence applies: for DNS name
//! validation, subjectAltName:DNS has precedence over CN; for IP address
//! validation, subjectAltName:iPAddr has precedence over CN." So the CN counts
//! only when the certificate has no entry of the kind being checked. Names are
//! compared exactly, ignoring ASCII case and a trailing dot; wildcards are not
//! expanded (a NAS certificate names one device).

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A configured name a RadSec client's certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertName {
    /// A host name, lower-case, without a trailing dot.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl CertName {
    /// Parses `radsec_cert_name`: an IP address, or a DNS name of letters,
    /// digits, `-`, `_` and dots.
    pub fn parse(text: &str) -> Result<CertName, String> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(CertName::Ip(ip));
        }
        let name = normalise(text);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if valid {
            Ok(CertName::Dns(name))
        } else {
            Err(format!(
                "{text:?} is not a host name or IP address such as \"nas1.example.com\""
            ))
        }
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn same_host(presented: &str, configured: &str) -> bool {
    presented
        .trim_end_matches('.')
        .eq_ignore_ascii_case(configured)
}

/// The names a peer certificate carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// subjectAltName dNSName entries, normalised.
    pub dns: Vec<String>,
    /// subjectAltName iPAddress entries.
    pub ips: Vec<IpAddr>,
    /// The subject's (last) Common Name, if any.
    pub cn: Option<String>,
}

/// A certificate that cannot be read for names (rustls already verified it,
/// so this is rare: an extension x509-parser refuses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the certificate's names: {0}")]
pub struct IdentityError(String);

impl PeerIdentity {
    /// Reads the names from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<PeerIdentity, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError(e.to_string()))?;
        let mut identity = PeerIdentity {
            cn: cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .last()
                .map(str::to_string),
            ..PeerIdentity::default()
        };
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError(e.to_string()))?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => identity.dns.push(normalise(dns)),
                GeneralName::IPAddress(octets) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*octets) {
                        identity.ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*octets) {
                        identity.ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
        Ok(identity)
    }

    /// Whether the certificate carries `name` (RFC 6614 §2.3 precedence).
    pub fn matches(&self, name: &CertName) -> bool {
        match name {
            CertName::Dns(dns) if !self.dns.is_empty() => {
                self.dns.iter().any(|d| same_host(d, dns))
            }
            CertName::Dns(dns) => self.cn.as_deref().is_some_and(|cn| same_host(cn, dns)),
            CertName::Ip(ip) if !self.ips.is_empty() => self.ips.contains(ip),
            CertName::Ip(ip) => self
                .cn
                .as_deref()
                .and_then(|cn| cn.parse::<IpAddr>().ok())
                .is_some_and(|cn| cn == *ip),
        }
    }

    /// A short description for logs: the names considered.
    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self.dns.clone();
        names.extend(self.ips.iter().map(IpAddr::to_string));
        if let Some(cn) = &self.cn {
            names.push(format!("CN={cn}"));
        }
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str) -> CertName {
        CertName::parse(name).unwrap()
    }

    #[test]
    fn subject_alt_names_take_precedence_over_the_common_name() {
        let identity = PeerIdentity {
            dns: vec!["nas1.example.com".into()],
            ips: Vec::new(),
            cn: Some("legacy-name".into()),
        };
        assert!(identity.matches(&dns("NAS1.Example.com.")));
        assert!(
            !identity.matches(&dns("legacy-name")),
            "CN ignored when SAN DNS exists"
        );
        let cn_only = PeerIdentity {
            cn: Some("nas2.example.com".into()),
            ..PeerIdentity::default()
        };
        assert!(cn_only.matches(&dns("nas2.example.com")));
        assert!(!cn_only.matches(&dns("example.com")));
    }

    #[test]
    fn ip_names_match_ip_entries_or_else_the_common_name() {
        let ip = CertName::parse("192.0.2.10").unwrap();
        let with_san = PeerIdentity {
            ips: vec!["192.0.2.10".parse().unwrap()],
            cn: Some("192.0.2.99".into()),
            ..PeerIdentity::default()
        };
        assert!(with_san.matches(&ip));
        assert!(!with_san.matches(&CertName::parse("192.0.2.99").unwrap()));
        let cn_only = PeerIdentity {
            dns: vec!["nas.example.com".into()],
            cn: Some("192.0.2.10".into()),
            ..PeerIdentity::default()
        };
        assert!(cn_only.matches(&ip), "no SAN IP: the CN is considered");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "nas 1", "*.example.com", "a..b", "ñ.example"] {
            assert!(CertName::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// `openssl req -x509 ... -subj "/O=Example/CN=legacy-name" -addext
    /// "subjectAltName=DNS:NAS1.example.com,IP:192.0.2.10,email:a@example.com"`
    const CERT_DER_BASE64: &str = "MIIB2jCCAX+gAwIBAgIULYtLhJdd8ZjP70SpPD4QGooHMsMwCgYIKoZIzj0EAwIwKDEQMA4GA1UE\
         CgwHRXhhbXBsZTEUMBIGA1UEAwwLbGVnYWN5LW5hbWUwHhcNMjYxMTIzMTUyNTM4WhcNMjYxMTI0\
         MTUyNTM4WjAoMRAwDgYDVQQKDAdFeGFtcGxlMRQwEgYDVQQDDAtsZWdhY3ktbmFtZTBZMBMGByqG\
         SM49AgEGCCqGSM49AwEHA0IABO1Mj9if+nxcERwvIg4NfLSk8S49BO3y5x7l/akUiXNIyP8hnITD\
         gKAjlg3fyzICBa9y3DASHigS8AhzTC5QbIijgYYwgYMwHQYDVR0OBBYEFIkUBjDI6Jp+lYKcUJME\
         XodqfsAcMB8GA1UdIwQYMBaAFIkUBjDI6Jp+lYKcUJMEXodqfsAcMA8GA1UdEwEB/wQFMAMBAf8w\
         MAYDVR0RBCkwJ4IQTkFTMS5leGFtcGxlLmNvbYcEwAACCoENYUBleGFtcGxlLmNvbTAKBggqhkjO\
         PQQDAgNJADBGAiEAosRfw/q5lHsVFDC79Q3HcvUf/1nTAtYjp9YLbd2yWvcCIQD464QCQuSMTPuj\
         nu6yuoCAJ5FgjgegK4o+FmvCFg+Vgg==";

    #[test]
    fn names_are_read_from_a_certificate() {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(CERT_DER_BASE64)
            .unwrap();
        let identity = PeerIdentity::from_der(&der).unwrap();
        assert_eq!(identity.dns, ["nas1.example.com"]);
        assert_eq!(identity.ips, ["192.0.2.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(identity.cn.as_deref(), Some("legacy-name"));
        assert!(identity.matches(&dns("nas1.example.com")));
        assert!(identity.matches(&CertName::parse("192.0.2.10").unwrap()));
        assert!(!identity.matches(&dns("legacy-name")));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(PeerIdentity::from_der(b"not a certificate").is_err());
    }
}
