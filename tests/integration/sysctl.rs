//! `sysctl.*` through the API on this machine: reads from `/proc/sys`, the
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
