//! Bad input gets 400/413 with the field named, never a 500 or a hang.

use reqwest::Method;
use serde_json::json;

use crate::harness::{AgentSpec, Stack, send_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_400_naming_the_field() {
    let stack = Stack::start_with(
        &[AgentSpec::real("input-node").simulate(std::time::Duration::ZERO)],
        // A small body limit, so the oversize request fits in socket buffers and the
        // client reads the 413 instead of racing the server's close.
        crate::harness::StackOptions {
            api_env: vec![("OSAPI_API_SERVER_MAX_BODY_BYTES".into(), "65536".into())],
            ..Default::default()
        },
    )
    .await;
    let token = stack.token(&["admin"]);
    let post =
        |path: &str, body: serde_json::Value| stack.request(Method::POST, path, &token).json(&body);

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "unknown operation",
            post(
                "/api/v1/jobs",
                json!({"operation": {"type": "node.reboot"}}),
            ),
            400,
            "operation.type",
        ),
        (
            "missing operation",
            post("/api/v1/jobs", json!({"target": "_any"})),
            400,
            "body",
        ),
        (
            "unknown body field",
            post(
                "/api/v1/jobs",
                json!({"operation": {"type": "node.load.get"}, "colour": 1}),
            ),
            400,
            "colour",
        ),
        (
            "wrong data type",
            post(
                "/api/v1/jobs",
                json!({"operation": {"type": "network.ping.do", "data": {"address": "x", "count": "three"}}}),
            ),
            400,
            "operation.data.count",
        ),
        (
            "data out of range",
            post(
                "/api/v1/jobs",
                json!({"operation": {"type": "network.ping.do", "data": {"address": "x", "count": 1000}}}),
            ),
            400,
            "operation.data.count",
        ),
        (
            "bad target syntax",
            post(
                "/api/v1/jobs",
                json!({"operation": {"type": "node.load.get"}, "target": "a:b..c"}),
            ),
            400,
            "target",
        ),
        (
            "bad job timeout",
            post(
                "/api/v1/jobs",
                json!({"operation": {"type": "node.load.get"}, "timeout": "soon"}),
            ),
            400,
            "timeout",
        ),
        (
            "wrong top-level type",
            post("/api/v1/jobs", json!({"operation": "node.load.get"})),
            400,
            "operation",
        ),
        (
            "bad hostname",
            stack
                .request(Method::PUT, "/api/v1/node/hostname", &token)
                .json(&json!({"hostname": "-bad-"})),
            400,
            "hostname",
        ),
        (
            "hostname wrong type",
            stack
                .request(Method::PUT, "/api/v1/node/hostname", &token)
                .json(&json!({"hostname": 7})),
            400,
            "hostname",
        ),
        (
            "bad dns server",
            stack
                .request(Method::PUT, "/api/v1/network/dns/eth0", &token)
                .json(&json!({"servers": ["1.2.3"]})),
            400,
            "servers[0]",
        ),
        (
            "bad cursor",
            stack.get("/api/v1/jobs?cursor=abc", &token),
            400,
            "cursor",
        ),
        (
            "bad limit",
            stack.get("/api/v1/jobs?limit=0", &token),
            400,
            "limit",
        ),
        (
            "bad status filter",
            stack.get("/api/v1/jobs?status=done", &token),
            400,
            "status",
        ),
        (
            "unknown query parameter",
            stack.get("/api/v1/node/hostname?tagret=_all", &token),
            400,
            "tagret",
        ),
        (
            "bad timeout param",
            stack.get("/api/v1/node/hostname?timeout=forever", &token),
            400,
            "timeout",
        ),
        (
            "timeout too long",
            stack.get("/api/v1/node/hostname?timeout=1h", &token),
            400,
            "timeout",
        ),
        (
            "bad async flag",
            stack.get("/api/v1/node/hostname?async=maybe", &token),
            400,
            "async",
        ),
        (
            "bad job id",
            stack.get("/api/v1/jobs/not-a-uuid", &token),
            400,
            "id",
        ),
    ];
    for (name, req, want, field) in cases {
        let (status, body) = send_json(req).await;
        assert_eq!(status, want, "{name}: {body}");
        assert_eq!(body["field"], field, "{name}: {body}");
        assert_eq!(body["status"], want, "{name}: {body}");
    }

    // Not JSON at all.
    let (status, body) = send_json(
        stack
            .request(Method::POST, "/api/v1/jobs", &token)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // No JSON content type.
    let (status, _) = send_json(
        stack
            .request(Method::POST, "/api/v1/jobs", &token)
            .body("{}"),
    )
    .await;
    assert_eq!(status, 415);
    // Oversize body: 413 with a problem body.
    let big = json!({"operation": {"type": "command.shell.execute", "data": {"command": "x".repeat(100 * 1024)}}});
    let (status, body) = send_json(
        stack
            .request(Method::POST, "/api/v1/jobs", &token)
            .json(&big),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status"], 413);
    assert!(body["detail"].as_str().unwrap().contains("65536"), "{body}");
    // The retry endpoint's optional body too, whether or not the job exists.
    let retry = format!("/api/v1/jobs/{}/retry", uuid::Uuid::now_v7());
    let (status, body) = send_json(
        stack
            .request(Method::POST, &retry, &token)
            .body("x".repeat(100 * 1024)),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (413, Some(413)),
        "{body}"
    );
    let (status, body) = send_json(
        stack
            .request(Method::POST, &retry, &token)
            .json(&json!({"target": 7})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("target")),
        "{body}"
    );
    let (status, _) = send_json(
        stack
            .request(Method::POST, &retry, &token)
            .body(r#"{"target": "_all"}"#),
    )
    .await;
    assert_eq!(status, 415);
    // Unknown routes are problem+json 404s.
    let (status, body) = stack.get_json("/api/v1/nope", &token).await;
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));
}
