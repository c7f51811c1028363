//! The HTTP listener: one axum router on its own port for everything that is
//! not RADIUS — `/metrics`, `/healthz`, and the self-enrollment portal under
//! `/enroll` when `[portal]` enables it. Takes a bound listener and a
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
    /// Whether the store takes writes (`/readyz` is not ready while not).
    pub health: Arc<crate::store::health::StoreHealth>,
    /// Parked logins and answer tokens, when out-of-band factors are configured.
    pub oob: crate::factor::oob::OobHandle,
    /// The primary backend, for `/readyz` (a directory server must answer).
    pub primary: Option<Arc<dyn crate::auth::PrimaryAuth>>,
    /// The admin API, when `[admin] token_file` is set.
    pub admin: Option<Arc<admin::Admin>>,
    /// The self-enrollment portal (`[portal] enabled`): its routes are
    /// mounted under `/enroll` only when it is set.
    pub portal: Option<Arc<crate::portal::Portal>>,
}

impl HttpState {
    /// Metrics and health only; set the other fields for the features in use
    /// (`HttpState { oob: Some(..), ..HttpState::new(metrics, store) }`).
    pub fn new(metrics: PrometheusHandle, store: Arc<dyn Store>) -> HttpState {
        HttpState {
            metrics,
            store,
            health: Arc::new(crate::store::health::StoreHealth::default()),
            oob: crate::factor::oob::OobHandle::new(None),
            primary: None,
            admin: None,
            portal: None,
        }
    }
}

/// The router with every route.
pub fn router(state: HttpState) -> Router {
    // The admin API and the portal read and write the store: while it fails
    // closed (see `store::health`) they answer 503 without touching it.
    let mut guarded = Router::new().merge(admin::routes());
    if let Some(portal) = &state.portal {
        guarded = guarded.merge(crate::portal::routes(portal.clone()));
    }
    let guarded = guarded.layer(axum::middleware::from_fn_with_state(
        state.health.clone(),
        store_guard,
    ));
    Router::new()
        .merge(metrics::routes())
        .merge(health::routes())
        .merge(oob::routes())
        .merge(twilio::routes())
        .merge(guarded)
        .with_state(state)
}

async fn store_guard(
    axum::extract::State(health): axum::extract::State<Arc<crate::store::health::StoreHealth>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !health.admit() {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable\n",
        )
            .into_response();
    }
    next.run(request).await
}

/// Serves HTTP until `token` is cancelled, then finishes open requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    token: CancellationToken,
) -> std::io::Result<()> {
    // The peer address reaches handlers (the portal's per-address sign-in limit).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
}
