//! Every job result as it is stored, for the API: one subscription for all
//! jobs, dispatched by job id to whoever waits for that job.
//!
//! A subscription per job cost a SUB and an UNSUB round on every request; one
//! for the process costs nothing per job. A result is passed on only when
//! the host it names is the host key it was stored under, which NATS
//! permissions bind an enrolled agent to: an agent cannot answer for another
//! host here any more than in a stored job's view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::BusError;
use super::registry::speaks_for;
use crate::job::{HostResult, REJECTED};

type Waiters = Arc<Mutex<HashMap<Uuid, mpsc::UnboundedSender<HostResult>>>>;

/// How many refusals may wait for the auditor before more are dropped (and
/// logged): a burst of forged jobs must not hold up every other result.
const REFUSALS_CAPACITY: usize = 1024;

/// The API's single subscription to stored results.
#[derive(Clone)]
pub struct ResultFeed {
    waiters: Waiters,
}

/// One job's results as they arrive; dropping it stops the delivery.
pub struct JobResults {
    id: Uuid,
    rx: mpsc::UnboundedReceiver<HostResult>,
    waiters: Waiters,
}

impl JobResults {
    /// The next result; `None` only if the feed itself stopped.
    pub async fn next(&mut self) -> Option<HostResult> {
        self.rx.recv().await
    }
}

impl Drop for JobResults {
    fn drop(&mut self) {
        lock(&self.waiters).remove(&self.id);
    }
}

fn lock(
    w: &Waiters,
) -> std::sync::MutexGuard<'_, HashMap<Uuid, mpsc::UnboundedSender<HostResult>>> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ResultFeed {
    /// Subscribe to every result under `responses_prefix` (the responses
    /// bucket's `$KV.<bucket>.`). Results of refused jobs also go to the
    /// returned receiver, for the audit trail.
    pub async fn start(
        client: &async_nats::Client,
        responses_prefix: String,
    ) -> Result<(ResultFeed, mpsc::Receiver<(Uuid, HostResult)>), BusError> {
        let mut sub = client
            .subscribe(format!("{responses_prefix}*.res.>"))
            .await
            .map_err(|e| BusError::request("subscribing to job results", e))?;
        let waiters: Waiters = Arc::default();
        let (refusals_tx, refusals) = mpsc::channel(REFUSALS_CAPACITY);
        let feed = ResultFeed {
            waiters: waiters.clone(),
        };
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                // One lock: whether someone waits, and their channel.
                let mut waiter = None;
                let Some((id, result)) = parse(&responses_prefix, &msg, |id| {
                    waiter = lock(&waiters).get(&id).cloned();
                    waiter.is_some()
                }) else {
                    continue;
                };
                if result.error.as_ref().is_some_and(|e| e.code == REJECTED)
                    && refusals_tx.try_send((id, result.clone())).is_err()
                {
                    tracing::warn!(job_id = %id, "too many refused jobs at once; not auditing this one");
                }
                if let Some(tx) = waiter {
                    let _ = tx.send(result);
                }
            }
            // Every waiter's channel closes with the map: they see the end.
            lock(&waiters).clear();
        });
        Ok((feed, refusals))
    }

    /// Deliver the results of job `id` from now on. Register before the job
    /// is announced, so no result slips past.
    pub fn register(&self, id: Uuid) -> JobResults {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.waiters).insert(id, tx);
        JobResults {
            id,
            rx,
            waiters: self.waiters.clone(),
        }
    }
}

/// [`REJECTED`] as a JSON string, looked for in every result's bytes.
const REFUSAL_NEEDLE: &[u8] = b"\"rejected\"";

/// Whether a stored result might be a refusal, without parsing it.
fn mentions_refusal(payload: &[u8]) -> bool {
    payload
        .windows(REFUSAL_NEEDLE.len())
        .any(|w| w == REFUSAL_NEEDLE)
}

/// The job id and result of a message on `<responses><id>.res.<host>`, when
/// it is `wanted` or a refusal, and the result speaks for the host it is
/// stored under.
fn parse(
    responses: &str,
    msg: &async_nats::Message,
    wanted: impl FnOnce(Uuid) -> bool,
) -> Option<(Uuid, HostResult)> {
    let (id, host) = msg.subject.strip_prefix(responses)?.split_once(".res.")?;
    let id: Uuid = id.parse().ok()?;
    // A deleted key's marker: nothing to pass on. Every host's results reach
    // every API: read only those someone waits for, and refusals (audited).
    if msg.payload.is_empty() || !(wanted(id) || mentions_refusal(&msg.payload)) {
        return None;
    }
    let result: HostResult = match serde_json::from_slice(&msg.payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(job_id = %id, error = %e, "ignoring an unreadable result");
            return None;
        }
    };
    speaks_for(host, &result.hostname, "job result").then_some((id, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::HostStatus;

    fn message(subject: &str, result: &HostResult) -> async_nats::Message {
        let payload = bytes::Bytes::from(serde_json::to_vec(result).unwrap());
        async_nats::Message {
            subject: subject.into(),
            reply: None,
            length: payload.len(),
            payload,
            headers: None,
            status: None,
            description: None,
        }
    }

    fn result(host: &str) -> HostResult {
        HostResult {
            hostname: host.into(),
            status: HostStatus::Completed,
            data: None,
            error: None,
            duration_ms: 1,
        }
    }

    #[test]
    fn a_result_counts_only_for_the_host_it_is_stored_under() {
        let prefix = "$KV.osapi-job-responses.";
        let id = Uuid::now_v7();
        let own = message(
            &format!("{prefix}{id}.res.web-01.example.com"),
            &result("web-01.example.com"),
        );
        assert_eq!(
            parse(prefix, &own, |_| true),
            Some((id, result("web-01.example.com")))
        );
        // Stored under one host's key, naming another.
        let forged = message(&format!("{prefix}{id}.res.db-01"), &result("web-01"));
        assert_eq!(parse(prefix, &forged, |_| true), None);
        let elsewhere = message(&format!("$KV.other.{id}.res.web-01"), &result("web-01"));
        assert_eq!(parse(prefix, &elsewhere, |_| true), None);
        let mut deleted = own.clone();
        deleted.payload = bytes::Bytes::new();
        assert_eq!(parse(prefix, &deleted, |_| true), None);
        // Nobody waits for it and it is no refusal: not even parsed.
        assert_eq!(parse(prefix, &own, |_| false), None);
    }
}
