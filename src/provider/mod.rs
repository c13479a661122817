//! Agent providers (SPEC §8): one trait per host capability.
//!
//! The agent's dispatch maps each [`crate::job::Operation`] onto one of these traits
//! and never touches the operating system itself. That keeps dispatch testable with
//! a fake ([`sim`]) and lets each real implementation be tested against the real
//! service. Traits are object safe (methods return a [`BoxFuture`]) so the agent can
//! hold them as `Arc<dyn …>` inside one [`Providers`] value.
//!
//! Implementations:
//! * [`procfs`]: OS, uptime, load, memory and disks from `/proc`, `/etc/os-release`,
//!   `uname` and `statvfs`; hostname read through `uname` ([`procfs::UnameHostname`]).
//! * [`hostnamed`]: hostname through systemd-hostnamed on the system bus, `uname`
//!   when it is not there ([`hostnamed::HostnamedHostname`]).
//! * [`resolved`]: per-interface DNS through systemd-resolved, `/etc/resolv.conf`
//!   when it is not there ([`resolved::ResolvedDns`]).
//! * [`transient`]: command jobs as transient systemd services
//!   ([`transient::UnitCommand`]), and where systemd is not PID 1,
//! * [`command`]: programs and shell command lines as children, with timeouts
//!   that kill the whole process group and capped output ([`command::HostCommand`]).
//! * [`ping`]: ICMP echo over datagram or raw ICMP sockets ([`ping::IcmpPing`]).
//! * [`trust`]: the trusted CAs, from the TLS bundle; added and removed through
//!   the distribution's tool ([`trust::HostTrust`]).
//! * [`packages`]: packages through PackageKit on the system bus
//!   ([`packages::PackageKit`]).
//! * [`users`]: accounts through NSS and the shadow tools, SSH keys written
//!   without following links ([`users::ShadowUsers`]).
//! * [`sim`]: fixed, optionally slow data for pipeline tests and benchmarks.
//! * [`Unsupported`]: a placeholder whose every call fails with
//!   [`ProviderError::Unsupported`].
//!
//! Errors are [`ProviderError`]; the agent reports them in the host's result (with
//! [`ProviderError::code`]) and carries on — a provider error never stops the agent.

pub mod command;
pub mod files;
pub mod hostnamed;
pub mod interfaces;
pub mod journal;
pub mod logind;
pub mod packages;
pub mod ping;
pub mod processes;
pub mod procfs;
pub mod resolved;
pub mod sim;
pub mod sysctl;
pub mod systemd1;
pub mod timedated;
pub mod transient;
pub mod trust;
pub mod users;

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::job::InvalidInput;
pub use journal::{LogEntries, LogEntry, LogProvider};
pub use logind::{PowerAction, PowerChange, PowerProvider, PowerStatus};
pub use processes::{ProcessInfo, ProcessProvider, ProcessSignalled, Processes};
pub use sysctl::{SysctlChange, SysctlProvider, SysctlValue, Sysctls};
pub use systemd1::{
    DropIn, DropInChange, ServiceProvider, ServiceStatus, UnitAction, UnitChange, UnitState,
    UnitStatus, UnitSummary, Units,
};
pub use timedated::{ClockChange, ClockInfo, ClockProvider, ClockSetting};
pub use trust::{CaCertificate, CaCertificates, CaChange, TrustProvider};

/// The inputs providers take are the operations' own.
pub use crate::job::{
    CommandExec, CommandShell, DnsSet, HostnameSet, LogQuery, OutputOffsets, OutputStream, Ping,
};

/// A boxed, `Send` future: what every provider method returns, so the traits stay
/// object safe without an `async_trait` dependency.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Shorthand for provider results.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// Where a long operation says how far it got (`downloading 40%`). The agent
/// reads the newest text now and then into the job's timeline; the provider
/// never waits for it.
#[derive(Debug, Default)]
pub struct Progress(Option<tokio::sync::watch::Sender<String>>);

impl Progress {
    /// A progress whose reports are read from the receiver.
    pub fn channel() -> (Progress, tokio::sync::watch::Receiver<String>) {
        let (tx, rx) = tokio::sync::watch::channel(String::new());
        (Progress(Some(tx)), rx)
    }

    /// A progress no one reads.
    pub fn none() -> Progress {
        Progress(None)
    }

    pub fn report(&self, text: String) {
        if let Some(tx) = &self.0 {
            tx.send_replace(text);
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a provider could not do what was asked.
///
/// Each variant has a stable machine-readable [`code`](ProviderError::code) that the
/// agent puts in the host's result next to the human-readable message.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The named object does not exist (e.g. an unknown network interface).
    #[error("{what} not found: {name}")]
    NotFound { what: &'static str, name: String },

    /// The agent lacks the privilege for this operation.
    #[error("permission denied for {operation}: {detail}")]
    PermissionDenied {
        operation: &'static str,
        detail: String,
    },

    /// A service the provider depends on is not there (e.g. systemd-hostnamed).
    #[error("{service} is unavailable: {detail}")]
    Unavailable {
        service: &'static str,
        detail: String,
    },

    /// The input was rejected: by the operation's own rules (its
    /// `validate`), by what the host has, or by the service asked.
    #[error("invalid {0}")]
    Invalid(#[from] InvalidInput),

    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// This agent has no implementation of the operation (yet).
    #[error("{operation} is not implemented on this agent yet")]
    Unsupported { operation: &'static str },

    /// A system file did not have the expected format.
    #[error("cannot parse {file}: {detail}")]
    Parse { file: String, detail: String },

    /// A service took the request and reported that it failed (a PackageKit
    /// transaction that ended with an error); `reason` is the service's own
    /// name for why (`dep-resolution-failed`), never one of OSAPI's.
    #[error("{service} failed: {reason}: {detail}")]
    ServiceFailed {
        service: &'static str,
        reason: String,
        detail: String,
    },

    /// A service did not finish within OSAPI's limit (and was asked to stop).
    #[error("{service} did not finish in time: {detail}")]
    ServiceTimeout {
        service: &'static str,
        detail: String,
    },

    /// A service's answer does not hold up: it reported success, or made a
    /// plan, that reading the host back contradicts.
    #[error("{service}'s answer does not hold: {detail}")]
    Unproven {
        service: &'static str,
        detail: String,
    },

    /// A job that started before the agent stopped cannot be collected:
    /// what ran it is gone (a child of the old agent, a unit no longer
    /// there), and running it again is not safe.
    #[error("interrupted: {detail}")]
    Interrupted { detail: String },

    /// One of the host's tools (`update-ca-certificates`, `useradd`) ran and
    /// failed; `detail` is how it ended and what it printed.
    #[error("{program} failed: {detail}")]
    Tool {
        program: &'static str,
        detail: String,
    },
}

impl ProviderError {
    /// Stable machine-readable code of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::NotFound { .. } => "not_found",
            ProviderError::PermissionDenied { .. } => "permission_denied",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Invalid(_) => "invalid_input",
            ProviderError::Io { .. } => "io_error",
            ProviderError::Unsupported { .. } => "unsupported",
            ProviderError::Parse { .. } => "parse_error",
            ProviderError::Tool { .. } => "tool_failed",
            ProviderError::ServiceFailed { .. } => "service_failed",
            ProviderError::ServiceTimeout { .. } => "service_timeout",
            ProviderError::Unproven { .. } => "unproven",
            ProviderError::Interrupted { .. } => "interrupted",
        }
    }

    /// The input `field` is refused, and why.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ProviderError::Invalid(InvalidInput::new(field, reason))
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        ProviderError::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds a parse error for `file`.
    pub fn parse(file: impl Into<String>, detail: impl Into<String>) -> Self {
        ProviderError::Parse {
            file: file.into(),
            detail: detail.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Hostname
// ---------------------------------------------------------------------------

/// Where hostname information came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostnameSource {
    /// `org.freedesktop.hostname1` (systemd-hostnamed).
    Hostnamed,
    /// The kernel's `uname` nodename: hostnamed was not available.
    Uname,
}

/// The host's names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct HostnameInfo {
    /// The current (transient) hostname, as the kernel has it.
    pub hostname: String,
    /// The configured hostname (`/etc/hostname`), when the source knows it.
    pub static_hostname: Option<String>,
    /// The free-form, human-readable name, when set and known.
    pub pretty_hostname: Option<String>,
    pub source: HostnameSource,
}

/// What `node.hostname.set` did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct HostnameChange {
    /// Whether any name changed (or, in a dry run, would).
    pub changed: bool,
    pub dry_run: bool,
    pub before: HostnameInfo,
    /// After the change; in a dry run, what it would be.
    pub after: HostnameInfo,
}

/// Reads and sets the host's names.
pub trait HostnameProvider: Send + Sync {
    /// Current hostname, static and pretty hostnames where known, and the source.
    fn get(&self) -> BoxFuture<'_, ProviderResult<HostnameInfo>>;

    /// Sets the static and transient hostname (and the pretty one when given),
    /// unless they are so already; the names before and after.
    fn set<'a>(&'a self, change: &'a HostnameSet) -> BoxFuture<'a, ProviderResult<HostnameChange>>;
}

// ---------------------------------------------------------------------------
// Host information
// ---------------------------------------------------------------------------

/// The running kernel, from `uname`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct KernelInfo {
    /// e.g. `Linux`.
    pub name: String,
    /// e.g. `6.1.0-18-amd64`.
    pub release: String,
    /// Hardware architecture, e.g. `x86_64`.
    pub machine: String,
}

/// Operating system, from `/etc/os-release`, plus the kernel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct OsInfo {
    /// `NAME`, e.g. `Debian GNU/Linux`.
    pub name: String,
    /// `ID`, e.g. `debian`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`; absent on rolling releases.
    pub version_id: Option<String>,
    /// `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: String,
    pub kernel: KernelInfo,
}

/// Time since boot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UptimeInfo {
    /// Whole seconds since boot.
    pub seconds: u64,
    /// e.g. `3 days, 4 hours, 5 minutes`.
    pub human: String,
}

/// Load averages and task counts, from `/proc/loadavg`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LoadInfo {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Tasks currently runnable.
    pub running_tasks: u64,
    /// Tasks (threads) in existence.
    pub total_tasks: u64,
}

/// Memory and swap in bytes, from `/proc/meminfo`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct MemoryInfo {
    pub total_bytes: u64,
    /// Memory available for new work without swapping (`MemAvailable`).
    pub available_bytes: u64,
    /// `total - available`.
    pub used_bytes: u64,
    /// Completely unused memory (`MemFree`).
    pub free_bytes: u64,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub swap_free_bytes: u64,
    /// `used / total`, 0–100, two decimals.
    pub used_percent: f64,
    /// `swap used / swap total`, 0–100, two decimals; 0 without swap.
    pub swap_used_percent: f64,
}

/// One real mounted filesystem, from `statvfs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DiskInfo {
    pub mount_point: String,
    /// The mount source, e.g. `/dev/sda1`, `overlay`, `server:/export`.
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Space available to unprivileged users (excludes root-reserved blocks).
    pub free_bytes: u64,
    /// `used / (used + free)`, as `df` computes it, 0–100, two decimals.
    pub used_percent: f64,
}

/// Every real mounted filesystem: the result of `node.disk.get`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct Disks(pub Vec<DiskInfo>);

/// Everything `node.status.get` reports, in one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct NodeStatus {
    pub hostname: String,
    pub uptime: UptimeInfo,
    /// OS release and (in `os.kernel`) the running kernel.
    pub os: OsInfo,
    pub load: LoadInfo,
    pub memory: MemoryInfo,
    pub disks: Vec<DiskInfo>,
}

/// Read-only facts about the host.
pub trait HostInfoProvider: Send + Sync {
    fn os(&self) -> BoxFuture<'_, ProviderResult<OsInfo>>;
    fn uptime(&self) -> BoxFuture<'_, ProviderResult<UptimeInfo>>;
    fn load(&self) -> BoxFuture<'_, ProviderResult<LoadInfo>>;
    fn memory(&self) -> BoxFuture<'_, ProviderResult<MemoryInfo>>;
    /// Real mounted filesystems; pseudo filesystems are skipped.
    fn disks(&self) -> BoxFuture<'_, ProviderResult<Vec<DiskInfo>>>;
    /// Hostname, uptime, OS and kernel, load, memory and disks in one.
    fn status(&self) -> BoxFuture<'_, ProviderResult<NodeStatus>>;
}

// ---------------------------------------------------------------------------
// DNS (implementation in [`resolved`])
// ---------------------------------------------------------------------------

/// Where DNS configuration came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DnsSource {
    /// `org.freedesktop.resolve1` (systemd-resolved), per link.
    Resolved,
    /// `/etc/resolv.conf`: resolved was not available; not per interface.
    ResolvConf,
}

/// DNS servers and search domains of one interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DnsConfig {
    pub interface: String,
    /// Server IP addresses.
    pub servers: Vec<String>,
    pub search_domains: Vec<String>,
    pub source: DnsSource,
}

/// A link's DNS servers and search domains.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DnsSettings {
    /// Server IP addresses.
    pub servers: Vec<String>,
    /// Search domains; `~domain` routes queries only.
    pub search_domains: Vec<String>,
}

/// Result of `network.dns.set`: the settings before and after, and whether
/// they survive a reboot (resolved's runtime settings do not on their own).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DnsChangeResult {
    pub interface: String,
    /// Whether anything changed (or, in a dry run, would).
    pub changed: bool,
    pub dry_run: bool,
    pub before: DnsSettings,
    /// After the change, as resolved shows it; in a dry run, what it would be.
    pub after: DnsSettings,
    pub source: DnsSource,
    /// The settings are (or would be) also where the host's network manager
    /// reads them.
    pub persisted: bool,
    /// Where the change was persisted, or why it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Reads and sets per-interface DNS configuration.
pub trait DnsProvider: Send + Sync {
    /// Fails with [`ProviderError::NotFound`] for an unknown interface.
    fn get<'a>(&'a self, interface: &'a str) -> BoxFuture<'a, ProviderResult<DnsConfig>>;
    fn set<'a>(&'a self, change: &'a DnsSet) -> BoxFuture<'a, ProviderResult<DnsChangeResult>>;
}

// ---------------------------------------------------------------------------
// Ping (implementation in [`ping`])
// ---------------------------------------------------------------------------

/// Outcome of a ping run. Round-trip times are absent when nothing came back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PingResult {
    /// The address as asked.
    pub address: String,
    /// The IP address actually pinged.
    pub resolved: String,
    pub sent: u32,
    pub received: u32,
    pub loss_percent: f64,
    pub rtt_min_ms: Option<f64>,
    pub rtt_avg_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
    pub rtt_stddev_ms: Option<f64>,
}

/// ICMP echo without spawning `ping`.
pub trait PingProvider: Send + Sync {
    fn ping<'a>(&'a self, request: &'a Ping) -> BoxFuture<'a, ProviderResult<PingResult>>;
}

// ---------------------------------------------------------------------------
// Command (implementation in [`command`])
// ---------------------------------------------------------------------------

/// Timeout of a command when the caller gives none (SPEC §8); one value with
/// the job domain's, which also sizes job deadlines from it.
pub use crate::job::DEFAULT_COMMAND_TIMEOUT;

/// Outcome of a command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CommandResult {
    pub stdout: String,
    pub stderr: String,
    /// Exit code when the process exited normally.
    pub exit_code: Option<i32>,
    /// Signal number when the process was killed by a signal.
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Stopped because someone cancelled the job; the output is what it
    /// printed until then.
    #[serde(default)]
    pub cancelled: bool,
    pub truncated_stdout: bool,
    pub truncated_stderr: bool,
    pub duration_ms: u64,
    /// What ran it: a transient systemd unit, or a child of the agent.
    #[serde(default)]
    pub runner: CommandRunner,
    /// The transient unit it ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// How a command ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommandRunner {
    /// A child process of the agent (where systemd is not PID 1).
    #[default]
    Child,
    /// A transient systemd service of its own, outside the agent's sandbox.
    Unit,
}

/// Which job a command runs for, and what goes with it while it runs.
///
/// A runner that keeps commands apart from the agent names the command after
/// the job, so that an agent started again finds it: `resume` asks to collect
/// that command, never to start it, and `resume_from` says how much of its
/// output was already sent live. Output goes to `live` as it comes; `cancel`
/// fires when someone asks to stop the command.
#[derive(Debug, Clone, Default)]
pub struct CommandJob {
    pub id: Option<uuid::Uuid>,
    pub resume: bool,
    pub resume_from: OutputOffsets,
    pub live: LiveOutput,
    pub cancel: Cancel,
}

/// Bytes a command printed, in order, with where they start in their stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPiece {
    pub stream: OutputStream,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Where a command's output goes as it is printed (the agent streams it to
/// whoever follows the job). Handing bytes on never waits: a runner's
/// deadline and cancel are never held up by a slow bus. What lies past the
/// live cap is not handed on (but for its first byte, which tells the
/// reader that the stream was cut), so what can queue up is bounded.
#[derive(Debug, Clone, Default)]
pub struct LiveOutput(Option<LiveSender>);

#[derive(Debug, Clone)]
struct LiveSender {
    tx: tokio::sync::mpsc::UnboundedSender<OutputPiece>,
    cap: u64,
    /// How far each stream was sent on (stdout, stderr), as the reader says.
    sent: Arc<[std::sync::atomic::AtomicU64; 2]>,
}

/// The reader's side of a [`LiveOutput`]: the pieces, and where it reports
/// how far it sent them on.
pub struct LiveReader {
    pub pieces: tokio::sync::mpsc::UnboundedReceiver<OutputPiece>,
    sent: Arc<[std::sync::atomic::AtomicU64; 2]>,
}

impl LiveReader {
    /// Each stream is done with up to `sent` (a runner may then free it;
    /// `u64::MAX`: all of it).
    pub fn confirm(&self, sent: OutputOffsets) {
        use std::sync::atomic::Ordering::Relaxed;
        self.sent[0].store(sent.stdout, Relaxed);
        self.sent[1].store(sent.stderr, Relaxed);
    }
}

impl LiveOutput {
    /// Live output of at most `cap` bytes per stream, read from the reader;
    /// `from` is how far an earlier reader sent it.
    pub fn channel(cap: u64, from: OutputOffsets) -> (LiveOutput, LiveReader) {
        use std::sync::atomic::AtomicU64;
        let (tx, pieces) = tokio::sync::mpsc::unbounded_channel();
        let sent = Arc::new([AtomicU64::new(from.stdout), AtomicU64::new(from.stderr)]);
        let sender = LiveSender {
            tx,
            cap,
            sent: sent.clone(),
        };
        (LiveOutput(Some(sender)), LiveReader { pieces, sent })
    }

    /// Hands on `bytes`, which start at `offset` of their stream; nothing
    /// when no one reads (or the reader is gone).
    pub fn send(&self, stream: OutputStream, offset: u64, bytes: &[u8]) {
        let Some(sender) = &self.0 else { return };
        // One byte past the cap still goes: the reader reports the cut.
        let room = sender.cap.saturating_add(1).saturating_sub(offset);
        let len = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if len > 0 {
            let piece = OutputPiece {
                stream,
                offset,
                bytes: bytes[..len].to_vec(),
            };
            let _ = sender.tx.send(piece);
        }
    }

    /// How far the reader sent each stream on (all of it when no one reads).
    pub fn sent(&self) -> OutputOffsets {
        use std::sync::atomic::Ordering::Relaxed;
        match &self.0 {
            Some(s) => OutputOffsets {
                stdout: s.sent[0].load(Relaxed),
                stderr: s.sent[1].load(Relaxed),
                ..OutputOffsets::default()
            },
            None => OutputOffsets {
                stdout: u64::MAX,
                stderr: u64::MAX,
                ..OutputOffsets::default()
            },
        }
    }
}

/// Fires when someone asked to stop the job ([`Cancel::requested`]).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<tokio::sync::watch::Receiver<bool>>);

impl Cancel {
    /// A cancel fired through the sender.
    pub fn channel() -> (tokio::sync::watch::Sender<bool>, Cancel) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Cancel(Some(rx)))
    }

    /// Resolves once a cancel was asked for; never when none can be.
    pub async fn requested(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                if rx.wait_for(|asked| *asked).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }

    /// Whether a cancel was asked for already.
    pub fn is_requested(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }
}

/// Runs commands on the host.
pub trait CommandProvider: Send + Sync {
    fn exec<'a>(
        &'a self,
        request: &'a CommandExec,
        job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>>;
    fn shell<'a>(
        &'a self,
        request: &'a CommandShell,
        job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>>;

    /// The job's command is stored: what was kept for it until then goes.
    fn release(&self, _id: uuid::Uuid) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Jobs whose commands a runner that outlives the agent still holds
    /// here (running, or ended and not yet stored).
    fn unfinished(&self) -> BoxFuture<'_, ProviderResult<Vec<uuid::Uuid>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

// ---------------------------------------------------------------------------
// Unsupported placeholder
// ---------------------------------------------------------------------------

/// Stands in for providers not written yet, so the agent can be wired now: every
/// call fails with [`ProviderError::Unsupported`] naming the operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unsupported;

fn unsupported<'a, T: Send + 'a>(operation: &'static str) -> BoxFuture<'a, ProviderResult<T>> {
    Box::pin(std::future::ready(Err(ProviderError::Unsupported {
        operation,
    })))
}

impl DnsProvider for Unsupported {
    fn get<'a>(&'a self, _interface: &'a str) -> BoxFuture<'a, ProviderResult<DnsConfig>> {
        unsupported("network.dns.get")
    }
    fn set<'a>(&'a self, _change: &'a DnsSet) -> BoxFuture<'a, ProviderResult<DnsChangeResult>> {
        unsupported("network.dns.set")
    }
}

impl PingProvider for Unsupported {
    fn ping<'a>(&'a self, _request: &'a Ping) -> BoxFuture<'a, ProviderResult<PingResult>> {
        unsupported("network.ping.do")
    }
}

impl ClockProvider for Unsupported {
    fn get(&self) -> BoxFuture<'_, ProviderResult<ClockInfo>> {
        unsupported("time.clock.get")
    }
    fn change<'a>(
        &'a self,
        _setting: ClockSetting<'a>,
        _dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<ClockChange>> {
        unsupported("time.change")
    }
}

impl ProcessProvider for Unsupported {
    fn list<'a>(
        &'a self,
        _query: &'a crate::job::ProcessList,
    ) -> BoxFuture<'a, ProviderResult<Processes>> {
        unsupported("process.list")
    }
    fn get(&self, _pid: u32) -> BoxFuture<'_, ProviderResult<ProcessInfo>> {
        unsupported("process.get")
    }
    fn signal<'a>(
        &'a self,
        _request: &'a crate::job::ProcessSignal,
    ) -> BoxFuture<'a, ProviderResult<ProcessSignalled>> {
        unsupported("process.signal")
    }
}

impl SysctlProvider for Unsupported {
    fn list<'a>(&'a self, _prefix: Option<&'a str>) -> BoxFuture<'a, ProviderResult<Sysctls>> {
        unsupported("sysctl.key.list")
    }
    fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, ProviderResult<SysctlValue>> {
        unsupported("sysctl.key.get")
    }
    fn set<'a>(
        &'a self,
        _key: &'a str,
        _value: Option<&'a str>,
        _dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<SysctlChange>> {
        unsupported("sysctl.key.set")
    }
}

impl TrustProvider for Unsupported {
    fn list(&self, _local_only: bool) -> BoxFuture<'_, ProviderResult<CaCertificates>> {
        unsupported("cert.ca.list")
    }
    fn add<'a>(
        &'a self,
        _request: &'a crate::job::CaAdd,
    ) -> BoxFuture<'a, ProviderResult<CaChange>> {
        unsupported("cert.ca.add")
    }
    fn remove<'a>(
        &'a self,
        _request: &'a crate::job::CaRef,
    ) -> BoxFuture<'a, ProviderResult<CaChange>> {
        unsupported("cert.ca.remove")
    }
}

impl users::UserProvider for Unsupported {
    fn list(&self, _system: bool) -> BoxFuture<'_, ProviderResult<users::Users>> {
        unsupported("user.account.list")
    }
    fn get<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, ProviderResult<users::UserInfo>> {
        unsupported("user.account.get")
    }
    fn add<'a>(
        &'a self,
        _request: &'a crate::job::UserAccount,
    ) -> BoxFuture<'a, ProviderResult<users::UserChange>> {
        unsupported("user.account.add")
    }
    fn modify<'a>(
        &'a self,
        _request: &'a crate::job::UserAccount,
    ) -> BoxFuture<'a, ProviderResult<users::UserChange>> {
        unsupported("user.account.modify")
    }
    fn lock<'a>(
        &'a self,
        _request: &'a crate::job::UserRef,
        _lock: bool,
    ) -> BoxFuture<'a, ProviderResult<users::UserChange>> {
        unsupported("user.account.lock")
    }
    fn delete<'a>(
        &'a self,
        _request: &'a crate::job::UserDelete,
    ) -> BoxFuture<'a, ProviderResult<users::UserChange>> {
        unsupported("user.account.delete")
    }
    fn set_password<'a>(
        &'a self,
        _request: &'a crate::job::UserPassword,
    ) -> BoxFuture<'a, ProviderResult<users::UserChange>> {
        unsupported("user.password.set")
    }
    fn keys<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, ProviderResult<users::SshKeys>> {
        unsupported("user.key.list")
    }
    fn change_key<'a>(
        &'a self,
        _request: &'a crate::job::UserKey,
        _add: bool,
    ) -> BoxFuture<'a, ProviderResult<users::SshKeyChange>> {
        unsupported("user.key.add")
    }
    fn groups(&self) -> BoxFuture<'_, ProviderResult<users::Groups>> {
        unsupported("user.group.list")
    }
    fn group<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, ProviderResult<users::GroupInfo>> {
        unsupported("user.group.get")
    }
    fn add_group<'a>(
        &'a self,
        _request: &'a crate::job::GroupAdd,
    ) -> BoxFuture<'a, ProviderResult<users::GroupChange>> {
        unsupported("user.group.add")
    }
    fn delete_group<'a>(
        &'a self,
        _request: &'a crate::job::GroupRef,
    ) -> BoxFuture<'a, ProviderResult<users::GroupChange>> {
        unsupported("user.group.delete")
    }
}

impl packages::PackageProvider for Unsupported {
    fn list(&self) -> BoxFuture<'_, ProviderResult<packages::Packages>> {
        unsupported("package.list")
    }
    fn search<'a>(&'a self, _text: &'a str) -> BoxFuture<'a, ProviderResult<packages::Packages>> {
        unsupported("package.search")
    }
    fn get<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, ProviderResult<packages::PackageInfo>> {
        unsupported("package.get")
    }
    fn updates(&self) -> BoxFuture<'_, ProviderResult<packages::PendingUpdates>> {
        unsupported("package.updates")
    }
    fn install<'a>(
        &'a self,
        _request: &'a crate::job::PackageNames,
        _progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<packages::PackageChange>> {
        unsupported("package.install")
    }
    fn remove<'a>(
        &'a self,
        _request: &'a crate::job::PackageNames,
        _progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<packages::PackageChange>> {
        unsupported("package.remove")
    }
    fn update<'a>(
        &'a self,
        _request: &'a crate::job::PackageUpdate,
        _progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<packages::PackageChange>> {
        unsupported("package.update")
    }
    fn refresh<'a>(
        &'a self,
        _request: &'a crate::job::PackageRefresh,
        _progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<packages::CacheRefresh>> {
        unsupported("package.refresh")
    }
}

impl files::FileProvider for Unsupported {
    fn deploy<'a>(
        &'a self,
        _request: &'a crate::job::FileDeploy,
    ) -> BoxFuture<'a, ProviderResult<files::FileDeployed>> {
        unsupported("file.deploy")
    }
    fn status<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, ProviderResult<files::FileStatuses>> {
        unsupported("file.status")
    }
    fn undeploy<'a>(
        &'a self,
        _request: &'a crate::job::FileUndeploy,
    ) -> BoxFuture<'a, ProviderResult<files::FileUndeployed>> {
        unsupported("file.undeploy")
    }
}

impl interfaces::InterfaceProvider for Unsupported {
    fn list(&self) -> BoxFuture<'_, ProviderResult<interfaces::Interfaces>> {
        unsupported("network.interface.list")
    }
    fn get<'a>(
        &'a self,
        _name: &'a str,
    ) -> BoxFuture<'a, ProviderResult<interfaces::InterfaceInfo>> {
        unsupported("network.interface.get")
    }
    fn set<'a>(
        &'a self,
        _request: &'a crate::job::InterfaceSet,
    ) -> BoxFuture<'a, ProviderResult<interfaces::InterfaceChange>> {
        unsupported("network.interface.set")
    }
}

impl PowerProvider for Unsupported {
    fn status(&self) -> BoxFuture<'_, ProviderResult<PowerStatus>> {
        unsupported("power.status.get")
    }
    fn change<'a>(
        &'a self,
        _action: PowerAction,
        _delay: std::time::Duration,
        _message: Option<&'a str>,
        _dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<PowerChange>> {
        unsupported("power.change")
    }
}

impl LogProvider for Unsupported {
    fn query<'a>(&'a self, _query: &'a LogQuery) -> BoxFuture<'a, ProviderResult<LogEntries>> {
        unsupported("log.entries.get")
    }
}

impl ServiceProvider for Unsupported {
    fn list<'a>(
        &'a self,
        _query: &'a crate::job::ServiceList,
    ) -> BoxFuture<'a, ProviderResult<Units>> {
        unsupported("service.unit.list")
    }
    fn get<'a>(&'a self, _unit: &'a str) -> BoxFuture<'a, ProviderResult<UnitStatus>> {
        unsupported("service.unit.get")
    }
    fn change<'a>(
        &'a self,
        _action: UnitAction,
        _request: &'a crate::job::ServiceChange,
    ) -> BoxFuture<'a, ProviderResult<UnitChange>> {
        unsupported("service.unit.change")
    }
    fn dropin_get<'a>(
        &'a self,
        _file: &'a crate::job::DropInRef,
    ) -> BoxFuture<'a, ProviderResult<DropIn>> {
        unsupported("service.dropin.get")
    }
    fn dropin_set<'a>(
        &'a self,
        _file: crate::job::DropInRef,
        _content: Option<&'a str>,
        _dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<DropInChange>> {
        unsupported("service.dropin.set")
    }
}

impl CommandProvider for Unsupported {
    fn exec<'a>(
        &'a self,
        _request: &'a CommandExec,
        _job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        unsupported("command.exec.execute")
    }
    fn shell<'a>(
        &'a self,
        _request: &'a CommandShell,
        _job: CommandJob,
    ) -> BoxFuture<'a, ProviderResult<CommandResult>> {
        unsupported("command.shell.execute")
    }
}

// ---------------------------------------------------------------------------
// The bundle
// ---------------------------------------------------------------------------

/// Every provider the agent needs, in one cheaply clonable value.
#[derive(Clone)]
pub struct Providers {
    pub hostname: Arc<dyn HostnameProvider>,
    pub host_info: Arc<dyn HostInfoProvider>,
    pub dns: Arc<dyn DnsProvider>,
    pub ping: Arc<dyn PingProvider>,
    pub command: Arc<dyn CommandProvider>,
    pub service: Arc<dyn ServiceProvider>,
    pub clock: Arc<dyn ClockProvider>,
    pub log: Arc<dyn LogProvider>,
    pub power: Arc<dyn PowerProvider>,
    pub sysctl: Arc<dyn SysctlProvider>,
    pub processes: Arc<dyn ProcessProvider>,
    pub trust: Arc<dyn TrustProvider>,
    pub users: Arc<dyn users::UserProvider>,
    pub interfaces: Arc<dyn interfaces::InterfaceProvider>,
    /// Whether the agent still reaches NATS: attached once connected.
    pub reach: Arc<interfaces::ReachSlot>,
    pub files: Arc<dyn files::FileProvider>,
    pub packages: Arc<dyn packages::PackageProvider>,
    /// Where `files` fetches from: attached by the agent once connected.
    pub file_source: Arc<files::SourceSlot>,
}

impl Providers {
    /// The providers for the real host: `/proc` and friends for host facts,
    /// systemd-hostnamed and systemd-resolved on the system bus for the hostname and
    /// DNS (with `uname` and `/etc/resolv.conf` as read fallbacks), ICMP sockets for
    /// ping, and commands with the agent's `node.agent.command` limits.
    pub fn system(command: &crate::config::CommandConfig) -> Self {
        // One system-bus connection for both D-Bus providers, made on first use.
        let bus = Arc::new(hostnamed::SystemBus::new());
        let file_source = Arc::new(files::SourceSlot::default());
        let reach = Arc::new(interfaces::ReachSlot::default());
        Providers {
            hostname: Arc::new(hostnamed::HostnamedHostname::new(bus.clone())),
            host_info: Arc::new(procfs::ProcfsHostInfo),
            dns: Arc::new(resolved::ResolvedDns::new(bus.clone())),
            service: Arc::new(systemd1::Systemd1Units::new(bus.clone())),
            clock: Arc::new(timedated::TimedatedClock::new(bus.clone())),
            power: Arc::new(logind::LogindPower::new(bus.clone())),
            sysctl: Arc::new(sysctl::ProcSysctl::new(bus.clone())),
            processes: Arc::new(processes::ProcProcesses::new()),
            trust: Arc::new(trust::HostTrust::new(trust::TrustStore::detect())),
            users: Arc::new(users::ShadowUsers),
            interfaces: Arc::new(interfaces::KernelInterfaces::new(
                bus.clone(),
                reach.clone(),
            )),
            reach,
            files: Arc::new(files::DeployedFiles::new(
                file_source.clone(),
                crate::files::agent_state_dir(),
            )),
            file_source,
            packages: Arc::new(packages::PackageKit::new(bus.clone())),
            log: Arc::new(journal::JournalFiles::new()),
            ping: Arc::new(ping::IcmpPing::new()),
            command: Arc::new(transient::UnitCommand::new(
                bus.clone(),
                command::HostCommand::new(command),
                &crate::files::agent_state_dir(),
            )),
        }
    }
}

impl fmt::Debug for Providers {
    // The trait objects are not Debug; say what the struct is without them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Providers").finish_non_exhaustive()
    }
}

/// A file's text, or `None` when it is not there.
fn read_optional(path: &std::path::Path) -> ProviderResult<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProviderError::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes a configuration file whole (mode 0644, its directory made), or
/// removes it (`None`; a missing one is fine). The directory stays: it is
/// the distribution's.
fn put_file(path: &std::path::Path, text: Option<&str>) -> ProviderResult<()> {
    let failed = |e| ProviderError::io(format!("writing {}", path.display()), e);
    match text {
        Some(text) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(failed)?;
            }
            crate::files::replace(path, text.as_bytes(), 0o644).map_err(failed)
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(failed(e)),
            _ => Ok(()),
        },
    }
}

/// Rounds a percentage to two decimals, so results do not carry float noise.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    let p = part as f64 * 100.0 / whole as f64;
    (p * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable() {
        let cases: Vec<(ProviderError, &str)> = vec![
            (
                ProviderError::NotFound {
                    what: "interface",
                    name: "eth9".into(),
                },
                "not_found",
            ),
            (
                ProviderError::PermissionDenied {
                    operation: "node.hostname.set",
                    detail: "x".into(),
                },
                "permission_denied",
            ),
            (
                ProviderError::Unavailable {
                    service: "systemd-hostnamed",
                    detail: "x".into(),
                },
                "unavailable",
            ),
            (
                ProviderError::Invalid(InvalidInput::new("hostname", "bad")),
                "invalid_input",
            ),
            (
                ProviderError::io("reading /proc/x", io::Error::other("boom")),
                "io_error",
            ),
            (
                ProviderError::Unsupported {
                    operation: "network.dns.get",
                },
                "unsupported",
            ),
            (ProviderError::parse("/proc/meminfo", "bad"), "parse_error"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err}");
        }
        let err = ProviderError::NotFound {
            what: "interface",
            name: "eth9".into(),
        };
        assert_eq!(err.to_string(), "interface not found: eth9");
    }

    #[tokio::test]
    async fn unsupported_names_the_operation() {
        let err = DnsProvider::get(&Unsupported, "eth0").await.err();
        assert!(matches!(
            err,
            Some(ProviderError::Unsupported {
                operation: "network.dns.get"
            })
        ));
        let request = CommandShell {
            command: "true".into(),
            cwd: None,
            user: None,
            group: None,
            timeout: Some(DEFAULT_COMMAND_TIMEOUT),
        };
        let err = Unsupported
            .shell(&request, CommandJob::default())
            .await
            .err();
        let Some(err) = err else {
            panic!("expected an error")
        };
        assert_eq!(err.code(), "unsupported");
        assert_eq!(
            err.to_string(),
            "command.shell.execute is not implemented on this agent yet"
        );
    }

    #[test]
    fn percent_rounds_and_handles_zero() {
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(10, 10), 100.0);
    }

    #[test]
    fn results_serialize_snake_case() {
        let info = HostnameInfo {
            hostname: "h".into(),
            static_hostname: None,
            pretty_hostname: Some("P".into()),
            source: HostnameSource::Uname,
        };
        let json = serde_json::to_value(&info).ok();
        assert_eq!(
            json,
            Some(serde_json::json!({
                "hostname": "h", "static_hostname": null, "pretty_hostname": "P", "source": "uname"
            }))
        );
        let src = serde_json::to_value(DnsSource::ResolvConf).ok();
        assert_eq!(src, Some(serde_json::json!("resolv_conf")));
    }
}
