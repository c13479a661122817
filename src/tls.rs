//! HTTPS for the API: the certificate made at install, and a listener that
//! terminates TLS (rustls) in front of the router.
//!
//! Bearer tokens must not cross a network in clear, so the API serves plain
//! HTTP only on loopback addresses and the unix socket; every other TCP
//! listener is HTTPS. When the operator configures no certificate of their
//! own, `osapi tls generate` (run by the packages, as Cockpit does) makes a
//! small local CA and a server certificate signed by it for the host's names;
//! the CA's key is thrown away once it has signed, so the CA certificate
//! (`ca.crt`) can be pinned by `osapictl` and can vouch for nothing else.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Make ring the process's rustls crypto provider, for every client that
/// builds a TLS setup (reqwest builds one even for plain HTTP). Idempotent.
pub fn install_ring_provider() {
    // Already installed (by an earlier call) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The files of a generated certificate, in one directory.
pub const CA_CERT: &str = "ca.crt";
pub const SERVER_CERT: &str = "api.crt";
pub const SERVER_KEY: &str = "api.key";

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot {doing} {}: {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no {what} in PEM form", path.display())]
    Pem { path: PathBuf, what: &'static str },
    #[error("the certificate and key do not make a TLS server: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Whether plain HTTP may be served on `addr`: only where nothing leaves the host.
pub fn plain_http_allowed(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The rustls server configuration from a PEM certificate chain and key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(e, cert, "certificate"))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_path_buf(),
            what: "certificate",
        });
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(e, key, "private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    Ok(Arc::new(config))
}

fn pem_error(e: rustls::pki_types::pem::Error, path: &Path, what: &'static str) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io {
            doing: "read",
            path: path.to_path_buf(),
            source,
        },
        _ => TlsError::Pem {
            path: path.to_path_buf(),
            what,
        },
    }
}

/// What `osapi tls generate` wrote.
#[derive(Debug)]
pub struct Generated {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// False when the files existed and were kept.
    pub made: bool,
}

/// Make a local CA and a server certificate for `names` (host names and IP
/// addresses) in `dir`, unless a server certificate is already there. The
/// key is 0600; the certificates 0644.
pub fn generate(dir: &Path, names: &[String], force: bool) -> Result<Generated, TlsError> {
    let files = Generated {
        ca_cert: dir.join(CA_CERT),
        cert: dir.join(SERVER_CERT),
        key: dir.join(SERVER_KEY),
        made: false,
    };
    if !force && files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        doing: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let host = names.first().map_or("localhost", String::as_str);

    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("OSAPI local CA for {host}"),
    );
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let (not_before, not_after) = validity();
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key)?;

    let (dns, ips): (Vec<&String>, Vec<&String>) =
        names.iter().partition(|n| n.parse::<IpAddr>().is_err());
    let mut server = rcgen::CertificateParams::new(dns.into_iter().cloned().collect::<Vec<_>>())?;
    for ip in ips {
        if let Ok(ip) = ip.parse::<IpAddr>() {
            server.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
        }
    }
    server
        .distinguished_name
        .push(rcgen::DnType::CommonName, host.to_owned());
    server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = not_before;
    server.not_after = not_after;
    let server_key = rcgen::KeyPair::generate()?;
    let cert = server.signed_by(&server_key, &ca)?;

    // The key first and private from its first byte; then the certificates.
    write(&files.key, server_key.serialize_pem().as_bytes(), 0o600)?;
    write(&files.cert, cert.pem().as_bytes(), 0o644)?;
    write(&files.ca_cert, ca.pem().as_bytes(), 0o644)?;
    Ok(Generated {
        made: true,
        ..files
    })
}

/// Ten years from a day ago (clocks of clients may lag a little).
fn validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::days(1),
        now + time::Duration::days(3650),
    )
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::files::replace(path, bytes, mode).map_err(|source| TlsError::Io {
        doing: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// The names a generated certificate is for: the host's name, `localhost`,
/// and the loopback addresses.
pub fn default_names() -> Vec<String> {
    let host = crate::config::system_hostname();
    let mut names = vec![host];
    for n in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|h| h == n) {
            names.push(n.to_owned());
        }
    }
    names
}

/// A TCP listener whose connections arrive TLS-terminated. Handshakes run in
/// tasks of their own (bounded in time), so a slow client never holds up the
/// others; failed ones are logged at debug and dropped.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_BACKLOG);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            accepted,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The acceptor task never ends on its own; if it did, serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        for (addr, plain) in [
            ("127.0.0.1:8080", true),
            ("127.9.9.9:8080", true),
            ("[::1]:8080", true),
            ("[::ffff:127.0.0.1]:8080", true),
            ("0.0.0.0:8080", false),
            ("[::]:8080", false),
            ("192.0.2.7:8080", false),
        ] {
            assert_eq!(plain_http_allowed(&addr.parse().unwrap()), plain, "{addr}");
        }
    }

    #[test]
    fn a_generated_certificate_serves_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["appliance".to_owned(), "127.0.0.1".to_owned()];
        let made = generate(dir.path(), &names, false).unwrap();
        assert!(made.made);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&made.key), 0o600);
        assert_eq!(mode(&made.cert), 0o644);
        assert_eq!(mode(&made.ca_cert), 0o644);
        server_config(&made.cert, &made.key).unwrap();
        let cert = std::fs::read(&made.cert).unwrap();
        // Kept unless forced.
        assert!(!generate(dir.path(), &names, false).unwrap().made);
        assert_eq!(std::fs::read(&made.cert).unwrap(), cert);
        assert!(generate(dir.path(), &names, true).unwrap().made);
        assert_ne!(std::fs::read(&made.cert).unwrap(), cert);
    }

    #[test]
    fn a_missing_or_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        assert!(matches!(
            server_config(&missing, &missing),
            Err(TlsError::Io { .. })
        ));
        std::fs::write(dir.path().join("junk"), "not pem").unwrap();
        assert!(matches!(
            server_config(&dir.path().join("junk"), &dir.path().join("junk")),
            Err(TlsError::Pem { .. })
        ));
    }
}
