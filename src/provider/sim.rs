//! Simulated providers: a **test and benchmark aid**, never for production.
//!
//! [`SimProviders::new`] builds a [`Providers`] whose hostname and host-info methods
//! return plausible, fixed data for the given hostname after sleeping a chosen
//! delay. That lets pipeline tests and benchmarks run many agents on one machine,
//! each with its own name, and create deliberately slow jobs, without reading the
//! host. Setting the hostname only changes the name kept in memory (and what
//! `status()` reports). Commands are not run: they take `delay` and report
//! `simulated` on stdout, so tests can have slow command jobs. DNS and ping are
//! [`Unsupported`].
//!
//! The agent uses these providers when started with `--simulate DELAY`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::procfs::humanize_duration;
use super::{
    BoxFuture, CommandExec, CommandJob, CommandProvider, CommandResult, CommandShell, DiskInfo,
    HostInfoProvider, HostnameChange, HostnameInfo, HostnameProvider, HostnameSet, HostnameSource,
    KernelInfo, LoadInfo, MemoryInfo, NodeStatus, OsInfo, ProviderResult, Providers, Unsupported,
    UptimeInfo, percent,
};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// Constructor of the simulated provider set (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct SimProviders;

impl SimProviders {
    /// Providers answering as host `hostname`, each call taking `delay`.
    // Returns the `Providers` bundle rather than `Self`: the simulation has no
    // state of its own worth exposing, and the agent only takes a `Providers`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(hostname: String, delay: Duration) -> Providers {
        let names = Arc::new(Mutex::new(Names {
            hostname,
            pretty: None,
        }));
        Providers {
            hostname: Arc::new(SimHostname {
                names: Arc::clone(&names),
                delay,
            }),
            host_info: Arc::new(SimHostInfo { names, delay }),
            dns: Arc::new(Unsupported),
            ping: Arc::new(Unsupported),
            command: Arc::new(SimCommand { delay }),
            service: Arc::new(Unsupported),
            clock: Arc::new(Unsupported),
            log: Arc::new(Unsupported),
            power: Arc::new(Unsupported),
            sysctl: Arc::new(Unsupported),
            trust: Arc::new(Unsupported),
            users: Arc::new(Unsupported),
            interfaces: Arc::new(Unsupported),
            reach: Arc::default(),
            files: Arc::new(Unsupported),
            packages: Arc::new(Unsupported),
            file_source: Arc::default(),
            processes: Arc::new(Unsupported),
        }
    }
}

/// The names a simulated host has; shared so `status()` sees a changed hostname.
#[derive(Debug)]
struct Names {
    hostname: String,
    pretty: Option<String>,
}

type SharedNames = Arc<Mutex<Names>>;

fn current(names: &SharedNames) -> HostnameInfo {
    // A panic elsewhere while holding the lock leaves plain strings behind: still
    // valid, so poisoning is ignored rather than propagated.
    let names = names.lock().unwrap_or_else(PoisonError::into_inner);
    HostnameInfo {
        hostname: names.hostname.clone(),
        static_hostname: Some(names.hostname.clone()),
        pretty_hostname: names.pretty.clone(),
        source: HostnameSource::Hostnamed,
    }
}

async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

#[derive(Debug)]
struct SimHostname {
    names: SharedNames,
    delay: Duration,
}

impl HostnameProvider for SimHostname {
    fn get(&self) -> BoxFuture<'_, ProviderResult<HostnameInfo>> {
        Box::pin(async move {
            pause(self.delay).await;
            Ok(current(&self.names))
        })
    }

    fn set<'a>(&'a self, change: &'a HostnameSet) -> BoxFuture<'a, ProviderResult<HostnameChange>> {
        Box::pin(async move {
            change.validate()?;
            pause(self.delay).await;
            let before = current(&self.names);
            let after = change.predict(&before);
            if !change.dry_run {
                let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
                names.hostname.clone_from(&change.hostname);
                if change.pretty.is_some() {
                    names.pretty.clone_from(&change.pretty);
                }
            }
            Ok(HostnameChange {
                changed: after != before,
                dry_run: change.dry_run,
                before,
                after,
            })
        })
    }
}

#[derive(Debug)]
struct SimHostInfo {
    names: SharedNames,
    delay: Duration,
}

fn sim_os() -> OsInfo {
    OsInfo {
        name: "Debian GNU/Linux".to_string(),
        id: "debian".to_string(),
        version_id: Some("12".to_string()),
        pretty_name: "Debian GNU/Linux 12 (bookworm)".to_string(),
        kernel: KernelInfo {
            name: "Linux".to_string(),
            release: "6.1.0-sim-amd64".to_string(),
            machine: "x86_64".to_string(),
        },
    }
}

fn sim_uptime() -> UptimeInfo {
    let seconds = 3 * 86_400 + 2 * 3_600 + 5 * 60;
    UptimeInfo {
        seconds,
        human: humanize_duration(seconds),
    }
}

fn sim_load() -> LoadInfo {
    LoadInfo {
        load1: 0.15,
        load5: 0.10,
        load15: 0.05,
        running_tasks: 1,
        total_tasks: 180,
    }
}

fn sim_memory() -> MemoryInfo {
    let total = 8 * GIB;
    let available = 6 * GIB;
    let swap_total = 2 * GIB;
    let swap_used = 0;
    MemoryInfo {
        total_bytes: total,
        available_bytes: available,
        used_bytes: total - available,
        free_bytes: 4 * GIB,
        buffers_bytes: Some(256 * MIB),
        cached_bytes: Some(1536 * MIB),
        swap_total_bytes: swap_total,
        swap_used_bytes: swap_used,
        swap_free_bytes: swap_total - swap_used,
        used_percent: percent(total - available, total),
        swap_used_percent: percent(swap_used, swap_total),
    }
}

fn sim_disks() -> Vec<DiskInfo> {
    // 40 GiB root with 2 GiB reserved for root, as ext4 would have.
    let (total, used, free) = (40 * GIB, 10 * GIB, 28 * GIB);
    vec![DiskInfo {
        mount_point: "/".to_string(),
        device: "/dev/vda1".to_string(),
        fs_type: "ext4".to_string(),
        total_bytes: total,
        used_bytes: used,
        free_bytes: free,
        used_percent: percent(used, used + free),
    }]
}

impl HostInfoProvider for SimHostInfo {
    fn os(&self) -> BoxFuture<'_, ProviderResult<OsInfo>> {
        Box::pin(async move {
            pause(self.delay).await;
            Ok(sim_os())
        })
    }

    fn uptime(&self) -> BoxFuture<'_, ProviderResult<UptimeInfo>> {
        Box::pin(async move {
            pause(self.delay).await;
            Ok(sim_uptime())
        })
    }

    fn load(&self) -> BoxFuture<'_, ProviderResult<LoadInfo>> {
        Box::pin(async move {
            pause(self.delay).await;
            Ok(sim_load())
        })
    }

    fn memory(&self) -> BoxFuture<'_, ProviderResult<MemoryInfo>> {
        Box::pin(async move {
            pause(self.delay).await;
            Ok(sim_memory())
        })
    }

    fn disks(&self) -> BoxFuture<'_, ProviderResult<Vec<DiskInfo>>> {
        Box::pin(async move {
            pause(self.delay).await;
            Ok(sim_disks())
        })
    }

    fn status(&self) -> BoxFuture<'_, ProviderResult<NodeStatus>> {
        Box::pin(async move {
            // One delay for the whole status, like one job's worth of work.
            pause(self.delay).await;
            Ok(NodeStatus {
                hostname: current(&self.names).hostname,
                uptime: sim_uptime(),
                os: sim_os(),
                load: sim_load(),
                memory: sim_memory(),
                disks: sim_disks(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::provider::ProviderError;

    #[tokio::test]
    async fn answers_as_the_given_host_and_keeps_a_new_name() {
        let p = SimProviders::new("sim-01".to_string(), Duration::ZERO);
        let got = p.hostname.get().await;
        assert_eq!(got.ok().map(|h| h.hostname), Some("sim-01".to_string()));

        let change = HostnameSet {
            hostname: "sim-02".into(),
            pretty: Some("Sim two".into()),
            dry_run: false,
        };
        let set = p.hostname.set(&change).await;
        let Ok(set) = set else { panic!("{set:?}") };
        assert_eq!(set.after.hostname, "sim-02");
        assert_eq!(set.after.pretty_hostname.as_deref(), Some("Sim two"));

        let status = p.host_info.status().await;
        let Ok(status) = status else {
            panic!("{status:?}")
        };
        assert_eq!(status.hostname, "sim-02");
        assert_eq!(status.memory.used_percent, 25.0);
        assert_eq!(status.disks.len(), 1);
        assert_eq!(status.uptime.human, "3 days, 2 hours, 5 minutes");

        let bad = HostnameSet {
            hostname: "bad name".into(),
            pretty: None,
            dry_run: false,
        };
        assert!(matches!(
            p.hostname.set(&bad).await,
            Err(ProviderError::Invalid(_))
        ));
        assert!(matches!(
            p.dns.get("eth0").await,
            Err(ProviderError::Unsupported { .. })
        ));
    }

    #[tokio::test]
    async fn calls_take_the_delay() {
        let delay = Duration::from_millis(50);
        let p = SimProviders::new("slow".to_string(), delay);
        let start = Instant::now();
        let mem = p.host_info.memory().await;
        assert!(mem.is_ok());
        assert!(start.elapsed() >= delay);
    }
}

/// Commands that are never run: each takes `delay` and "succeeds".
#[derive(Debug)]
struct SimCommand {
    delay: Duration,
}

impl SimCommand {
    async fn pretend(&self) -> ProviderResult<CommandResult> {
        tokio::time::sleep(self.delay).await;
        Ok(CommandResult {
            stdout: "simulated\n".to_owned(),
            stderr: String::new(),
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            cancelled: false,
            truncated_stdout: false,
            truncated_stderr: false,
            duration_ms: u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
            runner: super::CommandRunner::Child,
            unit: None,
        })
    }
}

impl CommandProvider for SimCommand {
    fn exec<'a>(
        &'a self,
        _request: &'a CommandExec,
        _job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        Box::pin(self.pretend())
    }

    fn shell<'a>(
        &'a self,
        _request: &'a CommandShell,
        _job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        Box::pin(self.pretend())
    }
}
