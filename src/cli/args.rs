//! The one clap definition of `osapictl` (SPEC §9). The parser, `osapictl
//! completions SHELL` and the man pages are all generated from [`Cli`], so a flag
//! added here appears everywhere at once; [`command`] is the entry point for the
//! generators.
//!
//! Settings flags (`--url`, `--token`, `--token-file`) deliberately do not use
//! clap's `env` attribute: flags, environment and config file are merged in
//! [`super::settings`], where a token given as a flag must beat a token file
//! given in the environment — clap's merge could not tell them apart.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use uuid::Uuid;

use crate::job::{OPERATION_TYPES, Target};

/// Every job status a listing can be filtered by.
pub const JOB_STATUSES: [&str; 6] = [
    "submitted",
    "processing",
    "completed",
    "failed",
    "partial_failure",
    "timeout",
];

/// `osapictl`: the client of the OSAPI REST API.
#[derive(Debug, Parser)]
#[command(
    name = "osapictl",
    version,
    about = "Client of the OSAPI REST API: read and change hosts, run jobs, inspect agents",
    long_about = "Client of the OSAPI REST API: read and change hosts, run jobs, inspect agents.\n\n\
        Settings come from flags, else OSAPI_URL / OSAPI_TOKEN / OSAPI_TOKEN_FILE (then \
        OSAPI_API_CLIENT_URL / OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN[_FILE]), else api.client \
        in --config, ~/.config/osapi/osapictl.yaml or /etc/osapi/osapi.yaml.\n\n\
        Exit status: 0 every host succeeded, 1 some failed (or the request failed), \
        2 usage error, 3 authentication or permission error.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Commands,
}

/// Flags accepted before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Base URL of the API [env: OSAPI_URL] [default: http://127.0.0.1:8080]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token [env: OSAPI_TOKEN]
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the bearer token [env: OSAPI_TOKEN_FILE]
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Client config file (its api.client section) instead of ~/.config/osapi/osapictl.yaml
    /// and /etc/osapi/osapi.yaml
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Which agents run the operation: _any, _all, a hostname or key:value (a label)
    #[arg(long, global = true, value_name = "TARGET", default_value = "_any", value_parser = parse_target)]
    pub target: String,
    /// How long to wait for the hosts, e.g. 30s (domain commands at most 300s; jobs at most 1h)
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Do not wait: print the job id at once (follow with `osapictl job get ID`)
    #[arg(long = "async", global = true)]
    pub async_: bool,
    /// Do not ask before changing every host or a label group
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Print the request's trace context (traceparent) on stderr, to find it in the
    /// server's logs (`journalctl TRACE_ID=…`)
    #[arg(long, global = true)]
    pub debug: bool,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables, one row per host
    Table,
    /// The API's answer as pretty JSON
    Json,
    /// The API's answer as YAML
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Read and change the host: hostname, status, uptime, OS, disks, memory, load
    #[command(subcommand)]
    Node(NodeCommand),
    /// DNS settings of an interface, and ping
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Run a program or a shell command line on the hosts
    #[command(subcommand)]
    Command(CommandCommand),
    /// Create, follow, list, inspect, delete and retry jobs
    #[command(subcommand)]
    Job(JobCommand),
    /// Live agents
    #[command(subcommand)]
    Agent(AgentCommand),
    /// The audit log of API requests
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Liveness of the API (`ready`: NATS and buckets answer; `status`: the full report)
    Health {
        #[command(subcommand)]
        check: Option<HealthCommand>,
    },
    /// The API's Prometheus metrics, as text
    Metrics,
    /// Client and server versions
    Version,
    /// Print a shell completion script
    Completions {
        /// The shell to generate for
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Show (default) or set the hostname
    Hostname {
        #[command(subcommand)]
        action: Option<HostnameAction>,
    },
    /// Hostname, uptime, OS, load, memory and disks in one
    Status,
    /// Time since boot
    Uptime,
    /// Operating system and kernel
    Os,
    /// Usage of each mounted filesystem
    Disk,
    /// Memory and swap
    Memory,
    /// Load averages
    Load,
}

#[derive(Debug, Subcommand)]
pub enum HostnameAction {
    /// Show the hostname and where it was read from
    Get,
    /// Set the static and transient hostname
    Set {
        /// The new hostname (RFC 1123)
        name: String,
        /// Also set the pretty (free-form) hostname
        #[arg(long, value_name = "PRETTY")]
        pretty: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// DNS servers and search domains of an interface
    #[command(subcommand)]
    Dns(DnsCommand),
    /// ICMP echo from the hosts to an address
    Ping {
        /// Hostname or IP address to ping
        address: String,
        /// Echo requests to send (1-100, default 4)
        #[arg(long, value_name = "N")]
        count: Option<u32>,
        /// How long to wait for each reply, e.g. 1s (the job's --timeout is separate)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        probe_timeout: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Show the DNS servers and search domains of IFACE
    Get {
        /// Interface name, e.g. eth0
        interface: String,
    },
    /// Replace the DNS servers and search domains of IFACE
    Set {
        /// Interface name, e.g. eth0
        interface: String,
        /// A DNS server address; repeat or separate with commas
        #[arg(long = "server", value_name = "IP", value_delimiter = ',')]
        servers: Vec<String>,
        /// A search domain; repeat or separate with commas
        #[arg(long = "search", value_name = "DOMAIN", value_delimiter = ',')]
        search_domains: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CommandCommand {
    /// Run PROG with ARGS, no shell: `osapictl command exec -- ls -l /tmp`
    Exec {
        /// Working directory (absolute)
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// An environment variable for the program; repeat for more
        #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// Kill the program after this long, e.g. 60s (default 30s, max 300s)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        command_timeout: Option<Duration>,
        /// The program and its arguments
        #[arg(value_name = "PROG", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
    },
    /// Run CMD with /bin/sh -c
    Shell {
        /// The command line
        #[arg(value_name = "CMD")]
        command: String,
        /// Working directory (absolute)
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// Kill the command after this long, e.g. 60s (default 30s, max 300s)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        command_timeout: Option<Duration>,
    },
}

/// An operation given by type name and JSON data, for `job add` and `job run`.
#[derive(Debug, Clone, Args)]
pub struct JobSpec {
    /// Operation type
    #[arg(long = "type", value_name = "TYPE", value_parser = PossibleValuesParser::new(OPERATION_TYPES))]
    pub op_type: String,
    /// The operation's input as JSON, or @FILE to read it from a file
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub data: Option<serde_json::Value>,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job and print its id
    Add(JobSpec),
    /// Create a job and wait until it is finished (progress on a terminal)
    Run(JobSpec),
    /// List jobs, newest first
    List {
        /// Only jobs with this status
        #[arg(long, value_name = "STATUS", value_parser = PossibleValuesParser::new(JOB_STATUSES))]
        status: Option<String>,
        /// Only jobs of this operation type
        #[arg(long, value_name = "TYPE", value_parser = PossibleValuesParser::new(OPERATION_TYPES))]
        operation: Option<String>,
        /// Only jobs sent to this target
        #[arg(long, value_name = "TARGET", value_parser = parse_target)]
        filter_target: Option<String>,
        /// Page size (1-1000, server default 50)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Continue a listing from a previous page's cursor
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
    },
    /// A job's status, hosts, results and timeline
    Get {
        /// Job id
        id: Uuid,
    },
    /// Delete a job
    Delete {
        /// Job id
        id: Uuid,
    },
    /// Run a job again as a new job
    Retry {
        /// Job id
        id: Uuid,
        /// Send the new job to another target
        #[arg(long, value_name = "TARGET", value_parser = parse_target)]
        new_target: Option<String>,
    },
    /// Counts of stored jobs by status and operation
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Every live agent
    List,
    /// One live agent
    Get {
        /// The agent's hostname
        hostname: String,
    },
    /// Agents on other hosts waiting to join the fleet
    Pending {
        /// Also the accepted and rejected ones
        #[arg(long)]
        all: bool,
    },
    /// Let a pending agent join: it gets a NATS identity for its host only
    Accept {
        /// The agent's public key, as `agent pending` and the agent's log show it
        agent: String,
    },
    /// Refuse a pending agent, or cut off an accepted one
    Reject {
        /// The agent's hostname or public key
        agent: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit entries, newest first
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// Page size
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Continue a listing from a previous page's cursor
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
    },
    /// One audit entry
    Get {
        /// Entry id
        id: String,
    },
    /// Every entry as JSON lines, oldest first. The file flag is -O/--output-file
    /// because -o is the global output format
    Export {
        /// Write to FILE instead of standard output
        #[arg(short = 'O', long = "output-file", value_name = "FILE")]
        output_file: Option<PathBuf>,
        #[command(flatten)]
        filter: AuditFilter,
    },
}

/// Which audit entries `audit list` and `audit export` take.
#[derive(Debug, clap::Args)]
pub struct AuditFilter {
    /// Only requests of this user (token subject)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only entries at or after this time: RFC 3339, or a duration ago such as 1h
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<String>,
    /// Only entries before this time: RFC 3339, or a duration ago such as 10m
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum HealthCommand {
    /// 503 until NATS and every bucket answer
    Ready,
    /// Components, agents live, NATS state, uptime, memory, version
    Status,
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Write the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut command(), "osapictl", out);
}

fn parse_target(s: &str) -> Result<String, String> {
    s.parse::<Target>()
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A human duration (`30s`, `1m 30s`, `500ms`) or whole seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?} is not a duration like 30s: {e}"))?,
    };
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    let (text, from) = match s.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?,
            path,
        ),
        None => (s.to_owned(), "the argument"),
    };
    serde_json::from_str(&text).map_err(|e| format!("{from} is not valid JSON: {e}"))
}

/// An RFC 3339 time is passed through; a duration means that long ago.
fn parse_time(s: &str) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    if time::OffsetDateTime::parse(s, &Rfc3339).is_ok() {
        return Ok(s.to_owned());
    }
    let ago = humantime::parse_duration(s)
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor a duration like 1h"))?;
    let ago = time::Duration::try_from(ago).map_err(|e| e.to_string())?;
    (time::OffsetDateTime::now_utc() - ago)
        .format(&Rfc3339)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("osapictl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn completions_for_bash_mention_the_binary() {
        let mut out = Vec::new();
        completions(Shell::Bash, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.is_empty());
        assert!(text.contains("osapictl"));
        assert!(text.contains("hostname"));
    }

    #[test]
    fn every_shell_generates() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            assert!(!out.is_empty(), "{shell}");
        }
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&[
            "node",
            "status",
            "--target",
            "_all",
            "-o",
            "json",
            "--timeout",
            "45s",
        ])
        .unwrap();
        assert_eq!(cli.global.target, "_all");
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.timeout, Some(Duration::from_secs(45)));
        let cli = parse(&["--yes", "--async", "node", "hostname"]).unwrap();
        assert!(cli.global.yes && cli.global.async_);
        assert!(matches!(
            cli.command,
            Commands::Node(NodeCommand::Hostname { action: None })
        ));
        assert_eq!(cli.global.target, "_any");
    }

    #[test]
    fn exec_takes_the_rest_as_argv() {
        let cli = parse(&[
            "command", "exec", "--env", "A=b=c", "--cwd", "/tmp", "--", "ls", "-l", "--all",
        ])
        .unwrap();
        let Commands::Command(CommandCommand::Exec { argv, env, cwd, .. }) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(argv, ["ls", "-l", "--all"]);
        assert_eq!(env, [("A".to_owned(), "b=c".to_owned())]);
        assert_eq!(cwd.as_deref(), Some("/tmp"));
        let cli = parse(&["command", "exec", "uname", "-a"]).unwrap();
        let Commands::Command(CommandCommand::Exec { argv, .. }) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(argv, ["uname", "-a"]);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["command", "exec", "--env", "NOEQUALS", "--", "true"][..],
            &[
                "job",
                "add",
                "--type",
                "node.hostname.get",
                "--data",
                "{not json",
            ],
            &["job", "add", "--type", "node.nothing"],
            &["job", "get", "not-a-uuid"],
            &["node", "status", "--target", "bad target"],
            &["node", "status", "--timeout", "soon"],
            &["node", "status", "-o", "xml"],
            &["--token", "a", "--token-file", "/x", "version"],
        ] {
            let err = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} parsed"));
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn dns_set_collects_servers_and_domains() {
        let cli = parse(&[
            "network",
            "dns",
            "set",
            "eth0",
            "--server",
            "1.1.1.1,9.9.9.9",
            "--server",
            "::1",
            "--search",
            "example.com",
        ])
        .unwrap();
        let Commands::Network(NetworkCommand::Dns(DnsCommand::Set {
            interface,
            servers,
            search_domains,
        })) = cli.command
        else {
            panic!("not dns set")
        };
        assert_eq!(interface, "eth0");
        assert_eq!(servers, ["1.1.1.1", "9.9.9.9", "::1"]);
        assert_eq!(search_domains, ["example.com"]);
    }

    #[test]
    fn audit_export_file_flag_does_not_clash_with_output() {
        let cli = parse(&["audit", "export", "-O", "audit.jsonl", "-o", "json"]).unwrap();
        let Commands::Audit(AuditCommand::Export { output_file, .. }) = cli.command else {
            panic!("not export")
        };
        assert_eq!(output_file, Some(PathBuf::from("audit.jsonl")));
        assert_eq!(cli.global.output, OutputFormat::Json);
    }

    #[test]
    fn times_accept_rfc3339_and_durations_ago() {
        assert_eq!(
            parse_time("2024-01-02T03:04:05Z").unwrap(),
            "2024-01-02T03:04:05Z"
        );
        let t = parse_time("1h").unwrap();
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
        assert!(parse_time("yesterday-ish").is_err());
    }
}
