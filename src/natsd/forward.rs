//! Socket activation for nats-server, which cannot take a socket from systemd:
//! the supervisor accepts on the activated listener and relays each connection,
//! byte for byte, to the child on its private loopback port.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Relay every connection accepted on `listener` to `child` until the task is
/// dropped. Connections queued before the child was ready are served now.
pub async fn forward(listener: TcpListener, child: SocketAddr) {
    loop {
        let (mut inbound, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept on the activated NATS socket failed");
                continue;
            }
        };
        tokio::spawn(async move {
            match TcpStream::connect(child).await {
                Ok(mut outbound) => {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
                    {
                        tracing::debug!(%peer, error = %e, "relayed NATS connection ended");
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot reach nats-server to relay a connection")
                }
            }
        });
    }
}
