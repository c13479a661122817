//! Semantic checks of a typed [`Config`] ([`Config::validate`]), and the deeper
//! [`Config::check_all`] that also reads every secret, for `osapi config check`.

use std::path::Path;
use std::time::Duration;

use super::build::Problems;
use super::error::ConfigProblem;
use super::types::*;

/// Longest `node.agent.command.max_timeout` an agent may configure, and so
/// the longest a command without a timeout of its own may run anywhere
/// (requests may ask for at most `job::MAX_REQUESTED_COMMAND_TIMEOUT`).
pub const MAX_AGENT_COMMAND_TIMEOUT: Duration = Duration::from_secs(3600);

/// `[A-Za-z0-9_-]+`: label keys, label value segments, bucket and stream names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Config {
    /// Every semantic problem of this configuration (empty when valid). Does not
    /// touch the filesystem; see [`Config::check_all`] for that.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut p = Problems::default();
        let s = &self.api.server;
        port(&mut p, "api.server.port", s.port);
        positive(&mut p, "api.server.request_timeout", s.request_timeout);
        if s.max_jobs_in_flight == 0 {
            p.push("api.server.max_jobs_in_flight", "must be at least 1");
        }
        if s.max_body_bytes == 0 {
            p.push("api.server.max_body_bytes", "must be at least 1 byte");
        }
        if let Some(sock) = &s.unix_socket
            && !sock.is_absolute()
        {
            p.push(
                "api.server.unix_socket",
                "must be an absolute path (or \"\" to disable)",
            );
        }
        connection(&mut p, "api.server.nats", &s.nats);
        let sec = &s.security;
        if let Some(SecretSource::Inline(key)) = &sec.signing_key_source
            && key.len() < MIN_SIGNING_KEY_BYTES
        {
            p.push(
                "api.server.security.signing_key",
                format!(
                    "is {} bytes; at least {MIN_SIGNING_KEY_BYTES} are required",
                    key.len()
                ),
            );
        }
        for name in sec.roles.keys() {
            if !is_token(name) {
                p.push(
                    format!("api.server.security.roles.{name}"),
                    "role names must match [A-Za-z0-9_-]+",
                );
            }
        }
        for (i, origin) in sec.cors.allow_origins.iter().enumerate() {
            if origin.trim().is_empty() {
                p.push(
                    format!("api.server.security.cors.allow_origins[{i}]"),
                    "must not be empty",
                );
            }
        }

        let c = &self.api.client;
        if !(c.url.starts_with("http://") || c.url.starts_with("https://"))
            || c.url.len() < "http://x".len()
        {
            p.push("api.client.url", "must be an http:// or https:// URL");
        }

        let n = &self.nats.server;
        if n.host.trim().is_empty() {
            p.push("nats.server.host", "must not be empty");
        }
        port(&mut p, "nats.server.port", n.port);
        if n.store_dir.as_os_str().is_empty() {
            p.push("nats.server.store_dir", "must not be empty");
        }
        namespace(&mut p, "nats.server.namespace", &n.namespace);
        if let NatsServerAuth::Nkey { nkeys } = &n.auth {
            for (i, k) in nkeys.iter().enumerate() {
                if !crate::natsd::is_user_nkey(k) {
                    p.push(
                        format!("nats.server.auth.nkeys[{i}]"),
                        "must be a public user nkey (56 characters, starting with U)",
                    );
                }
            }
        }
        if let NatsServerAuth::UserPass { users } = &n.auth {
            for (i, u) in users.iter().enumerate() {
                if let SecretSource::Inline(pw) = &u.password
                    && pw.is_empty()
                {
                    p.push(
                        format!("nats.server.auth.users[{i}].password"),
                        "must not be empty",
                    );
                }
            }
        }
        if let Some(name) = &n.server_name {
            // nats-server takes it verbatim; spaces or quotes would break routes.
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                p.push("nats.server.server_name", "must match [A-Za-z0-9._-]+");
            }
        }
        if let Some(cl) = &n.cluster {
            if !is_token(&cl.name) {
                p.push("nats.server.cluster.name", "must match [A-Za-z0-9_-]+");
            }
            if cl.host.trim().is_empty() {
                p.push("nats.server.cluster.host", "must not be empty");
            }
            port(&mut p, "nats.server.cluster.port", cl.port);
            if cl.port == n.port {
                p.push(
                    "nats.server.cluster.port",
                    "must differ from nats.server.port",
                );
            }
            urls(&mut p, "nats.server.cluster.routes", &cl.routes, false);
        }

        let st = &self.nats.stream;
        if !is_token(&st.name) {
            p.push("nats.stream.name", "must match [A-Za-z0-9_-]+");
        }
        positive(&mut p, "nats.stream.max_age", st.max_age);
        if st.max_msgs == Some(0) {
            p.push(
                "nats.stream.max_msgs",
                "must be at least 1 (leave it unset for no limit)",
            );
        }
        replicas(&mut p, "nats.stream.replicas", st.replicas);

        let kv = &self.nats.kv;
        for (key, name) in [
            ("nats.kv.jobs_bucket", &kv.jobs_bucket),
            ("nats.kv.responses_bucket", &kv.responses_bucket),
        ] {
            if !is_token(name) {
                p.push(key, "must match [A-Za-z0-9_-]+");
            }
        }
        if kv.jobs_bucket == kv.responses_bucket {
            p.push(
                "nats.kv.responses_bucket",
                "must differ from nats.kv.jobs_bucket",
            );
        }
        positive(&mut p, "nats.kv.ttl", kv.ttl);
        if kv.max_bytes == 0 {
            p.push("nats.kv.max_bytes", "must be at least 1 byte");
        }
        replicas(&mut p, "nats.kv.replicas", kv.replicas);
        bucket(&mut p, "nats.audit", &self.nats.audit);
        bucket(&mut p, "nats.registry", &self.nats.registry);

        let a = &self.node.agent;
        connection(&mut p, "node.agent.nats", &a.nats);
        // The name jobs target it by: the same rule as a target's.
        if let Err(why) =
            crate::job::hostname::check_hostname(&a.hostname, crate::job::hostname::MAX_DOMAIN_LEN)
        {
            p.push(
                "node.agent.hostname",
                format!("must be a host name (RFC 1123): {why}"),
            );
        }
        for (k, v) in &a.labels {
            if !is_token(k) {
                p.push(
                    format!("node.agent.labels.{k}"),
                    "label keys must match [A-Za-z0-9_-]+",
                );
            } else if !v.split('.').all(is_token) {
                p.push(
                    format!("node.agent.labels.{k}"),
                    format!("value {v:?}: each dot-separated segment must match [A-Za-z0-9_-]+"),
                );
            }
        }
        if a.max_jobs == 0 {
            p.push("node.agent.max_jobs", "must be at least 1");
        }
        let cons = &a.consumer;
        if cons.max_deliver == 0 {
            p.push("node.agent.consumer.max_deliver", "must be at least 1");
        }
        positive(&mut p, "node.agent.consumer.ack_wait", cons.ack_wait);
        for (i, d) in cons.back_off.iter().enumerate() {
            positive(&mut p, &format!("node.agent.consumer.back_off[{i}]"), *d);
        }
        // JetStream rejects a consumer whose back-off list is not shorter than max_deliver.
        if !cons.back_off.is_empty() && cons.back_off.len() >= cons.max_deliver as usize {
            p.push(
                "node.agent.consumer.back_off",
                format!(
                    "has {} entries; it must have fewer than max_deliver ({})",
                    cons.back_off.len(),
                    cons.max_deliver
                ),
            );
        }
        positive(
            &mut p,
            "node.agent.heartbeat_interval",
            a.heartbeat_interval,
        );
        // A heartbeat slower than the registry TTL makes live agents flicker out.
        if !a.heartbeat_interval.is_zero() && a.heartbeat_interval >= self.nats.registry.ttl {
            p.push(
                "node.agent.heartbeat_interval",
                format!(
                    "must be shorter than nats.registry.ttl ({})",
                    humantime::format_duration(self.nats.registry.ttl)
                ),
            );
        }
        let cmd = &a.command;
        positive(
            &mut p,
            "node.agent.command.default_timeout",
            cmd.default_timeout,
        );
        positive(&mut p, "node.agent.command.max_timeout", cmd.max_timeout);
        if cmd.default_timeout > cmd.max_timeout {
            p.push(
                "node.agent.command.default_timeout",
                "must not exceed node.agent.command.max_timeout",
            );
        }
        if cmd.max_timeout > MAX_AGENT_COMMAND_TIMEOUT {
            p.push("node.agent.command.max_timeout", "must be at most 1h");
        }
        if cmd.max_output_bytes == 0 {
            p.push(
                "node.agent.command.max_output_bytes",
                "must be at least 1 byte",
            );
        }
        if cmd.max_live_output_bytes == 0 {
            p.push(
                "node.agent.command.max_live_output_bytes",
                "must be at least 1 byte",
            );
        }
        if cmd.memory_max.is_some_and(|b| b < 1 << 20) {
            p.push(
                "node.agent.command.memory_max",
                "must be at least 1MiB, or 0 for no limit",
            );
        }

        let t = &self.telemetry.tracing;
        if let Some(e) = &t.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            p.push(
                "telemetry.tracing.otlp_endpoint",
                "must be an http:// or https:// URL",
            );
        }
        p.0
    }

    /// [`Config::validate`], plus everything that needs the filesystem: the
    /// signing key resolves (and is long enough), and every secret, seed and
    /// TLS file can be read. For `osapi config check`.
    pub fn check_all(&self) -> Vec<ConfigProblem> {
        let mut problems = self.validate();
        let mut p = Problems::default();
        let sec = &self.api.server.security;
        let key_name = match &sec.signing_key_source {
            Some(SecretSource::Inline(_)) => "api.server.security.signing_key",
            _ => "api.server.security.signing_key_file",
        };
        // An inline key that is too short is already reported by validate().
        if !matches!(&sec.signing_key_source, Some(SecretSource::Inline(_)))
            && let Err(e) = sec.signing_key()
        {
            p.push(key_name, e.to_string());
        }
        if let Some(SecretSource::File(_)) = &self.api.client.security.bearer_token
            && let Err(e) = self.api.client.security.bearer_token()
        {
            p.push("api.client.security.bearer_token_file", e.to_string());
        }
        check_connection(&mut p, "api.server.nats", &self.api.server.nats);
        check_connection(&mut p, "node.agent.nats", &self.node.agent.nats);
        if let NatsServerAuth::UserPass { users } = &self.nats.server.auth {
            for (i, u) in users.iter().enumerate() {
                readable_secret(
                    &mut p,
                    &format!("nats.server.auth.users[{i}].password_file"),
                    &u.password,
                );
            }
        }
        problems.extend(p.0);
        problems
    }
}

fn readable_secret(p: &mut Problems, key: &str, s: &SecretSource) {
    if let SecretSource::File(_) = s {
        match s.read() {
            Ok(v) if v.is_empty() => p.push(key, format!("{} is empty", s.describe())),
            Ok(_) => {}
            Err(e) => p.push(key, e.to_string()),
        }
    }
}

fn readable_file(p: &mut Problems, key: &str, path: &Path) {
    if let Err(e) = std::fs::File::open(path) {
        p.push(key, format!("cannot read {}: {e}", path.display()));
    }
}

fn check_connection(p: &mut Problems, key: &str, c: &NatsConnection) {
    match &c.auth {
        // Generated credentials may not exist before the server first starts.
        NatsClientAuth::Generated { .. } | NatsClientAuth::None => {}
        NatsClientAuth::UserPass { password, .. } => {
            readable_secret(p, &format!("{key}.auth.password_file"), password)
        }
        NatsClientAuth::Nkey { seed_file } => {
            readable_file(p, &format!("{key}.auth.nkey_seed_file"), seed_file)
        }
        // The identity is made on first start; the join credential is only
        // needed until the agent is accepted, and may be gone after that.
        NatsClientAuth::Enroll { .. } => {}
    }
    if let Some(tls) = &c.tls {
        for (name, file) in [
            ("ca_file", &tls.ca_file),
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ] {
            if let Some(f) = file {
                readable_file(p, &format!("{key}.tls.{name}"), f);
            }
        }
    }
}

fn port(p: &mut Problems, key: &str, port: u16) {
    if port == 0 {
        p.push(key, "port 0 is not a valid port");
    }
}

fn positive(p: &mut Problems, key: &str, d: Duration) {
    if d.is_zero() {
        p.push(key, "must be longer than 0s");
    }
}

fn replicas(p: &mut Problems, key: &str, n: usize) {
    if !(1..=5).contains(&n) {
        p.push(key, format!("must be between 1 and 5 (got {n})"));
    }
}

fn namespace(p: &mut Problems, key: &str, ns: &str) {
    if !ns.is_empty() && !is_token(ns) {
        p.push(key, "must match [A-Za-z0-9_-]* (empty for no prefix)");
    }
}

fn urls(p: &mut Problems, key: &str, urls: &[String], required: bool) {
    if required && urls.is_empty() {
        p.push(key, "needs at least one URL");
    }
    for (i, u) in urls.iter().enumerate() {
        if u.trim().is_empty() || u.chars().any(char::is_whitespace) {
            p.push(
                format!("{key}[{i}]"),
                "must be a non-empty URL without spaces",
            );
        }
    }
}

fn bucket(p: &mut Problems, key: &str, b: &BucketConfig) {
    if !is_token(&b.bucket) {
        p.push(format!("{key}.bucket"), "must match [A-Za-z0-9_-]+");
    }
    positive(p, &format!("{key}.ttl"), b.ttl);
    if b.max_bytes == 0 {
        p.push(format!("{key}.max_bytes"), "must be at least 1 byte");
    }
    replicas(p, &format!("{key}.replicas"), b.replicas);
}

fn connection(p: &mut Problems, key: &str, c: &NatsConnection) {
    urls(p, &format!("{key}.servers"), &c.servers, true);
    if let Some(name) = &c.client_name
        && name.trim().is_empty()
    {
        p.push(format!("{key}.client_name"), "must not be blank");
    }
    namespace(p, &format!("{key}.namespace"), &c.namespace);
    if let NatsClientAuth::UserPass { username, .. } = &c.auth
        && username.trim().is_empty()
    {
        p.push(format!("{key}.auth.username"), "must not be blank");
    }
    if let Some(tls) = &c.tls
        && tls.cert_file.is_some() != tls.key_file.is_some()
    {
        let missing = if tls.cert_file.is_some() {
            "key_file"
        } else {
            "cert_file"
        };
        p.push(
            format!("{key}.tls.{missing}"),
            "cert_file and key_file go together: set both or neither",
        );
    }
}
