//! Agents on other hosts join the fleet only when an admin accepts them, and
//! then speak only for their own host: against the real supervisor
//! (`osapi nats server start`), which reloads nats-server with a user per
//! accepted agent.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use serde_json::Value;

use crate::harness::{
    Access, AgentSpec, Nats, OSAPI, Stack, StackOptions, admin_client_of, embedded_nats_config,
    free_port, spawn, wait_for,
};

/// A client with the nkey seed in `seed_file` and replies under `inbox`;
/// `None` when the server refuses it.
async fn client_with(url: &str, seed_file: &Path, inbox: String) -> Option<async_nats::Client> {
    let seed = std::fs::read_to_string(seed_file).ok()?;
    async_nats::ConnectOptions::new()
        .nkey(seed.trim().to_owned())
        .custom_inbox_prefix(inbox)
        .connect(url)
        .await
        .ok()
}

async fn enrollments(stack: &Stack, token: &str, state: &str) -> Vec<Value> {
    let (status, body) = stack
        .get_json(&format!("/api/v1/enrollment?state={state}"), token)
        .await;
    assert_eq!(status, 200, "{body}");
    body["enrollments"].as_array().unwrap().clone()
}

/// A KV put that nats-server refuses never gets its acknowledgement.
async fn refused_put(kv: &jetstream::kv::Store, key: &str, value: &[u8]) -> bool {
    tokio::time::timeout(Duration::from_secs(2), kv.put(key, value.to_vec().into()))
        .await
        .map_or(true, |r| r.is_err())
}

async fn put(kv: &jetstream::kv::Store, key: &str, value: &[u8]) {
    kv.put(key, value.to_vec().into())
        .await
        .expect("a permitted put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_waits_for_acceptance_then_speaks_only_for_its_host() {
    // The real supervisor, with its generated credentials.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = embedded_nats_config(dir.path(), port);
    let _supervisor = spawn(
        "nats supervisor",
        Command::new(OSAPI)
            .arg("-f")
            .arg(&cfg)
            .args(["nats", "server", "start"]),
    );
    let admin = admin_client_of(dir.path(), port).await;
    let url = format!("nats://127.0.0.1:{port}");
    let creds = dir.path().join("credentials");
    let access = Access::Generated {
        dir: creds.clone(),
        namespaces: vec!["osapi".into()],
    };
    let mut stack = Stack::start_on(
        Nats::external(&url, access),
        std::slice::from_ref(&url),
        &[AgentSpec::real("local").simulate(Duration::ZERO)],
        StackOptions::default(),
    )
    .await;
    let admin_token = stack.token(&["admin"]);

    // A new agent with the join credential and a key of its own.
    let identity = dir.path().join("remote-identity.nkey");
    let remote = AgentSpec::real("remote-01")
        .simulate(Duration::ZERO)
        .label("role", "web")
        .env("OSAPI_NODE_AGENT_NATS_AUTH_TYPE", "enroll")
        .env(
            "OSAPI_NODE_AGENT_NATS_AUTH_JOIN_SEED_FILE",
            creds.join("enroll.nkey").to_str().unwrap(),
        )
        .env(
            "OSAPI_NODE_AGENT_NATS_AUTH_IDENTITY_FILE",
            identity.to_str().unwrap(),
        );
    let remote_proc = stack.spawn_agent(&remote);
    stack.agents.push((remote.clone(), remote_proc));
    let pending = wait_for(
        "the new agent's request",
        Duration::from_secs(30),
        || async {
            enrollments(&stack, &admin_token, "pending")
                .await
                .into_iter()
                .find(|e| e["hostname"] == "remote-01")
        },
    )
    .await;
    let public_key = pending["public_key"].as_str().unwrap().to_owned();
    let own_key = osapi::bus::credentials::read_seed(&identity).unwrap();
    assert_eq!(own_key.public_key(), public_key);
    assert_eq!(pending["labels"]["role"], "web");
    assert_eq!(pending["state"], "pending");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&identity).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Pending: never live, never targeted.
    let (status, _) = stack
        .get_json("/api/v1/agents/remote-01", &admin_token)
        .await;
    assert_eq!(status, 404);
    let (status, body) = stack
        .get_json("/api/v1/node/hostname?target=remote-01", &admin_token)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = stack
        .get_json("/api/v1/node/hostname?target=_all", &admin_token)
        .await;
    assert_eq!(status, 200, "{body}");
    let hosts: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["local"], "{body}");

    // The CLI lists it; only agent:write may accept.
    let out = stack.osapictl(&admin_token, &["agent", "pending"]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("remote-01") && listed.contains(&public_key),
        "{listed}"
    );
    let write_token = stack.token(&["write"]);
    let out = stack.osapictl(&write_token, &["agent", "accept", "remote-01"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("agent:write"),
        "{out:?}"
    );

    // The join credential files requests and nothing else: not a decision,
    // not a heartbeat, not a job.
    let enroll = client_with(
        &url,
        &creds.join("enroll.nkey"),
        osapi::bus::Role::Enroll.inbox_prefix(),
    )
    .await
    .expect("the join credential connects");
    let enroll_js = jetstream::new(enroll.clone());
    let requests = enroll_js
        .get_key_value("osapi-agent-requests")
        .await
        .unwrap();
    assert!(
        requests.get(&public_key).await.is_err(),
        "read another's request"
    );
    let decisions = jetstream::new(admin.clone())
        .get_key_value("osapi-agent-enrollment")
        .await
        .unwrap();
    let forged_decision = enroll_js.publish(
        format!("$KV.osapi-agent-enrollment.accepted.{public_key}"),
        serde_json::to_vec(&pending).unwrap().into(),
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), async {
            forged_decision.await?.await
        })
        .await
        .map_or(true, |r| r.is_err())
    );
    assert!(
        decisions
            .get(format!("accepted.{public_key}"))
            .await
            .unwrap()
            .is_none()
    );

    // A request for a key its filer does not hold cannot be accepted, and a
    // second key for an enrolled host does not take it over.
    let thief = nkeys::KeyPair::new_user();
    let mut stolen = osapi::enrollment::Enrollment::request(
        &thief,
        "db-01",
        &Default::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    stolen.public_key = nkeys::KeyPair::new_user().public_key();
    put(
        &requests,
        &stolen.public_key,
        &serde_json::to_vec(&stolen).unwrap(),
    )
    .await;
    let (status, body) = crate::harness::post(
        &stack,
        &admin_token,
        &format!("/api/v1/enrollment/{}/accept", stolen.public_key),
        Value::Null,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("not signed"),
        "{body}"
    );

    // Accepted by its key, never by a name anyone with the join credential
    // could have filed a request under: it joins, as itself.
    let out = stack.osapictl(&admin_token, &["agent", "accept", "remote-01"]);
    assert!(!out.status.success(), "accepted by host name: {out:?}");
    let out = stack.osapictl(&admin_token, &["agent", "accept", &public_key]);
    assert!(out.status.success(), "{out:?}");
    stack.wait_agent_live("remote-01").await;
    // A job that must not run twice takes a run claim, under its own host.
    let (status, body) = crate::harness::post(
        &stack,
        &admin_token,
        "/api/v1/command/shell?target=remote-01",
        serde_json::json!({"command": "true"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "completed", "{body}");
    let (status, body) = stack
        .get_json("/api/v1/node/hostname?target=remote-01", &admin_token)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["hostname"], "remote-01", "{body}");
    let accepted = enrollments(&stack, &admin_token, "accepted").await;
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["public_key"], public_key.as_str());
    assert!(accepted[0]["decided_by"].is_string());

    let usurper = nkeys::KeyPair::new_user();
    let second = osapi::enrollment::Enrollment::request(
        &usurper,
        "remote-01",
        &Default::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    put(
        &requests,
        &second.public_key,
        &serde_json::to_vec(&second).unwrap(),
    )
    .await;
    let (status, body) = crate::harness::post(
        &stack,
        &admin_token,
        &format!("/api/v1/enrollment/{}/accept", second.public_key),
        Value::Null,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("already enrolled"),
        "{body}"
    );

    // With the accepted agent's own key, try to speak for another host.
    let inbox = osapi::bus::permissions::agent_inbox_prefix(&public_key);
    let attacker = client_with(&url, &identity, inbox)
        .await
        .expect("the accepted key connects");
    let js = jetstream::new(attacker.clone());
    let registry = js.get_key_value("osapi-agent-registry").await.unwrap();
    let (_, local_beat) = stack.get_json("/api/v1/agents/local", &admin_token).await;
    let mut forged_beat = local_beat.clone();
    forged_beat["labels"] = serde_json::json!({"role": "forged"});
    let forged_beat = serde_json::to_vec(&forged_beat).unwrap();
    assert!(
        refused_put(&registry, "local", &forged_beat).await,
        "forged a heartbeat"
    );
    // A job for `local`, and its genuine result.
    let (status, job) = stack
        .get_json("/api/v1/node/hostname?target=local", &admin_token)
        .await;
    assert_eq!(status, 200, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();
    let responses = js.get_key_value("osapi-job-responses").await.unwrap();
    let admin_responses = jetstream::new(admin.clone())
        .get_key_value("osapi-job-responses")
        .await
        .unwrap();
    let genuine = admin_responses
        .get(format!("{id}.res.local"))
        .await
        .unwrap()
        .expect("local's result");
    let mut forged: Value = serde_json::from_slice(&genuine).unwrap();
    forged["status"] = "failed".into();
    forged["error"] = serde_json::json!({"code": "forged", "message": "by remote-01"});
    let forged = serde_json::to_vec(&forged).unwrap();
    assert!(
        refused_put(&responses, &format!("{id}.res.local"), &forged).await,
        "overwrote another host's result"
    );
    // Under its own key NATS takes it, but it names another host: ignored.
    put(&responses, &format!("{id}.res.remote-01"), &forged).await;
    let (_, view) = stack
        .get_json(&format!("/api/v1/jobs/{id}"), &admin_token)
        .await;
    let results = view["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{view}");
    assert_eq!(results[0]["status"], "completed", "{view}");
    assert_eq!(view["status"], "completed", "{view}");
    // Another host's deliveries stay that host's.
    // A pull that does not wait is answered at once where it is allowed (its
    // own consumer) and never where it is not.
    let names = osapi::bus::Names::new("osapi");
    let pull = |durable: String| {
        let attacker = attacker.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(2),
                attacker.request(
                    format!("$JS.API.CONSUMER.MSG.NEXT.osapi-JOBS.{durable}"),
                    r#"{"batch":1,"no_wait":true}"#.into(),
                ),
            )
            .await
        }
    };
    let labels = std::collections::BTreeMap::from([("role".to_owned(), "web".to_owned())]);
    let own = names.agent_consumers("remote-01", labels.iter());
    let answered = pull(own[1].durable.clone()).await;
    assert!(matches!(answered, Ok(Ok(_))), "own consumer: {answered:?}");
    let theirs = names.agent_consumers("local", std::iter::empty());
    let stolen = pull(theirs[1].durable.clone()).await;
    assert!(
        !matches!(stolen, Ok(Ok(_))),
        "pulled from another host's consumer: {stolen:?}"
    );
    let (_, still) = stack.get_json("/api/v1/agents/local", &admin_token).await;
    assert_eq!(still["labels"], local_beat["labels"]);

    // Rejected (by key: the usurper's request names remote-01 too): its NATS
    // user is gone, and with it the connection.
    let out = stack.osapictl(&admin_token, &["agent", "reject", "remote-01"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("several agents"),
        "{out:?}"
    );
    let out = stack.osapictl(&admin_token, &["agent", "reject", &public_key]);
    assert!(out.status.success(), "{out:?}");
    wait_for(
        "the rejected key to be refused",
        Duration::from_secs(30),
        || async {
            client_with(
                &url,
                &identity,
                osapi::bus::permissions::agent_inbox_prefix(&public_key),
            )
            .await
            .is_none()
            .then_some(())
        },
    )
    .await;
    let rejected = enrollments(&stack, &admin_token, "rejected").await;
    assert_eq!(
        rejected[0]["public_key"],
        public_key.as_str(),
        "{rejected:?}"
    );
}
