//! `log.entries.get` and the follow against the real journald: entries are
//! written with `systemd-cat` (journald's own stream socket) under an
//! identifier of the test's own, then read through the API — filtered by
//! identifier, priority, text and cursor — and followed over Server-Sent
//! Events, resuming with `Last-Event-ID`.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{AgentSpec, Stack, journald, wait_for};

/// Logs `message` at `priority` under `identifier` through journald.
fn log(identifier: &str, priority: &str, message: &str) {
    let status = Command::new("systemd-cat")
        .args(["-t", identifier, "-p", priority, "echo", message])
        .stdin(Stdio::null())
        .status()
        .expect("run systemd-cat");
    assert!(status.success(), "systemd-cat: {status}");
}

fn messages(data: &Value) -> Vec<String> {
    data["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The single host result's data of a completed read.
async fn entries(stack: &Stack, token: &str, query: &str) -> Value {
    let (status, body) = stack
        .get_json(&format!("/api/v1/log/entries?{query}"), token)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["status"], "completed", "{query}: {body}");
    body["results"][0]["data"].clone()
}

/// Reads Server-Sent Events from `resp` until `n` entry events came: their
/// ids and data.
async fn read_events(resp: &mut reqwest::Response, n: usize) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let read = async {
        while events.len() < n {
            let chunk = resp
                .chunk()
                .await
                .expect("read the stream")
                .expect("stream ended");
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                };
                match field("event:").as_deref() {
                    Some("entry") => events.push((
                        field("id:").unwrap_or_default(),
                        serde_json::from_str(&field("data:").unwrap_or_default())
                            .expect("entry JSON"),
                    )),
                    Some("error") => panic!("error event: {event}"),
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the entries arrive");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_entries_are_read_filtered_and_followed() {
    let _journal = journald();
    let stack = Stack::start(&[AgentSpec::real("log-host")]).await;
    let admin = stack.token(&["admin"]);
    let id = format!(
        "osapi-t{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    );
    log(&id, "info", "first entry");
    log(&id, "err", "second entry SECRET-ish");
    log(&id, "notice", "third entry");
    let by_id = format!("identifier={id}");
    // journald writes what it is sent on its own time.
    let data = wait_for(
        "journald to store the entries",
        Duration::from_secs(20),
        || {
            let (stack, admin, by_id) = (&stack, &admin, &by_id);
            async move {
                let data = entries(stack, admin, by_id).await;
                (messages(&data).len() == 3).then_some(data)
            }
        },
    )
    .await;
    // Newest first, with what a reader needs.
    assert_eq!(
        messages(&data),
        ["third entry", "second entry SECRET-ish", "first entry"]
    );
    let first = &data["entries"][2];
    assert_eq!(first["identifier"], id.as_str(), "{data}");
    assert_eq!(first["priority"], 6, "{data}");
    assert_eq!(data["truncated"], false, "{data}");

    // Filters: priority (err and worse), text (any case), limit, cursor.
    let data = entries(&stack, &admin, &format!("{by_id}&priority=err")).await;
    assert_eq!(messages(&data), ["second entry SECRET-ish"]);
    let data = entries(&stack, &admin, &format!("{by_id}&grep=secret-ISH")).await;
    assert_eq!(messages(&data), ["second entry SECRET-ish"]);
    let data = entries(&stack, &admin, &format!("{by_id}&limit=2")).await;
    assert_eq!(messages(&data), ["third entry", "second entry SECRET-ish"]);
    assert_eq!(data["truncated"], true, "{data}");
    let cursor = first["cursor"].as_str().expect("cursor").to_owned();
    let after = format!("{by_id}&cursor={}", urlencode(&cursor));
    let data = entries(&stack, &admin, &after).await;
    assert_eq!(
        messages(&data),
        ["second entry SECRET-ish", "third entry"],
        "oldest first after a cursor"
    );
    let data = entries(&stack, &admin, &format!("{by_id}&boot=current")).await;
    assert_eq!(messages(&data).len(), 3, "{data}");

    // Bad input names its field before any job; logs need log:read, which
    // the read role does not have.
    for (query, field) in [
        ("priority=loud", "priority"),
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("unit=no%20type", "unit"),
        ("wait=5", "wait"),
    ] {
        let (status, body) = stack
            .get_json(&format!("/api/v1/log/entries?{query}"), &admin)
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{query}: {body}"
        );
    }
    let read = stack.token(&["read"]);
    let (status, body) = stack
        .get_json(&format!("/api/v1/log/entries?{by_id}"), &read)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("log:read")),
        "{body}"
    );

    // Follow: the newest entries first (oldest of them first), then what is
    // logged while the stream is open.
    let follow = format!("/api/v1/log/follow?{by_id}&limit=2");
    let mut resp = stack.get(&follow, &admin).send().await.expect("follow");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let events = read_events(&mut resp, 2).await;
    let got: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(got, ["second entry SECRET-ish", "third entry"]);
    log(&id, "warning", "fourth entry, while followed");
    let events = read_events(&mut resp, 1).await;
    assert_eq!(events[0].1["message"], "fourth entry, while followed");
    assert_eq!(
        events[0].0,
        events[0].1["cursor"].as_str().unwrap_or_default(),
        "the event id is the cursor"
    );
    drop(resp);

    // Resuming after the third entry gives the fourth, and nothing before it.
    let third = data_cursor(&stack, &admin, &by_id, "third entry").await;
    let mut resp = stack
        .get(&format!("/api/v1/log/follow?{by_id}"), &admin)
        .header("Last-Event-ID", third)
        .send()
        .await
        .expect("resume");
    let events = read_events(&mut resp, 1).await;
    assert_eq!(events[0].1["message"], "fourth entry, while followed");

    drop(resp);

    // A follow whose filter matches nothing yet starts after the journal's
    // newest entry, reads on past what it passes over, and shows the match.
    let needle = format!("needle-{id}");
    let mut resp = stack
        .get(&format!("/api/v1/log/follow?grep={needle}"), &admin)
        .send()
        .await
        .expect("follow a text");
    assert_eq!(resp.status(), 200);
    log(&id, "info", "hay before the needle");
    log(&id, "info", &format!("the {needle} at last"));
    let events = read_events(&mut resp, 1).await;
    assert_eq!(events[0].1["message"], format!("the {needle} at last"));
    drop(resp);

    // osapictl prints them as lines.
    let out = stack.osapictl(&admin, &["log", "-t", &id, "-p", "warning"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("fourth entry, while followed"), "{stdout}");
    assert!(stdout.contains("second entry SECRET-ish"), "{stdout}");
    assert!(
        !stdout.contains("third entry"),
        "notice is below warning: {stdout}"
    );
}

/// The cursor of the entry whose message is `message`.
async fn data_cursor(stack: &Stack, token: &str, by_id: &str, message: &str) -> String {
    let data = entries(stack, token, by_id).await;
    data["entries"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["message"] == message))
        .and_then(|e| e["cursor"].as_str())
        .expect("the entry")
        .to_owned()
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
