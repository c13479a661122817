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
        default_value = crate::config::DEFAULT_CONFIG_PATH,
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
    /// The API's HTTPS certificate.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Write the man pages and shell completions of osapi and osapictl (packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory: man pages in DIR/man, completions in
        /// DIR/completions/{bash,zsh,fish}.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make a local CA and a server certificate signed by it (the CA's key is
    /// discarded), unless a certificate is already there. Run as root; the
    /// packages do it on install. Clients pin DIR/ca.crt.
    Generate {
        /// Where api.crt, api.key (0600) and ca.crt go.
        #[arg(long, default_value = crate::config::DEFAULT_TLS_DIR)]
        dir: PathBuf,
        /// A host name or IP address the certificate is for (repeatable);
        /// default: this host's name, localhost, 127.0.0.1 and ::1.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Replace an existing certificate.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NatsCommand {
    /// Supervise nats-server.
    Server {
        #[command(subcommand)]
        command: StartOnly,
    },
    /// Make the generated per-role NATS credentials and the job signing key
    /// that are missing (run as root; the packages do it on install) and print
    /// each role's public key. With another nats.server.auth.type, only the
    /// job signing key. To rotate, delete the files, run this again, restart.
    Credentials,
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
        /// The token; "-" (or nothing) reads it from standard input, which
        /// keeps it off the command line.
        token: Option<String>,
    },
    /// Revoke a token, or every token of a subject issued until now: the API
    /// refuses them from its next request on (api.server.security.revocation_file).
    Revoke {
        /// The token; "-" (or nothing, without --subject) reads it from
        /// standard input.
        token: Option<String>,
        /// Revoke every token of this subject issued before now instead.
        #[arg(long, conflicts_with = "token")]
        subject: Option<String>,
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

/// `osapi generate-docs DIR`: man pages for `osapi` and `osapictl` (one page per
/// command and subcommand, `osapi.1`, `osapictl.1`, `osapictl-node.1`, ...) in
/// `DIR/man`, and bash, zsh and fish completions for both binaries in
/// `DIR/completions/<shell>/` under the names each shell looks for. Everything
/// comes from the clap definitions ([`command`] and [`crate::cli::command`]);
/// hidden commands get neither pages nor completions. Returns the files written.
pub fn generate_docs(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    let mut written = Vec::new();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    for cmd in [command(), crate::cli::command()] {
        write_man_pages(cmd, &man, &mut written)?;
    }
    for (shell, file) in [
        (Shell::Bash, "{}"),
        (Shell::Zsh, "_{}"),
        (Shell::Fish, "{}.fish"),
    ] {
        let out = dir.join("completions").join(shell.to_string());
        std::fs::create_dir_all(&out)?;
        for mut cmd in [command(), crate::cli::command()] {
            let name = cmd.get_name().to_owned();
            let path = out.join(file.replace("{}", &name));
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut buf);
            std::fs::write(&path, buf)?;
            written.push(path);
        }
    }
    let api = dir.join("api.md");
    std::fs::write(&api, crate::api::openapi::reference_markdown())?;
    written.push(api);
    Ok(written)
}

/// One page for `cmd` and, recursively, one per visible subcommand, named like
/// git's: `osapictl-node-hostname.1` (what `clap_mangen::generate_to` does, but
/// keeping the list of files).
fn write_man_pages(
    cmd: clap::Command,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    fn walk(
        cmd: clap::Command,
        dir: &std::path::Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, dir, written)?;
        }
        written.push(clap_mangen::Man::new(cmd).generate_to(dir)?);
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    walk(cmd, dir, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn generate_docs_writes_pages_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let written = generate_docs(dir.path()).unwrap();
        for f in [
            "man/osapi.1",
            "man/osapictl.1",
            "man/osapi-token-generate.1",
            "man/osapictl-node-hostname.1",
            "completions/bash/osapi",
            "completions/bash/osapictl",
            "completions/zsh/_osapi",
            "completions/zsh/_osapictl",
            "completions/fish/osapi.fish",
            "completions/fish/osapictl.fish",
        ] {
            let path = dir.path().join(f);
            assert!(written.contains(&path), "{f} not written: {written:?}");
            assert!(std::fs::metadata(&path).unwrap().len() > 0, "{f} is empty");
        }
        let page = std::fs::read_to_string(dir.path().join("man/osapi.1")).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH osapi 1"),
            "{page}"
        );
        assert!(!page.contains("generate-docs"), "hidden command documented");
        assert!(!dir.path().join("man/osapi-generate-docs.1").exists());
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
