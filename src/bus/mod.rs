//! Everything that speaks NATS: connecting, provisioning the stream and buckets
//! (including the path that works on nats-server 2.9), the job store and the agent
//! registry. The domain types come from [`crate::job`]; this module only moves them.

mod connect;
mod pager;
mod provision;
mod registry;
mod store;

pub use connect::{connect, round_trip};
pub use pager::{Order, StreamPager};
pub use provision::{Buckets, check, provision};
pub use registry::{AgentInfo, LiveAgents, Registry};
pub use store::{JobPage, JobProgress, JobStore, ListFilter, TRACEPARENT_HEADER};

/// A failure talking to NATS. Each variant says what we were doing.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {servers}: {source}")]
    Connect {
        servers: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot read NATS credentials from {path}: {source}")]
    Credentials {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("NATS credentials: {0}")]
    Secret(#[from] crate::config::ConfigError),
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
}

impl BusError {
    pub(crate) fn request(doing: &'static str, err: impl std::fmt::Display) -> Self {
        BusError::Request {
            doing,
            detail: err.to_string(),
        }
    }
}
