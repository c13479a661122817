//! Native systemd behaviour, with the real tools: `sd_notify` messages to a
//! notify socket of our own, `systemd-socket-activate` in front of each daemon,
//! and the real journald.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{
    AgentSpec, Nats, OSAPI, SIGNING_KEY, Stack, free_port, http_over_unix, nats_server_section,
    socket_activate, spawn, wait_for, write_file,
};

/// A notify socket like systemd's: collects the datagrams a daemon sends.
struct NotifySocket {
    sock: UnixDatagram,
    path: std::path::PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// Read messages until one contains `want`, or `timeout` passes.
    fn wait_for(&mut self, want: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l.starts_with(want));
                self.seen.push(msg);
                if hit {
                    return true;
                }
            }
        }
        false
    }

    /// Drain what arrived so far.
    fn drain(&mut self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        self.sock.set_nonblocking(true).unwrap();
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.sock.set_nonblocking(false).unwrap();
        self.seen.extend(out.iter().cloned());
        out
    }

    fn index_of(&self, line: &str) -> Option<usize> {
        self.seen
            .iter()
            .position(|m| m.lines().any(|l| l.starts_with(line)))
    }
}

/// A config for an API (and agent) on `nats`.
fn api_config(dir: &Path, nats: &Nats, api_port: u16) -> std::path::PathBuf {
    write_file(
        dir,
        "api.yaml",
        &format!(
            "api:\n  server:\n    port: {api_port}\n    listen: 127.0.0.1\n    unix_socket: \"\"\n    nats:\n      servers: [\"{url}\"]\n      namespace: {ns}\n    security:\n      signing_key: \"{SIGNING_KEY}\"\nnode:\n  agent:\n    hostname: sd-agent\n    heartbeat_interval: 1s\n    nats:\n      servers: [\"{url}\"]\n      namespace: {ns}\n{server}",
            url = nats.url,
            ns = nats.namespace().expect("generated credentials"),
            server = nats_server_section(nats, dir),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_notifies_ready_status_watchdog_and_stopping_in_order() {
    let mut nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut notify = NotifySocket::bind(dir.path());
    let cfg = api_config(dir.path(), &nats, free_port());
    let mut api = spawn(
        "api (notify)",
        Command::new(OSAPI)
            .arg("-f")
            .arg(&cfg)
            .args(["api", "server", "start"])
            .env("NOTIFY_SOCKET", &notify.path)
            // 400 ms watchdog: pings every 200 ms while healthy.
            .env("WATCHDOG_USEC", "400000"),
    );
    assert!(
        notify.wait_for("READY=1", Duration::from_secs(30)),
        "no READY=1: {:?}",
        notify.seen
    );
    assert!(
        notify.wait_for("WATCHDOG=1", Duration::from_secs(5)),
        "no WATCHDOG=1: {:?}",
        notify.seen
    );
    let status = notify
        .index_of("STATUS=connecting to NATS")
        .expect("a STATUS before readiness");
    let ready = notify.index_of("READY=1").unwrap();
    let ping = notify.index_of("WATCHDOG=1").unwrap();
    assert!(status < ready && ready < ping, "{:?}", notify.seen);

    // NATS goes away: the pings stop (so systemd would restart us).
    nats.sup
        .take()
        .unwrap()
        .stop(Duration::from_secs(5))
        .await
        .unwrap();
    // Let any ping that was already in flight arrive, then watch a quiet window
    // of several watchdog intervals.
    let _ = notify.wait_for("never", Duration::from_millis(1500));
    notify.drain();
    let _ = notify.wait_for("never", Duration::from_millis(1500));
    let late = notify.drain();
    assert!(
        !notify
            .seen
            .iter()
            .rev()
            .take(late.len())
            .any(|m| m.contains("WATCHDOG=1")),
        "watchdog still pinging with NATS down: {late:?}"
    );

    assert!(api.terminate().success());
    assert!(
        notify.wait_for("STOPPING=1", Duration::from_secs(5)),
        "no STOPPING=1: {:?}",
        notify.seen
    );
}

/// The embedded server and an agent as separate processes, from one config
/// that names no credential: the supervisor generates them and provisions the
/// job stream, so the agent is ready before any API ever ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_supervisor_and_agent_notify_ready() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let binary = std::env::var("TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let cfg = write_file(
        dir.path(),
        "osapi.yaml",
        &format!(
            "nats:\n  server:\n    port: {port}\n    store_dir: {store}\n    binary: {binary}\n\
             node:\n  agent:\n    hostname: sd-agent\n    heartbeat_interval: 1s\n    \
             nats:\n      servers: [\"nats://127.0.0.1:{port}\"]\n",
            store = dir.path().join("js").display(),
        ),
    );
    let nsock = tempfile::tempdir().unwrap();
    let mut nnotify = NotifySocket::bind(nsock.path());
    let mut sup = spawn(
        "nats (notify)",
        Command::new(OSAPI)
            .arg("-f")
            .arg(&cfg)
            .args(["nats", "server", "start"])
            .env("NOTIFY_SOCKET", &nnotify.path),
    );
    assert!(
        nnotify.wait_for("READY=1", Duration::from_secs(30)),
        "nats: {:?}",
        nnotify.seen
    );
    // Ready means ready: the port answers at once.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    let mut notify = NotifySocket::bind(dir.path());
    let _agent = spawn(
        "agent (notify)",
        Command::new(OSAPI)
            .arg("-f")
            .arg(&cfg)
            .args(["node", "agent", "start", "--simulate", "0s"])
            .env("NOTIFY_SOCKET", &notify.path),
    );
    assert!(
        notify.wait_for("READY=1", Duration::from_secs(30)),
        "agent: {:?}",
        notify.seen
    );
    assert!(
        notify
            .seen
            .iter()
            .any(|m| m.contains("STATUS=consuming jobs")),
        "{:?}",
        notify.seen
    );
    assert!(sup.terminate().success());
    assert!(nnotify.wait_for("STOPPING=1", Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_every_activated_socket_including_early_requests() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = api_config(dir.path(), &nats, free_port());
    let unix = dir.path().join("api.sock");
    let cfg_s = cfg.to_str().unwrap().to_owned();
    let _activator = spawn(
        "socket-activated api",
        &mut socket_activate(
            &[format!("127.0.0.1:{port}"), unix.display().to_string()],
            "http:local",
            &[],
            &["-f", &cfg_s, "api", "server", "start"],
        ),
    );
    let http = reqwest::Client::new();
    // The first request arrives before the API exists (it starts the API), and
    // is answered once the API is ready rather than refused.
    let url = format!("http://127.0.0.1:{port}/health/ready");
    let first = wait_for(
        "the activator to listen",
        Duration::from_secs(10),
        || async {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        },
    );
    first.await;
    let resp = http
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("early request answered");
    assert_eq!(resp.status(), 200);
    let version = http
        .get(format!("http://127.0.0.1:{port}/api/v1/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 200);
    // The unix socket is served by the same process.
    let answer = http_over_unix(&unix, "/api/v1/version").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(osapi::VERSION), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_serves_health_and_metrics_on_its_activated_socket() {
    let stack = Stack::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let cfg_s = stack.config.to_str().unwrap().to_owned();
    let _activator = spawn(
        "socket-activated agent",
        &mut socket_activate(
            &[sock.display().to_string()],
            "agent",
            &["OSAPI_NODE_AGENT_HOSTNAME=sock-agent"],
            &["-f", &cfg_s, "node", "agent", "start", "--simulate", "0s"],
        ),
    );
    wait_for("the agent socket", Duration::from_secs(10), || async {
        sock.exists().then_some(())
    })
    .await;
    // This connection starts the agent; it is answered.
    let live = http_over_unix(&sock, "/health").await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let ready = wait_for("agent readiness", Duration::from_secs(30), || async {
        let r = http_over_unix(&sock, "/health/ready").await;
        r.starts_with("HTTP/1.1 200").then_some(r)
    })
    .await;
    assert!(ready.contains("ready"));
    let metrics = http_over_unix(&sock, "/metrics").await;
    assert!(metrics.contains("osapi_agent_running_jobs 0"), "{metrics}");
    stack.wait_agent_live("sock-agent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_supervisor_relays_clients_from_an_activated_socket() {
    let dir = tempfile::tempdir().unwrap();
    // A real NATS client through the relay, JetStream included.
    let (_activator, _port, client) = crate::harness::socket_activated_nats(dir.path()).await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RELAY".into(),
        subjects: vec!["relay.>".into()],
        ..Default::default()
    })
    .await
    .expect("JetStream through the relay");
    let ack = js
        .publish("relay.one", "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_reach_the_real_journal_with_priority_and_trace_id() {
    let _journal = crate::harness::journald();
    let stack = Stack::start(&[AgentSpec::real("journal-node").simulate(Duration::ZERO)]).await;
    let token = stack.token(&["admin"]);
    let trace = format!("{:032x}", rand::random::<u128>() | 1);
    let resp = stack
        .get("/api/v1/node/hostname", &token)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let entries = wait_for(
        "the request's journal entries",
        Duration::from_secs(20),
        || async {
            let out = Command::new("journalctl")
                .args(["-o", "json", "--no-pager", &format!("TRACE_ID={trace}")])
                .output()
                .ok()?;
            let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            // Both the API's request line and the agent's job line.
            let api = entries
                .iter()
                .any(|e| e["SYSLOG_IDENTIFIER"] == "osapi-api");
            let agent = entries
                .iter()
                .any(|e| e["SYSLOG_IDENTIFIER"] == "osapi-agent");
            (api && agent).then_some(entries)
        },
    )
    .await;
    let request_line = entries
        .iter()
        .find(|e| {
            e["SYSLOG_IDENTIFIER"] == "osapi-api"
                && e["MESSAGE"]
                    .as_str()
                    .is_some_and(|m| m.contains("/api/v1/node/hostname"))
        })
        .expect("the request's log line");
    assert_eq!(
        request_line["PRIORITY"], "6",
        "INFO maps to priority 6: {request_line}"
    );
    assert_eq!(request_line["STATUS"], "200", "{request_line}");
    assert!(
        request_line["SPAN_ID"]
            .as_str()
            .is_some_and(|s| s.len() == 16),
        "{request_line}"
    );
}
