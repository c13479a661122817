//! What is stored about a job: the immutable definition, append-only events, and
//! one result per host.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Operation, Target};

/// Which hosts must answer for a job to be complete, fixed when it is created from
/// the agents live at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "mode", content = "hosts")]
pub enum Expected {
    /// Any single agent answers (`_any`).
    Any,
    /// Exactly these hosts answer (a hostname, `_all`, a label).
    Hosts(Vec<String>),
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Expected {
    /// Whether these results answer everyone the job expects.
    pub fn is_answered_by(&self, results: &[HostResult]) -> bool {
        match self {
            Expected::Any => !results.is_empty(),
            Expected::Hosts(hosts) => hosts
                .iter()
                .all(|h| results.iter().any(|r| &r.hostname == h)),
        }
    }
}

/// The job as created: stored once, never changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub operation: Operation,
    pub target: Target,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The `sub` of the token that created it.
    pub created_by: String,
    pub expected: Expected,
    /// Hosts that have not answered by `created_at + timeout_ms` are reported as timed out.
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<Uuid>,
    /// Where in the store this job's events begin at the earliest (0: unknown).
    /// Reading progress starts there instead of at the beginning, which matters
    /// on servers without a subject index (nats-server 2.9).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub progress_hint: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The API's Ed25519 signature (base64) over what decides what runs where
    /// ([`super::signature`]); agents run nothing that does not verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Job {
    pub fn deadline(&self) -> OffsetDateTime {
        // Jobs come from the bus: an absurd timeout means "no deadline", never a panic.
        let timeout =
            time::Duration::milliseconds(i64::try_from(self.timeout_ms).unwrap_or(i64::MAX));
        self.created_at
            .checked_add(timeout)
            .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc())
    }
}

/// A step in a job's life on one host.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The agent received the job (attempt N).
    Acknowledged,
    /// The agent started running the operation.
    Started,
    /// How far a long operation got (`downloading 40%`), in `detail`.
    Progress,
    Completed,
    Failed,
    /// The agent refused the job unrun: its signature did not verify.
    Rejected,
    /// A stage this version does not know (written by a newer agent during a
    /// rolling upgrade): read as still running, never as an unreadable job.
    #[serde(other)]
    Unknown,
}

/// One append-only timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub hostname: String,
    pub stage: Stage,
    /// Delivery attempt, from 1; a redelivered job shows attempt 2 and up.
    pub attempt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How a host's part of a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Completed,
    Failed,
    /// The host was expected but did not answer before the deadline (never stored,
    /// only computed).
    Timeout,
}

/// The error code of a job an agent refused unrun because it does not
/// verify (see [`super::signature`]).
pub const REJECTED: &str = "rejected";

/// A machine-readable failure reason plus a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// e.g. `invalid_input`, `not_found`, `unavailable`, `interrupted`.
    pub code: String,
    pub message: String,
}

/// One host's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostResult {
    pub hostname: String,
    pub status: HostStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    pub duration_ms: u64,
}
