//! Power through systemd-logind (`org.freedesktop.login1`): a reboot or
//! poweroff scheduled with `ScheduleShutdown` (with an optional wall
//! message), cancelled with `CancelScheduledShutdown`, and the schedule read
//! from the `ScheduledShutdown` property. Which boot the host is in is the
//! kernel's boot id (`/proc/sys/kernel/random/boot_id`) and when its PID 1
//! started: the agent proves a reboot by finding either changed when it is
//! back (see `agent::reboot`). The start time is what tells a container's
//! reboot: its kernel does not reboot, and the agent's sandbox
//! (`ProtectKernelTunables=`) hides the boot id systemd-nspawn gives each
//! container boot.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use zbus::{Connection, proxy};

use super::hostnamed::{SystemBus, bus_error};
use super::procfs::ProcStat;
use super::{BoxFuture, ProviderError, ProviderResult};

const SERVICE: &str = "systemd-logind";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The soonest a shutdown is scheduled: time for the agent to record the
/// job before systemd stops it.
pub const MIN_DELAY: Duration = Duration::from_secs(3);

#[proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
trait Login1 {
    fn schedule_shutdown(&self, kind: &str, usec: u64) -> zbus::Result<()>;
    fn cancel_scheduled_shutdown(&self) -> zbus::Result<bool>;
    fn set_wall_message(&self, message: &str, enable: bool) -> zbus::Result<()>;
    #[zbus(property)]
    fn scheduled_shutdown(&self) -> zbus::Result<(String, u64)>;
}

/// A shutdown logind will carry out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ScheduledShutdown {
    /// `reboot` or `poweroff` (or what else logind was asked for).
    pub kind: String,
    /// When (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// Which boot the host is in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Boot {
    /// The kernel's boot id (32 hex digits).
    pub boot_id: String,
    /// When PID 1 (the init of this boot, or of this container) started.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub booted_at: OffsetDateTime,
    /// When PID 1 started, in clock ticks after the kernel booted: what
    /// tells a container's boots apart (no clock change moves it).
    pub init_start_ticks: u64,
}

impl Boot {
    /// The boot the host is in now.
    pub fn now() -> ProviderResult<Boot> {
        let unreadable = || ProviderError::parse("/proc/1/stat", "no start time of PID 1");
        let init = ProcStat::read("1").ok_or_else(unreadable)?;
        let booted_at = init
            .started_at()
            .and_then(|s| OffsetDateTime::from_unix_timestamp_nanos((s * 1e9) as i128).ok())
            .ok_or_else(unreadable)?;
        Ok(Boot {
            boot_id: boot_id()?,
            booted_at,
            init_start_ticks: init.start_ticks,
        })
    }

    /// Another boot than `earlier`: a new boot id, or another PID 1.
    pub fn is_other_than(&self, earlier: &Boot) -> bool {
        self.boot_id != earlier.boot_id || self.init_start_ticks != earlier.init_start_ticks
    }
}

/// The result of `power.status.get`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PowerStatus {
    #[serde(flatten)]
    pub boot: Boot,
    /// The scheduled shutdown, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<ScheduledShutdown>,
}

/// A host back from a reboot: the proof.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Returned {
    /// The boot the host is in now, not the one it was in.
    #[serde(flatten)]
    pub boot: Boot,
    /// When its agent reported back (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// From the scheduled time to the report, in seconds.
    pub downtime_s: f64,
}

/// What `power.reboot`, `power.poweroff` and `power.cancel` did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PowerChange {
    /// `reboot`, `poweroff` or `cancel`.
    pub action: String,
    /// Whether anything changed (or, in a dry run, would).
    pub changed: bool,
    pub dry_run: bool,
    /// The boot the host was in when asked.
    #[serde(flatten)]
    pub boot: Boot,
    /// What was scheduled before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<ScheduledShutdown>,
    /// What is scheduled after (none after a cancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ScheduledShutdown>,
    /// A reboot's proof: the host back in a new boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Returned>,
}

/// What to ask logind for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    Poweroff,
    Cancel,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Reboot => "reboot",
            PowerAction::Poweroff => "poweroff",
            PowerAction::Cancel => "cancel",
        }
    }
}

/// Reads and schedules shutdowns.
pub trait PowerProvider: Send + Sync {
    fn status(&self) -> BoxFuture<'_, ProviderResult<PowerStatus>>;
    /// Schedule (`delay` from now, at least [`MIN_DELAY`]) or cancel.
    fn change<'a>(
        &'a self,
        action: PowerAction,
        delay: Duration,
        message: Option<&'a str>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<PowerChange>>;
}

/// This boot's id, 32 hex digits.
pub fn boot_id() -> ProviderResult<String> {
    std::fs::read_to_string(BOOT_ID)
        .map(|id| id.trim().replace('-', ""))
        .map_err(|e| ProviderError::io(format!("reading {BOOT_ID}"), e))
}

/// Power through logind on the system bus.
pub struct LogindPower {
    bus: Arc<SystemBus>,
}

impl LogindPower {
    pub fn new(bus: Arc<SystemBus>) -> Self {
        LogindPower { bus }
    }

    async fn scheduled(
        &self,
        operation: &'static str,
    ) -> ProviderResult<Option<ScheduledShutdown>> {
        let (kind, usec) = self
            .bus
            .call(|conn| async move {
                // Uncached: read right after a change.
                Login1Proxy::builder(&conn)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await?
                    .scheduled_shutdown()
                    .await
            })
            .await
            .map_err(|e| bus_error(e, SERVICE, operation, "power"))?;
        Ok(scheduled(kind, usec))
    }
}

/// logind's `("", 0)` is "nothing scheduled".
fn scheduled(kind: String, usec: u64) -> Option<ScheduledShutdown> {
    if kind.is_empty() || usec == 0 {
        return None;
    }
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(usec) * 1000).ok()?;
    Some(ScheduledShutdown { kind, at })
}

async fn login1(conn: &Connection) -> zbus::Result<Login1Proxy<'_>> {
    Login1Proxy::new(conn).await
}

impl PowerProvider for LogindPower {
    fn status(&self) -> BoxFuture<'_, ProviderResult<PowerStatus>> {
        Box::pin(async move {
            Ok(PowerStatus {
                boot: Boot::now()?,
                scheduled: self.scheduled("power.status.get").await?,
            })
        })
    }

    fn change<'a>(
        &'a self,
        action: PowerAction,
        delay: Duration,
        message: Option<&'a str>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<PowerChange>> {
        Box::pin(async move {
            let operation = "power.change";
            let before = self.scheduled(operation).await?;
            let wanted = match action {
                PowerAction::Cancel => None,
                kind => Some(ScheduledShutdown {
                    kind: kind.as_str().to_owned(),
                    at: OffsetDateTime::now_utc() + delay.max(MIN_DELAY),
                }),
            };
            let mut change = PowerChange {
                action: action.as_str().to_owned(),
                // A schedule always moves the time; a cancel only when there
                // is something to cancel.
                changed: wanted.is_some() || before.is_some(),
                dry_run,
                boot: Boot::now()?,
                before,
                after: wanted.clone(),
                returned: None,
            };
            if dry_run || !change.changed {
                return Ok(change);
            }
            let failed = |e| bus_error(e, SERVICE, operation, "power");
            match &wanted {
                Some(w) => {
                    let usec = u64::try_from(w.at.unix_timestamp_nanos() / 1000).unwrap_or(0);
                    let (kind, message) = (w.kind.clone(), message.map(str::to_owned));
                    self.bus
                        .call_once(|conn| async move {
                            let login = login1(&conn).await?;
                            if let Some(text) = &message {
                                login.set_wall_message(text, true).await?;
                            }
                            login.schedule_shutdown(&kind, usec).await
                        })
                        .await
                        .map_err(failed)?;
                }
                None => {
                    self.bus
                        .call_once(|conn| async move {
                            login1(&conn).await?.cancel_scheduled_shutdown().await
                        })
                        .await
                        .map_err(failed)?;
                }
            }
            change.after = self.scheduled(operation).await?;
            Ok(change)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_scheduled_reads_as_none() {
        assert_eq!(scheduled(String::new(), 0), None);
        let s = scheduled("reboot".into(), 1_700_000_000_000_000).unwrap();
        assert_eq!(
            (s.kind.as_str(), s.at.unix_timestamp()),
            ("reboot", 1_700_000_000)
        );
    }

    #[test]
    fn this_boot_has_an_id_and_a_start() {
        let boot = Boot::now().unwrap();
        assert_eq!(boot.boot_id.len(), 32);
        assert!(boot.boot_id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(boot.booted_at < OffsetDateTime::now_utc());
        assert!(!boot.is_other_than(&Boot::now().unwrap()));
        let container_reboot = Boot {
            booted_at: boot.booted_at + time::Duration::seconds(30),
            init_start_ticks: boot.init_start_ticks + 3000,
            ..boot.clone()
        };
        assert!(container_reboot.is_other_than(&boot));
        // A clock set moves the computed start, not the ticks.
        let clock_set = Boot {
            booted_at: boot.booted_at + time::Duration::seconds(5),
            ..boot.clone()
        };
        assert!(!clock_set.is_other_than(&boot));
        assert!(container_reboot.is_other_than(&boot));
        let host_reboot = Boot {
            boot_id: "f".repeat(32),
            ..boot.clone()
        };
        assert!(host_reboot.is_other_than(&boot));
    }
}
