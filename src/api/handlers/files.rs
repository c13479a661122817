//! `/api/v1/files`: the file store. Uploads go into the bus's object store
//! (file:write); listing and reading a file's info need file:read. Deploying
//! a stored file to hosts is an operation (`file.deploy`), run by agents.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::auth::Principal;
use crate::api::error::{ApiError, Problem};
use crate::bus::{StoredFile, Uploaded};
use crate::job::{MAX_FILE_BYTES, check_file_name};
use crate::wire::FileList;

fn checked(name: &str) -> Result<(), ApiError> {
    check_file_name(name).map_err(ApiError::InvalidInput)
}

/// Store a file under `name` (file:write): the body is its content, at most
/// 16 MiB. 201 when stored, 200 when the same bytes were there already.
#[utoipa::path(put, path = "/api/v1/files/{name}", tag = "files",
    params(("name" = String, Path, description = "The name to store it under, e.g. `motd`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's content"),
    responses((status = 201, body = Uploaded), (status = 200, body = Uploaded), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    checked(&name)?;
    let bytes = axum::body::to_bytes(body, MAX_FILE_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge {
            limit: MAX_FILE_BYTES,
        })?;
    let uploaded = s.files.put(&name, &bytes, &who.subject).await?;
    let status = if uploaded.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(uploaded)).into_response())
}

/// Every stored file (file:read).
#[utoipa::path(get, path = "/api/v1/files", tag = "files",
    responses((status = 200, body = FileList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>) -> Result<axum::Json<FileList>, ApiError> {
    Ok(axum::Json(FileList {
        files: s.files.list().await?,
    }))
}

/// One stored file's size, SHA-256 and uploader (file:read).
#[utoipa::path(get, path = "/api/v1/files/{name}", tag = "files", params(("name" = String, Path)),
    responses((status = 200, body = StoredFile), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn info(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<StoredFile>, ApiError> {
    checked(&name)?;
    s.files
        .info(&name)
        .await?
        .map(axum::Json)
        .ok_or(ApiError::NotFound {
            what: "stored file",
            name,
        })
}

/// Remove a stored file (file:write); copies deployed to hosts stay.
#[utoipa::path(delete, path = "/api/v1/files/{name}", tag = "files", params(("name" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    checked(&name)?;
    if s.files.delete(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            what: "stored file",
            name,
        })
    }
}
