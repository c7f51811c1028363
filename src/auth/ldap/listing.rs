//! Listing directory users for the admin's "not enrolled yet" report: every
//! entry matching `user_filter` with the placeholder as `*`, restricted to a
//! group when one is given — by `memberOf` (AD with the in-chain rule, so
//! nested groups count), or, for directories without `memberOf`, by the
//! group's own `member` values.

use std::collections::HashSet;

use ldap3::Scope;

use super::LdapAuth;
use super::config::GroupMembership;
use super::filter;
use crate::auth::PrimaryError;

/// Upper bound on listed users; a bigger directory needs a narrower group.
const MAX_LISTED: i32 = 50_000;

/// The attribute holding the user name in a filter such as
/// `(&(objectClass=person)(sAMAccountName={user}))`.
pub fn name_attribute(user_filter: &str) -> Option<String> {
    let at = user_filter.find("={user}")?;
    let start = user_filter[..at]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ';'))
        .map_or(0, |i| i + 1);
    let name = &user_filter[start..at];
    (!name.is_empty()).then(|| name.to_string())
}

impl LdapAuth {
    /// User names in the directory, optionally only members of `group`.
    pub(super) async fn list_directory_users(
        &self,
        group: Option<&str>,
    ) -> Result<Vec<String>, PrimaryError> {
        let attribute = name_attribute(&self.user_filter).ok_or_else(|| {
            PrimaryError::Unavailable("user_filter has no attribute={user} to list by".into())
        })?;
        // `*` is the presence filter here, deliberately unescaped.
        let everyone = self.user_filter.replace("{user}", "*");
        let (filter, members) = match (group, self.membership()) {
            (None, _) => (everyone, None),
            (Some(group), GroupMembership::InChain) => (
                format!("(&{everyone}{})", filter::in_chain(&[group.to_string()])),
                None,
            ),
            (Some(group), GroupMembership::MemberOf) => (
                format!(
                    "(&{everyone}(memberOf={}))",
                    filter::fill("{dn}", "{dn}", group)
                ),
                None,
            ),
            (Some(group), GroupMembership::Search) => {
                let found = self
                    .directory
                    .search(group, Scope::Base, "(objectClass=*)", &["member".into()], 1)
                    .await?;
                let members: HashSet<String> = found
                    .entries
                    .first()
                    .map(|e| {
                        e.values("member")
                            .iter()
                            .map(|dn| filter::normalize_dn(dn))
                            .collect()
                    })
                    .unwrap_or_default();
                (everyone, Some(members))
            }
        };
        let found = self
            .directory
            .search(
                &self.base_dn,
                Scope::Subtree,
                &filter,
                std::slice::from_ref(&attribute),
                MAX_LISTED,
            )
            .await?;
        let mut names: Vec<String> = found
            .entries
            .iter()
            .filter(|e| {
                members
                    .as_ref()
                    .is_none_or(|m| m.contains(&filter::normalize_dn(&e.dn)))
            })
            .filter_map(|e| e.first(&attribute))
            .map(|name| crate::username::normalize(&name))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_name_attribute_in_user_filters() {
        assert_eq!(name_attribute("(uid={user})").as_deref(), Some("uid"));
        assert_eq!(
            name_attribute("(&(objectClass=person)(sAMAccountName={user}))").as_deref(),
            Some("sAMAccountName")
        );
        assert_eq!(name_attribute("(cn=x)"), None);
    }
}
