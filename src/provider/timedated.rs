//! The clock's settings through systemd-timedated (`org.freedesktop.timedate1`)
//! on the system bus: the time zone, whether the RTC keeps local time, and
//! whether NTP is on and in sync. Reads only, so far; setting the zone and
//! NTP are still to come (issue 11).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use zbus::proxy;
use zbus::proxy::CacheProperties;

use super::hostnamed::{SystemBus, bus_error};
use super::{BoxFuture, ProviderResult};

/// The service named in errors.
const SERVICE: &str = "systemd-timedated";

#[proxy(
    interface = "org.freedesktop.timedate1",
    default_service = "org.freedesktop.timedate1",
    default_path = "/org/freedesktop/timedate1"
)]
trait Timedate1 {
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

/// The host's clock settings: the result of `time.clock.get`.
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
}

/// Reads the clock's settings.
pub trait ClockProvider: Send + Sync {
    fn get(&self) -> BoxFuture<'_, ProviderResult<ClockInfo>>;
}

/// The clock through timedated on the system bus.
pub struct TimedatedClock {
    bus: Arc<SystemBus>,
}

impl TimedatedClock {
    pub fn new(bus: Arc<SystemBus>) -> Self {
        TimedatedClock { bus }
    }
}

impl ClockProvider for TimedatedClock {
    fn get(&self) -> BoxFuture<'_, ProviderResult<ClockInfo>> {
        Box::pin(async move {
            self.bus
                .call(|conn| async move {
                    // One GetAll, then every property from the cache.
                    let t = Timedate1Proxy::builder(&conn)
                        .cache_properties(CacheProperties::Yes)
                        .build()
                        .await?;
                    let usec = t.time_usec().await?;
                    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(usec) * 1000)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    Ok(ClockInfo {
                        time,
                        timezone: t.timezone().await?,
                        local_rtc: t.local_rtc().await?,
                        can_ntp: t.can_ntp().await?,
                        ntp: t.ntp().await?,
                        ntp_synchronized: t.ntp_synchronized().await?,
                    })
                })
                .await
                .map_err(|e| bus_error(e, SERVICE, "time.clock.get", "time"))
        })
    }
}
