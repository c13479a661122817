//! NATS names under a namespace (SPEC §3): `jobs.query._any` → `osapi.jobs.query._any`,
//! stream `JOBS` → `osapi-JOBS`, bucket `job-queue` → `osapi-job-queue`; the
//! subject a job is announced on, and the consumers an agent reads from.

use crate::job::{Kind, Target};

/// The namespace of one deployment; every NATS name goes through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    namespace: String,
}

impl Names {
    pub fn new(namespace: impl Into<String>) -> Self {
        Names {
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A subject: `ns.` + subject.
    pub fn subject(&self, subject: &str) -> String {
        if self.namespace.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.namespace)
        }
    }

    /// A stream, bucket or consumer name: `ns-` + name.
    pub fn resource(&self, name: &str) -> String {
        if self.namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{}-{name}", self.namespace)
        }
    }

    /// The job-stream consumers an agent called `hostname` with `labels`
    /// reads from: the one shared by every agent for `_any`, then its own
    /// for `_all`, its host and each label prefix. The agent creates exactly
    /// these, and an enrolled agent's NATS permissions name exactly these.
    pub fn agent_consumers<'a>(
        &self,
        hostname: &str,
        labels: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Vec<AgentConsumer> {
        let mut consumers = vec![AgentConsumer {
            durable: self.consumer("any"),
            filter: self.subject("jobs.*._any"),
        }];
        for f in agent_filters(hostname, labels) {
            consumers.push(AgentConsumer {
                durable: self.consumer(&format!("agent-{hostname}-{}", short_hash(&f))),
                filter: self.subject(&f),
            });
        }
        consumers
    }

    /// The subject on which a job of `kind` for `target` is announced, e.g.
    /// `osapi.jobs.modify.label.group.web.dev`.
    pub fn job_subject(&self, target: &Target, kind: Kind) -> String {
        let kind = kind.as_str();
        self.subject(&match target {
            Target::Any => format!("jobs.{kind}._any"),
            Target::All => format!("jobs.{kind}._all"),
            Target::Host(h) => format!("jobs.{kind}.host.{h}"),
            Target::Label { key, value } => format!("jobs.{kind}.label.{key}.{value}"),
        })
    }

    /// A consumer name: only letters, digits, `-` and `_` (no dots).
    fn consumer(&self, parts: &str) -> String {
        self.resource(
            &parts
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>(),
        )
    }
}

/// One durable consumer of the job stream and the subjects it filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConsumer {
    pub durable: String,
    pub filter: String,
}

/// The filter subjects (without namespace) of an agent's own consumers:
/// `_all`, its host subject, and every prefix of each label. `_any` is
/// consumed through a consumer shared by all agents and is not listed.
fn agent_filters<'a>(
    hostname: &str,
    labels: impl Iterator<Item = (&'a String, &'a String)>,
) -> Vec<String> {
    let mut filters = vec!["jobs.*._all".to_owned(), format!("jobs.*.host.{hostname}")];
    for (key, value) in labels {
        let mut prefix = String::new();
        for segment in value.split('.') {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(segment);
            filters.push(format!("jobs.*.label.{key}.{prefix}"));
        }
    }
    filters
}

/// A short stable hash of a filter subject, so consumer names stay unique and
/// within NATS' limits however long the label.
fn short_hash(s: &str) -> String {
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_encode_kind_and_target() {
        let n = Names::new("osapi");
        let t = |s: &str| s.parse::<Target>().unwrap();
        assert_eq!(
            n.job_subject(&t("_any"), Kind::Query),
            "osapi.jobs.query._any"
        );
        assert_eq!(
            n.job_subject(&t("_all"), Kind::Modify),
            "osapi.jobs.modify._all"
        );
        assert_eq!(
            n.job_subject(&t("web-01"), Kind::Query),
            "osapi.jobs.query.host.web-01"
        );
        assert_eq!(
            n.job_subject(&t("group:web.dev"), Kind::Modify),
            "osapi.jobs.modify.label.group.web.dev"
        );
    }

    #[test]
    fn agent_filters_cover_every_label_prefix() {
        let labels = std::collections::BTreeMap::from([("group".to_owned(), "web.dev".to_owned())]);
        assert_eq!(
            agent_filters("web-01", labels.iter()),
            vec![
                "jobs.*._all",
                "jobs.*.host.web-01",
                "jobs.*.label.group.web",
                "jobs.*.label.group.web.dev"
            ]
        );
    }

    #[test]
    fn consumer_names_are_valid_and_distinct() {
        let n = Names::new("osapi");
        let labels =
            std::collections::BTreeMap::from([("role".to_owned(), "db.primary".to_owned())]);
        let all = n.agent_consumers("web.example.com", labels.iter());
        assert_eq!(all[0].durable, "osapi-any");
        assert_eq!(all[0].filter, "osapi.jobs.*._any");
        // _all, host, and each of the label's two prefixes.
        assert_eq!(all.len(), 5);
        let names: std::collections::HashSet<_> = all.iter().map(|c| &c.durable).collect();
        assert_eq!(names.len(), all.len());
        for c in &all[1..] {
            assert!(
                c.durable.starts_with("osapi-agent-web_example_com-"),
                "{c:?}"
            );
            assert!(!c.durable.contains('.') && !c.durable.contains('*'));
        }
        assert_eq!(all[2].filter, "osapi.jobs.*.host.web.example.com");
    }

    #[test]
    fn namespace_prefixes_every_name() {
        let n = Names::new("osapi");
        assert_eq!(n.subject("jobs.query._any"), "osapi.jobs.query._any");
        assert_eq!(n.resource("JOBS"), "osapi-JOBS");
        assert_eq!(n.resource("job-queue"), "osapi-job-queue");
    }

    #[test]
    fn empty_namespace_adds_nothing() {
        let n = Names::new("");
        assert_eq!(n.subject("jobs.query._any"), "jobs.query._any");
        assert_eq!(n.resource("JOBS"), "JOBS");
    }
}
