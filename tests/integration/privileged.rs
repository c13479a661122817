//! The root helper a non-root agent starts for operations that need root
//! (`osapi-agent --run-operation`), spoken to over its stdin and stdout as
//! the agent does. Here it runs as a child (the test is root already); the
//! appliance test runs it as the transient unit it is in production.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};

const AGENT: &str = env!("CARGO_BIN_EXE_osapi-agent");

/// A helper started as the agent starts it, with `state` as its state
/// directory, and its two pipes.
struct Helper {
    child: Child,
    to: Option<ChildStdin>,
    from: BufReader<ChildStdout>,
}

impl Helper {
    fn start(state: &Path) -> Helper {
        let mut child = Command::new(AGENT)
            .arg("--run-operation")
            .env("STATE_DIRECTORY", state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the helper");
        let to = child.stdin.take();
        let from = BufReader::new(child.stdout.take().expect("stdout"));
        Helper { child, to, from }
    }

    fn send(&mut self, message: &Value) {
        let to = self.to.as_mut().expect("stdin open");
        to.write_all(format!("{message}\n").as_bytes())
            .expect("send to the helper");
    }

    /// The next message, or `Null` at the end.
    fn next(&mut self) -> Value {
        let mut line = String::new();
        self.from.read_line(&mut line).expect("read the helper");
        serde_json::from_str(&line).unwrap_or(Value::Null)
    }

    /// Closes its stdin and says whether it exited 0.
    fn finish(mut self) -> bool {
        drop(self.to.take());
        self.child.wait().expect("wait").success()
    }
}

/// The first message: `operation` (type and data) for the agent `1`.
fn run(operation: Value, facts: Value) -> Value {
    json!({"run": {"operation": operation, "facts": facts, "agent_pid": 1}})
}

/// A templated file deploy: the helper asks the agent for the stored file's
/// bytes, renders it over the facts it was given, writes it, and answers.
#[test]
fn the_helper_asks_the_agent_for_a_stored_file_and_deploys_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("motd");
    let mut helper = Helper::start(&dir.path().join("state"));
    helper.send(&run(
        json!({"type": "file.deploy", "data": {
            "name": "motd", "path": target.to_string_lossy(), "template": true
        }}),
        json!({"hostname": "web-01", "labels": {"role": "web"}}),
    ));
    assert_eq!(helper.next(), json!({"fetch": {"name": "motd"}}));
    let text = b"welcome to {{ host.hostname }} ({{ host.labels.role }})\n";
    helper.send(&json!({"fetched": {
        "sha256": osapi::provider::files::sha256_hex(text),
        "bytes": base64::engine::general_purpose::STANDARD.encode(text),
    }}));
    let done = helper.next();
    let outcome = &done["done"]["outcome"];
    assert_eq!(outcome["error"], Value::Null, "{done}");
    assert_eq!(outcome["data"]["changed"], true, "{done}");
    assert_eq!(
        std::fs::read_to_string(&target).expect("the deployed file"),
        "welcome to web-01 (web)\n"
    );
    assert!(helper.finish());
}

/// A failed fetch is the operation's failure, said by name; a helper given
/// nothing to run fails without answering.
#[test]
fn the_helper_reports_a_failed_fetch_and_refuses_no_operation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut helper = Helper::start(&dir.path().join("state"));
    let target = dir.path().join("x");
    helper.send(&run(
        json!({"type": "file.deploy", "data": {
            "name": "gone", "path": target.to_string_lossy()
        }}),
        Value::Null,
    ));
    assert_eq!(helper.next(), json!({"fetch": {"name": "gone"}}));
    helper.send(&json!({"fetch_failed": {"detail": "no such file: gone"}}));
    let done = helper.next();
    let message = done["done"]["outcome"]["error"]["message"].as_str();
    assert!(
        message.is_some_and(|m| m.contains("no such file: gone")),
        "{done}"
    );
    assert!(!target.exists());
    assert!(helper.finish());

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
/// alone: one others may write is refused before anything runs.
#[test]
fn the_helper_refuses_a_state_directory_others_can_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut helper = Helper::start(&state);
    helper.send(&run(
        json!({"type": "file.undeploy", "data": {"name": "motd"}}),
        Value::Null,
    ));
    let done = helper.next();
    let message = done["done"]["outcome"]["error"]["message"].as_str();
    assert!(message.is_some_and(|m| m.contains("alone")), "{done}");
    helper.finish();
}
