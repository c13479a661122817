//! The API's wire types: what requests carry and responses hold, shared by
//! the API (which serves them), `osapictl` (which reads them) and the bus
//! (agents' heartbeats). Plain data, no behaviour beyond small helpers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::enrollment::EnrollmentView;
use crate::job::{
    Expected, HostProgress, HostResult, HostStatus, JobEvent, JobStatus, Kind, OperationRequest,
};

/// The RFC 9457 body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, for 400s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The permission that was missing, for 403s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// The job concerned, e.g. on a 504.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Version {
    pub version: String,
    pub api: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Component {
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthStatus {
    /// `ok` when every component is, `degraded` otherwise.
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub memory_rss_bytes: Option<u64>,
    pub nats: String,
    pub agents_live: usize,
    pub components: Vec<Component>,
}

/// The caller, as its token says: what the console uses to show only the
/// buttons that would work. The server checks every request anyway.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The token's subject.
    pub subject: String,
    pub roles: Vec<String>,
    /// Every permission the token grants, its roles expanded (e.g. `job:read`).
    pub permissions: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    pub job_id: Uuid,
    pub status: JobStatus,
}

/// The synchronous answer of a domain endpoint.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobOutcome {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub results: Vec<HostResult>,
}

impl JobOutcome {
    /// True when some host answered and every answer failed with `code`.
    pub fn all_failed_with(&self, code: &str) -> bool {
        !self.results.is_empty()
            && self.results.iter().all(|r| {
                r.status == HostStatus::Failed && r.error.as_ref().is_some_and(|e| e.code == code)
            })
    }
}

/// The body of `POST /jobs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    pub operation: OperationRequest,
    /// `_any` (default), `_all`, a hostname or `key:value`.
    #[serde(default)]
    pub target: Option<String>,
    /// How long hosts have to answer, e.g. `60s` (default 60s, max 1h).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// The answer of `POST /jobs` and `POST /jobs/{id}/retry`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Created {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub target: String,
    pub expected: Expected,
}

/// A job with everything known about it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobDetail {
    pub id: Uuid,
    /// True when the caller lacks the operation's own permission: then
    /// `operation.data` is null and no result carries `data` (a command's
    /// request and output are visible only with command:execute).
    pub redacted: bool,
    /// The request. `env` values are never returned, only their names.
    pub operation: OperationRequest,
    pub kind: Kind,
    pub target: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub expected: Expected,
    pub timeout_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub status: JobStatus,
    pub hosts: Vec<HostProgress>,
    /// Every event in order, including each redelivery attempt.
    pub timeline: Vec<JobEvent>,
    pub results: Vec<HostResult>,
}

/// One row of a job listing.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: Uuid,
    pub operation: String,
    pub target: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub status: JobStatus,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStats {
    /// Jobs stored (within the bucket's TTL).
    pub total: u64,
    /// Status counts over the most recent `window` jobs.
    pub by_status: BTreeMap<String, u64>,
    pub by_operation: BTreeMap<String, u64>,
    pub window: usize,
}

/// Retry body: optionally a new target.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryJob {
    #[serde(default)]
    pub target: Option<String>,
}

/// The answer to `POST /jobs/{id}/cancel`: the agents running the job were
/// asked to stop it; its results say how it ended.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelAccepted {
    pub job_id: Uuid,
    pub cancel_requested: bool,
}

/// The file store's files, by name.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileList {
    pub files: Vec<crate::bus::StoredFile>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentInfo>,
}

/// Agents that asked to join, and those accepted or rejected.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentList {
    pub enrollments: Vec<EnrollmentView>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What an agent says about itself in each heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentInfo {
    pub hostname: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: OffsetDateTime,
    pub max_jobs: usize,
    pub running_jobs: usize,
    /// How long a command job that gives no timeout may run on this agent
    /// (`node.agent.command.default_timeout`), so the API can wait that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_default_timeout_ms: Option<u64>,
    /// Load, memory and root filesystem as of this heartbeat; absent when
    /// the agent could not read them (or is older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vitals: Option<Vitals>,
}

/// A host's load, memory and root filesystem, sent with each heartbeat so
/// a fleet view needs no job per host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Vitals {
    /// The one-minute load average.
    pub load1: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// Of the filesystem mounted on `/`.
    pub root_used_bytes: u64,
    pub root_total_bytes: u64,
}
