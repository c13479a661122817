//! Permissions and roles (SPEC §6).
//!
//! A token carries roles, or an explicit `permissions` list that replaces role
//! expansion. Built-in roles can be extended or replaced by custom roles from the
//! configuration. Everything here is pure data: the API's auth layer applies it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The permissions, each once: variant and its `resource:verb` name.
macro_rules! permissions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// One permission, written `resource:verb`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum Permission {
            $($(#[$doc])* $variant,)*
        }

        impl Permission {
            pub const ALL: &[Permission] = &[$(Permission::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }
        }
    };
}

permissions! {
    NodeRead = "node:read",
    NodeWrite = "node:write",
    NetworkRead = "network:read",
    NetworkWrite = "network:write",
    JobRead = "job:read",
    JobWrite = "job:write",
    /// Delete any job; without it, only one's own.
    JobDelete = "job:delete",
    CommandExecute = "command:execute",
    /// Run a command as another user (or group) than root.
    CommandRunAs = "command:run-as",
    HealthRead = "health:read",
    AuditRead = "audit:read",
    AgentRead = "agent:read",
    /// Accept or reject agents joining the fleet.
    AgentWrite = "agent:write",
    /// List and inspect systemd units.
    ServiceRead = "service:read",
    /// Start, stop, enable, disable, mask units.
    ServiceWrite = "service:write",
    /// Read the clock's settings.
    TimeRead = "time:read",
    /// Set the time zone, NTP, NTP servers and the time.
    TimeWrite = "time:write",
    /// Read the journal: logs may hold what programs should not have printed.
    LogRead = "log:read",
    /// This boot's id and the scheduled shutdown.
    PowerRead = "power:read",
    /// Schedule and cancel reboots and poweroffs.
    PowerWrite = "power:write",
    /// Read kernel parameters.
    SysctlRead = "sysctl:read",
    /// Set kernel parameters (now and at boot).
    SysctlWrite = "sysctl:write",
    /// List and inspect processes.
    ProcessRead = "process:read",
    /// Signal processes.
    ProcessWrite = "process:write",
    /// List the trusted certificate authorities.
    CertRead = "cert:read",
    /// Add and remove trusted certificate authorities.
    CertWrite = "cert:write",
    /// List stored files and see where deployed ones drifted (with diffs
    /// of their contents, so not in the read role).
    FileRead = "file:read",
    /// Store, delete and deploy files (a deploy writes any path as any owner).
    FileWrite = "file:write",
    /// List users, groups and SSH authorized keys.
    UserRead = "user:read",
    /// Create, change and delete users and groups; passwords and SSH keys.
    UserWrite = "user:write",
    /// List installed packages, search, pending updates.
    PackageRead = "package:read",
    /// Install, remove and update packages; refresh the package lists.
    PackageWrite = "package:write",
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?} (known: {known})", known = known_permissions())]
pub struct UnknownPermission(pub String);

fn known_permissions() -> String {
    let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    names.join(", ")
}

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl TryFrom<String> for Permission {
    type Error = UnknownPermission;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> String {
        p.as_str().to_owned()
    }
}

pub type PermissionSet = BTreeSet<Permission>;

/// The role table: built-in roles, overlaid with custom ones from the configuration.
#[derive(Debug, Clone)]
pub struct Roles {
    table: BTreeMap<String, PermissionSet>,
}

impl Default for Roles {
    fn default() -> Self {
        Self::with_custom(&BTreeMap::new())
    }
}

impl Roles {
    /// Built-in roles (`admin`, `write`, `read`), then `custom` on top: a custom role
    /// with a built-in's name replaces that built-in's set.
    pub fn with_custom(custom: &BTreeMap<String, PermissionSet>) -> Self {
        use Permission::*;
        let admin: PermissionSet = Permission::ALL.iter().copied().collect();
        let write: PermissionSet = admin
            .iter()
            .copied()
            // user:write makes sudoers with passwords: as strong as command:execute.
            .filter(|p| {
                !matches!(
                    p,
                    AuditRead
                        | CommandExecute
                        | CommandRunAs
                        | JobDelete
                        | AgentWrite
                        | UserWrite
                        | FileWrite
                )
            })
            .collect();
        let read: PermissionSet = admin
            .iter()
            .copied()
            .filter(|p| {
                p.as_str().ends_with(":read") && !matches!(p, AuditRead | LogRead | FileRead)
            })
            .collect();
        let mut table = BTreeMap::from([
            ("admin".to_owned(), admin),
            ("write".to_owned(), write),
            ("read".to_owned(), read),
        ]);
        for (name, perms) in custom {
            table.insert(name.clone(), perms.clone());
        }
        Roles { table }
    }

    pub fn get(&self, role: &str) -> Option<&PermissionSet> {
        self.table.get(role)
    }

    /// The effective permissions of a principal: an explicit permission list wins,
    /// otherwise the union of its known roles (unknown role names grant nothing).
    pub fn effective(&self, roles: &[String], explicit: Option<&[Permission]>) -> PermissionSet {
        match explicit {
            Some(perms) => perms.iter().copied().collect(),
            None => roles
                .iter()
                .filter_map(|r| self.table.get(r))
                .flatten()
                .copied()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn builtin_roles_match_the_spec() {
        let roles = Roles::default();
        assert_eq!(roles.get("admin").unwrap().len(), Permission::ALL.len());
        let write = roles.get("write").unwrap();
        assert!(!write.contains(&AuditRead) && !write.contains(&CommandExecute));
        assert!(!write.contains(&JobDelete) && !write.contains(&AgentWrite));
        assert!(!write.contains(&UserWrite) && write.contains(&CertWrite));
        assert!(!write.contains(&FileWrite) && write.contains(&PackageWrite));
        assert!(write.contains(&NodeWrite) && write.contains(&JobWrite));
        let read = roles.get("read").unwrap();
        assert_eq!(
            read.iter().copied().collect::<Vec<_>>(),
            vec![
                NodeRead,
                NetworkRead,
                JobRead,
                HealthRead,
                AgentRead,
                ServiceRead,
                TimeRead,
                PowerRead,
                SysctlRead,
                ProcessRead,
                CertRead,
                UserRead,
                PackageRead
            ]
        );
    }

    #[test]
    fn explicit_permissions_replace_roles() {
        let roles = Roles::default();
        let eff = roles.effective(&["admin".into()], Some(&[NodeRead]));
        assert_eq!(eff.into_iter().collect::<Vec<_>>(), vec![NodeRead]);
    }

    #[test]
    fn custom_role_adds_and_replaces() {
        let custom = BTreeMap::from([
            ("ops".to_owned(), PermissionSet::from([CommandExecute])),
            ("read".to_owned(), PermissionSet::from([HealthRead])),
        ]);
        let roles = Roles::with_custom(&custom);
        let eff = roles.effective(&["ops".into(), "read".into(), "nobody".into()], None);
        assert_eq!(
            eff.into_iter().collect::<Vec<_>>(),
            vec![CommandExecute, HealthRead]
        );
    }

    #[test]
    fn permission_round_trips_and_rejects_unknown() {
        for &p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        assert!("node:delete".parse::<Permission>().is_err());
    }
}
