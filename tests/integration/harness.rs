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

pub fn free_port() -> u16 {
    natsd::ports::find_free_port().expect("free port")
}

fn init_tls() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A real nats-server with JetStream, through our own supervisor.
pub struct Nats {
    pub sup: Option<Supervisor>,
    pub url: String,
    /// What `sup` was started with, so [`Nats::restart`] brings back the same server.
    settings: natsd::Settings,
    _dir: tempfile::TempDir,
}

impl Nats {
    pub async fn start() -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let binary = std::env::var_os("TEST_NATS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| "nats-server".into());
        let settings = natsd::Settings {
            binary,
            host: "127.0.0.1".into(),
            port,
            store_dir: dir.path().join("js"),
            server_name: None,
            auth: ServerAuth::None,
            cluster: None,
            monitor_port: None,
            run_dir: dir.path().join("run"),
        };
        let sup = Supervisor::start(settings.clone())
            .await
            .expect("nats-server starts");
        Nats {
            url: format!("nats://127.0.0.1:{port}"),
            sup: Some(sup),
            settings,
            _dir: dir,
        }
    }

    /// Stop the server (when running) and start it again on the same port and
    /// store directory: clients reconnect and find their streams and buckets.
    pub async fn restart(&mut self) {
        if let Some(sup) = self.sup.take() {
            sup.stop(Duration::from_secs(10))
                .await
                .expect("nats-server stops");
        }
        self.sup = Some(
            Supervisor::start(self.settings.clone())
                .await
                .expect("nats-server starts again"),
        );
    }
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
}

impl AgentSpec {
    pub fn real(hostname: &str) -> Self {
        AgentSpec {
            hostname: hostname.into(),
            labels: BTreeMap::new(),
            simulate: None,
            env: BTreeMap::new(),
        }
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
    key: TokenKey,
}

pub struct StackOptions {
    /// Appended to the generated config at top level (e.g. a `nats:` section).
    pub extra_config: String,
    pub ack_wait: Duration,
    /// Extra environment for the API process (`OSAPI_*` overrides).
    pub api_env: Vec<(String, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            extra_config: String::new(),
            ack_wait: Duration::from_secs(30),
            api_env: Vec::new(),
        }
    }
}

impl Stack {
    pub async fn start(agents: &[AgentSpec]) -> Stack {
        Self::start_with(agents, StackOptions::default()).await
    }

    pub async fn start_with(agents: &[AgentSpec], opts: StackOptions) -> Stack {
        init_tls();
        let nats = Nats::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let namespace = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let config = dir.path().join("osapi.yaml");
        let text = format!(
            r#"api:
  server:
    port: {port}
    listen: 127.0.0.1
    unix_socket: ""
    nats:
      servers: ["{url}"]
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
      servers: ["{url}"]
      namespace: {namespace}
    heartbeat_interval: 1s
    consumer:
      ack_wait: {ack}
      max_deliver: 5
      back_off: []
{extra}"#,
            url = nats.url,
            ack = humantime::format_duration(opts.ack_wait),
            extra = opts.extra_config,
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
            key,
        };
        let ready_url = format!("{}/health/ready", stack.base);
        let http = stack.http.clone();
        wait_for("API readiness", Duration::from_secs(30), || {
            let http = http.clone();
            let url = ready_url.clone();
            async move {
                http.get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            }
        })
        .await;
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

    pub fn spawn_agent(&self, spec: &AgentSpec) -> Proc {
        let mut cmd = Command::new(OSAPI);
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
        wait_for(
            &format!("agent {hostname} to be live"),
            Duration::from_secs(30),
            || {
                let req = self.get(&format!("/api/v1/agents/{hostname}"), &token);
                async move {
                    req.send()
                        .await
                        .ok()
                        .filter(|r| r.status() == 200)
                        .map(|_| ())
                }
            },
        )
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
        if state.0 == 0 {
            if let Some(mut p) = state.1.take() {
                p.terminate();
                // Leave no socket behind: later processes would log into the void.
                let _ = std::fs::remove_dir_all("/run/systemd/journal");
            }
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
