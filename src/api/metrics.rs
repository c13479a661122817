//! The API's Prometheus metrics and its `GET /metrics`.
//!
//! HTTP metrics are labelled by the *matched route template* (`/api/v1/jobs/{id}`),
//! never the raw path, with `unmatched` for requests no route takes, and methods
//! outside the usual set as `other`: label sets stay bounded whatever clients send.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramVec, IntCounterVec, Registry};

use super::AppState;
use super::error::ApiError;
use crate::metrics::{self, LONG_BUCKETS, MetricsError};

/// The API's own metrics (the audit's are registered by [`crate::audit::Auditor`]).
#[derive(Clone)]
pub struct ApiMetrics {
    pub registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    jobs: JobMetrics,
}

/// What the job service measures.
#[derive(Clone)]
pub struct JobMetrics {
    created: IntCounterVec,
    sync_wait: HistogramVec,
}

impl JobMetrics {
    pub fn created(&self, operation: &str) {
        self.created.with_label_values(&[operation]).inc();
    }

    pub fn waited(&self, operation: &str, seconds: f64) {
        self.sync_wait
            .with_label_values(&[operation])
            .observe(seconds);
    }
}

impl ApiMetrics {
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        Ok(ApiMetrics {
            registry: registry.clone(),
            http_requests: metrics::counter_vec(
                registry,
                "osapi_http_requests_total",
                "HTTP requests answered, by matched route template, method and status.",
                &["route", "method", "status"],
            )?,
            http_duration: metrics::histogram_vec(
                registry,
                "osapi_http_request_duration_seconds",
                "Time to answer HTTP requests (until the response headers), by matched route template and method.",
                &["route", "method"],
                prometheus::DEFAULT_BUCKETS,
            )?,
            jobs: JobMetrics {
                created: metrics::counter_vec(
                    registry,
                    "osapi_jobs_created_total",
                    "Jobs created, by operation type.",
                    &["operation"],
                )?,
                sync_wait: metrics::histogram_vec(
                    registry,
                    "osapi_sync_wait_duration_seconds",
                    "Time synchronous requests waited for their job's results, by operation type.",
                    &["operation"],
                    LONG_BUCKETS,
                )?,
            },
        })
    }

    pub fn jobs(&self) -> JobMetrics {
        self.jobs.clone()
    }

    /// `osapi_nats_connected`, read from the client's state at each scrape.
    pub fn watch_nats(&self, client: async_nats::Client) -> Result<(), MetricsError> {
        metrics::scrape_gauge(
            &self.registry,
            "osapi_nats_connected",
            "1 while the API's NATS connection is up, 0 otherwise.",
            move || {
                f64::from(u8::from(
                    client.connection_state() == async_nats::connection::State::Connected,
                ))
            },
        )
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Middleware: count and time every request.
pub async fn measure(State(m): State<ApiMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    m.http_requests
        .with_label_values(&[route.as_str(), method, resp.status().as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// Prometheus metrics of this API server, text format.
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn serve(State(s): State<AppState>) -> Response {
    match metrics::render(&s.metrics.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn routes_are_counted_by_template_and_unmatched_stays_one_label() {
        let registry = Registry::new();
        let m = ApiMetrics::new(&registry).unwrap();
        let app = Router::new()
            .route("/jobs/{id}", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(m, measure));
        for path in ["/jobs/1", "/jobs/2", "/nope/1", "/nope/2"] {
            let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        let text = metrics::render(&registry).unwrap();
        assert!(
            text.contains(
                "osapi_http_requests_total{method=\"GET\",route=\"/jobs/{id}\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "osapi_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 2"
            ),
            "{text}"
        );
        assert!(!text.contains("/jobs/1"), "{text}");
    }
}
