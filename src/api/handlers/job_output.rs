//! `GET /api/v1/jobs/{id}/output` streams a job's live output as
//! Server-Sent Events; `POST /api/v1/jobs/{id}/cancel` stops a command job.
//!
//! The stream sends, per host, `stdout` and `stderr` chunks (each with its
//! host's `seq`), a `truncated` note past the live cap, an `exit` event when
//! the command ended there, and last one `end` event once the job settled.
//! Every event but `end` has the output stream's sequence as its `id`: a
//! client that reconnects with `Last-Event-ID` (or `?after=`) goes on after
//! it, on this API instance or another. Any job can be followed; only
//! commands print.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use futures::Stream;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::AppState;
use crate::api::auth::Principal;
use crate::api::error::{ApiError, Problem};
use crate::api::extract::QueryOf;
use crate::bus::{JobStore, OutputWakeups};
use crate::job::{CancelRequest, Expected, Job, OutputEnd, OutputRecord};
use crate::wire::CancelAccepted;

/// Without news, how often a follow looks whether the job settled.
const SETTLE_CHECK: Duration = Duration::from_secs(1);

/// The query of `GET /jobs/{id}/output`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputParams {
    /// Go on after this event id (what `Last-Event-ID` says; the header wins).
    after: Option<u64>,
    /// `false`: send what there is now and close (with `end` if the job
    /// settled) instead of waiting for more. Default `true`.
    follow: Option<bool>,
}

/// One Server-Sent Event of a job's output stream, as the stream carries it
/// (documentation: the response is `text/event-stream`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct OutputEvent {
    /// `stdout`, `stderr`, `truncated`, `exit`, `end`, or `error` (the
    /// stream could not be read; it ends).
    event: String,
    /// JSON: an `OutputChunk` (`stdout`, `stderr`), `OutputCut`
    /// (`truncated`), `OutputExit` (`exit`), `OutputEnd` (`end`); text for
    /// `error`.
    data: String,
    /// The output stream's sequence, where `Last-Event-ID` goes on (none on
    /// `end` and `error`).
    id: Option<String>,
}

/// A job's live output (job:read, and the job's own permission: what a
/// command prints is for those who may run commands).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/output", tag = "jobs",
    params(("id" = String, Path), OutputParams,
        ("Last-Event-ID" = Option<String>, Header, description = "the last event id seen: go on after it")),
    responses(
        (status = 200, description = "`stdout`, `stderr`, `truncated` and `exit` events (data: their JSON), then `end`", content_type = "text/event-stream", body = OutputEvent),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn output(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    QueryOf(params): QueryOf<OutputParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let store = state.jobs.store.clone();
    let job = super::jobs::stored_job(&store, &id).await?;
    who.require(job.operation.permission())?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID", "not an event id of this stream"))?,
        None => params.after.unwrap_or(0),
    };
    // Subscribed before the first read: nothing sent in between is missed.
    let wakeups = store.watch_output(job.id).await?;
    let follow = Follow {
        store,
        job,
        next: after.saturating_add(1),
        follow: params.follow.unwrap_or(true),
        wakeups,
        check_now: false,
        done: false,
    };
    Ok(super::event_stream(follow, state.shutdown.clone()))
}

/// Where a follow stands.
struct Follow {
    store: JobStore,
    job: Job,
    /// The next stream sequence to read from.
    next: u64,
    /// Wait for more (else close once caught up).
    follow: bool,
    wakeups: OutputWakeups,
    /// An exit came: look whether the job settled without waiting.
    check_now: bool,
    done: bool,
}

impl super::EventSource for Follow {
    fn is_done(&self) -> bool {
        self.done
    }

    async fn poll(&mut self) -> Vec<Event> {
        self.next_events().await
    }
}

impl Follow {
    /// The next events: new records, or (once the job settled and every
    /// record was sent) the `end`. Waits for news when there is none.
    async fn next_events(&mut self) -> Vec<Event> {
        loop {
            match self.read().await {
                Ok(events) if !events.is_empty() => return events,
                Ok(_) => {}
                Err(e) => return self.fail(&e),
            }
            if self.check_now || !self.follow {
                self.check_now = false;
            } else {
                tokio::select! {
                    woke = self.wakeups.next() => match woke {
                        Some(()) => continue,
                        // No wake-ups any more: look now and then.
                        None => tokio::time::sleep(SETTLE_CHECK).await,
                    },
                    _ = tokio::time::sleep(SETTLE_CHECK) => {}
                }
            }
            match self.store.view(&self.job, OffsetDateTime::now_utc()).await {
                Ok((_, view)) if view.status.is_final() => {
                    // Whatever came in the meantime goes before the end.
                    match self.read().await {
                        Ok(events) if !events.is_empty() => return events,
                        Ok(_) => {}
                        Err(e) => return self.fail(&e),
                    }
                    self.done = true;
                    let end = OutputEnd {
                        job_id: self.job.id,
                        status: view.status,
                    };
                    let data = serde_json::to_string(&end).unwrap_or_default();
                    return vec![Event::default().event("end").data(data)];
                }
                Ok(_) if !self.follow => {
                    self.done = true;
                    return Vec::new();
                }
                Ok(_) => {}
                Err(e) => return self.fail(&e),
            }
        }
    }

    async fn read(&mut self) -> Result<Vec<Event>, crate::bus::BusError> {
        loop {
            let records = self.store.read_output(self.job.id, self.next).await?;
            let batch = records.len();
            let events = self.events_of(records);
            // A whole batch of records this job does not show: read on.
            if !events.is_empty() || batch < crate::bus::OUTPUT_READ_BATCH {
                return Ok(events);
            }
        }
    }

    fn events_of(&mut self, records: Vec<(u64, OutputRecord)>) -> Vec<Event> {
        let mut events = Vec::with_capacity(records.len());
        for (seq, record) in records {
            self.next = seq + 1;
            // Only the hosts the job went to speak in it.
            if let Expected::Hosts(hosts) = &self.job.expected
                && !hosts.iter().any(|h| h == record.hostname())
            {
                continue;
            }
            if matches!(record, OutputRecord::Exit(_)) {
                self.check_now = true;
            }
            let Ok(data) = record.data() else { continue };
            events.push(
                Event::default()
                    .id(seq.to_string())
                    .event(record.event())
                    .data(data),
            );
        }
        events
    }

    fn fail(&mut self, e: &crate::bus::BusError) -> Vec<Event> {
        tracing::warn!(job_id = %self.job.id, error = %e, "cannot read a job's output");
        self.done = true;
        vec![
            Event::default()
                .event("error")
                .data(format!("cannot read the job's output: {e}")),
        ]
    }
}

/// Stop a command job (command:execute): each agent running it stops its
/// command (SIGTERM, then SIGKILL 5 s later), whose result then says
/// `cancelled` and keeps what it printed; one not started yet never starts.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 202, body = CancelAccepted), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<CancelAccepted>), ApiError> {
    let store = &state.jobs.store;
    let job = super::jobs::stored_job(store, &id).await?;
    if !job.operation.is_command() {
        return Err(ApiError::Conflict(format!(
            "job {} is a {} job; only command jobs can be cancelled",
            job.id,
            job.operation.type_name()
        )));
    }
    who.require(job.operation.permission())?;
    let now = OffsetDateTime::now_utc();
    let (_, view) = store.view(&job, now).await?;
    if view.status.is_final() {
        return Err(ApiError::Conflict(format!(
            "job {} has ended ({}); there is nothing to cancel",
            job.id,
            view.status.as_str()
        )));
    }
    store
        .request_cancel(
            job.id,
            &CancelRequest {
                by: who.subject.clone(),
                at: now,
            },
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CancelAccepted {
            job_id: job.id,
            cancel_requested: true,
        }),
    ))
}
