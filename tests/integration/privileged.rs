//! The root helper a non-root agent starts for operations that need root
//! (`osapi-agent --run-operation`), spoken to over its stdin and stdout as
//! the agent does. Here it runs as a child (the test is root already); the
//! appliance test runs it as the transient unit it is in production.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};

const AGENT: &str = env!("CARGO_BIN_EXE_osapi-agent");

fn line(v: &Value) -> String {
    format!("{v}\n")
}

/// A templated file deploy: the helper asks the agent for the stored file's
/// bytes, renders it over the facts it was given, writes it, and answers.
#[test]
fn the_helper_asks_the_agent_for_a_stored_file_and_deploys_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("motd");
    let mut helper = Command::new(AGENT)
        .arg("--run-operation")
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let mut to = helper.stdin.take().expect("stdin");
    let mut from = BufReader::new(helper.stdout.take().expect("stdout"));

    let run = json!({"run": {
        "operation": {"type": "file.deploy", "data": {
            "name": "motd", "path": target.to_string_lossy(), "template": true
        }},
        "facts": {"hostname": "web-01", "labels": {"role": "web"}},
        "agent_pid": 1
    }});
    to.write_all(line(&run).as_bytes())
        .expect("send the operation");

    let mut asked = String::new();
    from.read_line(&mut asked).expect("read a question");
    let asked: Value = serde_json::from_str(&asked).expect("a JSON question");
    assert_eq!(asked, json!({"fetch": {"name": "motd"}}));
    let text = b"welcome to {{ host.hostname }} ({{ host.labels.role }})\n";
    let fetched = json!({"fetched": {
        "sha256": osapi::provider::files::sha256_hex(text),
        "bytes": base64::engine::general_purpose::STANDARD.encode(text),
    }});
    to.write_all(line(&fetched).as_bytes()).expect("answer");

    let mut done = String::new();
    from.read_line(&mut done).expect("read the outcome");
    let done: Value = serde_json::from_str(&done).expect("a JSON outcome");
    let outcome = &done["done"]["outcome"];
    assert_eq!(outcome["error"], Value::Null, "{done}");
    assert_eq!(outcome["data"]["changed"], true, "{done}");
    assert_eq!(
        std::fs::read_to_string(&target).expect("the deployed file"),
        "welcome to web-01 (web)\n"
    );
    drop(to);
    assert!(helper.wait().expect("wait").success());
}

/// A failed fetch is the operation's failure, said by name; a helper given
/// nothing to run fails without answering.
#[test]
fn the_helper_reports_a_failed_fetch_and_refuses_no_operation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut helper = Command::new(AGENT)
        .arg("--run-operation")
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the helper");
    let mut to = helper.stdin.take().expect("stdin");
    let mut from = BufReader::new(helper.stdout.take().expect("stdout"));
    let run = json!({"run": {
        "operation": {"type": "file.deploy", "data": {
            "name": "gone", "path": dir.path().join("x").to_string_lossy()
        }},
        "facts": null,
        "agent_pid": 1
    }});
    to.write_all(line(&run).as_bytes()).expect("send");
    let mut asked = String::new();
    from.read_line(&mut asked).expect("question");
    to.write_all(line(&json!({"fetch_failed": {"detail": "no such file: gone"}})).as_bytes())
        .expect("answer");
    let mut done = String::new();
    from.read_line(&mut done).expect("outcome");
    let done: Value = serde_json::from_str(&done).expect("JSON");
    let error = &done["done"]["outcome"]["error"];
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("no such file: gone")),
        "{done}"
    );
    assert!(!dir.path().join("x").exists());
    drop(to);
    assert!(helper.wait().expect("wait").success());

    let silent = Command::new(AGENT)
        .arg("--run-operation")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!silent.status.success());
    assert!(silent.stdout.is_empty());
    assert!(String::from_utf8_lossy(&silent.stderr).contains("no operation to run"));
}

/// The helper keeps its records only in a directory of its own user's
/// alone: one others may write (or a link) is refused before anything runs.
#[test]
fn the_helper_refuses_a_state_directory_others_can_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut helper = Command::new(AGENT)
        .arg("--run-operation")
        .env("STATE_DIRECTORY", &state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the helper");
    let mut to = helper.stdin.take().expect("stdin");
    let mut from = BufReader::new(helper.stdout.take().expect("stdout"));
    let target = dir.path().join("x");
    let run = json!({"run": {
        "operation": {"type": "file.undeploy", "data": {"name": "motd"}},
        "facts": null,
        "agent_pid": 1
    }});
    to.write_all(line(&run).as_bytes()).expect("send");
    let mut done = String::new();
    from.read_line(&mut done).expect("outcome");
    let done: Value = serde_json::from_str(&done).expect("JSON");
    let message = done["done"]["outcome"]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("alone"), "{done}");
    assert!(!target.exists());
    drop(to);
    let _ = helper.wait();
}
