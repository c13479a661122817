//! The standard `process_*` metrics, read from `/proc/self` at scrape time.
//!
//! Written here rather than taken from the prometheus crate's `process` feature,
//! which pulls in `procfs` (and its dependencies) for four numbers.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::{MetricsError, family};
use crate::provider::procfs::ProcStat;

const CPU: (&str, &str) = (
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
);
const RSS: (&str, &str) = (
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
);
const FDS: (&str, &str) = ("process_open_fds", "Number of open file descriptors.");
const START: (&str, &str) = (
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
);

/// Collects this process's CPU time, resident memory, open descriptors and start time.
pub struct ProcessCollector {
    descs: [Desc; 4],
    page_size: f64,
}

impl ProcessCollector {
    pub fn new() -> Result<Self, MetricsError> {
        let desc = |(name, help): (&str, &str)| {
            Desc::new(name.to_owned(), help.to_owned(), Vec::new(), HashMap::new()).map_err(
                |source| MetricsError::Register {
                    name: name.to_owned(),
                    source,
                },
            )
        };
        let sysconf = |var, default: f64| {
            nix::unistd::sysconf(var)
                .ok()
                .flatten()
                .map_or(default, |v| v as f64)
        };
        Ok(ProcessCollector {
            descs: [desc(CPU)?, desc(RSS)?, desc(FDS)?, desc(START)?],
            page_size: sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096.0),
        })
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let [cpu, rss, fds, start] = &self.descs;
        let mut out = Vec::new();
        // One read of /proc/self/stat for the three of them.
        if let Some(stat) = ProcStat::read("self") {
            out.push(family(cpu, MetricType::COUNTER, stat.cpu_seconds()));
            out.push(family(
                rss,
                MetricType::GAUGE,
                stat.rss_pages as f64 * self.page_size,
            ));
            if let Some(at) = stat.started_at() {
                out.push(family(start, MetricType::GAUGE, at));
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            out.push(family(fds, MetricType::GAUGE, dir.count() as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured() {
        let c = ProcessCollector::new().unwrap();
        let names: Vec<String> = c.collect().iter().map(|f| f.name().to_owned()).collect();
        for want in [CPU.0, RSS.0, FDS.0, START.0] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
    }
}
