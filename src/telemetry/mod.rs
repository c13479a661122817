//! Logging. Plain stderr for now (journald-native output comes with the systemd
//! issue); `--debug` or `debug: true` raises verbosity, `RUST_LOG` overrides both.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once per process.
pub fn init_logging(debug: bool) {
    let default = if debug {
        "debug,async_nats=info,hyper=info"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
