//! The operation endpoints: one handler serves every row of the operation
//! table ([`OPERATIONS`]). It reads the input from the path parameters and the
//! JSON body, and runs the operation as a job, synchronously or (`async=true`)
//! answering 202 and the job's URL.

use axum::Extension;
use std::sync::OnceLock;

use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use crate::api::AppState;
use crate::api::audit::CreatedJob;
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::api::extract::{MAX_WAIT, OptionalJsonBody, parse_query};
use crate::api::service::Submission;
use crate::job::{HttpMethod, OPERATIONS, Operation, OperationSpec, Target};
use crate::wire::{Accepted, JobOutcome};

/// The query parameters every operation endpoint takes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Which agents run it: `_any` (default), `_all`, a hostname or a `key:value` label.
    pub target: Option<String>,
    /// How long to wait for the hosts, e.g. `30s`, at most 300s (default
    /// `api.server.request_timeout`, longer for operations that run long).
    pub timeout: Option<String>,
    /// Answer 202 and the job's URL at once instead of waiting.
    #[serde(rename = "async", default, deserialize_with = "flag")]
    #[param(rename = "async")]
    pub async_: Option<bool>,
    /// Report what would change without changing it (operations with a dry run).
    #[serde(default, deserialize_with = "flag")]
    pub dry_run: Option<bool>,
    /// Also where a guard refuses without it (operations with a `force`).
    #[serde(default, deserialize_with = "flag")]
    pub force: Option<bool>,
}

impl RunParams {
    /// The input flags the query may set, by field name.
    fn input_flags(&self) -> [(&'static str, Option<bool>); 2] {
        [("dry_run", self.dry_run), ("force", self.force)]
    }
}

/// Query parameters that are fields of an operation's input, documented only
/// where the input has them.
pub(crate) const INPUT_FLAGS: [&str; 2] = ["dry_run", "force"];

/// A flag in a query: `true`, `1` or empty (`?async`) is on; `false` or `0` off.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match String::deserialize(d)?.as_str() {
        "true" | "1" | "" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        other => Err(serde::de::Error::custom(format!(
            "{other:?} is not true or false"
        ))),
    }
}

/// The names [`RunParams`] takes.
fn run_param_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        RunParams::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect()
    })
}

/// The query: [`RunParams`], and for a `GET` with input, the input's fields.
fn split_query(
    spec: &OperationSpec,
    query: Option<&str>,
) -> Result<(RunParams, Map<String, Value>), ApiError> {
    let mut run = form_urlencoded::Serializer::new(String::new());
    let mut input = Map::new();
    // A read's or a delete's input is its path and query: it has no body.
    let takes_input =
        matches!(spec.method, HttpMethod::Get | HttpMethod::Delete) && spec.input_schema.is_some();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if run_param_names().iter().any(|n| *n == name) {
            run.append_pair(&name, &value);
        } else if takes_input {
            input.insert(name.into_owned(), Value::String(value.into_owned()));
        } else {
            return Err(ApiError::invalid(
                name,
                format!(
                    "unknown query parameter (allowed: {})",
                    run_param_names().join(", ")
                ),
            ));
        }
    }
    Ok((parse_query(run.finish().as_bytes())?, input))
}

impl RunParams {
    fn target(&self) -> Result<Target, ApiError> {
        Ok(self.target.as_deref().unwrap_or("_any").parse()?)
    }

    /// `timeout` as a human duration (`30s`) or whole seconds, up to [`MAX_WAIT`].
    fn timeout(&self) -> Result<Option<std::time::Duration>, ApiError> {
        let Some(raw) = &self.timeout else {
            return Ok(None);
        };
        let d = crate::job::parse_duration(raw).map_err(|e| ApiError::invalid("timeout", e))?;
        if d > MAX_WAIT {
            return Err(ApiError::invalid("timeout", "must be between 1ms and 300s"));
        }
        Ok(Some(d))
    }
}

/// Each operation's route: its path and its method router (the caller adds
/// the permission guard).
pub(crate) fn routes() -> impl Iterator<Item = (&'static OperationSpec, MethodRouter<AppState>)> {
    OPERATIONS.iter().map(|spec| {
        let without_body = move |State(s): State<AppState>,
                                 Extension(who): Extension<Principal>,
                                 headers: HeaderMap,
                                 RawQuery(query): RawQuery,
                                 path: RawPathParams| async move {
            let body = Value::Null;
            run(spec, &s, &who, &headers, Request { query, path, body }).await
        };
        let with_body =
            move |State(s): State<AppState>,
                  Extension(who): Extension<Principal>,
                  headers: HeaderMap,
                  RawQuery(query): RawQuery,
                  path: RawPathParams,
                  OptionalJsonBody(body): OptionalJsonBody<Value>| async move {
                run(spec, &s, &who, &headers, Request { query, path, body }).await
            };
        let route = match spec.method {
            HttpMethod::Get => get(without_body),
            HttpMethod::Put => put(with_body),
            HttpMethod::Post => post(with_body),
            HttpMethod::Delete => delete(without_body),
        };
        (spec, route)
    })
}

/// What an operation's request carries besides the caller.
struct Request {
    query: Option<String>,
    path: RawPathParams,
    body: Value,
}

/// The operation `spec` names, from the path parameters, the query (a `GET`'s
/// input) and the body. Errors name fields as the caller wrote them
/// (`hostname`, `servers[0]`, `body`).
fn operation(
    spec: &OperationSpec,
    request: Request,
    params: &RunParams,
    query_input: Map<String, Value>,
) -> Result<Operation, ApiError> {
    let mut data = match request.body {
        Value::Null => query_input,
        Value::Object(fields) => fields,
        _ => return Err(ApiError::invalid("body", "must be a JSON object")),
    };
    // A flag the input does not have is refused by its parse, naming it.
    for (name, flag) in params.input_flags() {
        if flag == Some(true) {
            if spec.input_schema.is_none() {
                let reason = format!("{} takes no {name}", spec.name);
                return Err(ApiError::invalid(name, reason));
            }
            data.insert(name.to_owned(), Value::Bool(true));
        }
    }
    for (name, value) in &request.path {
        if data.contains_key(name) {
            return Err(ApiError::invalid(
                name,
                "is given in the path; leave it out of the body",
            ));
        }
        data.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    Operation::parse(spec.name, Value::Object(data)).map_err(|mut e| {
        e.field = match e.field.strip_prefix("operation.data") {
            Some("") => "body".to_owned(),
            Some(rest) => rest.trim_start_matches('.').to_owned(),
            None => e.field,
        };
        ApiError::InvalidInput(e)
    })
}

/// Run the operation for the caller with the request's `target`, `timeout`
/// and `async`.
async fn run(
    spec: &OperationSpec,
    state: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let (params, query_input) = split_query(spec, request.query.as_deref())?;
    let named = spec
        .path_params()
        .next()
        .zip(request.path.iter().next().map(|(_, name)| name.to_owned()));
    let op = operation(spec, request, &params, query_input)?;
    // The route checked the operation's permission; the request may need more.
    for extra in op.extra_permissions() {
        who.require(extra)?;
    }
    let target = params.target()?;
    let wait_async = params.async_.unwrap_or(false);
    // The default wait stretches for operations that legitimately run longer.
    let timeout = params.timeout()?.unwrap_or_else(|| {
        state
            .default_wait
            .max(state.jobs.min_deadline(&op, &target))
    });
    // An operation that names an object in its path (an interface): when no
    // answering host has it, the answer is a 404 naming it (SPEC §5) rather
    // than a 200 whose every result failed.
    let submission = Submission {
        operation: op,
        target,
        timeout,
        created_by: who.subject.clone(),
        traceparent: super::traceparent(headers),
        retry_of: None,
    };
    let (job, sub) = state.jobs.submit(submission, !wait_async).await?;
    let Some(sub) = sub else {
        return Ok(accepted(job.id));
    };
    let outcome: JobOutcome = state.jobs.wait(&job, sub).await?;
    if let Some((what, name)) = named.filter(|_| outcome.all_failed_with("not_found")) {
        let hosts: Vec<&str> = outcome
            .results
            .iter()
            .map(|r| r.hostname.as_str())
            .collect();
        return Err(ApiError::NotFoundOnHosts {
            what,
            name,
            hosts: hosts.join(", "),
            job_id: outcome.job_id.to_string(),
        });
    }
    let mut resp = axum::Json(outcome).into_response();
    resp.extensions_mut().insert(CreatedJob(job.id));
    Ok(resp)
}

pub(crate) fn accepted(id: uuid::Uuid) -> Response {
    let mut resp = (
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            job_id: id,
            status: crate::job::JobStatus::Submitted,
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.extensions_mut().insert(CreatedJob(id));
    resp
}
