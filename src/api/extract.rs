//! Request extractors whose rejections are [`ApiError`]s, so malformed bodies and
//! queries get a problem+json 400/413/415 naming the field, never axum's plain text.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body deserialised with the failing field's path in the error.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(JsonRejection::MissingJsonContentType(_)) => {
                return Err(ApiError::UnsupportedMediaType);
            }
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge { limit });
            }
            Err(rej) => return Err(ApiError::invalid("body", rej.body_text())),
        };
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(field_error)
    }
}

/// A JSON body that may be empty (then `T::default()`), with [`JsonBody`]'s
/// errors; a body that is there must say it is JSON, an empty one need not.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge { limit });
            }
            Err(rej) => return Err(ApiError::invalid("body", rej.body_text())),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !json_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("body", e.to_string()))?;
        serde_path_to_error::deserialize(value)
            .map(OptionalJsonBody)
            .map_err(field_error)
    }
}

/// A deserialisation error naming the field it is about (`body` for the whole).
fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let field = if path == "." { "body".to_owned() } else { path };
    ApiError::invalid(field, e.into_inner().to_string())
}

/// Query parameters deserialised into `T`, whose [`utoipa::IntoParams`] is
/// also what the OpenAPI document lists. `T` denies unknown fields, so a
/// parameter it does not know is refused by name (typos are not ignored), and
/// a bad value names its parameter.
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default().as_bytes()).map(QueryOf)
    }
}

/// A query string deserialised into `T`; a bad value names its parameter.
pub fn parse_query<T: DeserializeOwned>(query: &[u8]) -> Result<T, ApiError> {
    let params = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query));
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "query".to_owned()
        } else {
            path
        };
        ApiError::invalid(field, e.into_inner().to_string())
    })
}

/// The configured body limit, put in request extensions so errors can state it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Longest synchronous wait a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// Longest page a listing returns.
pub const MAX_PAGE: usize = 1000;
/// A listing's page when the caller gives no `limit`.
pub const DEFAULT_PAGE: usize = 50;

/// A listing's `limit`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
pub fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("must be an integer between 1 and {MAX_PAGE}"),
        )),
    }
}

/// A listing's `cursor`: what a previous page handed out (never 0).
pub fn page_cursor(cursor: Option<u64>) -> Result<Option<u64>, ApiError> {
    match cursor {
        Some(0) => Err(ApiError::invalid(
            "cursor",
            "not a cursor returned by a previous page",
        )),
        other => Ok(other),
    }
}
