//! The one place where errors become HTTP: every [`ApiError`] maps to a status and
//! an RFC 9457 `application/problem+json` body. The match is exhaustive, so a new
//! error cannot reach a client without a deliberate status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::bus::BusError;
use crate::enrollment::EnrollmentError;
use crate::job::{InvalidInput, InvalidTarget};
use crate::rbac::Permission;
use crate::token::TokenError;
pub use crate::wire::Problem;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidInput(#[from] InvalidInput),
    #[error("target: {0}")]
    InvalidTarget(#[from] InvalidTarget),
    #[error("missing bearer token")]
    MissingToken,
    #[error("{0}")]
    BadToken(#[from] TokenError),
    #[error("missing permission {0}")]
    Forbidden(Permission),
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    #[error("no live agent matches target {0:?}")]
    NoAgent(String),
    /// Every host that answered a job lacks the named object (e.g. an interface); the
    /// job exists and stays inspectable by its id.
    #[error("{what} {name:?} not found on {hosts}")]
    NotFoundOnHosts {
        what: &'static str,
        name: String,
        hosts: String,
        job_id: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("NATS is unavailable: {0}")]
    Unavailable(#[from] BusError),
    #[error("no host answered job {job_id} within {timeout_ms} ms")]
    WaitTimeout { job_id: String, timeout_ms: u64 },
    #[error(
        "you have {limit} jobs in flight, the most allowed (api.server.max_jobs_in_flight); \
         try again in {retry_after_secs} s"
    )]
    TooManyJobs { limit: usize, retry_after_secs: u64 },
    #[error("{0}")]
    Enrollment(#[from] crate::enrollment::EnrollmentError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidInput(InvalidInput::new(field, reason))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidInput(_) | ApiError::InvalidTarget(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingToken | ApiError::BadToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::NoAgent(_) => StatusCode::NOT_FOUND,
            ApiError::NotFoundOnHosts { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(BusError::Conflict(_)) => StatusCode::CONFLICT,
            // Stored data we cannot read is our fault, not a NATS outage to retry.
            ApiError::Unavailable(BusError::Corrupt { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::WaitTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooManyJobs { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Enrollment(e) => match e {
                EnrollmentError::NotFound { .. } => StatusCode::NOT_FOUND,
                EnrollmentError::Ambiguous { .. }
                | EnrollmentError::HostTaken { .. }
                | EnrollmentError::BadSignature(_)
                | EnrollmentError::BadName(_)
                | EnrollmentError::NotAUserKey(_) => StatusCode::CONFLICT,
                EnrollmentError::Sign => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::InvalidInput(_) => "invalid-input",
            ApiError::InvalidTarget(_) => "invalid-target",
            ApiError::MissingToken => "missing-token",
            ApiError::BadToken(_) => "invalid-token",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound { .. } => "not-found",
            ApiError::NoAgent(_) => "no-agent",
            ApiError::NotFoundOnHosts { .. } => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge { .. } => "too-large",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::Unavailable(BusError::Conflict(_)) => "conflict",
            ApiError::Unavailable(BusError::Corrupt { .. }) => "corrupt-data",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::WaitTimeout { .. } => "timeout",
            ApiError::TooManyJobs { .. } => "too-many-jobs",
            ApiError::Enrollment(EnrollmentError::NotFound { .. }) => "not-found",
            ApiError::Enrollment(EnrollmentError::Sign) => "internal",
            ApiError::Enrollment(_) => "conflict",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        Problem {
            type_uri: format!("https://osapi.dev/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            field: match self {
                ApiError::InvalidInput(e) => Some(e.field.clone()),
                ApiError::InvalidTarget(_) => Some("target".to_owned()),
                _ => None,
            },
            permission: match self {
                ApiError::Forbidden(p) => Some(p.to_string()),
                _ => None,
            },
            job_id: match self {
                ApiError::WaitTimeout { job_id, .. } | ApiError::NotFoundOnHosts { job_id, .. } => {
                    Some(job_id.clone())
                }
                _ => None,
            },
        }
    }
}

/// A problem+json response with the given status and body.
pub fn problem_response(status: StatusCode, body: &Problem) -> Response {
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "request failed");
        }
        let problem = self.to_problem();
        let mut resp = problem_response(status, &problem);
        // The request created a job before it failed (e.g. a 504): the audit
        // entry names it.
        if let Some(job) = problem.job_id.as_deref().and_then(|j| j.parse().ok()) {
            resp.extensions_mut().insert(super::audit::CreatedJob(job));
        }
        if let ApiError::TooManyJobs {
            retry_after_secs, ..
        } = &self
        {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(*retry_after_secs.max(&1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_names_the_permission() {
        let p = ApiError::Forbidden(Permission::AuditRead).to_problem();
        assert_eq!(p.status, 403);
        assert_eq!(p.permission.as_deref(), Some("audit:read"));
        assert!(p.detail.contains("audit:read"));
    }

    #[test]
    fn missing_interface_is_404_with_the_job() {
        let p = ApiError::NotFoundOnHosts {
            what: "interface",
            name: "eth9".into(),
            hosts: "web-01".into(),
            job_id: "j1".into(),
        }
        .to_problem();
        assert_eq!((p.status, p.job_id.as_deref()), (404, Some("j1")));
        assert_eq!(p.detail, "interface \"eth9\" not found on web-01");
    }

    #[test]
    fn invalid_input_names_the_field() {
        let p = ApiError::invalid("operation.type", "unknown").to_problem();
        assert_eq!(
            (p.status, p.field.as_deref()),
            (400, Some("operation.type"))
        );
    }
}
