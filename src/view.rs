//! How each operation's result reads as table rows: columns and cells as
//! plain strings, free of any terminal or transport, so `osapictl` (and any
//! other client in the crate) shows the same view of the same typed result.
//! Each result type says once how it looks ([`Tabular`]); the operation table
//! (`crate::job::OPERATIONS`) names the result type of each operation.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::provider::files::{FileDeployed, FileState, FileStatuses, FileUndeployed};
use crate::provider::interfaces::{InterfaceChange, InterfaceInfo, Interfaces};
use crate::provider::packages::{
    CacheRefresh, Package, PackageChange, PackageInfo, Packages, PendingUpdates,
};
use crate::provider::users::{
    GroupChange, GroupInfo, Groups, SshKey, SshKeyChange, SshKeys, UserChange, UserInfo, Users,
};
use crate::provider::{
    CaCertificate, CaCertificates, CaChange, ClockChange, ClockInfo, CommandResult, DiskInfo,
    Disks, DnsChangeResult, DnsConfig, DropIn, DropInChange, HostnameChange, HostnameInfo,
    LoadInfo, LogEntries, MemoryInfo, NodeStatus, OsInfo, PingResult, PowerChange, PowerStatus,
    ProcessInfo, ProcessSignalled, Processes, SysctlChange, SysctlValue, Sysctls, UnitChange,
    UnitState, UnitStatus, Units, UptimeInfo,
};

/// A result that reads as table rows under fixed columns.
pub trait Tabular: DeserializeOwned {
    const COLUMNS: &'static [&'static str];
    /// Usually one row; one per filesystem for disks.
    fn rows(self) -> Vec<Vec<String>>;
}

/// The columns and rows of one result type, as the operation table holds it.
#[derive(Clone, Copy)]
pub struct View {
    pub columns: &'static [&'static str],
    /// The rows of a result, or `None` when it is not of the type (an agent
    /// of another version answered).
    pub rows: fn(&Value) -> Option<Vec<Vec<String>>>,
}

/// The view of result type `T`.
pub const fn of<T: Tabular>() -> View {
    View {
        columns: T::COLUMNS,
        rows: rows_of::<T>,
    }
}

fn rows_of<T: Tabular>(v: &Value) -> Option<Vec<Vec<String>>> {
    T::deserialize(v).ok().map(T::rows)
}

/// `40%`.
pub fn percent(p: f64) -> String {
    format!("{p:.0}%")
}

/// `1.5 GiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A unit enum's wire name (`hostnamed`, `resolv_conf`).
pub fn enum_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

impl Tabular for HostnameInfo {
    const COLUMNS: &'static [&'static str] = &["NAME", "STATIC", "PRETTY", "SOURCE"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.hostname,
            self.static_hostname.unwrap_or_default(),
            self.pretty_hostname.unwrap_or_default(),
            enum_text(&self.source),
        ]]
    }
}

impl Tabular for HostnameChange {
    const COLUMNS: &'static [&'static str] = &["CHANGED", "BEFORE", "AFTER", "PRETTY"];
    fn rows(self) -> Vec<Vec<String>> {
        let pretty = match (self.before.pretty_hostname, self.after.pretty_hostname) {
            (before, after) if before == after => after.unwrap_or_default(),
            (before, after) => format!(
                "{} -> {}",
                before.unwrap_or_default(),
                after.unwrap_or_default()
            ),
        };
        vec![vec![
            changed_text(self.changed, self.dry_run).to_owned(),
            self.before.hostname,
            self.after.hostname,
            pretty,
        ]]
    }
}

impl Tabular for UptimeInfo {
    const COLUMNS: &'static [&'static str] = &["UPTIME", "SECONDS"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![self.human, self.seconds.to_string()]]
    }
}

impl Tabular for OsInfo {
    const COLUMNS: &'static [&'static str] = &["OS", "KERNEL", "ARCH"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.pretty_name,
            self.kernel.release,
            self.kernel.machine,
        ]]
    }
}

impl Tabular for Disks {
    const COLUMNS: &'static [&'static str] =
        &["MOUNT", "DEVICE", "TYPE", "SIZE", "USED", "FREE", "USE%"];
    fn rows(self) -> Vec<Vec<String>> {
        self.0
            .into_iter()
            .map(|d: DiskInfo| {
                vec![
                    d.mount_point,
                    d.device,
                    d.fs_type,
                    human_bytes(d.total_bytes),
                    human_bytes(d.used_bytes),
                    human_bytes(d.free_bytes),
                    percent(d.used_percent),
                ]
            })
            .collect()
    }
}

fn memory_line(m: &MemoryInfo) -> String {
    format!(
        "{} / {} ({})",
        human_bytes(m.used_bytes),
        human_bytes(m.total_bytes),
        percent(m.used_percent)
    )
}

impl Tabular for MemoryInfo {
    const COLUMNS: &'static [&'static str] = &["TOTAL", "USED", "AVAILABLE", "USE%", "SWAP"];
    fn rows(self) -> Vec<Vec<String>> {
        let swap = match self.swap_total_bytes {
            0 => "none".to_owned(),
            total => format!(
                "{} / {}",
                human_bytes(self.swap_used_bytes),
                human_bytes(total)
            ),
        };
        vec![vec![
            human_bytes(self.total_bytes),
            human_bytes(self.used_bytes),
            human_bytes(self.available_bytes),
            percent(self.used_percent),
            swap,
        ]]
    }
}

fn load_triplet(l: &LoadInfo) -> [String; 3] {
    [l.load1, l.load5, l.load15].map(|x| format!("{x:.2}"))
}

impl Tabular for LoadInfo {
    const COLUMNS: &'static [&'static str] = &["1M", "5M", "15M", "TASKS"];
    fn rows(self) -> Vec<Vec<String>> {
        let [l1, l5, l15] = load_triplet(&self);
        let tasks = format!("{}/{}", self.running_tasks, self.total_tasks);
        vec![vec![l1, l5, l15, tasks]]
    }
}

impl Tabular for NodeStatus {
    const COLUMNS: &'static [&'static str] = &["UPTIME", "OS", "KERNEL", "LOAD", "MEMORY", "DISKS"];
    fn rows(self) -> Vec<Vec<String>> {
        // The fullest filesystem is the one an operator looks for.
        let fullest = self
            .disks
            .iter()
            .max_by(|a, b| a.used_percent.total_cmp(&b.used_percent));
        let disks_text = match fullest {
            Some(d) => {
                let mounts = match self.disks.len() {
                    1 => "1 mount".to_owned(),
                    n => format!("{n} mounts"),
                };
                format!(
                    "{mounts}, fullest {} {}",
                    d.mount_point,
                    percent(d.used_percent)
                )
            }
            None => "none".into(),
        };
        vec![vec![
            self.uptime.human,
            self.os.pretty_name,
            format!("{} {}", self.os.kernel.release, self.os.kernel.machine)
                .trim()
                .to_owned(),
            load_triplet(&self.load).join(" "),
            memory_line(&self.memory),
            disks_text,
        ]]
    }
}

impl Tabular for DnsConfig {
    const COLUMNS: &'static [&'static str] = &["INTERFACE", "SERVERS", "SEARCH", "SOURCE"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.interface,
            self.servers.join(", "),
            self.search_domains.join(", "),
            enum_text(&self.source),
        ]]
    }
}

impl Tabular for DnsChangeResult {
    const COLUMNS: &'static [&'static str] =
        &["INTERFACE", "CHANGED", "SERVERS", "SEARCH", "PERSISTED"];
    fn rows(self) -> Vec<Vec<String>> {
        let persisted = if self.persisted {
            "yes"
        } else {
            "no (runtime only)"
        };
        let arrow = |before: &[String], after: &[String]| match before == after {
            true => after.join(", "),
            false => format!("{} -> {}", before.join(", "), after.join(", ")),
        };
        vec![vec![
            self.interface,
            changed_text(self.changed, self.dry_run).to_owned(),
            arrow(&self.before.servers, &self.after.servers),
            arrow(&self.before.search_domains, &self.after.search_domains),
            persisted.to_owned(),
        ]]
    }
}

impl Tabular for PingResult {
    const COLUMNS: &'static [&'static str] =
        &["ADDRESS", "SENT", "RECEIVED", "LOSS", "RTT MIN/AVG/MAX"];
    fn rows(self) -> Vec<Vec<String>> {
        let address = if self.resolved.is_empty() || self.resolved == self.address {
            self.address
        } else {
            format!("{} ({})", self.address, self.resolved)
        };
        let ms = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
        let rtt = match self.rtt_avg_ms {
            Some(_) => format!(
                "{}/{}/{} ms",
                ms(self.rtt_min_ms),
                ms(self.rtt_avg_ms),
                ms(self.rtt_max_ms)
            ),
            None => "-".into(),
        };
        vec![vec![
            address,
            self.sent.to_string(),
            self.received.to_string(),
            percent(self.loss_percent),
            rtt,
        ]]
    }
}

impl Tabular for CommandResult {
    const COLUMNS: &'static [&'static str] = &["EXIT", "STDOUT", "STDERR"];
    fn rows(self) -> Vec<Vec<String>> {
        let exit = match (self.timed_out, self.signal, self.exit_code) {
            (true, _, _) => "timed out".to_owned(),
            (_, Some(sig), _) => format!("signal {sig}"),
            (_, _, Some(code)) => code.to_string(),
            _ => String::new(),
        };
        let output = |text: &str, truncated: bool| {
            let mut text = text.trim_end_matches('\n').to_owned();
            if truncated {
                text.push_str("\n… (truncated)");
            }
            text
        };
        vec![vec![
            exit,
            output(&self.stdout, self.truncated_stdout),
            output(&self.stderr, self.truncated_stderr),
        ]]
    }
}

impl Tabular for Units {
    const COLUMNS: &'static [&'static str] = &["UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"];
    fn rows(self) -> Vec<Vec<String>> {
        self.0
            .into_iter()
            .map(|u| {
                vec![
                    u.unit,
                    u.load_state,
                    u.active_state,
                    u.sub_state,
                    u.description,
                ]
            })
            .collect()
    }
}

/// `active (running)`.
fn active_text(s: &UnitState) -> String {
    match s.sub_state.as_str() {
        "" => s.active_state.clone(),
        sub => format!("{} ({sub})", s.active_state),
    }
}

impl Tabular for UnitStatus {
    const COLUMNS: &'static [&'static str] = &[
        "UNIT",
        "ACTIVE",
        "FILE",
        "PID",
        "MEMORY",
        "SINCE",
        "DESCRIPTION",
    ];
    fn rows(self) -> Vec<Vec<String>> {
        let service = self.service.as_ref();
        let pid = service
            .filter(|s| s.main_pid != 0)
            .map_or_else(String::new, |s| s.main_pid.to_string());
        let memory = service
            .and_then(|s| s.memory_bytes)
            .map_or_else(String::new, human_bytes);
        let since = self.since.map_or_else(String::new, |t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        });
        vec![vec![
            self.unit,
            active_text(&self.state),
            self.state.unit_file_state,
            pid,
            memory,
            since,
            self.description,
        ]]
    }
}

impl Tabular for ClockInfo {
    const COLUMNS: &'static [&'static str] = &["TIME", "ZONE", "RTC", "NTP", "SYNCED", "SERVER"];
    fn rows(self) -> Vec<Vec<String>> {
        let time = self
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let rtc = if self.local_rtc { "local" } else { "UTC" };
        let ntp = match (self.ntp, self.can_ntp) {
            (true, _) => "on",
            (false, true) => "off",
            (false, false) => "not installed",
        };
        let synced = if self.ntp_synchronized { "yes" } else { "no" };
        let server = match (self.ntp_server, self.ntp_servers.is_empty()) {
            (Some(s), _) => s,
            (None, false) => format!("({})", self.ntp_servers.join(" ")),
            (None, true) => String::new(),
        };
        vec![vec![
            time,
            self.timezone,
            rtc.to_owned(),
            ntp.to_owned(),
            synced.to_owned(),
            server,
        ]]
    }
}

impl Tabular for LogEntries {
    const COLUMNS: &'static [&'static str] = &["TIME", "SOURCE", "PRIORITY", "MESSAGE"];
    fn rows(self) -> Vec<Vec<String>> {
        self.entries
            .into_iter()
            .map(|e| {
                let time = e
                    .time
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let source = e.source();
                let priority = e
                    .priority
                    .and_then(|p| crate::job::PRIORITIES.get(usize::from(p)))
                    .map_or_else(String::new, |p| (*p).to_owned());
                vec![time, source, priority, e.message]
            })
            .collect()
    }
}

/// `reboot at 2026-12-07T10:00:00Z`, or `none`.
fn shutdown_text(s: Option<&crate::provider::logind::ScheduledShutdown>) -> String {
    s.map_or_else(
        || "none".to_owned(),
        |s| {
            let at =
                s.at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
            format!("{} at {at}", s.kind)
        },
    )
}

impl Tabular for PowerStatus {
    const COLUMNS: &'static [&'static str] = &["BOOT ID", "SCHEDULED"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.boot.boot_id,
            shutdown_text(self.scheduled.as_ref()),
        ]]
    }
}

impl Tabular for PowerChange {
    const COLUMNS: &'static [&'static str] =
        &["ACTION", "CHANGED", "BEFORE", "AFTER", "BOOT ID", "BACK"];
    fn rows(self) -> Vec<Vec<String>> {
        let back = self.returned.as_ref().map_or_else(String::new, |r| {
            format!("new boot {} after {:.0} s", r.boot.boot_id, r.downtime_s)
        });
        vec![vec![
            self.action,
            changed_text(self.changed, self.dry_run).to_owned(),
            shutdown_text(self.before.as_ref()),
            shutdown_text(self.after.as_ref()),
            self.boot.boot_id,
            back,
        ]]
    }
}

impl Tabular for ProcessInfo {
    const COLUMNS: &'static [&'static str] =
        &["PID", "USER", "STATE", "CPU S", "RSS", "UNIT", "COMMAND"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.pid.to_string(),
            self.user,
            self.state,
            format!("{:.1}", self.cpu_seconds),
            human_bytes(self.rss_bytes),
            self.unit.unwrap_or_default(),
            self.command,
        ]]
    }
}

impl Tabular for Processes {
    const COLUMNS: &'static [&'static str] = <ProcessInfo as Tabular>::COLUMNS;
    fn rows(self) -> Vec<Vec<String>> {
        self.0.into_iter().flat_map(Tabular::rows).collect()
    }
}

impl Tabular for ProcessSignalled {
    const COLUMNS: &'static [&'static str] = &["PID", "SIGNAL", "SENT", "COMMAND"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.process.pid.to_string(),
            self.signal,
            changed_text(self.changed, self.dry_run).to_owned(),
            self.process.command,
        ]]
    }
}

impl Tabular for SysctlValue {
    const COLUMNS: &'static [&'static str] = &["KEY", "VALUE", "PERSISTED"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.key,
            self.value,
            self.persisted.unwrap_or_default(),
        ]]
    }
}

impl Tabular for SysctlChange {
    const COLUMNS: &'static [&'static str] = &["KEY", "CHANGED", "BEFORE", "AFTER", "DROP-IN"];
    fn rows(self) -> Vec<Vec<String>> {
        let show = |v: &SysctlValue| match &v.persisted {
            Some(p) => format!("{} (boot: {p})", v.value),
            None => v.value.clone(),
        };
        vec![vec![
            self.key,
            changed_text(self.changed, self.dry_run).to_owned(),
            show(&self.before),
            show(&self.after),
            self.path,
        ]]
    }
}

impl Tabular for CaCertificates {
    const COLUMNS: &'static [&'static str] = &["NAME", "SUBJECT", "EXPIRES", "SHA256"];
    fn rows(self) -> Vec<Vec<String>> {
        self.0
            .into_iter()
            .map(|c| {
                vec![
                    or_dash(c.name.clone()),
                    c.subject.clone(),
                    day(&c),
                    c.sha256,
                ]
            })
            .collect()
    }
}

/// The day a certificate expires (`2126-11-13`).
fn day(c: &CaCertificate) -> String {
    c.not_after.date().to_string()
}

impl Tabular for CaChange {
    const COLUMNS: &'static [&'static str] = &["NAME", "CHANGED", "BEFORE", "AFTER", "FILE"];
    fn rows(self) -> Vec<Vec<String>> {
        let show = |c: &Option<CaCertificate>| match c {
            Some(c) => format!(
                "{} (until {}, sha256 {}…)",
                c.subject,
                day(c),
                &c.sha256[..16.min(c.sha256.len())]
            ),
            None => "-".to_owned(),
        };
        vec![vec![
            self.name,
            changed_text(self.changed, self.dry_run).to_owned(),
            show(&self.before),
            show(&self.after),
            self.path,
        ]]
    }
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "-".to_owned(),
    }
}

impl Tabular for UserInfo {
    const COLUMNS: &'static [&'static str] = &[
        "NAME", "UID", "GROUP", "GROUPS", "HOME", "SHELL", "LOCKED", "PASSWORD",
    ];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.name,
            self.uid.to_string(),
            self.group,
            self.groups.join(","),
            self.home,
            self.shell,
            yes_no(self.locked),
            yes_no(self.password_set),
        ]]
    }
}

impl Tabular for Package {
    const COLUMNS: &'static [&'static str] =
        &["NAME", "VERSION", "ARCH", "INSTALLED", "REPO", "SUMMARY"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.name,
            self.version,
            self.arch,
            yes_no(Some(self.installed)),
            self.repo,
            self.summary,
        ]]
    }
}

impl Tabular for PackageInfo {
    const COLUMNS: &'static [&'static str] =
        &["NAME", "INSTALLED", "AVAILABLE", "ARCH", "REPO", "SUMMARY"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.name,
            or_dash(self.installed_version),
            or_dash(self.available_version),
            self.arch,
            self.repo,
            self.summary,
        ]]
    }
}

impl Tabular for PendingUpdates {
    const COLUMNS: &'static [&'static str] = &["NAME", "INSTALLED", "UPDATE", "SEVERITY", "REPO"];
    fn rows(self) -> Vec<Vec<String>> {
        self.updates
            .into_iter()
            .map(|u| {
                vec![
                    u.name,
                    or_dash(u.installed_version),
                    u.version,
                    u.severity,
                    u.repo,
                ]
            })
            .collect()
    }
}

impl Tabular for PackageChange {
    const COLUMNS: &'static [&'static str] =
        &["PACKAGE", "ACTION", "BEFORE", "AFTER", "CHANGED", "REBOOT"];
    fn rows(self) -> Vec<Vec<String>> {
        let changed = changed_text(self.changed, self.dry_run);
        let reboot = yes_no(Some(self.reboot_required));
        if self.packages.is_empty() {
            let asked = match self.requested.is_empty() {
                true => "(all)".to_owned(),
                false => self.requested.join(" "),
            };
            let row = [asked.as_str(), &self.action, "-", "-", changed, &reboot];
            return vec![row.map(str::to_owned).to_vec()];
        }
        self.packages
            .into_iter()
            .map(|p| {
                vec![
                    p.name,
                    p.action,
                    or_dash(p.before),
                    or_dash(p.after),
                    changed.to_owned(),
                    reboot.clone(),
                ]
            })
            .collect()
    }
}

impl Tabular for CacheRefresh {
    const COLUMNS: &'static [&'static str] =
        &["CHANGED", "UPDATES BEFORE", "UPDATES AFTER", "SECURITY"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            changed_text(self.changed, self.dry_run).to_owned(),
            self.updates_before.to_string(),
            self.updates_after.to_string(),
            self.security_after.to_string(),
        ]]
    }
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".to_owned())
}

impl Tabular for UserChange {
    const COLUMNS: &'static [&'static str] = &["NAME", "CHANGED", "BEFORE", "AFTER"];
    fn rows(self) -> Vec<Vec<String>> {
        let show = |u: &Option<UserInfo>| match u {
            Some(u) => format!(
                "uid {} shell {} groups {}{}",
                u.uid,
                u.shell,
                if u.groups.is_empty() {
                    "-".to_owned()
                } else {
                    u.groups.join(",")
                },
                if u.locked == Some(true) {
                    " locked"
                } else {
                    ""
                }
            ),
            None => "-".to_owned(),
        };
        vec![vec![
            self.name,
            changed_text(self.changed, self.dry_run).to_owned(),
            show(&self.before),
            show(&self.after),
        ]]
    }
}

impl Tabular for GroupInfo {
    const COLUMNS: &'static [&'static str] = &["NAME", "GID", "MEMBERS"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.name,
            self.gid.to_string(),
            self.members.join(","),
        ]]
    }
}

impl Tabular for GroupChange {
    const COLUMNS: &'static [&'static str] = &["NAME", "CHANGED", "GID"];
    fn rows(self) -> Vec<Vec<String>> {
        let gid = self
            .after
            .as_ref()
            .or(self.before.as_ref())
            .map(|g| g.gid.to_string());
        vec![vec![
            self.name,
            changed_text(self.changed, self.dry_run).to_owned(),
            or_dash(gid),
        ]]
    }
}

fn key_row(user: &str, k: SshKey) -> Vec<String> {
    vec![user.to_owned(), k.key_type, k.fingerprint, k.comment]
}

impl Tabular for SshKeys {
    const COLUMNS: &'static [&'static str] = &["USER", "TYPE", "FINGERPRINT", "COMMENT"];
    fn rows(self) -> Vec<Vec<String>> {
        let user = self.user;
        self.keys.into_iter().map(|k| key_row(&user, k)).collect()
    }
}

impl Tabular for SshKeyChange {
    const COLUMNS: &'static [&'static str] = &["USER", "CHANGED", "TYPE", "FINGERPRINT", "COMMENT"];
    fn rows(self) -> Vec<Vec<String>> {
        let mut row = key_row(&self.user, self.key);
        row.insert(1, changed_text(self.changed, self.dry_run).to_owned());
        vec![row]
    }
}

fn file_state(s: &FileState) -> String {
    format!(
        "{} {}:{} {} B sha256 {}…",
        s.mode,
        s.owner,
        s.group,
        s.size,
        &s.sha256[..12.min(s.sha256.len())]
    )
}

impl Tabular for FileDeployed {
    const COLUMNS: &'static [&'static str] = &["NAME", "PATH", "CHANGED", "BEFORE", "AFTER"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.name,
            self.path,
            changed_text(self.changed, self.dry_run).to_owned(),
            self.before
                .as_ref()
                .map_or_else(|| "-".to_owned(), file_state),
            file_state(&self.after),
        ]]
    }
}

impl Tabular for FileStatuses {
    const COLUMNS: &'static [&'static str] = &["NAME", "PATH", "STATE", "NOW"];
    fn rows(self) -> Vec<Vec<String>> {
        let name = self.name;
        self.files
            .into_iter()
            .map(|f| {
                vec![
                    name.clone(),
                    f.path,
                    enum_text(&f.state),
                    f.actual.as_ref().map_or_else(|| "-".to_owned(), file_state),
                ]
            })
            .collect()
    }
}

impl Tabular for FileUndeployed {
    const COLUMNS: &'static [&'static str] = &["NAME", "CHANGED", "REMOVED"];
    fn rows(self) -> Vec<Vec<String>> {
        vec![vec![
            self.name,
            changed_text(self.changed, self.dry_run).to_owned(),
            self.removed.join(" "),
        ]]
    }
}

impl Tabular for InterfaceInfo {
    const COLUMNS: &'static [&'static str] =
        &["NAME", "STATE", "MTU", "MAC", "ADDRESSES", "ROUTES"];
    fn rows(self) -> Vec<Vec<String>> {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|r| match &r.gateway {
                Some(gw) => format!("{} via {gw}", r.destination),
                None => r.destination.clone(),
            })
            .collect();
        vec![vec![
            self.name,
            self.state,
            self.mtu.to_string(),
            self.mac,
            self.addresses
                .into_iter()
                .map(|a| a.address)
                .collect::<Vec<_>>()
                .join(" "),
            routes.join(", "),
        ]]
    }
}

impl Tabular for ClockChange {
    const COLUMNS: &'static [&'static str] = &["SETTING", "CHANGED", "BEFORE", "AFTER"];
    fn rows(self) -> Vec<Vec<String>> {
        let value = |c: &ClockInfo| match self.setting.as_str() {
            "timezone" => c.timezone.clone(),
            "ntp" => if c.ntp { "on" } else { "off" }.to_owned(),
            "ntp_servers" => c.ntp_servers.join(" "),
            _ => c
                .time
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        vec![vec![
            self.setting.clone(),
            changed_text(self.changed, self.dry_run).to_owned(),
            value(&self.before),
            value(&self.after),
        ]]
    }
}

impl Tabular for InterfaceChange {
    const COLUMNS: &'static [&'static str] =
        &["INTERFACE", "CHANGED", "ADDRESSES", "MTU", "DROP-IN"];
    fn rows(self) -> Vec<Vec<String>> {
        let now = self.after.as_ref().unwrap_or(&self.before);
        vec![vec![
            self.interface.clone(),
            changed_text(self.changed, self.dry_run).to_owned(),
            now.addresses
                .iter()
                .map(|a| a.address.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            now.mtu.to_string(),
            self.path,
        ]]
    }
}

/// A list result reads as its items' rows, under their columns.
macro_rules! rows_of_each {
    ($($list:ty => $item:ty),* $(,)?) => {$(
        impl Tabular for $list {
            const COLUMNS: &'static [&'static str] = <$item as Tabular>::COLUMNS;
            fn rows(self) -> Vec<Vec<String>> {
                self.0.into_iter().flat_map(Tabular::rows).collect()
            }
        }
    )*};
}

rows_of_each!(
    Packages => Package,
    Sysctls => SysctlValue,
    Users => UserInfo,
    Groups => GroupInfo,
    Interfaces => InterfaceInfo,
);

/// Whether a change changed anything, or in a dry run would.
fn changed_text(changed: bool, dry_run: bool) -> &'static str {
    match (changed, dry_run) {
        (true, true) => "would change",
        (false, true) => "would not change",
        (true, false) => "yes",
        (false, false) => "no",
    }
}

impl Tabular for UnitChange {
    const COLUMNS: &'static [&'static str] =
        &["UNIT", "ACTION", "CHANGED", "BEFORE", "AFTER", "JOB"];
    fn rows(self) -> Vec<Vec<String>> {
        let changed = changed_text(self.changed, self.dry_run);
        let state = |s: &UnitState| format!("{}, {}", active_text(s), s.unit_file_state);
        vec![vec![
            self.unit,
            self.action,
            changed.to_owned(),
            state(&self.before),
            state(&self.after),
            self.job_result.unwrap_or_default(),
        ]]
    }
}

impl Tabular for DropIn {
    const COLUMNS: &'static [&'static str] = &["PATH", "CONTENT"];
    fn rows(self) -> Vec<Vec<String>> {
        let content = self.content.unwrap_or_else(|| "(none)".to_owned());
        vec![vec![self.path, content.trim_end().to_owned()]]
    }
}

impl Tabular for DropInChange {
    const COLUMNS: &'static [&'static str] = &["PATH", "CHANGED", "DIFF"];
    fn rows(self) -> Vec<Vec<String>> {
        let changed = changed_text(self.changed, self.dry_run);
        vec![vec![
            self.path,
            changed.to_owned(),
            self.diff.trim_end().to_owned(),
        ]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanising() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 * 1024 * 1024 * 1024), "16 GiB");
        assert_eq!(percent(39.6), "40%");
    }

    /// The package views as `osapictl` shows them, from the JSON an agent
    /// sends (the API's shape).
    #[test]
    fn package_results_read_as_rows() {
        let rows = |view: View, v: serde_json::Value| (view.rows)(&v).expect("rows");
        let change = serde_json::json!({
            "action": "install", "requested": ["tool"], "changed": true, "dry_run": true,
            "packages": [
                {"name": "tool", "arch": "all", "action": "install", "after": "1.0"},
                {"name": "libtool1", "arch": "amd64", "action": "update", "before": "0.9", "after": "1.0"}
            ],
            "reboot_required": false
        });
        assert_eq!(
            rows(of::<PackageChange>(), change),
            vec![
                ["tool", "install", "-", "1.0", "would change", "no"]
                    .map(String::from)
                    .to_vec(),
                ["libtool1", "update", "0.9", "1.0", "would change", "no"]
                    .map(String::from)
                    .to_vec(),
            ]
        );
        // Nothing to do: one row naming what was asked.
        let none = serde_json::json!({
            "action": "update", "requested": [], "changed": false, "dry_run": false,
            "packages": [], "reboot_required": true
        });
        assert_eq!(
            rows(of::<PackageChange>(), none),
            vec![
                ["(all)", "update", "-", "-", "no", "yes"]
                    .map(String::from)
                    .to_vec()
            ]
        );
        let updates = serde_json::json!({
            "updates": [{"name": "tool", "arch": "all", "installed_version": "1.0",
                "version": "1.1", "repo": "security", "severity": "security",
                "security": true, "summary": "a tool"}],
            "security": 1, "reboot_required": false
        });
        assert_eq!(
            rows(of::<PendingUpdates>(), updates),
            vec![
                ["tool", "1.0", "1.1", "security", "security"]
                    .map(String::from)
                    .to_vec()
            ]
        );
        let list = serde_json::json!([{"name": "tool", "version": "1.0", "arch": "all",
            "repo": "local", "installed": true, "summary": "a tool"}]);
        assert_eq!(
            rows(of::<Packages>(), list),
            vec![
                ["tool", "1.0", "all", "yes", "local", "a tool"]
                    .map(String::from)
                    .to_vec()
            ]
        );
    }

    #[test]
    fn a_result_of_another_shape_has_no_rows() {
        let view = of::<HostnameInfo>();
        assert!((view.rows)(&serde_json::json!({"x": 1})).is_none());
        assert_eq!(view.columns.len(), 4);
    }
}
