//! Agent enrollment: an agent on another host joins the fleet as *pending*
//! and gets a NATS identity of its own only when an admin accepts it.
//!
//! The agent makes its own nkey, and asks to join with a request signed by
//! that key (so nobody can file a request for a key they do not hold). The
//! request names the host and labels it will serve; once accepted, its NATS
//! user may write only that host's results, events, claims and heartbeat and
//! read only that host's consumers ([`crate::bus::permissions::for_agent`]).
//! A pending agent has no NATS user at all, so nothing can ever target it.
//!
//! This module is the pure part: the records, their signatures and the rules
//! for finding and accepting them. [`crate::bus::enrollment`] stores them.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where an enrollment stands. Each is a key prefix in the enrollment bucket:
/// `<state>.<public key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnrollmentState {
    Pending,
    Accepted,
    Rejected,
}

impl EnrollmentState {
    pub const ALL: [EnrollmentState; 3] = [
        EnrollmentState::Pending,
        EnrollmentState::Accepted,
        EnrollmentState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Pending => "pending",
            EnrollmentState::Accepted => "accepted",
            EnrollmentState::Rejected => "rejected",
        }
    }

    /// The bucket key of `public_key` in this state.
    pub fn key(self, public_key: &str) -> String {
        format!("{}.{public_key}", self.as_str())
    }

    /// The state and public key a bucket key names.
    pub fn parse_key(key: &str) -> Option<(EnrollmentState, &str)> {
        let (state, public_key) = key.split_once('.')?;
        let state = Self::ALL.into_iter().find(|s| s.as_str() == state)?;
        Some((state, public_key))
    }
}

/// What an agent asks to be enrolled as, signed with its own key; kept as
/// it is when accepted or rejected, with who decided and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrollment {
    /// The agent's public user nkey (`U…`): its NATS identity once accepted.
    pub public_key: String,
    pub hostname: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: OffsetDateTime,
    /// The agent's signature over the fields above (base64url), made with
    /// the key it names.
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
}

/// An enrollment and where it stands, as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentView {
    pub state: EnrollmentState,
    #[serde(flatten)]
    pub enrollment: Enrollment,
}

/// The fields an agent signs, in a fixed order.
#[derive(Serialize)]
struct Signed<'a> {
    public_key: &'a str,
    hostname: &'a str,
    labels: &'a BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    requested_at: OffsetDateTime,
}

impl Enrollment {
    /// A request to enroll as `hostname` with `labels`, signed by `key`.
    pub fn request(
        key: &nkeys::KeyPair,
        hostname: &str,
        labels: &BTreeMap<String, String>,
        now: OffsetDateTime,
    ) -> Result<Enrollment, EnrollmentError> {
        let mut e = Enrollment {
            public_key: key.public_key(),
            hostname: hostname.to_owned(),
            labels: labels.clone(),
            requested_at: now,
            signature: String::new(),
            decided_by: None,
            decided_at: None,
        };
        let signature = key
            .sign(&e.signed_bytes())
            .map_err(|_| EnrollmentError::Sign)?;
        e.signature = URL_SAFE_NO_PAD.encode(signature);
        Ok(e)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings and a BTreeMap cannot fail.
        serde_json::to_vec(&Signed {
            public_key: &self.public_key,
            hostname: &self.hostname,
            labels: &self.labels,
            requested_at: self.requested_at,
        })
        .unwrap_or_default()
    }

    /// Whether the request was signed by the key it names, and that key is a
    /// user nkey.
    pub fn verify(&self) -> Result<(), EnrollmentError> {
        let not_user = || EnrollmentError::NotAUserKey(self.public_key.clone());
        if !self.public_key.starts_with('U') {
            return Err(not_user());
        }
        let key = nkeys::KeyPair::from_public_key(&self.public_key).map_err(|_| not_user())?;
        let signature = URL_SAFE_NO_PAD
            .decode(&self.signature)
            .map_err(|_| EnrollmentError::BadSignature(self.public_key.clone()))?;
        key.verify(&self.signed_bytes(), &signature)
            .map_err(|_| EnrollmentError::BadSignature(self.public_key.clone()))
    }
}

/// The enrollment among `all` in one of `states` whose public key is `key`:
/// accepting names the key, never a host name anyone with the join
/// credential could have filed a request under.
pub fn find_by_key<'a>(
    all: &'a [EnrollmentView],
    key: &str,
    states: &[EnrollmentState],
) -> Result<&'a EnrollmentView, EnrollmentError> {
    all.iter()
        .find(|v| states.contains(&v.state) && v.enrollment.public_key == key)
        .ok_or_else(|| not_found(key, states))
}

fn not_found(which: &str, states: &[EnrollmentState]) -> EnrollmentError {
    EnrollmentError::NotFound {
        which: which.to_owned(),
        states: states
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// The one enrollment among `all` in one of `states` that `which` names, by
/// its public key or its host name.
pub fn find<'a>(
    all: &'a [EnrollmentView],
    which: &str,
    states: &[EnrollmentState],
) -> Result<&'a EnrollmentView, EnrollmentError> {
    let candidates: Vec<&EnrollmentView> = all
        .iter()
        .filter(|v| states.contains(&v.state))
        .filter(|v| v.enrollment.public_key == which || v.enrollment.hostname == which)
        .collect();
    match candidates.as_slice() {
        [] => Err(not_found(which, states)),
        [one] => Ok(one),
        many => Err(EnrollmentError::Ambiguous {
            which: which.to_owned(),
            keys: many
                .iter()
                .map(|v| v.enrollment.public_key.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl Enrollment {
    /// Whether the host name and labels are ones a job can address: they
    /// become NATS subjects and consumer names in the agent's permissions.
    pub fn check_names(&self) -> Result<(), EnrollmentError> {
        use crate::job::hostname::{MAX_DOMAIN_LEN, check_hostname};
        check_hostname(&self.hostname, MAX_DOMAIN_LEN).map_err(|why| {
            EnrollmentError::BadName(format!("host name {:?}: {why}", self.hostname))
        })?;
        for (key, value) in &self.labels {
            if !crate::job::is_label(key, value) {
                return Err(EnrollmentError::BadName(format!(
                    "label {key}={value}: keys are [A-Za-z0-9_-]+, values dot-separated segments of them"
                )));
            }
        }
        Ok(())
    }
}

/// Whether `pending` may be accepted among `all`: its signature holds, its
/// names are valid, and no other key is already accepted for its host (a new
/// key never takes over a host's identity silently; the old one must be
/// rejected first).
pub fn check_accept(all: &[EnrollmentView], pending: &Enrollment) -> Result<(), EnrollmentError> {
    pending.verify()?;
    pending.check_names()?;
    if let Some(holder) = all.iter().find(|v| {
        v.state == EnrollmentState::Accepted
            && v.enrollment.hostname == pending.hostname
            && v.enrollment.public_key != pending.public_key
    }) {
        return Err(EnrollmentError::HostTaken {
            hostname: pending.hostname.clone(),
            public_key: holder.enrollment.public_key.clone(),
        });
    }
    Ok(())
}

/// Why an enrollment cannot be made, found or decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentError {
    #[error("cannot sign the enrollment request with the agent's key")]
    Sign,
    #[error("{0:?} is not a public user nkey")]
    NotAUserKey(String),
    #[error("the enrollment request of {0} is not signed by that key; reject it")]
    BadSignature(String),
    #[error("the enrollment request cannot be accepted: {0}")]
    BadName(String),
    #[error("no {states} agent is called or has the key {which:?}")]
    NotFound { which: String, states: String },
    #[error("{which:?} names several agents ({keys}); give the public key")]
    Ambiguous { which: String, keys: String },
    #[error(
        "host {hostname:?} is already enrolled with the key {public_key}; reject that one first"
    )]
    HostTaken {
        hostname: String,
        public_key: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> (nkeys::KeyPair, Enrollment) {
        let key = nkeys::KeyPair::new_user();
        let labels = BTreeMap::from([("role".to_owned(), "web".to_owned())]);
        let e = Enrollment::request(&key, host, &labels, OffsetDateTime::now_utc()).unwrap();
        (key, e)
    }

    fn view(state: EnrollmentState, enrollment: Enrollment) -> EnrollmentView {
        EnrollmentView { state, enrollment }
    }

    #[test]
    fn a_request_verifies_and_any_change_breaks_it() {
        let (_, e) = request("web-01");
        e.verify().unwrap();
        // The signature survives a store round trip.
        let stored: Enrollment = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        stored.verify().unwrap();
        let mut renamed = e.clone();
        renamed.hostname = "db-01".into();
        assert!(matches!(
            renamed.verify(),
            Err(EnrollmentError::BadSignature(_))
        ));
        let mut relabelled = e.clone();
        relabelled.labels.insert("role".into(), "db".into());
        assert!(relabelled.verify().is_err());
        // Someone else's key with this request's signature.
        let mut stolen = e.clone();
        stolen.public_key = nkeys::KeyPair::new_user().public_key();
        assert!(stolen.verify().is_err());
        let mut not_user = e;
        not_user.public_key = nkeys::KeyPair::new_server().public_key();
        assert!(matches!(
            not_user.verify(),
            Err(EnrollmentError::NotAUserKey(_))
        ));
    }

    #[test]
    fn keys_name_state_and_public_key() {
        let k = EnrollmentState::Accepted.key("UABC");
        assert_eq!(k, "accepted.UABC");
        assert_eq!(
            EnrollmentState::parse_key(&k),
            Some((EnrollmentState::Accepted, "UABC"))
        );
        assert_eq!(EnrollmentState::parse_key("other.UABC"), None);
    }

    #[test]
    fn found_by_key_or_host_and_never_guessed() {
        let (_, a) = request("web-01");
        let (_, b) = request("web-01");
        let (_, c) = request("db-01");
        let all = vec![
            view(EnrollmentState::Pending, a.clone()),
            view(EnrollmentState::Pending, b.clone()),
            view(EnrollmentState::Accepted, c.clone()),
        ];
        let pending = [EnrollmentState::Pending];
        assert_eq!(find(&all, &a.public_key, &pending).unwrap().enrollment, a);
        assert!(matches!(
            find(&all, "web-01", &pending),
            Err(EnrollmentError::Ambiguous { .. })
        ));
        // Accepted is not pending.
        assert!(matches!(
            find(&all, "db-01", &pending),
            Err(EnrollmentError::NotFound { .. })
        ));
        assert_eq!(
            find(
                &all,
                "db-01",
                &[EnrollmentState::Pending, EnrollmentState::Accepted]
            )
            .unwrap()
            .enrollment,
            c
        );
    }

    #[test]
    fn a_second_key_cannot_take_over_an_enrolled_host() {
        let (_, old) = request("web-01");
        let (_, new) = request("web-01");
        let all = vec![
            view(EnrollmentState::Accepted, old.clone()),
            view(EnrollmentState::Pending, new.clone()),
        ];
        assert!(matches!(
            check_accept(&all, &new),
            Err(EnrollmentError::HostTaken { .. })
        ));
        // Accepting the same key again is fine (idempotent).
        check_accept(&all, &old).unwrap();
    }

    #[test]
    fn names_that_cannot_be_addressed_are_not_accepted() {
        for host in ["web_01", "web-01.", "a..b", "*", "web 01"] {
            let (_, e) = request(host);
            assert!(
                matches!(check_accept(&[], &e), Err(EnrollmentError::BadName(_))),
                "{host}"
            );
        }
        let key = nkeys::KeyPair::new_user();
        let labels = BTreeMap::from([("role".to_owned(), "web.*".to_owned())]);
        let e = Enrollment::request(&key, "web-01", &labels, OffsetDateTime::now_utc()).unwrap();
        assert!(matches!(
            check_accept(&[], &e),
            Err(EnrollmentError::BadName(_))
        ));
    }
}
