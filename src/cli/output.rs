//! Printing answers: `table` for people (one row per host, readable columns for
//! the common operations, a flattened key/value fallback for the rest), `json`
//! (the server's answer, pretty) and `yaml` (the same through serde-saphyr).
//!
//! JSON and YAML print the raw answer rather than a re-serialised typed value, so
//! fields a newer server adds are not lost. Tables read the typed value and, for
//! per-host data, the JSON `data` of each result: host data has no Rust type in
//! the answer, and a lenient reader shows what it can of an unexpected shape.

use std::io::Write;

use comfy_table::{Table, presets};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use super::args::OutputFormat;
use super::error::CliError;
use crate::bus::StoredFile;
use crate::enrollment::EnrollmentView;
use crate::job::OperationSpec;
use crate::job::{Expected, HostResult, HostStatus};
use crate::view::View;
pub use crate::view::human_bytes;
use crate::wire::{
    Accepted, AgentInfo, Created, Health, HealthStatus, JobDetail, JobList, JobStats, Version,
};

/// Render `raw` in `format`; `table` builds the table form only when asked for.
pub fn render(
    format: OutputFormat,
    raw: &Value,
    table: impl FnOnce() -> String,
) -> Result<String, CliError> {
    match format {
        OutputFormat::Table => Ok(table()),
        OutputFormat::Json => serde_json::to_string_pretty(raw).map_err(|e| CliError::Render {
            format: "JSON",
            reason: e.to_string(),
        }),
        OutputFormat::Yaml => serde_saphyr::to_string(raw).map_err(|e| CliError::Render {
            format: "YAML",
            reason: e.to_string(),
        }),
    }
}

/// Render and print on stdout.
pub fn emit(
    format: OutputFormat,
    raw: &Value,
    table: impl FnOnce() -> String,
) -> Result<(), CliError> {
    print(&render(format, raw, table)?)
}

/// Print on stdout with a final newline. A closed pipe (`osapictl … | head`) is
/// not an error worth reporting.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let result = if text.ends_with('\n') {
        out.write_all(text.as_bytes())
    } else {
        writeln!(out, "{text}")
    };
    match result.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|source| CliError::Io {
            doing: "write to standard output".into(),
            source,
        }),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

/// Two columns, FIELD and VALUE.
fn pairs_table(rows: &[(String, String)]) -> String {
    let mut t = table(&["FIELD", "VALUE"]);
    for (k, v) in rows {
        t.add_row([k.as_str(), v.as_str()]);
    }
    t.to_string()
}

// ---------------------------------------------------------------------------
// Per-host results
// ---------------------------------------------------------------------------

/// The view of an operation's results; raw JSON for a type this client does
/// not know (a newer server).
fn view_for(op_type: &str) -> View {
    match OperationSpec::find(op_type) {
        Some(spec) => spec.view,
        None => View {
            columns: &["DATA"],
            rows: |v| Some(vec![vec![compact_json(v)]]),
        },
    }
}

pub fn host_status(s: HostStatus) -> &'static str {
    match s {
        HostStatus::Completed => "completed",
        HostStatus::Failed => "failed",
        HostStatus::Timeout => "timeout",
    }
}

fn failure_text(r: &HostResult) -> String {
    match (&r.error, r.status) {
        (Some(e), _) => format!("{}: {}", e.code, e.message),
        (None, HostStatus::Timeout) => "no answer before the deadline".into(),
        (None, _) => String::new(),
    }
}

/// One row per host (per filesystem for disks): HOST, STATUS, the operation's
/// columns, TIME. A failed host shows its error in the first data column.
pub fn results_table(op_type: &str, results: &[HostResult]) -> String {
    let view = view_for(op_type);
    let header: Vec<&str> = ["HOST", "STATUS"]
        .into_iter()
        .chain(view.columns.iter().copied())
        .chain(["TIME"])
        .collect();
    let mut t = table(&header);
    for r in results {
        let lead = [r.hostname.clone(), host_status(r.status).to_owned()];
        let time = human_ms(r.duration_ms);
        // A failed result may still carry data (a command's exit code and output):
        // show it, it says more than the error line.
        let data_rows = match (&r.data, r.status) {
            // Data of another shape (an agent of another version): raw JSON.
            (Some(d), HostStatus::Completed | HostStatus::Failed) => {
                (view.rows)(d).unwrap_or_else(|| {
                    vec![
                        std::iter::once(compact_json(d))
                            .chain(std::iter::repeat_n(String::new(), view.columns.len() - 1))
                            .collect(),
                    ]
                })
            }
            _ => vec![
                std::iter::once(failure_text(r))
                    .chain(std::iter::repeat_n(String::new(), view.columns.len() - 1))
                    .collect(),
            ],
        };
        if data_rows.is_empty() {
            let blank = std::iter::repeat_n(String::new(), view.columns.len());
            t.add_row(lead.iter().cloned().chain(blank).chain([time.clone()]));
        }
        for row in data_rows {
            t.add_row(lead.iter().cloned().chain(row).chain([time.clone()]));
        }
    }
    t.to_string()
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

fn expected_text(e: &Expected) -> String {
    match e {
        Expected::Any => "any one agent".into(),
        Expected::Hosts(h) => h.join(", "),
    }
}

pub fn accepted_table(a: &Accepted, location: Option<&str>) -> String {
    let mut rows = vec![
        ("job".to_owned(), a.job_id.to_string()),
        ("status".to_owned(), a.status.as_str().to_owned()),
    ];
    if let Some(l) = location {
        rows.push(("location".into(), l.to_owned()));
    }
    pairs_table(&rows)
}

pub fn created_table(c: &Created) -> String {
    pairs_table(&[
        ("job".into(), c.job_id.to_string()),
        ("status".into(), c.status.as_str().to_owned()),
        ("target".into(), c.target.clone()),
        ("expected".into(), expected_text(&c.expected)),
    ])
}

pub fn job_list_table(list: &JobList) -> String {
    let mut t = table(&["ID", "OPERATION", "TARGET", "STATUS", "CREATED", "BY"]);
    for j in &list.jobs {
        t.add_row([
            j.id.to_string(),
            j.operation.clone(),
            j.target.clone(),
            j.status.as_str().to_owned(),
            human_time(j.created_at),
            j.created_by.clone(),
        ]);
    }
    t.to_string()
}

pub fn job_detail_table(d: &JobDetail) -> String {
    let data = if d.operation.data.is_null() {
        String::new()
    } else {
        compact_json(&d.operation.data)
    };
    let mut rows = vec![
        ("job".to_owned(), d.id.to_string()),
        (
            "operation".into(),
            format!("{} ({})", d.operation.type_name, d.kind.as_str()),
        ),
    ];
    if !data.is_empty() {
        rows.push(("data".into(), data));
    }
    rows.extend([
        ("target".into(), d.target.clone()),
        ("expected".into(), expected_text(&d.expected)),
        ("status".into(), d.status.as_str().to_owned()),
        ("created".into(), human_time(d.created_at)),
        ("created by".into(), d.created_by.clone()),
        ("timeout".into(), human_ms(d.timeout_ms)),
    ]);
    if let Some(r) = d.retry_of {
        rows.push(("retry of".into(), r.to_string()));
    }
    if let Some(t) = &d.trace_id {
        rows.push(("trace id".into(), t.clone()));
    }
    let mut out = pairs_table(&rows);
    if !d.hosts.is_empty() {
        let mut t = table(&["HOST", "STATE", "ATTEMPTS"]);
        for h in &d.hosts {
            t.add_row([h.hostname.clone(), h.state.clone(), h.attempts.to_string()]);
        }
        out.push_str(&format!("\n\nHosts\n{t}"));
    }
    if !d.results.is_empty() {
        out.push_str(&format!(
            "\n\nResults\n{}",
            results_table(&d.operation.type_name, &d.results)
        ));
    }
    if !d.timeline.is_empty() {
        let mut t = table(&["AT", "HOST", "STAGE", "ATTEMPT", "DETAIL"]);
        for e in &d.timeline {
            let stage = serde_json::to_value(e.stage)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            t.add_row([
                human_time(e.at),
                e.hostname.clone(),
                stage,
                e.attempt.to_string(),
                e.detail.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&format!("\n\nTimeline\n{t}"));
    }
    out
}

pub fn job_stats_table(st: &JobStats) -> String {
    let mut rows = vec![("total stored".to_owned(), st.total.to_string())];
    rows.extend(
        st.by_status
            .iter()
            .map(|(k, v)| (format!("status {k}"), v.to_string())),
    );
    rows.extend(
        st.by_operation
            .iter()
            .map(|(k, v)| (format!("operation {k}"), v.to_string())),
    );
    let mut out = pairs_table(&rows);
    out.push_str(&format!(
        "\n(status and operation counts cover the latest {} jobs)",
        st.window
    ));
    out
}

// ---------------------------------------------------------------------------
// Agents, health, version
// ---------------------------------------------------------------------------

fn labels_text(a: &AgentInfo) -> String {
    labels_of(&a.labels)
}

fn labels_of(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn stored_files_table(files: &[StoredFile]) -> String {
    let mut t = table(&["NAME", "SIZE", "SHA256", "UPLOADED", "BY"]);
    for f in files {
        t.add_row([
            f.name.clone(),
            crate::view::human_bytes(f.size),
            f.sha256.clone(),
            f.uploaded_at.map(human_time).unwrap_or_default(),
            f.uploaded_by.clone(),
        ]);
    }
    t.to_string()
}

pub fn agents_table(agents: &[AgentInfo]) -> String {
    let mut t = table(&[
        "HOSTNAME",
        "LABELS",
        "VERSION",
        "STARTED",
        "HEARTBEAT",
        "JOBS",
    ]);
    for a in agents {
        t.add_row([
            a.hostname.clone(),
            labels_text(a),
            a.version.clone(),
            human_time(a.started_at),
            human_time(a.heartbeat_at),
            format!("{}/{}", a.running_jobs, a.max_jobs),
        ]);
    }
    t.to_string()
}

pub fn agent_table(a: &AgentInfo) -> String {
    pairs_table(&[
        ("hostname".into(), a.hostname.clone()),
        ("labels".into(), labels_text(a)),
        ("version".into(), a.version.clone()),
        ("started".into(), human_time(a.started_at)),
        ("heartbeat".into(), human_time(a.heartbeat_at)),
        ("running jobs".into(), a.running_jobs.to_string()),
        ("max jobs".into(), a.max_jobs.to_string()),
    ])
}

pub fn enrollments_table(all: &[EnrollmentView]) -> String {
    let mut t = table(&[
        "HOSTNAME",
        "STATE",
        "LABELS",
        "PUBLIC KEY",
        "REQUESTED",
        "DECIDED BY",
    ]);
    for v in all {
        let e = &v.enrollment;
        t.add_row([
            e.hostname.clone(),
            v.state.as_str().to_owned(),
            labels_of(&e.labels),
            e.public_key.clone(),
            human_time(e.requested_at),
            e.decided_by.clone().unwrap_or_default(),
        ]);
    }
    t.to_string()
}

pub fn health_table(h: &Health) -> String {
    pairs_table(&[("status".into(), h.status.clone())])
}

pub fn health_status_table(h: &HealthStatus) -> String {
    let mut out = pairs_table(&[
        ("status".into(), h.status.clone()),
        ("version".into(), h.version.clone()),
        (
            "uptime".into(),
            humantime::format_duration(std::time::Duration::from_secs(h.uptime_seconds))
                .to_string(),
        ),
        (
            "memory (RSS)".into(),
            h.memory_rss_bytes.map(human_bytes).unwrap_or_default(),
        ),
        ("nats".into(), h.nats.clone()),
        ("agents live".into(), h.agents_live.to_string()),
    ]);
    let mut t = table(&["COMPONENT", "OK", "DETAIL"]);
    for c in &h.components {
        t.add_row([
            c.name.clone(),
            if c.ok { "yes" } else { "NO" }.to_owned(),
            c.detail.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&format!("\n\nComponents\n{t}"));
    out
}

pub fn version_table(server: &Version) -> String {
    pairs_table(&[
        ("client".into(), crate::VERSION.to_owned()),
        ("server".into(), server.version.clone()),
        ("api".into(), server.api.clone()),
    ])
}

// ---------------------------------------------------------------------------
// Generic fallbacks
// ---------------------------------------------------------------------------

/// Any JSON value as FIELD/VALUE rows, nested keys dotted (`a.b[0].c`).
pub fn kv_table(v: &Value) -> String {
    let mut rows = Vec::new();
    flatten("", v, &mut rows);
    pairs_table(&rows)
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let text = items.iter().map(scalar).collect::<Vec<_>>().join(", ");
            out.push((prefix.to_owned(), text));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A list of objects as a table: the preferred columns that occur, else the keys
/// of the first object.
pub fn objects_table(items: &[Value], preferred: &[&str]) -> String {
    let present: Vec<&str> = preferred
        .iter()
        .copied()
        .filter(|k| items.iter().any(|i| i.get(*k).is_some()))
        .collect();
    let columns: Vec<String> = if present.is_empty() {
        items
            .first()
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    } else {
        present.iter().map(|s| (*s).to_owned()).collect()
    };
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(header);
    for item in items {
        t.add_row(columns.iter().map(|c| match item.get(c) {
            Some(v @ (Value::Object(_) | Value::Array(_))) => compact_json(v),
            Some(v) => scalar(v),
            None => String::new(),
        }));
    }
    t.to_string()
}

/// An audit listing: the first array in the answer (or the answer itself), with
/// the columns an operator scans for.
pub fn audit_list_table(v: &Value) -> String {
    let items = match v {
        Value::Array(a) => Some(a),
        Value::Object(m) => m.values().find_map(Value::as_array),
        _ => None,
    };
    match items {
        Some(items) => objects_table(
            items,
            &[
                "id",
                "timestamp",
                "user",
                "method",
                "path",
                "response_code",
                "duration_ms",
                "job_id",
            ],
        ),
        None => kv_table(v),
    }
}

// ---------------------------------------------------------------------------
// Humanising
// ---------------------------------------------------------------------------

fn compact_json(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `850ms`, `2.3s`, `4m 10s`.
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
    }
}

/// `2024-05-01 12:00:03Z`: UTC to the second.
pub fn human_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Server-Sent Events of a log follow, printed as they arrive: each `entry`
/// as one line (`TIME SOURCE[PID]: MESSAGE`), or its JSON; an `error` event
/// is kept for the caller.
pub struct EventPrinter<W: Write> {
    json: bool,
    parser: SseParser,
    error: Option<String>,
    out: W,
}

impl<W: Write> EventPrinter<W> {
    pub fn new(json: bool, out: W) -> Self {
        EventPrinter {
            json,
            parser: SseParser::default(),
            error: None,
            out,
        }
    }

    /// The `error` event's message, when the stream ended with one.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn event(&mut self, e: SseEvent) -> std::io::Result<()> {
        match e.kind.as_str() {
            "error" => self.error = Some(e.data),
            "entry" if self.json => writeln!(self.out, "{}", e.data)?,
            "entry" => {
                let line = serde_json::from_str::<crate::provider::LogEntry>(&e.data)
                    .map(|e| entry_line(&e))
                    .unwrap_or(e.data);
                writeln!(self.out, "{line}")?;
            }
            _ => {}
        }
        self.out.flush()
    }
}

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub kind: String,
    pub id: Option<String>,
    pub data: String,
}

/// An SSE stream's bytes in, its whole events out.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
}

impl SseParser {
    /// The events `bytes` completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        take_events(&mut self.pending)
    }

    /// Drops an event cut off with its stream.
    pub fn reset(&mut self) {
        self.pending.clear();
    }
}

/// The complete events at the front of `pending` (each ends with a blank
/// line), taken out of it.
fn take_events(pending: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
        let raw: Vec<u8> = pending.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&raw);
        let mut event = SseEvent {
            kind: "message".to_owned(),
            ..SseEvent::default()
        };
        let mut lines = 0;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event.kind = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("id:") {
                event.id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                if lines > 0 {
                    event.data.push('\n');
                }
                event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                lines += 1;
            }
        }
        // A comment alone (a keep-alive) is no event.
        if lines > 0 || event.kind != "message" {
            events.push(event);
        }
    }
    events
}

/// A job's live output (`GET /jobs/{id}/output`), printed as it comes: stdout
/// on `out`, stderr and notes on `err`, whole lines, each prefixed with its
/// host when several answer; or (`json`) every event as one JSON line.
pub struct OutputPrinter<W: Write, E: Write> {
    json: bool,
    prefix: bool,
    parser: SseParser,
    /// A line not ended yet, per host and stream.
    partial: std::collections::BTreeMap<(String, bool), String>,
    last_id: Option<String>,
    end: Option<crate::job::OutputEnd>,
    error: Option<String>,
    out: W,
    err: E,
}

impl<W: Write, E: Write> OutputPrinter<W, E> {
    pub fn new(json: bool, prefix: bool, out: W, err: E) -> Self {
        OutputPrinter {
            json,
            prefix,
            parser: SseParser::default(),
            partial: Default::default(),
            last_id: None,
            end: None,
            error: None,
            out,
            err,
        }
    }

    /// The last event id seen: where a reconnect goes on.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Before a reconnect: an event cut off with the old stream is sent
    /// again whole after `last_id`.
    pub fn reconnecting(&mut self) {
        self.parser.reset();
    }

    /// The `end` event, once the job settled.
    pub fn end(&self) -> Option<&crate::job::OutputEnd> {
        self.end.as_ref()
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn event(&mut self, e: SseEvent) -> std::io::Result<()> {
        use crate::job::OutputRecord;
        if let Some(id) = &e.id {
            self.last_id = Some(id.clone());
        }
        match e.kind.as_str() {
            "end" => self.end = serde_json::from_str(&e.data).ok(),
            "error" => self.error = Some(e.data.clone()),
            _ => {}
        }
        if self.json {
            let mut value: serde_json::Value =
                serde_json::from_str(&e.data).unwrap_or(serde_json::Value::String(e.data));
            if let Some(fields) = value.as_object_mut() {
                fields.insert("event".into(), e.kind.clone().into());
            }
            writeln!(self.out, "{value}")?;
            return self.out.flush();
        }
        match OutputRecord::from_event(&e.kind, &e.data) {
            Some(OutputRecord::Stdout(c)) => self.text(&c.hostname, false, &c.data)?,
            Some(OutputRecord::Stderr(c)) => self.text(&c.hostname, true, &c.data)?,
            Some(OutputRecord::Truncated(c)) => {
                let stream = if c.stream == crate::job::OutputStream::Stdout {
                    "stdout"
                } else {
                    "stderr"
                };
                writeln!(
                    self.err,
                    "[{}: {stream} passed the live cap after {} bytes; the rest is not shown live]",
                    c.hostname, c.after_bytes
                )?;
            }
            Some(OutputRecord::Exit(x)) => {
                self.flush_host(&x.hostname)?;
                let how = match (&x.error, x.exit_code, x.signal) {
                    (Some(e), _, _) if x.cancelled || x.timed_out => e.code.clone(),
                    (_, Some(code), _) => format!("exit {code}"),
                    (_, _, Some(sig)) => format!("signal {sig}"),
                    (Some(e), None, None) => format!("{}: {}", e.code, e.message),
                    (None, None, None) => "ended".to_owned(),
                };
                if self.prefix || x.exit_code != Some(0) {
                    writeln!(self.err, "[{}: {how}]", x.hostname)?;
                }
            }
            None => {}
        }
        self.out.flush()?;
        self.err.flush()
    }

    /// Prints the whole lines of `text`; keeps the rest for later.
    fn text(&mut self, host: &str, stderr: bool, text: &str) -> std::io::Result<()> {
        if !self.prefix {
            return match stderr {
                true => write!(self.err, "{text}"),
                false => write!(self.out, "{text}"),
            };
        }
        let key = (host.to_owned(), stderr);
        let mut buffered = self.partial.remove(&key).unwrap_or_default();
        buffered.push_str(text);
        let complete = buffered.rfind('\n').map_or(0, |i| i + 1);
        let rest = buffered.split_off(complete);
        for line in buffered.lines() {
            match stderr {
                true => writeln!(self.err, "{host}: {line}")?,
                false => writeln!(self.out, "{host}: {line}")?,
            }
        }
        if !rest.is_empty() {
            self.partial.insert(key, rest);
        }
        Ok(())
    }

    /// A host's unfinished lines, printed as they are.
    fn flush_host(&mut self, host: &str) -> std::io::Result<()> {
        for stderr in [false, true] {
            if let Some(rest) = self.partial.remove(&(host.to_owned(), stderr)) {
                self.text(host, stderr, &format!("{rest}\n"))?;
            }
        }
        Ok(())
    }
}

impl<W: Write, E: Write> Write for OutputPrinter<W, E> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.parser
            .feed(buf)
            .into_iter()
            .try_for_each(|e| self.event(e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `2026-12-07T10:00:00Z sshd[42]: message`, like a syslog line.
fn entry_line(e: &crate::provider::LogEntry) -> String {
    let time = e
        .time
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!("{time} {}: {}", e.source(), e.message)
}

impl<W: Write> Write for EventPrinter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.parser
            .feed(buf)
            .into_iter()
            .try_for_each(|e| self.event(e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobError, JobStatus};
    use crate::wire::JobOutcome;
    use serde_json::json;

    fn outcome() -> JobOutcome {
        JobOutcome {
            job_id: uuid::Uuid::nil(),
            status: JobStatus::PartialFailure,
            results: vec![
                HostResult {
                    hostname: "web-01".into(),
                    status: HostStatus::Completed,
                    data: Some(
                        json!({"hostname": "web-01", "static_hostname": "web-01", "pretty_hostname": null, "source": "hostnamed"}),
                    ),
                    error: None,
                    duration_ms: 12,
                },
                HostResult {
                    hostname: "web-02".into(),
                    status: HostStatus::Failed,
                    data: None,
                    error: Some(JobError {
                        code: "unavailable".into(),
                        message: "hostnamed is not running".into(),
                    }),
                    duration_ms: 1500,
                },
            ],
        }
    }

    #[test]
    fn outcome_table_has_a_row_per_host_with_data_or_error() {
        let o = outcome();
        let text = results_table("node.hostname.get", &o.results);
        let lines: Vec<&str> = text.lines().collect();
        let header = lines.iter().find(|l| l.contains("HOST")).unwrap();
        for col in ["HOST", "STATUS", "NAME", "SOURCE", "TIME"] {
            assert!(header.contains(col), "{col} in {header}");
        }
        let ok = lines.iter().find(|l| l.contains("web-01")).unwrap();
        assert!(
            ok.contains("completed") && ok.contains("hostnamed") && ok.contains("12ms"),
            "{ok}"
        );
        let bad = lines.iter().find(|l| l.contains("web-02")).unwrap();
        assert!(
            bad.contains("failed")
                && bad.contains("unavailable: hostnamed is not running")
                && bad.contains("1.5s"),
            "{bad}"
        );
        assert_eq!(
            crate::cli::error::Status::of_job(o.status, &o.results),
            crate::cli::error::Status::SomeFailed
        );
    }

    #[test]
    fn json_and_yaml_print_the_raw_answer() {
        let raw = serde_json::to_value(outcome()).unwrap();
        let j = render(OutputFormat::Json, &raw, || unreachable!()).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&j).unwrap(), raw);
        let y = render(OutputFormat::Yaml, &raw, || unreachable!()).unwrap();
        assert!(y.contains("web-02") && y.contains("partial_failure"), "{y}");
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back["results"][1]["error"]["code"], "unavailable");
    }

    #[test]
    fn disks_get_a_row_per_mount_with_human_sizes() {
        let r = HostResult {
            hostname: "h".into(),
            status: HostStatus::Completed,
            data: Some(json!([
                {"mount_point": "/", "device": "/dev/sda1", "fs_type": "ext4", "total_bytes": 53687091200u64,
                 "used_bytes": 21474836480u64, "free_bytes": 32212254720u64, "used_percent": 40.0},
                {"mount_point": "/boot", "device": "/dev/sda2", "fs_type": "vfat", "total_bytes": 536870912,
                 "used_bytes": 1048576, "free_bytes": 535822336, "used_percent": 0.2}
            ])),
            error: None,
            duration_ms: 3,
        };
        let text = results_table("node.disk.get", &[r]);
        assert!(
            text.contains("50 GiB") && text.contains("20 GiB") && text.contains("40%"),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.contains("/dev/sda")).count(), 2);
    }

    #[test]
    fn unknown_shapes_fall_back_to_compact_json_and_kv() {
        let r = HostResult {
            hostname: "h".into(),
            status: HostStatus::Completed,
            data: Some(json!({"x": 1})),
            error: None,
            duration_ms: 0,
        };
        assert!(results_table("future.op", std::slice::from_ref(&r)).contains(r#"{"x":1}"#));
        let kv = kv_table(&json!({"a": {"b": [1, 2], "c": [{"d": "e"}]}, "f": null}));
        assert!(
            kv.contains("a.b") && kv.contains("1, 2") && kv.contains("a.c[0].d"),
            "{kv}"
        );
    }

    #[test]
    fn failed_commands_still_show_exit_and_output() {
        let r = HostResult {
            hostname: "h".into(),
            status: HostStatus::Failed,
            data: Some(
                json!({"stdout": "", "stderr": "ls: cannot access '/nope'\n",
                "exit_code": 2, "signal": null, "timed_out": false,
                "truncated_stdout": false, "truncated_stderr": false, "duration_ms": 3}),
            ),
            error: Some(JobError {
                code: "exit_status".into(),
                message: "exited with status 2".into(),
            }),
            duration_ms: 3,
        };
        let text = results_table("command.exec.execute", &[r]);
        let row = text.lines().find(|l| l.contains("failed")).unwrap();
        assert!(
            row.contains(" 2 ") && row.contains("cannot access"),
            "{text}"
        );
    }

    #[test]
    fn timeouts_without_an_error_say_so() {
        let r = HostResult {
            hostname: "slow".into(),
            status: HostStatus::Timeout,
            data: None,
            error: None,
            duration_ms: 0,
        };
        assert!(results_table("node.os.get", &[r]).contains("no answer before the deadline"));
    }

    #[test]
    fn humanising() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(2300), "2.3s");
        assert_eq!(human_ms(250_000), "4m 10s");
        let t = OffsetDateTime::from_unix_timestamp(1_714_564_803).unwrap();
        assert_eq!(human_time(t), "2024-05-01 12:00:03Z");
    }

    #[test]
    fn events_print_as_they_complete() {
        let mut p = EventPrinter::new(false, Vec::new());
        let entry = r#"{"time":"2026-12-07T10:00:00Z","cursor":"c1","boot_id":"b","identifier":"sshd","pid":42,"message":"hello"}"#;
        let text = format!(
            "event: entry\nid: c1\ndata: {entry}\n\n: keep-alive\n\nevent: error\ndata: web-01: gone\n\n"
        );
        // Split mid-event: nothing prints until the blank line.
        let (a, b) = text.as_bytes().split_at(20);
        p.write_all(a).unwrap();
        assert!(p.out.is_empty());
        p.write_all(b).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&p.out),
            "2026-12-07T10:00:00Z sshd[42]: hello\n"
        );
        assert_eq!(p.error(), Some("web-01: gone"));
    }

    #[test]
    fn output_is_printed_in_whole_lines_by_host_and_the_end_kept() {
        let chunk = |kind: &str, id: u64, host: &str, data: &str| {
            let json = serde_json::json!({"hostname": host, "seq": id, "offset": 0, "data": data, "sent": {"stdout": 0, "stderr": 0}});
            format!("id: {id}\nevent: {kind}\ndata: {json}\n\n")
        };
        let exit = r#"{"hostname":"b","seq":9,"exit_code":2,"signal":null,"timed_out":false,"cancelled":false,"error":null,"sent":{"stdout":0,"stderr":0}}"#;
        let end = r#"{"job_id":"00000000-0000-0000-0000-000000000000","status":"failed"}"#;
        let stream = [
            chunk("stdout", 1, "a", "one\ntw"),
            chunk("stdout", 2, "b", "x\n"),
            chunk("stdout", 3, "a", "o\n"),
            chunk("stderr", 4, "b", "oops"),
            format!("id: 5\nevent: exit\ndata: {exit}\n\n"),
            format!("event: end\ndata: {end}\n\n"),
        ]
        .concat();
        let mut p = OutputPrinter::new(false, true, Vec::new(), Vec::new());
        p.write_all(stream.as_bytes()).unwrap();
        assert_eq!(String::from_utf8_lossy(&p.out), "a: one\nb: x\na: two\n");
        // A host's unfinished line is printed at its exit, then how it ended.
        assert_eq!(String::from_utf8_lossy(&p.err), "b: oops\n[b: exit 2]\n");
        assert_eq!(p.last_id(), Some("5"));
        assert_eq!(
            p.end().map(|e| e.status),
            Some(crate::job::JobStatus::Failed)
        );

        // One host: the text as it comes; -o json: every event a JSON line.
        let mut p = OutputPrinter::new(false, false, Vec::new(), Vec::new());
        p.write_all(chunk("stdout", 1, "a", "no newline").as_bytes())
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&p.out), "no newline");
        let mut p = OutputPrinter::new(true, false, Vec::new(), Vec::new());
        p.write_all(stream.as_bytes()).unwrap();
        let kinds: Vec<String> = String::from_utf8_lossy(&p.out)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            kinds,
            ["stdout", "stdout", "stdout", "stderr", "exit", "end"]
        );
    }
}
