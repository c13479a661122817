//! Fleet benchmark: a broadcast (`_all`) to 10, 50 and 100 agent processes and
//! the time until every result is in. Prints figures; results in
//! docs/benchmarks.md.
//!
//! `cargo bench --bench fleet` (`TEST_NATS_SERVER` picks the nats-server binary).
//! Everything runs on loopback through the integration-test harness: a real
//! nats-server, the `osapi` API process and one `osapi node agent start` process
//! per agent, with simulated providers that answer at once, so the figures are
//! the job system's own cost. Each run is bounded by a request count.

#![allow(dead_code)]

#[path = "support/mod.rs"]
mod common;
#[path = "../tests/integration/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use common::{Stats, nats_version};
use harness::{AgentSpec, Stack};

/// VmRSS in MiB.
fn rss_mib(pid: u32) -> f64 {
    common::rss_mib(pid).0
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// `rounds` broadcasts, `clients` at a time; each sample is one synchronous
/// `GET /node/hostname?target=_all`, which answers when every agent has.
async fn broadcasts(
    stack: &Stack,
    token: &str,
    agents: usize,
    clients: usize,
    rounds: usize,
) -> Stats {
    use futures::StreamExt;
    let begun = Instant::now();
    let url = stack.url("/api/v1/node/hostname?target=_all");
    let results = futures::stream::iter(0..rounds)
        .map(|_| {
            let req = stack.http.get(&url).bearer_auth(token);
            async move {
                let started = Instant::now();
                let body: Option<serde_json::Value> = match req.send().await {
                    Ok(r) if r.status() == 200 => r.json().await.ok(),
                    _ => None,
                };
                let complete = body.is_some_and(|b| {
                    b["status"] == "completed"
                        && b["results"].as_array().is_some_and(|r| r.len() == agents)
                });
                complete.then(|| started.elapsed())
            }
        })
        .buffer_unordered(clients)
        .collect::<Vec<_>>()
        .await;
    let errors = results.iter().filter(|r| r.is_none()).count();
    let mut samples: Vec<Duration> = results.into_iter().flatten().collect();
    samples.sort();
    Stats {
        samples,
        errors,
        wall: begun.elapsed(),
    }
}

async fn fleet(agents: usize) {
    let mut stack = Stack::start_with(&[], common::unlimited()).await;
    let specs: Vec<AgentSpec> = (0..agents)
        .map(|i| AgentSpec::real(&format!("sim-{i:03}")).simulate(Duration::ZERO))
        .collect();
    let started = Instant::now();
    stack.add_agents(&specs).await;
    let joined = started.elapsed();
    let token = stack.token(&["admin"]);
    // Warm-up: consumers pulling, connections open, caches filled.
    broadcasts(&stack, &token, agents, 1, 5).await;
    let rounds = (10_000 / agents).clamp(100, 300);
    for clients in [1, 4] {
        let s = broadcasts(&stack, &token, agents, clients, rounds).await;
        println!(
            "{agents:>6} {clients:>7} {:>7} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8.1}",
            s.samples.len(),
            s.errors,
            ms(s.pct(0.50)),
            ms(s.pct(0.90)),
            ms(s.pct(0.99)),
            ms(s.pct(1.0)),
            s.samples.len() as f64 / s.wall.as_secs_f64(),
        );
    }
    let agent_rss: Vec<f64> = stack
        .agents
        .iter()
        .map(|(_, p)| rss_mib(p.child.id()))
        .collect();
    let nats = stack.nats.sup.as_ref().map_or(0, |s| s.pid());
    println!(
        "       {agents} agents live after {:.1}s; RSS: api {:.1} MiB, nats-server {:.1} MiB, agents {:.1} MiB each (mean)",
        joined.as_secs_f64(),
        rss_mib(stack.api.child.id()),
        rss_mib(nats),
        agent_rss.iter().sum::<f64>() / agent_rss.len().max(1) as f64,
    );
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("osapi fleet benchmark — {}; {cpus} CPUs", nats_version());
    println!("\n## Broadcast (_all) until every result is in (simulated agents, zero delay)\n");
    println!(
        "{:>6} {:>7} {:>7} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "agents", "clients", "jobs", "err", "p50 ms", "p90 ms", "p99 ms", "max ms", "jobs/s"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        for agents in [10, 50, 100] {
            fleet(agents).await;
        }
    });
}
