//! The job API and the job lifecycle: creation, listing, detail, delete, retry,
//! and redelivery after an agent dies mid-job.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{AgentSpec, Stack, StackOptions, send_json, wait_for};

async fn create(stack: &Stack, token: &str, body: Value) -> (u16, Value) {
    send_json(
        stack
            .request(reqwest::Method::POST, "/api/v1/jobs", token)
            .json(&body),
    )
    .await
}

async fn wait_final(stack: &Stack, token: &str, id: &str) -> Value {
    wait_for("a final job status", Duration::from_secs(60), || async {
        let (_, body) = stack.get_json(&format!("/api/v1/jobs/{id}"), token).await;
        let s = body["status"].as_str().unwrap_or("");
        (!["submitted", "processing"].contains(&s)).then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_api_create_get_list_delete_retry() {
    let stack = Stack::start(&[AgentSpec::real("node-a")]).await;
    let token = stack.token(&["admin"]);

    // Create asynchronously; the Location header points at the job.
    let resp = stack
        .request(reqwest::Method::POST, "/api/v1/jobs", &token)
        .json(&json!({"operation": {"type": "node.os.get"}, "target": "node-a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/jobs/{id}"));
    assert_eq!(body["expected"]["hosts"], json!(["node-a"]));

    let job = wait_final(&stack, &token, &id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["operation"]["type"], "node.os.get");
    assert_eq!(job["created_by"], "tester");
    assert!(
        job["results"][0]["data"]["kernel"]["release"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{job}"
    );
    let stages: Vec<&str> = job["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["acknowledged", "started", "completed"]);

    // A domain endpoint with async=true answers 202 with the job's URL.
    let resp = stack
        .get("/api/v1/node/uptime?async=true", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/api/v1/jobs/")
    );

    // Listing: newest first, paginated with a cursor, filters applied.
    for _ in 0..4 {
        let (status, _) = create(
            &stack,
            &token,
            json!({"operation": {"type": "node.load.get"}}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, page1) = stack.get_json("/api/v1/jobs?limit=3", &token).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["jobs"].as_array().unwrap().len(), 3);
    let cursor = page1["next_cursor"].as_str().expect("a cursor").to_owned();
    let (_, page2) = stack
        .get_json(&format!("/api/v1/jobs?limit=3&cursor={cursor}"), &token)
        .await;
    let p1: Vec<&str> = page1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let p2: Vec<&str> = page2["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(p2.len(), 3, "{page2}");
    assert!(
        p1.iter().all(|id| !p2.contains(id)),
        "pages overlap: {p1:?} {p2:?}"
    );
    let mut all: Vec<&str> = p1.iter().chain(p2.iter()).copied().collect();
    let sorted = {
        let mut s = all.clone();
        s.sort_unstable_by(|a, b| b.cmp(a));
        s
    };
    assert_eq!(all, sorted, "not newest first");
    all.clear();
    let (_, filtered) = stack
        .get_json("/api/v1/jobs?operation=node.os.get", &token)
        .await;
    let ops: Vec<&str> = filtered["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["node.os.get"]);
    let (_, done) = stack
        .get_json("/api/v1/jobs?status=completed&target=node-a", &token)
        .await;
    assert_eq!(done["jobs"].as_array().unwrap().len(), 1, "{done}");

    // Stats count what is stored.
    let (status, stats) = stack.get_json("/api/v1/jobs/stats", &token).await;
    assert_eq!(status, 200);
    assert_eq!(stats["total"], 6, "{stats}");
    assert_eq!(stats["by_operation"]["node.load.get"], 4);

    // Retry: a new job with retry_of, optionally on a new target.
    let (status, retried) = send_json(
        stack
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/jobs/{id}/retry"),
                &token,
            )
            .json(&json!({"target": "_any"})),
    )
    .await;
    assert_eq!(status, 201, "{retried}");
    let new_id = retried["job_id"].as_str().unwrap();
    assert_ne!(new_id, id);
    let again = wait_final(&stack, &token, new_id).await;
    assert_eq!(again["retry_of"], id.as_str());
    assert_eq!(again["target"], "_any");

    // Delete: 204, then 404 for the job and for deleting again.
    let resp = stack
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/jobs/{id}"),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = stack.get_json(&format!("/api/v1/jobs/{id}"), &token).await;
    assert_eq!(status, 404, "{body}");
    let resp = stack
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/jobs/{id}"),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_agent_dies_is_redelivered_to_another() {
    // Short ack_wait so the dead agent's job comes back quickly.
    let opts = StackOptions {
        ack_wait: Duration::from_secs(2),
        ..Default::default()
    };
    let mut stack = Stack::start_with(
        &[AgentSpec::real("slow-a").simulate(Duration::from_secs(30))],
        opts,
    )
    .await;
    let token = stack.token(&["admin"]);
    let (status, body) = create(
        &stack,
        &token,
        json!({"operation": {"type": "node.hostname.get"}, "timeout": "120s"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();

    // Wait until slow-a has started it, then kill it without warning.
    stack
        .wait_job_event(&token, &id, "started", Some("slow-a"))
        .await;
    stack.agent_mut("slow-a").kill9();

    // Another eligible agent joins; JetStream redelivers the job to it.
    stack.add_agent(AgentSpec::real("fast-b")).await;
    let job = wait_final(&stack, &token, &id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["results"].as_array().unwrap().len(), 1);
    assert_eq!(job["results"][0]["hostname"], "fast-b");
    let timeline: Vec<(String, String, u64)> = job["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["hostname"].as_str().unwrap().to_owned(),
                e["stage"].as_str().unwrap().to_owned(),
                e["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        timeline.contains(&("slow-a".into(), "started".into(), 1)),
        "{timeline:?}"
    );
    assert!(
        timeline
            .iter()
            .any(|(h, s, a)| h == "fast-b" && s == "completed" && *a >= 2),
        "{timeline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_command_is_marked_interrupted_not_run_again() {
    let opts = StackOptions {
        ack_wait: Duration::from_secs(2),
        ..Default::default()
    };
    let mut stack = Stack::start_with(
        &[AgentSpec::real("cmd-a").simulate(Duration::from_secs(30))],
        opts,
    )
    .await;
    let token = stack.token(&["admin"]);
    let (status, body) = create(
        &stack,
        &token,
        json!({"operation": {"type": "command.exec.execute", "data": {"command": "/bin/true"}}, "timeout": "120s"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    stack
        .wait_job_event(&token, &id, "started", Some("cmd-a"))
        .await;
    stack.agent_mut("cmd-a").kill9();
    stack.add_agent(AgentSpec::real("cmd-b")).await;
    let job = wait_final(&stack, &token, &id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["results"][0]["hostname"], "cmd-b");
    assert_eq!(job["results"][0]["error"]["code"], "interrupted", "{job}");
    let started_by_b = job["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["hostname"] == "cmd-b" && e["stage"] == "started");
    assert!(
        !started_by_b,
        "the command was started a second time: {job}"
    );
}
