//! Audit trail and metrics, as an operator sees them: the audit endpoints, the
//! real journal (`journalctl MESSAGE_ID=…`), `/metrics` checked by `promtool`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    AgentSpec, Stack, http_over_unix, send_json, socket_activate, spawn, wait_for,
};

fn random_hex(digits: usize) -> String {
    let v = rand::random::<u128>() | 1;
    format!("{v:032x}")[..digits].to_owned()
}

fn traceparent(trace: &str) -> String {
    format!("00-{trace}-{}-01", random_hex(16))
}

/// Audit entries of the trace `trace`, newest first, as `GET /api/v1/audit` lists them.
async fn audited(stack: &Stack, token: &str, trace: &str) -> Vec<Value> {
    let (status, body) = stack.get_json("/api/v1/audit?limit=1000", token).await;
    if status != 200 {
        return Vec::new();
    }
    body["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["trace_id"] == trace)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Journal entries with our audit MESSAGE_ID and this trace id.
fn journal_entries(trace: &str) -> Vec<Value> {
    let Ok(out) = Command::new("journalctl")
        .args([
            "-o",
            "json",
            "--no-pager",
            &format!("MESSAGE_ID={}", osapi::audit::MESSAGE_ID),
            &format!("TRACE_ID={trace}"),
        ])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// How many entries each (user, response code) has.
fn tally<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for (user, code) in pairs {
        *m.entry((user.to_owned(), code)).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_is_audited_once_in_the_bucket_and_the_journal() {
    let _journal = crate::harness::journald();
    let stack = Stack::start(&[AgentSpec::real("audit-node").simulate(Duration::ZERO)]).await;
    let tag = random_hex(8);
    let (alice, bob, carol) = (
        format!("alice-{tag}"),
        format!("bob-{tag}"),
        format!("carol-{tag}"),
    );
    let alice_token = stack.token_for(&alice, &["admin"], None);
    let bob_token = stack.token_for(&bob, &["read"], None);
    let carol_token = stack.token_for(&carol, &["write"], None);
    // Signed with another key: invalid, so its subject must not be believed.
    let forged = osapi::token::TokenKey::new(b"some-other-signing-key-0123456789abcdef".to_vec())
        .unwrap()
        .issue(
            &format!("mallory-{tag}"),
            vec!["admin".into()],
            None,
            osapi::token::now_unix(),
            3600,
        );
    let auditor = stack.token_for(&format!("auditor-{tag}"), &["admin"], None);
    let trace = random_hex(32);

    // 27 requests at once: 200s, 403s (read has no audit:read) and a 401 (one:
    // more from the same source would be aggregated, see attack.rs).
    let mut plan: Vec<(&str, &str, &str, u16)> = Vec::new();
    plan.extend(
        [(
            alice_token.as_str(),
            "/api/v1/node/hostname",
            alice.as_str(),
            200,
        ); 10],
    );
    plan.extend([(bob_token.as_str(), "/api/v1/agents", bob.as_str(), 200); 6]);
    plan.extend([(bob_token.as_str(), "/api/v1/audit", bob.as_str(), 403); 4]);
    plan.extend([(carol_token.as_str(), "/api/v1/jobs", carol.as_str(), 200); 6]);
    plan.extend([(forged.as_str(), "/api/v1/node/hostname", "anonymous", 401); 1]);
    let answers = futures::future::join_all(plan.iter().map(|(token, path, _, _)| {
        stack
            .get(path, token)
            .header("traceparent", traceparent(&trace))
            .send()
    }))
    .await;
    for (answer, (_, path, _, want)) in answers.into_iter().zip(&plan) {
        assert_eq!(answer.unwrap().status().as_u16(), *want, "{path}");
    }
    let expected = tally(
        plan.iter()
            .map(|(_, _, user, code)| (*user, code.to_string())),
    );

    // The bucket: exactly one entry per request.
    let entries = wait_for("27 audit entries", Duration::from_secs(30), || async {
        let e = audited(&stack, &auditor, &trace).await;
        (e.len() >= plan.len()).then_some(e)
    })
    .await;
    assert_eq!(entries.len(), plan.len());
    assert_eq!(
        tally(entries.iter().map(|e| (
            e["user"].as_str().unwrap_or(""),
            e["response_code"].to_string()
        ))),
        expected
    );
    let alices: Vec<&Value> = entries.iter().filter(|e| e["user"] == alice).collect();
    for e in &alices {
        assert_eq!(e["method"], "GET");
        assert_eq!(e["path"], "/api/v1/node/hostname");
        assert_eq!(e["operation_id"], "node_hostname_get");
        assert_eq!(e["source_ip"], "127.0.0.1");
        assert_eq!(e["roles"], serde_json::json!(["admin"]));
        assert!(e["job_id"].is_string(), "a created job is named: {e}");
        assert!(
            e["duration_ms"].is_u64() && e["timestamp"].is_string(),
            "{e}"
        );
    }
    let forbidden = entries.iter().find(|e| e["response_code"] == 403).unwrap();
    assert_eq!(
        (
            forbidden["user"].as_str(),
            forbidden["operation_id"].as_str()
        ),
        (Some(bob.as_str()), Some("audit_list"))
    );
    let refused = entries.iter().find(|e| e["response_code"] == 401).unwrap();
    assert_eq!(refused["roles"], serde_json::json!([]));
    assert!(refused.get("job_id").is_none());

    // Filters and one entry by id.
    let (status, page) = stack
        .get_json(&format!("/api/v1/audit?user={alice}&limit=3"), &auditor)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(3));
    let cursor = page["next_cursor"].as_str().expect("a cursor to go on");
    let (_, rest) = stack
        .get_json(
            &format!("/api/v1/audit?user={alice}&limit=1000&cursor={cursor}"),
            &auditor,
        )
        .await;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(7));
    let oldest = alices
        .iter()
        .filter_map(|e| e["timestamp"].as_str())
        .min()
        .unwrap();
    let (_, before) = stack
        .get_json(
            &format!("/api/v1/audit?user={alice}&until={}", urlencode(oldest)),
            &auditor,
        )
        .await;
    assert_eq!(before["entries"].as_array().map(Vec::len), Some(0));
    let (_, since) = stack
        .get_json(
            &format!("/api/v1/audit?user={alice}&since={}", urlencode(oldest)),
            &auditor,
        )
        .await;
    assert_eq!(since["entries"].as_array().map(Vec::len), Some(10));
    let (status, problem) = stack
        .get_json("/api/v1/audit?since=yesterday", &auditor)
        .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("since")));
    let id = entries[0]["id"].as_str().unwrap();
    let (status, one) = stack
        .get_json(&format!("/api/v1/audit/{id}"), &auditor)
        .await;
    assert_eq!((status, &one), (200, &entries[0]));
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        stack
            .get_json(&format!("/api/v1/audit/{unknown}"), &auditor)
            .await
            .0,
        404
    );
    assert_eq!(
        stack.get_json("/api/v1/audit/not-a-uuid", &auditor).await.0,
        400
    );

    // The export: JSON lines, oldest first (the listing's order reversed).
    let resp = stack
        .get("/api/v1/audit/export", &auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let export = resp.text().await.unwrap();
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let ours: Vec<&Value> = lines.iter().filter(|e| e["trace_id"] == trace).collect();
    let mut newest_first: Vec<&Value> = entries.iter().collect();
    newest_first.reverse();
    assert_eq!(ours, newest_first);
    let (_, filtered) =
        send_json(stack.get(&format!("/api/v1/audit/export?user={bob}"), &auditor)).await;
    let filtered = filtered.as_str().unwrap_or_default().lines().count();
    assert_eq!(filtered, 10, "bob's entries in the filtered export");
    let cli = stack.osapictl(&auditor, &["audit", "export", "--user", &bob]);
    assert!(cli.status.success(), "{cli:?}");
    assert_eq!(String::from_utf8_lossy(&cli.stdout).lines().count(), 10);
    let cli = stack.osapictl(&auditor, &["-o", "json", "audit", "list", "--user", &alice]);
    assert!(cli.status.success(), "{cli:?}");
    let listed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(10));

    // The journal: the same entries, one field per attribute.
    let journal = wait_for("27 journal entries", Duration::from_secs(20), || async {
        let j = journal_entries(&trace);
        (j.len() >= plan.len()).then_some(j)
    })
    .await;
    assert_eq!(journal.len(), plan.len());
    assert_eq!(
        tally(journal.iter().map(|e| (
            e["AUDIT_USER"].as_str().unwrap_or(""),
            e["AUDIT_RESPONSE_CODE"].as_str().unwrap_or("").to_owned()
        ))),
        expected
    );
    for e in &journal {
        assert_eq!(e["SYSLOG_IDENTIFIER"], "osapi-audit", "{e}");
        assert_eq!(e["PRIORITY"], "6", "{e}");
        for field in [
            "AUDIT_ID",
            "AUDIT_PATH",
            "AUDIT_METHOD",
            "AUDIT_OPERATION_ID",
            "AUDIT_SOURCE_IP",
            "AUDIT_DURATION_MS",
            "MESSAGE",
        ] {
            assert!(e[field].is_string(), "{field} missing: {e}");
        }
    }
    let journal_ids: std::collections::BTreeSet<&str> = journal
        .iter()
        .filter_map(|e| e["AUDIT_ID"].as_str())
        .collect();
    let bucket_ids: std::collections::BTreeSet<&str> =
        entries.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(journal_ids, bucket_ids);

    // No token, nor its signature, anywhere.
    let journal_text = serde_json::to_string(&journal).unwrap();
    for token in [&alice_token, &bob_token, &carol_token, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        for (what, text) in [("export", &export), ("journal", &journal_text)] {
            assert!(!text.contains(signature), "a token in the {what}");
        }
    }
    assert!(
        !export.contains("mallory"),
        "an invalid token's subject was believed"
    );
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_made_while_nats_is_away_are_stored_when_it_returns() {
    let mut stack = Stack::start(&[]).await;
    let tag = random_hex(8);
    let token = stack.token_for(&format!("outage-{tag}"), &["admin"], None);
    let trace = random_hex(32);
    stack
        .nats
        .sup
        .take()
        .unwrap()
        .stop(Duration::from_secs(10))
        .await
        .unwrap();
    // Neither listing agents (an in-memory view) nor refusing a token needs NATS.
    for _ in 0..5 {
        let resp = stack
            .get("/api/v1/agents", &token)
            .header("traceparent", traceparent(&trace))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // One: more from this source would be aggregated into a later entry.
    for _ in 0..1 {
        let resp = stack
            .get("/api/v1/agents", "not-a-token")
            .header("traceparent", traceparent(&trace))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let waiting = metrics_of(&stack).await;
    assert!(
        sample(&waiting, "osapi_audit_buffered", &[]) >= 6.0,
        "entries wait in the buffer: {waiting}"
    );

    stack.nats.restart().await;
    let entries = wait_for(
        "the outage's audit entries",
        Duration::from_secs(60),
        || async {
            let e = audited(&stack, &token, &trace).await;
            (e.len() >= 6).then_some(e)
        },
    )
    .await;
    assert_eq!(entries.len(), 6);
    assert_eq!(
        entries.iter().filter(|e| e["response_code"] == 401).count(),
        1
    );
    assert!(
        entries
            .iter()
            .filter(|e| e["response_code"] == 200)
            .all(|e| e["user"] == format!("outage-{tag}"))
    );
    wait_for("the buffer to drain", Duration::from_secs(30), || async {
        let m = metrics_of(&stack).await;
        (sample(&m, "osapi_audit_buffered", &[]) == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        sample(&metrics_of(&stack).await, "osapi_audit_dropped_total", &[]),
        0.0
    );
}

async fn metrics_of(stack: &Stack) -> String {
    let resp = stack.http.get(stack.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    resp.text().await.unwrap()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, inner) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let have: Vec<(&str, &str)> = inner
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k, v.trim_end_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|want| have.contains(want))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

fn promtool_check(what: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-deps.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics on {what}: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_count_by_route_template() {
    let stack = Stack::start(&[AgentSpec::real("metrics-node").simulate(Duration::ZERO)]).await;
    let token = stack.token(&["admin"]);
    let hostname = [
        ("route", "/api/v1/node/hostname"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let job = [
        ("route", "/api/v1/jobs/{id}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    let created = [("operation", "node.hostname.get")];
    let before = metrics_of(&stack).await;
    promtool_check("the API", &before);

    let mut job_id = String::new();
    for _ in 0..3 {
        let (status, body) = stack.get_json("/api/v1/node/hostname", &token).await;
        assert_eq!(status, 200);
        job_id = body["job_id"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        stack
            .get_json(&format!("/api/v1/jobs/{job_id}"), &token)
            .await
            .0,
        200
    );
    let stray = format!("/api/v1/nothing-{}", random_hex(8));
    assert_eq!(stack.get_json(&stray, &token).await.0, 404);

    let after = metrics_of(&stack).await;
    promtool_check("the API", &after);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(delta("osapi_http_requests_total", &hostname), 3.0);
    assert_eq!(delta("osapi_http_requests_total", &job), 1.0);
    assert_eq!(delta("osapi_http_requests_total", &unmatched), 1.0);
    assert_eq!(
        delta("osapi_http_request_duration_seconds_count", &hostname[..2]),
        3.0
    );
    assert_eq!(delta("osapi_jobs_created_total", &created), 3.0);
    assert_eq!(
        delta("osapi_sync_wait_duration_seconds_count", &created),
        3.0
    );
    // Templates only: no raw path becomes a label.
    assert!(
        !after.contains(&job_id) && !after.contains(&stray),
        "{after}"
    );
    assert_eq!(sample(&after, "osapi_nats_connected", &[]), 1.0);
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(sample(&after, name, &[]) > 0.0, "{name}: {after}");
    }
    assert!(after.contains("# TYPE process_cpu_seconds_total counter"));
    for name in [
        "osapi_audit_buffered",
        "osapi_audit_dropped_total",
        "osapi_audit_journal_failures_total",
    ] {
        assert!(
            after.contains(&format!("\n{name} ")),
            "{name} missing: {after}"
        );
    }

    // The agent's own /metrics, on its socket-activated unix socket.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let cfg = stack.config.to_str().unwrap().to_owned();
    let _agent = spawn(
        "socket-activated agent",
        &mut socket_activate(
            &[sock.display().to_string()],
            "agent",
            &["OSAPI_NODE_AGENT_HOSTNAME=metrics-sock"],
            &["-f", &cfg, "node", "agent", "start", "--simulate", "0s"],
        ),
    );
    wait_for("the agent socket", Duration::from_secs(10), || async {
        sock.exists().then_some(())
    })
    .await;
    wait_for("agent readiness", Duration::from_secs(30), || async {
        http_over_unix(&sock, "/health/ready")
            .await
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await;
    stack.wait_agent_live("metrics-sock").await;
    let scrape = || async {
        let raw = http_over_unix(&sock, "/metrics").await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        raw.split_once("\r\n\r\n").unwrap().1.to_owned()
    };
    let agent_before = scrape().await;
    promtool_check("the agent", &agent_before);
    for _ in 0..2 {
        let (status, _) = stack
            .get_json("/api/v1/node/hostname?target=metrics-sock", &token)
            .await;
        assert_eq!(status, 200);
    }
    // The result reaches the API before the agent's acknowledgement returns,
    // and a job counts as running until then: wait for the gauge to settle.
    let agent_after = wait_for(
        "the agent's jobs to finish",
        Duration::from_secs(10),
        || async {
            let text = scrape().await;
            text.contains("\nosapi_agent_running_jobs 0\n")
                .then_some(text)
        },
    )
    .await;
    promtool_check("the agent", &agent_after);
    let completed = [("operation", "node.hostname.get"), ("outcome", "completed")];
    let agent_delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&agent_after, name, labels) - sample(&agent_before, name, labels)
    };
    assert_eq!(agent_delta("osapi_agent_jobs_total", &completed), 2.0);
    assert_eq!(
        agent_delta("osapi_agent_job_duration_seconds_count", &completed[..1]),
        2.0
    );
    assert!(agent_after.contains("\nosapi_agent_heartbeat_failures_total 0\n"));
    assert!(sample(&agent_after, "process_open_fds", &[]) > 0.0);
    // The agent's registry is its own: no API metrics there.
    assert!(!agent_after.contains("osapi_http_requests_total"));
}
