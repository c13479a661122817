//! Journal benchmark: the agent's journal reader (`provider::journal`, the
//! pure-Rust `sdjournal`) against `journalctl -o json`, on the same entries.
//! Prints figures, asserts nothing. Results: docs/benchmarks.md.
//!
//! `cargo bench --bench journal`. Writes ENTRIES lines under an identifier of
//! its own through the real journald (the harness starts one when none
//! runs), then times: the newest 100 by identifier; the newest 100 by
//! identifier with a text match that only the oldest entry has (a scan of
//! every entry of the identifier); and the same through journalctl. Memory
//! is the bench process's peak RSS (VmHWM) before and after the reads.

#![allow(dead_code)]

#[path = "support/mod.rs"]
mod common;
#[path = "../tests/integration/harness.rs"]
mod harness;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use osapi::job::LogQuery;
use osapi::provider::LogProvider;
use osapi::provider::journal::JournalFiles;

const ENTRIES: usize = 20_000;
const ROUNDS: usize = 20;

fn hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// The median of `ROUNDS` runs of `f`.
fn median(mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[ROUNDS / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _journal = harness::journald();
    let id = format!(
        "osapi-bench{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    );
    // One systemd-cat, one line per entry: the first is the only "needle".
    let mut cat = Command::new("systemd-cat")
        .args(["-t", &id])
        .stdin(Stdio::piped())
        .spawn()
        .expect("systemd-cat");
    {
        let mut stdin = cat.stdin.take().expect("stdin");
        for i in 0..ENTRIES {
            let word = if i == 0 { "needle" } else { "hay" };
            writeln!(stdin, "bench entry {i} {word} {}", "x".repeat(80)).expect("write");
        }
    }
    cat.wait().expect("systemd-cat ends");
    let reader = JournalFiles::new();
    let by_id = LogQuery {
        identifier: Some(id.clone()),
        limit: Some(100),
        ..Default::default()
    };
    // journald stores on its own time.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = LogQuery {
            limit: Some(1000),
            grep: Some("needle".into()),
            ..by_id.clone()
        };
        let found = reader
            .query(&all)
            .await
            .map(|a| a.entries.len())
            .unwrap_or(0);
        if found == 1 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = hwm_mib();
    let rt = tokio::runtime::Handle::current();
    let run = |q: LogQuery| {
        let (reader, rt) = (reader.clone(), rt.clone());
        move || {
            let answer = tokio::task::block_in_place(|| rt.block_on(reader.query(&q)));
            assert!(answer.is_ok(), "{answer:?}");
        }
    };
    let newest = median(run(by_id.clone()));
    let scan = median(run(LogQuery {
        grep: Some("needle".into()),
        ..by_id.clone()
    }));
    let after = hwm_mib();
    let journalctl = |extra: &[&str]| {
        let id = id.clone();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        move || {
            let out = Command::new("journalctl")
                .args(["-t", &id, "-o", "json", "-r", "-n", "100", "--no-pager"])
                .args(&extra)
                .output()
                .expect("journalctl");
            assert!(out.status.success());
        }
    };
    let jc_newest = median(journalctl(&[]));
    let jc_scan = median(journalctl(&["--grep", "needle"]));
    println!("journal: {ENTRIES} entries under one identifier, median of {ROUNDS} runs");
    println!(
        "  newest 100 by identifier:        sdjournal {} ms   journalctl -o json {} ms",
        ms(newest),
        ms(jc_newest)
    );
    println!(
        "  scan of all {ENTRIES} for a text:   sdjournal {} ms ({:.0} entries/s)   journalctl --grep {} ms",
        ms(scan),
        ENTRIES as f64 / scan.as_secs_f64(),
        ms(jc_scan)
    );
    println!("  bench process peak RSS: {before:.1} MiB before the reads, {after:.1} MiB after");
}
