//! Audit entries in the journal, through journald's native protocol: one
//! datagram per entry to [`crate::telemetry::JOURNAL_SOCKET`], holding
//! `NAME=value` lines, or — for a value with a newline — the binary-safe form
//! `NAME\n` + its length as 64-bit little endian + the value + `\n`.
//!
//! Fields: `MESSAGE_ID` (fixed, [`super::MESSAGE_ID`]), `SYSLOG_IDENTIFIER=osapi-audit`,
//! `PRIORITY=6`, a human `MESSAGE`, `AUDIT_<ATTRIBUTE>` for each attribute and
//! `TRACE_ID` (the same field the logs carry, so `journalctl TRACE_ID=…` shows a
//! request's audit entry beside its log lines).

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixDatagram;

use super::{AuditEntry, MESSAGE_ID, SYSLOG_IDENTIFIER};

/// How long a request waits for journald to take its entry (its queue may be
/// full under load) before the journal copy is given up and counted.
const SEND_TIMEOUT: Duration = Duration::from_millis(250);

/// The journal fields of an entry, in a stable order.
pub fn fields(e: &AuditEntry) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("MESSAGE_ID", MESSAGE_ID.to_owned()),
        ("SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER.to_owned()),
        ("PRIORITY", "6".to_owned()),
        ("MESSAGE", e.summary()),
        ("AUDIT_ID", e.id.to_string()),
        (
            "AUDIT_TIMESTAMP",
            e.timestamp
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        ),
        ("AUDIT_USER", e.user.clone()),
        ("AUDIT_ROLES", e.roles.join(",")),
        ("AUDIT_METHOD", e.method.clone()),
        ("AUDIT_PATH", e.path.clone()),
        ("AUDIT_OPERATION_ID", e.operation_id.clone()),
        ("AUDIT_SOURCE_IP", e.source_ip.clone()),
        ("AUDIT_RESPONSE_CODE", e.response_code.to_string()),
        ("AUDIT_DURATION_MS", e.duration_ms.to_string()),
    ];
    if let Some(job) = e.job_id {
        f.push(("AUDIT_JOB_ID", job.to_string()));
    }
    if let Some(trace) = &e.trace_id {
        f.push(("TRACE_ID", trace.clone()));
    }
    if let Some(count) = e.count {
        f.push(("AUDIT_COUNT", count.to_string()));
    }
    if let Some(detail) = &e.detail {
        f.push(("AUDIT_DETAIL", detail.clone()));
    }
    f
}

/// Encode fields as one native-protocol datagram.
pub fn encode(fields: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        } else {
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// Sends datagrams to journald over one connected socket, made on first use and
/// again after journald went away.
pub struct JournalSink {
    path: PathBuf,
    // Connected, so the socket waits for room in journald's queue instead of
    // failing at once when it is briefly full.
    socket: Mutex<Option<Arc<UnixDatagram>>>,
}

impl JournalSink {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JournalSink {
            path: path.into(),
            socket: Mutex::new(None),
        }
    }

    /// The system journal's socket.
    pub fn system() -> Self {
        Self::new(crate::telemetry::JOURNAL_SOCKET)
    }

    fn socket(&self, fresh: bool) -> io::Result<Arc<UnixDatagram>> {
        let mut slot = self
            .socket
            .lock()
            .map_err(|_| io::Error::other("journal socket lock poisoned"))?;
        if let Some(s) = slot.as_ref().filter(|_| !fresh) {
            return Ok(s.clone());
        }
        *slot = None;
        let s = UnixDatagram::unbound()?;
        s.connect(&self.path)?;
        let s = Arc::new(s);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Send one datagram. `ErrorKind::NotFound` means there is no journal here.
    pub async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let once = |fresh| async move {
            let socket = self.socket(fresh)?;
            tokio::time::timeout(SEND_TIMEOUT, socket.send(datagram))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "journald is not reading"))?
                .map(drop)
        };
        match once(false).await {
            // journald restarted: its socket is a new one.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected
                ) =>
            {
                once(true).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode a datagram the way journald does.
    fn decode(mut d: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let end = d.iter().position(|b| *b == b'\n').unwrap();
            let line = &d[..end];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                out.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
                ));
                d = &d[end + 1..];
            } else {
                let name = String::from_utf8(line.to_vec()).unwrap();
                let len = u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap()) as usize;
                let value = &d[end + 9..end + 9 + len];
                assert_eq!(d[end + 9 + len], b'\n');
                out.push((name, String::from_utf8(value.to_vec()).unwrap()));
                d = &d[end + 10 + len..];
            }
        }
        out
    }

    #[test]
    fn plain_values_are_name_equals_value_lines() {
        let d = encode(&[("A", "1".into()), ("B_C", "x y=z".into())]);
        assert_eq!(d, b"A=1\nB_C=x y=z\n");
    }

    #[test]
    fn values_with_newlines_use_the_binary_form() {
        let d = encode(&[("MESSAGE", "two\nlines".into()), ("X", "y".into())]);
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\nX=y\n");
        assert_eq!(d, want);
        assert_eq!(
            decode(&d),
            vec![
                ("MESSAGE".into(), "two\nlines".into()),
                ("X".into(), "y".into())
            ]
        );
    }

    #[test]
    fn an_entry_has_the_fixed_fields_and_one_per_attribute() {
        let mut e = crate::audit::sample_entry();
        e.path = "/api/v1/network/dns/eth0\nforged=1".into();
        let got = decode(&encode(&fields(&e)));
        let get = |n: &str| got.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("MESSAGE_ID"), Some(MESSAGE_ID));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("osapi-audit"));
        assert_eq!(get("PRIORITY"), Some("6"));
        assert_eq!(get("AUDIT_USER"), Some("alice"));
        assert_eq!(get("AUDIT_ROLES"), Some("admin,ops"));
        assert_eq!(get("AUDIT_RESPONSE_CODE"), Some("200"));
        assert_eq!(get("AUDIT_OPERATION_ID"), Some("node_hostname"));
        assert_eq!(get("TRACE_ID"), e.trace_id.as_deref());
        assert_eq!(
            get("AUDIT_JOB_ID"),
            Some(e.job_id.unwrap().to_string().as_str())
        );
        // A newline in a value cannot forge another field.
        assert_eq!(get("AUDIT_PATH"), Some(e.path.as_str()));
        assert_eq!(get("forged"), None);
        assert!(
            get("MESSAGE")
                .unwrap()
                .starts_with("alice GET /api/v1/network/dns/eth0")
        );
    }

    #[tokio::test]
    async fn no_journal_socket_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let sink = JournalSink::new(dir.path().join("socket"));
        let err = sink.send(b"MESSAGE=x\n").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn datagrams_reach_a_listening_socket_and_survive_its_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let sink = JournalSink::new(&path);
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sink.send(b"MESSAGE=one\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=one\n");
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sink.send(b"MESSAGE=two\n").await.unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=two\n");
    }
}
