//! Per-interface DNS through systemd-resolved (`org.freedesktop.resolve1`) on the
//! system bus (SPEC §8), with `/etc/resolv.conf` as the read-only fallback.
//!
//! * `get`: the interface name becomes an index (`if_nametoindex`; unknown →
//!   [`ProviderError::NotFound`]), `Manager.GetLink(ifindex)` gives the link object,
//!   whose `DNS` (`a(iay)`) and `Domains` (`a(sb)`) are the answer
//!   (`source: "resolved"`). Route-only domains are written `~name`, as `resolvectl`
//!   shows them. Without resolved, `nameserver` and `search`/`domain` from
//!   `/etc/resolv.conf` (`source: "resolv_conf"`: host-wide, not per interface).
//! * `set`: `SetLinkDNS` + `SetLinkDomains`, then read back. Without resolved it fails
//!   with [`ProviderError::Unavailable`] and changes nothing.
//!
//! Persistence: resolved's per-link settings live until it restarts or the link goes
//! away. When systemd-networkd manages the link (its state file
//! `/run/systemd/netif/links/<ifindex>` names the `.network` file), resolved refuses
//! runtime changes to it anyway, so the change is written as a drop-in next to that
//! file (`/etc/systemd/network/<file>.network.d/osapi-dns.conf`) and networkd is
//! asked to reload, which applies it now and at every boot: `persisted: true`.
//! Otherwise the change is runtime only, `persisted: false`, and `note` says why
//! (NetworkManager profiles and ifupdown files are not edited).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, proxy};

use super::hostnamed::{SystemBus, bus_error, error_name, is_unreachable};
use super::{
    BoxFuture, DnsChangeResult, DnsConfig, DnsProvider, DnsSet, DnsSettings, DnsSource,
    ProviderError, ProviderResult,
};

const SERVICE: &str = "systemd-resolved";
const NO_SUCH_LINK: &str = "org.freedesktop.resolve1.NoSuchLink";
/// The drop-in file this provider owns in a `.network` file's drop-in directory.
pub(crate) const DROP_IN: &str = "osapi-dns.conf";
/// How long to wait for resolved to show what networkd applied after a reload.
const NETWORKD_APPLY_WAIT: Duration = Duration::from_secs(5);

#[proxy(
    interface = "org.freedesktop.resolve1.Manager",
    default_service = "org.freedesktop.resolve1",
    default_path = "/org/freedesktop/resolve1"
)]
trait Resolve1Manager {
    fn get_link(&self, ifindex: i32) -> zbus::Result<OwnedObjectPath>;
    #[zbus(name = "SetLinkDNS")]
    fn set_link_dns(&self, ifindex: i32, addresses: &[(i32, Vec<u8>)]) -> zbus::Result<()>;
    fn set_link_domains(&self, ifindex: i32, domains: &[(String, bool)]) -> zbus::Result<()>;
}

// The path comes from GetLink.
#[proxy(
    interface = "org.freedesktop.resolve1.Link",
    default_service = "org.freedesktop.resolve1"
)]
trait Resolve1Link {
    #[zbus(property, name = "DNS")]
    fn dns(&self) -> zbus::Result<Vec<(i32, Vec<u8>)>>;
    #[zbus(property)]
    fn domains(&self) -> zbus::Result<Vec<(String, bool)>>;
}

#[proxy(
    interface = "org.freedesktop.network1.Manager",
    default_service = "org.freedesktop.network1",
    default_path = "/org/freedesktop/network1"
)]
pub(crate) trait Network1Manager {
    /// Re-reads `.network` files and reconfigures the links whose files changed.
    fn reload(&self) -> zbus::Result<()>;
    /// Applies the link's configuration again.
    fn reconfigure_link(&self, ifindex: i32) -> zbus::Result<()>;
}

/// Where the provider looks on the host; replaceable for tests.
#[derive(Debug, Clone)]
pub struct DnsPaths {
    /// Read when resolved is not there.
    pub resolv_conf: PathBuf,
    /// systemd-networkd's per-link state files, named by interface index.
    pub networkd_links: PathBuf,
    /// Where drop-ins for `.network` files are written.
    pub networkd_config: PathBuf,
    /// Exists while NetworkManager runs.
    pub network_manager_run: PathBuf,
}

impl Default for DnsPaths {
    fn default() -> Self {
        DnsPaths {
            resolv_conf: "/etc/resolv.conf".into(),
            networkd_links: "/run/systemd/netif/links".into(),
            networkd_config: "/etc/systemd/network".into(),
            network_manager_run: "/run/NetworkManager".into(),
        }
    }
}

/// [`DnsProvider`] through systemd-resolved.
#[derive(Debug, Clone)]
pub struct ResolvedDns {
    bus: Arc<SystemBus>,
    paths: DnsPaths,
}

impl ResolvedDns {
    pub fn new(bus: Arc<SystemBus>) -> Self {
        Self::with_paths(bus, DnsPaths::default())
    }

    pub fn with_paths(bus: Arc<SystemBus>, paths: DnsPaths) -> Self {
        ResolvedDns { bus, paths }
    }

    async fn manager(conn: &Connection) -> zbus::Result<Resolve1ManagerProxy<'static>> {
        Resolve1ManagerProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
    }

    async fn read_link(conn: &Connection, ifindex: i32) -> zbus::Result<DnsSettings> {
        let path = Self::manager(conn).await?.get_link(ifindex).await?;
        // Uncached: a read right after a write must see it.
        let link = Resolve1LinkProxy::builder(conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let (dns, domains) = tokio::try_join!(link.dns(), link.domains())?;
        Ok(DnsSettings {
            servers: dns
                .iter()
                .filter_map(|(family, bytes)| addr_from_wire(*family, bytes))
                .map(|ip| ip.to_string())
                .collect(),
            search_domains: domains
                .iter()
                .map(|(name, route_only)| domain_from_wire(name, *route_only))
                .collect(),
        })
    }

    async fn link(&self, ifindex: i32) -> zbus::Result<DnsSettings> {
        self.bus
            .call(|conn| async move { Self::read_link(&conn, ifindex).await })
            .await
    }

    /// The runtime change through resolved, read back.
    async fn set_runtime(
        &self,
        ifindex: i32,
        servers: &[(i32, Vec<u8>)],
        domains: &[(String, bool)],
    ) -> zbus::Result<DnsSettings> {
        self.bus
            .call(|conn| async move {
                let manager = Self::manager(&conn).await?;
                manager.set_link_dns(ifindex, servers).await?;
                manager.set_link_domains(ifindex, domains).await?;
                Self::read_link(&conn, ifindex).await
            })
            .await
    }

    async fn reload_networkd(&self) -> zbus::Result<()> {
        self.bus
            .call(|conn| async move {
                Network1ManagerProxy::builder(&conn)
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await?
                    .reload()
                    .await
            })
            .await
    }

    /// The `.network` file systemd-networkd applies to the link, when it manages it.
    async fn networkd_file(&self, ifindex: i32) -> Option<PathBuf> {
        let state = self.paths.networkd_links.join(ifindex.to_string());
        let text = tokio::fs::read_to_string(&state).await.ok()?;
        networkd_network_file(&text)
    }

    /// networkd owns the link: write the drop-in `path`, reload networkd, and
    /// wait (briefly) for resolved to show the result. Returns what resolved
    /// shows, and a note for the operator.
    async fn set_through_networkd(
        &self,
        change: &DnsSet,
        ifindex: i32,
        path: &Path,
        servers: &[IpAddr],
    ) -> ProviderResult<(DnsSettings, String)> {
        write_atomically(path, &networkd_drop_in(servers, &change.search_domains)).await?;
        self.reload_networkd().await.map_err(|e| {
            match bus_error(e, "systemd-networkd", "network.dns.set", "servers") {
                ProviderError::Unavailable { service, detail } => ProviderError::Unavailable {
                    service,
                    detail: format!(
                        "{detail}; {} was written and applies when systemd-networkd next loads it",
                        path.display()
                    ),
                },
                other => other,
            }
        })?;
        let wanted: Vec<String> = servers.iter().map(IpAddr::to_string).collect();
        let deadline = tokio::time::Instant::now() + NETWORKD_APPLY_WAIT;
        let mut link = self.link(ifindex).await;
        // networkd hands its settings to resolved asynchronously.
        while tokio::time::Instant::now() < deadline
            && !matches!(&link, Ok(l) if l.servers == wanted)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            link = self.link(ifindex).await;
        }
        let link = link.map_err(|e| self.set_error(e, &change.interface))?;
        let pending = if link.servers == wanted {
            ""
        } else {
            "; resolved did not show the new servers yet"
        };
        let note = format!(
            "systemd-networkd manages {}: written to {} and networkd reloaded{pending}",
            change.interface,
            path.display(),
        );
        Ok((link, note))
    }

    fn set_error(&self, e: zbus::Error, interface: &str) -> ProviderError {
        if error_name(&e) == Some(NO_SUCH_LINK) {
            return not_found(interface);
        }
        if is_unreachable(&e) {
            return ProviderError::Unavailable {
                service: SERVICE,
                detail: format!(
                    "org.freedesktop.resolve1 is not reachable on the system bus ({e}); \
                     the DNS settings of {interface} are unchanged"
                ),
            };
        }
        bus_error(e, SERVICE, "network.dns.set", "servers")
    }

    async fn get_inner(&self, interface: &str) -> ProviderResult<DnsConfig> {
        let ifindex = ifindex(interface)?;
        match self.link(ifindex).await {
            Ok(link) => Ok(DnsConfig {
                interface: interface.to_owned(),
                servers: link.servers,
                search_domains: link.search_domains,
                source: DnsSource::Resolved,
            }),
            Err(e) if error_name(&e) == Some(NO_SUCH_LINK) => Err(not_found(interface)),
            Err(e) if is_unreachable(&e) => {
                tracing::debug!(error = %e, "systemd-resolved unreachable; reading resolv.conf");
                let path = &self.paths.resolv_conf;
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| ProviderError::io(format!("reading {}", path.display()), e))?;
                let conf = parse_resolv_conf(&text);
                Ok(DnsConfig {
                    interface: interface.to_owned(),
                    servers: conf.servers,
                    search_domains: conf.search,
                    source: DnsSource::ResolvConf,
                })
            }
            Err(e) => Err(bus_error(e, SERVICE, "network.dns.get", "interface")),
        }
    }

    async fn set_inner(&self, change: &DnsSet) -> ProviderResult<DnsChangeResult> {
        let servers = change
            .servers
            .iter()
            .map(|s| {
                s.parse::<IpAddr>().map_err(|_| {
                    ProviderError::invalid(
                        "servers",
                        format!("{s:?} is not an IPv4 or IPv6 address"),
                    )
                })
            })
            .collect::<ProviderResult<Vec<IpAddr>>>()?;
        let ifindex = ifindex(&change.interface)?;
        // resolved must be there to read the settings before and to confirm
        // the change; ask it before writing anything.
        let before = self
            .link(ifindex)
            .await
            .map_err(|e| self.set_error(e, &change.interface))?;
        let wanted = DnsSettings {
            servers: servers.iter().map(IpAddr::to_string).collect(),
            search_domains: change.search_domains.clone(),
        };
        // When networkd manages the link, the change goes to a drop-in of its
        // .network file, and is only in place when that says so too.
        let dropin = match self.networkd_file(ifindex).await {
            Some(file) => Some(drop_in_path(&self.paths.networkd_config, &file).ok_or_else(
                || {
                    ProviderError::parse(
                        file.display().to_string(),
                        "systemd-networkd names no .network file for the link",
                    )
                },
            )?),
            None => None,
        };
        let persisted_already = match &dropin {
            Some(path) => {
                tokio::fs::read_to_string(path).await.ok()
                    == Some(networkd_drop_in(&servers, &change.search_domains))
            }
            None => true,
        };
        let mut result = DnsChangeResult {
            interface: change.interface.clone(),
            changed: before != wanted || !persisted_already,
            dry_run: change.dry_run,
            after: before.clone(),
            before,
            source: DnsSource::Resolved,
            persisted: dropin.is_some(),
            note: None,
        };
        if !result.changed {
            return Ok(result);
        }
        if change.dry_run {
            result.after = wanted;
            result.note = Some(match &dropin {
                Some(path) => format!("would write {} and reload systemd-networkd", path.display()),
                None => "would set resolved's runtime settings of the link".to_owned(),
            });
            return Ok(result);
        }
        let (after, note) = match &dropin {
            Some(path) => {
                self.set_through_networkd(change, ifindex, path, &servers)
                    .await?
            }
            None => self.set_runtime_only(change, ifindex, &servers).await?,
        };
        result.after = after;
        result.note = Some(note);
        Ok(result)
    }

    /// No networkd: resolved's runtime settings, which last until it restarts.
    async fn set_runtime_only(
        &self,
        change: &DnsSet,
        ifindex: i32,
        servers: &[IpAddr],
    ) -> ProviderResult<(DnsSettings, String)> {
        let wire_servers: Vec<(i32, Vec<u8>)> =
            servers.iter().map(|ip| addr_to_wire(*ip)).collect();
        let wire_domains: Vec<(String, bool)> = change
            .search_domains
            .iter()
            .map(|d| domain_to_wire(d))
            .collect();
        let link = self
            .set_runtime(ifindex, &wire_servers, &wire_domains)
            .await
            .map_err(|e| self.set_error(e, &change.interface))?;
        let mut note = format!(
            "runtime only: systemd-resolved keeps per-link settings until it restarts or the \
             link goes away, and systemd-networkd does not manage {}",
            change.interface
        );
        if tokio::fs::metadata(&self.paths.network_manager_run)
            .await
            .is_ok()
        {
            note.push_str(
                "; NetworkManager is running and may replace them (its connection profiles \
                 were not changed)",
            );
        }
        Ok((link, note))
    }
}

impl DnsProvider for ResolvedDns {
    fn get<'a>(&'a self, interface: &'a str) -> BoxFuture<'a, ProviderResult<DnsConfig>> {
        Box::pin(self.get_inner(interface))
    }

    fn set<'a>(&'a self, change: &'a DnsSet) -> BoxFuture<'a, ProviderResult<DnsChangeResult>> {
        Box::pin(self.set_inner(change))
    }
}

fn not_found(interface: &str) -> ProviderError {
    ProviderError::NotFound {
        what: "interface",
        name: interface.to_owned(),
    }
}

/// The kernel's index of `interface`; an unknown name is [`ProviderError::NotFound`].
fn ifindex(interface: &str) -> ProviderResult<i32> {
    match nix::net::if_::if_nametoindex(interface) {
        Ok(index) => i32::try_from(index).map_err(|_| not_found(interface)),
        Err(nix::errno::Errno::ENODEV | nix::errno::Errno::EINVAL) => Err(not_found(interface)),
        Err(e) => Err(ProviderError::io(
            format!("looking up interface {interface}"),
            e.into(),
        )),
    }
}

// ---------------------------------------------------------------------------
// Pure parts
// ---------------------------------------------------------------------------

/// An address as resolved's `(iay)`: address family and the address bytes.
pub(crate) fn addr_to_wire(ip: IpAddr) -> (i32, Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => (libc::AF_INET, v4.octets().to_vec()),
        IpAddr::V6(v6) => (libc::AF_INET6, v6.octets().to_vec()),
    }
}

/// The inverse of [`addr_to_wire`]; `None` for a family or length that do not match.
pub(crate) fn addr_from_wire(family: i32, bytes: &[u8]) -> Option<IpAddr> {
    match family {
        libc::AF_INET => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        libc::AF_INET6 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A domain as resolved's `(sb)`: `~name` is route-only (used to pick the link for
/// names under it, never appended to single-label names).
pub(crate) fn domain_to_wire(domain: &str) -> (String, bool) {
    match domain.strip_prefix('~') {
        Some(name) => (name.to_owned(), true),
        None => (domain.to_owned(), false),
    }
}

/// The inverse of [`domain_to_wire`].
pub(crate) fn domain_from_wire(name: &str, route_only: bool) -> String {
    if route_only {
        format!("~{name}")
    } else {
        name.to_owned()
    }
}

/// What `/etc/resolv.conf` says about DNS.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ResolvConf {
    pub servers: Vec<String>,
    pub search: Vec<String>,
}

/// Parses `nameserver`, `search` and `domain` the way the C library does: comments
/// start with `#` or `;`, and the last of `search`/`domain` wins.
pub(crate) fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // An IPv6 server may carry a zone (`fe80::1%eth0`): keep it as written.
                if let Some(addr) = words.next() {
                    let ip = addr.split('%').next().unwrap_or(addr);
                    if ip.parse::<IpAddr>().is_ok() {
                        conf.servers.push(addr.to_owned());
                    }
                }
            }
            Some("search") => conf.search = words.map(str::to_owned).collect(),
            Some("domain") => conf.search = words.next().map(str::to_owned).into_iter().collect(),
            _ => {}
        }
    }
    conf
}

/// The `.network` file named by a systemd-networkd link state file, when networkd
/// manages the link (it writes `ADMIN_STATE=unmanaged` and no file otherwise).
pub(crate) fn networkd_network_file(state: &str) -> Option<PathBuf> {
    let mut admin_state = None;
    let mut file = None;
    for line in state.lines() {
        match line.split_once('=') {
            Some(("ADMIN_STATE", v)) => admin_state = Some(v.trim()),
            Some(("NETWORK_FILE", v)) if !v.trim().is_empty() => {
                file = Some(PathBuf::from(v.trim()))
            }
            _ => {}
        }
    }
    match admin_state {
        Some("unmanaged" | "linger") | None => None,
        Some(_) => file,
    }
}

/// Where this provider's drop-in for `network_file` goes: networkd looks for
/// `<name>.network.d/` in every configuration directory, so `/etc` serves a file
/// shipped under `/usr/lib` or `/run` too.
pub(crate) fn drop_in_path(config_dir: &Path, network_file: &Path) -> Option<PathBuf> {
    let mut dir_name = network_file.file_name()?.to_os_string();
    dir_name.push(".d");
    Some(config_dir.join(dir_name).join(DROP_IN))
}

/// The drop-in that replaces a `.network` file's DNS servers and domains: an empty
/// assignment first clears what the file itself lists.
pub(crate) fn networkd_drop_in(servers: &[IpAddr], domains: &[String]) -> String {
    let mut text = String::from(
        "# Written by osapi (network.dns.set); replaces this link's DNS servers and domains.\n\
         [Network]\nDNS=\n",
    );
    for ip in servers {
        text.push_str(&format!("DNS={ip}\n"));
    }
    text.push_str("Domains=\n");
    if !domains.is_empty() {
        text.push_str(&format!("Domains={}\n", domains.join(" ")));
    }
    text
}

/// Writes `path` so that a reader sees the old file or the new one, never a part.
async fn write_atomically(path: &Path, text: &str) -> ProviderResult<()> {
    let io = |what: &str, e| ProviderError::io(format!("{what} {}", path.display()), e);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io("creating the directory of", e))?;
    }
    let tmp = path.with_extension("conf.tmp");
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| io("writing", e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| io("replacing", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_iay() {
        for text in ["192.0.2.53", "2001:db8::53", "::1", "0.0.0.0"] {
            let ip: IpAddr = text.parse().expect("ip");
            let (family, bytes) = addr_to_wire(ip);
            assert_eq!(addr_from_wire(family, &bytes), Some(ip), "{text}");
        }
        assert_eq!(
            addr_to_wire("192.0.2.53".parse().expect("ip")),
            (2, vec![192, 0, 2, 53])
        );
        let (family, bytes) = addr_to_wire("2001:db8::53".parse().expect("ip"));
        assert_eq!(
            (family, bytes.len(), bytes[0], bytes[15]),
            (10, 16, 0x20, 0x53)
        );
        // Family and length must agree; unknown families are skipped.
        assert_eq!(addr_from_wire(libc::AF_INET, &[1, 2, 3]), None);
        assert_eq!(addr_from_wire(libc::AF_INET6, &[0; 4]), None);
        assert_eq!(addr_from_wire(99, &[0; 4]), None);
    }

    #[test]
    fn domains_round_trip_through_sb() {
        assert_eq!(
            domain_to_wire("corp.example"),
            ("corp.example".into(), false)
        );
        assert_eq!(
            domain_to_wire("~route.example"),
            ("route.example".into(), true)
        );
        assert_eq!(domain_to_wire("~."), (".".into(), true));
        for d in ["corp.example", "~route.example", "~."] {
            let (name, route_only) = domain_to_wire(d);
            assert_eq!(domain_from_wire(&name, route_only), d);
        }
    }

    #[test]
    fn resolv_conf_parsing() {
        let text = "# generated\n\
                    nameserver 10.0.0.1\n\
                    ; old style comment\n\
                    nameserver   2001:db8::1\n\
                    nameserver fe80::1%eth0\n\
                    nameserver not-an-ip\n\
                    domain old.example\n\
                    search a.example b.example\n\
                    options ndots:2\n";
        assert_eq!(
            parse_resolv_conf(text),
            ResolvConf {
                servers: vec![
                    "10.0.0.1".into(),
                    "2001:db8::1".into(),
                    "fe80::1%eth0".into()
                ],
                search: vec!["a.example".into(), "b.example".into()],
            }
        );
        // The last of search/domain wins.
        let text = "search a.example\ndomain z.example\n";
        assert_eq!(
            parse_resolv_conf(text).search,
            vec!["z.example".to_string()]
        );
        assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    }

    #[test]
    fn networkd_state_files() {
        let managed = "# This is private data. Do not parse.\n\
                       ADMIN_STATE=configured\n\
                       OPER_STATE=routable\n\
                       NETWORK_FILE=/etc/systemd/network/10-eth0.network\n";
        assert_eq!(
            networkd_network_file(managed),
            Some(PathBuf::from("/etc/systemd/network/10-eth0.network"))
        );
        let unmanaged = "ADMIN_STATE=unmanaged\nOPER_STATE=carrier\n";
        assert_eq!(networkd_network_file(unmanaged), None);
        assert_eq!(networkd_network_file("ADMIN_STATE=configuring\n"), None);
        assert_eq!(networkd_network_file(""), None);
    }

    #[test]
    fn drop_in_replaces_servers_and_domains() {
        let servers: Vec<IpAddr> = vec![
            "192.0.2.53".parse().expect("ip"),
            "2001:db8::53".parse().expect("ip"),
        ];
        let text = networkd_drop_in(&servers, &["corp.example".into(), "~route.example".into()]);
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "[Network]",
                "DNS=",
                "DNS=192.0.2.53",
                "DNS=2001:db8::53",
                "Domains=",
                "Domains=corp.example ~route.example"
            ]
        );
        assert_eq!(
            drop_in_path(
                Path::new("/etc/systemd/network"),
                Path::new("/usr/lib/systemd/network/80-container-host0.network")
            ),
            Some(PathBuf::from(
                "/etc/systemd/network/80-container-host0.network.d/osapi-dns.conf"
            ))
        );
        assert_eq!(drop_in_path(Path::new("/etc"), Path::new("/")), None);
        let cleared = networkd_drop_in(&[], &[]);
        assert!(
            cleared.ends_with("[Network]\nDNS=\nDomains=\n"),
            "{cleared}"
        );
    }

    #[test]
    fn unknown_interfaces_are_not_found() {
        let err = ifindex("osapi-nope0").err();
        assert!(
            matches!(&err, Some(ProviderError::NotFound { what: "interface", name }) if name == "osapi-nope0"),
            "{err:?}"
        );
        assert!(ifindex("lo").is_ok_and(|i| i > 0));
    }

    /// With no bus to reach, reads come from resolv.conf and writes fail clearly.
    #[tokio::test]
    async fn without_resolved_reads_fall_back_and_writes_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver 192.0.2.1\nsearch example.org\n").expect("write");
        let paths = DnsPaths {
            resolv_conf: resolv,
            networkd_links: dir.path().join("links"),
            networkd_config: dir.path().join("network"),
            network_manager_run: dir.path().join("nm"),
        };
        let no_bus = dir.path().join("no-bus.sock");
        let bus = SystemBus::at(format!("unix:path={}", no_bus.display()));
        let provider = ResolvedDns::with_paths(Arc::new(bus), paths);
        let got = provider.get("lo").await.expect("fallback read");
        assert_eq!(got.source, DnsSource::ResolvConf);
        assert_eq!(got.servers, vec!["192.0.2.1".to_string()]);
        assert_eq!(got.search_domains, vec!["example.org".to_string()]);
        let change = DnsSet {
            interface: "lo".into(),
            servers: vec!["192.0.2.53".into()],
            search_domains: vec![],
            dry_run: false,
        };
        let err = provider.set(&change).await.err();
        assert!(
            matches!(
                err,
                Some(ProviderError::Unavailable {
                    service: "systemd-resolved",
                    ..
                })
            ),
            "{err:?}"
        );
        let err = provider.get("osapi-nope0").await.err();
        assert_eq!(err.map(|e| e.code()), Some("not_found"));
    }
}
