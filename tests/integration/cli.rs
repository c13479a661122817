//! `osapictl` against a running stack: output formats, exit codes, confirmation.

use std::time::Duration;

use crate::harness::{AgentSpec, Stack};

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osapictl_reads_nodes_jobs_and_agents() {
    let stack = Stack::start(&[
        AgentSpec::real("cli-a").label("group", "web"),
        AgentSpec::real("cli-b")
            .label("group", "web")
            .simulate(Duration::ZERO),
    ])
    .await;
    let admin = stack.token(&["admin"]);

    // Table output: one row per host.
    let out = stack.osapictl(&admin, &["--target", "_all", "node", "hostname"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("cli-a") && stdout.contains("cli-b"),
        "{stdout}"
    );

    // JSON output is the API's answer.
    let out = stack.osapictl(
        &admin,
        &["-o", "json", "--target", "cli-a", "node", "memory"],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["results"][0]["hostname"], "cli-a");
    assert!(v["results"][0]["data"]["total_bytes"].as_u64().unwrap() > 0);

    // YAML output parses back.
    let out = stack.osapictl(&admin, &["-o", "yaml", "agent", "list"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("cli-b"));

    // job run waits for the result; job list shows it.
    let out = stack.osapictl(
        &admin,
        &["-o", "json", "job", "run", "--type", "node.load.get"],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(job["status"], "completed", "{job}");
    let out = stack.osapictl(&admin, &["job", "list"]);
    assert!(
        text(&out).0.contains(job["id"].as_str().unwrap()),
        "{:?}",
        text(&out)
    );

    // A failed host makes exit status 1: the harness gives real agents no system bus,
    // so setting DNS fails (systemd-resolved unavailable).
    let out = stack.osapictl(
        &admin,
        &[
            "--target",
            "cli-a",
            "network",
            "dns",
            "set",
            "lo",
            "--server",
            "192.0.2.1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));

    // Auth errors are exit 3 with one clear line.
    let out = stack.osapictl("not-a-token", &["node", "uptime"]);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    let out = stack.osapictl(
        &stack.token(&["read"]),
        &["job", "add", "--type", "node.load.get"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("job:write"), "{stderr}");

    // A change fanned out to a label group needs --yes when nobody can answer a prompt.
    let out = stack.osapictl(
        &admin,
        &[
            "--target",
            "group:web",
            "node",
            "hostname",
            "set",
            "renamed",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("--yes"));

    // Usage errors are exit 2.
    let out = stack.osapictl(&admin, &["node", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn osapictl_reports_an_unreachable_api() {
    let port = crate::harness::free_port();
    // No CA certificates on this "host": plain HTTP must not need them.
    let no_certs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::harness::OSAPICTL)
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            "x",
            "version",
        ])
        .env("HOME", std::env::temp_dir())
        .env("SSL_CERT_FILE", no_certs.path().join("none.pem"))
        .env("SSL_CERT_DIR", no_certs.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the API"),
        "{:?}",
        out
    );
}
