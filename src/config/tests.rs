//! Tests of the whole loading pipeline.

use std::path::PathBuf;
use std::time::Duration;

use super::tree::{KeyPath, parse_yaml};
use super::*;
use crate::rbac::Permission;

const SHIPPED: &str = include_str!("../../packaging/osapi.yaml");
const DOCS: &str = include_str!("../../docs/configuration.md");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn yaml_err(text: &str, env: &[(String, String)]) -> ConfigErrors {
    match Config::from_str_yaml(text, env) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e,
    }
}

fn keys(e: &ConfigErrors) -> Vec<&str> {
    e.0.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn defaults_match_the_spec() {
    let c = Config::default();
    assert!(!c.debug);
    assert_eq!(c.api.server.port, 8080);
    assert_eq!(c.api.server.listen.to_string(), "0.0.0.0");
    assert_eq!(
        c.api.server.unix_socket,
        Some(PathBuf::from("/run/osapi/api.sock"))
    );
    assert_eq!(c.api.server.request_timeout, Duration::from_secs(30));
    assert_eq!(c.api.server.max_body_bytes, 1 << 20);
    assert_eq!(c.api.server.security.signing_key_source, None);
    assert!(c.api.server.security.cors.allow_origins.is_empty());
    assert_eq!(
        c.api.server.nats.servers,
        vec!["nats://127.0.0.1:4222".to_owned()]
    );
    assert_eq!(c.api.server.nats.namespace, "osapi");
    // Secure by default: the embedded server's generated credentials.
    assert_eq!(
        c.api.server.nats.auth,
        NatsClientAuth::Generated {
            credential: None,
            credentials_dir: PathBuf::from("/var/lib/osapi/credentials"),
        }
    );
    assert_eq!(c.api.client.url, "http://127.0.0.1:8080");
    assert_eq!(c.nats.server.host, "127.0.0.1");
    assert_eq!(c.nats.server.port, 4222);
    assert_eq!(
        c.nats.server.store_dir,
        PathBuf::from("/var/lib/osapi/nats")
    );
    assert_eq!(c.nats.server.binary, PathBuf::from("nats-server"));
    assert_eq!(c.nats.server.cluster, None);
    assert_eq!(c.nats.stream.name, "JOBS");
    assert_eq!(c.nats.stream.max_age, Duration::from_secs(86_400));
    assert_eq!(c.nats.stream.storage, StorageKind::File);
    assert_eq!(c.nats.stream.discard, DiscardPolicy::Old);
    assert_eq!(c.nats.kv.jobs_bucket, "job-queue");
    assert_eq!(c.nats.kv.responses_bucket, "job-responses");
    assert_eq!(c.nats.kv.ttl, Duration::from_secs(3600));
    assert_eq!(c.nats.kv.max_bytes, 100 << 20);
    assert_eq!(c.nats.audit.bucket, "audit");
    assert_eq!(c.nats.audit.ttl, Duration::from_secs(720 * 3600));
    assert_eq!(c.nats.audit.max_bytes, 50 << 20);
    assert_eq!(c.nats.registry.bucket, "agent-registry");
    assert_eq!(c.nats.registry.ttl, Duration::from_secs(30));
    assert_eq!(c.node.agent.hostname, system_hostname());
    assert_eq!(c.node.agent.max_jobs, 10);
    assert_eq!(c.node.agent.consumer.max_deliver, 5);
    assert_eq!(c.node.agent.consumer.ack_wait, Duration::from_secs(120));
    assert_eq!(c.node.agent.heartbeat_interval, Duration::from_secs(10));
    assert_eq!(
        c.node.agent.command.default_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(c.node.agent.command.max_timeout, Duration::from_secs(300));
    assert_eq!(c.node.agent.command.max_output_bytes, 1 << 20);
    assert!(!c.telemetry.tracing.enabled);
    assert_eq!(c.telemetry.tracing.exporter, TraceExporter::None);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
}

#[test]
fn empty_file_gives_the_defaults() {
    for text in ["", "# only a comment\n", "{}", "api:\n  server:\n"] {
        assert_eq!(
            Config::from_str_yaml(text, &[]).unwrap(),
            Config::default(),
            "{text:?}"
        );
    }
    assert_eq!(Config::from_str_toml("", &[]).unwrap(), Config::default());
}

#[test]
fn shipped_file_loads_and_holds_the_defaults() {
    let c = Config::from_str_yaml(SHIPPED, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.validate().is_empty());
    let mut expected = Config::default();
    expected.api.server.security.signing_key_source =
        Some(SecretSource::File("/etc/osapi/signing.key".into()));
    // The embedded NATS is shipped on 4223, clear of Debian's own
    // nats-server.service on 4222 (docs/architecture.md, Packaging and units).
    expected.nats.server.port = 4223;
    expected.api.server.nats.servers = vec!["nats://127.0.0.1:4223".to_owned()];
    expected.node.agent.nats.servers = vec!["nats://127.0.0.1:4223".to_owned()];
    // osapictl on the appliance speaks HTTPS to the socket, pinning the
    // generated CA (the API unit's socket listens on every address).
    expected.api.client.url = "https://127.0.0.1:8080".to_owned();
    expected.api.client.ca_file = Some("/etc/osapi/tls/ca.crt".into());
    assert_eq!(c, expected);
}

#[test]
fn shipped_nats_port_matches_the_socket_unit() {
    const SOCKET: &str = include_str!("../../systemd/osapi-nats.socket");
    let c = Config::from_str_yaml(SHIPPED, &[]).unwrap_or_else(|e| panic!("{e}"));
    let listen = format!("ListenStream={}:{}", c.nats.server.host, c.nats.server.port);
    assert!(
        SOCKET.lines().any(|l| l.trim() == listen),
        "osapi-nats.socket does not say {listen}"
    );
    assert_ne!(
        c.nats.server.port, 4222,
        "collides with Debian's nats-server.service"
    );
}

#[test]
fn shipped_file_lists_every_key() {
    let tree = parse_yaml(SHIPPED, None).unwrap();
    let missing: Vec<String> = known_keys()
        .into_iter()
        .map(|k| k.key)
        .filter(|k| tree.get(&KeyPath::parse(k)).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from packaging/osapi.yaml: {missing:?}"
    );
}

#[test]
fn docs_name_every_key_and_variable() {
    let missing: Vec<String> = known_keys()
        .into_iter()
        .filter(|k| !DOCS.contains(&format!("`{}`", k.env_var)))
        .map(|k| k.env_var)
        .collect();
    assert!(
        missing.is_empty(),
        "variables missing from docs/configuration.md: {missing:?}"
    );
}

const SAMPLE_YAML: &str = r#"
debug: true
api:
  server:
    port: 9000
    listen: "::1"
    unix_socket: ""
    request_timeout: 45s
    max_body_bytes: 2MiB
    nats:
      servers: [nats://a:4222, nats://b:4222]
      client_name: api
      namespace: prod
      auth: {type: user_pass, username: api, password_file: /etc/osapi/nats.pw}
      tls: {ca_file: /etc/ssl/ca.pem}
    security:
      signing_key: "0123456789abcdef0123456789abcdef"
      roles:
        ops: [node:read, command:execute]
      cors:
        allow_origins: [https://console.example.com]
nats:
  server:
    auth:
      type: user_pass
      users:
        - {username: api, password: secret}
    cluster: {name: c1, routes: [nats-route://10.0.0.2:6222], password: route-secret}
  stream: {max_msgs: 1000, storage: memory, replicas: 3, discard: new}
  kv: {jobs_bucket: jq, ttl: 2h, max_bytes: 1000}
  registry: {ttl: 1m}
node:
  agent:
    hostname: web-01
    labels: {group: web.dev.us-east}
    max_jobs: 4
    consumer: {max_deliver: 3, back_off: [10s, 20s]}
    command: {max_timeout: 10m}
telemetry:
  tracing: {enabled: true, exporter: otlp, otlp_endpoint: "http://collector:4318"}
"#;

const SAMPLE_TOML: &str = r#"
debug = true

[api.server]
port = 9000
listen = "::1"
unix_socket = ""
request_timeout = "45s"
max_body_bytes = "2MiB"

[api.server.nats]
servers = ["nats://a:4222", "nats://b:4222"]
client_name = "api"
namespace = "prod"
auth = { type = "user_pass", username = "api", password_file = "/etc/osapi/nats.pw" }
tls = { ca_file = "/etc/ssl/ca.pem" }

[api.server.security]
signing_key = "0123456789abcdef0123456789abcdef"
roles = { ops = ["node:read", "command:execute"] }
cors.allow_origins = ["https://console.example.com"]

[nats.server.auth]
type = "user_pass"
users = [{ username = "api", password = "secret" }]

[nats.server.cluster]
name = "c1"
routes = ["nats-route://10.0.0.2:6222"]
password = "route-secret"

[nats.stream]
max_msgs = 1000
storage = "memory"
replicas = 3
discard = "new"

[nats.kv]
jobs_bucket = "jq"
ttl = "2h"
max_bytes = 1000

[nats.registry]
ttl = "1m"

[node.agent]
hostname = "web-01"
labels = { group = "web.dev.us-east" }
max_jobs = 4
consumer = { max_deliver = 3, back_off = ["10s", "20s"] }
command = { max_timeout = "10m" }

[telemetry.tracing]
enabled = true
exporter = "otlp"
otlp_endpoint = "http://collector:4318"
"#;

#[test]
fn yaml_and_toml_give_the_same_config() {
    let y = Config::from_str_yaml(SAMPLE_YAML, &[]).unwrap_or_else(|e| panic!("{e}"));
    let t = Config::from_str_toml(SAMPLE_TOML, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(y, t);
    assert!(y.debug);
    assert_eq!(y.api.server.port, 9000);
    assert_eq!(y.api.server.listen.to_string(), "::1");
    assert_eq!(y.api.server.unix_socket, None);
    assert_eq!(y.api.server.max_body_bytes, 2 << 20);
    assert_eq!(
        y.api.server.nats.auth,
        NatsClientAuth::UserPass {
            username: "api".into(),
            password: SecretSource::File("/etc/osapi/nats.pw".into())
        }
    );
    assert_eq!(
        y.api
            .server
            .nats
            .tls
            .as_ref()
            .and_then(|t| t.ca_file.clone()),
        Some("/etc/ssl/ca.pem".into())
    );
    assert_eq!(
        y.api.server.security.roles["ops"]
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![Permission::NodeRead, Permission::CommandExecute]
    );
    assert!(y.api.server.security.role_table().get("ops").is_some());
    let cluster = y.nats.server.cluster.as_ref().unwrap();
    assert_eq!((cluster.name.as_str(), cluster.port), ("c1", 6222));
    assert_eq!(y.nats.stream.max_msgs, Some(1000));
    assert_eq!(y.nats.stream.storage, StorageKind::Memory);
    assert_eq!(y.nats.kv.jobs_bucket, "jq");
    assert_eq!(y.nats.kv.responses_bucket, "job-responses");
    assert_eq!(y.node.agent.labels["group"], "web.dev.us-east");
    assert_eq!(
        y.node.agent.consumer.back_off,
        vec![Duration::from_secs(10), Duration::from_secs(20)]
    );
    assert_eq!(y.telemetry.tracing.exporter, TraceExporter::Otlp);
}

#[test]
fn environment_wins_and_handles_lists_and_maps() {
    let file = "api:\n  server:\n    port: 9000\nnode:\n  agent:\n    labels: {zone: a}\n";
    let e = env(&[
        ("OSAPI_API_SERVER_PORT", "9100"),
        (
            "OSAPI_API_SERVER_NATS_SERVERS",
            "[nats://a:4222, nats://b:4222]",
        ),
        ("OSAPI_NODE_AGENT_LABELS", "{group: web.dev}"),
        ("OSAPI_NODE_AGENT_LABELS_RACK_ID", "r1"),
        ("OSAPI_NODE_AGENT_CONSUMER_ACK_WAIT", "45s"),
        ("OSAPI_NATS_KV_JOBS_BUCKET", "jq"),
        ("OSAPI_NATS_STREAM_STORAGE", "memory"),
        ("OSAPI_DEBUG", "true"),
        ("OSAPI_API_SERVER_MAX_BODY_BYTES", "4MiB"),
        // Text keys are taken verbatim, however YAML-ish they look.
        ("OSAPI_API_SERVER_NATS_AUTH_TYPE", "user_pass"),
        ("OSAPI_API_SERVER_NATS_AUTH_USERNAME", "api"),
        ("OSAPI_API_SERVER_NATS_AUTH_PASSWORD", "*p: #w"),
        ("OSAPI_NODE_AGENT_HOSTNAME", "1234"),
        // Not configuration: ignored.
        ("OSAPI_URL", "http://x"),
        ("OSAPI_TOKEN", "t"),
        ("OSAPI_FILE", "/etc/osapi/other.yaml"),
        ("PATH", "/bin"),
    ]);
    let c = Config::from_str_yaml(file, &e).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.api.server.port, 9100);
    assert_eq!(
        c.api.server.nats.servers,
        vec!["nats://a:4222".to_owned(), "nats://b:4222".to_owned()]
    );
    // A whole-map variable replaces the file's map; entry variables add to it.
    assert_eq!(
        c.node
            .agent
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        vec!["group=web.dev", "rack_id=r1"]
    );
    assert_eq!(c.node.agent.consumer.ack_wait, Duration::from_secs(45));
    assert_eq!(c.nats.kv.jobs_bucket, "jq");
    assert_eq!(c.nats.stream.storage, StorageKind::Memory);
    assert!(c.debug);
    assert_eq!(c.api.server.max_body_bytes, 4 << 20);
    assert_eq!(
        c.api.server.nats.auth,
        NatsClientAuth::UserPass {
            username: "api".into(),
            password: SecretSource::Inline("*p: #w".into())
        }
    );
    assert_eq!(c.node.agent.hostname, "1234");
}

#[test]
fn environment_alone_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let c = Config::load_optional(&missing, &env(&[("OSAPI_API_SERVER_PORT", "7000")])).unwrap();
    assert_eq!(c.api.server.port, 7000);
    let err = Config::load(&missing, &[]).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err.to_string()
            .contains("cannot read the configuration file"),
        "{err}"
    );
}

#[test]
fn unknown_key_names_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("osapi.yaml");
    std::fs::write(&path, "debug: false\napi:\n  server:\n    prot: 8080\n").unwrap();
    let err = Config::load(&path, &[]).unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    let p = &err.0[0];
    assert_eq!(p.key, "api.server.prot");
    assert_eq!(p.line, Some(4));
    assert_eq!(
        err.to_string(),
        format!(
            "{}:4: api.server.prot: unknown key (did you mean port?)",
            path.display()
        )
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "api:\n  server:\n    port: 99999\n    lsiten: 0.0.0.0\nnode:\n  agnet: {}\n";
    let err = yaml_err(text, &[]);
    assert_eq!(err.len(), 3, "{err}");
    let lines: Vec<_> = err.0.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        lines,
        vec![
            ("api.server.port", Some(3)),
            ("api.server.lsiten", Some(4)),
            ("node.agnet", Some(6))
        ]
    );
    assert!(err.0[0].message.contains("99999"), "{}", err.0[0].message);
    assert!(
        err.0[2].message.contains("did you mean agent?"),
        "{}",
        err.0[2].message
    );
    assert_eq!(err.to_string().lines().count(), 3);
}

#[test]
fn type_and_semantic_problems_together() {
    let text = "\
api:
  server:
    port: 0
    request_timeout: soon
    security:
      signing_key: short
      signing_key_file: /k
      roles: {ops: [node:read, node:delete]}
nats:
  stream: {replicas: 6}
  server:
    namespace: a.b
node:
  agent:
    max_jobs: 0
    labels: {group: web..dev, bad key: x}
    consumer: {back_off: [1s, 2s, 3s, 4s, 5s]}
    command: {default_timeout: 3h, max_timeout: 2h}
    nats:
      auth: {type: user_pass}
      tls: {cert_file: /c}
      servers: []
";
    let err = yaml_err(text, &[]);
    let k = keys(&err);
    for want in [
        "api.server.port",
        "api.server.request_timeout",
        "api.server.security.signing_key",
        "api.server.security.roles.ops[1]",
        "nats.stream.replicas",
        "nats.server.namespace",
        "node.agent.max_jobs",
        "node.agent.labels.group",
        "node.agent.labels.bad key",
        "node.agent.consumer.back_off",
        "node.agent.command.default_timeout",
        "node.agent.command.max_timeout",
        "node.agent.nats.auth.username",
        "node.agent.nats.auth.password",
        "node.agent.nats.tls.key_file",
        "node.agent.nats.servers",
    ] {
        assert!(k.contains(&want), "missing {want} in:\n{err}");
    }
    let timeout = err
        .0
        .iter()
        .find(|p| p.key == "api.server.request_timeout")
        .unwrap();
    assert_eq!(timeout.line, Some(4));
    assert!(
        timeout.message.contains("invalid duration"),
        "{}",
        timeout.message
    );
    let perm = err
        .0
        .iter()
        .find(|p| p.key == "api.server.security.roles.ops[1]")
        .unwrap();
    assert_eq!(perm.line, Some(8));
}

#[test]
fn duration_errors_name_the_key() {
    let err = yaml_err(
        "node:\n  agent:\n    consumer:\n      ack_wait: 2 fortnights\n",
        &[],
    );
    assert_eq!(keys(&err), vec!["node.agent.consumer.ack_wait"]);
    assert_eq!(err.0[0].line, Some(4));
    let err = yaml_err(
        "",
        &env(&[("OSAPI_NODE_AGENT_HEARTBEAT_INTERVAL", "often")]),
    );
    assert_eq!(keys(&err), vec!["node.agent.heartbeat_interval"]);
    assert_eq!(
        err.0[0].env_var.as_deref(),
        Some("OSAPI_NODE_AGENT_HEARTBEAT_INTERVAL")
    );
    assert!(err.to_string().starts_with(
        "OSAPI_NODE_AGENT_HEARTBEAT_INTERVAL: node.agent.heartbeat_interval: invalid duration"
    ));
}

#[test]
fn unknown_environment_variable_is_an_error() {
    let err = yaml_err("", &env(&[("OSAPI_API_SERVER_PROT", "1")]));
    assert_eq!(err.len(), 1);
    assert_eq!(err.0[0].env_var.as_deref(), Some("OSAPI_API_SERVER_PROT"));
    assert!(
        err.to_string()
            .contains("did you mean OSAPI_API_SERVER_PORT?"),
        "{err}"
    );
    let err = yaml_err("", &env(&[("OSAPI_API_SERVER", "{port: 1}")]));
    assert!(err.to_string().contains("section"), "{err}");
    let err = yaml_err("", &env(&[("OSAPI_API_SERVER_PORT", "[1")]));
    assert!(
        err.to_string()
            .contains("OSAPI_API_SERVER_PORT: api.server.port: cannot parse value"),
        "{err}"
    );
}

#[test]
fn syntax_errors_have_a_line() {
    let err = yaml_err("api:\n  server:\n    port: [\n", &[]);
    assert_eq!(err.len(), 1);
    assert!(err.0[0].line.is_some());
    assert!(err.0[0].message.starts_with("syntax error"), "{err}");
    let err = Config::from_str_toml("debug = true\ndebug = false\n", &[]).unwrap_err();
    assert_eq!(err.0[0].line, Some(2), "{err}");
}

#[test]
fn toml_unknown_key_has_its_line() {
    let err = Config::from_str_toml("[api.server]\nport = 1\nprot = 2\n", &[]).unwrap_err();
    assert_eq!(keys(&err), vec!["api.server.prot"]);
    assert_eq!(err.0[0].line, Some(3));
}

#[test]
fn secrets_do_not_leak_in_debug() {
    let text = "api:\n  server:\n    security:\n      signing_key: TOPSECRETTOPSECRETTOPSECRETTOPSECRET\n    nats:\n      auth: {type: user_pass, username: u, password: HUNTER2PASSWORD}\n";
    let c = Config::from_str_yaml(text, &[]).unwrap_or_else(|e| panic!("{e}"));
    let dbg = format!("{c:?} {c:#?}");
    assert!(!dbg.contains("TOPSECRET"), "{dbg}");
    assert!(!dbg.contains("HUNTER2"), "{dbg}");
    assert!(dbg.contains("<redacted>"));
    assert_eq!(
        c.api.server.security.signing_key().unwrap(),
        b"TOPSECRETTOPSECRETTOPSECRETTOPSECRET"
    );
}

#[test]
fn secret_sources_are_exclusive() {
    let err = yaml_err(
        "api:\n  client:\n    security: {bearer_token: t, bearer_token_file: /t}\n",
        &[],
    );
    assert_eq!(keys(&err), vec!["api.client.security.bearer_token"]);
    assert_eq!(err.0[0].line, Some(3));
    let err = yaml_err(
        "api:\n  server:\n    security:\n      signing_key: 0123456789abcdef0123456789abcdef\n      signing_key_file: /k\n",
        &[],
    );
    assert_eq!(keys(&err), vec!["api.server.security.signing_key"]);
}

#[test]
fn signing_key_from_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let creds = env(&[("CREDENTIALS_DIRECTORY", &dir.path().to_string_lossy())]);
    let c = Config::from_str_yaml("", &creds).unwrap();
    assert_eq!(
        c.api.server.security.credentials_directory.as_deref(),
        Some(dir.path())
    );
    // Missing credential file: a clear error, also from check_all.
    assert!(matches!(
        c.api.server.security.signing_key(),
        Err(ConfigError::SecretFile { .. })
    ));
    assert_eq!(
        c.check_all()
            .iter()
            .map(|p| p.key.as_str())
            .collect::<Vec<_>>(),
        vec!["api.server.security.signing_key_file"]
    );

    std::fs::write(dir.path().join("signing.key"), "short\n").unwrap();
    assert!(matches!(
        c.api.server.security.signing_key(),
        Err(ConfigError::SigningKeyTooShort { len: 5, .. })
    ));

    let key = "k".repeat(40);
    std::fs::write(dir.path().join("signing.key"), format!("{key}\n")).unwrap();
    assert_eq!(c.api.server.security.signing_key().unwrap(), key.as_bytes());
    assert!(c.check_all().is_empty());

    // A configured key wins over the credential.
    let c = Config::from_str_yaml(
        "api: {server: {security: {signing_key_file: /nonexistent/key}}}",
        &creds,
    )
    .unwrap();
    assert!(matches!(
        c.api.server.security.signing_key(),
        Err(ConfigError::SecretFile { .. })
    ));

    // No key anywhere.
    let c = Config::from_str_yaml("", &[]).unwrap();
    assert!(matches!(
        c.api.server.security.signing_key(),
        Err(ConfigError::NoSigningKey)
    ));
}

#[test]
fn nats_password_falls_back_to_credential() {
    let text = "node:\n  agent:\n    nats:\n      auth: {type: user_pass, username: agent}\n";
    let dir = tempfile::tempdir().unwrap();
    let creds = env(&[("CREDENTIALS_DIRECTORY", &dir.path().to_string_lossy())]);
    let c = Config::from_str_yaml(text, &creds).unwrap();
    assert_eq!(
        c.node.agent.nats.auth,
        NatsClientAuth::UserPass {
            username: "agent".into(),
            password: SecretSource::File(dir.path().join("nats.password"))
        }
    );
    // Without the credential it is a problem.
    let err = yaml_err(text, &[]);
    assert_eq!(keys(&err), vec!["node.agent.nats.auth.password"]);
}

#[test]
fn check_file_reads_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    std::fs::write(&key, "x".repeat(32)).unwrap();
    let path = dir.path().join("osapi.yaml");
    std::fs::write(
        &path,
        format!(
            "api:\n  server:\n    security:\n      signing_key_file: {}\n  client:\n    security:\n      bearer_token_file: {}\n",
            key.display(),
            dir.path().join("missing-token").display()
        ),
    )
    .unwrap();
    assert!(Config::load(&path, &[]).is_ok());
    let err = Config::check_file(&path, &[]).unwrap_err();
    assert_eq!(keys(&err), vec!["api.client.security.bearer_token_file"]);
    assert_eq!(err.0[0].line, Some(7), "{err}");
}

#[test]
fn toml_path_is_read_as_toml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("osapi.toml");
    std::fs::write(&path, "[api.server]\nport = 9999\n").unwrap();
    assert_eq!(Config::load(&path, &[]).unwrap().api.server.port, 9999);
}

#[test]
fn secret_files_lose_their_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "pa ss\r\n\n").unwrap();
    assert_eq!(SecretSource::File(f).read().unwrap(), b"pa ss");
}

#[test]
fn known_keys_and_env_names() {
    let keys = known_keys();
    let port = keys.iter().find(|k| k.key == "api.server.port").unwrap();
    assert_eq!(port.env_var, "OSAPI_API_SERVER_PORT");
    let ack = keys
        .iter()
        .find(|k| k.key == "node.agent.consumer.ack_wait")
        .unwrap();
    assert_eq!(ack.env_var, "OSAPI_NODE_AGENT_CONSUMER_ACK_WAIT");
    // No key's variable starts with a map key's variable (entry syntax stays unambiguous).
    for map in [
        "OSAPI_NODE_AGENT_LABELS_",
        "OSAPI_API_SERVER_SECURITY_ROLES_",
    ] {
        assert!(!keys.iter().any(|k| k.env_var.starts_with(map)), "{map}");
    }
}

#[test]
fn heartbeat_must_beat_registry_ttl() {
    let err = yaml_err("node: {agent: {heartbeat_interval: 30s}}", &[]);
    assert_eq!(keys(&err), vec!["node.agent.heartbeat_interval"]);
}

#[test]
fn odd_documents() {
    // A list at the top: one problem, at the document.
    let err = yaml_err("- a\n- b\n", &[]);
    assert_eq!(err.len(), 1, "{err}");
    assert_eq!(err.0[0].key, "");
    // Anchors and merge keys work.
    let c = Config::from_str_yaml(
        "x-nats: &n {servers: [nats://n:4222], namespace: prod}\napi: {server: {nats: *n}}\nnode: {agent: {nats: {<<: *n, client_name: agent}}}\n",
        &[],
    );
    // `x-nats` is not a key of ours: reported, the rest still loads.
    let err = c.unwrap_err();
    assert_eq!(keys(&err), vec!["x-nats"], "{err}");
    // Numeric label keys and values are text.
    let c = Config::from_str_yaml("node: {agent: {labels: {rack: 12, v: 1.20}}}", &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node.agent.labels["rack"], "12");
    assert_eq!(c.node.agent.labels["v"], "1.20");
}

#[test]
fn defaults_are_not_given_a_line() {
    let err = yaml_err("debug: false\nnats: {registry: {ttl: 5s}}\n", &[]);
    let hb = err
        .0
        .iter()
        .find(|p| p.key == "node.agent.heartbeat_interval")
        .unwrap();
    assert_eq!(hb.line, None, "{err}");
}

#[test]
fn cluster_member_name_and_route_address() {
    let c = Config::from_str_yaml(
        "nats: {server: {server_name: appliance-1.dc, cluster: {name: fleet, routes: [10.0.0.2:6222], password: s}}}",
        &env(&[("OSAPI_NATS_SERVER_CLUSTER_HOST", "10.0.0.1")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.nats.server.server_name.as_deref(), Some("appliance-1.dc"));
    let cluster = c.nats.server.cluster.as_ref().unwrap();
    assert_eq!((cluster.host.as_str(), cluster.port), ("10.0.0.1", 6222));
    // Unset without routes: loopback only, and the host name picked by the
    // supervisor; with routes, every interface (the peers are other hosts).
    let c = Config::from_str_yaml(
        "nats: {server: {server_name: '', cluster: {name: f, password: s}}}",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.nats.server.server_name, None);
    assert_eq!(c.nats.server.cluster.unwrap().host, "127.0.0.1");
    let c = Config::from_str_yaml(
        "nats: {server: {cluster: {name: f, routes: [10.0.0.2:6222], password: s}}}",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.nats.server.cluster.unwrap().host, "0.0.0.0");
    let err = yaml_err(
        "nats: {server: {server_name: 'two words', cluster: {name: f, host: '', password: s}}}",
        &[],
    );
    assert_eq!(keys(&err), vec!["nats.server.server_name"], "{err}");
    // Routes without authentication, or TLS files half given, are refused.
    let err = yaml_err(
        "nats: {server: {cluster: {name: f}, tls: {cert_file: /c.pem}}}",
        &[],
    );
    assert_eq!(
        keys(&err),
        vec![
            "nats.server.cluster.password_file",
            "nats.server.tls.key_file"
        ],
        "{err}"
    );
}
