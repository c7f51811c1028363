//! `backend = "none"`: second factor only. For RD Gateway behind NPS, where
//! Windows has already checked the password and the forwarded Access-Request
//! carries only the user name. A User-Password, if one arrives, is taken as the
//! second-factor response.

use async_trait::async_trait;
use serde::Deserialize;

use super::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest, UserInfo};

/// `[primary] backend = "none"`: no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoneConfig {}

/// Accepts every user name; the second factor decides.
pub struct NoPrimary;

#[async_trait]
impl PrimaryAuth for NoPrimary {
    fn requires_password(&self) -> bool {
        false
    }

    async fn verify(&self, _request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError> {
        Ok(PrimaryOutcome::Accepted(UserInfo::default()))
    }
}
