//! The test harness: real nats-server, real `osapi` processes on free ports, and
//! readiness waits (polling a condition, never a fixed sleep).
//!
//! `TEST_NATS_SERVER` picks the nats-server binary (CI runs the suite once
//! with Debian's 2.9 and once with a current 2.x); default `nats-server`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use osapi::natsd::{self, ServerAuth, Supervisor};
use osapi::token::TokenKey;
use serde_json::Value;

pub const SIGNING_KEY: &str = "integration-test-signing-key-0123456789abcdef";

/// The key every test stack's API verifies tokens with.
#[allow(dead_code)]
pub fn signing_key() -> TokenKey {
    TokenKey::new(SIGNING_KEY.as_bytes().to_vec()).expect("key")
}
pub const OSAPI: &str = env!("CARGO_BIN_EXE_osapi");
pub const OSAPICTL: &str = env!("CARGO_BIN_EXE_osapictl");

/// Poll `cond` until it returns Some or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Wait up to 30 s until a request made by `request` is answered 200.
pub async fn wait_for_ok(what: &str, request: impl Fn() -> reqwest::RequestBuilder) {
    wait_for(what, Duration::from_secs(30), || {
        let req = request();
        async move {
            req.send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        }
    })
    .await
}

/// A port free now, below the kernel's ephemeral range: a server restarted on
/// it later (`Nats::restart`) must not find it taken by some client's
/// outgoing connection, which the kernel numbers from that range.
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_start.max(10_100));
    for _ in 0..1000 {
        let port = low + (rand::random::<u16>() % (high - low));
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    natsd::ports::find_free_port().expect("free port")
}

fn init_tls() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How clients of a test server authenticate.
#[derive(Clone)]
pub enum Access {
    /// The shipped default: per-role credentials generated in `dir`, each role
    /// limited to its subjects in `namespaces`.
    Generated {
        dir: PathBuf,
        namespaces: Vec<String>,
    },
    /// Whatever the test configures itself (anonymous, user_pass, TLS servers).
    Configured,
}

impl Access {
    /// Generated credentials in `dir` for `namespaces`, and the server users.
    pub fn generate(dir: &Path, namespaces: &[String]) -> (Access, ServerAuth) {
        let keys = osapi::bus::credentials::ensure(dir).expect("generate credentials");
        let deployments: Vec<_> = namespaces
            .iter()
            .map(|ns| osapi::bus::Names::new(ns.clone()))
            .collect();
        let users = osapi::bus::permissions::users(
            keys,
            &deployments,
            &osapi::config::NatsConfig::default(),
        );
        (
            Access::Generated {
                dir: dir.to_path_buf(),
                namespaces: namespaces.to_vec(),
            },
            ServerAuth::Nkey(users),
        )
    }
}

/// A fresh namespace for one stack.
pub fn new_namespace() -> String {
    format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// A real nats-server with JetStream, through our own supervisor.
pub struct Nats {
    pub sup: Option<Supervisor>,
    pub url: String,
    /// How its clients authenticate.
    pub access: Access,
    /// What `sup` was started with, so [`Nats::restart`] brings back the same
    /// server; `None` for a server this handle does not supervise.
    settings: Option<natsd::Settings>,
    /// A nats-server started without the supervisor (TLS test servers).
    #[allow(dead_code)]
    raw: Option<Proc>,
    _dir: Option<tempfile::TempDir>,
}

/// The nats-server under test (`TEST_NATS_SERVER`, else `nats-server`).
pub fn nats_binary() -> PathBuf {
    std::env::var_os("TEST_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| "nats-server".into())
}

impl Nats {
    pub async fn start() -> Nats {
        Self::start_with(|_| {}).await
    }

    /// A server whose settings `tweak` adjusts (listen address, auth, cluster),
    /// with generated credentials for one new namespace unless `tweak` sets
    /// another auth.
    pub async fn start_with(tweak: impl FnOnce(&mut natsd::Settings)) -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let (access, auth) = Access::generate(&dir.path().join("credentials"), &[new_namespace()]);
        Self::start_in(dir, access, auth, tweak).await
    }

    /// A server with generated credentials for `namespaces` (several stacks
    /// sharing it) kept in `credentials` (several servers sharing them).
    pub async fn start_for(credentials: &Path, namespaces: &[String]) -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let (access, auth) = Access::generate(credentials, namespaces);
        Self::start_in(dir, access, auth, |_| {}).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        access: Access,
        auth: ServerAuth,
        tweak: impl FnOnce(&mut natsd::Settings),
    ) -> Nats {
        let mut settings = natsd::Settings {
            binary: nats_binary(),
            host: "127.0.0.1".into(),
            port: free_port(),
            store_dir: dir.path().join("js"),
            server_name: None,
            auth: auth.clone(),
            tls: None,
            cluster: None,
            monitor_port: None,
            run_dir: dir.path().join("run"),
            // A server run by someone else: its limits are its operator's,
            // and some tests put every bucket in memory.
            max_memory_store: 1 << 40,
        };
        tweak(&mut settings);
        let access = if settings.auth == auth {
            access
        } else {
            Access::Configured
        };
        let sup = Supervisor::start(settings.clone())
            .await
            .expect("nats-server starts");
        Nats {
            url: sup.client_url().to_owned(),
            sup: Some(sup),
            access,
            settings: Some(settings),
            raw: None,
            _dir: Some(dir),
        }
    }

    /// A handle on a server run elsewhere (shared by several stacks) that its
    /// clients reach with `access`.
    pub fn external(url: &str, access: Access) -> Nats {
        Nats {
            sup: None,
            url: url.to_owned(),
            access,
            settings: None,
            raw: None,
            _dir: None,
        }
    }

    /// The first namespace this server's generated permissions cover.
    pub fn namespace(&self) -> Option<String> {
        match &self.access {
            Access::Generated { namespaces, .. } => namespaces.first().cloned(),
            Access::Configured => None,
        }
    }

    /// A client with every right (the generated admin role), for tests that
    /// look at the streams themselves.
    #[allow(dead_code)]
    pub async fn admin_client(&self) -> async_nats::Client {
        let mut opts = async_nats::ConnectOptions::new();
        if let Access::Generated { dir, .. } = &self.access {
            let seed = std::fs::read_to_string(osapi::bus::Role::Admin.seed_file(dir))
                .expect("admin seed");
            opts = opts.nkey(seed.trim().to_owned());
        }
        opts.connect(self.url.as_str()).await.expect("admin client")
    }

    /// A nats-server started directly from `config` (nats-server syntax, for
    /// what the supervisor does not generate, like server-side TLS); `url` is how
    /// clients reach it, `monitor` its HTTP port for readiness.
    #[allow(dead_code)]
    pub async fn start_raw(config: &str, url: &str, monitor: u16) -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(dir.path(), "nats-server.conf", config);
        let proc = spawn(
            "nats-server",
            Command::new(natsd::resolve_binary(&nats_binary()).expect("nats-server binary"))
                .arg("-c")
                .arg(&path),
        );
        init_tls();
        let health = format!("http://127.0.0.1:{monitor}/healthz?js-enabled-only=true");
        let http = reqwest::Client::new();
        wait_for_ok("nats-server (raw) to be healthy", || http.get(&health)).await;
        Nats {
            sup: None,
            url: url.to_owned(),
            access: Access::Configured,
            settings: None,
            raw: Some(proc),
            _dir: Some(dir),
        }
    }

    /// `n` servers forming one cluster with JetStream over loopback routes, each
    /// with its own `server_name` (clustered JetStream requires one). Returns once
    /// every server answers; see [`Nats::wait_cluster`] for the meta group.
    #[allow(dead_code)]
    pub async fn start_cluster(n: usize, credentials: &Path) -> Vec<Nats> {
        let tag = &uuid::Uuid::now_v7().simple().to_string()[24..];
        // One set of credentials for the whole cluster: a client may be
        // served by any member.
        let (access, auth) = Access::generate(credentials, &[new_namespace()]);
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (i, &port) in routes.iter().enumerate() {
            let peers = routes
                .iter()
                .filter(|p| **p != port)
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            let dir = tempfile::tempdir().expect("tempdir");
            nodes.push(Self::start_in(
                dir,
                access.clone(),
                auth.clone(),
                move |s| {
                    s.server_name = Some(format!("n{i}-{tag}"));
                    s.cluster = Some(natsd::ClusterSettings {
                        name: format!("c-{tag}"),
                        host: "127.0.0.1".into(),
                        port,
                        routes: peers,
                        password: Some(format!("route-secret-{tag}")),
                        tls: None,
                    });
                },
            ));
        }
        futures::future::join_all(nodes).await
    }

    /// This server's cluster settings (name, route port, secret).
    #[allow(dead_code)]
    pub fn cluster(&self) -> Option<&natsd::ClusterSettings> {
        self.settings.as_ref()?.cluster.as_ref()
    }

    /// This server's name in its cluster.
    #[allow(dead_code)]
    pub fn server_name(&self) -> String {
        self.settings
            .as_ref()
            .and_then(|s| s.server_name.clone())
            .expect("a supervised server with a name")
    }

    /// GET a monitoring endpoint (`/jsz`, `/routez`) of this server as JSON;
    /// None while it does not answer.
    #[allow(dead_code)]
    pub async fn monitor(&self, path: &str) -> Option<Value> {
        init_tls();
        let addr = self.sup.as_ref()?.monitor_addr();
        let resp = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
        resp.json().await.ok()
    }

    /// SIGKILL the nats-server child: no goodbye to clients or peers.
    #[allow(dead_code)]
    pub async fn kill9(&mut self) {
        let sup = self.sup.as_mut().expect("a supervised server");
        let pid = nix::unistd::Pid::from_raw(sup.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill nats-server");
        sup.wait().await.expect("nats-server exits");
    }

    /// Stop the server (when running) and start it again on the same port and
    /// store directory: clients reconnect and find their streams and buckets.
    pub async fn restart(&mut self) {
        let settings = self.settings.clone().expect("a supervised server");
        if let Some(sup) = self.sup.take() {
            sup.stop(Duration::from_secs(10))
                .await
                .expect("nats-server stops");
        }
        self.sup = Some(
            Supervisor::start(settings)
                .await
                .expect("nats-server starts again"),
        );
    }
}

/// Wait until the JetStream meta leader among `nodes` (the running ones) sees
/// `peers` other servers current: the cluster can then place R3 assets. Only
/// the leader lists the peers (nats-server 2.9 shows followers nothing).
#[allow(dead_code)]
pub async fn wait_meta_group(nodes: &[Nats], peers: usize) {
    wait_for(
        "the JetStream meta group",
        Duration::from_secs(60),
        || async {
            for node in nodes.iter().filter(|n| n.sup.is_some()) {
                let Some(jsz) = node.monitor("/jsz").await else {
                    continue;
                };
                let meta = &jsz["meta_cluster"];
                if meta["leader"].as_str() != Some(node.server_name().as_str()) {
                    continue;
                }
                let current = meta["replicas"]
                    .as_array()
                    .map_or(0, |r| r.iter().filter(|p| p["current"] == true).count());
                if current >= peers {
                    return Some(());
                }
            }
            None
        },
    )
    .await
}

/// One agent process to start.
#[derive(Clone)]
pub struct AgentSpec {
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    /// Simulated providers with this delay; None = the real providers.
    pub simulate: Option<Duration>,
    /// Extra environment for the agent process.
    pub env: BTreeMap<String, String>,
    /// Run the agent inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

impl AgentSpec {
    pub fn real(hostname: &str) -> Self {
        AgentSpec {
            hostname: hostname.into(),
            labels: BTreeMap::new(),
            simulate: None,
            env: BTreeMap::new(),
            netns: None,
        }
    }
    #[allow(dead_code)]
    pub fn in_netns(mut self, netns: &str) -> Self {
        self.netns = Some(netns.into());
        self
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    pub fn simulate(mut self, delay: Duration) -> Self {
        self.simulate = Some(delay);
        self
    }
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The API plus agents on one NATS, in a namespace of their own.
pub struct Stack {
    pub nats: Nats,
    /// Kept for the stack's lifetime (dropping it stops the API); benches read its pid.
    #[allow(dead_code)]
    pub api: Proc,
    pub agents: Vec<(AgentSpec, Proc)>,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The NATS namespace of this stack's API and agents.
    #[allow(dead_code)]
    pub namespace: String,
    key: TokenKey,
}

pub struct StackOptions {
    /// Appended to the generated config at top level (e.g. a `nats:` section).
    pub extra_config: String,
    pub ack_wait: Duration,
    /// Extra environment for the API process (`OSAPI_*` overrides).
    pub api_env: Vec<(String, String)>,
    /// The stack's NATS namespace; default: the server's generated one, or new.
    pub namespace: Option<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            extra_config: String::new(),
            ack_wait: Duration::from_secs(30),
            api_env: Vec::new(),
            namespace: None,
        }
    }
}

impl Stack {
    pub async fn start(agents: &[AgentSpec]) -> Stack {
        Self::start_with(agents, StackOptions::default()).await
    }

    pub async fn start_with(agents: &[AgentSpec], opts: StackOptions) -> Stack {
        let nats = Nats::start().await;
        let servers = [nats.url.clone()];
        Self::start_on(nats, &servers, agents, opts).await
    }

    /// A stack whose API and agents connect to `servers` (a cluster, a server
    /// on another address, one shared with another stack); `nats` is kept for
    /// the stack's lifetime.
    pub async fn start_on(
        nats: Nats,
        servers: &[String],
        agents: &[AgentSpec],
        opts: StackOptions,
    ) -> Stack {
        init_tls();
        let servers = servers
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let namespace = opts
            .namespace
            .clone()
            .or_else(|| nats.namespace())
            .unwrap_or_else(new_namespace);
        let config = dir.path().join("osapi.yaml");
        let text = format!(
            r#"api:
  server:
    port: {port}
    listen: 127.0.0.1
    unix_socket: ""
    nats:
      servers: [{servers}]
      namespace: {namespace}
    security:
      signing_key: "{SIGNING_KEY}"
      roles:
        ops: [node:read, job:read]
  client:
    url: http://127.0.0.1:{port}
node:
  agent:
    nats:
      servers: [{servers}]
      namespace: {namespace}
    heartbeat_interval: 1s
    consumer:
      ack_wait: {ack}
      max_deliver: 5
      back_off: []
{extra}"#,
            ack = humantime::format_duration(opts.ack_wait),
            extra = with_server_section(&nats, dir.path(), &opts.extra_config),
        );
        std::fs::write(&config, text).expect("write config");
        let api = spawn(
            "api",
            Command::new(OSAPI)
                .args(["-f"])
                .arg(&config)
                .args(["api", "server", "start"])
                .envs(opts.api_env),
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let key = TokenKey::new(SIGNING_KEY.as_bytes().to_vec()).expect("key");
        let mut stack = Stack {
            nats,
            api,
            agents: Vec::new(),
            base,
            http,
            dir,
            config,
            namespace,
            key,
        };
        let ready_url = format!("{}/health/ready", stack.base);
        wait_for_ok("API readiness", || stack.http.get(&ready_url)).await;
        for spec in agents {
            stack.add_agent(spec.clone()).await;
        }
        stack
    }

    /// Start an agent process and wait until the API sees it live.
    pub async fn add_agent(&mut self, spec: AgentSpec) {
        let proc = self.spawn_agent(&spec);
        self.agents.push((spec.clone(), proc));
        self.wait_agent_live(&spec.hostname).await;
    }

    /// Start several agents at once and wait until the API sees them all live.
    #[allow(dead_code)]
    pub async fn add_agents(&mut self, specs: &[AgentSpec]) {
        for spec in specs {
            let proc = self.spawn_agent(spec);
            self.agents.push((spec.clone(), proc));
        }
        let token = self.token(&["admin"]);
        let want: Vec<&str> = specs.iter().map(|s| s.hostname.as_str()).collect();
        wait_for(
            &format!("{} agents to be live", want.len()),
            Duration::from_secs(60 + specs.len() as u64),
            || async {
                let (status, body) = self.get_json("/api/v1/agents", &token).await;
                let live: Vec<&str> = body["agents"]
                    .as_array()?
                    .iter()
                    .filter_map(|a| a["hostname"].as_str())
                    .collect();
                (status == 200 && want.iter().all(|h| live.contains(h))).then_some(())
            },
        )
        .await;
    }

    pub fn spawn_agent(&self, spec: &AgentSpec) -> Proc {
        let mut cmd = match &spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(OSAPI);
                c
            }
            None => Command::new(OSAPI),
        };
        cmd.args(["-f"])
            .arg(&self.config)
            .args(["node", "agent", "start"]);
        if let Some(d) = spec.simulate {
            cmd.arg("--simulate")
                .arg(humantime::format_duration(d).to_string());
        }
        cmd.env("OSAPI_NODE_AGENT_HOSTNAME", &spec.hostname);
        let labels: Vec<String> = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        cmd.env(
            "OSAPI_NODE_AGENT_LABELS",
            format!("{{{}}}", labels.join(", ")),
        );
        // Real agents never reach this machine's own system bus (its hostnamed or
        // resolved): a test that wants D-Bus passes its private bus in `env`.
        let no_bus = format!("unix:path={}/no-system-bus", self.dir.path().display());
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", no_bus);
        cmd.envs(&spec.env);
        spawn(&format!("agent {}", spec.hostname), &mut cmd)
    }

    pub async fn wait_agent_live(&self, hostname: &str) {
        let token = self.token(&["admin"]);
        let path = format!("/api/v1/agents/{hostname}");
        wait_for_ok(&format!("agent {hostname} to be live"), || {
            self.get(&path, &token)
        })
        .await;
    }

    pub fn token(&self, roles: &[&str]) -> String {
        self.key.issue(
            "tester",
            roles.iter().map(|r| r.to_string()).collect(),
            None,
            osapi::token::now_unix(),
            3600,
        )
    }

    pub fn token_for(
        &self,
        sub: &str,
        roles: &[&str],
        perms: Option<Vec<osapi::rbac::Permission>>,
    ) -> String {
        self.key.issue(
            sub,
            roles.iter().map(|r| r.to_string()).collect(),
            perms,
            osapi::token::now_unix(),
            3600,
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// GET a path and return (status, JSON body).
    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        send_json(self.get(path, token)).await
    }

    /// Wait until job `id` has an event of `stage` (from `host`, when given).
    pub async fn wait_job_event(&self, token: &str, id: &str, stage: &str, host: Option<&str>) {
        wait_for(
            &format!("job {id} to reach {stage}"),
            Duration::from_secs(20),
            || async {
                let (_, job) = self.get_json(&format!("/api/v1/jobs/{id}"), token).await;
                job["timeline"]
                    .as_array()?
                    .iter()
                    .any(|e| e["stage"] == stage && host.is_none_or(|h| e["hostname"] == h))
                    .then_some(())
            },
        )
        .await
    }

    pub fn agent_mut(&mut self, hostname: &str) -> &mut Proc {
        &mut self
            .agents
            .iter_mut()
            .find(|(s, _)| s.hostname == hostname)
            .expect("agent")
            .1
    }

    /// Run `osapictl` against this stack with `token`.
    pub fn osapictl(&self, token: &str, args: &[&str]) -> std::process::Output {
        Command::new(OSAPICTL)
            .args(["--url", &self.base, "--token", token])
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run osapictl")
    }
}

/// POST `body` as JSON and read the answer: (HTTP status, body).
pub async fn post(stack: &Stack, token: &str, path: &str, body: Value) -> (u16, Value) {
    send_json(
        stack
            .request(reqwest::Method::POST, path, token)
            .json(&body),
    )
    .await
}

/// Starts a command job without waiting (`POST /command/shell?async=true`
/// plus `query`, e.g. `&target=h`) and returns its id; any answer but 202
/// fails the test.
pub async fn start_shell(stack: &Stack, token: &str, query: &str, body: Value) -> String {
    let path = format!("/api/v1/command/shell?async=true{query}");
    let (status, created) = post(stack, token, &path, body).await;
    assert_eq!(status, 202, "{created}");
    created["job_id"].as_str().expect("job id").to_owned()
}

pub async fn send_json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
    // Child output goes to the test's own stderr, so a failing test shows it.
    let child = cmd
        .stdin(Stdio::null())
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    Proc { child }
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// The real journald, started for the tests that need it when none is running,
/// and stopped again when the last of them is done (tests run in parallel).
pub struct Journald;

static JOURNALD: std::sync::Mutex<(usize, Option<Proc>)> = std::sync::Mutex::new((0, None));

pub fn journald() -> Journald {
    let socket = Path::new(osapi::telemetry::JOURNAL_SOCKET);
    let mut state = JOURNALD.lock().unwrap_or_else(|e| e.into_inner());
    state.0 += 1;
    if state.1.is_none() && !socket.exists() {
        state.1 = Some(spawn(
            "journald",
            &mut Command::new("/usr/lib/systemd/systemd-journald"),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "journald did not create {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Journald
}

impl Drop for Journald {
    fn drop(&mut self) {
        let mut state = JOURNALD.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0
            && let Some(mut p) = state.1.take()
        {
            p.terminate();
            // Leave no socket behind: later processes would log into the void.
            let _ = std::fs::remove_dir_all("/run/systemd/journal");
        }
    }
}

/// `systemd-socket-activate` in front of `osapi ARGS`, passing the environment the
/// daemon needs (it starts children with nothing but what `-E` names).
pub fn socket_activate(listen: &[String], names: &str, env: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new("systemd-socket-activate");
    for l in listen {
        cmd.arg("-l").arg(l);
    }
    cmd.arg(format!("--fdname={names}"));
    for var in ["PATH", "RUST_LOG", "TEST_NATS_SERVER"] {
        if std::env::var_os(var).is_some() {
            cmd.arg("-E").arg(var);
        }
    }
    for pair in env {
        cmd.arg("-E").arg(pair);
    }
    cmd.arg(OSAPI).args(args);
    cmd
}

/// One HTTP/1.1 GET over a unix socket; the raw answer, headers included.
pub async fn http_over_unix(path: &Path, request_path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect unix socket");
    stream
        .write_all(
            format!("GET {request_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

/// A config for `osapi nats server start` on `port`, storing under `dir`, with the
/// nats-server under test (`TEST_NATS_SERVER`).
/// The `nats.server` section that points clients at `nats`'s generated
/// credentials: what API and agents on one host share, and no secret. For a
/// server of the test's own, the job signing key still needs a home:
/// `fallback` (the stack's directory).
#[allow(dead_code)]
pub fn nats_server_section(nats: &Nats, fallback: &Path) -> String {
    let dir = match &nats.access {
        Access::Generated { dir, .. } => dir.clone(),
        Access::Configured => fallback.join("credentials"),
    };
    format!(
        "nats:\n  server:\n    auth:\n      credentials_dir: {}\n",
        dir.display()
    )
}

/// `extra` (top-level YAML) with [`nats_server_section`] merged into its
/// `nats:` block, or added before it.
fn with_server_section(nats: &Nats, fallback: &Path, extra: &str) -> String {
    let server = nats_server_section(nats, fallback);
    match extra.strip_prefix("nats:\n") {
        Some(rest) => format!("{server}{rest}"),
        None => format!("{server}{extra}"),
    }
}

/// A client of a server started by `osapi nats server start` with its
/// generated credentials in `credentials`, as `role`; None while refused.
#[allow(dead_code)]
pub async fn generated_client(
    url: &str,
    credentials: &Path,
    role: osapi::bus::Role,
) -> Option<async_nats::Client> {
    let seed = std::fs::read_to_string(role.seed_file(credentials)).ok()?;
    async_nats::ConnectOptions::new()
        .nkey(seed.trim().to_owned())
        .custom_inbox_prefix(role.inbox_prefix())
        .connect(url)
        .await
        .ok()
}

/// `osapi nats server start` socket-activated on a port of its own, its
/// config, store and generated credentials in `dir`; returned once an admin
/// client is connected through the relay: (activator, port, admin client).
#[allow(dead_code)]
pub async fn socket_activated_nats(dir: &Path) -> (Proc, u16, async_nats::Client) {
    let port = free_port();
    let cfg = embedded_nats_config(dir, free_port());
    let cfg = cfg.to_str().expect("UTF-8 path").to_owned();
    let activator = spawn(
        "socket-activated nats",
        &mut socket_activate(
            &[format!("127.0.0.1:{port}")],
            "nats",
            &[],
            &["-f", &cfg, "nats", "server", "start"],
        ),
    );
    // The first connection starts the supervisor, which makes the credentials.
    wait_for(
        "the activator to listen",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        },
    )
    .await;
    let client = admin_client_of(dir, port).await;
    (activator, port, client)
}

/// An admin client of the `osapi nats server start` whose config and
/// credentials are in `dir`, on `port`, once it accepts one.
#[allow(dead_code)]
pub async fn admin_client_of(dir: &Path, port: u16) -> async_nats::Client {
    let creds = dir.join("credentials");
    wait_for("the embedded NATS", Duration::from_secs(30), || async {
        generated_client(
            &format!("127.0.0.1:{port}"),
            &creds,
            osapi::bus::Role::Admin,
        )
        .await
    })
    .await
}

pub fn embedded_nats_config(dir: &Path, port: u16) -> PathBuf {
    let binary = std::env::var("TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    write_file(
        dir,
        "nats.yaml",
        &format!(
            "nats:\n  server:\n    port: {port}\n    store_dir: {}\n    binary: {binary}\n",
            dir.join("js").display()
        ),
    )
}

/// What nats-server answers a raw, credential-less `CONNECT` and `PING` on
/// `addr` (`host:port`): an open server says `PONG`, a closed one
/// `-ERR 'Authorization Violation'`.
#[allow(dead_code)]
pub async fn raw_anonymous_connect(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .await
        .expect("send CONNECT");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the server closes the connection, says PONG, or goes quiet.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.windows(4).any(|w| w == b"PONG") {
            break;
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}
