//! The inputs of the `sysctl.*` operations: kernel parameters by name, and
//! the values to give them, checked before anything runs.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;

/// A parameter's name as sysctl(8) takes it: `net.ipv4.ip_forward`, or with
/// slashes where a part has a dot (`net/ipv4/conf/eth0.100/forwarding`).
pub fn check_key(key: &str) -> Result<(), String> {
    let parts: Vec<&str> = key.split(['/', '.']).collect();
    let well_formed = !key.is_empty()
        && key.len() <= 256
        && !key.starts_with(['/', '.'])
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./@:+".contains(c))
        && key
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && parts.iter().all(|p| !p.is_empty() || key.contains('/'));
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{key:?} is not a kernel parameter name such as net.ipv4.ip_forward"
        ))
    }
}

fn check(key: &str) -> Result<(), InvalidInput> {
    check_key(key).map_err(|why| InvalidInput::new("key", why))
}

/// `sysctl.key.list`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct SysctlList {
    /// Only the parameters under this prefix, e.g. `net.ipv4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(value_name = "PREFIX")]
    pub prefix: Option<String>,
}

impl SysctlList {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        match &self.prefix {
            Some(p) => check_key(p).map_err(|why| InvalidInput::new("prefix", why)),
            None => Ok(()),
        }
    }
}

/// `sysctl.key.get` and `sysctl.key.delete`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct SysctlKey {
    /// The parameter, e.g. `net.ipv4.ip_forward`.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl SysctlKey {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check(&self.key)
    }
}

/// `sysctl.key.set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct SysctlSet {
    /// The parameter, e.g. `net.ipv4.ip_forward`.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Its new value, e.g. `1` or `4096 16384 4194304`.
    #[arg(value_name = "VALUE")]
    pub value: String,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl SysctlSet {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check(&self.key)?;
        let v = &self.value;
        if v.trim().is_empty() || v.len() > 4096 || v.chars().any(|c| c.is_control() && c != '\t') {
            return Err(InvalidInput::new(
                "value",
                "1-4096 bytes on one line, not only spaces",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_names_not_paths() {
        for ok in [
            "net.ipv4.ip_forward",
            "kernel.pid_max",
            "net/ipv4/conf/eth0.100/forwarding",
            "vm.swappiness",
        ] {
            check_key(ok).unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "net/../../etc",
            "net..ipv4",
            ".hidden",
            "kernel pid_max",
            "net.ipv4.",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_are_one_line() {
        let set = |v: &str| SysctlSet {
            key: "vm.swappiness".into(),
            value: v.into(),
            dry_run: false,
        };
        set("10").validate().unwrap();
        set("4096\t16384 4194304").validate().unwrap();
        for bad in ["", "  ", "1\n2"] {
            assert_eq!(set(bad).validate().unwrap_err().field, "value", "{bad:?}");
        }
    }
}
