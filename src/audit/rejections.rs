//! Jobs an agent refused, on the audit trail.
//!
//! An agent refuses a job that does not verify (unsigned, altered, signed by
//! another key, stored under another id) with a failed result whose error
//! code is `rejected`. Agents may not write audit entries, so the API, which
//! sees every stored result ([`crate::bus::ResultFeed`]), records one entry
//! per refusing host, as if
//! the agent had answered `403` to a request for that job. Nobody went
//! through the API to make such a job, so this is the only trace of the
//! attempt besides the agent's journal.

use std::collections::HashSet;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{AuditEntry, Auditor};
use crate::bus::JobStore;
use crate::job::{HostResult, HostStatus, REJECTED};
/// The audit `operation_id` of a refused job.
pub const OPERATION_ID: &str = "jobs_rejected";

/// The audit entry for `result` of job `job_id`, if it is a refusal.
pub fn entry(job_id: Uuid, result: &HostResult) -> Option<AuditEntry> {
    let error = result.error.as_ref()?;
    if result.status != HostStatus::Failed || error.code != REJECTED {
        return None;
    }
    Some(AuditEntry {
        id: Uuid::now_v7(),
        timestamp: OffsetDateTime::now_utc(),
        user: format!("agent:{}", result.hostname),
        roles: Vec::new(),
        method: "NATS".to_owned(),
        path: format!("/api/v1/jobs/{job_id}"),
        operation_id: OPERATION_ID.to_owned(),
        source_ip: "nats".to_owned(),
        response_code: 403,
        duration_ms: 0,
        job_id: Some(job_id),
        trace_id: None,
        count: None,
        detail: Some(super::bounded_path(&error.message)),
    })
}

/// How many (job, host) refusals are remembered to audit each only once.
const SEEN_CAPACITY: usize = 10_000;

/// Record every refusal `refusals` brings (job id and result, from
/// [`crate::bus::ResultFeed`]) until it ends: once per job and host, and
/// only for a job that exists. An enrolled agent may write any result under
/// its own key; refusals of jobs nobody stored would only crowd the trail.
pub async fn record(
    mut refusals: mpsc::Receiver<(Uuid, HostResult)>,
    store: JobStore,
    auditor: Auditor,
) {
    let mut seen = HashSet::new();
    while let Some((job_id, result)) = refusals.recv().await {
        if seen.len() >= SEEN_CAPACITY {
            seen.clear();
        }
        if !seen.insert((job_id, result.hostname.clone())) {
            continue;
        }
        match store.get(job_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(%job_id, host = %result.hostname, "an agent reported refusing a job that does not exist; not audited");
                continue;
            }
            // Better an entry too many than a refusal lost.
            Err(e) => {
                tracing::warn!(%job_id, error = %e, "cannot look the refused job up; auditing anyway")
            }
        }
        if let Some(entry) = entry(job_id, &result) {
            tracing::warn!(%job_id, host = %result.hostname, "an agent refused a job that does not verify");
            auditor.record(entry).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobError;

    fn result(status: HostStatus, code: &str) -> HostResult {
        HostResult {
            hostname: "web-01".into(),
            status,
            data: None,
            error: Some(JobError {
                code: code.into(),
                message: "refused unrun: the job is not signed".into(),
            }),
            duration_ms: 0,
        }
    }

    #[test]
    fn only_refusals_are_audited_in_the_agents_name() {
        let id = Uuid::now_v7();
        let e = entry(id, &result(HostStatus::Failed, REJECTED)).unwrap();
        assert_eq!(e.user, "agent:web-01");
        assert_eq!(e.job_id, Some(id));
        assert_eq!(e.response_code, 403);
        assert_eq!(e.operation_id, OPERATION_ID);
        assert!(e.summary().contains("not signed"), "{}", e.summary());
        assert!(entry(id, &result(HostStatus::Failed, "timeout")).is_none());
        let mut ok = result(HostStatus::Completed, REJECTED);
        ok.error = None;
        assert!(entry(id, &ok).is_none());
    }
}
