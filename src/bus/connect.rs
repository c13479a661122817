//! Connecting to NATS with the configured servers, auth and TLS.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use tokio::sync::watch;

use super::BusError;
use super::credentials::Role;
use crate::config::{NatsClientAuth, NatsConnection};

/// Connect, failing fast (with the server's reason) when the servers cannot be
/// reached or refuse our credentials, instead of retrying silently; once connected,
/// the client reconnects on its own.
pub async fn connect(
    conn: &NatsConnection,
    role: Role,
    default_name: &str,
) -> Result<Client, BusError> {
    connect_watched(conn, role, default_name)
        .await
        .map(|(client, _)| client)
}

/// [`connect`], plus a counter of connections made (the first one included) that
/// changes on every reconnect, for work that must follow one: re-provisioning,
/// re-reading results published while we were away.
pub async fn connect_watched(
    conn: &NatsConnection,
    role: Role,
    default_name: &str,
) -> Result<(Client, watch::Receiver<u64>), BusError> {
    let (connects_tx, connects) = watch::channel(0u64);
    let connects_tx = Arc::new(connects_tx);
    let mut opts = ConnectOptions::new()
        .event_callback(move |event| {
            let connects_tx = connects_tx.clone();
            async move {
                match event {
                    Event::Connected => {
                        connects_tx.send_modify(|n| *n += 1);
                        if *connects_tx.borrow() > 1 {
                            tracing::info!("reconnected to NATS");
                        }
                    }
                    Event::Disconnected => tracing::warn!("lost the NATS connection; reconnecting"),
                    Event::ServerError(e) => tracing::warn!(error = %e, "NATS server error"),
                    Event::ClientError(e) => tracing::warn!(error = %e, "NATS client error"),
                    Event::LameDuckMode => {
                        tracing::info!("NATS server entering lame duck mode; will move to another")
                    }
                    other => tracing::debug!(event = %other, "NATS connection event"),
                }
            }
        })
        .name(
            conn.client_name
                .clone()
                .unwrap_or_else(|| default_name.to_owned()),
        )
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        .max_reconnects(None::<usize>);
    // An enrolling agent's own public key: refused, it is not accepted yet.
    let mut identity = None;
    match &conn.auth {
        NatsClientAuth::Enroll { join_seed_file, .. } if role == Role::Enroll => {
            let seed = read_seed_text(join_seed_file)?;
            opts = opts.nkey(seed).custom_inbox_prefix(role.inbox_prefix());
        }
        NatsClientAuth::Enroll { identity_file, .. } => {
            let key = super::credentials::ensure_identity(identity_file)?;
            let public_key = key.public_key();
            let seed = key
                .seed()
                .map_err(|_| super::credentials::CredentialsError::BadSeed {
                    path: identity_file.clone(),
                })?;
            opts = opts
                .nkey(seed)
                .custom_inbox_prefix(super::permissions::agent_inbox_prefix(&public_key));
            identity = Some(public_key);
        }
        NatsClientAuth::Generated {
            credential,
            credentials_dir,
        } => {
            // The unit's systemd credential when it passed one, else the
            // role's seed where the embedded server generated it.
            let seed_file = credential
                .as_ref()
                .filter(|p| p.exists())
                .cloned()
                .unwrap_or_else(|| role.seed_file(credentials_dir));
            let seed = std::fs::read_to_string(&seed_file).map_err(|source| {
                BusError::NoGeneratedCredential {
                    role: role.name(),
                    path: seed_file.display().to_string(),
                    source,
                }
            })?;
            // Replies come back under the role's own prefix, the only one
            // its permissions let it subscribe to.
            opts = opts
                .nkey(seed.trim().to_owned())
                .custom_inbox_prefix(role.inbox_prefix());
        }
        NatsClientAuth::None => {}
        NatsClientAuth::UserPass { username, password } => {
            opts = opts.user_and_password(username.clone(), password.read_string()?);
        }
        NatsClientAuth::Nkey { seed_file } => {
            opts = opts.nkey(read_seed_text(seed_file)?);
        }
    }
    if let Some(tls) = &conn.tls {
        opts = opts.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let addrs = conn
        .servers
        .iter()
        .map(|s| {
            s.parse::<ServerAddr>()
                .map_err(|_| BusError::BadServer(redact_userinfo(s)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client = opts
        .connect(addrs.as_slice())
        .await
        .map_err(|e| match identity {
            Some(public_key)
                if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation =>
            {
                BusError::NotEnrolled { public_key }
            }
            _ => BusError::Connect {
                servers: conn
                    .servers
                    .iter()
                    .map(|s| redact_userinfo(s))
                    .collect::<Vec<_>>()
                    .join(","),
                reason: connect_reason(&e, &conn.auth),
            },
        })?;
    Ok((client, connects))
}

fn read_seed_text(path: &std::path::Path) -> Result<String, BusError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| BusError::Credentials {
            path: path.display().to_string(),
            source,
        })
}

/// Why the first connection failed, in words an operator can act on. Credentials
/// and certificates are named, because retrying would not fix either.
fn connect_reason(e: &async_nats::ConnectError, auth: &NatsClientAuth) -> String {
    use async_nats::ConnectErrorKind as Kind;
    // The innermost error says what happened; the outer ones repeat it.
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let detail = inner.to_string();
    let credentials = || match auth {
        NatsClientAuth::Generated { .. } => "the generated credential".to_owned(),
        NatsClientAuth::None => "a connection without credentials (auth.type none)".to_owned(),
        NatsClientAuth::UserPass { username, .. } => format!("user {username:?}'s password"),
        NatsClientAuth::Nkey { seed_file } => format!("the nkey in {}", seed_file.display()),
        NatsClientAuth::Enroll { join_seed_file, .. } => {
            format!("the join credential in {}", join_seed_file.display())
        }
    };
    match e.kind() {
        Kind::AuthorizationViolation => {
            format!(
                "authorization violation: the server refused {}",
                credentials()
            )
        }
        Kind::Authentication => format!("cannot sign the server's challenge: {detail}"),
        Kind::Tls => format!("TLS failed: {detail}"),
        Kind::TimedOut => "no answer (timed out)".to_owned(),
        // rustls reports a certificate it does not trust as an I/O error.
        _ if detail.contains("certificate") => {
            format!("TLS failed, the server's certificate is not trusted: {detail}")
        }
        _ => detail,
    }
}

/// Whether the server answers a PING within a second: the connection state alone
/// can say "connected" over a wedged link.
pub async fn round_trip(client: &Client) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), client.flush()).await,
        Ok(Ok(()))
    )
}

/// [`crate::provider::interfaces::Reach`] over a NATS connection: round
/// trips until one succeeds or the time is up (a cut link shows as failing
/// flushes while the client reconnects).
pub struct NatsReach(Client);

impl NatsReach {
    pub fn new(client: Client) -> Self {
        NatsReach(client)
    }
}

impl crate::provider::interfaces::Reach for NatsReach {
    fn reach(&self, within: Duration) -> crate::provider::BoxFuture<'_, bool> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                if round_trip(&self.0).await {
                    return true;
                }
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }
}

/// A server URL fit for messages: `nats://user:secret@host` → `nats://***@host`.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() {
                String::new()
            } else {
                format!("{scheme}://")
            };
            format!("{prefix}***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_userinfo;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact_userinfo("nats://user:s3cret@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(redact_userinfo("tls://tok@host"), "tls://***@host");
        assert_eq!(redact_userinfo("nats://host:4222"), "nats://host:4222");
        assert_eq!(redact_userinfo("u:p@host"), "***@host");
    }
}
