//! Live output benchmark (issue 12): how long a line a command writes takes
//! to reach a client following `GET /jobs/{id}/output` (SSE), and whether
//! 10 MB of output arrives whole and in order. Prints figures; results in
//! docs/benchmarks.md.
//!
//! `cargo bench --bench output` (`TEST_NATS_SERVER` picks the nats-server
//! binary). A real nats-server, the `osapi` API and one agent, on loopback;
//! the commands run as the agent's children (this machine's PID 1 is not
//! systemd), so the figures are the output path's own: pipe, agent, OUTPUT
//! stream, API, HTTP.

#![allow(dead_code)]

#[path = "support/mod.rs"]
mod common;
#[path = "../tests/integration/harness.rs"]
mod harness;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Stats, nats_version};
use harness::{AgentSpec, Stack, post};
use serde_json::json;

/// Starts a shell command as a job on the agent; its id.
async fn start(stack: &Stack, token: &str, command: &str) -> String {
    let (status, body) = post(
        stack,
        token,
        "/api/v1/command/shell?async=true&target=bench-out",
        json!({"command": command, "timeout": "120s"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["job_id"].as_str().expect("a job id").to_owned()
}

/// Follows the job's output to its end, calling `line` with each stdout
/// line as it arrives; returns all of stdout.
async fn follow(stack: &Stack, token: &str, id: &str, mut line: impl FnMut(&str)) -> String {
    let mut resp = stack
        .get(&format!("/api/v1/jobs/{id}/output"), token)
        .send()
        .await
        .expect("the output stream");
    assert_eq!(resp.status(), 200);
    let (mut text, mut stdout, mut partial) = (String::new(), String::new(), String::new());
    while let Some(chunk) = resp.chunk().await.expect("read the stream") {
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if !event.contains("event: stdout") {
                continue;
            }
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_default();
            let chunk: serde_json::Value = serde_json::from_str(data).expect("chunk JSON");
            let piece = chunk["data"].as_str().unwrap_or_default();
            stdout.push_str(piece);
            partial.push_str(piece);
            while let Some(nl) = partial.find('\n') {
                let whole: String = partial.drain(..=nl).collect();
                line(whole.trim_end());
            }
        }
    }
    stdout
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

async fn latency(stack: &Stack, token: &str, lines: usize) {
    // Each line is the time it was written (date reads the clock, then writes).
    let id = start(
        stack,
        token,
        &format!("for i in $(seq 1 {lines}); do date +%s%N; sleep 0.02; done"),
    )
    .await;
    let begun = Instant::now();
    let mut samples = Vec::new();
    follow(stack, token, &id, |line| {
        if let Ok(sent) = line.parse::<u128>() {
            let late = now_ns().saturating_sub(sent);
            samples.push(Duration::from_nanos(
                u64::try_from(late).unwrap_or(u64::MAX),
            ));
        }
    })
    .await;
    samples.sort();
    let s = Stats {
        errors: lines - samples.len(),
        samples,
        wall: begun.elapsed(),
    };
    println!(
        "line written → line received over SSE: {} lines, {} missing; p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        s.samples.len(),
        s.errors,
        ms(s.pct(0.50)),
        ms(s.pct(0.90)),
        ms(s.pct(0.99)),
        ms(s.pct(1.0)),
    );
}

async fn volume(stack: &Stack, token: &str, numbers: u64) {
    let expected: String = (1..=numbers).map(|n| format!("{n}\n")).collect();
    let id = start(stack, token, &format!("seq 1 {numbers}")).await;
    let begun = Instant::now();
    let got = follow(stack, token, &id, |_| {}).await;
    let took = begun.elapsed();
    let mb = expected.len() as f64 / 1e6;
    println!(
        "seq 1 {numbers}: {mb:.1} MB, {:.1} MB received, {} ({}), {:.2} s from job start to end event, {:.1} MB/s",
        got.len() as f64 / 1e6,
        if got == expected {
            "whole and in order"
        } else {
            "DIFFERENT"
        },
        if got.len() == expected.len() {
            "same length"
        } else {
            "length differs"
        },
        took.as_secs_f64(),
        mb / took.as_secs_f64(),
    );
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "osapi live output benchmark — {}; {cpus} CPUs",
        nats_version()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let stack = Stack::start(&[AgentSpec::real("bench-out")]).await;
        let token = stack.token(&["admin"]);
        // Warm-up: connections open, stream created.
        latency(&stack, &token, 10).await;
        println!();
        latency(&stack, &token, 300).await;
        volume(&stack, &token, 1_500_000).await;
        let api = common::rss_mib(stack.api.child.id()).0;
        let agent = stack
            .agents
            .first()
            .map_or(0.0, |(_, p)| common::rss_mib(p.child.id()).0);
        println!("RSS after: api {api:.1} MiB, agent {agent:.1} MiB");
    });
}
