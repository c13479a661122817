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

/// Every operation of the document, to adjust.
fn operations_mut(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// operationIds unique across the document (OpenAPI requires it; handlers'
/// function names repeat, e.g. `list`): `<tag>_<function>`, or the function name
/// alone when it already starts with its tag. Audit entries name operations by
/// these ids.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for op in operations_mut(openapi) {
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

/// Every error as the API sends it: `application/problem+json`, and every
/// status an operation can answer, from one rule instead of each handler's
/// own list (which drifted):
///
/// - bearer-protected: 401 (no or bad token), 403 (a permission missing),
///   503 (NATS unavailable);
/// - with path or query parameters, or a body: 400 (the field named);
/// - with a body: 413 (too large), 415 (not JSON);
/// - creating a job (answers 202 when asked to): 429 (the caller's jobs in
///   flight at the cap), 404 (no live agent for the target), 504 (no answer
///   within the wait).
struct ProblemResponses;

impl ProblemResponses {
    fn problem(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
            .into()
    }
}

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for op in operations_mut(openapi) {
            let responses = &mut op.responses.responses;
            // The errors handlers listed, as problem+json.
            for (status, response) in responses.iter_mut() {
                if status.parse::<u16>().is_ok_and(|code| code >= 400)
                    && let RefOr::T(r) = response
                {
                    *response = Self::problem(&r.description);
                }
            }
            let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_body = op.request_body.is_some();
            let creates_job = op.responses.responses.contains_key("202");
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| Self::problem(description));
            };
            if protected {
                add("401", "missing, invalid, expired or revoked bearer token");
                add(
                    "403",
                    "the token lacks the permission named in `permission`",
                );
                add("503", "NATS is unavailable");
            }
            if has_params || has_body {
                add("400", "invalid input; `field` names it");
            }
            if has_body {
                add("413", "request body too large");
                add("415", "request body is not JSON");
            }
            if creates_job {
                add("404", "no live agent matches the target");
                add(
                    "429",
                    "the caller's jobs in flight are at the cap; see Retry-After",
                );
                add(
                    "504",
                    "no host answered within the wait; `job_id` names the job",
                );
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
    modifiers(&BearerAuth, &UniqueOperationIds, &ProblemResponses),
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

    /// The statuses every handler could forget are in the document anyway,
    /// and every error is problem+json (schemathesis checks the live API
    /// against this in `scripts/conformance.sh`).
    #[test]
    fn every_error_status_is_documented_as_problem_json() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut protected = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for (status, r) in responses {
                    if status.parse::<u16>().is_ok_and(|code| code >= 400) {
                        assert!(
                            r["content"].get("application/problem+json").is_some(),
                            "{method} {path} {status}"
                        );
                    }
                }
                if op.get("security").is_some() {
                    protected += 1;
                    for status in ["401", "403", "503"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
                if op.get("requestBody").is_some() {
                    for status in ["400", "413", "415"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
                if responses.contains_key("202") {
                    for status in ["404", "429", "504"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
            }
        }
        assert!(protected > 20, "{protected}");
    }

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
