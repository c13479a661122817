//! `/api/v1/agents`: the live agents, from their heartbeats.

use axum::extract::{Path, State};

use crate::api::AppState;
use crate::api::error::{ApiError, Problem};
use crate::bus::AgentInfo;

#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentInfo>,
}

/// Every live agent (agent:read).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", responses((status = 200, body = AgentList)), security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>) -> axum::Json<AgentList> {
    axum::Json(AgentList {
        agents: s.jobs.live.snapshot(),
    })
}

/// One live agent (agent:read).
#[utoipa::path(get, path = "/api/v1/agents/{hostname}", tag = "agents", params(("hostname" = String, Path)),
    responses((status = 200, body = AgentInfo), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    Path(hostname): Path<String>,
) -> Result<axum::Json<AgentInfo>, ApiError> {
    s.jobs
        .live
        .get(&hostname)
        .map(axum::Json)
        .ok_or(ApiError::NotFound {
            what: "agent",
            name: hostname,
        })
}
