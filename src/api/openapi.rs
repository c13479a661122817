//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers::{agents, audit, jobs, node, system};
use super::metrics;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
    }
}

/// operationIds unique across the document (OpenAPI requires it; handlers'
/// function names repeat, e.g. `list`): `<tag>_<function>`, or the function name
/// alone when it already starts with its tag. Audit entries name operations by
/// these ids.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut())
                    && *id != tag
                    && !id.starts_with(&format!("{tag}_"))
                {
                    *id = format!("{tag}_{id}");
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "OSAPI", description = "Manage Linux hosts as appliances: jobs over NATS JetStream, run by agents."),
    paths(
        system::health, system::ready, system::version, system::status,
        node::hostname, node::set_hostname, node::status, node::uptime, node::os, node::disk, node::memory, node::load,
        node::dns_get, node::dns_set, node::ping, node::exec, node::shell,
        jobs::create, jobs::list, jobs::get, jobs::remove, jobs::retry, jobs::stats,
        agents::list, agents::get,
        audit::list, audit::get, audit::export, metrics::serve,
    ),
    components(schemas(crate::job::OperationRequest, crate::job::HostResult, crate::job::JobError)),
    modifiers(&BearerAuth, &UniqueOperationIds),
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route_with_its_methods() {
        let doc = ApiDoc::openapi();
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json["openapi"].as_str().map(|v| v.starts_with("3.1")),
            Some(true)
        );
        let paths = json["paths"].as_object().unwrap();
        for (path, method) in [
            ("/health", "get"),
            ("/api/v1/node/hostname", "get"),
            ("/api/v1/node/hostname", "put"),
            ("/api/v1/network/dns/{interface}", "put"),
            ("/api/v1/command/exec", "post"),
            ("/api/v1/jobs", "post"),
            ("/api/v1/jobs/{id}/retry", "post"),
            ("/api/v1/agents/{hostname}", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing"
            );
        }
        assert!(json["components"]["securitySchemes"]["bearer"].is_object());
    }
}
