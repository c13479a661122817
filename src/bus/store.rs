//! The job store: immutable job definitions in the jobs bucket, append-only events
//! and per-host results in the responses bucket, notifications on the JOBS stream.
//!
//! Keys in the responses bucket: `<job>.ev.<uuid>` for each event (a new key per
//! event, so nothing is ever overwritten) and `<job>.res.<hostname>` for each
//! host's result. A KV put is an ordinary publish on `$KV.<bucket>.<key>`, so the
//! API waits for results with a plain subscription instead of polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv, stream};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pager::{Order, StreamPager, is_tombstone};
use super::registry::speaks_for;
use super::{Buckets, BusError, Names};
use crate::job::{HostResult, Job, JobEvent, JobStatus, JobView, Stage, Target, compute_status};

pub const TRACEPARENT_HEADER: &str = "traceparent";
/// How many jobs one listing request may inspect when filters skip most of them;
/// past this it returns a cursor so listing stays cheap however many jobs exist.
const MAX_SCAN: usize = 500;
/// How long a write or read keeps retrying while NATS is briefly away (a cluster
/// node died and its streams elect new leaders, usually within seconds). Every
/// retried operation is idempotent: fixed keys, deduplicated publishes.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// The answer of [`JobStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This attempt may run the job.
    Ours,
    /// Another attempt (its token) claimed it first.
    Taken(String),
}

/// Everything a host has said about a job so far.
#[derive(Debug, Clone, Default)]
pub struct JobProgress {
    pub events: Vec<JobEvent>,
    pub results: Vec<HostResult>,
}

/// Filters of `GET /jobs`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<JobStatus>,
    pub operation: Option<String>,
    pub target: Option<Target>,
    /// Only jobs created by this user (the token's subject).
    pub created_by: Option<String>,
}

/// One page of jobs, newest first, with their derived view.
pub struct JobPage {
    pub jobs: Vec<(Job, JobView)>,
    /// Pass back to continue below the last job inspected; `None` at the end.
    pub next_cursor: Option<u64>,
}

#[derive(Clone)]
pub struct JobStore {
    pub(super) js: jetstream::Context,
    jobs: kv::Store,
    pub(super) responses: kv::Store,
    pub(super) names: Names,
    /// Views of jobs every expected host has answered: such a view can no longer
    /// change, so listings need not read those jobs' events again.
    settled: Arc<Mutex<HashMap<Uuid, JobView>>>,
}

/// How many settled views a store remembers (about 200 bytes each).
const SETTLED_CAPACITY: usize = 20_000;

impl JobStore {
    pub fn new(client: async_nats::Client, buckets: &Buckets, names: Names) -> Self {
        JobStore {
            js: jetstream::new(client),
            jobs: buckets.jobs.clone(),
            responses: buckets.responses.clone(),
            names,
            settled: Arc::default(),
        }
    }

    /// The job's view for a listing: from the settled cache when it can no
    /// longer change, else read and derived (and cached once settled).
    async fn summary_view(&self, job: &Job, now: OffsetDateTime) -> Result<JobView, BusError> {
        if let Some(v) = self
            .settled
            .lock()
            .ok()
            .and_then(|m| m.get(&job.id).cloned())
        {
            return Ok(v);
        }
        let (p, v) = self.view(job, now).await?;
        // Settled: every expected host answered, so later events cannot change
        // the status (a deadline-based `timeout` could still, and is not cached).
        if job.expected.is_answered_by(&p.results)
            && let Ok(mut m) = self.settled.lock()
        {
            if m.len() >= SETTLED_CAPACITY {
                m.clear();
            }
            m.insert(job.id, v.clone());
        }
        Ok(v)
    }

    /// Store a new job. Fails with [`BusError::Conflict`] if the id exists.
    pub async fn create(&self, job: &Job) -> Result<(), BusError> {
        let body =
            bytes::Bytes::from(serde_json::to_vec(job).map_err(|source| BusError::Corrupt {
                what: "job",
                source,
            })?);
        let stored = super::retry_transient("storing a job", PATIENCE, |_| {
            let body = body.clone();
            async move {
                match self.jobs.create(job.id.to_string(), body).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(BusError::request("storing a job", e)),
                }
            }
        })
        .await?;
        // "Already exists" for a fresh id means an earlier send of this very write
        // landed and only its acknowledgement was lost (the client or our retry
        // sent it again, e.g. across a NATS node failover). Anything else stored
        // under the id is a real conflict.
        if !stored && self.get(job.id).await?.as_ref() != Some(job) {
            return Err(BusError::Conflict(job.id.to_string()));
        }
        Ok(())
    }

    /// Announce a stored job on its subject; agents take it from there.
    pub async fn announce(&self, job: &Job, traceparent: Option<&str>) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", job.id.to_string().as_str());
        if let Some(tp) = traceparent {
            headers.insert(TRACEPARENT_HEADER, tp);
        }
        let subject = self.names.job_subject(&job.target, job.operation.kind());
        // Retrying is safe: the stream drops a repeated Nats-Msg-Id.
        super::retry_transient("announcing a job", PATIENCE, |_| {
            let (subject, headers) = (subject.clone(), headers.clone());
            async move {
                self.js
                    .publish_with_headers(subject, headers, job.id.to_string().into())
                    .await
                    .map_err(|e| BusError::request("announcing a job", e))?
                    .await
                    .map_err(|e| BusError::request("announcing a job", e))?;
                Ok(())
            }
        })
        .await
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Job>, BusError> {
        let bytes = super::retry_transient("reading a job", PATIENCE, |_| async {
            let found = self
                .jobs
                .get(id.to_string())
                .await
                .map_err(|e| BusError::request("reading a job", e))?;
            if found.is_some() {
                return Ok(found);
            }
            // Direct gets may be answered by a replica that has not caught up
            // with a job stored a moment ago; "not found" is confirmed by the
            // stream leader before anyone acts on it.
            match self
                .jobs
                .stream
                .get_last_raw_message_by_subject(&format!("{}{id}", self.jobs.prefix))
                .await
            {
                Ok(msg) if is_tombstone(&msg.headers) => Ok(None),
                Ok(msg) => Ok(Some(msg.payload)),
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(BusError::request("reading a job", e)),
            }
        })
        .await?;
        match bytes {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|source| {
                BusError::Corrupt {
                    what: "job",
                    source,
                }
            })?)),
            None => Ok(None),
        }
    }

    pub async fn append_event(&self, id: Uuid, event: &JobEvent) -> Result<(), BusError> {
        let body =
            bytes::Bytes::from(
                serde_json::to_vec(event).map_err(|source| BusError::Corrupt {
                    what: "event",
                    source,
                })?,
            );
        // One key for every attempt, so a retry after a lost acknowledgement
        // overwrites the same event instead of adding a second one. The host
        // is in the key because an enrolled agent may write only under its own.
        // Progress has one key per host, each report replacing the last: a
        // long change leaves one message, not hundreds.
        let last = match event.stage {
            Stage::Progress => "progress".to_owned(),
            _ => Uuid::now_v7().to_string(),
        };
        let key = format!(
            "{id}.ev.{}.{last}",
            super::registry::registry_key(&event.hostname)
        );
        super::retry_transient("appending a job event", PATIENCE, |_| async {
            self.responses
                .put(key.as_str(), body.clone())
                .await
                .map_err(|e| BusError::request("appending a job event", e))
                .map(drop)
        })
        .await
    }

    pub async fn put_result(&self, id: Uuid, result: &HostResult) -> Result<(), BusError> {
        let key = format!(
            "{id}.res.{}",
            super::registry::registry_key(&result.hostname)
        );
        self.put_response(&key, "result", "storing a job result", result)
            .await
    }

    /// Puts `value` as JSON under `key` of the responses bucket, retried
    /// while NATS is briefly away (a fixed key: a repeat is harmless).
    pub(super) async fn put_response<T: serde::Serialize>(
        &self,
        key: &str,
        what: &'static str,
        doing: &'static str,
        value: &T,
    ) -> Result<(), BusError> {
        let body = bytes::Bytes::from(
            serde_json::to_vec(value).map_err(|source| BusError::Corrupt { what, source })?,
        );
        super::retry_transient(doing, PATIENCE, |_| async {
            self.responses
                .put(key, body.clone())
                .await
                .map_err(|e| BusError::request(doing, e))
                .map(drop)
        })
        .await
    }

    /// Claim the one run of a job that must not run twice, once anywhere or
    /// once per host (`scope`). The first claimant wins, atomically (a KV
    /// create); `token` identifies this attempt, so a retry whose first try
    /// landed unacknowledged still recognises its own claim.
    pub async fn claim(
        &self,
        id: Uuid,
        scope: ClaimScope<'_>,
        token: &str,
    ) -> Result<Claim, BusError> {
        let key = format!("{id}.claim.{}", scope.key());
        let subject = format!("{}{key}", self.responses.prefix);
        super::retry_transient("claiming a job run", PATIENCE, |_| async {
            match self
                .responses
                .create(key.as_str(), token.as_bytes().to_vec().into())
                .await
            {
                Ok(_) => Ok(Claim::Ours),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    // Asked of the stream leader: a lagging replica must not
                    // hide our own claim from us.
                    let holder = self
                        .responses
                        .stream
                        .get_last_raw_message_by_subject(&subject)
                        .await
                        .map_err(|e| BusError::request("claiming a job run", e))?;
                    let holder = String::from_utf8_lossy(&holder.payload).into_owned();
                    Ok(if holder == token {
                        Claim::Ours
                    } else {
                        Claim::Taken(holder)
                    })
                }
                Err(e) => Err(BusError::request("claiming a job run", e)),
            }
        })
        .await
    }

    /// Who claimed a job's run (`scope`), if anyone did; claims nothing.
    pub async fn claim_holder(
        &self,
        id: Uuid,
        scope: ClaimScope<'_>,
    ) -> Result<Option<String>, BusError> {
        let key = format!("{id}.claim.{}", scope.key());
        match self.responses.entry(key).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                Ok(Some(String::from_utf8_lossy(&entry.value).into_owned()))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(BusError::request("reading a job's run claim", e)),
        }
    }

    /// Read every event and result of a job, in the order they were written.
    pub async fn progress(&self, job: &Job) -> Result<JobProgress, BusError> {
        let (id, from) = (job.id, job.progress_hint.max(1));
        super::retry_transient("reading job progress", PATIENCE, |_| {
            self.progress_once(id, from)
        })
        .await
    }

    /// The responses stream's last sequence, for a new job's `progress_hint`:
    /// everything written about the job comes after it. One cheap request; a
    /// failure just means "unknown" (0), never a failed job.
    pub async fn progress_hint(&self) -> u64 {
        match tokio::time::timeout(
            std::time::Duration::from_millis(500),
            self.responses.stream.get_info(),
        )
        .await
        {
            Ok(Ok(info)) => info.state.last_sequence,
            _ => 0,
        }
    }

    async fn progress_once(&self, id: Uuid, from: u64) -> Result<JobProgress, BusError> {
        let filter = format!("{}{id}.>", self.responses.prefix);
        let ev_prefix = format!("{}{id}.ev.", self.responses.prefix);
        // Anything else under the job (its run claims) is bookkeeping.
        let res_prefix = format!("{}{id}.res.", self.responses.prefix);
        let stream = &self.responses.stream;
        let mut progress = JobProgress::default();
        let mut next = from;
        loop {
            let msg = match stream
                .direct_get_next_for_subject(filter.as_str(), Some(next))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(BusError::request("reading job progress", e)),
            };
            next = msg.sequence + 1;
            if is_tombstone(&msg.headers) {
                continue;
            }
            if let Some(rest) = msg.subject.strip_prefix(ev_prefix.as_str()) {
                match serde_json::from_slice::<JobEvent>(&msg.payload) {
                    // `<host>.<uuid>`, or just `<uuid>` as written before
                    // hosts were in event keys.
                    Ok(ev)
                        if rest.rsplit_once('.').is_some_and(|(host, _)| {
                            !speaks_for(host, &ev.hostname, "job event")
                        }) => {}
                    Ok(ev) => progress.events.push(ev),
                    Err(source) => {
                        return Err(BusError::Corrupt {
                            what: "event",
                            source,
                        });
                    }
                }
            } else if let Some(host) = msg.subject.strip_prefix(res_prefix.as_str()) {
                match serde_json::from_slice::<HostResult>(&msg.payload) {
                    Ok(r) if !speaks_for(host, &r.hostname, "job result") => {}
                    Ok(r) => progress.results.push(r),
                    Err(source) => {
                        return Err(BusError::Corrupt {
                            what: "result",
                            source,
                        });
                    }
                }
            }
        }
        Ok(progress)
    }

    /// A job's derived view at `now`.
    pub async fn view(
        &self,
        job: &Job,
        now: OffsetDateTime,
    ) -> Result<(JobProgress, JobView), BusError> {
        let p = self.progress(job).await?;
        let v = compute_status(job, &p.events, &p.results, now);
        Ok((p, v))
    }

    /// Jobs newest first, from `cursor` (a stream sequence) downwards when given.
    pub async fn list(
        &self,
        filter: &ListFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<JobPage, BusError> {
        let mut pager = StreamPager::open(
            &self.jobs.stream,
            Order::NewestFirst,
            cursor,
            "listing jobs",
        )
        .await?;
        let now = OffsetDateTime::now_utc();
        let mut jobs = Vec::new();
        while !pager.is_done() && pager.scanned() < MAX_SCAN {
            let candidates = pager
                .next_window::<Job>()
                .await?
                .into_iter()
                .filter(|(_, j)| {
                    filter
                        .operation
                        .as_deref()
                        .is_none_or(|op| op == j.operation.type_name())
                        && filter.target.as_ref().is_none_or(|t| *t == j.target)
                        && filter
                            .created_by
                            .as_deref()
                            .is_none_or(|u| u == j.created_by)
                });
            let viewed: Vec<(u64, Job, JobView)> = futures::stream::iter(candidates)
                .map(|(s, j)| async move {
                    let v = self.summary_view(&j, now).await?;
                    Ok::<_, BusError>((s, j, v))
                })
                .buffered(16)
                .try_collect()
                .await?;
            for (s, j, v) in viewed {
                if filter.status.is_some_and(|st| st != v.status) {
                    continue;
                }
                if jobs.len() == limit {
                    pager.resume_at(s);
                    break;
                }
                jobs.push((j, v));
            }
            if jobs.len() == limit {
                break;
            }
        }
        Ok(JobPage {
            jobs,
            next_cursor: pager.cursor(),
        })
    }

    /// Remove a job and everything agents wrote about it. Returns false if unknown.
    pub async fn delete(&self, id: Uuid) -> Result<bool, BusError> {
        if let Ok(mut m) = self.settled.lock() {
            m.remove(&id);
        }
        if self.get(id).await?.is_none() {
            return Ok(false);
        }
        self.jobs
            .purge(id.to_string())
            .await
            .map_err(|e| BusError::request("deleting a job", e))?;
        self.responses
            .stream
            .purge()
            .filter(format!("{}{id}.>", self.responses.prefix))
            .await
            .map_err(|e| BusError::request("deleting job results", e))?;
        // Its output expires with the stream's age limit anyway.
        if let Err(e) = self.purge_output(id).await {
            tracing::warn!(job_id = %id, error = %e, "cannot delete a job's output");
        }
        Ok(true)
    }

    /// Number of jobs stored (approximately: deleted ones leave a marker until it expires).
    pub async fn count(&self) -> Result<u64, BusError> {
        let info = self
            .jobs
            .stream
            .get_info()
            .await
            .map_err(|e| BusError::request("counting jobs", e))?;
        Ok(info.state.messages)
    }
}
/// What one run claim of a job covers.
#[derive(Debug, Clone, Copy)]
pub enum ClaimScope<'a> {
    /// A job for any one agent: one claim for all.
    Any,
    /// A job for each of several hosts: one claim per host.
    Host(&'a str),
}

impl ClaimScope<'_> {
    /// The key under the job (`<job>.claim.<this>`); enrolled agents' NATS
    /// permissions name the same keys.
    pub fn key(self) -> String {
        match self {
            ClaimScope::Any => "any".to_owned(),
            ClaimScope::Host(h) => format!("host.{}", super::registry::registry_key(h)),
        }
    }
}
