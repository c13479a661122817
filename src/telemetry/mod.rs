//! Logging: natively to the journal (structured fields, priority from the level,
//! `TRACE_ID`/`SPAN_ID` from the current span) when running under systemd or when
//! the journal socket exists; plain stderr otherwise. `--debug` or `debug: true`
//! raises verbosity, `RUST_LOG` overrides both.

pub mod trace;

use std::path::Path;

use tracing_subscriber::EnvFilter;
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
/// `SYSLOG_IDENTIFIER` in the journal (e.g. `osapi-api`).
pub fn init_logging(debug: bool, identifier: &str) {
    let default = if debug {
        "debug,async_nats=info,hyper=info,h2=info"
    } else {
        "info"
    };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if journal_wanted() {
        match tracing_journald::layer() {
            Ok(layer) => {
                // No field prefix: span fields land as TRACE_ID/SPAN_ID, so
                // `journalctl TRACE_ID=…` finds a request across processes.
                // Levels map to the syslog priorities operators filter on
                // (`journalctl -p info`): INFO is 6, not tracing-journald's default 5.
                let priorities = tracing_journald::PriorityMappings {
                    info: tracing_journald::Priority::Informational,
                    debug: tracing_journald::Priority::Debug,
                    ..tracing_journald::PriorityMappings::new()
                };
                let layer = layer
                    .with_syslog_identifier(identifier.to_owned())
                    .with_field_prefix(None)
                    .with_priority_mappings(priorities);
                if tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .try_init()
                    .is_ok()
                {
                    return;
                }
            }
            Err(e) => eprintln!("{identifier}: journal unavailable ({e}); logging to stderr"),
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
