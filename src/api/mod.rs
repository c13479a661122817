//! The REST API (SPEC §5): authenticates, turns requests into jobs, waits for
//! results. It never touches the operating system.
//!
//! * [`router`] builds the whole API with each route's permission beside it;
//! * [`error`] is the one error → problem+json mapping;
//! * [`handlers`] translate HTTP to [`crate::job::Operation`] and back;
//! * [`service`] creates jobs and waits for them, free of HTTP;
//! * [`audit`] records one audit entry per request to a protected route, and
//!   [`metrics`] counts and times every request.

pub mod audit;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod metrics;
pub mod openapi;
pub mod quota;
pub mod service;
mod trace;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, delete, get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};

use self::audit::{AuditLayer, OperationIds, audit_requests};
use self::auth::{Authenticator, Guard, guard};
use self::error::{ApiError, Problem, problem_response};
use self::extract::BodyLimit;
use self::metrics::ApiMetrics;
use self::service::JobService;
use crate::audit::{AuditStore, Auditor};
use crate::bus::Names;
use crate::config::NatsConfig;
use crate::rbac::Permission;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub jobs: JobService,
    pub auth: Arc<Authenticator>,
    pub nats: async_nats::Client,
    pub names: Names,
    pub nats_config: Arc<NatsConfig>,
    pub started: Instant,
    /// How long domain endpoints wait when the caller gives no `timeout`
    /// (`api.server.request_timeout`).
    pub default_wait: Duration,
    /// Records an audit entry per request to a protected route.
    pub auditor: Auditor,
    /// The audit bucket, for the audit endpoints.
    pub audit: AuditStore,
    /// Agents asking to join, and the decisions about them.
    pub enrollment: crate::bus::EnrollmentStore,
    /// Files to deploy, in the bus's object store.
    pub files: crate::bus::FileStore,
    pub metrics: ApiMetrics,
    /// Turns true when the API stops: open streams (a log follow) end then,
    /// or the server would wait for them for ever.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// HTTP-level settings of the router.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; empty sends no CORS headers, `*` allows any.
    pub allow_origins: Vec<String>,
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::PUT, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([header::LOCATION]),
    )
}

/// Build the router.
pub fn router(state: AppState, http: &HttpOptions) -> Router {
    let max_body_bytes = http.max_body_bytes;
    use Permission::*;
    use handlers::{agents, audit, files, job_output, jobs, log, system};
    let auth = state.auth.clone();
    let auditing = AuditLayer {
        auth: state.auth.clone(),
        auditor: state.auditor.clone(),
        operations: Arc::new(OperationIds::of_api()),
    };
    // The audit layer wraps the guard, so refusals (401, 403) are audited too.
    let guarded = move |permission: Option<Permission>, route: MethodRouter<AppState>| {
        route
            .route_layer(from_fn_with_state(
                Guard {
                    auth: auth.clone(),
                    permission,
                },
                guard,
            ))
            .route_layer(from_fn_with_state(auditing.clone(), audit_requests))
    };
    let g = {
        let guarded = guarded.clone();
        move |permission: Permission, route| guarded(Some(permission), route)
    };
    let measured = state.metrics.clone();
    // The operations, from their table: one route per path, its methods merged.
    let mut operations: BTreeMap<&str, MethodRouter<AppState>> = BTreeMap::new();
    for (spec, route) in handlers::operation::routes() {
        let route = g(spec.permission, route);
        let route = match operations.remove(spec.path) {
            Some(other) => other.merge(route),
            None => route,
        };
        operations.insert(spec.path, route);
    }
    let router = operations
        .into_iter()
        .fold(Router::new(), |router, (path, route)| {
            router.route(path, route)
        });
    router
        .route("/health", get(system::health))
        .route("/health/ready", get(system::ready))
        .route("/metrics", get(metrics::serve))
        .route("/api/v1/version", get(system::version))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/health/status", g(HealthRead, get(system::status)))
        .route("/api/v1/auth/whoami", guarded(None, get(system::whoami)))
        .route(
            "/api/v1/jobs",
            g(JobRead, get(jobs::list)).merge(g(JobWrite, post(jobs::create))),
        )
        .route("/api/v1/jobs/stats", g(JobRead, get(jobs::stats)))
        .route(
            "/api/v1/jobs/{id}",
            g(JobRead, get(jobs::get)).merge(g(JobWrite, delete(jobs::remove))),
        )
        .route("/api/v1/jobs/{id}/retry", g(JobWrite, post(jobs::retry)))
        .route(
            "/api/v1/jobs/{id}/output",
            g(JobRead, get(job_output::output)),
        )
        .route(
            "/api/v1/jobs/{id}/cancel",
            g(CommandExecute, post(job_output::cancel)),
        )
        .route("/api/v1/agents", g(AgentRead, get(agents::list)))
        .route("/api/v1/agents/{hostname}", g(AgentRead, get(agents::get)))
        .route("/api/v1/enrollment", g(AgentRead, get(agents::enrollment)))
        .route(
            "/api/v1/enrollment/{agent}/accept",
            g(AgentWrite, post(agents::accept)),
        )
        .route(
            "/api/v1/enrollment/{agent}/reject",
            g(AgentWrite, post(agents::reject)),
        )
        .route("/api/v1/log/follow", g(LogRead, get(log::follow)))
        .route("/api/v1/files", g(FileRead, get(files::list)))
        .route(
            "/api/v1/files/{name}",
            g(FileRead, get(files::info))
                .merge(g(FileWrite, put(files::upload)))
                .merge(g(FileWrite, delete(files::remove))),
        )
        .route("/api/v1/audit", g(AuditRead, get(audit::list)))
        .route("/api/v1/audit/export", g(AuditRead, get(audit::export)))
        .route("/api/v1/audit/{id}", g(AuditRead, get(audit::get)))
        .merge(console::routes())
        .fallback(|| async {
            ApiError::NotFound {
                what: "route",
                name: String::new(),
            }
        })
        .method_not_allowed_fallback(|| async {
            problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &Problem {
                    type_uri: "https://osapi.dev/problems/method-not-allowed".into(),
                    title: "Method Not Allowed".into(),
                    status: 405,
                    detail: "this path does not accept that method".into(),
                    field: None,
                    permission: None,
                    job_id: None,
                },
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimit(max_body_bytes)))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            ApiError::Internal("the handler failed unexpectedly".into()).into_response_owned()
        }))
        .layer(from_fn_with_state(measured, metrics::measure))
        .layer(axum::middleware::from_fn(trace::trace_requests))
        .layer(tower::util::option_layer(cors(&http.allow_origins)))
        // Every answer is what its Content-Type says: no browser guesses
        // (the console shares this origin).
        .layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.headers_mut().insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                response
            },
        ))
        .with_state(state)
}

impl ApiError {
    fn into_response_owned(self) -> axum::response::Response {
        axum::response::IntoResponse::into_response(self)
    }
}
