//! The readiness probe: plain HTTP/1.0 against nats-server's monitoring port.
//!
//! Two requests, because on nats-server 2.9.10 `/healthz?js-enabled-only=true`
//! answers 200 `{"status":"ok"}` even with JetStream disabled; `/jsz` then says
//! `"disabled": true`. On 2.10+ the first request alone would answer 503.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for one probe request, so a wedged child cannot stall the poll loop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// `/jsz` without details is well under 1 KiB; anything larger is not our server.
const MAX_RESPONSE: u64 = 64 * 1024;

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

/// `GET path` with HTTP/1.0, so the server closes the connection after the
/// response and no chunked encoding or keep-alive handling is needed.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    parse_response(&response).ok_or_else(|| format!("GET {path}: malformed HTTP response"))
}

/// Splits a raw HTTP response into status code and body.
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let header_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..header_end]).ok()?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some((status, raw[header_end + 4..].to_vec()))
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

    #[test]
    fn parses_status_and_body() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"status\":\"unavailable\"}";
        let (status, body) = parse_response(raw).unwrap();
        assert_eq!(status, 503);
        assert_eq!(body, b"{\"status\":\"unavailable\"}");
        assert!(parse_response(b"garbage").is_none());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_none());
    }

    #[tokio::test]
    async fn refused_connection_is_an_error_not_a_hang() {
        let port = crate::natsd::ports::find_free_port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(jetstream_ready(addr).await.is_err());
    }
}
