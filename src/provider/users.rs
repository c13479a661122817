//! Users, groups and SSH keys (`user.*`).
//!
//! Reads go through NSS (`getpwent`, `getgrent`, `getgrouplist`), so users
//! from LDAP or systemd-userdb show as the C library sees them; a local
//! account's lock and password state come from `/etc/shadow`. Changes run
//! the shadow tools (`useradd`, `usermod`, `userdel`, `groupadd`,
//! `groupdel`, `chpasswd -e`) with an argument vector and a timeout, as
//! Debian and Fedora both ship them; a password hash goes to `chpasswd` on
//! its standard input, never on a command line. Every change reads the
//! account first: the same settings again are `changed: false`, and a dry
//! run answers before → after from that read.
//!
//! `~/.ssh/authorized_keys` is written by the agent (root) inside a
//! directory its user owns, so every step is relative to a directory
//! opened without following symbolic links: the home, then `.ssh` (made
//! 0700 when missing, refused unless the user owns it), then a new file
//! beside the old one, owned by the user, mode 0600, synced and renamed
//! over it. A link planted anywhere on the way makes the write fail
//! rather than land elsewhere.

use std::ffi::{CStr, CString};
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, fstat, mkdirat};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::command::run_tool;
use super::{BoxFuture, ProviderError, ProviderResult};
use crate::job::{GroupAdd, GroupRef, UserAccount, UserDelete, UserKey, UserPassword, UserRef};

/// How long one shadow tool may take (useradd copies /etc/skel).
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// The first uid and gid of a person's account (login.defs `UID_MIN`).
const FIRST_REGULAR_ID: u32 = 1000;
/// At and above this, ids are systemd's dynamic ones and nobody's.
const LAST_REGULAR_ID: u32 = 60_000;
/// Key types OpenSSH accepts today (DSA is gone since OpenSSH 9.8).
const KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
];

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The primary group's name.
    pub group: String,
    /// Supplementary groups, by name.
    pub groups: Vec<String>,
    /// The full name (GECOS comment).
    pub comment: String,
    pub home: String,
    pub shell: String,
    /// Below uid 1000 (or 60000 and up).
    pub system: bool,
    /// Whether the password is locked (`!` in `/etc/shadow`); absent for
    /// accounts that are not in `/etc/shadow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// Whether a password is set (a hash, locked or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_set: Option<bool>,
}

/// The result of `user.account.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct Users(pub Vec<UserInfo>);

/// A group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct GroupInfo {
    pub name: String,
    pub gid: u32,
    /// Its supplementary members (those with it as primary group are not
    /// listed, as in `/etc/group`).
    pub members: Vec<String>,
}

/// The result of `user.group.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct Groups(pub Vec<GroupInfo>);

/// What a change to a user did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct UserChange {
    pub name: String,
    pub changed: bool,
    pub dry_run: bool,
    /// The account before; absent when it did not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<UserInfo>,
    /// After; absent when deleted. In a dry run, what it would be (a new
    /// account's ids are the tool's to pick, shown as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserInfo>,
}

/// What a change to a group did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct GroupChange {
    pub name: String,
    pub changed: bool,
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<GroupInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<GroupInfo>,
}

/// One line of `authorized_keys`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SshKey {
    /// `ssh-ed25519`, `ssh-rsa`, …
    #[serde(rename = "type")]
    pub key_type: String,
    /// As `ssh-keygen -lf` prints it: `SHA256:` and unpadded base64.
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The line's options (`from="…",no-pty`), when it has any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
}

/// The result of `user.key.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SshKeys {
    pub user: String,
    pub path: String,
    pub keys: Vec<SshKey>,
}

/// What a key add or remove did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SshKeyChange {
    pub user: String,
    pub changed: bool,
    pub dry_run: bool,
    /// The key added or removed.
    pub key: SshKey,
    pub path: String,
}

/// Reads and changes accounts.
pub trait UserProvider: Send + Sync {
    fn list(&self, system: bool) -> BoxFuture<'_, ProviderResult<Users>>;
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<UserInfo>>;
    fn add<'a>(&'a self, request: &'a UserAccount) -> BoxFuture<'a, ProviderResult<UserChange>>;
    fn modify<'a>(&'a self, request: &'a UserAccount) -> BoxFuture<'a, ProviderResult<UserChange>>;
    /// Lock (`true`) or unlock the password.
    fn lock<'a>(
        &'a self,
        request: &'a UserRef,
        lock: bool,
    ) -> BoxFuture<'a, ProviderResult<UserChange>>;
    fn delete<'a>(&'a self, request: &'a UserDelete) -> BoxFuture<'a, ProviderResult<UserChange>>;
    fn set_password<'a>(
        &'a self,
        request: &'a UserPassword,
    ) -> BoxFuture<'a, ProviderResult<UserChange>>;
    fn keys<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<SshKeys>>;
    /// Add (`true`) or remove a key.
    fn change_key<'a>(
        &'a self,
        request: &'a UserKey,
        add: bool,
    ) -> BoxFuture<'a, ProviderResult<SshKeyChange>>;
    fn groups(&self) -> BoxFuture<'_, ProviderResult<Groups>>;
    fn group<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<GroupInfo>>;
    fn add_group<'a>(&'a self, request: &'a GroupAdd)
    -> BoxFuture<'a, ProviderResult<GroupChange>>;
    fn delete_group<'a>(
        &'a self,
        request: &'a GroupRef,
    ) -> BoxFuture<'a, ProviderResult<GroupChange>>;
}

// ---------------------------------------------------------------------------
// SSH keys
// ---------------------------------------------------------------------------

/// Parses a public key line: `[options] type base64 [comment]`. The blob
/// must decode and name the same type it is declared as.
pub fn parse_key(line: &str) -> Result<SshKey, String> {
    let line = line.trim();
    if line.len() > crate::job::MAX_KEY_BYTES || line.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "one line of at most {} bytes",
            crate::job::MAX_KEY_BYTES
        ));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(at) = words.iter().position(|w| KEY_TYPES.contains(w)) else {
        return Err(format!(
            "not an OpenSSH public key line: one of {} then the key",
            KEY_TYPES.join(", ")
        ));
    };
    let key_type = words[at];
    let blob = words
        .get(at + 1)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(|| format!("the {key_type} key is not base64"))?;
    let declared = blob
        .get(..4)
        .and_then(|n| <[u8; 4]>::try_from(n).ok())
        .map(|n| u32::from_be_bytes(n) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if declared != Some(key_type.as_bytes()) {
        return Err(format!("the key's data is not a {key_type} key"));
    }
    // Options come before the type; a comment after the key may have spaces.
    let options = line[..line.find(key_type).unwrap_or(0)].trim().to_owned();
    Ok(SshKey {
        key_type: key_type.to_owned(),
        fingerprint: fingerprint(&blob),
        comment: words.get(at + 2..).map(|c| c.join(" ")).unwrap_or_default(),
        options,
    })
}

fn fingerprint(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The user's home and `.ssh`, opened without following links; `.ssh` is
/// made (0700, the user's) when `create` and it is missing.
fn open_ssh_dir(user: &UserInfo, create: bool) -> ProviderResult<Option<OwnedFd>> {
    let err = |what: &str, e: nix::Error| {
        ProviderError::io(
            format!("{what} {}/.ssh", user.home),
            std::io::Error::from(e),
        )
    };
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // No link another user planted on the way to the home is followed.
    let home = match crate::files::open_dir_without_planted_links(Path::new(&user.home)) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
        Err(e) => {
            return Err(ProviderError::io(format!("opening {}", user.home), e));
        }
    };
    let ssh = match openat(&home, ".ssh", dir_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) if !create => return Ok(None),
        Err(nix::Error::ENOENT) => {
            mkdirat(&home, ".ssh", Mode::from_bits_truncate(0o700))
                .map_err(|e| err("making", e))?;
            let fd =
                openat(&home, ".ssh", dir_flags, Mode::empty()).map_err(|e| err("opening", e))?;
            std::os::unix::fs::fchown(&fd, Some(user.uid), Some(user.gid))
                .map_err(|e| ProviderError::io(format!("chown {}/.ssh", user.home), e))?;
            fd
        }
        Err(e) => return Err(err("opening", e)),
    };
    let st = fstat(&ssh).map_err(|e| err("checking", e))?;
    if st.st_uid != user.uid && st.st_uid != 0 {
        return Err(ProviderError::PermissionDenied {
            operation: "user.key",
            detail: format!(
                "{}/.ssh belongs to uid {}, not to {}",
                user.home, st.st_uid, user.name
            ),
        });
    }
    Ok(Some(ssh))
}

/// `authorized_keys` in `.ssh`, read without following a link or blocking
/// on a FIFO, only when it is a regular file, and at most 1 MiB of it.
fn read_keys_file(ssh: &impl AsFd, user: &UserInfo) -> ProviderResult<String> {
    const MAX: u64 = 1024 * 1024;
    let path = format!("{}/.ssh/authorized_keys", user.home);
    let failed = |e: std::io::Error| ProviderError::io(format!("reading {path}"), e);
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = match openat(ssh, "authorized_keys", flags, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(nix::Error::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(failed(e.into())),
    };
    let meta = file.metadata().map_err(failed)?;
    if !meta.is_file() || meta.len() > MAX {
        return Err(ProviderError::invalid(
            "name",
            format!("{path} is not a regular file of at most 1 MiB"),
        ));
    }
    std::io::read_to_string(std::io::Read::take(file, MAX)).map_err(failed)
}

/// Replaces `authorized_keys` in `.ssh` with `text`: a new file (the user's,
/// 0600), synced, renamed over the old one.
fn write_keys_file(ssh: &impl AsFd, user: &UserInfo, text: &str) -> ProviderResult<()> {
    let failed = |e: std::io::Error| {
        ProviderError::io(format!("writing {}/.ssh/authorized_keys", user.home), e)
    };
    let tmp = format!("authorized_keys.osapi-{}", std::process::id());
    let _ = nix::unistd::unlinkat(ssh, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(ssh, tmp.as_str(), flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| failed(e.into()))?;
    let mut file = std::fs::File::from(fd);
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| std::os::unix::fs::fchown(&file, Some(user.uid), Some(user.gid)))
        .and_then(|()| file.sync_all())
        .and_then(|()| renameat(ssh, tmp.as_str(), ssh, "authorized_keys").map_err(Into::into));
    if written.is_err() {
        let _ = nix::unistd::unlinkat(ssh, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    written.map_err(failed)
}

// ---------------------------------------------------------------------------
// NSS and shadow
// ---------------------------------------------------------------------------

/// getpwent and getgrent walk one process-wide cursor.
static NSS: Mutex<()> = Mutex::new(());

fn text(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: NSS returns NUL-terminated strings that live until the next call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `(name, uid, gid, gecos, home, shell)` of every account NSS lists.
fn all_passwd() -> Vec<(String, u32, u32, String, String, String)> {
    let _guard = NSS.lock();
    let mut out = Vec::new();
    // SAFETY: the cursor is only used under NSS's lock; each entry is copied
    // before the next call.
    unsafe {
        libc::setpwent();
        loop {
            let pw = libc::getpwent();
            if pw.is_null() {
                break;
            }
            let pw = &*pw;
            out.push((
                text(pw.pw_name),
                pw.pw_uid,
                pw.pw_gid,
                text(pw.pw_gecos),
                text(pw.pw_dir),
                text(pw.pw_shell),
            ));
        }
        libc::endpwent();
    }
    out
}

fn all_groups() -> Vec<GroupInfo> {
    let _guard = NSS.lock();
    let mut out = Vec::new();
    // SAFETY: as in all_passwd; gr_mem is a NULL-terminated array.
    unsafe {
        libc::setgrent();
        loop {
            let gr = libc::getgrent();
            if gr.is_null() {
                break;
            }
            let gr = &*gr;
            let mut members = Vec::new();
            let mut m = gr.gr_mem;
            while !m.is_null() && !(*m).is_null() {
                members.push(text(*m));
                m = m.add(1);
            }
            out.push(GroupInfo {
                name: text(gr.gr_name),
                gid: gr.gr_gid,
                members,
            });
        }
        libc::endgrent();
    }
    out
}

/// The password field of each `/etc/shadow` line, by user.
fn shadow() -> Vec<(String, String)> {
    std::fs::read_to_string("/etc/shadow")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect()
}

fn is_system(id: u32) -> bool {
    !(FIRST_REGULAR_ID..LAST_REGULAR_ID).contains(&id)
}

/// One account as NSS gives it: name, uid, gid, GECOS, home, shell.
type Passwd = (String, u32, u32, String, String, String);

/// A user's info from its passwd entry, its groups named by `group_name`,
/// and its `/etc/shadow` line among `shadow`.
fn build_user(
    (name, uid, gid, comment, home, shell): Passwd,
    group_name: &dyn Fn(u32) -> String,
    shadow: &[(String, String)],
) -> UserInfo {
    let supplementary = CString::new(name.as_str())
        .ok()
        .and_then(|c| nix::unistd::getgrouplist(&c, nix::unistd::Gid::from_raw(gid)).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .filter(|g| *g != gid)
        .map(group_name)
        .collect();
    let pw = shadow.iter().find(|(n, _)| *n == name).map(|(_, p)| p);
    UserInfo {
        group: group_name(gid),
        groups: supplementary,
        system: is_system(uid),
        locked: pw.map(|p| p.starts_with('!')),
        password_set: pw.map(|p| p.trim_start_matches('!').starts_with('$')),
        name,
        uid,
        gid,
        comment: comment.split(',').next().unwrap_or_default().to_owned(),
        home,
        shell,
    }
}

/// Every user NSS enumerates.
fn read_users() -> Vec<UserInfo> {
    let groups = all_groups();
    let shadow = shadow();
    let group_name = |gid: u32| {
        groups
            .iter()
            .find(|g| g.gid == gid)
            .map_or_else(|| gid.to_string(), |g| g.name.clone())
    };
    all_passwd()
        .into_iter()
        .map(|p| build_user(p, &group_name, &shadow))
        .collect()
}

/// One user, looked up by name (`getpwnam`): found even where NSS does not
/// enumerate (LDAP, sssd).
fn read_user(name: &str) -> Option<UserInfo> {
    let u = nix::unistd::User::from_name(name).ok()??;
    let passwd = (
        u.name,
        u.uid.as_raw(),
        u.gid.as_raw(),
        u.gecos.to_string_lossy().into_owned(),
        u.dir.display().to_string(),
        u.shell.display().to_string(),
    );
    let group_name = |gid: u32| {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or_else(|| gid.to_string(), |g| g.name)
    };
    Some(build_user(passwd, &group_name, &shadow()))
}

/// The hash `/etc/shadow` holds for `name`, without a lock mark.
fn shadow_hash(name: &str) -> Option<String> {
    shadow()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.trim_start_matches('!').to_owned())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ProviderResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProviderError::io("looking up accounts", std::io::Error::other(e)))
}

async fn find_user(name: &str) -> ProviderResult<Option<UserInfo>> {
    let name = name.to_owned();
    blocking(move || read_user(&name)).await
}

async fn user(name: &str) -> ProviderResult<UserInfo> {
    find_user(name)
        .await?
        .ok_or_else(|| ProviderError::NotFound {
            what: "user",
            name: name.to_owned(),
        })
}

/// One group, looked up by name (`getgrnam`).
async fn find_group(name: &str) -> ProviderResult<Option<GroupInfo>> {
    let name = name.to_owned();
    blocking(move || {
        nix::unistd::Group::from_name(&name)
            .ok()
            .flatten()
            .map(|g| GroupInfo {
                name: g.name,
                gid: g.gid.as_raw(),
                members: g.mem,
            })
    })
    .await
}

/// The shells `/etc/shells` lists, and nologin.
fn shell_allowed(shell: &str) -> bool {
    let nologin = [
        "/usr/sbin/nologin",
        "/sbin/nologin",
        "/bin/false",
        "/usr/bin/false",
    ];
    nologin.contains(&shell)
        || std::fs::read_to_string("/etc/shells")
            .unwrap_or_default()
            .lines()
            .any(|l| l.trim() == shell)
}

// ---------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------

/// The host's accounts, through NSS and the shadow tools.
pub struct ShadowUsers;

impl ShadowUsers {
    /// The usermod/useradd flags that take `request`'s settings to where
    /// they are not yet (all of them for a new account), and the account
    /// as it would be after.
    async fn settings_args(
        &self,
        request: &UserAccount,
        current: Option<&UserInfo>,
    ) -> ProviderResult<(Vec<String>, UserInfo)> {
        let mut after = current.cloned().unwrap_or_else(|| UserInfo {
            name: request.name.clone(),
            uid: request.uid.unwrap_or(0),
            gid: 0,
            group: request.name.clone(),
            groups: Vec::new(),
            comment: String::new(),
            home: if request.system {
                String::new()
            } else {
                format!("/home/{}", request.name)
            },
            shell: String::new(),
            system: request.system,
            locked: Some(true),
            password_set: Some(false),
        });
        let mut args = Vec::new();
        if let Some(c) = &request.comment
            && (current.is_none() || after.comment != *c)
        {
            args.extend(["--comment".to_owned(), c.clone()]);
            after.comment = c.clone();
        }
        if let Some(s) = &request.shell
            && (current.is_none() || after.shell != *s)
        {
            if !shell_allowed(s) {
                return Err(ProviderError::invalid(
                    "shell",
                    format!("{s} is not in /etc/shells"),
                ));
            }
            args.extend(["--shell".to_owned(), s.clone()]);
            after.shell = s.clone();
        }
        if let Some(groups) = &request.groups {
            let mut wanted = groups.clone();
            wanted.sort();
            wanted.dedup();
            for g in &wanted {
                if find_group(g).await?.is_none() {
                    return Err(ProviderError::invalid(
                        "groups",
                        format!("there is no group {g}"),
                    ));
                }
            }
            let mut have = after.groups.clone();
            have.sort();
            if current.is_none() || have != wanted {
                args.extend(["--groups".to_owned(), wanted.join(",")]);
                after.groups = wanted;
            }
        }
        Ok((args, after))
    }
}

async fn tool(program: &'static str, args: &[String]) -> ProviderResult<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_tool(program, &args, TOOL_TIMEOUT, None).await.map(drop)
}

impl UserProvider for ShadowUsers {
    fn list(&self, system: bool) -> BoxFuture<'_, ProviderResult<Users>> {
        Box::pin(async move {
            let mut all = blocking(read_users).await?;
            all.retain(|u| system || !u.system);
            all.sort_by_key(|u| u.uid);
            Ok(Users(all))
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<UserInfo>> {
        Box::pin(user(name))
    }

    fn add<'a>(&'a self, request: &'a UserAccount) -> BoxFuture<'a, ProviderResult<UserChange>> {
        Box::pin(async move {
            let before = find_user(&request.name).await?;
            if let (Some(b), Some(uid)) = (&before, request.uid)
                && b.uid != uid
            {
                return Err(ProviderError::invalid(
                    "uid",
                    format!("{} exists with uid {}", b.name, b.uid),
                ));
            }
            let (mut args, after) = self.settings_args(request, before.as_ref()).await?;
            let change = UserChange {
                name: request.name.clone(),
                changed: before.is_none() || !args.is_empty(),
                dry_run: request.dry_run,
                before: before.clone(),
                after: Some(after),
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            if before.is_some() {
                // There already: an add converges its settings.
                args.push(request.name.clone());
                tool("usermod", &args).await?;
            } else {
                if let Some(uid) = request.uid {
                    args.extend(["--uid".to_owned(), uid.to_string()]);
                }
                args.push(
                    if request.system {
                        "--system"
                    } else {
                        "--create-home"
                    }
                    .to_owned(),
                );
                args.push(request.name.clone());
                tool("useradd", &args).await?;
            }
            Ok(UserChange {
                after: Some(user(&request.name).await?),
                ..change
            })
        })
    }

    fn modify<'a>(&'a self, request: &'a UserAccount) -> BoxFuture<'a, ProviderResult<UserChange>> {
        Box::pin(async move {
            let before = user(&request.name).await?;
            let (mut args, after) = self.settings_args(request, Some(&before)).await?;
            let change = UserChange {
                name: request.name.clone(),
                changed: !args.is_empty(),
                dry_run: request.dry_run,
                before: Some(before),
                after: Some(after),
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            args.push(request.name.clone());
            tool("usermod", &args).await?;
            Ok(UserChange {
                after: Some(user(&request.name).await?),
                ..change
            })
        })
    }

    fn lock<'a>(
        &'a self,
        request: &'a UserRef,
        lock: bool,
    ) -> BoxFuture<'a, ProviderResult<UserChange>> {
        Box::pin(async move {
            let before = user(&request.name).await?;
            let Some(locked) = before.locked else {
                return Err(ProviderError::invalid(
                    "name",
                    format!("{} is not in /etc/shadow", request.name),
                ));
            };
            if !lock && before.password_set != Some(true) {
                return Err(ProviderError::invalid(
                    "name",
                    format!(
                        "{} has no password: unlocking would leave the account without one; set a password first",
                        request.name
                    ),
                ));
            }
            let mut after = before.clone();
            after.locked = Some(lock);
            let change = UserChange {
                name: request.name.clone(),
                changed: locked != lock,
                dry_run: request.dry_run,
                before: Some(before),
                after: Some(after),
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            let flag = if lock { "--lock" } else { "--unlock" };
            tool("usermod", &[flag.to_owned(), request.name.clone()]).await?;
            Ok(UserChange {
                after: Some(user(&request.name).await?),
                ..change
            })
        })
    }

    fn delete<'a>(&'a self, request: &'a UserDelete) -> BoxFuture<'a, ProviderResult<UserChange>> {
        Box::pin(async move {
            let before = find_user(&request.name).await?;
            if let Some(b) = &before
                && b.system
                && !request.force
            {
                return Err(ProviderError::invalid(
                    "force",
                    format!(
                        "{} is a system account (uid {}): deleting it needs force",
                        b.name, b.uid
                    ),
                ));
            }
            let change = UserChange {
                name: request.name.clone(),
                changed: before.is_some(),
                dry_run: request.dry_run,
                before,
                after: None,
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            let mut args = Vec::new();
            if request.remove_home {
                args.push("--remove".to_owned());
            }
            args.push(request.name.clone());
            tool("userdel", &args).await?;
            Ok(change)
        })
    }

    fn set_password<'a>(
        &'a self,
        request: &'a UserPassword,
    ) -> BoxFuture<'a, ProviderResult<UserChange>> {
        Box::pin(async move {
            // The API hashed any password given in clear; nothing else is taken.
            let Some(hash) = request.hash.as_deref() else {
                return Err(ProviderError::invalid("hash", "the job carries no hash"));
            };
            let before = user(&request.name).await?;
            let name = request.name.clone();
            let current = blocking(move || shadow_hash(&name)).await?;
            let mut after = before.clone();
            after.password_set = Some(true);
            let change = UserChange {
                name: request.name.clone(),
                changed: current.as_deref() != Some(hash),
                dry_run: request.dry_run,
                before: Some(before),
                after: Some(after),
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            // On standard input: a hash on a command line is any user's to read.
            let line = format!("{}:{hash}\n", request.name);
            run_tool(
                "chpasswd",
                &["--encrypted"],
                TOOL_TIMEOUT,
                Some(line.into_bytes()),
            )
            .await?;
            Ok(UserChange {
                after: Some(user(&request.name).await?),
                ..change
            })
        })
    }

    fn keys<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<SshKeys>> {
        Box::pin(async move {
            let u = user(name).await?;
            let text = match open_ssh_dir(&u, false)? {
                Some(ssh) => read_keys_file(&ssh, &u)?,
                None => String::new(),
            };
            Ok(SshKeys {
                user: u.name.clone(),
                path: format!("{}/.ssh/authorized_keys", u.home),
                keys: text.lines().filter_map(|l| parse_key(l).ok()).collect(),
            })
        })
    }

    fn change_key<'a>(
        &'a self,
        request: &'a UserKey,
        add: bool,
    ) -> BoxFuture<'a, ProviderResult<SshKeyChange>> {
        Box::pin(async move {
            let u = user(&request.name).await?;
            let path = format!("{}/.ssh/authorized_keys", u.home);
            let ssh = open_ssh_dir(&u, add && !request.dry_run)?;
            let text = match &ssh {
                Some(ssh) => read_keys_file(ssh, &u)?,
                None => String::new(),
            };
            let wanted = if request.key.starts_with("SHA256:") {
                if add {
                    return Err(ProviderError::invalid(
                        "key",
                        "an add takes the public key line, not its fingerprint",
                    ));
                }
                request.key.clone()
            } else {
                parse_key(&request.key)
                    .map_err(|why| ProviderError::invalid("key", why))?
                    .fingerprint
            };
            let matches = |l: &str| parse_key(l).is_ok_and(|k| k.fingerprint == wanted);
            let present = text.lines().find(|l| matches(l)).map(str::to_owned);
            let key = match (&present, add) {
                (Some(line), _) => {
                    parse_key(line).map_err(|why| ProviderError::invalid("key", why))?
                }
                (None, true) => {
                    parse_key(&request.key).map_err(|why| ProviderError::invalid("key", why))?
                }
                (None, false) => SshKey {
                    key_type: String::new(),
                    fingerprint: wanted.clone(),
                    comment: String::new(),
                    options: String::new(),
                },
            };
            let change = SshKeyChange {
                user: u.name.clone(),
                changed: present.is_some() != add,
                dry_run: request.dry_run,
                key,
                path,
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            let Some(ssh) = ssh else {
                return Ok(change);
            };
            let mut new: String = text
                .lines()
                .filter(|l| add || !matches(l))
                .flat_map(|l| [l, "\n"])
                .collect();
            if add {
                new.push_str(request.key.trim());
                new.push('\n');
            }
            write_keys_file(&ssh, &u, &new)?;
            Ok(change)
        })
    }

    fn groups(&self) -> BoxFuture<'_, ProviderResult<Groups>> {
        Box::pin(async move {
            let mut all = blocking(all_groups).await?;
            all.sort_by_key(|g| g.gid);
            Ok(Groups(all))
        })
    }

    fn group<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<GroupInfo>> {
        Box::pin(async move {
            find_group(name)
                .await?
                .ok_or_else(|| ProviderError::NotFound {
                    what: "group",
                    name: name.to_owned(),
                })
        })
    }

    fn add_group<'a>(
        &'a self,
        request: &'a GroupAdd,
    ) -> BoxFuture<'a, ProviderResult<GroupChange>> {
        Box::pin(async move {
            let before = find_group(&request.name).await?;
            if let (Some(b), Some(gid)) = (&before, request.gid)
                && b.gid != gid
            {
                return Err(ProviderError::invalid(
                    "gid",
                    format!("{} exists with gid {}", b.name, b.gid),
                ));
            }
            let change = GroupChange {
                name: request.name.clone(),
                changed: before.is_none(),
                dry_run: request.dry_run,
                after: Some(before.clone().unwrap_or(GroupInfo {
                    name: request.name.clone(),
                    gid: request.gid.unwrap_or(0),
                    members: Vec::new(),
                })),
                before,
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            let mut args = Vec::new();
            if let Some(gid) = request.gid {
                args.extend(["--gid".to_owned(), gid.to_string()]);
            }
            if request.system {
                args.push("--system".to_owned());
            }
            args.push(request.name.clone());
            tool("groupadd", &args).await?;
            Ok(GroupChange {
                after: find_group(&request.name).await?,
                ..change
            })
        })
    }

    fn delete_group<'a>(
        &'a self,
        request: &'a GroupRef,
    ) -> BoxFuture<'a, ProviderResult<GroupChange>> {
        Box::pin(async move {
            let before = find_group(&request.name).await?;
            if let Some(b) = &before
                && is_system(b.gid)
            {
                return Err(ProviderError::invalid(
                    "name",
                    format!(
                        "{} is a system group (gid {}); OSAPI deletes groups from gid {FIRST_REGULAR_ID} to {}",
                        b.name,
                        b.gid,
                        LAST_REGULAR_ID - 1
                    ),
                ));
            }
            let change = GroupChange {
                name: request.name.clone(),
                changed: before.is_some(),
                dry_run: request.dry_run,
                before,
                after: None,
            };
            if request.dry_run || !change.changed {
                return Ok(change);
            }
            tool("groupdel", std::slice::from_ref(&request.name)).await?;
            Ok(change)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ssh-keygen -t ed25519` output, and `ssh-keygen -lf` of it.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINQ1+mO8Y+zkDoDxC+UuDwcF6gvIM1zIojqqFdgnaSV7 alice@laptop";

    #[test]
    fn keys_parse_with_their_fingerprint() {
        let k = parse_key(ED25519).unwrap();
        assert_eq!(k.key_type, "ssh-ed25519");
        assert_eq!(k.comment, "alice@laptop");
        assert_eq!(
            k.fingerprint,
            "SHA256:v5G1wTUufHsPCX/e1XXyV3UQ1y0fl2jNJEr6Vq/4GtA"
        );
        let with_options = format!("from=\"10.0.0.0/8\",no-pty {ED25519}");
        let o = parse_key(&with_options).unwrap();
        assert_eq!(o.options, "from=\"10.0.0.0/8\",no-pty");
        assert_eq!(o.fingerprint, k.fingerprint);
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 not-base64!",
            // An RSA blob declared as ed25519.
            "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn root_reads_through_nss() {
        let root = read_user("root").unwrap();
        assert_eq!((root.uid, root.gid, root.group.as_str()), (0, 0, "root"));
        assert!(root.system);
        assert_eq!(read_users().iter().find(|u| u.uid == 0), Some(&root));
        assert!(all_groups().iter().any(|g| g.name == "root" && g.gid == 0));
        assert!(read_user("osapi-no-such-user").is_none());
    }
}
