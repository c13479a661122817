//! The input of `network.interface.set`: addresses, DHCP, routes and MTU
//! for a link systemd-networkd manages, and how long the agent waits to
//! reach NATS again before it puts the old configuration back.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::operation::{InvalidInput, opt_duration, parse_duration};

/// How long a change has to prove itself when the request does not say.
pub const DEFAULT_CONFIRM_WITHIN: Duration = Duration::from_secs(60);
/// The bounds of `confirm_within`.
const CONFIRM_RANGE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(600));

/// One static route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// `10.1.0.0/16`, or `0.0.0.0/0` / `::/0` for a default route.
    pub destination: String,
    /// The next hop.
    pub gateway: String,
}

/// `network.interface.set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSet {
    /// Interface name, e.g. `eth0`.
    #[arg(value_name = "IFACE")]
    pub interface: String,
    /// Static addresses with their prefix (`10.0.0.2/24`); replace the
    /// `.network` file's. An empty list leaves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(
        long = "address",
        value_name = "CIDR",
        value_delimiter = ',',
        help = "A static address with its prefix, e.g. 10.0.0.2/24; repeat or separate with commas"
    )]
    pub addresses: Option<Vec<String>>,
    /// DHCP: `yes`, `no`, `ipv4` or `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "yes|no|ipv4|ipv6")]
    pub dhcp: Option<String>,
    /// Static routes, added to those of the link's own `.network` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(
        long = "route",
        value_name = "DEST=GATEWAY",
        value_parser = parse_route,
        help = "A static route, e.g. 10.1.0.0/16=10.0.0.1 (0.0.0.0/0=GW for the default); repeat"
    )]
    pub routes: Option<Vec<RouteSpec>>,
    /// The MTU in bytes (68-65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u32>,
    /// How long the agent has to reach NATS again after applying (default
    /// 60s, 5s to 10m); otherwise it puts the old configuration back.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schema(value_type = Option<String>)]
    #[arg(long = "confirm-within", value_name = "DURATION", value_parser = parse_duration)]
    pub confirm_within: Option<Duration>,
    /// Report the `.network` file that would be written without writing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

fn parse_route(text: &str) -> Result<RouteSpec, String> {
    let (destination, gateway) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: DEST=GATEWAY, e.g. 10.1.0.0/16=10.0.0.1"))?;
    Ok(RouteSpec {
        destination: destination.trim().to_owned(),
        gateway: gateway.trim().to_owned(),
    })
}

/// `10.0.0.2/24`: an address and a prefix its family allows.
fn check_cidr(field: &str, text: &str) -> Result<(IpAddr, u8), InvalidInput> {
    let bad = || {
        InvalidInput::new(
            field,
            format!("{text:?} is not an address with a prefix, e.g. 10.0.0.2/24"),
        )
    };
    let (ip, prefix) = text.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok((ip, prefix))
}

impl InterfaceSet {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        super::operation::validate_interface(&self.interface, "interface")?;
        // The name goes into `[Match] Name=`, where networkd reads these as
        // a glob or quoting: a link so named would capture others.
        if self
            .interface
            .contains(['*', '?', '[', ']', '\\', '"', '\''])
        {
            return Err(InvalidInput::new(
                "interface",
                "a name with glob or quote characters cannot be matched exactly by networkd",
            ));
        }
        for a in self.addresses.iter().flatten() {
            check_cidr("addresses", a)?;
        }
        if let Some(d) = &self.dhcp
            && !["yes", "no", "ipv4", "ipv6"].contains(&d.as_str())
        {
            return Err(InvalidInput::new("dhcp", "yes, no, ipv4 or ipv6"));
        }
        for r in self.routes.iter().flatten() {
            let (dest, _) = check_cidr("routes", &r.destination)?;
            let gw: IpAddr = r.gateway.parse().map_err(|_| {
                InvalidInput::new("routes", format!("{:?} is not an address", r.gateway))
            })?;
            if gw.is_ipv4() != dest.is_ipv4() {
                return Err(InvalidInput::new(
                    "routes",
                    format!(
                        "{} and {} are of different families",
                        r.destination, r.gateway
                    ),
                ));
            }
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(InvalidInput::new("mtu", "68 to 65535"));
        }
        if let Some(t) = self.confirm_within
            && !(CONFIRM_RANGE.0..=CONFIRM_RANGE.1).contains(&t)
        {
            return Err(InvalidInput::new("confirm_within", "5s to 10m"));
        }
        if self.addresses.is_none()
            && self.dhcp.is_none()
            && self.routes.is_none()
            && self.mtu.is_none()
        {
            return Err(InvalidInput::new(
                "addresses",
                "nothing to set: give addresses, dhcp, routes or mtu",
            ));
        }
        Ok(())
    }

    /// How long the change has to prove itself.
    pub fn confirm_within(&self) -> Duration {
        self.confirm_within.unwrap_or(DEFAULT_CONFIRM_WITHIN)
    }

    /// The `.network` file OSAPI writes for this link: `base` (the link's
    /// own file from `source`, with its drop-ins, as networkd reads them)
    /// matched to this link only and without what the request replaces, then
    /// the request's settings. What is replaced is left out, not cleared:
    /// networkd 252 ignores an empty `Address=`, so a drop-in could never
    /// take a file's addresses away.
    pub fn network_file(&self, source: &str, base: &str) -> String {
        let iface = &self.interface;
        let mut out = format!(
            "# Written by OSAPI (network.interface.set) for {iface}: {source} and its\n\
             # drop-ins, with what the change sets in place of theirs. Without this\n\
             # file, networkd goes back to {source}.\n{NETWORK_FILE_SOURCE}{source}\n"
        );
        let name = format!("Name={iface}\n");
        let mut section = String::new();
        let mut matched = false;
        let mut skipping = false;
        // A line ending in `\` goes on in the next: kept or left out with it.
        let mut continued: Option<bool> = None;
        for line in base.lines() {
            if let Some(kept) = continued {
                if kept && !skipping {
                    out.push_str(line);
                    out.push('\n');
                }
                continued = line.ends_with('\\').then_some(kept);
                continue;
            }
            let t = line.trim();
            if t.starts_with('[') && t.ends_with(']') {
                if section == "Match" {
                    out.push_str(&name);
                }
                section = t[1..t.len() - 1].to_owned();
                matched |= section == "Match";
                // An [Address] section is an address too.
                skipping = section == "Address" && self.addresses.is_some();
                if !skipping {
                    out.push_str(line);
                    out.push('\n');
                }
                continue;
            }
            let key = t.split_once('=').map(|(k, _)| k.trim());
            let replaced = match (section.as_str(), key) {
                ("Match", Some("Name")) => true,
                ("Network", Some("Address")) => self.addresses.is_some(),
                ("Network", Some("DHCP")) => self.dhcp.is_some(),
                ("Link", Some("MTUBytes")) => self.mtu.is_some(),
                _ => false,
            };
            if !skipping && !replaced {
                out.push_str(line);
                out.push('\n');
            }
            continued = line.ends_with('\\').then_some(!replaced);
        }
        if section == "Match" {
            out.push_str(&name);
        }
        if !matched {
            // A file without [Match] applies to every link; this one must not.
            out.push_str(&format!("\n[Match]\n{name}"));
        }
        out.push_str("\n# Set by OSAPI\n[Network]\n");
        for a in self.addresses.iter().flatten() {
            out.push_str(&format!("Address={a}\n"));
        }
        if let Some(d) = &self.dhcp {
            out.push_str(&format!("DHCP={d}\n"));
        }
        if let Some(mtu) = self.mtu {
            out.push_str(&format!("\n[Link]\nMTUBytes={mtu}\n"));
        }
        for r in self.routes.iter().flatten() {
            out.push_str(&format!(
                "\n[Route]\nDestination={}\nGateway={}\n",
                r.destination, r.gateway
            ));
        }
        out
    }
}

/// The line of an OSAPI `.network` file that names the file it was made
/// from, so that the next change starts again from that one.
pub const NETWORK_FILE_SOURCE: &str = "# osapi-source: ";

/// The name of OSAPI's `.network` file for `interface` when networkd took
/// `source_name` (`50-lan.network`) for it: `50-lan-osapi-eth0.network`,
/// which sorts just before it (`-` before `.`), so networkd takes it first.
pub fn owned_network_file_name(source_name: &str, interface: &str) -> String {
    let stem = source_name.strip_suffix(".network").unwrap_or(source_name);
    format!("{stem}-osapi-{interface}.network")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> InterfaceSet {
        InterfaceSet {
            interface: "eth0".into(),
            addresses: Some(vec!["10.0.0.2/24".into(), "fd00::2/64".into()]),
            dhcp: Some("no".into()),
            routes: Some(vec![parse_route("10.1.0.0/16=10.0.0.1").unwrap()]),
            mtu: Some(1400),
            confirm_within: None,
            dry_run: false,
        }
    }

    #[test]
    fn a_change_is_checked_and_written_as_a_file_of_its_own() {
        let s = set();
        s.validate().unwrap();
        let base = "# the admin's\n[Match]\nName=eth*\nType=ether\n\n[Network]\nAddress=192.0.2.1/24\nDHCP=yes\nDNS=192.0.2.53\n\n[Address]\nAddress=192.0.2.2/24\n\n[Link]\nMTUBytes=9000\n\n[Route]\nGateway=192.0.2.254\n";
        let text = s.network_file("/etc/systemd/network/50-lan.network", base);
        assert!(
            text.contains("# osapi-source: /etc/systemd/network/50-lan.network\n"),
            "{text}"
        );
        // Matched to this link only; the rest of [Match] kept.
        assert!(
            text.contains("[Match]\nType=ether\n\nName=eth0\n"),
            "{text}"
        );
        assert!(!text.contains("Name=eth*"), "{text}");
        // What the change sets is left out of the base, whatever section.
        for gone in [
            "192.0.2.1/24",
            "192.0.2.2/24",
            "DHCP=yes",
            "MTUBytes=9000",
            "[Address]",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        // The rest stays: DNS, the file's own route.
        assert!(text.contains("DNS=192.0.2.53\n") && text.contains("Gateway=192.0.2.254\n"));
        assert!(
            text.ends_with(
                "[Network]\nAddress=10.0.0.2/24\nAddress=fd00::2/64\nDHCP=no\n\n[Link]\nMTUBytes=1400\n\n[Route]\nDestination=10.1.0.0/16\nGateway=10.0.0.1\n"
            ),
            "{text}"
        );
        assert_eq!(s.confirm_within(), DEFAULT_CONFIRM_WITHIN);
        // Only the MTU: the addresses and DHCP of the base stay.
        let mtu = InterfaceSet {
            addresses: None,
            dhcp: None,
            routes: None,
            ..set()
        };
        let text = mtu.network_file("/x/50-lan.network", base);
        assert!(
            text.contains("Address=192.0.2.1/24")
                && text.contains("[Address]\nAddress=192.0.2.2/24")
        );
        assert!(text.contains("DHCP=yes") && !text.contains("MTUBytes=9000"));
        // A continued line goes with its first.
        let text = mtu.network_file("/x/a.network", "[Match]\nName=eth0\n[Link]\nMTUBytes=1500 \\\n  \n[Network]\nDNS=10.0.0.53 \\\n 10.0.0.54\n");
        assert!(
            !text.contains("MTUBytes=1500") && text.contains("DNS=10.0.0.53 \\\n 10.0.0.54\n"),
            "{text}"
        );
        // No [Match] at all would match every link: one is added.
        let text = mtu.network_file("/x/a.network", "[Network]\nDHCP=yes\n");
        assert!(text.contains("[Match]\nName=eth0\n"), "{text}");
        assert_eq!(
            owned_network_file_name("50-lan.network", "eth0"),
            "50-lan-osapi-eth0.network"
        );
        assert!(owned_network_file_name("50-lan.network", "eth0").as_str() < "50-lan.network");
    }

    #[test]
    fn bad_settings_name_their_field() {
        type Spoil = fn(&mut InterfaceSet);
        let cases: Vec<(Spoil, &str)> = vec![
            (
                |s: &mut InterfaceSet| s.addresses = Some(vec!["10.0.0.2".into()]),
                "addresses",
            ),
            (
                |s: &mut InterfaceSet| s.addresses = Some(vec!["10.0.0.2/33".into()]),
                "addresses",
            ),
            (|s: &mut InterfaceSet| s.dhcp = Some("maybe".into()), "dhcp"),
            (
                |s: &mut InterfaceSet| {
                    s.routes = Some(vec![parse_route("10.1.0.0/16=fd00::1").unwrap()])
                },
                "routes",
            ),
            (|s: &mut InterfaceSet| s.mtu = Some(20), "mtu"),
            (
                |s: &mut InterfaceSet| s.confirm_within = Some(Duration::from_secs(1)),
                "confirm_within",
            ),
            (
                |s: &mut InterfaceSet| s.interface = "a/b".into(),
                "interface",
            ),
            (
                |s: &mut InterfaceSet| s.interface = "eth*".into(),
                "interface",
            ),
        ];
        for (spoil, field) in cases {
            let mut s = set();
            spoil(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        }
        let empty = InterfaceSet {
            addresses: None,
            dhcp: None,
            routes: None,
            mtu: None,
            ..set()
        };
        assert!(empty.validate().is_err());
        assert!(parse_route("10.0.0.0/8").is_err());
    }
}
