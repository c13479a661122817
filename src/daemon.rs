//! Starting the three daemons from a [`Config`]: the glue between configuration,
//! signals and the long-running parts ([`crate::natsd`], [`crate::api`],
//! [`crate::agent`]). The binaries call these and nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::agent::{self, AgentSettings};
use crate::api::auth::Authenticator;
use crate::api::metrics::ApiMetrics;
use crate::api::service::JobService;
use crate::api::{self, AppState};
use crate::audit::{AuditError, AuditStore, AuditWriter, Auditor, BUFFER_CAPACITY, JournalSink};
use crate::bus::Names;
use crate::bus::credentials::{self, CredentialsError};
use crate::bus::{self, JobStore, Registry};
use crate::config::{Config, ConfigError, NatsClientAuth, NatsConnection, NatsServerAuth};
use crate::enrollment::Enrollment;
use crate::job::signature::{JobSigner, JobVerifier, SignatureError};
use crate::memory;
use crate::metrics::{self, MetricsError};
use crate::natsd::{self, ClusterSettings, NkeyUser, ServerAuth, Supervisor};
use crate::provider::Providers;
use crate::retry::Backoff;
use crate::systemd::{self, Activated};
use crate::token::TokenKey;

/// Why a daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("generated NATS credentials: {0}")]
    Credentials(#[from] CredentialsError),
    #[error("job signing key: {0}")]
    JobKey(#[from] SignatureError),
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
    #[error("socket activation: {0}")]
    Activation(#[source] std::io::Error),
    #[error(
        "HTTPS on {addr} has no usable certificate (tokens must not cross a network in \
         clear: run `osapi tls generate` as root, set api.server.tls, or listen on \
         loopback only)"
    )]
    Tls {
        addr: String,
        #[source]
        source: crate::tls::TlsError,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// How long a stopping API keeps storing buffered audit entries in the bucket.
const AUDIT_FLUSH_GRACE: Duration = Duration::from_secs(5);

/// A watch that flips to `true` on SIGTERM or SIGINT.
/// Runs one daemon to its end, as `identifier` in the logs (the trace
/// exporter beside it when configured), on a multi-threaded runtime. The
/// daemons' futures are large; boxed, they live on the heap instead of the
/// main thread's stack. `daemon` runs inside the runtime (signal handlers
/// need it), so it is an `async` block.
pub fn block_on(
    cfg: &Config,
    debug: bool,
    identifier: &str,
    daemon: impl Future<Output = Result<(), DaemonError>>,
) -> Result<(), DaemonError> {
    let export =
        crate::telemetry::init_logging(debug || cfg.debug, identifier, &cfg.telemetry.tracing);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(async {
        if let Some(task) = export {
            tokio::spawn(task);
        }
        Box::pin(daemon).await
    })
}

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
        NatsServerAuth::Generated { credentials_dir } => {
            // Made on first start; later starts only read the public keys.
            ServerAuth::Nkey(bus::permissions::users(
                bus::credentials::ensure(credentials_dir)?,
                &[Names::new(s.namespace.clone())],
                &cfg.nats,
            ))
        }
        NatsServerAuth::None => {
            tracing::warn!(
                "nats.server.auth.type is none: anyone who reaches the NATS port can run \
                 jobs as root on every agent; use it only for throwaway tests"
            );
            ServerAuth::None
        }
        NatsServerAuth::UserPass { users } => ServerAuth::UserPass(
            users
                .iter()
                .map(|u| Ok((u.username.clone(), u.password.read_string()?)))
                .collect::<Result<_, ConfigError>>()?,
        ),
        NatsServerAuth::Nkey { nkeys } => {
            ServerAuth::Nkey(nkeys.iter().map(NkeyUser::unrestricted).collect())
        }
    };
    let run_dir = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| s.store_dir.join("run"));
    Ok(natsd::Settings {
        binary: s.binary.clone(),
        host: s.host.clone(),
        port: s.port,
        store_dir: s.store_dir.clone(),
        server_name: s.server_name.clone(),
        auth,
        tls: s.tls.as_ref().map(tls_files),
        cluster: match &s.cluster {
            Some(c) => Some(ClusterSettings {
                name: c.name.clone(),
                host: c.host.clone(),
                port: c.port,
                routes: c.routes.clone(),
                password: c.password.as_ref().map(|p| p.read_string()).transpose()?,
                tls: c.tls.as_ref().map(tls_files),
            }),
            None => None,
        },
        monitor_port: None,
        run_dir,
        max_memory_store: memory_store(&cfg.nats),
    })
}

/// JetStream's memory limit for the embedded server: room for the
/// memory-backed streams (none by default), plus [`natsd::MIN_MEMORY_STORE`].
fn memory_store(n: &crate::config::NatsConfig) -> u64 {
    bus::memory_reserved(n).saturating_add(natsd::MIN_MEMORY_STORE)
}

fn tls_files(t: &crate::config::NatsTlsFiles) -> natsd::TlsFiles {
    natsd::TlsFiles {
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
        ca_file: t.ca_file.clone(),
    }
}

/// `osapi nats server start`: run nats-server until a signal, or fail when it dies.
/// Socket-activated, the child binds a private loopback port and the supervisor
/// relays the activated sockets to it.
pub async fn run_nats(cfg: &Config) -> Result<(), DaemonError> {
    let shutdown = shutdown_signal()?;
    let activated = systemd::activated_sockets().map_err(DaemonError::Activation)?;
    let mut settings = nats_settings(cfg)?;
    let base_users = role_users(&settings.auth);
    let mut relays = Vec::new();
    if !activated.is_empty() {
        settings.host = "127.0.0.1".into();
        settings.port = crate::natsd::ports::find_free_port().map_err(DaemonError::Activation)?;
        for (socket, name) in activated {
            match socket {
                Activated::Tcp(l) => {
                    relays.push(TcpListener::from_std(l).map_err(DaemonError::Activation)?)
                }
                Activated::Unix(_) => {
                    tracing::warn!(%name, "ignoring a unix socket passed to the NATS supervisor")
                }
            }
        }
    }
    systemd::status("starting nats-server");
    let mut sup = Supervisor::start(settings).await?;
    let child: std::net::SocketAddr = sup
        .client_addr()
        .parse()
        .map_err(|_| DaemonError::NatsExited(format!("bad child address {}", sup.client_addr())))?;
    for listener in relays {
        tokio::spawn(natsd::forward(listener, child));
    }
    tracing::info!(addr = %sup.client_addr(), "embedded NATS ready");
    let mut accepted = provision_as_admin(cfg, sup.client_url());
    systemd::ready(&format!(
        "nats-server ready (JetStream on) at {}",
        sup.client_addr()
    ));
    // The supervisor has its process to itself: what it ran to start is not
    // needed again (20 MiB resident otherwise, most of it code).
    release_code_pages("start-up");
    memory::trim_heap();
    let monitor = Arc::new(sup.monitor_addr());
    let _watchdog = systemd::spawn_watchdog(move || {
        let monitor = monitor.clone();
        async move { natsd::jetstream_ready(*monitor).await.is_ok() }
    });
    let mut shutdown = std::pin::pin!(stopped(shutdown));
    loop {
        tokio::select! {
            status = sup.wait() => return Err(DaemonError::NatsExited(format!("{:?}; last output: {}", status?, sup.stderr_tail()))),
            Some(agents) = accepted.recv() => {
                reload_users(&mut sup, enrolled_users(cfg, base_users.clone(), &agents));
            }
            _ = &mut shutdown => {
                systemd::stopping("stopping nats-server");
                sup.stop(Duration::from_secs(10)).await?;
                return Ok(());
            }
        }
    }
}

/// The generated roles' users, which enrolled agents' are added to.
fn role_users(auth: &ServerAuth) -> Vec<NkeyUser> {
    match auth {
        ServerAuth::Nkey(users) => users.clone(),
        _ => Vec::new(),
    }
}

fn reload_users(sup: &mut Supervisor, users: Vec<NkeyUser>) {
    if let Err(e) = sup.reload_auth(ServerAuth::Nkey(users)) {
        tracing::error!(error = %e, "cannot give the accepted agents their NATS users");
    }
}

/// The role users plus one per accepted agent whose request still verifies.
fn enrolled_users(cfg: &Config, mut users: Vec<NkeyUser>, agents: &[Enrollment]) -> Vec<NkeyUser> {
    let deployments = [Names::new(cfg.nats.server.namespace.clone())];
    for agent in agents {
        // Checked again here: a name that is no subject would make nats-server
        // refuse the whole reload, and with it every later rejection.
        match agent.verify().and_then(|()| agent.check_names()) {
            Ok(()) => users.push(bus::permissions::for_agent(agent, &deployments, &cfg.nats)),
            Err(e) => tracing::warn!(error = %e, "not giving an accepted agent a NATS user"),
        }
    }
    tracing::info!(
        agents = agents.len(),
        "enrolled agents' NATS users in place"
    );
    users
}

/// With generated credentials the supervisor owns the stream and buckets: it
/// creates them (as the admin role) once its server is up, so agents, which
/// may not, find them even before an API ever ran. Retried in the background
/// while a cluster forms; other auth types leave provisioning to the API.
///
/// Then it follows the accepted agents ([`bus::enrollment::watch_accepted`])
/// and sends each new set on the returned channel.
fn provision_as_admin(cfg: &Config, url: &str) -> mpsc::Receiver<Vec<Enrollment>> {
    let (accepted_tx, accepted) = mpsc::channel(4);
    let NatsServerAuth::Generated { credentials_dir } = &cfg.nats.server.auth else {
        return accepted;
    };
    let conn = NatsConnection {
        servers: vec![url.to_owned()],
        client_name: Some("osapi-nats-supervisor".to_owned()),
        namespace: cfg.nats.server.namespace.clone(),
        auth: NatsClientAuth::Generated {
            credential: cfg
                .api
                .server
                .security
                .credentials_directory
                .as_ref()
                .map(|dir| dir.join(crate::config::NATS_NKEY_CREDENTIAL)),
            credentials_dir: credentials_dir.clone(),
        },
        // Over TLS when the server requires it, trusting the CA it names.
        tls: cfg
            .nats
            .server
            .tls
            .as_ref()
            .map(|t| crate::config::TlsConfig {
                ca_file: t.ca_file.clone(),
                cert_file: None,
                key_file: None,
            }),
    };
    let (names, nats) = (Names::new(conn.namespace.clone()), cfg.nats.clone());
    tokio::spawn(async move {
        let mut backoff = Backoff::between(Duration::from_secs(1), Duration::from_secs(5));
        let js = loop {
            let provisioned = async {
                let client = bus::connect(&conn, bus::Role::Admin, "osapi-nats-supervisor").await?;
                let js = async_nats::jetstream::new(client);
                bus::provision(&js, &names, &nats).await.map(|_| js)
            };
            match provisioned.await {
                Ok(js) => {
                    tracing::info!("job stream and buckets in place");
                    break js;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot provision the job stream yet; retrying");
                    backoff.wait().await;
                }
            }
        };
        // The watch ends when its consumer is lost (a NATS restart, a cluster
        // change): start it again, from the whole history.
        let mut backoff = Backoff::between(Duration::from_secs(1), Duration::from_secs(5));
        loop {
            match bus::enrollment::watch_accepted(&js, &names).await {
                Ok(sets) => {
                    // A watch that ran: the next failure starts short again.
                    backoff.reset();
                    let mut sets = std::pin::pin!(sets);
                    while let Some(set) = sets.next().await {
                        if accepted_tx.send(set).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot follow the accepted agents yet"),
            }
            backoff.wait().await;
        }
    });
    accepted
}

/// Connect, provision and build the API's state, with its metrics in `registry`,
/// and the audit writer to [`AuditWriter::finish`] when the API stops.
pub async fn api_state(
    cfg: &Config,
    registry: &prometheus::Registry,
    shutdown: watch::Receiver<bool>,
) -> Result<(AppState, AuditWriter), DaemonError> {
    let server = &cfg.api.server;
    let key = TokenKey::new(server.security.signing_key()?)?;
    let names = Names::new(server.nats.namespace.clone());
    let (client, connects) =
        bus::connect_watched(&server.nats, bus::Role::Api, "osapi-api").await?;
    let js = async_nats::jetstream::new(client.clone());
    let buckets = bus::provision(&js, &names, &cfg.nats).await?;
    bus::reprovision_on_reconnect(
        js.clone(),
        names.clone(),
        cfg.nats.clone(),
        connects.clone(),
    );
    let store = JobStore::new(client.clone(), &buckets, names.clone());
    let live = Registry::new(buckets.registry.clone(), cfg.nats.registry.ttl)
        .watch()
        .await?;
    let signer = Arc::new(job_signer(cfg)?);
    let api_metrics = ApiMetrics::new(registry)?;
    api_metrics.watch_nats(client.clone())?;
    let audit = AuditStore::new(buckets.audit.clone());
    let enrollment = bus::EnrollmentStore::open(&js, &names).await?;
    let files = bus::FileStore::open(&js, &names).await?;
    let (feed, refusals) = bus::ResultFeed::start(
        &client,
        format!("$KV.{}.", names.resource(&cfg.nats.kv.responses_bucket)),
    )
    .await?;
    let (auditor, audit_writer) = Auditor::start(
        audit.clone(),
        Some(JournalSink::system()),
        BUFFER_CAPACITY,
        registry,
    )?;
    // Agents cannot audit the jobs they refuse; the API does it for them.
    tokio::spawn(crate::audit::rejections::record(
        refusals,
        store.clone(),
        auditor.clone(),
    ));
    let state = AppState {
        jobs: JobService {
            store,
            live,
            metrics: api_metrics.jobs(),
            connects,
            progress_hint: Arc::default(),
            signer,
            inflight: crate::api::quota::InFlight::new(server.max_jobs_in_flight),
            feed,
        },
        auth: Arc::new(Authenticator {
            key,
            roles: server.security.role_table(),
            revoked: crate::revocation::RevocationList::new(Some(
                server.security.revocation_file.clone(),
            )),
        }),
        nats: client,
        names,
        nats_config: Arc::new(cfg.nats.clone()),
        started: Instant::now(),
        default_wait: server.request_timeout,
        auditor,
        audit,
        enrollment,
        files,
        metrics: api_metrics,
        shutdown,
    };
    // Dies with the runtime; nothing to stop by hand.
    state.jobs.track_progress_hint();
    Ok((state, audit_writer))
}

/// The API's public key, for the agent: the unit's systemd credential (the
/// packaged agent is not root; the unit hands it what it needs), else the
/// file in the credentials directory.
fn job_verify_key(cfg: &Config) -> PathBuf {
    cfg.api
        .server
        .security
        .credentials_directory
        .as_ref()
        .map(|dir| dir.join(credentials::JOB_VERIFY_KEY))
        .filter(|path| path.exists())
        .unwrap_or_else(|| cfg.credentials_dir().join(credentials::JOB_VERIFY_KEY))
}

/// The API's job signing key: the unit's systemd credential, else the file
/// in the credentials directory (made there when missing, so a stack on
/// another NATS server signs too).
fn job_signer(cfg: &Config) -> Result<JobSigner, DaemonError> {
    let from_unit = cfg
        .api
        .server
        .security
        .credentials_directory
        .as_ref()
        .map(|dir| dir.join(credentials::JOB_SIGNING_KEY))
        .filter(|path| path.exists());
    let path = match from_unit {
        Some(path) => path,
        None => {
            let dir = cfg.credentials_dir();
            credentials::ensure_job_key(&dir)?;
            dir.join(credentials::JOB_SIGNING_KEY)
        }
    };
    Ok(JobSigner::from_file(&path)?)
}

/// Where the API listens: the sockets systemd passed, or the configured address.
async fn api_listeners(cfg: &Config) -> Result<Vec<Activated>, DaemonError> {
    let server = &cfg.api.server;
    let activated = systemd::activated_sockets().map_err(DaemonError::Activation)?;
    if !activated.is_empty() {
        return Ok(activated.into_iter().map(|(s, _)| s).collect());
    }
    let addr = std::net::SocketAddr::new(server.listen, server.port);
    let tcp = std::net::TcpListener::bind(addr).map_err(|source| DaemonError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    tcp.set_nonblocking(true).map_err(DaemonError::Activation)?;
    let mut listeners = vec![Activated::Tcp(tcp)];
    if let Some(path) = &server.unix_socket {
        // The unix socket is a convenience for local clients; a host without
        // /run/osapi (a development machine) still gets the TCP listener.
        let _ = std::fs::remove_file(path);
        match std::os::unix::net::UnixListener::bind(path)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
        {
            Ok(unix) => listeners.push(Activated::Unix(unix)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "not serving on the unix socket")
            }
        }
    }
    Ok(listeners)
}

/// The HTTPS configuration when any of `listeners` needs it: every TCP
/// listener not on loopback serves HTTPS only ([`crate::tls`]). Checked
/// before the API says it is ready, so a missing certificate stops it at once.
fn https_config(
    listeners: &[Activated],
    tls: &crate::config::ServerTls,
) -> Result<Option<Arc<rustls::ServerConfig>>, DaemonError> {
    let public = listeners.iter().find_map(|l| match l {
        Activated::Tcp(l) => l
            .local_addr()
            .ok()
            .filter(|a| !crate::tls::plain_http_allowed(a)),
        Activated::Unix(_) => None,
    });
    let Some(addr) = public else {
        return Ok(None);
    };
    crate::tls::server_config(&tls.cert_file, &tls.key_file)
        .map(Some)
        .map_err(|source| DaemonError::Tls {
            addr: addr.to_string(),
            source,
        })
}

/// Serve `router` on every listener until `shutdown`; TCP listeners not on
/// loopback with `https` (which [`https_config`] made when any needs it).
async fn serve_all(
    listeners: Vec<Activated>,
    router: axum::Router,
    shutdown: watch::Receiver<bool>,
    https: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), DaemonError> {
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let router = router.clone();
        let shutdown = stopped(shutdown.clone());
        match listener {
            Activated::Tcp(l) => {
                let l = TcpListener::from_std(l).map_err(DaemonError::Activation)?;
                let addr = l.local_addr().map_err(DaemonError::Activation)?;
                let https = https
                    .clone()
                    .filter(|_| !crate::tls::plain_http_allowed(&addr));
                // The client's address (audit) comes with every connection either way.
                let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                match https {
                    Some(config) => {
                        use axum::serve::ListenerExt;
                        let l = crate::tls::TlsListener::new(l, config)
                            .map_err(DaemonError::Activation)?
                            // tap_io lends the listener axum's ConnectInfo<SocketAddr>.
                            .tap_io(|_| {});
                        tracing::info!(%addr, "listening (HTTPS)");
                        servers.spawn(async move {
                            axum::serve(l, app).with_graceful_shutdown(shutdown).await
                        });
                    }
                    None => {
                        tracing::info!(%addr, "listening");
                        servers.spawn(async move {
                            axum::serve(l, app).with_graceful_shutdown(shutdown).await
                        });
                    }
                }
            }
            Activated::Unix(l) => {
                let l = tokio::net::UnixListener::from_std(l).map_err(DaemonError::Activation)?;
                tracing::info!(path = ?l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string())), "listening");
                servers.spawn(async move {
                    axum::serve(l, router)
                        .with_graceful_shutdown(shutdown)
                        .await
                });
            }
        }
    }
    while let Some(done) = servers.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "a listener stopped");
        }
    }
    Ok(())
}

/// `osapi api server start`: serve until a signal. Connections that arrive on an
/// activated socket before NATS is reachable wait in its backlog and are served
/// once the API is ready.
pub async fn run_api(cfg: &Config, shutdown: watch::Receiver<bool>) -> Result<(), DaemonError> {
    serve_api(cfg, shutdown, &metrics::new_registry()?, Process::Own).await
}

/// The API with its metrics in `registry` (shared with the agent in `osapi start`).
async fn serve_api(
    cfg: &Config,
    shutdown: watch::Receiver<bool>,
    registry: &prometheus::Registry,
    process: Process,
) -> Result<(), DaemonError> {
    let server = &cfg.api.server;
    let listeners = api_listeners(cfg).await?;
    let https = https_config(&listeners, &server.tls)?;
    systemd::status("connecting to NATS");
    let (state, audit_writer) = api_state(cfg, registry, shutdown.clone()).await?;
    let nats = state.nats.clone();
    let http = api::HttpOptions {
        max_body_bytes: usize::try_from(server.max_body_bytes).unwrap_or(usize::MAX),
        allow_origins: server.security.cors.allow_origins.clone(),
    };
    let router = api::router(state, &http);
    systemd::ready("serving the API");
    // Start-up ran code no request runs again (configuration, provisioning,
    // the router's construction): give those pages back, as the agent does.
    if process == Process::Own {
        release_code_pages("start-up");
        memory::trim_heap();
    }
    let _watchdog = systemd::spawn_watchdog(move || {
        let nats = nats.clone();
        async move { bus::round_trip(&nats).await }
    });
    let result = serve_all(listeners, router, shutdown, https).await;
    systemd::stopping("API stopped");
    audit_writer.finish(AUDIT_FLUSH_GRACE).await;
    result
}

/// `osapi node agent start`: consume jobs until a signal. With `simulate`, the
/// agent answers from simulated providers that take that long per job (for tests
/// and benchmarks of the pipeline; never for real hosts). Its own health and
/// metrics are served on the sockets systemd passes it.
pub async fn run_agent(
    cfg: &Config,
    simulate: Option<Duration>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let registry = metrics::new_registry()?;
    serve_agent(cfg, simulate, shutdown, &registry, Process::Own).await
}

/// Whether a daemon has its process to itself (`osapi api server start`,
/// `osapi node agent start`) or shares it (`osapi start`). Only on its own
/// may it give back code pages: the other's would go too, whatever it is
/// doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Process {
    Own,
    Shared,
}

/// The agent with its metrics in `registry` (shared with the API in `osapi start`).
async fn serve_agent(
    cfg: &Config,
    simulate: Option<Duration>,
    shutdown: watch::Receiver<bool>,
    registry: &prometheus::Registry,
    process: Process,
) -> Result<(), DaemonError> {
    let providers = match simulate {
        Some(delay) => {
            crate::provider::sim::SimProviders::new(cfg.node.agent.hostname.clone(), delay)
        }
        None => Providers::system(&cfg.node.agent.command),
    };
    let settings = AgentSettings {
        agent: cfg.node.agent.clone(),
        nats: cfg.nats.clone(),
        namespace: cfg.node.agent.nats.namespace.clone(),
        stop_grace: Duration::from_secs(20),
        metrics: agent::AgentMetrics::new(registry)?,
        verifier: JobVerifier::from_file(&job_verify_key(cfg))?,
        // Simulated providers never need root.
        privileged: simulate
            .is_none()
            .then(agent::privileged::Privileged::detect)
            .flatten(),
    };
    let (ready_tx, ready_rx) = watch::channel(None);
    let listeners = systemd::activated_sockets().map_err(DaemonError::Activation)?;
    // The agent's own health and metrics: no tokens, so no TLS needed.
    let endpoints = tokio::spawn(serve_all(
        listeners.into_iter().map(|(s, _)| s).collect(),
        agent::http::router(ready_rx, registry.clone()),
        shutdown.clone(),
        None,
    ));
    systemd::status("connecting to NATS");
    let mut watchdog = None;
    let mut idle_release = None;
    let result = agent::run(settings, providers, shutdown, |handle| {
        systemd::ready("consuming jobs");
        if process == Process::Own {
            // Start-up code will not run again; an idle agent keeps only what it uses.
            release_code_pages("start-up");
            idle_release = Some(tokio::spawn(release_code_pages_when_idle(handle.clone())));
        }
        let probe = handle.clone();
        watchdog = systemd::spawn_watchdog(move || {
            let probe = probe.clone();
            async move { probe.healthy().await }
        });
        let _ = ready_tx.send(Some(handle));
    })
    .await;
    systemd::stopping("agent stopped");
    for task in [watchdog, idle_release].into_iter().flatten() {
        task.abort();
    }
    endpoints.abort();
    result.map_err(DaemonError::from)
}

/// How often an agent checks whether it has been without jobs for a whole
/// period, to give back the code pages its last jobs touched (at most 60 s
/// after the last job ended).
const IDLE_RELEASE_PERIOD: Duration = Duration::from_secs(30);

fn release_code_pages(after: &str) {
    match memory::release_executable_pages() {
        Ok(bytes) => tracing::debug!(bytes, after, "released code pages"),
        Err(e) => tracing::warn!(error = %e, after, "could not release code pages"),
    }
}

async fn release_code_pages_when_idle(agent: agent::AgentHandle) {
    let mut idle = memory::IdleRelease::default();
    let mut period = tokio::time::interval(IDLE_RELEASE_PERIOD);
    period.tick().await; // the first tick is immediate
    loop {
        period.tick().await;
        if idle.check(agent.jobs_taken(), agent.running_jobs()) {
            release_code_pages("jobs");
        }
    }
}

/// `osapi start`: NATS, the API and one agent in one process tree. One metrics
/// registry for the process: the API's `/metrics` shows the agent's too.
pub async fn run_all(cfg: &Config) -> Result<(), DaemonError> {
    let shutdown = shutdown_signal()?;
    let registry = metrics::new_registry()?;
    let settings = nats_settings(cfg)?;
    let base_users = role_users(&settings.auth);
    let mut sup = Supervisor::start(settings).await?;
    tracing::info!(addr = %sup.client_addr(), "embedded NATS ready");
    let mut accepted = provision_as_admin(cfg, sup.client_url());
    let api = serve_api(cfg, shutdown.clone(), &registry, Process::Shared);
    let agent = serve_agent(cfg, None, shutdown.clone(), &registry, Process::Shared);
    let mut daemons = std::pin::pin!(async { tokio::try_join!(api, agent).map(|_| ()) });
    let result = loop {
        tokio::select! {
            status = sup.wait() => break Err(DaemonError::NatsExited(format!("{:?}", status?))),
            Some(agents) = accepted.recv() => {
                reload_users(&mut sup, enrolled_users(cfg, base_users.clone(), &agents));
            }
            r = &mut daemons => break r,
        }
    };
    if result.is_ok() || *shutdown.borrow() {
        sup.stop(Duration::from_secs(10)).await?;
    }
    result
}
