//! Host facts from the kernel's files: `/etc/os-release`, `/proc/uptime`,
//! `/proc/loadavg`, `/proc/meminfo`, `/proc/self/mountinfo` + `statvfs`, and `uname`.
//!
//! Every format is parsed by a pure function taking `&str` (unit-tested against
//! fixture text below); the provider methods only read the files and call them.
//! Also here: [`UnameHostname`], the hostname provider used when systemd-hostnamed
//! is not available — it reads the kernel's nodename and cannot set anything.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::statvfs::{Statvfs, statvfs};
use nix::sys::utsname::uname;

use super::{
    BoxFuture, DiskInfo, HostInfoProvider, HostnameChange, HostnameInfo, HostnameProvider,
    HostnameSet, HostnameSource, KernelInfo, LoadInfo, MemoryInfo, NodeStatus, OsInfo,
    ProviderError, ProviderResult, UptimeInfo, percent,
};

const OS_RELEASE_PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
const UPTIME_PATH: &str = "/proc/uptime";
const LOADAVG_PATH: &str = "/proc/loadavg";
const MEMINFO_PATH: &str = "/proc/meminfo";
const MOUNTINFO_PATH: &str = "/proc/self/mountinfo";

/// How long all `statvfs` calls of one `disks()` may take together: a dead network
/// filesystem can block `statvfs` indefinitely, and that must not hang the job.
const STATVFS_DEADLINE: Duration = Duration::from_secs(5);

/// Filesystem types that never hold user data: kernel interfaces, memory-backed
/// and read-only image filesystems (snap `squashfs`). `overlay` is kept on purpose:
/// it is a container's root filesystem. FUSE subtypes (`fuse.*`) are skipped too:
/// they are mostly virtual (lxcfs, gvfs, portal, snapfuse) and a dead FUSE server
/// makes `statvfs` hang; `fuseblk` (ntfs-3g on a block device) is kept.
const PSEUDO_FS_TYPES: &[&str] = &[
    "anon_inodefs",
    "apparmorfs",
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "cpuset",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nfsd",
    "nsfs",
    "pipefs",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "smackfs",
    "sockfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

// ---------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------

/// [`HostInfoProvider`] reading the real host's `/proc`, `/etc/os-release`,
/// `uname` and `statvfs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcfsHostInfo;

impl ProcfsHostInfo {
    async fn read_os() -> ProviderResult<OsInfo> {
        let mut release = OsRelease::default();
        // os-release(5): /etc first, then /usr/lib; neither present means defaults.
        for path in OS_RELEASE_PATHS {
            match tokio::fs::read_to_string(path).await {
                Ok(text) => {
                    release = parse_os_release(&text);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ProviderError::io(format!("reading {path}"), e)),
            }
        }
        let (_, kernel) = uname_info()?;
        Ok(OsInfo {
            name: release.name,
            id: release.id,
            version_id: release.version_id,
            pretty_name: release.pretty_name,
            kernel,
        })
    }

    async fn read_uptime() -> ProviderResult<UptimeInfo> {
        let seconds = parse_uptime(&read(UPTIME_PATH).await?)?;
        Ok(UptimeInfo {
            seconds,
            human: humanize_duration(seconds),
        })
    }

    async fn read_load() -> ProviderResult<LoadInfo> {
        parse_loadavg(&read(LOADAVG_PATH).await?)
    }

    async fn read_memory() -> ProviderResult<MemoryInfo> {
        parse_meminfo(&read(MEMINFO_PATH).await?)
    }

    async fn read_disks() -> ProviderResult<Vec<DiskInfo>> {
        let mounts = select_real_mounts(parse_mountinfo(&read(MOUNTINFO_PATH).await?));
        // One blocking task per mount, all under one deadline, so a hung network
        // mount costs at most STATVFS_DEADLINE and only its own entry.
        let deadline = tokio::time::Instant::now() + STATVFS_DEADLINE;
        let tasks: Vec<_> = mounts
            .into_iter()
            .map(|mount| {
                let path = mount.mount_point.clone();
                (mount, tokio::task::spawn_blocking(move || statvfs(&path)))
            })
            .collect();
        let mut disks = Vec::with_capacity(tasks.len());
        for (mount, task) in tasks {
            let shown = mount.mount_point.display();
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(st))) => disks.extend(disk_info(&mount, &Usage::from(&st))),
                Ok(Ok(Err(errno))) => {
                    tracing::warn!(mount_point = %shown, error = %errno, "statvfs failed; mount skipped");
                }
                Ok(Err(join)) => {
                    tracing::warn!(mount_point = %shown, error = %join, "statvfs task failed; mount skipped");
                }
                Err(_) => {
                    tracing::warn!(mount_point = %shown, "statvfs timed out; mount skipped");
                }
            }
        }
        Ok(disks)
    }
}

impl HostInfoProvider for ProcfsHostInfo {
    fn os(&self) -> BoxFuture<'_, ProviderResult<OsInfo>> {
        Box::pin(Self::read_os())
    }

    fn uptime(&self) -> BoxFuture<'_, ProviderResult<UptimeInfo>> {
        Box::pin(Self::read_uptime())
    }

    fn load(&self) -> BoxFuture<'_, ProviderResult<LoadInfo>> {
        Box::pin(Self::read_load())
    }

    fn memory(&self) -> BoxFuture<'_, ProviderResult<MemoryInfo>> {
        Box::pin(Self::read_memory())
    }

    fn disks(&self) -> BoxFuture<'_, ProviderResult<Vec<DiskInfo>>> {
        Box::pin(Self::read_disks())
    }

    fn status(&self) -> BoxFuture<'_, ProviderResult<NodeStatus>> {
        Box::pin(async {
            let (hostname, _) = uname_info()?;
            let (os, uptime, load, memory, disks) = tokio::try_join!(
                Self::read_os(),
                Self::read_uptime(),
                Self::read_load(),
                Self::read_memory(),
                Self::read_disks(),
            )?;
            Ok(NodeStatus {
                hostname,
                uptime,
                os,
                load,
                memory,
                disks,
            })
        })
    }
}

/// [`HostnameProvider`] for hosts without systemd-hostnamed: reads the kernel's
/// nodename (`source: "uname"`); setting fails with [`ProviderError::Unavailable`],
/// because writing `/etc/hostname` behind the system's back is hostnamed's job.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnameHostname;

impl HostnameProvider for UnameHostname {
    fn get(&self) -> BoxFuture<'_, ProviderResult<HostnameInfo>> {
        Box::pin(async {
            let (hostname, _) = uname_info()?;
            Ok(HostnameInfo {
                hostname,
                static_hostname: None,
                pretty_hostname: None,
                source: HostnameSource::Uname,
            })
        })
    }

    fn set<'a>(&'a self, change: &'a HostnameSet) -> BoxFuture<'a, ProviderResult<HostnameChange>> {
        Box::pin(async move {
            // Bad input is reported as such even here: it is the more useful answer.
            change.validate()?;
            Err(ProviderError::Unavailable {
                service: "systemd-hostnamed",
                detail: "the hostname can only be set through systemd-hostnamed \
                         (org.freedesktop.hostname1), which this agent is not using; \
                         the hostname was read from uname and is unchanged"
                    .to_string(),
            })
        })
    }
}

async fn read(path: &str) -> ProviderResult<String> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| ProviderError::io(format!("reading {path}"), e))
}

/// The nodename and the kernel, from one `uname` call.
fn uname_info() -> ProviderResult<(String, KernelInfo)> {
    let uts = uname().map_err(|errno| ProviderError::io("uname", io::Error::from(errno)))?;
    let kernel = KernelInfo {
        name: uts.sysname().to_string_lossy().into_owned(),
        release: uts.release().to_string_lossy().into_owned(),
        machine: uts.machine().to_string_lossy().into_owned(),
    };
    Ok((uts.nodename().to_string_lossy().into_owned(), kernel))
}

// ---------------------------------------------------------------------------
// os-release
// ---------------------------------------------------------------------------

/// The fields of `os-release` that OSAPI reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub name: String,
    pub id: String,
    pub version_id: Option<String>,
    pub pretty_name: String,
}

impl Default for OsRelease {
    /// The defaults os-release(5) prescribes for a missing file or field.
    fn default() -> Self {
        OsRelease {
            name: "Linux".to_string(),
            id: "linux".to_string(),
            version_id: None,
            pretty_name: "Linux".to_string(),
        }
    }
}

/// The host's os-release as facts for templates: `id`, `version_id`,
/// `name`, `pretty_name` (the os-release(5) defaults when there is none).
pub fn os_facts() -> serde_json::Value {
    let release = OS_RELEASE_PATHS
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| parse_os_release(&text))
        .unwrap_or_default();
    serde_json::json!({
        "id": release.id,
        "version_id": release.version_id,
        "name": release.name,
        "pretty_name": release.pretty_name,
    })
}

/// Parses `os-release` text: `KEY=value` lines with shell-style quoting, `#`
/// comments. Missing fields take the os-release(5) defaults, except that a missing
/// `PRETTY_NAME` falls back to `NAME` (more informative than plain "Linux").
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut name = None;
    let mut id = None;
    let mut version_id = None;
    let mut pretty_name = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = shell_unquote(raw);
        match key.trim() {
            "NAME" => name = Some(value),
            "ID" => id = Some(value),
            "VERSION_ID" => version_id = Some(value),
            "PRETTY_NAME" => pretty_name = Some(value),
            _ => {}
        }
    }
    let defaults = OsRelease::default();
    let name = name.filter(|v| !v.is_empty()).unwrap_or(defaults.name);
    OsRelease {
        pretty_name: pretty_name
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| name.clone()),
        name,
        id: id.filter(|v| !v.is_empty()).unwrap_or(defaults.id),
        version_id: version_id.filter(|v| !v.is_empty()),
    }
}

/// Undoes shell quoting of one value: `"…"` (with `\"`, `\\`, `\$`, `` \` ``
/// escapes), `'…'` (literal), and bare words with backslash escapes; segments may
/// be concatenated. An unterminated quote runs to the end of the value.
fn shell_unquote(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                            Some(other) => {
                                out.push('\\');
                                out.push(other);
                            }
                            None => out.push('\\'),
                        },
                        _ => out.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(e) = chars.next() {
                    out.push(e);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// uptime, loadavg, meminfo
// ---------------------------------------------------------------------------

/// Parses `/proc/uptime` (`"12345.67 54321.00"`) into whole seconds since boot.
pub fn parse_uptime(text: &str) -> ProviderResult<u64> {
    let first = text
        .split_whitespace()
        .next()
        .ok_or_else(|| ProviderError::parse(UPTIME_PATH, "empty"))?;
    let seconds: f64 = first
        .parse()
        .map_err(|e| ProviderError::parse(UPTIME_PATH, format!("{first:?}: {e}")))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(ProviderError::parse(
            UPTIME_PATH,
            format!("{first:?} is not a duration"),
        ));
    }
    // Truncation is intended: whole seconds.
    Ok(seconds as u64)
}

/// Formats seconds as e.g. `3 days, 4 hours, 5 minutes`; under a minute as
/// `42 seconds`. Zero parts are left out.
pub fn humanize_duration(seconds: u64) -> String {
    if seconds < 60 {
        return plural(seconds, "second");
    }
    let days = seconds / 86_400;
    let hours = seconds % 86_400 / 3_600;
    let minutes = seconds % 3_600 / 60;
    let parts: Vec<String> = [(days, "day"), (hours, "hour"), (minutes, "minute")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| plural(n, unit))
        .collect();
    parts.join(", ")
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Parses `/proc/loadavg` (`"0.52 0.58 0.59 2/1234 56789"`).
pub fn parse_loadavg(text: &str) -> ProviderResult<LoadInfo> {
    let err = |detail: String| ProviderError::parse(LOADAVG_PATH, detail);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [l1, l5, l15, tasks, ..] = fields.as_slice() else {
        return Err(err(format!(
            "expected at least 4 fields, got {}",
            fields.len()
        )));
    };
    let load = |s: &str| s.parse::<f64>().map_err(|e| err(format!("{s:?}: {e}")));
    let (running, total) = tasks
        .split_once('/')
        .ok_or_else(|| err(format!("{tasks:?} is not running/total")))?;
    let count = |s: &str| s.parse::<u64>().map_err(|e| err(format!("{s:?}: {e}")));
    Ok(LoadInfo {
        load1: load(l1)?,
        load5: load(l5)?,
        load15: load(l15)?,
        running_tasks: count(running)?,
        total_tasks: count(total)?,
    })
}

/// Parses `/proc/meminfo` into bytes. `MemTotal` and `MemFree` are required;
/// kernels before 3.14 lack `MemAvailable`, estimated then as free + buffers + cached.
pub fn parse_meminfo(text: &str) -> ProviderResult<MemoryInfo> {
    let mut values: HashMap<&str, u64> = HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(Ok(number)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        // Values carry "kB" (which means KiB); counters like HugePages_Total carry none.
        let bytes = match parts.next() {
            Some("kB") => number.saturating_mul(1024),
            _ => number,
        };
        values.insert(key.trim(), bytes);
    }
    let required = |key: &str| {
        values
            .get(key)
            .copied()
            .ok_or_else(|| ProviderError::parse(MEMINFO_PATH, format!("{key} missing")))
    };
    let total = required("MemTotal")?;
    let free = required("MemFree")?;
    let buffers = values.get("Buffers").copied();
    let cached = values.get("Cached").copied();
    let available = values
        .get("MemAvailable")
        .copied()
        .unwrap_or_else(|| free + buffers.unwrap_or(0) + cached.unwrap_or(0))
        .min(total);
    let used = total - available;
    let swap_total = values.get("SwapTotal").copied().unwrap_or(0);
    let swap_free = values.get("SwapFree").copied().unwrap_or(0).min(swap_total);
    let swap_used = swap_total - swap_free;
    Ok(MemoryInfo {
        total_bytes: total,
        available_bytes: available,
        used_bytes: used,
        free_bytes: free,
        buffers_bytes: buffers,
        cached_bytes: cached,
        swap_total_bytes: swap_total,
        swap_used_bytes: swap_used,
        swap_free_bytes: swap_free,
        used_percent: percent(used, total),
        swap_used_percent: percent(swap_used, swap_total),
    })
}

// ---------------------------------------------------------------------------
// mountinfo and disks
// ---------------------------------------------------------------------------

/// One line of `/proc/self/mountinfo`, with escapes undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the filesystem: the same for every mount of it.
    pub device_id: String,
    /// The directory of the filesystem that is mounted (`/` for the whole thing).
    pub root: String,
    /// Where it is mounted. A path, not a `String`: mount points need not be UTF-8.
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// The mount source, e.g. `/dev/sda1`.
    pub source: String,
}

/// Parses `/proc/self/mountinfo`. Malformed lines are skipped with a warning: one
/// odd line must not hide every disk.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_mountinfo_line(line) {
            Some(entry) => entries.push(entry),
            None => tracing::warn!(line, "malformed line in {MOUNTINFO_PATH} skipped"),
        }
    }
    entries
}

/// `id parent major:minor root mount_point options [optional…] - fs_type source super_options`
fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split_whitespace();
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let device_id = fields.next()?.to_string();
    let root = fields.next()?;
    let mount_point = fields.next()?;
    let _options = fields.next()?;
    // Optional fields (shared:N, master:N, …) run up to the lone "-" separator.
    fields.by_ref().find(|f| *f == "-")?;
    let fs_type = fields.next()?;
    let source = fields.next()?;
    Some(MountEntry {
        device_id,
        root: String::from_utf8_lossy(&unescape_octal(root)).into_owned(),
        mount_point: PathBuf::from(OsString::from_vec(unescape_octal(mount_point))),
        fs_type: String::from_utf8_lossy(&unescape_octal(fs_type)).into_owned(),
        source: String::from_utf8_lossy(&unescape_octal(source)).into_owned(),
    })
}

/// Undoes the kernel's `\ooo` octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash). Works on bytes: the result need not be UTF-8.
fn unescape_octal(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Whether a filesystem type is a pseudo filesystem (see `PSEUDO_FS_TYPES`).
pub fn is_pseudo_fs(fs_type: &str) -> bool {
    PSEUDO_FS_TYPES.contains(&fs_type) || fs_type.starts_with("fuse.")
}

/// Keeps the mounts worth reporting: pseudo filesystems dropped, and each
/// filesystem (`major:minor`) once. The first mount of a filesystem is kept,
/// except that a later mount of its whole tree (root `/`) replaces a first one
/// that is only a bind of a subdirectory or file — e.g. a container's bind-mounted
/// `/etc/hosts` appearing before the real mount point. Order is preserved.
pub fn select_real_mounts(entries: Vec<MountEntry>) -> Vec<MountEntry> {
    let mut selected: Vec<MountEntry> = Vec::new();
    let mut by_device: HashMap<String, usize> = HashMap::new();
    for entry in entries.into_iter().filter(|e| !is_pseudo_fs(&e.fs_type)) {
        match by_device.get(&entry.device_id) {
            Some(&i) => {
                if selected[i].root != "/" && entry.root == "/" {
                    selected[i] = entry;
                }
            }
            None => {
                by_device.insert(entry.device_id.clone(), selected.len());
                selected.push(entry);
            }
        }
    }
    selected
}

/// The `statvfs` numbers a [`DiskInfo`] is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
}

impl From<&Statvfs> for Usage {
    // The libc types are u32 on some 32-bit targets, hence the "useless" widening.
    #[allow(clippy::useless_conversion)]
    fn from(st: &Statvfs) -> Self {
        Usage {
            fragment_size: u64::from(st.fragment_size()),
            blocks: u64::from(st.blocks()),
            blocks_free: u64::from(st.blocks_free()),
            blocks_available: u64::from(st.blocks_available()),
        }
    }
}

impl Usage {
    /// Bytes in use: blocks − free blocks, as `df` counts them.
    pub fn used_bytes(&self) -> u64 {
        self.blocks
            .saturating_sub(self.blocks_free)
            .saturating_mul(self.fragment_size)
    }

    pub fn total_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.fragment_size)
    }
}

/// Computes a [`DiskInfo`] the way `df` does: used = blocks − free blocks, free =
/// blocks available to unprivileged users, percent = used / (used + free). `None`
/// for a filesystem of zero blocks: `df` hides those too, and they are pseudo
/// filesystems the deny-list did not know.
pub fn disk_info(mount: &MountEntry, usage: &Usage) -> Option<DiskInfo> {
    if usage.blocks == 0 {
        return None;
    }
    let used = usage.used_bytes();
    let free = usage.blocks_available.saturating_mul(usage.fragment_size);
    Some(DiskInfo {
        mount_point: path_string(&mount.mount_point),
        device: mount.source.clone(),
        fs_type: mount.fs_type.clone(),
        total_bytes: usage.total_bytes(),
        used_bytes: used,
        free_bytes: free,
        used_percent: percent(used, used.saturating_add(free)),
    })
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The fields of `/proc/PID/stat` that OSAPI reads: one parser for the
/// process list, the reboot proof and the process metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcStat {
    /// The command name (`comm`).
    pub name: String,
    pub state: String,
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
    /// Its start, in clock ticks after the kernel booted: no clock set
    /// moves it.
    pub start_ticks: u64,
    pub rss_pages: u64,
}

impl ProcStat {
    /// `/proc/PID/stat` of `pid` (`self`, `1`, …); `None` when it is gone.
    pub fn read(pid: &str) -> Option<ProcStat> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    pub fn parse(text: &str) -> Option<ProcStat> {
        // The command name (field 2) may hold spaces and parentheses: the
        // other fields count from after its last ')', field 3 first.
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).copied();
        let number = |n: usize| field(n)?.parse::<u64>().ok();
        Some(ProcStat {
            name: text.get(open + 1..close)?.to_owned(),
            state: field(3)?.to_owned(),
            ppid: u32::try_from(number(4)?).ok()?,
            utime: number(14)?,
            stime: number(15)?,
            start_ticks: number(22)?,
            rss_pages: number(24)?,
        })
    }

    /// CPU time used, user and system, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        (self.utime + self.stime) as f64 / clock_ticks()
    }

    /// When it started, in seconds since the epoch: the kernel's boot time
    /// plus its start ticks.
    pub fn started_at(&self) -> Option<f64> {
        Some(boot_time()? as f64 + self.start_ticks as f64 / clock_ticks())
    }
}

/// Clock ticks per second (`CLK_TCK`), asked once.
pub(crate) fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100.0, |v| v as f64)
    })
}

/// When the kernel booted, in seconds since the epoch (`/proc/stat` `btime`).
pub(crate) fn boot_time() -> Option<u64> {
    btime(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OS_RELEASE: &str = r#"# Debian, with a comment
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    #[test]
    fn os_release_with_quotes() {
        let r = parse_os_release(OS_RELEASE);
        assert_eq!(r.name, "Debian GNU/Linux");
        assert_eq!(r.id, "debian");
        assert_eq!(r.version_id.as_deref(), Some("12"));
        assert_eq!(r.pretty_name, "Debian GNU/Linux 12 (bookworm)");
    }

    #[test]
    fn os_release_single_quotes_escapes_and_defaults() {
        let r = parse_os_release(
            "NAME='Arch Linux'\nID=arch\nPRETTY_NAME=\"Say \\\"hi\\\" \\$HOME\"\n",
        );
        assert_eq!(r.name, "Arch Linux");
        assert_eq!(r.id, "arch");
        assert_eq!(r.version_id, None);
        assert_eq!(r.pretty_name, "Say \"hi\" $HOME");

        let r = parse_os_release("NAME=Foo\\ OS\n");
        assert_eq!(r.pretty_name, "Foo OS", "PRETTY_NAME falls back to NAME");
        assert_eq!(r.id, "linux");

        assert_eq!(parse_os_release(""), OsRelease::default());
    }

    #[test]
    fn uptime_parses_and_rejects() {
        assert_eq!(parse_uptime("350735.47 234388.90\n").ok(), Some(350_735));
        for bad in ["", "abc 1.0", "-5 1", "NaN 1"] {
            assert!(
                matches!(parse_uptime(bad), Err(ProviderError::Parse { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn durations_are_humanised() {
        assert_eq!(humanize_duration(0), "0 seconds");
        assert_eq!(humanize_duration(1), "1 second");
        assert_eq!(humanize_duration(59), "59 seconds");
        assert_eq!(humanize_duration(60), "1 minute");
        assert_eq!(humanize_duration(3_600), "1 hour");
        assert_eq!(humanize_duration(86_400 + 300), "1 day, 5 minutes");
        assert_eq!(
            humanize_duration(3 * 86_400 + 4 * 3_600 + 5 * 60 + 7),
            "3 days, 4 hours, 5 minutes"
        );
    }

    #[test]
    fn loadavg_parses() {
        let l = parse_loadavg("0.52 0.58 1.59 2/1234 56789\n");
        assert_eq!(
            l.ok(),
            Some(LoadInfo {
                load1: 0.52,
                load5: 0.58,
                load15: 1.59,
                running_tasks: 2,
                total_tasks: 1234
            })
        );
        for bad in [
            "",
            "0.1 0.2 0.3",
            "0.1 0.2 0.3 5",
            "x 0.2 0.3 1/2 3",
            "0.1 0.2 0.3 a/2 3",
        ] {
            assert!(
                matches!(parse_loadavg(bad), Err(ProviderError::Parse { .. })),
                "{bad:?}"
            );
        }
    }

    const MEMINFO: &str = "\
MemTotal:        8000000 kB
MemFree:         1000000 kB
MemAvailable:    6000000 kB
Buffers:          200000 kB
Cached:          3000000 kB
SwapCached:            0 kB
SwapTotal:       2000000 kB
SwapFree:        1500000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    #[test]
    fn meminfo_in_bytes() {
        let m = parse_meminfo(MEMINFO);
        let Ok(m) = m else { panic!("{m:?}") };
        assert_eq!(m.total_bytes, 8_000_000 * 1024);
        assert_eq!(m.available_bytes, 6_000_000 * 1024);
        assert_eq!(m.used_bytes, 2_000_000 * 1024);
        assert_eq!(m.free_bytes, 1_000_000 * 1024);
        assert_eq!(m.buffers_bytes, Some(200_000 * 1024));
        assert_eq!(m.cached_bytes, Some(3_000_000 * 1024));
        assert_eq!(m.swap_total_bytes, 2_000_000 * 1024);
        assert_eq!(m.swap_free_bytes, 1_500_000 * 1024);
        assert_eq!(m.swap_used_bytes, 500_000 * 1024);
        assert_eq!(m.used_percent, 25.0);
        assert_eq!(m.swap_used_percent, 25.0);
    }

    #[test]
    fn meminfo_old_kernel_and_no_swap() {
        let m =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 100 kB\nCached: 300 kB\n");
        let Ok(m) = m else { panic!("{m:?}") };
        assert_eq!(
            m.available_bytes,
            500 * 1024,
            "estimated without MemAvailable"
        );
        assert_eq!(m.used_percent, 50.0);
        assert_eq!(m.swap_total_bytes, 0);
        assert_eq!(m.swap_used_percent, 0.0);

        let missing = parse_meminfo("MemFree: 1 kB\n");
        assert!(
            matches!(missing, Err(ProviderError::Parse { ref detail, .. }) if detail.contains("MemTotal"))
        );
    }

    const MOUNTINFO: &str = r"22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334432k
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
28 27 0:25 / /run rw,nosuid - tmpfs tmpfs rw,size=4k
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 27 8:17 / /mnt/my\040data rw,relatime shared:5 master:2 - xfs /dev/sdb1 rw
51 27 254:0 /srv /srv/again rw,relatime - ext4 /dev/vda rw
52 27 7:3 / /snap/core/123 ro,nodev - squashfs /dev/loop3 ro
53 27 0:60 / /home/u/.gvfs rw - fuse.gvfsd-fuse gvfsd-fuse rw
54 27 0:61 / /data\011tab\134back rw - nfs4 server:/export rw
this line is broken
55 27 0:62 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw,lowerdir=a
";

    #[test]
    fn mountinfo_parses_escapes() {
        let entries = parse_mountinfo(MOUNTINFO);
        assert_eq!(entries.len(), 12, "the broken line is skipped");
        let data = &entries[6];
        assert_eq!(data.mount_point, PathBuf::from("/mnt/my data"));
        assert_eq!(data.device_id, "8:17");
        assert_eq!(data.fs_type, "xfs", "optional fields are skipped");
        assert_eq!(data.source, "/dev/sdb1");
        assert_eq!(entries[10].mount_point, PathBuf::from("/data\ttab\\back"));
        assert_eq!(entries[7].root, "/srv");
    }

    #[test]
    fn real_mounts_skip_pseudo_and_duplicates() {
        let selected = select_real_mounts(parse_mountinfo(MOUNTINFO));
        let points: Vec<String> = selected
            .iter()
            .map(|m| path_string(&m.mount_point))
            .collect();
        assert_eq!(
            points,
            [
                "/",
                "/mnt/my data",
                "/data\ttab\\back",
                "/var/lib/docker/overlay2/x/merged"
            ]
        );
    }

    #[test]
    fn whole_tree_mount_replaces_earlier_bind() {
        let text = "\
30 1 0:40 / / rw - overlay overlay rw
31 30 254:0 /var/lib/docker/containers/abc/hosts /etc/hosts rw - ext4 /dev/vda rw
32 30 254:0 / /host rw - ext4 /dev/vda rw
33 30 254:0 / /host2 rw - ext4 /dev/vda rw
";
        let selected = select_real_mounts(parse_mountinfo(text));
        let points: Vec<String> = selected
            .iter()
            .map(|m| path_string(&m.mount_point))
            .collect();
        assert_eq!(points, ["/", "/host"]);
    }

    #[test]
    fn pseudo_fs_list() {
        for fs in [
            "proc",
            "tmpfs",
            "cgroup2",
            "squashfs",
            "fuse.lxcfs",
            "fuse.snapfuse",
            "nsfs",
        ] {
            assert!(is_pseudo_fs(fs), "{fs}");
        }
        for fs in [
            "ext4", "xfs", "btrfs", "overlay", "nfs4", "fuseblk", "vfat", "zfs",
        ] {
            assert!(!is_pseudo_fs(fs), "{fs}");
        }
    }

    #[test]
    fn octal_unescape_edge_cases() {
        assert_eq!(unescape_octal(r"a\040b"), b"a b");
        assert_eq!(unescape_octal(r"end\04"), br"end\04", "too short: kept");
        assert_eq!(unescape_octal(r"x\999"), br"x\999", "not octal: kept");
        assert_eq!(unescape_octal(r"\377"), [0xff], "non-UTF-8 byte");
        assert_eq!(unescape_octal(r"\\"), br"\\");
    }

    #[test]
    fn disk_usage_like_df() {
        let mount = MountEntry {
            device_id: "8:1".into(),
            root: "/".into(),
            mount_point: PathBuf::from("/"),
            fs_type: "ext4".into(),
            source: "/dev/sda1".into(),
        };
        // 100 blocks of 4 KiB: 40 free, of which 30 available to users (10 reserved).
        let usage = Usage {
            fragment_size: 4096,
            blocks: 100,
            blocks_free: 40,
            blocks_available: 30,
        };
        let d = disk_info(&mount, &usage);
        let Some(d) = d else {
            panic!("expected a disk")
        };
        assert_eq!(d.total_bytes, 100 * 4096);
        assert_eq!(d.used_bytes, 60 * 4096);
        assert_eq!(d.free_bytes, 30 * 4096);
        assert_eq!(d.used_percent, 66.67);
        assert_eq!(d.device, "/dev/sda1");
        assert_eq!(d.mount_point, "/");

        let empty = Usage {
            fragment_size: 4096,
            blocks: 0,
            blocks_free: 0,
            blocks_available: 0,
        };
        assert_eq!(disk_info(&mount, &empty), None);
    }

    #[tokio::test]
    async fn real_host_invariants() {
        let info = ProcfsHostInfo;
        let status = info.status().await;
        let Ok(status) = status else {
            panic!("status failed: {status:?}")
        };
        assert!(!status.hostname.is_empty());
        assert!(status.memory.total_bytes > 0);
        assert!(status.memory.used_bytes <= status.memory.total_bytes);
        assert!((0.0..=100.0).contains(&status.memory.used_percent));
        assert!(status.uptime.seconds > 0);
        assert!(!status.uptime.human.is_empty());
        assert!(!status.os.kernel.name.is_empty());
        assert!(!status.os.kernel.release.is_empty());
        assert!(!status.os.name.is_empty());
        assert!(status.load.total_tasks > 0);
        assert!(
            status.disks.iter().any(|d| d.total_bytes > 0),
            "{:?}",
            status.disks
        );
        for d in &status.disks {
            assert!(!is_pseudo_fs(&d.fs_type), "{d:?}");
            assert!((0.0..=100.0).contains(&d.used_percent), "{d:?}");
        }

        let host = UnameHostname.get().await;
        let Ok(host) = host else { panic!("{host:?}") };
        assert_eq!(host.hostname, status.hostname);
        assert_eq!(host.source, HostnameSource::Uname);

        let change = HostnameSet {
            hostname: "new-name".into(),
            pretty: None,
            dry_run: false,
        };
        let err = UnameHostname.set(&change).await.err();
        assert!(matches!(
            err,
            Some(ProviderError::Unavailable {
                service: "systemd-hostnamed",
                ..
            })
        ));
    }

    #[test]
    fn stat_parses_past_a_name_with_parentheses() {
        let stat = "4242 (osapi (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 8 0 123456 987654321 2500 18446744073709551615";
        assert_eq!(
            ProcStat::parse(stat),
            Some(ProcStat {
                name: "osapi (a) b".into(),
                state: "S".into(),
                ppid: 1,
                utime: 150,
                stime: 50,
                start_ticks: 123456,
                rss_pages: 2500,
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
        assert_eq!(
            btime("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        let me = ProcStat::read("self").unwrap();
        assert!(me.started_at().is_some_and(|t| t > 1_700_000_000.0));
    }
}
