//! The clock through systemd-timedated (`org.freedesktop.timedate1`) and
//! systemd-timesyncd (`org.freedesktop.timesync1`) on the system bus.
//!
//! * Reads: time, zone, RTC mode, NTP on and in sync from timedated; the
//!   server in use and its offset from timesyncd, only when it already runs
//!   (asking its name would start it); the servers OSAPI set, from its drop-in.
//! * Changes ([`ClockSetting`]): the zone (checked against timedated's
//!   `ListTimezones`), NTP on or off, the time (refused while NTP is on), and
//!   the NTP servers (a timesyncd drop-in, then a try-restart of timesyncd).
//!   Each reads the settings first: what is already so answers
//!   `changed: false` and calls nothing; a dry run answers the prediction.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use zbus::proxy::CacheProperties;
use zbus::{Connection, fdo, proxy};

use super::hostnamed::{SystemBus, bus_error};
use super::read_optional;
use super::systemd1::{UnitAction, run_job, write_dropin};
use super::{BoxFuture, ProviderError, ProviderResult};
use crate::retry::Backoff;

/// The service named in errors.
const SERVICE: &str = "systemd-timedated";
/// The NTP servers OSAPI sets: a timesyncd drop-in of its own.
pub const NTP_DROPIN: &str = "/etc/systemd/timesyncd.conf.d/50-osapi.conf";
const TIMESYNCD: &str = "systemd-timesyncd.service";
/// How long timedated may take to report NTP on or off after it started or
/// stopped timesyncd.
const NTP_SETTLE: Duration = Duration::from_secs(10);

#[proxy(
    interface = "org.freedesktop.timedate1",
    default_service = "org.freedesktop.timedate1",
    default_path = "/org/freedesktop/timedate1"
)]
trait Timedate1 {
    fn set_timezone(&self, timezone: &str, interactive: bool) -> zbus::Result<()>;
    #[zbus(name = "SetNTP")]
    fn set_ntp(&self, use_ntp: bool, interactive: bool) -> zbus::Result<()>;
    fn set_time(&self, usec_utc: i64, relative: bool, interactive: bool) -> zbus::Result<()>;
    fn list_timezones(&self) -> zbus::Result<Vec<String>>;

    #[zbus(property)]
    fn timezone(&self) -> zbus::Result<String>;
    #[zbus(property, name = "LocalRTC")]
    fn local_rtc(&self) -> zbus::Result<bool>;
    #[zbus(property, name = "CanNTP")]
    fn can_ntp(&self) -> zbus::Result<bool>;
    #[zbus(property, name = "NTP")]
    fn ntp(&self) -> zbus::Result<bool>;
    #[zbus(property, name = "NTPSynchronized")]
    fn ntp_synchronized(&self) -> zbus::Result<bool>;
    #[zbus(property, name = "TimeUSec")]
    fn time_usec(&self) -> zbus::Result<u64>;
}

/// timesyncd's `NTPMessage`: the last answer from the server.
type NtpMessage = (
    u32,
    u32,
    u32,
    u32,
    i32,
    u64,
    u64,
    Vec<u8>,
    u64,
    u64,
    u64,
    u64,
    bool,
    u64,
    u64,
);

#[proxy(
    interface = "org.freedesktop.timesync1.Manager",
    default_service = "org.freedesktop.timesync1",
    default_path = "/org/freedesktop/timesync1"
)]
trait Timesync1 {
    #[zbus(property)]
    fn server_name(&self) -> zbus::Result<String>;
    #[zbus(property, name = "NTPMessage")]
    fn ntp_message(&self) -> zbus::Result<NtpMessage>;
}

/// The host's clock settings: the result of `time.clock.get`, and the before
/// and after of a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ClockInfo {
    /// The host's time when it answered (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: OffsetDateTime,
    /// The time zone, e.g. `Europe/Berlin`, `Etc/UTC`.
    pub timezone: String,
    /// The hardware clock keeps local time rather than UTC.
    pub local_rtc: bool,
    /// An NTP service is installed that timedated can turn on.
    pub can_ntp: bool,
    /// NTP is on.
    pub ntp: bool,
    /// The kernel says the clock is synchronised.
    pub ntp_synchronized: bool,
    /// The NTP servers set through OSAPI (its timesyncd drop-in); empty when
    /// timesyncd uses the host's own configuration.
    #[serde(default)]
    pub ntp_servers: Vec<String>,
    /// The server timesyncd talks to, when it runs and has picked one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntp_server: Option<String>,
    /// The clock's offset from that server at its last answer, in
    /// microseconds (positive: the host is behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntp_offset_us: Option<i64>,
}

/// One change of the clock's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockSetting<'a> {
    Timezone(&'a str),
    Ntp(bool),
    Time(OffsetDateTime),
    NtpServers(&'a [String]),
}

impl ClockSetting<'_> {
    /// The name of the setting, as results show it.
    pub fn name(&self) -> &'static str {
        match self {
            ClockSetting::Timezone(_) => "timezone",
            ClockSetting::Ntp(_) => "ntp",
            ClockSetting::Time(_) => "time",
            ClockSetting::NtpServers(_) => "ntp_servers",
        }
    }

    /// The settings after the change, as a dry run reports them.
    pub fn predict(&self, before: &ClockInfo) -> ClockInfo {
        let mut after = before.clone();
        match self {
            ClockSetting::Timezone(zone) => after.timezone = (*zone).to_owned(),
            ClockSetting::Ntp(on) => after.ntp = *on,
            ClockSetting::Time(t) => after.time = *t,
            ClockSetting::NtpServers(servers) => after.ntp_servers = servers.to_vec(),
        }
        after
    }

    /// Whether the change is needed: setting the time always is; the others
    /// not when already so.
    pub fn needed(&self, before: &ClockInfo) -> bool {
        matches!(self, ClockSetting::Time(_)) || self.predict(before) != *before
    }

    /// Why the host in `before` cannot take it at all.
    fn refused(&self, before: &ClockInfo) -> Option<ProviderError> {
        match self {
            ClockSetting::Time(_) if before.ntp => Some(ProviderError::invalid(
                "time",
                "NTP sets this clock: turn NTP off first (time.ntp.set)",
            )),
            ClockSetting::Ntp(true) if !before.can_ntp => Some(ProviderError::invalid(
                "enabled",
                "no NTP service is installed (systemd-timesyncd)",
            )),
            _ => None,
        }
    }
}

/// What a change of the clock's settings did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ClockChange {
    /// `timezone`, `ntp`, `time` or `ntp_servers`.
    pub setting: String,
    /// Whether anything changed (or, in a dry run, would).
    pub changed: bool,
    pub dry_run: bool,
    pub before: ClockInfo,
    /// After the change; in a dry run, what it would be.
    pub after: ClockInfo,
}

/// Reads and changes the clock's settings.
pub trait ClockProvider: Send + Sync {
    fn get(&self) -> BoxFuture<'_, ProviderResult<ClockInfo>>;
    fn change<'a>(
        &'a self,
        setting: ClockSetting<'a>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<ClockChange>>;
}

/// The clock through timedated and timesyncd on the system bus.
pub struct TimedatedClock {
    bus: Arc<SystemBus>,
}

impl TimedatedClock {
    pub fn new(bus: Arc<SystemBus>) -> Self {
        TimedatedClock { bus }
    }

    async fn read(&self, operation: &'static str) -> ProviderResult<ClockInfo> {
        let ntp_servers = configured_servers(&read_optional(Path::new(NTP_DROPIN))?);
        self.bus
            .call(|conn| {
                let ntp_servers = ntp_servers.clone();
                async move { read(&conn, ntp_servers).await }
            })
            .await
            .map_err(|e| bus_error(e, SERVICE, operation, "time"))
    }

    async fn apply(&self, setting: &ClockSetting<'_>) -> ProviderResult<()> {
        let operation = "time.change";
        let field = setting.name();
        let failed = |e| bus_error(e, SERVICE, operation, field);
        match setting {
            ClockSetting::Timezone(zone) => {
                let zones = self
                    .bus
                    .call(|conn| async move { proxy(&conn).await?.list_timezones().await })
                    .await
                    .map_err(failed)?;
                if !zones.iter().any(|z| z == zone) {
                    return Err(ProviderError::invalid(
                        "timezone",
                        format!("{zone} is not in this host's time zone database"),
                    ));
                }
                self.bus
                    .call_once(
                        |conn| async move { proxy(&conn).await?.set_timezone(zone, false).await },
                    )
                    .await
                    .map_err(failed)
            }
            ClockSetting::Ntp(on) => {
                let on = *on;
                self.bus
                    .call_once(|conn| async move { proxy(&conn).await?.set_ntp(on, false).await })
                    .await
                    .map_err(failed)?;
                // timedated answers once it asked systemd for the jobs; its
                // NTP property follows when they end.
                let mut backoff =
                    Backoff::between(Duration::from_millis(20), Duration::from_millis(500));
                let deadline = tokio::time::Instant::now() + NTP_SETTLE;
                while tokio::time::Instant::now() < deadline {
                    let now = self
                        .bus
                        .call(|conn| async move { proxy(&conn).await?.ntp().await })
                        .await
                        .map_err(failed)?;
                    if now == on {
                        return Ok(());
                    }
                    backoff.wait().await;
                }
                let unit = if on { "started" } else { "stopped" };
                Err(ProviderError::io(
                    "time.ntp.set",
                    std::io::Error::other(format!(
                        "timedated still reports NTP {} after {} s: the NTP service was not {unit}",
                        if on { "off" } else { "on" },
                        NTP_SETTLE.as_secs()
                    )),
                ))
            }
            ClockSetting::Time(t) => {
                let usec = i64::try_from(t.unix_timestamp_nanos() / 1000)
                    .map_err(|_| ProviderError::invalid("time", "out of range"))?;
                self.bus
                    .call_once(|conn| async move {
                        proxy(&conn).await?.set_time(usec, false, false).await
                    })
                    .await
                    .map_err(failed)
            }
            ClockSetting::NtpServers(servers) => {
                write_dropin(Path::new(NTP_DROPIN), ntp_dropin(servers).as_deref())?;
                // Only a running timesyncd needs to read it again.
                let result = self
                    .bus
                    .call_once(|conn| async move {
                        run_job(&conn, UnitAction::TryRestart, TIMESYNCD).await
                    })
                    .await
                    .map_err(|e| bus_error(e, "systemd", operation, field))?;
                match result.as_str() {
                    "done" => Ok(()),
                    other => Err(ProviderError::io(
                        format!("{NTP_DROPIN} is written, but restarting {TIMESYNCD}"),
                        std::io::Error::other(format!("systemd's job ended in {other}")),
                    )),
                }
            }
        }
    }
}

async fn proxy(conn: &Connection) -> zbus::Result<Timedate1Proxy<'_>> {
    Timedate1Proxy::new(conn).await
}

async fn read(conn: &Connection, ntp_servers: Vec<String>) -> zbus::Result<ClockInfo> {
    // One GetAll, then every property from the cache.
    let t = Timedate1Proxy::builder(conn)
        .cache_properties(CacheProperties::Yes)
        .build()
        .await?;
    let usec = t.time_usec().await?;
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(usec) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut info = ClockInfo {
        time,
        timezone: t.timezone().await?,
        local_rtc: t.local_rtc().await?,
        can_ntp: t.can_ntp().await?,
        ntp: t.ntp().await?,
        ntp_synchronized: t.ntp_synchronized().await?,
        ntp_servers,
        ntp_server: None,
        ntp_offset_us: None,
    };
    // Only a timesyncd that runs: asking for its name would start it.
    let dbus = fdo::DBusProxy::new(conn).await?;
    let name = zbus::names::BusName::try_from("org.freedesktop.timesync1")?;
    if dbus.name_has_owner(name).await? {
        let s = Timesync1Proxy::builder(conn)
            .cache_properties(CacheProperties::Yes)
            .build()
            .await?;
        info.ntp_server = Some(s.server_name().await?).filter(|n| !n.is_empty());
        info.ntp_offset_us = s.ntp_message().await.ok().and_then(|m| offset_us(&m));
    }
    Ok(info)
}

/// The clock's offset from the server at its last answer (RFC 5905: the mean
/// of the two one-way differences), or `None` before any answer.
fn offset_us(m: &NtpMessage) -> Option<i64> {
    let (origin, receive, transmit, destination, packets) = (m.8, m.9, m.10, m.11, m.13);
    if packets == 0 || origin == 0 {
        return None;
    }
    let d = |a: u64, b: u64| i128::from(a) - i128::from(b);
    i64::try_from((d(receive, origin) + d(transmit, destination)) / 2).ok()
}

/// The drop-in's text for `servers`; `None` (remove it) for none.
fn ntp_dropin(servers: &[String]) -> Option<String> {
    (!servers.is_empty()).then(|| {
        format!(
            "# Written by OSAPI (time.ntp_servers.set); setting no servers removes it.\n\
             [Time]\nNTP={}\n",
            servers.join(" ")
        )
    })
}

/// The servers OSAPI's drop-in names.
fn configured_servers(dropin: &Option<String>) -> Vec<String> {
    dropin
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|line| line.trim().strip_prefix("NTP="))
        .next_back()
        .map(|list| list.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

impl ClockProvider for TimedatedClock {
    fn get(&self) -> BoxFuture<'_, ProviderResult<ClockInfo>> {
        Box::pin(self.read("time.clock.get"))
    }

    fn change<'a>(
        &'a self,
        setting: ClockSetting<'a>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<ClockChange>> {
        Box::pin(async move {
            let before = self.read("time.change").await?;
            if let Some(refused) = setting.refused(&before) {
                return Err(refused);
            }
            let mut change = ClockChange {
                setting: setting.name().to_owned(),
                changed: setting.needed(&before),
                dry_run,
                after: setting.predict(&before),
                before,
            };
            if dry_run || !change.changed {
                return Ok(change);
            }
            self.apply(&setting).await?;
            change.after = self.read("time.change").await?;
            Ok(change)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClockInfo {
        ClockInfo {
            time: OffsetDateTime::UNIX_EPOCH,
            timezone: "Etc/UTC".into(),
            local_rtc: false,
            can_ntp: true,
            ntp: true,
            ntp_synchronized: false,
            ntp_servers: vec![],
            ntp_server: None,
            ntp_offset_us: None,
        }
    }

    #[test]
    fn what_is_already_so_is_not_changed() {
        let before = info();
        assert!(!ClockSetting::Timezone("Etc/UTC").needed(&before));
        assert!(ClockSetting::Timezone("Europe/Berlin").needed(&before));
        assert!(!ClockSetting::Ntp(true).needed(&before));
        assert!(ClockSetting::Ntp(false).needed(&before));
        assert!(!ClockSetting::NtpServers(&[]).needed(&before));
        let servers = ["ntp.example".to_owned()];
        let after = ClockSetting::NtpServers(&servers).predict(&before);
        assert_eq!(after.ntp_servers, servers);
        assert!(ClockSetting::Time(OffsetDateTime::UNIX_EPOCH).needed(&before));
    }

    #[test]
    fn the_time_is_not_set_under_ntp() {
        let mut before = info();
        let set = ClockSetting::Time(OffsetDateTime::UNIX_EPOCH);
        assert!(
            matches!(set.refused(&before), Some(ProviderError::Invalid(e)) if e.field == "time")
        );
        before.ntp = false;
        assert!(set.refused(&before).is_none());
        before.can_ntp = false;
        assert!(ClockSetting::Ntp(true).refused(&before).is_some());
    }

    #[test]
    fn the_dropin_round_trips() {
        let servers = vec!["192.0.2.1".to_owned(), "ntp.example".to_owned()];
        let text = ntp_dropin(&servers);
        assert_eq!(configured_servers(&text), servers);
        assert_eq!(ntp_dropin(&[]), None);
        assert!(configured_servers(&None).is_empty());
    }

    #[test]
    fn offset_is_the_mean_of_the_one_way_differences() {
        let m = |o, r, t, d, packets| -> NtpMessage {
            (0, 4, 4, 2, -20, 0, 0, vec![], o, r, t, d, false, packets, 0)
        };
        // Host 500 µs behind, 100 µs each way.
        assert_eq!(offset_us(&m(1_000, 1_600, 1_700, 1_300, 1)), Some(500));
        assert_eq!(offset_us(&m(1_000, 1_600, 1_700, 1_300, 0)), None);
    }
}
