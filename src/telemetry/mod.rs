//! Logging: natively to the journal (structured fields, priority from the level,
//! `TRACE_ID`/`SPAN_ID` from the current span) when running under systemd or when
//! the journal socket exists; plain stderr otherwise. `--debug` or `debug: true`
//! raises verbosity, `RUST_LOG` overrides both.

pub mod export;
pub mod trace;

use std::path::Path;

use tracing_subscriber::EnvFilter;

use self::export::SpanSink;
use crate::config::TraceExporter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where journald listens for native log messages.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Whether logs should go to the journal: systemd connected our stderr to it
/// (`JOURNAL_STREAM`), or a journal is there to take them.
fn journal_wanted() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some() || Path::new(JOURNAL_SOCKET).exists()
}

/// Install the global subscriber once per process. `identifier` becomes
/// `SYSLOG_IDENTIFIER` in the journal and the exported spans' `service.name`
/// (e.g. `osapi-api`). When span export is configured, returns the export task
/// for the caller to spawn on its runtime.
pub fn init_logging(
    debug: bool,
    identifier: &str,
    tracing_cfg: &crate::config::TracingConfig,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let default = if debug {
        "debug,async_nats=info,hyper=info,h2=info"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let sink = match (tracing_cfg.enabled, tracing_cfg.exporter) {
        (true, TraceExporter::Stdout) => Some(SpanSink::Stdout),
        (true, TraceExporter::Otlp) => Some(SpanSink::Otlp(
            tracing_cfg
                .otlp_endpoint
                .clone()
                .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
                .unwrap_or_else(|| "http://localhost:4318".to_owned()),
        )),
        _ => None,
    };
    let (export_layer, export_task) = match sink {
        Some(sink) => {
            let (layer, task) = export::span_exporter(sink, identifier);
            (Some(layer), Some(task))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(export_layer);
    let journal = journal_wanted()
        .then(tracing_journald::layer)
        .and_then(|r| match r {
            Ok(layer) => Some(layer),
            Err(e) => {
                eprintln!("{identifier}: journal unavailable ({e}); logging to stderr");
                None
            }
        });
    match journal {
        Some(layer) => {
            // Levels map to the syslog priorities operators filter on
            // (`journalctl -p info`): INFO is 6, not tracing-journald's default 5.
            let priorities = tracing_journald::PriorityMappings {
                info: tracing_journald::Priority::Informational,
                debug: tracing_journald::Priority::Debug,
                ..tracing_journald::PriorityMappings::new()
            };
            // No field prefix: span fields land as TRACE_ID/SPAN_ID, so
            // `journalctl TRACE_ID=…` finds a request across processes.
            let layer = layer
                .with_syslog_identifier(identifier.to_owned())
                .with_field_prefix(None)
                .with_priority_mappings(priorities);
            let _ = registry.with(layer).try_init();
        }
        None => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false);
            let _ = registry.with(layer).try_init();
        }
    }
    export_task
}
