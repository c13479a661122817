//! The journal, read natively: `sdjournal` (pure Rust, MIT) reads journald's
//! files under `/run/log/journal` and `/var/log/journal` directly — no
//! `journalctl` child, no libsystemd. See `docs/architecture.md` for the
//! choice and its figures.
//!
//! A query without a cursor answers the newest entries first; with one, the
//! entries after it, oldest first — how a follow resumes. With `wait`, an
//! empty answer after a cursor waits (polling the files) for up to that long.
//! Answers are bounded three times: by `limit`, by [`MAX_ANSWER_BYTES`] of
//! messages (each cut at [`MAX_MESSAGE_BYTES`]), and by [`SCAN_BUDGET`] of
//! scanning; `truncated` says when any cut.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{BoxFuture, ProviderError, ProviderResult};
use crate::job::{Boot, LogQuery, parse_time};
use crate::retry::Backoff;

/// The JSON one answer may carry, all entries together: well inside a
/// NATS message (1 MiB by default).
pub const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// A longer message is cut here.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// The longest one pass may scan for matches of priority and text (which
/// the journal's index cannot answer): then it answers what it found, as
/// `truncated`. sdjournal scans about 23,000 entries/s here.
pub const SCAN_BUDGET: Duration = Duration::from_secs(5);

/// One journal entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LogEntry {
    /// When it was logged (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub time: OffsetDateTime,
    /// Where it is in the journal: give it back as `cursor` to read on after it.
    pub cursor: String,
    /// The boot it belongs to (32 hex digits).
    pub boot_id: String,
    /// The unit whose process logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The syslog identifier, e.g. `sshd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// 0 (emerg) to 7 (debug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The message, as text (invalid UTF-8 replaced), cut at 16 KiB.
    pub message: String,
}

impl LogEntry {
    /// Who logged it, as syslog shows it: `sshd[42]`, else the unit.
    pub fn source(&self) -> String {
        match (&self.identifier, self.pid) {
            (Some(id), Some(pid)) => format!("{id}[{pid}]"),
            (Some(id), None) => id.clone(),
            (None, _) => self.unit.clone().unwrap_or_default(),
        }
    }
}

/// The result of `log.entries.get`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LogEntries {
    /// Newest first; after a cursor, oldest first.
    pub entries: Vec<LogEntry>,
    /// Where to read on: the newest entry this answer looked at, shown or
    /// not; give it back as `cursor`. Absent when nothing was looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// More entries matched than the limit or the size bound let through,
    /// a message was cut, or the scan for priority and text ran out of time
    /// (5 s).
    pub truncated: bool,
}

/// Reads the host's journal.
pub trait LogProvider: Send + Sync {
    fn query<'a>(&'a self, query: &'a LogQuery) -> BoxFuture<'a, ProviderResult<LogEntries>>;
}

/// The journal's own files.
#[derive(Debug, Clone, Default)]
pub struct JournalFiles {
    /// `None`: journald's places (`/run/log/journal`, `/var/log/journal`).
    dirs: Option<Vec<PathBuf>>,
}

impl JournalFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// The journal files under `dirs` (tests, containers' journals).
    pub fn at(dirs: Vec<PathBuf>) -> Self {
        JournalFiles { dirs: Some(dirs) }
    }
}

impl LogProvider for JournalFiles {
    fn query<'a>(&'a self, query: &'a LogQuery) -> BoxFuture<'a, ProviderResult<LogEntries>> {
        Box::pin(async move {
            let wait = Duration::from_secs(u64::from(query.wait.unwrap_or(0)));
            let deadline = tokio::time::Instant::now() + wait;
            let mut backoff =
                Backoff::between(Duration::from_millis(50), Duration::from_millis(500));
            let mut query = query.clone();
            loop {
                let (dirs, q) = (self.dirs.clone(), query.clone());
                let mut answer = tokio::task::spawn_blocking(move || read(dirs, &q))
                    .await
                    .map_err(|e| {
                        ProviderError::io("reading the journal", std::io::Error::other(e))
                    })??;
                // Entries looked at and passed over need no second look.
                if answer.cursor.is_some() {
                    query.cursor.clone_from(&answer.cursor);
                }
                // A follow's poll: nothing new yet, and time left to wait.
                if !answer.entries.is_empty() || tokio::time::Instant::now() >= deadline {
                    if answer.cursor.is_none() {
                        answer.cursor = query.cursor;
                    }
                    return Ok(answer);
                }
                backoff.wait().await;
            }
        })
    }
}

fn journal_error(e: sdjournal::SdJournalError) -> ProviderError {
    match e {
        sdjournal::SdJournalError::PermissionDenied { path } => ProviderError::PermissionDenied {
            operation: "log.entries.get",
            detail: format!("cannot read {}", path.display()),
        },
        sdjournal::SdJournalError::InvalidQuery { reason } => {
            ProviderError::invalid("cursor", reason)
        }
        other => ProviderError::io(
            "reading the journal",
            std::io::Error::other(other.to_string()),
        ),
    }
}

/// One pass over the journal files (blocking).
fn read(dirs: Option<Vec<PathBuf>>, query: &LogQuery) -> ProviderResult<LogEntries> {
    let invalid = |e: crate::job::InvalidInput| ProviderError::Invalid(e);
    let journal = match dirs {
        Some(dirs) => sdjournal::Journal::open_dirs(&dirs),
        None => sdjournal::Journal::open_default(),
    }
    .map_err(journal_error)?;
    let mut q = journal.query();
    if let Some(unit) = &query.unit {
        q.match_unit(unit);
    }
    if let Some(id) = &query.identifier {
        q.match_exact("SYSLOG_IDENTIFIER", id.as_bytes());
    }
    // Priority and text are checked entry by entry (below).
    let max_priority = query.max_priority().map_err(invalid)?;
    match query.boot().map_err(invalid)? {
        Some(Boot::Current) => {
            // The boot journald stamps its newest entry with: in a container
            // that is the container's, which the agent's sandbox cannot read.
            if let Some(id) = newest_boot(&journal)? {
                q.match_exact("_BOOT_ID", id.as_bytes());
            }
        }
        Some(Boot::Id(id)) => {
            q.match_exact("_BOOT_ID", hex(&id).as_bytes());
        }
        None => {}
    }
    let now = OffsetDateTime::now_utc();
    let usec = |field: &'static str, text: &Option<String>| -> ProviderResult<Option<u64>> {
        text.as_deref()
            .map(|t| {
                let at = parse_time(t, now).map_err(|why| ProviderError::invalid(field, why))?;
                Ok(u64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(0))
            })
            .transpose()
    };
    if let Some(since) = usec("since", &query.since)? {
        q.since_realtime(since);
    }
    if let Some(until) = usec("until", &query.until)? {
        // Before `until`: the bound is inclusive.
        q.until_realtime(until.saturating_sub(1));
    }
    match &query.cursor {
        Some(c) => {
            let cursor = sdjournal::Cursor::parse(c)
                .map_err(|e| ProviderError::invalid("cursor", e.to_string()))?;
            q.after_cursor(cursor);
        }
        None => {
            q.reverse(true);
        }
    }
    let grep = query.grep.as_ref().map(|g| g.to_lowercase());
    let limit = query.limit();
    // One more than asked: whether there was more is part of the answer.
    if grep.is_none() && max_priority.is_none() {
        q.limit(limit + 1);
    }
    let forward = query.cursor.is_some();
    let mut out = LogEntries {
        entries: Vec::new(),
        truncated: false,
        cursor: None,
    };
    let mut bytes = 0;
    let started = std::time::Instant::now();
    for (seen, item) in q.iter().map_err(journal_error)?.enumerate() {
        if seen % 1024 == 1023 && started.elapsed() > SCAN_BUDGET {
            out.truncated = true;
            break;
        }
        let entry = item.map_err(journal_error)?;
        // Where to read on: the newest entry looked at, matched or not (the
        // last one reading forward, the first one reading back), so a follow
        // whose filter matches nothing for long still moves on.
        if forward || out.cursor.is_none() {
            out.cursor = Some(entry.cursor().map_err(journal_error)?.to_string());
        }
        let priority = entry
            .get("PRIORITY")
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.parse::<u8>().ok());
        // An entry without a priority is as urgent as journalctl takes it: info.
        if max_priority.is_some_and(|max| priority.unwrap_or(6) > max) {
            continue;
        }
        let raw = entry.get("MESSAGE").unwrap_or_default();
        let message = String::from_utf8_lossy(raw);
        if let Some(g) = &grep
            && !message.to_lowercase().contains(g.as_str())
        {
            continue;
        }
        if out.entries.len() == limit {
            out.truncated = true;
            // Read on from the last entry answered: this one matched.
            if forward {
                out.cursor = out.entries.last().map(|e| e.cursor.clone());
            }
            break;
        }
        let mut message = message.into_owned();
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            out.truncated = true;
        }
        let text = |field: &str| {
            entry
                .get(field)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let realtime = i128::from(entry.realtime_usec()) * 1000;
        let cursor = entry.cursor().map_err(journal_error)?.to_string();
        let entry = LogEntry {
            time: OffsetDateTime::from_unix_timestamp_nanos(realtime)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            cursor: cursor.clone(),
            boot_id: hex(&entry.boot_id()),
            unit: text("_SYSTEMD_UNIT"),
            identifier: text("SYSLOG_IDENTIFIER"),
            pid: text("_PID").and_then(|p| p.parse().ok()),
            priority,
            message,
        };
        // The answer's bound is on its JSON, which is what travels.
        let size = serde_json::to_vec(&entry).map_or(usize::MAX, |v| v.len());
        if bytes + size > MAX_ANSWER_BYTES {
            out.truncated = true;
            // Read on from the last entry answered, not past this one.
            if forward {
                out.cursor = out
                    .entries
                    .last()
                    .map(|e| e.cursor.clone())
                    .or(query.cursor.clone());
            }
            break;
        }
        bytes += size;
        out.entries.push(entry);
    }
    Ok(out)
}

/// The boot id of the journal's newest entry.
fn newest_boot(journal: &sdjournal::Journal) -> ProviderResult<Option<String>> {
    let mut q = journal.query();
    q.reverse(true).limit(1);
    let newest = q
        .iter()
        .map_err(journal_error)?
        .next()
        .transpose()
        .map_err(journal_error)?;
    Ok(newest.map(|e| hex(&e.boot_id())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
