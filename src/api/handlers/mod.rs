//! HTTP handlers, one module per noun. Each only translates HTTP into an
//! [`Operation`](crate::job::Operation) or a store query and the answer back.

pub mod agents;
pub mod audit;
pub mod files;
pub mod job_output;
pub mod jobs;
pub mod log;
pub mod operation;
pub mod system;

use axum::http::HeaderMap;

/// This request's W3C trace context. The tracing middleware always sets the
/// header (continuing the caller's trace or starting one), so it is read as is.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
