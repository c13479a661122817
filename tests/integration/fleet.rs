//! Fleet operation: API and agents on a real three-node NATS cluster that loses
//! a node mid-run, agents in network namespaces that lose their link, NATS
//! authentication and TLS failures, and namespaces sharing one server.
//!
//! Network rule: everything stays on this machine. Cluster routes are on
//! loopback; the namespaces reach the host over veth links on a bridge the test
//! creates (and deletes) with addresses in 10.214.x.0/24.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use osapi::natsd::{NkeyUser, ServerAuth};
use serde_json::{Value, json};

use crate::harness::{
    Access, AgentSpec, Nats, OSAPI, Proc, Stack, StackOptions, free_port, new_namespace, post,
    wait_for, wait_meta_group, write_file,
};

/// Replicas 3 for the stream and every bucket, as `OSAPI_*` overrides (API and
/// agents both provision, so both must ask for the same).
fn r3_env() -> Vec<(String, String)> {
    [
        "OSAPI_NATS_STREAM_REPLICAS",
        "OSAPI_NATS_KV_REPLICAS",
        "OSAPI_NATS_AUDIT_REPLICAS",
        "OSAPI_NATS_REGISTRY_REPLICAS",
    ]
    .iter()
    .map(|k| (k.to_string(), "3".to_string()))
    .collect()
}

fn with_env(mut spec: AgentSpec, env: &[(String, String)]) -> AgentSpec {
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    spec
}

fn is_final(job: &Value) -> bool {
    !matches!(
        job["status"].as_str(),
        Some("submitted" | "processing") | None
    )
}

/// Hostnames of `GET /api/v1/agents`.
async fn live_agents(stack: &Stack, token: &str) -> Vec<String> {
    let (_, body) = stack.get_json("/api/v1/agents", token).await;
    body["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|a| a["hostname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Per-host status of a synchronous answer, by hostname.
fn by_host(outcome: &Value) -> BTreeMap<String, String> {
    outcome["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    (
                        r["hostname"].as_str().unwrap_or_default().to_owned(),
                        r["status"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// A JetStream stream's info, through a plain client of the cluster.
async fn stream_info(
    servers: &[String],
    access: &Access,
    name: &str,
) -> Option<async_nats::jetstream::stream::Info> {
    let addrs: Vec<async_nats::ServerAddr> = servers.iter().map(|s| s.parse().unwrap()).collect();
    let mut opts = async_nats::ConnectOptions::new();
    if let Access::Generated { dir, .. } = access {
        let seed = std::fs::read_to_string(osapi::bus::Role::Admin.seed_file(dir)).unwrap();
        opts = opts.nkey(seed.trim().to_owned());
    }
    let client = opts
        .connection_timeout(Duration::from_secs(2))
        .connect(addrs.as_slice())
        .await
        .map_err(|e| eprintln!("stream info of {name}: {e}"))
        .ok()?;
    let info = async_nats::jetstream::new(client)
        .get_stream(name)
        .await
        .map_err(|e| eprintln!("stream info of {name}: {e}"))
        .ok()?
        .get_info()
        .await;
    info.map_err(|e| eprintln!("stream info of {name}: {e}"))
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_node_cluster_loses_a_node_and_no_job_is_lost_or_run_twice() {
    let credentials = tempfile::tempdir().unwrap();
    let mut nodes = Nats::start_cluster(3, credentials.path()).await;
    let access = nodes[0].access.clone();
    wait_meta_group(&nodes, 2).await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let env = r3_env();
    // 200 jobs from one automation account: more in flight than the default cap.
    let mut api_env = env.clone();
    api_env.push(("OSAPI_API_SERVER_MAX_JOBS_IN_FLIGHT".into(), "1000".into()));
    let opts = StackOptions {
        api_env,
        // A lost acknowledgement comes back soon (and is then found finished).
        ack_wait: Duration::from_secs(5),
        ..Default::default()
    };
    let mut stack =
        Stack::start_on(Nats::external(&urls[0], access.clone()), &urls, &[], opts).await;
    let agents: Vec<AgentSpec> = (0..5)
        .map(|i| with_env(AgentSpec::real(&format!("fleet-{i}")), &env))
        .collect();
    stack.add_agents(&agents).await;
    let token = stack.token(&["admin"]);

    // Everything is replicated three times.
    let ns = stack.namespace.clone();
    for name in [
        format!("{ns}-JOBS"),
        format!("KV_{ns}-job-queue"),
        format!("KV_{ns}-job-responses"),
        format!("KV_{ns}-audit"),
        format!("KV_{ns}-agent-registry"),
    ] {
        let info = stream_info(&urls, &access, &name)
            .await
            .expect("stream info");
        assert_eq!(info.config.num_replicas, 3, "{name}");
        let cluster = info.cluster.expect("cluster info");
        assert_eq!(cluster.replicas.len(), 2, "{name}: {cluster:?}");
    }

    // Jobs flow: a broadcast reaches all five.
    let (status, all) = stack
        .get_json("/api/v1/node/hostname?target=_all", &token)
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["status"], "completed", "{all}");
    assert_eq!(by_host(&all).len(), 5, "{all}");

    // 200 command jobs, each appending one line to a file of its own; the node
    // leading the job stream is killed while they are in flight.
    let runs = stack.dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let leader = stream_info(&urls, &access, &format!("{ns}-JOBS"))
        .await
        .and_then(|i| i.cluster?.leader)
        .expect("a stream leader");
    let victim = nodes
        .iter()
        .position(|n| n.server_name() == leader)
        .expect("the leader is one of ours");
    let answered = AtomicUsize::new(0);
    let submit = futures::stream::iter(0..200)
        .map(|n| {
            let (stack, token, runs, answered) = (&stack, &token, &runs, &answered);
            async move {
                let body = json!({
                    "operation": {"type": "command.shell.execute",
                                  "data": {"command": format!("echo x >> {}/{n}", runs.display())}},
                    "target": "_any",
                    "timeout": "120s",
                });
                let r = post(stack, token, "/api/v1/jobs", body).await;
                answered.fetch_add(1, Ordering::SeqCst);
                (n, r)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let kill = async {
        wait_for("jobs in flight", Duration::from_secs(60), || async {
            (answered.load(Ordering::SeqCst) >= 40).then_some(())
        })
        .await;
        nodes[victim].kill9().await;
    };
    let (submitted, ()) = tokio::join!(submit, kill);

    let mut accepted = Vec::new();
    for (n, (status, body)) in &submitted {
        match status {
            201 => accepted.push((*n, body["job_id"].as_str().unwrap().to_owned())),
            // Refused at creation: the caller was told, and it never runs.
            _ => {
                assert_eq!(*status, 503, "job {n}: {body}");
                assert_eq!(lines(&runs.join(n.to_string())), 0, "refused job {n} ran");
            }
        }
    }
    let mut finals: BTreeMap<usize, Value> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while finals.len() < accepted.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "jobs never finished: {:?}",
            accepted
                .iter()
                .filter(|(n, _)| !finals.contains_key(n))
                .collect::<Vec<_>>()
        );
        let (stack, token) = (&stack, &token);
        let pending = accepted.iter().filter(|(n, _)| !finals.contains_key(n));
        let checked = futures::stream::iter(pending)
            .map(|(n, id)| async move {
                let (status, job) = stack.get_json(&format!("/api/v1/jobs/{id}"), token).await;
                (*n, status, job)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for (n, status, job) in checked {
            if status == 200 && is_final(&job) {
                finals.insert(n, job);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut completed = 0;
    for (n, job) in &finals {
        let file = runs.join(n.to_string());
        match job["status"].as_str() {
            Some("completed") => {
                completed += 1;
                assert_eq!(lines(&file), 1, "job {n} ran {} times: {job}", lines(&file));
            }
            // Reported, not lost: a delivery that finds the job claimed by
            // another attempt says so instead of running it again.
            _ => {
                let interrupted = job["results"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["error"]["code"] == "interrupted"));
                assert!(interrupted, "job {n}: {job}");
                assert!(lines(&file) <= 1, "job {n} ran twice: {job}");
            }
        }
    }
    eprintln!(
        "cluster failover: {} of 200 accepted, {completed} completed, {} interrupted",
        accepted.len(),
        accepted.len() - completed
    );
    // Retries ride out the failover: losing one node of three costs no jobs.
    assert_eq!(accepted.len(), 200);

    // The node rejoins: the meta group sees it current again, and the job
    // stream's replica on it catches up.
    nodes[victim].restart().await;
    wait_meta_group(&nodes, 2).await;
    let victim_name = nodes[victim].server_name();
    wait_for(
        "the rejoined node to hold a current replica",
        Duration::from_secs(60),
        || async {
            let info = stream_info(&urls, &access, &format!("{ns}-JOBS")).await?;
            let cluster = info.cluster?;
            let members: Vec<(&str, bool)> = cluster
                .replicas
                .iter()
                .map(|p| (p.name.as_str(), p.current))
                .chain(cluster.leader.as_deref().map(|l| (l, true)))
                .collect();
            members
                .iter()
                .any(|(name, current)| *name == victim_name && *current)
                .then_some(())
        },
    )
    .await;
    assert_eq!(live_agents(&stack, &token).await.len(), 5);
    let (status, all) = stack
        .get_json("/api/v1/node/hostname?target=_all", &token)
        .await;
    assert_eq!(
        (status, all["status"].as_str()),
        (200, Some("completed")),
        "{all}"
    );
    assert_eq!(by_host(&all).len(), 5, "{all}");
}

/// A server that comes back empty (memory storage, a wiped store, a new cluster):
/// the API and the agent recreate the stream, the buckets and the consumers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_recreate_what_a_wiped_server_lost() {
    let memory = "nats:\n  stream: {storage: memory}\n  kv: {storage: memory}\n  \
                  audit: {storage: memory}\n  registry: {storage: memory}\n";
    let opts = StackOptions {
        extra_config: memory.into(),
        ..Default::default()
    };
    let mut stack =
        Stack::start_with(&[AgentSpec::real("phoenix").simulate(Duration::ZERO)], opts).await;
    let token = stack.token(&["admin"]);
    let all = "/api/v1/node/hostname?target=_all&timeout=2s";
    let (_, outcome) = stack.get_json(all, &token).await;
    assert_eq!(outcome["status"], "completed", "{outcome}");

    stack.nats.restart().await;
    let stream = format!("{}-JOBS", stack.namespace);
    wait_for("jobs to flow again", Duration::from_secs(60), || async {
        let (status, outcome) = stack.get_json(all, &token).await;
        (status == 200 && outcome["status"] == "completed").then_some(())
    })
    .await;
    let info = stream_info(
        std::slice::from_ref(&stack.nats.url),
        &stack.nats.access,
        &stream,
    )
    .await
    .expect("the job stream exists again");
    assert!(info.state.consumer_count >= 2, "{:?}", info.state);
}

/// Three `osapi nats server start` supervisors with routes to each other form one
/// cluster with JetStream: what an appliance's generated config must do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_servers_of_three_appliances_form_one_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let tag = &uuid::Uuid::now_v7().simple().to_string()[24..];
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut supervisors: Vec<Proc> = Vec::new();
    // The routes' shared secret, the same file on every appliance.
    let route_secret = write_file(dir.path(), "route.secret", &format!("routes-{tag}\n"));
    for i in 0..3 {
        let routes: Vec<String> = route_ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let cfg = write_file(
            dir.path(),
            &format!("appliance-{i}.yaml"),
            &format!(
                r#"nats:
  server:
    host: 127.0.0.1
    port: {port}
    store_dir: {store}
    binary: {binary}
    server_name: appliance-{i}-{tag}
    cluster:
      name: fleet-{tag}
      host: 127.0.0.1
      port: {route}
      routes: [{routes}]
      password_file: {route_secret}
"#,
                port = client_ports[i],
                store = dir.path().join(format!("js-{i}")).display(),
                binary = crate::harness::nats_binary().display(),
                route = route_ports[i],
                routes = routes.join(", "),
                route_secret = route_secret.display(),
            ),
        );
        supervisors.push(crate::harness::spawn(
            &format!("appliance {i} NATS"),
            Command::new(OSAPI)
                .arg("-f")
                .arg(&cfg)
                .args(["nats", "server", "start"]),
        ));
    }
    let servers: Vec<String> = client_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    // Our own provisioning with three replicas succeeds only on a cluster whose
    // JetStream has all three servers (it retries while the cluster forms).
    // The appliances generated one set of credentials beside their stores.
    let conn = osapi::config::NatsConnection {
        servers: servers.clone(),
        auth: osapi::config::NatsClientAuth::Generated {
            credential: None,
            credentials_dir: dir.path().join("credentials"),
        },
        ..Default::default()
    };
    let client = wait_for(
        "the cluster to accept clients",
        Duration::from_secs(30),
        || {
            let conn = conn.clone();
            async move {
                osapi::bus::connect(&conn, osapi::bus::Role::Admin, "fleet-test")
                    .await
                    .ok()
            }
        },
    )
    .await;
    let mut nats = osapi::config::NatsConfig::default();
    nats.stream.replicas = 3;
    nats.kv.replicas = 3;
    nats.audit.replicas = 3;
    nats.registry.replicas = 3;
    let names = osapi::bus::Names::new(format!("a{tag}"));
    let buckets = osapi::bus::provision(&async_nats::jetstream::new(client), &names, &nats)
        .await
        .expect("R3 provisioning on the embedded cluster");
    let info = buckets.stream.get_info().await.unwrap();
    let cluster = info.cluster.expect("a clustered stream");
    assert_eq!(info.config.num_replicas, 3);
    let mut members: Vec<String> = cluster.replicas.iter().map(|p| p.name.clone()).collect();
    members.extend(cluster.leader);
    members.sort();
    assert_eq!(
        members,
        (0..3)
            .map(|i| format!("appliance-{i}-{tag}"))
            .collect::<Vec<_>>()
    );
    for mut s in supervisors {
        assert!(s.terminate().success());
    }
}

/// A bridge on the host with one veth link per network namespace; each
/// namespace gets its own address. Deleted again on drop.
struct Lan {
    bridge: String,
    host_addr: String,
    /// (namespace, host side of its link)
    hosts: Vec<(String, String)>,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    fn create(n: usize) -> Lan {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let subnet = rand::random::<u8>();
        let mut lan = Lan {
            bridge: format!("osfb{tag}"),
            host_addr: format!("10.214.{subnet}.1"),
            hosts: Vec::new(),
        };
        run(&["ip", "link", "add", "name", &lan.bridge, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", lan.host_addr),
            "dev",
            &lan.bridge,
        ]);
        run(&["ip", "link", "set", &lan.bridge, "up"]);
        for i in 0..n {
            let ns = format!("osapi-fleet-{tag}-{i}");
            let (host_if, peer) = (format!("osf{tag}{i}h"), format!("osf{tag}{i}n"));
            run(&["ip", "netns", "add", &ns]);
            lan.hosts.push((ns.clone(), host_if.clone()));
            run(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
            ]);
            run(&["ip", "link", "set", &peer, "netns", &ns]);
            run(&["ip", "link", "set", &host_if, "master", &lan.bridge]);
            run(&["ip", "link", "set", &host_if, "up"]);
            let addr = format!("10.214.{subnet}.{}/24", 10 + i);
            run(&[
                "ip", "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &peer,
            ]);
            run(&["ip", "netns", "exec", &ns, "ip", "link", "set", &peer, "up"]);
            run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        }
        lan
    }

    fn set_link(&self, i: usize, up: bool) {
        run(&[
            "ip",
            "link",
            "set",
            &self.hosts[i].1,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (ns, host_if) in &self.hosts {
            let _ = Command::new("ip").args(["link", "del", host_if]).output();
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_in_network_namespaces_leave_and_rejoin_with_their_link() {
    let lan = Lan::create(3);
    // The embedded NATS listens on the bridge address only: the agents reach it
    // over their veth links, not over loopback.
    let nats = Nats::start_with(|s| s.host = lan.host_addr.clone()).await;
    let servers = [nats.url.clone()];
    let opts = StackOptions {
        extra_config: "nats:\n  registry:\n    ttl: 3s\n".into(),
        ..Default::default()
    };
    let mut stack = Stack::start_on(nats, &servers, &[], opts).await;
    let agents: Vec<AgentSpec> = lan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, (ns, _))| AgentSpec::real(&format!("edge-{i}")).in_netns(ns))
        .collect();
    stack.add_agents(&agents).await;
    let token = stack.token(&["admin"]);
    let all = "/api/v1/node/hostname?target=_all&timeout=5s";
    let (status, outcome) = stack.get_json(all, &token).await;
    assert_eq!(
        (status, outcome["status"].as_str()),
        (200, Some("completed")),
        "{outcome}"
    );
    assert_eq!(by_host(&outcome).len(), 3, "{outcome}");

    // Cut edge-1's link. A broadcast created now still expects it (its last
    // heartbeat is fresh); it is reported by name as not answering.
    lan.set_link(1, false);
    let (status, outcome) = stack.get_json(all, &token).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "partial_failure", "{outcome}");
    let hosts = by_host(&outcome);
    assert_eq!(hosts["edge-0"], "completed", "{outcome}");
    assert_eq!(hosts["edge-2"], "completed", "{outcome}");
    assert_eq!(hosts["edge-1"], "timeout", "{outcome}");
    let cut_job = outcome["job_id"].as_str().unwrap().to_owned();

    // Within one registry TTL it leaves the live set; broadcasts then expect
    // only the others and complete.
    wait_for(
        "edge-1 to leave /agents",
        Duration::from_secs(10),
        || async {
            (!live_agents(&stack, &token)
                .await
                .contains(&"edge-1".to_owned()))
            .then_some(())
        },
    )
    .await;
    let (status, outcome) = stack.get_json(all, &token).await;
    assert_eq!(
        (status, outcome["status"].as_str()),
        (200, Some("completed")),
        "{outcome}"
    );
    assert_eq!(
        by_host(&outcome).keys().collect::<Vec<_>>(),
        ["edge-0", "edge-2"],
        "{outcome}"
    );

    // Link back: the agent reconnects, heartbeats, and answers broadcasts.
    lan.set_link(1, true);
    wait_for(
        "edge-1 to rejoin /agents",
        Duration::from_secs(60),
        || async {
            live_agents(&stack, &token)
                .await
                .contains(&"edge-1".to_owned())
                .then_some(())
        },
    )
    .await;
    let (status, outcome) = stack.get_json(all, &token).await;
    assert_eq!(
        (status, outcome["status"].as_str()),
        (200, Some("completed")),
        "{outcome}"
    );
    assert_eq!(by_host(&outcome).len(), 3, "{outcome}");
    // The backlog it found on return did not rewrite history: the broadcast it
    // missed still names it as not answering.
    let (_, job) = stack
        .get_json(&format!("/api/v1/jobs/{cut_job}"), &token)
        .await;
    assert_eq!(job["status"], "partial_failure", "{job}");
    assert_eq!(by_host(&job)["edge-1"], "timeout", "{job}");
}

/// Run `osapi ARGS` expecting it to give up: its exit status and stderr.
async fn start_fails(config: &Path, args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let mut child = Command::new(OSAPI)
        .arg("-f")
        .arg(config)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // The API's own port must not clash with the stack's running API.
        .env("OSAPI_API_SERVER_PORT", free_port().to_string())
        .env("OSAPI_NODE_AGENT_HOSTNAME", "intruder")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn osapi");
    let mut stderr = child.stderr.take().unwrap();
    let mut proc = Proc { child };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = proc.child.try_wait().expect("wait for osapi") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "osapi {} kept running with bad NATS settings",
            args.join(" ")
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
    (status.code().unwrap_or(-1), text)
}

/// Both daemons refuse to start against `server`, saying why.
async fn both_refuse(stack: &Stack, server: &str, env: &[(&str, String)], cause: &str) {
    for (args, prefix) in [
        (&["api", "server", "start"][..], "OSAPI_API_SERVER_NATS_"),
        (&["node", "agent", "start"][..], "OSAPI_NODE_AGENT_NATS_"),
    ] {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
            .collect();
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let (code, stderr) = start_fails(&stack.config, args, &env).await;
        assert_ne!(code, 0, "{args:?} exited 0: {stderr}");
        let lower = stderr.to_lowercase();
        assert!(lower.contains(&cause.to_lowercase()), "{args:?}: {stderr}");
        assert!(
            stderr.contains(server),
            "{args:?} does not name {server}: {stderr}"
        );
    }
}

type EnvPairs = Vec<(String, String)>;

/// Environment for the API and every agent of a stack: `KEY` becomes
/// `OSAPI_API_SERVER_NATS_KEY` and `OSAPI_NODE_AGENT_NATS_KEY`.
fn nats_env(pairs: &[(&str, String)]) -> (EnvPairs, EnvPairs) {
    let with = |prefix: &str| {
        pairs
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
            .collect::<Vec<_>>()
    };
    (
        with("OSAPI_API_SERVER_NATS_"),
        with("OSAPI_NODE_AGENT_NATS_"),
    )
}

/// One job through an authenticated stack, then the daemons refusing the
/// wrong credentials.
async fn secured_stack(nats: Nats, servers: &[String], good: &[(&str, String)]) -> Stack {
    let (api_env, agent_env) = nats_env(good);
    let opts = StackOptions {
        api_env,
        ..Default::default()
    };
    let mut stack = Stack::start_on(nats, servers, &[], opts).await;
    stack
        .add_agent(with_env(
            AgentSpec::real("guarded").simulate(Duration::ZERO),
            &agent_env,
        ))
        .await;
    let token = stack.token(&["admin"]);
    let (status, outcome) = stack.get_json("/api/v1/node/hostname", &token).await;
    assert_eq!(
        (status, outcome["status"].as_str()),
        (200, Some("completed")),
        "{outcome}"
    );
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_passwords_are_checked_and_a_wrong_one_stops_the_daemons() {
    // The embedded server as an appliance runs it: `osapi nats server start`,
    // its user's password read from a file named in osapi.yaml.
    let dir = tempfile::tempdir().unwrap();
    let server_pw = write_file(dir.path(), "server.pw", "correct horse battery\n");
    let good = write_file(dir.path(), "good.pw", "correct horse battery\n");
    let bad = write_file(dir.path(), "bad.pw", "wrong horse\n");
    let port = free_port();
    let cfg = write_file(
        dir.path(),
        "nats.yaml",
        &format!(
            "nats:\n  server:\n    port: {port}\n    store_dir: {store}\n    binary: {binary}\n    \
             auth:\n      type: user_pass\n      users:\n        \
             - {{username: osapi, password_file: {pw}}}\n",
            store = dir.path().join("js").display(),
            binary = crate::harness::nats_binary().display(),
            pw = server_pw.display(),
        ),
    );
    let _server = crate::harness::spawn(
        "embedded NATS with passwords",
        Command::new(OSAPI)
            .arg("-f")
            .arg(&cfg)
            .args(["nats", "server", "start"]),
    );
    wait_for("the embedded NATS", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    let url = format!("nats://127.0.0.1:{port}");
    let auth = |file: &PathBuf| {
        vec![
            ("AUTH_TYPE", "user_pass".to_owned()),
            ("AUTH_USERNAME", "osapi".to_owned()),
            ("AUTH_PASSWORD_FILE", file.display().to_string()),
        ]
    };
    let stack = secured_stack(
        Nats::external(&url, Access::Configured),
        std::slice::from_ref(&url),
        &auth(&good),
    )
    .await;
    both_refuse(&stack, &url, &auth(&bad), "authorization violation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_nkeys_are_checked_and_a_wrong_seed_stops_the_daemons() {
    let trusted = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let nats = Nats::start_with(|s| {
        s.auth = ServerAuth::Nkey(vec![NkeyUser::unrestricted(trusted.public_key())])
    })
    .await;
    let url = nats.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let good = write_file(dir.path(), "good.nk", &trusted.seed().unwrap());
    let bad = write_file(dir.path(), "bad.nk", &stranger.seed().unwrap());
    let auth = |file: &PathBuf| {
        vec![
            ("AUTH_TYPE", "nkey".to_owned()),
            ("AUTH_NKEY_SEED_FILE", file.display().to_string()),
        ]
    };
    let stack = secured_stack(nats, std::slice::from_ref(&url), &auth(&good)).await;
    both_refuse(&stack, &url, &auth(&bad), "authorization violation").await;
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate signed by it for `name` with the given extensions.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &rand::random::<u32>().to_string(),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_over_tls_with_client_certificates_and_an_untrusted_server_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    make_cert(
        d,
        "ca",
        "server",
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    make_cert(
        d,
        "ca",
        "client",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    let (port, monitor) = (free_port(), free_port());
    let p = |f: &str| d.join(f).display().to_string();
    // The server side of TLS comes from nats-server's own configuration; it
    // also demands a client certificate signed by our CA.
    let config = format!(
        r#"host: "127.0.0.1"
port: {port}
http: "127.0.0.1:{monitor}"
jetstream {{ store_dir: "{store}" }}
tls {{
  cert_file: "{cert}"
  key_file: "{key}"
  ca_file: "{ca}"
  verify: true
  timeout: 5
}}
"#,
        store = p("js"),
        cert = p("server.pem"),
        key = p("server.key"),
        ca = p("ca.pem"),
    );
    let url = format!("tls://127.0.0.1:{port}");
    let nats = Nats::start_raw(&config, &url, monitor).await;
    // This server of the test's own has no users.
    let tls = |ca: &str| {
        vec![
            ("AUTH_TYPE", "none".to_owned()),
            ("TLS_CA_FILE", p(ca)),
            ("TLS_CERT_FILE", p("client.pem")),
            ("TLS_KEY_FILE", p("client.key")),
        ]
    };
    let stack = secured_stack(nats, std::slice::from_ref(&url), &tls("ca.pem")).await;
    // A server whose certificate our CA did not sign is refused.
    both_refuse(&stack, &url, &tls("other-ca.pem"), "certificate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_share_one_nats_without_seeing_each_other() {
    let credentials = tempfile::tempdir().unwrap();
    let (na, nb) = (new_namespace(), new_namespace());
    let nats = Nats::start_for(credentials.path(), &[na.clone(), nb.clone()]).await;
    let servers = [nats.url.clone()];
    let a = Stack::start_on(
        nats,
        &servers,
        &[AgentSpec::real("alpha-1").simulate(Duration::ZERO)],
        StackOptions {
            namespace: Some(na),
            ..Default::default()
        },
    )
    .await;
    let b = Stack::start_on(
        Nats::external(&a.nats.url, a.nats.access.clone()),
        &servers,
        &[AgentSpec::real("beta-1").simulate(Duration::ZERO)],
        StackOptions {
            namespace: Some(nb),
            ..Default::default()
        },
    )
    .await;
    assert_ne!(a.namespace, b.namespace);
    let (ta, tb) = (
        a.token_for("user-a", &["admin"], None),
        b.token_for("user-b", &["admin"], None),
    );

    // Each side's broadcast reaches only its own agents.
    let (_, in_b) = b.get_json("/api/v1/node/hostname?target=_all", &tb).await;
    assert_eq!(in_b["status"], "completed", "{in_b}");
    assert_eq!(
        by_host(&in_b).keys().collect::<Vec<_>>(),
        ["beta-1"],
        "{in_b}"
    );
    let b_job = in_b["job_id"].as_str().unwrap().to_owned();
    let (_, in_a) = a.get_json("/api/v1/node/hostname?target=_all", &ta).await;
    assert_eq!(
        by_host(&in_a).keys().collect::<Vec<_>>(),
        ["alpha-1"],
        "{in_a}"
    );

    // Agents: A sees only its own.
    assert_eq!(live_agents(&a, &ta).await, ["alpha-1"]);
    assert_eq!(live_agents(&b, &tb).await, ["beta-1"]);
    let (status, _) = a.get_json("/api/v1/agents/beta-1", &ta).await;
    assert_eq!(status, 404);

    // Jobs: B's job is unknown to A, and A's listing holds only A's jobs.
    let (status, _) = a.get_json(&format!("/api/v1/jobs/{b_job}"), &ta).await;
    assert_eq!(status, 404);
    let (_, listed) = a.get_json("/api/v1/jobs?limit=50", &ta).await;
    let ids: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert!(
        !ids.is_empty() && !ids.contains(&b_job.as_str()),
        "{listed}"
    );
    assert!(
        listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["created_by"] == "user-a"),
        "{listed}"
    );

    // A job for B's host through A's API: no such agent here.
    let (status, problem) = post(
        &a,
        &ta,
        "/api/v1/jobs",
        json!({"operation": {"type": "node.hostname.get"}, "target": "beta-1"}),
    )
    .await;
    assert_eq!(status, 404, "{problem}");

    // Audit: B's entries exist (in B), and none of them shows up in A.
    wait_for("B's audit entries", Duration::from_secs(20), || async {
        let (_, trail) = b.get_json("/api/v1/audit?user=user-b", &tb).await;
        trail["entries"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
            .then_some(())
    })
    .await;
    let (status, trail) = a.get_json("/api/v1/audit?limit=500", &ta).await;
    assert_eq!(status, 200, "{trail}");
    let users: Vec<&str> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["user"].as_str())
        .collect();
    assert!(
        users.contains(&"user-a") && !users.contains(&"user-b"),
        "{trail}"
    );
}
