//! Running nats-server as a child: spawn, log forwarding, readiness, stop.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{NatsdError, ServerAuth, Settings, generate_config, health, ports};

/// How long [`Supervisor::start`] waits for JetStream to come up. Recovering a
/// large store can take a while; a wedged server should not block forever.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between health probes while the child starts (it is usually ready
/// within a few hundred milliseconds).
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Output lines kept for error reports.
const TAIL_LINES: usize = 20;
/// How long to wait for the output forwarders to see EOF once the child exited,
/// so the last lines (the reason it died) make it into the report.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// File name of the generated configuration inside `run_dir`.
const CONFIG_FILE: &str = "nats-server.conf";
/// nats-server shuts down cleanly on SIGINT and SIGTERM alike, but exits 1
/// after SIGTERM and 0 after SIGINT (2.9.10); SIGINT makes a clean stop look clean.
const STOP_SIGNAL: Signal = Signal::SIGINT;
/// Where distributions install nats-server when it is not on `PATH` (Debian:
/// `/usr/sbin`, which is not on an ordinary user's `PATH`).
const FALLBACK_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/sbin",
    "/bin",
];

/// A running, ready nats-server child process.
///
/// Dropping it kills the child (SIGKILL); use [`Supervisor::stop`] for a clean
/// shutdown.
#[derive(Debug)]
pub struct Supervisor {
    // Field order matters for Drop: the child is killed before the thread that
    // forked it is released (which would otherwise deliver the death signal).
    child: Child,
    pid: u32,
    client_addr: String,
    client_url: String,
    monitor_addr: SocketAddr,
    output: Output,
    config: ConfigFile,
    /// What the config file was generated from, for [`Supervisor::reload_auth`].
    settings: Settings,
    monitor_port: u16,
    _parent: ParentThread,
}

impl Supervisor {
    /// Starts nats-server and waits until it serves JetStream, for at most
    /// [`DEFAULT_READY_TIMEOUT`].
    pub async fn start(settings: Settings) -> Result<Supervisor, NatsdError> {
        Self::start_with_timeout(settings, DEFAULT_READY_TIMEOUT).await
    }

    /// [`Supervisor::start`] with an explicit readiness timeout.
    pub async fn start_with_timeout(
        mut settings: Settings,
        ready_timeout: Duration,
    ) -> Result<Supervisor, NatsdError> {
        settings.validate()?;
        let binary = resolve_binary(&settings.binary)?;
        let monitor_port = match settings.monitor_port {
            Some(port) => port,
            None => ports::find_free_port().map_err(NatsdError::MonitorPort)?,
        };
        // Clustered JetStream refuses to start without a server name.
        if settings.cluster.is_some() && settings.server_name.is_none() {
            settings.server_name = Some(host_name());
        }
        let config =
            ConfigFile::write(&settings.run_dir, &generate_config(&settings, monitor_port))?;

        let mut cmd = Command::new(&binary);
        cmd.arg("-c")
            .arg(&config.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // nats-server speaks none of systemd's protocols; our notify socket,
        // passed sockets and watchdog are ours alone.
        for var in crate::systemd::MANAGER_ENV {
            cmd.env_remove(var);
        }
        // Go's soft memory limit: without one, nats-server's heap grows to
        // twice its live data between collections and keeps the pages. An
        // operator's own GOMEMLIMIT (the unit's Environment=) wins.
        if std::env::var_os("GOMEMLIMIT").is_none() {
            cmd.env("GOMEMLIMIT", super::GO_MEMORY_LIMIT);
        }
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec, so it must only make
        // async-signal-safe calls and must not allocate: prctl(2) and getppid(2)
        // are plain syscalls, and the errors are built from raw errno values.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(STOP_SIGNAL).map_err(io::Error::from)?;
                // The supervisor may have died before prctl took effect.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let (mut child, parent_thread) =
            spawn_child(cmd).await.map_err(|source| NatsdError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let mut output = Output::capture(&mut child, pid);
        let monitor_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, monitor_port));
        tracing::info!(
            pid,
            binary = %binary.display(),
            config = %config.path.display(),
            "started nats-server, waiting for JetStream"
        );

        match wait_ready(&mut child, monitor_addr, ready_timeout).await {
            Ok(()) => {}
            Err(Failure::Exited(status)) => {
                output.drain().await;
                return Err(NatsdError::ChildExited {
                    status,
                    stderr_tail: output.tail(),
                });
            }
            Err(Failure::Timeout(last_probe)) => {
                // It is alive but wedged; a polite signal is unlikely to help.
                let _ = child.kill().await;
                output.drain().await;
                return Err(NatsdError::NotReady {
                    timeout: ready_timeout,
                    last_probe,
                    stderr_tail: output.tail(),
                });
            }
            Err(Failure::Wait(source)) => return Err(NatsdError::Wait(source)),
        }

        let client_addr = host_port(&settings.host, settings.port);
        let client_url = format!(
            "nats://{}",
            host_port(connectable_host(&settings.host), settings.port)
        );
        tracing::info!(pid, client = %client_addr, monitor = %monitor_addr, "nats-server ready");
        Ok(Supervisor {
            child,
            pid,
            client_addr,
            client_url,
            monitor_addr,
            output,
            config,
            settings,
            monitor_port,
            _parent: parent_thread,
        })
    }

    /// Replace the server's users: rewrite its configuration and have it
    /// reload (SIGHUP). nats-server closes the connections of users that are
    /// gone or whose permissions changed.
    pub fn reload_auth(&mut self, auth: ServerAuth) -> Result<(), NatsdError> {
        if auth == self.settings.auth {
            return Ok(());
        }
        // Recorded only once sent, so a failed attempt is made again.
        let mut next = self.settings.clone();
        next.auth = auth;
        next.validate()?;
        self.config
            .rewrite(&generate_config(&next, self.monitor_port))?;
        signal::kill(Pid::from_raw(self.pid as i32), Signal::SIGHUP).map_err(NatsdError::Signal)?;
        self.settings = next;
        tracing::info!(pid = self.pid, "nats-server reloading its users");
        Ok(())
    }

    /// The client listen address as configured, `host:port` (IPv6 in brackets).
    pub fn client_addr(&self) -> &str {
        &self.client_addr
    }

    /// A `nats://` URL local clients can connect to: like [`client_addr`](Self::client_addr)
    /// but with a wildcard host (`0.0.0.0`, `::`) replaced by loopback.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// The monitoring endpoint, always on 127.0.0.1.
    pub fn monitor_addr(&self) -> SocketAddr {
        self.monitor_addr
    }

    /// Whether the child still answers its health check with JetStream on (for
    /// the watchdog).
    pub async fn healthy(&self) -> bool {
        super::health::jetstream_ready(self.monitor_addr)
            .await
            .is_ok()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The generated configuration file (removed again on stop or drop).
    pub fn config_path(&self) -> &Path {
        &self.config.path
    }

    /// The child's last output lines (stdout and stderr), oldest first.
    pub fn stderr_tail(&self) -> String {
        self.output.tail()
    }

    /// Resolves when the child exits on its own. Any exit is a failure for the
    /// caller, which should report the status and [`stderr_tail`](Self::stderr_tail)
    /// and exit non-zero. Cancel-safe, so it can sit in a `select!` beside the
    /// signal handlers, followed by [`stop`](Self::stop).
    pub async fn wait(&mut self) -> Result<ExitStatus, NatsdError> {
        let status = self.child.wait().await.map_err(NatsdError::Wait)?;
        self.output.drain().await;
        Ok(status)
    }

    /// Stops the child cleanly: SIGINT (nats-server closes clients and flushes
    /// JetStream), then SIGKILL if it is still running after `grace`.
    pub async fn stop(self, grace: Duration) -> Result<ExitStatus, NatsdError> {
        let Supervisor {
            mut child,
            pid,
            mut output,
            config,
            _parent,
            ..
        } = self;
        // Until we wait for it the child cannot be reaped, so `pid` is still ours.
        if let Some(status) = child.try_wait().map_err(NatsdError::Wait)? {
            output.drain().await;
            return Ok(status);
        }
        match signal::kill(Pid::from_raw(pid as i32), STOP_SIGNAL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(errno) => return Err(NatsdError::Signal(errno)),
        }
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status.map_err(NatsdError::Wait)?,
            Err(_) => {
                tracing::warn!(pid, ?grace, "nats-server did not stop in time; killing it");
                child.kill().await.map_err(NatsdError::Wait)?;
                child.wait().await.map_err(NatsdError::Wait)?
            }
        };
        output.drain().await;
        drop(config);
        tracing::info!(pid, %status, "nats-server stopped");
        Ok(status)
    }
}

/// Finds the nats-server executable: a path containing `/` is used as is; a bare
/// name is searched on `PATH`, then in the usual sbin/bin directories.
pub fn resolve_binary(binary: &Path) -> Result<PathBuf, NatsdError> {
    let not_found = || NatsdError::BinaryNotFound {
        path: binary.to_owned(),
    };
    if binary.as_os_str().is_empty() {
        return Err(not_found());
    }
    if binary.components().count() > 1 || binary.is_absolute() {
        return if is_executable(binary) {
            Ok(binary.to_owned())
        } else {
            Err(not_found())
        };
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .filter(|dir| !dir.as_os_str().is_empty())
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(not_found)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "osapi".to_owned())
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn connectable_host(host: &str) -> &str {
    match host {
        "0.0.0.0" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other,
    }
}

/// Why the child did not become ready.
enum Failure {
    Exited(ExitStatus),
    Timeout(String),
    Wait(io::Error),
}

/// Polls the health endpoints until they pass, the child exits, or the deadline.
async fn wait_ready(
    child: &mut Child,
    monitor: SocketAddr,
    timeout: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let mut last_probe = String::from("no answer yet");
    loop {
        let probe = async {
            let result = health::jetstream_ready(monitor).await;
            if result.is_err() {
                tokio::time::sleep_until(deadline.min(Instant::now() + POLL_INTERVAL)).await;
            }
            result
        };
        tokio::select! {
            // The child's exit wins over a probe result, so "address already in
            // use" is reported as such and not as a timeout.
            biased;
            status = child.wait() => {
                return Err(status.map_or_else(Failure::Wait, Failure::Exited));
            }
            result = probe => match result {
                Ok(()) => return Ok(()),
                Err(why) => last_probe = why,
            },
            _ = tokio::time::sleep_until(deadline) => return Err(Failure::Timeout(last_probe)),
        }
        if Instant::now() >= deadline {
            return Err(Failure::Timeout(last_probe));
        }
    }
}

/// The generated configuration file; removed on drop because it may contain
/// passwords and is only needed while the child runs.
#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    fn write(run_dir: &Path, text: &str) -> Result<Self, NatsdError> {
        std::fs::create_dir_all(run_dir).map_err(|source| NatsdError::CreateRunDir {
            path: run_dir.to_owned(),
            source,
        })?;
        let config = ConfigFile {
            path: run_dir.join(CONFIG_FILE),
        };
        config.rewrite(text)?;
        Ok(config)
    }

    fn rewrite(&self, text: &str) -> Result<(), NatsdError> {
        use std::io::Write as _;
        let path = &self.path;
        let write_err = |source| NatsdError::WriteConfig {
            path: path.clone(),
            source,
        };
        // Replace rather than truncate: a leftover file could have wider
        // permissions or another owner; create_new with 0600 guarantees ours.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(e)),
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_err)?;
        file.write_all(text.as_bytes()).map_err(write_err)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Keeps alive the thread that forked the child.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
/// the process. Forking from whatever tokio thread runs `start` would tie the
/// child's life to that thread (blocking-pool threads exit after 10 s idle), so
/// the fork happens on a dedicated thread that lives exactly as long as the
/// [`Supervisor`]: the signal then means "the supervisor is gone".
#[derive(Debug)]
struct ParentThread {
    _hold: std::sync::mpsc::Sender<()>,
}

async fn spawn_child(mut cmd: Command) -> io::Result<(Child, ParentThread)> {
    let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let (result_tx, result_rx) = tokio::sync::oneshot::channel();
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("natsd-parent".into())
        .spawn(move || {
            // Entering the runtime registers the child and its pipes with it.
            let guard = runtime.enter();
            let spawned = cmd.spawn();
            let ok = spawned.is_ok();
            // If `start` was cancelled meanwhile, the child comes back here and
            // is killed on drop, still inside the runtime.
            let delivered = result_tx.send(spawned).is_ok();
            drop(guard);
            if ok && delivered {
                // Returns once the Supervisor (holding the sender) is dropped.
                let _ = hold_rx.recv();
            }
        })?;
    let child = result_rx
        .await
        .map_err(|_| io::Error::other("nats-server spawner thread ended unexpectedly"))??;
    Ok((child, ParentThread { _hold: hold_tx }))
}

/// Forwards the child's output to `tracing` and keeps its last lines.
#[derive(Debug)]
struct Output {
    tail: Arc<Mutex<VecDeque<String>>>,
    forwarders: Vec<JoinHandle<()>>,
}

impl Output {
    fn capture(child: &mut Child, pid: u32) -> Self {
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let mut forwarders = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            forwarders.push(forward(stdout, Stream::Stdout, pid, tail.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            forwarders.push(forward(stderr, Stream::Stderr, pid, tail.clone()));
        }
        Output { tail, forwarders }
    }

    fn tail(&self) -> String {
        let tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits (bounded) for the forwarders to reach EOF after the child exited.
    async fn drain(&mut self) {
        for forwarder in self.forwarders.drain(..) {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, forwarder).await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

fn forward<R>(
    reader: R,
    stream: Stream,
    pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            emit(pid, stream, line);
            let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_owned());
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Re-emits one output line at the level nats-server gave it.
fn emit(pid: u32, stream: Stream, line: &str) {
    let (level, message) = split_level(line);
    if message.is_empty() {
        return; // the blank lines of the JetStream banner
    }
    // Unlabelled stderr lines are fatal errors printed before logging starts
    // (e.g. "nats-server: jetstream cluster requires `server_name` to be set").
    let level = level.unwrap_or(match stream {
        Stream::Stdout => LogLevel::Info,
        Stream::Stderr => LogLevel::Error,
    });
    match level {
        LogLevel::Trace => tracing::trace!(target: "nats-server", pid, "{message}"),
        LogLevel::Debug => tracing::debug!(target: "nats-server", pid, "{message}"),
        LogLevel::Info => tracing::info!(target: "nats-server", pid, "{message}"),
        LogLevel::Warn => tracing::warn!(target: "nats-server", pid, "{message}"),
        LogLevel::Error => tracing::error!(target: "nats-server", pid, "{message}"),
    }
}

/// Splits `[pid] [optional timestamp] [LVL] message` into level and message.
fn split_level(line: &str) -> (Option<LogLevel>, &str) {
    const TAGS: &[(&str, LogLevel)] = &[
        ("[INF]", LogLevel::Info),
        ("[WRN]", LogLevel::Warn),
        ("[ERR]", LogLevel::Error),
        ("[FTL]", LogLevel::Error),
        ("[DBG]", LogLevel::Debug),
        ("[TRC]", LogLevel::Trace),
    ];
    let pid_end = line
        .strip_prefix('[')
        .and_then(|inner| inner.find(']'))
        .filter(|&end| end > 0 && line[1..=end].bytes().all(|b| b.is_ascii_digit()));
    let rest = match pid_end {
        Some(end) => line[end + 2..].trim_start(),
        None => line,
    };
    // With `logtime` on, a "2026/11/29 07:16:16.171398 " timestamp comes next.
    let stamp = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || b"/:. ".contains(b))
        .count();
    for (tag, level) in TAGS {
        if let Some(message) = rest[stamp..].strip_prefix(tag) {
            return (Some(*level), message.trim());
        }
    }
    (None, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::natsd::ServerAuth;
    use crate::natsd::ports::find_free_port;
    use std::io::{BufRead as _, Read as _};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    const HELPER_ENV: &str = "OSAPI_NATSD_PDEATHSIG_HELPER_DIR";

    fn test_settings(dir: &Path) -> Settings {
        Settings {
            binary: "nats-server".into(),
            host: "127.0.0.1".into(),
            port: find_free_port().unwrap(),
            store_dir: dir.join("js"),
            server_name: Some("osapi-test".into()),
            auth: ServerAuth::None,
            tls: None,
            cluster: None,
            monitor_port: None,
            run_dir: dir.join("run"),
            max_memory_store: crate::natsd::MIN_MEMORY_STORE,
        }
    }

    /// Connects like a client and returns the server's `INFO` JSON and the
    /// connection, positioned after the INFO line.
    async fn read_info(addr: &str) -> (serde_json::Value, tokio::io::BufReader<TcpStream>) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut reader = tokio::io::BufReader::new(stream);
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        let json = line
            .strip_prefix("INFO ")
            .unwrap_or_else(|| panic!("not INFO: {line}"));
        (serde_json::from_str(json.trim()).unwrap(), reader)
    }

    /// True once `pid` no longer runs (gone, or a zombie nobody reaps).
    fn process_gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    #[test]
    fn splits_nats_log_lines() {
        assert_eq!(
            split_level("[8024] [INF] Server is ready"),
            (Some(LogLevel::Info), "Server is ready")
        );
        assert_eq!(
            split_level("[6745] 2026/11/29 07:16:16.171483 [WRN] Plaintext passwords detected"),
            (Some(LogLevel::Warn), "Plaintext passwords detected")
        );
        assert_eq!(
            split_level("[8032] [FTL] Can't start monitoring: bind: address already in use"),
            (
                Some(LogLevel::Error),
                "Can't start monitoring: bind: address already in use"
            )
        );
        assert_eq!(split_level("[8024] [INF] "), (Some(LogLevel::Info), ""));
        assert_eq!(
            split_level("nats-server: jetstream cluster requires `server_name` to be set"),
            (
                None,
                "nats-server: jetstream cluster requires `server_name` to be set"
            )
        );
    }

    #[test]
    fn addresses_for_clients() {
        assert_eq!(host_port("::1", 4222), "[::1]:4222");
        assert_eq!(host_port("127.0.0.1", 4222), "127.0.0.1:4222");
        assert_eq!(connectable_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(connectable_host("::"), "::1");
    }

    #[test]
    fn missing_binary_is_reported() {
        for name in ["/nonexistent/nats-server", "osapi-no-such-nats-server", ""] {
            assert!(matches!(
                resolve_binary(Path::new(name)),
                Err(NatsdError::BinaryNotFound { .. })
            ));
        }
        assert!(resolve_binary(Path::new("nats-server")).is_ok());
    }

    #[tokio::test]
    async fn start_missing_binary_fails_before_spawning() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings(dir.path());
        settings.binary = dir.path().join("nats-server");
        let err = Supervisor::start(settings).await.unwrap_err();
        assert!(matches!(err, NatsdError::BinaryNotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn serves_jetstream_and_stops_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::start(test_settings(dir.path())).await.unwrap();
        let pid = supervisor.pid();
        let config = supervisor.config_path().to_owned();
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let (info, _conn) = read_info(supervisor.client_addr()).await;
        assert_eq!(info["jetstream"], true, "{info}");
        assert_eq!(info["server_name"], "osapi-test");
        assert!(
            info.get("auth_required").is_none_or(|v| v == false),
            "{info}"
        );
        assert!(supervisor.client_url().starts_with("nats://127.0.0.1:"));
        assert!(dir.path().join("js").join("jetstream").is_dir());

        let status = supervisor.stop(Duration::from_secs(10)).await.unwrap();
        assert!(status.success(), "SIGINT should be a clean exit: {status}");
        assert!(process_gone(pid));
        assert!(!config.exists(), "config with secrets left behind");
    }

    #[tokio::test]
    async fn port_in_use_fails_fast_with_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut settings = test_settings(dir.path());
        settings.port = blocker.local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(20), Supervisor::start(settings))
            .await
            .expect("start hung on a port in use");
        let err = result.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        match &err {
            NatsdError::ChildExited {
                status,
                stderr_tail,
            } => {
                assert!(!status.success());
                assert!(
                    stderr_tail.contains("address already in use"),
                    "{stderr_tail}"
                );
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains("address already in use"));
    }

    #[tokio::test]
    async fn user_pass_requires_auth_and_accepts_special_password() {
        let dir = tempfile::tempdir().unwrap();
        let password = "p\"a\\s$s{w}#o'r d";
        let mut settings = test_settings(dir.path());
        settings.auth = ServerAuth::UserPass(vec![("osapi".into(), password.into())]);
        let supervisor = Supervisor::start(settings).await.unwrap();

        for (pass, accepted) in [(password, true), ("wrong", false)] {
            let (info, mut conn) = read_info(supervisor.client_addr()).await;
            assert_eq!(info["auth_required"], true, "{info}");
            assert_eq!(info["jetstream"], true, "{info}");
            let connect = serde_json::json!({"user": "osapi", "pass": pass, "verbose": false});
            let request = format!("CONNECT {connect}\r\nPING\r\n");
            conn.get_mut().write_all(request.as_bytes()).await.unwrap();
            let mut reply = String::new();
            tokio::time::timeout(Duration::from_secs(5), conn.read_line(&mut reply))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(reply.starts_with("PONG"), accepted, "{pass:?}: {reply}");
        }
        supervisor.stop(Duration::from_secs(10)).await.unwrap();
    }

    #[tokio::test]
    async fn wait_reports_an_unexpected_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut supervisor = Supervisor::start(test_settings(dir.path())).await.unwrap();
        signal::kill(Pid::from_raw(supervisor.pid() as i32), Signal::SIGKILL).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(5), supervisor.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success());
        assert!(supervisor.stderr_tail().contains("Server is ready"));
        // Stopping an already dead child just reports its status.
        let again = supervisor.stop(Duration::from_secs(1)).await.unwrap();
        assert_eq!(again, status);
    }

    /// Runs a supervisor in a child test process, SIGKILLs that process and
    /// checks that its nats-server goes away too.
    #[test]
    fn killed_supervisor_leaves_no_orphan() {
        let dir = tempfile::tempdir().unwrap();
        let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "natsd::supervisor::tests::pdeathsig_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(helper.stdout.take().unwrap());
        let mut nats_pid = None;
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            // libtest prints "test NAME ... " without a newline before it.
            if let Some((_, pid)) = line.trim().split_once("NATS_PID=") {
                nats_pid = Some(pid.parse::<u32>().unwrap());
                break;
            }
            line.clear();
        }
        let Some(nats_pid) = nats_pid else {
            let _ = helper.kill();
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
            panic!("helper did not start nats-server: {line}{rest}");
        };
        assert!(!process_gone(nats_pid));
        helper.kill().unwrap(); // SIGKILL: no destructors, no kill_on_drop
        helper.wait().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !process_gone(nats_pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            process_gone(nats_pid),
            "nats-server {nats_pid} outlived its supervisor"
        );
    }

    /// Not a test on its own: the supervisor process for
    /// `killed_supervisor_leaves_no_orphan`, active only with its variable set.
    #[test]
    fn pdeathsig_helper() {
        let Some(dir) = std::env::var_os(HELPER_ENV) else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let supervisor = Supervisor::start(test_settings(Path::new(&dir)))
                .await
                .unwrap();
            println!("NATS_PID={}", supervisor.pid());
            // The parent kills us long before this; the bound keeps a failed
            // parent from leaving us behind.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(supervisor);
        });
    }
}
