//! Commands as transient systemd services (issue 12's runner): where systemd
//! is PID 1, a command job runs in a unit of its own, started over D-Bus
//! (`StartTransientUnit`), not as a child of the agent.
//!
//! So a command is outside the agent's sandbox (its `PrivateTmp=`,
//! `ProtectKernelTunables=`, `RestrictSUIDSGID=`…) and does what an admin's
//! shell does: `sysctl -w`, a `mount` the host sees, a package with setuid
//! files. The unit is `osapi-cmd-<job id>.service`, `Type=exec`, with
//! `RuntimeMaxSec=` from the timeout (systemd stops it: `timed_out`),
//! `RemainAfterExit=yes` (so its exit status stays readable until the agent
//! has it), stdin on `/dev/null`, and stdout and stderr appended to files in
//! the agent's state directory, which systemd opens, so output never depends
//! on a pipe to the agent. The result comes from the unit's properties
//! (`ExecMainCode`, `ExecMainStatus`, `Result`); then the unit is stopped
//! (and its failure reset) and the files removed.
//!
//! The command is not in the agent's cgroup: an agent stopped or killed
//! meanwhile (an upgrade of OSAPI run as a command job restarts it) leaves it
//! running. The job comes back to the agent started again, which finds the
//! unit by the job's id and collects it ([`CommandJob::resume`]); a command
//! is never started twice, and is `interrupted` only when its unit is gone.
//!
//! Where systemd is not PID 1 (a development machine running `osapi start`),
//! commands run as children ([`HostCommand`]), as before. Each result says
//! which ran it (`runner`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, Variant, proxy};

use super::command::{COMMAND_PATH, Capture, HostCommand, check_cwd};
use super::hostnamed::{SystemBus, bus_error};
use super::{
    BoxFuture, CommandExec, CommandJob, CommandProvider, CommandResult, CommandRunner,
    CommandShell, ProviderError, ProviderResult,
};

/// The service named in errors.
const SERVICE: &str = "systemd";
/// How often a running command's unit is looked at, at most.
const POLL_MAX: Duration = Duration::from_millis(200);
/// Time for systemd to stop a unit past its `RuntimeMaxSec=` and say so.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// `ExecMainCode` values (`CLD_*` of waitid(2)).
const CLD_EXITED: i32 = 1;

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait TransientManager {
    #[allow(clippy::type_complexity)]
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Variant<'_>)],
        aux: &[(&str, &[(&str, Variant<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait ExecService {
    #[zbus(property)]
    fn exec_main_code(&self) -> zbus::Result<i32>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait ExecUnit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

/// Whether systemd is PID 1 here (sd_booted(3)).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// What a command job asks to run, whichever operation it came from.
struct Run<'a> {
    program: String,
    argv: Vec<String>,
    env: Vec<String>,
    cwd: Option<&'a str>,
    timeout: Option<Duration>,
    operation: &'static str,
}

/// [`CommandProvider`] through transient units, or children without systemd.
pub struct UnitCommand {
    bus: Arc<SystemBus>,
    child: HostCommand,
    /// Where the units' output files go (the agent's state directory).
    runs: PathBuf,
    booted: bool,
}

impl UnitCommand {
    pub fn new(bus: Arc<SystemBus>, child: HostCommand, state_dir: &Path) -> Self {
        UnitCommand {
            bus,
            child,
            runs: state_dir.join("runs"),
            booted: systemd_booted(),
        }
    }

    async fn run(&self, run: Run<'_>, job: CommandJob) -> ProviderResult<CommandResult> {
        let limit = self.child.timeout_for(run.timeout)?;
        // Named after the job, so that an agent started again finds it.
        let unit = format!(
            "osapi-cmd-{}.service",
            job.id.unwrap_or_else(uuid::Uuid::now_v7).simple()
        );
        let error = |e| bus_error(e, SERVICE, run.operation, "command");
        let conn = self.bus.connection().await.map_err(error)?;
        let exists = manager(&conn)
            .await
            .map_err(error)?
            .get_unit(&unit)
            .await
            .is_ok();
        let start = match (job.resume, exists) {
            // Left by an earlier attempt (this agent stopped meanwhile): its
            // command is collected, never started again.
            (_, true) => false,
            (true, false) => {
                return Err(ProviderError::Interrupted {
                    detail: format!("{unit} is not there any more"),
                });
            }
            (false, false) => true,
        };
        if let Some(dir) = run.cwd.filter(|_| start) {
            check_cwd(dir).await?;
        }
        let program = if start {
            find_program(&run.program)?
        } else {
            String::new()
        };
        std::fs::create_dir_all(&self.runs)
            .map_err(|e| ProviderError::io(format!("creating {}", self.runs.display()), e))?;
        let stdout = self.runs.join(format!("{unit}.stdout"));
        let stderr = self.runs.join(format!("{unit}.stderr"));
        let started = Instant::now();
        let ended = async {
            if start {
                start_unit(&conn, &unit, &program, &run, limit, &stdout, &stderr).await?;
            }
            wait_for_end(&conn, &unit, limit).await
        }
        .await;
        // Whatever happened, the unit and its files go: a failed unit stays
        // listed until reset, a RemainAfterExit one until stopped.
        let manager = manager(&conn).await.map_err(error)?;
        let _ = manager.stop_unit(&unit, "replace").await;
        let _ = manager.reset_failed_unit(&unit).await;
        let out = read_capped(&stdout, self.child.max_output_bytes());
        let err = read_capped(&stderr, self.child.max_output_bytes());
        let _ = std::fs::remove_file(&stdout);
        let _ = std::fs::remove_file(&stderr);
        let ended = ended.map_err(error)?;
        let (stdout, truncated_stdout) = out;
        let (stderr, truncated_stderr) = err;
        Ok(CommandResult {
            stdout,
            stderr,
            exit_code: (ended.code == CLD_EXITED && ended.result != "timeout")
                .then_some(ended.status),
            signal: (ended.code != CLD_EXITED && ended.code != 0).then_some(ended.status),
            timed_out: ended.result == "timeout",
            truncated_stdout,
            truncated_stderr,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            runner: CommandRunner::Unit,
            unit: Some(unit),
        })
    }
}

/// How a unit's main process ended.
struct Ended {
    code: i32,
    status: i32,
    result: String,
}

async fn manager(conn: &Connection) -> zbus::Result<TransientManagerProxy<'static>> {
    TransientManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

/// Starts the unit and waits for systemd's start job (the exec) to end.
async fn start_unit(
    conn: &Connection,
    unit: &str,
    program: &str,
    run: &Run<'_>,
    limit: Duration,
    stdout: &Path,
    stderr: &Path,
) -> zbus::Result<()> {
    let manager = manager(conn).await?;
    let exec_start = vec![(program.to_owned(), run.argv.clone(), false)];
    let description = format!("OSAPI command job: {}", run.program);
    let runtime_max = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
    let mut properties: Vec<(&str, Variant<'_>)> = vec![
        ("Description", Variant::from(description.as_str())),
        ("Type", Variant::from("exec")),
        ("ExecStart", Variant::from(exec_start)),
        ("Environment", Variant::from(run.env.clone())),
        ("StandardInput", Variant::from("null")),
        (
            "StandardOutputFileToAppend",
            Variant::from(path_text(stdout)),
        ),
        (
            "StandardErrorFileToAppend",
            Variant::from(path_text(stderr)),
        ),
        ("RuntimeMaxUSec", Variant::from(runtime_max)),
        ("RemainAfterExit", Variant::from(true)),
        // Past RuntimeMaxSec: SIGTERM, then SIGKILL 5 s later.
        ("TimeoutStopUSec", Variant::from(5_000_000u64)),
    ];
    if let Some(dir) = run.cwd {
        properties.push(("WorkingDirectory", Variant::from(dir)));
    }
    // Listen before starting: a quick start ends before we would look.
    let mut removed = manager.receive_job_removed().await?;
    let job = manager
        .start_transient_unit(unit, "fail", &properties, &[])
        .await?;
    while let Some(signal) = removed.next().await {
        if signal.args()?.job == job {
            break;
        }
    }
    Ok(())
}

/// Waits for the unit's main process to end (or systemd to give up on it)
/// and reads how it ended. `limit` bounds a command this agent started; one
/// left by an earlier agent had its own, enforced by systemd.
async fn wait_for_end(conn: &Connection, unit: &str, limit: Duration) -> zbus::Result<Ended> {
    let manager = manager(conn).await?;
    let path = manager.get_unit(unit).await?;
    let unit_proxy = ExecUnitProxy::builder(conn)
        .path(path.clone())
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let deadline = Instant::now() + limit + STOP_GRACE;
    let mut pause = Duration::from_millis(5);
    loop {
        let sub = unit_proxy.sub_state().await?;
        let active = unit_proxy.active_state().await?;
        // RemainAfterExit: "exited" once the main process ended well;
        // "failed" when it did not (or systemd stopped it).
        if sub == "exited" || active == "failed" || active == "inactive" {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    }
    let service = ExecServiceProxy::builder(conn)
        .path(path)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    Ok(Ended {
        code: service.exec_main_code().await?,
        status: service.exec_main_status().await?,
        result: service.result().await?,
    })
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A file's first `cap` bytes as text, and whether there was more.
fn read_capped(path: &Path, cap: usize) -> (String, bool) {
    use std::io::Read as _;
    let mut capture = Capture::new(cap);
    if let Ok(file) = std::fs::File::open(path) {
        let mut head = Vec::new();
        // One byte past the cap tells whether there was more.
        let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
        if file.take(limit).read_to_end(&mut head).is_ok() {
            capture.push(&head);
        }
    }
    capture.finish()
}

/// The program's absolute path: as given when it has a slash, else the
/// first executable of that name on the commands' `PATH`.
fn find_program(program: &str) -> ProviderResult<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        Path::new(program)
            .is_absolute()
            .then(|| PathBuf::from(program))
    } else {
        COMMAND_PATH
            .split(':')
            .map(|dir| Path::new(dir).join(program))
            .find(|p| executable(p))
    };
    match found {
        Some(path) if executable(&path) => Ok(path_text(&path)),
        Some(_) | None => Err(ProviderError::NotFound {
            what: "program",
            name: program.to_owned(),
        }),
    }
}

/// The commands' environment: `PATH`, `LANG` and `HOME`, plus the request's.
fn environment(extra: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut env = vec![
        format!("PATH={COMMAND_PATH}"),
        "LANG=C.UTF-8".to_owned(),
        "HOME=/root".to_owned(),
    ];
    env.extend(extra.map(|(k, v)| format!("{k}={v}")));
    env
}

impl CommandProvider for UnitCommand {
    fn exec<'a>(
        &'a self,
        request: &'a CommandExec,
        job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        Box::pin(async move {
            if !self.booted {
                return self.child.exec(request, job).await;
            }
            let mut argv = vec![request.command.clone()];
            argv.extend(request.args.iter().cloned());
            self.run(
                Run {
                    program: request.command.clone(),
                    argv,
                    env: environment(
                        request
                            .env
                            .iter()
                            .map(|v| (v.name.clone(), v.value.clone())),
                    ),
                    cwd: request.cwd.as_deref(),
                    timeout: request.timeout,
                    operation: "command.exec.execute",
                },
                job,
            )
            .await
        })
    }

    fn shell<'a>(
        &'a self,
        request: &'a CommandShell,
        job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        Box::pin(async move {
            if !self.booted {
                return self.child.shell(request, job).await;
            }
            self.run(
                Run {
                    program: super::command::SHELL.to_owned(),
                    argv: vec![
                        super::command::SHELL.to_owned(),
                        "-c".to_owned(),
                        request.command.clone(),
                    ],
                    env: environment(std::iter::empty()),
                    cwd: request.cwd.as_deref(),
                    timeout: request.timeout,
                    operation: "command.shell.execute",
                },
                job,
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_commands_path() {
        assert_eq!(find_program("sh").unwrap(), "/usr/bin/sh");
        assert_eq!(find_program("/bin/sh").unwrap(), "/bin/sh");
        for missing in [
            "osapi-no-such-program",
            "bin/sh",
            "/etc/passwd",
            "/nonexistent/x",
        ] {
            assert!(
                matches!(find_program(missing), Err(ProviderError::NotFound { .. })),
                "{missing}"
            );
        }
    }

    #[test]
    fn output_files_are_read_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, "hello world").unwrap();
        assert_eq!(read_capped(&path, 100), ("hello world".to_owned(), false));
        assert_eq!(read_capped(&path, 5), ("hello".to_owned(), true));
        assert_eq!(
            read_capped(&dir.path().join("none"), 5),
            (String::new(), false)
        );
    }

    #[test]
    fn the_environment_is_clean_plus_the_requests() {
        let env = environment([("A".to_owned(), "1".to_owned())].into_iter());
        assert_eq!(env[0], format!("PATH={COMMAND_PATH}"));
        assert!(env.contains(&"A=1".to_owned()));
        assert!(!env.iter().any(|e| e.starts_with("OSAPI_")));
    }
}
