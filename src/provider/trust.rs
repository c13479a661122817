//! The host's trusted certificate authorities (`cert.ca.*`).
//!
//! What the host trusts is its TLS bundle, the file OpenSSL, curl and most
//! programs read: it is listed, each certificate with its subject, validity
//! and SHA-256 fingerprint. A CA OSAPI adds is a file in the distribution's
//! source directory for local CAs, under OSAPI's own name; the
//! distribution's tool then rebuilds the bundle:
//!
//! | | source file | tool | bundle |
//! |---|---|---|---|
//! | Debian | `/usr/local/share/ca-certificates/osapi/NAME.crt` | `update-ca-certificates` | `/etc/ssl/certs/ca-certificates.crt` |
//! | Fedora | `/etc/pki/ca-trust/source/anchors/osapi-NAME.pem` | `update-ca-trust extract` | `/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem` |
//!
//! The tool runs with an argument vector and a timeout. A change is proven
//! by the bundle: after an add the certificate's fingerprint is in it, after
//! a remove it is not (unless the distribution trusts it too). When the
//! bundle does not show what was asked, the old file is put back, the bundle
//! rebuilt again, and the host's result fails saying so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use super::command::run_tool;
use super::{BoxFuture, ProviderError, ProviderResult, put_file, read_optional};
use crate::job::{CaAdd, CaRef};

/// How long the distribution's tool may take to rebuild the bundle.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(120);

/// One certificate authority the host trusts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CaCertificate {
    /// The subject, as in RFC 4514 (`CN=Corp Root CA,O=Corp`).
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: String,
    /// The name OSAPI keeps it under, when OSAPI added it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The result of `cert.ca.list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct CaCertificates(pub Vec<CaCertificate>);

/// What an add or remove did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CaChange {
    pub name: String,
    /// Whether anything changed (or, in a dry run, would).
    pub changed: bool,
    pub dry_run: bool,
    /// The CA kept under this name before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<CaCertificate>,
    /// After; in a dry run, what it would be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<CaCertificate>,
    /// The source file OSAPI writes.
    pub path: String,
}

/// Reads and changes the trusted CAs.
pub trait TrustProvider: Send + Sync {
    fn list(&self, local_only: bool) -> BoxFuture<'_, ProviderResult<CaCertificates>>;
    fn add<'a>(&'a self, request: &'a CaAdd) -> BoxFuture<'a, ProviderResult<CaChange>>;
    fn remove<'a>(&'a self, request: &'a CaRef) -> BoxFuture<'a, ProviderResult<CaChange>>;
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A parsed certificate with what a list shows of it.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub info: CaCertificate,
    /// Its common name, for a default name.
    pub common_name: Option<String>,
    is_ca: bool,
    signs_certificates: bool,
}

/// The `CERTIFICATE` blocks of a PEM text, each decoded (the text between
/// blocks, such as the comments of Fedora's bundle, is skipped).
pub fn parse_all(text: &str) -> Vec<Result<Parsed, String>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            out.push(Err("a certificate without its END line".to_owned()));
            break;
        };
        let block = &rest[start..start + len + END.len()];
        out.push(parse_block(block));
        rest = &rest[start + len + END.len()..];
    }
    out
}

/// Exactly one certificate.
pub fn parse_one(text: &str) -> Result<Parsed, String> {
    let mut all = parse_all(text);
    match all.len() {
        0 => Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned()),
        1 => all.remove(0),
        n => Err(format!("{n} certificates; give one certificate at a time")),
    }
}

/// Whether a certificate may be trusted as a CA at `now`.
pub fn check_ca(cert: &Parsed, now: OffsetDateTime) -> Result<(), String> {
    if !cert.is_ca || !cert.signs_certificates {
        return Err(format!(
            "{} is not a CA certificate (basicConstraints CA:TRUE{})",
            cert.info.subject,
            if cert.is_ca {
                ", and keyUsage keyCertSign"
            } else {
                ""
            }
        ));
    }
    if cert.info.not_after < now {
        return Err(format!(
            "{} expired at {}",
            cert.info.subject, cert.info.not_after
        ));
    }
    Ok(())
}

fn parse_block(block: &str) -> Result<Parsed, String> {
    let not_x509 = |e: &dyn std::fmt::Display| format!("not an X.509 certificate: {e}");
    let (_, der) = x509_cert::der::pem::decode_vec(block.as_bytes()).map_err(|e| not_x509(&e))?;
    let cert = Certificate::from_der(&der).map_err(|e| not_x509(&e))?;
    let tbs = &cert.tbs_certificate;
    let at = |t: x509_cert::time::Time| {
        let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    let is_ca = matches!(tbs.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca);
    // No keyUsage at all means any use (RFC 5280 §4.2.1.3).
    let signs_certificates = match tbs.get::<KeyUsage>() {
        Ok(Some((_, ku))) => ku.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    let common_name = tbs.subject.0.iter().rev().find_map(|rdn| {
        rdn.0.iter().find_map(|atv| {
            let text_tag = matches!(
                atv.value.tag(),
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String
            );
            (atv.oid == x509_cert::der::oid::db::rfc4519::CN && text_tag)
                .then(|| String::from_utf8_lossy(atv.value.value()).into_owned())
        })
    });
    Ok(Parsed {
        info: CaCertificate {
            subject: tbs.subject.to_string(),
            not_before: at(tbs.validity.not_before),
            not_after: at(tbs.validity.not_after),
            sha256: super::files::sha256_hex(&der),
            name: None,
        },
        common_name,
        is_ca,
        signs_certificates,
    })
}

/// The name a CA is kept under when the request gives none: its common name
/// in lowercase, runs of other characters as one hyphen (`Corp Root CA` →
/// `corp-root-ca`); its fingerprint's start when that leaves nothing.
pub fn default_name(cert: &Parsed) -> String {
    let mut name = String::new();
    for c in cert.common_name.as_deref().unwrap_or_default().chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_end_matches('-');
    let mut name: String = name.chars().take(64).collect();
    if name.is_empty() {
        name = format!("ca-{}", &cert.info.sha256[..16]);
    }
    name.trim_end_matches('-').to_owned()
}

// ---------------------------------------------------------------------------
// The trust store
// ---------------------------------------------------------------------------

/// A distribution's trust store: where local CAs go, which tool rebuilds the
/// bundle, and the bundle.
#[derive(Debug, Clone)]
pub struct TrustStore {
    /// OSAPI's source files are `<dir>/<prefix>NAME<suffix>`.
    dir: PathBuf,
    prefix: &'static str,
    suffix: &'static str,
    tool: (&'static str, &'static [&'static str]),
    bundle: PathBuf,
}

impl TrustStore {
    /// Debian's ca-certificates (also Ubuntu's).
    pub fn debian() -> Self {
        TrustStore {
            dir: PathBuf::from("/usr/local/share/ca-certificates/osapi"),
            prefix: "",
            suffix: ".crt",
            tool: ("update-ca-certificates", &[]),
            bundle: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        }
    }

    /// Fedora's and RHEL's ca-certificates (p11-kit).
    pub fn fedora() -> Self {
        TrustStore {
            dir: PathBuf::from("/etc/pki/ca-trust/source/anchors"),
            prefix: "osapi-",
            suffix: ".pem",
            tool: ("update-ca-trust", &["extract"]),
            bundle: PathBuf::from("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
        }
    }

    /// The store of this host, by the tool it has.
    pub fn detect() -> Option<Self> {
        let has = |tool: &str| {
            ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|dir| Path::new(dir).join(tool).exists())
        };
        [TrustStore::debian(), TrustStore::fedora()]
            .into_iter()
            .find(|s| has(s.tool.0))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}{name}{}", self.prefix, self.suffix))
    }

    /// OSAPI's CAs, by name.
    fn local(&self) -> ProviderResult<Vec<(String, Parsed)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(ProviderError::io(
                    format!("reading {}", self.dir.display()),
                    e,
                ));
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file
                .strip_prefix(self.prefix)
                .and_then(|f| f.strip_suffix(self.suffix))
            else {
                continue;
            };
            if let Some(Ok(cert)) = self.read(name)? {
                out.push((name.to_owned(), cert));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The CA kept under `name`: `None` when there is no such file.
    fn read(&self, name: &str) -> ProviderResult<Option<Result<Parsed, String>>> {
        Ok(read_optional(&self.path(name))?.map(|text| {
            parse_one(&text).map(|mut c| {
                c.info.name = Some(name.to_owned());
                c
            })
        }))
    }

    /// The fingerprints the bundle holds, with each certificate.
    fn bundle(&self) -> ProviderResult<Vec<CaCertificate>> {
        let text = std::fs::read_to_string(&self.bundle)
            .map_err(|e| ProviderError::io(format!("reading {}", self.bundle.display()), e))?;
        Ok(parse_all(&text)
            .into_iter()
            .filter_map(Result::ok)
            .map(|c| c.info)
            .collect())
    }

    async fn refresh(&self) -> ProviderResult<()> {
        let (program, args) = self.tool;
        run_tool(program, args, REFRESH_TIMEOUT, None)
            .await
            .map(drop)
    }

    /// Writes (`Some`) or removes (`None`) the source file of `name`, rebuilds
    /// the bundle and checks it: `fingerprint` in it after a write, out of
    /// it after a remove unless `keep` (the distribution's own) says it stays.
    async fn apply(
        &self,
        name: &str,
        text: Option<&str>,
        fingerprint: &str,
        keep: bool,
    ) -> ProviderResult<()> {
        let path = self.path(name);
        let old = read_optional(&path)?;
        put_file(&path, text)?;
        let refreshed = self.refresh().await;
        let shows = |b: &[CaCertificate]| b.iter().any(|c| c.sha256 == fingerprint);
        let proven = match (&refreshed, self.bundle()) {
            (Ok(()), Ok(bundle)) => shows(&bundle) == (text.is_some() || keep),
            _ => false,
        };
        if proven {
            return Ok(());
        }
        put_file(&path, old.as_deref())?;
        let _ = self.refresh().await;
        let why = match refreshed {
            Err(e) => e.to_string(),
            Ok(()) => format!(
                "{} {} the certificate",
                self.bundle.display(),
                if text.is_some() { "lacks" } else { "still has" }
            ),
        };
        Err(ProviderError::Unavailable {
            service: "the trust store",
            detail: format!("{why}; the old file is back"),
        })
    }
}

/// The host's trust store, found at first use.
pub struct HostTrust {
    store: Option<TrustStore>,
}

impl HostTrust {
    pub fn new(store: Option<TrustStore>) -> Self {
        HostTrust { store }
    }

    fn store(&self, operation: &'static str) -> ProviderResult<&TrustStore> {
        self.store.as_ref().ok_or(ProviderError::Unavailable {
            service: "ca-certificates",
            detail: format!(
                "{operation} needs update-ca-certificates (Debian) or update-ca-trust (Fedora)"
            ),
        })
    }
}

impl TrustProvider for HostTrust {
    fn list(&self, local_only: bool) -> BoxFuture<'_, ProviderResult<CaCertificates>> {
        Box::pin(async move {
            let store = self.store("cert.ca.list")?;
            let local = store.local()?;
            let name_of = |sha: &str| {
                local
                    .iter()
                    .find(|(_, c)| c.info.sha256 == sha)
                    .map(|(n, _)| n.clone())
            };
            let mut all: Vec<CaCertificate> = store
                .bundle()?
                .into_iter()
                .map(|mut c| {
                    c.name = name_of(&c.sha256);
                    c
                })
                .filter(|c| !local_only || c.name.is_some())
                .collect();
            all.sort_by(|a, b| {
                (&a.name.is_none(), &a.subject).cmp(&(&b.name.is_none(), &b.subject))
            });
            Ok(CaCertificates(all))
        })
    }

    fn add<'a>(&'a self, request: &'a CaAdd) -> BoxFuture<'a, ProviderResult<CaChange>> {
        Box::pin(async move {
            let store = self.store("cert.ca.add")?;
            let cert = parse_one(&request.pem).map_err(|why| ProviderError::invalid("pem", why))?;
            let name = request.name.clone().unwrap_or_else(|| default_name(&cert));
            let before = store.read(&name)?.and_then(Result::ok).map(|c| c.info);
            let mut after = cert.info.clone();
            after.name = Some(name.clone());
            // One certificate per file, as the tools expect, whatever came around it.
            let text = pem_block(&request.pem);
            let in_bundle = store.bundle()?.iter().any(|c| c.sha256 == after.sha256);
            let same_file = read_optional(&store.path(&name))?.as_deref() == Some(text.as_str());
            let change = CaChange {
                changed: !(same_file && in_bundle),
                dry_run: request.dry_run,
                path: store.path(&name).display().to_string(),
                name,
                before,
                after: Some(after),
            };
            if !change.changed || request.dry_run {
                return Ok(change);
            }
            store
                .apply(&change.name, Some(&text), &cert.info.sha256, true)
                .await?;
            Ok(change)
        })
    }

    fn remove<'a>(&'a self, request: &'a CaRef) -> BoxFuture<'a, ProviderResult<CaChange>> {
        Box::pin(async move {
            let store = self.store("cert.ca.remove")?;
            let path = store.path(&request.name);
            let before = match store.read(&request.name)? {
                Some(Ok(c)) => Some(c.info),
                // A file OSAPI cannot read is still OSAPI's to remove.
                Some(Err(_)) | None => None,
            };
            let exists = path.exists();
            let change = CaChange {
                name: request.name.clone(),
                changed: exists,
                dry_run: request.dry_run,
                path: path.display().to_string(),
                before: before.clone(),
                after: None,
            };
            if !exists || request.dry_run {
                return Ok(change);
            }
            let fingerprint = before
                .as_ref()
                .map(|c| c.sha256.clone())
                .unwrap_or_default();
            // The same CA may also be the distribution's: it then stays trusted.
            let others = store.local()?;
            let also_elsewhere = others
                .iter()
                .any(|(n, c)| n != &request.name && c.info.sha256 == fingerprint);
            let keep = also_elsewhere || distribution_has(&fingerprint)?;
            store.apply(&request.name, None, &fingerprint, keep).await?;
            Ok(change)
        })
    }
}

/// Whether a CA with this fingerprint is among the distribution's own
/// (Debian's `/usr/share/ca-certificates`, Fedora's source `/usr/share/pki`).
fn distribution_has(fingerprint: &str) -> ProviderResult<bool> {
    for dir in [
        "/usr/share/ca-certificates",
        "/usr/share/pki/ca-trust-source",
    ] {
        let mut stack = vec![PathBuf::from(dir)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p)
                    && parse_all(&text)
                        .into_iter()
                        .flatten()
                        .any(|c| c.info.sha256 == fingerprint)
                {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// The first certificate block of `text`, alone, ending in a newline.
fn pem_block(text: &str) -> String {
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap_or(0);
    let end = text[start..]
        .find("-----END CERTIFICATE-----")
        .map_or(text.len(), |e| {
            start + e + "-----END CERTIFICATE-----".len()
        });
    format!("{}\n", &text[start..end])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A CA certificate (P-256, valid until 2126), made with openssl; the
    /// integration tests use it too.
    pub(crate) const TEST_CA: &str = include_str!("../../tests/data/test-ca.pem");

    /// A leaf certificate (CA:FALSE) signed by [`TEST_CA`].
    pub(crate) const TEST_LEAF: &str = include_str!("../../tests/data/test-leaf.pem");

    #[test]
    fn a_ca_reads_as_openssl_shows_it() {
        let ca = parse_one(TEST_CA).unwrap();
        // openssl x509 -noout -fingerprint -sha256
        assert_eq!(
            ca.info.sha256,
            "65ef53e0d822e8b18b0b6e73818ffae74c3718b8380652fc53fb2d34e341e283"
        );
        assert_eq!(ca.info.subject, "CN=OSAPI Test Root CA,O=OSAPI Tests");
        assert_eq!(ca.info.not_after.year(), 2126);
        assert_eq!(default_name(&ca), "osapi-test-root-ca");
        check_ca(&ca, OffsetDateTime::now_utc()).unwrap();
        let later = OffsetDateTime::from_unix_timestamp(7_000_000_000).unwrap();
        assert!(check_ca(&ca, later).unwrap_err().contains("expired"));
        let leaf = parse_one(TEST_LEAF).unwrap();
        assert!(
            check_ca(&leaf, OffsetDateTime::now_utc())
                .unwrap_err()
                .contains("not a CA")
        );
    }

    #[test]
    fn bundles_with_comments_parse() {
        let bundle = format!("# Fedora-style label\n{TEST_CA}\n# another\n{TEST_LEAF}");
        let all = parse_all(&bundle);
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(pem_block(&format!("junk\n{TEST_CA}trailer")), TEST_CA);
    }

    /// The host's own bundle (Debian's ca-certificates, a dependency of the
    /// package) parses whole.
    #[test]
    fn this_host_s_bundle_parses() {
        // ca-certificates is a dependency of the package, and install-deps
        // puts it on test machines.
        let store = TrustStore::detect().expect("update-ca-certificates or update-ca-trust");
        let text = std::fs::read_to_string(&store.bundle).unwrap();
        let all = parse_all(&text);
        assert!(all.len() > 50, "{}", all.len());
        let bad: Vec<_> = all.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(bad.is_empty(), "{bad:?}");
    }
}
