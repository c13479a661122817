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

use std::convert::Infallible;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

/// A follow served as Server-Sent Events: each poll gives the next events
/// (waiting for them as it must), until it says it is done.
pub(crate) trait EventSource: Send + 'static {
    fn is_done(&self) -> bool;
    fn poll(&mut self) -> impl std::future::Future<Output = Vec<Event>> + Send;
}

/// `source`'s events as an SSE response (with keep-alives) that ends when
/// the source is done or the API stops (else the server would wait for it).
pub(crate) fn event_stream<S: EventSource>(
    source: S,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let events = futures::stream::unfold(source, |mut s| async move {
        if s.is_done() {
            return None;
        }
        let events = s.poll().await;
        Some((futures::stream::iter(events.into_iter().map(Ok)), s))
    });
    let events = futures::StreamExt::take_until(futures::StreamExt::flatten(events), stopped);
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// This request's W3C trace context. The tracing middleware always sets the
/// header (continuing the caller's trace or starting one), so it is read as is.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
