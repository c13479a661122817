//! One trace from `osapictl` through the API and NATS to the agent: the same
//! trace id in the CLI's header, the API's and the agent's journal lines, and the
//! spans exported over OTLP with their parent links.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::Value;

use crate::harness::{AgentSpec, Stack, StackOptions, free_port, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_from_cli_to_api_to_agent_logs() {
    let _journal = crate::harness::journald();
    let stack = Stack::start(&[AgentSpec::real("trace-node").simulate(Duration::ZERO)]).await;
    let out = stack.osapictl(
        &stack.token(&["admin"]),
        &["--debug", "--target", "trace-node", "node", "uptime"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let traceparent = stderr
        .lines()
        .find_map(|l| l.strip_prefix("osapictl: traceparent "))
        .expect("the CLI's traceparent");
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();

    let entries = wait_for(
        "API and agent lines with the CLI's trace id",
        Duration::from_secs(20),
        || async {
            let out = Command::new("journalctl")
                .args(["-o", "json", "--no-pager", &format!("TRACE_ID={trace_id}")])
                .output()
                .ok()?;
            let entries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let has = |id: &str| entries.iter().any(|e| e["SYSLOG_IDENTIFIER"] == id);
            (has("osapi-api") && has("osapi-agent")).then_some(entries)
        },
    )
    .await;
    let agent_line = entries
        .iter()
        .find(|e| e["SYSLOG_IDENTIFIER"] == "osapi-agent")
        .unwrap();
    assert!(
        agent_line["JOB_ID"].as_str().is_some_and(|j| !j.is_empty()),
        "{agent_line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_with_parent_links() {
    // A minimal OTLP/HTTP collector.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let port = free_port();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body.0);
                axum::Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let telemetry = format!(
        "telemetry:\n  tracing:\n    enabled: true\n    exporter: otlp\n    otlp_endpoint: http://127.0.0.1:{port}\n"
    );
    let stack = Stack::start_with(
        &[AgentSpec::real("otlp-node").simulate(Duration::ZERO)],
        StackOptions {
            extra_config: telemetry,
            ..Default::default()
        },
    )
    .await;
    let trace = format!("{:032x}", rand::random::<u128>() | 1);
    let caller_span = "00f067aa0ba902b7";
    let resp = stack
        .get("/api/v1/node/load", &stack.token(&["admin"]))
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let spans = |service: &str, name: &str| -> Vec<Value> {
        received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|req| req["resourceSpans"].as_array().cloned().unwrap_or_default())
            .filter(|rs| rs["resource"]["attributes"][0]["value"]["stringValue"] == service)
            .flat_map(|rs| {
                rs["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| s["name"] == name && s["traceId"] == trace.as_str())
            .collect()
    };
    let (request, job) = wait_for(
        "both spans at the collector",
        Duration::from_secs(20),
        || async {
            let r = spans("osapi-api", "request").into_iter().next()?;
            let j = spans("osapi-agent", "job").into_iter().next()?;
            Some((r, j))
        },
    )
    .await;
    assert_eq!(request["parentSpanId"], caller_span, "{request}");
    assert_eq!(
        job["parentSpanId"], request["spanId"],
        "job {job} is not a child of request {request}"
    );
    let attrs = request["attributes"].as_array().unwrap();
    assert!(
        attrs
            .iter()
            .any(|a| a["key"] == "route" && a["value"]["stringValue"] == "/api/v1/node/load"),
        "{request}"
    );
    assert!(
        attrs
            .iter()
            .any(|a| a["key"] == "status" && a["value"]["stringValue"] == "200"),
        "{request}"
    );
}
