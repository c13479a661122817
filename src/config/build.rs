//! Raw file structs → typed [`Config`]: apply defaults, pair up secrets, resolve
//! roles. Problems that the typed form cannot even represent (both a secret and
//! its file, a `user_pass` block without a user, an unknown permission) are
//! reported here; everything else is left to [`Config::validate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::rbac::{Permission, PermissionSet};

use super::error::ConfigProblem;
use super::raw::*;
use super::types::*;

/// Problems found while building, keyed by path.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<ConfigProblem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(key, message));
    }
}

/// Empty strings mean "not set" for optional text (so the shipped file can list
/// `signing_key: ""` next to `signing_key_file`).
fn text(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn path(v: Option<PathBuf>) -> Option<PathBuf> {
    v.filter(|p| !p.as_os_str().is_empty())
}

fn dur(v: Option<HumanDuration>, default: std::time::Duration) -> std::time::Duration {
    v.map_or(default, |d| d.0)
}

fn size(v: Option<ByteSize>, default: u64) -> u64 {
    v.map_or(default, |s| s.0)
}

/// One of `inline` / `file`, not both.
fn secret(
    inline: Option<String>,
    file: Option<PathBuf>,
    key: &str,
    inline_name: &str,
    file_name: &str,
    problems: &mut Problems,
) -> Option<SecretSource> {
    match (text(inline), path(file)) {
        (Some(_), Some(_)) => {
            problems.push(
                format!("{key}.{inline_name}"),
                format!("set either {inline_name} or {file_name}, not both"),
            );
            None
        }
        (Some(s), None) => Some(SecretSource::Inline(s)),
        (None, Some(p)) => Some(SecretSource::File(p)),
        (None, None) => None,
    }
}

pub(crate) fn build(raw: RawConfig, credentials: Option<&Path>) -> (Config, Problems) {
    let mut p = Problems::default();
    let api = raw.api.unwrap_or_default();
    let nats = raw.nats.unwrap_or_default();
    let node = raw.node.unwrap_or_default();
    let telemetry = raw.telemetry.unwrap_or_default();
    let nats_server = nats_server(nats.server.unwrap_or_default(), &mut p);
    // Clients without an auth block use the embedded server's generated
    // credentials, found where that server keeps them.
    let generated = Generated {
        credential: credentials.map(|dir| dir.join(NATS_NKEY_CREDENTIAL)),
        credentials_dir: nats_server.credentials_dir(),
    };
    let config = Config {
        debug: raw.debug.unwrap_or(false),
        api: ApiConfig {
            server: api_server(
                api.server.unwrap_or_default(),
                credentials,
                &generated,
                &mut p,
            ),
            client: api_client(api.client.unwrap_or_default(), &mut p),
        },
        nats: NatsConfig {
            server: nats_server,
            stream: stream(nats.stream.unwrap_or_default()),
            kv: job_buckets(nats.kv.unwrap_or_default()),
            audit: bucket(nats.audit.unwrap_or_default(), BucketConfig::audit()),
            registry: bucket(nats.registry.unwrap_or_default(), BucketConfig::registry()),
        },
        node: NodeConfig {
            agent: agent(
                node.agent.unwrap_or_default(),
                credentials,
                &generated,
                &mut p,
            ),
        },
        telemetry: TelemetryConfig {
            tracing: {
                let t = telemetry.tracing.unwrap_or_default();
                TracingConfig {
                    enabled: t.enabled.unwrap_or(false),
                    exporter: t.exporter.unwrap_or_default(),
                    otlp_endpoint: text(t.otlp_endpoint),
                }
            },
        },
    };
    (config, p)
}

/// Where a client finds its generated credential.
struct Generated {
    credential: Option<PathBuf>,
    credentials_dir: PathBuf,
}

fn api_server(
    raw: RawApiServer,
    credentials: Option<&Path>,
    generated: &Generated,
    p: &mut Problems,
) -> ApiServerConfig {
    let d = ApiServerConfig::default();
    let sec = raw.security.unwrap_or_default();
    let key = "api.server.security";
    let signing_key_source = secret(
        sec.signing_key,
        sec.signing_key_file,
        key,
        "signing_key",
        "signing_key_file",
        p,
    );
    let mut roles = BTreeMap::new();
    for (name, perms) in sec.roles.unwrap_or_default() {
        let mut set = PermissionSet::new();
        for (i, perm) in perms.iter().enumerate() {
            match perm.parse::<Permission>() {
                Ok(perm) => {
                    set.insert(perm);
                }
                Err(e) => p.push(format!("{key}.roles.{name}[{i}]"), e.to_string()),
            }
        }
        roles.insert(name, set);
    }
    ApiServerConfig {
        port: raw.port.unwrap_or(d.port),
        listen: raw.listen.unwrap_or(d.listen),
        // An explicit empty path turns the socket off.
        unix_socket: match raw.unix_socket {
            None => d.unix_socket,
            Some(s) if s.as_os_str().is_empty() => None,
            Some(s) => Some(s),
        },
        nats: connection(
            raw.nats.unwrap_or_default(),
            "api.server.nats",
            credentials,
            generated,
            p,
        ),
        security: ApiSecurity {
            signing_key_source,
            credentials_directory: credentials.map(Path::to_path_buf),
            revocation_file: path(sec.revocation_file)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_REVOCATION_FILE)),
            roles,
            cors: CorsConfig {
                allow_origins: sec
                    .cors
                    .unwrap_or_default()
                    .allow_origins
                    .unwrap_or_default(),
            },
        },
        request_timeout: dur(raw.request_timeout, d.request_timeout),
        max_body_bytes: size(raw.max_body_bytes, d.max_body_bytes),
        max_jobs_in_flight: raw.max_jobs_in_flight.unwrap_or(d.max_jobs_in_flight),
        tls: {
            let tls = raw.tls.unwrap_or_default();
            ServerTls {
                cert_file: path(tls.cert_file).unwrap_or(d.tls.cert_file),
                key_file: path(tls.key_file)
                    .or_else(|| {
                        credentials
                            .map(|dir| dir.join(TLS_KEY_CREDENTIAL))
                            .filter(|p| p.exists())
                    })
                    .unwrap_or(d.tls.key_file),
            }
        },
    }
}

fn api_client(raw: RawApiClient, p: &mut Problems) -> ApiClientConfig {
    let d = ApiClientConfig::default();
    let sec = raw.security.unwrap_or_default();
    ApiClientConfig {
        ca_file: path(raw.tls.and_then(|t| t.ca_file)),
        url: raw.url.unwrap_or(d.url),
        security: ApiClientSecurity {
            bearer_token: secret(
                sec.bearer_token,
                sec.bearer_token_file,
                "api.client.security",
                "bearer_token",
                "bearer_token_file",
                p,
            ),
        },
    }
}

fn connection(
    raw: RawNatsConnection,
    key: &str,
    credentials: Option<&Path>,
    generated: &Generated,
    p: &mut Problems,
) -> NatsConnection {
    let d = NatsConnection::default();
    let auth = raw.auth.unwrap_or_default();
    let akey = format!("{key}.auth");
    let username = text(auth.username);
    let password_set =
        text(auth.password.clone()).is_some() || path(auth.password_file.clone()).is_some();
    let seed_set = path(auth.nkey_seed_file.clone()).is_some();
    let kind = auth.kind.unwrap_or(AuthType::Generated);
    if kind != AuthType::Enroll {
        for (field, set) in [
            (
                "join_seed_file",
                path(auth.join_seed_file.clone()).is_some(),
            ),
            ("identity_file", path(auth.identity_file.clone()).is_some()),
        ] {
            if set {
                p.push(
                    format!("{akey}.{field}"),
                    format!("is only used when {akey}.type is enroll"),
                );
            }
        }
    }
    // Settings for another auth type are most likely a forgotten `type:`.
    let stray = |p: &mut Problems, field: &str, set: bool| {
        if set {
            p.push(
                format!("{akey}.{field}"),
                format!("is set but {akey}.type is not the type that uses it"),
            );
        }
    };
    let auth = match kind {
        AuthType::Generated => {
            stray(p, "username", username.is_some());
            stray(p, "password", password_set);
            stray(p, "nkey_seed_file", seed_set);
            NatsClientAuth::Generated {
                credential: generated.credential.clone(),
                credentials_dir: generated.credentials_dir.clone(),
            }
        }
        AuthType::None => {
            stray(p, "username", username.is_some());
            stray(p, "password", password_set);
            stray(p, "nkey_seed_file", seed_set);
            NatsClientAuth::None
        }
        AuthType::UserPass => {
            stray(p, "nkey_seed_file", seed_set);
            let password = secret(
                auth.password,
                auth.password_file,
                &akey,
                "password",
                "password_file",
                p,
            )
            .or_else(|| {
                credentials.map(|dir| SecretSource::File(dir.join(NATS_PASSWORD_CREDENTIAL)))
            });
            match (username, password) {
                (Some(username), Some(password)) => NatsClientAuth::UserPass { username, password },
                (username, password) => {
                    if username.is_none() {
                        p.push(
                            format!("{akey}.username"),
                            "required when auth.type is user_pass",
                        );
                    }
                    if password.is_none() && !password_set {
                        p.push(
                            format!("{akey}.password"),
                            format!(
                                "user_pass needs password or password_file \
                                 (or a systemd credential named {NATS_PASSWORD_CREDENTIAL})"
                            ),
                        );
                    }
                    NatsClientAuth::None
                }
            }
        }
        AuthType::Nkey => {
            stray(p, "username", username.is_some());
            stray(p, "password", password_set);
            let seed = path(auth.nkey_seed_file)
                .or_else(|| credentials.map(|dir| dir.join(NATS_NKEY_CREDENTIAL)));
            match seed {
                Some(seed_file) => NatsClientAuth::Nkey { seed_file },
                None => {
                    p.push(
                        format!("{akey}.nkey_seed_file"),
                        format!("required when auth.type is nkey (or a systemd credential named {NATS_NKEY_CREDENTIAL})"),
                    );
                    NatsClientAuth::None
                }
            }
        }
        AuthType::Enroll => {
            stray(p, "username", username.is_some());
            stray(p, "password", password_set);
            stray(p, "nkey_seed_file", seed_set);
            if key != "node.agent.nats" {
                p.push(
                    format!("{akey}.type"),
                    "enroll is only for agents (node.agent.nats.auth)",
                );
            }
            NatsClientAuth::Enroll {
                join_seed_file: path(auth.join_seed_file)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_JOIN_SEED_FILE)),
                identity_file: path(auth.identity_file)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_IDENTITY_FILE)),
            }
        }
    };
    let tls = raw.tls.unwrap_or_default();
    let tls = TlsConfig {
        ca_file: path(tls.ca_file),
        cert_file: path(tls.cert_file),
        key_file: path(tls.key_file),
    };
    NatsConnection {
        servers: raw.servers.unwrap_or(d.servers),
        client_name: text(raw.client_name),
        namespace: raw.namespace.unwrap_or(d.namespace),
        auth,
        tls: (tls != TlsConfig::default()).then_some(tls),
    }
}

fn nats_server(raw: RawNatsServer, p: &mut Problems) -> NatsServerConfig {
    let d = NatsServerConfig::default();
    let auth = raw.auth.unwrap_or_default();
    let users = auth.users.unwrap_or_default();
    let nkeys = auth.nkeys.unwrap_or_default();
    let key = "nats.server.auth";
    let store_dir = raw.store_dir.clone().unwrap_or(d.store_dir.clone());
    let kind = auth.kind.unwrap_or(AuthType::Generated);
    if kind != AuthType::Generated && path(auth.credentials_dir.clone()).is_some() {
        p.push(
            format!("{key}.credentials_dir"),
            "is only used when auth.type is generated",
        );
    }
    let auth = match kind {
        AuthType::Generated | AuthType::None | AuthType::Nkey if !users.is_empty() => {
            p.push(
                format!("{key}.users"),
                "users are only used when auth.type is user_pass",
            );
            NatsServerAuth::None
        }
        AuthType::Generated | AuthType::None if !nkeys.is_empty() => {
            p.push(
                format!("{key}.nkeys"),
                "nkeys are only used when auth.type is nkey",
            );
            NatsServerAuth::None
        }
        AuthType::Generated => NatsServerAuth::Generated {
            credentials_dir: path(auth.credentials_dir)
                .unwrap_or_else(|| default_credentials_dir(&store_dir)),
        },
        AuthType::None => NatsServerAuth::None,
        AuthType::Enroll => {
            p.push(
                format!("{key}.type"),
                "enroll is a client auth type, for node.agent.nats.auth",
            );
            NatsServerAuth::None
        }
        AuthType::UserPass => {
            if !nkeys.is_empty() {
                p.push(
                    format!("{key}.nkeys"),
                    "nkeys are only used when auth.type is nkey",
                );
            }
            if users.is_empty() {
                p.push(format!("{key}.users"), "user_pass needs at least one user");
            }
            let mut out = Vec::new();
            for (i, u) in users.into_iter().enumerate() {
                let ukey = format!("{key}.users[{i}]");
                let password = secret(
                    u.password,
                    u.password_file,
                    &ukey,
                    "password",
                    "password_file",
                    p,
                );
                match (text(u.username), password) {
                    (Some(username), Some(password)) => out.push(NatsUser { username, password }),
                    (username, password) => {
                        if username.is_none() {
                            p.push(format!("{ukey}.username"), "required");
                        }
                        if password.is_none() {
                            p.push(
                                format!("{ukey}.password"),
                                "password or password_file is required",
                            );
                        }
                    }
                }
            }
            NatsServerAuth::UserPass { users: out }
        }
        AuthType::Nkey => {
            if nkeys.is_empty() {
                p.push(
                    format!("{key}.nkeys"),
                    "nkey auth needs at least one public user nkey",
                );
            }
            NatsServerAuth::Nkey { nkeys }
        }
    };
    let cluster = raw.cluster.unwrap_or_default();
    let routes = cluster.routes.unwrap_or_default();
    let cluster_password = secret(
        cluster.password,
        cluster.password_file,
        "nats.server.cluster",
        "password",
        "password_file",
        p,
    );
    let cluster_tls = nats_tls(cluster.tls, "nats.server.cluster.tls", p);
    let cluster = match text(cluster.name) {
        Some(name) => Some(ClusterConfig {
            password: {
                let mutual_tls = cluster_tls.as_ref().is_some_and(|t| t.ca_file.is_some());
                if cluster_password.is_none() && !mutual_tls {
                    p.push(
                        "nats.server.cluster.password_file",
                        "cluster routes need authentication: a password shared by every \
                         member (password_file), or tls with a ca_file",
                    );
                }
                cluster_password
            },
            tls: cluster_tls,
            name,
            // Routes to nobody need no outside listener.
            host: text(cluster.host).unwrap_or_else(|| {
                if routes.is_empty() {
                    LOOPBACK_CLUSTER_HOST
                } else {
                    DEFAULT_CLUSTER_HOST
                }
                .to_owned()
            }),
            port: cluster.port.unwrap_or(DEFAULT_CLUSTER_PORT),
            routes,
        }),
        None => {
            if !routes.is_empty() {
                p.push(
                    "nats.server.cluster.name",
                    "required when cluster routes are set",
                );
            }
            None
        }
    };
    NatsServerConfig {
        host: raw.host.unwrap_or(d.host),
        port: raw.port.unwrap_or(d.port),
        store_dir,
        binary: path(raw.binary).unwrap_or(d.binary),
        namespace: raw.namespace.unwrap_or(d.namespace),
        server_name: text(raw.server_name),
        auth,
        tls: nats_tls(raw.tls, "nats.server.tls", p),
        cluster,
    }
}

/// A listener's TLS files: none at all, or at least a certificate and its key.
fn nats_tls(raw: Option<RawNatsTls>, key: &str, p: &mut Problems) -> Option<NatsTlsFiles> {
    let raw = raw.unwrap_or_default();
    let (cert, tls_key, ca) = (path(raw.cert_file), path(raw.key_file), path(raw.ca_file));
    match (cert, tls_key) {
        (Some(cert_file), Some(key_file)) => Some(NatsTlsFiles {
            cert_file,
            key_file,
            ca_file: ca,
        }),
        (None, None) => {
            if ca.is_some() {
                p.push(format!("{key}.ca_file"), "needs cert_file and key_file too");
            }
            None
        }
        (cert, _) => {
            let missing = if cert.is_none() {
                "cert_file"
            } else {
                "key_file"
            };
            p.push(
                format!("{key}.{missing}"),
                "required when the other of cert_file and key_file is set",
            );
            None
        }
    }
}

fn stream(raw: RawStream) -> StreamConfig {
    let d = StreamConfig::default();
    StreamConfig {
        name: raw.name.unwrap_or(d.name),
        max_age: dur(raw.max_age, d.max_age),
        max_msgs: raw.max_msgs,
        storage: raw.storage.unwrap_or(d.storage),
        replicas: raw.replicas.unwrap_or(d.replicas),
        discard: raw.discard.unwrap_or(d.discard),
    }
}

fn job_buckets(raw: RawJobBuckets) -> JobBucketsConfig {
    let d = JobBucketsConfig::default();
    JobBucketsConfig {
        jobs_bucket: raw.jobs_bucket.unwrap_or(d.jobs_bucket),
        responses_bucket: raw.responses_bucket.unwrap_or(d.responses_bucket),
        ttl: dur(raw.ttl, d.ttl),
        max_bytes: size(raw.max_bytes, d.max_bytes),
        storage: raw.storage.unwrap_or(d.storage),
        replicas: raw.replicas.unwrap_or(d.replicas),
    }
}

fn bucket(raw: RawBucket, d: BucketConfig) -> BucketConfig {
    BucketConfig {
        bucket: raw.bucket.unwrap_or(d.bucket),
        ttl: dur(raw.ttl, d.ttl),
        max_bytes: size(raw.max_bytes, d.max_bytes),
        storage: raw.storage.unwrap_or(d.storage),
        replicas: raw.replicas.unwrap_or(d.replicas),
    }
}

// Not built from `AgentConfig::default()`: that would read the kernel's
// hostname even when the file sets one.
fn agent(
    raw: RawAgent,
    credentials: Option<&Path>,
    generated: &Generated,
    p: &mut Problems,
) -> AgentConfig {
    let consumer = raw.consumer.unwrap_or_default();
    let command = raw.command.unwrap_or_default();
    let dc = ConsumerConfig::default();
    let dcmd = CommandConfig::default();
    AgentConfig {
        nats: connection(
            raw.nats.unwrap_or_default(),
            "node.agent.nats",
            credentials,
            generated,
            p,
        ),
        // Only read the kernel's hostname when the file does not say.
        hostname: text(raw.hostname).unwrap_or_else(system_hostname),
        labels: raw.labels.unwrap_or_default(),
        max_jobs: raw.max_jobs.unwrap_or(DEFAULT_MAX_JOBS),
        consumer: ConsumerConfig {
            max_deliver: consumer.max_deliver.unwrap_or(dc.max_deliver),
            ack_wait: dur(consumer.ack_wait, dc.ack_wait),
            back_off: consumer
                .back_off
                .map_or(dc.back_off, |v| v.into_iter().map(|d| d.0).collect()),
        },
        heartbeat_interval: dur(raw.heartbeat_interval, DEFAULT_HEARTBEAT_INTERVAL),
        command: CommandConfig {
            default_timeout: dur(command.default_timeout, dcmd.default_timeout),
            max_timeout: dur(command.max_timeout, dcmd.max_timeout),
            max_output_bytes: size(command.max_output_bytes, dcmd.max_output_bytes),
            max_live_output_bytes: size(command.max_live_output_bytes, dcmd.max_live_output_bytes),
            // 0 turns a limit off.
            memory_max: match command.memory_max {
                Some(b) => Some(b.0).filter(|b| *b > 0),
                None => dcmd.memory_max,
            },
            cpu_quota_percent: match command.cpu_quota_percent {
                Some(p) => Some(p).filter(|p| *p > 0),
                None => dcmd.cpu_quota_percent,
            },
            tasks_max: match command.tasks_max {
                Some(t) => Some(t).filter(|t| *t > 0),
                None => dcmd.tasks_max,
            },
        },
    }
}
