//! Kernel parameters: read from `/proc/sys`, set the systemd way.
//!
//! A set writes `/etc/sysctl.d/50-osapi-<key>.conf` and restarts
//! `systemd-sysctl.service`, which applies every sysctl.d file as PID 1's
//! child: the agent's own sandbox keeps `/proc/sys` read-only
//! (`ProtectKernelTunables=`), and the setting is persistent from the first
//! write. The value is then read back from `/proc/sys`; when the kernel did
//! not take it, the old drop-in is put back (and applied again) and the
//! host's result fails saying so. A delete removes the drop-in only: the
//! running value stays until the next boot or another set. Each key is
//! checked against `/proc/sys` (it exists, is a file, is writable) before
//! anything is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::hostnamed::{SystemBus, bus_error};
use super::systemd1::{UnitAction, run_job};
use super::{BoxFuture, ProviderError, ProviderResult, put_file, read_optional};

const SYSCTL_UNIT: &str = "systemd-sysctl.service";
/// How many parameters one list returns at most.
const MAX_LIST: usize = 5000;

/// One kernel parameter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SysctlValue {
    pub key: String,
    /// The running value (whitespace as the kernel prints it).
    pub value: String,
    /// The value OSAPI's drop-in sets at boot, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted: Option<String>,
}

/// The result of `sysctl.key.list`: readable parameters, by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(transparent)]
pub struct Sysctls(pub Vec<SysctlValue>);

/// What a set or delete did, or would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SysctlChange {
    pub key: String,
    /// Whether anything changed (or, in a dry run, would).
    pub changed: bool,
    pub dry_run: bool,
    /// The running value and the drop-in's, before.
    pub before: SysctlValue,
    /// After; in a dry run, what they would be. A delete leaves the running
    /// value as it is.
    pub after: SysctlValue,
    /// OSAPI's drop-in for the key.
    pub path: String,
}

/// Reads and sets kernel parameters.
pub trait SysctlProvider: Send + Sync {
    fn list<'a>(&'a self, prefix: Option<&'a str>) -> BoxFuture<'a, ProviderResult<Sysctls>>;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ProviderResult<SysctlValue>>;
    /// Set (`Some`) or forget (`None`, the drop-in removed) `key`.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Option<&'a str>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<SysctlChange>>;
}

/// `/proc/sys`, `/etc/sysctl.d` and systemd-sysctl.
pub struct ProcSysctl {
    bus: Arc<SystemBus>,
    proc_sys: PathBuf,
    dropins: PathBuf,
}

impl ProcSysctl {
    pub fn new(bus: Arc<SystemBus>) -> Self {
        ProcSysctl {
            bus,
            proc_sys: PathBuf::from("/proc/sys"),
            dropins: PathBuf::from("/etc/sysctl.d"),
        }
    }

    fn file(&self, key: &str) -> PathBuf {
        self.proc_sys.join(key_path(key))
    }

    fn dropin(&self, key: &str) -> PathBuf {
        // One name per key whichever way it is written.
        let name = key_path(key).to_string_lossy().replace('/', ".");
        self.dropins.join(format!("50-osapi-{name}.conf"))
    }

    fn read(&self, key: &str) -> ProviderResult<SysctlValue> {
        Ok(SysctlValue {
            key: key.to_owned(),
            value: self.running(key)?,
            persisted: read_optional(&self.dropin(key))?.and_then(|text| dropin_value(&text)),
        })
    }

    /// The kernel's value of `key` now.
    fn running(&self, key: &str) -> ProviderResult<String> {
        let file = self.file(key);
        match std::fs::read_to_string(&file) {
            Ok(v) => Ok(v.trim_end().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ProviderError::NotFound {
                what: "kernel parameter",
                name: key.to_owned(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Err(ProviderError::invalid(
                "key",
                format!("{key} is a group of parameters, not one"),
            )),
            Err(e) => Err(ProviderError::io(format!("reading {}", file.display()), e)),
        }
    }

    /// Restart systemd-sysctl (it applies every drop-in) and wait for it.
    async fn apply(&self) -> ProviderResult<String> {
        self.bus
            .call_once(|conn| async move { run_job(&conn, UnitAction::Restart, SYSCTL_UNIT).await })
            .await
            .map_err(|e| bus_error(e, "systemd", "sysctl.key.set", "key"))
    }
}

/// `net.ipv4.ip_forward` → `net/ipv4/ip_forward`; a name with slashes is
/// already a path.
fn key_path(key: &str) -> PathBuf {
    if key.contains('/') {
        PathBuf::from(key)
    } else {
        PathBuf::from(key.replace('.', "/"))
    }
}

/// The value a drop-in sets (its last `key = value` line).
fn dropin_value(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';']))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim().to_owned()))
        .next_back()
}

/// Values compare as the kernel prints them: words, whatever the spacing.
fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<SysctlValue>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() >= MAX_LIST {
            return;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, base, out),
            Ok(_) => {
                // Write-only and unreadable parameters are left out.
                let Ok(value) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let Ok(rel) = path.strip_prefix(base) else {
                    continue;
                };
                let parts: Vec<String> = rel
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                // A part with a dot keeps the slashed form, as sysctl(8) does.
                let key = if parts.iter().any(|p| p.contains('.')) {
                    parts.join("/")
                } else {
                    parts.join(".")
                };
                out.push(SysctlValue {
                    key,
                    value: value.trim_end().to_owned(),
                    persisted: None,
                });
            }
            Err(_) => {}
        }
    }
}

impl SysctlProvider for ProcSysctl {
    fn list<'a>(&'a self, prefix: Option<&'a str>) -> BoxFuture<'a, ProviderResult<Sysctls>> {
        Box::pin(async move {
            let start = match prefix {
                Some(p) => self.file(p),
                None => self.proc_sys.clone(),
            };
            if !start.is_dir() {
                return Err(ProviderError::NotFound {
                    what: "kernel parameter group",
                    name: prefix.unwrap_or_default().to_owned(),
                });
            }
            let (start, base) = (start, self.proc_sys.clone());
            let all = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                walk(&start, &base, &mut out);
                out
            })
            .await
            .map_err(|e| ProviderError::io("listing /proc/sys", std::io::Error::other(e)))?;
            Ok(Sysctls(all))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ProviderResult<SysctlValue>> {
        Box::pin(async move { self.read(key) })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Option<&'a str>,
        dry_run: bool,
    ) -> BoxFuture<'a, ProviderResult<SysctlChange>> {
        Box::pin(async move {
            let dropin = self.dropin(key);
            let old_text = read_optional(&dropin)?;
            let before = SysctlValue {
                key: key.to_owned(),
                value: match self.running(key) {
                    // A drop-in may outlive its key (a module unloaded, a
                    // link gone): it can still be deleted.
                    Err(ProviderError::NotFound { .. }) if value.is_none() => String::new(),
                    other => other?,
                },
                persisted: old_text.as_deref().and_then(dropin_value),
            };
            if value.is_some() {
                let mode = std::fs::metadata(self.file(key))
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
                    .unwrap_or(0);
                if mode & 0o222 == 0 {
                    return Err(ProviderError::invalid(
                        "key",
                        format!("{key} is read-only: the kernel takes no value for it"),
                    ));
                }
            }
            let new_text = value.map(|v| {
                format!("# Written by OSAPI (sysctl.key.set); deleting the key removes it.\n{key} = {v}\n")
            });
            let mut after = before.clone();
            after.persisted = value.map(str::to_owned);
            if let Some(v) = value {
                after.value = v.to_owned();
            }
            let mut change = SysctlChange {
                key: key.to_owned(),
                changed: old_text != new_text
                    || value.is_some_and(|v| !same_value(v, &before.value)),
                dry_run,
                before,
                after,
                path: dropin.display().to_string(),
            };
            if dry_run || !change.changed {
                return Ok(change);
            }
            put_file(&dropin, new_text.as_deref())?;
            // A delete only forgets the value for the next boot.
            let Some(wanted) = value else {
                change.after.value = self.running(key).unwrap_or_default();
                return Ok(change);
            };
            // The kernel's value decides: systemd-sysctl fails whenever any
            // line of any sysctl.d file does, ours applied or not.
            let job = self.apply().await;
            let now = self.running(key)?;
            if same_value(&now, wanted) {
                change.after.value = now;
                return Ok(change);
            }
            // Not taken: the old value back (the old drop-in, or one for the
            // value before, applied and removed again), then the old drop-in.
            let restore = old_text
                .clone()
                .unwrap_or_else(|| format!("{key} = {}\n", change.before.value));
            put_file(&dropin, Some(&restore))?;
            let _ = self.apply().await;
            put_file(&dropin, old_text.as_deref())?;
            let why = match job {
                Ok(result) if result != "done" => format!("systemd-sysctl ended in {result}"),
                Ok(_) => format!("the kernel kept {now:?}"),
                Err(e) => e.to_string(),
            };
            Err(ProviderError::invalid(
                "value",
                format!("{key} = {wanted} did not take ({why}); the old drop-in is back"),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_proc_sys() {
        assert_eq!(
            key_path("net.ipv4.ip_forward"),
            PathBuf::from("net/ipv4/ip_forward")
        );
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/forwarding"),
            PathBuf::from("net/ipv4/conf/eth0.100/forwarding")
        );
        let p = ProcSysctl::new(Arc::new(SystemBus::new()));
        assert_eq!(
            p.dropin("net/ipv4/ip_forward"),
            p.dropin("net.ipv4.ip_forward"),
            "one drop-in per key"
        );
    }

    #[test]
    fn drop_ins_and_values_read_back() {
        assert_eq!(
            dropin_value("# c\nnet.ipv4.ip_forward = 1\n").as_deref(),
            Some("1")
        );
        assert_eq!(dropin_value("# only a comment\n"), None);
        assert!(same_value("4096\t16384\t4194304", "4096 16384  4194304"));
        assert!(!same_value("1", "0"));
    }

    #[tokio::test]
    async fn this_host_s_parameters_read() {
        let p = ProcSysctl::new(Arc::new(SystemBus::new()));
        let v = p.get("kernel.ostype").await.unwrap();
        assert_eq!(v.value, "Linux");
        assert!(matches!(
            p.get("kernel.no_such_thing").await,
            Err(ProviderError::NotFound { .. })
        ));
        assert!(matches!(
            p.get("kernel").await,
            Err(ProviderError::Invalid(_))
        ));
        let all = p.list(Some("kernel")).await.unwrap();
        assert!(
            all.0.iter().any(|v| v.key == "kernel.ostype"),
            "{:?}",
            all.0.len()
        );
    }
}
