//! The generated NATS credentials: one nkey per role, made on first start.
//!
//! With `nats.server.auth.type: generated` (the default) nobody configures a
//! NATS secret. The first `osapi nats server start` (or the package's
//! `postinst`, as root) writes, in the credentials directory:
//!
//! - `<role>.nkey`: the role's nkey seed, mode 0600, readable only by its
//!   owner (root in the packages, which hand each seed to its unit as a
//!   systemd credential);
//! - `<role>.pub`: its public key, mode 0644, which is all the server needs;
//! - `job-signing.key` / `job-signing.pub`: the API's Ed25519 job signing key
//!   (0600) and the public half agents verify jobs with (0644).
//!
//! The server then knows each role by its public key and gives it only that
//! role's subjects ([`super::permissions`]). No secret ever goes into the
//! configuration, a command line or the nats-server configuration file.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::job::signature::JobSigner;

/// Who connects to the bus. Each role has its own credential and permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The REST API: creates and announces jobs, reads results, writes audit.
    Api,
    /// An agent: consumes jobs and writes events, results and its heartbeat.
    Agent,
    /// The supervisor's own connection: provisions the stream and buckets.
    Admin,
    /// The join credential an agent on another host holds until it is
    /// accepted: it may only file an enrollment request ([`crate::enrollment`]).
    Enroll,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Api, Role::Agent, Role::Admin, Role::Enroll];

    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Enroll => "enroll",
        }
    }

    /// The prefix of this role's reply subjects: a role may subscribe only to
    /// its own, so it never reads another role's replies.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.name())
    }

    /// The seed file of this role in `dir`.
    pub fn seed_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.nkey", self.name()))
    }

    fn public_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pub", self.name()))
    }
}

/// The API's job signing key (Ed25519 seed, base64, 0600): in the packages
/// only the API gets it, as the systemd credential of the same name.
pub const JOB_SIGNING_KEY: &str = "job-signing.key";
/// Its public half (0644), which agents verify every job with.
pub const JOB_VERIFY_KEY: &str = "job-signing.pub";

/// Make the job signing key pair in `dir` if it is missing.
pub fn ensure_job_key(dir: &Path) -> Result<(), CredentialsError> {
    create_dir(dir)?;
    ensure_pair(
        &dir.join(JOB_SIGNING_KEY),
        &dir.join(JOB_VERIFY_KEY),
        || crate::job::signature::generate_seed().ok_or(CredentialsError::NoRandomness),
        |seed| Ok(JobSigner::from_file(seed)?.public_key()),
    )
    .map(drop)
}

/// A generated credential could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot {doing} {}: {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} does not hold a user nkey seed", path.display())]
    BadSeed { path: PathBuf },
    #[error("{} does not hold a public user nkey", path.display())]
    BadPublicKey { path: PathBuf },
    #[error("the system has no randomness to make a key with")]
    NoRandomness,
    #[error(transparent)]
    JobKey(#[from] crate::job::signature::SignatureError),
}

fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError {
    let path = path.to_path_buf();
    move |source| CredentialsError::Io {
        doing,
        path,
        source,
    }
}

/// Make every role's credential that is missing in `dir`, and the job
/// signing key, and return each role's public key. Safe to run concurrently
/// and again: an existing seed is never replaced, so a rotation is deleting
/// the files and restarting.
pub fn ensure(dir: &Path) -> Result<Vec<(Role, String)>, CredentialsError> {
    ensure_job_key(dir)?;
    Role::ALL
        .into_iter()
        .map(|role| {
            let public = ensure_pair(
                &role.seed_file(dir),
                &role.public_file(dir),
                || {
                    nkeys::KeyPair::new_user()
                        .seed()
                        .map_err(|_| CredentialsError::NoRandomness)
                },
                |seed| Ok(read_seed(seed)?.public_key()),
            )?;
            if !crate::natsd::is_user_nkey(&public) {
                return Err(CredentialsError::BadPublicKey {
                    path: role.public_file(dir),
                });
            }
            Ok((role, public))
        })
        .collect()
}

/// 0755: the server's user reads the public keys; the seeds are 0600.
fn create_dir(dir: &Path) -> Result<(), CredentialsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io("create the credentials directory", dir))
}

/// A secret at `seed_path` (made by `make` when missing, 0600) and its
/// public half at `public_path` (0644), which is derived from the secret
/// again when it is missing: only the secret's owner can do that, so the
/// server's user, which reads only public halves, never needs the secret.
fn ensure_pair(
    seed_path: &Path,
    public_path: &Path,
    make: impl FnOnce() -> Result<String, CredentialsError>,
    public_of: impl FnOnce(&Path) -> Result<String, CredentialsError>,
) -> Result<String, CredentialsError> {
    if !seed_path.exists() {
        let made = crate::files::create(seed_path, format!("{}\n", make()?).as_bytes(), 0o600)
            .map_err(io("write", seed_path))?;
        if made {
            // A public half left from an earlier secret is not this one's.
            let _ = std::fs::remove_file(public_path);
        }
    }
    match std::fs::read_to_string(public_path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let public = public_of(seed_path)?;
            crate::files::replace(public_path, format!("{public}\n").as_bytes(), 0o644)
                .map_err(io("write", public_path))?;
            Ok(public)
        }
        Err(e) => Err(io("read", public_path)(e)),
    }
}

/// An enrolling agent's own key pair ([`crate::enrollment`]), made at
/// `path` (0600) on first use. Deleting the file makes the agent a new one,
/// to be accepted again.
pub fn ensure_identity(path: &Path) -> Result<nkeys::KeyPair, CredentialsError> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        let seed = nkeys::KeyPair::new_user()
            .seed()
            .map_err(|_| CredentialsError::NoRandomness)?;
        crate::files::create(path, format!("{seed}\n").as_bytes(), 0o600)
            .map_err(io("write", path))?;
    }
    read_seed(path)
}

/// The key pair in a seed file.
pub fn read_seed(path: &Path) -> Result<nkeys::KeyPair, CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(io("read", path))?;
    nkeys::KeyPair::from_seed(text.trim()).map_err(|_| CredentialsError::BadSeed {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_with_private_seeds_and_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let first = ensure(&creds).unwrap();
        assert_eq!(first.len(), 4);
        for (role, public) in &first {
            let seed = role.seed_file(&creds);
            let mode = std::fs::metadata(&seed).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{seed:?}");
            assert_eq!(&read_seed(&seed).unwrap().public_key(), public);
            let pubm = std::fs::metadata(role.public_file(&creds)).unwrap();
            assert_eq!(pubm.permissions().mode() & 0o777, 0o644);
        }
        let keys: std::collections::HashSet<_> = first.iter().map(|(_, k)| k).collect();
        assert_eq!(keys.len(), 4, "one key per role");
        // Again: nothing replaced.
        assert_eq!(ensure(&creds).unwrap(), first);
        // A lost public key file comes back from the seed.
        std::fs::remove_file(Role::Agent.public_file(&creds)).unwrap();
        assert_eq!(ensure(&creds).unwrap(), first);
        // Only the credentials are left behind, no temporary files.
        let mut names: Vec<_> = std::fs::read_dir(&creds)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "admin.nkey",
                "admin.pub",
                "agent.nkey",
                "agent.pub",
                "api.nkey",
                "api.pub",
                "enroll.nkey",
                "enroll.pub",
                "job-signing.key",
                "job-signing.pub"
            ]
        );
        let key = std::fs::metadata(creds.join(JOB_SIGNING_KEY)).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_public_key_is_an_error_not_a_silent_open_door() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path()).unwrap();
        std::fs::write(Role::Api.public_file(dir.path()), "junk\n").unwrap();
        assert!(matches!(
            ensure(dir.path()),
            Err(CredentialsError::BadPublicKey { .. })
        ));
    }
}
