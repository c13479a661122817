//! HTTP handlers, one module per noun. Each only translates HTTP into an
//! [`Operation`](crate::job::Operation) or a store query and the answer back.

pub mod agents;
pub mod audit;
pub mod jobs;
pub mod node;
pub mod system;

use axum::http::HeaderMap;

/// This request's W3C trace context, as set by the tracing middleware (which
/// continues the caller's trace or starts one).
pub(crate) fn traceparent(headers: &HeaderMap) -> String {
    let header = headers.get("traceparent").and_then(|v| v.to_str().ok());
    crate::telemetry::trace::TraceContext::parse(header.unwrap_or_default())
        .unwrap_or_else(|| crate::telemetry::trace::TraceContext::continue_from(header))
        .to_string()
}
