//! Files that must appear whole, with their mode from the first byte:
//! credentials, certificates, keys, the token revocation list. Written aside
//! and synced, then renamed over the old one ([`replace`]) or linked into a
//! place that must be empty ([`create`]), so a reader never sees half a file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens the directory `dir` (absolute) for root to write into on someone
/// else's behalf: component by component with `O_NOFOLLOW`, following a
/// symbolic link only when root owns it (the distribution's `/lib` →
/// `usr/lib`), never one another user could have planted. A link of
/// anyone else's fails with `PermissionDenied`.
pub fn open_dir_without_planted_links(dir: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;

    use nix::fcntl::{AtFlags, OFlag, open, openat, readlinkat};
    use nix::sys::stat::{Mode, SFlag, fstatat};

    const MAX_LINKS: usize = 40;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let parts = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut current = open("/", flags, Mode::empty())?;
    let mut pending: VecDeque<OsString> = parts(dir).into();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        match openat(&current, name.as_os_str(), flags, Mode::empty()) {
            Ok(fd) => current = fd,
            Err(nix::Error::ELOOP | nix::Error::ENOTDIR) => {
                let st = fstatat(&current, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                let is_link =
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK;
                if !is_link {
                    return Err(nix::Error::ENOTDIR.into());
                }
                if st.st_uid != 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "{} in {} is a link of uid {}'s, not followed",
                            name.to_string_lossy(),
                            dir.display(),
                            st.st_uid
                        ),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(nix::Error::ELOOP.into());
                }
                let target = std::path::PathBuf::from(readlinkat(&current, name.as_os_str())?);
                if target.is_absolute() {
                    current = open("/", flags, Mode::empty())?;
                }
                for part in parts(&target).into_iter().rev() {
                    pending.push_front(part);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(current)
}

/// The agent's state directory: `$STATE_DIRECTORY` (systemd sets it from
/// `StateDirectory=`; the first when it lists several), else
/// `/var/lib/osapi/agent`.
pub fn agent_state_dir() -> std::path::PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|dirs| {
            dirs.to_str()
                .and_then(|d| d.split(':').next())
                .map(std::path::PathBuf::from)
        })
        .unwrap_or_else(|| std::path::PathBuf::from("/var/lib/osapi/agent"))
}

/// Replace `path` with `bytes`, created with `mode`.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    put_aside(path, bytes, mode, |tmp| std::fs::rename(tmp, path))
}

/// Create `path` with `bytes` and `mode` unless it exists: `Ok(false)` when
/// it did (then it is left as it was). Of two processes racing, one creates
/// it and the other finds it, whole.
pub fn create(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    let mut created = true;
    put_aside(path, bytes, mode, |tmp| {
        // A link, unlike a rename, never replaces what is there.
        match std::fs::hard_link(tmp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                created = false;
                Ok(())
            }
            linked => linked,
        }
    })?;
    Ok(created)
}

/// Write `bytes` to a file of its own beside `path`, synced, hand it to
/// `place`, and remove what is left of it.
fn put_aside(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    place: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| place(&tmp));
    // After a rename nothing is left; after a link (or a failure) the aside copy.
    let _ = std::fs::remove_file(&tmp);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_nothing_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        replace(&path, b"one", 0o600).unwrap();
        replace(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_roots_links_are_followed_to_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("roots")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("relative")).unwrap();
        let planted = dir.path().join("planted");
        std::os::unix::fs::symlink(&real, &planted).unwrap();
        // As if user nobody had made it.
        std::os::unix::fs::lchown(&planted, Some(65534), Some(65534)).unwrap();
        let ino = |fd: std::os::fd::OwnedFd| std::fs::File::from(fd).metadata().unwrap().ino();
        let real_ino = std::fs::metadata(&real).unwrap().ino();
        for followed in ["roots", "relative", "real"] {
            let fd = open_dir_without_planted_links(&dir.path().join(followed)).unwrap();
            assert_eq!(ino(fd), real_ino, "{followed}");
        }
        let e = open_dir_without_planted_links(&planted.join("deeper")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    }

    #[test]
    fn create_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed");
        assert!(create(&path, b"first", 0o600).unwrap());
        assert!(!create(&path, b"second", 0o600).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
