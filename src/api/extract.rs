//! Request extractors whose rejections are [`ApiError`]s, so malformed bodies and
//! queries get a problem+json 400/413/415 naming the field, never axum's plain text.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::job::Target;

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
/// also what the OpenAPI document lists: a parameter `T` does not know is
/// refused by name (typos are not ignored), and a bad value names its parameter.
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + utoipa::IntoParams> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default().as_bytes();
        let known: Vec<String> = T::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        if let Some((name, _)) =
            form_urlencoded::parse(query).find(|(name, _)| !known.iter().any(|k| k == name))
        {
            return Err(ApiError::invalid(
                name,
                format!("unknown query parameter (allowed: {})", known.join(", ")),
            ));
        }
        let params = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query));
        serde_path_to_error::deserialize(params)
            .map(QueryOf)
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "query".to_owned()
                } else {
                    path
                };
                ApiError::invalid(field, e.into_inner().to_string())
            })
    }
}

/// The configured body limit, put in request extensions so errors can state it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Query parameters, checked one by one so each error names its parameter.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e: QueryRejection| ApiError::invalid("query", e.body_text()))?;
        Ok(Params(map))
    }
}

/// Longest synchronous wait a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

impl Params {
    /// Refuse parameters the endpoint does not know, so typos are not ignored.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::invalid(
                k.clone(),
                format!("unknown query parameter (allowed: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    pub fn target(&self) -> Result<Target, ApiError> {
        match self.0.get("target") {
            Some(t) => Ok(t.parse()?),
            None => Ok(Target::Any),
        }
    }

    /// `timeout` as a human duration (`30s`) or whole seconds, 1s..=300s.
    pub fn timeout(&self) -> Result<Option<Duration>, ApiError> {
        let Some(raw) = self.0.get("timeout") else {
            return Ok(None);
        };
        let d = raw
            .parse::<u64>()
            .map(Duration::from_secs)
            .or_else(|_| humantime::parse_duration(raw))
            .map_err(|_| {
                ApiError::invalid("timeout", format!("{raw:?} is not a duration like 30s"))
            })?;
        if d.is_zero() || d > MAX_WAIT {
            return Err(ApiError::invalid("timeout", "must be between 1ms and 300s"));
        }
        Ok(Some(d))
    }

    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("{other:?} is not true or false"),
            )),
        }
    }

    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.0.get("limit") {
            None => Ok(default),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(
                    "limit",
                    format!("must be an integer between 1 and {max}"),
                )),
            },
        }
    }

    /// An opaque pagination cursor handed out by a previous page.
    pub fn cursor(&self) -> Result<Option<u64>, ApiError> {
        match self.0.get("cursor") {
            None => Ok(None),
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid("cursor", "not a cursor returned by a previous page")
                }),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}
