//! The inputs of the `service.*` operations: systemd units, named and checked
//! before anything runs.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;

/// Unit types systemd knows; a unit name ends in one of them.
const UNIT_TYPES: [&str; 11] = [
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// systemd's limit on a unit name (`UNIT_NAME_MAX`).
const UNIT_NAME_MAX: usize = 255;

/// A unit name as systemd accepts it: `name.type`, of letters, digits and
/// `:-_.\@`; with `glob`, also the pattern characters `*?[]`.
fn check_unit(name: &str, glob: bool) -> Result<(), String> {
    if name.is_empty() || name.len() > UNIT_NAME_MAX {
        return Err(format!("a unit name is 1-{UNIT_NAME_MAX} bytes"));
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || ":-_.\\@".contains(c) || (glob && "*?[]".contains(c))
    };
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!("{c:?} is not allowed in a unit name"));
    }
    if glob {
        return Ok(());
    }
    match name.rsplit_once('.') {
        Some((stem, kind)) if !stem.is_empty() && UNIT_TYPES.contains(&kind) => Ok(()),
        _ => Err(format!(
            "a unit name ends in its type: .{}",
            UNIT_TYPES.join(", .")
        )),
    }
}

/// `service.unit.list`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct ServiceList {
    /// Only units whose name matches this glob, e.g. `ssh*` or `*.timer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "GLOB")]
    pub pattern: Option<String>,
    /// Only units in this load, active or sub state, e.g. `active`, `failed`, `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
}

impl ServiceList {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(p) = &self.pattern {
            check_unit(p, true).map_err(|why| InvalidInput::new("pattern", why))?;
        }
        if let Some(s) = &self.state
            && (s.is_empty()
                || s.len() > 32
                || !s.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        {
            return Err(InvalidInput::new(
                "state",
                "a state is a lowercase word such as active, failed or running",
            ));
        }
        Ok(())
    }
}

/// `service.unit.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServiceUnit {
    /// The unit, e.g. `ssh.service`.
    #[arg(value_name = "UNIT")]
    pub unit: String,
}

impl ServiceUnit {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_unit(&self.unit, false).map_err(|why| InvalidInput::new("unit", why))
    }
}

/// `service.unit.start`, `stop`, `restart`, `reload`, `enable`, `disable`,
/// `mask` and `unmask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServiceChange {
    /// The unit, e.g. `ssh.service`.
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// Also for OSAPI's own units, which a stop, restart, disable or mask
    /// would cut off from the API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Also for OSAPI's own units (osapi*)")]
    pub force: bool,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl ServiceChange {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_unit(&self.unit, false).map_err(|why| InvalidInput::new("unit", why))
    }

    /// One of OSAPI's own units (`osapi.target`, `osapi-agent.service`, …).
    pub fn is_osapi_unit(&self) -> bool {
        self.unit == "osapi.target" || self.unit.starts_with("osapi-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        for ok in [
            "ssh.service",
            "getty@tty1.service",
            "dev-sda1.device",
            "a.timer",
            "x\\x2d.mount",
        ] {
            assert!(check_unit(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ssh",
            ".service",
            "ssh.bogus",
            "a b.service",
            "a/b.service",
            "ssh*.service",
        ] {
            assert!(check_unit(bad, false).is_err(), "{bad}");
        }
        assert!(check_unit("ssh*", true).is_ok());
        assert!(check_unit(&"a".repeat(300), true).is_err());
    }

    #[test]
    fn states_are_words() {
        let list = |state: &str| ServiceList {
            pattern: None,
            state: Some(state.into()),
        };
        assert!(list("running").validate().is_ok());
        assert_eq!(list("Run ning").validate().unwrap_err().field, "state");
    }
}
