//! Invitations: a single-use, expiring link that stands in for the portal
//! sign-in, so a new user (or one who lost every factor) can enroll. The link
//! carries 256 random bits; the store keeps only their keyed hash.

use std::sync::Arc;

use crate::mail::{MailError, Mailer};
use crate::seal::SealKey;
use crate::secret::Secret;
use crate::store::{Store, StoreError};

/// Where invitations lead on the portal.
pub const PATH: &str = "/enroll/invite/";

/// A new invitation.
#[derive(Debug)]
pub struct Invitation {
    /// Normalised user name.
    pub user: String,
    /// The full link (it *is* the credential: show it only to the user).
    pub url: Secret<String>,
    /// Unix expiry.
    pub expires_at: i64,
}

/// The stored form of an invitation token.
pub fn token_hash(key: &SealKey, token: &str) -> String {
    key.code_hash("invitation", "", token)
}

/// Creates and stores an invitation for `user`, valid `hours`, with a link
/// under `base_url` (the portal's public address).
pub async fn create(
    store: &Arc<dyn Store>,
    key: &SealKey,
    user: &str,
    hours: u64,
    base_url: &str,
    now: i64,
) -> Result<Invitation, StoreError> {
    let token = Secret::new(hex::encode(rand::random::<[u8; 32]>()));
    let expires_at = now + hours as i64 * 3600;
    store
        .create_invitation(&token_hash(key, token.expose()), user, expires_at, now)
        .await?;
    Ok(Invitation {
        user: user.to_string(),
        url: Secret::new(format!(
            "{}{PATH}{}",
            base_url.trim_end_matches('/'),
            token.expose()
        )),
        expires_at,
    })
}

/// E-mails the link.
pub async fn email(
    mailer: &Mailer,
    to: &str,
    invitation: &Invitation,
    organisation: &str,
) -> Result<(), MailError> {
    let hours = (invitation.expires_at
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default())
        / 3600;
    let body = format!(
        "Hello {user},\n\n\
         {organisation} asks you to set up two-step sign-in for the VPN and remote desktop.\n\n\
         Open this link on your computer (it works once, for the next {hours} hours):\n\n\
         {url}\n\n\
         You will need your phone: the page shows a QR code to scan with an authenticator app\n\
         (Microsoft Authenticator, Google Authenticator, Aegis, ...), then asks for the 6-digit code.\n\n\
         If you did not expect this message, ignore it and tell your IT team.\n",
        user = invitation.user,
        url = invitation.url.expose(),
    );
    mailer
        .send(
            to,
            &format!("{organisation}: set up two-step sign-in"),
            body,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn created_invitations_redeem_once_by_their_token() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let key = SealKey::from_bytes([9; 32]);
        let invitation = create(&store, &key, "alice", 24, "https://mfa.example/", 1000)
            .await
            .unwrap();
        assert_eq!(invitation.expires_at, 1000 + 24 * 3600);
        let url = invitation.url.expose();
        assert!(
            url.starts_with("https://mfa.example/enroll/invite/"),
            "{url}"
        );
        let token = url.rsplit('/').next().unwrap();
        assert_eq!(token.len(), 64);
        let hash = token_hash(&key, token);
        assert_eq!(
            store
                .redeem_invitation(&hash, 2000)
                .await
                .unwrap()
                .as_deref(),
            Some("alice")
        );
        assert_eq!(store.redeem_invitation(&hash, 2000).await.unwrap(), None);
    }
}
