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

use crate::job::{OPERATION_TYPES, OPERATIONS, Operation, OperationSpec, Target, parse_duration};

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
    /// Operations on the hosts: `node …`, `network …`, `command …`
    #[command(flatten)]
    Operation(OperationCommand),
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

/// The groups of operation subcommands, with their help; each operation's
/// own subcommand and arguments come from its row in the operation table.
const GROUPS: [(&str, &str); 18] = [
    (
        "node",
        "Read and change the host: hostname, status, uptime, OS, disks, memory, load",
    ),
    ("node hostname", "Show (default) or set the hostname"),
    ("network", "DNS settings of an interface, and ping"),
    (
        "network interface",
        "Network interfaces: addresses, routes, state",
    ),
    (
        "network dns",
        "DNS servers and search domains of an interface",
    ),
    (
        "command",
        "Run a program or a shell command line on the hosts",
    ),
    (
        "service",
        "systemd units: list, inspect, start, stop, restart, reload, enable, disable, mask",
    ),
    (
        "service dropin",
        "Drop-ins OSAPI manages: /etc/systemd/system/UNIT.d/50-osapi-NAME.conf",
    ),
    ("time", "The clock: time, time zone, NTP"),
    ("process", "Processes from /proc: list, inspect, signal"),
    (
        "sysctl",
        "Kernel parameters: read from /proc/sys, set through sysctl.d and systemd-sysctl",
    ),
    (
        "file",
        "Stored files: upload, list, delete; deploy to hosts, drift status, undeploy",
    ),
    (
        "user",
        "User accounts: list, inspect, add, modify, lock, unlock, delete, passwords",
    ),
    ("user key", "A user's SSH authorized keys"),
    ("group", "Groups: list, inspect, add, delete"),
    (
        "package",
        "Packages through PackageKit: list, search, get, updates, install, remove, update, refresh",
    ),
    (
        "cert",
        "Trusted certificate authorities: list, add, remove (the host's bundle, rebuilt by its tool)",
    ),
    (
        "power",
        "Reboot (proven by a new boot id) and poweroff, scheduled through logind",
    ),
];

/// An operation's subcommand (`node hostname set NAME`), parsed into the
/// operation (not yet validated).
#[derive(Debug)]
pub enum OperationCommand {
    /// An operation from the table.
    Run(Operation),
    /// A command run with `--follow`: its output printed as it comes.
    Follow(Operation),
    /// `file upload|list|info|delete`: the file store itself, beside the
    /// `file` operations.
    Store(StoreCommand),
}

/// The file store's own subcommands (not jobs: the API keeps the files).
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Store a file (file:write), at most 16 MiB: `osapictl file upload ./motd`
    Upload {
        /// The file to store
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The name to store it under (default: the file's name)
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// The stored files
    List,
    /// One stored file's size, SHA-256 and uploader
    Info {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Remove a stored file (copies on hosts stay)
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// The operations whose output can be followed live (`--follow`).
const FOLLOWED_GROUP: &str = "command ";
const FOLLOW: &str = "follow";

/// Where the store's subcommands sit among the operations'.
const STORE_GROUP: &str = "file";

/// The words that follow `prefix` in operations' subcommands, each once, in
/// table order.
fn next_words(prefix: &str) -> Vec<&'static str> {
    let mut words: Vec<&str> = Vec::new();
    for spec in &OPERATIONS {
        let rest = if prefix.is_empty() {
            Some(spec.cli)
        } else {
            spec.cli
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix(' '))
        };
        if let Some(word) = rest.and_then(|r| r.split(' ').next())
            && !words.contains(&word)
        {
            words.push(word);
        }
    }
    words
}

/// The operation whose subcommand is `words`; a group given alone runs its
/// `get` when that takes no input (`node hostname`).
fn operation_at(words: &str) -> Option<&'static OperationSpec> {
    let find = |cli: &str| OPERATIONS.iter().find(|s| s.cli == cli);
    find(words).or_else(|| find(&format!("{words} get")).filter(|s| s.input_schema.is_none()))
}

/// The subcommand `name` at `path` (`hostname` at `node hostname`): an
/// operation, or a group.
fn subcommand(path: &str, name: &'static str) -> clap::Command {
    if let Some(spec) = OPERATIONS.iter().find(|s| s.cli == path) {
        // The input type's own doc comment would be its help: the table's wins.
        let command = (spec.cli_args)(clap::Command::new(name))
            .about(spec.about)
            .long_about(None::<&str>);
        return match spec.cli.starts_with(FOLLOWED_GROUP) {
            true => command.arg(
                clap::Arg::new(FOLLOW)
                    .long(FOLLOW)
                    .short('f')
                    .action(clap::ArgAction::SetTrue)
                    .help("Print the output as it comes, each line prefixed with its host when several answer (before PROG); Ctrl-C asks whether to cancel"),
            ),
            false => command,
        };
    }
    let about = GROUPS.iter().find(|(p, _)| *p == path).map(|(_, a)| *a);
    let runs_bare = operation_at(path).is_some();
    let group = next_words(path).into_iter().fold(
        clap::Command::new(name)
            .about(about)
            .subcommand_required(!runs_bare),
        |group, word| group.subcommand(subcommand(&format!("{path} {word}"), word)),
    );
    if path == STORE_GROUP {
        StoreCommand::augment_subcommands(group)
    } else {
        group
    }
}

impl clap::FromArgMatches for OperationCommand {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        if let Some((STORE_GROUP, group)) = matches.subcommand()
            && group
                .subcommand_name()
                .is_some_and(StoreCommand::has_subcommand)
        {
            return StoreCommand::from_arg_matches(group).map(OperationCommand::Store);
        }
        let mut words = Vec::new();
        let mut leaf = matches;
        while let Some((word, sub)) = leaf.subcommand() {
            words.push(word);
            leaf = sub;
        }
        match operation_at(&words.join(" ")) {
            Some(spec) => {
                let follow = spec.cli.starts_with(FOLLOWED_GROUP) && leaf.get_flag(FOLLOW);
                let op = (spec.from_cli)(leaf)?;
                Ok(match follow {
                    true => OperationCommand::Follow(op),
                    false => OperationCommand::Run(op),
                })
            }
            None => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for OperationCommand {
    fn augment_subcommands(command: clap::Command) -> clap::Command {
        next_words("").into_iter().fold(command, |command, word| {
            command.subcommand(subcommand(word, word))
        })
    }

    fn augment_subcommands_for_update(command: clap::Command) -> clap::Command {
        Self::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        next_words("").contains(&name)
    }
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
        /// Only jobs created by this user (a token's subject)
        #[arg(long, value_name = "USER")]
        created_by: Option<String>,
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
    /// What a job's commands printed (so far), per host
    Output {
        /// Job id
        id: Uuid,
        /// Keep printing as it comes until the job ends; Ctrl-C asks whether to cancel
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Stop a running command job on every host running it
    Cancel {
        /// Job id
        id: Uuid,
    },
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

    /// Every row of the operation table is a subcommand, found again by its words.
    #[test]
    fn every_operation_has_its_subcommand() {
        let root = command();
        for spec in &OPERATIONS {
            let mut at = &root;
            for word in spec.cli.split(' ') {
                at = at
                    .find_subcommand(word)
                    .unwrap_or_else(|| panic!("{}: no `{word}`", spec.cli));
            }
            assert_eq!(
                at.get_about().map(|a| a.to_string()).as_deref(),
                Some(spec.about)
            );
            assert!(std::ptr::eq(operation_at(spec.cli).unwrap(), spec));
        }
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
            Commands::Operation(OperationCommand::Run(Operation::HostnameGet))
        ));
        assert_eq!(cli.global.target, "_any");
    }

    #[test]
    fn exec_takes_the_rest_as_argv() {
        let cli = parse(&[
            "command", "exec", "--env", "A=b=c", "--cwd", "/tmp", "--", "ls", "-l", "--all",
        ])
        .unwrap();
        let Commands::Operation(OperationCommand::Run(Operation::CommandExec(c))) = cli.command
        else {
            panic!("not exec")
        };
        assert_eq!(c.command, "ls");
        assert_eq!(c.args, ["-l", "--all"]);
        let env = [crate::job::EnvVar {
            name: "A".into(),
            value: "b=c".into(),
        }];
        assert_eq!(c.env, env);
        assert_eq!(c.cwd.as_deref(), Some("/tmp"));
        let cli = parse(&["command", "exec", "uname", "-a"]).unwrap();
        let Commands::Operation(OperationCommand::Run(Operation::CommandExec(c))) = cli.command
        else {
            panic!("not exec")
        };
        assert_eq!(c.command, "uname");
        assert_eq!(c.args, ["-a"]);
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
        let Commands::Operation(OperationCommand::Run(Operation::DnsSet(d))) = cli.command else {
            panic!("not dns set")
        };
        assert_eq!(d.interface, "eth0");
        assert_eq!(d.servers, ["1.1.1.1", "9.9.9.9", "::1"]);
        assert_eq!(d.search_domains, ["example.com"]);
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
