//! `osapi-agent`: the agent alone, as the packaged unit runs it. It does
//! what `osapi node agent start` does, from an executable that links neither
//! the API server, the CLI nor the web console (docs/architecture.md,
//! "Executables").

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use osapi::config::Config;
use osapi::daemon;

/// The OSAPI agent: runs jobs on this host until SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "osapi-agent", version)]
struct Args {
    /// Configuration file (YAML, or TOML when it ends in .toml).
    #[arg(
        short = 'f',
        long = "osapi-file",
        default_value = osapi::config::DEFAULT_CONFIG_PATH,
        env = "OSAPI_FILE"
    )]
    osapi_file: PathBuf,
    /// Verbose logging.
    #[arg(long)]
    debug: bool,
    /// Answer from simulated providers that take this long per job, instead
    /// of reading the host (pipeline tests and benchmarks only).
    #[arg(long, value_name = "DELAY", value_parser = humantime::parse_duration)]
    simulate: Option<Duration>,
}

fn main() -> ExitCode {
    // A non-root agent's root helper (a unit the agent started; not a CLI).
    if let Some(code) = osapi::agent::privileged::run_if_helper() {
        return code;
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osapi-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let cfg =
        Config::load_from_process_env(&args.osapi_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    daemon::block_on(&cfg, args.debug, "osapi-agent", async {
        daemon::run_agent(&cfg, args.simulate, daemon::shutdown_signal()?).await
    })?;
    Ok(())
}
