//! Helpers shared by the benchmark binaries: latency statistics, process memory,
//! and which nats-server is measured.

use std::time::Duration;

/// Latencies of one measured run.
pub struct Stats {
    pub samples: Vec<Duration>,
    pub errors: usize,
    pub wall: Duration,
}

impl Stats {
    /// The `p` quantile (0.0–1.0) of the sorted samples.
    pub fn pct(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.samples.len() as f64 * p).ceil() as usize).clamp(1, self.samples.len()) - 1;
        self.samples[i]
    }
}

/// A process's resident memory in MiB: (`VmRSS`, its anonymous part `RssAnon`).
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN);
        kib / 1024.0
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// The nats-server under test (`TEST_NATS_SERVER`) and its version line.
pub fn nats_version() -> String {
    let binary = std::env::var("TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let out = std::process::Command::new(&binary)
        .arg("--version")
        .output();
    let version = out
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| e.to_string());
    format!("{binary}: {version}")
}

/// Stack options for load: one token drives every client, so the per-principal
/// cap on jobs in flight (16 by default) is lifted.
#[allow(dead_code)]
pub fn unlimited() -> crate::harness::StackOptions {
    crate::harness::StackOptions {
        api_env: vec![(
            "OSAPI_API_SERVER_MAX_JOBS_IN_FLIGHT".into(),
            "1000000".into(),
        )],
        ..Default::default()
    }
}
