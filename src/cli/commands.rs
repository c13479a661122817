//! Each command: build the request, send it, print the answer, decide the exit
//! status. Domain commands build a typed [`Operation`] first so bad input is
//! refused locally with the server's own rules (exit 2) and the confirmation
//! rule can ask the operation's kind.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::args::{
    AgentCommand, AuditCommand, AuditFilter, Commands, Global, HealthCommand, JobCommand, JobSpec,
    OperationCommand, OutputFormat, StoreCommand,
};
use super::client::{Client, Request, decode};
use super::confirm::confirm;
use super::error::{CliError, Status};
use super::output::{self, emit};
use super::progress::{self, Progress};
use crate::bus::{StoredFile, Uploaded};
use crate::config::MAX_AGENT_COMMAND_TIMEOUT;
use crate::enrollment::EnrollmentView;
use crate::job::{
    DEFAULT_COMMAND_TIMEOUT, Expected, HttpMethod, InvalidInput, Operation, check_file_name,
};
use crate::retry::Backoff;
use crate::wire::{
    Accepted, AgentInfo, AgentList, Created, EnrollmentList, FileList, Health, HealthStatus,
    JobDetail, JobList, JobOutcome, JobStats, Version,
};

/// The server's default synchronous wait (SPEC §5).
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The server's default deadline of a job created through `POST /jobs`.
const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a follow waits for an API that stopped answering.
const RECONNECT_FOR: Duration = Duration::from_secs(60);
/// Extra time on top of the server's wait before the client gives up itself:
/// the server answers 504 on its own deadline, which is the better message.
const HTTP_GRACE: Duration = Duration::from_secs(15);

/// What every command needs.
pub(super) struct Ctx {
    pub global: Global,
    pub client: Client,
}

impl Ctx {
    fn format(&self) -> OutputFormat {
        self.global.output
    }

    /// A note for people on stderr, in table mode only (machine formats stay quiet).
    fn note(&self, text: &str) {
        if self.format() == OutputFormat::Table {
            eprintln!("{text}");
        }
    }
}

pub(super) async fn dispatch(ctx: &Ctx, cmd: Commands) -> Result<Status, CliError> {
    match cmd {
        Commands::Operation(OperationCommand::Run(op)) => operation(ctx, op).await,
        Commands::Operation(OperationCommand::Follow(op)) => follow_command(ctx, op).await,
        Commands::Operation(OperationCommand::Store(c)) => store(ctx, c).await,
        Commands::Job(c) => job(ctx, c).await,
        Commands::Agent(c) => agent(ctx, c).await,
        Commands::Audit(c) => audit(ctx, c).await,
        Commands::Health { check } => health(ctx, check).await,
        Commands::Metrics => metrics(ctx).await,
        Commands::Version => version(ctx).await,
        // Handled before settings are resolved; kept total for the compiler.
        Commands::Completions { shell } => {
            let mut out = Vec::new();
            super::args::completions(shell, &mut out);
            output::print(&String::from_utf8_lossy(&out))?;
            Ok(Status::Ok)
        }
    }
}

// ---------------------------------------------------------------------------
// Domain commands
// ---------------------------------------------------------------------------

/// An operation's endpoint, from its row in the operation table: the fields
/// the path names go in the path, the rest of the input is the body.
async fn operation(ctx: &Ctx, mut op: Operation) -> Result<Status, CliError> {
    // A password is asked for here and hashed before the request leaves.
    if let Operation::UserPasswordSet(p) = &mut op
        && p.hash.is_none()
        && p.password.is_none()
    {
        p.password = Some(super::confirm::read_password(&p.name)?);
        op.validate().map_err(|e| bad_input(e, ""))?;
        op.seal().map_err(|e| bad_input(e, ""))?;
    }
    if let Operation::LogGet(q) = &op
        && q.follow
    {
        return follow_log(ctx, &op).await;
    }
    let req = operation_request(&op);
    domain(ctx, op, req).await
}

/// An operation's request: the fields its path names go in the path, the
/// rest is the query (a read, a delete) or the body.
fn operation_request(op: &Operation) -> Request {
    let spec = op.spec();
    let mut data = match op.to_request().data {
        Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    let mut path = spec.path.to_owned();
    for name in spec.path_params() {
        // A path names text (a unit) or a number (a pid).
        let value = match data.remove(name) {
            Some(Value::String(s)) => s,
            Some(other @ Value::Number(_)) => other.to_string(),
            _ => String::new(),
        };
        path = path.replace(&format!("{{{name}}}"), &path_segment(&value));
    }
    match spec.method {
        // A read's or a delete's input is its query.
        HttpMethod::Get | HttpMethod::Delete => {
            let method = match spec.method {
                HttpMethod::Get => Method::GET,
                _ => Method::DELETE,
            };
            with_query(Request::new(method, path), data)
        }
        HttpMethod::Put => Request::new(Method::PUT, path).json(Value::Object(data)),
        HttpMethod::Post => Request::new(Method::POST, path).json(Value::Object(data)),
    }
}

/// `command exec|shell --follow`: the job created without waiting, its
/// output printed as it comes, and the exit status of its end.
async fn follow_command(ctx: &Ctx, op: Operation) -> Result<Status, CliError> {
    op.validate().map_err(|e| bad_input(e, ""))?;
    let g = &ctx.global;
    confirm(op.kind(), op.type_name(), &g.target, g.yes)?;
    let mut req = operation_request(&op)
        .query("target", g.target.clone())
        .query("async", "true");
    if let Some(t) = g.timeout {
        req = req.query("timeout", duration_param(t));
    }
    let raw = ctx.client.json(&req).await?;
    let accepted: Accepted = decode(&raw, "accepted job")?;
    // Several hosts may answer: each line says whose it is.
    let several = g.target == "_all" || g.target.contains(':');
    follow_output(ctx, accepted.job_id, several, true).await
}

/// Prints a job's output (`follow`: until the job ends, else what there is
/// now); Ctrl-C asks whether to cancel the job. The exit status is the
/// job's once it ended.
async fn follow_output(
    ctx: &Ctx,
    id: Uuid,
    several: bool,
    follow: bool,
) -> Result<Status, CliError> {
    let json = ctx.format() != OutputFormat::Table;
    let mut printer =
        output::OutputPrinter::new(json, several, std::io::stdout(), std::io::stderr());
    let mut backoff = Backoff::between(Duration::from_millis(250), Duration::from_secs(2));
    // Since when the API has not answered (a reconnect gives up after a while).
    let mut lost_since: Option<Instant> = None;
    loop {
        let mut req =
            Request::get(format!("{}/output", job_path(id))).query("follow", follow.to_string());
        if let Some(last) = printer.last_id() {
            req = req.query("after", last.to_owned());
        }
        req.timeout = None;
        printer.reconnecting();
        let interrupted = tokio::select! {
            done = ctx.client.download(&req, || Ok(&mut printer)) => {
                match done {
                    Ok(_) => lost_since = None,
                    // The API restarting: the follow goes on once it answers,
                    // for a while.
                    Err(CliError::Connect { .. } | CliError::Transport { .. } | CliError::Timeout { .. })
                        if follow && lost_since.get_or_insert_with(Instant::now).elapsed() < RECONNECT_FOR => {}
                    Err(e) => return Err(e),
                }
                false
            }
            _ = tokio::signal::ctrl_c(), if follow => true,
        };
        if !interrupted {
            // A stream cut before its end (the API restarted) goes on.
            if follow && printer.end().is_none() && printer.error().is_none() {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            break;
        }
        if !super::confirm::ask_on_terminal(&format!("cancel job {id} on its hosts?")).await {
            ctx.note(&format!(
                "job {id} goes on: osapictl job output {id} --follow"
            ));
            return Ok(Status::Ok);
        }
        let req = Request::new(Method::POST, format!("{}/cancel", job_path(id)));
        match ctx.client.send(&req).await {
            Ok(_) => ctx.note(&format!(
                "cancelling job {id}; its output goes on to the end"
            )),
            // Ended meanwhile: the stream says how.
            Err(CliError::Api { status: 409, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(message) = printer.error() {
        eprintln!("error: {message}");
        return Ok(Status::SomeFailed);
    }
    match printer.end() {
        Some(_) => {
            let raw = ctx.client.json(&Request::get(job_path(id))).await?;
            let detail: JobDetail = decode(&raw, "job")?;
            let status = Status::of_job(detail.status, &detail.results);
            if status == Status::SomeFailed {
                ctx.note(&format!("job {id} {}", detail.status.as_str()));
            }
            Ok(status)
        }
        // Not ended (without --follow): what there is so far.
        None => Ok(Status::Ok),
    }
}

/// An input's fields as query parameters (a read's, a delete's, a follow's).
fn with_query(req: Request, fields: serde_json::Map<String, Value>) -> Request {
    fields.into_iter().fold(req, |req, (k, v)| match v {
        Value::String(s) => req.query(k, s),
        other => req.query(k, other.to_string()),
    })
}

/// `osapictl log -f`: the follow endpoint's events, printed as they come
/// (one line per entry, or the entry's JSON with `-o json`), until
/// interrupted or the host fails.
async fn follow_log(ctx: &Ctx, op: &Operation) -> Result<Status, CliError> {
    op.validate().map_err(|e| bad_input(e, ""))?;
    let req = Request::get("/api/v1/log/follow").query("target", ctx.global.target.clone());
    let mut req = match op.to_request().data {
        Value::Object(fields) => with_query(req, fields),
        _ => req,
    };
    req.timeout = None;
    let mut printer =
        output::EventPrinter::new(ctx.format() != OutputFormat::Table, std::io::stdout());
    ctx.client.download(&req, || Ok(&mut printer)).await?;
    match printer.error() {
        Some(message) => {
            eprintln!("error: {message}");
            Ok(Status::SomeFailed)
        }
        None => Ok(Status::Ok),
    }
}

/// Run a domain endpoint: validate, confirm, send with `target`/`timeout`/`async`,
/// print one row per host.
async fn domain(ctx: &Ctx, op: Operation, req: Request) -> Result<Status, CliError> {
    op.validate().map_err(|e| bad_input(e, ""))?;
    let g = &ctx.global;
    confirm(op.kind(), op.type_name(), &g.target, g.yes)?;
    // How long a command without a timeout runs is up to the agents' own
    // default, which only the server knows: create the job and poll it (each
    // request short, so an API that stops answering is noticed) instead of
    // one request whose wait we could not bound.
    // A reboot or poweroff answers with its job unless told to wait (a dry
    // run answers at once); a reboot's wait lasts until the host is back, so
    // it is polled too.
    let power_wait = match &op {
        Operation::PowerReboot(s) | Operation::PowerPoweroff(s) if !s.dry_run => Some(s.wait),
        _ => None,
    };
    let poll = g.timeout.is_none()
        && !g.async_
        && (op.runs_for_agent_default() || power_wait == Some(true));
    let async_ = g.async_ || power_wait == Some(false);
    let mut req = req.query("target", g.target.clone());
    if let Some(t) = g.timeout {
        req = req.query("timeout", duration_param(t));
    }
    if async_ || poll {
        req = req.query("async", "true");
    }
    // Allow for the server's default wait, which stretches for long operations.
    let wait = g
        .timeout
        .unwrap_or_else(|| DEFAULT_WAIT.max(op.min_deadline(DEFAULT_COMMAND_TIMEOUT)));
    req = req.timeout(Some(wait + HTTP_GRACE));

    let label = format!("waiting for {} on {}", op.type_name(), g.target);
    let reply = progress::while_waiting(&label, ctx.client.send(&req)).await?;
    let raw = reply.json()?;
    if reply.status == 202 && poll {
        let accepted: Accepted = decode(&raw, "accepted job")?;
        let polled = poll_job(ctx, accepted.job_id, longest_deadline(&op)).await?;
        let outcome = JobOutcome {
            job_id: polled.detail.id,
            status: polled.detail.status,
            results: polled.detail.results,
        };
        let raw = serde_json::to_value(&outcome).unwrap_or_default();
        emit(ctx.format(), &raw, || {
            output::results_table(op.type_name(), &outcome.results)
        })?;
        if !polled.done {
            return Err(CliError::StillRunning {
                job_id: outcome.job_id,
                status: outcome.status,
                waited: polled.waited,
            });
        }
        return Ok(job_status(ctx, &outcome));
    }
    if reply.status == 202 {
        let accepted: Accepted = decode(&raw, "accepted job")?;
        emit(ctx.format(), &raw, || {
            output::accepted_table(&accepted, reply.location.as_deref())
        })?;
        ctx.note(&format!(
            "follow it with: osapictl job get {}",
            accepted.job_id
        ));
        return Ok(Status::Ok);
    }
    let outcome: JobOutcome = decode(&raw, "job outcome")?;
    emit(ctx.format(), &raw, || {
        output::results_table(op.type_name(), &outcome.results)
    })?;
    Ok(job_status(ctx, &outcome))
}

/// The exit status of a finished job, with a note naming it when some host failed.
fn job_status(ctx: &Ctx, outcome: &JobOutcome) -> Status {
    let status = Status::of_job(outcome.status, &outcome.results);
    if status == Status::SomeFailed {
        ctx.note(&format!(
            "job {} {}",
            outcome.job_id,
            outcome.status.as_str()
        ));
    }
    status
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

async fn job(ctx: &Ctx, c: JobCommand) -> Result<Status, CliError> {
    match c {
        JobCommand::Add(spec) => job_create(ctx, spec, false).await,
        JobCommand::Run(spec) => job_create(ctx, spec, true).await,
        JobCommand::List {
            status,
            operation,
            filter_target,
            created_by,
            limit,
            cursor,
        } => {
            let req = Request::get("/api/v1/jobs")
                .query_opt("status", status)
                .query_opt("operation", operation)
                .query_opt("target", filter_target)
                .query_opt("user", created_by)
                .query_opt("limit", limit)
                .query_opt("cursor", cursor);
            let raw = ctx.client.json(&req).await?;
            let list: JobList = decode(&raw, "job list")?;
            emit(ctx.format(), &raw, || output::job_list_table(&list))?;
            if let Some(next) = &list.next_cursor {
                ctx.note(&format!("more jobs: add --cursor {next}"));
            }
            Ok(Status::Ok)
        }
        JobCommand::Get { id } => {
            let raw = ctx.client.json(&Request::get(job_path(id))).await?;
            let detail: JobDetail = decode(&raw, "job")?;
            emit(ctx.format(), &raw, || output::job_detail_table(&detail))?;
            Ok(Status::of_job(detail.status, &detail.results))
        }
        JobCommand::Delete { id } => {
            ctx.client
                .send(&Request::new(Method::DELETE, job_path(id)))
                .await?;
            let raw = json!({ "job_id": id, "deleted": true });
            emit(ctx.format(), &raw, || format!("job {id} deleted"))?;
            Ok(Status::Ok)
        }
        JobCommand::Retry { id, new_target } => {
            // A retry runs the old operation again: confirm a change that fans
            // out just as if it were sent afresh (reading the job needs job:read,
            // which --yes spares).
            if !ctx.global.yes {
                let raw = ctx.client.json(&Request::get(job_path(id))).await?;
                let old: JobDetail = decode(&raw, "job")?;
                let target = new_target.as_deref().unwrap_or(&old.target);
                confirm(old.kind, &old.operation.type_name, target, false)?;
            }
            let body = match &new_target {
                Some(t) => json!({ "target": t }),
                None => json!({}),
            };
            let req = Request::new(Method::POST, format!("{}/retry", job_path(id))).json(body);
            let raw = ctx.client.json(&req).await?;
            let created: Created = decode(&raw, "created job")?;
            emit(ctx.format(), &raw, || output::created_table(&created))?;
            ctx.note(&format!(
                "follow it with: osapictl job get {}",
                created.job_id
            ));
            Ok(Status::Ok)
        }
        JobCommand::Output { id, follow } => {
            let raw = ctx.client.json(&Request::get(job_path(id))).await?;
            let detail: JobDetail = decode(&raw, "job")?;
            let several = matches!(&detail.expected, Expected::Hosts(h) if h.len() > 1);
            follow_output(ctx, id, several, follow).await
        }
        JobCommand::Cancel { id } => {
            let req = Request::new(Method::POST, format!("{}/cancel", job_path(id)));
            let raw = ctx.client.json(&req).await?;
            emit(ctx.format(), &raw, || {
                format!("job {id}: cancel requested; its hosts stop the command")
            })?;
            Ok(Status::Ok)
        }
        JobCommand::Stats => {
            let raw = ctx.client.json(&Request::get("/api/v1/jobs/stats")).await?;
            let stats: JobStats = decode(&raw, "job stats")?;
            emit(ctx.format(), &raw, || output::job_stats_table(&stats))?;
            Ok(Status::Ok)
        }
    }
}

fn job_path(id: Uuid) -> String {
    format!("/api/v1/jobs/{id}")
}

/// `job add` (print the id) and `job run` (wait for the end).
async fn job_create(ctx: &Ctx, spec: JobSpec, follow: bool) -> Result<Status, CliError> {
    let g = &ctx.global;
    let data = spec.data.unwrap_or(Value::Null);
    let op = Operation::parse(&spec.op_type, data.clone()).map_err(|e| bad_input(e, "--data"))?;
    confirm(op.kind(), op.type_name(), &g.target, g.yes)?;
    let mut body =
        json!({ "operation": { "type": spec.op_type, "data": data }, "target": g.target });
    if let Some(t) = g.timeout {
        body["timeout"] = Value::String(duration_param(t));
    }
    let raw = ctx
        .client
        .json(&Request::new(Method::POST, "/api/v1/jobs").json(body))
        .await?;
    let created: Created = decode(&raw, "created job")?;
    if !follow || g.async_ {
        emit(ctx.format(), &raw, || output::created_table(&created))?;
        ctx.note(&format!(
            "follow it with: osapictl job get {}",
            created.job_id
        ));
        return Ok(Status::Ok);
    }
    let timeout = g
        .timeout
        .unwrap_or(DEFAULT_JOB_TIMEOUT)
        .max(longest_deadline(&op));
    follow_job(ctx, created.job_id, timeout).await
}

/// The latest the server may settle a job of `op`: a command without a timeout
/// gets its agent's configured default, at most [`MAX_AGENT_COMMAND_TIMEOUT`].
fn longest_deadline(op: &Operation) -> Duration {
    op.min_deadline(MAX_AGENT_COMMAND_TIMEOUT)
}

/// Follow a job to its end (see [`poll_job`]) and show it.
async fn follow_job(ctx: &Ctx, id: Uuid, timeout: Duration) -> Result<Status, CliError> {
    let polled = poll_job(ctx, id, timeout).await?;
    emit(ctx.format(), &polled.raw, || {
        output::job_detail_table(&polled.detail)
    })?;
    if !polled.done {
        return Err(CliError::StillRunning {
            job_id: id,
            status: polled.detail.status,
            waited: polled.waited,
        });
    }
    Ok(Status::of_job(polled.detail.status, &polled.detail.results))
}

/// A job as last polled.
struct Polled {
    raw: Value,
    detail: JobDetail,
    /// Its status is final.
    done: bool,
    waited: Duration,
}

/// Poll a job until its status is final (the server turns missing hosts into
/// `timeout` at the job's deadline), or give up a little after that deadline.
async fn poll_job(ctx: &Ctx, id: Uuid, timeout: Duration) -> Result<Polled, CliError> {
    let started = Instant::now();
    let mut deadline = started + timeout + HTTP_GRACE;
    let mut progress = Progress::new();
    let mut backoff = Backoff::between(Duration::from_millis(250), Duration::from_secs(2));
    let mut seen = false;
    loop {
        // Once the job was seen, an API that stops answering (its host is
        // rebooting) is waited out until the deadline.
        let raw = match ctx.client.json(&Request::get(job_path(id))).await {
            Ok(raw) => raw,
            Err(
                CliError::Connect { .. }
                | CliError::Timeout { .. }
                | CliError::Transport { .. }
                | CliError::Api {
                    status: 502..=504, ..
                },
            ) if seen && Instant::now() < deadline => {
                progress.update(&format!("job {id}: the API does not answer; retrying"));
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        seen = true;
        let detail: JobDetail = decode(&raw, "job")?;
        // The job knows its own deadline better than our guess.
        deadline = deadline
            .min(started + Duration::from_millis(detail.timeout_ms) + HTTP_GRACE)
            .max(started + HTTP_GRACE);
        let done = detail.status.is_final();
        if done || Instant::now() >= deadline {
            progress.finish();
            return Ok(Polled {
                raw,
                detail,
                done,
                waited: progress.elapsed(),
            });
        }
        let expected = match &detail.expected {
            Expected::Any => 1,
            Expected::Hosts(h) => h.len(),
        };
        let text = format!(
            "job {id} {}: {}/{expected} hosts answered",
            detail.status.as_str(),
            detail.results.len()
        );
        let until = Instant::now() + backoff.next_delay();
        while Instant::now() < until {
            progress.update(&text);
            tokio::time::sleep(
                Duration::from_millis(200).min(until.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }
}

// ---------------------------------------------------------------------------
// Agents, audit, health, metrics, version
// ---------------------------------------------------------------------------

/// `osapictl file upload|list|info|delete`: the API's file store.
async fn store(ctx: &Ctx, c: StoreCommand) -> Result<Status, CliError> {
    let one = |name: &str| format!("/api/v1/files/{}", path_segment(name));
    match c {
        StoreCommand::Upload { path, name } => {
            let name = match name {
                Some(n) => n,
                None => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            check_file_name(&name).map_err(|e| bad_input(e, "--name"))?;
            let bytes = std::fs::read(&path).map_err(|source| CliError::Io {
                doing: format!("read {}", path.display()),
                source,
            })?;
            let req = Request::new(Method::PUT, one(&name)).bytes(bytes);
            let raw = ctx.client.json(&req).await?;
            let uploaded: Uploaded = decode(&raw, "upload")?;
            emit(ctx.format(), &raw, || {
                output::stored_files_table(std::slice::from_ref(&uploaded.file))
            })?;
        }
        StoreCommand::List => {
            let raw = ctx.client.json(&Request::get("/api/v1/files")).await?;
            let list: FileList = decode(&raw, "file list")?;
            emit(ctx.format(), &raw, || {
                output::stored_files_table(&list.files)
            })?;
        }
        StoreCommand::Info { name } => {
            let raw = ctx.client.json(&Request::get(one(&name))).await?;
            let file: StoredFile = decode(&raw, "file")?;
            emit(ctx.format(), &raw, || output::stored_files_table(&[file]))?;
        }
        StoreCommand::Delete { name } => {
            ctx.client
                .send(&Request::new(Method::DELETE, one(&name)))
                .await?;
        }
    }
    Ok(Status::Ok)
}

async fn agent(ctx: &Ctx, c: AgentCommand) -> Result<Status, CliError> {
    match c {
        AgentCommand::List => {
            let raw = ctx.client.json(&Request::get("/api/v1/agents")).await?;
            let list: AgentList = decode(&raw, "agent list")?;
            emit(ctx.format(), &raw, || output::agents_table(&list.agents))?;
        }
        AgentCommand::Get { hostname } => {
            let raw = ctx
                .client
                .json(&Request::get(format!(
                    "/api/v1/agents/{}",
                    path_segment(&hostname)
                )))
                .await?;
            let info: AgentInfo = decode(&raw, "agent")?;
            emit(ctx.format(), &raw, || output::agent_table(&info))?;
        }
        AgentCommand::Pending { all } => {
            let req =
                Request::get("/api/v1/enrollment").query_opt("state", (!all).then_some("pending"));
            let raw = ctx.client.json(&req).await?;
            let list: EnrollmentList = decode(&raw, "enrollment list")?;
            emit(ctx.format(), &raw, || {
                output::enrollments_table(&list.enrollments)
            })?;
        }
        AgentCommand::Accept { agent } => decide(ctx, &agent, "accept").await?,
        AgentCommand::Reject { agent } => decide(ctx, &agent, "reject").await?,
    }
    Ok(Status::Ok)
}

/// `agent accept|reject`: `verb` is the endpoint's last segment.
async fn decide(ctx: &Ctx, agent: &str, verb: &str) -> Result<(), CliError> {
    let req = Request::new(
        Method::POST,
        format!("/api/v1/enrollment/{}/{verb}", path_segment(agent)),
    );
    let raw = ctx.client.json(&req).await?;
    let view: EnrollmentView = decode(&raw, "enrollment")?;
    emit(ctx.format(), &raw, || {
        output::enrollments_table(std::slice::from_ref(&view))
    })
}

/// The filter both audit listings take, as query parameters.
fn audit_query(req: Request, filter: AuditFilter) -> Request {
    req.query_opt("user", filter.user)
        .query_opt("since", filter.since)
        .query_opt("until", filter.until)
}

async fn audit(ctx: &Ctx, c: AuditCommand) -> Result<Status, CliError> {
    match c {
        AuditCommand::List {
            filter,
            limit,
            cursor,
        } => {
            let req = audit_query(Request::get("/api/v1/audit"), filter)
                .query_opt("limit", limit)
                .query_opt("cursor", cursor);
            let raw = ctx.client.json(&req).await?;
            emit(ctx.format(), &raw, || output::audit_list_table(&raw))?;
            if let Some(next) = raw.get("next_cursor").and_then(Value::as_str) {
                ctx.note(&format!("more entries: add --cursor {next}"));
            }
        }
        AuditCommand::Get { id } => {
            let raw = ctx
                .client
                .json(&Request::get(format!(
                    "/api/v1/audit/{}",
                    path_segment(&id)
                )))
                .await?;
            emit(ctx.format(), &raw, || output::kv_table(&raw))?;
        }
        AuditCommand::Export {
            output_file,
            filter,
        } => {
            // Streamed and possibly long: no overall timeout.
            let req = audit_query(Request::get("/api/v1/audit/export"), filter).timeout(None);
            match output_file.filter(|p| p.as_os_str() != "-") {
                Some(path) => {
                    let open = || {
                        std::fs::File::create(&path).map_err(|source| CliError::Io {
                            doing: format!("create {}", path.display()),
                            source,
                        })
                    };
                    let n = ctx.client.download(&req, open).await?;
                    eprintln!("wrote {} to {}", output::human_bytes(n), path.display());
                }
                None => {
                    ctx.client.download(&req, || Ok(std::io::stdout())).await?;
                }
            }
        }
    }
    Ok(Status::Ok)
}

async fn health(ctx: &Ctx, check: Option<HealthCommand>) -> Result<Status, CliError> {
    match check {
        None | Some(HealthCommand::Ready) => {
            let path = if check.is_some() {
                "/health/ready"
            } else {
                "/health"
            };
            let raw = ctx.client.json(&Request::get(path)).await?;
            let h: Health = decode(&raw, "health")?;
            emit(ctx.format(), &raw, || output::health_table(&h))?;
            Ok(Status::Ok)
        }
        Some(HealthCommand::Status) => {
            // A degraded server answers 503 with the full report: show it, exit 1.
            let reply = ctx
                .client
                .send_any(&Request::get("/api/v1/health/status"))
                .await?;
            let report = match reply.status {
                200 | 503 => reply.json().ok().and_then(|raw| {
                    Some((decode::<HealthStatus>(&raw, "health status").ok()?, raw))
                }),
                _ => None,
            };
            let Some((report, raw)) = report else {
                return Err(CliError::Api {
                    status: reply.status,
                    problem: Box::new(super::client::problem_from(reply.status, &reply.body)),
                });
            };
            emit(ctx.format(), &raw, || output::health_status_table(&report))?;
            Ok(if reply.status == 200 {
                Status::Ok
            } else {
                Status::SomeFailed
            })
        }
    }
}

async fn metrics(ctx: &Ctx) -> Result<Status, CliError> {
    // Prometheus text whatever -o says: it is already a machine format.
    let reply = ctx.client.send(&Request::get("/metrics")).await?;
    output::print(&reply.text())?;
    Ok(Status::Ok)
}

async fn version(ctx: &Ctx) -> Result<Status, CliError> {
    let raw = ctx.client.json(&Request::get("/api/v1/version")).await?;
    let v: Version = decode(&raw, "version")?;
    emit(ctx.format(), &raw, || output::version_table(&v))?;
    Ok(Status::Ok)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A validation failure as a usage error naming the flag or argument.
/// `operation.data.hostname` → `hostname` (domain commands, whose flags carry
/// those names) or `--data field hostname` (job commands).
fn bad_input(e: InvalidInput, data_flag: &str) -> CliError {
    let arg = match e.field.strip_prefix("operation.data") {
        Some("") if !data_flag.is_empty() => data_flag.to_owned(),
        Some(rest) => {
            let rest = rest.trim_start_matches('.');
            if data_flag.is_empty() {
                rest.to_owned()
            } else {
                format!("{data_flag} field {rest}")
            }
        }
        None if e.field == "operation.type" => "--type".to_owned(),
        None => e.field.clone(),
    };
    CliError::BadArgument {
        arg,
        reason: e.reason,
    }
}

/// The server reads `timeout` as a human duration; whole seconds when possible.
fn duration_param(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

/// Percent-encode a value placed in a URL path (interface names, hostnames and
/// audit ids are validated, but the URL must not depend on that).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_the_server() {
        assert_eq!(duration_param(Duration::from_secs(30)), "30s");
        assert_eq!(duration_param(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("eth0"), "eth0");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn validation_errors_name_the_argument() {
        let e = Operation::HostnameSet(crate::job::HostnameSet {
            hostname: "-bad-".into(),
            pretty: None,
            dry_run: false,
        })
        .validate()
        .unwrap_err();
        let err = bad_input(e, "");
        assert!(
            matches!(&err, CliError::BadArgument { arg, .. } if arg == "hostname"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 2);
        let e = Operation::parse("node.hostname.set", json!({"hostname": "-bad-"})).unwrap_err();
        assert!(
            matches!(bad_input(e, "--data"), CliError::BadArgument { arg, .. } if arg == "--data field hostname")
        );
        let e = Operation::parse("node.os.get", json!({"x": 1})).unwrap_err();
        assert!(
            matches!(bad_input(e, "--data"), CliError::BadArgument { arg, .. } if arg == "--data")
        );
    }
}
