//! `GET /metrics`: the Prometheus exposition of every `rampart_*` metric.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::HttpState;

pub(super) fn routes() -> Router<HttpState> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
