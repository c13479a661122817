//! The inputs of the `package.*` operations: package names and a search,
//! checked before anything runs.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;

/// The most packages one request names.
pub const MAX_PACKAGES: usize = 64;

/// A package's name as Debian and RPM both spell them: a letter or digit,
/// then letters, digits and `+-._` (RPM allows capitals and `_`), 1-128
/// bytes. Versions, architectures and globs are not part of a name.
pub fn check_name(name: &str) -> Result<(), String> {
    let well_formed = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c));
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a package name such as openssh-server (letters, digits and +-._)"
        ))
    }
}

/// `package.search`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct PackageSearch {
    /// Text the packages' names contain, e.g. `nginx`.
    #[arg(value_name = "TEXT")]
    pub query: String,
}

impl PackageSearch {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let q = &self.query;
        let printable = q.chars().all(|c| !c.is_control());
        if q.trim().len() < 2 || q.len() > 128 || !printable {
            return Err(InvalidInput::new(
                "query",
                "2-128 printable characters, not only spaces",
            ));
        }
        Ok(())
    }
}

/// `package.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct PackageName {
    /// The package, e.g. `openssh-server`.
    #[arg(value_name = "NAME")]
    pub name: String,
}

impl PackageName {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_name(&self.name).map_err(|why| InvalidInput::new("name", why))
    }
}

/// `package.install` and `package.remove`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct PackageNames {
    /// The packages, by name.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Report what would change (the packages the transaction would touch)
    /// without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl PackageNames {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.names.is_empty() {
            return Err(InvalidInput::new("names", "name at least one package"));
        }
        check_names(&self.names)
    }

    /// A removal must not take OSAPI with it: the agent would be stopped in
    /// the middle of its own job, and the host cut off from management.
    pub fn validate_remove(&self) -> Result<(), InvalidInput> {
        match self
            .names
            .iter()
            .position(|n| PROTECTED_PACKAGES.contains(&n.as_str()))
        {
            Some(i) => Err(InvalidInput::new(
                format!("names[{i}]"),
                "OSAPI, its bus and PackageKit are removed with the host's own package manager, not through OSAPI",
            )),
            None => Ok(()),
        }
    }
}

/// Packages no change through OSAPI takes away: OSAPI, its bus, and the
/// service that would put them back.
pub const PROTECTED_PACKAGES: &[&str] = &["osapi", "nats-server", "packagekit"];

/// `package.update`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct PackageUpdate {
    /// The packages to update; none: every pending update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl PackageUpdate {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_names(&self.names)
    }
}

/// `package.refresh`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct PackageRefresh {
    /// Download the package lists even where the cached ones are recent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Download the lists even if the cache is recent")]
    pub force: bool,
    /// Report the pending updates without refreshing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show the pending updates without refreshing")]
    pub dry_run: bool,
}

impl PackageRefresh {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        Ok(())
    }
}

/// At most [`MAX_PACKAGES`] names, each well formed, none twice.
fn check_names(names: &[String]) -> Result<(), InvalidInput> {
    if names.len() > MAX_PACKAGES {
        return Err(InvalidInput::new(
            "names",
            format!("at most {MAX_PACKAGES} packages in one request"),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        check_name(name).map_err(|why| InvalidInput::new(format!("names[{i}]"), why))?;
        if names[..i].contains(name) {
            return Err(InvalidInput::new(
                format!("names[{i}]"),
                format!("{name:?} is named twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_names_not_specs() {
        for ok in [
            "openssh-server",
            "libc6",
            "g++",
            "python3.11",
            "NetworkManager",
            "perl_base",
            "0ad",
        ] {
            check_name(ok).unwrap();
        }
        for bad in [
            "",
            "-rf",
            ".hidden",
            "nginx=1.2",
            "libc6:i386",
            "a b",
            "*",
            "pkg;1;amd64;x",
            "../x",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_name_the_entry_at_fault() {
        let names = |n: &[&str]| PackageNames {
            names: n.iter().map(|s| s.to_string()).collect(),
            dry_run: false,
        };
        assert_eq!(names(&[]).validate().unwrap_err().field, "names");
        assert_eq!(
            names(&["curl", "a b"]).validate().unwrap_err().field,
            "names[1]"
        );
        assert_eq!(
            names(&["curl", "curl"]).validate().unwrap_err().field,
            "names[1]"
        );
        let many: Vec<String> = (0..=MAX_PACKAGES).map(|i| format!("p{i}")).collect();
        let too_many = PackageUpdate {
            names: many,
            dry_run: false,
        };
        assert_eq!(too_many.validate().unwrap_err().field, "names");
        PackageUpdate::default().validate().unwrap();
    }

    #[test]
    fn searches_are_short_printable_text() {
        let search = |q: &str| PackageSearch { query: q.into() }.validate();
        search("nginx").unwrap();
        search("lib ssl").unwrap();
        for bad in ["", "a", "  ", "x\ny", &"x".repeat(129)] {
            assert_eq!(search(bad).unwrap_err().field, "query", "{bad:?}");
        }
    }
}
