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
use zbus::{Connection, Variant};

use super::command::{COMMAND_PATH, Capture, CommandLimits, HostCommand, check_cwd};
use super::hostnamed::{SystemBus, bus_error, error_name};
use super::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};
use super::{
    BoxFuture, Cancel, CommandExec, CommandJob, CommandProvider, CommandResult, CommandRunner,
    CommandShell, LiveOutput, OutputOffsets, OutputStream, ProviderError, ProviderResult,
};

/// The service named in errors.
const SERVICE: &str = "systemd";
/// How often a running command's unit is looked at, at most.
const POLL_MAX: Duration = Duration::from_millis(200);
/// Time for systemd to stop a unit past its `RuntimeMaxSec=` and say so.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long a cancelled command has between SIGTERM and SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(5);
/// `ExecMainCode` values (`CLD_*` of waitid(2)).
const CLD_EXITED: i32 = 1;

/// Whether systemd is PID 1 here (sd_booted(3)).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether this process starts transient units: systemd is PID 1, and the
/// process is root or a service of the system manager (the packaged agent,
/// which runs as `osapi-agent` and whom OSAPI's polkit rules let manage
/// units). A user running `osapi start` in a shell or as a user service
/// gets children instead.
pub fn starts_units() -> bool {
    systemd_booted() && (nix::unistd::geteuid().is_root() || system_service())
}

/// Whether this process runs as a service of the system manager: started by
/// it (`INVOCATION_ID`) and in its `system.slice` (anywhere in the path: a
/// container without a cgroup namespace shows its own above it).
fn system_service() -> bool {
    std::env::var_os("INVOCATION_ID").is_some()
        && std::fs::read_to_string("/proc/self/cgroup").is_ok_and(|groups| {
            groups
                .lines()
                .any(|l| l.contains("/system.slice/") && !l.contains("/user.slice/"))
        })
}

/// What a command job asks to run, whichever operation it came from.
struct Run<'a> {
    program: String,
    argv: Vec<String>,
    /// The request's variables (the base ones are added by the runner).
    env: Vec<(String, String)>,
    cwd: Option<&'a str>,
    /// Who it runs as (root when `None`).
    user: Option<&'a str>,
    group: Option<&'a str>,
    timeout: Option<Duration>,
    operation: &'static str,
}

/// A command's files in the agent's state directory: its output, its
/// request's environment (a property would show the values to every local
/// user: `systemctl show`), and its result once it ended, kept until the
/// agent stored it ([`CommandProvider::release`]).
struct RunFiles {
    stdout: PathBuf,
    stderr: PathBuf,
    env: PathBuf,
    result: PathBuf,
}

impl RunFiles {
    fn of(runs: &Path, unit: &str) -> Self {
        RunFiles {
            stdout: runs.join(format!("{unit}.stdout")),
            stderr: runs.join(format!("{unit}.stderr")),
            env: runs.join(format!("{unit}.env")),
            result: runs.join(format!("{unit}.result")),
        }
    }

    fn remove(&self) {
        for path in [&self.stdout, &self.stderr, &self.env, &self.result] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a command's file");
                }
                _ => {}
            }
        }
    }

    /// The result an earlier attempt collected but may not have stored.
    fn saved_result(&self) -> Option<CommandResult> {
        let text = std::fs::read(&self.result).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn save_result(&self, result: &CommandResult) {
        let saved = serde_json::to_vec(result)
            .map_err(std::io::Error::other)
            .and_then(|text| write_private(&self.result, &text));
        if let Err(e) = saved {
            tracing::warn!(error = %e, "cannot keep a command's result until it is stored");
        }
    }
}

/// Writes a file only the agent's user reads (the runs directory is its
/// alone too); PID 1 opens the output files for the unit.
fn write_private(path: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text)
}

/// The unit of a job's command.
fn unit_name(id: uuid::Uuid) -> String {
    format!("osapi-cmd-{}.service", id.simple())
}

/// The job a command unit (or its files) belongs to.
fn job_of_unit(name: &str) -> Option<uuid::Uuid> {
    let id = name.strip_prefix("osapi-cmd-")?;
    let id = id.split('.').next()?;
    uuid::Uuid::try_parse(id).ok()
}

/// [`CommandProvider`] through transient units, or children without systemd.
pub struct UnitCommand {
    bus: Arc<SystemBus>,
    child: HostCommand,
    /// Where the units' files go (the agent's state directory).
    runs: PathBuf,
    /// Whether commands run as units ([`starts_units`]).
    units: bool,
    /// Whether this process sees the host's files as a root command will:
    /// a non-root agent's sandbox hides `/root` and `/home` and cannot read
    /// root's directories, so it leaves a command's program and working
    /// directory for systemd to check (exit statuses 203 and 200).
    sees_host: bool,
    /// What a command's unit may use unless the request says otherwise.
    limits: CommandLimits,
}

impl UnitCommand {
    pub fn new(bus: Arc<SystemBus>, child: HostCommand, state_dir: &Path) -> Self {
        let limits = child.limits();
        UnitCommand {
            bus,
            child,
            runs: state_dir.join("runs"),
            units: starts_units(),
            sees_host: nix::unistd::geteuid().is_root(),
            limits,
        }
    }

    async fn run(&self, run: Run<'_>, job: CommandJob) -> ProviderResult<CommandResult> {
        let limit = self.child.timeout_for(run.timeout)?;
        // Named after the job, so that an agent started again finds it.
        let unit = unit_name(job.id.unwrap_or_else(uuid::Uuid::now_v7));
        let error = |e| bus_error(e, SERVICE, run.operation, "command");
        let conn = self.bus.connection().await.map_err(error)?;
        let manager = manager(&conn).await.map_err(error)?;
        let exists = match manager.get_unit(&unit).await {
            Ok(_) => true,
            Err(e) if error_name(&e) == Some("org.freedesktop.systemd1.NoSuchUnit") => false,
            Err(e) => return Err(error(e)),
        };
        let files = RunFiles::of(&self.runs, &unit);
        if job.resume && !exists {
            // Collected by an earlier attempt, which stopped before it was
            // stored; else the command is gone with its unit.
            return files
                .saved_result()
                .ok_or_else(|| ProviderError::Interrupted {
                    detail: format!("{unit} is not there any more"),
                });
        }
        let cap = self.child.max_output_bytes();
        let keep = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
        let CommandJob {
            live,
            mut cancel,
            resume_from,
            ..
        } = job;
        let started = Instant::now();
        // Left by an earlier attempt (this agent stopped meanwhile): its
        // command is collected, never started again.
        let mut tail = if exists {
            Tail::open(&files, resume_from, keep)
        } else {
            if let Some(dir) = run.cwd
                && self.sees_host
            {
                check_cwd(dir).await?;
            }
            let program = find_program(&run.program, self.sees_host)?;
            self.prepare(&run, &files)?;
            let tail = Tail::open(&files, OutputOffsets::default(), keep);
            let began =
                start_unit(&manager, &unit, &program, &run, limit, &files, &self.limits).await;
            // PID 1 read the file when it started the command (or never will).
            let _ = std::fs::remove_file(&files.env);
            if let Err(e) = began {
                files.remove();
                return Err(error(e));
            }
            tail
        };
        let ended = follow(&conn, &manager, &unit, limit, &mut tail, &live, &mut cancel).await;
        let result = |ended: &Ended| {
            let took = ended.ran_for().unwrap_or_else(|| started.elapsed());
            let out = read_capped(&files.stdout, cap);
            let err = read_capped(&files.stderr, cap);
            result_of(ended, out, err, took, unit.clone())
        };
        // Kept before the unit goes: an agent that dies from here on leaves
        // it for the next, which finds no unit.
        if let Ok(ended) = &ended
            && !ended.start_failed()
        {
            files.save_result(&result(ended));
        }
        // Whatever happened, the unit goes: a failed unit stays listed until
        // reset, a RemainAfterExit one until stopped (with what the command
        // left running).
        stop_and_reset(&conn, &manager, &unit).await;
        tail.read_new(&live);
        let ended = match ended {
            Ok(ended) => ended,
            Err(e) => {
                files.remove();
                return Err(error(e));
            }
        };
        if ended.start_failed() {
            files.remove();
            return Err(start_error(&ended, &run));
        }
        // With what the command's leftovers printed until stopped; kept until
        // the agent stored it.
        let result = result(&ended);
        files.save_result(&result);
        Ok(result)
    }

    /// The runs directory (the agent's only), the output files (made here,
    /// so they can be watched before the command writes), and the request's
    /// environment in a file of the agent's only.
    fn prepare(&self, run: &Run<'_>, files: &RunFiles) -> ProviderResult<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        let io =
            |what: &str, path: &Path, e| ProviderError::io(format!("{what} {}", path.display()), e);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.runs)
            .map_err(|e| io("creating", &self.runs, e))?;
        let mut text = String::new();
        for (name, value) in &run.env {
            if !is_env_name(name) {
                return Err(ProviderError::invalid(
                    &format!("env.{name}"),
                    "systemd takes names of letters, digits and _, not starting with a digit",
                ));
            }
            text.push_str(&format!("{name}={}\n", env_file_value(value)));
        }
        for path in [&files.stdout, &files.stderr] {
            write_private(path, b"").map_err(|e| io("creating", path, e))?;
        }
        write_private(&files.env, text.as_bytes()).map_err(|e| io("writing", &files.env, e))
    }

    /// The jobs whose commands are here: a unit still loaded, or a result
    /// not yet stored.
    async fn unfinished_here(&self) -> ProviderResult<Vec<uuid::Uuid>> {
        let mut jobs = std::collections::BTreeSet::new();
        if let Ok(entries) = std::fs::read_dir(&self.runs) {
            for entry in entries.flatten() {
                if let Some(id) = entry.file_name().to_str().and_then(job_of_unit) {
                    jobs.insert(id);
                }
            }
        }
        let error = |e| bus_error(e, SERVICE, "command.exec.execute", "command units");
        let conn = self.bus.connection().await.map_err(error)?;
        let manager = manager(&conn).await.map_err(error)?;
        let units = manager
            .list_units_by_patterns(&[], &["osapi-cmd-*.service"])
            .await
            .map_err(error)?;
        jobs.extend(units.iter().filter_map(|u| job_of_unit(&u.0)));
        Ok(jobs.into_iter().collect())
    }

    /// Stops a job's unit if it is still there and removes its files.
    async fn discard(&self, id: uuid::Uuid) {
        let unit = unit_name(id);
        if let Ok(conn) = self.bus.connection().await
            && let Ok(manager) = manager(&conn).await
            && manager.get_unit(&unit).await.is_ok()
        {
            stop_and_reset(&conn, &manager, &unit).await;
        }
        RunFiles::of(&self.runs, &unit).remove();
    }
}

/// A command's output files, followed as they grow: what was appended
/// since the last look is read and handed on live, and what lies past
/// `keep` is then freed by punching a hole (the file keeps its size, so the
/// command's `O_APPEND` writes go on at its end, and the first `keep` bytes
/// stay for the result).
struct Tail {
    files: [TailedFile; 2],
    /// Wakes us when a file is written; without it we look every poll.
    changes: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    buf: Vec<u8>,
}

/// One output file being followed: opened once (when it is there), how far
/// it was read, how far it was freed.
struct TailedFile {
    stream: OutputStream,
    path: PathBuf,
    file: Option<std::fs::File>,
    at: u64,
    freed: u64,
}

impl TailedFile {
    fn new(stream: OutputStream, path: &Path, at: u64, keep: u64) -> Self {
        TailedFile {
            stream,
            path: path.to_owned(),
            file: None,
            at,
            freed: keep,
        }
    }

    /// The file, opened on first use.
    fn file(&mut self) -> Option<&std::fs::File> {
        if self.file.is_none() {
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path);
            self.file = opened.ok();
        }
        self.file.as_ref()
    }
}

impl Tail {
    fn open(files: &RunFiles, from: OutputOffsets, keep: u64) -> Self {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let changes = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .and_then(|watch| {
                for path in [&files.stdout, &files.stderr] {
                    watch.add_watch(path, AddWatchFlags::IN_MODIFY)?;
                }
                Ok(watch)
            })
            .map_err(std::io::Error::from)
            .and_then(|watch| {
                // SAFETY: the descriptor is inotify's, owned by the AsyncFd
                // from here on and closed only when it is dropped.
                unsafe { tokio::io::unix::AsyncFd::register(std::os::fd::OwnedFd::from(watch)) }
                    .map_err(|e| e.into_parts().1)
            });
        let changes = match changes {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch a command's output; polling it");
                None
            }
        };
        Tail {
            files: [
                TailedFile::new(OutputStream::Stdout, &files.stdout, from.stdout, keep),
                TailedFile::new(OutputStream::Stderr, &files.stderr, from.stderr, keep),
            ],
            changes,
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// Resolves when a file was written to (never without a watch).
    async fn changed(&mut self) {
        let Some(changes) = &self.changes else {
            return std::future::pending().await;
        };
        match changes.readable().await {
            Ok(mut ready) => {
                // The events only wake us: drain them.
                let mut buf = [0u8; 4096];
                while nix::unistd::read(changes.get_ref(), &mut buf).is_ok_and(|n| n > 0) {}
                ready.clear_ready();
            }
            Err(_) => std::future::pending().await,
        }
    }

    /// Reads what each file gained and hands it on; frees what is past
    /// `keep` and was sent on (an agent started again goes on from what was
    /// sent, so that must still be there).
    fn read_new(&mut self, live: &LiveOutput) {
        use std::os::unix::fs::FileExt as _;
        let sent = live.sent();
        for tailed in &mut self.files {
            let (stream, mut at, freed) = (tailed.stream, tailed.at, tailed.freed);
            let Some(file) = tailed.file() else { continue };
            while let Ok(n @ 1..) = file.read_at(&mut self.buf, at) {
                live.send(stream, at, &self.buf[..n]);
                at += n as u64;
            }
            let upto = at.min(sent.of(stream));
            if upto > freed {
                punch_hole(file, freed, upto - freed);
                tailed.freed = upto;
            }
            tailed.at = at;
        }
    }
}

/// Frees `len` bytes at `offset` of `file`, keeping its size.
fn punch_hole(file: &std::fs::File, offset: u64, len: u64) {
    use nix::fcntl::{FallocateFlags, fallocate};
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    if let Err(e) = fallocate(file, flags, offset, len) {
        tracing::debug!(error = %e, "cannot free a command's output already sent");
    }
}

/// How a unit's main process ended, and how systemd's start job did.
#[derive(Debug, Clone, PartialEq, Default)]
struct Ended {
    /// `done` when the command was started (or was left by an earlier agent).
    start: String,
    code: i32,
    status: i32,
    result: String,
    /// Its main process's start and exit (µs since the epoch; 0: unknown).
    started_us: u64,
    exited_us: u64,
    /// Stopped because the job was cancelled.
    cancelled: bool,
}

impl Ended {
    fn start_failed(&self) -> bool {
        self.start != "done"
    }

    /// How long the command ran, by systemd's clock: right for a command
    /// an earlier agent started too.
    fn ran_for(&self) -> Option<Duration> {
        (self.started_us > 0 && self.exited_us >= self.started_us)
            .then(|| Duration::from_micros(self.exited_us - self.started_us))
    }
}

/// The command's result from how its unit ended.
fn result_of(
    ended: &Ended,
    (stdout, truncated_stdout): (String, bool),
    (stderr, truncated_stderr): (String, bool),
    took: Duration,
    unit: String,
) -> CommandResult {
    let timed_out = ended.result == "timeout";
    let exited = ended.code == CLD_EXITED;
    CommandResult {
        stdout,
        stderr,
        exit_code: (exited && !timed_out).then_some(ended.status),
        signal: (!exited && ended.code != 0).then_some(ended.status),
        timed_out,
        cancelled: ended.cancelled,
        truncated_stdout,
        truncated_stderr,
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        runner: CommandRunner::Unit,
        unit: Some(unit),
    }
}

/// Why systemd could not start the command: its `EXIT_*` status (see
/// systemd.exec(5)) told apart from the program's own.
fn start_error(ended: &Ended, run: &Run<'_>) -> ProviderError {
    match ended.status {
        200 => ProviderError::NotFound {
            what: "cwd",
            name: run.cwd.unwrap_or("/").to_owned(),
        },
        216 => ProviderError::NotFound {
            what: "group",
            name: run.group.unwrap_or_default().to_owned(),
        },
        217 => ProviderError::NotFound {
            what: "user",
            name: run.user.unwrap_or_default().to_owned(),
        },
        // Missing or not executable (a non-root agent leaves it to systemd).
        203 => ProviderError::NotFound {
            what: "program",
            name: run.program.clone(),
        },
        status => ProviderError::ServiceFailed {
            service: SERVICE,
            // systemd's own name for how the unit ended (`resources`, …).
            reason: ended.result.clone(),
            detail: format!(
                "the command's unit did not start (its start job: {}, status {status})",
                ended.start
            ),
        },
    }
}

/// An environment variable's name as systemd takes one.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value for an `EnvironmentFile=`: double-quoted, with `\`, `"`, `` ` ``
/// and `$` escaped (newlines are kept inside the quotes).
fn env_file_value(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '`' | '$') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

async fn manager(conn: &Connection) -> zbus::Result<ManagerProxy<'static>> {
    ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

/// Starts a root helper of the agent's (`agent::privileged`) as the unit
/// `unit`: `argv` with `stdin` and `stdout` as its standard input and
/// output, its log in the journal, stopped by systemd after `limit`, and
/// gone from systemd's lists once it ended. Returns once systemd accepted
/// it; the pipes say the rest.
pub async fn start_helper(
    bus: &SystemBus,
    unit: &str,
    argv: Vec<String>,
    env: Vec<String>,
    stdin: std::os::fd::BorrowedFd<'_>,
    stdout: std::os::fd::BorrowedFd<'_>,
    limit: Duration,
) -> ProviderResult<()> {
    let error = |e| bus_error(e, SERVICE, "root helper", "unit");
    let conn = bus.connection().await.map_err(error)?;
    let manager = manager(&conn).await.map_err(error)?;
    let program = argv.first().cloned().unwrap_or_default();
    let runtime_max = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
    let properties: Vec<(&str, Variant<'_>)> = vec![
        (
            "Description",
            Variant::from("OSAPI job step that needs root"),
        ),
        ("Type", Variant::from("exec")),
        ("ExecStart", Variant::from(vec![(program, argv, false)])),
        ("Environment", Variant::from(env)),
        (
            "StandardInputFileDescriptor",
            Variant::from(zbus::Fd::from(stdin)),
        ),
        (
            "StandardOutputFileDescriptor",
            Variant::from(zbus::Fd::from(stdout)),
        ),
        ("StandardError", Variant::from("journal")),
        ("RuntimeMaxUSec", Variant::from(runtime_max)),
        ("CollectMode", Variant::from("inactive-or-failed")),
    ];
    match manager
        .start_transient_unit(unit, "fail", &properties, &[])
        .await
    {
        Ok(_) => Ok(()),
        // An earlier attempt of the job still runs its step (a redelivery).
        Err(e) if error_name(&e) == Some("org.freedesktop.systemd1.UnitExists") => {
            Err(ProviderError::ServiceFailed {
                service: SERVICE,
                reason: "unit exists".to_owned(),
                detail: format!("{unit} still runs an earlier attempt of this job"),
            })
        }
        Err(e) => Err(error(e)),
    }
}

/// Stops a root helper that ran out of time (best effort: systemd stops it
/// at its `RuntimeMaxSec=` anyway).
pub async fn stop_helper(bus: &SystemBus, unit: &str) {
    if let Ok(conn) = bus.connection().await
        && let Ok(manager) = manager(&conn).await
        && let Err(e) = manager.stop_unit(unit, "replace").await
    {
        tracing::debug!(unit, error = %e, "the root helper was not stopped");
    }
}

/// Starts the unit and waits for systemd's start job (the exec) to end.
async fn start_unit(
    manager: &ManagerProxy<'_>,
    unit: &str,
    program: &str,
    run: &Run<'_>,
    limit: Duration,
    files: &RunFiles,
    limits: &CommandLimits,
) -> zbus::Result<()> {
    let exec_start = vec![(program.to_owned(), run.argv.clone(), false)];
    let runtime_max = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
    // The request's text stays out of the unit's description (any local user
    // reads it); the unit's name says which job it is.
    let mut base_env = vec![format!("PATH={COMMAND_PATH}"), "LANG=C.UTF-8".to_owned()];
    // With User=, systemd sets HOME (and USER, LOGNAME, SHELL) from the account.
    if run.user.is_none() {
        base_env.push("HOME=/root".to_owned());
    }
    let mut properties: Vec<(&str, Variant<'_>)> = vec![
        ("Description", Variant::from("OSAPI command job")),
        ("Type", Variant::from("exec")),
        ("ExecStart", Variant::from(exec_start)),
        ("Environment", Variant::from(base_env)),
        (
            "EnvironmentFiles",
            Variant::from(vec![(path_text(&files.env), false)]),
        ),
        ("StandardInput", Variant::from("null")),
        (
            "StandardOutputFileToAppend",
            Variant::from(path_text(&files.stdout)),
        ),
        (
            "StandardErrorFileToAppend",
            Variant::from(path_text(&files.stderr)),
        ),
        ("RuntimeMaxUSec", Variant::from(runtime_max)),
        ("RemainAfterExit", Variant::from(true)),
        // Past RuntimeMaxSec: SIGTERM, then SIGKILL 5 s later.
        ("TimeoutStopUSec", Variant::from(5_000_000u64)),
    ];
    if let Some(dir) = run.cwd {
        properties.push(("WorkingDirectory", Variant::from(dir)));
    }
    if let Some(user) = run.user {
        properties.push(("User", Variant::from(user)));
    }
    if let Some(group) = run.group {
        properties.push(("Group", Variant::from(group)));
    }
    if let Some(bytes) = limits.memory_max {
        properties.push(("MemoryMax", Variant::from(bytes)));
    }
    if let Some(percent) = limits.cpu_quota_percent {
        // CPUQuota=N% is N% of one CPU's time, per second.
        let per_sec = u64::from(percent) * 10_000;
        properties.push(("CPUQuotaPerSecUSec", Variant::from(per_sec)));
    }
    if let Some(tasks) = limits.tasks_max {
        properties.push(("TasksMax", Variant::from(tasks)));
    }
    // Listen before starting: a quick start ends before we would look.
    let mut removed = manager.receive_job_removed().await?;
    let job = manager
        .start_transient_unit(unit, "fail", &properties, &[])
        .await?;
    let wait = async {
        while let Some(signal) = removed.next().await {
            if signal.args()?.job == job {
                return Ok(());
            }
        }
        Err(zbus::Error::Failure(
            "the system bus closed the signal stream".into(),
        ))
    };
    // A Type=exec start job ends once the program is executed (or not).
    match tokio::time::timeout(STOP_GRACE, wait).await {
        Ok(done) => done,
        Err(_) => Ok(()),
    }
}

/// Follows the unit until its main process ended (or systemd gave up on
/// it), handing its output on as it comes, and reads how it ended. A cancel
/// signals the unit's processes (SIGTERM, then SIGKILL after
/// [`KILL_AFTER`]). `limit` bounds a command this agent started; one left
/// by an earlier agent had its own, enforced by systemd.
async fn follow(
    conn: &Connection,
    manager: &ManagerProxy<'_>,
    unit: &str,
    limit: Duration,
    tail: &mut Tail,
    live: &LiveOutput,
    cancel: &mut Cancel,
) -> zbus::Result<Ended> {
    let path = manager.get_unit(unit).await?;
    let unit_proxy = UnitProxy::builder(conn)
        .path(path.clone())
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let deadline = Instant::now() + limit + STOP_GRACE;
    let mut pause = Duration::from_millis(5);
    // The unit's state is asked at most this often, however chatty the
    // command: output wakes us, it does not make calls to PID 1.
    let mut next_check = Instant::now();
    let mut cancelled_at: Option<Instant> = None;
    let mut killed = false;
    let kill = |signal| async move {
        // Nothing left to signal (it just ended) is fine: the state says how.
        if let Err(e) = manager.kill_unit(unit, "all", signal).await {
            tracing::debug!(%unit, error = %e, "cannot signal the command's unit");
        }
    };
    loop {
        tail.read_new(live);
        if Instant::now() >= next_check {
            let sub = unit_proxy.sub_state().await?;
            let active = unit_proxy.active_state().await?;
            // RemainAfterExit: "exited" once the main process ended well (a
            // SIGTERM counts); "failed" when it did not (or systemd stopped it).
            if sub == "exited" || active == "failed" || active == "inactive" {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            if let Some(at) = cancelled_at
                && !killed
                && at.elapsed() >= KILL_AFTER
            {
                kill(libc::SIGKILL).await;
                killed = true;
            }
            next_check = Instant::now() + pause;
            pause = (pause * 2).min(POLL_MAX);
        }
        tokio::select! {
            _ = tail.changed() => {}
            _ = tokio::time::sleep_until(next_check.into()) => {}
            _ = cancel.requested(), if cancelled_at.is_none() => {
                tracing::info!(%unit, "cancelling the command");
                kill(libc::SIGTERM).await;
                cancelled_at = Some(Instant::now());
                pause = Duration::from_millis(5);
                next_check = Instant::now();
            }
        }
    }
    let service = ServiceProxy::builder(conn)
        .path(path)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let code = service.exec_main_code().await?;
    let status = service.exec_main_status().await?;
    let result = service.result().await?;
    // systemd's own EXIT_* statuses (200 and up) with no program run mean the
    // start failed: a missing directory, an unexecutable program.
    let start = if code == CLD_EXITED && (200..=243).contains(&status) && result == "exit-code" {
        "failed".to_owned()
    } else {
        "done".to_owned()
    };
    Ok(Ended {
        start,
        code,
        status,
        result,
        started_us: service.exec_main_start_timestamp().await.unwrap_or(0),
        exited_us: service.exec_main_exit_timestamp().await.unwrap_or(0),
        cancelled: cancelled_at.is_some(),
    })
}

/// Stops the unit (with what the command left running) and, once it is
/// down, clears its failure so that it is gone.
async fn stop_and_reset(conn: &Connection, manager: &ManagerProxy<'_>, unit: &str) {
    let outcome: zbus::Result<()> = async {
        manager.stop_unit(unit, "replace").await?;
        if let Ok(path) = manager.get_unit(unit).await {
            let unit_proxy = UnitProxy::builder(conn)
                .path(path)
                .cache_properties(CacheProperties::No)
                .build()
                .await?;
            let until = Instant::now() + STOP_GRACE;
            while Instant::now() < until {
                match unit_proxy.active_state().await.as_deref() {
                    Ok("inactive" | "failed") | Err(_) => break,
                    Ok(_) => tokio::time::sleep(POLL_MAX).await,
                }
            }
        }
        match manager.reset_failed_unit(unit).await {
            Err(e) if error_name(&e) != Some("org.freedesktop.systemd1.NoSuchUnit") => Err(e),
            _ => Ok(()),
        }
    }
    .await;
    if let Err(e) = outcome {
        tracing::warn!(%unit, error = %e, "cannot stop or reset a command's unit");
    }
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
/// The program's path: a bare name is looked up in [`COMMAND_PATH`]; an
/// absolute path is checked only when this process `sees_host`.
fn find_program(program: &str, sees_host: bool) -> ProviderResult<String> {
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
        Some(path) if !sees_host || executable(&path) => Ok(path_text(&path)),
        Some(_) | None => Err(ProviderError::NotFound {
            what: "program",
            name: program.to_owned(),
        }),
    }
}

impl CommandProvider for UnitCommand {
    fn release(&self, id: uuid::Uuid) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.units {
                self.discard(id).await;
            }
        })
    }

    fn unfinished(&self) -> BoxFuture<'_, ProviderResult<Vec<uuid::Uuid>>> {
        Box::pin(async move {
            match self.units {
                true => self.unfinished_here().await,
                false => Ok(Vec::new()),
            }
        })
    }

    fn exec<'a>(
        &'a self,
        request: &'a CommandExec,
        job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        Box::pin(async move {
            if !self.units {
                return self.child.exec(request, job).await;
            }
            let mut argv = vec![request.command.clone()];
            argv.extend(request.args.iter().cloned());
            self.run(
                Run {
                    program: request.command.clone(),
                    argv,
                    env: request
                        .env
                        .iter()
                        .map(|v| (v.name.clone(), v.value.clone()))
                        .collect(),
                    cwd: request.cwd.as_deref(),
                    user: request.user.as_deref(),
                    group: request.group.as_deref(),
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
            if !self.units {
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
                    env: Vec::new(),
                    cwd: request.cwd.as_deref(),
                    user: request.user.as_deref(),
                    group: request.group.as_deref(),
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
        let sh = find_program("sh", true).unwrap();
        assert!(sh.starts_with('/') && sh.ends_with("/sh"), "{sh}");
        assert_eq!(find_program("/bin/sh", true).unwrap(), "/bin/sh");
        for missing in [
            "osapi-no-such-program",
            "bin/sh",
            "/etc/passwd",
            "/nonexistent/x",
        ] {
            assert!(
                matches!(
                    find_program(missing, true),
                    Err(ProviderError::NotFound { .. })
                ),
                "{missing}"
            );
        }
        // An agent that cannot see what root sees leaves absolute paths to
        // systemd, but still looks bare names up and refuses relative paths.
        assert_eq!(
            find_program("/root/deploy.sh", false).unwrap(),
            "/root/deploy.sh"
        );
        assert_eq!(find_program("sh", false).unwrap(), sh);
        for refused in ["osapi-no-such-program", "bin/sh"] {
            assert!(
                matches!(
                    find_program(refused, false),
                    Err(ProviderError::NotFound { .. })
                ),
                "{refused}"
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
    fn environment_files_take_any_value_and_names_systemd_takes() {
        assert_eq!(env_file_value("plain"), "\"plain\"");
        assert_eq!(
            env_file_value("a \"q\" $HOME `x` \\ \nnext"),
            "\"a \\\"q\\\" \\$HOME \\`x\\` \\\\ \nnext\""
        );
        for ok in ["A", "DB_PASSWORD", "_x1"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["", "1A", "a-b", "A B", "É"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_units_end_reads_as_the_commands() {
        let ended = |code, status, result: &str| Ended {
            start: "done".into(),
            code,
            status,
            result: result.into(),
            ..Ended::default()
        };
        let result = |e: &Ended| {
            result_of(
                e,
                ("o".into(), false),
                ("e".into(), false),
                Duration::ZERO,
                "u".into(),
            )
        };
        let r = result(&ended(1, 3, "exit-code"));
        assert_eq!((r.exit_code, r.signal, r.timed_out), (Some(3), None, false));
        let r = result(&ended(1, 0, "success"));
        assert_eq!((r.exit_code, r.runner), (Some(0), CommandRunner::Unit));
        let r = result(&ended(2, 9, "signal"));
        assert_eq!((r.exit_code, r.signal), (None, Some(9)));
        let r = result(&ended(2, 15, "timeout"));
        assert_eq!((r.exit_code, r.signal, r.timed_out), (None, Some(15), true));
    }
}
