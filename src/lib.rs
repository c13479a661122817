//! OSAPI turns a Linux host into a managed appliance.
//!
//! Three processes cooperate over NATS JetStream:
//!
//! * the **NATS supervisor** ([`natsd`]) runs a real `nats-server` with JetStream;
//! * the **API server** ([`api`]) authenticates requests, turns them into jobs and
//!   waits for their results; it never touches the operating system;
//! * the **agent** ([`agent`]) consumes jobs addressed to its host and runs them
//!   through the [`provider`] traits.
//!
//! Start reading at [`job`]: the [`job::Operation`] enum is the one vocabulary shared
//! by the API, the CLI ([`cli`]) and the agent. [`bus`] is everything that speaks NATS.
//! Domain modules ([`job`], [`rbac`], [`enrollment`], [`provider`]) never depend on
//! transports; [`enrollment`] is how an agent on another host joins the fleet.
//!
//! Around them: [`config`] (file → environment → validated `Config`), [`token`]
//! (JWT) and [`revocation`] (revoked tokens), [`audit`] (one entry per API request, journal and bucket), [`metrics`]
//! (Prometheus registries), [`telemetry`] (journald/stderr logging, W3C trace
//! context, span export), [`systemd`] (sd_notify, watchdog, socket activation),
//! [`memory`] (an idle agent gives back its start-up code pages), [`tls`] (the
//! API's HTTPS listener and generated certificate), [`files`] (files that
//! appear whole), and [`daemon`],
//! which turns a `Config` into the running daemons. [`wire`] holds the API's request
//! and response types, which `osapictl` reads.

pub mod agent;
pub mod api;
pub mod audit;
pub mod bus;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod enrollment;
pub mod files;
pub mod job;
pub mod memory;
pub mod metrics;
pub mod natsd;
pub mod provider;
pub mod rbac;
pub mod retry;
pub mod revocation;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod view;
pub mod wire;

/// The version every component reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
