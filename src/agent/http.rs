//! The agent's own HTTP endpoints, served on its activated unix socket
//! (`/run/osapi/agent.sock`): liveness, readiness and metrics for this agent.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::AgentHandle;

/// `None` until the agent consumes jobs.
pub type ReadyState = watch::Receiver<Option<AgentHandle>>;

/// `registry` is the agent's (see [`super::AgentMetrics`]); it is served from the
/// start, before the agent is ready.
pub fn router(state: ReadyState, registry: prometheus::Registry) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .with_state(state)
        .route("/metrics", get(metrics).with_state(registry))
}

async fn ready(State(state): State<ReadyState>) -> impl IntoResponse {
    let handle = state.borrow().clone();
    match handle {
        Some(h) if h.healthy().await => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready"})),
        ),
        Some(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "nats unreachable"})),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "starting"})),
        ),
    }
}

async fn metrics(State(registry): State<prometheus::Registry>) -> axum::response::Response {
    match crate::metrics::render(&registry) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot render metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}
