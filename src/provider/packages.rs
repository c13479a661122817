//! Packages through PackageKit (`org.freedesktop.PackageKit`) on the system
//! bus: one API over apt on Debian and dnf on Fedora.
//!
//! Every call is a PackageKit transaction: created, given its hints, asked
//! one thing, then listened to until `Finished`. Its signals come through one
//! stream (the proxy's, so only PackageKit's own are taken, in the order it
//! sent them); its `Status` and `Percentage` are read every second and
//! reported as [`Progress`].
//!
//! A change is planned, applied and proved:
//! * **plan**: the same transaction with PackageKit's `simulate` flag, which
//!   lists every package it would install, update or remove (dependencies
//!   too); a dry run answers with the plan;
//! * **apply**: the transaction itself, with `only-trusted` (an unsigned
//!   repository's packages are refused);
//! * **prove**: the requested packages resolved again: installed (at the
//!   planned version) or gone. A transaction that reported success but left
//!   the host otherwise fails the job.
//!
//! What is already so (installed, absent, up to date) answers
//! `changed: false` and starts no change. `reboot_required` is what the
//! backend said (`RequireRestart` for the system) or Debian's
//! `/run/reboot-required`.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, OwnedVariant, fdo, proxy};

use super::hostnamed::{SystemBus, bus_error};
use super::{BoxFuture, Progress, ProviderError, ProviderResult};
use crate::job::{PROTECTED_PACKAGES, PackageNames, PackageRefresh, PackageUpdate};

/// The service named in errors.
const SERVICE: &str = "PackageKit";

/// Longest wait for an install, removal or update (downloads included);
/// past it the transaction is cancelled and the job fails.
pub const CHANGE_WAIT: Duration = Duration::from_secs(30 * 60);
/// Longest wait for a refresh of the package lists.
pub const REFRESH_WAIT: Duration = Duration::from_secs(10 * 60);
/// Longest wait for a query, a plan (simulation) or a proof; PackageKit may
/// queue it behind another transaction.
pub const QUERY_WAIT: Duration = Duration::from_secs(60);
/// How long a cancelled transaction has to say it finished.
const CANCEL_GRACE: Duration = Duration::from_secs(30);
/// How often a running transaction's status is read for progress.
const POLL: Duration = Duration::from_secs(1);
/// Debian's flag file: a package's maintainer script asks for a reboot.
const REBOOT_REQUIRED: &str = "/run/reboot-required";

/// PackageKit's enumerations, as numbers on the bus (`pk-enum.h`).
mod pk {
    /// Filters and transaction flags are bitfields of their enum: `1 << value`.
    const fn bit(value: u32) -> u64 {
        1 << value
    }
    pub const FILTER_NONE: u64 = 0;
    pub const FILTER_INSTALLED: u64 = bit(2);
    pub const FILTER_NEWEST: u64 = bit(16);
    pub const FLAG_ONLY_TRUSTED: u64 = bit(1);
    pub const FLAG_SIMULATE: u64 = bit(2);

    pub const EXIT_SUCCESS: u32 = 1;
    /// `PkExitEnum` values, by name.
    pub const EXIT: &[&str] = &[
        "unknown",
        "success",
        "failed",
        "cancelled",
        "key-required",
        "eula-required",
        "killed",
        "media-change-required",
        "need-untrusted",
        "cancelled-priority",
        "skip-transaction",
        "repair-required",
    ];
    pub const RESTART_SYSTEM: u32 = 4;
    pub const RESTART_SECURITY_SYSTEM: u32 = 6;
    pub const PERCENT_UNKNOWN: u32 = 101;

    /// `PkInfoEnum` values, by name (the `info` of a `Package` signal, whose
    /// high 16 bits carry an update's severity).
    pub const INFO: &[&str] = &[
        "unknown",
        "installed",
        "available",
        "low",
        "enhancement",
        "normal",
        "bugfix",
        "important",
        "security",
        "blocked",
        "downloading",
        "updating",
        "installing",
        "removing",
        "cleanup",
        "obsoleting",
        "collection-installed",
        "collection-available",
        "finished",
        "reinstalling",
        "downgrading",
        "preparing",
        "decompressing",
        "untrusted",
        "trusted",
        "unavailable",
        "critical",
        // PackageKit 1.3 (Debian 13): what a transaction will do, not is doing.
        "install",
        "remove",
        "obsolete",
        "downgrade",
    ];

    pub const INFO_INSTALLED: u32 = 1;
    pub const INFO_AVAILABLE: u32 = 2;
    /// The classes of an update (`info`, or its high 16 bits): low (3) to
    /// security (8), and critical (26).
    pub fn is_update_class(info: u32) -> bool {
        matches!(info, INFO_AVAILABLE | 3..=8 | 26)
    }

    /// `PkStatusEnum` values, by name.
    pub const STATUS: &[&str] = &[
        "unknown",
        "waiting",
        "setting up",
        "running",
        "querying",
        "getting information",
        "removing",
        "refreshing the cache",
        "downloading",
        "installing",
        "updating",
        "cleaning up",
        "obsoleting",
        "resolving dependencies",
        "checking signatures",
        "testing changes",
        "committing changes",
        "requesting data",
        "finished",
        "cancelling",
        "downloading repository information",
        "downloading the list of packages",
        "downloading file lists",
        "downloading changelogs",
        "downloading groups",
        "downloading update information",
        "repackaging files",
        "loading the cache",
        "scanning applications",
        "generating package lists",
        "waiting for the package manager lock",
        "waiting for authentication",
        "scanning running applications",
        "checking applications in use",
        "checking libraries in use",
        "copying files",
        "running hooks",
    ];

    /// `PkErrorEnum` values, by name.
    pub const ERROR: &[&str] = &[
        "unknown",
        "out-of-memory",
        "no-network",
        "not-supported",
        "internal-error",
        "gpg-failure",
        "package-id-invalid",
        "package-not-installed",
        "package-not-found",
        "package-already-installed",
        "package-download-failed",
        "group-not-found",
        "group-list-invalid",
        "dep-resolution-failed",
        "filter-invalid",
        "create-thread-failed",
        "transaction-error",
        "transaction-cancelled",
        "no-cache",
        "repo-not-found",
        "cannot-remove-system-package",
        "process-kill",
        "failed-initialization",
        "failed-finalise",
        "failed-config-parsing",
        "cannot-cancel",
        "cannot-get-lock",
        "no-packages-to-update",
        "cannot-write-repo-config",
        "local-install-failed",
        "bad-gpg-signature",
        "missing-gpg-signature",
        "cannot-install-source-package",
        "repo-configuration-error",
        "no-license-agreement",
        "file-conflicts",
        "package-conflicts",
        "repo-not-available",
        "invalid-package-file",
        "package-install-blocked",
        "package-corrupt",
        "all-packages-already-installed",
        "file-not-found",
        "no-more-mirrors-to-try",
        "no-distro-upgrade-data",
        "incompatible-architecture",
        "no-space-on-device",
        "media-change-required",
        "not-authorized",
        "update-not-found",
        "cannot-install-repo-unsigned",
        "cannot-update-repo-unsigned",
    ];

    /// The name of `value` in `table`, or `unknown (N)`.
    pub fn name(table: &[&str], value: u32) -> String {
        match usize::try_from(value).ok().and_then(|i| table.get(i)) {
            Some(name) => (*name).to_owned(),
            None => format!("unknown ({value})"),
        }
    }
}

#[proxy(
    interface = "org.freedesktop.PackageKit",
    default_service = "org.freedesktop.PackageKit",
    default_path = "/org/freedesktop/PackageKit"
)]
trait PackageKit {
    fn create_transaction(&self) -> zbus::Result<OwnedObjectPath>;
}

#[proxy(
    interface = "org.freedesktop.PackageKit.Transaction",
    default_service = "org.freedesktop.PackageKit"
)]
trait Transaction {
    fn set_hints(&self, hints: &[&str]) -> zbus::Result<()>;
    fn resolve(&self, filter: u64, packages: &[&str]) -> zbus::Result<()>;
    fn get_packages(&self, filter: u64) -> zbus::Result<()>;
    fn search_names(&self, filter: u64, values: &[&str]) -> zbus::Result<()>;
    fn get_details(&self, package_ids: &[&str]) -> zbus::Result<()>;
    fn get_updates(&self, filter: u64) -> zbus::Result<()>;
    fn install_packages(&self, transaction_flags: u64, package_ids: &[&str]) -> zbus::Result<()>;
    fn remove_packages(
        &self,
        transaction_flags: u64,
        package_ids: &[&str],
        allow_deps: bool,
        autoremove: bool,
    ) -> zbus::Result<()>;
    fn update_packages(&self, transaction_flags: u64, package_ids: &[&str]) -> zbus::Result<()>;
    fn refresh_cache(&self, force: bool) -> zbus::Result<()>;
    fn cancel(&self) -> zbus::Result<()>;

    #[zbus(property)]
    fn status(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn percentage(&self) -> zbus::Result<u32>;
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// One package, as PackageKit lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `amd64`, `all`, `x86_64`, `noarch`.
    pub arch: String,
    /// The repository it comes from (`debian-bookworm-main`), `local` when
    /// none has it.
    pub repo: String,
    pub installed: bool,
    pub summary: String,
}

/// `package.list` and `package.search`: packages by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Packages(pub Vec<Package>);

/// `package.get`: one package, its installed and newest available versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PackageInfo {
    pub name: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// The newest version a repository offers, when it is not the installed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_version: Option<String>,
    pub repo: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Installed size, or download size when not installed, in bytes (when
    /// the backend knows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// One pending update.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PendingUpdate {
    pub name: String,
    pub arch: String,
    /// The version installed now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// The version the update brings.
    pub version: String,
    pub repo: String,
    /// `security`, `critical`, `important`, `bugfix`, `enhancement`,
    /// `normal` or `low`, as the backend classes it (apt: by the
    /// repository's suite, e.g. `bookworm-security`).
    pub severity: String,
    pub security: bool,
    pub summary: String,
}

/// `package.updates`: what an update would bring.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PendingUpdates {
    pub updates: Vec<PendingUpdate>,
    /// How many of them are security updates.
    pub security: usize,
    /// The host waits for a reboot (Debian's `/run/reboot-required`).
    pub reboot_required: bool,
}

/// A package a change touches (or in a dry run would).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct TouchedPackage {
    pub name: String,
    pub arch: String,
    /// `install`, `update`, `remove`, `downgrade`, `reinstall` or `obsolete`.
    pub action: String,
    /// The version installed before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The version installed after; none for a removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The result of `package.install`, `package.remove` and `package.update`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PackageChange {
    /// `install`, `remove` or `update`.
    pub action: String,
    /// The packages asked for; empty for an update of everything.
    pub requested: Vec<String>,
    pub changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Every package the transaction touched (or would), dependencies too.
    pub packages: Vec<TouchedPackage>,
    /// The host waits for a reboot: the backend asked for one, or a
    /// package's script wrote `/run/reboot-required`.
    pub reboot_required: bool,
}

/// The result of `package.refresh`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CacheRefresh {
    /// The pending updates differ after the refresh.
    pub changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub updates_before: usize,
    /// Equal to `updates_before` in a dry run.
    pub updates_after: usize,
    pub security_after: usize,
}

/// Packages through PackageKit. Changes report how far they got through
/// `progress`.
pub trait PackageProvider: Send + Sync {
    fn list(&self) -> BoxFuture<'_, ProviderResult<Packages>>;
    fn search<'a>(&'a self, text: &'a str) -> BoxFuture<'a, ProviderResult<Packages>>;
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<PackageInfo>>;
    fn updates(&self) -> BoxFuture<'_, ProviderResult<PendingUpdates>>;
    fn install<'a>(
        &'a self,
        request: &'a PackageNames,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<PackageChange>>;
    fn remove<'a>(
        &'a self,
        request: &'a PackageNames,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<PackageChange>>;
    fn update<'a>(
        &'a self,
        request: &'a PackageUpdate,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<PackageChange>>;
    fn refresh<'a>(
        &'a self,
        request: &'a PackageRefresh,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<CacheRefresh>>;
}

// ---------------------------------------------------------------------------
// Package ids and signals
// ---------------------------------------------------------------------------

/// A package id, `name;version;arch;data`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PackageId {
    name: String,
    version: String,
    arch: String,
    /// apt: `manual:REPO`/`auto:REPO` when installed, `REPO` when not;
    /// dnf: `installed` or `installed:REPO`, or `REPO`.
    data: String,
}

impl PackageId {
    fn parse(id: &str) -> Option<PackageId> {
        let mut parts = id.split(';');
        let (name, version, arch, data) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (parts.next().is_none() && !name.is_empty()).then(|| PackageId {
            name: name.to_owned(),
            version: version.to_owned(),
            arch: arch.to_owned(),
            data: data.to_owned(),
        })
    }

    /// The repository, without the install marks in front of it.
    fn repo(&self) -> String {
        let data = self.data.trim_start_matches('+');
        let repo = ["manual:", "auto:", "installed:"]
            .iter()
            .find_map(|mark| data.strip_prefix(mark))
            .unwrap_or(data);
        match repo {
            "" | "installed" => "local".to_owned(),
            repo => repo.to_owned(),
        }
    }
}

impl std::fmt::Display for PackageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{};{};{};{}",
            self.name, self.version, self.arch, self.data
        )
    }
}

/// One `Package` signal: what the package is to the transaction, and which.
#[derive(Debug, Clone, PartialEq)]
struct Emitted {
    /// The `PkInfoEnum` (low 16 bits of the signal's `info`).
    info: u32,
    /// An update's severity (high 16 bits; 0 when the backend sets none).
    severity: u32,
    id: PackageId,
    summary: String,
}

impl Emitted {
    fn installed(&self) -> bool {
        self.info == pk::INFO_INSTALLED
    }

    fn package(&self) -> Package {
        Package {
            name: self.id.name.clone(),
            version: self.id.version.clone(),
            arch: self.id.arch.clone(),
            repo: self.id.repo(),
            installed: self.installed(),
            summary: self.summary.clone(),
        }
    }
}

/// What one transaction said before it finished.
#[derive(Debug, Default)]
struct Said {
    packages: Vec<Emitted>,
    details: Vec<HashMap<String, OwnedVariant>>,
    /// The backend asked for a reboot of the system.
    reboot: bool,
    /// The first error the transaction reported.
    failure: Option<ProviderError>,
}

impl Said {
    /// Takes in one of the transaction's signals; `Some(exit code)` once it
    /// says `Finished`. A signal that does not read is logged and skipped.
    fn take_in(&mut self, msg: &zbus::Message) -> Option<u32> {
        self.absorb(msg).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable PackageKit signal; ignored");
            None
        })
    }

    /// The transaction's answer, once it finished with `exit`.
    fn finished(mut self, exit: u32) -> ProviderResult<Said> {
        match self.failure.take() {
            Some(e) => Err(e),
            None if exit == pk::EXIT_SUCCESS => Ok(self),
            None => Err(ProviderError::ServiceFailed {
                service: SERVICE,
                reason: pk::name(pk::EXIT, exit),
                detail: format!("the transaction ended with exit code {exit} and no error"),
            }),
        }
    }

    fn absorb(&mut self, msg: &zbus::Message) -> zbus::Result<Option<u32>> {
        let body = msg.body();
        match msg.header().member().map(|m| m.as_str()) {
            Some("Package") => {
                let (info, id, summary): (u32, String, String) = body.deserialize()?;
                if let Some(id) = PackageId::parse(&id) {
                    self.packages.push(Emitted {
                        info: info & 0xFFFF,
                        severity: info >> 16,
                        id,
                        summary,
                    });
                }
            }
            Some("Details") => self.details.push(body.deserialize()?),
            Some("RequireRestart") => {
                let (kind, _package): (u32, String) = body.deserialize()?;
                self.reboot |= matches!(kind, pk::RESTART_SYSTEM | pk::RESTART_SECURITY_SYSTEM);
            }
            Some("ErrorCode") => {
                let (code, detail): (u32, String) = body.deserialize()?;
                self.failure
                    .get_or_insert_with(|| transaction_error(code, &detail));
            }
            Some("Finished") => {
                let (exit, _runtime_ms): (u32, u32) = body.deserialize()?;
                return Ok(Some(exit));
            }
            _ => {}
        }
        Ok(None)
    }

    /// The packages, each id once (PackageKit 1.2.6's apt backend may repeat one).
    fn unique(&self) -> Vec<&Emitted> {
        let mut seen = BTreeSet::new();
        self.packages
            .iter()
            .filter(|p| seen.insert(&p.id))
            .collect()
    }
}

/// The verb a planned package's info stands for, if it is a change
/// (PackageKit 1.2's "-ing" values and 1.3's plain ones).
fn action_of(info: u32) -> Option<&'static str> {
    Some(match info {
        11 => "update",
        12 | 27 => "install",
        13 | 28 => "remove",
        15 | 29 => "obsolete",
        19 => "reinstall",
        20 | 30 => "downgrade",
        _ => return None,
    })
}

/// Whether a planned verb takes a package off the host.
fn takes_away(verb: &str) -> bool {
    matches!(verb, "remove" | "obsolete")
}

/// A running transaction's status, for people: `downloading 40%`.
fn progress_text(status: u32, percent: u32) -> String {
    let status = pk::name(pk::STATUS, status);
    if percent < pk::PERCENT_UNKNOWN {
        format!("{status} {percent}%")
    } else {
        status
    }
}

/// The error of a transaction that ended with `ErrorCode(code, detail)`.
fn transaction_error(code: u32, detail: &str) -> ProviderError {
    let reason = pk::name(pk::ERROR, code);
    match reason.as_str() {
        "package-not-found" | "package-not-installed" | "update-not-found" => {
            ProviderError::NotFound {
                what: "package",
                name: detail.trim().to_owned(),
            }
        }
        "not-authorized" => ProviderError::PermissionDenied {
            operation: "package",
            detail: format!("{SERVICE} refused: {detail}"),
        },
        _ => ProviderError::ServiceFailed {
            service: SERVICE,
            reason,
            detail: detail.trim().to_owned(),
        },
    }
}

/// Of a name's candidates, the one an install takes: this machine's own
/// architecture (or an architecture-free package) before a foreign one a
/// multi-arch host also offers (`libc6:i386` beside `libc6:amd64`).
fn install_candidate<'a>(candidates: &[&'a Emitted]) -> Option<&'a Emitted> {
    let native = native_arches();
    candidates
        .iter()
        .find(|p| native.contains(&p.id.arch.as_str()))
        .or(candidates.first())
        .copied()
}

/// The names this machine's architecture has in package ids: the
/// distribution's (Debian's `amd64`, Fedora's `x86_64`) and the
/// architecture-free ones (`all`, `noarch`).
fn native_arches() -> [&'static str; 5] {
    let (debian, fedora) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", "x86_64"),
        "aarch64" => ("arm64", "aarch64"),
        "x86" => ("i386", "i686"),
        "arm" => ("armhf", "armv7hl"),
        "powerpc64" => ("ppc64el", "ppc64le"),
        other => (other, other),
    };
    [debian, fedora, std::env::consts::ARCH, "all", "noarch"]
}

// ---------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------

/// [`PackageProvider`] through PackageKit.
pub struct PackageKit {
    bus: Arc<SystemBus>,
}

impl PackageKit {
    pub fn new(bus: Arc<SystemBus>) -> Self {
        PackageKit { bus }
    }

    /// Runs one transaction: `call` starts it; its signals are gathered until
    /// `Finished`, its status reported to `progress`. Past `limit` it is
    /// cancelled.
    async fn transact<F, Fut>(
        &self,
        operation: &'static str,
        limit: Duration,
        progress: &Progress,
        call: F,
    ) -> ProviderResult<Said>
    where
        F: FnOnce(TransactionProxy<'static>) -> Fut,
        Fut: Future<Output = zbus::Result<()>>,
    {
        let error = |e| bus_error(e, SERVICE, operation, "names");
        let conn = self.bus.connection().await.map_err(error)?;
        let tx = transaction(&conn).await.map_err(error)?;
        // Listen before asking: a quick transaction finishes at once.
        let mut signals = tx.inner().receive_all_signals().await.map_err(error)?;
        tx.set_hints(&["interactive=false", "locale=C", "background=false"])
            .await
            .map_err(error)?;
        call(tx.clone()).await.map_err(error)?;

        let mut said = Said::default();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported = String::new();
        // Set once the time is up and PackageKit took the cancel.
        let mut cancelled = false;
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let timed_out = |detail: String| ProviderError::ServiceTimeout {
            service: SERVICE,
            detail,
        };
        loop {
            tokio::select! {
                // Signals first: what PackageKit said before a status read
                // failed is taken in before that failure is judged.
                biased;
                signal = signals.next() => {
                    let Some(msg) = signal else {
                        return Err(ProviderError::Unavailable {
                            service: SERVICE,
                            detail: "the system bus closed the transaction's signals".into(),
                        });
                    };
                    match said.take_in(&msg) {
                        Some(_) if cancelled => {
                            return Err(timed_out(format!(
                                "{operation} did not finish within {}s; cancelled",
                                limit.as_secs()
                            )));
                        }
                        Some(exit) => return said.finished(exit),
                        None => {}
                    }
                }
                _ = poll.tick() => {
                    match (tx.status().await, tx.percentage().await) {
                        (Ok(status), Ok(percent)) => {
                            let text = progress_text(status, percent);
                            if text != reported {
                                progress.report(text.clone());
                                reported = text;
                            }
                        }
                        // This packagekitd (its unique name) or the transaction
                        // is gone: unless it said Finished just before, it
                        // died in the middle.
                        (Err(e), _) | (_, Err(e)) if is_gone(&e) => {
                            while let Some(Some(msg)) = signals.next().now_or_never() {
                                if let Some(exit) = said.take_in(&msg) {
                                    return said.finished(exit);
                                }
                            }
                            return Err(ProviderError::Unavailable {
                                service: SERVICE,
                                detail: format!("it went away during {operation}: {e}"),
                            });
                        }
                        // A slow answer is not a dead daemon: Finished decides.
                        _ => {}
                    }
                }
                () = &mut deadline => {
                    if cancelled {
                        return Err(timed_out(format!(
                            "{operation} did not finish within {}s, and not within {}s of being cancelled; it may still be running",
                            limit.as_secs(),
                            CANCEL_GRACE.as_secs()
                        )));
                    }
                    if let Err(e) = tx.cancel().await {
                        return Err(timed_out(format!(
                            "{operation} did not finish within {}s and PackageKit could not cancel it ({e}); it goes on",
                            limit.as_secs()
                        )));
                    }
                    cancelled = true;
                    deadline.as_mut().reset(tokio::time::Instant::now() + CANCEL_GRACE);
                }
            }
        }
    }

    /// The packages of these names: installed ones and the newest available,
    /// each once.
    async fn resolve(&self, filter: u64, names: &[String]) -> ProviderResult<Vec<Emitted>> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let said = self
            .transact(
                "package.resolve",
                QUERY_WAIT,
                &Progress::none(),
                |tx| async move { tx.resolve(filter | pk::FILTER_NEWEST, &names).await },
            )
            .await;
        match said {
            Ok(said) => Ok(said.unique().into_iter().cloned().collect()),
            // Nothing of that name: an empty answer, not a failure.
            Err(ProviderError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The pending updates, each with the package id that updates it.
    async fn pending(&self) -> ProviderResult<Vec<(PendingUpdate, String)>> {
        let said = self
            .transact(
                "package.updates",
                QUERY_WAIT,
                &Progress::none(),
                |tx| async move { tx.get_updates(pk::FILTER_NONE).await },
            )
            .await?;
        let updates: Vec<&Emitted> = said
            .unique()
            .into_iter()
            // GetUpdates also lists the dependency changes an update would
            // make, and blocked updates: only updates count.
            .filter(|p| pk::is_update_class(p.info))
            .collect();
        let names: Vec<String> = updates.iter().map(|p| p.id.name.clone()).collect();
        let installed = if names.is_empty() {
            Vec::new()
        } else {
            self.resolve(pk::FILTER_INSTALLED, &names).await?
        };
        Ok(updates
            .into_iter()
            .map(|p| {
                let severity =
                    pk::name(pk::INFO, if p.severity != 0 { p.severity } else { p.info });
                let severity = match severity.as_str() {
                    "available" | "unknown" => "normal".to_owned(),
                    _ => severity,
                };
                let update = PendingUpdate {
                    installed_version: installed
                        .iter()
                        .find(|i| i.id.name == p.id.name && i.id.arch == p.id.arch)
                        .map(|i| i.id.version.clone()),
                    name: p.id.name.clone(),
                    arch: p.id.arch.clone(),
                    version: p.id.version.clone(),
                    repo: p.id.repo(),
                    security: severity == "security",
                    severity,
                    summary: p.summary.clone(),
                };
                (update, p.id.to_string())
            })
            .collect())
    }

    /// Plans (simulates) a change of `ids`, then, unless `dry_run`, makes it;
    /// answers what it touched with the versions before and after.
    async fn change(
        &self,
        action: Change,
        requested: &[String],
        ids: Vec<String>,
        dry_run: bool,
        progress: &Progress,
    ) -> ProviderResult<(Vec<TouchedPackage>, bool)> {
        let simulate = pk::FLAG_ONLY_TRUSTED | pk::FLAG_SIMULATE;
        let plan = self
            .apply(action, &ids, simulate, QUERY_WAIT, &Progress::none())
            .await?;
        let planned: Vec<(&'static str, &PackageId)> = plan
            .unique()
            .into_iter()
            .filter_map(|p| action_of(p.info).map(|a| (a, &p.id)))
            .collect();
        if planned.is_empty() {
            return Err(ProviderError::Unproven {
                service: SERVICE,
                detail: format!(
                    "PackageKit planned nothing for a {} that has {} package(s) to change",
                    action.verb(),
                    ids.len()
                ),
            });
        }
        check_plan(action, requested, &planned)?;
        let names: Vec<String> = planned.iter().map(|(_, id)| id.name.clone()).collect();
        let before = if names.is_empty() {
            Vec::new()
        } else {
            self.resolve(pk::FILTER_INSTALLED, &names).await?
        };
        let touched: Vec<TouchedPackage> = planned
            .iter()
            .map(|(verb, id)| TouchedPackage {
                name: id.name.clone(),
                arch: id.arch.clone(),
                action: (*verb).to_owned(),
                before: before
                    .iter()
                    .find(|b| b.id.name == id.name && b.id.arch == id.arch)
                    .map(|b| b.id.version.clone()),
                after: (!takes_away(verb)).then(|| id.version.clone()),
            })
            .collect();
        if dry_run {
            return Ok((touched, plan.reboot));
        }
        let done = self
            .apply(action, &ids, pk::FLAG_ONLY_TRUSTED, CHANGE_WAIT, progress)
            .await?;
        Ok((touched, done.reboot))
    }

    /// Installs what of `request` is not installed, or removes what is
    /// (every architecture of it); an unknown name is `not_found`.
    async fn install_or_remove(
        &self,
        action: Change,
        request: &PackageNames,
        progress: &Progress,
    ) -> ProviderResult<PackageChange> {
        let found = self.resolve(pk::FILTER_NONE, &request.names).await?;
        let mut ids = Vec::new();
        for name in &request.names {
            let of_name: Vec<&Emitted> = found.iter().filter(|p| &p.id.name == name).collect();
            let Some(first) = install_candidate(&of_name) else {
                return Err(ProviderError::NotFound {
                    what: "package",
                    name: name.clone(),
                });
            };
            let installed = of_name.iter().filter(|p| p.installed());
            match action {
                // Installed already in the architecture an install takes:
                // nothing to do (a foreign one alone does not count).
                Change::Install
                    if of_name
                        .iter()
                        .any(|p| p.installed() && p.id.arch == first.id.arch) => {}
                Change::Install => ids.push(first.id.to_string()),
                _ => ids.extend(installed.map(|p| p.id.to_string())),
            }
        }
        change_result(
            self,
            action,
            request.names.clone(),
            ids,
            request.dry_run,
            progress,
        )
        .await
    }

    /// One transaction that changes `ids` (or, with the simulate flag, says
    /// how it would).
    async fn apply(
        &self,
        action: Change,
        ids: &[String],
        flags: u64,
        limit: Duration,
        progress: &Progress,
    ) -> ProviderResult<Said> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.transact(action.operation(), limit, progress, |tx| async move {
            match action {
                Change::Install => tx.install_packages(flags, &ids).await,
                // allow_deps false asks that what needs a removed package
                // stay (PackageKit's apt backend honours it only from 1.3.6):
                // `check_plan` refuses such plans whatever the backend does.
                Change::Remove => tx.remove_packages(flags, &ids, false, false).await,
                Change::Update => tx.update_packages(flags, &ids).await,
            }
        })
        .await
    }

    /// Whether each of `touched` is now as planned: installed at its `after`
    /// version, or (removed) not installed.
    async fn prove(
        &self,
        action: Change,
        requested: &[String],
        touched: &[TouchedPackage],
    ) -> ProviderResult<()> {
        let mut names: Vec<String> = touched.iter().map(|t| t.name.clone()).collect();
        names.extend(requested.iter().cloned());
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Ok(());
        }
        let now = self.resolve(pk::FILTER_INSTALLED, &names).await?;
        let installed = |name: &str, arch: Option<&str>| {
            now.iter()
                .find(|p| p.id.name == name && arch.is_none_or(|a| p.id.arch == a))
                .map(|p| p.id.version.as_str())
        };
        let show = |v: Option<&str>| v.map_or("not installed".to_owned(), |v| format!("at {v}"));
        let unproven = |name: &str, is: Option<&str>, expected: String| ProviderError::Unproven {
            service: SERVICE,
            detail: format!(
                "the transaction reported success, yet {name} is {} (expected {expected})",
                show(is)
            ),
        };
        for t in touched {
            let is = installed(&t.name, Some(&t.arch));
            if is != t.after.as_deref() {
                return Err(unproven(&t.name, is, show(t.after.as_deref())));
            }
        }
        for name in requested {
            let is = installed(name, None);
            match action {
                Change::Install if is.is_none() => {
                    return Err(unproven(name, is, "installed".to_owned()));
                }
                Change::Remove if is.is_some() => {
                    return Err(unproven(name, is, "not installed".to_owned()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Refuses a plan that takes away more than was asked: a removal that would
/// take the packages that need the named ones, an install or update that
/// would remove any package (a conflict, e.g. `sysvinit-core` taking
/// `systemd-sysv`), and any plan taking OSAPI, its bus or PackageKit.
fn check_plan(
    action: Change,
    requested: &[String],
    planned: &[(&'static str, &PackageId)],
) -> ProviderResult<()> {
    let taken: Vec<&str> = planned
        .iter()
        .filter(|(verb, _)| takes_away(verb))
        .map(|(_, id)| id.name.as_str())
        .collect();
    if let Some(own) = taken.iter().find(|name| PROTECTED_PACKAGES.contains(name)) {
        return Err(ProviderError::invalid(
            "names",
            format!("the change would remove {own}, which OSAPI never removes"),
        ));
    }
    let unasked: Vec<&str> = taken
        .into_iter()
        .filter(|name| action != Change::Remove || !requested.iter().any(|r| r == name))
        .collect();
    if unasked.is_empty() {
        return Ok(());
    }
    let why = match action {
        Change::Remove => format!(
            "removing them also removes {} (which need them); name those too",
            unasked.join(", ")
        ),
        _ => format!(
            "the {} would remove {} (a conflict); remove those first if that is meant",
            action.verb(),
            unasked.join(", ")
        ),
    };
    Err(ProviderError::invalid("names", why))
}

/// The changes a transaction makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Install,
    Remove,
    Update,
}

impl Change {
    fn operation(self) -> &'static str {
        match self {
            Change::Install => "package.install",
            Change::Remove => "package.remove",
            Change::Update => "package.update",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Change::Install => "install",
            Change::Remove => "remove",
            Change::Update => "update",
        }
    }
}

/// A new transaction of PackageKit's, addressed to the daemon that made it
/// (its unique name): a packagekitd started again in the meantime is another
/// daemon, which does not know the transaction.
async fn transaction(conn: &Connection) -> zbus::Result<TransactionProxy<'static>> {
    let manager = PackageKitProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    // The call starts packagekitd when it is not running (bus activation).
    let path = manager.create_transaction().await?;
    let owner = fdo::DBusProxy::new(conn)
        .await?
        .get_name_owner(manager.inner().destination().to_owned())
        .await?;
    TransactionProxy::builder(conn)
        .destination(owner)
        .path(path)
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

/// Whether a failed call says the daemon or the transaction is gone (not
/// merely slow).
fn is_gone(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::FDO(e) => matches!(
            **e,
            fdo::Error::ServiceUnknown(_)
                | fdo::Error::NameHasNoOwner(_)
                | fdo::Error::UnknownObject(_)
                | fdo::Error::UnknownMethod(_)
                | fdo::Error::Disconnected(_)
        ),
        zbus::Error::InputOutput(_) => true,
        _ => false,
    }
}

/// Debian's flag that the host waits for a reboot.
fn reboot_flagged() -> bool {
    Path::new(REBOOT_REQUIRED).exists()
}

/// A detail of `Details` as text.
fn detail_text(details: &HashMap<String, OwnedVariant>, key: &str) -> String {
    details
        .get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .unwrap_or_default()
        .to_owned()
}

impl PackageProvider for PackageKit {
    fn list(&self) -> BoxFuture<'_, ProviderResult<Packages>> {
        Box::pin(async move {
            let said = self
                .transact(
                    "package.list",
                    QUERY_WAIT,
                    &Progress::none(),
                    |tx| async move { tx.get_packages(pk::FILTER_INSTALLED).await },
                )
                .await?;
            let mut packages: Vec<Package> = said.unique().iter().map(|p| p.package()).collect();
            packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
            Ok(Packages(packages))
        })
    }

    fn search<'a>(&'a self, text: &'a str) -> BoxFuture<'a, ProviderResult<Packages>> {
        Box::pin(async move {
            let said = self
                .transact(
                    "package.search",
                    QUERY_WAIT,
                    &Progress::none(),
                    |tx| async move { tx.search_names(pk::FILTER_NEWEST, &[text]).await },
                )
                .await;
            let said = match said {
                Ok(said) => said,
                Err(ProviderError::NotFound { .. }) => Said::default(),
                Err(e) => return Err(e),
            };
            let mut packages: Vec<Package> = said.unique().iter().map(|p| p.package()).collect();
            packages.sort_by(|a, b| {
                (&a.name, &a.arch, !a.installed).cmp(&(&b.name, &b.arch, !b.installed))
            });
            Ok(Packages(packages))
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<PackageInfo>> {
        Box::pin(async move {
            let found = self.resolve(pk::FILTER_NONE, &[name.to_owned()]).await?;
            let found: Vec<&Emitted> = found.iter().filter(|p| p.id.name == name).collect();
            let installed = found.iter().find(|p| p.installed());
            let available = found.iter().find(|p| !p.installed());
            let Some(first) = installed.or(available) else {
                return Err(ProviderError::NotFound {
                    what: "package",
                    name: name.to_owned(),
                });
            };
            let id = first.id.to_string();
            let said = self
                .transact(
                    "package.get",
                    QUERY_WAIT,
                    &Progress::none(),
                    |tx| async move { tx.get_details(&[id.as_str()]).await },
                )
                .await?;
            let details = said.details.into_iter().next().unwrap_or_default();
            Ok(PackageInfo {
                name: name.to_owned(),
                arch: first.id.arch.clone(),
                installed_version: installed.map(|p| p.id.version.clone()),
                available_version: available
                    .filter(|a| installed.is_none_or(|i| i.id.version != a.id.version))
                    .map(|p| p.id.version.clone()),
                repo: first.id.repo(),
                summary: first.summary.clone(),
                description: detail_text(&details, "description"),
                url: detail_text(&details, "url"),
                size: details
                    .get("size")
                    .and_then(|v| u64::try_from(v).ok())
                    .filter(|s| *s > 0),
            })
        })
    }

    fn updates(&self) -> BoxFuture<'_, ProviderResult<PendingUpdates>> {
        Box::pin(async move {
            let updates: Vec<PendingUpdate> =
                self.pending().await?.into_iter().map(|(u, _)| u).collect();
            Ok(PendingUpdates {
                security: updates.iter().filter(|u| u.security).count(),
                updates,
                reboot_required: reboot_flagged(),
            })
        })
    }

    fn install<'a>(
        &'a self,
        request: &'a PackageNames,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<PackageChange>> {
        Box::pin(self.install_or_remove(Change::Install, request, progress))
    }

    fn remove<'a>(
        &'a self,
        request: &'a PackageNames,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<PackageChange>> {
        Box::pin(self.install_or_remove(Change::Remove, request, progress))
    }

    fn update<'a>(
        &'a self,
        request: &'a PackageUpdate,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<PackageChange>> {
        Box::pin(async move {
            let pending = self.pending().await?;
            // An unknown name is an error; a known one without an update is
            // not. The names without an update are looked up in one go.
            let others: Vec<String> = request
                .names
                .iter()
                .filter(|name| !pending.iter().any(|(u, _)| &u.name == *name))
                .cloned()
                .collect();
            if !others.is_empty() {
                let known = self.resolve(pk::FILTER_NONE, &others).await?;
                if let Some(name) = others
                    .iter()
                    .find(|n| !known.iter().any(|p| &p.id.name == *n))
                {
                    return Err(ProviderError::NotFound {
                        what: "package",
                        name: name.clone(),
                    });
                }
            }
            let ids: Vec<String> = pending
                .iter()
                .filter(|(u, _)| request.names.is_empty() || request.names.contains(&u.name))
                .map(|(_, id)| id.clone())
                .collect();
            change_result(
                self,
                Change::Update,
                request.names.clone(),
                ids,
                request.dry_run,
                progress,
            )
            .await
        })
    }

    fn refresh<'a>(
        &'a self,
        request: &'a PackageRefresh,
        progress: &'a Progress,
    ) -> BoxFuture<'a, ProviderResult<CacheRefresh>> {
        Box::pin(async move {
            let summary = |u: &[(PendingUpdate, String)]| -> BTreeSet<String> {
                u.iter().map(|(_, id)| id.clone()).collect()
            };
            let security =
                |u: &[(PendingUpdate, String)]| u.iter().filter(|(u, _)| u.security).count();
            let before = self.pending().await?;
            if request.dry_run {
                return Ok(CacheRefresh {
                    changed: false,
                    dry_run: true,
                    updates_before: before.len(),
                    updates_after: before.len(),
                    security_after: security(&before),
                });
            }
            let force = request.force;
            self.transact("package.refresh", REFRESH_WAIT, progress, |tx| async move {
                tx.refresh_cache(force).await
            })
            .await?;
            let after = self.pending().await?;
            Ok(CacheRefresh {
                changed: summary(&before) != summary(&after),
                dry_run: false,
                updates_before: before.len(),
                updates_after: after.len(),
                security_after: security(&after),
            })
        })
    }
}

/// A change of `ids` (empty: nothing to do) as its result: planned, made
/// unless `dry_run`, and proved.
async fn change_result(
    kit: &PackageKit,
    action: Change,
    requested: Vec<String>,
    ids: Vec<String>,
    dry_run: bool,
    progress: &Progress,
) -> ProviderResult<PackageChange> {
    let (packages, reboot) = if ids.is_empty() {
        (Vec::new(), false)
    } else {
        kit.change(action, &requested, ids, dry_run, progress)
            .await?
    };
    if !dry_run {
        kit.prove(action, &requested, &packages).await?;
    }
    Ok(PackageChange {
        action: action.verb().to_owned(),
        requested,
        changed: !packages.is_empty(),
        dry_run,
        packages,
        reboot_required: reboot || reboot_flagged(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_ids_come_apart() {
        let id =
            PackageId::parse("curl;7.88.1-10+deb12u5;amd64;manual:debian-bookworm-main").unwrap();
        assert_eq!(
            (id.name.as_str(), id.version.as_str(), id.arch.as_str()),
            ("curl", "7.88.1-10+deb12u5", "amd64")
        );
        assert_eq!(id.repo(), "debian-bookworm-main");
        for (data, repo) in [
            ("auto:local", "local"),
            ("+manual:osapi-test-stable-", "osapi-test-stable-"),
            (
                "debian-bookworm-security-main",
                "debian-bookworm-security-main",
            ),
            ("installed", "local"),
            ("installed:fedora", "fedora"),
            ("", "local"),
        ] {
            let id = PackageId::parse(&format!("p;1;all;{data}")).unwrap();
            assert_eq!(id.repo(), repo, "{data:?}");
        }
        for bad in ["", "curl", "curl;1;amd64", ";1;amd64;x", "a;1;amd64;x;y"] {
            assert!(PackageId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_read_as_packagekit_names_them() {
        assert_eq!(pk::FILTER_INSTALLED, 4);
        assert_eq!(pk::FILTER_NEWEST, 65536);
        assert_eq!(pk::FLAG_ONLY_TRUSTED | pk::FLAG_SIMULATE, 6);
        assert_eq!(pk::name(pk::INFO, 8), "security");
        assert_eq!(pk::name(pk::INFO, 26), "critical");
        assert_eq!(pk::name(pk::INFO, 99), "unknown (99)");
        assert_eq!(pk::name(pk::ERROR, 13), "dep-resolution-failed");
        assert_eq!(pk::name(pk::ERROR, 48), "not-authorized");
        assert_eq!(pk::name(pk::ERROR, 51), "cannot-update-repo-unsigned");
        assert_eq!(action_of(12), Some("install"));
        assert_eq!(action_of(13), Some("remove"));
        assert_eq!(action_of(11), Some("update"));
        assert_eq!(action_of(10), None, "downloading is not a change");
        assert_eq!(progress_text(8, 40), "downloading 40%");
        assert_eq!(
            progress_text(30, 101),
            "waiting for the package manager lock"
        );
    }

    #[test]
    fn errors_keep_packagekits_reason() {
        assert!(matches!(
            transaction_error(8, "no-such-thing"),
            ProviderError::NotFound {
                what: "package",
                ..
            }
        ));
        assert!(matches!(
            transaction_error(48, "x"),
            ProviderError::PermissionDenied { .. }
        ));
        let e = transaction_error(13, "osapi-test-tool depends on missing");
        assert_eq!(e.code(), "service_failed");
        assert!(e.to_string().contains("dep-resolution-failed"), "{e}");
    }

    #[test]
    fn packagekit_1_3_plans_and_update_classes_read_too() {
        assert_eq!(action_of(27), Some("install"));
        assert_eq!(action_of(28), Some("remove"));
        assert_eq!(action_of(29), Some("obsolete"));
        assert_eq!(action_of(30), Some("downgrade"));
        // Debian's 1.2.6 classes updates by their info; upstream says
        // available, with the class in the high bits.
        for update in [2, 3, 5, 6, 8, 26] {
            assert!(pk::is_update_class(update), "{update}");
        }
        for not_an_update in [1, 9, 11, 12, 13, 28] {
            assert!(!pk::is_update_class(not_an_update), "{not_an_update}");
        }
    }

    #[test]
    fn plans_that_take_away_more_than_asked_are_refused() {
        let id = |name: &str| PackageId::parse(&format!("{name};1;all;repo")).unwrap();
        let (tool, lib, systemd_sysv, osapi) =
            (id("tool"), id("lib"), id("systemd-sysv"), id("osapi"));
        let asked = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        // Removing what was named, and installing with dependencies: fine.
        check_plan(
            Change::Remove,
            &asked(&["tool", "lib"]),
            &[("remove", &tool), ("remove", &lib)],
        )
        .unwrap();
        check_plan(
            Change::Install,
            &asked(&["tool"]),
            &[("install", &tool), ("install", &lib)],
        )
        .unwrap();
        // A removal that takes what needs it.
        let e = check_plan(
            Change::Remove,
            &asked(&["lib"]),
            &[("remove", &lib), ("remove", &tool)],
        )
        .unwrap_err();
        assert!(e.to_string().contains("also removes tool"), "{e}");
        // An install or update that removes a conflicting package.
        for action in [Change::Install, Change::Update] {
            let plan = [("install", &tool), ("remove", &systemd_sysv)];
            let e = check_plan(action, &asked(&["tool"]), &plan).unwrap_err();
            assert!(e.to_string().contains("would remove systemd-sysv"), "{e}");
        }
        // OSAPI never goes, even when named.
        let e =
            check_plan(Change::Remove, &asked(&["osapi"]), &[("obsolete", &osapi)]).unwrap_err();
        assert!(e.to_string().contains("never removes"), "{e}");
    }

    #[test]
    fn an_install_takes_the_native_architecture_first() {
        let emitted = |id: &str| Emitted {
            info: 2,
            severity: 0,
            id: PackageId::parse(id).unwrap(),
            summary: String::new(),
        };
        let native = native_arches()[0];
        let foreign = emitted("libc6;2.36;m68k;debian");
        let own = emitted(&format!("libc6;2.36;{native};debian"));
        let free = emitted("tzdata;2024a;all;debian");
        assert_eq!(install_candidate(&[&foreign, &own]), Some(&own));
        assert_eq!(install_candidate(&[&free]), Some(&free));
        // Only foreign ones: the first, as PackageKit listed them.
        assert_eq!(install_candidate(&[&foreign]), Some(&foreign));
        assert_eq!(install_candidate(&[]), None);
    }

    #[test]
    fn repeated_packages_count_once() {
        let emitted = |info, id: &str| Emitted {
            info,
            severity: 0,
            id: PackageId::parse(id).unwrap(),
            summary: String::new(),
        };
        let said = Said {
            packages: vec![
                emitted(2, "a;1;all;repo"),
                emitted(2, "a;1;all;repo"),
                emitted(1, "b;2;all;manual:repo"),
            ],
            ..Said::default()
        };
        let unique = said.unique();
        assert_eq!(unique.len(), 2);
        assert!(unique[1].installed() && !unique[0].installed());
    }
}
