//! `backend = "ldap"`: passwords checked by an LDAP directory or Active
//! Directory with simple binds (RFC 4513 §5.1.3), over `ldaps://` or StartTLS.
//!
//! The request path: refuse an empty password without contacting the server
//! (RFC 4513 §5.1.2: it would be an unauthenticated bind, which "succeeds") →
//! find the user (search as the service account, or build the bind name from a
//! template) → bind as the user → read the phone and e-mail attributes and the
//! group memberships → [`PrimaryOutcome`]. Files: `config` (settings),
//! `filter` (escaping and templates), `servers` (health and back-off), `pool`
//! (connections, failover), `entry` (search results), `tls`, `groups`, `ad`
//! (Active Directory bind errors).
//!
//! With direct bind, a user name the directory does not know is refused like a
//! wrong password: LDAP answers both with invalidCredentials (Active Directory
//! says `data 525` and that is reported as an unknown user).

pub mod ad;
pub mod config;
pub mod entry;
pub mod filter;
pub mod groups;
mod listing;
pub mod pool;
pub mod servers;
pub mod tls;

use std::time::Duration;

use async_trait::async_trait;
use ldap3::{LdapResult, Scope};
use tracing::{debug, info, warn};

pub use config::{GroupMembership, LdapConfig};

use self::entry::{Entry, Found};
use self::groups::Groups;
use self::pool::{Directory, Reader, Settings};
use super::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};
use crate::secret::Secret;

/// Reply-Message for a user outside `required_groups`.
pub const NOT_ALLOWED: &str = "You are not allowed to use this service";

/// How the user's DN is found.
enum Find {
    /// Search as the service account.
    Search,
    /// Bind with a name built from this template.
    Template(String),
}

/// The LDAP backend.
pub struct LdapAuth {
    directory: Directory,
    find: Find,
    base_dn: String,
    user_filter: String,
    groups: Groups,
    phone_attribute: String,
    email_attribute: String,
    /// Bound with for unknown users, so a miss costs a bind round trip too.
    decoy_dn: String,
    decoy_password: Secret<String>,
}

impl LdapAuth {
    /// A backend for a validated configuration; connects on first use.
    pub fn new(config: &LdapConfig) -> Result<LdapAuth, String> {
        let tls = match (&config.ca_file, config.uses_tls()) {
            (Some(ca), true) => Some(tls::client_config(
                ca,
                config
                    .client_cert_file
                    .as_deref()
                    .zip(config.client_key_file.as_deref()),
            )?),
            (None, true) => return Err("ldap: TLS needs ca_file".into()),
            (_, false) => None,
        };
        for url in &config.urls {
            if url.starts_with("ldap://") && !config.starttls {
                warn!(server = %url, "LDAP without TLS: passwords cross the network in clear; use ldaps:// or starttls = true");
            }
        }
        let service = match (&config.bind_dn, config.bind_password()?) {
            (Some(dn), Some(password)) => Some((dn.clone(), password)),
            (Some(_), None) => return Err("ldap: bind_dn needs bind_password".into()),
            (None, _) => None,
        };
        let find = match &config.bind_template {
            Some(template) => Find::Template(template.clone()),
            None if service.is_some() => Find::Search,
            None => return Err("ldap: set bind_dn or bind_template".into()),
        };
        info!(
            servers = ?config.urls,
            mode = if matches!(find, Find::Search) { "search then bind" } else { "direct bind" },
            starttls = config.starttls,
            pool_size = config.pool_size,
            "LDAP primary authentication"
        );
        let decoy: [u8; 16] = rand::random();
        Ok(LdapAuth {
            directory: Directory::new(Settings {
                urls: config.urls.clone(),
                tls,
                starttls: config.starttls,
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                timeout: Duration::from_millis(config.timeout_ms),
                pool_size: config.pool_size,
                service,
            }),
            find,
            base_dn: config.base_dn.clone(),
            user_filter: config.user_filter().to_string(),
            groups: Groups::new(config),
            phone_attribute: config.phone_attribute.clone(),
            email_attribute: config.email_attribute.clone(),
            decoy_dn: format!("cn=rampart-decoy-{},{}", hex::encode(decoy), config.base_dn),
            decoy_password: Secret::new(hex::encode(rand::random::<[u8; 16]>())),
        })
    }

    fn membership(&self) -> GroupMembership {
        self.groups.membership()
    }

    /// Attributes read with the user entry.
    fn entry_attributes(&self) -> Vec<String> {
        let mut attrs = vec![self.phone_attribute.clone(), self.email_attribute.clone()];
        attrs.extend(self.groups.entry_attribute().map(str::to_string));
        attrs
    }

    /// The entries `user_filter` finds for `user` (escaped, RFC 4515) under
    /// `base_dn`, as the service account; at most two, which is enough to
    /// tell "exactly one" from "several".
    async fn find_user(&self, user: &str, attrs: &[String]) -> Result<Found, PrimaryError> {
        let user_filter = filter::fill(&self.user_filter, "{user}", user);
        self.directory
            .search(&self.base_dn, Scope::Subtree, &user_filter, attrs, 2)
            .await
    }

    /// Search then bind.
    async fn search_then_bind(
        &self,
        user: &str,
        password: &Secret<String>,
    ) -> Result<PrimaryOutcome, PrimaryError> {
        let found = self.find_user(user, &self.entry_attributes()).await?;
        let mut entries = match found.rc {
            0 | 4 => found.entries,
            rc => {
                return Err(PrimaryError::DirectoryUnavailable(format!(
                    "user search under {} failed with result {rc}: {}",
                    self.base_dn, found.text
                )));
            }
        };
        if entries.len() > 1 || found.rc == 4 {
            warn!(
                user,
                "user_filter matches several directory entries: refusing"
            );
            return Ok(PrimaryOutcome::Denied {
                reason: "ambiguous_user",
                message: None,
            });
        }
        let Some(entry) = entries.pop() else {
            self.decoy_bind().await;
            return Ok(PrimaryOutcome::UnknownUser);
        };
        let (result, lease) = self.directory.bind(&entry.dn, password).await?;
        debug!(user, dn = %entry.dn, server = %lease.url(), rc = result.rc, "LDAP user bind");
        lease.release();
        if result.rc != 0 {
            return Ok(refused(&result));
        }
        self.accepted(Some(&entry), &mut Reader::Service(&self.directory))
            .await
    }

    /// Direct bind with a template, then the user's own entry read as the user.
    async fn direct_bind(
        &self,
        template: &str,
        user: &str,
        password: &Secret<String>,
    ) -> Result<PrimaryOutcome, PrimaryError> {
        let Some(name) = filter::bind_name(template, user) else {
            debug!(user, "user name cannot be used in bind_template");
            return Ok(PrimaryOutcome::UnknownUser);
        };
        let (result, mut lease) = self.directory.bind(&name, password).await?;
        debug!(user, bind_name = %name, server = %lease.url(), rc = result.rc, "LDAP user bind");
        if result.rc != 0 {
            lease.release();
            return Ok(refused(&result));
        }
        let attrs = self.entry_attributes();
        let mut reader = Reader::User(&mut lease);
        let found = if name.contains('=') {
            reader
                .search(&name, Scope::Base, "(objectClass=*)", &attrs, 1)
                .await?
        } else {
            let user_filter = filter::fill(&self.user_filter, "{user}", user);
            reader
                .search(&self.base_dn, Scope::Subtree, &user_filter, &attrs, 2)
                .await?
        };
        let entry = match found.entries.as_slice() {
            [one] => Some(one.clone()),
            _ => {
                warn!(
                    user,
                    rc = found.rc,
                    entries = found.entries.len(),
                    "cannot read the user's own entry after the bind"
                );
                None
            }
        };
        let outcome = self.accepted(entry.as_ref(), &mut reader).await;
        if outcome.is_ok() {
            lease.release();
        }
        outcome
    }

    /// The outcome for a user whose password was right.
    async fn accepted(
        &self,
        entry: Option<&Entry>,
        reader: &mut Reader<'_, '_>,
    ) -> Result<PrimaryOutcome, PrimaryError> {
        let membership = self.groups.check(entry, reader).await?;
        if !membership.allowed {
            return Ok(PrimaryOutcome::Denied {
                reason: "not_in_required_group",
                message: Some(NOT_ALLOWED.to_string()),
            });
        }
        Ok(PrimaryOutcome::Accepted(UserInfo {
            mfa_exempt: membership.exempt,
            phone: entry.and_then(|e| e.first(&self.phone_attribute)),
            email: entry.and_then(|e| e.first(&self.email_attribute)),
            reply_attributes: Vec::new(),
        }))
    }

    /// A bind that cannot succeed, so an unknown user costs what a known one does.
    async fn decoy_bind(&self) {
        if let Ok((_, lease)) = self
            .directory
            .bind(&self.decoy_dn, &self.decoy_password)
            .await
        {
            lease.release();
        }
    }
}

/// The outcome of a user bind that did not succeed (RFC 4511 §4.1.9 codes).
fn refused(result: &LdapResult) -> PrimaryOutcome {
    let text = result.text.trim_end_matches('\0');
    match result.rc {
        // invalidCredentials: AD says why in the diagnostic; OpenLDAP does not.
        49 => ad::invalid_credentials(text),
        // noSuchObject: some servers answer a bind to a missing DN so.
        32 => PrimaryOutcome::UnknownUser,
        rc => {
            warn!(rc, text, "the directory refused the user's bind");
            PrimaryOutcome::Denied {
                reason: "directory_refused",
                message: None,
            }
        }
    }
}

#[async_trait]
impl PrimaryAuth for LdapAuth {
    /// At least one directory server gives a (pooled or new) connection.
    async fn ready(&self) -> Result<(), PrimaryError> {
        self.directory.probe().await
    }

    async fn list_users(&self, group: Option<&str>) -> Result<Option<Vec<String>>, PrimaryError> {
        self.list_directory_users(group).await.map(Some)
    }

    async fn email_of(&self, user: &str) -> Result<Option<String>, PrimaryError> {
        if matches!(self.find, Find::Template(_)) {
            return Err(PrimaryError::Unavailable(
                "looking a user up needs a service account (bind_dn)".into(),
            ));
        }
        let found = self
            .find_user(user, std::slice::from_ref(&self.email_attribute))
            .await?;
        // Exactly one entry, as for a login: an ambiguous name gets no mail.
        Ok(match found.entries.as_slice() {
            [entry] => entry.first(&self.email_attribute),
            _ => None,
        })
    }

    async fn verify(&self, request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError> {
        // Never bind with an empty password: the server would take it as an
        // unauthenticated bind and answer success (RFC 4513 §5.1.2).
        let Some(password) = request.password.filter(|p| !p.expose().is_empty()) else {
            return Ok(PrimaryOutcome::BadPassword);
        };
        if request.user.is_empty() {
            return Ok(PrimaryOutcome::UnknownUser);
        }
        match &self.find {
            Find::Search => self.search_then_bind(request.user, password).await,
            Find::Template(template) => self.direct_bind(template, request.user, password).await,
        }
    }
}
