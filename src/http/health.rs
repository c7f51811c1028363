//! `GET /healthz` (the process answers) and `GET /readyz` (the store answers
//! too), for load balancers and orchestration.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::HttpState;

pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
}

async fn ready(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    // A read of a name that cannot exist exercises the connection pool and schema.
    match state.store.login_state("\u{0}readyz", 0).await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n"),
    }
}
