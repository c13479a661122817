//! Files that must appear whole, with their mode from the first byte:
//! credentials, certificates, keys, the token revocation list. Written aside
//! and synced, then renamed over the old one ([`replace`]) or linked into a
//! place that must be empty ([`create`]), so a reader never sees half a file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
    use std::os::unix::fs::PermissionsExt;

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
