//! Processes, read from `/proc` and signalled with kill(2).
//!
//! Each process: pid, parent, user (through NSS), command line, state, CPU
//! time, resident memory, start time and the systemd unit whose cgroup holds
//! it. A signal goes to one process; PID 1 (refused by the job's own rules)
//! and the agent itself need `force`. A process that ends while it is read
//! is left out of a list, and `not_found` for a get or a signal.

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::procfs::ProcStat;
use super::{BoxFuture, ProviderError, ProviderResult};
use crate::job::{ProcessList, ProcessSignal};

/// The most processes one list answers.
const MAX_LIST: usize = 5000;

/// One process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Its user's name, or the uid when NSS knows no name.
    pub user: String,
    /// The command name (`comm`).
    pub name: String,
    /// The command line; the name in brackets for a kernel thread.
    pub command: String,
    /// `R` running, `S` sleeping, `D` in I/O, `Z` zombie, `T` stopped, …
    pub state: String,
    /// CPU time used, user and system.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<OffsetDateTime>,
    /// The systemd unit whose cgroup holds it, e.g. `ssh.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The result of `process.list`, by pid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct Processes(pub Vec<ProcessInfo>);

/// What `process.signal` did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ProcessSignalled {
    pub signal: String,
    /// Whether the signal was (or, in a dry run, would be) sent.
    pub changed: bool,
    pub dry_run: bool,
    /// The process as it was before.
    pub process: ProcessInfo,
}

/// Reads and signals processes.
pub trait ProcessProvider: Send + Sync {
    fn list<'a>(&'a self, query: &'a ProcessList) -> BoxFuture<'a, ProviderResult<Processes>>;
    fn get(&self, pid: u32) -> BoxFuture<'_, ProviderResult<ProcessInfo>>;
    fn signal<'a>(
        &'a self,
        request: &'a ProcessSignal,
    ) -> BoxFuture<'a, ProviderResult<ProcessSignalled>>;
}

/// Processes of this host's `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct ProcProcesses {
    /// The agent's process, which only a forced signal reaches: this
    /// process, or the agent that started this one as its root helper.
    agent_pid: u32,
}

impl ProcProcesses {
    /// For the agent in this process.
    pub fn new() -> Self {
        ProcProcesses::for_agent(std::process::id())
    }

    /// For the agent `agent_pid` (a root helper's).
    pub fn for_agent(agent_pid: u32) -> Self {
        ProcProcesses { agent_pid }
    }
}

impl Default for ProcProcesses {
    fn default() -> Self {
        ProcProcesses::new()
    }
}

fn not_found(pid: u32) -> ProviderError {
    ProviderError::NotFound {
        what: "process",
        name: pid.to_string(),
    }
}

/// The unit of a process from its `/proc/PID/cgroup`: the last part of the
/// systemd path that names a service or a scope.
fn unit_of(cgroup: &str) -> Option<String> {
    let path = cgroup.lines().find_map(|l| {
        l.strip_prefix("0::")
            .or_else(|| l.split_once(":name=systemd:").map(|(_, p)| p))
    })?;
    path.rsplit('/')
        .find(|part| part.ends_with(".service") || part.ends_with(".scope"))
        .map(str::to_owned)
}

fn read_process(pid: u32) -> ProviderResult<ProcessInfo> {
    let dir = Path::new("/proc").join(pid.to_string());
    let read = |file: &str| std::fs::read(dir.join(file)).map_err(|_| not_found(pid));
    let stat = ProcStat::read(&pid.to_string()).ok_or_else(|| not_found(pid))?;
    let status = String::from_utf8_lossy(&read("status")?).into_owned();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(u32::MAX);
    let user = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let cmdline = read("cmdline").unwrap_or_default();
    let command = if cmdline.is_empty() {
        format!("[{}]", stat.name)
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |v| v as u64);
    let started_at = stat
        .started_at()
        .and_then(|s| OffsetDateTime::from_unix_timestamp_nanos((s * 1e9) as i128).ok());
    let unit = read("cgroup")
        .ok()
        .and_then(|c| unit_of(&String::from_utf8_lossy(&c)));
    Ok(ProcessInfo {
        pid,
        ppid: stat.ppid,
        user,
        command,
        cpu_seconds: stat.cpu_seconds(),
        rss_bytes: stat.rss_pages * page,
        name: stat.name,
        state: stat.state,
        started_at,
        unit,
    })
}

impl ProcessProvider for ProcProcesses {
    fn list<'a>(&'a self, query: &'a ProcessList) -> BoxFuture<'a, ProviderResult<Processes>> {
        Box::pin(async move {
            let query = query.clone();
            tokio::task::spawn_blocking(move || {
                let dir = std::fs::read_dir("/proc")
                    .map_err(|e| ProviderError::io("listing /proc", e))?;
                let mut pids: Vec<u32> = dir
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                    .collect();
                pids.sort_unstable();
                let all = pids
                    .into_iter()
                    // Gone since the directory was read: not listed.
                    .filter_map(|pid| read_process(pid).ok())
                    .filter(|p| query.user.as_ref().is_none_or(|u| *u == p.user))
                    .filter(|p| {
                        query
                            .name
                            .as_ref()
                            .is_none_or(|n| p.name.contains(n.as_str()))
                    })
                    .take(MAX_LIST)
                    .collect();
                Ok(Processes(all))
            })
            .await
            .map_err(|e| ProviderError::io("listing /proc", std::io::Error::other(e)))?
        })
    }

    fn get(&self, pid: u32) -> BoxFuture<'_, ProviderResult<ProcessInfo>> {
        Box::pin(async move { read_process(pid) })
    }

    fn signal<'a>(
        &'a self,
        request: &'a ProcessSignal,
    ) -> BoxFuture<'a, ProviderResult<ProcessSignalled>> {
        Box::pin(async move {
            let name = request.signal_name()?;
            let process = read_process(request.pid)?;
            if request.pid == self.agent_pid && !request.force && !request.dry_run {
                return Err(ProviderError::invalid(
                    "force",
                    "that is the agent itself: set force to signal it anyway",
                ));
            }
            let signal: Signal = format!("SIG{name}")
                .parse()
                .map_err(|_| ProviderError::invalid("signal", name))?;
            let result = ProcessSignalled {
                signal: name.to_owned(),
                changed: true,
                dry_run: request.dry_run,
                process,
            };
            if request.dry_run {
                return Ok(result);
            }
            let pid = i32::try_from(request.pid).map_err(|_| not_found(request.pid))?;
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) => Ok(result),
                Err(nix::errno::Errno::ESRCH) => Err(not_found(request.pid)),
                Err(e) => Err(ProviderError::PermissionDenied {
                    operation: "process.signal",
                    detail: format!("kill({pid}, {name}): {e}"),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_comes_from_the_cgroup() {
        assert_eq!(unit_of("0::/\n"), None);
        assert_eq!(
            unit_of("0::/system.slice/osapi-agent.service\n").as_deref(),
            Some("osapi-agent.service")
        );
        assert_eq!(
            unit_of("1:name=systemd:/user.slice/user-0.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit_of("0::/system.slice/foo.service/payload\n").as_deref(),
            Some("foo.service")
        );
    }

    #[tokio::test]
    async fn this_process_reads() {
        let me = ProcProcesses::new().get(std::process::id()).await.unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(me.rss_bytes > 0 && me.started_at.is_some(), "{me:?}");
        assert!(matches!(
            ProcProcesses::new().get(4_194_304).await,
            Err(ProviderError::NotFound { .. })
        ));
    }
}
