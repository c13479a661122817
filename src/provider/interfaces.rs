//! Network interfaces (`network.interface.*`).
//!
//! Reads are the kernel's view: links from `/sys/class/net` (index, MAC,
//! MTU, operational state), addresses from `getifaddrs(3)`, routes from
//! `/proc/net/route` and `/proc/net/ipv6_route`, and, where systemd-networkd
//! manages a link, its state and `.network` file from
//! `/run/systemd/netif/links/<ifindex>`. No tool and no netlink crate.
//!
//! A change (`network.interface.set`) is a `.network` file of OSAPI's own
//! for the link (`/etc/systemd/network/<file>-osapi-<link>.network`: the
//! link's file and its drop-ins, matched to this link only, with the change
//! in place of what it replaces), named to sort just before the link's
//! file so networkd takes it first; applied over D-Bus (`Reload`,
//! `ReconfigureLink`), then **confirmed or reverted**:
//! the agent waits for the link to show what was set, then must reach NATS
//! again within `confirm_within` (60 s by default). If it cannot, it puts
//! the old file back (or none), applies that, and fails the job saying so: a change
//! that cuts the host off from its management undoes itself.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zbus::proxy::CacheProperties;

use super::hostnamed::{SystemBus, bus_error};
use super::resolved::Network1ManagerProxy;
use super::{BoxFuture, ProviderError, ProviderResult, put_file, read_optional};
use crate::job::InterfaceSet;

/// Where networkd reads `.network` files and their drop-ins from, after
/// `/etc/systemd/network` (a file there hides one of the same name below).
const NETWORKD_DIRS: [&str; 4] = [
    "/run/systemd/network",
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
    "/lib/systemd/network",
];

/// OSAPI's own drop-ins for a link's file: the DNS one (`network.dns.set`)
/// and the interface drop-in of earlier versions. They are not the
/// administrator's configuration, so OSAPI's file does not copy them in.
const OSAPI_DROP_INS: [&str; 2] = [super::resolved::DROP_IN, "50-osapi-interface.conf"];
/// How long a change may take to show on the link before it counts as failed.
pub const SETTLE: Duration = Duration::from_secs(20);

/// One address of an interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct InterfaceAddress {
    /// With its prefix length: `10.0.0.2/24`, `fe80::1/64`.
    pub address: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// One route through an interface (main table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Route {
    /// `0.0.0.0/0` for the default route.
    pub destination: String,
    /// Absent for a route on the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    pub metric: u32,
}

/// What systemd-networkd says of a link it knows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct NetworkdLink {
    /// `configured`, `unmanaged`, `configuring`, `failed`, …
    pub admin_state: String,
    /// `routable`, `degraded`, `carrier`, `no-carrier`, `off`, …
    pub oper_state: String,
    /// The `.network` file that configures it, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_file: Option<String>,
}

/// A network interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct InterfaceInfo {
    pub name: String,
    pub index: u32,
    /// The hardware address, when it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    pub mtu: u32,
    /// The kernel's operational state: `up`, `down`, `unknown`, …
    pub state: String,
    pub addresses: Vec<InterfaceAddress>,
    pub routes: Vec<Route>,
    /// Absent when networkd does not run or does not know the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networkd: Option<NetworkdLink>,
}

/// The result of `network.interface.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct Interfaces(pub Vec<InterfaceInfo>);

/// What a change did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct InterfaceChange {
    pub interface: String,
    pub changed: bool,
    pub dry_run: bool,
    /// OSAPI's `.network` file for the link, written (or that would be).
    pub path: String,
    /// Its text before → after.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diff: String,
    pub before: InterfaceInfo,
    /// The link once the change was confirmed; absent in a dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<InterfaceInfo>,
}

/// Reads the host's interfaces and changes those networkd manages.
pub trait InterfaceProvider: Send + Sync {
    fn list(&self) -> BoxFuture<'_, ProviderResult<Interfaces>>;
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<InterfaceInfo>>;
    fn set<'a>(
        &'a self,
        request: &'a InterfaceSet,
    ) -> BoxFuture<'a, ProviderResult<InterfaceChange>>;
}

/// Whether the agent still reaches its management (NATS) after a change.
pub trait Reach: Send + Sync {
    /// True as soon as a round trip succeeds within `within`.
    fn reach(&self, within: Duration) -> BoxFuture<'_, bool>;
}

/// The [`Reach`] probe, given by the agent once connected.
#[derive(Default)]
pub struct ReachSlot(OnceLock<Arc<dyn Reach>>);

impl ReachSlot {
    pub fn attach(&self, probe: Arc<dyn Reach>) {
        let _ = self.0.set(probe);
    }

    /// The probe, once attached.
    pub fn probe(&self) -> Option<Arc<dyn Reach>> {
        self.0.get().cloned()
    }
}

/// The kernel's view, through `/sys`, `/proc` and `getifaddrs`; changes
/// through networkd.
pub struct KernelInterfaces {
    sys_net: PathBuf,
    proc_net: PathBuf,
    networkd_links: PathBuf,
    networkd_config: PathBuf,
    bus: Arc<SystemBus>,
    reach: Arc<ReachSlot>,
}

impl KernelInterfaces {
    pub fn new(bus: Arc<SystemBus>, reach: Arc<ReachSlot>) -> Self {
        KernelInterfaces {
            sys_net: PathBuf::from("/sys/class/net"),
            proc_net: PathBuf::from("/proc/net"),
            networkd_links: PathBuf::from("/run/systemd/netif/links"),
            networkd_config: PathBuf::from("/etc/systemd/network"),
            bus,
            reach,
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

impl KernelInterfaces {
    fn read_all(&self, only: Option<&str>) -> ProviderResult<Vec<InterfaceInfo>> {
        let entries = std::fs::read_dir(&self.sys_net)
            .map_err(|e| ProviderError::io(format!("reading {}", self.sys_net.display()), e))?;
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| only.is_none_or(|o| o == n))
            .collect();
        names.sort();
        let addresses = addresses_by_interface();
        let routes = self.routes();
        let mut out = Vec::new();
        for name in names {
            let dir = self.sys_net.join(&name);
            // An interface that went away while listed is left out.
            let Some(index) =
                read_trimmed(&dir.join("ifindex")).and_then(|i| i.parse::<u32>().ok())
            else {
                continue;
            };
            let mac = read_trimmed(&dir.join("address"))
                .filter(|m| m != "00:00:00:00:00:00")
                .unwrap_or_default();
            out.push(InterfaceInfo {
                mtu: read_trimmed(&dir.join("mtu"))
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0),
                state: read_trimmed(&dir.join("operstate")).unwrap_or_default(),
                addresses: addresses.get(&name).cloned().unwrap_or_default(),
                routes: routes.get(&name).cloned().unwrap_or_default(),
                networkd: read_trimmed(&self.networkd_links.join(index.to_string()))
                    .map(|state| networkd_state(&state)),
                name,
                index,
                mac,
            });
        }
        Ok(out)
    }

    /// Main-table routes by interface, IPv4 then IPv6.
    fn routes(&self) -> BTreeMap<String, Vec<Route>> {
        let mut all: BTreeMap<String, Vec<Route>> = BTreeMap::new();
        if let Some(text) = read_trimmed(&self.proc_net.join("route")) {
            for (iface, route) in ipv4_routes(&text) {
                all.entry(iface).or_default().push(route);
            }
        }
        if let Some(text) = read_trimmed(&self.proc_net.join("ipv6_route")) {
            for (iface, route) in ipv6_routes(&text) {
                all.entry(iface).or_default().push(route);
            }
        }
        all
    }
}

/// Addresses by interface name, from `getifaddrs`.
fn addresses_by_interface() -> BTreeMap<String, Vec<InterfaceAddress>> {
    let mut all: BTreeMap<String, Vec<InterfaceAddress>> = BTreeMap::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return all;
    };
    for a in addrs {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let entry = if let (Some(ip), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            let ip = ip.ip();
            let prefix = m.ip().to_bits().count_ones();
            (IpAddr::V4(ip), prefix, "ipv4")
        } else if let (Some(ip), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            let prefix = m.ip().to_bits().count_ones();
            (IpAddr::V6(ip.ip()), prefix, "ipv6")
        } else {
            continue;
        };
        all.entry(a.interface_name)
            .or_default()
            .push(InterfaceAddress {
                address: format!("{}/{}", entry.0, entry.1),
                family: entry.2.to_owned(),
            });
    }
    all
}

/// `/proc/net/route`: little-endian hex addresses, one route per line after
/// the header; only routes that are up (flag 0x1).
fn ipv4_routes(text: &str) -> Vec<(String, Route)> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gw, flags, metric, mask) = (
                f.first()?,
                hex(f.get(1)?)?,
                hex(f.get(2)?)?,
                f.get(3)?,
                f.get(6)?,
                hex(f.get(7)?)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            (flags & 0x1 != 0).then(|| {
                (
                    (*iface).to_owned(),
                    Route {
                        destination: format!("{dest}/{}", mask.to_bits().count_ones()),
                        gateway: (flags & 0x2 != 0).then(|| gw.to_string()),
                        metric: metric.parse().unwrap_or(0),
                    },
                )
            })
        })
        .collect()
}

/// `/proc/net/ipv6_route`: destination, its prefix, source, its prefix,
/// next hop, metric, refcount, use, flags, interface; the main table's
/// unicast routes that are up (RTF_UP 0x1, not RTF_REJECT 0x200), without
/// the kernel's local and multicast entries.
fn ipv6_routes(text: &str) -> Vec<(String, Route)> {
    let addr = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = addr(f.first()?)?;
            let prefix = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let gw = addr(f.get(4)?)?;
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            let iface = (*f.get(9)?).to_owned();
            // Up (RTF_UP), not a reject route, not the kernel's local table
            // (RTF_LOCAL), not multicast.
            let usable = flags & 0x1 != 0
                && flags & 0x200 == 0
                && flags & 0x8000_0000 == 0
                && !dest.is_multicast();
            usable.then(|| {
                (
                    iface,
                    Route {
                        destination: format!("{dest}/{prefix}"),
                        gateway: (!gw.is_unspecified()).then(|| gw.to_string()),
                        metric,
                    },
                )
            })
        })
        .collect()
}

/// The global addresses (`addr/prefix`) of `now` that are not in `keep`:
/// what networkd (before v254) leaves on a link after its `.network` file
/// stopped naming them. Link-local addresses stay.
fn stale_addresses<'a>(now: &'a [InterfaceAddress], keep: &[String]) -> Vec<&'a str> {
    now.iter()
        .map(|a| a.address.as_str())
        .filter(|a| !keep.iter().any(|k| k == a))
        .filter(|a| !a.starts_with("fe80:") && !a.starts_with("169.254."))
        .collect()
}

/// Removes `cidr` from link `ifindex`: one `RTM_DELADDR` over a netlink
/// route socket, and its acknowledgement.
fn delete_address(ifindex: u32, cidr: &str) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, cidr.to_owned());
    let (ip, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let (family, bytes, attrs): (u8, Vec<u8>, &[u16]) = match ip {
        IpAddr::V4(a) => (
            libc::AF_INET as u8,
            a.octets().to_vec(),
            &[libc::IFA_LOCAL, libc::IFA_ADDRESS],
        ),
        IpAddr::V6(a) => (
            libc::AF_INET6 as u8,
            a.octets().to_vec(),
            &[libc::IFA_ADDRESS],
        ),
    };
    let mut body = vec![family, prefix, 0, 0];
    body.extend(ifindex.to_ne_bytes());
    for attr in attrs {
        let len = 4 + bytes.len();
        body.extend((len as u16).to_ne_bytes());
        body.extend(attr.to_ne_bytes());
        body.extend(&bytes);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend(((16 + body.len()) as u32).to_ne_bytes());
    msg.extend(libc::RTM_DELADDR.to_ne_bytes());
    msg.extend(((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend(1u32.to_ne_bytes());
    msg.extend(0u32.to_ne_bytes());
    msg.extend(body);
    // SAFETY: a plain socket(2); the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just opened and nobody else holds.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the buffers outlive the calls, their lengths are theirs.
    let sent = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut reply = [0u8; 512];
    let got = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if got < 20 {
        return Err(std::io::Error::other("a short netlink reply"));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    let errno = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    match (kind, errno) {
        (k, 0) if k == libc::NLMSG_ERROR as u16 => Ok(()),
        // Gone already: what we wanted.
        (_, e) if -e == libc::EADDRNOTAVAIL => Ok(()),
        (_, e) => Err(std::io::Error::from_raw_os_error(-e)),
    }
}

/// A networkd link state file's `ADMIN_STATE`, `OPER_STATE` and `NETWORK_FILE`.
fn networkd_state(text: &str) -> NetworkdLink {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let file = value("NETWORK_FILE");
    NetworkdLink {
        admin_state: value("ADMIN_STATE"),
        oper_state: value("OPER_STATE"),
        network_file: (!file.is_empty()).then_some(file),
    }
}

impl KernelInterfaces {
    fn one(&self, name: &str) -> ProviderResult<InterfaceInfo> {
        self.read_all(Some(name))?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::NotFound {
                what: "interface",
                name: name.to_owned(),
            })
    }

    /// Where OSAPI's `.network` file for `interface` goes, and the file it
    /// is made from: networkd's file for the link, or, when that is already
    /// OSAPI's, the one its `# osapi-source:` line names (each change starts
    /// again from the administrator's file).
    fn owned_file(
        &self,
        network_file: &str,
        interface: &str,
    ) -> ProviderResult<(PathBuf, PathBuf)> {
        let current = PathBuf::from(network_file);
        let name = current
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(&format!("-osapi-{interface}.network")) {
            let text = read_optional(&current)?.unwrap_or_default();
            if let Some(source) = text
                .lines()
                .find_map(|l| l.strip_prefix(crate::job::NETWORK_FILE_SOURCE))
            {
                let source = PathBuf::from(source.trim());
                if !source.exists() {
                    return Err(ProviderError::invalid(
                        "interface",
                        format!(
                            "{} was made from {}, which is gone: remove {} (networkd then takes the link's own file) and set again",
                            current.display(),
                            source.display(),
                            current.display()
                        ),
                    ));
                }
                return Ok((current, source));
            }
        }
        let owned = crate::job::owned_network_file_name(&name, interface);
        Ok((self.networkd_config.join(owned), current))
    }

    /// Removes OSAPI files for `interface` other than `keep`: made when
    /// networkd took another file for the link, they would come back into
    /// play when that one goes.
    fn remove_other_owned_files(&self, keep: &Path, interface: &str) {
        let suffix = format!("-osapi-{interface}.network");
        let Ok(entries) = std::fs::read_dir(&self.networkd_config) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path != keep
                && entry.file_name().to_string_lossy().ends_with(&suffix)
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an older OSAPI network file");
            }
        }
    }

    /// `source` and its drop-ins (`<name>.d/*.conf` of every networkd
    /// directory, one per name, the first directory's winning), in the
    /// order networkd reads them.
    fn flattened(&self, source: &Path) -> ProviderResult<String> {
        let mut text = read_optional(source)?.ok_or_else(|| ProviderError::NotFound {
            what: "network file",
            name: source.display().to_string(),
        })?;
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut drop_ins: BTreeMap<String, PathBuf> = BTreeMap::new();
        let dirs = std::iter::once(self.networkd_config.as_path())
            .chain(NETWORKD_DIRS.iter().map(Path::new));
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir.join(format!("{name}.d"))) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if file.ends_with(".conf") && !OSAPI_DROP_INS.contains(&file.as_str()) {
                    drop_ins.entry(file).or_insert_with(|| entry.path());
                }
            }
        }
        for path in drop_ins.values() {
            if let Some(more) = read_optional(path)? {
                text.push('\n');
                text.push_str(&more);
            }
        }
        Ok(text)
    }

    /// `Reload` and `ReconfigureLink` over D-Bus.
    async fn apply(&self, ifindex: u32) -> ProviderResult<()> {
        let ifindex = i32::try_from(ifindex).unwrap_or(i32::MAX);
        self.bus
            .call(|conn| async move {
                let manager = Network1ManagerProxy::builder(&conn)
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await?;
                manager.reload().await?;
                manager.reconfigure_link(ifindex).await
            })
            .await
            .map_err(|e| bus_error(e, "systemd-networkd", "network.interface.set", "interface"))
    }

    /// Whether the link shows what `request` set (addresses, MTU) by now.
    fn shows(&self, request: &InterfaceSet) -> bool {
        let Ok(now) = self.one(&request.interface) else {
            return false;
        };
        let addresses_in = request
            .addresses
            .iter()
            .flatten()
            .all(|want| now.addresses.iter().any(|a| a.address == *want));
        addresses_in && request.mtu.is_none_or(|mtu| now.mtu == mtu)
    }

    /// Waits for the link to show the change; then takes off the addresses
    /// it replaced (networkd 252 keeps addresses its file no longer names;
    /// only now, or its reconfiguring could bring them back), and waits for
    /// NATS to answer.
    async fn confirmed(
        &self,
        request: &InterfaceSet,
        before: &InterfaceInfo,
    ) -> Result<(), String> {
        let settle = tokio::time::Instant::now() + SETTLE;
        while !self.shows(request) {
            if tokio::time::Instant::now() >= settle {
                return Err(format!(
                    "the link did not show the change within {}s",
                    SETTLE.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(wanted) = &request.addresses {
            for stale in stale_addresses(&before.addresses, wanted) {
                if let Err(e) = delete_address(before.index, stale) {
                    tracing::warn!(address = stale, error = %e, "cannot remove a replaced address");
                }
            }
        }
        let within = request.confirm_within();
        match self.reach.0.get() {
            Some(probe) if probe.reach(within).await => Ok(()),
            Some(_) => Err(format!(
                "the agent did not reach NATS within {}s",
                within.as_secs()
            )),
            None => Err("the agent has no connection to check".to_owned()),
        }
    }
}

impl InterfaceProvider for KernelInterfaces {
    fn set<'a>(
        &'a self,
        request: &'a InterfaceSet,
    ) -> BoxFuture<'a, ProviderResult<InterfaceChange>> {
        Box::pin(async move {
            let before = self.one(&request.interface)?;
            let Some(network_file) = before
                .networkd
                .as_ref()
                .and_then(|n| n.network_file.clone())
            else {
                return Err(ProviderError::invalid(
                    "interface",
                    format!(
                        "{} is not configured by systemd-networkd (no .network file applies to it)",
                        request.interface
                    ),
                ));
            };
            let (path, source) = self.owned_file(&network_file, &request.interface)?;
            let base = self.flattened(&source)?;
            let old = read_optional(&path)?;
            let new = request.network_file(&source.display().to_string(), &base);
            let mut change = InterfaceChange {
                interface: request.interface.clone(),
                changed: old.as_deref() != Some(new.as_str()),
                dry_run: request.dry_run,
                path: path.display().to_string(),
                diff: crate::diff::unified(old.as_deref().unwrap_or_default(), &new),
                before,
                after: None,
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            put_file(&path, Some(&new))?;
            // OSAPI's DNS for this link (`network.dns.set`) goes with it to
            // OSAPI's file, which networkd reads from now on.
            let dns_of = |file: &Path| super::resolved::drop_in_path(&self.networkd_config, file);
            let carried_dns = match (dns_of(&source), dns_of(&path)) {
                (Some(from), Some(to)) if !to.exists() => match read_optional(&from)? {
                    Some(text) => {
                        put_file(&to, Some(&text))?;
                        Some(to)
                    }
                    None => None,
                },
                _ => None,
            };
            let index = change.before.index;
            let applied = self.apply(index).await;
            let verdict = match applied {
                Ok(()) => self.confirmed(request, &change.before).await,
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = verdict {
                // Not confirmed: the old configuration back, applied, and
                // the addresses it brought taken off again.
                put_file(&path, old.as_deref())?;
                if let Some(carried) = &carried_dns {
                    put_file(carried, None)?;
                }
                let reapplied = self.apply(index).await;
                let had: Vec<String> = change
                    .before
                    .addresses
                    .iter()
                    .map(|a| a.address.clone())
                    .collect();
                for added in request
                    .addresses
                    .iter()
                    .flatten()
                    .filter(|a| !had.contains(a))
                {
                    let _ = delete_address(index, added);
                }
                let back = match reapplied {
                    Ok(()) => "the old configuration is back".to_owned(),
                    Err(e) => format!(
                        "the old configuration is written back, but networkd did not apply it ({e})"
                    ),
                };
                return Err(ProviderError::Unavailable {
                    service: "systemd-networkd",
                    detail: format!("{why}; {back}"),
                });
            }
            self.remove_other_owned_files(&path, &request.interface);
            change.after = Some(self.one(&request.interface)?);
            Ok(change)
        })
    }

    fn list(&self) -> BoxFuture<'_, ProviderResult<Interfaces>> {
        Box::pin(async move { self.read_all(None).map(Interfaces) })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<InterfaceInfo>> {
        Box::pin(async move { self.one(name) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_routes_parse() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                    eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                    eth0\t0003A8C0\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = ipv4_routes(text);
        assert_eq!(routes.len(), 2, "a route that is not up is left out");
        assert_eq!(routes[0].1.destination, "0.0.0.0/0");
        assert_eq!(routes[0].1.gateway.as_deref(), Some("192.168.2.1"));
        assert_eq!(routes[1].1.destination, "192.168.2.0/24");
        assert_eq!(
            (routes[1].1.gateway.as_ref(), routes[1].1.metric),
            (None, 100)
        );
    }

    #[test]
    fn ipv6_routes_parse() {
        let text = "\
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001 lo\n\
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001 eth0\n";
        let routes = ipv6_routes(text);
        assert_eq!(routes.len(), 2, "{routes:?}");
        assert_eq!(routes[0].1.destination, "fe80::/64");
        assert_eq!(routes[0].1.metric, 256);
        assert_eq!(routes[1].1.destination, "::/0");
        assert_eq!(routes[1].1.gateway.as_deref(), Some("fe80::1"));
    }

    #[test]
    fn networkd_state_files_parse() {
        let link = networkd_state(
            "# This is private data.\nADMIN_STATE=configured\nOPER_STATE=routable\nNETWORK_FILE=/etc/systemd/network/10-eth0.network\n",
        );
        assert_eq!(link.admin_state, "configured");
        assert_eq!(link.oper_state, "routable");
        assert_eq!(
            link.network_file.as_deref(),
            Some("/etc/systemd/network/10-eth0.network")
        );
        assert_eq!(networkd_state("ADMIN_STATE=unmanaged\n").network_file, None);
    }

    fn kernel() -> KernelInterfaces {
        KernelInterfaces::new(Arc::new(SystemBus::new()), Arc::default())
    }

    #[test]
    fn the_owned_file_starts_again_from_the_administrators_file() {
        let dir = tempfile::tempdir().unwrap();
        let k = KernelInterfaces {
            networkd_config: dir.path().to_owned(),
            ..kernel()
        };
        let source = dir.path().join("50-lan.network");
        std::fs::write(
            &source,
            "[Match]\nName=lan*\n[Network]\nAddress=10.9.0.1/24\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("50-lan.network.d")).unwrap();
        std::fs::write(
            dir.path().join("50-lan.network.d/10-dns.conf"),
            "[Network]\nDNS=10.9.0.53\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("50-lan.network.d/notes.txt"), "ignored").unwrap();
        let (owned, from) = k.owned_file(&source.display().to_string(), "lan0").unwrap();
        assert_eq!(owned, dir.path().join("50-lan-osapi-lan0.network"));
        assert_eq!(from, source);
        let base = k.flattened(&from).unwrap();
        assert!(base.contains("Address=10.9.0.1/24") && base.contains("DNS=10.9.0.53"));
        assert!(!base.contains("ignored"));
        // Once OSAPI's file is networkd's choice, the next change reads the
        // original again, not OSAPI's copy.
        let set = crate::job::InterfaceSet {
            interface: "lan0".into(),
            addresses: Some(vec!["10.9.0.2/24".into()]),
            dhcp: None,
            routes: None,
            mtu: None,
            confirm_within: None,
            dry_run: false,
        };
        std::fs::write(&owned, set.network_file(&from.display().to_string(), &base)).unwrap();
        let (again, from_again) = k.owned_file(&owned.display().to_string(), "lan0").unwrap();
        assert_eq!((again, from_again), (owned, source));
        let missing = k.flattened(&dir.path().join("gone.network")).unwrap_err();
        assert_eq!(missing.code(), "not_found");
    }

    #[test]
    fn replaced_addresses_are_the_global_ones_not_kept() {
        let a = |s: &str| InterfaceAddress {
            address: s.to_owned(),
            family: String::new(),
        };
        let now = [
            a("10.0.0.1/24"),
            a("10.0.0.2/24"),
            a("fe80::1/64"),
            a("fd00::1/64"),
        ];
        assert_eq!(
            stale_addresses(&now, &["10.0.0.2/24".to_owned()]),
            vec!["10.0.0.1/24", "fd00::1/64"]
        );
        assert!(delete_address(1, "not an address").is_err());
    }

    #[tokio::test]
    async fn loopback_reads_as_the_kernel_has_it() {
        let lo = kernel().get("lo").await.unwrap();
        assert_eq!(lo.index, 1);
        assert!(
            lo.addresses.iter().any(|a| a.address == "127.0.0.1/8"),
            "{lo:?}"
        );
        assert!(matches!(
            kernel().get("osapi-none0").await,
            Err(ProviderError::NotFound { .. })
        ));
    }
}
