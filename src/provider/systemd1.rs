//! Units through systemd's manager (`org.freedesktop.systemd1`) on the system
//! bus: list and inspect them, start, stop, restart and reload them (waiting
//! for systemd's job to end, `JobRemoved`, and reporting its result), and
//! enable, disable, mask and unmask their files (then a daemon reload).
//!
//! Every change reads the unit first: a change already in place is answered
//! `changed: false` without a call, and a dry run answers before → after
//! without one. OSAPI's own units are not stopped, restarted, disabled or
//! masked unless the request says `force`: that would cut this agent off.
//!
//! Needs systemd as PID 1; tested in the booted container of
//! `scripts/appliance-test.sh`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use zbus::OwnedObjectPath;
use zbus::proxy::CacheProperties;
use zbus::{Connection, proxy};

use super::hostnamed::{SystemBus, bus_error, error_name};
use super::{BoxFuture, ProviderError, ProviderResult, put_file, read_optional};
use crate::job::{DropInRef, ServiceChange, ServiceList};

/// The service named in errors.
const SERVICE: &str = "systemd";

/// Longest wait for systemd's job of a start, stop, restart or reload (a
/// unit's own start timeout is 90 s by default; a job that takes longer is
/// reported as still running, and systemd goes on with it).
pub const UNIT_JOB_WAIT: Duration = Duration::from_secs(60);

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub(super) trait Manager {
    #[allow(clippy::type_complexity)]
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<
        Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    >;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn try_restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<(String, String, String)>)>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn mask_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn unmask_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn reload(&self) -> zbus::Result<()>;
    /// Commands' units (`provider::transient`).
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, zbus::Variant<'_>)],
        aux: &[(&str, &[(&str, zbus::Variant<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    /// Signals a unit's processes (`whom`: `main` or `all`).
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;

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
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
pub(super) trait Unit {
    #[zbus(property)]
    fn id(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn description(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn unit_file_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn fragment_path(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state_change_timestamp(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn drop_in_paths(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn required_by(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn bound_by(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn consists_of(&self) -> zbus::Result<Vec<String>>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
pub(super) trait Service {
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn memory_current(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "CPUUsageNSec")]
    fn cpu_usage_nsec(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    /// How the main process ended: a `CLD_*` code and its status.
    #[zbus(property)]
    fn exec_main_code(&self) -> zbus::Result<i32>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    /// When the main process started and ended (µs since the epoch; 0: not yet).
    #[zbus(property)]
    fn exec_main_start_timestamp(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn exec_main_exit_timestamp(&self) -> zbus::Result<u64>;
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// One loaded unit, as `service.unit.list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UnitSummary {
    pub unit: String,
    pub description: String,
    /// `loaded`, `not-found`, `masked`, …
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, …
    pub active_state: String,
    /// The type's own state: `running`, `exited`, `dead`, `listening`, …
    pub sub_state: String,
}

/// The loaded units that matched, by name: the result of `service.unit.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct Units(pub Vec<UnitSummary>);

/// Where a unit stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// `enabled`, `disabled`, `static`, `masked`, …; empty when the unit has no file.
    pub unit_file_state: String,
}

/// One unit in full: the result of `service.unit.get`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UnitStatus {
    pub unit: String,
    pub description: String,
    #[serde(flatten)]
    pub state: UnitState,
    /// The unit file, e.g. `/usr/lib/systemd/system/ssh.service`.
    pub fragment_path: String,
    /// When the active state last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    /// Services only: the main process, its memory and CPU time, the result of
    /// its last run (`success`, `exit-code`, `signal`, `timeout`, …) and its
    /// automatic restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceStatus>,
}

/// What a service unit adds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ServiceStatus {
    /// 0 when nothing runs.
    pub main_pid: u32,
    /// Bytes charged to its cgroup; absent when memory accounting is off.
    pub memory_bytes: Option<u64>,
    /// CPU time used; absent when CPU accounting is off.
    pub cpu_ns: Option<u64>,
    pub result: String,
    pub restarts: u32,
}

/// What a change did, or would do: the result of `service.unit.start` and
/// the other changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UnitChange {
    pub unit: String,
    /// `start`, `stop`, `restart`, `try-restart`, `reload`, `enable`, `disable`,
    /// `mask`, `unmask`.
    pub action: String,
    /// Whether anything changed (or, in a dry run, would).
    pub changed: bool,
    pub dry_run: bool,
    pub before: UnitState,
    /// After the change; in a dry run, what it would be.
    pub after: UnitState,
    /// systemd's job result for start, stop, restart, try-restart, reload and
    /// a change of the file with `now`: `done`,
    /// `failed`, `timeout`, `dependency`, `canceled`, `skipped`, `invalid`,
    /// or `running` when it had not ended after 60 s (systemd goes on with
    /// it); absent when no job ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_result: Option<String>,
    /// A stop or restart's dry run: the active units that would stop with
    /// it (those that require it, are bound to it or are part of it, and so
    /// on), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_stops: Vec<String>,
    /// Symlinks made or removed by enable, disable, mask and unmask:
    /// `symlink /etc/…/x.service -> /usr/lib/…`, `unlink /etc/…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// A drop-in as it is on the host: the result of `service.dropin.get`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DropIn {
    pub unit: String,
    pub path: String,
    /// Its text; absent when there is no such file.
    pub content: Option<String>,
}

/// What a drop-in put or delete did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DropInChange {
    pub unit: String,
    pub path: String,
    pub changed: bool,
    pub dry_run: bool,
    /// The change as a line diff (`-` before, `+` after); empty when nothing changes.
    pub diff: String,
}

// ---------------------------------------------------------------------------
// What a change needs (pure)
// ---------------------------------------------------------------------------

/// A change to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitAction {
    Start,
    Stop,
    Restart,
    /// Restart only when running.
    TryRestart,
    Reload,
    Enable,
    Disable,
    Mask,
    Unmask,
}

impl UnitAction {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitAction::Start => "start",
            UnitAction::Stop => "stop",
            UnitAction::Restart => "restart",
            UnitAction::TryRestart => "try-restart",
            UnitAction::Reload => "reload",
            UnitAction::Enable => "enable",
            UnitAction::Disable => "disable",
            UnitAction::Mask => "mask",
            UnitAction::Unmask => "unmask",
        }
    }

    /// Does it stop the unit (now or at the next boot)?
    pub fn stops(self) -> bool {
        matches!(
            self,
            UnitAction::Stop
                | UnitAction::Restart
                | UnitAction::TryRestart
                | UnitAction::Disable
                | UnitAction::Mask
        )
    }

    /// Is it a systemd job (start, stop, restart, reload) rather than a change
    /// of the unit's file?
    pub fn runs_job(self) -> bool {
        matches!(
            self,
            UnitAction::Start
                | UnitAction::Stop
                | UnitAction::Restart
                | UnitAction::TryRestart
                | UnitAction::Reload
        )
    }

    /// The job that `now` adds to a change of the unit's file: enable starts,
    /// disable and mask stop.
    pub fn then_now(self) -> Option<UnitAction> {
        match self {
            UnitAction::Enable => Some(UnitAction::Start),
            UnitAction::Disable | UnitAction::Mask => Some(UnitAction::Stop),
            _ => None,
        }
    }

    /// Does it start the unit?
    pub fn starts(self) -> bool {
        matches!(self, UnitAction::Start | UnitAction::Restart)
    }

    /// Why the unit in `state` cannot take the change at all.
    fn refused(self, state: &UnitState) -> Option<&'static str> {
        let masked = state.load_state == "masked" || state.unit_file_state.starts_with("masked");
        let running = matches!(state.active_state.as_str(), "active" | "reloading");
        match self {
            UnitAction::Start | UnitAction::Restart | UnitAction::Enable if masked => {
                Some("is masked; unmask it first")
            }
            UnitAction::Reload if !running => Some("is not running: there is nothing to reload"),
            _ => None,
        }
    }

    /// Whether the unit in `state` needs the change at all: restart and reload
    /// always do; the others not when already in place.
    pub fn needed(self, state: &UnitState) -> bool {
        let running = matches!(
            state.active_state.as_str(),
            "active" | "activating" | "reloading"
        );
        let file = state.unit_file_state.as_str();
        match self {
            UnitAction::Start => !running,
            UnitAction::Stop => running || state.active_state == "deactivating",
            UnitAction::Restart | UnitAction::Reload => true,
            UnitAction::TryRestart => running,
            UnitAction::Enable => file == "disabled",
            UnitAction::Disable => file.starts_with("enabled") || file.starts_with("linked"),
            UnitAction::Mask => !file.starts_with("masked"),
            UnitAction::Unmask => file.starts_with("masked"),
        }
    }

    /// The state after the change, as a dry run reports it.
    pub fn predict(self, state: &UnitState) -> UnitState {
        let mut after = state.clone();
        if !self.needed(state) {
            return after;
        }
        let (active, file) = match self {
            UnitAction::Start | UnitAction::Restart | UnitAction::TryRestart => {
                (Some("active"), None)
            }
            UnitAction::Reload => (None, None),
            UnitAction::Stop => (Some("inactive"), None),
            UnitAction::Enable => (None, Some("enabled")),
            // Unmask: `disabled` unless the unit's links are still in place.
            UnitAction::Disable | UnitAction::Unmask => (None, Some("disabled")),
            UnitAction::Mask => (None, Some("masked")),
        };
        if let Some(active) = active {
            after.active_state = active.into();
            after.sub_state = String::new();
        }
        if let Some(file) = file {
            after.unit_file_state = file.into();
        }
        after
    }
}

// ---------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------

/// Reads and changes units.
pub trait ServiceProvider: Send + Sync {
    fn list<'a>(&'a self, query: &'a ServiceList) -> BoxFuture<'a, ProviderResult<Units>>;
    fn get<'a>(&'a self, unit: &'a str) -> BoxFuture<'a, ProviderResult<UnitStatus>>;
    fn change<'a>(
        &'a self,
        action: UnitAction,
        request: &'a ServiceChange,
    ) -> BoxFuture<'a, ProviderResult<UnitChange>>;
    fn dropin_get<'a>(&'a self, file: &'a DropInRef) -> BoxFuture<'a, ProviderResult<DropIn>>;
    /// Writes the drop-in (or removes it, `content: None`), reloads systemd
    /// and checks that systemd took it; puts the old one back when not.
    fn dropin_set<'a>(
        &'a self,
        file: DropInRef,
        content: Option<&'a str>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<DropInChange>>;
}

/// Units through systemd on the system bus.
pub struct Systemd1Units {
    bus: Arc<SystemBus>,
}

impl Systemd1Units {
    pub fn new(bus: Arc<SystemBus>) -> Self {
        Systemd1Units { bus }
    }
}

/// A systemd error reply as a provider error: an unknown unit is `not_found`,
/// a masked one refused by name.
fn systemd_error(e: zbus::Error, unit: &str, operation: &'static str) -> ProviderError {
    match error_name(&e) {
        Some("org.freedesktop.systemd1.NoSuchUnit") => ProviderError::NotFound {
            what: "unit",
            name: unit.to_owned(),
        },
        Some("org.freedesktop.systemd1.LoadFailed") => {
            ProviderError::invalid("unit", format!("systemd cannot load {unit}: {e}"))
        }
        Some("org.freedesktop.DBus.Error.FileExists") => ProviderError::invalid(
            "unit",
            format!("{unit}: {e} (systemd masks only units installed outside /etc/systemd/system)"),
        ),
        Some("org.freedesktop.systemd1.UnitMasked") => {
            ProviderError::invalid("unit", format!("{unit} is masked; unmask it first"))
        }
        Some(name) if name.starts_with("org.freedesktop.systemd1.") => ProviderError::Io {
            context: format!("{operation} {unit}"),
            source: std::io::Error::other(e.to_string()),
        },
        _ => bus_error(e, SERVICE, operation, "unit"),
    }
}

async fn unit_proxy<'c>(conn: &'c Connection, name: &str) -> zbus::Result<UnitProxy<'c>> {
    let path = ManagerProxy::new(conn).await?.load_unit(name).await?;
    // One GetAll, then every property from the cache.
    UnitProxy::builder(conn)
        .path(path)
        .cache_properties(CacheProperties::Yes)
        .build()
        .await
}

async fn state_of(unit: &UnitProxy<'_>) -> zbus::Result<UnitState> {
    Ok(UnitState {
        load_state: unit.load_state().await?,
        active_state: unit.active_state().await?,
        sub_state: unit.sub_state().await?,
        unit_file_state: unit.unit_file_state().await?,
    })
}

/// A unit systemd could not find is loaded as `not-found`: say so.
fn found(unit: &str, state: &UnitState) -> ProviderResult<()> {
    if state.load_state == "not-found" {
        return Err(ProviderError::NotFound {
            what: "unit",
            name: unit.to_owned(),
        });
    }
    Ok(())
}

/// `u64::MAX` is systemd's "not known".
fn known(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

async fn status(conn: &Connection, name: &str) -> zbus::Result<(UnitState, UnitStatus)> {
    let unit = unit_proxy(conn, name).await?;
    let state = state_of(&unit).await?;
    let changed_usec = unit.state_change_timestamp().await?;
    let since = (changed_usec > 0)
        .then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(changed_usec) * 1000).ok())
        .flatten();
    let service = if name.ends_with(".service") && state.load_state == "loaded" {
        let s = ServiceProxy::builder(conn)
            .path(unit.inner().path().to_owned())
            .cache_properties(CacheProperties::Yes)
            .build()
            .await?;
        Some(ServiceStatus {
            main_pid: s.main_pid().await?,
            memory_bytes: known(s.memory_current().await?),
            cpu_ns: known(s.cpu_usage_nsec().await?),
            result: s.result().await?,
            restarts: s.n_restarts().await?,
        })
    } else {
        None
    };
    let status = UnitStatus {
        unit: unit.id().await?,
        description: unit.description().await?,
        state: state.clone(),
        fragment_path: unit.fragment_path().await?,
        since,
        service,
    };
    Ok((state, status))
}

/// The active units that stop when `unit` stops: those that require it, are
/// bound to it or are part of it, and theirs in turn, in name order.
async fn dependents(conn: &Connection, unit: &str) -> zbus::Result<Vec<String>> {
    let mut found = std::collections::BTreeSet::new();
    let mut todo = vec![unit.to_owned()];
    // A dependency cycle ends where a unit was seen; the bound keeps a
    // pathological graph from running long.
    while let Some(name) = todo.pop().filter(|_| found.len() < 512) {
        let u = unit_proxy(conn, &name).await?;
        // Each unit is loaded once: its state decides here, on its turn.
        if name != unit {
            let active = u.active_state().await?;
            if !matches!(active.as_str(), "active" | "activating" | "reloading") {
                continue;
            }
            found.insert(name);
        }
        for next in [
            u.required_by().await?,
            u.bound_by().await?,
            u.consists_of().await?,
        ]
        .into_iter()
        .flatten()
        {
            if next != unit && !found.contains(&next) && !todo.contains(&next) {
                todo.push(next);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Run a job (start, stop, restart, reload) and wait for systemd to finish it.
pub(super) async fn run_job(
    conn: &Connection,
    action: UnitAction,
    unit: &str,
) -> zbus::Result<String> {
    let manager = ManagerProxy::new(conn).await?;
    // systemd sends JobRemoved to the client that asked for the job (no
    // Subscribe needed). Listen before the call, or a quick job ends unseen.
    let mut removed = manager.receive_job_removed().await?;
    let job = match action {
        UnitAction::Start => manager.start_unit(unit, "replace").await?,
        UnitAction::Stop => manager.stop_unit(unit, "replace").await?,
        UnitAction::Restart => manager.restart_unit(unit, "replace").await?,
        UnitAction::TryRestart => manager.try_restart_unit(unit, "replace").await?,
        _ => manager.reload_unit(unit, "replace").await?,
    };
    let wait = async {
        while let Some(signal) = removed.next().await {
            let args = signal.args()?;
            if args.job == job {
                return Ok(args.result);
            }
        }
        Err(zbus::Error::Failure(
            "the system bus closed the signal stream".into(),
        ))
    };
    match tokio::time::timeout(UNIT_JOB_WAIT, wait).await {
        Ok(result) => result,
        Err(_) => Ok("running".to_owned()),
    }
}

/// Enable, disable, mask or unmask the unit's file, then reload systemd.
/// `runtime`: the links to remove are under `/run` (`enabled-runtime`,
/// `masked-runtime`).
async fn change_files(
    conn: &Connection,
    action: UnitAction,
    unit: &str,
    runtime: bool,
) -> zbus::Result<Vec<String>> {
    let manager = ManagerProxy::new(conn).await?;
    let files = [unit];
    let changes = match action {
        UnitAction::Enable => manager.enable_unit_files(&files, false, false).await?.1,
        UnitAction::Disable => manager.disable_unit_files(&files, runtime).await?,
        UnitAction::Mask => manager.mask_unit_files(&files, false, false).await?,
        _ => manager.unmask_unit_files(&files, runtime).await?,
    };
    manager.reload().await?;
    Ok(changes
        .into_iter()
        .map(|(kind, path, target)| match target.is_empty() {
            true => format!("{kind} {path}"),
            false => format!("{kind} {path} -> {target}"),
        })
        .collect())
}

impl ServiceProvider for Systemd1Units {
    fn list<'a>(&'a self, query: &'a ServiceList) -> BoxFuture<'a, ProviderResult<Units>> {
        Box::pin(async move {
            let states: Vec<&str> = query.state.iter().map(String::as_str).collect();
            let patterns: Vec<&str> = query.pattern.iter().map(String::as_str).collect();
            let listed = self
                .bus
                .call(|conn| {
                    let (states, patterns) = (states.clone(), patterns.clone());
                    async move {
                        ManagerProxy::new(&conn)
                            .await?
                            .list_units_by_patterns(&states, &patterns)
                            .await
                    }
                })
                .await
                .map_err(|e| bus_error(e, SERVICE, "service.unit.list", "pattern"))?;
            let mut units: Vec<UnitSummary> = listed
                .into_iter()
                .map(
                    |(unit, description, load_state, active_state, sub_state, ..)| UnitSummary {
                        unit,
                        description,
                        load_state,
                        active_state,
                        sub_state,
                    },
                )
                .collect();
            units.sort_by(|a, b| a.unit.cmp(&b.unit));
            Ok(Units(units))
        })
    }

    fn get<'a>(&'a self, unit: &'a str) -> BoxFuture<'a, ProviderResult<UnitStatus>> {
        Box::pin(async move {
            let (state, status) = self
                .bus
                .call(|conn| async move { status(&conn, unit).await })
                .await
                .map_err(|e| systemd_error(e, unit, "service.unit.get"))?;
            found(unit, &state)?;
            Ok(status)
        })
    }

    fn change<'a>(
        &'a self,
        action: UnitAction,
        request: &'a ServiceChange,
    ) -> BoxFuture<'a, ProviderResult<UnitChange>> {
        Box::pin(async move {
            // Input and guard were checked with the operation (dispatch).
            let unit = request.unit.as_str();
            let operation = "service.unit.change";
            let state =
                |conn: Connection| async move { state_of(&unit_proxy(&conn, unit).await?).await };
            let before = self
                .bus
                .call(state)
                .await
                .map_err(|e| systemd_error(e, unit, operation))?;
            // Masking or unmasking a unit that is not installed is allowed.
            if !matches!(action, UnitAction::Mask | UnitAction::Unmask) {
                found(unit, &before)?;
            }
            if let Some(why) = action.refused(&before) {
                return Err(ProviderError::invalid("unit", format!("{unit} {why}")));
            }
            // `now`: enable also starts, disable and mask also stop.
            let then = action.then_now().filter(|_| request.now);
            let file_needed = !action.runs_job() && action.needed(&before);
            let job = match then {
                Some(job) => job.needed(&before).then_some(job),
                None => action
                    .runs_job()
                    .then_some(action)
                    .filter(|a| a.needed(&before)),
            };
            let after = action.predict(&before);
            let mut change = UnitChange {
                unit: unit.to_owned(),
                action: action.as_str().to_owned(),
                changed: file_needed || job.is_some(),
                dry_run: request.dry_run,
                after: then.map_or(after.clone(), |job| job.predict(&after)),
                before,
                job_result: None,
                also_stops: Vec::new(),
                files: Vec::new(),
            };
            if request.dry_run && job.is_some_and(UnitAction::stops) {
                change.also_stops = self
                    .bus
                    .call(|conn| async move { dependents(&conn, unit).await })
                    .await
                    .map_err(|e| systemd_error(e, unit, operation))?;
            }
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            if file_needed {
                let runtime = change.before.unit_file_state.ends_with("-runtime");
                change.files = self
                    .bus
                    .call_once(
                        |conn| async move { change_files(&conn, action, unit, runtime).await },
                    )
                    .await
                    .map_err(|e| systemd_error(e, unit, operation))?;
                change.changed = !change.files.is_empty() || job.is_some();
            }
            if let Some(job) = job {
                let result = self
                    .bus
                    .call_once(|conn| async move { run_job(&conn, job, unit).await })
                    .await
                    .map_err(|e| systemd_error(e, unit, operation))?;
                change.job_result = Some(result);
            }
            change.after = self
                .bus
                .call(state)
                .await
                .map_err(|e| systemd_error(e, unit, operation))?;
            Ok(change)
        })
    }
    fn dropin_get<'a>(&'a self, file: &'a DropInRef) -> BoxFuture<'a, ProviderResult<DropIn>> {
        Box::pin(async move {
            file.validate()?;
            let path = file.path();
            Ok(DropIn {
                unit: file.unit.clone(),
                path: path.display().to_string(),
                content: read_optional(&path)?,
            })
        })
    }

    fn dropin_set<'a>(
        &'a self,
        file: DropInRef,
        content: Option<&'a str>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<DropInChange>> {
        Box::pin(async move {
            file.validate()?;
            let path = file.path();
            let before = read_optional(&path)?;
            let unit = file.unit.as_str();
            let mut change = DropInChange {
                unit: unit.to_owned(),
                path: path.display().to_string(),
                changed: before.as_deref() != content,
                dry_run,
                diff: crate::diff::unified(
                    before.as_deref().unwrap_or_default(),
                    content.unwrap_or_default(),
                ),
            };
            if dry_run || !change.changed {
                return Ok(change);
            }
            let operation = "service.dropin";
            let state =
                |conn: Connection| async move { state_of(&unit_proxy(&conn, unit).await?).await };
            let loaded = self
                .bus
                .call(state)
                .await
                .map_err(|e| systemd_error(e, unit, operation))?;
            found(unit, &loaded)?;
            write_dropin(&path, content)?;
            let reload =
                |conn: Connection| async move { ManagerProxy::new(&conn).await?.reload().await };
            let taken = async {
                self.bus.call(reload).await?;
                // One load of the unit: its drop-ins and its state.
                self.bus
                    .call(|conn| async move {
                        let u = unit_proxy(&conn, unit).await?;
                        Ok((u.drop_in_paths().await?, state_of(&u).await?))
                    })
                    .await
            }
            .await;
            let confirmed = match &taken {
                Ok((paths, state)) => {
                    let listed = paths.iter().any(|p| std::path::Path::new(p) == path);
                    state.load_state == "loaded" && listed == content.is_some()
                }
                Err(_) => false,
            };
            if !confirmed {
                // Proof, not hope: put the old drop-in back and say why.
                write_dropin(&path, before.as_deref())?;
                let _ = self.bus.call(reload).await;
                change.changed = false;
                let why = match taken {
                    Ok((_, state)) => format!("systemd left {unit} {}", state.load_state),
                    Err(e) => e.to_string(),
                };
                return Err(ProviderError::invalid(
                    "content",
                    format!("systemd did not take the drop-in ({why}); the old one is back"),
                ));
            }
            Ok(change)
        })
    }
}

/// Write the drop-in whole (0644), or remove it and its directory once empty.
pub(super) fn write_dropin(path: &std::path::Path, content: Option<&str>) -> ProviderResult<()> {
    put_file(path, content)?;
    // Only when empty: other drop-ins may share the directory.
    if content.is_none()
        && let Some(dir) = path.parent()
    {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: &str, file: &str) -> UnitState {
        UnitState {
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: "x".into(),
            unit_file_state: file.into(),
        }
    }

    #[test]
    fn a_change_in_place_is_not_needed() {
        use UnitAction::*;
        let running = state("active", "enabled");
        let stopped = state("inactive", "disabled");
        assert!(!Start.needed(&running) && Start.needed(&stopped));
        assert!(Stop.needed(&running) && !Stop.needed(&stopped));
        assert!(!Stop.needed(&state("failed", "enabled")));
        assert!(Restart.needed(&stopped) && Reload.needed(&running));
        assert!(!Enable.needed(&running) && Enable.needed(&stopped));
        assert!(
            !Enable.needed(&state("active", "static")),
            "static units have nothing to enable"
        );
        assert!(Disable.needed(&running) && !Disable.needed(&stopped));
        assert!(Mask.needed(&running) && !Mask.needed(&state("inactive", "masked")));
        assert!(Unmask.needed(&state("inactive", "masked-runtime")) && !Unmask.needed(&running));
    }

    #[test]
    fn some_states_cannot_take_the_change() {
        let masked = UnitState {
            load_state: "masked".into(),
            ..state("inactive", "masked")
        };
        assert!(UnitAction::Start.refused(&masked).is_some());
        assert!(UnitAction::Enable.refused(&masked).is_some());
        assert!(UnitAction::Unmask.refused(&masked).is_none());
        assert!(
            UnitAction::Reload
                .refused(&state("inactive", "enabled"))
                .is_some()
        );
        assert!(
            UnitAction::Reload
                .refused(&state("active", "enabled"))
                .is_none()
        );
    }

    #[test]
    fn a_dry_run_predicts_the_state_after() {
        let stopped = state("inactive", "disabled");
        assert_eq!(UnitAction::Start.predict(&stopped).active_state, "active");
        assert_eq!(UnitAction::Mask.predict(&stopped).unit_file_state, "masked");
        let running = state("active", "enabled");
        assert_eq!(
            UnitAction::Start.predict(&running),
            running,
            "nothing to do"
        );
    }
}
