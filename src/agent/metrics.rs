//! The agent's Prometheus metrics, served on its socket's `/metrics`.

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::metrics::{self, LONG_BUCKETS, MetricsError};

/// How a job ended on this host (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Completed,
    Failed,
    /// A redelivered non-idempotent job that had already started: not run again.
    Interrupted,
    /// Delivered after its deadline (the agent was cut off): not run, because
    /// the host has already been reported as not answering.
    Expired,
    /// Refused unrun: the job's signature did not verify.
    Rejected,
}

impl JobOutcome {
    fn label(self) -> &'static str {
        match self {
            JobOutcome::Completed => "completed",
            JobOutcome::Failed => "failed",
            JobOutcome::Interrupted => "interrupted",
            JobOutcome::Expired => "expired",
            JobOutcome::Rejected => "rejected",
        }
    }
}

#[derive(Clone)]
pub struct AgentMetrics {
    pub registry: Registry,
    jobs: IntCounterVec,
    duration: HistogramVec,
    running: IntGauge,
    max_jobs: IntGauge,
    heartbeat_failures: IntCounter,
}

impl AgentMetrics {
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        Ok(AgentMetrics {
            registry: registry.clone(),
            jobs: metrics::counter_vec(
                registry,
                "osapi_agent_jobs_total",
                "Jobs this agent finished, by operation type and outcome (completed, failed, interrupted).",
                &["operation", "outcome"],
            )?,
            duration: metrics::histogram_vec(
                registry,
                "osapi_agent_job_duration_seconds",
                "Time this agent spent running jobs, by operation type.",
                &["operation"],
                LONG_BUCKETS,
            )?,
            running: metrics::gauge(
                registry,
                "osapi_agent_running_jobs",
                "Jobs running on this agent now.",
            )?,
            max_jobs: metrics::gauge(
                registry,
                "osapi_agent_max_jobs",
                "Jobs this agent runs at once at most.",
            )?,
            heartbeat_failures: metrics::counter(
                registry,
                "osapi_agent_heartbeat_failures_total",
                "Heartbeats this agent could not write to the registry bucket.",
            )?,
        })
    }

    /// A job finished; `seconds` is its run time (`None` when it did not run).
    pub fn finished(&self, operation: &str, outcome: JobOutcome, seconds: Option<f64>) {
        self.jobs
            .with_label_values(&[operation, outcome.label()])
            .inc();
        if let Some(s) = seconds {
            self.duration.with_label_values(&[operation]).observe(s);
        }
    }

    pub fn heartbeat_failed(&self) {
        self.heartbeat_failures.inc();
    }

    pub fn set_max_jobs(&self, n: usize) {
        self.max_jobs.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Count a job as running until the returned guard is dropped (also when its
    /// task is aborted).
    pub fn running(&self) -> RunningGuard {
        self.running.inc();
        RunningGuard(self.running.clone())
    }
}

pub struct RunningGuard(IntGauge);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_running_jobs_are_counted() {
        let registry = Registry::new();
        let m = AgentMetrics::new(&registry).unwrap();
        let guard = m.running();
        m.finished("node.hostname.get", JobOutcome::Completed, Some(0.5));
        m.finished("command.exec.execute", JobOutcome::Interrupted, None);
        let text = metrics::render(&registry).unwrap();
        assert!(text.contains("osapi_agent_running_jobs 1\n"), "{text}");
        assert!(text.contains(
            "osapi_agent_jobs_total{operation=\"command.exec.execute\",outcome=\"interrupted\"} 1"
        ));
        assert!(
            text.contains(
                "osapi_agent_job_duration_seconds_count{operation=\"node.hostname.get\"} 1"
            )
        );
        assert!(!text.contains("osapi_agent_job_duration_seconds_count{operation=\"command"));
        drop(guard);
        let text = metrics::render(&registry).unwrap();
        assert!(text.contains("osapi_agent_running_jobs 0\n"), "{text}");
    }
}
