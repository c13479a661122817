//! The standard `process_*` metrics, read from `/proc/self` at scrape time.
//!
//! Written here rather than taken from the prometheus crate's `process` feature,
//! which pulls in `procfs` (and its dependencies) for four numbers.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::{MetricsError, family};

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
    ticks_per_second: f64,
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
            ticks_per_second: sysconf(nix::unistd::SysconfVar::CLK_TCK, 100.0),
            page_size: sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096.0),
        })
    }
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    rss_pages: u64,
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may contain spaces and parentheses: the fields we
    // want are counted from after its last ')'. Field 3 (state) is index 0 there.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        rss_pages: field(24)?,
    })
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let [cpu, rss, fds, start] = &self.descs;
        let mut out = Vec::new();
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            let tps = self.ticks_per_second;
            out.push(family(
                cpu,
                MetricType::COUNTER,
                (stat.utime + stat.stime) as f64 / tps,
            ));
            out.push(family(
                rss,
                MetricType::GAUGE,
                stat.rss_pages as f64 * self.page_size,
            ));
            if let Some(at) = crate::provider::procfs::started_at("self") {
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
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (osapi (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 8 0 123456 987654321 2500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 150,
                stime: 50,
                rss_pages: 2500
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let c = ProcessCollector::new().unwrap();
        let names: Vec<String> = c.collect().iter().map(|f| f.name().to_owned()).collect();
        for want in [CPU.0, RSS.0, FDS.0, START.0] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
    }
}
