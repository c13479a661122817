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
        agents::list, agents::get, agents::enrollment, agents::accept, agents::reject,
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

/// The API reference in Markdown (`docs/api.md`), rendered from the OpenAPI
/// document so the two cannot disagree: one section per path and method with
/// its summary, parameters, body and responses, then one per schema.
pub fn reference_markdown() -> String {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let mut out = format!(
        "# API reference\n\nGenerated from the OpenAPI document the API serves at \
         `GET /api/v1/openapi.json` (version {}); do not edit: `osapi generate-docs DIR` \
         writes it as `DIR/api.md`. Errors are `application/problem+json` (`type`, \
         `title`, `status`, `detail`, and `field`, `permission` or `job_id` when they \
         apply). Endpoints marked *bearer* need `Authorization: Bearer <JWT>`; the \
         permission each needs is in its description.\n",
        text(&doc["info"]["version"])
    );
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if let Some(op) = item.get(method) {
                write_operation(&mut out, method, path, op);
            }
        }
    }
    out.push_str("\n# Schemas\n");
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        write_schema(&mut out, name, schema);
    }
    out
}

type Json = serde_json::Value;

fn text(v: &Json) -> String {
    v.as_str().unwrap_or_default().trim().to_owned()
}

/// `": description"`, or nothing when there is none.
fn described(v: &Json) -> String {
    match text(&v["description"]) {
        d if d.is_empty() => String::new(),
        d => format!(": {}", d.replace('\n', " ")),
    }
}

/// The schema's name (`#/components/schemas/Created` → `Created`), or an
/// inline schema's type; `v` may be a parameter, body or response around it.
fn schema_name(v: &Json) -> String {
    let schema = v
        .pointer("/content/application~1json/schema")
        .or_else(|| v.get("schema"))
        .unwrap_or(v);
    // A nullable reference is `oneOf: [{type: null}, {$ref: …}]`.
    let reference = schema.get("$ref").or_else(|| {
        ["oneOf", "anyOf"]
            .iter()
            .filter_map(|k| schema.get(*k)?.as_array())
            .flatten()
            .find_map(|v| v.get("$ref"))
    });
    match (reference, schema.get("type")) {
        (Some(r), _) => text(r).rsplit('/').next().unwrap_or_default().to_owned(),
        (None, Some(t)) if t.is_string() => text(t),
        _ => String::new(),
    }
}

fn write_operation(out: &mut String, method: &str, path: &str, op: &Json) {
    use std::fmt::Write;
    let _ = writeln!(out, "\n## `{} {path}`\n", method.to_uppercase());
    for line in [text(&op["summary"]), text(&op["description"])] {
        if !line.is_empty() {
            let _ = writeln!(out, "{line}\n");
        }
    }
    let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
    let _ = writeln!(
        out,
        "- operation id: `{}`; auth: {}",
        text(&op["operationId"]),
        if secured { "bearer" } else { "none" }
    );
    for param in op["parameters"].as_array().into_iter().flatten() {
        let required = param["required"].as_bool() == Some(true);
        let _ = writeln!(
            out,
            "- {} parameter `{}` ({}, {}){}",
            text(&param["in"]),
            text(&param["name"]),
            schema_name(param),
            if required { "required" } else { "optional" },
            described(param)
        );
    }
    if let Some(body) = op.get("requestBody") {
        let required = body["required"].as_bool() == Some(true);
        let _ = writeln!(
            out,
            "- request body: `{}`{}",
            schema_name(body),
            if required { "" } else { " (optional)" }
        );
    }
    if let Some(responses) = op["responses"].as_object() {
        let codes: Vec<String> = responses
            .iter()
            .map(|(code, r)| match schema_name(r) {
                n if n.is_empty() => code.clone(),
                n => format!("{code} `{n}`"),
            })
            .collect();
        let _ = writeln!(out, "- responses: {}", codes.join(", "));
    }
}

fn write_schema(out: &mut String, name: &str, schema: &Json) {
    use std::fmt::Write;
    let _ = writeln!(out, "\n## `{name}`\n");
    let description = text(&schema["description"]);
    if !description.is_empty() {
        let _ = writeln!(out, "{description}\n");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .collect();
    let properties = schema["properties"].as_object();
    for (field, prop) in properties.into_iter().flatten() {
        let kind = match (schema_name(prop), prop.get("type")) {
            (k, _) if !k.is_empty() => k,
            // ["string", "null"] and the like.
            (_, Some(Json::Array(t))) => t.iter().map(text).collect::<Vec<_>>().join(" or "),
            _ => "object".to_owned(),
        };
        let _ = writeln!(
            out,
            "- `{field}` ({kind}{}){}",
            if required.contains(&field.as_str()) {
                ", required"
            } else {
                ""
            },
            described(prop)
        );
    }
    if properties.is_none() {
        // An enum: plain, or one variant per documented value.
        let variants = schema["oneOf"].as_array().into_iter().flatten();
        for values in variants.chain([schema]).map(|v| &v["enum"]) {
            let values: Vec<String> = values
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("`{}`", text(v)))
                .collect();
            if !values.is_empty() {
                let _ = writeln!(out, "- one of {}", values.join(", "));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/api.md` is what the code says today; after changing an endpoint,
    /// run `cargo run --bin osapi -- generate-docs target/docs` and copy
    /// `target/docs/api.md` to `docs/`.
    #[test]
    fn the_committed_api_reference_is_current() {
        let committed = include_str!("../../docs/api.md");
        assert!(
            committed == reference_markdown(),
            "docs/api.md is stale: regenerate it with `cargo run --bin osapi -- generate-docs target/docs && cp target/docs/api.md docs/`"
        );
        for route in [
            "## `GET /api/v1/node/hostname`",
            "## `POST /api/v1/jobs/{id}/retry`",
        ] {
            assert!(committed.contains(route), "{route}");
        }
    }

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
