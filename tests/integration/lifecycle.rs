//! Process lifecycles: graceful agent stop, heartbeat expiry, NATS outages, the
//! supervisor noticing its child die, and `osapi start` as a whole.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{
    AgentSpec, OSAPI, SIGNING_KEY, Stack, StackOptions, embedded_nats_config, free_port, send_json,
    spawn, wait_for, write_file,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_agent_finishes_its_running_job() {
    let mut stack =
        Stack::start(&[AgentSpec::real("grace").simulate(Duration::from_secs(2))]).await;
    let token = stack.token(&["admin"]);
    let (status, body) = send_json(
        stack
            .request(reqwest::Method::POST, "/api/v1/jobs", &token)
            .json(&json!({"operation": {"type": "node.uptime.get"}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    stack.wait_job_event(&token, &id, "started", None).await;
    let status = stack.agent_mut("grace").terminate();
    assert!(status.success(), "agent exit: {status:?}");
    // It finished the job before exiting, and left the registry at once.
    let (_, job) = stack.get_json(&format!("/api/v1/jobs/{id}"), &token).await;
    assert_eq!(job["status"], "completed", "{job}");
    let (status, _) = stack.get_json("/api/v1/agents/grace", &token).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_expires_with_the_registry_ttl() {
    let opts = StackOptions {
        extra_config: "nats:\n  registry:\n    ttl: 3s\n".into(),
        ..Default::default()
    };
    let mut stack =
        Stack::start_with(&[AgentSpec::real("ghost").simulate(Duration::ZERO)], opts).await;
    let token = stack.token(&["admin"]);
    stack.agent_mut("ghost").kill9();
    wait_for(
        "the dead agent to expire",
        Duration::from_secs(20),
        || async {
            let (status, _) = stack.get_json("/api/v1/agents/ghost", &token).await;
            (status == 404).then_some(())
        },
    )
    .await;
    // With nobody live, a job is refused at creation rather than left waiting.
    let (status, body) = stack.get_json("/api/v1/node/hostname", &token).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reports_nats_outages_as_503() {
    let mut stack = Stack::start(&[]).await;
    let token = stack.token(&["admin"]);
    if let Some(sup) = stack.nats.sup.take() {
        sup.stop(Duration::from_secs(5)).await.expect("stop nats");
    }
    let resp = wait_for("readiness to fail", Duration::from_secs(20), || async {
        let r = stack
            .http
            .get(stack.url("/health/ready"))
            .send()
            .await
            .ok()?;
        (r.status() == 503).then_some(r)
    })
    .await;
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (status, body) = stack.get_json("/api/v1/jobs", &token).await;
    assert_eq!(status, 503, "{body}");
    // Liveness still answers: the process is fine, its dependency is not.
    assert_eq!(
        stack
            .http
            .get(stack.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_exits_nonzero_when_nats_dies() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = embedded_nats_config(dir.path(), port);
    let mut sup = spawn(
        "nats supervisor",
        Command::new(OSAPI)
            .arg("-f")
            .arg(&cfg)
            .args(["nats", "server", "start"]),
    );
    wait_for("embedded NATS", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    let children = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        sup.child.id(),
        sup.child.id()
    ))
    .unwrap_or_default();
    // The child may have been forked from another thread of the supervisor.
    let child_pid: i32 = match children.split_whitespace().next() {
        Some(pid) => pid.parse().unwrap(),
        None => {
            let tasks = std::fs::read_dir(format!("/proc/{}/task", sup.child.id())).unwrap();
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
                .find_map(|c| c.split_whitespace().next().map(|p| p.parse().unwrap()))
                .expect("nats-server child")
        }
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = sup.child.wait().unwrap();
    assert!(
        !status.success(),
        "supervisor exited 0 after its child died"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osapi_start_runs_the_whole_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (api_port, nats_port) = (free_port(), free_port());
    let cfg = write_file(
        dir.path(),
        "all.yaml",
        &format!(
            "api:\n  server:\n    port: {api_port}\n    listen: 127.0.0.1\n    unix_socket: \"\"\n    nats:\n      servers: [\"nats://127.0.0.1:{nats_port}\"]\n    security:\n      signing_key: \"{SIGNING_KEY}\"\nnats:\n  server:\n    port: {nats_port}\n    store_dir: {}\nnode:\n  agent:\n    hostname: all-in-one\n    nats:\n      servers: [\"nats://127.0.0.1:{nats_port}\"]\n",
            dir.path().join("js").display()
        ),
    );
    let mut all = spawn(
        "osapi start",
        Command::new(OSAPI).arg("-f").arg(&cfg).arg("start"),
    );
    let http = reqwest::Client::new();
    let key = osapi::token::TokenKey::new(SIGNING_KEY.as_bytes().to_vec()).unwrap();
    let token = key.issue(
        "t",
        vec!["admin".into()],
        None,
        osapi::token::now_unix(),
        600,
    );
    let body: serde_json::Value =
        wait_for("the suite to answer", Duration::from_secs(60), || async {
            let r = http
                .get(format!("http://127.0.0.1:{api_port}/api/v1/node/hostname"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            if r.status() != 200 {
                return None;
            }
            r.json().await.ok()
        })
        .await;
    assert_eq!(body["results"][0]["hostname"], "all-in-one", "{body}");
    assert!(all.terminate().success());
    // Nothing keeps listening once it is gone.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", nats_port))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_brings_its_consumers_to_the_configured_timing() {
    let mut stack = Stack::start(&[AgentSpec::real("retimed").simulate(Duration::ZERO)]).await;
    stack.agent_mut("retimed").terminate();
    // Same host, new redelivery timing: the durable consumers must follow it, or
    // the agent's keepalive and the server's ack deadline disagree.
    stack
        .add_agent(
            AgentSpec::real("retimed")
                .simulate(Duration::ZERO)
                .env("OSAPI_NODE_AGENT_CONSUMER_ACK_WAIT", "7s"),
        )
        .await;
    let client = stack.nats.admin_client().await;
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_stream(format!("{}-JOBS", stack.namespace))
        .await
        .unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_consumer(&format!("{}-any", stack.namespace))
        .await
        .unwrap();
    assert_eq!(
        consumer.cached_info().config.ack_wait,
        Duration::from_secs(7)
    );
}
