//! `/api/v1/audit`: the audit trail, newest first; one entry; the whole trail as
//! JSON lines, oldest first, streamed.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::api::AppState;
use crate::api::error::{ApiError, Problem};
use crate::api::extract::Params;
use crate::audit::{AuditEntry, AuditFilter};
use crate::wire::AuditList;

/// The `Content-Type` of the export.
pub const NDJSON: &str = "application/x-ndjson";

fn time_param(params: &Params, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    params
        .get(name)
        .map(|raw| {
            OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
                ApiError::invalid(
                    name,
                    format!("{raw:?} is not an RFC 3339 time like 2024-05-01T12:00:00Z"),
                )
            })
        })
        .transpose()
}

fn filter(params: &Params) -> Result<AuditFilter, ApiError> {
    let f = AuditFilter {
        user: params.get("user").map(str::to_owned),
        since: time_param(params, "since")?,
        until: time_param(params, "until")?,
    };
    if let (Some(since), Some(until)) = (f.since, f.until)
        && since > until
    {
        return Err(ApiError::invalid("until", "must not be before since"));
    }
    Ok(f)
}

/// Audit entries, newest first (audit:read).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("user" = Option<String>, Query, description = "only this user (token subject, or anonymous)"),
           ("since" = Option<String>, Query, description = "RFC 3339: entries at or after"),
           ("until" = Option<String>, Query, description = "RFC 3339: entries before"),
           ("limit" = Option<usize>, Query, description = "1-1000, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = AuditList), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    params: Params,
) -> Result<axum::Json<AuditList>, ApiError> {
    params.only(&["user", "since", "until", "limit", "cursor"])?;
    let filter = filter(&params)?;
    let page = s
        .audit
        .list(&filter, params.cursor()?, params.limit(50, 1000)?)
        .await?;
    Ok(axum::Json(AuditList {
        entries: page.entries,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// One audit entry (audit:read).
#[utoipa::path(get, path = "/api/v1/audit/{id}", tag = "audit", params(("id" = String, Path, description = "entry id (UUID)")),
    responses((status = 200, body = AuditEntry), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<AuditEntry>, ApiError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::invalid("id", "not an audit entry id (UUID)"))?;
    s.audit
        .get(id)
        .await?
        .map(axum::Json)
        .ok_or(ApiError::NotFound {
            what: "audit entry",
            name: id.to_string(),
        })
}

/// Every matching entry as JSON lines, oldest first, streamed (audit:read).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(("user" = Option<String>, Query), ("since" = Option<String>, Query, description = "RFC 3339"), ("until" = Option<String>, Query, description = "RFC 3339")),
    responses((status = 200, description = "one AuditEntry per line", content_type = "application/x-ndjson", body = String), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(State(s): State<AppState>, params: Params) -> Result<Response, ApiError> {
    params.only(&["user", "since", "until"])?;
    let filter = filter(&params)?;
    // A NATS failure part-way ends the stream with an error, which aborts the
    // response: the client sees a broken transfer, never a silently short export.
    let lines = s.audit.export(filter).map_ok(|entry| {
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    });
    let mut resp = Body::from_stream(lines).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(resp)
}
