//! Revoked tokens: a list the API consults on every request, so a leaked or
//! retired token stops working at once rather than at its expiry.
//!
//! The list is a file of JSON lines (`api.server.security.revocation_file`),
//! written by `osapi token revoke` as root and read by the API (it holds no
//! secret: a token is named by its SHA-256, never by itself):
//!
//! - `{"token_sha256": "<hex>", "exp": <unix>}`: that one token;
//! - `{"subject": "<sub>", "before": <unix>}`: every token of that subject
//!   issued before the time (the subject's new tokens work).
//!
//! The API looks at the file's modification time and size on each request and
//! reads it again when they change. A file that cannot be read keeps the list
//! last read (with a warning), so a revocation is never silently undone.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::token::Claims;

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Revocation {
    Token { token_sha256: String, exp: i64 },
    Subject { subject: String, before: i64 },
}

impl Revocation {
    /// The revocation of one token, which needs to be kept only until `exp`.
    pub fn token(token: &str, exp: i64) -> Self {
        Revocation::Token {
            token_sha256: sha256_hex(token),
            exp,
        }
    }

    /// Still needed at `now`: a token entry past its token's expiry is not.
    fn live(&self, now: i64) -> bool {
        match self {
            Revocation::Token { exp, .. } => *exp >= now,
            Revocation::Subject { .. } => true,
        }
    }
}

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Default)]
struct Loaded {
    /// Modification time and size of the file read; `None`: no file.
    stamp: Option<(SystemTime, u64)>,
    tokens: HashSet<String>,
    subjects: HashMap<String, i64>,
}

/// The API's view of the file.
pub struct RevocationList {
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

impl RevocationList {
    /// The list in `path`; `None` revokes nothing (tests, tools).
    pub fn new(path: Option<PathBuf>) -> Self {
        RevocationList {
            path,
            loaded: Mutex::default(),
        }
    }

    /// Whether `token` (with its verified `claims`) has been revoked.
    pub fn is_revoked(&self, token: &str, claims: &Claims) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let Ok(mut loaded) = self.loaded.lock() else {
            // A poisoned lock: refuse rather than let a revoked token through.
            return true;
        };
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp != loaded.stamp {
            match read(path) {
                Ok(entries) => {
                    *loaded = Loaded {
                        stamp,
                        tokens: HashSet::new(),
                        subjects: HashMap::new(),
                    };
                    for e in entries {
                        match e {
                            Revocation::Token { token_sha256, .. } => {
                                loaded.tokens.insert(token_sha256);
                            }
                            Revocation::Subject { subject, before } => {
                                let b = loaded.subjects.entry(subject).or_insert(before);
                                *b = (*b).max(before);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the token revocation list; keeping the one read before");
                }
            }
        }
        loaded
            .subjects
            .get(&claims.sub)
            .is_some_and(|before| claims.iat < *before)
            || (!loaded.tokens.is_empty() && loaded.tokens.contains(&sha256_hex(token)))
    }
}

/// The entries of the file; none when there is no file.
pub fn read(path: &Path) -> std::io::Result<Vec<Revocation>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
}

/// Add `entry` to the file at `path`, dropping entries no longer needed at
/// `now`; written aside and renamed into place (0644), so the API never reads
/// half a file.
pub fn add(path: &Path, entry: Revocation, now: i64) -> std::io::Result<()> {
    let mut entries: Vec<Revocation> = read(path)?.into_iter().filter(|e| e.live(now)).collect();
    if !entries.contains(&entry) {
        entries.push(entry);
    }
    let mut text =
        String::from("# Revoked OSAPI tokens (osapi token revoke); one JSON object a line.\n");
    for e in &entries {
        text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    crate::files::replace(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, iat: i64) -> Claims {
        Claims {
            sub: sub.into(),
            roles: vec!["admin".into()],
            permissions: None,
            iat,
            exp: iat + 3600,
            iss: "osapi".into(),
        }
    }

    #[test]
    fn tokens_and_subjects_are_revoked_and_new_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked");
        let list = RevocationList::new(Some(path.clone()));
        assert!(!list.is_revoked("t1", &claims("alice", 100)), "no file");
        add(&path, Revocation::token("t1", 5000), 1000).unwrap();
        assert!(list.is_revoked("t1", &claims("alice", 100)));
        assert!(!list.is_revoked("t2", &claims("alice", 100)));
        add(
            &path,
            Revocation::Subject {
                subject: "bob".into(),
                before: 2000,
            },
            1000,
        )
        .unwrap();
        assert!(list.is_revoked("t3", &claims("bob", 1999)));
        assert!(!list.is_revoked("t4", &claims("bob", 2000)), "issued after");
        // Entries past their token's expiry are dropped on the next write.
        add(&path, Revocation::token("t9", 9000), 6000).unwrap();
        let kept = read(&path).unwrap();
        assert!(!kept.contains(&Revocation::token("t1", 5000)));
        assert_eq!(kept.len(), 2);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn an_unreadable_file_keeps_what_was_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked");
        let list = RevocationList::new(Some(path.clone()));
        add(&path, Revocation::token("t1", 5000), 1000).unwrap();
        assert!(list.is_revoked("t1", &claims("alice", 100)));
        std::fs::write(&path, "not json at all\n").unwrap();
        assert!(list.is_revoked("t1", &claims("alice", 100)));
    }
}
