//! The NATS supervisor behind `osapi nats server start`.
//!
//! OSAPI does not embed a broker: it runs the real `nats-server` (JetStream on) as
//! a child process, with a configuration file generated from [`Settings`]. This
//! module knows nothing about `osapi.yaml`; the binary maps the configuration onto
//! [`Settings`] and calls [`Supervisor::start`].
//!
//! Lifecycle:
//!
//! 1. [`generate_config`] renders the settings as nats-server configuration text,
//!    written to `run_dir/nats-server.conf` with mode 0600 (it may hold passwords)
//!    and removed again when the supervisor stops or is dropped.
//! 2. The child runs `nats-server -c FILE` in our process group. Its stdout and
//!    stderr are forwarded line by line as `tracing` events with target
//!    `nats-server`, at the level nats-server printed (`[INF]`, `[WRN]`, ...).
//! 3. [`Supervisor::start`] returns only once the child is ready: its monitoring
//!    endpoint (always on `127.0.0.1`) answers `GET /healthz?js-enabled-only=true`
//!    with 200 *and* `GET /jsz` reports JetStream enabled. The second probe is
//!    needed because nats-server 2.9.10 answers the first with 200 even when
//!    JetStream is off (2.10+ answers 503). If the child exits first, the error
//!    carries its exit status and last output lines (e.g. "address already in use").
//! 4. [`Supervisor::wait`] resolves when the child exits on its own; the caller
//!    reports it and exits non-zero. [`Supervisor::stop`] shuts it down cleanly.
//!
//! The child must never outlive the supervisor: it is killed when the
//! [`Supervisor`] is dropped, and `PR_SET_PDEATHSIG` makes the kernel signal it
//! when the supervisor dies without running destructors (SIGKILL, OOM killer).
//!
//! # Signals
//!
//! nats-server 2.9.10 treats SIGINT and SIGTERM the same way (stop accepting,
//! close clients, flush and shut down JetStream) but exits with status 1 after
//! SIGTERM and 0 after SIGINT. [`Supervisor::stop`] therefore sends SIGINT, as
//! Debian's own `nats-server.service` does. SIGUSR2 (lame-duck mode) is not
//! used: it spreads client disconnects over minutes, which suits rolling a
//! cluster, not stopping a host.
//!
//! # Socket activation (planned)
//!
//! nats-server cannot take a listening socket from systemd. When the supervisor is
//! socket-activated, the binary will set `host = "127.0.0.1"` and
//! `port = ports::find_free_port()?` so the child binds a private loopback port,
//! start the supervisor as usual, and then run a forwarder (to be added here as
//! `forward(listener, supervisor.client_addr())`) that accepts on the activated
//! listener and splices each connection to the child. Nothing in [`Supervisor`]
//! assumes the client port is public. In a cluster the child would then also need
//! `client_advertise` set to the public address; that will be a new [`Settings`]
//! field when activation lands.

mod config;
mod forward;
mod health;
pub mod ports;
mod supervisor;

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

pub use config::generate_config;
pub use forward::forward;
pub use health::jetstream_ready;
pub use supervisor::{DEFAULT_READY_TIMEOUT, Supervisor, resolve_binary};

/// What the supervisor needs to run one nats-server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The nats-server executable. A bare name (no `/`, e.g. `nats-server`) is
    /// looked up on `PATH`, then in the sbin/bin directories where distributions
    /// install it (Debian ships `/usr/sbin/nats-server`).
    pub binary: PathBuf,
    /// Client listen host (an IP address or `0.0.0.0`).
    pub host: String,
    /// Client listen port (non-zero).
    pub port: u16,
    /// JetStream store directory; nats-server creates it if needed.
    pub store_dir: PathBuf,
    /// Server name. Required by nats-server for clustered JetStream, so when
    /// `cluster` is set and this is `None` the supervisor uses the host name.
    pub server_name: Option<String>,
    /// Client authentication.
    pub auth: ServerAuth,
    /// TLS on the client port; when set, clients must use it.
    pub tls: Option<TlsFiles>,
    /// Routes to other servers, so the embedded servers of several hosts form one
    /// cluster.
    pub cluster: Option<ClusterSettings>,
    /// Monitoring (HTTP) port, always bound on 127.0.0.1. `None` picks a free one.
    pub monitor_port: Option<u16>,
    /// Directory the generated configuration file is written to.
    pub run_dir: PathBuf,
    /// What memory-backed streams may hold in all (JetStream's
    /// `max_memory_store`); nats-server's own default is three quarters of
    /// the host's memory.
    pub max_memory_store: u64,
}

/// What [`Settings::max_memory_store`] leaves beyond what OSAPI's own
/// memory-backed streams reserve (none unless configured): room for the
/// job stream (no byte limit) and streams an operator adds.
pub const MIN_MEMORY_STORE: u64 = 64 << 20;
/// Go's soft memory limit for the embedded nats-server (`GOMEMLIMIT`):
/// without one its heap grows to twice its live data between collections
/// and keeps the pages.
pub const GO_MEMORY_LIMIT: &str = "96MiB";

/// How clients authenticate to the embedded server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ServerAuth {
    /// No authentication: anyone who can reach the port may connect.
    #[default]
    None,
    /// `(username, password)` pairs. A password starting with `$2` is taken by
    /// nats-server as a bcrypt hash, so bcrypted passwords can be configured too.
    UserPass(Vec<(String, String)>),
    /// Users known by their public nkey (`U...`, 56 characters); clients prove
    /// possession of the matching seed. Each may carry permissions.
    Nkey(Vec<NkeyUser>),
}

/// One nkey user of the embedded server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NkeyUser {
    pub public_key: String,
    /// `None`: may publish and subscribe to anything.
    pub permissions: Option<Permissions>,
}

impl NkeyUser {
    /// A user with every permission.
    pub fn unrestricted(public_key: impl Into<String>) -> Self {
        NkeyUser {
            public_key: public_key.into(),
            permissions: None,
        }
    }
}

/// What one user may publish and subscribe to (nats-server `permissions`):
/// subjects outside `allow` are refused, and `deny` wins over `allow`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
}

/// Cluster membership of the embedded server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Cluster name; every member must use the same one. Empty = not set.
    pub name: String,
    /// Route listen address: `0.0.0.0` (peers are other hosts), or one address
    /// so routes stay on one network (also what the server advertises to peers).
    pub host: String,
    /// Route listen port.
    pub port: u16,
    /// Peer route URLs (`nats-route://host:6222`; a bare `host:port` gets that
    /// scheme added).
    pub routes: Vec<String>,
    /// The routes' shared secret: peers present it, and this server presents
    /// it to the routes it dials (user [`ROUTE_USER`]).
    pub password: Option<String>,
    /// TLS between routes, peers verified against `ca_file` (mutual TLS).
    pub tls: Option<TlsFiles>,
}

/// The user name routes authenticate as (with [`ClusterSettings::password`]).
pub const ROUTE_USER: &str = "osapi-route";

/// A listener's TLS: its certificate and key, and the CA peers are checked
/// against (for routes: required, both sides present certificates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: Option<PathBuf>,
}

/// Why the supervisor could not start or run nats-server.
#[derive(Debug, thiserror::Error)]
pub enum NatsdError {
    /// The configured settings cannot produce a working server.
    #[error("invalid nats server settings: {0}")]
    InvalidSettings(String),
    /// The nats-server executable was not found.
    #[error(
        "nats-server executable not found: {path} (install the nats-server package or set nats.server.binary)"
    )]
    BinaryNotFound { path: PathBuf },
    /// No free loopback port could be found for monitoring.
    #[error("cannot pick a monitoring port: {0}")]
    MonitorPort(#[source] std::io::Error),
    /// The run directory could not be created.
    #[error("cannot create run directory {path}: {source}")]
    CreateRunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The generated configuration could not be written.
    #[error("cannot write nats-server configuration {path}: {source}")]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The child process could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The child kept running but did not become ready in time.
    #[error(
        "nats-server not ready after {timeout:?} (last health probe: {last_probe}); last output:\n{stderr_tail}"
    )]
    NotReady {
        timeout: Duration,
        last_probe: String,
        stderr_tail: String,
    },
    /// The child exited before it became ready.
    #[error("nats-server exited ({status}) before it was ready; last output:\n{stderr_tail}")]
    ChildExited {
        status: ExitStatus,
        stderr_tail: String,
    },
    /// Waiting for the child failed.
    #[error("cannot wait for nats-server: {0}")]
    Wait(#[source] std::io::Error),
    /// Signalling the child failed.
    #[error("cannot signal nats-server: {0}")]
    Signal(#[source] nix::errno::Errno),
}

impl Settings {
    /// Checks what nats-server would reject late or, worse, accept silently (an
    /// empty user list means no authentication at all).
    pub fn validate(&self) -> Result<(), NatsdError> {
        let invalid = |msg: String| Err(NatsdError::InvalidSettings(msg));
        if self.host.trim().is_empty() {
            return invalid("host is empty".into());
        }
        if self.port == 0 {
            return invalid("port must not be 0".into());
        }
        if self.monitor_port == Some(0) {
            return invalid(
                "monitor port must not be 0 (leave it unset to pick a free one)".into(),
            );
        }
        if self.monitor_port == Some(self.port) {
            return invalid(format!("monitor port {} equals the client port", self.port));
        }
        if self.store_dir.as_os_str().is_empty() {
            return invalid("store_dir is empty".into());
        }
        for (what, path) in [("store_dir", &self.store_dir), ("run_dir", &self.run_dir)] {
            if path.to_str().is_none() {
                return invalid(format!("{what} {} is not valid UTF-8", path.display()));
            }
        }
        match &self.auth {
            ServerAuth::None => {}
            ServerAuth::UserPass(users) => {
                if users.is_empty() {
                    return invalid("auth user_pass needs at least one user".into());
                }
                for (user, password) in users {
                    if user.is_empty() {
                        return invalid("auth user_pass has an empty username".into());
                    }
                    if password.is_empty() {
                        return invalid(format!(
                            "auth user_pass: user {user:?} has an empty password"
                        ));
                    }
                }
            }
            ServerAuth::Nkey(keys) => {
                if keys.is_empty() {
                    return invalid("auth nkey needs at least one public key".into());
                }
                for NkeyUser {
                    public_key: key, ..
                } in keys
                {
                    if !is_user_nkey(key) {
                        return invalid(format!(
                            "auth nkey: {key:?} is not a public user nkey (56 characters starting with U)"
                        ));
                    }
                }
            }
        }
        if let Some(cluster) = &self.cluster {
            // A route is a full member of the bus: it sees and sends every
            // message. One that anybody may open is an open door, even on
            // loopback (any local user can run a nats-server).
            let mutual_tls = cluster.tls.as_ref().is_some_and(|t| t.ca_file.is_some());
            if cluster.password.as_deref().is_none_or(str::is_empty) && !mutual_tls {
                return invalid(
                    "cluster routes need authentication: a shared password \
                     (nats.server.cluster.password_file) or TLS with a CA \
                     (nats.server.cluster.tls); without it any host that reaches the \
                     route port joins the cluster"
                        .into(),
                );
            }
            if cluster.port == 0 {
                return invalid("cluster port must not be 0".into());
            }
            if cluster.host.trim().is_empty() {
                return invalid("cluster host is empty".into());
            }
            if cluster.port == self.port || Some(cluster.port) == self.monitor_port {
                return invalid(format!(
                    "cluster port {} collides with another port",
                    cluster.port
                ));
            }
        }
        Ok(())
    }
}

/// Public user nkeys are base32 (A–Z, 2–7), 56 characters, prefix `U`.
pub fn is_user_nkey(key: &str) -> bool {
    key.len() == 56
        && key.starts_with('U')
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            binary: "nats-server".into(),
            host: "127.0.0.1".into(),
            port: 4222,
            store_dir: "/var/lib/osapi/nats".into(),
            server_name: None,
            auth: ServerAuth::None,
            tls: None,
            cluster: None,
            monitor_port: None,
            run_dir: "/run/osapi".into(),
            max_memory_store: MIN_MEMORY_STORE,
        }
    }

    #[test]
    fn cluster_routes_without_authentication_are_refused() {
        let mut s = settings();
        s.cluster = Some(ClusterSettings {
            name: "c".into(),
            host: "127.0.0.1".into(),
            port: 6222,
            routes: vec![],
            password: None,
            tls: None,
        });
        assert!(
            matches!(s.validate(), Err(NatsdError::InvalidSettings(m)) if m.contains("password"))
        );
        if let Some(c) = s.cluster.as_mut() {
            c.password = Some("shared".into());
        }
        assert!(s.validate().is_ok());
        if let Some(c) = s.cluster.as_mut() {
            c.password = None;
            c.tls = Some(TlsFiles {
                cert_file: "c".into(),
                key_file: "k".into(),
                ca_file: Some("ca".into()),
            });
        }
        assert!(s.validate().is_ok(), "mutual TLS authenticates routes too");
    }

    #[test]
    fn validate_accepts_defaults_and_rejects_open_auth_lists() {
        assert!(settings().validate().is_ok());
        let mut s = settings();
        s.auth = ServerAuth::UserPass(vec![]);
        assert!(matches!(s.validate(), Err(NatsdError::InvalidSettings(_))));
        s.auth = ServerAuth::Nkey(vec![NkeyUser::unrestricted("SUAKEY")]);
        assert!(matches!(s.validate(), Err(NatsdError::InvalidSettings(_))));
        s.auth = ServerAuth::Nkey(vec![NkeyUser::unrestricted(
            "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4",
        )]);
        assert!(s.validate().is_ok());
        let mut s = settings();
        s.port = 0;
        assert!(s.validate().is_err());
        let mut s = settings();
        s.monitor_port = Some(4222);
        assert!(s.validate().is_err());
    }
}
