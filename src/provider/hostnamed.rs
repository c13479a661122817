//! Hostname through systemd-hostnamed (`org.freedesktop.hostname1`) on the system
//! bus (SPEC §8), with `uname` as the read-only fallback.
//!
//! * `get` reads `Hostname`, `StaticHostname` and `PrettyHostname`
//!   (`source: "hostnamed"`). When hostnamed cannot be reached — no system bus, the
//!   name has no owner, activation failed, no answer — it reads the kernel's nodename
//!   instead ([`UnameHostname`], `source: "uname"`).
//! * `set` calls `SetStaticHostname`, `SetHostname` and, when given,
//!   `SetPrettyHostname`, all with `interactive = false` (an agent has nobody to ask),
//!   then reads the names back. Without hostnamed it fails with
//!   [`ProviderError::Unavailable`] naming `systemd-hostnamed`; nothing is changed.
//!
//! Also here: [`SystemBus`], the agent's one system-bus connection, shared with
//! [`super::resolved`]. It is made on first use rather than at start-up, so a host
//! without a system bus still runs an agent, and made again once the bus went away.
//! zbus takes the address from `DBUS_SYSTEM_BUS_ADDRESS` when set (tests point the
//! agent at a private bus that way).

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::sync::Mutex;
use zbus::proxy::CacheProperties;
use zbus::{Connection, fdo, proxy};

use super::procfs::UnameHostname;
use super::{
    BoxFuture, HostnameChange, HostnameInfo, HostnameProvider, HostnameSet, HostnameSource,
    ProviderError, ProviderResult,
};

/// The service named in errors.
const SERVICE: &str = "systemd-hostnamed";

/// Longest wait for one method call or for connecting. hostnamed and resolved answer
/// in milliseconds; the margin is for bus activation on a loaded host, and it stays
/// well inside a job's default 30 s deadline.
pub const BUS_TIMEOUT: Duration = Duration::from_secs(15);

#[proxy(
    interface = "org.freedesktop.hostname1",
    default_service = "org.freedesktop.hostname1",
    default_path = "/org/freedesktop/hostname1"
)]
trait Hostname1 {
    fn set_hostname(&self, hostname: &str, interactive: bool) -> zbus::Result<()>;
    fn set_static_hostname(&self, hostname: &str, interactive: bool) -> zbus::Result<()>;
    fn set_pretty_hostname(&self, hostname: &str, interactive: bool) -> zbus::Result<()>;

    #[zbus(property)]
    fn hostname(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn static_hostname(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn pretty_hostname(&self) -> zbus::Result<String>;
}

// ---------------------------------------------------------------------------
// The shared connection
// ---------------------------------------------------------------------------

/// A lazily made, reused connection to the system bus.
#[derive(Debug, Default)]
pub struct SystemBus {
    /// `None`: the system bus, as zbus finds it (`DBUS_SYSTEM_BUS_ADDRESS` or the
    /// well-known socket).
    address: Option<String>,
    conn: Mutex<Option<Connection>>,
}

impl SystemBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus at `address` instead of the system bus (tests).
    pub fn at(address: impl Into<String>) -> Self {
        SystemBus {
            address: Some(address.into()),
            conn: Mutex::default(),
        }
    }

    /// The current connection, connecting when there is none or it was closed.
    pub(super) async fn connection(&self) -> zbus::Result<Connection> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        *slot = None;
        let builder = match &self.address {
            Some(address) => zbus::connection::Builder::address(address.as_str()),
            None => zbus::connection::Builder::system(),
        };
        let connect = builder.method_timeout(BUS_TIMEOUT).build();
        // The method timeout does not cover the handshake: bound a wedged bus too.
        let conn = tokio::time::timeout(BUS_TIMEOUT, connect)
            .await
            .map_err(|_| {
                zbus::Error::InputOutput(
                    io::Error::new(io::ErrorKind::TimedOut, "connecting to the system bus").into(),
                )
            })??;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `call` on the connection. When the connection turns out to be broken (the
    /// bus restarted since it was made), connects again and runs `call` once more,
    /// so `call` must be safe to repeat; [`Self::call_once`] is for those that are not.
    pub async fn call<T, F, Fut>(&self, call: F) -> zbus::Result<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = zbus::Result<T>>,
    {
        let conn = self.connection().await?;
        match call(conn).await {
            Err(e) if is_broken_connection(&e) => {
                tracing::debug!(error = %e, "system bus connection lost; reconnecting");
                *self.conn.lock().await = None;
                call(self.connection().await?).await
            }
            other => other,
        }
    }
}

impl SystemBus {
    /// Runs `call` once, without trying again on a broken connection: for
    /// calls that must not be repeated (a restart, a reload).
    pub async fn call_once<T, F, Fut>(&self, call: F) -> zbus::Result<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = zbus::Result<T>>,
    {
        call(self.connection().await?).await
    }
}

fn is_broken_connection(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::InputOutput(io) => matches!(
            io.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::UnexpectedEof
        ),
        zbus::Error::FDO(e) => matches!(**e, fdo::Error::Disconnected(_)),
        _ => false,
    }
}

/// True when `e` says the service cannot be reached at all: no bus, the name has no
/// owner and cannot be activated, or no answer in time. Reads fall back then; writes
/// report [`ProviderError::Unavailable`].
pub(crate) fn is_unreachable(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::Connection(..)
        | zbus::Error::Address(_)
        | zbus::Error::Handshake(_)
        | zbus::Error::InputOutput(_) => true,
        zbus::Error::FDO(e) => matches!(
            **e,
            fdo::Error::ServiceUnknown(_)
                | fdo::Error::NameHasNoOwner(_)
                | fdo::Error::NoReply(_)
                | fdo::Error::NoServer(_)
                | fdo::Error::Timeout(_)
                | fdo::Error::TimedOut(_)
                | fdo::Error::Disconnected(_)
                | fdo::Error::SpawnExecFailed(_)
                | fdo::Error::SpawnForkFailed(_)
                | fdo::Error::SpawnChildExited(_)
                | fdo::Error::SpawnChildSignaled(_)
                | fdo::Error::SpawnFailed(_)
                | fdo::Error::SpawnFailedToSetup(_)
                | fdo::Error::SpawnConfigInvalid(_)
                | fdo::Error::SpawnServiceNotValid(_)
                | fdo::Error::SpawnServiceNotFound(_)
                | fdo::Error::SpawnPermissionsInvalid(_)
                | fdo::Error::SpawnFileInvalid(_)
                | fdo::Error::SpawnNoMemory(_)
        ),
        // Activation through systemd failed (unit missing, masked, failed to start).
        zbus::Error::MethodError(name, _, _) => {
            name.as_str().starts_with("org.freedesktop.systemd1.")
        }
        _ => false,
    }
}

/// The name of a D-Bus error reply that zbus does not know by type.
pub(crate) fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

/// Maps a failed call on `service` to a provider error. `operation` names the job
/// operation (for permission errors), `field` the input the service may reject.
pub(crate) fn bus_error(
    e: zbus::Error,
    service: &'static str,
    operation: &'static str,
    field: &'static str,
) -> ProviderError {
    if is_unreachable(&e) {
        return ProviderError::Unavailable {
            service,
            detail: format!("cannot reach it on the system bus: {e}"),
        };
    }
    if let zbus::Error::FDO(f) = &e {
        match **f {
            fdo::Error::AccessDenied(_)
            | fdo::Error::AuthFailed(_)
            | fdo::Error::InteractiveAuthorizationRequired(_) => {
                return ProviderError::PermissionDenied {
                    operation,
                    detail: format!("{service} refused: {e}"),
                };
            }
            fdo::Error::InvalidArgs(_) => {
                return ProviderError::invalid(field, format!("{service} refused it: {e}"));
            }
            _ => {}
        }
    }
    ProviderError::Io {
        context: format!("{operation} through {service}"),
        source: io::Error::other(e.to_string()),
    }
}

// ---------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------

/// [`HostnameProvider`] through systemd-hostnamed, falling back to `uname` for reads.
#[derive(Debug, Clone)]
pub struct HostnamedHostname {
    bus: std::sync::Arc<SystemBus>,
}

impl HostnamedHostname {
    pub fn new(bus: std::sync::Arc<SystemBus>) -> Self {
        HostnamedHostname { bus }
    }

    async fn proxy(conn: &Connection) -> zbus::Result<Hostname1Proxy<'static>> {
        // Uncached: a read right after a write must see the new names, not a cache
        // waiting for PropertiesChanged.
        Hostname1Proxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
    }

    async fn read(&self) -> zbus::Result<HostnameInfo> {
        self.bus
            .call(|conn| async move { read_names(&Self::proxy(&conn).await?).await })
            .await
    }

    async fn write(&self, change: &HostnameSet) -> zbus::Result<HostnameInfo> {
        self.bus
            .call(|conn| async move {
                let proxy = Self::proxy(&conn).await?;
                // Static first: hostnamed then also sets the kernel's hostname from it.
                proxy.set_static_hostname(&change.hostname, false).await?;
                proxy.set_hostname(&change.hostname, false).await?;
                if let Some(pretty) = &change.pretty {
                    proxy.set_pretty_hostname(pretty, false).await?;
                }
                read_names(&proxy).await
            })
            .await
    }
}

async fn read_names(proxy: &Hostname1Proxy<'_>) -> zbus::Result<HostnameInfo> {
    let (hostname, static_hostname, pretty) = tokio::try_join!(
        proxy.hostname(),
        proxy.static_hostname(),
        proxy.pretty_hostname()
    )?;
    Ok(HostnameInfo {
        hostname,
        // hostnamed says "" for "not configured".
        static_hostname: Some(static_hostname).filter(|s| !s.is_empty()),
        pretty_hostname: Some(pretty).filter(|s| !s.is_empty()),
        source: HostnameSource::Hostnamed,
    })
}

impl HostnameProvider for HostnamedHostname {
    fn get(&self) -> BoxFuture<'_, ProviderResult<HostnameInfo>> {
        Box::pin(async move {
            match self.read().await {
                Ok(info) => Ok(info),
                Err(e) if is_unreachable(&e) => {
                    tracing::debug!(error = %e, "systemd-hostnamed unreachable; reading uname");
                    UnameHostname.get().await
                }
                Err(e) => Err(bus_error(e, SERVICE, "node.hostname.get", "hostname")),
            }
        })
    }

    fn set<'a>(&'a self, change: &'a HostnameSet) -> BoxFuture<'a, ProviderResult<HostnameChange>> {
        Box::pin(async move {
            // The job layer validated already; the agent checks again before any call.
            change.validate()?;
            let failed = |e: zbus::Error| {
                if is_unreachable(&e) {
                    ProviderError::Unavailable {
                        service: SERVICE,
                        detail: format!(
                            "org.freedesktop.hostname1 is not reachable on the system bus \
                             ({e}); the hostname is unchanged"
                        ),
                    }
                } else {
                    bus_error(e, SERVICE, "node.hostname.set", "hostname")
                }
            };
            let before = self.read().await.map_err(failed)?;
            let after = change.predict(&before);
            let mut result = HostnameChange {
                changed: after != before,
                dry_run: change.dry_run,
                before,
                after,
            };
            if change.dry_run || !result.changed {
                return Ok(result);
            }
            result.after = self.write(change).await.map_err(failed)?;
            Ok(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    // The fallback itself is exercised end to end by the integration tests (an agent
    // whose bus address points at nothing); here, the classification it rests on.
    #[test]
    fn unreachable_errors_are_recognised() {
        let no_bus = zbus::Error::Connection(
            Arc::new(io::Error::from(io::ErrorKind::NotFound)),
            Box::new("unix:path=/nonexistent".parse().expect("address")),
        );
        assert!(is_unreachable(&no_bus));
        let no_owner = zbus::Error::FDO(Box::new(fdo::Error::ServiceUnknown(
            "The name org.freedesktop.hostname1 was not provided".into(),
        )));
        assert!(is_unreachable(&no_owner));
        let denied = zbus::Error::FDO(Box::new(fdo::Error::AccessDenied("no".into())));
        assert!(!is_unreachable(&denied));
        assert!(matches!(
            bus_error(denied, SERVICE, "node.hostname.set", "hostname"),
            ProviderError::PermissionDenied { .. }
        ));
        let invalid = zbus::Error::FDO(Box::new(fdo::Error::InvalidArgs("bad".into())));
        assert!(matches!(
            bus_error(invalid, SERVICE, "node.hostname.set", "hostname"),
            ProviderError::Invalid(ref e) if e.field == "hostname"
        ));
        let err = bus_error(no_owner, SERVICE, "node.hostname.set", "hostname");
        assert_eq!(err.code(), "unavailable");
        assert!(
            err.to_string()
                .starts_with("systemd-hostnamed is unavailable")
        );
    }

    #[test]
    fn broken_connections_are_retried_only_for_transport_errors() {
        let reset = zbus::Error::InputOutput(Arc::new(io::ErrorKind::ConnectionReset.into()));
        assert!(is_broken_connection(&reset));
        let denied = zbus::Error::FDO(Box::new(fdo::Error::AccessDenied("no".into())));
        assert!(!is_broken_connection(&denied));
    }

    #[tokio::test]
    async fn without_hostnamed_reads_use_uname_and_writes_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let address = format!("unix:path={}", dir.path().join("no-bus.sock").display());
        let provider = HostnamedHostname::new(Arc::new(SystemBus::at(address)));
        let info = provider.get().await.expect("uname fallback");
        assert_eq!(info.source, HostnameSource::Uname);
        let uname = nix::sys::utsname::uname().expect("uname");
        assert_eq!(Some(info.hostname.as_str()), uname.nodename().to_str());
        let change = HostnameSet {
            hostname: "never-set".into(),
            pretty: None,
            dry_run: false,
        };
        let err = provider.set(&change).await.err();
        let Some(ProviderError::Unavailable { service, detail }) = err else {
            panic!("expected Unavailable, got {err:?}")
        };
        assert_eq!(service, "systemd-hostnamed");
        assert!(detail.contains("unchanged"), "{detail}");
    }

    #[tokio::test]
    async fn invalid_names_are_refused_before_any_call() {
        let provider = HostnamedHostname::new(Arc::new(SystemBus::new()));
        let change = HostnameSet {
            hostname: "-bad-".into(),
            pretty: None,
            dry_run: false,
        };
        let err = provider.set(&change).await.err();
        assert!(
            matches!(&err, Some(ProviderError::Invalid(e)) if e.field == "hostname"),
            "{err:?}"
        );
        // Nothing was connected for it.
        assert!(provider.bus.conn.lock().await.is_none());
    }
}
