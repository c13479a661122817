//! The file format, exactly: one struct per section of `osapi.yaml` (SPEC §3).
//!
//! Every field is an `Option` so an absent key means "use the default" and a
//! bad key can be dropped while the rest of the file is still checked (see
//! [`super::de`]). Defaults, validation and secret handling happen when these
//! are turned into the typed [`super::Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::types::{DiscardPolicy, StorageKind, TraceExporter};

/// A human duration (`30s`, `2m`, `720h`), parsed with humantime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, 2m or 720h")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v.trim())
                    .map(HumanDuration)
                    .map_err(|e| {
                        E::custom(format!(
                            "invalid duration {v:?}: {e} (write e.g. 30s, 2m, 1h)"
                        ))
                    })
            }
        }
        d.deserialize_str(V)
    }
}

/// A size in bytes: an integer, or a string with a unit (`100 MiB`, `512KiB`,
/// `1G`). `K`/`M`/`G`/`T` and `KiB`… are powers of 1024 (as in systemd); `KB`,
/// `MB`… are powers of 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub u64);

pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {s:?} (write bytes, or e.g. 100MiB, 512KiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, or a string such as 100MiB")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `type:` of an auth block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthType {
    /// Per-role nkeys made on first start (the default).
    Generated,
    None,
    UserPass,
    Nkey,
    /// An agent on another host: its own nkey, accepted by an admin after
    /// it asked with the join credential.
    Enroll,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub debug: Option<bool>,
    pub api: Option<RawApi>,
    pub nats: Option<RawNats>,
    pub node: Option<RawNode>,
    pub telemetry: Option<RawTelemetry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub server: Option<RawApiServer>,
    pub client: Option<RawApiClient>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiServer {
    pub port: Option<u16>,
    pub listen: Option<IpAddr>,
    pub unix_socket: Option<PathBuf>,
    pub nats: Option<RawNatsConnection>,
    pub security: Option<RawApiSecurity>,
    pub request_timeout: Option<HumanDuration>,
    pub max_body_bytes: Option<ByteSize>,
    pub max_jobs_in_flight: Option<usize>,
    pub tls: Option<RawServerTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiSecurity {
    pub signing_key: Option<String>,
    pub signing_key_file: Option<PathBuf>,
    pub revocation_file: Option<PathBuf>,
    pub roles: Option<BTreeMap<String, Vec<String>>>,
    pub cors: Option<RawCors>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCors {
    pub allow_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiClient {
    pub url: Option<String>,
    pub security: Option<RawApiClientSecurity>,
    pub tls: Option<RawClientTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientTls {
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiClientSecurity {
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNats {
    pub server: Option<RawNatsServer>,
    pub stream: Option<RawStream>,
    pub kv: Option<RawJobBuckets>,
    pub audit: Option<RawBucket>,
    pub registry: Option<RawBucket>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNatsServer {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub store_dir: Option<PathBuf>,
    pub binary: Option<PathBuf>,
    pub namespace: Option<String>,
    pub server_name: Option<String>,
    pub auth: Option<RawServerAuth>,
    pub tls: Option<RawNatsTls>,
    pub cluster: Option<RawCluster>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerAuth {
    #[serde(rename = "type")]
    pub kind: Option<AuthType>,
    pub users: Option<Vec<RawNatsUser>>,
    pub nkeys: Option<Vec<String>>,
    pub credentials_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNatsUser {
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub routes: Option<Vec<String>>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub tls: Option<RawNatsTls>,
}

/// A listener's TLS files (`nats.server.tls`, `nats.server.cluster.tls`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNatsTls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStream {
    pub name: Option<String>,
    pub max_age: Option<HumanDuration>,
    pub max_msgs: Option<u64>,
    pub storage: Option<StorageKind>,
    pub replicas: Option<usize>,
    pub discard: Option<DiscardPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJobBuckets {
    pub jobs_bucket: Option<String>,
    pub responses_bucket: Option<String>,
    pub ttl: Option<HumanDuration>,
    pub max_bytes: Option<ByteSize>,
    pub storage: Option<StorageKind>,
    pub replicas: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBucket {
    pub bucket: Option<String>,
    pub ttl: Option<HumanDuration>,
    pub max_bytes: Option<ByteSize>,
    pub storage: Option<StorageKind>,
    pub replicas: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNatsConnection {
    pub servers: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub namespace: Option<String>,
    pub auth: Option<RawClientAuth>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientAuth {
    #[serde(rename = "type")]
    pub kind: Option<AuthType>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub nkey_seed_file: Option<PathBuf>,
    pub join_seed_file: Option<PathBuf>,
    pub identity_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub agent: Option<RawAgent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub nats: Option<RawNatsConnection>,
    pub hostname: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub max_jobs: Option<usize>,
    pub consumer: Option<RawConsumer>,
    pub heartbeat_interval: Option<HumanDuration>,
    pub command: Option<RawCommand>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsumer {
    pub max_deliver: Option<u32>,
    pub ack_wait: Option<HumanDuration>,
    pub back_off: Option<Vec<HumanDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommand {
    pub default_timeout: Option<HumanDuration>,
    pub max_timeout: Option<HumanDuration>,
    pub max_output_bytes: Option<ByteSize>,
    pub max_live_output_bytes: Option<ByteSize>,
    pub memory_max: Option<ByteSize>,
    pub cpu_quota_percent: Option<u32>,
    pub tasks_max: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    pub tracing: Option<RawTracing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    pub enabled: Option<bool>,
    pub exporter: Option<TraceExporter>,
    pub otlp_endpoint: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("100 MiB"), Ok(100 << 20));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2kb"), Ok(2000));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
