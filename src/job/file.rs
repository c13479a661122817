//! Files kept in the bus's object store and deployed to hosts (issue 14's
//! files with drift): the names they are stored under, and the inputs of
//! `file.deploy`, `file.status` and `file.undeploy`, checked before
//! anything runs.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;

/// The largest file the store takes.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// A stored file's name: letters, digits, `.`, `_`, `-`, at most 128, not
/// starting with a dot.
pub fn check_file_name(name: &str) -> Result<(), InvalidInput> {
    super::operation::check_plain_name("name", name, 128)
}

/// Where a file may be deployed: an absolute, normal path outside the
/// kernel's and systemd's virtual trees.
fn check_path(field: &str, path: &str) -> Result<(), InvalidInput> {
    let normal = path.starts_with('/')
        && path.len() <= 4096
        && !path.ends_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !normal {
        return Err(InvalidInput::new(
            field,
            "an absolute path without . or .. parts, e.g. /etc/motd",
        ));
    }
    for virtual_tree in ["/proc", "/sys", "/dev", "/run/credentials"] {
        if path == virtual_tree || path.starts_with(&format!("{virtual_tree}/")) {
            return Err(InvalidInput::new(
                field,
                format!("{virtual_tree} is not a place for files"),
            ));
        }
    }
    Ok(())
}

/// `file.status`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FileName {
    /// The stored file's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

impl FileName {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_file_name(&self.name)
    }
}

/// `file.deploy`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FileDeploy {
    /// The stored file's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where it goes on the hosts (absolute; the directory must exist).
    #[arg(long = "to", value_name = "PATH")]
    pub path: String,
    /// Its mode, octal (default `0644`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "MODE", help = "Its mode, octal (default 0644)")]
    pub mode: Option<String>,
    /// Its owner (default root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// Its group (default the owner's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Render it as a template (minijinja) over the host's facts:
    /// `{{ host.hostname }}`, `{{ host.labels.role }}`, `{{ host.os.id }}`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Render it as a template over the host's facts")]
    pub template: bool,
    /// Report what would change (before → after, a diff) without writing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl FileDeploy {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_file_name(&self.name)?;
        check_path("path", &self.path)?;
        self.mode_bits()?;
        for (field, value) in [("owner", &self.owner), ("group", &self.group)] {
            if let Some(v) = value {
                super::user::check_account_name(field, v)?;
            }
        }
        Ok(())
    }

    /// The mode asked for, 0644 when none.
    pub fn mode_bits(&self) -> Result<u32, InvalidInput> {
        match &self.mode {
            None => Ok(0o644),
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|bits| *bits <= 0o7777 && !m.is_empty())
                .ok_or_else(|| InvalidInput::new("mode", "octal, 0000 to 7777, e.g. 0640")),
        }
    }
}

/// `file.undeploy`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FileUndeploy {
    /// The stored file's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Only the copy at this path; by default every copy of it on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Report what would be removed without removing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl FileUndeploy {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_file_name(&self.name)?;
        match &self.path {
            Some(p) => check_path("path", p),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        for ok in ["motd", "nginx.conf", "app_v2-1.yaml"] {
            check_file_name(ok).unwrap();
        }
        for bad in ["", ".env", "a/b", "a b", "../x"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["/etc/motd", "/opt/app/conf.d/x.yaml"] {
            check_path("path", ok).unwrap();
        }
        for bad in [
            "etc/motd",
            "/etc/",
            "/etc/../shadow",
            "/proc/sys/x",
            "/dev/sda",
            "/a//b",
        ] {
            assert!(check_path("path", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn modes_are_octal() {
        let deploy = |mode: Option<&str>| FileDeploy {
            name: "motd".into(),
            path: "/etc/motd".into(),
            mode: mode.map(str::to_owned),
            owner: None,
            group: None,
            template: false,
            dry_run: false,
        };
        assert_eq!(deploy(None).mode_bits().unwrap(), 0o644);
        assert_eq!(deploy(Some("0600")).mode_bits().unwrap(), 0o600);
        assert_eq!(deploy(Some("755")).mode_bits().unwrap(), 0o755);
        for bad in ["", "9", "rw-r--r--", "17777"] {
            assert_eq!(
                deploy(Some(bad)).validate().unwrap_err().field,
                "mode",
                "{bad}"
            );
        }
    }
}
