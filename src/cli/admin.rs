//! The `osapi` command line: daemons and admin tools (SPEC §1). One clap
//! definition feeds parsing, `--help`, man pages and completions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::rbac::Permission;

#[derive(Debug, Parser)]
#[command(
    name = "osapi",
    version,
    about = "OSAPI daemons and admin tools",
    propagate_version = true
)]
pub struct Osapi {
    /// Configuration file (YAML, or TOML when it ends in .toml).
    #[arg(
        short = 'f',
        long = "osapi-file",
        global = true,
        default_value = "/etc/osapi/osapi.yaml",
        env = "OSAPI_FILE"
    )]
    pub osapi_file: PathBuf,
    /// Verbose logging.
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The embedded NATS server.
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
    },
    /// The REST API server.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
    /// The node agent.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// NATS, the API and one agent in one process tree (development, single-host trials).
    Start,
    /// Issue and inspect API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum NatsCommand {
    /// Supervise nats-server.
    Server {
        #[command(subcommand)]
        command: StartOnly,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Serve the REST API.
    Server {
        #[command(subcommand)]
        command: StartOnly,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the agent.
    Agent {
        #[command(subcommand)]
        command: AgentStart,
    },
}

#[derive(Debug, Subcommand)]
pub enum StartOnly {
    /// Start and run until SIGTERM.
    Start,
}

#[derive(Debug, Subcommand)]
pub enum AgentStart {
    /// Start and run until SIGTERM.
    Start(AgentStartArgs),
}

#[derive(Debug, Args)]
pub struct AgentStartArgs {
    /// Answer from simulated providers that take this long per job, instead of
    /// reading the host (pipeline tests and benchmarks only).
    #[arg(long, value_name = "DELAY", value_parser = humantime::parse_duration)]
    pub simulate: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed token.
    Generate(TokenGenerate),
    /// Print a token's claims and effective permissions.
    Validate {
        /// The token.
        token: String,
    },
}

#[derive(Debug, Args)]
pub struct TokenGenerate {
    /// Role (repeatable): admin, write, read, or a custom role.
    #[arg(short = 'r', long = "role", required = true)]
    pub roles: Vec<String>,
    /// The user the token stands for (recorded in audit).
    #[arg(short = 'u', long = "subject")]
    pub subject: String,
    /// Explicit permission (repeatable); replaces role expansion.
    #[arg(short = 'p', long = "permission")]
    pub permissions: Vec<Permission>,
    /// Lifetime.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the file and print every problem.
    Check,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    <Osapi as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_token_generate() {
        let o = Osapi::try_parse_from([
            "osapi",
            "token",
            "generate",
            "-r",
            "admin",
            "-u",
            "alice",
            "-p",
            "node:read",
            "--ttl",
            "1h",
        ])
        .unwrap();
        let Command::Token {
            command: TokenCommand::Generate(g),
        } = o.command
        else {
            panic!()
        };
        assert_eq!(g.permissions, vec![Permission::NodeRead]);
        assert_eq!(g.ttl, Duration::from_secs(3600));
        assert!(
            Osapi::try_parse_from([
                "osapi", "token", "generate", "-r", "admin", "-u", "a", "-p", "node:fly"
            ])
            .is_err()
        );
    }
}
