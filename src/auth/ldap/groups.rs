//! Group membership for `required_groups` and `mfa_exempt_groups`, three ways:
//! Active Directory's in-chain matching rule (the DC follows nesting), the
//! user entry's `memberOf` values (direct groups only), or group searches with
//! `group_filter`, following groups-in-groups up to `group_nesting_depth`.
//! Lookups that fail count as "not a member": a required group then refuses
//! the user and an exempt group does not excuse the second factor (fail closed).

use std::collections::HashSet;

use ldap3::Scope;
use tracing::{debug, warn};

use super::config::{GroupMembership, LdapConfig};
use super::entry::Entry;
use super::filter;
use super::pool::Reader;
use crate::auth::PrimaryError;

/// What the groups say about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// In a required group, or none are required.
    pub allowed: bool,
    /// In an MFA-exempt group.
    pub exempt: bool,
}

/// The group settings, with DNs normalised once.
pub struct Groups {
    membership: GroupMembership,
    filter: String,
    base: String,
    depth: u8,
    required: Vec<String>,
    exempt: Vec<String>,
}

impl Groups {
    /// From the validated configuration.
    pub fn new(config: &LdapConfig) -> Groups {
        Groups {
            membership: config.group_membership(),
            filter: config.group_filter().to_string(),
            base: config
                .group_base_dn
                .clone()
                .unwrap_or_else(|| config.base_dn.clone()),
            depth: config.group_nesting_depth,
            required: config.required_groups.clone(),
            exempt: config.mfa_exempt_groups.clone(),
        }
    }

    /// Whether any group check is configured.
    pub fn any(&self) -> bool {
        !self.required.is_empty() || !self.exempt.is_empty()
    }

    /// The attribute to read with the user entry, if the strategy needs one.
    pub fn entry_attribute(&self) -> Option<&'static str> {
        (self.any() && self.membership == GroupMembership::MemberOf).then_some("memberOf")
    }

    /// How membership is determined.
    pub fn membership(&self) -> GroupMembership {
        self.membership
    }

    /// Checks the user's membership; `user` is None when the entry could not be read.
    pub async fn check(
        &self,
        user: Option<&Entry>,
        reader: &mut Reader<'_, '_>,
    ) -> Result<Membership, PrimaryError> {
        if !self.any() {
            return Ok(Membership {
                allowed: true,
                exempt: false,
            });
        }
        let Some(user) = user else {
            warn!("cannot read the user's directory entry: treated as a member of no group");
            return Ok(Membership {
                allowed: self.required.is_empty(),
                exempt: false,
            });
        };
        let (allowed, exempt) = match self.membership {
            GroupMembership::InChain => (
                self.required.is_empty() || self.in_chain(user, &self.required, reader).await?,
                !self.exempt.is_empty() && self.in_chain(user, &self.exempt, reader).await?,
            ),
            GroupMembership::MemberOf => {
                let groups: HashSet<String> = user
                    .values("memberOf")
                    .iter()
                    .map(|g| filter::normalize_dn(g))
                    .collect();
                self.decide(&groups)
            }
            GroupMembership::Search => {
                let groups = self.search(user, reader).await?;
                self.decide(&groups)
            }
        };
        debug!(dn = %user.dn, allowed, exempt, "LDAP group membership");
        Ok(Membership { allowed, exempt })
    }

    fn decide(&self, groups: &HashSet<String>) -> (bool, bool) {
        let any = |wanted: &[String]| {
            wanted
                .iter()
                .any(|g| groups.contains(&filter::normalize_dn(g)))
        };
        (
            self.required.is_empty() || any(&self.required),
            any(&self.exempt),
        )
    }

    /// AD: is the user's own entry matched by an in-chain filter over `groups`?
    async fn in_chain(
        &self,
        user: &Entry,
        groups: &[String],
        reader: &mut Reader<'_, '_>,
    ) -> Result<bool, PrimaryError> {
        let found = reader
            .search(&user.dn, Scope::Base, &filter::in_chain(groups), &[], 1)
            .await?;
        if !matches!(found.rc, 0 | 32) {
            warn!(rc = found.rc, text = %found.text, "in-chain group check failed");
        }
        Ok(!found.entries.is_empty())
    }

    /// Every group the user is in, following nesting up to `depth` levels.
    async fn search(
        &self,
        user: &Entry,
        reader: &mut Reader<'_, '_>,
    ) -> Result<HashSet<String>, PrimaryError> {
        let mut seen = HashSet::new();
        let mut frontier = vec![user.dn.clone()];
        for _ in 0..=self.depth {
            let filters: Vec<String> = frontier
                .iter()
                .map(|dn| filter::fill(&self.filter, "{dn}", dn))
                .collect();
            let found = reader
                .search(
                    &self.base,
                    Scope::Subtree,
                    &filter::any_of(&filters),
                    &[],
                    0,
                )
                .await?;
            if !matches!(found.rc, 0 | 4) {
                warn!(rc = found.rc, text = %found.text, base = %self.base, "group search failed");
            }
            frontier = found
                .entries
                .into_iter()
                .filter(|group| seen.insert(filter::normalize_dn(&group.dn)))
                .map(|group| group.dn)
                .collect();
            if frontier.is_empty() {
                break;
            }
        }
        Ok(seen)
    }
}
