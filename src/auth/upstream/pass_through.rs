//! Which attributes of an upstream Access-Accept reach the NAS: `pass_through`
//! names mapped to attribute numbers (RFC 2865 §5, RFC 2868 §3, RFC 2869 §5),
//! and the filter applied to each upstream reply.
//!
//! Attributes encrypted with the upstream shared secret and Request
//! Authenticator cannot be copied: the NAS would decrypt them with its own
//! secret and authenticator and get garbage keys. rampart does not re-encrypt
//! them, so their names are refused in the configuration and Microsoft's
//! MS-MPPE / MS-CHAP-MPPE keys (RFC 2548 §2.4) are stripped even when
//! `Vendor-Specific` passes everything else.

/// Vendor-Specific (RFC 2865 §5.26).
const VENDOR_SPECIFIC: u8 = 26;
/// Microsoft's SMI network management private enterprise code (RFC 2548 §2).
const MICROSOFT: u32 = 311;
/// MS-CHAP-MPPE-Keys (12), MS-MPPE-Send-Key (16), MS-MPPE-Recv-Key (17): encrypted (RFC 2548 §2.4).
const MICROSOFT_ENCRYPTED: [u8; 3] = [12, 16, 17];

use crate::radius::Attribute;

/// Names accepted in `pass_through`, with their attribute numbers.
const NAMES: &[(&str, u8)] = &[
    ("Framed-IP-Address", 8),
    ("Framed-IP-Netmask", 9),
    ("Filter-Id", 11),
    ("Framed-Route", 22),
    ("Class", 25),
    ("Vendor-Specific", VENDOR_SPECIFIC),
    ("Session-Timeout", 27),
    ("Idle-Timeout", 28),
    ("Tunnel-Type", 64),
    ("Tunnel-Medium-Type", 65),
    ("Tunnel-Private-Group-Id", 81),
    ("Acct-Interim-Interval", 85),
    ("Framed-Pool", 88),
];

/// Names refused with a reason.
const REFUSED: &[(&str, &str)] = &[
    (
        "MS-MPPE-Send-Key",
        "is encrypted with the upstream secret (RFC 2548 §2.4) and rampart does not re-encrypt it for the NAS",
    ),
    (
        "MS-MPPE-Recv-Key",
        "is encrypted with the upstream secret (RFC 2548 §2.4) and rampart does not re-encrypt it for the NAS",
    ),
    (
        "Tunnel-Password",
        "is encrypted with the upstream secret (RFC 2868 §3.5) and rampart does not re-encrypt it for the NAS",
    ),
    ("User-Password", "is never sent in a reply"),
    (
        "State",
        "belongs to the upstream exchange; rampart sets its own",
    ),
    (
        "Proxy-State",
        "belongs to the upstream exchange; rampart echoes the NAS's own",
    ),
    (
        "Message-Authenticator",
        "is computed by rampart for every reply",
    ),
    ("Reply-Message", "rampart writes its own Reply-Message"),
];

/// The compiled `pass_through` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassThrough {
    /// Attribute types copied as they are (never Vendor-Specific).
    types: Vec<u8>,
    /// Every Vendor-Specific attribute passes.
    all_vendors: bool,
    /// Vendor-Specific attributes of these vendors pass.
    vendors: Vec<u32>,
}

impl PassThrough {
    /// Parses the names; errors are (index in the list, message).
    pub fn parse(names: &[String]) -> Result<PassThrough, Vec<(usize, String)>> {
        let mut compiled = PassThrough::default();
        let mut errors = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if let Some((prefix, vendor)) = name.split_once(':')
                && prefix.eq_ignore_ascii_case("Vendor-Specific")
            {
                match vendor.trim().parse::<u32>() {
                    Ok(vendor) if vendor > 0 => compiled.vendors.push(vendor),
                    _ => errors.push((
                        i,
                        format!(
                            "{name:?}: after \"Vendor-Specific:\" comes a vendor number such as 311 (Microsoft)"
                        ),
                    )),
                }
                continue;
            }
            if let Some((_, reason)) = REFUSED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                errors.push((i, format!("{name:?} cannot be passed through: it {reason}")));
                continue;
            }
            match NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, VENDOR_SPECIFIC)) => compiled.all_vendors = true,
                Some((_, typ)) => compiled.types.push(*typ),
                None => errors.push((
                    i,
                    format!(
                        "unknown attribute {name:?} (known: {}, \"Vendor-Specific:VENDOR\")",
                        NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
        if errors.is_empty() {
            Ok(compiled)
        } else {
            Err(errors)
        }
    }

    /// The attributes of an upstream Access-Accept that go to the NAS, in order.
    pub fn filter(&self, attributes: &[Attribute]) -> Vec<Attribute> {
        attributes
            .iter()
            .filter(|a| match a.typ {
                VENDOR_SPECIFIC => self.vendor_passes(&a.value),
                typ => self.types.contains(&typ),
            })
            .cloned()
            .collect()
    }

    fn vendor_passes(&self, value: &[u8]) -> bool {
        let Some(vendor) = value
            .get(..4)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
        else {
            return false;
        };
        if !(self.all_vendors || self.vendors.contains(&vendor)) {
            return false;
        }
        vendor != MICROSOFT || microsoft_plain(&value[4..])
    }
}

/// True when Microsoft sub-attributes are well formed and none is an encrypted key.
fn microsoft_plain(mut rest: &[u8]) -> bool {
    // Sub-attributes are type, length (counting both), value (RFC 2548 §2).
    while !rest.is_empty() {
        let (Some(&typ), Some(&len)) = (rest.first(), rest.get(1)) else {
            return false;
        };
        let len = usize::from(len);
        if len < 2 || len > rest.len() || MICROSOFT_ENCRYPTED.contains(&typ) {
            return false;
        }
        rest = &rest[len..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn vsa(vendor: u32, typ: u8, value: &[u8]) -> Attribute {
        let mut bytes = vendor.to_be_bytes().to_vec();
        bytes.push(typ);
        bytes.push(2 + value.len() as u8);
        bytes.extend_from_slice(value);
        Attribute::new(VENDOR_SPECIFIC, bytes)
    }

    #[test]
    fn names_map_to_numbers_case_insensitively() {
        let p = PassThrough::parse(&names(&["Class", "filter-id", "Vendor-Specific:311"])).unwrap();
        assert_eq!(p.types, [25, 11]);
        assert_eq!(p.vendors, [311]);
        assert!(!p.all_vendors);
    }

    #[test]
    fn unknown_encrypted_and_malformed_names_are_errors_with_their_index() {
        let errors = PassThrough::parse(&names(&[
            "Class",
            "Framed-Colour",
            "MS-MPPE-Recv-Key",
            "Vendor-Specific:abc",
            "State",
        ]))
        .unwrap_err();
        let indexes: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2, 3, 4]);
        assert!(errors[0].1.contains("unknown attribute \"Framed-Colour\""));
        assert!(
            errors[1].1.contains("does not re-encrypt"),
            "{}",
            errors[1].1
        );
    }

    #[test]
    fn filter_keeps_listed_types_in_order_and_drops_the_rest() {
        let p = PassThrough::parse(&names(&["Class", "Filter-Id"])).unwrap();
        let reply = vec![
            Attribute::new(11, "vpn"),
            Attribute::new(27, 3600u32.to_be_bytes()),
            Attribute::new(25, "c1"),
            Attribute::new(25, "c2"),
            vsa(9, 1, b"cisco-avpair"),
        ];
        let kept = p.filter(&reply);
        assert_eq!(
            kept,
            vec![reply[0].clone(), reply[2].clone(), reply[3].clone()]
        );
    }

    #[test]
    fn vendor_filter_passes_one_vendor_but_never_microsoft_keys() {
        let cisco = vsa(9, 1, b"shell:priv-lvl=15");
        let ms_plain = vsa(MICROSOFT, 26, b"S=0123"); // MS-CHAP2-Success
        let ms_send_key = vsa(MICROSOFT, 16, &[0xaa; 34]);
        let ms_recv_key = vsa(MICROSOFT, 17, &[0xbb; 34]);
        let truncated = Attribute::new(VENDOR_SPECIFIC, vec![0, 0, 1]);
        let reply = [
            cisco.clone(),
            ms_plain.clone(),
            ms_send_key,
            ms_recv_key,
            truncated,
        ];

        let only_ms = PassThrough::parse(&names(&["Vendor-Specific:311"])).unwrap();
        assert_eq!(only_ms.filter(&reply), vec![ms_plain.clone()]);

        let all = PassThrough::parse(&names(&["Vendor-Specific"])).unwrap();
        assert_eq!(all.filter(&reply), vec![cisco, ms_plain]);

        let none = PassThrough::parse(&names(&["Class"])).unwrap();
        assert!(none.filter(&reply).is_empty());
    }

    #[test]
    fn malformed_microsoft_sub_attributes_are_dropped() {
        let all = PassThrough::parse(&names(&["Vendor-Specific"])).unwrap();
        let mut bad = vsa(MICROSOFT, 26, b"S=1");
        bad.value[5] = 40; // sub-attribute length past the end
        assert!(all.filter(&[bad]).is_empty());
    }
}
