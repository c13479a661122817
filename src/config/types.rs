//! The typed configuration the rest of the program uses.
//!
//! Plain data with every default applied: durations are [`Duration`], paths are
//! [`PathBuf`], and an `Option` only where "not set" is itself meaningful (no
//! cluster, no TLS, no signing key configured). Secrets stay unread until a
//! component asks for them ([`SecretSource::read`]), and never show in `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::rbac::{PermissionSet, Roles};

/// Minimum signing key length (HS256 wants at least the hash size).
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

/// File name of the systemd credential holding the signing key
/// (`LoadCredential=signing.key:/etc/osapi/signing.key`).
pub const SIGNING_KEY_CREDENTIAL: &str = "signing.key";
/// File name of the systemd credential holding the API's TLS key
/// (`LoadCredential=tls.key:/etc/osapi/tls/api.key`).
pub const TLS_KEY_CREDENTIAL: &str = "tls.key";
/// Credential name used for a NATS password when `auth.type` is `user_pass`
/// and neither `password` nor `password_file` is set.
pub const NATS_PASSWORD_CREDENTIAL: &str = "nats.password";
/// Credential name used for a NATS nkey seed when `auth.type` is `nkey` and
/// `nkey_seed_file` is not set.
pub const NATS_NKEY_CREDENTIAL: &str = "nats.nkey";

/// An error resolving a secret or the signing key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read secret file {}: {source}", path.display())]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no signing key: set api.server.security.signing_key_file (or signing_key), \
         or provide a systemd credential named {SIGNING_KEY_CREDENTIAL}"
    )]
    NoSigningKey,
    #[error(
        "signing key from {from} is {len} bytes; at least {MIN_SIGNING_KEY_BYTES} are required"
    )]
    SigningKeyTooShort { from: String, len: usize },
    #[error("secret from {from} is not valid UTF-8")]
    NotUtf8 { from: String },
}

/// Where a secret comes from. Read it with [`SecretSource::read`] when needed,
/// so a rotated file is picked up on restart and the value is not kept around.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(String),
    File(PathBuf),
}

impl SecretSource {
    /// The secret's bytes. A file's trailing newline(s) are dropped, since
    /// `echo secret > file` is how people write them.
    pub fn read(&self) -> Result<Vec<u8>, ConfigError> {
        match self {
            SecretSource::Inline(s) => Ok(s.as_bytes().to_vec()),
            SecretSource::File(path) => {
                let mut bytes = std::fs::read(path).map_err(|source| ConfigError::SecretFile {
                    path: path.clone(),
                    source,
                })?;
                while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                    bytes.pop();
                }
                Ok(bytes)
            }
        }
    }

    /// The secret as text (passwords, tokens).
    pub fn read_string(&self) -> Result<String, ConfigError> {
        String::from_utf8(self.read()?).map_err(|_| ConfigError::NotUtf8 {
            from: self.describe(),
        })
    }

    /// Where it comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Inline(_) => "the inline value".to_owned(),
            SecretSource::File(p) => format!("file {}", p.display()),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// JetStream storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    File,
    Memory,
}

/// What a full stream discards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscardPolicy {
    #[default]
    Old,
    New,
}

/// Where finished spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceExporter {
    /// Trace context only (ids in logs and propagated), no span export.
    #[default]
    None,
    Stdout,
    Otlp,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub debug: bool,
    pub api: ApiConfig,
    pub nats: NatsConfig,
    pub node: NodeConfig,
    pub telemetry: TelemetryConfig,
}

impl Config {
    /// Where the generated credentials and the job signing key live:
    /// `nats.server.auth.credentials_dir`, or its default beside the store
    /// when the embedded server uses another auth type.
    pub fn credentials_dir(&self) -> PathBuf {
        self.nats.server.credentials_dir()
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiConfig {
    pub server: ApiServerConfig,
    pub client: ApiClientConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiServerConfig {
    pub port: u16,
    pub listen: IpAddr,
    /// `None` when disabled (`unix_socket: ""`).
    pub unix_socket: Option<PathBuf>,
    pub nats: NatsConnection,
    pub security: ApiSecurity,
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
    /// Jobs one principal may have in flight (created, not settled); 429 beyond.
    pub max_jobs_in_flight: usize,
    /// The HTTPS certificate of every TCP listener not on loopback.
    pub tls: ServerTls,
}

/// Where the API's certificate and key are.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    /// The systemd credential `tls.key` when the unit passes one and no
    /// `key_file` is configured.
    pub key_file: PathBuf,
}

/// Where `osapi tls generate` puts the certificate by default.
pub const DEFAULT_TLS_DIR: &str = "/etc/osapi/tls";

impl Default for ServerTls {
    fn default() -> Self {
        ServerTls {
            cert_file: Path::new(DEFAULT_TLS_DIR).join("api.crt"),
            key_file: Path::new(DEFAULT_TLS_DIR).join("api.key"),
        }
    }
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            port: 8080,
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            unix_socket: Some(PathBuf::from("/run/osapi/api.sock")),
            nats: NatsConnection::default(),
            security: ApiSecurity::default(),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            max_jobs_in_flight: 16,
            tls: ServerTls::default(),
        }
    }
}

/// Where revoked tokens are listed by default.
pub const DEFAULT_REVOCATION_FILE: &str = "/etc/osapi/revoked-tokens";

#[derive(Debug, Clone, PartialEq)]
pub struct ApiSecurity {
    /// The configured key (inline or file). When `None`, [`Self::signing_key`]
    /// falls back to the systemd credential.
    pub signing_key_source: Option<SecretSource>,
    /// `$CREDENTIALS_DIRECTORY` at load time (systemd `LoadCredential=`).
    pub credentials_directory: Option<PathBuf>,
    /// Revoked tokens (`osapi token revoke` writes, the API reads).
    pub revocation_file: PathBuf,
    /// Custom roles; see [`Self::roles`] for the full table.
    pub roles: BTreeMap<String, PermissionSet>,
    pub cors: CorsConfig,
}

impl Default for ApiSecurity {
    fn default() -> Self {
        ApiSecurity {
            signing_key_source: None,
            credentials_directory: None,
            revocation_file: PathBuf::from(DEFAULT_REVOCATION_FILE),
            roles: BTreeMap::new(),
            cors: CorsConfig::default(),
        }
    }
}

impl ApiSecurity {
    /// Where the signing key will be read from, if anywhere.
    pub fn signing_key_location(&self) -> Option<SecretSource> {
        self.signing_key_source.clone().or_else(|| {
            self.credentials_directory
                .as_ref()
                .map(|dir| SecretSource::File(dir.join(SIGNING_KEY_CREDENTIAL)))
        })
    }

    /// Reads the signing key: inline, else the configured file, else
    /// `$CREDENTIALS_DIRECTORY/signing.key`. It must be at least 32 bytes.
    pub fn signing_key(&self) -> Result<Vec<u8>, ConfigError> {
        let source = self
            .signing_key_location()
            .ok_or(ConfigError::NoSigningKey)?;
        let key = source.read()?;
        if key.len() < MIN_SIGNING_KEY_BYTES {
            return Err(ConfigError::SigningKeyTooShort {
                from: source.describe(),
                len: key.len(),
            });
        }
        Ok(key)
    }

    /// Built-in roles overlaid with the custom ones.
    pub fn role_table(&self) -> Roles {
        Roles::with_custom(&self.roles)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorsConfig {
    /// Empty: no CORS headers at all.
    pub allow_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiClientConfig {
    pub url: String,
    pub security: ApiClientSecurity,
    /// The only CA osapictl trusts for https:// URLs; `None` = system roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for ApiClientConfig {
    fn default() -> Self {
        ApiClientConfig {
            url: "http://127.0.0.1:8080".to_owned(),
            security: ApiClientSecurity::default(),
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiClientSecurity {
    pub bearer_token: Option<SecretSource>,
}

impl ApiClientSecurity {
    /// The token, if one is configured.
    pub fn bearer_token(&self) -> Result<Option<String>, ConfigError> {
        self.bearer_token
            .as_ref()
            .map(|s| s.read_string().map(|t| t.trim().to_owned()))
            .transpose()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NatsConfig {
    pub server: NatsServerConfig,
    pub stream: StreamConfig,
    pub kv: JobBucketsConfig,
    pub audit: BucketConfig,
    pub registry: BucketConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            server: NatsServerConfig::default(),
            stream: StreamConfig::default(),
            kv: JobBucketsConfig::default(),
            audit: BucketConfig::audit(),
            registry: BucketConfig::registry(),
        }
    }
}

/// The embedded NATS server (`osapi nats server start`).
#[derive(Debug, Clone, PartialEq)]
pub struct NatsServerConfig {
    pub host: String,
    pub port: u16,
    pub store_dir: PathBuf,
    /// A bare name is looked up on `PATH`.
    pub binary: PathBuf,
    pub namespace: String,
    /// nats-server's `server_name`; `None` = the host name when clustered
    /// (clustered JetStream needs one, unique in the cluster).
    pub server_name: Option<String>,
    pub auth: NatsServerAuth,
    /// TLS on the client port (required of clients when set).
    pub tls: Option<NatsTlsFiles>,
    /// `Some` when `cluster.name` is set.
    pub cluster: Option<ClusterConfig>,
}

impl NatsServerConfig {
    /// `auth.credentials_dir`, or its default beside the store when the
    /// server uses another auth type (the job signing key lives there too).
    pub fn credentials_dir(&self) -> PathBuf {
        match &self.auth {
            NatsServerAuth::Generated { credentials_dir } => credentials_dir.clone(),
            _ => default_credentials_dir(&self.store_dir),
        }
    }
}

/// A NATS listener's certificate, key and the CA peers are checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsTlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: Option<PathBuf>,
}

impl Default for NatsServerConfig {
    fn default() -> Self {
        NatsServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 4222,
            store_dir: PathBuf::from("/var/lib/osapi/nats"),
            binary: PathBuf::from("nats-server"),
            namespace: "osapi".to_owned(),
            server_name: None,
            tls: None,
            auth: NatsServerAuth::Generated {
                credentials_dir: default_credentials_dir(Path::new("/var/lib/osapi/nats")),
            },
            cluster: None,
        }
    }
}

/// Where generated credentials live when `credentials_dir` is not set: beside
/// the JetStream store (`/var/lib/osapi/nats` → `/var/lib/osapi/credentials`),
/// never inside it, because systemd hands the store to the server's user.
pub fn default_credentials_dir(store_dir: &Path) -> PathBuf {
    match store_dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join("credentials"),
        _ => PathBuf::from("credentials"),
    }
}

/// Who may connect to the embedded server.
#[derive(Debug, Clone, PartialEq)]
pub enum NatsServerAuth {
    /// One nkey per role, made on first start in `credentials_dir`, each
    /// role limited to its subjects (`bus::permissions`).
    Generated {
        credentials_dir: PathBuf,
    },
    /// Anyone who reaches the port: an explicit, warned-about opt-out.
    None,
    UserPass {
        users: Vec<NatsUser>,
    },
    /// Public user nkeys (`U…`).
    Nkey {
        nkeys: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NatsUser {
    pub username: String,
    pub password: SecretSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub name: String,
    /// Address the route listener binds.
    pub host: String,
    pub port: u16,
    pub routes: Vec<String>,
    /// The routes' shared secret (every member the same).
    pub password: Option<SecretSource>,
    /// Mutual TLS between routes.
    pub tls: Option<NatsTlsFiles>,
}

pub const DEFAULT_CLUSTER_PORT: u16 = 6222;
/// The route listener's address when routes are configured (peers are other hosts).
pub const DEFAULT_CLUSTER_HOST: &str = "0.0.0.0";
/// The route listener's address when no routes are configured.
pub const LOOPBACK_CLUSTER_HOST: &str = "127.0.0.1";

/// The JOBS notification stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub name: String,
    pub max_age: Duration,
    /// `None`: unlimited.
    pub max_msgs: Option<u64>,
    pub storage: StorageKind,
    pub replicas: usize,
    pub discard: DiscardPolicy,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: "JOBS".to_owned(),
            max_age: Duration::from_secs(24 * 3600),
            max_msgs: None,
            storage: StorageKind::File,
            replicas: 1,
            discard: DiscardPolicy::Old,
        }
    }
}

/// The two job buckets (`nats.kv`): definitions and responses share settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JobBucketsConfig {
    pub jobs_bucket: String,
    pub responses_bucket: String,
    pub ttl: Duration,
    pub max_bytes: u64,
    pub storage: StorageKind,
    pub replicas: usize,
}

impl Default for JobBucketsConfig {
    fn default() -> Self {
        JobBucketsConfig {
            jobs_bucket: "job-queue".to_owned(),
            responses_bucket: "job-responses".to_owned(),
            ttl: Duration::from_secs(3600),
            max_bytes: 100 << 20,
            storage: StorageKind::File,
            replicas: 1,
        }
    }
}

/// One KV bucket (`nats.audit`, `nats.registry`).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketConfig {
    pub bucket: String,
    pub ttl: Duration,
    pub max_bytes: u64,
    pub storage: StorageKind,
    pub replicas: usize,
}

impl BucketConfig {
    /// `nats.audit` defaults: 720h, 50 MiB.
    pub fn audit() -> Self {
        BucketConfig {
            bucket: "audit".to_owned(),
            ttl: Duration::from_secs(720 * 3600),
            max_bytes: 50 << 20,
            storage: StorageKind::File,
            replicas: 1,
        }
    }

    /// `nats.registry` defaults: 30s TTL (a silent agent vanishes), 10 MiB.
    pub fn registry() -> Self {
        BucketConfig {
            bucket: "agent-registry".to_owned(),
            ttl: Duration::from_secs(30),
            max_bytes: 10 << 20,
            storage: StorageKind::File,
            replicas: 1,
        }
    }
}

/// A NATS client connection (`api.server.nats`, `node.agent.nats`).
#[derive(Debug, Clone, PartialEq)]
pub struct NatsConnection {
    pub servers: Vec<String>,
    pub client_name: Option<String>,
    /// Prefix of every NATS name; empty means none.
    pub namespace: String,
    pub auth: NatsClientAuth,
    /// `Some` when any TLS file is configured. `tls://` URLs enable TLS with
    /// the system roots without this.
    pub tls: Option<TlsConfig>,
}

impl Default for NatsConnection {
    fn default() -> Self {
        NatsConnection {
            servers: vec!["nats://127.0.0.1:4222".to_owned()],
            client_name: None,
            namespace: "osapi".to_owned(),
            auth: NatsClientAuth::Generated {
                credential: None,
                credentials_dir: default_credentials_dir(Path::new("/var/lib/osapi/nats")),
            },
            tls: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NatsClientAuth {
    /// The role's generated nkey: the systemd credential `credential` when
    /// the unit passed one, else the role's seed in `credentials_dir` (the
    /// embedded server's, `nats.server.auth.credentials_dir`).
    Generated {
        credential: Option<PathBuf>,
        credentials_dir: PathBuf,
    },
    /// No credentials: only for a server that is itself open (`type: none`).
    None,
    UserPass {
        username: String,
        password: SecretSource,
    },
    Nkey {
        seed_file: PathBuf,
    },
    /// An agent on another host ([`crate::enrollment`]): it connects with
    /// its own nkey in `identity_file` (made on first start), and while no
    /// admin has accepted that key, files its request with the join
    /// credential in `join_seed_file` and waits.
    Enroll {
        join_seed_file: PathBuf,
        identity_file: PathBuf,
    },
}

/// Where an enrolling agent finds the join credential by default (copied by
/// the operator from the server's `credentials/enroll.nkey`).
pub const DEFAULT_JOIN_SEED_FILE: &str = "/etc/osapi/enroll.nkey";
/// Where an enrolling agent keeps its own nkey by default.
pub const DEFAULT_IDENTITY_FILE: &str = "/var/lib/osapi/agent-identity.nkey";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    /// Client certificate; set together with `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeConfig {
    pub agent: AgentConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub nats: NatsConnection,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub max_jobs: usize,
    pub consumer: ConsumerConfig,
    pub heartbeat_interval: Duration,
    pub command: CommandConfig,
}

pub(crate) const DEFAULT_MAX_JOBS: usize = 10;
pub(crate) const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            nats: NatsConnection::default(),
            hostname: system_hostname(),
            labels: BTreeMap::new(),
            max_jobs: DEFAULT_MAX_JOBS,
            consumer: ConsumerConfig::default(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            command: CommandConfig::default(),
        }
    }
}

/// The host's name from the kernel, without a libc call; `localhost` if it
/// cannot be read (not Linux, no /proc).
pub fn system_hostname() -> String {
    hostname_from(Path::new("/proc/sys/kernel/hostname"))
}

pub(crate) fn hostname_from(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    pub max_deliver: u32,
    pub ack_wait: Duration,
    /// Redelivery delays; when set, JetStream uses them instead of `ack_wait`
    /// between deliveries. Must be shorter than `max_deliver`.
    pub back_off: Vec<Duration>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_deliver: 5,
            ack_wait: Duration::from_secs(120),
            back_off: [120, 300, 600, 1200]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommandConfig {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub max_output_bytes: u64,
    /// Output sent live per stream while a command runs; past it, the rest
    /// is reported cut (the result keeps its own `max_output_bytes`).
    pub max_live_output_bytes: u64,
    /// A command unit's `MemoryMax=`, `CPUQuota=` (percent of one CPU) and
    /// `TasksMax=`; `None`: no limit.
    pub memory_max: Option<u64>,
    pub cpu_quota_percent: Option<u32>,
    pub tasks_max: Option<u64>,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            max_output_bytes: 1 << 20,
            max_live_output_bytes: 64 << 20,
            memory_max: Some(2 << 30),
            cpu_quota_percent: None,
            tasks_max: Some(4096),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryConfig {
    pub tracing: TracingConfig,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TracingConfig {
    pub enabled: bool,
    pub exporter: TraceExporter,
    /// `None`: the exporter's own default (and `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<String>,
}
