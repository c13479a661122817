//! `osapictl`: the client CLI of the OSAPI REST API. All logic lives in
//! [`osapi::cli`]; this only parses, runs and turns the outcome into an exit status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap exits with 2 on bad flags and 0 after --help/--version.
    let cli = osapi::cli::Cli::parse();
    // One request at a time: a current-thread runtime is enough.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("osapictl: cannot start the async runtime: {e}");
            return ExitCode::from(osapi::cli::error::EXIT_FAILED);
        }
    };
    let result = runtime.block_on(osapi::cli::run(cli));
    if let Err(e) = &result {
        eprintln!("osapictl: {e}");
    }
    ExitCode::from(osapi::cli::exit_code(&result))
}
