//! Creating jobs and waiting for them: the API's use of the job store, free of HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::error::ApiError;
use super::metrics::JobMetrics;
use super::quota::{InFlight, Slot};
use crate::bus::{JobResults, JobStore, LiveAgents, ResultFeed};
use crate::config::MAX_AGENT_COMMAND_TIMEOUT;
use crate::job::signature::JobSigner;
use crate::job::{
    DEFAULT_COMMAND_TIMEOUT, Expected, HostResult, Job, Operation, Target, compute_status,
};
use crate::telemetry::trace::TraceContext;
use crate::wire::JobOutcome;

/// How long a waiter past its deadline may spend reading the stored results.
const STORED_RESULTS_WAIT: Duration = Duration::from_secs(2);

/// What a caller asks for when creating a job.
pub struct Submission {
    pub operation: Operation,
    pub target: Target,
    pub timeout: Duration,
    pub created_by: String,
    pub traceparent: Option<String>,
    pub retry_of: Option<Uuid>,
}

#[derive(Clone)]
pub struct JobService {
    pub store: JobStore,
    pub live: LiveAgents,
    /// `osapi_jobs_created_total`, `osapi_sync_wait_duration_seconds`.
    pub metrics: JobMetrics,
    /// Changes on every NATS reconnect ([`crate::bus::connect_watched`]): results
    /// published while we were away never reach the subscription, so a waiter
    /// reads the stored ones again.
    pub connects: tokio::sync::watch::Receiver<u64>,
    /// The responses stream's tail as of a moment ago, kept by
    /// [`JobService::track_progress_hint`], so new jobs carry a `progress_hint`
    /// without a request of their own.
    pub progress_hint: Arc<AtomicU64>,
    /// Signs every job before it is stored; agents verify.
    pub signer: Arc<JobSigner>,
    /// Each principal's jobs in flight, capped.
    pub inflight: Arc<InFlight>,
    /// Every stored result, dispatched to the job's waiter.
    pub feed: ResultFeed,
}

/// A synchronous caller's hold on a job: its results as they come, and its
/// place under the caller's cap until the wait ends.
pub struct Waiter {
    results: JobResults,
    _slot: Slot,
}

impl JobService {
    /// Keep `progress_hint` within a fraction of a second of the responses
    /// stream's tail. A value a moment old is safe: it is at or below where a new job's events start.
    pub fn track_progress_hint(&self) -> tokio::task::JoinHandle<()> {
        let (store, hint) = (self.store.clone(), self.progress_hint.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tick.tick().await;
                let tail = store.progress_hint().await;
                if tail > 0 {
                    // Follow the tail down too: a recreated stream starts again at 1,
                    // and a hint above every sequence would hide all progress.
                    hint.store(tail, Ordering::Relaxed);
                }
            }
        })
    }

    /// The shortest deadline for `op` on the agents `target` reaches now: a
    /// command that gives no timeout gets each agent's own default, which they
    /// advertise.
    pub fn min_deadline(&self, op: &Operation, target: &Target) -> Duration {
        if !op.runs_for_agent_default() {
            return op.min_deadline(DEFAULT_COMMAND_TIMEOUT);
        }
        let command_default = self
            .live
            .snapshot()
            .iter()
            .filter(|a| target.matches(&a.hostname, a.labels.iter()))
            .map(|a| {
                // What agents validate it to; a foreign entry cannot stretch waits further.
                a.command_default_timeout_ms
                    .map_or(DEFAULT_COMMAND_TIMEOUT, Duration::from_millis)
                    .min(MAX_AGENT_COMMAND_TIMEOUT)
            })
            .max()
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT);
        op.min_deadline(command_default)
    }

    /// Which hosts must answer, from the agents live now. A target no live agent
    /// matches is refused here rather than becoming a job that waits forever.
    pub fn expected(&self, target: &Target) -> Result<Expected, ApiError> {
        let agents = self.live.snapshot();
        let hosts: Vec<String> = agents
            .iter()
            .filter(|a| target.matches(&a.hostname, a.labels.iter()))
            .map(|a| a.hostname.clone())
            .collect();
        if hosts.is_empty() {
            return Err(ApiError::NoAgent(target.to_string()));
        }
        Ok(match target {
            Target::Any => Expected::Any,
            _ => Expected::Hosts(hosts),
        })
    }

    /// Store and announce a job. With `wait`, return its results as they come.
    pub async fn submit(
        &self,
        s: Submission,
        wait: bool,
    ) -> Result<(Job, Option<Waiter>), ApiError> {
        let slot = self.inflight.try_acquire(
            &s.created_by,
            std::time::Instant::now() + s.timeout + STORED_RESULTS_WAIT,
        )?;
        let expected = self.expected(&s.target)?;
        let mut job = Job {
            id: Uuid::now_v7(),
            operation: s.operation,
            target: s.target,
            created_at: OffsetDateTime::now_utc(),
            created_by: s.created_by,
            expected,
            timeout_ms: u64::try_from(s.timeout.as_millis()).unwrap_or(u64::MAX),
            retry_of: s.retry_of,
            progress_hint: self.progress_hint.load(Ordering::Relaxed),
            trace_id: s
                .traceparent
                .as_deref()
                .and_then(TraceContext::parse)
                .map(|t| t.trace_id_hex()),
            signature: None,
        };
        job.signature = Some(self.signer.sign(&job));
        self.store.create(&job).await?;
        // Registered before the announcement, so no result slips past.
        let results = self.feed.register(job.id);
        self.store.announce(&job, s.traceparent.as_deref()).await?;
        self.metrics.created(job.operation.type_name());
        tracing::info!(job_id = %job.id, operation = job.operation.type_name(), target = %job.target, "job created");
        if wait {
            return Ok((
                job,
                Some(Waiter {
                    results,
                    _slot: slot,
                }),
            ));
        }
        // Nobody waits for an asynchronous job, but it counts against its
        // creator until it settles.
        let (service, settling) = (self.clone(), job.clone());
        tokio::spawn(async move {
            let _ = service.collect(&settling, results).await;
            drop(slot);
        });
        Ok((job, None))
    }

    /// Collect results until every expected host answered or the job's deadline.
    pub async fn wait(&self, job: &Job, waiter: Waiter) -> Result<JobOutcome, ApiError> {
        let started = tokio::time::Instant::now();
        let results = self.collect(job, waiter.results).await?;
        self.metrics
            .waited(job.operation.type_name(), started.elapsed().as_secs_f64());
        if results.is_empty() {
            return Err(ApiError::WaitTimeout {
                job_id: job.id.to_string(),
                timeout_ms: job.timeout_ms,
            });
        }
        // Hosts still missing here did not answer by the deadline: judge them there.
        let now = OffsetDateTime::now_utc();
        let at = if job.expected.is_answered_by(&results) {
            now
        } else {
            now.max(job.deadline())
        };
        let view = compute_status(job, &[], &results, at);
        Ok(JobOutcome {
            job_id: job.id,
            status: view.status,
            results: view.results,
        })
    }

    /// The results of `job` once every expected host answered, or at its
    /// deadline what there is.
    async fn collect(&self, job: &Job, mut feed: JobResults) -> Result<Vec<HostResult>, ApiError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(job.timeout_ms);
        let mut results: Vec<HostResult> = Vec::new();
        let mut connects = self.connects.clone();
        connects.mark_unchanged();
        let merge = |results: &mut Vec<HostResult>, r: HostResult| {
            results.retain(|old| old.hostname != r.hostname);
            results.push(r);
        };
        while !job.expected.is_answered_by(&results) {
            tokio::select! {
                next = tokio::time::timeout_at(deadline, feed.next()) => match next {
                    Ok(Some(r)) => merge(&mut results, r),
                    // The feed stopped (it never should): what is stored is
                    // still the truth, read below.
                    Ok(None) => {
                        tracing::error!(job_id = %job.id, "the result feed stopped; reading stored results");
                        break;
                    }
                    Err(_) => break,
                },
                Ok(()) = connects.changed() => {
                    if let Ok(Ok(p)) = tokio::time::timeout_at(deadline, self.store.progress(job)).await {
                        for r in p.results {
                            merge(&mut results, r);
                        }
                    }
                }
            }
        }
        drop(feed);
        // The stored results are the truth: anything the subscription missed
        // (a reconnect we did not notice in time) is read back before a host is
        // reported as not answering.
        if !job.expected.is_answered_by(&results) {
            let stored = tokio::time::timeout(STORED_RESULTS_WAIT, self.store.progress(job)).await;
            for r in stored
                .ok()
                .and_then(Result::ok)
                .map(|p| p.results)
                .unwrap_or_default()
            {
                if !results.iter().any(|old| old.hostname == r.hostname) {
                    results.push(r);
                }
            }
        }
        Ok(results)
    }
}
