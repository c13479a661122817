//! Starting the three daemons from a [`Config`]: the glue between configuration,
//! signals and the long-running parts ([`crate::natsd`], [`crate::api`],
//! [`crate::agent`]). The binaries call these and nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::agent::{self, AgentSettings};
use crate::api::auth::Authenticator;
use crate::api::service::JobService;
use crate::api::{self, AppState};
use crate::bus::{self, JobStore, Registry};
use crate::config::{Config, ConfigError, NatsServerAuth};
use crate::job::Names;
use crate::natsd::{self, ClusterSettings, ServerAuth, Supervisor};
use crate::provider::Providers;
use crate::token::TokenKey;

/// Why a daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("signing key: {0}")]
    Key(#[from] crate::token::TokenError),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error(transparent)]
    Agent(#[from] agent::AgentError),
    #[error(transparent)]
    Nats(#[from] natsd::NatsdError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the embedded nats-server exited unexpectedly ({0})")]
    NatsExited(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// A watch that flips to `true` on SIGTERM or SIGINT.
pub fn shutdown_signal() -> Result<watch::Receiver<bool>, DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    Ok(rx)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The supervisor's settings from `nats.server`.
pub fn nats_settings(cfg: &Config) -> Result<natsd::Settings, DaemonError> {
    let s = &cfg.nats.server;
    let auth = match &s.auth {
        NatsServerAuth::None => ServerAuth::None,
        NatsServerAuth::UserPass { users } => ServerAuth::UserPass(
            users
                .iter()
                .map(|u| Ok((u.username.clone(), u.password.read_string()?)))
                .collect::<Result<_, ConfigError>>()?,
        ),
        NatsServerAuth::Nkey { nkeys } => ServerAuth::Nkey(nkeys.clone()),
    };
    let run_dir = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| s.store_dir.join("run"));
    Ok(natsd::Settings {
        binary: s.binary.clone(),
        host: s.host.clone(),
        port: s.port,
        store_dir: s.store_dir.clone(),
        server_name: None,
        auth,
        cluster: s.cluster.as_ref().map(|c| ClusterSettings {
            name: c.name.clone(),
            port: c.port,
            routes: c.routes.clone(),
        }),
        monitor_port: None,
        run_dir,
    })
}

/// `osapi nats server start`: run nats-server until a signal, or fail when it dies.
pub async fn run_nats(cfg: &Config) -> Result<(), DaemonError> {
    let shutdown = shutdown_signal()?;
    let mut sup = Supervisor::start(nats_settings(cfg)?).await?;
    tracing::info!(addr = %sup.client_addr(), "embedded NATS ready");
    tokio::select! {
        status = sup.wait() => Err(DaemonError::NatsExited(format!("{:?}", status?))),
        _ = stopped(shutdown) => {
            sup.stop(Duration::from_secs(10)).await?;
            Ok(())
        }
    }
}

/// Connect, provision and build the API's state.
pub async fn api_state(cfg: &Config) -> Result<AppState, DaemonError> {
    let server = &cfg.api.server;
    let key = TokenKey::new(server.security.signing_key()?)?;
    let names = Names::new(server.nats.namespace.clone());
    let client = bus::connect(&server.nats, "osapi-api").await?;
    let js = async_nats::jetstream::new(client.clone());
    let buckets = bus::provision(&js, &names, &cfg.nats).await?;
    let store = JobStore::new(client.clone(), &buckets, names.clone());
    let live = Registry::new(buckets.registry.clone(), cfg.nats.registry.ttl)
        .watch()
        .await?;
    Ok(AppState {
        jobs: JobService { store, live },
        auth: Arc::new(Authenticator {
            key,
            roles: server.security.role_table(),
        }),
        nats: client,
        names,
        nats_config: Arc::new(cfg.nats.clone()),
        started: Instant::now(),
        default_wait: server.request_timeout,
    })
}

/// `osapi api server start`: serve until a signal.
pub async fn run_api(cfg: &Config, shutdown: watch::Receiver<bool>) -> Result<(), DaemonError> {
    let server = &cfg.api.server;
    let state = api_state(cfg).await?;
    let http = api::HttpOptions {
        max_body_bytes: usize::try_from(server.max_body_bytes).unwrap_or(usize::MAX),
        allow_origins: server.security.cors.allow_origins.clone(),
    };
    let router = api::router(state, &http);
    let addr = std::net::SocketAddr::new(server.listen, server.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    tracing::info!(%addr, "API listening");
    let mut servers = tokio::task::JoinSet::new();
    if let Some(path) = &server.unix_socket {
        // The unix socket is a convenience for local clients; a host without
        // /run/osapi (a development machine) still gets the TCP listener.
        let _ = std::fs::remove_file(path);
        match tokio::net::UnixListener::bind(path) {
            Ok(unix) => {
                tracing::info!(path = %path.display(), "API listening on unix socket");
                let router = router.clone();
                let shutdown = shutdown.clone();
                servers.spawn(async move {
                    let _ = axum::serve(unix, router)
                        .with_graceful_shutdown(stopped(shutdown))
                        .await;
                });
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "not serving on the unix socket")
            }
        }
    }
    servers.spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(shutdown))
        .await;
    });
    while servers.join_next().await.is_some() {}
    Ok(())
}

/// `osapi node agent start`: consume jobs until a signal. With `simulate`, the
/// agent answers from simulated providers that take that long per job (for tests
/// and benchmarks of the pipeline; never for real hosts).
pub async fn run_agent(
    cfg: &Config,
    simulate: Option<Duration>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let providers = match simulate {
        Some(delay) => {
            crate::provider::sim::SimProviders::new(cfg.node.agent.hostname.clone(), delay)
        }
        None => Providers::system(),
    };
    let settings = AgentSettings {
        agent: cfg.node.agent.clone(),
        nats: cfg.nats.clone(),
        namespace: cfg.node.agent.nats.namespace.clone(),
        stop_grace: Duration::from_secs(20),
    };
    agent::run(settings, providers, shutdown, || {}).await?;
    Ok(())
}

/// `osapi start`: NATS, the API and one agent in one process tree.
pub async fn run_all(cfg: &Config) -> Result<(), DaemonError> {
    let shutdown = shutdown_signal()?;
    let mut sup = Supervisor::start(nats_settings(cfg)?).await?;
    tracing::info!(addr = %sup.client_addr(), "embedded NATS ready");
    let api = run_api(cfg, shutdown.clone());
    let agent = run_agent(cfg, None, shutdown.clone());
    let result = tokio::select! {
        status = sup.wait() => Err(DaemonError::NatsExited(format!("{:?}", status?))),
        r = async { tokio::try_join!(api, agent).map(|_| ()) } => r,
    };
    if result.is_ok() || *shutdown.borrow() {
        sup.stop(Duration::from_secs(10)).await?;
    }
    result
}
