//! The readiness probe: HTTP against nats-server's monitoring port.
//!
//! Two requests, because on nats-server 2.9.10 `/healthz?js-enabled-only=true`
//! answers 200 `{"status":"ok"}` even with JetStream disabled; `/jsz` then says
//! `"disabled": true`. On 2.10+ the first request alone would answer 503.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bound for one probe request, so a wedged child cannot stall the poll loop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks that the server is healthy with JetStream enabled; the error says why
/// not, for the "not ready" report.
pub async fn jetstream_ready(monitor: SocketAddr) -> Result<(), String> {
    let (status, body) = get(monitor, "/healthz?js-enabled-only=true").await?;
    if status != 200 {
        return Err(format!("/healthz answered {status}: {}", snippet(&body)));
    }
    let (status, body) = get(monitor, "/jsz").await?;
    if status != 200 {
        return Err(format!("/jsz answered {status}: {}", snippet(&body)));
    }
    let jsz: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("/jsz is not JSON: {e}"))?;
    if jsz.get("disabled").and_then(serde_json::Value::as_bool) == Some(true)
        || jsz.get("config").is_none()
    {
        return Err("/jsz reports JetStream disabled".into());
    }
    Ok(())
}

/// One client for every probe: plain HTTP to loopback, no proxy.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    // reqwest builds its TLS setup even for plain HTTP; ring is our provider.
    crate::tls::install_ring_provider();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build the probe's HTTP client: {e}"))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// `GET path` on the monitoring port: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, bytes::Bytes), String> {
    let failed = |e: reqwest::Error| format!("GET {path}: {e}");
    let response = client()?
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .map_err(failed)?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await.map_err(failed)?))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_connection_is_an_error_not_a_hang() {
        let port = crate::natsd::ports::find_free_port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(jetstream_ready(addr).await.is_err());
    }
}
