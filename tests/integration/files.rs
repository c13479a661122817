//! Files through the API and a real agent: stored in the bus's object store,
//! deployed into a directory of the test's (as a template over the host's
//! facts), their drift seen (in-sync, drifted with a diff, missing), removed
//! again; the permissions; and an agent's NATS credentials that cannot
//! replace a stored file.

use std::os::unix::fs::PermissionsExt;

use async_nats::jetstream;
use osapi::bus::Role;
use reqwest::Method;
use serde_json::json;

use crate::harness::{Access, AgentSpec, Stack, generated_client, send_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_stored_deployed_drifts_and_is_removed() {
    let state = tempfile::tempdir().unwrap();
    let stack = Stack::start(&[AgentSpec::real("files-host")
        .label("role", "web")
        .env("STATE_DIRECTORY", &state.path().display().to_string())])
    .await;
    let admin = stack.token(&["admin"]);
    let write = stack.token(&["write"]);
    // file:read alone: the read role lacks it (drift diffs show contents).
    let read = stack.token_for(
        "file-reader",
        &[],
        Some(vec![osapi::rbac::Permission::FileRead]),
    );
    let (status, _) = stack
        .get_json("/api/v1/files", &stack.token(&["read"]))
        .await;
    assert_eq!(status, 403, "the read role lists no files");
    let upload = |name: &str, body: &'static str, token: &str| {
        stack
            .request(Method::PUT, &format!("/api/v1/files/{name}"), token)
            .header("content-type", "application/octet-stream")
            .body(body)
    };
    let template = "host {{ host.hostname }} serves {{ host.labels.role }}\n";

    // Stored once; the same bytes again change nothing. Only file:write
    // stores (admin's alone of the built-in roles); file:read lists.
    let (status, _) = send_json(upload("motd", template, &read)).await;
    assert_eq!(status, 403);
    let (status, _) = send_json(upload("motd", template, &write)).await;
    assert_eq!(status, 403, "the write role may not store files");
    let (status, body) = send_json(upload("motd", template, &admin)).await;
    assert_eq!(
        (status, body["changed"].as_bool()),
        (201, Some(true)),
        "{body}"
    );
    let sha = osapi::provider::files::sha256_hex(template.as_bytes());
    assert_eq!(body["file"]["sha256"], sha, "{body}");
    let (status, body) = send_json(upload("motd", template, &admin)).await;
    assert_eq!(
        (status, body["changed"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let (status, body) = stack.get_json("/api/v1/files", &read).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["files"][0]["name"], "motd", "{body}");
    assert_eq!(body["files"][0]["size"], template.len(), "{body}");
    let (status, body) = send_json(upload(".hidden", "x", &admin)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (status, _) = stack.get_json("/api/v1/files/nope", &read).await;
    assert_eq!(status, 404);
    // Larger than the API's limit for JSON bodies is fine for a file; larger
    // than a file may be is a 413 naming the limit.
    let big = |len: usize| {
        stack
            .request(Method::PUT, "/api/v1/files/big.bin", &admin)
            .header("content-type", "application/octet-stream")
            .body(vec![b'x'; len])
    };
    let (status, body) = send_json(big(2 * 1024 * 1024)).await;
    assert_eq!(
        (status, body["file"]["size"].as_u64()),
        (201, Some(2 * 1024 * 1024)),
        "{body}"
    );
    let (status, body) = send_json(big(osapi::job::MAX_FILE_BYTES + 1)).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) =
        send_json(stack.request(Method::DELETE, "/api/v1/files/big.bin", &admin)).await;
    assert_eq!(status, 204);

    // Deployed as a template: written whole with its mode, the host's facts in.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("motd");
    let deploy =
        |query: &str| {
            stack
            .request(Method::POST, &format!("/api/v1/files/motd/deploy{query}"), &admin)
            .json(&json!({"path": target.display().to_string(), "template": true, "mode": "0640"}))
        };
    let (status, body) = send_json(deploy("?dry_run=true")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!target.exists(), "a dry run wrote it");
    let (status, body) = send_json(deploy("")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
    let data = &body["results"][0]["data"];
    assert_eq!(
        (data["changed"].as_bool(), data["source_sha256"].as_str()),
        (Some(true), Some(sha.as_str())),
        "{body}"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "host files-host serves web\n"
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    let (_, body) = send_json(deploy("")).await;
    assert_eq!(body["results"][0]["data"]["changed"], false, "{body}");

    // Drift: in sync, then edited (with a diff), then gone.
    let status_of = || async {
        let (status, body) = stack.get_json("/api/v1/files/motd/status", &read).await;
        assert_eq!(status, 200, "{body}");
        body["results"][0]["data"]["files"][0].clone()
    };
    assert_eq!(status_of().await["state"], "in-sync");
    std::fs::write(&target, "host files-host serves mallory\n").unwrap();
    let drifted = status_of().await;
    assert_eq!(drifted["state"], "drifted", "{drifted}");
    assert!(
        drifted["diff"]
            .as_str()
            .is_some_and(|d| d.contains("-host files-host serves web")
                && d.contains("+host files-host serves mallory")),
        "{drifted}"
    );
    std::fs::remove_file(&target).unwrap();
    assert_eq!(status_of().await["state"], "missing");

    // Undeployed: the copy and its record gone.
    send_json(deploy("")).await;
    assert!(target.exists());
    let (status, body) = send_json(
        stack
            .request(Method::POST, "/api/v1/files/motd/undeploy", &admin)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!target.exists());
    let (_, body) = stack.get_json("/api/v1/files/motd/status", &read).await;
    assert_eq!(body["results"][0]["data"]["files"], json!([]), "{body}");

    // A path into the kernel's trees is refused before any job.
    let (status, body) = send_json(
        stack
            // A dry run: were the rule ever lost, the host's name stays.
            .request(
                Method::POST,
                "/api/v1/files/motd/deploy?dry_run=true",
                &admin,
            )
            .json(&json!({"path": "/proc/sys/kernel/hostname"})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("path")),
        "{body}"
    );

    // osapictl: upload a file, list it, delete it.
    let local = dir.path().join("banner.txt");
    std::fs::write(&local, "hello\n").unwrap();
    let out = stack.osapictl(&admin, &["file", "upload", &local.display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    let out = stack.osapictl(&read, &["file", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("banner.txt"),
        "{out:?}"
    );
    let out = stack.osapictl(&admin, &["file", "delete", "banner.txt"]);
    assert!(out.status.success(), "{out:?}");
    let (status, _) = stack.get_json("/api/v1/files/banner.txt", &read).await;
    assert_eq!(status, 404);

    // The agent's NATS credentials read stored files but cannot replace one.
    let Access::Generated { dir: creds, .. } = &stack.nats.access else {
        panic!("the stack runs with generated credentials");
    };
    let client = generated_client(&stack.nats.url, creds, Role::Agent)
        .await
        .unwrap();
    let mut js = jetstream::new(client);
    js.set_timeout(std::time::Duration::from_secs(1));
    let store = js
        .get_object_store(format!("{}-files", stack.namespace))
        .await
        .expect("agents may open the store");
    let mut evil: &[u8] = b"mallory was here\n";
    let planted = store.put("motd", &mut evil).await;
    assert!(
        planted.is_err(),
        "the agent replaced a stored file: {planted:?}"
    );
    let (_, body) = stack.get_json("/api/v1/files/motd", &read).await;
    assert_eq!(body["sha256"], sha, "{body}");
}
