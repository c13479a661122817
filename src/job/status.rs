//! Job status, computed from the immutable job, its events and its results; never
//! stored, so it cannot drift from what happened.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Expected, HostResult, HostStatus, Job, JobEvent, Stage};

/// Overall status of a job (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Submitted,
    Processing,
    Completed,
    Failed,
    PartialFailure,
    Timeout,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Submitted => "submitted",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::PartialFailure => "partial_failure",
            JobStatus::Timeout => "timeout",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Submitted | JobStatus::Processing)
    }
}

impl std::str::FromStr for JobStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            JobStatus::Submitted,
            JobStatus::Processing,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::PartialFailure,
            JobStatus::Timeout,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or(())
    }
}

/// Where one host stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostProgress {
    pub hostname: String,
    /// `pending`, `acknowledged`, `started`, `completed`, `failed` or `timeout`.
    pub state: String,
    pub attempts: u64,
}

/// The derived view of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub status: JobStatus,
    pub hosts: Vec<HostProgress>,
    /// Results, plus a computed `timeout` result for each expected host that did
    /// not answer before the deadline.
    pub results: Vec<HostResult>,
}

/// Derive the status of `job` at `now` from its events and results.
pub fn compute_status(
    job: &Job,
    events: &[JobEvent],
    results: &[HostResult],
    now: OffsetDateTime,
) -> JobView {
    let mut hosts: BTreeMap<String, HostProgress> = BTreeMap::new();
    if let Expected::Hosts(expected) = &job.expected {
        for h in expected {
            hosts.insert(
                h.clone(),
                HostProgress {
                    hostname: h.clone(),
                    state: "pending".into(),
                    attempts: 0,
                },
            );
        }
    }
    for ev in events {
        let entry = hosts
            .entry(ev.hostname.clone())
            .or_insert_with(|| HostProgress {
                hostname: ev.hostname.clone(),
                state: "pending".into(),
                attempts: 0,
            });
        entry.attempts = entry.attempts.max(ev.attempt);
        if entry.state != "completed" && entry.state != "failed" {
            entry.state = match ev.stage {
                Stage::Acknowledged => "acknowledged",
                Stage::Started | Stage::Progress | Stage::Unknown => "started",
                Stage::Completed => "completed",
                // Refused unrun is a failure of that host.
                Stage::Failed | Stage::Rejected => "failed",
            }
            .into();
        }
    }
    let mut results: Vec<HostResult> = results.to_vec();
    for r in &results {
        let entry = hosts
            .entry(r.hostname.clone())
            .or_insert_with(|| HostProgress {
                hostname: r.hostname.clone(),
                state: "pending".into(),
                attempts: 1,
            });
        entry.state = match r.status {
            HostStatus::Completed => "completed",
            HostStatus::Failed => "failed",
            HostStatus::Timeout => "timeout",
        }
        .into();
    }

    let answered = |h: &str| results.iter().any(|r| r.hostname == h);
    let all_answered = job.expected.is_answered_by(&results);
    let past_deadline = now >= job.deadline();

    if !all_answered && past_deadline {
        // Name every host that did not answer, so the operator learns who.
        let missing: Vec<String> = match &job.expected {
            Expected::Any => vec![
                hosts
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| "_any".to_owned()),
            ],
            Expected::Hosts(expected) => {
                expected.iter().filter(|h| !answered(h)).cloned().collect()
            }
        };
        for h in missing {
            if let Some(p) = hosts.get_mut(&h) {
                p.state = "timeout".into();
            }
            results.push(HostResult {
                hostname: h,
                status: HostStatus::Timeout,
                data: None,
                error: Some(super::JobError {
                    code: "timeout".into(),
                    message: "no answer before the job's deadline".into(),
                }),
                duration_ms: 0,
            });
        }
    }

    let ok = results
        .iter()
        .filter(|r| r.status == HostStatus::Completed)
        .count();
    let failed = results
        .iter()
        .filter(|r| r.status == HostStatus::Failed)
        .count();
    let timed_out = results
        .iter()
        .filter(|r| r.status == HostStatus::Timeout)
        .count();
    let status = if timed_out > 0 {
        if ok + failed == 0 {
            JobStatus::Timeout
        } else {
            JobStatus::PartialFailure
        }
    } else if all_answered {
        match (ok, failed) {
            (_, 0) => JobStatus::Completed,
            // `_any` runs once anywhere: a success is the answer, even when a
            // redelivery raced it on another host and reported `interrupted`.
            (1.., _) if job.expected == Expected::Any => JobStatus::Completed,
            (0, _) => JobStatus::Failed,
            _ => JobStatus::PartialFailure,
        }
    } else if !events.is_empty() || !results.is_empty() {
        JobStatus::Processing
    } else {
        JobStatus::Submitted
    };
    JobView {
        status,
        hosts: hosts.into_values().collect(),
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Operation, Target};
    use uuid::Uuid;

    fn job(expected: Expected) -> Job {
        Job {
            id: Uuid::now_v7(),
            operation: Operation::HostnameGet,
            target: Target::All,
            created_at: OffsetDateTime::UNIX_EPOCH,
            created_by: "t".into(),
            expected,
            timeout_ms: 1000,
            retry_of: None,
            progress_hint: 0,
            trace_id: None,
            signature: None,
        }
    }
    fn at(ms: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms)
    }
    fn ev(host: &str, stage: Stage, attempt: u64) -> JobEvent {
        JobEvent {
            at: at(1),
            hostname: host.into(),
            stage,
            attempt,
            detail: None,
        }
    }
    fn res(host: &str, status: HostStatus) -> HostResult {
        HostResult {
            hostname: host.into(),
            status,
            data: None,
            error: None,
            duration_ms: 1,
        }
    }
    fn hosts(h: &[&str]) -> Expected {
        Expected::Hosts(h.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn submitted_then_processing() {
        let j = job(hosts(&["a", "b"]));
        assert_eq!(
            compute_status(&j, &[], &[], at(10)).status,
            JobStatus::Submitted
        );
        let evs = [ev("a", Stage::Acknowledged, 1)];
        assert_eq!(
            compute_status(&j, &evs, &[], at(10)).status,
            JobStatus::Processing
        );
    }

    #[test]
    fn all_answered_decides_completed_failed_partial() {
        let j = job(hosts(&["a", "b"]));
        let s = |r: &[HostResult]| compute_status(&j, &[], r, at(10)).status;
        assert_eq!(
            s(&[
                res("a", HostStatus::Completed),
                res("b", HostStatus::Completed)
            ]),
            JobStatus::Completed
        );
        assert_eq!(
            s(&[res("a", HostStatus::Failed), res("b", HostStatus::Failed)]),
            JobStatus::Failed
        );
        assert_eq!(
            s(&[
                res("a", HostStatus::Completed),
                res("b", HostStatus::Failed)
            ]),
            JobStatus::PartialFailure
        );
        assert_eq!(s(&[res("a", HostStatus::Completed)]), JobStatus::Processing);
    }

    #[test]
    fn deadline_names_missing_hosts() {
        let j = job(hosts(&["a", "b", "c"]));
        let v = compute_status(&j, &[], &[res("a", HostStatus::Completed)], at(5000));
        assert_eq!(v.status, JobStatus::PartialFailure);
        let timed: Vec<_> = v
            .results
            .iter()
            .filter(|r| r.status == HostStatus::Timeout)
            .map(|r| r.hostname.as_str())
            .collect();
        assert_eq!(timed, vec!["b", "c"]);
        let v = compute_status(&j, &[], &[], at(5000));
        assert_eq!(v.status, JobStatus::Timeout);
        assert_eq!(v.results.len(), 3);
    }

    #[test]
    fn any_with_a_success_is_completed_despite_an_interrupted_twin() {
        let j = job(Expected::Any);
        let results = [
            res("a", HostStatus::Completed),
            res("b", HostStatus::Failed),
        ];
        assert_eq!(
            compute_status(&j, &[], &results, at(10)).status,
            JobStatus::Completed
        );
        let all_failed = [res("b", HostStatus::Failed)];
        assert_eq!(
            compute_status(&j, &[], &all_failed, at(10)).status,
            JobStatus::Failed
        );
    }

    #[test]
    fn any_completes_with_one_answer_and_tracks_attempts() {
        let j = job(Expected::Any);
        let evs = [
            ev("a", Stage::Started, 1),
            ev("b", Stage::Acknowledged, 2),
            ev("b", Stage::Completed, 2),
        ];
        let v = compute_status(&j, &evs, &[res("b", HostStatus::Completed)], at(10));
        assert_eq!(v.status, JobStatus::Completed);
        assert_eq!(v.hosts.len(), 2);
        assert_eq!(v.hosts[1].attempts, 2);
        assert_eq!(
            compute_status(&j, &[], &[], at(5000)).status,
            JobStatus::Timeout
        );
    }
}
