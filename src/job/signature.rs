//! Signed jobs: the API signs every job it stores (Ed25519), and an agent runs
//! only what verifies against the API's public key.
//!
//! The signature covers what decides what runs where and on whose behalf: the
//! id, operation with its data, target, expected hosts, creation time, timeout
//! (so the deadline), creator and the job it retries. It is computed over the
//! JSON of exactly those fields, behind a domain tag, so a job that is altered
//! in the store, re-signed with another key, or planted unsigned by anyone who
//! got write access to the jobs bucket is refused.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Expected, Job, Operation, Target};

/// Separates job signatures from anything else the key could ever sign.
const DOMAIN: &[u8] = b"osapi-job-v1\n";

/// Why a key could not be used or a job did not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} does not hold a base64 Ed25519 {what}", path.display())]
    BadKey {
        path: std::path::PathBuf,
        what: &'static str,
    },
    #[error("the job is not signed")]
    Unsigned,
    #[error("the job's signature is not valid base64")]
    Malformed,
    #[error("the job's signature does not match (altered, or signed with another key)")]
    Mismatch,
}

/// The signed fields, borrowed from the job in a fixed order.
#[derive(Serialize)]
struct Signed<'a> {
    id: &'a Uuid,
    operation: &'a Operation,
    target: &'a Target,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    created_by: &'a str,
    expected: &'a Expected,
    timeout_ms: u64,
    retry_of: &'a Option<Uuid>,
}

fn signed_bytes(job: &Job) -> Vec<u8> {
    let fields = Signed {
        id: &job.id,
        operation: &job.operation,
        target: &job.target,
        created_at: job.created_at,
        created_by: &job.created_by,
        expected: &job.expected,
        timeout_ms: job.timeout_ms,
        retry_of: &job.retry_of,
    };
    let mut bytes = DOMAIN.to_vec();
    // Serialising plain data into a Vec cannot fail; an empty body would only
    // make the signature fail to verify, never pass.
    let _ = serde_json::to_writer(&mut bytes, &fields);
    bytes
}

/// The API's private signing key.
pub struct JobSigner {
    key: Ed25519KeyPair,
}

impl JobSigner {
    /// From a file holding the 32-byte seed, base64.
    pub fn from_file(path: &Path) -> Result<Self, SignatureError> {
        let seed = read_base64(path, "seed")?;
        let key =
            Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| SignatureError::BadKey {
                path: path.to_path_buf(),
                what: "seed",
            })?;
        Ok(JobSigner { key })
    }

    /// Sign `job` (its `signature` field is not part of what is signed).
    pub fn sign(&self, job: &Job) -> String {
        STANDARD.encode(self.key.sign(&signed_bytes(job)).as_ref())
    }

    /// The matching public key, base64.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.key.public_key().as_ref())
    }
}

/// An agent's copy of the API's public key.
pub struct JobVerifier {
    public: Vec<u8>,
}

impl JobVerifier {
    /// From a file holding the 32-byte public key, base64.
    pub fn from_file(path: &Path) -> Result<Self, SignatureError> {
        Ok(JobVerifier {
            public: read_base64(path, "public key")?,
        })
    }

    pub fn verify(&self, job: &Job) -> Result<(), SignatureError> {
        let sig = job.signature.as_deref().ok_or(SignatureError::Unsigned)?;
        let sig = STANDARD
            .decode(sig)
            .map_err(|_| SignatureError::Malformed)?;
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(&signed_bytes(job), &sig)
            .map_err(|_| SignatureError::Mismatch)
    }
}

fn read_base64(path: &Path, what: &'static str) -> Result<Vec<u8>, SignatureError> {
    let text = std::fs::read_to_string(path).map_err(|source| SignatureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    STANDARD
        .decode(text.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| SignatureError::BadKey {
            path: path.to_path_buf(),
            what,
        })
}

/// A new signing key's seed, base64, for the key file ([`JobSigner::public_key`]
/// gives its public half).
pub fn generate_seed() -> Option<String> {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).ok()?;
    Some(STANDARD.encode(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            id: Uuid::now_v7(),
            operation: Operation::HostnameGet,
            target: Target::All,
            created_at: OffsetDateTime::now_utc(),
            created_by: "alice".into(),
            expected: Expected::Hosts(vec!["web-01".into()]),
            timeout_ms: 30_000,
            retry_of: None,
            progress_hint: 7,
            trace_id: None,
            signature: None,
        }
    }

    fn pair(dir: &Path) -> (JobSigner, JobVerifier) {
        std::fs::write(dir.join("k"), format!("{}\n", generate_seed().unwrap())).unwrap();
        let public = JobSigner::from_file(&dir.join("k")).unwrap().public_key();
        std::fs::write(dir.join("p"), public).unwrap();
        (
            JobSigner::from_file(&dir.join("k")).unwrap(),
            JobVerifier::from_file(&dir.join("p")).unwrap(),
        )
    }

    #[test]
    fn signed_jobs_verify_and_survive_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, verifier) = pair(dir.path());
        let mut j = job();
        j.signature = Some(signer.sign(&j));
        verifier.verify(&j).unwrap();
        // Through JSON, as the agent reads it; unsigned bookkeeping may change.
        let mut back: Job = serde_json::from_slice(&serde_json::to_vec(&j).unwrap()).unwrap();
        back.progress_hint = 99;
        verifier.verify(&back).unwrap();
    }

    #[test]
    fn unsigned_altered_and_foreign_jobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, verifier) = pair(dir.path());
        let mut j = job();
        assert!(matches!(verifier.verify(&j), Err(SignatureError::Unsigned)));
        j.signature = Some(signer.sign(&j));
        for alter in [
            (|j: &mut Job| j.created_by = "mallory".into()) as fn(&mut Job),
            |j| j.target = Target::Any,
            |j| j.expected = Expected::Any,
            |j| j.timeout_ms += 1,
            |j| j.operation = Operation::StatusGet,
            |j| j.id = Uuid::now_v7(),
        ] {
            let mut altered = j.clone();
            alter(&mut altered);
            assert!(matches!(
                verifier.verify(&altered),
                Err(SignatureError::Mismatch)
            ));
        }
        // Signed by someone else's key.
        let other = tempfile::tempdir().unwrap();
        let (mallory, _) = pair(other.path());
        let mut forged = job();
        forged.signature = Some(mallory.sign(&forged));
        assert!(matches!(
            verifier.verify(&forged),
            Err(SignatureError::Mismatch)
        ));
        let mut junk = job();
        junk.signature = Some("not base64!".into());
        assert!(matches!(
            verifier.verify(&junk),
            Err(SignatureError::Malformed)
        ));
    }
}
