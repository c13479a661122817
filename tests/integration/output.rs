//! A command's live output (`GET /jobs/{id}/output`, SSE) and cancel
//! (`POST /jobs/{id}/cancel`), against a real agent running real commands
//! (children here: this machine's PID 1 is not systemd; the appliance test
//! covers the transient units).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{AgentSpec, Stack, post, start_shell, wait_for};

/// Reads SSE events `(id, event, data)` until `until` says stop (or the
/// stream ends).
async fn read_until(
    resp: &mut reqwest::Response,
    mut until: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let read = async {
        'stream: while let Some(chunk) = resp.chunk().await.expect("read the stream") {
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                };
                let Some(kind) = field("event:") else {
                    continue;
                };
                let data: Value = serde_json::from_str(&field("data:").unwrap_or_default())
                    .unwrap_or(Value::Null);
                let stop = until(&kind, &data);
                events.push((field("id:").unwrap_or_default(), kind, data));
                if stop {
                    break 'stream;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the events arrive");
    events
}

fn text_of(events: &[(String, String, Value)], kind: &str) -> String {
    events
        .iter()
        .filter(|(_, k, _)| k == kind)
        .map(|(_, _, d)| d["data"].as_str().unwrap_or_default())
        .collect()
}

/// `POST /jobs/{id}/cancel` as `token`: (status, body).
async fn cancel(stack: &Stack, token: &str, id: &str) -> (u16, Value) {
    post(
        stack,
        token,
        &format!("/api/v1/jobs/{id}/cancel"),
        json!({}),
    )
    .await
}

async fn open_output(stack: &Stack, token: &str, id: &str, query: &str) -> reqwest::Response {
    stack
        .get(&format!("/api/v1/jobs/{id}/output{query}"), token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_output_streams_live_resumes_and_is_only_for_command_runners() {
    let stack = Stack::start(&[AgentSpec::real("out-a")]).await;
    let token = stack.token(&["admin"]);
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // It prints, then waits for the test's go: the first line is seen while
    // the job still runs.
    let script = format!(
        "echo one; while [ ! -e {go} ]; do sleep 0.05; done; echo two >&2; printf 'three\\nfour'",
        go = go.display()
    );
    let id = start_shell(
        &stack,
        &token,
        "&target=out-a",
        json!({"command": script, "timeout": "60s"}),
    )
    .await;

    let mut resp = open_output(&stack, &token, &id, "").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = read_until(&mut resp, |kind, _| kind == "stdout").await;
    assert_eq!(text_of(&first, "stdout"), "one\n", "{first:?}");
    assert_eq!(first[0].2["hostname"], "out-a");
    assert_eq!(first[0].2["seq"], 1);
    let (_, job) = stack.get_json(&format!("/api/v1/jobs/{id}"), &token).await;
    assert!(
        ["submitted", "processing"].contains(&job["status"].as_str().unwrap()),
        "the line came while the job ran: {job}"
    );
    std::fs::write(&go, "").unwrap();
    let rest = read_until(&mut resp, |kind, _| kind == "end").await;
    assert_eq!(text_of(&rest, "stdout"), "three\nfour");
    assert_eq!(text_of(&rest, "stderr"), "two\n");
    let exit = rest
        .iter()
        .find(|(_, k, _)| k == "exit")
        .expect("an exit event");
    assert_eq!(exit.2["exit_code"], 0);
    assert_eq!(exit.2["cancelled"], false);
    let end = rest.last().unwrap();
    assert_eq!(
        (end.1.as_str(), end.2["status"].as_str()),
        ("end", Some("completed"))
    );
    // Records are numbered per host, in order, with rising event ids.
    let all: Vec<_> = first
        .iter()
        .chain(&rest)
        .filter(|(id, _, _)| !id.is_empty())
        .collect();
    let seqs: Vec<u64> = all
        .iter()
        .map(|(_, _, d)| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let ids: Vec<u64> = all.iter().map(|(id, _, _)| id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // A reconnect goes on after the last event it saw, by header or query.
    let resp = stack
        .get(&format!("/api/v1/jobs/{id}/output"), &token)
        .header("Last-Event-ID", ids[0].to_string())
        .send()
        .await
        .unwrap();
    let mut resp = resp;
    let again = read_until(&mut resp, |kind, _| kind == "end").await;
    assert_eq!(text_of(&again, "stdout"), "three\nfour");
    let mut resp = open_output(&stack, &token, &id, &format!("?after={}", ids[0])).await;
    let again = read_until(&mut resp, |kind, _| kind == "end").await;
    assert_eq!(text_of(&again, "stderr"), "two\n");
    // Not following: what there is, then the end of a settled job.
    let mut resp = open_output(&stack, &token, &id, "?follow=false").await;
    let all = read_until(&mut resp, |_, _| false).await;
    assert_eq!(text_of(&all, "stdout"), "one\nthree\nfour");
    assert_eq!(all.last().unwrap().1, "end");

    // Bad input names what is wrong.
    let resp = stack
        .get(&format!("/api/v1/jobs/{id}/output"), &token)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID"),
        "{problem}"
    );
    let resp = open_output(&stack, &token, &id, "?after=x").await;
    assert_eq!(resp.status(), 400);
    let resp = open_output(&stack, &token, "not-a-job", "").await;
    assert_eq!(resp.status(), 400);
    let unknown = uuid::Uuid::now_v7();
    let resp = open_output(&stack, &token, &unknown.to_string(), "").await;
    assert_eq!(resp.status(), 404);

    // What a command printed is for those who may run commands: `write`
    // reads jobs, but not this.
    let writer = stack.token(&["write"]);
    let resp = open_output(&stack, &writer, &id, "").await;
    assert_eq!(resp.status(), 403);
    let resp = open_output(&stack, "", &id, "").await;
    assert_eq!(resp.status(), 401);

    // The CLI prints the same output; an exit status of 0.
    let out = stack.osapictl(&token, &["job", "output", &id]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\nthree\nfour");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("two"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_command_stops_keeps_its_output_and_is_audited() {
    let stack = Stack::start(&[AgentSpec::real("cancel-a")]).await;
    let token = stack.token(&["admin"]);
    let id = start_shell(
        &stack,
        &token,
        "&target=cancel-a",
        json!({"command": "echo started; sleep 100; echo never", "timeout": "120s"}),
    )
    .await;
    let mut resp = open_output(&stack, &token, &id, "").await;
    let first = read_until(&mut resp, |kind, _| kind == "stdout").await;
    assert_eq!(text_of(&first, "stdout"), "started\n");

    // Only someone who may run commands may stop one.
    let writer = stack.token(&["write"]);
    let (status, _) = cancel(&stack, &writer, &id).await;
    assert_eq!(status, 403);
    let (status, body) = cancel(&stack, &token, &id).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["cancel_requested"], true);

    let rest = read_until(&mut resp, |kind, _| kind == "end").await;
    let exit = rest
        .iter()
        .find(|(_, k, _)| k == "exit")
        .expect("an exit event");
    assert_eq!(exit.2["cancelled"], true, "{exit:?}");
    assert_eq!(exit.2["error"]["code"], "cancelled");
    assert_eq!(rest.last().unwrap().2["status"], "failed");
    let (_, job) = stack.get_json(&format!("/api/v1/jobs/{id}"), &token).await;
    let result = &job["results"][0];
    assert_eq!(result["error"]["code"], "cancelled", "{job}");
    assert_eq!(result["data"]["cancelled"], true);
    assert_eq!(result["data"]["stdout"], "started\n");

    // Nothing left to stop, or nothing that can be.
    let (status, body) = cancel(&stack, &token, &id).await;
    assert_eq!(status, 409, "{body}");
    let (_, created) = post(
        &stack,
        &token,
        "/api/v1/jobs",
        json!({"operation": {"type": "node.hostname.get"}, "target": "cancel-a"}),
    )
    .await;
    let other = created["job_id"].as_str().unwrap().to_owned();
    let (status, body) = cancel(&stack, &token, &other).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("only command jobs"),
        "{body}"
    );
    let (status, _) = cancel(&stack, &token, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(status, 404);

    // The cancel is on the record: who, and which job.
    let auditor = stack.token(&["admin"]);
    let entry = wait_for(
        "the cancel's audit entry",
        Duration::from_secs(10),
        || async {
            let (_, list) = stack.get_json("/api/v1/audit?limit=100", &auditor).await;
            list["entries"].as_array().and_then(|entries| {
                entries
                    .iter()
                    .find(|e| {
                        e["path"].as_str() == Some(&format!("/api/v1/jobs/{id}/cancel"))
                            && e["response_code"] == 202
                    })
                    .cloned()
            })
        },
    )
    .await;
    assert_eq!(entry["user"], "tester", "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osapictl_follows_a_command_and_exits_with_its_status() {
    let stack = Stack::start(&[AgentSpec::real("follow-a")]).await;
    let token = stack.token(&["admin"]);
    let out = stack.osapictl(
        &token,
        &[
            "--target",
            "follow-a",
            "command",
            "shell",
            "--follow",
            "echo hello; echo oops >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("oops") && err.contains("exit 3"), "{err}");
    let out = stack.osapictl(
        &token,
        &[
            "--target", "follow-a", "command", "exec", "-f", "echo", "fine",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine\n");
    // Every event as a JSON line with -o json.
    let out = stack.osapictl(
        &token,
        &[
            "-o", "json", "--target", "follow-a", "command", "exec", "-f", "echo", "x",
        ],
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["stdout", "exit", "end"], "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_as_another_user_only_with_command_run_as() {
    use osapi::rbac::Permission::{CommandExecute, CommandRunAs, JobRead};
    let stack = Stack::start(&[AgentSpec::real("runas-a")]).await;
    let admin = stack.token(&["admin"]);
    let exec = "/api/v1/command/exec?target=runas-a";
    let (status, body) = post(
        &stack,
        &admin,
        exec,
        json!({"command": "id", "args": ["-un"], "user": "nobody"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["data"]["stdout"], "nobody\n", "{body}");

    // command:execute alone runs as root, not as anyone else.
    let root_only = stack.token_for("ops", &[], Some(vec![CommandExecute, JobRead]));
    let (status, body) = post(
        &stack,
        &root_only,
        exec,
        json!({"command": "id", "args": ["-un"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["data"]["stdout"], "root\n", "{body}");
    for request in [
        json!({"command": "id", "user": "nobody"}),
        json!({"command": "id", "group": "nogroup"}),
    ] {
        let (status, body) = post(&stack, &root_only, exec, request).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("command:run-as"),
            "{body}"
        );
    }
    // Not through POST /jobs either.
    let (status, body) = post(
        &stack,
        &root_only,
        "/api/v1/jobs",
        json!({"operation": {"type": "command.shell.execute", "data": {"command": "id", "user": "nobody"}}, "target": "runas-a"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Nor by retrying someone else's run-as job.
    let (_, created) = post(
        &stack,
        &admin,
        "/api/v1/jobs",
        json!({"operation": {"type": "command.exec.execute", "data": {"command": "id", "user": "nobody"}}, "target": "runas-a"}),
    )
    .await;
    let old = created["job_id"].as_str().unwrap();
    let retrier = stack.token_for(
        "ops",
        &[],
        Some(vec![
            CommandExecute,
            JobRead,
            osapi::rbac::Permission::JobWrite,
        ]),
    );
    let (status, body) = post(
        &stack,
        &retrier,
        &format!("/api/v1/jobs/{old}/retry"),
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("command:run-as"),
        "{body}"
    );
    let with_run_as = stack.token_for(
        "ops",
        &[],
        Some(vec![CommandExecute, CommandRunAs, JobRead]),
    );
    let (status, body) = post(
        &stack,
        &with_run_as,
        exec,
        json!({"command": "id", "args": ["-gn"], "user": "nobody", "group": "nogroup"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["data"]["stdout"], "nogroup\n", "{body}");

    // Bad names are refused by name; an unknown account is the host's answer.
    let (status, body) = post(
        &stack,
        &admin,
        exec,
        json!({"command": "id", "user": "Not A Name"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "user", "{body}");
    let (status, body) = post(
        &stack,
        &admin,
        exec,
        json!({"command": "id", "user": "osapi-no-such-user"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "not_found", "{body}");

    let out = stack.osapictl(
        &admin,
        &[
            "--target", "runas-a", "command", "shell", "--user", "nobody", "id -un",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nobody"),
        "{out:?}"
    );
}
