//! Everything that speaks NATS: connecting, provisioning the stream and buckets
//! (including the path that works on nats-server 2.9), the job store and the agent
//! registry. The domain types come from [`crate::job`]; this module only moves them.

mod connect;
pub mod credentials;
mod deliveries;
pub mod enrollment;
mod feed;
mod names;
mod pager;
pub mod permissions;
mod provision;
mod registry;
mod store;

pub use connect::{connect, connect_watched, round_trip};
pub use credentials::Role;
pub use deliveries::{CONSUMER_PATIENCE, Deliveries, Delivery, DeliverySettings};
pub use enrollment::EnrollmentStore;
pub use feed::{JobResults, ResultFeed};
pub use names::{AgentConsumer, Names};
pub use pager::{Order, StreamPager};
pub use provision::{
    Buckets, check, open, provision, provisioned_streams, reprovision_on_reconnect,
};
pub use registry::{AgentInfo, LiveAgents, Registry};
pub use store::{Claim, JobPage, JobProgress, JobStore, ListFilter, TRACEPARENT_HEADER};

/// A failure talking to NATS. Each variant says what we were doing.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// `reason` is already the whole story (async-nats repeats its source in
    /// its own message, so the error is not chained).
    #[error("cannot connect to NATS at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error("cannot read NATS credentials from {path}: {source}")]
    Credentials {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no NATS credential for the {role} role at {path}: {source} (the embedded NATS server \
         makes it on first start: start `osapi nats server start` first, as a user who may \
         read it; for another server, set the connection's auth)"
    )]
    NoGeneratedCredential {
        role: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("NATS credentials: {0}")]
    Secret(#[from] crate::config::ConfigError),
    #[error("NATS credentials: {0}")]
    Identity(#[from] credentials::CredentialsError),
    /// An enrolling agent whose key no admin has accepted (yet).
    #[error(
        "this agent's key {public_key} is not accepted (yet): osapictl agent accept {public_key}"
    )]
    NotEnrolled { public_key: String },
    #[error("invalid NATS server address {0:?}")]
    BadServer(String),
    #[error("cannot provision {what}: {detail}")]
    Provision { what: String, detail: String },
    #[error("NATS request failed while {doing}: {detail}")]
    Request { doing: &'static str, detail: String },
    #[error("stored {what} is not valid JSON: {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("job {0} already exists")]
    Conflict(String),
    #[error("cannot create consumer {name}: {detail}")]
    Consumer { name: String, detail: String },
}

impl BusError {
    pub(crate) fn request(doing: &'static str, err: impl std::fmt::Display) -> Self {
        BusError::Request {
            doing,
            detail: err.to_string(),
        }
    }

    /// Whether trying again shortly may succeed: NATS unreachable for a moment,
    /// or a clustered stream between leaders (a node died, the cluster is still
    /// forming). async-nats reports these as different kinds per operation, so
    /// they are recognised by their text and JetStream error codes.
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::Request { detail, .. } | BusError::Provision { detail, .. } => {
                transient_detail(detail)
            }
            _ => false,
        }
    }
}

/// [`BusError::is_transient`] for an error already turned into text.
pub fn transient_detail(detail: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        "timed out",
        "no responders",
        // A publish answered 503: the stream has no leader right now.
        "no stream found",
        "temporarily unavailable",
        "broken pipe",
        "disconnected",
        "not connected",
        "request error",
        // JetStream API codes: cluster not available, no suitable peers,
        // insufficient resources (peers offline), not leader, cluster incomplete.
        "error code 10008",
        "error code 10005",
        "error code 10023",
        "error code 10009",
        "error code 10004",
    ];
    let detail = detail.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| detail.contains(t))
}

/// Run `op` until it succeeds, fails with a non-transient error, or `within`
/// has passed (then the last error). Only for operations that are safe to
/// repeat: idempotent puts, deduplicated publishes.
pub(crate) async fn retry_transient<T, F, Fut>(
    doing: &str,
    within: std::time::Duration,
    mut op: F,
) -> Result<T, BusError>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut delay = std::time::Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && tokio::time::Instant::now() + delay < deadline => {
                tracing::info!(error = %e, doing, attempt, "NATS not answering; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(1));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_told_from_permanent_ones() {
        assert!(BusError::request("storing a job", "timed out").is_transient());
        assert!(
            BusError::request(
                "announcing a job",
                "jetstream error: JetStream system temporarily unavailable (code 503, error code 10008)"
            )
            .is_transient()
        );
        assert!(!BusError::request("storing a job", "maximum payload exceeded").is_transient());
        assert!(
            !BusError::Provision {
                what: "stream x".into(),
                detail:
                    "replicas > 1 not supported in non-clustered mode (code 500, error code 10074)"
                        .into()
            }
            .is_transient()
        );
        assert!(!BusError::Conflict("x".into()).is_transient());
    }
}
