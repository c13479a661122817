//! What an attacker on the host would try against the bus, with the shipped
//! defaults (generated credentials): an anonymous connection, a job planted
//! with the agent's credentials, the audit trail purged with each role's, and
//! the credential files read as another user.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use osapi::bus::Role;

use crate::harness::{
    Access, AgentSpec, OSAPI, Stack, embedded_nats_config, free_port, generated_client,
    raw_anonymous_connect, spawn, wait_for,
};

/// The generated credentials directory of a stack's server.
fn credentials(stack: &Stack) -> &Path {
    match &stack.nats.access {
        Access::Generated { dir, .. } => dir,
        Access::Configured => panic!("the stack runs with generated credentials"),
    }
}

/// A JetStream context that gives up on a refused request after a second (a
/// denied publish gets no answer, only an error on the connection).
async fn as_role(stack: &Stack, role: Role) -> jetstream::Context {
    let client = generated_client(&stack.nats.url, credentials(stack), role)
        .await
        .expect("the role's credentials are accepted");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(1));
    js
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clients_are_refused() {
    let stack = Stack::start(&[]).await;
    let addr = stack.nats.url.trim_start_matches("nats://").to_owned();
    let reply = raw_anonymous_connect(&addr).await;
    assert!(reply.contains("Authorization Violation"), "{reply}");
    assert!(!reply.contains("PONG"), "{reply}");
}

/// `osapi nats server start` under socket activation: the activated socket
/// and the child's own loopback port both refuse anonymous clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_of_the_embedded_server_refuses_anonymous_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (_activator, port, _admin) = crate::harness::socket_activated_nats(dir.path()).await;
    let creds = dir.path().join("credentials");
    let conf = std::fs::read_to_string(dir.path().join("js/run/nats-server.conf")).unwrap();
    let child: serde_json::Value = serde_json::from_str(&conf).expect("JSON-shaped config");
    let child_port = child["port"].as_u64().unwrap();
    assert_ne!(child_port, u64::from(port));
    for addr in [
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{child_port}"),
    ] {
        let reply = raw_anonymous_connect(&addr).await;
        assert!(reply.contains("Authorization Violation"), "{addr}: {reply}");
        assert!(!reply.contains("PONG"), "{addr}: {reply}");
    }
    // The generated configuration names public keys only.
    assert!(conf.contains("\"nkey\": \"U"), "{conf}");
    for role in Role::ALL {
        let seed = std::fs::read_to_string(role.seed_file(&creds)).unwrap();
        assert!(
            !conf.contains(seed.trim()),
            "{} seed in the config",
            role.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_credentials_cannot_plant_a_job() {
    let stack = Stack::start(&[AgentSpec::real("victim")]).await;
    let ns = &stack.namespace;
    let js = as_role(&stack, Role::Agent).await;
    let marker = stack.dir.path().join("planted");
    let id = uuid::Uuid::now_v7();
    // The API's field layout of a command job, for every agent.
    let job = serde_json::json!({
        "id": id,
        "operation": {"type": "command.shell.execute", "data": {"command": format!("touch {}", marker.display())}},
        "target": "_all",
        "created_by": "mallory",
    });
    let stored = async {
        js.publish(
            format!("$KV.{ns}-job-queue.{id}"),
            serde_json::to_vec(&job).unwrap().into(),
        )
        .await?
        .await
    }
    .await;
    assert!(stored.is_err(), "the agent stored a job: {stored:?}");
    let announced = async {
        js.publish(format!("{ns}.jobs.modify._all"), id.to_string().into())
            .await?
            .await
    }
    .await;
    assert!(
        announced.is_err(),
        "the agent announced a job: {announced:?}"
    );

    // Nothing was stored: the admin finds no such job.
    let admin = as_role(&stack, Role::Admin).await;
    let jobs = admin
        .get_key_value(format!("{ns}-job-queue"))
        .await
        .unwrap();
    assert!(jobs.get(id.to_string()).await.unwrap().is_none());
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_role_can_purge_or_delete_the_audit_trail() {
    let stack = Stack::start(&[]).await;
    let token = stack.token(&["admin"]);
    // Something to lose: an audited request, stored.
    let (status, _) = stack.get_json("/api/v1/agents", &token).await;
    assert_eq!(status, 200);
    let ns = stack.namespace.clone();
    let audit = format!("KV_{ns}-audit");
    let admin = as_role(&stack, Role::Admin).await;
    let stored = wait_for("the audit entry", Duration::from_secs(10), || async {
        let info = admin.get_stream(&audit).await.ok()?.get_info().await.ok()?;
        (info.state.messages > 0).then_some(info.state.messages)
    })
    .await;
    for role in Role::ALL {
        let js = as_role(&stack, role).await;
        // Every role but the join credential may look at the stream; none
        // may empty it.
        match js.get_stream(&audit).await {
            Ok(stream) => {
                let purged = stream.purge().await;
                assert!(purged.is_err(), "{} purged the audit stream", role.name());
            }
            Err(_) => assert_eq!(role, Role::Enroll),
        }
        let deleted = js.delete_stream(&audit).await;
        assert!(deleted.is_err(), "{} deleted the audit stream", role.name());
    }
    let info = admin
        .get_stream(&audit)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert!(info.state.messages >= stored, "{:?}", info.state);
}

/// The seeds are readable by their owner only; the public keys by anyone.
#[test]
fn credential_files_are_unreadable_to_other_users() {
    let dir = tempfile::tempdir().unwrap();
    // World-traversable, as /var/lib/osapi/credentials is for the server's user.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cfg = embedded_nats_config(dir.path(), free_port());
    let out = Command::new(OSAPI)
        .arg("-f")
        .arg(&cfg)
        .args(["nats", "credentials"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    for role in Role::ALL {
        assert!(printed.contains(role.name()), "{printed}");
        let seed = role.seed_file(&dir.path().join("credentials"));
        let as_nobody = |file: &Path| {
            Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat"])
                .arg(file)
                .output()
                .unwrap()
        };
        let read = as_nobody(&seed);
        assert!(!read.status.success(), "nobody read {}", seed.display());
        assert!(read.stdout.is_empty());
        let public = seed.with_extension("pub");
        assert!(as_nobody(&public).status.success(), "{}", public.display());
    }
}

/// A job stored with the API's field layout but not signed by it, or signed
/// and then altered, is refused by the agent: never run, never retried, and
/// reported `rejected`. Stored with the admin credential, the only one besides
/// the API's that may write the jobs bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_altered_jobs_are_refused_unrun() {
    let stack = Stack::start(&[AgentSpec::real("verifier")]).await;
    let ns = stack.namespace.clone();
    let token = stack.token(&["admin"]);
    // A real job, signed by the API, to copy the layout and signature from.
    let (status, created) = crate::harness::post(
        &stack,
        &token,
        "/api/v1/command/shell?async=true",
        serde_json::json!({"command": "true"}),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let original = created["job_id"].as_str().unwrap().to_owned();
    let admin = as_role(&stack, Role::Admin).await;
    let jobs = admin
        .get_key_value(format!("{ns}-job-queue"))
        .await
        .unwrap();
    let stored: serde_json::Value =
        serde_json::from_slice(&jobs.get(&original).await.unwrap().unwrap()).unwrap();
    assert!(stored["signature"].is_string(), "{stored}");

    let marker = stack.dir.path().join("forged-ran");
    for forgery in ["altered", "unsigned"] {
        let id = uuid::Uuid::now_v7();
        let mut job = stored.clone();
        job["id"] = serde_json::json!(id);
        job["operation"]["data"]["command"] =
            serde_json::json!(format!("touch {}", marker.display()));
        if forgery == "unsigned" {
            job.as_object_mut().unwrap().remove("signature");
        }
        jobs.create(id.to_string(), serde_json::to_vec(&job).unwrap().into())
            .await
            .unwrap();
        admin
            .publish(format!("{ns}.jobs.modify._any"), id.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
        let path = format!("/api/v1/jobs/{id}");
        let view = wait_for(
            &format!("the {forgery} job's report"),
            Duration::from_secs(30),
            || async {
                let (_, view) = stack.get_json(&path, &token).await;
                (!view["results"].as_array()?.is_empty()).then_some(view)
            },
        )
        .await;
        let result = &view["results"][0];
        assert_eq!(result["status"], "failed", "{forgery}: {view}");
        assert_eq!(result["error"]["code"], "rejected", "{forgery}: {view}");
        let detail = result["error"]["message"].as_str().unwrap();
        let reason = if forgery == "unsigned" {
            "not signed"
        } else {
            "does not match"
        };
        assert!(detail.contains(reason), "{forgery}: {detail}");
        // On the audit trail too, in the refusing agent's name.
        let entry = wait_for(
            &format!("the {forgery} job's audit entry"),
            Duration::from_secs(15),
            || async {
                let (_, page) = stack
                    .get_json("/api/v1/audit?user=agent:verifier", &token)
                    .await;
                page["entries"]
                    .as_array()?
                    .iter()
                    .find(|e| e["job_id"] == id.to_string())
                    .cloned()
            },
        )
        .await;
        assert_eq!(entry["operation_id"], "jobs_rejected", "{entry}");
        assert_eq!(entry["response_code"], 403, "{entry}");
        assert!(
            entry["detail"].as_str().unwrap().contains(reason),
            "{entry}"
        );
    }
    assert!(!marker.exists(), "a forged job ran");
}

/// (a) A `read` token sees an admin's command job's status and hosts, never
/// its request or output; nobody sees its `env` values; the command itself
/// gets a clean environment, not the agent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_requests_and_output_are_for_command_holders_only() {
    let mut stack = Stack::start(&[]).await;
    // The agent's own environment holds something a job must not see.
    stack
        .add_agent(
            AgentSpec::real("runner").env("OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN", "agent-secret"),
        )
        .await;
    let admin = stack.token_for("root-admin", &["admin"], None);
    let (status, ran) = crate::harness::post(
        &stack,
        &admin,
        "/api/v1/command/exec",
        serde_json::json!({
            "command": "/bin/sh",
            "args": ["-c", "echo got-$DB_PASSWORD; env"],
            "env": {"DB_PASSWORD": "hunter2"},
        }),
    )
    .await;
    assert_eq!(status, 200, "{ran}");
    let stdout = ran["results"][0]["data"]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stdout.contains("got-hunter2"), "{stdout}");
    assert!(
        !stdout.contains("agent-secret"),
        "the agent's environment leaked: {stdout}"
    );
    assert!(!stdout.contains("OSAPI_"), "{stdout}");
    assert!(stdout.contains("PATH="), "{stdout}");
    let path = format!("/api/v1/jobs/{}", ran["job_id"].as_str().unwrap());

    let (status, full) = stack.get_json(&path, &admin).await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(full["redacted"], false);
    assert_eq!(full["operation"]["data"]["env"]["DB_PASSWORD"], "<hidden>");
    assert_eq!(full["operation"]["data"]["command"], "/bin/sh");

    let reader = stack.token_for("reader", &["read"], None);
    let (status, seen) = stack.get_json(&path, &reader).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["redacted"], true);
    assert_eq!(seen["status"], "completed");
    assert_eq!(seen["results"][0]["hostname"], "runner");
    assert!(seen["operation"]["data"].is_null(), "{seen}");
    assert!(seen["results"][0].get("data").is_none(), "{seen}");
    let text = seen.to_string();
    for secret in ["hunter2", "DB_PASSWORD", "/bin/sh"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

/// (b) Deleting someone else's job needs job:delete (admin); `write` may
/// delete only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_creator_or_job_delete_may_delete_a_job() {
    let stack = Stack::start(&[AgentSpec::real("keeper").simulate(Duration::ZERO)]).await;
    let admin = stack.token_for("root-admin", &["admin"], None);
    let writer = stack.token_for("writer", &["write"], None);
    let job_of = |token: String| {
        let stack = &stack;
        async move {
            let (status, body) = stack
                .get_json("/api/v1/node/hostname?async=true", &token)
                .await;
            assert_eq!(status, 202, "{body}");
            format!("/api/v1/jobs/{}", body["job_id"].as_str().unwrap())
        }
    };
    let delete = |path: String, token: String| {
        let stack = &stack;
        async move {
            crate::harness::send_json(stack.request(reqwest::Method::DELETE, &path, &token)).await
        }
    };
    let admins = job_of(admin.clone()).await;
    let (status, problem) = delete(admins.clone(), writer.clone()).await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("job:delete"),
        "{problem}"
    );
    let (status, _) = stack.get_json(&admins, &admin).await;
    assert_eq!(status, 200, "the admin's job survives");

    let writers = job_of(writer.clone()).await;
    assert_eq!(delete(writers.clone(), writer.clone()).await.0, 204);
    assert_eq!(delete(admins, admin.clone()).await.0, 204);
}

/// (c) One token cannot hold every job slot: past its cap of jobs in flight
/// it gets 429 with Retry-After (problem+json), others are still served, and
/// its places come back once its jobs settle (here, at their deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_flight_are_capped_per_principal() {
    let opts = crate::harness::StackOptions {
        api_env: vec![("OSAPI_API_SERVER_MAX_JOBS_IN_FLIGHT".into(), "3".into())],
        ..Default::default()
    };
    let stack = Stack::start_with(
        &[AgentSpec::real("slow").simulate(Duration::from_secs(30))],
        opts,
    )
    .await;
    let reader = stack.token_for("greedy-reader", &["read"], None);
    let ping = "/api/v1/node/hostname?async=true&timeout=2s";
    for _ in 0..3 {
        let (status, body) = stack.get_json(ping, &reader).await;
        assert_eq!(status, 202, "{body}");
    }
    let resp = stack.get(ping, &reader).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max_jobs_in_flight"),
        "{problem}"
    );
    // Someone else is not held up by it.
    let admin = stack.token_for("admin", &["admin"], None);
    let (status, body) = stack.get_json(ping, &admin).await;
    assert_eq!(status, 202, "{body}");
    // The reader's jobs pass their deadline; its places come back.
    wait_for("the reader's places", Duration::from_secs(20), || async {
        let (status, _) = stack.get_json(ping, &reader).await;
        (status == 202).then_some(())
    })
    .await;
}

/// (d) Junk tokens do not fill the audit trail: failed authentications are
/// aggregated per source, and a full audit store makes room for new entries
/// instead of refusing them. (e) What is buffered at stop is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_tokens_and_a_full_audit_store_never_crowd_out_new_entries() {
    let opts = crate::harness::StackOptions {
        extra_config: "nats:\n  audit:\n    max_bytes: 64KiB\n".into(),
        ..Default::default()
    };
    let mut stack = Stack::start_with(&[], opts).await;
    let admin = stack.token_for("root-admin", &["admin"], None);
    let burst = |token: String, n: usize| {
        let stack = &stack;
        async move {
            for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
                let answers = futures::future::join_all(
                    chunk
                        .iter()
                        .map(|_| stack.get("/api/v1/agents", &token).send()),
                )
                .await;
                for a in answers {
                    a.unwrap();
                }
            }
        }
    };
    // More than the bucket holds (about 400 bytes an entry), then junk.
    burst(admin.clone(), 400).await;
    burst("junk.junk.junk".to_owned(), 530).await;
    // The newest request gets in, though the store is full.
    let (status, _) = stack.get_json("/api/v1/agents/marker-host", &admin).await;
    assert_eq!(status, 404);
    wait_for("the newest entry", Duration::from_secs(20), || async {
        let (_, page) = stack.get_json("/api/v1/audit?limit=5", &admin).await;
        page["entries"]
            .as_array()?
            .iter()
            .any(|e| e["path"] == "/api/v1/agents/marker-host")
            .then_some(())
    })
    .await;
    // The 530 failures are one entry so far (the rest are being counted).
    let (_, anonymous) = stack
        .get_json("/api/v1/audit?user=anonymous&limit=1000", &admin)
        .await;
    assert_eq!(
        anonymous["entries"].as_array().unwrap().len(),
        1,
        "{anonymous}"
    );
    let (_, metrics) = crate::harness::send_json(stack.http.get(stack.url("/metrics"))).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("osapi_audit_dropped_total 0"), "{metrics}");

    // Stopping the API stores the aggregate: 529 more from this source.
    assert!(stack.api.terminate().success());
    let admin_js = as_role(&stack, Role::Admin).await;
    let audit = admin_js
        .get_key_value(format!("{}-audit", stack.namespace))
        .await
        .unwrap();
    let mut keys = audit.keys().await.unwrap();
    let mut counted = None;
    while let Some(key) = futures::StreamExt::next(&mut keys).await {
        let Some(body) = audit.get(key.unwrap()).await.unwrap() else {
            continue;
        };
        let entry: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if entry["user"] == "anonymous" && entry.get("count").is_some() {
            counted = Some(entry);
        }
    }
    let counted = counted.expect("an aggregate entry");
    assert_eq!(counted["count"], 529, "{counted}");
    assert_eq!(counted["response_code"], 401);
    assert_eq!(counted["source_ip"], "127.0.0.1");
}

/// (f) Off loopback the API speaks HTTPS only: with the generated certificate
/// it answers a client that pins the generated CA, refuses plain HTTP on the
/// same port, and osapictl refuses a server its pinned CA did not sign. With
/// no certificate it does not start at all rather than serve tokens in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_api_serves_https_only() {
    let stack = Stack::start(&[AgentSpec::real("tls-node").simulate(Duration::ZERO)]).await;
    let token = stack.token(&["admin"]);
    let generate = |dir: &Path| {
        let out = Command::new(OSAPI)
            .args([
                "tls",
                "generate",
                "--name",
                "localhost",
                "--name",
                "127.0.0.1",
                "--dir",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let tls = stack.dir.path().join("tls");
    generate(&tls);
    let other = stack.dir.path().join("other-tls");
    generate(&other);
    let api = |port: u16, cert_dir: &Path| {
        let mut cmd = Command::new(OSAPI);
        cmd.arg("-f")
            .arg(&stack.config)
            .args(["api", "server", "start"])
            // Every address: not loopback, so HTTPS only.
            .env("OSAPI_API_SERVER_LISTEN", "0.0.0.0")
            .env("OSAPI_API_SERVER_PORT", port.to_string())
            .env("OSAPI_API_SERVER_TLS_CERT_FILE", cert_dir.join("api.crt"))
            .env("OSAPI_API_SERVER_TLS_KEY_FILE", cert_dir.join("api.key"));
        cmd
    };

    // Without a certificate: a clear refusal, at once.
    let missing = stack.dir.path().join("nowhere");
    let out = api(free_port(), &missing).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("osapi tls generate"), "{stderr}");

    let port = free_port();
    let _https = spawn("https api", &mut api(port, &tls));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(tls.join("ca.crt")).unwrap()).unwrap();
    let pinned = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    wait_for("the HTTPS API", Duration::from_secs(30), || async {
        let r = pinned
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let resp = pinned
        .get(format!("{base}/api/v1/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The same port in plain HTTP: no HTTP answer at all.
    let plain = stack
        .http
        .get(format!("http://127.0.0.1:{port}/api/v1/agents"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // osapictl pins the CA it is given.
    let ctl = |ca: &Path| {
        Command::new(crate::harness::OSAPICTL)
            .args(["--url", &base, "--token", &token, "agent", "list"])
            .env("HOME", stack.dir.path())
            .env("OSAPI_API_CLIENT_TLS_CA_FILE", ca)
            .output()
            .unwrap()
    };
    let ok = ctl(&tls.join("ca.crt"));
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("tls-node"));
    let refused = ctl(&other.join("ca.crt"));
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("certificate"),
        "{refused:?}"
    );
}

/// (f) Revoked tokens stop working at the next request: one token, then every
/// token of a subject issued so far; the subject's later tokens work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_are_refused_at_once() {
    let lists = tempfile::tempdir().unwrap();
    let file = lists.path().join("revoked");
    let var = "OSAPI_API_SERVER_SECURITY_REVOCATION_FILE";
    let opts = crate::harness::StackOptions {
        api_env: vec![(var.into(), file.display().to_string())],
        ..Default::default()
    };
    let stack = Stack::start_with(&[], opts).await;
    let now = osapi::token::now_unix();
    let issue = |iat: i64| {
        crate::harness::signing_key().issue("leaky", vec!["admin".into()], None, iat, 3600)
    };
    let (first, second) = (issue(now), issue(now - 1));
    let status = |token: String| {
        let stack = &stack;
        async move { stack.get_json("/api/v1/agents", &token).await }
    };
    assert_eq!(status(first.clone()).await.0, 200);
    let revoke = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write as _;
        let mut child = Command::new(OSAPI)
            .arg("-f")
            .arg(&stack.config)
            .args(["token", "revoke"])
            .args(args)
            .env(var, &file)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    // The token from standard input: never on a command line.
    revoke(&[], Some(&first));
    let (code, problem) = status(first.clone()).await;
    assert_eq!(code, 401, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("revoked"),
        "{problem}"
    );
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&first));
    assert_eq!(
        status(second.clone()).await.0,
        200,
        "another token of the subject"
    );

    revoke(&["--subject", "leaky"], None);
    assert_eq!(status(second).await.0, 401);
    // A token issued after the revocation works.
    assert_eq!(status(issue(now + 2)).await.0, 200);
}

/// A server that does not know the routes' secret cannot join the cluster
/// (a route sees every message); one that knows it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_route_secret_cannot_join_the_cluster() {
    let credentials = tempfile::tempdir().unwrap();
    let nodes = crate::harness::Nats::start_cluster(2, credentials.path()).await;
    crate::harness::wait_meta_group(&nodes, 1).await;
    let cluster = nodes[0].cluster().unwrap().clone();
    /// The servers routed to (2.10+ pools several connections per peer).
    async fn routes(node: &crate::harness::Nats) -> Option<u64> {
        let routez = node.monitor("/routez").await?;
        let peers: std::collections::BTreeSet<&str> = routez["routes"]
            .as_array()?
            .iter()
            .filter_map(|r| r["remote_id"].as_str())
            .collect();
        u64::try_from(peers.len()).ok()
    }
    assert_eq!(routes(&nodes[0]).await, Some(1));
    let dir = tempfile::tempdir().unwrap();
    let rogue = |name: &str, route: String| {
        let log = dir.path().join(format!("{name}.log"));
        let conf = crate::harness::write_file(
            dir.path(),
            &format!("{name}.conf"),
            &format!(
                "port: {}\nserver_name: {name}\ncluster {{\n  name: {}\n  port: {}\n  routes: [\"{route}\"]\n}}\n",
                free_port(),
                cluster.name,
                free_port(),
            ),
        );
        let proc = spawn(
            name,
            Command::new(osapi::natsd::resolve_binary(&crate::harness::nats_binary()).unwrap())
                .arg("-c")
                .arg(&conf)
                .arg("-l")
                .arg(&log),
        );
        (proc, log)
    };
    let target = format!("127.0.0.1:{}", cluster.port);
    let (_intruder, log) = rogue("intruder", format!("nats-route://{target}"));
    wait_for(
        "the intruder to be turned away",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("Authorization Violation").then_some(())
        },
    )
    .await;
    assert_eq!(routes(&nodes[0]).await, Some(1), "the intruder joined");
    // The same server with the secret is let in: the secret is what decides.
    let secret = cluster.password.clone().unwrap();
    let (_member, _) = rogue(
        "member",
        format!(
            "nats-route://{}:{secret}@{target}",
            osapi::natsd::ROUTE_USER
        ),
    );
    wait_for("the member's route", Duration::from_secs(30), || async {
        (routes(&nodes[0]).await? >= 2).then_some(())
    })
    .await;
}

/// With TLS on the embedded server's client port, clients must use it:
/// plain clients are refused, and the stack works through it, verifying the
/// server's certificate against the CA they are given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_server_with_tls_requires_it() {
    let dir = tempfile::tempdir().unwrap();
    let made = osapi::tls::generate(
        dir.path(),
        &["127.0.0.1".to_owned(), "localhost".to_owned()],
        false,
    )
    .unwrap();
    let (cert, key, ca) = (made.cert.clone(), made.key.clone(), made.ca_cert.clone());
    let nats = crate::harness::Nats::start_with(move |s| {
        s.tls = Some(osapi::natsd::TlsFiles {
            cert_file: cert,
            key_file: key,
            ca_file: None,
        })
    })
    .await;
    let addr = nats.url.trim_start_matches("nats://").to_owned();
    let reply = raw_anonymous_connect(&addr).await;
    // The server says TLS is required and takes the plain CONNECT for a
    // failed handshake: nothing is served in clear.
    assert!(reply.contains("\"tls_required\":true"), "{reply}");
    assert!(!reply.contains("PONG"), "{reply}");

    let ca = ca.display().to_string();
    let servers = [nats.url.clone()];
    let opts = crate::harness::StackOptions {
        api_env: vec![("OSAPI_API_SERVER_NATS_TLS_CA_FILE".into(), ca.clone())],
        ..Default::default()
    };
    let mut stack = Stack::start_on(nats, &servers, &[], opts).await;
    stack
        .add_agent(
            AgentSpec::real("tls-agent")
                .simulate(Duration::ZERO)
                .env("OSAPI_NODE_AGENT_NATS_TLS_CA_FILE", &ca),
        )
        .await;
    let token = stack.token(&["admin"]);
    let (status, body) = stack.get_json("/api/v1/node/hostname", &token).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
}

/// (c) Long jobs cannot take every slot on an agent: with all of them that
/// long jobs may use busy (and one more long job waiting), a quick query is
/// still answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_jobs_leave_slots_for_quick_ones() {
    let mut stack = Stack::start(&[]).await;
    stack
        .add_agent(AgentSpec::real("busy").env("OSAPI_NODE_AGENT_MAX_JOBS", "3"))
        .await;
    let token = stack.token(&["admin"]);
    let mut commands = Vec::new();
    for _ in 0..3 {
        let (status, body) = crate::harness::post(
            &stack,
            &token,
            "/api/v1/command/shell?async=true",
            serde_json::json!({"command": "sleep 20", "timeout": "25s"}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        commands.push(body["job_id"].as_str().unwrap().to_owned());
    }
    // Both long slots are running a command (the third waits).
    wait_for("two commands running", Duration::from_secs(15), || async {
        let mut started = 0;
        for id in &commands {
            let (_, job) = stack.get_json(&format!("/api/v1/jobs/{id}"), &token).await;
            if job["hosts"][0]["state"] == "started" {
                started += 1;
            }
        }
        (started >= 2).then_some(())
    })
    .await;
    let (status, body) = stack
        .get_json("/api/v1/node/hostname?timeout=10s", &token)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
    // The commands are still running: the query did not wait for them.
    let (_, first) = stack
        .get_json(&format!("/api/v1/jobs/{}", commands[0]), &token)
        .await;
    assert_eq!(first["status"], "processing", "{first}");
}

/// The agent role may publish output and read cancels, never ask for a
/// cancel; a job's output shows only the hosts it went to, each under its
/// own subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_credentials_cannot_cancel_or_speak_for_other_hosts() {
    let stack = Stack::start(&[AgentSpec::real("victim")]).await;
    let ns = &stack.namespace;
    let token = stack.token(&["admin"]);
    let (status, body) = crate::harness::post(
        &stack,
        &token,
        "/api/v1/command/shell?async=true&target=victim",
        serde_json::json!({"command": "sleep 1; echo real"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    let js = as_role(&stack, Role::Agent).await;
    let cancelled = async {
        js.publish(format!("$KV.{ns}-job-responses.{id}.cancel"), "{}".into())
            .await?
            .await
    }
    .await;
    assert!(
        cancelled.is_err(),
        "the agent asked for a cancel: {cancelled:?}"
    );
    // Forged output: a host the job did not go to, and a host named under
    // another's subject.
    for (subject_host, hostname) in [("intruder", "intruder"), ("intruder", "victim")] {
        let record = serde_json::json!({"event": "stdout", "hostname": hostname, "seq": 1, "offset": 0,
            "data": "forged\n", "sent": {"stdout": 7, "stderr": 0}});
        js.publish(
            format!("{ns}.output.{id}.{subject_host}"),
            serde_json::to_vec(&record).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut resp = stack
        .get(&format!("/api/v1/jobs/{id}/output"), &token)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream ends");
    assert!(
        text.contains("real") && text.contains("event: end"),
        "{text}"
    );
    assert!(!text.contains("forged"), "{text}");
    let (_, job) = stack.get_json(&format!("/api/v1/jobs/{id}"), &token).await;
    assert_eq!(job["status"], "completed", "{job}");
}
