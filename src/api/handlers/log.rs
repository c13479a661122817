//! `GET /api/v1/log/follow`: one host's journal as Server-Sent Events.
//!
//! The API follows by polling the host with `log.entries.get` jobs: first
//! the newest entries (the query's `limit`, default 10) oldest first, then,
//! after the newest entry the host looked at (whether its filter let it
//! through or not), whatever is new, each poll waiting on the host (`wait`,
//! 10 s) when nothing is. Every entry is an `entry` event whose
//! `id` is its cursor, so a client that reconnects with `Last-Event-ID`
//! resumes after the last entry it saw. The first host to answer is the one
//! followed. A host's failure ends the stream with an `error` event.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use futures::Stream;

use crate::api::AppState;
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::api::extract::parse_query;
use crate::api::service::Submission;
use crate::job::{HostStatus, LogQuery, Operation, Target};
use crate::provider::LogEntries;

/// How long one poll waits on the host for a new entry.
const POLL_WAIT_SECS: u32 = 10;
/// The newest entries a follow starts with, when the query gives no limit.
const FIRST_ENTRIES: u32 = 10;
/// Between polls that could not wait on the host (no cursor yet).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Where a follow stands between polls.
struct Follow {
    state: AppState,
    created_by: String,
    traceparent: Option<String>,
    query: LogQuery,
    target: Target,
    first: bool,
    done: bool,
}

/// The query's `target` and the rest as a [`LogQuery`] (its own fields).
fn parse(query: Option<&str>) -> Result<(Target, LogQuery), ApiError> {
    let mut target = None;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "target" => target = Some(value.into_owned()),
            "wait" => return Err(ApiError::invalid("wait", "a follow sets its own wait")),
            _ => {
                rest.append_pair(&name, &value);
            }
        }
    }
    let query: LogQuery = parse_query(rest.finish().as_bytes())?;
    query.validate()?;
    let target = target.as_deref().unwrap_or("_any").parse()?;
    Ok((target, query))
}

/// Which host to follow.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the parameter `parse` reads.
pub struct FollowTarget {
    /// The host: a hostname, or `_any` (default; the first to answer is
    /// followed).
    target: Option<String>,
}

/// One host's journal as Server-Sent Events (log:read): `entry` events (the
/// entry as JSON, its cursor as the event id; `Last-Event-ID` resumes), and
/// an `error` event when the host fails.
#[utoipa::path(get, path = "/api/v1/log/follow", tag = "log",
    params(FollowTarget, LogQuery),
    responses((status = 200, description = "entry events, oldest first", content_type = "text/event-stream", body = String), (status = 400, body = crate::api::error::Problem)),
    security(("bearer" = [])))]
pub async fn follow(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (target, mut query) = parse(raw.as_deref())?;
    if let Some(last) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        query.cursor = Some(last.to_owned());
        query
            .validate()
            .map_err(|e| ApiError::invalid("Last-Event-ID", e.reason))?;
    }
    let follow = Follow {
        state,
        created_by: who.subject.clone(),
        traceparent: super::traceparent(&headers),
        first: query.cursor.is_none(),
        query,
        target,
        done: false,
    };
    let stopping = follow.state.shutdown.clone();
    Ok(super::event_stream(follow, stopping))
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
    /// One poll of the host: its new entries as events, or an `error` event
    /// that ends the stream.
    async fn next_events(&mut self) -> Vec<Event> {
        let mut q = self.query.clone();
        let marking = match (&q.cursor, self.first) {
            (Some(_), _) => {
                q.wait = Some(POLL_WAIT_SECS);
                q.limit = Some(q.limit.unwrap_or(200));
                false
            }
            (None, true) => {
                q.limit = Some(q.limit.unwrap_or(FIRST_ENTRIES));
                false
            }
            // Nothing matched at first and the journal was empty: wait for
            // its first entry, then read on after it.
            (None, false) => {
                tokio::time::sleep(IDLE_POLL).await;
                true
            }
        };
        self.first = false;
        if marking {
            self.mark_newest().await;
            return Vec::new();
        }
        let newest_first = q.cursor.is_none();
        let answer = match self.ask(q).await {
            Ok(answer) => answer,
            Err(message) => {
                self.done = true;
                return vec![Event::default().event("error").data(message)];
            }
        };
        let mut entries = answer.entries;
        if newest_first {
            entries.reverse();
        }
        // Read on after the newest entry the host looked at (past entries
        // its filter passed over; at first, the journal's newest as the
        // host saw it), else after the newest entry shown.
        if let Some(next) = answer
            .cursor
            .or_else(|| entries.last().map(|e| e.cursor.clone()))
        {
            self.query.cursor = Some(next);
        }
        entries
            .iter()
            .filter_map(|e| {
                Event::default()
                    .event("entry")
                    .id(e.cursor.clone())
                    .json_data(e)
                    .ok()
            })
            .collect()
    }

    /// Continue after the host's newest entry, whatever it is.
    async fn mark_newest(&mut self) {
        let newest = LogQuery {
            limit: Some(1),
            ..LogQuery::default()
        };
        if let Ok(answer) = self.ask(newest).await
            && let Some(e) = answer.entries.first()
        {
            self.query.cursor = Some(e.cursor.clone());
        }
    }

    /// Runs one `log.entries.get` on the followed host; the first host to
    /// answer becomes the followed one.
    async fn ask(&mut self, q: LogQuery) -> Result<LogEntries, String> {
        let operation = Operation::LogGet(q);
        let timeout = self
            .state
            .default_wait
            .max(self.state.jobs.min_deadline(&operation, &self.target));
        let submission = Submission {
            operation,
            target: self.target.clone(),
            timeout,
            created_by: self.created_by.clone(),
            traceparent: self.traceparent.clone(),
            retry_of: None,
        };
        let failed = |e: ApiError| e.to_string();
        let (job, waiter) = self
            .state
            .jobs
            .submit(submission, true)
            .await
            .map_err(failed)?;
        let waiter = waiter.ok_or_else(|| "the job was not waited for".to_owned())?;
        let outcome = self.state.jobs.wait(&job, waiter).await.map_err(failed)?;
        let result = outcome
            .results
            .into_iter()
            .next()
            .ok_or_else(|| "no host answered".to_owned())?;
        self.target = Target::Host(result.hostname.clone());
        match (result.status, result.data, result.error) {
            (HostStatus::Completed, Some(data), _) => {
                serde_json::from_value(data).map_err(|e| format!("{}: {e}", result.hostname))
            }
            (_, _, Some(error)) => Err(format!(
                "{}: {} ({})",
                result.hostname, error.message, error.code
            )),
            _ => Err(format!("{}: no entries in the answer", result.hostname)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_takes_the_query_and_a_target() {
        let (target, q) = parse(Some("target=web-01&unit=ssh.service&priority=err")).unwrap();
        assert_eq!(target, Target::Host("web-01".into()));
        assert_eq!(q.unit.as_deref(), Some("ssh.service"));
        for (bad, field) in [
            ("wait=3", "wait"),
            ("priority=loud", "priority"),
            ("colour=red", "colour"),
        ] {
            let Err(ApiError::InvalidInput(e)) = parse(Some(bad)) else {
                panic!("{bad}");
            };
            assert_eq!(e.field, field, "{bad}");
        }
    }
}
