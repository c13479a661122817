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
    /// Static routes, added to the `.network` file's (a drop-in cannot take
    /// a `[Route]` section away).
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
    /// Report the drop-in that would be written without writing it.
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

    /// The drop-in that makes the change: each setting given replaces the
    /// `.network` file's (an empty assignment clears its list first).
    pub fn drop_in(&self) -> String {
        let mut text = String::from(
            "# Written by OSAPI (network.interface.set); replaces what it sets of this link's .network file.\n[Network]\n",
        );
        if let Some(addresses) = &self.addresses {
            text.push_str("Address=\n");
            for a in addresses {
                text.push_str(&format!("Address={a}\n"));
            }
        }
        if let Some(d) = &self.dhcp {
            text.push_str(&format!("DHCP={d}\n"));
        }
        if let Some(mtu) = self.mtu {
            text.push_str(&format!("\n[Link]\nMTUBytes={mtu}\n"));
        }
        for r in self.routes.iter().flatten() {
            text.push_str(&format!(
                "\n[Route]\nDestination={}\nGateway={}\n",
                r.destination, r.gateway
            ));
        }
        text
    }
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
    fn a_change_is_checked_and_written_as_a_drop_in() {
        let s = set();
        s.validate().unwrap();
        let text = s.drop_in();
        assert!(
            text.contains(
                "[Network]\nAddress=\nAddress=10.0.0.2/24\nAddress=fd00::2/64\nDHCP=no\n"
            ),
            "{text}"
        );
        assert!(text.contains("[Link]\nMTUBytes=1400\n"), "{text}");
        assert!(
            text.contains("[Route]\nDestination=10.1.0.0/16\nGateway=10.0.0.1\n"),
            "{text}"
        );
        assert_eq!(s.confirm_within(), DEFAULT_CONFIRM_WITHIN);
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
