//! Commands on the host (`command.exec.execute`, `command.shell.execute`).
//!
//! [`HostCommand`] runs a program with an argument list (no shell) or a command
//! line through `/bin/sh -c`, with:
//! * stdin on `/dev/null`, the agent's environment plus the request's `env`, and
//!   the request's working directory (checked first, so a missing one is named);
//! * its own process group (`process_group(0)`), so the whole tree it starts can be
//!   killed: on timeout every process of the group gets SIGKILL and the result
//!   says `timed_out`;
//! * stdout and stderr read concurrently, each kept up to `max_output_bytes`
//!   (flagged `truncated_*`) and drained past that, so a chatty child never blocks
//!   on a full pipe; decoded as lossy UTF-8.
//!
//! The timeout covers the whole run, including the wait for output: a background
//! process that keeps the pipes open after the main process exited is killed with
//! the group when the timeout expires. Processes that leave the group (`setsid`)
//! are out of reach; the agent then stops reading their output shortly after the
//! kill instead of waiting for it.
//!
//! A command that ran is always `Ok`, whatever its exit status; the agent decides
//! that a non-zero exit, a signal or a timeout is a failed job (and still reports
//! the output). Errors are for commands that could not be started.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{
    BoxFuture, CommandExec, CommandJob, CommandProvider, CommandResult, CommandShell, OutputStream,
    ProviderError, ProviderResult,
};
use crate::config::CommandConfig;

/// The shell behind `command.shell.execute`.
pub const SHELL: &str = "/bin/sh";

/// How long output is still read after the process group was killed. Only a
/// process that escaped the group can keep the pipes open that long.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Size of each read from a pipe.
const READ_CHUNK: usize = 64 * 1024;

/// Runs commands on this host, with the agent's limits.
#[derive(Debug, Clone)]
pub struct HostCommand {
    default_timeout: Duration,
    max_timeout: Duration,
    max_output_bytes: usize,
    limits: CommandLimits,
}

/// What a command's unit may use (`MemoryMax=`, `CPUQuota=`, `TasksMax=`);
/// `None`: no limit of ours. Only the transient-unit runner applies them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandLimits {
    pub memory_max: Option<u64>,
    pub cpu_quota_percent: Option<u32>,
    pub tasks_max: Option<u64>,
}

impl HostCommand {
    /// A provider with the agent's `node.agent.command` limits.
    pub fn new(config: &CommandConfig) -> Self {
        HostCommand {
            // Validation keeps default ≤ max; min() keeps that true for hand-built configs.
            default_timeout: config.default_timeout.min(config.max_timeout),
            max_timeout: config.max_timeout,
            max_output_bytes: usize::try_from(config.max_output_bytes).unwrap_or(usize::MAX),
            limits: CommandLimits {
                memory_max: config.memory_max,
                cpu_quota_percent: config.cpu_quota_percent,
                tasks_max: config.tasks_max,
            },
        }
    }

    /// The resource limits of a command's unit.
    pub(super) fn limits(&self) -> CommandLimits {
        self.limits
    }

    /// The most output kept per stream.
    pub(super) fn max_output_bytes(&self) -> usize {
        self.max_output_bytes
    }

    /// The timeout to apply: the request's, else the agent's default. A request
    /// above this agent's maximum is refused rather than silently shortened.
    pub(super) fn timeout_for(&self, requested: Option<Duration>) -> ProviderResult<Duration> {
        match requested {
            None => Ok(self.default_timeout),
            Some(t) if t.is_zero() => Err(ProviderError::invalid("timeout", "must be positive")),
            Some(t) if t > self.max_timeout => Err(ProviderError::invalid(
                "timeout",
                format!(
                    "{} exceeds this agent's maximum of {}",
                    humantime::format_duration(t),
                    humantime::format_duration(self.max_timeout)
                ),
            )),
            Some(t) => Ok(t),
        }
    }

    async fn run(
        &self,
        mut cmd: Command,
        spawn: Spawn<'_>,
        input: Option<Vec<u8>>,
        job: CommandJob,
    ) -> ProviderResult<CommandResult> {
        let Spawn {
            program,
            cwd,
            timeout,
            operation,
        } = spawn;
        let CommandJob {
            live, mut cancel, ..
        } = job;
        let limit = self.timeout_for(timeout)?;
        if let Some(dir) = cwd {
            check_cwd(dir).await?;
            cmd.current_dir(dir);
        }
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);

        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| spawn_error(e, program, operation))?;
        // With process_group(0) the child's pid is its group id.
        let mut group = ProcessGroup::new(child.id());
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            // Written beside the reads, so a child that answers before it
            // has read everything cannot block us; closed when done.
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            return Err(ProviderError::io(
                format!("running {program}"),
                io::Error::other("the child's output pipes are missing"),
            ));
        };

        let mut out = Capture::new(self.max_output_bytes);
        let mut err = Capture::new(self.max_output_bytes);
        let (mut out_buf, mut err_buf) = (vec![0u8; READ_CHUNK], vec![0u8; READ_CHUNK]);
        let (mut out_open, mut err_open) = (true, true);
        let mut status: Option<ExitStatus> = None;
        let deadline = tokio::time::Instant::from_std(started + limit);
        let mut timed_out = false;
        let mut cancelled = false;
        // When the group was killed (timeout or cancel): output is read a
        // little longer, then no more.
        let mut killed_at: Option<tokio::time::Instant> = None;
        let (mut out_at, mut err_at) = (0u64, 0u64);

        // One loop, no spawned readers: both pipes and the exit are awaited together
        // so neither pipe can fill up while we wait on the other.
        while out_open || err_open || status.is_none() {
            tokio::select! {
                r = stdout.read(&mut out_buf), if out_open => match r {
                    Ok(0) => out_open = false,
                    Ok(n) => {
                        out.push(&out_buf[..n]);
                        live.send(OutputStream::Stdout, out_at, &out_buf[..n]);
                        out_at += n as u64;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading a command's stdout failed");
                        out_open = false;
                    }
                },
                r = stderr.read(&mut err_buf), if err_open => match r {
                    Ok(0) => err_open = false,
                    Ok(n) => {
                        err.push(&err_buf[..n]);
                        live.send(OutputStream::Stderr, err_at, &err_buf[..n]);
                        err_at += n as u64;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading a command's stderr failed");
                        err_open = false;
                    }
                },
                s = child.wait(), if status.is_none() => match s {
                    Ok(s) => status = Some(s),
                    Err(e) => return Err(ProviderError::io(format!("waiting for {program}"), e)),
                },
                _ = tokio::time::sleep_until(deadline), if killed_at.is_none() => {
                    timed_out = true;
                    group.kill();
                    killed_at = Some(tokio::time::Instant::now());
                }
                _ = cancel.requested(), if killed_at.is_none() && status.is_none() => {
                    cancelled = true;
                    group.kill();
                    killed_at = Some(tokio::time::Instant::now());
                }
                _ = tokio::time::sleep_until(killed_at.unwrap_or(deadline) + KILL_GRACE), if killed_at.is_some() => break,
            }
        }
        if status.is_none() {
            // Not even SIGKILL ended it in time (uninterruptible sleep): stop waiting.
            let _ = child.start_kill();
        }
        // Finished normally: leave any background process that let go of our pipes.
        group.disarm();

        let (stdout, truncated_stdout) = out.finish();
        let (stderr, truncated_stderr) = err.finish();
        Ok(CommandResult {
            stdout,
            stderr,
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            timed_out,
            cancelled,
            truncated_stdout,
            truncated_stderr,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            runner: super::CommandRunner::Child,
            unit: None,
        })
    }
}

/// What a child is, for its errors: the program, its directory, timeout
/// and operation.
struct Spawn<'a> {
    program: &'a str,
    cwd: Option<&'a str>,
    timeout: Option<Duration>,
    operation: &'static str,
}

/// Where commands look for programs.
pub const COMMAND_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Commands start from a clean environment: `PATH`, `LANG` and `HOME`, plus
/// what the request sets. Never the agent's own, whose `OSAPI_*` overrides and
/// credentials paths are the agent's business, not a job's.
fn clean_environment(cmd: &mut Command) {
    let lang = std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".to_owned());
    // systemd sets HOME only for services with User=; the agent runs as root.
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned());
    cmd.env_clear()
        .env("PATH", COMMAND_PATH)
        .env("LANG", lang)
        .env("HOME", home);
}

/// A child run as `user` (its uid, primary group and home; no supplementary
/// groups) and `group` when given; the agent needs `CAP_SETUID`/`CAP_SETGID`.
fn run_as(cmd: &mut Command, user: Option<&str>, group: Option<&str>) -> ProviderResult<()> {
    use nix::unistd::{Group, User};
    let lookup = |e: nix::Error| ProviderError::io("looking up an account", io::Error::from(e));
    if let Some(name) = user {
        let account =
            User::from_name(name)
                .map_err(lookup)?
                .ok_or_else(|| ProviderError::NotFound {
                    what: "user",
                    name: name.to_owned(),
                })?;
        cmd.uid(account.uid.as_raw())
            .gid(account.gid.as_raw())
            .env("HOME", &account.dir)
            .env("USER", name)
            .env("LOGNAME", name);
    }
    if let Some(name) = group {
        let group =
            Group::from_name(name)
                .map_err(lookup)?
                .ok_or_else(|| ProviderError::NotFound {
                    what: "group",
                    name: name.to_owned(),
                })?;
        cmd.gid(group.gid.as_raw());
    }
    Ok(())
}

impl CommandProvider for HostCommand {
    fn exec<'a>(
        &'a self,
        request: &'a CommandExec,
        job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        Box::pin(async move {
            children_do_not_resume(&job)?;
            let mut cmd = Command::new(&request.command);
            clean_environment(&mut cmd);
            run_as(&mut cmd, request.user.as_deref(), request.group.as_deref())?;
            cmd.args(&request.args)
                .envs(request.env.iter().map(|v| (&v.name, &v.value)));
            let spawn = Spawn {
                program: &request.command,
                cwd: request.cwd.as_deref(),
                timeout: request.timeout,
                operation: "command.exec.execute",
            };
            self.run(cmd, spawn, None, job).await
        })
    }

    fn shell<'a>(
        &'a self,
        request: &'a CommandShell,
        job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        Box::pin(async move {
            children_do_not_resume(&job)?;
            let mut cmd = Command::new(SHELL);
            clean_environment(&mut cmd);
            run_as(&mut cmd, request.user.as_deref(), request.group.as_deref())?;
            cmd.arg("-c").arg(&request.command);
            let spawn = Spawn {
                program: SHELL,
                cwd: request.cwd.as_deref(),
                timeout: request.timeout,
                operation: "command.shell.execute",
            };
            self.run(cmd, spawn, None, job).await
        })
    }
}

/// Runs one of the host's tools for a provider (`update-ca-certificates`,
/// `useradd`): an argument vector, never a shell, the clean environment,
/// `input` on its standard input (else `/dev/null`), `timeout`, and output
/// capped at 64 KiB. Its standard output when it exits 0; otherwise
/// [`ProviderError::Tool`] with how it ended and its standard error.
pub async fn run_tool(
    program: &'static str,
    args: &[&str],
    timeout: Duration,
    input: Option<Vec<u8>>,
) -> ProviderResult<String> {
    let runner = HostCommand {
        default_timeout: timeout,
        max_timeout: timeout,
        max_output_bytes: 64 * 1024,
        limits: CommandLimits::default(),
    };
    let mut cmd = Command::new(program);
    clean_environment(&mut cmd);
    cmd.args(args);
    let spawn = Spawn {
        program,
        cwd: None,
        timeout: None,
        operation: program,
    };
    let ran = runner.run(cmd, spawn, input, CommandJob::default()).await?;
    if ran.exit_code == Some(0) {
        return Ok(ran.stdout);
    }
    let ended = if ran.timed_out {
        format!("killed after {}", humantime::format_duration(timeout))
    } else if let Some(code) = ran.exit_code {
        format!("exit status {code}")
    } else {
        format!("signal {}", ran.signal.unwrap_or_default())
    };
    let said = ran.stderr.trim();
    Err(ProviderError::Tool {
        program,
        detail: if said.is_empty() {
            ended
        } else {
            format!("{ended}: {said}")
        },
    })
}

/// A child dies with the agent that started it (its unit's cgroup), so an
/// agent started again has nothing to collect.
fn children_do_not_resume(job: &CommandJob) -> ProviderResult<()> {
    match job.resume {
        true => Err(ProviderError::Interrupted {
            detail: "the command ran as a child of the agent, which stopped".into(),
        }),
        false => Ok(()),
    }
}

/// Checked before spawning: a failed `chdir` in the child looks exactly like a
/// missing program, and the user should be told which of the two it was.
pub(super) async fn check_cwd(dir: &str) -> ProviderResult<()> {
    match tokio::fs::metadata(dir).await {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ProviderError::invalid(
            "cwd",
            format!("{dir} is not a directory"),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ProviderError::NotFound {
            what: "cwd",
            name: dir.to_owned(),
        }),
        Err(e) => Err(ProviderError::io(format!("checking cwd {dir}"), e)),
    }
}

fn spawn_error(e: io::Error, program: &str, operation: &'static str) -> ProviderError {
    let not_found = e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR);
    if not_found {
        ProviderError::NotFound {
            what: "program",
            name: program.to_owned(),
        }
    } else if e.kind() == io::ErrorKind::PermissionDenied {
        ProviderError::PermissionDenied {
            operation,
            detail: format!("cannot execute {program}: {e}"),
        }
    } else {
        ProviderError::io(format!("starting {program}"), e)
    }
}

/// The child's process group. Killed on timeout, and on drop unless disarmed: a
/// job abandoned mid-run (agent stopping) must not leave its processes behind.
struct ProcessGroup {
    pgid: Option<Pid>,
}

impl ProcessGroup {
    fn new(pid: Option<u32>) -> Self {
        ProcessGroup {
            pgid: pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw),
        }
    }

    /// SIGKILL to every process of the group (`kill(-pgid, SIGKILL)`).
    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // ESRCH: everyone is gone already, which is what we wanted.
            if let Err(e) = killpg(pgid, Signal::SIGKILL)
                && e != nix::errno::Errno::ESRCH
            {
                tracing::warn!(pgid = pgid.as_raw(), error = %e, "could not kill a command's process group");
            }
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One output stream: keeps the first `cap` bytes, counts the rest as truncated.
#[derive(Debug)]
pub(crate) struct Capture {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Self {
        Capture {
            buf: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Keeps what still fits; anything beyond the cap is dropped and flagged.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.buf.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// The text (lossy UTF-8) and whether it was cut. A cut through a multi-byte
    /// character drops the partial character instead of showing U+FFFD for it.
    pub(crate) fn finish(mut self) -> (String, bool) {
        if self.truncated {
            let keep = self.buf.len() - partial_utf8_tail(&self.buf);
            self.buf.truncate(keep);
        }
        let text = match String::from_utf8(self.buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        (text, self.truncated)
    }
}

/// Length of an incomplete UTF-8 sequence at the end of `bytes` (0–3).
pub(crate) fn partial_utf8_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: look further back for the lead byte
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0, // ASCII or invalid: nothing partial to trim
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(max_output_bytes: u64) -> HostCommand {
        HostCommand::new(&CommandConfig {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            max_output_bytes,
            ..CommandConfig::default()
        })
    }

    fn exec(command: &str, args: &[&str]) -> CommandExec {
        CommandExec {
            command: command.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            cwd: None,
            user: None,
            group: None,
            env: Vec::new(),
            timeout: None,
        }
    }

    #[test]
    fn capture_caps_and_flags() {
        let mut c = Capture::new(5);
        c.push(b"abc");
        c.push(b"defgh");
        c.push(b"ijk");
        assert_eq!(c.finish(), ("abcde".to_owned(), true));

        let mut c = Capture::new(5);
        c.push(b"abcde");
        assert_eq!(c.finish(), ("abcde".to_owned(), false));

        let mut c = Capture::new(0);
        c.push(b"x");
        assert_eq!(c.finish(), (String::new(), true));
    }

    #[test]
    fn capture_does_not_split_characters() {
        // "é" is two bytes: a cap of 2 would cut it in half.
        let mut c = Capture::new(2);
        c.push("aé".as_bytes());
        assert_eq!(c.finish(), ("a".to_owned(), true));
        // Invalid bytes inside are replaced, not dropped.
        let mut c = Capture::new(10);
        c.push(b"a\xffb");
        assert_eq!(c.finish(), ("a\u{fffd}b".to_owned(), false));
    }

    #[test]
    fn partial_tail_lengths() {
        assert_eq!(partial_utf8_tail(b"abc"), 0);
        assert_eq!(partial_utf8_tail("é".as_bytes()), 0);
        assert_eq!(partial_utf8_tail(&"é".as_bytes()[..1]), 1);
        assert_eq!(partial_utf8_tail(&"€".as_bytes()[..2]), 2);
        assert_eq!(partial_utf8_tail(&"😀".as_bytes()[..3]), 3);
        assert_eq!(partial_utf8_tail("😀".as_bytes()), 0);
        assert_eq!(partial_utf8_tail(b""), 0);
    }

    #[test]
    fn timeouts_default_and_cap() {
        let p = provider(1024);
        assert_eq!(p.timeout_for(None).ok(), Some(Duration::from_secs(30)));
        assert_eq!(
            p.timeout_for(Some(Duration::from_secs(5))).ok(),
            Some(Duration::from_secs(5))
        );
        let err = p.timeout_for(Some(Duration::from_secs(301))).err();
        assert!(
            matches!(
                err,
                Some(ProviderError::Invalid(ref e)) if e.field == "timeout"
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_child_of_a_stopped_agent_is_never_run_again() {
        let p = provider(1024);
        let resume = CommandJob {
            resume: true,
            ..CommandJob::default()
        };
        let err = p.exec(&exec("/bin/echo", &["again"]), resume).await.err();
        assert!(
            matches!(err, Some(ProviderError::Interrupted { .. })),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn runs_and_reports() {
        let p = provider(1024);
        let r = p
            .exec(&exec("/bin/echo", &["a", "b"]), CommandJob::default())
            .await;
        let r = r.map_err(|e| e.to_string());
        assert!(
            matches!(&r, Ok(r) if r.stdout == "a b\n" && r.exit_code == Some(0)),
            "{r:?}"
        );

        let err = p
            .exec(&exec("/no/such/program", &[]), CommandJob::default())
            .await
            .err();
        assert!(
            matches!(&err, Some(ProviderError::NotFound { what: "program", name }) if name == "/no/such/program"),
            "{err:?}"
        );

        let mut req = exec("pwd", &[]);
        req.cwd = Some("/no/such/dir".into());
        let err = p.exec(&req, CommandJob::default()).await.err();
        assert!(
            matches!(&err, Some(ProviderError::NotFound { what: "cwd", .. })),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        let p = provider(1024);
        let req = CommandShell {
            command: "echo started; sleep 100 & sleep 100".into(),
            cwd: None,
            user: None,
            group: None,
            timeout: Some(Duration::from_millis(300)),
        };
        let r = p
            .shell(&req, CommandJob::default())
            .await
            .map_err(|e| e.to_string());
        let Ok(r) = r else { panic!("{r:?}") };
        assert!(r.timed_out, "{r:?}");
        assert_eq!(r.signal, Some(9), "{r:?}");
        // The output written before the kill is kept.
        assert_eq!(r.stdout, "started\n");
    }

    #[tokio::test]
    async fn output_goes_out_live_and_a_cancel_stops_the_group() {
        let p = provider(1024);
        let (live, mut reader) = crate::provider::LiveOutput::channel(1 << 20, Default::default());
        let (cancel, cancelled) = crate::provider::Cancel::channel();
        let job = CommandJob {
            live,
            cancel: cancelled,
            ..CommandJob::default()
        };
        let req = CommandShell {
            command: "echo started; echo warn >&2; sleep 100 & sleep 100".into(),
            cwd: None,
            user: None,
            group: None,
            timeout: Some(Duration::from_secs(60)),
        };
        let run = tokio::spawn(async move { p.shell(&req, job).await });
        // Both streams' first lines come while it runs; then it is cancelled.
        let mut seen = (String::new(), String::new());
        while seen.0.is_empty() || seen.1.is_empty() {
            let piece = reader.pieces.recv().await.unwrap();
            let text = String::from_utf8(piece.bytes).unwrap();
            match piece.stream {
                OutputStream::Stdout => seen.0 += &text,
                OutputStream::Stderr => seen.1 += &text,
            }
        }
        assert_eq!(seen, ("started\n".to_owned(), "warn\n".to_owned()));
        cancel.send_replace(true);
        let r = run.await.unwrap().map_err(|e| e.to_string());
        let Ok(r) = r else { panic!("{r:?}") };
        assert!(r.cancelled && !r.timed_out, "{r:?}");
        assert_eq!(r.signal, Some(9));
        assert_eq!(r.stdout, "started\n");
        // The runner let go of the live output when it was done.
        assert!(reader.pieces.recv().await.is_none());
    }

    #[tokio::test]
    async fn large_output_is_capped_and_drained() {
        let p = provider(1000);
        let req = CommandShell {
            command: "head -c 300000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero >&2".into(),
            cwd: None,
            user: None,
            group: None,
            timeout: Some(Duration::from_secs(20)),
        };
        let r = p
            .shell(&req, CommandJob::default())
            .await
            .map_err(|e| e.to_string());
        let Ok(r) = r else { panic!("{r:?}") };
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.stdout.len(), 1000);
        assert!(r.truncated_stdout && r.truncated_stderr);
        assert!(!r.timed_out);
    }
}
