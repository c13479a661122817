//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers::{agents, jobs, node, system};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
            );
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
    ),
    components(schemas(crate::job::OperationRequest, crate::job::HostResult, crate::job::JobError)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
