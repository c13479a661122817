//! The agent: consumes the jobs addressed to its host and runs them through the
//! providers.
//!
//! Consumers (SPEC §4): one durable consumer shared by every agent for `_any`
//! (so each such job goes to one agent), and durable consumers of its own for
//! `_all`, its host subject and every prefix of each label — one filter subject per
//! consumer, because nats-server 2.9 silently ignores multi-filter consumers.
//! At most `max_jobs` jobs run at once; each runs in its own task, so a slow job
//! never blocks the others. Long jobs send progress acks so they are not
//! redelivered while alive; a job whose agent died is redelivered by JetStream.

mod dispatch;
mod enroll;
pub mod http;
pub mod metrics;
mod output;
pub mod privileged;
mod reboot;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

pub use dispatch::{CANCELLED, Outcome, dispatch};
pub use metrics::AgentMetrics;
use output::OutputPump;

use crate::bus::{
    self, AgentInfo, BusError, CONSUMER_PATIENCE, Claim, ClaimScope, Deliveries, Delivery,
    DeliverySettings, JobStore, Names, Registry,
};
use crate::config::{AgentConfig, NatsConfig};
use crate::job::signature::JobVerifier;
use crate::job::{Expected, HostResult, HostStatus, Job, JobError, JobEvent, Operation, Stage};
use crate::provider::{Cancel, CommandJob, LiveOutput, Providers};
use crate::telemetry::trace::TraceContext;
use crate::wire::Vitals;
use tracing::Instrument;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Enrollment(#[from] crate::enrollment::EnrollmentError),
}

/// A view of a running agent for its health endpoints and the watchdog.
#[derive(Clone)]
pub struct AgentHandle {
    client: async_nats::Client,
    running: Arc<Semaphore>,
    max_jobs: usize,
    taken: Arc<AtomicUsize>,
}

impl AgentHandle {
    pub fn running_jobs(&self) -> usize {
        self.max_jobs
            .saturating_sub(self.running.available_permits())
    }

    pub fn max_jobs(&self) -> usize {
        self.max_jobs
    }

    /// How many jobs this agent has taken since it started.
    pub fn jobs_taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    /// NATS answers a round trip now: a wedged connection is not healthy.
    pub async fn healthy(&self) -> bool {
        crate::bus::round_trip(&self.client).await
    }
}

/// What the agent needs to run, resolved from the configuration.
pub struct AgentSettings {
    pub agent: AgentConfig,
    pub nats: NatsConfig,
    pub namespace: String,
    /// How long a graceful stop waits for running jobs before releasing them.
    pub stop_grace: Duration,
    /// Where the agent's metrics go (served by [`http`]).
    pub metrics: AgentMetrics,
    /// The API's public key: a job that does not verify is never run.
    pub verifier: JobVerifier,
    /// Where operations that need root run when this agent is not root.
    pub privileged: Option<privileged::Privileged>,
}

struct Shared {
    store: JobStore,
    /// For the server's current `max_payload`, which every stored result must fit.
    client: async_nats::Client,
    providers: Providers,
    hostname: String,
    ack_wait: Duration,
    running: Arc<Semaphore>,
    /// Slots long jobs may use: fewer than `running`'s ([`long_slots`]).
    long: Arc<Semaphore>,
    max_jobs: usize,
    metrics: AgentMetrics,
    verifier: JobVerifier,
    privileged: Option<privileged::Privileged>,
    /// Command jobs this process is running or collecting: a second delivery
    /// of one (a redelivery while it still runs) must not collect the same
    /// unit and store a second, worse result over the first.
    commands: std::sync::Mutex<std::collections::HashSet<Uuid>>,
    /// Wakes deliveries waiting for a place in `commands`.
    command_released: tokio::sync::Notify,
    /// Per stream, the most of a command's output sent live.
    max_live_output_bytes: u64,
}

/// Holds a command job's place in [`Shared::commands`]; frees it on drop.
struct CommandSlot<'a>(&'a Shared, Uuid);

impl<'a> CommandSlot<'a> {
    /// The place, unless this process already runs the job.
    fn take(shared: &'a Shared, id: Uuid) -> Option<Self> {
        let mut running = shared.commands.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(id).then_some(CommandSlot(shared, id))
    }

    /// The place, once whoever holds it is done: a second delivery then
    /// finds the first one's result (or, if that was not stored, collects
    /// the command itself).
    async fn wait(shared: &'a Shared, id: Uuid) -> Self {
        loop {
            // Registered before looking, so a release in between wakes us.
            let released = shared.command_released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(slot) = Self::take(shared, id) {
                return slot;
            }
            released.await;
        }
    }
}

impl Drop for CommandSlot<'_> {
    fn drop(&mut self) {
        let mut running = self.0.commands.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&self.1);
        drop(running);
        self.0.command_released.notify_waiters();
    }
}

/// How long a heartbeat waits for the host's vitals before it goes without.
const VITALS_WAIT: Duration = Duration::from_millis(500);

/// Load, memory and `/` for the heartbeat; `None` when any read fails (a
/// missing figure is better than a wrong one). Only `/` is asked: a
/// `statvfs` of every mount would leave a thread stuck on a dead network
/// filesystem at each heartbeat.
async fn vitals(host: &dyn crate::provider::HostInfoProvider) -> Option<Vitals> {
    // A heartbeat never waits long for them (simulated providers take their
    // job delay per call).
    let reads = async { futures::join!(host.load(), host.memory()) };
    let (load, memory) = tokio::time::timeout(VITALS_WAIT, reads).await.ok()?;
    let (load, memory) = (load.ok()?, memory.ok()?);
    let root = crate::provider::procfs::Usage::from(&nix::sys::statvfs::statvfs("/").ok()?);
    Some(Vitals {
        load1: load.load1,
        memory_used_bytes: memory.used_bytes,
        memory_total_bytes: memory.total_bytes,
        root_used_bytes: root.used_bytes(),
        root_total_bytes: root.total_bytes(),
    })
}

/// Of `max_jobs` slots, how many long jobs may use: all but a fifth (at
/// least one) kept for quick ones, when there are two slots or more.
fn long_slots(max_jobs: usize) -> usize {
    if max_jobs < 2 {
        return max_jobs.max(1);
    }
    max_jobs - (max_jobs / 5).max(1)
}

/// Run the agent until `shutdown` resolves; then stop taking jobs, let running
/// ones finish for `stop_grace`, and release the rest for redelivery.
pub async fn run(
    settings: AgentSettings,
    providers: Providers,
    mut shutdown: watch::Receiver<bool>,
    ready: impl FnOnce(AgentHandle),
) -> Result<(), AgentError> {
    let names = Names::new(settings.namespace.clone());
    let Some((client, _connects)) = enroll::connect(&settings, &mut shutdown).await? else {
        return Ok(());
    };
    let js = jetstream::new(client.clone());
    // Agents never create streams (their NATS permissions forbid it): the
    // embedded server's supervisor or the API does.
    let buckets = bus::open(&js, &names, &settings.nats).await?;
    let store = JobStore::new(client.clone(), &buckets, names.clone());
    let registry = Registry::new(buckets.registry.clone(), settings.nats.registry.ttl);
    let cfg = &settings.agent;
    // A network change is kept only when the agent still reaches NATS.
    providers
        .reach
        .attach(Arc::new(bus::NatsReach::new(client.clone())));
    // Stored files come from the bus; templates see the host's facts.
    providers.file_source.attach(
        Arc::new(bus::LazyFileStore::new(js.clone(), names.clone())),
        serde_json::json!({
            "hostname": cfg.hostname,
            "labels": cfg.labels,
            "os": crate::provider::procfs::os_facts(),
        }),
    );

    let mut deliveries = Deliveries::open(
        &buckets.stream,
        names.agent_consumers(&cfg.hostname, cfg.labels.iter()),
        &DeliverySettings {
            ack_wait: cfg.consumer.ack_wait,
            max_deliver: cfg.consumer.max_deliver,
            back_off: cfg.consumer.back_off.clone(),
            batch: cfg.max_jobs,
        },
    )
    .await?;
    let recovering = deliveries.recovering();

    let shared = Arc::new(Shared {
        store,
        client: client.clone(),
        providers,
        verifier: settings.verifier,
        privileged: settings.privileged,
        hostname: cfg.hostname.clone(),
        // With back-off the server's first ack deadline is back_off[0], and later
        // ones are the other steps: keep alive well inside the shortest of all.
        ack_wait: cfg
            .consumer
            .back_off
            .iter()
            .copied()
            .chain([cfg.consumer.ack_wait])
            .min()
            .unwrap_or(cfg.consumer.ack_wait),
        commands: Default::default(),
        command_released: tokio::sync::Notify::new(),
        max_live_output_bytes: cfg.command.max_live_output_bytes,
        running: Arc::new(Semaphore::new(cfg.max_jobs)),
        long: Arc::new(Semaphore::new(long_slots(cfg.max_jobs))),
        max_jobs: cfg.max_jobs,
        metrics: settings.metrics.clone(),
    });
    shared.metrics.set_max_jobs(cfg.max_jobs);
    let started_at = OffsetDateTime::now_utc();
    let (hostname, labels, max_jobs) = (cfg.hostname.clone(), cfg.labels.clone(), cfg.max_jobs);
    // What the command provider applies to a job without a timeout.
    let command_default = cfg.command.default_timeout.min(cfg.command.max_timeout);
    let command_default_timeout_ms = u64::try_from(command_default.as_millis()).ok();
    let info = move |running: usize, vitals: Option<Vitals>| AgentInfo {
        hostname: hostname.clone(),
        labels: labels.clone(),
        version: crate::VERSION.to_owned(),
        started_at,
        heartbeat_at: OffsetDateTime::now_utc(),
        max_jobs,
        running_jobs: running,
        command_default_timeout_ms,
        vitals,
    };
    // Announce ourselves only once every consumer exists, so a job created for us
    // after the API sees us cannot be missed.
    // A just-created replicated bucket may not have its leader yet.
    let host_info = shared.providers.host_info.clone();
    let first = info(0, vitals(host_info.as_ref()).await);
    bus::retry_transient("announcing the agent", CONSUMER_PATIENCE, |_| {
        registry.heartbeat(&first)
    })
    .await?;
    let heartbeat = {
        let registry = registry.clone();
        let shared = shared.clone();
        let interval = cfg.heartbeat_interval;
        let info = info.clone();
        let recovering = recovering.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                if recovering.load(Ordering::SeqCst) > 0 {
                    tracing::debug!("consumers recovering; heartbeat held back");
                    continue;
                }
                let running = shared
                    .max_jobs
                    .saturating_sub(shared.running.available_permits());
                let vitals = vitals(host_info.as_ref()).await;
                if let Err(e) = registry.heartbeat(&info(running, vitals)).await {
                    shared.metrics.heartbeat_failed();
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        })
    };
    tracing::info!(hostname = %shared.hostname, "agent consuming jobs");
    let taken = Arc::new(AtomicUsize::new(0));
    ready(AgentHandle {
        client: client.clone(),
        running: shared.running.clone(),
        max_jobs: shared.max_jobs,
        taken: taken.clone(),
    });

    let mut tasks = JoinSet::new();
    {
        // Back from a reboot this agent scheduled? Say so on its job.
        let shared = shared.clone();
        tasks.spawn(async move {
            if let Err(e) = reboot::resume(&shared).await {
                tracing::warn!(error = %e, "could not report on the recorded reboot");
            }
        });
    }
    // Commands an earlier agent left running (or ended, unstored): collected
    // now, not when their jobs come back after ack_wait.
    match shared.providers.command.unfinished().await {
        Ok(ids) => {
            for id in ids {
                let shared = shared.clone();
                tasks.spawn(async move { collect(&shared, id).await });
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for commands an earlier agent left"),
    }
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            next = deliveries.recv() => match next {
                Some(delivery) => {
                    let permit = tokio::select! {
                        p = shared.running.clone().acquire_owned() => p,
                        _ = shutdown.changed() => {
                            delivery.release().await;
                            break;
                        }
                    };
                    let Ok(permit) = permit else { break };
                    taken.fetch_add(1, Ordering::Relaxed);
                    let shared = shared.clone();
                    tasks.spawn(async move {
                        let _running = shared.metrics.running();
                        handle(&shared, delivery, permit).await;
                    });
                }
                None => break,
            }
        }
    }
    tracing::info!(running = tasks.len(), "agent stopping");
    // Jobs delivered but not started go back at once rather than after ack_wait.
    deliveries.close().await;
    heartbeat.abort();
    // Running jobs get a grace period; jobs still running after it are abandoned
    // unacknowledged and JetStream redelivers them to another agent.
    let deadline = Instant::now() + settings.stop_grace;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline.into(), tasks.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(
                    left = tasks.len(),
                    "stop grace over; releasing running jobs for redelivery"
                );
                tasks.abort_all();
                break;
            }
        }
    }
    if let Err(e) = registry.remove(&shared.hostname).await {
        tracing::warn!(error = %e, "could not remove our heartbeat");
    }
    let _ = client.flush().await;
    Ok(())
}

/// A long job (command, ping) runs only with a long slot as well, and there
/// are fewer long slots than slots: some always stay for quick jobs. A long
/// job that must wait for a long slot gives its slot back meanwhile, so
/// waiting long jobs never crowd quick ones out either.
async fn take_slots(
    shared: &Shared,
    op: &crate::job::Operation,
    slot: OwnedSemaphorePermit,
) -> (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>) {
    if !op.runs_long() {
        return (slot, None);
    }
    if let Ok(long) = shared.long.clone().try_acquire_owned() {
        return (slot, Some(long));
    }
    drop(slot);
    tracing::debug!("every long-job slot is taken; waiting for one");
    // The agent never closes its semaphores; if one were closed, this job
    // would wait (and be redelivered) rather than run without a slot.
    let long = shared.long.clone().acquire_owned().await.ok();
    loop {
        match shared.running.clone().acquire_owned().await {
            Ok(slot) => return (slot, long),
            Err(_) => std::future::pending::<()>().await,
        }
    }
}

/// Handle one delivered job message; every outcome ends in an ack, a nak, or
/// (only when NATS itself is unreachable) no answer so JetStream redelivers.
async fn handle(shared: &Shared, delivery: Delivery, slot: OwnedSemaphorePermit) {
    let attempt = delivery.attempt();
    let Some(id) = delivery.job_id() else {
        tracing::warn!(subject = %delivery.subject(), "dropping a job message without a job id");
        delivery.discard().await;
        return;
    };
    // Continue the API's trace, so this job's log lines share its trace_id.
    let ctx = TraceContext::continue_from(delivery.traceparent().as_deref());
    let span = tracing::info_span!(
        "job",
        job_id = %id,
        attempt,
        trace_id = %ctx.trace_id_hex(),
        span_id = %ctx.span_id_hex(),
        parent_span_id = %ctx.parent_span_id_hex(),
    );
    async {
        let work = run_job(shared, id, attempt, slot);
        tokio::pin!(work);
        // Tell JetStream we are alive, well inside ack_wait, for as long as we
        // handle the job: while it runs, and while its result is being stored
        // (which takes retries when a NATS node has just died).
        let mut keepalive =
            tokio::time::interval((shared.ack_wait / 3).max(Duration::from_millis(100)));
        keepalive.tick().await;
        let done = loop {
            tokio::select! {
                done = &mut work => break done,
                _ = keepalive.tick() => delivery.working().await,
            }
        };
        match done {
            Ok(()) => delivery.done().await,
            // A stored job we cannot read will never become readable: stop its
            // redelivery instead of poisoning every agent with it.
            Err(e @ BusError::Corrupt { .. }) => {
                tracing::error!(error = %e, "unreadable job; terminating its delivery");
                delivery.discard().await;
            }
            // NATS trouble mid-job: leave it unacked so it is redelivered.
            Err(e) => {
                tracing::warn!(error = %e, "job could not be recorded; it will be redelivered")
            }
        }
    }
    .instrument(span)
    .await
}

async fn run_job(
    shared: &Shared,
    id: Uuid,
    attempt: u64,
    mut slot: OwnedSemaphorePermit,
) -> Result<(), BusError> {
    let store = &shared.store;
    let Some(job) = store.get(id).await? else {
        tracing::info!("job no longer exists (deleted or expired); skipping");
        return Ok(());
    };
    let event = |stage, detail: Option<String>| JobEvent {
        at: OffsetDateTime::now_utc(),
        hostname: shared.hostname.clone(),
        stage,
        attempt,
        detail,
    };
    // Nothing about a job that does not verify is trusted, not even which
    // hosts it expects: it is refused, on the record, and never retried.
    let verified = if job.id == id {
        shared.verifier.verify(&job).map_err(|e| e.to_string())
    } else {
        Err(format!("the job is stored under another id ({id})"))
    };
    if let Err(reason) = verified {
        tracing::warn!(
            %reason,
            created_by = %job.created_by,
            operation = job.operation.type_name(),
            "refusing a job that does not verify: not signed by this deployment's API"
        );
        shared.metrics.finished(
            job.operation.type_name(),
            metrics::JobOutcome::Rejected,
            None,
        );
        let detail = format!("refused unrun: {reason}");
        store
            .append_event(id, &event(Stage::Rejected, Some(detail.clone())))
            .await?;
        return store
            .put_result(
                id,
                &HostResult {
                    hostname: shared.hostname.clone(),
                    status: HostStatus::Failed,
                    data: None,
                    error: Some(JobError {
                        code: crate::job::REJECTED.into(),
                        message: detail,
                    }),
                    duration_ms: 0,
                },
            )
            .await;
    }
    // `_all` and label jobs name the hosts live when they were created; one
    // that reached us anyway (we were away, or joined since) is not ours to run:
    // its report would list a host the operator was never told about.
    let expects_us = match &job.expected {
        Expected::Any => true,
        Expected::Hosts(hosts) => hosts.contains(&shared.hostname),
    };
    if !expects_us {
        tracing::info!("job does not expect this host (not live at its creation); skipping");
        return Ok(());
    }
    // This process runs this command already (the delivery is a second
    // one): the first stores the result, this one waits and then finds it.
    let _command_slot = if job.operation.is_command() {
        match CommandSlot::take(shared, id) {
            Some(slot) => Some(slot),
            None => {
                tracing::info!("this command job already runs here; waiting for it");
                // Its run slot is not held meanwhile: quick jobs go on.
                drop(slot);
                let waited = CommandSlot::wait(shared, id).await;
                slot = match shared.running.clone().acquire_owned().await {
                    Ok(slot) => slot,
                    Err(_) => return Ok(()),
                };
                Some(waited)
            }
        }
    } else {
        None
    };
    // Past its deadline the API has already reported this host as not
    // answering (an agent cut off from NATS gets its backlog on return). Running
    // it now would contradict that report, and a command could run after the
    // operator, told it did not, has already run it again. A command this
    // host started before its agent stopped is another matter: it is only
    // collected (below).
    let late = OffsetDateTime::now_utc() >= job.deadline();
    let expired = || async {
        tracing::warn!("job delivered after its deadline; not running it");
        shared.metrics.finished(
            job.operation.type_name(),
            metrics::JobOutcome::Expired,
            None,
        );
        store
            .append_event(
                id,
                &event(
                    Stage::Acknowledged,
                    Some("not run: delivered after the job's deadline".into()),
                ),
            )
            .await
    };
    if late && !job.operation.is_command() {
        return expired().await;
    }
    // A redelivery, e.g. after an acknowledgement lost while a NATS node died:
    // a job that already has its result is done, whatever kind it is, and
    // its timeline gets nothing more. (Attempt 0: a command found at start,
    // collected before its redelivery.)
    let earlier = if attempt != 1 {
        Some(store.progress(&job).await?)
    } else {
        None
    };
    if matches!(job.operation, Operation::PowerReboot(_)) && reboot::is_recorded(id) {
        tracing::info!("the reboot is on record; its result comes when this host is back");
        return Ok(());
    }
    let counts = |host: &str| job.expected == Expected::Any || host == shared.hostname;
    if earlier
        .as_ref()
        .is_some_and(|p| p.results.iter().any(|r| counts(&r.hostname)))
    {
        tracing::info!("redelivered job already has its result; not running it again");
        // What its runner kept for it (an earlier attempt stored it but
        // stopped before letting go) goes.
        if job.operation.is_command() {
            shared.providers.command.release(id).await;
        }
        return Ok(());
    }
    store
        .append_event(id, &event(Stage::Acknowledged, None))
        .await?;
    // Held until the job is done: its slot, and for a long job a long slot.
    let _slots = take_slots(shared, &job.operation, slot).await;
    // A job that must not run twice is claimed first, atomically: of two
    // deliveries racing (a redelivery while a first attempt slowed by a NATS
    // failover still runs), exactly one runs it; the other reports it
    // interrupted. For `_any` one claim covers every host.
    let claimed = if job.operation.is_idempotent() {
        None
    } else {
        let scope = match job.expected {
            Expected::Any => ClaimScope::Any,
            Expected::Hosts(_) => ClaimScope::Host(&shared.hostname),
        };
        if late {
            // Too late to run: only an earlier attempt's claim matters (its
            // command is collected); none is taken for a run that never comes.
            store.claim_holder(id, scope).await?.map(Claim::Taken)
        } else {
            let token = format!("{}/{}", shared.hostname, Uuid::now_v7());
            Some(store.claim(id, scope, &token).await?)
        }
    };
    // A command claimed before (by this host's agent before it stopped, perhaps
    // under another hostname) may still run in a unit of its own on this
    // host: the runner collects it (never starts it again), and says
    // interrupted when there is none here.
    let resume = matches!(&claimed, Some(Claim::Taken(_)) if job.operation.is_command());
    // Which host name the earlier attempt had (its claim's token says): its
    // live output went out under that name, and this one goes on after it.
    let earlier_host = match &claimed {
        Some(Claim::Taken(by)) if resume => by.split_once('/').map(|(host, _)| host.to_owned()),
        _ => None,
    };
    if late && !resume {
        return expired().await;
    }
    if let Some(Claim::Taken(by)) = claimed.filter(|_| !resume) {
        let error = JobError {
            code: "interrupted".into(),
            message: "the job was interrupted after it started and is not safe to run again".into(),
        };
        tracing::warn!(claimed_by = %by, "non-idempotent job already started elsewhere; marking it interrupted");
        shared.metrics.finished(
            job.operation.type_name(),
            metrics::JobOutcome::Interrupted,
            None,
        );
        return finish(
            shared,
            &job,
            Outcome::failed(error),
            Duration::ZERO,
            attempt,
        )
        .await;
    }

    let command_job = job.operation.is_command();
    // Cancelled before it started: it never starts.
    // (Unreadable now, e.g. during a failover: the watcher below reads it
    // again soon, and a job never waits for redelivery over it.)
    if command_job && !resume && store.cancel_requested(id).await.unwrap_or(false) {
        let outcome = Outcome::failed(JobError {
            code: dispatch::CANCELLED.into(),
            message: "cancelled before it started".into(),
        });
        OutputPump::new(store.clone(), id, shared.hostname.clone(), 0, None)
            .exit(&outcome)
            .await;
        shared
            .metrics
            .finished(job.operation.type_name(), metrics::JobOutcome::Failed, None);
        return finish(shared, &job, outcome, Duration::ZERO, attempt).await;
    }
    // A collected command is not started again, and its timeline says so.
    let (stage, detail) = match resume {
        false => (Stage::Started, None),
        true => (
            Stage::Acknowledged,
            Some("collecting the command an earlier attempt started".to_owned()),
        ),
    };
    store.append_event(id, &event(stage, detail)).await?;
    let started = Instant::now();
    let mut command = CommandJob {
        id: Some(id),
        resume,
        ..CommandJob::default()
    };
    // A command's output goes out live, and a cancel reaches it.
    let (pump, watcher) = if command_job {
        // A command collected from an earlier attempt goes on under the host
        // name that one sent its output with.
        let speaker = earlier_host.unwrap_or_else(|| shared.hostname.clone());
        let last = match resume {
            true => store.last_output(id, &speaker).await,
            false => Ok(None),
        };
        let pump = match last {
            Ok(last) => OutputPump::new(
                store.clone(),
                id,
                speaker,
                shared.max_live_output_bytes,
                last.as_ref(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read how far the output was sent; no more is sent live");
                OutputPump::off(store.clone(), id, speaker)
            }
        };
        let (live, reader) = LiveOutput::channel(shared.max_live_output_bytes, pump.done_with());
        let (cancel, cancelled) = Cancel::channel();
        command.resume_from = pump.sent();
        command.live = live;
        command.cancel = cancelled;
        (
            Some(tokio::spawn(pump.run(reader))),
            Some(AbortOnDrop(tokio::spawn(output::watch_cancel(
                store.clone(),
                id,
                cancel,
            )))),
        )
    } else {
        (None, None)
    };
    let outcome = run_reporting_progress(&job, shared, command, |text| {
        let progress = event(Stage::Progress, Some(text));
        async move { store.append_event(id, &progress).await }
    })
    .await;
    drop(watcher);
    // The runner is done with the live output: the pump sends the rest,
    // then how it ended.
    if let Some(Ok(pump)) = match pump {
        Some(pump) => Some(pump.await),
        None => None,
    } {
        pump.exit(&outcome).await;
    }
    // A reboot's job stays open until the host is back (`reboot`); a cancel
    // ends a recorded reboot's.
    let changed = || {
        outcome
            .data
            .as_ref()
            .and_then(|d| d.get("changed"))
            .and_then(serde_json::Value::as_bool)
            == Some(true)
    };
    match &job.operation {
        Operation::PowerReboot(s) if !s.dry_run && outcome.is_success() => {
            return reboot::hold(shared, &job, attempt, outcome, started.elapsed()).await;
        }
        Operation::PowerCancel(c) if !c.dry_run && changed() => {
            reboot::close(shared, id, "cancelled", "power.cancel").await?;
        }
        Operation::PowerPoweroff(s) if !s.dry_run && outcome.is_success() => {
            reboot::close(shared, id, "superseded", "a poweroff replaced it").await?;
        }
        _ => {}
    }
    shared.metrics.finished(
        job.operation.type_name(),
        if outcome.is_success() {
            metrics::JobOutcome::Completed
        } else {
            metrics::JobOutcome::Failed
        },
        Some(started.elapsed().as_secs_f64()),
    );
    // A command's result (what ran it kept until now) is stored first.
    let took = command_job
        .then(|| command_duration(&outcome))
        .flatten()
        .unwrap_or_else(|| started.elapsed());
    finish(shared, &job, outcome, took, attempt).await?;
    if command_job {
        shared.providers.command.release(id).await;
    }
    Ok(())
}

/// How long a command ran by its own result: a collected one ran longer
/// than this attempt watched it.
fn command_duration(outcome: &Outcome) -> Option<Duration> {
    let ms = outcome.data.as_ref()?.get("duration_ms")?.as_u64()?;
    Some(Duration::from_millis(ms))
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A command found at start ([`crate::provider::CommandProvider::unfinished`]):
/// collected and stored now when its job still waits for this host; else
/// (the job is gone or answered) what was left of it goes.
async fn collect(shared: &Shared, id: Uuid) {
    let span = tracing::info_span!("job", job_id = %id, attempt = 0);
    async {
        let job = match shared.store.get(id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                tracing::info!("a command's job is gone; removing what it left");
                shared.providers.command.release(id).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job of a command found at start");
                return;
            }
        };
        let answered = match shared.store.progress(&job).await {
            Ok(p) => p.results.iter().any(|r| {
                job.expected == Expected::Any || r.hostname == shared.hostname
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the progress of a command found at start");
                return;
            }
        };
        if answered {
            tracing::info!("a command found at start has its result; removing what it left");
            shared.providers.command.release(id).await;
            return;
        }
        tracing::info!("collecting a command an earlier agent started");
        let Ok(slot) = shared.running.clone().acquire_owned().await else {
            return;
        };
        if let Err(e) = run_job(shared, id, 0, slot).await {
            tracing::warn!(error = %e, "a command found at start could not be recorded; its redelivery will");
        }
    }
    .instrument(span)
    .await
}

/// At most one progress event per this long, per host and job.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Runs the job's operation; what it says of its progress goes to `record`,
/// the newest text at most every [`PROGRESS_EVERY`]. A progress event that
/// cannot be recorded is skipped: the result is what counts.
async fn run_reporting_progress<F, Fut>(
    job: &Job,
    shared: &Shared,
    command: CommandJob,
    record: F,
) -> Outcome
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), BusError>>,
{
    let (progress, mut said) = crate::provider::Progress::channel();
    let providers = &shared.providers;
    let run = async {
        match &shared.privileged {
            Some(root) if job.operation.needs_root() => root.run(job, providers).await,
            _ => dispatch(&job.operation, providers, &progress, command).await,
        }
    };
    let report = async {
        while said.changed().await.is_ok() {
            let text = said.borrow_and_update().clone();
            if let Err(e) = record(text).await {
                tracing::debug!(error = %e, "progress not recorded");
            }
            tokio::time::sleep(PROGRESS_EVERY).await;
        }
        // Reached only if the sender were gone; it outlives the select.
        std::future::pending::<Outcome>().await
    };
    tokio::select! {
        outcome = run => outcome,
        outcome = report => outcome,
    }
}

/// Bytes of a NATS message kept free for headers when fitting a result.
const RESULT_HEADROOM: usize = 4096;

async fn finish(
    shared: &Shared,
    job: &Job,
    outcome: Outcome,
    elapsed: Duration,
    attempt: u64,
) -> Result<(), BusError> {
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    // Failed whenever there is an error; the data (e.g. a failed command's output)
    // is kept either way.
    let status = if outcome.is_success() {
        HostStatus::Completed
    } else {
        HostStatus::Failed
    };
    let Outcome { data, error } = outcome;
    let mut result = HostResult {
        hostname: shared.hostname.clone(),
        status,
        data,
        error,
        duration_ms,
    };
    // Room for the message's headers; the rest is the result's own budget.
    let limit = shared.client.max_payload().saturating_sub(RESULT_HEADROOM);
    if dispatch::fit_result(&mut result, limit) {
        tracing::warn!(limit, "the result was cut to fit in one NATS message");
    }
    let status = result.status;
    let detail = result
        .error
        .as_ref()
        .map(|e| format!("{}: {}", e.code, e.message));
    match &result.error {
        None => tracing::info!(
            operation = job.operation.type_name(),
            duration_ms,
            "job completed"
        ),
        Some(e) => {
            tracing::warn!(operation = job.operation.type_name(), code = %e.code, message = %e.message, "job failed")
        }
    }
    let stage = if status == HostStatus::Completed {
        Stage::Completed
    } else {
        Stage::Failed
    };
    let event = JobEvent {
        at: OffsetDateTime::now_utc(),
        hostname: shared.hostname.clone(),
        stage,
        attempt,
        detail,
    };
    // The event first: once the result is visible the API may answer, and the
    // timeline should already be complete by then.
    shared.store.append_event(job.id, &event).await?;
    shared.store.put_result(job.id, &result).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_jobs_always_keep_a_slot() {
        assert_eq!(long_slots(1), 1);
        assert_eq!(long_slots(2), 1);
        assert_eq!(long_slots(3), 2);
        assert_eq!(long_slots(10), 8);
        assert_eq!(long_slots(20), 16);
    }
}
