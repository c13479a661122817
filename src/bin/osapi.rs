//! `osapi`: the daemons and admin tools. Parsing lives in `osapi::cli::admin`,
//! the daemons in `osapi::daemon`; this file only wires them.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use osapi::cli::admin::{
    AgentStart, ApiCommand, Command, ConfigCommand, NatsCommand, NodeCommand, Osapi, StartOnly,
    TlsCommand, TokenCommand,
};
use osapi::config::Config;
use osapi::{daemon, token};

fn main() -> ExitCode {
    // A non-root agent's root helper (a unit the agent started; not a CLI).
    if let Some(code) = osapi::agent::privileged::run_if_helper() {
        return code;
    }
    let args = Osapi::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("osapi: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A token from the command line, or from standard input for "-" or none
/// (which keeps it out of `/proc/*/cmdline`).
fn token_arg(token: Option<&str>) -> anyhow::Result<String> {
    match token {
        None | Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading the token from standard input")?;
            Ok(text.trim().to_owned())
        }
        Some(t) => Ok(t.trim().to_owned()),
    }
}

fn load(args: &Osapi) -> anyhow::Result<Config> {
    Config::load_from_process_env(&args.osapi_file).map_err(|e| anyhow::anyhow!("{e}"))
}

fn run(args: Osapi) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::GenerateDocs { dir } => {
            // Packaging step: needs no configuration.
            for path in osapi::cli::admin::generate_docs(dir)
                .with_context(|| format!("writing to {}", dir.display()))?
            {
                println!("{}", path.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            // Everything at once: syntax, unknown keys, values, and every secret.
            return Ok(
                match Config::check_file(&args.osapi_file, &osapi::config::process_env()) {
                    Ok(_) => {
                        println!("{}: OK", args.osapi_file.display());
                        ExitCode::SUCCESS
                    }
                    Err(errors) => {
                        for p in &errors.0 {
                            println!("{p}");
                        }
                        eprintln!(
                            "{} problem(s) in {}",
                            errors.0.len(),
                            args.osapi_file.display()
                        );
                        ExitCode::FAILURE
                    }
                },
            );
        }
        Command::Token { command } => {
            let cfg = load(&args)?;
            let key = token::TokenKey::new(cfg.api.server.security.signing_key()?)?;
            match command {
                TokenCommand::Generate(g) => {
                    // Ten years is already far beyond any sane token lifetime.
                    const MAX_TTL_SECS: u64 = 10 * 366 * 24 * 3600;
                    anyhow::ensure!(g.ttl.as_secs() <= MAX_TTL_SECS, "--ttl: at most 10 years");
                    let ttl = i64::try_from(g.ttl.as_secs()).context("ttl too long")?;
                    let perms = (!g.permissions.is_empty()).then(|| g.permissions.clone());
                    println!(
                        "{}",
                        key.issue(&g.subject, g.roles.clone(), perms, token::now_unix(), ttl)
                    );
                }
                TokenCommand::Revoke { token, subject } => {
                    let file = &cfg.api.server.security.revocation_file;
                    let now = token::now_unix();
                    let entry = match subject {
                        Some(sub) => osapi::revocation::Revocation::Subject {
                            subject: sub.clone(),
                            before: now + 1,
                        },
                        None => {
                            let token = token_arg(token.as_deref())?;
                            // Only a token this key signed can be revoked; its
                            // expiry bounds how long the entry is kept. An
                            // expired one needs no revoking.
                            let claims = key.verify(token.trim(), now)?;
                            osapi::revocation::Revocation::token(&token, claims.exp)
                        }
                    };
                    osapi::revocation::add(file, entry, now)
                        .with_context(|| format!("writing {}", file.display()))?;
                    eprintln!("osapi: revoked; listed in {}", file.display());
                }
                TokenCommand::Validate { token } => {
                    let token = token_arg(token.as_deref())?;
                    let claims = key.verify(token.trim(), token::now_unix())?;
                    let effective = cfg
                        .api
                        .server
                        .security
                        .role_table()
                        .effective(&claims.roles, claims.permissions.as_deref());
                    let out = serde_json::json!({
                        "claims": claims,
                        "effective_permissions": effective.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Tls {
            command: TlsCommand::Generate { dir, names, force },
        } => {
            let names = if names.is_empty() {
                osapi::tls::default_names()
            } else {
                names.clone()
            };
            let made = osapi::tls::generate(dir, &names, *force)?;
            if made.made {
                println!("{}", made.cert.display());
                println!("{}", made.key.display());
                println!("{}", made.ca_cert.display());
            } else {
                eprintln!(
                    "osapi: {} exists; kept (--force replaces it)",
                    made.cert.display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Nats {
            command: NatsCommand::Credentials,
        } => {
            let cfg = load(&args)?;
            let dir = cfg.credentials_dir();
            // The job signing key is needed whatever authenticates NATS.
            osapi::bus::credentials::ensure_job_key(&dir)
                .with_context(|| format!("in {}", dir.display()))?;
            if !matches!(
                cfg.nats.server.auth,
                osapi::config::NatsServerAuth::Generated { .. }
            ) {
                eprintln!(
                    "osapi: nats.server.auth.type is not generated: made only the job signing key in {}",
                    dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for (role, public_key) in osapi::bus::credentials::ensure(&dir)
                .with_context(|| format!("in {}", dir.display()))?
            {
                println!("{}\t{public_key}", role.name());
            }
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let cfg = load(&args)?;
    let identifier = match &args.command {
        Command::Nats { .. } => "osapi-nats",
        Command::Api { .. } => "osapi-api",
        Command::Node { .. } => "osapi-agent",
        _ => "osapi",
    };
    daemon::block_on(&cfg, args.debug, identifier, async {
        match &args.command {
            Command::Nats {
                command:
                    NatsCommand::Server {
                        command: StartOnly::Start,
                    },
            } => daemon::run_nats(&cfg).await,
            Command::Api {
                command:
                    ApiCommand::Server {
                        command: StartOnly::Start,
                    },
            } => daemon::run_api(&cfg, daemon::shutdown_signal()?).await,
            Command::Node {
                command:
                    NodeCommand::Agent {
                        command: AgentStart::Start(a),
                    },
            } => daemon::run_agent(&cfg, a.simulate, daemon::shutdown_signal()?).await,
            Command::Start => daemon::run_all(&cfg).await,
            Command::Config { .. }
            | Command::Token { .. }
            | Command::GenerateDocs { .. }
            | Command::Tls { .. }
            | Command::Nats {
                command: NatsCommand::Credentials,
            } => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
