//! Auditing in the router: the middleware every protected route carries, *outside*
//! its guard so refused requests (401, 403) are audited too; the route → OpenAPI
//! operationId table; and [`CreatedJob`], the response extension through which a
//! handler (or [`super::error`]) names the job a request created.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::Authenticator;
use crate::audit::{ANONYMOUS, AuditEntry, Auditor, bounded_path};
use crate::telemetry::trace::TraceContext;

/// Response extension: this request created job `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedJob(pub Uuid);

/// Route template and method → the OpenAPI operationId, built once from the
/// document so audit entries name operations exactly as the API reference does.
#[derive(Debug, Default)]
pub struct OperationIds(HashMap<(Method, String), String>);

impl OperationIds {
    pub fn from_doc(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut map = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
                (Method::OPTIONS, &item.options),
            ];
            for (method, op) in ops {
                if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                    map.insert((method, path.clone()), id);
                }
            }
        }
        OperationIds(map)
    }

    /// The API's own table.
    pub fn of_api() -> Self {
        // A document of its own, dropped once the ids are taken from it.
        Self::from_doc(&<super::openapi::ApiDoc as utoipa::OpenApi>::openapi())
    }

    pub fn get(&self, method: &Method, route: &str) -> Option<&str> {
        let found = |m: &Method| self.0.get(&(m.clone(), route.to_owned()));
        // axum answers HEAD with the GET handler.
        found(method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| found(&Method::GET))
                    .flatten()
            })
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the audit middleware needs.
#[derive(Clone)]
pub struct AuditLayer {
    pub auth: Arc<Authenticator>,
    pub auditor: Auditor,
    pub operations: Arc<OperationIds>,
}

/// An entry waiting for its response. Dropped unfinished — the client went away
/// and the request was cancelled — it is still recorded, with 499 (as nginx
/// names a request the client closed), so no audited request leaves no entry.
struct Pending {
    auditor: Auditor,
    entry: Option<AuditEntry>,
    started: Instant,
}

impl Pending {
    fn finish(&mut self, code: u16, job: Option<Uuid>) -> Option<AuditEntry> {
        let mut entry = self.entry.take()?;
        entry.response_code = code;
        entry.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        entry.job_id = job;
        Some(entry)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(entry) = self.finish(499, None) {
            let auditor = self.auditor.clone();
            // Outside any runtime (cannot happen in the server) there is nowhere to send it.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { auditor.record(entry).await });
            }
        }
    }
}

/// Middleware: record one audit entry for this request, whatever its outcome.
pub async fn audit_requests(State(a): State<AuditLayer>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path(), |u| u.0.path())
        .to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    // Identify, never enforce: the guard inside decides; a bad token is anonymous.
    // A verified principal is handed to the guard, so the token is checked once.
    let (user, roles) = match a.auth.authenticate(req.headers()) {
        Ok(p) => {
            let who = (p.subject.clone(), p.roles.clone());
            req.extensions_mut().insert(p);
            who
        }
        Err(_) => (ANONYMOUS.to_owned(), Vec::new()),
    };
    let entry = AuditEntry {
        id: Uuid::now_v7(),
        timestamp: OffsetDateTime::now_utc(),
        user,
        roles,
        method: method.to_string(),
        path: bounded_path(&path),
        operation_id: route
            .as_deref()
            .and_then(|r| a.operations.get(&method, r))
            .unwrap_or("unknown")
            .to_owned(),
        source_ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unix".to_owned(), |c| c.0.ip().to_string()),
        response_code: 0,
        duration_ms: 0,
        job_id: None,
        // The tracing middleware (outside) has set our traceparent.
        trace_id: req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse)
            .map(|t| t.trace_id_hex()),
        count: None,
        detail: None,
    };
    let mut pending = Pending {
        auditor: a.auditor.clone(),
        entry: Some(entry),
        started,
    };
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => {
            let job = resp.extensions().get::<CreatedJob>().map(|j| j.0);
            if let Some(entry) = pending.finish(resp.status().as_u16(), job) {
                a.auditor.record(entry).await;
            }
            resp
        }
        Err(panic) => {
            // The panic layer outside answers 500; record that, then let it.
            if let Some(entry) = pending.finish(500, None) {
                a.auditor.record(entry).await;
            }
            std::panic::resume_unwind(panic)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EntrySink;
    use crate::bus::BusError;
    use crate::rbac::{Permission, Roles};
    use crate::token::{TokenKey, now_unix};
    use axum::Router;
    use axum::body::Body;
    use axum::middleware::from_fn_with_state;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::sync::Mutex;
    use tower::ServiceExt;

    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<AuditEntry>>>);

    impl EntrySink for Memory {
        async fn put(&self, entry: &AuditEntry) -> Result<(), BusError> {
            self.0.lock().unwrap().push(entry.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn one_entry_per_request_whatever_the_outcome() {
        let key = TokenKey::new(b"unit-test-key-unit-test-key-0123".to_vec()).unwrap();
        let auth = Arc::new(Authenticator {
            key: key.clone(),
            roles: Roles::default(),
            revoked: crate::revocation::RevocationList::new(None),
        });
        let sink = Memory::default();
        let registry = prometheus::Registry::new();
        let (auditor, writer) = Auditor::start(sink.clone(), None, 100, &registry).unwrap();
        let layer = AuditLayer {
            auth: auth.clone(),
            auditor,
            operations: Arc::new(OperationIds::of_api()),
        };
        let job = Uuid::now_v7();
        let guarded = |route: axum::routing::MethodRouter| {
            route
                .route_layer(from_fn_with_state(
                    super::super::auth::Guard {
                        auth: auth.clone(),
                        permission: Some(Permission::JobRead),
                    },
                    super::super::auth::guard,
                ))
                .route_layer(from_fn_with_state(layer.clone(), audit_requests))
        };
        let app = Router::new()
            .route(
                "/api/v1/jobs/{id}",
                guarded(get(move || async move {
                    let mut r = "ok".into_response();
                    r.extensions_mut().insert(CreatedJob(job));
                    r
                })),
            )
            .route(
                "/api/v1/jobs",
                guarded(get(|| async {
                    if true {
                        panic!("handler bug");
                    }
                    "never"
                })),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::new());
        let now = now_unix();
        let admin = key.issue("alice", vec!["admin".into()], None, now, 60);
        let nobody = key.issue("bob", vec![], None, now, 60);
        let call = |path: &'static str, token: Option<String>| {
            let app = app.clone();
            async move {
                let mut req = axum::http::Request::get(path);
                if let Some(t) = token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
                resp.status().as_u16()
            }
        };
        assert_eq!(call("/api/v1/jobs/1", Some(admin.clone())).await, 200);
        assert_eq!(call("/api/v1/jobs/2", Some(nobody.clone())).await, 403);
        assert_eq!(call("/api/v1/jobs/3", Some(format!("{admin}x"))).await, 401);
        assert_eq!(call("/api/v1/jobs/4", None).await, 401);
        assert_eq!(call("/api/v1/jobs", Some(admin.clone())).await, 500);
        writer.finish(std::time::Duration::from_secs(5)).await;
        let got = sink.0.lock().unwrap().clone();
        let summary: Vec<(&str, &str, u16, Option<Uuid>)> = got
            .iter()
            .map(|e| (e.user.as_str(), e.path.as_str(), e.response_code, e.job_id))
            .collect();
        // The second failed authentication from the same source is counted
        // into an aggregate, recorded when its window closes (here: at stop).
        assert_eq!(
            summary,
            vec![
                ("alice", "/api/v1/jobs/1", 200, Some(job)),
                ("bob", "/api/v1/jobs/2", 403, None),
                ("anonymous", "/api/v1/jobs/3", 401, None),
                ("alice", "/api/v1/jobs", 500, None),
                ("anonymous", "/api/v1/jobs/4", 401, None),
            ]
        );
        assert_eq!(got[2].count, None);
        assert_eq!(got[4].count, Some(1));
        assert!(
            got.iter()
                .all(|e| e.source_ip == "unix" && e.method == "GET")
        );
        assert_eq!(got[0].operation_id, "jobs_get");
        assert_eq!(got[3].operation_id, "jobs_list");
        assert_eq!(got[0].roles, vec!["admin".to_owned()]);
        assert!(got[2].roles.is_empty());
        let text = format!("{got:?}");
        assert!(!text.contains(admin.rsplit('.').next().unwrap()));
    }

    #[test]
    fn every_documented_operation_has_a_unique_id() {
        let table = OperationIds::of_api();
        let doc = <super::super::openapi::ApiDoc as utoipa::OpenApi>::openapi();
        let operations: usize = doc
            .paths
            .paths
            .values()
            .map(|i| {
                [&i.get, &i.put, &i.post, &i.delete]
                    .iter()
                    .filter(|o| o.is_some())
                    .count()
            })
            .sum();
        assert_eq!(table.len(), operations);
        let mut ids: Vec<&String> = table.0.values().collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), operations, "operationIds must be unique");
        assert_eq!(
            table.get(&Method::GET, "/api/v1/jobs/{id}"),
            Some("jobs_get")
        );
        assert_eq!(
            table.get(&Method::DELETE, "/api/v1/jobs/{id}"),
            Some("jobs_remove")
        );
        assert_eq!(
            table.get(&Method::GET, "/api/v1/agents"),
            Some("agents_list")
        );
        assert_eq!(
            table.get(&Method::GET, "/api/v1/audit/export"),
            Some("audit_export")
        );
        assert_eq!(
            table.get(&Method::GET, "/api/v1/node/status"),
            Some("node_status_get")
        );
        assert_eq!(
            table.get(&Method::GET, "/api/v1/health/status"),
            Some("health_status")
        );
        assert_eq!(table.get(&Method::POST, "/api/v1/agents"), None);
        assert_eq!(
            table.get(&Method::HEAD, "/api/v1/agents"),
            Some("agents_list")
        );
    }
}
