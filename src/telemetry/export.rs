//! Span export (`telemetry.tracing`): the spans that carry a W3C trace context —
//! the API's `request` spans and the agent's `job` spans — are recorded with
//! their timing and fields and written as JSON lines to stdout, or sent to an
//! OpenTelemetry collector as OTLP/HTTP JSON (`<endpoint>/v1/traces`).
//!
//! Deliberately small instead of the OpenTelemetry SDK: we export two kinds of
//! span whose ids we already manage, and the SDK with its OTLP exporter would
//! be the heaviest dependency of the build.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Spans waiting for export; beyond this they are dropped (and counted in the log).
const QUEUE: usize = 4096;
const BATCH: usize = 256;

/// Where finished spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanSink {
    Stdout,
    /// OTLP/HTTP JSON to this base URL (`http://collector:4318`).
    Otlp(String),
}

/// A finished span, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

struct Open {
    start: SystemTime,
    fields: Fields,
}

/// The tracing layer that records spans with a trace context.
pub struct SpanExportLayer {
    tx: mpsc::Sender<FinishedSpan>,
}

/// Build the layer and the task that exports what it records; spawn the task
/// once a tokio runtime runs (spans recorded before then wait in the queue).
pub fn span_exporter(
    sink: SpanSink,
    service: &str,
) -> (SpanExportLayer, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (
        SpanExportLayer { tx },
        export_loop(rx, sink, service.to_owned()),
    )
}

impl<S> tracing_subscriber::Layer<S> for SpanExportLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if !(fields.0.contains_key("trace_id") && fields.0.contains_key("span_id")) {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Open {
                start: SystemTime::now(),
                fields,
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(open) = span.extensions_mut().get_mut::<Open>()
        {
            values.record(&mut open.fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(Open { start, fields }) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let mut attributes = fields.0;
        let take =
            |attrs: &mut BTreeMap<String, String>, k: &str| attrs.remove(k).unwrap_or_default();
        let finished = FinishedSpan {
            name: span.name().to_owned(),
            trace_id: take(&mut attributes, "trace_id"),
            span_id: take(&mut attributes, "span_id"),
            parent_span_id: take(&mut attributes, "parent_span_id"),
            start,
            end: SystemTime::now(),
            attributes,
        };
        if self.tx.try_send(finished).is_err() {
            // Never block or fail the traced work because the exporter lags.
            eprintln!("osapi: span export queue full; dropping a span");
        }
    }
}

fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// One JSON line per span for the stdout exporter.
pub fn to_json_line(s: &FinishedSpan) -> Value {
    json!({
        "name": s.name,
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "start_unix_nano": unix_nanos(s.start).to_string(),
        "end_unix_nano": unix_nanos(s.end).to_string(),
        "duration_ms": s.end.duration_since(s.start).unwrap_or_default().as_secs_f64() * 1000.0,
        "attributes": s.attributes,
    })
}

/// An OTLP/JSON `ExportTraceServiceRequest` for a batch of spans.
pub fn to_otlp(service: &str, spans: &[FinishedSpan]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": s.name,
                // SERVER for an API request, CONSUMER for a job taken from the bus.
                "kind": if s.name == "job" { 5 } else { 2 },
                "startTimeUnixNano": unix_nanos(s.start).to_string(),
                "endTimeUnixNano": unix_nanos(s.end).to_string(),
                "attributes": s.attributes.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>(),
            });
            if !s.parent_span_id.is_empty() {
                span["parentSpanId"] = json!(s.parent_span_id);
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "osapi", "version": crate::VERSION}, "spans": spans}],
    }]})
}

async fn export_loop(mut rx: mpsc::Receiver<FinishedSpan>, sink: SpanSink, service: String) {
    let http = match &sink {
        SpanSink::Otlp(_) => {
            crate::tls::install_ring_provider();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .ok()
        }
        SpanSink::Stdout => None,
    };
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        match (&sink, &http) {
            (SpanSink::Stdout, _) => {
                for s in &batch {
                    println!("{}", to_json_line(s));
                }
            }
            (SpanSink::Otlp(endpoint), Some(http)) => {
                let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
                match http
                    .post(&url)
                    .json(&to_otlp(&service, &batch))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        tracing::warn!(status = r.status().as_u16(), %url, "OTLP collector refused spans")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %url, "cannot send spans to the OTLP collector")
                    }
                }
            }
            (SpanSink::Otlp(_), None) => {}
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> FinishedSpan {
        FinishedSpan {
            name: "request".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_span_id: "1111111111111111".into(),
            start: UNIX_EPOCH + Duration::from_secs(1),
            end: UNIX_EPOCH + Duration::from_millis(1500),
            attributes: BTreeMap::from([("route".into(), "/api/v1/jobs".into())]),
        }
    }

    #[test]
    fn otlp_json_has_the_protocol_shape() {
        let v = to_otlp("osapi-api", &[span()]);
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["parentSpanId"], "1111111111111111");
        assert_eq!(s["startTimeUnixNano"], "1000000000");
        assert_eq!(s["endTimeUnixNano"], "1500000000");
        assert_eq!(s["attributes"][0]["value"]["stringValue"], "/api/v1/jobs");
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "osapi-api"
        );
    }

    #[test]
    fn stdout_line_carries_ids_and_duration() {
        let v = to_json_line(&span());
        assert_eq!(v["duration_ms"], 500.0);
        assert_eq!(v["span_id"], "00f067aa0ba902b7");
    }
}
