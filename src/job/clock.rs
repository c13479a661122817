//! The inputs of the `time.*` changes: the time zone, NTP on or off, the time
//! itself and the NTP servers, each checked before anything runs.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::hostname::{MAX_DOMAIN_LEN, check_hostname};
use super::operation::InvalidInput;

/// The longest zone name in the tz database is 32 bytes; leave room.
const MAX_ZONE_LEN: usize = 64;
/// More NTP servers than this is a mistake, not a configuration.
pub const MAX_NTP_SERVERS: usize = 16;

/// `time.zone.set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct TimezoneSet {
    /// A zone of the tz database, e.g. `Europe/Berlin` or `Etc/UTC`.
    #[arg(value_name = "ZONE")]
    pub timezone: String,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl TimezoneSet {
    /// The name's form; whether the host's tz database has it is the agent's
    /// to check.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let zone = &self.timezone;
        let well_formed = !zone.is_empty()
            && zone.len() <= MAX_ZONE_LEN
            && zone.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
            });
        if well_formed {
            Ok(())
        } else {
            Err(InvalidInput::new(
                "timezone",
                format!("{zone:?} is not a tz database name such as Europe/Berlin"),
            ))
        }
    }
}

/// `time.ntp.set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct NtpSet {
    /// Turn network time synchronisation on or off.
    #[arg(value_name = "on|off", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), hide_possible_values = true)]
    pub enabled: bool,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl NtpSet {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        Ok(())
    }
}

/// `time.clock.set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ClockSet {
    /// The new time (RFC 3339, e.g. `2026-12-07T10:00:00Z`); only with NTP off.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    #[arg(value_name = "TIME", value_parser = parse_rfc3339)]
    pub time: OffsetDateTime,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl ClockSet {
    /// Within what a clock can mean: after 1970, before 2100.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if (1970..2100).contains(&self.time.year()) {
            Ok(())
        } else {
            Err(InvalidInput::new(
                "time",
                "the time must be between 1970 and 2099",
            ))
        }
    }
}

fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e})"))
}

/// `time.ntp_servers.set`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct NtpServersSet {
    /// NTP servers (host names or addresses) for systemd-timesyncd, in
    /// order; none puts back the host's own configuration.
    #[serde(default)]
    #[arg(value_name = "SERVER")]
    pub servers: Vec<String>,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl NtpServersSet {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.servers.len() > MAX_NTP_SERVERS {
            return Err(InvalidInput::new(
                "servers",
                format!("at most {MAX_NTP_SERVERS} servers"),
            ));
        }
        for (i, server) in self.servers.iter().enumerate() {
            if server.parse::<IpAddr>().is_err()
                && let Err(why) = check_hostname(server, MAX_DOMAIN_LEN)
            {
                return Err(InvalidInput::new(
                    format!("servers[{i}]"),
                    format!("{server:?} is neither an address nor a host name: {why}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_are_checked_for_form() {
        let zone = |z: &str| TimezoneSet {
            timezone: z.into(),
            dry_run: false,
        };
        for ok in [
            "Etc/UTC",
            "UTC",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            zone(ok).validate().unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "Europe/../../etc/shadow",
            "Europe//Berlin",
            "a b",
            "Europe/",
        ] {
            assert_eq!(
                zone(bad).validate().unwrap_err().field,
                "timezone",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn servers_are_names_or_addresses() {
        let servers = |s: &[&str]| NtpServersSet {
            servers: s.iter().map(|s| s.to_string()).collect(),
            dry_run: false,
        };
        servers(&["192.0.2.1", "2001:db8::1", "ntp.example.org"])
            .validate()
            .unwrap();
        servers(&[]).validate().unwrap();
        let e = servers(&["ok.example", "bad host"]).validate().unwrap_err();
        assert_eq!(e.field, "servers[1]");
        let many: Vec<String> = (0..17).map(|i| format!("s{i}.example")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(servers(&refs).validate().unwrap_err().field, "servers");
    }

    #[test]
    fn the_time_is_within_reason() {
        let at = |s: &str| ClockSet {
            time: parse_rfc3339(s).unwrap(),
            dry_run: false,
        };
        at("2026-12-07T10:00:00Z").validate().unwrap();
        assert!(at("2100-01-01T00:00:00Z").validate().is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
