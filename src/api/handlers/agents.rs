//! `/api/v1/agents`: the live agents, from their heartbeats; and
//! `/api/v1/enrollment`: agents joining the fleet, accepted or rejected.

use axum::Extension;
use axum::extract::{Path, State};

use crate::api::AppState;
use crate::api::auth::Principal;
use crate::api::error::{ApiError, Problem};
use crate::api::extract::QueryOf;
use crate::bus::AgentInfo;
use crate::enrollment::{self, Enrollment, EnrollmentState, EnrollmentView};
use crate::wire::{AgentList, EnrollmentList};

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

/// The query of `GET /enrollment`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentParams {
    /// Only enrollments in this state.
    state: Option<EnrollmentState>,
}

/// Agents that asked to join the fleet, and the decisions about them (agent:read).
#[utoipa::path(get, path = "/api/v1/enrollment", tag = "agents", params(EnrollmentParams),
    responses((status = 200, body = EnrollmentList), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn enrollment(
    State(s): State<AppState>,
    QueryOf(params): QueryOf<EnrollmentParams>,
) -> Result<axum::Json<EnrollmentList>, ApiError> {
    let state = params.state;
    let mut enrollments = s.enrollment.list().await?;
    if let Some(state) = state {
        enrollments.retain(|e| e.state == state);
    }
    Ok(axum::Json(EnrollmentList { enrollments }))
}

/// Accept a pending (or earlier rejected) agent, named by its public key
/// (agent:write): it gets a NATS user of its own, for its host and labels
/// only. Never by host name: anyone with the join credential can file a
/// request under any name.
#[utoipa::path(post, path = "/api/v1/enrollment/{agent}/accept", tag = "agents",
    params(("agent" = String, Path, description = "The agent's public key (from `osapictl agent pending`)")),
    responses((status = 200, body = EnrollmentView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn accept(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(agent): Path<String>,
) -> Result<axum::Json<EnrollmentView>, ApiError> {
    let all = s.enrollment.list().await?;
    let pending = enrollment::find_by_key(
        &all,
        &agent,
        &[EnrollmentState::Pending, EnrollmentState::Rejected],
    )?;
    enrollment::check_accept(&all, &pending.enrollment)?;
    decide(
        &s,
        &who,
        EnrollmentState::Accepted,
        pending.enrollment.clone(),
    )
    .await
}

/// Reject an agent, pending or accepted, named by its host or public key
/// (agent:write): an accepted one loses its NATS user and is disconnected.
#[utoipa::path(post, path = "/api/v1/enrollment/{agent}/reject", tag = "agents",
    params(("agent" = String, Path, description = "The agent's host name or public key")),
    responses((status = 200, body = EnrollmentView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(agent): Path<String>,
) -> Result<axum::Json<EnrollmentView>, ApiError> {
    let all = s.enrollment.list().await?;
    let found = enrollment::find(
        &all,
        &agent,
        &[EnrollmentState::Pending, EnrollmentState::Accepted],
    )?;
    decide(
        &s,
        &who,
        EnrollmentState::Rejected,
        found.enrollment.clone(),
    )
    .await
}

async fn decide(
    s: &AppState,
    who: &Principal,
    state: EnrollmentState,
    mut enrollment: Enrollment,
) -> Result<axum::Json<EnrollmentView>, ApiError> {
    enrollment.decided_by = Some(who.subject.clone());
    enrollment.decided_at = Some(time::OffsetDateTime::now_utc());
    s.enrollment.decide(state, &enrollment).await?;
    Ok(axum::Json(EnrollmentView { state, enrollment }))
}
