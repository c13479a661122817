//! `sysctl.*` and `process.*` through the API on this machine. sysctl: reads from `/proc/sys`, the
//! input rules, and a set's dry run. A real set restarts systemd-sysctl,
//! which needs systemd as PID 1: the appliance container does that one.

use reqwest::Method;
use serde_json::json;

use crate::harness::{AgentSpec, Stack, send_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_parameters_read_and_a_set_is_checked_first() {
    let stack = Stack::start(&[AgentSpec::real("sysctl-host")]).await;
    let admin = stack.token(&["admin"]);
    let read = stack.token(&["read"]);

    // What the kernel says, as this machine's /proc/sys has it.
    let ostype = std::fs::read_to_string("/proc/sys/kernel/ostype").unwrap();
    let (status, body) = stack.get_json("/api/v1/sysctl/kernel.ostype", &read).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["data"]["value"], ostype.trim(), "{body}");
    let (status, body) = stack.get_json("/api/v1/sysctl?prefix=kernel", &read).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body["results"][0]["data"]
        .as_array()
        .map(|all| all.iter().filter_map(|v| v["key"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        keys.contains(&"kernel.ostype") && keys.iter().all(|k| k.starts_with("kernel")),
        "{keys:?}"
    );

    // An unknown key is a 404 naming it; a malformed one a 400 before any job.
    let (status, body) = stack
        .get_json("/api/v1/sysctl/kernel.no_such_parameter", &read)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("kernel.no_such_parameter")),
        "{body}"
    );
    let (status, body) = stack
        .get_json("/api/v1/sysctl/..%2Fetc%2Fpasswd", &read)
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("key")),
        "{body}"
    );

    // A set: read only needs sysctl:write; a dry run says before → after and
    // changes nothing; a read-only parameter is refused by name.
    let set = |key: &str, value: &str, token: &str| {
        stack
            .request(
                Method::PUT,
                &format!("/api/v1/sysctl/{key}?dry_run=true"),
                token,
            )
            .json(&json!({"value": value}))
    };
    let (status, _) = send_json(set("kernel.ostype", "x", &read)).await;
    assert_eq!(status, 403);
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let other = if forward.trim() == "1" { "0" } else { "1" };
    let (status, body) = send_json(set("net.ipv4.ip_forward", other, &admin)).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["results"][0]["data"];
    assert_eq!(
        (data["changed"].as_bool(), data["dry_run"].as_bool()),
        (Some(true), Some(true)),
        "{body}"
    );
    assert_eq!(data["before"]["value"], forward.trim(), "{body}");
    assert_eq!(data["after"]["value"], other, "{body}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward
    );
    let (status, body) = send_json(set("kernel.ostype", "x", &admin)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("failed")),
        "{body}"
    );
    assert!(
        body["results"][0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only")),
        "{body}"
    );
    let (status, body) = send_json(
        stack
            .request(Method::PUT, "/api/v1/sysctl/vm.swappiness", &admin)
            .json(&json!({"value": "1\n2"})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("value")),
        "{body}"
    );
}

/// `process.*` on this machine: a child of the test is found, inspected and
/// signalled through the API; PID 1 needs force; a read token may only look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_is_found_inspected_and_signalled() {
    use std::os::unix::process::ExitStatusExt;
    let stack = Stack::start(&[AgentSpec::real("proc-host")]).await;
    let admin = stack.token(&["admin"]);
    let read = stack.token(&["read"]);
    let mut child = std::process::Command::new("sleep")
        .arg("307")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id();

    let (status, body) = stack
        .get_json(&format!("/api/v1/processes/{pid}"), &read)
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["results"][0]["data"];
    assert_eq!(data["command"], "sleep 307", "{body}");
    assert_eq!(data["user"], "root", "{body}");
    assert_eq!(data["ppid"], std::process::id(), "{body}");
    let (status, body) = stack.get_json("/api/v1/processes?name=sleep", &read).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["results"][0]["data"]
            .as_array()
            .is_some_and(|all| all.iter().any(|p| p["pid"] == pid)),
        "{body}"
    );
    // osapictl puts the pid in the path.
    let out = stack.osapictl(&read, &["process", "get", &pid.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sleep 307"),
        "{out:?}"
    );
    let (status, body) = stack.get_json("/api/v1/processes/4194304", &read).await;
    assert_eq!(status, 404, "{body}");

    let signal = |pid: u32, query: &str, body: serde_json::Value, token: &str| {
        stack
            .request(
                Method::POST,
                &format!("/api/v1/processes/{pid}/signal{query}"),
                token,
            )
            .json(&body)
    };
    let (status, _) = send_json(signal(pid, "", json!({}), &read)).await;
    assert_eq!(status, 403, "a read token may not signal");
    // The attack itself: a dry run would be let through, so only a real
    // request tests that PID 1 needs force.
    let (status, body) = send_json(signal(1, "", json!({}), &admin)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("force")),
        "{body}"
    );
    let (status, body) = send_json(signal(pid, "", json!({"signal": "SEGV"}), &admin)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("signal")),
        "{body}"
    );
    // A dry run sends nothing.
    let (status, body) = send_json(signal(pid, "?dry_run=true", json!({}), &admin)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "a dry run left it running"
    );
    let (status, body) = send_json(signal(pid, "", json!({"signal": "TERM"}), &admin)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
    let ended = child.wait().expect("wait for sleep");
    assert_eq!(ended.signal(), Some(15), "{ended:?}");
}
