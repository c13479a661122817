//! Pipeline benchmark: prints figures, asserts nothing. Results: docs/benchmarks.md.
//!
//! `cargo bench --bench pipeline` (`TEST_NATS_SERVER` picks the nats-server binary).
//! Everything runs on loopback through the integration-test harness: a real
//! nats-server, the `osapi` API process and agent processes. Every loop is bounded
//! by a request count and a wall-clock limit, so it stops by itself.

#![allow(dead_code)]

#[path = "support/mod.rs"]
mod common;
#[path = "../tests/integration/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Stats, nats_version, rss_mib, unlimited};
use harness::{AgentSpec, Stack, wait_for};
use serde_json::json;

/// Builds one request of a load run.
type MakeRequest = Arc<dyn Fn() -> reqwest::RequestBuilder + Send + Sync>;

/// Prints one row of the results table.
trait Row {
    fn print(&self, scenario: &str, clients: usize);
}

impl Row for Stats {
    fn print(&self, scenario: &str, clients: usize) {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        let rate = (self.samples.len() + self.errors) as f64 / self.wall.as_secs_f64();
        println!(
            "{scenario:<34} {clients:>7} {:>8} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8.1}",
            self.samples.len(),
            self.errors,
            ms(self.pct(0.50)),
            ms(self.pct(0.90)),
            ms(self.pct(0.99)),
            ms(self.pct(1.0)),
            rate
        );
    }
}

fn header(title: &str) {
    println!("\n## {title}\n");
    println!(
        "{:<34} {:>7} {:>8} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "scenario", "clients", "requests", "err", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s"
    );
}

/// `total` requests (or until `limit` passes) from `clients` concurrent loops;
/// a request answering anything but `expect` counts as an error.
async fn load(
    make: &MakeRequest,
    expect: u16,
    clients: usize,
    total: usize,
    limit: Duration,
) -> Stats {
    let issued = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (make, issued) = (make.clone(), issued.clone());
            tokio::spawn(async move {
                let (mut samples, mut errors) = (Vec::new(), 0);
                while issued.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                    let t = Instant::now();
                    let ok = match make().send().await {
                        Ok(resp) => resp.status().as_u16() == expect && resp.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        samples.push(t.elapsed())
                    } else {
                        errors += 1
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let mut stats = Stats {
        samples: Vec::new(),
        errors: 0,
        wall: Duration::ZERO,
    };
    for t in tasks {
        let (s, e) = t.await.expect("load task");
        stats.samples.extend(s);
        stats.errors += e;
    }
    stats.wall = start.elapsed();
    stats.samples.sort();
    stats
}

/// CPU time (user + system) a process has used so far, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces); utime and stime are
    // fields 14 and 15, in USER_HZ ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    f.get(11)
        .zip(f.get(12))
        .map_or(f64::NAN, |(u, s)| (u + s) * 10.0)
}

/// CPU of nats-server, the API, all agents and this benchmark (the HTTP clients).
fn cpu_snapshot(stack: &Stack) -> [f64; 4] {
    let nats = stack.nats.sup.as_ref().map_or(0, |s| s.pid());
    let agents = stack.agents.iter().map(|(_, p)| cpu_ms(p.child.id())).sum();
    [
        cpu_ms(nats),
        cpu_ms(stack.api.child.id()),
        agents,
        cpu_ms(std::process::id()),
    ]
}

/// A warm-up (not reported), then the measured run, then where its CPU went.
async fn measure(
    stack: &Stack,
    scenario: &str,
    make: &MakeRequest,
    expect: u16,
    clients: usize,
    total: usize,
) {
    load(
        make,
        expect,
        clients,
        (total / 10).max(clients),
        Duration::from_secs(10),
    )
    .await;
    let before = cpu_snapshot(stack);
    let stats = load(make, expect, clients, total, Duration::from_secs(30)).await;
    let after = cpu_snapshot(stack);
    stats.print(scenario, clients);
    let per = |i: usize| (after[i] - before[i]) / stats.samples.len().max(1) as f64;
    println!(
        "{:<34} CPU ms/request: nats-server {:.2}, api {:.2}, agents {:.2}, bench client {:.2}",
        "",
        per(0),
        per(1),
        per(2),
        per(3)
    );
}

fn get(stack: &Stack, path: &str, token: &str) -> MakeRequest {
    let (http, url, token) = (stack.http.clone(), stack.url(path), token.to_owned());
    Arc::new(move || http.get(&url).bearer_auth(&token))
}

/// VmRSS and its anonymous part (heap, stacks) of a process, in MiB.
fn rss_text(pid: u32) -> String {
    let (rss, anon) = rss_mib(pid);
    format!("{rss:>5.1} MiB (anon {anon:>5.1})")
}

/// RSS of the API, the first agent and nats-server after `idle` without requests.
async fn print_rss(stack: &Stack, when: &str, idle: Duration) {
    tokio::time::sleep(idle).await;
    let nats = stack.nats.sup.as_ref().map_or(0, |s| s.pid());
    println!(
        "RSS {when:<30} api {}  agent {}  nats-server {}",
        rss_text(stack.api.child.id()),
        rss_text(stack.agents[0].1.child.id()),
        rss_text(nats)
    );
}

/// Synchronous `GET /node/hostname` through API → NATS → one real agent → API,
/// then `_all` to 10 agents; RSS idle before and after the load.
async fn hostname_pipeline() {
    let mut stack = Stack::start_with(&[AgentSpec::real("bench-01")], unlimited()).await;
    let token = stack.token(&["admin"]);
    print_rss(&stack, "idle after start (1 agent)", Duration::from_secs(5)).await;

    header("GET /api/v1/node/hostname (sync, _any, 1 real agent, max_jobs 10)");
    // Floors: HTTP and auth alone, then the API's half of a job (KV create +
    // JetStream publish, no waiting; the agent still runs each job meanwhile).
    let version = get(&stack, "/api/v1/version", &token);
    measure(&stack, "version (HTTP floor)", &version, 200, 1, 2000).await;
    let submit = get(&stack, "/api/v1/node/hostname?async=true", &token);
    measure(&stack, "hostname async=true (202)", &submit, 202, 1, 2000).await;
    let any = get(&stack, "/api/v1/node/hostname", &token);
    for clients in [1, 8, 64] {
        measure(&stack, "hostname _any", &any, 200, clients, 2000).await;
    }
    print_rss(
        &stack,
        "idle 5 s after the _any load",
        Duration::from_secs(5),
    )
    .await;

    for i in 2..=10 {
        stack
            .add_agent(AgentSpec::real(&format!("bench-{i:02}")))
            .await;
    }
    let (status, body) = stack
        .get_json("/api/v1/node/hostname?target=_all", &token)
        .await;
    let answered = body["results"].as_array().map_or(0, Vec::len);
    assert!(
        status == 200 && answered == 10,
        "_all answered by {answered} agents: {body}"
    );
    header("GET /api/v1/node/hostname?target=_all (sync, 10 real agents)");
    let all = get(&stack, "/api/v1/node/hostname?target=_all", &token);
    for clients in [1, 8] {
        measure(&stack, "hostname _all (10 agents)", &all, 200, clients, 500).await;
    }
    print_rss(
        &stack,
        "idle 5 s after the _all load",
        Duration::from_secs(5),
    )
    .await;
    let newest = stack.agents.last().map(|(_, p)| p.child.id()).unwrap_or(0);
    println!(
        "RSS of an agent that only ran _all jobs: {}",
        rss_text(newest)
    );
    // Agents give back the code their jobs touched within a minute of their last job.
    print_rss(
        &stack,
        "idle 65 s after the _all load",
        Duration::from_secs(60),
    )
    .await;
    println!(
        "RSS of an agent that only ran _all jobs: {}",
        rss_text(newest)
    );
}

/// Create `count` jobs with `POST /jobs` (64 in flight), wait until the newest
/// is completed, and check that the newest 500 all are.
async fn create_jobs(stack: &Stack, token: &str, count: usize) {
    let (http, url, bearer) = (
        stack.http.clone(),
        stack.url("/api/v1/jobs"),
        token.to_owned(),
    );
    let body = json!({"operation": {"type": "node.hostname.get"}, "timeout": "1h"});
    let make: MakeRequest = Arc::new(move || http.post(&url).bearer_auth(&bearer).json(&body));
    let start = Instant::now();
    let stats = load(&make, 201, 64, count, Duration::from_secs(300)).await;
    stats.print("POST /jobs (async create)", 64);
    assert_eq!(stats.errors, 0, "job creation failed");
    let (_, page) = stack.get_json("/api/v1/jobs?limit=1", token).await;
    let newest = format!(
        "/api/v1/jobs/{}",
        page["jobs"][0]["id"].as_str().expect("a job")
    );
    wait_for("the jobs to complete", Duration::from_secs(600), || async {
        let (_, job) = stack.get_json(&newest, token).await;
        (job["status"] == "completed").then_some(())
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  {count} jobs created and completed in {secs:.2} s ({:.0} jobs/s end to end)",
        count as f64 / secs
    );
    // The first look at the newest 500 jobs: nothing cached about them yet.
    let cold = Instant::now();
    let (_, s) = stack.get_json("/api/v1/jobs/stats", token).await;
    println!(
        "  first GET /jobs/stats (views up to 500 jobs, none cached): {:.1} ms",
        cold.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(
        s["by_status"].as_object().map(|m| m.len()),
        Some(1),
        "not all completed: {s}"
    );
}

/// `GET /jobs?limit=50` with 100 and with 10,000 jobs stored.
async fn job_listing() {
    let stack = Stack::start_with(
        &[AgentSpec::real("sim-01").simulate(Duration::ZERO)],
        unlimited(),
    )
    .await;
    let token = stack.token(&["admin"]);
    let list = get(&stack, "/api/v1/jobs?limit=50", &token);
    // Nothing fails, so this filter inspects the most a listing may (500 jobs).
    let failed = get(&stack, "/api/v1/jobs?limit=50&status=failed", &token);
    header("Job creation and GET /api/v1/jobs (1 simulated agent, zero delay)");
    let mut stored = 0;
    for target in [100, 10_000] {
        create_jobs(&stack, &token, target - stored).await;
        stored = target;
        measure(
            &stack,
            &format!("GET /jobs?limit=50 ({target} jobs)"),
            &list,
            200,
            1,
            50,
        )
        .await;
        measure(
            &stack,
            &format!("  &status=failed ({target} jobs)"),
            &failed,
            200,
            1,
            50,
        )
        .await;
    }
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("osapi pipeline benchmark — {}; {cpus} CPUs", nats_version());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `cargo bench --bench pipeline -- listing` runs one scenario.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    rt.block_on(async {
        if wanted("hostname") {
            hostname_pipeline().await;
        }
        if wanted("listing") {
            job_listing().await;
        }
    });
}
