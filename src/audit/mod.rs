//! The audit trail (SPEC §7): one [`AuditEntry`] for every request that reaches
//! an authenticated endpoint, allowed or refused.
//!
//! Each entry is written twice:
//!
//! * to the **journal**, at once, as a structured entry with a fixed
//!   [`MESSAGE_ID`] and one field per attribute ([`journal`]), so
//!   `journalctl MESSAGE_ID=a97467b5feae4037bae5e6d56e3350c0` lists them;
//! * to the **audit bucket** (key = entry id), which the audit endpoints read
//!   ([`AuditStore`]). The request only enqueues the entry in a bounded buffer; a
//!   background writer stores entries in order and retries with back-off while
//!   NATS is away ([`Auditor`], [`AuditWriter`]). A full buffer drops the entry
//!   from the bucket (it is still in the journal), counted and logged.
//!
//! Jobs an agent refused as not signed by this deployment's API are audited
//! too, by the API on the agent's behalf ([`rejections`]).
//!
//! Entries never carry tokens: the user is the token's `sub` (or `anonymous`).
//! Wiring into the router is in [`crate::api::audit`].

mod buffer;
mod failures;
pub mod journal;
pub mod rejections;
mod store;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub use buffer::{AuditWriter, Auditor, BUFFER_CAPACITY, EntrySink};
pub use journal::JournalSink;
pub use store::{AuditFilter, AuditPage, AuditStore};

/// The journal `MESSAGE_ID` of every audit entry: a random 128-bit id made once
/// for OSAPI's audit trail (journald's catalog convention), never to change.
pub const MESSAGE_ID: &str = "a97467b5feae4037bae5e6d56e3350c0";
/// The journal `SYSLOG_IDENTIFIER` of audit entries (logs use `osapi-api`).
pub const SYSLOG_IDENTIFIER: &str = "osapi-audit";
/// The user of a request without a valid token.
pub const ANONYMOUS: &str = "anonymous";
/// Longest path kept in an entry; longer ones are cut (and marked) so one
/// request cannot make an entry too large for the journal or the bucket.
pub const MAX_PATH_BYTES: usize = 2048;

/// Why auditing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// One audited request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// UUIDv7: ids sort by time.
    pub id: Uuid,
    /// When the request arrived.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: OffsetDateTime,
    /// The token's subject, or `anonymous` when the token is missing or invalid.
    pub user: String,
    /// The token's roles (empty for `anonymous`).
    pub roles: Vec<String>,
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
    /// The OpenAPI operationId of the route.
    pub operation_id: String,
    /// The client's IP address, or `unix` for the local socket.
    pub source_ip: String,
    pub response_code: u16,
    pub duration_ms: u64,
    /// The job the request created, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// The W3C trace id of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// For failed authentications aggregated per source and minute: how many
    /// requests this entry stands for (the latest one's path and time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// What happened, when the request line does not say: why an agent
    /// refused a job ([`rejections`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEntry {
    /// The human line of the journal entry: `alice GET /api/v1/jobs → 200 (3 ms)`.
    pub fn summary(&self) -> String {
        let job = self
            .job_id
            .map(|j| format!(", job {j}"))
            .unwrap_or_default();
        let times = self
            .count
            .map(|n| format!(" ×{n} from {}", self.source_ip))
            .unwrap_or_default();
        let detail = self
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        format!(
            "{} {} {} → {}{times} ({} ms{job}){detail}",
            self.user, self.method, self.path, self.response_code, self.duration_ms
        )
    }
}

/// `path` cut to [`MAX_PATH_BYTES`] on a character boundary, marked with `…`.
pub fn bounded_path(path: &str) -> String {
    if path.len() <= MAX_PATH_BYTES {
        return path.to_owned();
    }
    let mut end = MAX_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

#[cfg(test)]
pub(crate) fn sample_entry() -> AuditEntry {
    AuditEntry {
        id: Uuid::now_v7(),
        timestamp: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        user: "alice".into(),
        roles: vec!["admin".into(), "ops".into()],
        method: "GET".into(),
        path: "/api/v1/node/hostname".into(),
        operation_id: "node_hostname".into(),
        source_ip: "127.0.0.1".into(),
        response_code: 200,
        duration_ms: 12,
        job_id: Some(Uuid::now_v7()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        count: None,
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serialise_with_every_attribute_and_round_trip() {
        let e = sample_entry();
        let v = serde_json::to_value(&e).unwrap();
        for field in [
            "id",
            "timestamp",
            "user",
            "roles",
            "method",
            "path",
            "operation_id",
            "source_ip",
            "response_code",
            "duration_ms",
            "job_id",
            "trace_id",
        ] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["response_code"], 200);
        let back: AuditEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn absent_job_and_trace_are_left_out() {
        let e = AuditEntry {
            job_id: None,
            trace_id: None,
            ..sample_entry()
        };
        let v = serde_json::to_value(&e).unwrap();
        assert!(
            v.get("job_id").is_none() && v.get("trace_id").is_none(),
            "{v}"
        );
        assert_eq!(serde_json::from_value::<AuditEntry>(v).unwrap(), e);
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let long = format!("/{}", "é".repeat(MAX_PATH_BYTES));
        let cut = bounded_path(&long);
        assert!(cut.len() <= MAX_PATH_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(bounded_path("/api/v1/jobs"), "/api/v1/jobs");
    }
}
