//! Per-request tracing: continue the caller's W3C trace (or start one), run the
//! request inside a span carrying `trace_id`/`span_id` (so every log line, and
//! every journal entry, of the request has them), pass our context on in the
//! `traceparent` header the handlers forward to NATS, and log one line per request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::trace::TraceContext;

pub async fn trace_requests(mut req: Request, next: Next) -> Response {
    let ctx = TraceContext::continue_from(
        req.headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    if let Ok(v) = HeaderValue::from_str(&ctx.to_string()) {
        req.headers_mut().insert("traceparent", v);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        %method,
        %route,
        trace_id = %ctx.trace_id_hex(),
        span_id = %ctx.span_id_hex(),
        parent_span_id = %ctx.parent_span_id_hex(),
        status = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let resp = next.run(req).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::Span::current().record("status", resp.status().as_u16());
        tracing::info!(
            status = resp.status().as_u16(),
            duration_ms,
            "{method} {route}"
        );
        resp
    }
    .instrument(span)
    .await
}
