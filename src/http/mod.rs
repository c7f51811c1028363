//! The HTTP listener: one axum router on its own port for everything that is
//! not RADIUS — `/metrics` and `/healthz` now; the push approval callbacks and
//! the enrollment portal join it later. Takes a bound listener and a
//! cancellation token, like the RADIUS server.

pub mod admin;
mod health;
mod metrics;
pub mod oob;
mod twilio;

use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// Renders the Prometheus exposition.
    pub metrics: PrometheusHandle,
    /// For readiness checks.
    pub store: Arc<dyn Store>,
    /// Parked logins and answer tokens, when out-of-band factors are configured.
    pub oob: Option<Arc<crate::factor::oob::OutOfBand>>,
    /// The admin API, when `[admin] token_file` is set.
    pub admin: Option<Arc<admin::Admin>>,
}

impl HttpState {
    /// Metrics and health only; set the other fields for the features in use
    /// (`HttpState { oob: Some(..), ..HttpState::new(metrics, store) }`).
    pub fn new(metrics: PrometheusHandle, store: Arc<dyn Store>) -> HttpState {
        HttpState {
            metrics,
            store,
            oob: None,
            admin: None,
        }
    }
}

/// The router with every route.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .merge(metrics::routes())
        .merge(health::routes())
        .merge(admin::routes())
        .merge(oob::routes())
        .merge(twilio::routes())
        .with_state(state)
}

/// Serves HTTP until `token` is cancelled, then finishes open requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    token: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
}
