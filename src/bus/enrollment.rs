//! Enrollment records on the bus, in two buckets so that a join credential
//! holder can never crowd out or touch a decision:
//!
//! - **requests** (`agent-requests`), one per agent key, written by agents
//!   with the join credential ([`Role::Enroll`](super::Role::Enroll) may do
//!   nothing else), bounded, oldest dropped first;
//! - **decisions** (`agent-enrollment`), `accepted.<key>` and
//!   `rejected.<key>`, written by the API, watched by the embedded server's
//!   supervisor, which gives every accepted key a NATS user of its own.
//!
//! The rules (who may be accepted) are in [`crate::enrollment`].

use async_nats::jetstream::{self, kv};
use futures::{StreamExt, TryStreamExt};

use super::BusError;
use crate::bus::Names;
use crate::enrollment::{Enrollment, EnrollmentState, EnrollmentView};

/// Pending requests, one per agent key.
pub const REQUESTS_BUCKET: &str = "agent-requests";
/// Accepted and rejected agents, `<state>.<key>`.
pub const DECISIONS_BUCKET: &str = "agent-enrollment";
/// A request is a few hundred bytes; these bound what a join credential's
/// holder can make us store: per request, and in all.
pub const ONE_REQUEST_MAX_BYTES: i32 = 4096;
pub const ALL_REQUESTS_MAX_BYTES: u64 = 1024 * 1024;
/// Decisions are written by admins only; room for tens of thousands.
pub const DECISIONS_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// The API's handle on both buckets.
#[derive(Clone)]
pub struct EnrollmentStore {
    requests: kv::Store,
    decisions: kv::Store,
}

impl EnrollmentStore {
    /// Open both buckets (provisioned with the others).
    pub async fn open(js: &jetstream::Context, names: &Names) -> Result<Self, BusError> {
        Ok(EnrollmentStore {
            requests: open(js, &names.resource(REQUESTS_BUCKET)).await?,
            decisions: open(js, &names.resource(DECISIONS_BUCKET)).await?,
        })
    }

    /// Every request and decision; requests already decided are left out.
    pub async fn list(&self) -> Result<Vec<EnrollmentView>, BusError> {
        let mut all = Vec::new();
        for (key, enrollment) in entries(&self.decisions).await? {
            if let Some((state, _)) = EnrollmentState::parse_key(&key) {
                all.push(EnrollmentView { state, enrollment });
            }
        }
        for (key, enrollment) in entries(&self.requests).await? {
            // The key is the agent's, whatever the body claims.
            let decided = all.iter().any(|v| v.enrollment.public_key == key);
            if !decided && enrollment.public_key == key {
                all.push(EnrollmentView {
                    state: EnrollmentState::Pending,
                    enrollment,
                });
            }
        }
        all.sort_by_key(|v| v.enrollment.requested_at);
        Ok(all)
    }

    /// Record `decision` about `enrollment`, replacing any earlier one, and
    /// drop its request.
    pub async fn decide(
        &self,
        decision: EnrollmentState,
        enrollment: &Enrollment,
    ) -> Result<(), BusError> {
        let key = &enrollment.public_key;
        let body = serde_json::to_vec(enrollment).map_err(|source| BusError::Corrupt {
            what: "enrollment",
            source,
        })?;
        // The earlier decision goes first: a rejection that fails half way
        // leaves the agent without a user, never with one.
        for other in EnrollmentState::ALL {
            if other != decision && other != EnrollmentState::Pending {
                self.decisions
                    .delete(other.key(key))
                    .await
                    .map_err(|e| BusError::request("recording an enrollment decision", e))?;
            }
        }
        self.decisions
            .put(decision.key(key), body.into())
            .await
            .map_err(|e| BusError::request("recording an enrollment decision", e))?;
        self.requests
            .delete(key.as_str())
            .await
            .map_err(|e| BusError::request("dropping an enrollment request", e))?;
        Ok(())
    }
}

/// File `request` (an agent holding the join credential).
pub async fn submit(
    js: &jetstream::Context,
    names: &Names,
    request: &Enrollment,
) -> Result<(), BusError> {
    let requests = open(js, &names.resource(REQUESTS_BUCKET)).await?;
    let body = serde_json::to_vec(request).map_err(|source| BusError::Corrupt {
        what: "enrollment request",
        source,
    })?;
    requests
        .put(request.public_key.as_str(), body.into())
        .await
        .map_err(|e| BusError::request("filing an enrollment request", e))?;
    Ok(())
}

/// The accepted agents, as a stream of complete sets: the first once the
/// bucket's history is read (none while nobody was ever accepted), then one
/// after every change. For the
/// supervisor, which turns each set into NATS users.
pub async fn watch_accepted(
    js: &jetstream::Context,
    names: &Names,
) -> Result<impl futures::Stream<Item = Vec<Enrollment>> + use<>, BusError> {
    let decisions = open(js, &names.resource(DECISIONS_BUCKET)).await?;
    let prefix = EnrollmentState::Accepted.key("");
    let watch = decisions
        .watch_with_history(format!("{prefix}>"))
        .await
        .map_err(|e| BusError::request("watching enrollment decisions", e))?;
    let mut accepted = std::collections::BTreeMap::new();
    Ok(watch.filter_map(move |entry| {
        let update = match entry {
            Ok(entry) => {
                let key = entry.key.trim_start_matches(&prefix).to_owned();
                match entry.operation {
                    kv::Operation::Put => {
                        match serde_json::from_slice::<Enrollment>(&entry.value) {
                            Ok(e) if e.public_key == key => {
                                accepted.insert(key, e);
                            }
                            _ => {
                                tracing::warn!(%key, "ignoring an unreadable enrollment decision");
                                accepted.remove(&key);
                            }
                        }
                    }
                    kv::Operation::Delete | kv::Operation::Purge => {
                        accepted.remove(&key);
                    }
                }
                // Only once the history is read, then after each change.
                (entry.delta == 0).then(|| accepted.values().cloned().collect())
            }
            Err(e) => {
                tracing::warn!(error = %e, "enrollment watch error");
                None
            }
        };
        std::future::ready(update)
    }))
}

async fn open(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, BusError> {
    js.get_key_value(bucket)
        .await
        .map_err(|e| BusError::provision(format!("bucket {bucket}"), &e))
}

/// Every readable entry of a small bucket, by key.
async fn entries(kv: &kv::Store) -> Result<Vec<(String, Enrollment)>, BusError> {
    let keys: Vec<String> = match kv.keys().await {
        Ok(keys) => keys
            .try_collect()
            .await
            .map_err(|e| BusError::request("listing enrollments", e))?,
        Err(e) => return Err(BusError::request("listing enrollments", e)),
    };
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let value = kv
            .get(key.as_str())
            .await
            .map_err(|e| BusError::request("reading an enrollment", e))?;
        match value.map(|v| serde_json::from_slice::<Enrollment>(&v)) {
            Some(Ok(e)) => out.push((key, e)),
            // Anyone with the join credential can write junk: skip it.
            Some(Err(_)) => tracing::warn!(%key, "ignoring an unreadable enrollment entry"),
            None => {}
        }
    }
    Ok(out)
}
