//! Job targets (SPEC §4): `_any`, `_all`, a hostname, or `key:value` for a label.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::hostname::{MAX_DOMAIN_LEN, check_hostname};

/// Which agents a job is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// One agent, load-balanced.
    Any,
    /// Every live agent.
    All,
    /// The agent with this hostname.
    Host(String),
    /// Every agent whose label `key` equals `value` or starts with `value.`.
    Label { key: String, value: String },
}

/// Why a target string is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target {target:?}: {reason}")]
pub struct InvalidTarget {
    pub target: String,
    pub reason: &'static str,
}

/// `[A-Za-z0-9_-]+`: a label key or one dot segment of a label value.
pub(crate) fn is_label_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A label an agent may carry: a key and a value of dot-separated segments.
pub fn is_label(key: &str, value: &str) -> bool {
    is_label_segment(key) && is_label_value(value)
}

/// A label value: dot-separated segments.
pub(crate) fn is_label_value(s: &str) -> bool {
    s.split('.').all(is_label_segment)
}

impl FromStr for Target {
    type Err = InvalidTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidTarget {
            target: s.to_owned(),
            reason,
        };
        match s {
            "_any" => return Ok(Target::Any),
            "_all" => return Ok(Target::All),
            "" => return Err(invalid("empty")),
            _ => {}
        }
        if let Some((key, value)) = s.split_once(':') {
            if !is_label_segment(key) {
                return Err(invalid("label key must match [A-Za-z0-9_-]+"));
            }
            if !is_label_value(value) {
                return Err(invalid(
                    "label value must be dot-separated segments matching [A-Za-z0-9_-]+",
                ));
            }
            return Ok(Target::Label {
                key: key.to_owned(),
                value: value.to_owned(),
            });
        }
        if s.starts_with('_') {
            return Err(invalid("only _any and _all start with an underscore"));
        }
        if check_hostname(s, MAX_DOMAIN_LEN).is_err() {
            return Err(invalid("not a valid hostname (RFC 1123)"));
        }
        Ok(Target::Host(s.to_owned()))
    }
}

impl TryFrom<String> for Target {
    type Error = InvalidTarget;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.to_string()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Any => f.write_str("_any"),
            Target::All => f.write_str("_all"),
            Target::Host(h) => f.write_str(h),
            Target::Label { key, value } => write!(f, "{key}:{value}"),
        }
    }
}

impl Target {
    /// Whether an agent with this hostname and these labels is addressed.
    pub fn matches<'a>(
        &self,
        hostname: &str,
        mut labels: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> bool {
        match self {
            Target::Any | Target::All => true,
            Target::Host(h) => h == hostname,
            Target::Label { key, value } => labels.any(|(k, v)| {
                k == key
                    && (v == value
                        || (v.starts_with(value.as_str())
                            && v.as_bytes().get(value.len()) == Some(&b'.')))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn parses_every_kind() {
        assert_eq!("_any".parse::<Target>().unwrap(), Target::Any);
        assert_eq!("_all".parse::<Target>().unwrap(), Target::All);
        assert_eq!(
            "web-01".parse::<Target>().unwrap(),
            Target::Host("web-01".into())
        );
        assert_eq!(
            "group:web.dev".parse::<Target>().unwrap(),
            Target::Label {
                key: "group".into(),
                value: "web.dev".into()
            }
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "_some",
            "group:",
            ":web",
            "group:web..dev",
            "gr oup:web",
            "-host",
            "host-",
            "a..b",
            "group:web.*",
            "a>b",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn label_matching_is_by_whole_segments() {
        let labels = BTreeMap::from([("group".to_owned(), "web.dev.us-east".to_owned())]);
        let t = |s: &str| s.parse::<Target>().unwrap();
        assert!(t("group:web").matches("h", labels.iter()));
        assert!(t("group:web.dev").matches("h", labels.iter()));
        assert!(t("group:web.dev.us-east").matches("h", labels.iter()));
        assert!(!t("group:we").matches("h", labels.iter()));
        assert!(!t("group:web.de").matches("h", labels.iter()));
        assert!(!t("role:web").matches("h", labels.iter()));
        assert!(t("h").matches("h", labels.iter()));
        assert!(!t("other").matches("h", labels.iter()));
    }
}
