//! `/api/v1/audit`: the audit trail, newest first; one entry; the whole trail as
//! JSON lines, oldest first, streamed.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::AppState;
use crate::api::error::{ApiError, Problem};
use crate::api::extract::{QueryOf, page_cursor, page_size};
use crate::audit::{AuditEntry, AuditFilter};
use crate::wire::AuditList;

/// The `Content-Type` of the export.
pub const NDJSON: &str = "application/x-ndjson";

/// Which entries: by user and time (RFC 3339, e.g. `2024-05-01T12:00:00Z`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditExportParams {
    /// Only this user (token subject, or `anonymous`).
    user: Option<String>,
    /// Entries at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// Entries before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
}

/// [`AuditExportParams`] and a page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListParams {
    /// Only this user (token subject, or `anonymous`).
    user: Option<String>,
    /// Entries at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// Entries before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
    /// Page size, 1-1000 (default 50).
    limit: Option<usize>,
    /// Continue from a previous page's `next_cursor`.
    cursor: Option<u64>,
}

fn filter(
    user: Option<String>,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<AuditFilter, ApiError> {
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(ApiError::invalid("until", "must not be before since"));
    }
    Ok(AuditFilter { user, since, until })
}

/// Audit entries, newest first (audit:read).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditListParams),
    responses((status = 200, body = AuditList), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    QueryOf(p): QueryOf<AuditListParams>,
) -> Result<axum::Json<AuditList>, ApiError> {
    let filter = filter(p.user, p.since, p.until)?;
    let page = s
        .audit
        .list(&filter, page_cursor(p.cursor)?, page_size(p.limit)?)
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
    params(AuditExportParams),
    responses((status = 200, description = "one AuditEntry per line", content_type = "application/x-ndjson", body = String), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(s): State<AppState>,
    QueryOf(p): QueryOf<AuditExportParams>,
) -> Result<Response, ApiError> {
    let filter = filter(p.user, p.since, p.until)?;
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
