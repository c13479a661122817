//! `osapictl`, the client CLI (SPEC §9). It talks only to the REST API.
//!
//! * [`args`] is the one clap definition (parser, completions, man pages);
//! * [`settings`] finds the URL and token: flags > environment > config file;
//! * [`client`] sends requests with the token and a `traceparent`, and turns
//!   problem+json answers into [`CliError::Api`];
//! * [`output`] prints tables, JSON or YAML;
//! * [`confirm`] asks before a change fans out to `_all` or a label group;
//! * [`error`] maps every outcome to the exit status: 0 all hosts succeeded,
//!   1 some failed, 2 usage error, 3 auth error.

pub mod admin;
pub mod args;
pub mod client;
mod commands;
pub mod confirm;
pub mod error;
pub mod output;
pub mod progress;
pub mod settings;

pub use args::{Cli, command};
pub use error::{CliError, Status, exit_code};

use self::args::Commands;
use self::settings::{SettingFlags, Settings};

/// Run one invocation. Errors are for the caller to print (one line) and map
/// with [`exit_code`].
pub async fn run(cli: Cli) -> Result<Status, CliError> {
    // Completions need neither settings nor the network (packaging runs them in
    // a build root without config).
    if let Commands::Completions { shell } = cli.command {
        let mut out = Vec::new();
        args::completions(shell, &mut out);
        output::print(&String::from_utf8_lossy(&out))?;
        return Ok(Status::Ok);
    }
    let g = &cli.global;
    let flags = SettingFlags {
        url: g.url.clone(),
        token: g.token.clone(),
        token_file: g.token_file.clone(),
        config: g.config.clone(),
    };
    let settings = settings::resolve(&flags)?;
    let client = client::Client::new(&settings)?;
    if g.debug {
        eprintln!("osapictl: traceparent {}", client.traceparent());
    }
    let ctx = commands::Ctx {
        global: cli.global,
        client,
    };
    commands::dispatch(&ctx, cli.command)
        .await
        .map_err(|e| explain_unauthorized(e, &settings))
}

/// A 401 says only "missing/invalid token"; add what this client sent.
fn explain_unauthorized(err: CliError, settings: &Settings) -> CliError {
    match err {
        CliError::Api {
            status: 401,
            mut problem,
        } => {
            match &settings.token_source {
                None => problem.detail.push_str(
                    " (no token was sent: pass --token or --token-file, set OSAPI_TOKEN or OSAPI_TOKEN_FILE, \
                     or set api.client.security in the config file)",
                ),
                Some(src) => problem.detail.push_str(&format!(" (the token from {src} was refused)")),
            }
            CliError::Api {
                status: 401,
                problem,
            }
        }
        other => other,
    }
}
