//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use utoipa::IntoParams;
use utoipa::openapi::path::{
    HttpMethod as PathMethod, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema,
    SchemaType, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};

use super::handlers::operation::{INPUT_FLAGS, RunParams};
use super::handlers::{agents, audit, files, job_output, jobs, log, system};
use super::metrics;
use crate::job::{HttpMethod, OPERATIONS, OperationSpec, Schemas, schema_ref};
use crate::wire::{Accepted, JobOutcome};

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

/// The operation endpoints, one per row of the operation table: path and
/// query parameters, the body (the input without what the path names), and a
/// 200 whose results carry the operation's own result type. `POST /jobs`
/// takes any of them: its `OperationRequest` is one variant per operation,
/// each with that operation's data schema.
struct OperationPaths;

impl Modify for OperationPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut schemas = Schemas::new();
        let outcome = schema_ref::<JobOutcome>(&mut schemas);
        let host_result = schema_ref::<crate::job::HostResult>(&mut schemas);
        let accepted = schema_ref::<Accepted>(&mut schemas);
        let mut variants = OneOfBuilder::new().description(Some(
            "An operation: its `type` and, for operations with input, its `data`.",
        ));
        for spec in &OPERATIONS {
            let input = spec.input_schema.map(|f| f(&mut schemas));
            let result = (spec.result_schema)(&mut schemas);
            let outcome_name = format!("{}Outcome", camel(spec.name));
            schemas.push((
                outcome_name.clone(),
                typed_outcome(&outcome, &host_result, result, spec.name),
            ));
            let operation = endpoint(spec, input.as_ref(), &schemas, &outcome_name, &accepted);
            openapi
                .paths
                .add_path_operation(spec.path, vec![path_method(spec.method)], operation);
            variants = variants.item(job_variant(spec, input));
        }
        schemas.push(("OperationRequest".to_owned(), variants.into()));
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.extend(schemas);
    }
}

fn path_method(method: HttpMethod) -> PathMethod {
    match method {
        HttpMethod::Get => PathMethod::Get,
        HttpMethod::Put => PathMethod::Put,
        HttpMethod::Post => PathMethod::Post,
        HttpMethod::Delete => PathMethod::Delete,
    }
}

/// `node.hostname.get` → `NodeHostnameGet`.
fn camel(name: &str) -> String {
    name.split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A registered schema's own definition, by its reference.
fn definition<'a>(schemas: &'a Schemas, reference: &RefOr<Schema>) -> Option<&'a Schema> {
    let RefOr::Ref(r) = reference else {
        return None;
    };
    let name = r.ref_location.rsplit('/').next()?;
    schemas.iter().find_map(|(n, s)| match s {
        RefOr::T(schema) if n == name => Some(schema),
        _ => None,
    })
}

/// `JobOutcome` whose results' `data` is the operation's result.
fn typed_outcome(
    outcome: &RefOr<Schema>,
    host_result: &RefOr<Schema>,
    result: RefOr<Schema>,
    name: &str,
) -> RefOr<Schema> {
    let data = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(result);
    let typed_result = AllOfBuilder::new().item(host_result.clone()).item(
        ObjectBuilder::new()
            .property("data", data)
            .description(Some(format!("The `{name}` result of one host."))),
    );
    AllOfBuilder::new()
        .item(outcome.clone())
        .item(ObjectBuilder::new().property("results", ArrayBuilder::new().items(typed_result)))
        .description(Some(format!(
            "The answer of `{name}`: one result per host."
        )))
        .into()
}

/// The endpoint of one operation.
fn endpoint(
    spec: &OperationSpec,
    input: Option<&RefOr<Schema>>,
    schemas: &Schemas,
    outcome_name: &str,
    accepted: &RefOr<Schema>,
) -> utoipa::openapi::path::Operation {
    let input_object = input
        .and_then(|i| definition(schemas, i))
        .and_then(|s| match s {
            Schema::Object(o) => Some(o.clone()),
            _ => None,
        });
    let mut op = OperationBuilder::new()
        .operation_id(Some(spec.name.replace('.', "_")))
        .tag(spec.name.split('.').next().unwrap_or_default())
        .summary(Some(spec.about))
        .description(Some(format!(
            "Runs `{}` as a job on the targeted agents ({}).",
            spec.name,
            spec.permission.as_str()
        )))
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    for name in spec.path_params() {
        let field = input_object
            .as_ref()
            .and_then(|o| o.properties.get(name).cloned());
        op = op.parameter(
            ParameterBuilder::new()
                .description(field.as_ref().and_then(description_of))
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(
                    field.or_else(|| Some(ObjectBuilder::new().schema_type(Type::String).into())),
                ),
        );
    }
    let has_field = |name: &str| {
        input_object
            .as_ref()
            .is_some_and(|o| o.properties.contains_key(name))
    };
    for param in RunParams::into_params(|| Some(ParameterIn::Query)) {
        // `dry_run` and `force` only where the input has them.
        if !INPUT_FLAGS.contains(&param.name.as_str()) || has_field(&param.name) {
            op = op.parameter(param);
        }
    }
    // The input without the fields the path names: a `GET`'s query, else the body.
    let rest = input_object.as_ref().map(|object| {
        let mut object = object.clone();
        for name in spec.path_params() {
            object.properties.remove(name);
            object.required.retain(|r| r != name);
        }
        object
    });
    match (spec.method, rest, input) {
        (HttpMethod::Get | HttpMethod::Delete, Some(rest), _) => {
            for (name, schema) in rest.properties {
                if INPUT_FLAGS.contains(&name.as_str()) {
                    continue;
                }
                let required = rest.required.contains(&name);
                op = op.parameter(
                    ParameterBuilder::new()
                        .description(description_of(&schema))
                        .name(name)
                        .parameter_in(ParameterIn::Query)
                        .required(if required {
                            Required::True
                        } else {
                            Required::False
                        })
                        .schema(Some(schema)),
                );
            }
        }
        (HttpMethod::Get | HttpMethod::Delete, None, _) | (_, _, None) => {}
        (_, rest, Some(input)) => {
            let required = rest.as_ref().is_none_or(|r| !r.required.is_empty());
            let body = match rest {
                Some(rest) if spec.path_params().next().is_some() => RefOr::T(Schema::Object(rest)),
                _ => input.clone(),
            };
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(body)).build(),
                    )
                    .required(Some(if required {
                        Required::True
                    } else {
                        Required::False
                    }))
                    .build(),
            ));
        }
    }
    let json = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
    op.response(
        "200",
        ResponseBuilder::new()
            .description("every targeted host answered, or the wait ended")
            .content(
                "application/json",
                json(Ref::from_schema_name(outcome_name).into()),
            ),
    )
    .response(
        "202",
        ResponseBuilder::new()
            .description("`async=true`: the job was created; `Location` names it")
            .content("application/json", json(accepted.clone())),
    )
    .build()
}

/// A property's own description, for the parameter that carries it.
fn description_of(schema: &RefOr<Schema>) -> Option<String> {
    match schema {
        RefOr::T(Schema::Object(o)) => o.description.clone(),
        _ => None,
    }
}

/// One variant of `POST /jobs`' operation: `type` is the name, `data` the input.
fn job_variant(spec: &OperationSpec, input: Option<RefOr<Schema>>) -> ObjectBuilder {
    let type_name = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([spec.name]));
    let variant = ObjectBuilder::new()
        .title(Some(spec.name))
        .property("type", type_name)
        .required("type")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    match input {
        Some(data) => variant.property("data", data).required("data"),
        // Without input: `data` is absent, null or `{}`.
        None => variant.property(
            "data",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                .max_properties(Some(0)),
        ),
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
        system::health, system::ready, system::version, system::status, system::whoami,
        jobs::create, jobs::list, jobs::get, jobs::remove, jobs::retry, jobs::stats,
        job_output::output, job_output::cancel,
        agents::list, agents::get, agents::enrollment, agents::accept, agents::reject,
        audit::list, audit::get, audit::export, log::follow, metrics::serve,
        files::list, files::info, files::upload, files::remove,
    ),
    components(schemas(crate::job::HostResult, crate::job::JobError, crate::job::OutputRecord, crate::job::OutputChunk, crate::job::OutputCut, crate::job::OutputExit, crate::job::OutputEnd)),
    modifiers(&BearerAuth, &UniqueOperationIds, &OperationPaths, &ProblemResponses),
)]
pub struct ApiDoc;

/// The document as served, built on the first request: generating it runs
/// every modifier over every operation. Only its JSON is kept; the document
/// itself (many small strings and maps) would hold several times as much
/// memory for the API's whole life.
fn document_json() -> &'static [u8] {
    static JSON: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let json = serde_json::to_vec(&ApiDoc::openapi()).unwrap_or_default();
        crate::memory::trim_heap();
        json
    });
    &JSON
}

/// `GET /api/v1/openapi.json`
pub async fn document() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        document_json(),
    )
}

/// The API reference in Markdown (`docs/api.md`), rendered from the OpenAPI
/// document so the two cannot disagree: one section per path and method with
/// its summary, parameters, body and responses, then one per schema.
pub fn reference_markdown() -> String {
    let doc = serde_json::from_slice::<serde_json::Value>(document_json()).unwrap_or_default();
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
        // `["string", "null"]`: an optional value.
        (None, Some(Json::Array(types))) => types
            .iter()
            .map(text)
            .filter(|t| t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
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

    /// Every row of the operation table is an endpoint with its parameters,
    /// its typed answer, and a variant of `POST /jobs`.
    #[test]
    fn every_operation_is_documented_with_its_types() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for spec in &OPERATIONS {
            let method = format!("{:?}", spec.method).to_lowercase();
            let op = &doc["paths"][spec.path][&method];
            assert_eq!(
                op["operationId"],
                spec.name.replace('.', "_"),
                "{}",
                spec.name
            );
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for name in spec.path_params().chain(["target", "timeout", "async"]) {
                assert!(params.contains(&name), "{} {name}", spec.name);
            }
            let outcome = format!("{}Outcome", camel(spec.name));
            assert_eq!(
                op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
                format!("#/components/schemas/{outcome}")
            );
            assert!(schemas[&outcome].is_object(), "{outcome}");
            let has_body = op.get("requestBody").is_some();
            let takes_body = !matches!(spec.method, HttpMethod::Get | HttpMethod::Delete);
            assert_eq!(has_body, spec.input_schema.is_some() && takes_body);
        }
        let variants = schemas["OperationRequest"]["oneOf"].as_array().unwrap();
        let names: Vec<&str> = variants
            .iter()
            .map(|v| v["properties"]["type"]["enum"][0].as_str().unwrap())
            .collect();
        assert_eq!(names, crate::job::OPERATION_TYPES);
        // A body never repeats what the path names.
        let dns_set = &doc["paths"]["/api/v1/network/dns/{interface}"]["put"];
        let body = &dns_set["requestBody"]["content"]["application/json"]["schema"];
        assert!(body["properties"].get("interface").is_none(), "{body}");
        assert!(body["properties"].get("servers").is_some(), "{body}");
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
