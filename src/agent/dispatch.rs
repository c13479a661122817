//! Operation → provider: the agent's whole vocabulary in one match, testable with
//! fake providers.
//!
//! The answer is an [`Outcome`]: data, an error, or both. Both is how a command
//! that ran but did not succeed (non-zero exit, killed by a signal, timed out) is
//! reported: the host's result is failed, and the output is still there.
//!
//! [`fit_result`] makes a result fit in one NATS message before it is stored:
//! command output is capped per stream by the agent's `max_output_bytes`, but
//! stdout and stderr together (1 MiB each by default) can exceed the server's
//! `max_payload` (1 MB by default), and a result that cannot be stored would
//! otherwise look like a dead agent and end up `interrupted`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{HostResult, HostStatus, JobError, Operation};
use crate::provider::{
    ClockSetting, CommandJob, CommandResult, PowerAction, Progress, ProviderError, Providers,
    UnitChange,
};

/// What running an operation on this host produced. The host's result is failed
/// exactly when `error` is set; `data` may accompany an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub data: Option<Value>,
    pub error: Option<JobError>,
}

impl Outcome {
    /// Success with data.
    pub fn ok(data: Value) -> Self {
        Outcome {
            data: Some(data),
            error: None,
        }
    }

    /// Failure without data.
    pub fn failed(error: JobError) -> Self {
        Outcome {
            data: None,
            error: Some(error),
        }
    }

    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }
}

fn job_error(code: &str, message: impl Into<String>) -> JobError {
    JobError {
        code: code.into(),
        message: message.into(),
    }
}

pub(super) fn provider_error(e: &ProviderError) -> JobError {
    job_error(e.code(), e.to_string())
}

fn serialize<T: Serialize>(v: &T) -> Result<Value, JobError> {
    serde_json::to_value(v).map_err(|e| job_error("internal", e.to_string()))
}

fn to_outcome<T: Serialize>(r: Result<T, ProviderError>) -> Outcome {
    match r.as_ref().map_err(provider_error).and_then(serialize) {
        Ok(v) => Outcome::ok(v),
        Err(e) => Outcome::failed(e),
    }
}

/// The error code of a job stopped because someone cancelled it.
pub const CANCELLED: &str = "cancelled";

/// A command that ran is a success only when it exited 0; otherwise its output is
/// kept next to the reason (`timed_out`, `signal`, `exit_status`).
fn command_outcome(r: Result<CommandResult, ProviderError>) -> Outcome {
    let result = match r {
        Ok(result) => result,
        Err(e) => return Outcome::failed(provider_error(&e)),
    };
    let error = command_failure(&result);
    match serialize(&result) {
        Ok(data) => Outcome {
            data: Some(data),
            error,
        },
        Err(e) => Outcome::failed(e),
    }
}

/// A unit change whose systemd job did not end `done` is failed, with the
/// change (before, after, the job's result) kept beside the reason.
fn unit_outcome(r: Result<UnitChange, ProviderError>) -> Outcome {
    let change = match r {
        Ok(change) => change,
        Err(e) => return Outcome::failed(provider_error(&e)),
    };
    let error = match change.job_result.as_deref() {
        None | Some("done") => None,
        Some("running") => Some(job_error(
            "unit_job_running",
            format!(
                "systemd's job to {} {} had not ended after {}s; it goes on",
                change.action,
                change.unit,
                crate::provider::systemd1::UNIT_JOB_WAIT.as_secs()
            ),
        )),
        Some(result) => Some(job_error(
            "unit_job_failed",
            format!(
                "systemd's job to {} {} ended {result}",
                change.action, change.unit
            ),
        )),
    };
    match serialize(&change) {
        Ok(data) => Outcome {
            data: Some(data),
            error,
        },
        Err(e) => Outcome::failed(e),
    }
}

/// Why a command that ran counts as failed, if it does.
pub(crate) fn command_failure(r: &CommandResult) -> Option<JobError> {
    if r.cancelled {
        return Some(job_error(
            CANCELLED,
            format!(
                "cancelled on request after {:.1}s; the output is what it printed until then",
                r.duration_ms as f64 / 1000.0
            ),
        ));
    }
    if r.timed_out {
        return Some(job_error(
            "timed_out",
            format!(
                "timed out after {:.1}s; its process group was killed",
                r.duration_ms as f64 / 1000.0
            ),
        ));
    }
    if let Some(sig) = r.signal {
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| format!(" ({})", s.as_str()))
            .unwrap_or_default();
        return Some(job_error("signal", format!("killed by signal {sig}{name}")));
    }
    match r.exit_code {
        Some(0) => None,
        Some(code) => Some(job_error(
            "exit_status",
            format!("exited with status {code}"),
        )),
        None => Some(job_error(
            "exit_status",
            "the command did not report an exit status",
        )),
    }
}

/// Shrinks `result` until its JSON is at most `limit` bytes: the longest string
/// field of `data` is cut (at a character boundary) and its `truncated_<field>`
/// flag set when it has one — for commands, that is stdout or stderr. If cutting
/// strings is not enough, the data is dropped and the result fails with
/// `result_too_large`. Returns whether anything was cut.
pub(crate) fn fit_result(result: &mut HostResult, limit: usize) -> bool {
    let size = |r: &HostResult| serde_json::to_vec(r).map(|v| v.len()).unwrap_or(usize::MAX);
    let mut cut = false;
    // Each round removes at least the excess (a character never serialises shorter
    // than its UTF-8 bytes), so a few rounds suffice; the bound is a safeguard.
    for _ in 0..8 {
        let total = size(result);
        if total <= limit {
            return cut;
        }
        let excess = total - limit;
        let Some(Value::Object(fields)) = result.data.as_mut() else {
            break;
        };
        let longest = fields
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.len())))
            .max_by_key(|(_, len)| *len);
        let Some((key, len)) = longest.filter(|(_, len)| *len > 0) else {
            break;
        };
        if let Some(Value::String(text)) = fields.get_mut(&key) {
            let mut keep = len.saturating_sub(excess);
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            text.truncate(keep);
        }
        if let Some(flag @ Value::Bool(_)) = fields.get_mut(&format!("truncated_{key}")) {
            *flag = Value::Bool(true);
        }
        cut = true;
    }
    if size(result) > limit {
        result.data = None;
        result.error = Some(job_error(
            "result_too_large",
            format!("the result does not fit in one NATS message ({limit} bytes)"),
        ));
        result.status = HostStatus::Failed;
        cut = true;
    }
    cut
}

/// Run one operation on this host; long ones say how far they got through
/// `progress`. A command runs for `job` (see [`CommandJob`]).
pub async fn dispatch(
    op: &Operation,
    p: &Providers,
    progress: &Progress,
    job: CommandJob,
) -> Outcome {
    // Inputs were validated at creation; check again, the agent trusts nothing.
    if let Err(e) = op.validate() {
        return Outcome::failed(job_error("invalid_input", e.to_string()));
    }
    match op {
        Operation::HostnameGet => to_outcome(p.hostname.get().await),
        Operation::HostnameSet(h) => to_outcome(p.hostname.set(h).await),
        Operation::StatusGet => to_outcome(p.host_info.status().await),
        Operation::UptimeGet => to_outcome(p.host_info.uptime().await),
        Operation::OsGet => to_outcome(p.host_info.os().await),
        Operation::DiskGet => to_outcome(p.host_info.disks().await),
        Operation::MemoryGet => to_outcome(p.host_info.memory().await),
        Operation::LoadGet => to_outcome(p.host_info.load().await),
        Operation::InterfaceList => to_outcome(p.interfaces.list().await),
        Operation::InterfaceGet(i) => to_outcome(p.interfaces.get(&i.interface).await),
        Operation::InterfaceSet(s) => to_outcome(p.interfaces.set(s).await),
        Operation::DnsGet(d) => to_outcome(p.dns.get(&d.interface).await),
        Operation::DnsSet(d) => to_outcome(p.dns.set(d).await),
        Operation::Ping(ping) => to_outcome(p.ping.ping(ping).await),
        Operation::CommandExec(c) => command_outcome(p.command.exec(c, job).await),
        Operation::CommandShell(c) => command_outcome(p.command.shell(c, job).await),
        Operation::ServiceList(q) => to_outcome(p.service.list(q).await),
        Operation::ServiceGet(u) => to_outcome(p.service.get(&u.unit).await),
        Operation::ServiceStart(_)
        | Operation::ServiceStop(_)
        | Operation::ServiceRestart(_)
        | Operation::ServiceTryRestart(_)
        | Operation::ServiceReload(_)
        | Operation::ServiceEnable(_)
        | Operation::ServiceDisable(_)
        | Operation::ServiceMask(_)
        | Operation::ServiceUnmask(_) => match op.unit_change() {
            Some((action, c)) => unit_outcome(p.service.change(action, c).await),
            None => Outcome::failed(job_error("internal", "not a unit change")),
        },
        Operation::ClockGet => to_outcome(p.clock.get().await),
        Operation::LogGet(q) => to_outcome(p.log.query(q).await),
        Operation::PowerStatusGet => to_outcome(p.power.status().await),
        Operation::ProcessList(q) => to_outcome(p.processes.list(q).await),
        Operation::ProcessGet(r) => to_outcome(p.processes.get(r.pid).await),
        Operation::ProcessSignal(s) => to_outcome(p.processes.signal(s).await),
        Operation::UserList(l) => to_outcome(p.users.list(l.system).await),
        Operation::UserGet(u) => to_outcome(p.users.get(&u.name).await),
        Operation::UserAdd(a) => to_outcome(p.users.add(a).await),
        Operation::UserModify(a) => to_outcome(p.users.modify(a).await),
        Operation::UserLock(u) => to_outcome(p.users.lock(u, true).await),
        Operation::UserUnlock(u) => to_outcome(p.users.lock(u, false).await),
        Operation::UserDelete(d) => to_outcome(p.users.delete(d).await),
        Operation::UserPasswordSet(pw) => to_outcome(p.users.set_password(pw).await),
        Operation::UserKeyList(u) => to_outcome(p.users.keys(&u.name).await),
        Operation::UserKeyAdd(k) => to_outcome(p.users.change_key(k, true).await),
        Operation::UserKeyRemove(k) => to_outcome(p.users.change_key(k, false).await),
        Operation::GroupList => to_outcome(p.users.groups().await),
        Operation::GroupGet(g) => to_outcome(p.users.group(&g.name).await),
        Operation::GroupAdd(g) => to_outcome(p.users.add_group(g).await),
        Operation::GroupDelete(g) => to_outcome(p.users.delete_group(g).await),
        Operation::FileDeploy(d) => to_outcome(p.files.deploy(d).await),
        Operation::FileStatus(f) => to_outcome(p.files.status(&f.name).await),
        Operation::FileUndeploy(u) => to_outcome(p.files.undeploy(u).await),
        Operation::PackageList => to_outcome(p.packages.list().await),
        Operation::PackageGet(n) => to_outcome(p.packages.get(&n.name).await),
        Operation::PackageSearch(q) => to_outcome(p.packages.search(&q.query).await),
        Operation::PackageUpdates => to_outcome(p.packages.updates().await),
        Operation::PackageInstall(r) => to_outcome(p.packages.install(r, progress).await),
        Operation::PackageRemove(r) => to_outcome(p.packages.remove(r, progress).await),
        Operation::PackageUpdate(r) => to_outcome(p.packages.update(r, progress).await),
        Operation::PackageRefresh(r) => to_outcome(p.packages.refresh(r, progress).await),
        Operation::CaList(l) => to_outcome(p.trust.list(l.local).await),
        Operation::CaAdd(a) => to_outcome(p.trust.add(a).await),
        Operation::CaRemove(r) => to_outcome(p.trust.remove(r).await),
        Operation::SysctlList(l) => to_outcome(p.sysctl.list(l.prefix.as_deref()).await),
        Operation::SysctlGet(k) => to_outcome(p.sysctl.get(&k.key).await),
        Operation::SysctlSet(s) => {
            to_outcome(p.sysctl.set(&s.key, Some(&s.value), s.dry_run).await)
        }
        Operation::SysctlDelete(k) => to_outcome(p.sysctl.set(&k.key, None, k.dry_run).await),
        Operation::PowerReboot(s) | Operation::PowerPoweroff(s) => {
            let action = match op {
                Operation::PowerReboot(_) => PowerAction::Reboot,
                _ => PowerAction::Poweroff,
            };
            let delay = s.delay().unwrap_or_default();
            to_outcome(
                p.power
                    .change(action, delay, s.message.as_deref(), s.dry_run)
                    .await,
            )
        }
        Operation::PowerCancel(c) => to_outcome(
            p.power
                .change(PowerAction::Cancel, Duration::ZERO, None, c.dry_run)
                .await,
        ),
        Operation::TimezoneSet(z) => to_outcome(
            p.clock
                .change(ClockSetting::Timezone(&z.timezone), z.dry_run)
                .await,
        ),
        Operation::NtpSet(n) => to_outcome(
            p.clock
                .change(ClockSetting::Ntp(n.enabled), n.dry_run)
                .await,
        ),
        Operation::NtpServersSet(s) => to_outcome(
            p.clock
                .change(ClockSetting::NtpServers(&s.servers), s.dry_run)
                .await,
        ),
        Operation::ClockSet(c) => {
            to_outcome(p.clock.change(ClockSetting::Time(c.time), c.dry_run).await)
        }
        Operation::DropInGet(f) => to_outcome(p.service.dropin_get(f).await),
        Operation::DropInPut(d) => to_outcome(
            p.service
                .dropin_set(d.file(), Some(&d.content), d.dry_run)
                .await,
        ),
        Operation::DropInDelete(d) => {
            to_outcome(p.service.dropin_set(d.file(), None, d.dry_run).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(exit_code: Option<i32>, signal: Option<i32>, timed_out: bool) -> CommandResult {
        CommandResult {
            stdout: "out".into(),
            stderr: String::new(),
            exit_code,
            signal,
            timed_out,
            cancelled: false,
            truncated_stdout: false,
            truncated_stderr: false,
            duration_ms: 1500,
            runner: Default::default(),
            unit: None,
        }
    }

    fn host_result(data: Value) -> HostResult {
        HostResult {
            hostname: "h".into(),
            status: HostStatus::Completed,
            data: Some(data),
            error: None,
            duration_ms: 1,
        }
    }

    /// Each operation's result is of the type its row declares: the view of
    /// that type reads what the simulated providers answered. The simulator
    /// has no DNS, ping, units or clock: those must answer `unsupported`, and
    /// every other operation must answer typed data.
    #[tokio::test]
    async fn results_have_the_declared_type() {
        let providers = crate::provider::sim::SimProviders::new("sim".into(), Default::default());
        let simulated = |name: &str| {
            ![
                "network.", "service.", "time.", "log.", "power.", "sysctl.", "process.", "cert.",
                "user.", "file.", "package.",
            ]
            .iter()
            .any(|p| name.starts_with(p))
        };
        for op in crate::job::examples() {
            let name = op.type_name();
            let outcome = dispatch(&op, &providers, &Progress::none(), CommandJob::default()).await;
            match (&outcome.data, &outcome.error) {
                (Some(data), _) if simulated(name) => {
                    assert!((op.spec().view.rows)(data).is_some(), "{name}: {data}");
                }
                (None, Some(e)) if !simulated(name) => {
                    assert_eq!(e.code, "unsupported", "{name}: {e:?}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn results_are_cut_to_fit() {
        let data = serde_json::to_value(CommandResult {
            stdout: "é".repeat(3000),
            stderr: "x".repeat(1000),
            ..ran(Some(0), None, false)
        })
        .unwrap_or_default();
        let mut r = host_result(data);
        assert!(!fit_result(&mut r.clone(), 100_000), "fits already");
        assert!(fit_result(&mut r, 4000));
        let len = serde_json::to_vec(&r)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        assert!(len <= 4000, "{len}");
        let d = r.data.clone().unwrap_or_default();
        assert_eq!(d["truncated_stdout"], true);
        assert_eq!(d["truncated_stderr"], false);
        assert!(
            d["stdout"]
                .as_str()
                .is_some_and(|s| s.chars().all(|c| c == 'é'))
        );
        assert_eq!(r.status, HostStatus::Completed);

        // Nothing to cut: the data goes, and the result says why.
        let mut r = host_result(serde_json::json!({"n": vec![1; 1000]}));
        assert!(fit_result(&mut r, 200));
        assert_eq!(r.data, None);
        assert_eq!(r.status, HostStatus::Failed);
        assert_eq!(r.error.map(|e| e.code), Some("result_too_large".into()));
    }

    #[test]
    fn command_results_map_to_outcomes() {
        let ok = command_outcome(Ok(ran(Some(0), None, false)));
        assert!(ok.is_success());
        assert_eq!(
            ok.data.as_ref().map(|d| d["stdout"].clone()),
            Some("out".into())
        );

        let exit = command_outcome(Ok(ran(Some(1), None, false)));
        let e = exit.error.clone().map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some(("exit_status".into(), "exited with status 1".into()))
        );
        assert_eq!(exit.data.map(|d| d["exit_code"].clone()), Some(1.into()));

        let sig = command_outcome(Ok(ran(None, Some(15), false)));
        let e = sig.error.map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some(("signal".into(), "killed by signal 15 (SIGTERM)".into()))
        );

        let late = command_outcome(Ok(ran(None, Some(9), true)));
        assert_eq!(
            late.error.as_ref().map(|e| e.code.as_str()),
            Some("timed_out")
        );
        assert!(late.data.is_some());

        let missing = command_outcome(Err(ProviderError::NotFound {
            what: "program",
            name: "nope".into(),
        }));
        assert_eq!(missing.data, None);
        assert_eq!(
            missing.error.map(|e| (e.code, e.message)),
            Some(("not_found".into(), "program not found: nope".into()))
        );
    }
}
