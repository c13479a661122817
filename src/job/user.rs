//! The inputs of the `user.*` operations (issue 14's users, groups and SSH
//! keys): names, account settings, password hashes and public keys, checked
//! before anything runs.
//!
//! A password given in clear is hashed as the request is parsed
//! ([`UserPassword::seal`], SHA-512 crypt): the job, the bus and the agent
//! only ever see the hash.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;

/// Longest SSH public key line taken (an RSA 16384-bit key is about 2.8 KiB).
pub const MAX_KEY_BYTES: usize = 8 * 1024;
/// SHA-512 crypt rounds for a password hashed here (glibc's default is 5,000).
const HASH_ROUNDS: usize = 100_000;

/// A user or group name as useradd(8) takes it on Debian and Fedora: a
/// lowercase letter or `_`, then lowercase letters, digits, `_`, `-`, at
/// most 32 bytes, an optional `$` at the end (machine accounts).
pub fn check_account_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let ok = (1..=32).contains(&name.len())
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(
            field,
            format!(
                "{name:?} is not an account name: a lowercase letter or _, then lowercase letters, digits, _ or -, at most 32"
            ),
        ))
    }
}

/// `user.account.list`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct UserList {
    /// Also system accounts (uid below 1000).
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "super::log::switch"
    )]
    #[arg(long, help = "Also system accounts (uid below 1000)")]
    pub system: bool,
}

impl UserList {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        Ok(())
    }
}

/// `user.account.get` and `user.key.list`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct UserName {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

impl UserName {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)
    }
}

/// `user.group.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct GroupName {
    /// The group's name.
    #[arg(value_name = "GROUP")]
    pub name: String,
}

impl GroupName {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)
    }
}

/// `user.account.lock` and `user.account.unlock`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl UserRef {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)
    }
}

/// `user.account.delete`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct UserDelete {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Also remove the home directory and mail spool (`userdel --remove`).
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "super::log::switch"
    )]
    #[arg(long, help = "Also remove the home directory and mail spool")]
    pub remove_home: bool,
    /// Also for system accounts (uid below 1000) and root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Also for system accounts and root")]
    pub force: bool,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl UserDelete {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)?;
        if self.name == "root" && !self.force {
            return Err(InvalidInput::new("name", "root is deleted only with force"));
        }
        Ok(())
    }
}

/// `user.account.add` and `user.account.modify`: the settings given;
/// absent ones are left as they are (an add: useradd's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct UserAccount {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The full name (GECOS comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "TEXT", help = "The full name (GECOS comment)")]
    pub comment: Option<String>,
    /// The login shell, an absolute path listed in `/etc/shells` (or
    /// `/usr/sbin/nologin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "PATH")]
    pub shell: Option<String>,
    /// Supplementary groups; replace the current ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(
        long = "groups",
        value_name = "GROUP",
        value_delimiter = ',',
        help = "Supplementary groups, replacing the current ones; comma-separated"
    )]
    pub groups: Option<Vec<String>>,
    /// Add only: the uid; by default the next free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(
        long,
        value_name = "UID",
        help = "The uid (add only; default: the next free one)"
    )]
    pub uid: Option<u32>,
    /// Add only: a system account (uid below 1000, no home directory).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "A system account, uid below 1000 (add only)")]
    pub system: bool,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl UserAccount {
    /// The rules of an add.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)?;
        if let Some(uid) = self.uid
            && (uid == 0 || uid >= 60_000)
        {
            return Err(InvalidInput::new(
                "uid",
                "1 to 59999 (0 is root's; 60000 and up are systemd's and nobody's)",
            ));
        }
        if let Some(c) = &self.comment
            && (c.len() > 255 || c.contains(':') || c.chars().any(char::is_control))
        {
            return Err(InvalidInput::new(
                "comment",
                "at most 255 bytes, no ':' and no control characters",
            ));
        }
        if let Some(s) = &self.shell
            && (!s.starts_with('/') || s.len() > 255 || s.contains(['\n', ':']) || s.contains(".."))
        {
            return Err(InvalidInput::new(
                "shell",
                "an absolute path such as /bin/bash",
            ));
        }
        if let Some(groups) = &self.groups {
            if groups.len() > 64 {
                return Err(InvalidInput::new("groups", "at most 64 groups"));
            }
            for g in groups {
                check_account_name("groups", g)?;
            }
        }
        Ok(())
    }

    /// The rules of a modify: something to change, and no uid or system.
    pub fn validate_modify(&self) -> Result<(), InvalidInput> {
        self.validate()?;
        if self.uid.is_some() || self.system {
            return Err(InvalidInput::new(
                if self.uid.is_some() { "uid" } else { "system" },
                "only an add sets it",
            ));
        }
        if self.comment.is_none() && self.shell.is_none() && self.groups.is_none() {
            return Err(InvalidInput::new(
                "comment",
                "nothing to change: give comment, shell or groups",
            ));
        }
        Ok(())
    }
}

/// `user.password.set`: a crypt(3) hash, or a password in clear that is
/// hashed here before the job is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct UserPassword {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The password's crypt(3) hash: yescrypt (`$y$`), SHA-512 (`$6$`),
    /// SHA-256 (`$5$`) or bcrypt (`$2b$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(
        long,
        value_name = "HASH",
        help = "The password's crypt(3) hash ($y$, $6$, $5$, $2b$); without it, the password is asked for"
    )]
    pub hash: Option<String>,
    /// The password in clear (8-1024 bytes): the API hashes it (SHA-512
    /// crypt) before the job is written, and keeps it nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(skip)]
    pub password: Option<String>,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl UserPassword {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)?;
        match (&self.hash, &self.password) {
            (Some(_), Some(_)) => Err(InvalidInput::new(
                "password",
                "give the password or its hash, not both",
            )),
            (None, None) => Err(InvalidInput::new(
                "password",
                "give the password or its hash",
            )),
            (Some(h), None) => check_hash(h),
            (None, Some(p)) if !(8..=1024).contains(&p.len()) || p.contains(['\n', '\0']) => {
                Err(InvalidInput::new("password", "8 to 1024 bytes on one line"))
            }
            (None, Some(_)) => Ok(()),
        }
    }

    /// Replaces a password in clear by its SHA-512 crypt hash.
    pub fn seal(&mut self) -> Result<(), InvalidInput> {
        if let Some(clear) = self.password.take() {
            let params = sha_crypt::Sha512Params::new(HASH_ROUNDS)
                .map_err(|_| InvalidInput::new("password", "cannot hash it"))?;
            let hash = sha_crypt::sha512_simple(&clear, &params)
                .map_err(|_| InvalidInput::new("password", "cannot hash it"))?;
            self.hash = Some(hash);
        }
        Ok(())
    }
}

/// A crypt(3) hash of a scheme current systems verify.
fn check_hash(hash: &str) -> Result<(), InvalidInput> {
    let scheme_ok = ["$y$", "$6$", "$5$", "$2b$", "$gy$"]
        .iter()
        .any(|p| hash.starts_with(p));
    let chars_ok = hash
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"$./=,-".contains(&b));
    if scheme_ok && chars_ok && (20..=512).contains(&hash.len()) {
        Ok(())
    } else {
        Err(InvalidInput::new(
            "hash",
            "a crypt(3) hash: $y$ (yescrypt), $6$ (SHA-512), $5$ (SHA-256), $2b$ (bcrypt) or $gy$",
        ))
    }
}

/// `user.key.add`, `user.key.remove`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct UserKey {
    /// The user's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// An OpenSSH public key line (`ssh-ed25519 AAAA… comment`), or, to
    /// remove one, its SHA256 fingerprint (`SHA256:…`).
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl UserKey {
    /// An add takes a key line: a fingerprint names a key, it is not one.
    pub fn validate_add(&self) -> Result<(), InvalidInput> {
        match self.key.starts_with("SHA256:") {
            true => Err(InvalidInput::new(
                "key",
                "a fingerprint only removes a key; add takes the public key line",
            )),
            false => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)?;
        if self.key.starts_with("SHA256:") {
            return Ok(());
        }
        crate::provider::users::parse_key(&self.key)
            .map(drop)
            .map_err(|why| InvalidInput::new("key", why))
    }
}

/// `user.group.delete`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct GroupRef {
    /// The group's name.
    #[arg(value_name = "GROUP")]
    pub name: String,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl GroupRef {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)
    }
}

/// `user.group.add`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct GroupAdd {
    /// The new group's name.
    #[arg(value_name = "GROUP")]
    pub name: String,
    /// The gid; by default the next free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,
    /// A system group (gid below 1000).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "A system group (gid below 1000)")]
    pub system: bool,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl GroupAdd {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_account_name("name", &self.name)?;
        if let Some(gid) = self.gid
            && (gid == 0 || gid >= 60_000)
        {
            return Err(InvalidInput::new("gid", "1 to 59999"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["alice", "_svc", "web-01", "host$", "a"] {
            check_account_name("name", ok).unwrap();
        }
        for bad in [
            "",
            "Alice",
            "1abc",
            "-x",
            "a b",
            "a:b",
            "../x",
            &"a".repeat(33),
        ] {
            assert!(check_account_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_clear_password_becomes_a_hash() {
        let mut p = UserPassword {
            name: "alice".into(),
            hash: None,
            password: Some("correct horse".into()),
            dry_run: false,
        };
        p.validate().unwrap();
        p.seal().unwrap();
        assert_eq!(p.password, None);
        let hash = p.hash.clone().unwrap();
        assert!(hash.starts_with("$6$rounds=100000$"), "{hash}");
        assert!(sha_crypt::sha512_check("correct horse", &hash).is_ok());
        p.validate().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("correct horse"), "{json}");
        p.password = Some("short".into());
        p.hash = None;
        assert_eq!(p.validate().unwrap_err().field, "password");
        p.password = None;
        p.hash = Some("$1$md5$is-not-taken".into());
        assert_eq!(p.validate().unwrap_err().field, "hash");
    }

    #[test]
    fn settings_are_checked() {
        let a = |comment: &str, shell: &str| UserAccount {
            name: "alice".into(),
            comment: Some(comment.into()),
            shell: Some(shell.into()),
            groups: Some(vec!["sudo".into()]),
            uid: None,
            system: false,
            dry_run: false,
        };
        a("Alice A.", "/bin/bash").validate_modify().unwrap();
        assert_eq!(
            a("a:b", "/bin/bash").validate().unwrap_err().field,
            "comment"
        );
        assert_eq!(a("a", "bash").validate().unwrap_err().field, "shell");
        let mut empty = a("", "/bin/sh");
        (empty.comment, empty.shell, empty.groups) = (None, None, None);
        empty.validate().unwrap();
        assert!(empty.validate_modify().is_err());
        empty.uid = Some(1500);
        empty.validate().unwrap();
        assert_eq!(empty.validate_modify().unwrap_err().field, "uid");
    }
}
