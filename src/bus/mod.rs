//! Everything that speaks NATS: connecting, provisioning the stream and buckets
//! (including the path that works on nats-server 2.9), the job store and the agent
//! registry. The domain types come from [`crate::job`]; this module only moves them.

mod connect;
pub mod credentials;
mod deliveries;
pub mod enrollment;
mod feed;
pub mod files;
mod names;
mod output;
mod pager;
pub mod permissions;
mod provision;
mod registry;
mod store;
pub(crate) mod transient;

pub use connect::{NatsReach, connect, connect_watched, round_trip};
pub use credentials::Role;
pub use deliveries::{CONSUMER_PATIENCE, Deliveries, Delivery, DeliverySettings};
pub use enrollment::EnrollmentStore;
pub use feed::{JobResults, ResultFeed};
pub use files::{FileStore, LazyFileStore, StoredFile, Uploaded};
pub use names::{AgentConsumer, Names};
pub use output::{
    OUTPUT_MAX_AGE, OUTPUT_MAX_BYTES, OUTPUT_READ_BATCH, OUTPUT_STREAM, OutputWakeups,
};
pub use pager::{Order, StreamPager};
pub use provision::{
    Buckets, check, memory_reserved, open, provision, provisioned_streams, reprovision_on_reconnect,
};
pub use registry::{AgentInfo, LiveAgents, Registry};
pub use store::{
    Claim, ClaimScope, JobPage, JobProgress, JobStore, ListFilter, TRACEPARENT_HEADER,
};

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
    /// `transient`: trying again shortly may succeed ([`transient`]).
    #[error("cannot provision {what}: {detail}")]
    Provision {
        what: String,
        detail: String,
        transient: bool,
    },
    #[error("NATS request failed while {doing}: {detail}")]
    Request {
        doing: &'static str,
        detail: String,
        transient: bool,
    },
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
    pub(crate) fn request(doing: &'static str, err: impl std::error::Error + 'static) -> Self {
        BusError::Request {
            doing,
            transient: transient::is_transient(&err),
            detail: err.to_string(),
        }
    }

    pub(crate) fn provision(what: String, err: &(dyn std::error::Error + 'static)) -> Self {
        BusError::Provision {
            what,
            transient: transient::is_transient(err),
            detail: err.to_string(),
        }
    }

    /// Whether trying again shortly may succeed: NATS unreachable for a moment,
    /// or a clustered stream between leaders (a node died, the cluster is still
    /// forming). Decided from async-nats' error kinds when the error was made.
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::Request { transient, .. } | BusError::Provision { transient, .. } => {
                *transient
            }
            _ => false,
        }
    }
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
    let mut backoff = crate::retry::Backoff::between(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(1),
    );
    let mut attempt = 0u32;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e)
                if e.is_transient() && tokio::time::Instant::now() + backoff.peek() < deadline =>
            {
                tracing::info!(error = %e, doing, attempt, "NATS not answering; retrying");
                backoff.wait().await;
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
    fn transience_is_decided_when_the_error_is_made() {
        use async_nats::jetstream::context::{PublishError, PublishErrorKind};
        let e = BusError::request(
            "storing a job",
            PublishError::new(PublishErrorKind::TimedOut),
        );
        assert!(e.is_transient());
        assert!(e.to_string().contains("storing a job"), "{e}");
        let e = BusError::request(
            "storing a job",
            PublishError::new(PublishErrorKind::MaxPayloadExceeded),
        );
        assert!(!e.is_transient());
    }
}
