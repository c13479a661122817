//! Connecting to NATS with the configured servers, auth and TLS.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, ServerAddr};

use super::BusError;
use crate::config::{NatsClientAuth, NatsConnection};

/// Connect, failing fast (with the server's reason) when the servers cannot be
/// reached or refuse our credentials, instead of retrying silently; once connected,
/// the client reconnects on its own.
pub async fn connect(conn: &NatsConnection, default_name: &str) -> Result<Client, BusError> {
    let mut opts = ConnectOptions::new()
        .name(
            conn.client_name
                .clone()
                .unwrap_or_else(|| default_name.to_owned()),
        )
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        .max_reconnects(None::<usize>);
    match &conn.auth {
        NatsClientAuth::None => {}
        NatsClientAuth::UserPass { username, password } => {
            opts = opts.user_and_password(username.clone(), password.read_string()?);
        }
        NatsClientAuth::Nkey { seed_file } => {
            let seed =
                std::fs::read_to_string(seed_file).map_err(|source| BusError::Credentials {
                    path: seed_file.display().to_string(),
                    source,
                })?;
            opts = opts.nkey(seed.trim().to_owned());
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
                .map_err(|_| BusError::BadServer(s.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    opts.connect(addrs.as_slice())
        .await
        .map_err(|source| BusError::Connect {
            servers: conn.servers.join(","),
            source,
        })
}

/// Whether the server answers a PING within a second: the connection state alone
/// can say "connected" over a wedged link.
pub async fn round_trip(client: &Client) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), client.flush()).await,
        Ok(Ok(()))
    )
}
