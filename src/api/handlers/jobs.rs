//! `/api/v1/jobs`: create any operation as a job, list, inspect, delete, retry.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::AppState;
use crate::api::audit::CreatedJob;
use crate::api::auth::Principal;
use crate::api::error::{ApiError, Problem};
use crate::api::extract::{JsonBody, OptionalJsonBody, QueryOf, page_cursor, page_size};
use crate::api::service::Submission;
use crate::bus::{JobStore, ListFilter};
use crate::job::{Job, JobStatus, Operation, OperationRequest, Target};
use crate::rbac::Permission;
use crate::wire::{CreateJob, Created, JobDetail, JobList, JobStats, JobSummary, RetryJob};

/// Default deadline of a job created through `POST /jobs`.
const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// A stored job by the id in its path: 400 when that is no job id, 404
/// when no such job is stored.
pub(super) async fn stored_job(store: &JobStore, raw: &str) -> Result<Job, ApiError> {
    let id: Uuid = raw
        .parse()
        .map_err(|_| ApiError::invalid("id", "not a job id (UUID)"))?;
    store.get(id).await?.ok_or(ApiError::NotFound {
        what: "job",
        name: id.to_string(),
    })
}

fn parse_timeout(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_JOB_TIMEOUT);
    };
    let d = humantime::parse_duration(raw)
        .map_err(|_| ApiError::invalid("timeout", format!("{raw:?} is not a duration like 60s")))?;
    if d.is_zero() || d > MAX_JOB_TIMEOUT {
        return Err(ApiError::invalid("timeout", "must be between 1ms and 1h"));
    }
    Ok(d)
}

fn created(job: &Job) -> Response {
    let body = Created {
        job_id: job.id,
        status: JobStatus::Submitted,
        target: job.target.to_string(),
        expected: job.expected.clone(),
    };
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.extensions_mut().insert(CreatedJob(job.id));
    resp
}

/// Create a job for any operation (job:write, plus the operation's own permission).
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = CreateJob,
    responses((status = 201, body = Created), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateJob>,
) -> Result<Response, ApiError> {
    let operation = Operation::parse(&body.operation.type_name, body.operation.data)?;
    // A generic job must not be a way around the operation's own permission.
    who.require(operation.permission())?;
    for extra in operation.extra_permissions() {
        who.require(extra)?;
    }
    let target: Target = body.target.as_deref().unwrap_or("_any").parse()?;
    let timeout =
        parse_timeout(body.timeout.as_deref())?.max(s.jobs.min_deadline(&operation, &target));
    let submission = Submission {
        operation,
        target,
        timeout,
        created_by: who.subject.clone(),
        traceparent: super::traceparent(&headers),
        retry_of: None,
    };
    let (job, _) = s.jobs.submit(submission, false).await?;
    Ok(created(&job))
}

/// The query of `GET /jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// Only jobs with this status.
    status: Option<JobStatus>,
    /// Only jobs of this operation type.
    operation: Option<String>,
    /// Only jobs sent to this target (`_any`, `_all`, a hostname or `key:value`).
    target: Option<String>,
    /// Only jobs created by this user (the token's subject).
    user: Option<String>,
    /// Page size, 1-1000 (default 50).
    limit: Option<usize>,
    /// Continue from a previous page's `next_cursor`.
    cursor: Option<u64>,
}

/// List jobs, newest first (job:read).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobListParams),
    responses((status = 200, body = JobList), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    QueryOf(params): QueryOf<JobListParams>,
) -> Result<axum::Json<JobList>, ApiError> {
    if let Some(op) = &params.operation
        && !crate::job::OPERATION_TYPES.contains(&op.as_str())
    {
        return Err(ApiError::invalid(
            "operation",
            format!("unknown operation {op:?}"),
        ));
    }
    let filter = ListFilter {
        status: params.status,
        operation: params.operation,
        target: params.target.as_deref().map(str::parse).transpose()?,
        created_by: params.user,
    };
    let page = s
        .jobs
        .store
        .list(
            &filter,
            page_cursor(params.cursor)?,
            page_size(params.limit)?,
        )
        .await?;
    Ok(axum::Json(JobList {
        jobs: page
            .jobs
            .into_iter()
            .map(|(j, v)| JobSummary {
                id: j.id,
                operation: j.operation.type_name().to_owned(),
                target: j.target.to_string(),
                created_at: j.created_at,
                created_by: j.created_by,
                status: v.status,
            })
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// One job with its timeline and per-host results (job:read).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobDetail), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<axum::Json<JobDetail>, ApiError> {
    let job = stored_job(&s.jobs.store, &id).await?;
    let (progress, mut view) = s.jobs.store.view(&job, OffsetDateTime::now_utc()).await?;
    let mut timeline = progress.events;
    timeline.sort_by_key(|e| e.at);
    // What a command ran and printed is for those who may run commands; the
    // others see its status and hosts.
    let redacted = !who.permissions.contains(&job.operation.permission());
    let mut operation = job.operation.to_request();
    if redacted {
        operation.data = serde_json::Value::Null;
        for result in &mut view.results {
            result.data = None;
        }
    }
    hide_secrets(&job.operation, &mut operation);
    Ok(axum::Json(JobDetail {
        id: job.id,
        redacted,
        operation,
        kind: job.operation.kind(),
        target: job.target.to_string(),
        created_at: job.created_at,
        created_by: job.created_by,
        expected: job.expected,
        timeout_ms: job.timeout_ms,
        retry_of: job.retry_of,
        trace_id: job.trace_id,
        status: view.status,
        hosts: view.hosts,
        timeline,
        results: view.results,
    }))
}

/// Replace the operation's secrets in a request's data with a placeholder:
/// an environment's names are shown, their values (often secrets) never; a
/// password's hash never.
fn hide_secrets(job: &Operation, operation: &mut OperationRequest) {
    let hidden = || serde_json::Value::String(HIDDEN.to_owned());
    for field in job.secret_fields() {
        match operation.data.get_mut(*field) {
            Some(serde_json::Value::Object(map)) => map.values_mut().for_each(|v| *v = hidden()),
            Some(value @ serde_json::Value::String(_)) => *value = hidden(),
            _ => {}
        }
    }
}

/// What a secret reads as in a job's detail.
pub const HIDDEN: &str = "<hidden>";

/// Delete a job and its results (job:write; someone else's job also needs job:delete).
#[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let job = stored_job(&s.jobs.store, &id).await?;
    // A job and its output are evidence; only their creator or a holder of
    // job:delete may remove them.
    if job.created_by != who.subject {
        who.require(Permission::JobDelete)?;
    }
    if s.jobs.store.delete(job.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            what: "job",
            name: job.id.to_string(),
        })
    }
}

/// Run a job's operation again as a new job, optionally on a new target (job:write).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path)), request_body = Option<RetryJob>,
    responses((status = 201, body = Created), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 413, body = Problem), (status = 415, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    // The body is optional: empty means "same target".
    OptionalJsonBody(body): OptionalJsonBody<RetryJob>,
) -> Result<Response, ApiError> {
    let old = stored_job(&s.jobs.store, &id).await?;
    who.require(old.operation.permission())?;
    for extra in old.operation.extra_permissions() {
        who.require(extra)?;
    }
    let target = match body.target {
        Some(t) => t.parse()?,
        None => old.target.clone(),
    };
    // The hosts it goes to now may give a command longer than the old ones did.
    let timeout =
        Duration::from_millis(old.timeout_ms).max(s.jobs.min_deadline(&old.operation, &target));
    let submission = Submission {
        operation: old.operation,
        target,
        timeout,
        created_by: who.subject.clone(),
        traceparent: super::traceparent(&headers),
        retry_of: Some(old.id),
    };
    let (job, _) = s.jobs.submit(submission, false).await?;
    Ok(created(&job))
}

/// Counts of stored jobs (job:read).
#[utoipa::path(get, path = "/api/v1/jobs/stats", tag = "jobs", responses((status = 200, body = JobStats)), security(("bearer" = [])))]
pub async fn stats(State(s): State<AppState>) -> Result<axum::Json<JobStats>, ApiError> {
    const WINDOW: usize = 500;
    let total = s.jobs.store.count().await?;
    let page = s
        .jobs
        .store
        .list(&ListFilter::default(), None, WINDOW)
        .await?;
    let mut by_status = BTreeMap::new();
    let mut by_operation = BTreeMap::new();
    for (j, v) in &page.jobs {
        *by_status.entry(v.status.as_str().to_owned()).or_insert(0) += 1;
        *by_operation
            .entry(j.operation.type_name().to_owned())
            .or_insert(0) += 1;
    }
    Ok(axum::Json(JobStats {
        total,
        by_status,
        by_operation,
        window: WINDOW,
    }))
}
