//! The `osapi` admin commands and the embedded NATS supervisor, as processes.

use std::process::Command;

use crate::harness::{OSAPI, embedded_nats_config, free_port, spawn, write_file};

#[test]
fn config_check_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_file(
        dir.path(),
        "good.yaml",
        "api:\n  server:\n    security:\n      signing_key: \"0123456789abcdef0123456789abcdef\"\n",
    );
    let out = Command::new(OSAPI)
        .args(["-f"])
        .arg(&good)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = write_file(
        dir.path(),
        "bad.yaml",
        "api:\n  server:\n    prot: 80\n    port: 0\nnode:\n  agent:\n    max_jobz: 3\n",
    );
    let out = Command::new(OSAPI)
        .args(["-f"])
        .arg(&bad)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("api.server.prot"), "{text}");
    assert!(text.contains("node.agent.max_jobz"), "{text}");
    assert!(text.contains(":3"), "line numbers missing: {text}");
}

#[test]
fn token_generate_and_validate_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "c.yaml",
        "api:\n  server:\n    security:\n      signing_key: \"0123456789abcdef0123456789abcdef\"\n",
    );
    let out = Command::new(OSAPI)
        .arg("-f")
        .arg(&cfg)
        .args(["token", "generate", "-r", "read", "-u", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = Command::new(OSAPI)
        .arg("-f")
        .arg(&cfg)
        .args(["token", "validate", &token])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["claims"]["sub"], "alice");
    assert!(
        v["effective_permissions"]
            .as_array()
            .unwrap()
            .contains(&"node:read".into())
    );
    assert!(
        !v["effective_permissions"]
            .as_array()
            .unwrap()
            .contains(&"audit:read".into())
    );
    // A token signed with another key is refused.
    let other = write_file(
        dir.path(),
        "o.yaml",
        "api:\n  server:\n    security:\n      signing_key: \"another-key-another-key-another-key!!\"\n",
    );
    let out = Command::new(OSAPI)
        .arg("-f")
        .arg(&other)
        .args(["token", "validate", &token])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_nats_serves_jetstream_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = embedded_nats_config(dir.path(), port);
    let mut proc = spawn(
        "nats supervisor",
        Command::new(OSAPI)
            .arg("-f")
            .arg(&cfg)
            .args(["nats", "server", "start"]),
    );
    let client = crate::harness::admin_client_of(dir.path(), port).await;
    let js = async_nats::jetstream::new(client);
    let info = js.query_account().await.ok();
    // JetStream answers (account info parses on 2.10+; on 2.9 creating a stream proves it).
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "PROBE".into(),
            subjects: vec!["probe".into()],
            ..Default::default()
        })
        .await;
    assert!(info.is_some() || stream.is_ok(), "JetStream not available");
    assert!(
        proc.terminate().success(),
        "supervisor did not exit cleanly on SIGTERM"
    );
}
