//! What searches return: entries parsed from SearchResultEntry messages
//! without panicking on odd input, and the result code.

use std::collections::HashMap;

use ldap3::ResultEntry;

/// One entry of a search result.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's DN.
    pub dn: String,
    /// Attribute values by lower-case attribute name.
    attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    /// All values of an attribute (names compare case-insensitively).
    pub fn values(&self, attribute: &str) -> &[String] {
        self.attrs
            .get(&attribute.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The first non-empty value of an attribute.
    pub fn first(&self, attribute: &str) -> Option<String> {
        self.values(attribute)
            .iter()
            .find(|v| !v.trim().is_empty())
            .cloned()
    }

    /// Parses a SearchResultEntry (RFC 4511 §4.5.2) without panicking on odd
    /// input (ldap3's `SearchEntry::construct` panics). Binary values are skipped.
    pub fn parse(entry: ResultEntry) -> Option<Entry> {
        let mut parts = entry.0.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attrs = HashMap::new();
        for attribute in parts.next()?.expect_constructed()? {
            let mut pieces = attribute.expect_constructed()?.into_iter();
            let name = String::from_utf8(pieces.next()?.expect_primitive()?).ok()?;
            let values = pieces
                .next()?
                .expect_constructed()?
                .into_iter()
                .filter_map(|v| String::from_utf8(v.expect_primitive()?).ok())
                .collect();
            attrs.insert(name.to_ascii_lowercase(), values);
        }
        Some(Entry { dn, attrs })
    }
}

/// What a search returned.
#[derive(Debug)]
pub struct Found {
    /// The entries (referrals dropped).
    pub entries: Vec<Entry>,
    /// The result code: 0, or e.g. 4 (sizeLimitExceeded) with partial entries.
    pub rc: u32,
    /// The diagnostic message.
    pub text: String,
}
