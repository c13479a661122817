//! HTTP handlers, one module per noun. Each only translates HTTP into an
//! [`Operation`](crate::job::Operation) or a store query and the answer back.

pub mod agents;
pub mod jobs;
pub mod node;
pub mod system;

use axum::http::HeaderMap;

/// The caller's W3C trace context, or a new one when the caller sent none.
pub(crate) fn traceparent(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|tp| super::service::trace_id_of(tp).is_some())
        .map(str::to_owned)
        .unwrap_or_else(new_traceparent)
}

fn new_traceparent() -> String {
    let trace: u128 = rand::random();
    let span: u64 = rand::random();
    format!("00-{trace:032x}-{span:016x}-01")
}
