//! `service.*` through the API on a host without systemd as PID 1: the input
//! rules, the permissions and the dry-run flag are the API's own and hold
//! here; the agent answers each host's result honestly (systemd is not
//! there). The units themselves are started, stopped, enabled and masked
//! against a real systemd in the booted container (`scripts/appliance-test.sh`).

use reqwest::Method;
use serde_json::json;

use crate::harness::{AgentSpec, Stack, send_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_check_input_and_permissions_before_any_job() {
    // No system bus at all for this agent: systemd cannot be reached.
    let agent =
        AgentSpec::real("svc-01").env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let stack = Stack::start(&[agent]).await;
    let admin = stack.token(&["admin"]);
    let read = stack.token(&["read"]);

    // Bad input is a 400 naming the field, before any job.
    for (path, field) in [
        ("/api/v1/service/units/no-type", "unit"),
        ("/api/v1/service/units/a%20b.service", "unit"),
        ("/api/v1/service/units?pattern=a/b", "pattern"),
        ("/api/v1/service/units?state=Not%20A%20State", "state"),
        ("/api/v1/service/units?colour=red", "colour"),
        ("/api/v1/node/hostname?dry_run=true", "dry_run"),
        ("/api/v1/node/hostname?force=true", "force"),
        // Typed queries elsewhere name an unknown parameter the same way.
        ("/api/v1/jobs?colour=red", "colour"),
        ("/api/v1/audit?colour=red", "colour"),
    ] {
        let (status, body) = stack.get_json(path, &admin).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{path}: {body}"
        );
    }
    let post = |path: &str, token: &str| stack.request(Method::POST, path, token);
    let (status, body) = send_json(post(
        "/api/v1/service/units/ssh.service/start?dry_run=maybe",
        &admin,
    ))
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("dry_run")),
        "{body}"
    );
    let (status, body) = send_json(
        post("/api/v1/service/units/ssh.service/start", &admin).json(&json!({"colour": 1})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("colour")),
        "{body}"
    );

    // A delete takes its flags from the query: forced, a drop-in on the
    // agent's own unit gets past the guard to the agent, whose dry run reads
    // the file alone (there is none) and changes nothing.
    let dropin = "/api/v1/service/units/osapi-agent.service/dropins/limits";
    let (status, body) = send_json(stack.request(Method::DELETE, dropin, &admin)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("force")),
        "{body}"
    );
    let forced = format!("{dropin}?force=true&dry_run=true");
    let (status, body) = send_json(stack.request(Method::DELETE, &forced, &admin)).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["results"][0]["data"];
    assert_eq!(
        (data["dry_run"].as_bool(), data["changed"].as_bool()),
        (Some(true), Some(false)),
        "{body}"
    );

    // Stopping OSAPI's own agent is refused unless forced.
    let (status, body) = send_json(post(
        "/api/v1/service/units/osapi-agent.service/stop",
        &admin,
    ))
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("force")),
        "{body}"
    );

    // Reading needs service:read, which `read` has; changing needs service:write.
    let (status, body) = send_json(post("/api/v1/service/units/ssh.service/start", &read)).await;
    assert_eq!(
        (status, body["permission"].as_str()),
        (403, Some("service:write")),
        "{body}"
    );

    // The agent answers for its host: systemd is not reachable here.
    let (status, body) = stack
        .get_json("/api/v1/service/units?pattern=ssh*", &read)
        .await;
    assert_eq!(status, 200, "{body}");
    let result = &body["results"][0];
    assert_eq!(result["hostname"], "svc-01", "{body}");
    assert_eq!(result["status"], "failed", "{body}");
    assert_eq!(result["error"]["code"], "unavailable", "{body}");
    let (status, body) = stack.get_json("/api/v1/time/clock", &read).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "unavailable", "{body}");
    let (status, body) = send_json(post(
        "/api/v1/service/units/ssh.service/stop?dry_run=true",
        &admin,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "unavailable", "{body}");
}
