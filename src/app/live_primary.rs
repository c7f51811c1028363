//! The primary backend as the admin API, the portal and `/readyz` see it:
//! whatever the pipeline in use now has, so a reload that changes `[primary]`
//! reaches them too without rebuilding them.

use std::sync::Arc;

use async_trait::async_trait;

use crate::auth::{PrimaryAuth, PrimaryError, PrimaryOutcome, PrimaryRequest};
use crate::live::Live;
use crate::pipeline::Pipeline;

/// Forwards every call to the current pipeline's primary backend.
pub struct LivePrimary(pub Arc<Live<Pipeline>>);

impl LivePrimary {
    fn current(&self) -> Arc<dyn PrimaryAuth> {
        self.0.load().primary()
    }
}

#[async_trait]
impl PrimaryAuth for LivePrimary {
    fn requires_password(&self) -> bool {
        self.current().requires_password()
    }

    fn forwards_credentials(&self) -> bool {
        self.current().forwards_credentials()
    }

    async fn verify(&self, request: &PrimaryRequest<'_>) -> Result<PrimaryOutcome, PrimaryError> {
        self.current().verify(request).await
    }

    async fn ready(&self) -> Result<(), PrimaryError> {
        self.current().ready().await
    }

    async fn list_users(&self, group: Option<&str>) -> Result<Option<Vec<String>>, PrimaryError> {
        self.current().list_users(group).await
    }

    async fn email_of(&self, user: &str) -> Result<Option<String>, PrimaryError> {
        self.current().email_of(user).await
    }
}
