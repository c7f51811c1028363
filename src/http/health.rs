//! `GET /healthz` (the process answers) and `GET /readyz` (the store takes
//! writes and answers reads, and so does the primary backend: with LDAP, at
//! least one directory server gives a connection), for load balancers and
//! orchestration.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tracing::debug;

use super::HttpState;

pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
}

async fn ready(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    // First, and without touching the store: its files may be frozen, where
    // a read would be fatal (see `store::health`).
    if !state.health.admit() {
        let cause = state.health.cause().unwrap_or_default();
        debug!(%cause, "not ready: store cannot be written");
        return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n");
    }
    // A read of a name that cannot exist exercises the connection pool and schema.
    if let Err(error) = state.store.login_state("\u{0}readyz", 0).await {
        debug!(%error, "not ready: store");
        return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n");
    }
    if let Some(primary) = &state.primary
        && let Err(error) = primary.ready().await
    {
        // The details (server URLs, errors) go to the log, not to whoever asks.
        debug!(%error, "not ready: primary backend");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "primary backend unavailable\n",
        );
    }
    (StatusCode::OK, "ready\n")
}
