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

pub fn router(state: ReadyState) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
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

async fn metrics(State(state): State<ReadyState>) -> impl IntoResponse {
    let handle = state.borrow().clone();
    let (running, max) = handle
        .as_ref()
        .map_or((0, 0), |h| (h.running_jobs(), h.max_jobs()));
    let body = format!(
        "# HELP osapi_agent_running_jobs Jobs running now.\n# TYPE osapi_agent_running_jobs gauge\nosapi_agent_running_jobs {running}\n\
         # HELP osapi_agent_max_jobs Jobs this agent runs at once at most.\n# TYPE osapi_agent_max_jobs gauge\nosapi_agent_max_jobs {max}\n"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
