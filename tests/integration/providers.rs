//! The real ping and command providers, through the real API and real agents:
//! what a user sees in `results[0]`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{AgentSpec, OSAPI, Stack, StackOptions, post, spawn, wait_for};

/// The one host's result of a finished synchronous request.
async fn result(stack: &Stack, token: &str, path: &str, body: Value) -> Value {
    let (status, resp) = post(stack, token, path, body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["results"].as_array().map(Vec::len), Some(1), "{resp}");
    resp["results"][0].clone()
}

/// Start a job without waiting (`?async=true`); its id.
async fn submit(stack: &Stack, token: &str, path: &str, body: Value) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, resp) = post(stack, token, &format!("{path}{sep}async=true"), body).await;
    assert_eq!(status, 202, "{resp}");
    resp["job_id"].as_str().unwrap().to_owned()
}

async fn wait_final(stack: &Stack, token: &str, id: &str) -> Value {
    wait_for("a final job status", Duration::from_secs(60), || async {
        let (_, body) = stack.get_json(&format!("/api/v1/jobs/{id}"), token).await;
        let s = body["status"].as_str().unwrap_or("");
        (!s.is_empty() && !["submitted", "processing"].contains(&s)).then_some(body)
    })
    .await
}

/// Pids of live processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Zombies have an empty cmdline: only the living match.
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// A `sleep` duration unique to this test run, so its processes can be found.
fn marker_duration() -> String {
    let n = u32::from_le_bytes(uuid::Uuid::now_v7().as_bytes()[12..16].try_into().unwrap());
    format!("100.{:09}", n % 1_000_000_000)
}

/// A real agent with extra `OSAPI_*` environment (configuration overrides).
async fn add_agent_with_env(stack: &mut Stack, hostname: &str, env: &[(&str, &str)]) {
    let mut cmd = Command::new(OSAPI);
    cmd.arg("-f")
        .arg(&stack.config)
        .args(["node", "agent", "start"])
        .env("OSAPI_NODE_AGENT_HOSTNAME", hostname)
        .envs(env.iter().copied());
    let proc = spawn(&format!("agent {hostname}"), &mut cmd);
    stack.agents.push((AgentSpec::real(hostname), proc));
    stack.wait_agent_live(hostname).await;
}

/// A test host that receives pings and never answers: a network namespace joined
/// to this one by a veth pair, with `icmp_echo_ignore_all` set inside it.
struct SilentHost {
    netns: String,
    host_if: String,
    address: String,
}

impl SilentHost {
    fn create() -> SilentHost {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let subnet = rand::random::<u8>() & 0x3f;
        let host = SilentHost {
            netns: format!("osapi-silent-{tag}"),
            host_if: format!("ossil{tag}a"),
            address: format!("10.213.{subnet}.2"),
        };
        let peer = format!("ossil{tag}b");
        let ns = host.netns.as_str();
        let run = |args: &[&str]| {
            let out = Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect("run ip");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["ip", "netns", "add", ns]);
        run(&[
            "ip",
            "link",
            "add",
            &host.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        run(&["ip", "link", "set", &peer, "netns", ns]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.213.{subnet}.1/30"),
            "dev",
            &host.host_if,
        ]);
        run(&["ip", "link", "set", &host.host_if, "up"]);
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "ip",
            "addr",
            "add",
            &format!("{}/30", host.address),
            "dev",
            &peer,
        ]);
        run(&["ip", "netns", "exec", ns, "ip", "link", "set", &peer, "up"]);
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.icmp_echo_ignore_all=1",
        ]);
        host
    }
}

impl Drop for SilentHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

fn has_ipv6_loopback() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6")
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with("00000000000000000000000000000001"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_loopback_unreachable_and_unknown_hosts() {
    let stack = Stack::start(&[AgentSpec::real("pinger")]).await;
    let token = stack.token(&["admin"]);
    let ping = "/api/v1/network/ping";

    let mut loopbacks = vec!["127.0.0.1"];
    if has_ipv6_loopback() {
        loopbacks.push("::1");
    } else {
        eprintln!("this machine has no ::1 on lo; IPv6 ping not tested");
    }
    for address in loopbacks {
        let r = result(
            &stack,
            &token,
            ping,
            json!({"address": address, "count": 3, "timeout": "1s"}),
        )
        .await;
        assert_eq!(r["status"], "completed", "{r}");
        let d = &r["data"];
        assert_eq!(d["address"], address, "{r}");
        assert_eq!(d["resolved"], address, "{r}");
        assert_eq!(
            (d["sent"].as_u64(), d["received"].as_u64()),
            (Some(3), Some(3)),
            "{r}"
        );
        assert_eq!(d["loss_percent"].as_f64(), Some(0.0), "{r}");
        let (min, avg, max) = (
            d["rtt_min_ms"].as_f64().unwrap(),
            d["rtt_avg_ms"].as_f64().unwrap(),
            d["rtt_max_ms"].as_f64().unwrap(),
        );
        assert!(min >= 0.0 && min <= avg && avg <= max, "{r}");
        assert!(d["rtt_stddev_ms"].as_f64().is_some(), "{r}");
    }

    // A host that never answers: our own test host in a network namespace that
    // ignores echo requests. (Probing a documentation address would send
    // traffic off this machine; this stays on a veth we made.)
    let silent = SilentHost::create();
    let r = result(
        &stack,
        &token,
        ping,
        json!({"address": silent.address, "count": 1, "timeout": "300ms"}),
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["data"]["sent"], 1, "{r}");
    assert_eq!(r["data"]["received"], 0, "{r}");
    assert_eq!(r["data"]["loss_percent"].as_f64(), Some(100.0), "{r}");
    assert!(r["data"]["rtt_avg_ms"].is_null(), "{r}");
    drop(silent);

    let r = result(
        &stack,
        &token,
        ping,
        json!({"address": "no-such-host.invalid", "count": 1}),
    )
    .await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    assert_eq!(
        r["error"]["message"], "host not found: no-such-host.invalid",
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_without_timeout_gets_the_agents_default_in_its_deadline() {
    let stack = Stack::start(&[
        AgentSpec::real("patient").env("OSAPI_NODE_AGENT_COMMAND_DEFAULT_TIMEOUT", "90s")
    ])
    .await;
    let token = stack.token(&["admin"]);
    let (status, agent) = stack.get_json("/api/v1/agents/patient", &token).await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["command_default_timeout_ms"], 90_000, "{agent}");

    // The job may run for the agent's 90 s, so its deadline (and the
    // synchronous wait) allows 90 s + 5 s, not the 30 s + 5 s of the spec's default.
    let job_timeout = |id: Value| {
        let (stack, token) = (&stack, &token);
        async move {
            let (status, job) = stack
                .get_json(&format!("/api/v1/jobs/{}", id.as_str().unwrap()), token)
                .await;
            assert_eq!(status, 200, "{job}");
            job["timeout_ms"].clone()
        }
    };
    let (status, accepted) = post(
        &stack,
        &token,
        "/api/v1/command/exec?async=true",
        json!({"command": "/bin/true"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(job_timeout(accepted["job_id"].clone()).await, 95_000);
    let (status, created) = post(
        &stack,
        &token,
        "/api/v1/jobs",
        json!({"operation": {"type": "command.shell.execute", "data": {"command": "true"}}, "timeout": "5s"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(job_timeout(created["job_id"].clone()).await, 95_000);
    // A command that names its timeout keeps its own bound.
    let (status, accepted) = post(
        &stack,
        &token,
        "/api/v1/command/exec?async=true",
        json!({"command": "/bin/true", "timeout": "2s"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(job_timeout(accepted["job_id"].clone()).await, 30_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_shell_report_output_and_status() {
    let stack = Stack::start(&[AgentSpec::real("runner")]).await;
    let token = stack.token(&["admin"]);
    let (exec, shell) = ("/api/v1/command/exec", "/api/v1/command/shell");

    let r = result(
        &stack,
        &token,
        exec,
        json!({"command": "/bin/echo", "args": ["a", "b"]}),
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["data"]["stdout"], "a b\n", "{r}");
    assert_eq!(r["data"]["stderr"], "", "{r}");
    assert_eq!(r["data"]["exit_code"], 0, "{r}");
    assert_eq!(r["data"]["timed_out"], false, "{r}");
    assert!(r["data"]["duration_ms"].is_u64(), "{r}");

    // No shell: metacharacters reach the program as they are.
    let literal = "$(id); * `id` > /dev/null";
    let r = result(
        &stack,
        &token,
        exec,
        json!({"command": "/bin/echo", "args": [literal]}),
    )
    .await;
    assert_eq!(r["data"]["stdout"], format!("{literal}\n"), "{r}");

    let r = result(
        &stack,
        &token,
        shell,
        json!({"command": "echo hello | tr a-z A-Z"}),
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["data"]["stdout"], "HELLO\n", "{r}");

    let r = result(
        &stack,
        &token,
        shell,
        json!({"command": "echo oops >&2; exit 3"}),
    )
    .await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "exit_status", "{r}");
    assert_eq!(r["data"]["stderr"], "oops\n", "{r}");

    // A non-zero exit is a failed result that still has its data.
    let r = result(&stack, &token, exec, json!({"command": "false"})).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "exit_status", "{r}");
    assert_eq!(r["error"]["message"], "exited with status 1", "{r}");
    assert_eq!(r["data"]["exit_code"], 1, "{r}");

    let r = result(&stack, &token, exec, json!({"command": "/no/such/program"})).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    assert_eq!(
        r["error"]["message"], "program not found: /no/such/program",
        "{r}"
    );
    assert!(r["data"].is_null(), "{r}");

    let r = result(
        &stack,
        &token,
        shell,
        json!({"command": "pwd", "cwd": "/tmp"}),
    )
    .await;
    assert_eq!(r["data"]["stdout"], "/tmp\n", "{r}");
    let r = result(
        &stack,
        &token,
        exec,
        json!({"command": "pwd", "cwd": "/no/such/dir"}),
    )
    .await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["message"], "cwd not found: /no/such/dir", "{r}");

    let r = result(
        &stack,
        &token,
        exec,
        json!({"command": "/bin/sh", "args": ["-c", "printf %s \"$GREETING\""],
               "env": {"GREETING": "hi there"}}),
    )
    .await;
    assert_eq!(r["data"]["stdout"], "hi there", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_output_is_capped_and_still_reported() {
    let mut stack = Stack::start(&[AgentSpec::real("default-cap")]).await;
    add_agent_with_env(
        &mut stack,
        "small-cap",
        &[("OSAPI_NODE_AGENT_COMMAND_MAX_OUTPUT_BYTES", "64KiB")],
    )
    .await;
    let token = stack.token(&["admin"]);
    let five_mib = json!({"command": "head -c 5242880 /dev/zero | tr '\\0' a", "timeout": "60s"});

    // The agent's configured cap: exactly the first 64 KiB, flagged; the rest is
    // drained, so the command still finishes normally.
    let r = result(
        &stack,
        &token,
        "/api/v1/command/shell?target=small-cap",
        five_mib.clone(),
    )
    .await;
    assert_eq!(r["status"], "completed", "{:.300}", r.to_string());
    let stdout = r["data"]["stdout"].as_str().unwrap();
    assert_eq!(stdout.len(), 64 << 10);
    assert!(stdout.bytes().all(|b| b == b'a'));
    assert_eq!(r["data"]["truncated_stdout"], true);
    assert_eq!(r["data"]["truncated_stderr"], false);
    assert_eq!(r["data"]["exit_code"], 0);

    // The default cap (1 MiB) is above what one NATS message holds (1 MB by
    // default): the result is cut a little further to fit, and still arrives.
    let r = result(
        &stack,
        &token,
        "/api/v1/command/shell?target=default-cap",
        five_mib,
    )
    .await;
    assert_eq!(r["status"], "completed", "{:.300}", r.to_string());
    let len = r["data"]["stdout"].as_str().unwrap().len();
    assert!((1_000_000..=1 << 20).contains(&len), "{len}");
    assert_eq!(r["data"]["truncated_stdout"], true);
    assert_eq!(r["data"]["exit_code"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_command_loses_its_whole_process_group() {
    let stack = Stack::start(&[AgentSpec::real("sleeper")]).await;
    let token = stack.token(&["admin"]);
    let marker = marker_duration();
    // Two sleeps: one in the background, one in the foreground.
    let id = submit(
        &stack,
        &token,
        "/api/v1/command/shell",
        json!({"command": format!("sleep {marker} & sleep {marker}"), "timeout": "2s"}),
    )
    .await;
    let sleeping =
        |pids: &[(i32, String)]| pids.iter().filter(|(_, c)| c.starts_with("sleep ")).count();
    wait_for("both sleeps to run", Duration::from_secs(20), || async {
        (sleeping(&processes_with(&marker)) == 2).then_some(())
    })
    .await;

    let job = wait_final(&stack, &token, &id).await;
    let r = &job["results"][0];
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(r["error"]["code"], "timed_out", "{job}");
    assert_eq!(r["data"]["timed_out"], true, "{job}");
    assert_eq!(r["data"]["signal"], 9, "{job}");
    // SIGKILL went to the group: nothing of it is left (allowing the kernel a
    // moment to finish tearing the processes down).
    wait_for(
        "the process group to be gone",
        Duration::from_secs(10),
        || async { processes_with(&marker).is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_agent_died_is_interrupted_not_rerun() {
    let opts = StackOptions {
        ack_wait: Duration::from_secs(2),
        ..Default::default()
    };
    let mut stack = Stack::start_with(&[AgentSpec::real("first")], opts).await;
    let token = stack.token(&["admin"]);
    let file = stack.dir.path().join("runs.txt");
    let marker = marker_duration();
    let id = submit(
        &stack,
        &token,
        "/api/v1/command/shell?target=_any",
        json!({"command": format!("echo run >> {}; sleep {marker}", file.display())}),
    )
    .await;
    stack
        .wait_job_event(&token, &id, "started", Some("first"))
        .await;
    wait_for("the command to run", Duration::from_secs(20), || async {
        lines(&file).is_some_and(|n| n >= 1).then_some(())
    })
    .await;
    stack.agent_mut("first").kill9();
    stack.add_agent(AgentSpec::real("second")).await;

    let job = wait_final(&stack, &token, &id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["results"][0]["hostname"], "second", "{job}");
    assert_eq!(job["results"][0]["error"]["code"], "interrupted", "{job}");
    assert_eq!(lines(&file), Some(1), "the command ran twice");

    // The first run outlived its agent (its own process group); end it.
    for (pid, _) in processes_with(&marker) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn lines(path: &Path) -> Option<usize> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.lines().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osapictl_shows_command_output_and_ping_statistics() {
    let stack = Stack::start(&[AgentSpec::real("ctl")]).await;
    let token = stack.token(&["admin"]);
    let run = |args: &[&str]| {
        let out = stack.osapictl(&token, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };

    let (code, stdout, stderr) = run(&["command", "exec", "--", "/bin/echo", "-n", "hello world"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.contains("ctl"))
        .unwrap_or_default();
    assert!(
        row.contains("completed") && row.contains(" 0 ") && row.contains("hello world"),
        "{stdout}"
    );

    // A failed command still shows its exit code and what it printed; exit 1.
    let (code, stdout, stderr) = run(&["command", "shell", "echo oops >&2; exit 3"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.contains("ctl"))
        .unwrap_or_default();
    assert!(
        row.contains("failed") && row.contains(" 3 ") && row.contains("oops"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(&[
        "network",
        "ping",
        "127.0.0.1",
        "--count",
        "2",
        "--probe-timeout",
        "1s",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.contains("ctl"))
        .unwrap_or_default();
    assert!(
        row.contains("127.0.0.1") && row.contains(" 0% ") && row.contains(" ms"),
        "{stdout}"
    );
}

/// `network.interface.*` with a real agent: a veth of the test's, given an
/// MTU, an address and a route (no traffic is sent), reads back as `ip`
/// set it; loopback is there; an unknown name is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_read_as_the_kernel_has_them() {
    let veth = crate::dbus_harness::Veth::create();
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    ip(&["link", "set", &veth.name, "mtu", "1400"]);
    ip(&["addr", "add", "10.254.7.1/30", "dev", &veth.name]);
    ip(&[
        "route",
        "add",
        "10.254.99.0/24",
        "via",
        "10.254.7.2",
        "dev",
        &veth.name,
    ]);
    let stack = Stack::start(&[AgentSpec::real("if-host")]).await;
    let read = stack.token(&["read"]);

    let (status, body) = stack
        .get_json(&format!("/api/v1/network/interfaces/{}", veth.name), &read)
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["results"][0]["data"];
    assert_eq!(data["index"], veth.ifindex(), "{body}");
    assert_eq!(data["mtu"], 1400, "{body}");
    let addresses: Vec<&str> = data["addresses"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["address"].as_str()).collect())
        .unwrap_or_default();
    assert!(addresses.contains(&"10.254.7.1/30"), "{body}");
    let routes = data["routes"].as_array().cloned().unwrap_or_default();
    assert!(
        routes
            .iter()
            .any(|r| r["destination"] == "10.254.99.0/24" && r["gateway"] == "10.254.7.2"),
        "{body}"
    );
    assert!(
        routes
            .iter()
            .any(|r| r["destination"] == "10.254.7.0/30" && r.get("gateway").is_none()),
        "{body}"
    );

    let (status, body) = stack.get_json("/api/v1/network/interfaces", &read).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["results"][0]["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"lo") && names.contains(&veth.name.as_str()),
        "{names:?}"
    );
    let (status, body) = stack
        .get_json("/api/v1/network/interfaces/osapi-none0", &read)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = stack
        .get_json("/api/v1/network/interfaces/bad%2Fname", &read)
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("interface")),
        "{body}"
    );

    // A change: read may not; bad settings are 400s naming them; a link no
    // networkd configures (none runs here) is refused on the host, unchanged.
    let admin = stack.token(&["admin"]);
    // The refusal below is the test's premise: no networkd configures the
    // veth here (were one to, the set would change this machine's config).
    let state = std::fs::read_to_string(format!("/run/systemd/netif/links/{}", veth.ifindex()))
        .unwrap_or_default();
    assert!(
        !state.contains("NETWORK_FILE=/"),
        "networkd configures {}: {state}",
        veth.name
    );
    let set = |body: Value, token: &str| {
        stack
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/network/interfaces/{}", veth.name),
                token,
            )
            .json(&body)
    };
    let (status, _) = crate::harness::send_json(set(json!({"mtu": 1300}), &read)).await;
    assert_eq!(status, 403);
    for (body, field) in [
        (json!({"mtu": 20}), "mtu"),
        (json!({"addresses": ["10.254.7.1"]}), "addresses"),
        (
            json!({"routes": [{"destination": "10.0.0.0/8", "gateway": "fd00::1"}]}),
            "routes",
        ),
        (json!({}), "addresses"),
    ] {
        let (status, resp) = crate::harness::send_json(set(body, &admin)).await;
        assert_eq!(
            (status, resp["field"].as_str()),
            (400, Some(field)),
            "{resp}"
        );
    }
    let (status, resp) = crate::harness::send_json(set(json!({"mtu": 1300}), &admin)).await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (200, Some("failed")),
        "{resp}"
    );
    assert!(
        resp["results"][0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not configured by systemd-networkd")),
        "{resp}"
    );
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", veth.name)).unwrap();
    assert_eq!(mtu.trim(), "1400");
}
