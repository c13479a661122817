//! Deploying stored files to this host, and telling when they drifted
//! (`file.deploy`, `file.status`, `file.undeploy`).
//!
//! The file comes from the bus's object store through a [`FileSource`] (the
//! agent attaches it once connected, so this module knows no transport), is
//! rendered when asked (minijinja over the host's facts, with fuel so a
//! template cannot loop for ever), and is written whole: a new file beside
//! the target (`O_EXCL`, the mode and owner asked for, synced) renamed over
//! it, so a reader sees the old file or the new one. The same bytes, mode
//! and owner again are `changed: false`.
//!
//! What was deployed is recorded in the agent's state directory:
//! `files.json` (path → name, SHA-256, mode, owner) and, for diffs, a copy
//! of each deployed text under `files/<sha256>` (content-addressed, at most
//! 256 KiB each). A status compares each recorded path with its record:
//! `in-sync`, `drifted` (with a diff when both sides are text), or
//! `missing`. An undeploy removes the file and its record.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{BoxFuture, ProviderError, ProviderResult};
use crate::job::{FileDeploy, FileUndeploy};

/// How much a template may compute (minijinja fuel: roughly instructions).
const TEMPLATE_FUEL: u64 = 1_000_000;
/// Texts up to this size are kept for diffs.
const MAX_DIFF_BYTES: usize = 256 * 1024;

/// A stored file, fetched.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lowercase hex.
    pub sha256: String,
}

/// Where stored files come from (the object store, for the agent).
pub trait FileSource: Send + Sync {
    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<Fetched>>;
}

/// A file on the host, as a deploy or a status sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FileState {
    pub sha256: String,
    pub size: u64,
    /// Octal, e.g. `0644`.
    pub mode: String,
    pub owner: String,
    pub group: String,
}

/// What a deploy did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FileDeployed {
    pub name: String,
    pub path: String,
    pub changed: bool,
    pub dry_run: bool,
    /// SHA-256 of the stored file (before rendering).
    pub source_sha256: String,
    /// The file before; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<FileState>,
    pub after: FileState,
    /// Before → after, when both are text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diff: String,
}

/// Whether a deployed file is as it was deployed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Drift {
    InSync,
    Drifted,
    Missing,
}

/// One deployed copy of a file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FileStatus {
    pub path: String,
    pub state: Drift,
    /// What was deployed.
    pub expected: FileState,
    /// What is there now; absent when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<FileState>,
    /// Deployed → now, when drifted and both are text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diff: String,
}

/// The result of `file.status`: every copy of the file on this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FileStatuses {
    pub name: String,
    pub files: Vec<FileStatus>,
}

/// What an undeploy removed, or would.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FileUndeployed {
    pub name: String,
    pub changed: bool,
    pub dry_run: bool,
    pub removed: Vec<String>,
}

/// Deploys stored files and reports drift.
pub trait FileProvider: Send + Sync {
    fn deploy<'a>(&'a self, request: &'a FileDeploy)
    -> BoxFuture<'a, ProviderResult<FileDeployed>>;
    fn status<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<FileStatuses>>;
    fn undeploy<'a>(
        &'a self,
        request: &'a FileUndeploy,
    ) -> BoxFuture<'a, ProviderResult<FileUndeployed>>;
}

/// The source and the facts a template sees, given once the agent is
/// connected.
#[derive(Default)]
pub struct SourceSlot(OnceLock<(Arc<dyn FileSource>, serde_json::Value)>);

impl SourceSlot {
    /// Attach the source and the host's facts; the first attach wins.
    pub fn attach(&self, source: Arc<dyn FileSource>, facts: serde_json::Value) {
        let _ = self.0.set((source, facts));
    }

    /// The source and the facts, once attached.
    pub fn attached(&self) -> Option<(Arc<dyn FileSource>, serde_json::Value)> {
        self.0.get().cloned()
    }
}

/// One recorded deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Record {
    name: String,
    state: FileState,
}

/// Deploys to this host's filesystem, recording in `state_dir`.
pub struct DeployedFiles {
    source: Arc<SourceSlot>,
    state_dir: PathBuf,
    /// One change to the records at a time.
    records: Mutex<()>,
}

impl DeployedFiles {
    pub fn new(source: Arc<SourceSlot>, state_dir: PathBuf) -> Self {
        DeployedFiles {
            source,
            state_dir,
            records: Mutex::new(()),
        }
    }

    fn records_path(&self) -> PathBuf {
        self.state_dir.join("files.json")
    }

    fn read_records(&self) -> ProviderResult<BTreeMap<String, Record>> {
        match super::read_optional(&self.records_path())? {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                ProviderError::parse(self.records_path().display().to_string(), e.to_string())
            }),
        }
    }

    fn write_records(&self, records: &BTreeMap<String, Record>) -> ProviderResult<()> {
        let path = self.records_path();
        let text = serde_json::to_vec_pretty(records)
            .map_err(|e| ProviderError::parse(path.display().to_string(), e.to_string()))?;
        std::fs::create_dir_all(&self.state_dir)
            .and_then(|()| crate::files::replace(&path, &text, 0o600))
            .map_err(|e| ProviderError::io(format!("writing {}", path.display()), e))
    }

    /// A deployed text, kept for diffs.
    fn keep_copy(&self, sha256: &str, bytes: &[u8]) {
        if bytes.len() <= MAX_DIFF_BYTES && std::str::from_utf8(bytes).is_ok() {
            let dir = self.state_dir.join("files");
            let _ = std::fs::create_dir_all(&dir)
                .and_then(|()| crate::files::replace(&dir.join(sha256), bytes, 0o600));
        }
    }

    fn copy_of(&self, sha256: &str) -> Option<String> {
        std::fs::read_to_string(self.state_dir.join("files").join(sha256)).ok()
    }
}

/// The directory of `path`, opened without links another user could have
/// planted ([`crate::files::open_dir_without_planted_links`]), and the file's
/// name in it; `None` when the directory is not there.
fn target_dir(path: &Path) -> ProviderResult<Option<(OwnedFd, OsString)>> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let Some(name) = path.file_name() else {
        return Err(ProviderError::invalid("path", "names no file"));
    };
    match crate::files::open_dir_without_planted_links(dir) {
        Ok(fd) => Ok(Some((fd, name.to_owned()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(ProviderError::invalid("path", e.to_string()))
        }
        Err(e) => Err(ProviderError::io(format!("opening {}", dir.display()), e)),
    }
}

/// The file at `path` now: its bytes and state, `None` when there is none.
/// Opened without following a link or blocking on a FIFO, and read only
/// when it is a regular file.
fn read_file(path: &Path) -> ProviderResult<Option<(Vec<u8>, FileState)>> {
    let Some((dir, name)) = target_dir(path)? else {
        return Ok(None);
    };
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let failed = |e: nix::Error| ProviderError::io(format!("reading {}", path.display()), e.into());
    let fd = match openat(&dir, name.as_os_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(None),
        Err(nix::Error::ELOOP) => {
            return Err(ProviderError::invalid(
                "path",
                format!("{} is a link, not a regular file", path.display()),
            ));
        }
        Err(e) => return Err(failed(e)),
    };
    let mut file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| ProviderError::io(format!("reading {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(ProviderError::invalid(
            "path",
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)
        .map_err(|e| ProviderError::io(format!("reading {}", path.display()), e))?;
    let state = FileState {
        sha256: sha256_hex(&bytes),
        size: meta.len(),
        mode: format!("{:04o}", meta.permissions().mode() & 0o7777),
        owner: user_name(meta.uid()),
        group: group_name(meta.gid()),
    };
    Ok(Some((bytes, state)))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// The uid and gid of `owner` and `group` (root's, and the owner's group,
/// by default).
fn ids(owner: Option<&str>, group: Option<&str>) -> ProviderResult<(u32, u32)> {
    let user = nix::unistd::User::from_name(owner.unwrap_or("root"))
        .ok()
        .flatten()
        .ok_or_else(|| {
            ProviderError::invalid(
                "owner",
                format!("there is no user {}", owner.unwrap_or("root")),
            )
        })?;
    let gid = match group {
        None => user.gid.as_raw(),
        Some(g) => nix::unistd::Group::from_name(g)
            .ok()
            .flatten()
            .ok_or_else(|| ProviderError::invalid("group", format!("there is no group {g}")))?
            .gid
            .as_raw(),
    };
    Ok((user.uid.as_raw(), gid))
}

/// `text` rendered over `facts` (as `host`), strict about undefined names.
fn render(text: &[u8], facts: &serde_json::Value) -> ProviderResult<Vec<u8>> {
    let source = std::str::from_utf8(text)
        .map_err(|_| ProviderError::invalid("template", "a template must be UTF-8 text"))?;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    let failed = |e: minijinja::Error| ProviderError::invalid("template", e.to_string());
    // A config file ends in a newline; Jinja's default drops it.
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .map_err(failed)?,
    );
    env.add_template("file", source).map_err(failed)?;
    let template = env.get_template("file").map_err(failed)?;
    template
        .render(minijinja::context! { host => minijinja::value::Serde(facts) })
        .map(String::into_bytes)
        .map_err(failed)
}

/// Replaces `path` with `bytes`, owned and moded as asked, from the first
/// byte: a new file beside it (in the directory opened without planted
/// links), synced, renamed over it.
fn write_whole(path: &Path, bytes: &[u8], mode: u32, uid: u32, gid: u32) -> ProviderResult<()> {
    let failed = |e| ProviderError::io(format!("writing {}", path.display()), e);
    let Some((dir, name)) = target_dir(path)? else {
        return Err(ProviderError::invalid(
            "path",
            format!(
                "{} is not a directory on this host",
                path.parent().unwrap_or(Path::new("/")).display()
            ),
        ));
    };
    let tmp = format!(".{}.osapi-{}", name.to_string_lossy(), std::process::id());
    let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(&dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| failed(e.into()))?;
    let mut file = std::fs::File::from(fd);
    let written = file
        .write_all(bytes)
        .and_then(|()| std::os::unix::fs::fchown(&file, Some(uid), Some(gid)))
        // After the chown, which clears set-id bits.
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all())
        .and_then(|()| renameat(&dir, tmp.as_str(), &dir, name.as_os_str()).map_err(Into::into));
    if written.is_err() {
        let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    written.map_err(failed)
}

/// Removes the file at `path` (the link itself if one was put there); a
/// missing one is fine.
fn remove(path: &Path) -> ProviderResult<()> {
    let Some((dir, name)) = target_dir(path)? else {
        return Ok(());
    };
    match unlinkat(&dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(ProviderError::io(
            format!("removing {}", path.display()),
            e.into(),
        )),
    }
}

fn text_diff(old: &[u8], new: &[u8]) -> String {
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(a), Ok(b)) if a.len() <= MAX_DIFF_BYTES && b.len() <= MAX_DIFF_BYTES => {
            crate::diff::unified(a, b)
        }
        _ => String::new(),
    }
}

impl FileProvider for DeployedFiles {
    fn deploy<'a>(
        &'a self,
        request: &'a FileDeploy,
    ) -> BoxFuture<'a, ProviderResult<FileDeployed>> {
        Box::pin(async move {
            let Some((source, facts)) = self.source.0.get() else {
                return Err(ProviderError::Unavailable {
                    service: "the file store",
                    detail: "the agent is not connected to it yet".to_owned(),
                });
            };
            let fetched = source.fetch(&request.name).await?;
            let bytes = if request.template {
                render(&fetched.bytes, facts)?
            } else {
                fetched.bytes
            };
            let mode = request.mode_bits()?;
            let (uid, gid) = ids(request.owner.as_deref(), request.group.as_deref())?;
            let path = PathBuf::from(&request.path);
            let before = read_file(&path)?;
            let after = FileState {
                sha256: sha256_hex(&bytes),
                size: bytes.len() as u64,
                mode: format!("{mode:04o}"),
                owner: user_name(uid),
                group: group_name(gid),
            };
            let change = FileDeployed {
                name: request.name.clone(),
                path: request.path.clone(),
                changed: before.as_ref().is_none_or(|(_, state)| *state != after),
                dry_run: request.dry_run,
                source_sha256: fetched.sha256,
                diff: before
                    .as_ref()
                    .map_or_else(|| text_diff(b"", &bytes), |(old, _)| text_diff(old, &bytes)),
                before: before.map(|(_, state)| state),
                after,
            };
            if request.dry_run {
                return Ok(change);
            }
            let _one = self.records.lock();
            if change.changed {
                write_whole(&path, &bytes, mode, uid, gid)?;
            }
            // Recorded even when unchanged: the file is now this name's.
            self.keep_copy(&change.after.sha256, &bytes);
            let mut records = self.read_records()?;
            records.insert(
                request.path.clone(),
                Record {
                    name: request.name.clone(),
                    state: change.after.clone(),
                },
            );
            self.write_records(&records)?;
            Ok(change)
        })
    }

    fn status<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<FileStatuses>> {
        Box::pin(async move {
            let records = self.read_records()?;
            let mut files = Vec::new();
            for (path, record) in records.iter().filter(|(_, r)| r.name == name) {
                let now = match read_file(Path::new(path)) {
                    Ok(now) => now,
                    // A directory (or worse) where the file was: drifted.
                    Err(ProviderError::Invalid(_)) => Some((
                        Vec::new(),
                        FileState {
                            sha256: String::new(),
                            size: 0,
                            mode: String::new(),
                            owner: String::new(),
                            group: String::new(),
                        },
                    )),
                    Err(e) => return Err(e),
                };
                let (state, diff) = match &now {
                    None => (Drift::Missing, String::new()),
                    Some((_, actual)) if *actual == record.state => (Drift::InSync, String::new()),
                    Some((bytes, _)) => (
                        Drift::Drifted,
                        self.copy_of(&record.state.sha256)
                            .map(|expected| text_diff(expected.as_bytes(), bytes))
                            .unwrap_or_default(),
                    ),
                };
                files.push(FileStatus {
                    path: path.clone(),
                    state,
                    expected: record.state.clone(),
                    actual: now.map(|(_, s)| s),
                    diff,
                });
            }
            Ok(FileStatuses {
                name: name.to_owned(),
                files,
            })
        })
    }

    fn undeploy<'a>(
        &'a self,
        request: &'a FileUndeploy,
    ) -> BoxFuture<'a, ProviderResult<FileUndeployed>> {
        Box::pin(async move {
            let _one = self.records.lock();
            let mut records = self.read_records()?;
            let paths: Vec<String> = records
                .iter()
                .filter(|(p, r)| {
                    r.name == request.name && request.path.as_ref().is_none_or(|want| want == *p)
                })
                .map(|(p, _)| p.clone())
                .collect();
            let result = FileUndeployed {
                name: request.name.clone(),
                changed: !paths.is_empty(),
                dry_run: request.dry_run,
                removed: paths.clone(),
            };
            if request.dry_run || paths.is_empty() {
                return Ok(result);
            }
            for path in &paths {
                remove(Path::new(path))?;
                records.remove(path);
            }
            self.write_records(&records)?;
            Ok(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Stored(&'static str);

    impl FileSource for Stored {
        fn fetch<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, ProviderResult<Fetched>> {
            let bytes = self.0.as_bytes().to_vec();
            Box::pin(async move {
                Ok(Fetched {
                    sha256: sha256_hex(&bytes),
                    bytes,
                })
            })
        }
    }

    fn deployer(dir: &Path, text: &'static str) -> DeployedFiles {
        let slot = Arc::new(SourceSlot::default());
        slot.attach(
            Arc::new(Stored(text)),
            serde_json::json!({"hostname": "web-01", "labels": {"role": "web"}}),
        );
        DeployedFiles::new(slot, dir.join("state"))
    }

    fn deploy(path: &Path, template: bool, dry_run: bool) -> FileDeploy {
        FileDeploy {
            name: "motd".into(),
            path: path.display().to_string(),
            mode: Some("0640".into()),
            owner: None,
            group: None,
            template,
            dry_run,
        }
    }

    #[tokio::test]
    async fn deploy_again_drift_and_undeploy() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("motd");
        let files = deployer(
            dir.path(),
            "welcome to {{ host.hostname }} ({{ host.labels.role }})\n",
        );

        let dry = files.deploy(&deploy(&target, true, true)).await.unwrap();
        assert!(dry.changed && !target.exists());
        assert!(
            dry.diff.contains("+welcome to web-01 (web)"),
            "{}",
            dry.diff
        );

        let done = files.deploy(&deploy(&target, true, false)).await.unwrap();
        assert!(done.changed);
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "welcome to web-01 (web)\n"
        );
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let again = files.deploy(&deploy(&target, true, false)).await.unwrap();
        assert!(!again.changed);

        let status = files.status("motd").await.unwrap();
        assert_eq!(status.files.len(), 1);
        assert_eq!(status.files[0].state, Drift::InSync);
        std::fs::write(&target, "edited by hand\n").unwrap();
        let status = files.status("motd").await.unwrap();
        assert_eq!(status.files[0].state, Drift::Drifted);
        assert!(
            status.files[0].diff.contains("+edited by hand"),
            "{}",
            status.files[0].diff
        );
        std::fs::remove_file(&target).unwrap();
        assert_eq!(
            files.status("motd").await.unwrap().files[0].state,
            Drift::Missing
        );

        let undeploy = FileUndeploy {
            name: "motd".into(),
            path: None,
            dry_run: false,
        };
        files.deploy(&deploy(&target, true, false)).await.unwrap();
        let gone = files.undeploy(&undeploy).await.unwrap();
        assert_eq!(gone.removed, vec![target.display().to_string()]);
        assert!(!target.exists());
        assert!(files.status("motd").await.unwrap().files.is_empty());
        assert!(!files.undeploy(&undeploy).await.unwrap().changed);
    }

    #[tokio::test]
    async fn templates_are_strict_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x");
        for bad in [
            "{{ host.nope.deeper }}",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{{ unclosed",
        ] {
            let files = deployer(dir.path(), bad);
            let e = files
                .deploy(&deploy(&target, true, false))
                .await
                .unwrap_err();
            assert!(
                matches!(&e, ProviderError::Invalid(i) if i.field == "template"),
                "{bad}: {e}"
            );
        }
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn a_directory_link_of_another_user_s_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim_dir = dir.path().join("etc");
        std::fs::create_dir(&victim_dir).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let planted = home.join("conf");
        std::os::unix::fs::symlink(&victim_dir, &planted).unwrap();
        std::os::unix::fs::lchown(&planted, Some(65534), Some(65534)).unwrap();
        let files = deployer(dir.path(), "new\n");
        let e = files
            .deploy(&deploy(&planted.join("motd"), false, false))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::Invalid(i) if i.field == "path"),
            "{e}"
        );
        assert!(!victim_dir.join("motd").exists());
    }

    #[tokio::test]
    async fn a_link_at_the_target_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me\n").unwrap();
        let target = dir.path().join("motd");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        let files = deployer(dir.path(), "new\n");
        let e = files
            .deploy(&deploy(&target, false, false))
            .await
            .unwrap_err();
        // A link is not a regular file: refused, the link and its victim as they were.
        assert!(
            matches!(&e, ProviderError::Invalid(i) if i.field == "path"),
            "{e}"
        );
        assert!(
            std::fs::symlink_metadata(&target)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    }
}
