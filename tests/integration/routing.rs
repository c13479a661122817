//! Target routing with three agents of different hostnames and labels.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::harness::{AgentSpec, Stack, send_json, wait_for};

fn hosts(body: &serde_json::Value) -> BTreeSet<String> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["hostname"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_reach_exactly_the_addressed_agents() {
    let agents = [
        AgentSpec::real("web-01").label("group", "web.dev.us-east"),
        AgentSpec::real("web-02").label("group", "web.prod"),
        AgentSpec::real("db-01").label("group", "db"),
    ];
    let stack = Stack::start(&agents).await;
    let token = stack.token(&["read"]);

    // _any: exactly one answer, from one of the three.
    for _ in 0..5 {
        let (status, body) = stack
            .get_json("/api/v1/node/hostname?target=_any", &token)
            .await;
        assert_eq!(status, 200, "{body}");
        let got = hosts(&body);
        assert_eq!(got.len(), 1, "{body}");
        assert!(["web-01", "web-02", "db-01"].contains(&got.iter().next().unwrap().as_str()));
        assert_eq!(body["status"], "completed");
    }

    // _all: three results, one per host, each with that host's data.
    let (status, body) = stack
        .get_json("/api/v1/node/uptime?target=_all", &token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        hosts(&body),
        BTreeSet::from(["web-01".into(), "web-02".into(), "db-01".into()])
    );
    for r in body["results"].as_array().unwrap() {
        assert_eq!(r["status"], "completed", "{r}");
        assert!(r["data"]["seconds"].as_u64().is_some(), "{r}");
    }

    // A hostname reaches that agent only.
    let (status, body) = stack
        .get_json("/api/v1/node/load?target=web-02", &token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hosts(&body), BTreeSet::from(["web-02".into()]));

    // A label prefix reaches the two web agents and not the database.
    let (status, body) = stack
        .get_json("/api/v1/node/memory?target=group:web", &token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        hosts(&body),
        BTreeSet::from(["web-01".into(), "web-02".into()])
    );
    // Segments match whole: group:web.dev reaches web-01 only; group:we nobody.
    let (_, body) = stack
        .get_json("/api/v1/node/os?target=group:web.dev", &token)
        .await;
    assert_eq!(hosts(&body), BTreeSet::from(["web-01".into()]));
    let (status, body) = stack
        .get_json("/api/v1/node/os?target=group:we", &token)
        .await;
    assert_eq!(status, 404, "{body}");

    // Unknown host → 404 naming it; bad target syntax → 400 naming the field.
    let (status, body) = stack
        .get_json("/api/v1/node/hostname?target=nosuchhost", &token)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("nosuchhost"));
    let (status, body) = stack
        .get_json("/api/v1/node/hostname?target=group:web..x", &token)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "target");

    // Health status reports the components, the three live agents and the version.
    let (status, health) = stack
        .get_json("/api/v1/health/status", &stack.token(&["read"]))
        .await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["agents_live"], 3);
    assert_eq!(health["version"], osapi::VERSION);
    assert!(health["memory_rss_bytes"].as_u64().unwrap() > 0);
    let components = health["components"].as_array().unwrap();
    assert!(components.len() >= 6, "{health}");
    assert!(components.iter().all(|c| c["ok"] == true), "{health}");

    // The agents endpoint lists all three with their labels.
    let (status, body) = stack
        .get_json("/api/v1/agents", &stack.token(&["admin"]))
        .await;
    assert_eq!(status, 200);
    let agents = body["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 3);
    let web01 = agents.iter().find(|a| a["hostname"] == "web-01").unwrap();
    assert_eq!(web01["labels"]["group"], "web.dev.us-east");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_job_does_not_block_others() {
    // Five slow simulated jobs on one agent (max_jobs 10): every job must start
    // before the first one finishes, which sequential execution cannot do.
    let stack =
        Stack::start(&[AgentSpec::real("solo").simulate(Duration::from_millis(1500))]).await;
    let token = stack.token(&["admin"]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (status, body) = send_json(
            stack
                .request(reqwest::Method::POST, "/api/v1/jobs", &token)
                .json(&json!({"operation": {"type": "node.hostname.get"}})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["job_id"].as_str().unwrap().to_owned());
    }
    let mut started = Vec::new();
    let mut finished = Vec::new();
    for id in &ids {
        let job = wait_for("job completion", Duration::from_secs(30), || async {
            let (_, body) = stack.get_json(&format!("/api/v1/jobs/{id}"), &token).await;
            (body["status"] == "completed").then_some(body)
        })
        .await;
        for ev in job["timeline"].as_array().unwrap() {
            let at = time::OffsetDateTime::parse(
                ev["at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            match ev["stage"].as_str().unwrap() {
                "started" => started.push(at),
                "completed" => finished.push(at),
                _ => {}
            }
        }
    }
    assert_eq!((started.len(), finished.len()), (5, 5));
    let last_start = started.iter().max().unwrap();
    let first_finish = finished.iter().min().unwrap();
    assert!(
        last_start < first_finish,
        "a job started only after another finished: starts {started:?}, finishes {finished:?}"
    );
}
