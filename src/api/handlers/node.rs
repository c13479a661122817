//! Domain endpoints: node, network and command. Each builds an operation and runs
//! it as a job, synchronously or (`async=true`) returning 202 and the job's URL.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::audit::CreatedJob;
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Params};
use crate::api::service::Submission;
use crate::job::{CommandExec, CommandShell, DnsGet, DnsSet, HostnameSet, Operation, Ping};
use crate::wire::{Accepted, DnsBody, JobOutcome};

/// Run `op` for the caller with the request's `target`, `timeout` and `async`.
pub(crate) async fn run(
    state: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    params: &Params,
    op: Operation,
) -> Result<Response, ApiError> {
    params.only(&["target", "timeout", "async"])?;
    // Domain endpoints take the operation's data as the whole body: name fields as
    // the caller wrote them.
    op.validate().map_err(|mut e| {
        if let Some(f) = e.field.strip_prefix("operation.data.") {
            e.field = f.to_owned();
        }
        ApiError::InvalidInput(e)
    })?;
    let target = params.target()?;
    let wait_async = params.flag("async")?;
    // The default wait stretches for operations that legitimately run longer.
    let timeout = params.timeout()?.unwrap_or_else(|| {
        state
            .default_wait
            .max(state.jobs.min_deadline(&op, &target))
    });
    // DNS names an interface: when no answering host has it, the answer is a 404
    // naming it (SPEC §5) rather than a 200 whose every result failed.
    let interface = match &op {
        Operation::DnsGet(d) => Some(d.interface.clone()),
        Operation::DnsSet(d) => Some(d.interface.clone()),
        _ => None,
    };
    let submission = Submission {
        operation: op,
        target,
        timeout,
        created_by: who.subject.clone(),
        traceparent: super::traceparent(headers),
        retry_of: None,
    };
    let (job, sub) = state.jobs.submit(submission, !wait_async).await?;
    match sub {
        None => Ok(accepted(job.id)),
        Some(sub) => {
            let outcome: JobOutcome = state.jobs.wait(&job, sub).await?;
            if let Some(name) = interface.filter(|_| outcome.all_failed_with("not_found")) {
                let hosts: Vec<&str> = outcome
                    .results
                    .iter()
                    .map(|r| r.hostname.as_str())
                    .collect();
                return Err(ApiError::NotFoundOnHosts {
                    what: "interface",
                    name,
                    hosts: hosts.join(", "),
                    job_id: outcome.job_id.to_string(),
                });
            }
            let mut resp = axum::Json(outcome).into_response();
            resp.extensions_mut().insert(CreatedJob(job.id));
            Ok(resp)
        }
    }
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

macro_rules! query_endpoint {
    ($name:ident, $path:literal, $op:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(get, path = $path, tag = "node",
            params(("target" = Option<String>, Query, description = "_any (default), _all, a hostname or key:value"),
                   ("timeout" = Option<String>, Query, description = "synchronous wait, e.g. 30s (max 300s)"),
                   ("async" = Option<bool>, Query, description = "return 202 and the job id at once")),
            responses((status = 200, body = JobOutcome), (status = 202, body = Accepted), (status = 400, body = crate::api::error::Problem),
                      (status = 401, body = crate::api::error::Problem), (status = 403, body = crate::api::error::Problem),
                      (status = 404, body = crate::api::error::Problem), (status = 504, body = crate::api::error::Problem)),
            security(("bearer" = [])))]
        pub async fn $name(State(s): State<AppState>, Extension(who): Extension<Principal>, headers: HeaderMap, params: Params) -> Result<Response, ApiError> {
            run(&s, &who, &headers, &params, $op).await
        }
    };
}

query_endpoint!(
    hostname,
    "/api/v1/node/hostname",
    Operation::HostnameGet,
    "The host's hostname (node:read)."
);
query_endpoint!(
    status,
    "/api/v1/node/status",
    Operation::StatusGet,
    "Hostname, uptime, OS, load, memory and disks in one (node:read)."
);
query_endpoint!(
    uptime,
    "/api/v1/node/uptime",
    Operation::UptimeGet,
    "Uptime (node:read)."
);
query_endpoint!(
    os,
    "/api/v1/node/os",
    Operation::OsGet,
    "Operating system and kernel (node:read)."
);
query_endpoint!(
    disk,
    "/api/v1/node/disk",
    Operation::DiskGet,
    "Usage of each real mounted filesystem (node:read)."
);
query_endpoint!(
    memory,
    "/api/v1/node/memory",
    Operation::MemoryGet,
    "Memory and swap (node:read)."
);
query_endpoint!(
    load,
    "/api/v1/node/load",
    Operation::LoadGet,
    "Load averages (node:read)."
);

/// Set the hostname (node:write).
#[utoipa::path(put, path = "/api/v1/node/hostname", tag = "node", request_body = HostnameSet,
    responses((status = 200, body = JobOutcome), (status = 202, body = Accepted), (status = 400, body = crate::api::error::Problem)),
    security(("bearer" = [])))]
pub async fn set_hostname(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    params: Params,
    JsonBody(body): JsonBody<HostnameSet>,
) -> Result<Response, ApiError> {
    run(&s, &who, &headers, &params, Operation::HostnameSet(body)).await
}

/// DNS servers and search domains of an interface (network:read).
#[utoipa::path(get, path = "/api/v1/network/dns/{interface}", tag = "network",
    params(("interface" = String, Path, description = "interface name")),
    responses((status = 200, body = JobOutcome), (status = 400, body = crate::api::error::Problem),
              (status = 404, description = "no answering host has the interface", body = crate::api::error::Problem)),
    security(("bearer" = [])))]
pub async fn dns_get(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    params: Params,
    Path(interface): Path<String>,
) -> Result<Response, ApiError> {
    run(
        &s,
        &who,
        &headers,
        &params,
        Operation::DnsGet(DnsGet { interface }),
    )
    .await
}

/// Set an interface's DNS servers and search domains (network:write).
#[utoipa::path(put, path = "/api/v1/network/dns/{interface}", tag = "network", request_body = DnsBody,
    params(("interface" = String, Path, description = "interface name")),
    responses((status = 200, body = JobOutcome), (status = 400, body = crate::api::error::Problem),
              (status = 404, description = "no answering host has the interface", body = crate::api::error::Problem)),
    security(("bearer" = [])))]
pub async fn dns_set(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    params: Params,
    Path(interface): Path<String>,
    JsonBody(body): JsonBody<DnsBody>,
) -> Result<Response, ApiError> {
    let op = Operation::DnsSet(DnsSet {
        interface,
        servers: body.servers,
        search_domains: body.search_domains,
    });
    run(&s, &who, &headers, &params, op).await
}

/// ICMP echo from the agent (network:read).
#[utoipa::path(post, path = "/api/v1/network/ping", tag = "network", request_body = Ping,
    responses((status = 200, body = JobOutcome), (status = 400, body = crate::api::error::Problem)),
    security(("bearer" = [])))]
pub async fn ping(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    params: Params,
    JsonBody(body): JsonBody<Ping>,
) -> Result<Response, ApiError> {
    run(&s, &who, &headers, &params, Operation::Ping(body)).await
}

/// Run a program with arguments, no shell (command:execute).
#[utoipa::path(post, path = "/api/v1/command/exec", tag = "command", request_body = CommandExec,
    responses((status = 200, body = JobOutcome), (status = 400, body = crate::api::error::Problem)),
    security(("bearer" = [])))]
pub async fn exec(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    params: Params,
    JsonBody(body): JsonBody<CommandExec>,
) -> Result<Response, ApiError> {
    run(&s, &who, &headers, &params, Operation::CommandExec(body)).await
}

/// Run a command line with /bin/sh -c (command:execute).
#[utoipa::path(post, path = "/api/v1/command/shell", tag = "command", request_body = CommandShell,
    responses((status = 200, body = JobOutcome), (status = 400, body = crate::api::error::Problem)),
    security(("bearer" = [])))]
pub async fn shell(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    params: Params,
    JsonBody(body): JsonBody<CommandShell>,
) -> Result<Response, ApiError> {
    run(&s, &who, &headers, &params, Operation::CommandShell(body)).await
}
