//! What each [`Role`] may publish and subscribe to on the embedded server.
//!
//! Allow-lists, so anything not named is refused by nats-server itself:
//!
//! - **api**: store and announce jobs, read and purge jobs' responses, read
//!   the registry, append audit entries, store and delete files, and create
//!   (never delete, purge or shrink) its stream and buckets.
//! - **agent**: read jobs, consume the job stream through consumers filtered
//!   to job subjects, write events, results, run claims and heartbeats, read
//!   stored files (never write one). It
//!   cannot store or announce a job, touch the audit bucket, or use any
//!   JetStream administration subject (create, update, delete, purge).
//! - **admin** (the supervisor's own connection): everything it needs to
//!   provision, which is everything but purging or deleting the audit stream
//!   or its entries.
//! - **enroll** (the join credential of agents on other hosts): file an
//!   enrollment request, nothing else.
//! - **an enrolled agent** ([`for_agent`]): the agent role narrowed to one
//!   host: its own consumers, results, events, claims and heartbeat.
//!
//! Nobody may purge or delete from the audit stream, and only admin may
//! change its limits.

use super::credentials::Role;
use super::store::ClaimScope;
use crate::bus::Names;
use crate::config::NatsConfig;
use crate::enrollment::Enrollment;
use crate::natsd::{NkeyUser, Permissions};

/// The NATS names the permissions refer to.
struct Assets {
    /// Job subjects (`osapi.jobs`).
    jobs_subjects: String,
    /// The job notification stream.
    job_stream: String,
    jobs: String,
    responses: String,
    audit: String,
    registry: String,
    requests: String,
    decisions: String,
    /// The file store (an object store bucket).
    files: String,
    /// Jobs' live output: its stream and subjects (`osapi.output`).
    output_stream: String,
    output_subjects: String,
}

impl Assets {
    fn new(names: &Names, cfg: &NatsConfig) -> Self {
        Assets {
            jobs_subjects: names.subject("jobs"),
            job_stream: names.resource(&cfg.stream.name),
            jobs: names.resource(&cfg.kv.jobs_bucket),
            responses: names.resource(&cfg.kv.responses_bucket),
            audit: names.resource(&cfg.audit.bucket),
            registry: names.resource(&cfg.registry.bucket),
            requests: names.resource(super::enrollment::REQUESTS_BUCKET),
            decisions: names.resource(super::enrollment::DECISIONS_BUCKET),
            files: names.resource(super::files::FILES_BUCKET),
            output_stream: names.resource(super::output::OUTPUT_STREAM),
            output_subjects: names.subject("output"),
        }
    }

    fn buckets(&self) -> [&str; 6] {
        [
            &self.jobs,
            &self.responses,
            &self.audit,
            &self.registry,
            &self.requests,
            &self.decisions,
        ]
    }

    /// Every stream: the job stream, each bucket's `KV_` stream and the
    /// file store's `OBJ_` stream.
    fn streams(&self) -> Vec<String> {
        std::iter::once(self.job_stream.clone())
            .chain(self.buckets().iter().map(|b| format!("KV_{b}")))
            .chain([self.files_stream(), self.output_stream.clone()])
            .collect()
    }

    fn files_stream(&self) -> String {
        format!("OBJ_{}", self.files)
    }

    /// Reading stored files' contents: an ordered consumer on the file
    /// store, and its flow control.
    fn file_consumers(&self) -> Vec<String> {
        let stream = self.files_stream();
        vec![
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
            format!("$JS.FC.{stream}.>"),
        ]
    }
}

/// The permissions of `role` for one deployment (`names`). Always `Some`; an
/// `Option` because a server's users may also have none (configured users).
pub fn for_role(role: Role, names: &Names, cfg: &NatsConfig) -> Option<Permissions> {
    let a = Assets::new(names, cfg);
    Some(match role {
        Role::Admin => admin(&a),
        Role::Api => api(&a),
        Role::Agent => agent(&a),
        Role::Enroll => enroll(&a),
    })
}

/// The NATS user of an agent an admin accepted: its own key, allowed what
/// the agent role is but only for the host and labels it was accepted with,
/// in every one of `deployments`.
pub fn for_agent(accepted: &Enrollment, deployments: &[Names], cfg: &NatsConfig) -> NkeyUser {
    let mut permissions = Permissions {
        subscribe_allow: vec![format!("{}.>", agent_inbox_prefix(&accepted.public_key))],
        ..Permissions::default()
    };
    for names in deployments {
        let a = Assets::new(names, cfg);
        permissions
            .publish_allow
            .extend(enrolled_agent(&a, names, accepted));
    }
    NkeyUser {
        public_key: accepted.public_key.clone(),
        permissions: Some(permissions),
    }
}

/// The reply prefix of an enrolled agent: its own, so it reads no other
/// agent's replies (its job deliveries among them).
pub fn agent_inbox_prefix(public_key: &str) -> String {
    format!("_INBOX_{public_key}")
}

/// The embedded server's users: each role's public key with its permissions
/// in every one of `deployments` (one namespace on an appliance; tests share
/// a server between several).
pub fn users(keys: Vec<(Role, String)>, deployments: &[Names], cfg: &NatsConfig) -> Vec<NkeyUser> {
    keys.into_iter()
        .map(|(role, public_key)| {
            let mut merged: Option<Permissions> = None;
            for p in deployments
                .iter()
                .filter_map(|names| for_role(role, names, cfg))
            {
                let m = merged.get_or_insert_with(Permissions::default);
                m.publish_allow.extend(p.publish_allow);
                m.publish_deny.extend(p.publish_deny);
                for sub in p.subscribe_allow {
                    if !m.subscribe_allow.contains(&sub) {
                        m.subscribe_allow.push(sub);
                    }
                }
            }
            NkeyUser {
                public_key,
                permissions: merged,
            }
        })
        .collect()
}

/// Everything but wiping the audit trail.
fn admin(a: &Assets) -> Permissions {
    let audit = format!("KV_{}", a.audit);
    Permissions {
        publish_allow: vec![">".to_owned()],
        publish_deny: ["PURGE", "DELETE", "MSG.DELETE"]
            .iter()
            .map(|op| format!("$JS.API.STREAM.{op}.{audit}"))
            .collect(),
        subscribe_allow: vec![">".to_owned()],
    }
}

fn api(a: &Assets) -> Permissions {
    let mut allow = vec!["$JS.API.INFO".to_owned()];
    for stream in a.streams() {
        allow.push(format!("$JS.API.STREAM.INFO.{stream}"));
        allow.push(format!("$JS.API.STREAM.CREATE.{stream}"));
        allow.push(format!("$JS.API.STREAM.MSG.GET.{stream}"));
        allow.push(format!("$JS.API.DIRECT.GET.{stream}"));
        allow.push(format!("$JS.API.DIRECT.GET.{stream}.>"));
    }
    // Limits follow the configuration, except the audit trail's: shrinking it
    // would be a way to wipe it.
    for stream in [
        &a.job_stream,
        &a.output_stream,
        &a.jobs,
        &a.responses,
        &a.registry,
        &a.requests,
        &a.decisions,
    ] {
        let stream = if *stream == a.job_stream || *stream == a.output_stream {
            stream.clone()
        } else {
            format!("KV_{stream}")
        };
        allow.push(format!("$JS.API.STREAM.UPDATE.{stream}"));
    }
    // Deleting a job purges its definition and responses, nothing else.
    for bucket in [&a.jobs, &a.responses] {
        allow.push(format!("$JS.API.STREAM.PURGE.KV_{bucket}"));
    }
    // Watches and listings of buckets run consumers on their streams.
    for bucket in a.buckets() {
        let stream = format!("KV_{bucket}");
        allow.push(format!("$JS.API.CONSUMER.CREATE.{stream}"));
        allow.push(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
        allow.push(format!("$JS.API.CONSUMER.INFO.{stream}.*"));
        allow.push(format!("$JS.API.CONSUMER.DELETE.{stream}.*"));
        allow.push(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"));
        allow.push(format!("$JS.ACK.{stream}.>"));
        allow.push(format!("$JS.FC.{stream}.>"));
    }
    for bucket in [&a.jobs, &a.responses, &a.audit, &a.requests, &a.decisions] {
        allow.push(format!("$KV.{bucket}.>"));
    }
    // Files: stored (chunks and infos), listed, replaced and deleted (which
    // purges their chunks); infos are read like every stream's messages above.
    allow.extend(a.file_consumers());
    allow.push(format!("$JS.API.STREAM.PURGE.{}", a.files_stream()));
    allow.push(format!("$O.{}.>", a.files));
    allow.push(format!("{}.>", a.jobs_subjects));
    // A deleted job's output goes with it.
    allow.push(format!("$JS.API.STREAM.PURGE.{}", a.output_stream));
    Permissions {
        publish_allow: allow,
        publish_deny: Vec::new(),
        subscribe_allow: vec![
            format!("{}.>", Role::Api.inbox_prefix()),
            // Results as they are written (synchronous waits).
            format!("$KV.{}.>", a.responses),
            // Output as it is written (followed jobs).
            format!("{}.>", a.output_subjects),
        ],
    }
}

fn agent(a: &Assets) -> Permissions {
    let mut allow = agent_reads(a);
    // Consumers of the job stream, each filtered to job subjects: an agent
    // cannot make one that reads anything else.
    let js = &a.job_stream;
    allow.push(format!(
        "$JS.API.CONSUMER.CREATE.{js}.*.{}.>",
        a.jobs_subjects
    ));
    allow.push(format!("$JS.API.CONSUMER.INFO.{js}.*"));
    allow.push(format!("$JS.API.CONSUMER.MSG.NEXT.{js}.*"));
    allow.push(format!("$JS.ACK.{js}.>"));
    // Writes: a job's events, results and run claims; heartbeats.
    for part in ["ev", "res", "claim"] {
        allow.push(format!("$KV.{}.*.{part}.>", a.responses));
    }
    allow.push(format!("$KV.{}.>", a.registry));
    allow.push(format!("{}.>", a.output_subjects));
    Permissions {
        publish_allow: allow,
        publish_deny: Vec::new(),
        subscribe_allow: vec![format!("{}.>", Role::Agent.inbox_prefix())],
    }
}

/// What every agent may read: stream infos, jobs, what was already
/// answered, the registry.
fn agent_reads(a: &Assets) -> Vec<String> {
    let mut allow = vec!["$JS.API.INFO".to_owned()];
    for stream in a.streams() {
        allow.push(format!("$JS.API.STREAM.INFO.{stream}"));
    }
    let buckets = [&a.jobs, &a.responses, &a.registry].map(|b| format!("KV_{b}"));
    // The output stream: where an agent started again finds how far its
    // predecessor sent a command's output.
    for stream in buckets.iter().chain([&a.output_stream]) {
        allow.push(format!("$JS.API.STREAM.MSG.GET.{stream}"));
        allow.push(format!("$JS.API.DIRECT.GET.{stream}"));
        allow.push(format!("$JS.API.DIRECT.GET.{stream}.>"));
    }
    // Stored files: their infos (last messages) and contents (a consumer).
    let files = a.files_stream();
    allow.push(format!("$JS.API.STREAM.MSG.GET.{files}"));
    allow.push(format!("$JS.API.DIRECT.GET.{files}"));
    allow.push(format!("$JS.API.DIRECT.GET.{files}.>"));
    allow.extend(a.file_consumers());
    allow
}

/// The agent role for one accepted host: exactly its consumers (so it
/// cannot take another host's deliveries) and writes under its own host
/// key only (so it cannot answer, or beat its heart, for another host).
fn enrolled_agent(a: &Assets, names: &Names, accepted: &Enrollment) -> Vec<String> {
    let mut allow = agent_reads(a);
    let js = &a.job_stream;
    for c in names.agent_consumers(&accepted.hostname, accepted.labels.iter()) {
        let durable = &c.durable;
        allow.push(format!(
            "$JS.API.CONSUMER.CREATE.{js}.{durable}.{}",
            c.filter
        ));
        allow.push(format!("$JS.API.CONSUMER.INFO.{js}.{durable}"));
        allow.push(format!("$JS.API.CONSUMER.MSG.NEXT.{js}.{durable}"));
        allow.push(format!("$JS.ACK.{js}.{durable}.>"));
    }
    let host = super::registry::registry_key(&accepted.hostname);
    let responses = &a.responses;
    allow.push(format!("$KV.{responses}.*.res.{host}"));
    allow.push(format!("$KV.{responses}.*.ev.{host}.*"));
    for scope in [
        ClaimScope::Host(&accepted.hostname),
        // A job for any one agent is claimed once, by whoever takes it.
        ClaimScope::Any,
    ] {
        allow.push(format!("$KV.{responses}.*.claim.{}", scope.key()));
    }
    allow.push(format!("$KV.{}.{host}", a.registry));
    allow.push(format!("{}.*.{host}", a.output_subjects));
    allow
}

/// File an enrollment request, and nothing else: not even read another's.
fn enroll(a: &Assets) -> Permissions {
    Permissions {
        publish_allow: vec![
            "$JS.API.INFO".to_owned(),
            format!("$JS.API.STREAM.INFO.KV_{}", a.requests),
            format!("$KV.{}.*", a.requests),
        ],
        publish_deny: Vec::new(),
        subscribe_allow: vec![format!("{}.>", Role::Enroll.inbox_prefix())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NATS subject matching: `*` one token, `>` the rest.
    fn matches(pattern: &str, subject: &str) -> bool {
        let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
        loop {
            match (p.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    fn may_publish(p: &Permissions, subject: &str) -> bool {
        p.publish_allow.iter().any(|a| matches(a, subject))
            && !p.publish_deny.iter().any(|d| matches(d, subject))
    }

    fn perms(role: Role) -> Permissions {
        for_role(role, &Names::new("osapi"), &NatsConfig::default()).unwrap()
    }

    #[test]
    fn agent_cannot_plant_jobs_touch_audit_or_administer() {
        let agent = perms(Role::Agent);
        for denied in [
            "$KV.osapi-job-queue.0190a0b0-0000-7000-8000-000000000000",
            "osapi.jobs.modify._all",
            "$KV.osapi-audit.0190a0b0-0000-7000-8000-000000000000",
            "$JS.API.STREAM.PURGE.KV_osapi-audit",
            "$JS.API.STREAM.DELETE.KV_osapi-audit",
            "$JS.API.STREAM.MSG.DELETE.KV_osapi-audit",
            "$JS.API.STREAM.UPDATE.osapi-JOBS",
            "$JS.API.STREAM.CREATE.evil",
            "$JS.API.CONSUMER.DELETE.osapi-JOBS.osapi-any",
            // An unfiltered consumer would read every job notification.
            "$JS.API.CONSUMER.CREATE.osapi-JOBS.sneaky",
            "$JS.API.CONSUMER.CREATE.KV_osapi-audit.c.$KV.osapi-audit.>",
            // Only the API asks for a cancel.
            "$KV.osapi-job-responses.0190a0b0-0000-7000-8000-000000000000.cancel",
            "$JS.API.STREAM.PURGE.osapi-OUTPUT",
        ] {
            assert!(!may_publish(&agent, denied), "{denied}");
        }
        for allowed in [
            "$JS.API.CONSUMER.CREATE.osapi-JOBS.osapi-any.osapi.jobs.*._any",
            "$JS.API.CONSUMER.MSG.NEXT.osapi-JOBS.osapi-any",
            "$JS.ACK.osapi-JOBS.osapi-any.1.2.3.4.5",
            "$KV.osapi-job-responses.0190a0b0-0000-7000-8000-000000000000.res.web-01",
            "$KV.osapi-agent-registry.web-01",
            "$JS.API.DIRECT.GET.KV_osapi-job-queue.$KV.osapi-job-queue.x",
            "osapi.output.0190a0b0-0000-7000-8000-000000000000.web-01",
            "$JS.API.DIRECT.GET.osapi-OUTPUT",
        ] {
            assert!(may_publish(&agent, allowed), "{allowed}");
        }
        assert_eq!(agent.subscribe_allow, ["_INBOX_agent.>"]);
    }

    #[test]
    fn api_cannot_wipe_the_audit_trail() {
        let api = perms(Role::Api);
        for denied in [
            "$JS.API.STREAM.PURGE.KV_osapi-audit",
            "$JS.API.STREAM.DELETE.KV_osapi-audit",
            "$JS.API.STREAM.MSG.DELETE.KV_osapi-audit",
            "$JS.API.STREAM.UPDATE.KV_osapi-audit",
            "$JS.API.STREAM.DELETE.osapi-JOBS",
            "$KV.osapi-agent-registry.web-01",
        ] {
            assert!(!may_publish(&api, denied), "{denied}");
        }
        for allowed in [
            "$KV.osapi-job-queue.x",
            "osapi.jobs.query._any",
            "$KV.osapi-audit.x",
            "$JS.API.STREAM.PURGE.KV_osapi-job-responses",
        ] {
            assert!(may_publish(&api, allowed), "{allowed}");
        }
    }

    #[test]
    fn admin_provisions_but_cannot_wipe_the_audit_trail_either() {
        let admin = perms(Role::Admin);
        for denied in [
            "$JS.API.STREAM.PURGE.KV_osapi-audit",
            "$JS.API.STREAM.DELETE.KV_osapi-audit",
            "$JS.API.STREAM.MSG.DELETE.KV_osapi-audit",
        ] {
            assert!(!may_publish(&admin, denied), "{denied}");
        }
        for allowed in [
            "$JS.API.STREAM.CREATE.KV_osapi-audit",
            "$JS.API.STREAM.UPDATE.KV_osapi-audit",
            "$JS.API.STREAM.PURGE.KV_osapi-job-queue",
        ] {
            assert!(may_publish(&admin, allowed), "{allowed}");
        }
    }

    #[test]
    fn the_join_credential_files_requests_and_nothing_else() {
        let enroll = perms(Role::Enroll);
        assert!(may_publish(
            &enroll,
            "$KV.osapi-agent-requests.UABCDEFGHIJKLMNOPQRSTUVWXYZ"
        ));
        for denied in [
            "$KV.osapi-agent-enrollment.accepted.UABC",
            "$KV.osapi-agent-registry.web-01",
            "$KV.osapi-job-responses.x.res.web-01",
            "$KV.osapi-job-queue.x",
            "osapi.jobs.modify._any",
            "$JS.API.CONSUMER.CREATE.KV_osapi-agent-requests",
            "$JS.API.DIRECT.GET.KV_osapi-agent-requests",
            "$JS.API.STREAM.PURGE.KV_osapi-agent-requests",
        ] {
            assert!(!may_publish(&enroll, denied), "{denied}");
        }
        assert_eq!(enroll.subscribe_allow, ["_INBOX_enroll.>"]);
    }

    #[test]
    fn an_enrolled_agent_speaks_only_for_its_own_host() {
        let key = nkeys::KeyPair::new_user();
        let labels = std::collections::BTreeMap::from([("role".to_owned(), "web".to_owned())]);
        let accepted = Enrollment::request(
            &key,
            "web-01.example.com",
            &labels,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let names = Names::new("osapi");
        let user = for_agent(
            &accepted,
            std::slice::from_ref(&names),
            &NatsConfig::default(),
        );
        assert_eq!(user.public_key, key.public_key());
        let p = user.permissions.unwrap();
        let own = names.agent_consumers("web-01.example.com", labels.iter());
        let id = "0190a0b0-0000-7000-8000-000000000000";
        for allowed in [
            format!("$KV.osapi-job-responses.{id}.res.web-01.example.com"),
            format!("$KV.osapi-job-responses.{id}.ev.web-01.example.com.{id}"),
            format!("$KV.osapi-job-responses.{id}.claim.host.web-01.example.com"),
            format!("$KV.osapi-job-responses.{id}.claim.any"),
            "$KV.osapi-agent-registry.web-01.example.com".to_owned(),
            format!("$JS.API.CONSUMER.MSG.NEXT.osapi-JOBS.{}", own[1].durable),
            format!(
                "$JS.API.CONSUMER.CREATE.osapi-JOBS.{}.{}",
                own[2].durable, own[2].filter
            ),
            "$JS.API.CONSUMER.MSG.NEXT.osapi-JOBS.osapi-any".to_owned(),
            format!("$JS.API.DIRECT.GET.KV_osapi-job-queue.$KV.osapi-job-queue.{id}"),
            format!("osapi.output.{id}.web-01.example.com"),
        ] {
            assert!(may_publish(&p, &allowed), "{allowed}");
        }
        let other = names.agent_consumers("db-01", labels.iter());
        for denied in [
            format!("$KV.osapi-job-responses.{id}.res.db-01"),
            format!("$KV.osapi-job-responses.{id}.ev.db-01.{id}"),
            // Events without a host in the key (the old layout).
            format!("$KV.osapi-job-responses.{id}.ev.{id}"),
            format!("$KV.osapi-job-responses.{id}.claim.host.db-01"),
            "$KV.osapi-agent-registry.db-01".to_owned(),
            // Another host's output, and a cancel (the API's).
            format!("osapi.output.{id}.db-01"),
            format!("$KV.osapi-job-responses.{id}.cancel"),
            format!("$JS.API.CONSUMER.MSG.NEXT.osapi-JOBS.{}", other[1].durable),
            format!("$JS.ACK.osapi-JOBS.{}.1.2.3.4.5", other[2].durable),
            format!(
                "$JS.API.CONSUMER.CREATE.osapi-JOBS.{}.{}",
                other[2].durable, other[2].filter
            ),
            "$KV.osapi-job-queue.x".to_owned(),
            "$KV.osapi-audit.x".to_owned(),
            "$KV.osapi-agent-enrollment.accepted.UABC".to_owned(),
        ] {
            assert!(!may_publish(&p, &denied), "{denied}");
        }
        assert_eq!(
            p.subscribe_allow,
            [format!("_INBOX_{}.>", key.public_key())]
        );
    }
}
