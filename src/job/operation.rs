//! Operations: the one typed vocabulary shared by API, CLI and agent (SPEC §4).

use std::net::IpAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use super::cert::{CaAdd, CaList, CaRef};
pub use super::clock::{ClockSet, NtpServersSet, NtpSet, TimezoneSet};
pub use super::file::{FileDeploy, FileName, FileUndeploy};
use super::hostname::{HOST_NAME_MAX, MAX_DOMAIN_LEN, check_hostname};
pub use super::interface::InterfaceSet;
pub use super::log::LogQuery;
pub use super::package::{PackageName, PackageNames, PackageRefresh, PackageSearch, PackageUpdate};
pub use super::power::{PowerCancel, PowerSchedule};
pub use super::process::{ProcessList, ProcessRef, ProcessSignal};
pub use super::service::{
    DropInDelete, DropInPut, DropInRef, ServiceChange, ServiceList, ServiceUnit,
};
pub use super::sysctl::{SysctlKey, SysctlList, SysctlSet};
pub use super::user::{
    GroupAdd, GroupName, GroupRef, UserAccount, UserDelete, UserKey, UserList, UserName,
    UserPassword, UserRef,
};
use crate::provider::files::{FileDeployed, FileStatuses, FileUndeployed};
use crate::provider::interfaces::{InterfaceChange, InterfaceInfo, Interfaces};
use crate::provider::packages::{
    CHANGE_WAIT, CacheRefresh, PackageChange, PackageInfo, Packages, PendingUpdates, QUERY_WAIT,
    REFRESH_WAIT,
};
use crate::provider::systemd1::{UNIT_JOB_WAIT, UnitAction};
use crate::provider::users::{
    GroupChange, GroupInfo, Groups, SshKeyChange, SshKeys, UserChange, UserInfo, Users,
};
use crate::provider::{
    CaCertificates, CaChange, ClockChange, ClockInfo, CommandResult, Disks, DnsChangeResult,
    DnsConfig, DropIn, DropInChange, HostnameChange, HostnameInfo, LoadInfo, LogEntries,
    MemoryInfo, NodeStatus, OsInfo, PingResult, PowerChange, PowerStatus, ProcessInfo,
    ProcessSignalled, Processes, SysctlChange, SysctlValue, Sysctls, UnitChange, UnitStatus, Units,
    UptimeInfo,
};
use crate::rbac::Permission;
use crate::view::View;

/// The longest timeout a command job may ask for; agents may allow less
/// (`node.agent.command.max_timeout`).
pub const MAX_REQUESTED_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// A command's timeout when the request gives none (agents may configure another).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each ping probe waits for its reply when the request does not say.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Time for a host's answer to arrive after its operation's own runtime.
const ANSWER_GRACE: Duration = Duration::from_secs(5);
/// How long a rebooting host has to come back before its job says `timeout`.
pub const REBOOT_RETURN: Duration = Duration::from_secs(600);
/// Longest per-probe ping timeout.
const MAX_PING_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether an operation only reads the host or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Query,
    Modify,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Modify => "modify",
        }
    }
}

/// A request's input that fails validation; `field` is a dotted path into the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidInput {
    pub field: String,
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

// The inputs. Each is also its `osapictl` subcommand's arguments: doc comments
// describe the field in the OpenAPI document, `help` where the CLI says it
// differently.

/// `node.hostname.set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct HostnameSet {
    /// The new static and transient hostname (RFC 1123, at most 64 bytes).
    #[arg(value_name = "NAME")]
    pub hostname: String,
    /// The new pretty (free-form) hostname; left as it is when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(
        long,
        value_name = "PRETTY",
        help = "Also set the pretty (free-form) hostname"
    )]
    pub pretty: Option<String>,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

/// `network.interface.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct InterfaceRef {
    /// Interface name, e.g. `eth0`.
    #[arg(value_name = "IFACE")]
    pub interface: String,
}

impl InterfaceRef {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        validate_interface(&self.interface, "interface")
    }
}

/// `network.dns.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct DnsGet {
    /// Interface name, e.g. `eth0`.
    #[arg(value_name = "IFACE")]
    pub interface: String,
}

/// `network.dns.set`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct DnsSet {
    /// Interface name, e.g. `eth0`.
    #[arg(value_name = "IFACE")]
    pub interface: String,
    /// DNS server addresses (IPv4 or IPv6); replace the current ones.
    #[serde(default)]
    #[arg(
        long = "server",
        value_name = "IP",
        value_delimiter = ',',
        help = "A DNS server address; repeat or separate with commas"
    )]
    pub servers: Vec<String>,
    /// Search domains (`~domain` for routing only); replace the current ones.
    #[serde(default)]
    #[arg(
        long = "search",
        value_name = "DOMAIN",
        value_delimiter = ',',
        help = "A search domain; repeat or separate with commas"
    )]
    pub search_domains: Vec<String>,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

/// `network.ping.do`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    /// Hostname or IP address to ping.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// Echo requests to send, 1-100.
    #[serde(default = "default_ping_count")]
    #[arg(long, value_name = "N", default_value_t = default_ping_count())]
    pub count: u32,
    /// Per-probe timeout, e.g. `"1s"` (default 1s, at most 30s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schema(value_type = Option<String>)]
    #[arg(id = "probe_timeout", long = "probe-timeout", value_name = "DURATION", value_parser = parse_duration,
        help = "How long to wait for each reply, e.g. 1s (the job's --timeout is separate)")]
    pub timeout: Option<Duration>,
}

fn default_ping_count() -> u32 {
    4
}

/// `command.exec.execute`: a program and its arguments, no shell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct CommandExec {
    /// The program: a path, or a name looked up in `PATH`.
    #[arg(value_name = "PROG")]
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
    /// Working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Run as this user (a name; default root). Another user than root
    /// needs `command:run-as` besides `command:execute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run with this group (a name; default the user's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// How long it may run, e.g. `"60s"` (default: the agent's, 30s unless
    /// configured; at most 300s); then its process group is killed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schema(value_type = Option<String>)]
    #[arg(id = "command_timeout", long = "command-timeout", value_name = "DURATION", value_parser = parse_duration,
        help = "Kill the program after this long, e.g. 60s (default 30s, max 300s)")]
    pub timeout: Option<Duration>,
    /// Environment variables added to the program's.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "env_map")]
    #[schema(value_type = BTreeMap<String, String>)]
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env_var,
        help = "An environment variable for the program; repeat for more")]
    pub env: Vec<EnvVar>,
}

/// One environment variable of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// `command.shell.execute`: a command line run by `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct CommandShell {
    /// The command line.
    #[arg(value_name = "CMD")]
    pub command: String,
    /// Working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Run as this user (a name; default root). Another user than root
    /// needs `command:run-as` besides `command:execute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run with this group (a name; default the user's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// How long it may run, e.g. `"60s"` (default: the agent's, 30s unless
    /// configured; at most 300s); then its process group is killed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schema(value_type = Option<String>)]
    #[arg(id = "command_timeout", long = "command-timeout", value_name = "DURATION", value_parser = parse_duration,
        help = "Kill the command after this long, e.g. 60s (default 30s, max 300s)")]
    pub timeout: Option<Duration>,
}

impl HostnameSet {
    /// Check the input before anything runs; fields are named within it.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Err(why) = check_hostname(&self.hostname, HOST_NAME_MAX) {
            return Err(InvalidInput::new(
                "hostname",
                format!(
                    "{why}: a hostname is 1-{HOST_NAME_MAX} bytes, labels of 1-63 letters, digits or hyphens, not starting or ending with a hyphen"
                ),
            ));
        }
        if let Some(p) = &self.pretty
            && (p.len() > 255 || p.chars().any(char::is_control))
        {
            return Err(InvalidInput::new(
                "pretty",
                "at most 255 characters, no control characters",
            ));
        }
        Ok(())
    }

    /// The names after this change, from the names before it.
    pub fn predict(&self, before: &HostnameInfo) -> HostnameInfo {
        HostnameInfo {
            hostname: self.hostname.clone(),
            static_hostname: Some(self.hostname.clone()),
            pretty_hostname: match &self.pretty {
                Some(p) => Some(p.clone()).filter(|p| !p.is_empty()),
                None => before.pretty_hostname.clone(),
            },
            source: before.source,
        }
    }
}

impl DnsGet {
    /// Check the input before anything runs; fields are named within it.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        validate_interface(&self.interface, "interface")?;
        Ok(())
    }
}

impl DnsSet {
    /// Check the input before anything runs; fields are named within it.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        validate_interface(&self.interface, "interface")?;
        for (i, s) in self.servers.iter().enumerate() {
            if s.parse::<IpAddr>().is_err() {
                return Err(InvalidInput::new(
                    format!("servers[{i}]"),
                    format!("{s:?} is not an IPv4 or IPv6 address"),
                ));
            }
        }
        for (i, s) in self.search_domains.iter().enumerate() {
            let name = s.strip_prefix('~').unwrap_or(s);
            if !(name == "." || check_hostname(name.trim_end_matches('.'), MAX_DOMAIN_LEN).is_ok())
            {
                return Err(InvalidInput::new(
                    format!("search_domains[{i}]"),
                    format!("{s:?} is not a valid domain"),
                ));
            }
        }
        Ok(())
    }
}

impl Ping {
    /// Check the input before anything runs; fields are named within it.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.address.is_empty()
            || self.address.len() > 253
            || self
                .address
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(InvalidInput::new(
                "address",
                "must be a hostname or IP address",
            ));
        }
        if !(1..=100).contains(&self.count) {
            return Err(InvalidInput::new("count", "must be between 1 and 100"));
        }
        if let Some(t) = self.timeout
            && (t.is_zero() || t > MAX_PING_TIMEOUT)
        {
            return Err(InvalidInput::new("timeout", "must be between 1ms and 30s"));
        }
        Ok(())
    }
}

impl CommandExec {
    /// Check the input before anything runs; fields are named within it.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        validate_command(&self.command, "command")?;
        validate_timeout(self.timeout, "timeout")?;
        validate_cwd(self.cwd.as_deref(), "cwd")?;
        validate_run_as(self.user.as_deref(), self.group.as_deref())?;
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                return Err(InvalidInput::new(
                    format!("args[{i}]"),
                    "must not contain NUL",
                ));
            }
        }
        for (i, EnvVar { name, value }) in self.env.iter().enumerate() {
            let field = format!("env.{name}");
            if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0')
            {
                return Err(InvalidInput::new(
                    field,
                    "names must be non-empty without '=' or NUL; values without NUL",
                ));
            }
            if self.env[..i].iter().any(|e| e.name == *name) {
                return Err(InvalidInput::new(field, "given twice"));
            }
        }
        Ok(())
    }
}

impl CommandShell {
    /// Check the input before anything runs; fields are named within it.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        validate_command(&self.command, "command")?;
        validate_timeout(self.timeout, "timeout")?;
        validate_cwd(self.cwd.as_deref(), "cwd")?;
        validate_run_as(self.user.as_deref(), self.group.as_deref())
    }
}

/// A command's `user` and `group`: account names.
fn validate_run_as(user: Option<&str>, group: Option<&str>) -> Result<(), InvalidInput> {
    if let Some(user) = user {
        super::user::check_account_name("user", user)?;
    }
    if let Some(group) = group {
        super::user::check_account_name("group", group)?;
    }
    Ok(())
}

/// A human duration (`30s`, `1m 30s`, `500ms`) or whole seconds, longer than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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

/// `NAME=VALUE`, as `osapictl command exec --env` takes it.
fn parse_env_var(s: &str) -> Result<EnvVar, String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(EnvVar {
            name: k.to_owned(),
            value: v.to_owned(),
        }),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

/// Environment variables on the wire: a JSON object of names to values.
mod env_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::EnvVar;

    pub fn serialize<S: Serializer>(vars: &[EnvVar], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(vars.iter().map(|v| (&v.name, &v.value)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EnvVar>, D::Error> {
        Ok(BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(name, value)| EnvVar { name, value })
            .collect())
    }
}

/// How an operation is reached over HTTP (the API maps it onto its router).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Put,
    Post,
    Delete,
}

/// Everything declared about one operation, in one row of the table below.
/// The API's routes and OpenAPI paths, the `POST /jobs` union, `osapictl`'s
/// subcommands and result views, and the agent's checks all read it.
pub struct OperationSpec {
    /// The wire name, e.g. `node.hostname.get`.
    pub name: &'static str,
    pub kind: Kind,
    /// What a caller needs on top of the endpoint's own permission (for
    /// `POST /jobs`, `job:write`).
    pub permission: Permission,
    /// Running it twice on a host is harmless; jobs that are not are never
    /// re-run after a host started them (SPEC §4).
    pub idempotent: bool,
    /// It may run long (commands, pings), so it may not take the slots an
    /// agent keeps for quick jobs.
    pub long: bool,
    /// Its endpoint. Path parameters (`{interface}`) are fields of the input;
    /// the rest of the input is the body.
    pub method: HttpMethod,
    pub path: &'static str,
    /// Its `osapictl` subcommand, as words (`node hostname set`); the input's
    /// fields are its arguments (`clap::Args` on the input type).
    pub cli: &'static str,
    /// One line for the CLI's help and the OpenAPI summary.
    pub about: &'static str,
    /// The input's schema, registering what it refers to; `None` without input.
    pub input_schema: Option<SchemaFn>,
    /// The schema of one host's result data.
    pub result_schema: SchemaFn,
    /// How one host's result reads as a table.
    pub view: View,
    /// Adds the input's arguments to the subcommand.
    pub cli_args: fn(clap::Command) -> clap::Command,
    /// Builds the operation from the subcommand's arguments (not yet validated).
    pub from_cli: fn(&clap::ArgMatches) -> Result<Operation, clap::Error>,
}

/// Registers a type's schema (and those it refers to) and returns a reference to it.
pub type SchemaFn = fn(&mut Schemas) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>;
/// Named schemas, as utoipa collects them.
pub type Schemas = Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)>;

/// Registers `T`'s schema (and those it refers to) and returns a reference to it.
pub fn schema_ref<T: utoipa::ToSchema>(
    out: &mut Schemas,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let name = T::name().into_owned();
    out.push((name.clone(), T::schema()));
    T::schemas(out);
    utoipa::openapi::Ref::from_schema_name(name).into()
}

impl OperationSpec {
    /// The declaration of the operation named `name`.
    pub fn find(name: &str) -> Option<&'static OperationSpec> {
        OPERATIONS.iter().find(|s| s.name == name)
    }

    /// Names of the path parameters, in order (`{interface}` → `interface`).
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
    }
}

/// The one table of operations: each row declares an operation once — its
/// variant (and input type), result type, wire name, kind, the permission it
/// needs, whether running it twice is harmless, whether it may run long, its
/// endpoint, its `osapictl` subcommand and one line about it, and, where an
/// input type serves operations with different rules, the row's own `check`.
/// The enum, the list of names, parsing and [`OPERATIONS`] come from it.
macro_rules! operations {
    ($(
        $variant:ident $(($data:ty))? -> $result:ty = $name:literal,
        $kind:ident, $permission:ident, idempotent: $idempotent:literal, long: $long:literal,
        $method:ident $path:literal, cli: $cli:literal, about: $about:literal
        $(, check: $check:path)?;
    )*) => {
        /// Every operation a job can carry. Serialised as `{"type": "...", "data": {...}}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data", try_from = "OperationRequest")]
        pub enum Operation {
            $(#[serde(rename = $name)] $variant $(($data))?,)*
        }

        /// Each operation's row in [`OPERATIONS`].
        #[allow(dead_code)]
        enum Row { $($variant,)* }

        /// Every operation, declared once, in the order of SPEC §4.
        pub static OPERATIONS: [OperationSpec; operations!(@count $($name)*)] = [$(
            OperationSpec {
                name: $name,
                kind: Kind::$kind,
                permission: Permission::$permission,
                idempotent: $idempotent,
                long: $long,
                method: HttpMethod::$method,
                path: $path,
                cli: $cli,
                about: $about,
                input_schema: operations!(@input_schema $($data)?),
                result_schema: schema_ref::<$result>,
                view: crate::view::of::<$result>(),
                cli_args: operations!(@cli_args $($data)?),
                from_cli: operations!(@from_cli $variant $($data)?),
            },
        )*];

        /// Every operation type name, in the order of SPEC §4.
        pub const OPERATION_TYPES: [&str; operations!(@count $($name)*)] = [$($name),*];

        impl Operation {
            /// This operation's declaration.
            pub fn spec(&self) -> &'static OperationSpec {
                let row = match self { $(operations!(@pattern $variant $($data)?) => Row::$variant,)* };
                &OPERATIONS[row as usize]
            }

            /// Check the input: its type's `validate`, then the row's own
            /// `check` where one input type serves operations with other rules.
            fn validate_input(&self) -> Result<(), InvalidInput> {
                match self {
                    $(operations!(@bind $variant input $($data)?) => operations!(@validate input $($data)?)
                        $(.and_then(|()| $check(input)))?,)*
                }
            }

            /// The operation named `type_name` with `data`, not yet validated.
            fn from_data(type_name: &str, data: serde_json::Value) -> Result<Operation, InvalidInput> {
                match type_name {
                    $($name => operations!(@build $variant $($data)?; type_name, data),)*
                    other => Err(InvalidInput::new(
                        "operation.type",
                        format!(
                            "unknown operation {other:?}; known: {}",
                            OPERATION_TYPES.join(", ")
                        ),
                    )),
                }
            }
        }
    };
    (@count) => { 0 };
    (@count $head:literal $($tail:literal)*) => { 1 + operations!(@count $($tail)*) };
    (@pattern $variant:ident $data:ty) => { Operation::$variant(_) };
    (@pattern $variant:ident) => { Operation::$variant };
    (@bind $variant:ident $input:ident $data:ty) => { Operation::$variant($input) };
    (@bind $variant:ident $input:ident) => { Operation::$variant };
    (@validate $input:ident $data:ty) => { $input.validate() };
    (@validate $input:ident) => { Ok(()) };
    (@input_schema $data:ty) => { Some(schema_ref::<$data>) };
    (@input_schema) => { None };
    (@cli_args $data:ty) => { <$data as clap::Args>::augment_args };
    (@cli_args) => { |command| command };
    (@from_cli $variant:ident $data:ty) => {
        |matches| <$data as clap::FromArgMatches>::from_arg_matches(matches).map(Operation::$variant)
    };
    (@from_cli $variant:ident) => { |_| Ok(Operation::$variant) };
    (@build $variant:ident $data:ty; $type_name:ident, $input:ident) => {
        typed_data::<$data>($input).map(Operation::$variant)
    };
    (@build $variant:ident; $type_name:ident, $input:ident) => {
        no_input($type_name, &$input).map(|()| Operation::$variant)
    };
}

operations! {
    HostnameGet -> HostnameInfo = "node.hostname.get", Query, NodeRead, idempotent: true, long: false,
        Get "/api/v1/node/hostname", cli: "node hostname get",
        about: "The hostname, static and pretty names, and where they were read from";
    HostnameSet(HostnameSet) -> HostnameChange = "node.hostname.set", Modify, NodeWrite, idempotent: true, long: false,
        Put "/api/v1/node/hostname", cli: "node hostname set",
        about: "Set the static and transient hostname (and the pretty one)";
    StatusGet -> NodeStatus = "node.status.get", Query, NodeRead, idempotent: true, long: false,
        Get "/api/v1/node/status", cli: "node status",
        about: "Hostname, uptime, OS, load, memory and disks in one";
    UptimeGet -> UptimeInfo = "node.uptime.get", Query, NodeRead, idempotent: true, long: false,
        Get "/api/v1/node/uptime", cli: "node uptime",
        about: "Time since boot";
    OsGet -> OsInfo = "node.os.get", Query, NodeRead, idempotent: true, long: false,
        Get "/api/v1/node/os", cli: "node os",
        about: "Operating system and kernel";
    DiskGet -> Disks = "node.disk.get", Query, NodeRead, idempotent: true, long: false,
        Get "/api/v1/node/disk", cli: "node disk",
        about: "Usage of each real mounted filesystem";
    MemoryGet -> MemoryInfo = "node.memory.get", Query, NodeRead, idempotent: true, long: false,
        Get "/api/v1/node/memory", cli: "node memory",
        about: "Memory and swap";
    LoadGet -> LoadInfo = "node.load.get", Query, NodeRead, idempotent: true, long: false,
        Get "/api/v1/node/load", cli: "node load",
        about: "Load averages and task counts";
    DnsGet(DnsGet) -> DnsConfig = "network.dns.get", Query, NetworkRead, idempotent: true, long: false,
        Get "/api/v1/network/dns/{interface}", cli: "network dns get",
        about: "DNS servers and search domains of an interface";
    DnsSet(DnsSet) -> DnsChangeResult = "network.dns.set", Modify, NetworkWrite, idempotent: true, long: false,
        Put "/api/v1/network/dns/{interface}", cli: "network dns set",
        about: "Replace the DNS servers and search domains of an interface";
    InterfaceList -> Interfaces = "network.interface.list", Query, NetworkRead, idempotent: true, long: false,
        Get "/api/v1/network/interfaces", cli: "network interface list",
        about: "Network interfaces: index, MAC, MTU, state, addresses, routes, and networkd's view of each";
    InterfaceGet(InterfaceRef) -> InterfaceInfo = "network.interface.get", Query, NetworkRead, idempotent: true, long: false,
        Get "/api/v1/network/interfaces/{interface}", cli: "network interface get",
        about: "One network interface";
    InterfaceSet(InterfaceSet) -> InterfaceChange = "network.interface.set", Modify, NetworkWrite, idempotent: true, long: true,
        Put "/api/v1/network/interfaces/{interface}", cli: "network interface set",
        about: "Set addresses, DHCP, routes or MTU of a link networkd manages; reverted unless the agent reaches NATS again within confirm_within";
    Ping(Ping) -> PingResult = "network.ping.do", Query, NetworkRead, idempotent: true, long: true,
        Post "/api/v1/network/ping", cli: "network ping",
        about: "ICMP echo from the hosts to an address";
    CommandExec(CommandExec) -> CommandResult = "command.exec.execute", Modify, CommandExecute, idempotent: false, long: true,
        Post "/api/v1/command/exec", cli: "command exec",
        about: "Run a program with arguments, no shell: `osapictl command exec -- ls -l /tmp`";
    CommandShell(CommandShell) -> CommandResult = "command.shell.execute", Modify, CommandExecute, idempotent: false, long: true,
        Post "/api/v1/command/shell", cli: "command shell",
        about: "Run a command line with /bin/sh -c";
    ServiceList(ServiceList) -> Units = "service.unit.list", Query, ServiceRead, idempotent: true, long: false,
        Get "/api/v1/service/units", cli: "service list",
        about: "Loaded units by name, filtered by a glob and a state";
    ServiceGet(ServiceUnit) -> UnitStatus = "service.unit.get", Query, ServiceRead, idempotent: true, long: false,
        Get "/api/v1/service/units/{unit}", cli: "service get",
        about: "One unit: its states, unit file, main process, memory and CPU";
    ServiceStart(ServiceChange) -> UnitChange = "service.unit.start", Modify, ServiceWrite, idempotent: true, long: true,
        Post "/api/v1/service/units/{unit}/start", cli: "service start",
        about: "Start a unit and wait for systemd's job to end";
    ServiceStop(ServiceChange) -> UnitChange = "service.unit.stop", Modify, ServiceWrite, idempotent: true, long: true,
        Post "/api/v1/service/units/{unit}/stop", cli: "service stop",
        about: "Stop a unit and wait for systemd's job to end";
    ServiceRestart(ServiceChange) -> UnitChange = "service.unit.restart", Modify, ServiceWrite, idempotent: false, long: true,
        Post "/api/v1/service/units/{unit}/restart", cli: "service restart",
        about: "Restart a unit and wait for systemd's job to end";
    ServiceTryRestart(ServiceChange) -> UnitChange = "service.unit.try-restart", Modify, ServiceWrite, idempotent: false, long: true,
        Post "/api/v1/service/units/{unit}/try-restart", cli: "service try-restart",
        about: "Restart a unit if it is running, and wait for systemd's job to end";
    ServiceReload(ServiceChange) -> UnitChange = "service.unit.reload", Modify, ServiceWrite, idempotent: false, long: true,
        Post "/api/v1/service/units/{unit}/reload", cli: "service reload",
        about: "Reload a unit's configuration and wait for systemd's job to end";
    ServiceEnable(ServiceChange) -> UnitChange = "service.unit.enable", Modify, ServiceWrite, idempotent: true, long: false,
        Post "/api/v1/service/units/{unit}/enable", cli: "service enable",
        about: "Enable a unit's file (the links its [Install] section names)";
    ServiceDisable(ServiceChange) -> UnitChange = "service.unit.disable", Modify, ServiceWrite, idempotent: true, long: false,
        Post "/api/v1/service/units/{unit}/disable", cli: "service disable",
        about: "Disable a unit's file";
    ServiceMask(ServiceChange) -> UnitChange = "service.unit.mask", Modify, ServiceWrite, idempotent: true, long: false,
        Post "/api/v1/service/units/{unit}/mask", cli: "service mask",
        about: "Mask a unit: link it to /dev/null so that nothing starts it";
    ServiceUnmask(ServiceChange) -> UnitChange = "service.unit.unmask", Modify, ServiceWrite, idempotent: true, long: false,
        Post "/api/v1/service/units/{unit}/unmask", cli: "service unmask",
        about: "Unmask a unit";
    DropInGet(DropInRef) -> DropIn = "service.dropin.get", Query, ServiceRead, idempotent: true, long: false,
        Get "/api/v1/service/units/{unit}/dropins/{name}", cli: "service dropin get",
        about: "A drop-in OSAPI manages for a unit, and its text";
    DropInPut(DropInPut) -> DropInChange = "service.dropin.put", Modify, ServiceWrite, idempotent: true, long: false,
        Put "/api/v1/service/units/{unit}/dropins/{name}", cli: "service dropin put",
        about: "Write a drop-in, reload systemd, and put the old one back if systemd does not take it";
    DropInDelete(DropInDelete) -> DropInChange = "service.dropin.delete", Modify, ServiceWrite, idempotent: true, long: false,
        Delete "/api/v1/service/units/{unit}/dropins/{name}", cli: "service dropin delete",
        about: "Remove a drop-in and reload systemd";
    ClockGet -> ClockInfo = "time.clock.get", Query, TimeRead, idempotent: true, long: false,
        Get "/api/v1/time/clock", cli: "time get",
        about: "The host's time, time zone, RTC mode, whether NTP is on and in sync, and the NTP server";
    TimezoneSet(TimezoneSet) -> ClockChange = "time.zone.set", Modify, TimeWrite, idempotent: true, long: false,
        Put "/api/v1/time/zone", cli: "time set-timezone",
        about: "Set the time zone (one of the host's tz database)";
    NtpSet(NtpSet) -> ClockChange = "time.ntp.set", Modify, TimeWrite, idempotent: true, long: false,
        Put "/api/v1/time/ntp", cli: "time set-ntp",
        about: "Turn network time synchronisation on or off";
    NtpServersSet(NtpServersSet) -> ClockChange = "time.ntp_servers.set", Modify, TimeWrite, idempotent: true, long: false,
        Put "/api/v1/time/ntp/servers", cli: "time ntp-servers",
        about: "Set systemd-timesyncd's NTP servers (a drop-in); none puts back the host's own";
    LogGet(LogQuery) -> LogEntries = "log.entries.get", Query, LogRead, idempotent: true, long: false,
        Get "/api/v1/log/entries", cli: "log",
        about: "Journal entries, newest first: by unit, priority, time, boot, identifier and text";
    PowerStatusGet -> PowerStatus = "power.status.get", Query, PowerRead, idempotent: true, long: false,
        Get "/api/v1/power", cli: "power status",
        about: "This boot's id, and the reboot or poweroff scheduled, if any";
    PowerReboot(PowerSchedule) -> PowerChange = "power.reboot", Modify, PowerWrite, idempotent: false, long: true,
        Post "/api/v1/power/reboot", cli: "power reboot",
        about: "Schedule a reboot; the job ends when the host is back in a new boot";
    PowerPoweroff(PowerSchedule) -> PowerChange = "power.poweroff", Modify, PowerWrite, idempotent: false, long: false,
        Post "/api/v1/power/poweroff", cli: "power poweroff",
        about: "Schedule a poweroff";
    PowerCancel(PowerCancel) -> PowerChange = "power.cancel", Modify, PowerWrite, idempotent: true, long: false,
        Post "/api/v1/power/cancel", cli: "power cancel",
        about: "Cancel the scheduled reboot or poweroff";
    SysctlList(SysctlList) -> Sysctls = "sysctl.key.list", Query, SysctlRead, idempotent: true, long: false,
        Get "/api/v1/sysctl", cli: "sysctl list",
        about: "Kernel parameters and their values, under a prefix";
    SysctlGet(SysctlKey) -> SysctlValue = "sysctl.key.get", Query, SysctlRead, idempotent: true, long: false,
        Get "/api/v1/sysctl/{key}", cli: "sysctl get",
        about: "One kernel parameter: its running value and the value OSAPI persisted";
    SysctlSet(SysctlSet) -> SysctlChange = "sysctl.key.set", Modify, SysctlWrite, idempotent: true, long: true,
        Put "/api/v1/sysctl/{key}", cli: "sysctl set",
        about: "Set a kernel parameter now and at boot (a sysctl.d drop-in, applied by systemd-sysctl)";
    SysctlDelete(SysctlKey) -> SysctlChange = "sysctl.key.delete", Modify, SysctlWrite, idempotent: true, long: false,
        Delete "/api/v1/sysctl/{key}", cli: "sysctl delete",
        about: "Remove OSAPI's drop-in for a kernel parameter (the running value stays)";
    ProcessList(ProcessList) -> Processes = "process.list", Query, ProcessRead, idempotent: true, long: false,
        Get "/api/v1/processes", cli: "process list",
        about: "Processes: pid, user, command, state, CPU, memory, start and unit";
    ProcessGet(ProcessRef) -> ProcessInfo = "process.get", Query, ProcessRead, idempotent: true, long: false,
        Get "/api/v1/processes/{pid}", cli: "process get",
        about: "One process";
    ProcessSignal(ProcessSignal) -> ProcessSignalled = "process.signal", Modify, ProcessWrite, idempotent: false, long: false,
        Post "/api/v1/processes/{pid}/signal", cli: "process signal",
        about: "Send a process a signal (TERM by default); PID 1 and the agent need force";
    ClockSet(ClockSet) -> ClockChange = "time.clock.set", Modify, TimeWrite, idempotent: false, long: false,
        Put "/api/v1/time/clock", cli: "time set",
        about: "Set the time (only with NTP off)";
    CaList(CaList) -> CaCertificates = "cert.ca.list", Query, CertRead, idempotent: true, long: false,
        Get "/api/v1/cert/ca", cli: "cert list",
        about: "The certificate authorities the host trusts: subject, validity, SHA-256, and OSAPI's name for those it added";
    CaAdd(CaAdd) -> CaChange = "cert.ca.add", Modify, CertWrite, idempotent: true, long: true,
        Post "/api/v1/cert/ca", cli: "cert add",
        about: "Trust a CA certificate: written to the local CA directory, the bundle rebuilt and checked";
    CaRemove(CaRef) -> CaChange = "cert.ca.remove", Modify, CertWrite, idempotent: true, long: true,
        Delete "/api/v1/cert/ca/{name}", cli: "cert remove",
        about: "Stop trusting a CA OSAPI added; the bundle rebuilt and checked";
    UserList(UserList) -> Users = "user.account.list", Query, UserRead, idempotent: true, long: false,
        Get "/api/v1/users", cli: "user list",
        about: "User accounts (through NSS): ids, groups, home, shell, lock and password state";
    UserGet(UserName) -> UserInfo = "user.account.get", Query, UserRead, idempotent: true, long: false,
        Get "/api/v1/users/{name}", cli: "user get",
        about: "One user account";
    UserAdd(UserAccount) -> UserChange = "user.account.add", Modify, UserWrite, idempotent: true, long: false,
        Post "/api/v1/users", cli: "user add",
        about: "Create a user (useradd; a home for non-system accounts); an existing one gets the settings given";
    UserModify(UserAccount) -> UserChange = "user.account.modify", Modify, UserWrite, idempotent: true, long: false,
        Put "/api/v1/users/{name}", cli: "user modify",
        about: "Change a user's full name, shell or supplementary groups (usermod)",
        check: UserAccount::validate_modify;
    UserLock(UserRef) -> UserChange = "user.account.lock", Modify, UserWrite, idempotent: true, long: false,
        Post "/api/v1/users/{name}/lock", cli: "user lock",
        about: "Lock a user's password (usermod --lock); SSH keys still work";
    UserUnlock(UserRef) -> UserChange = "user.account.unlock", Modify, UserWrite, idempotent: true, long: false,
        Post "/api/v1/users/{name}/unlock", cli: "user unlock",
        about: "Unlock a user's password";
    UserDelete(UserDelete) -> UserChange = "user.account.delete", Modify, UserWrite, idempotent: true, long: false,
        Delete "/api/v1/users/{name}", cli: "user delete",
        about: "Delete a user (userdel); system accounts need force";
    UserPasswordSet(UserPassword) -> UserChange = "user.password.set", Modify, UserWrite, idempotent: true, long: false,
        Put "/api/v1/users/{name}/password", cli: "user passwd",
        about: "Set a user's password from a crypt(3) hash, or from the password hashed by the API (chpasswd -e)";
    UserKeyList(UserName) -> SshKeys = "user.key.list", Query, UserRead, idempotent: true, long: false,
        Get "/api/v1/users/{name}/keys", cli: "user key list",
        about: "A user's SSH authorized keys, with their fingerprints";
    UserKeyAdd(UserKey) -> SshKeyChange = "user.key.add", Modify, UserWrite, idempotent: true, long: false,
        Post "/api/v1/users/{name}/keys", cli: "user key add",
        about: "Add an SSH public key to a user's authorized_keys (written whole, the user's, 0600)",
        check: UserKey::validate_add;
    UserKeyRemove(UserKey) -> SshKeyChange = "user.key.remove", Modify, UserWrite, idempotent: true, long: false,
        Post "/api/v1/users/{name}/keys/remove", cli: "user key remove",
        about: "Remove an SSH key, by its line or its SHA256 fingerprint";
    GroupList -> Groups = "user.group.list", Query, UserRead, idempotent: true, long: false,
        Get "/api/v1/groups", cli: "group list",
        about: "Groups (through NSS) and their members";
    GroupGet(GroupName) -> GroupInfo = "user.group.get", Query, UserRead, idempotent: true, long: false,
        Get "/api/v1/groups/{name}", cli: "group get",
        about: "One group";
    GroupAdd(GroupAdd) -> GroupChange = "user.group.add", Modify, UserWrite, idempotent: true, long: false,
        Post "/api/v1/groups", cli: "group add",
        about: "Create a group (groupadd)";
    FileDeploy(FileDeploy) -> FileDeployed = "file.deploy", Modify, FileWrite, idempotent: true, long: false,
        Post "/api/v1/files/{name}/deploy", cli: "file deploy",
        about: "Write a stored file to a path on the hosts (atomic; mode, owner; optionally a template over host facts)";
    FileStatus(FileName) -> FileStatuses = "file.status", Query, FileRead, idempotent: true, long: false,
        Get "/api/v1/files/{name}/status", cli: "file status",
        about: "Where a stored file was deployed, and whether each copy is in-sync, drifted (with a diff) or missing";
    FileUndeploy(FileUndeploy) -> FileUndeployed = "file.undeploy", Modify, FileWrite, idempotent: true, long: false,
        Post "/api/v1/files/{name}/undeploy", cli: "file undeploy",
        about: "Remove a stored file's deployed copies from the hosts";
    GroupDelete(GroupRef) -> GroupChange = "user.group.delete", Modify, UserWrite, idempotent: true, long: false,
        Delete "/api/v1/groups/{name}", cli: "group delete",
        about: "Delete a group (groupdel); system groups are refused";
    PackageList -> Packages = "package.list", Query, PackageRead, idempotent: true, long: false,
        Get "/api/v1/packages", cli: "package list",
        about: "Installed packages (through PackageKit): name, version, architecture, repository";
    PackageGet(PackageName) -> PackageInfo = "package.get", Query, PackageRead, idempotent: true, long: false,
        Get "/api/v1/packages/{name}", cli: "package get",
        about: "One package: installed and newest available version, description, size";
    PackageSearch(PackageSearch) -> Packages = "package.search", Query, PackageRead, idempotent: true, long: false,
        Get "/api/v1/package/search", cli: "package search",
        about: "Packages whose names contain a text, installed or available";
    PackageUpdates -> PendingUpdates = "package.updates", Query, PackageRead, idempotent: true, long: false,
        Get "/api/v1/package/updates", cli: "package updates",
        about: "Pending updates, security updates flagged, and whether the host waits for a reboot";
    PackageInstall(PackageNames) -> PackageChange = "package.install", Modify, PackageWrite, idempotent: true, long: true,
        Post "/api/v1/package/install", cli: "package install",
        about: "Install packages from trusted repositories (planned, applied, then proved installed)";
    PackageRemove(PackageNames) -> PackageChange = "package.remove", Modify, PackageWrite, idempotent: true, long: true,
        Post "/api/v1/package/remove", cli: "package remove",
        about: "Remove packages; refused when others that need them would go too",
        check: PackageNames::validate_remove;
    PackageUpdate(PackageUpdate) -> PackageChange = "package.update", Modify, PackageWrite, idempotent: true, long: true,
        Post "/api/v1/package/update", cli: "package update",
        about: "Update the named packages, or all with pending updates";
    PackageRefresh(PackageRefresh) -> CacheRefresh = "package.refresh", Modify, PackageWrite, idempotent: true, long: true,
        Post "/api/v1/package/refresh", cli: "package refresh",
        about: "Refresh the package lists from the repositories";
}

impl Operation {
    pub fn type_name(&self) -> &'static str {
        self.spec().name
    }

    pub fn kind(&self) -> Kind {
        self.spec().kind
    }

    /// The permission a caller needs for this operation, on top of whatever
    /// the endpoint itself demands (for `POST /jobs`, `job:write`).
    pub fn permission(&self) -> Permission {
        self.spec().permission
    }

    /// Permissions this request needs besides [`Self::permission`]: a
    /// command run as another user than root needs `command:run-as`.
    pub fn extra_permissions(&self) -> Vec<Permission> {
        let runs_as = |user: &Option<String>, group: &Option<String>| {
            user.as_deref().is_some_and(|u| u != "root")
                || group.as_deref().is_some_and(|g| g != "root")
        };
        match self {
            Operation::CommandExec(c) if runs_as(&c.user, &c.group) => {
                vec![Permission::CommandRunAs]
            }
            Operation::CommandShell(c) if runs_as(&c.user, &c.group) => {
                vec![Permission::CommandRunAs]
            }
            _ => Vec::new(),
        }
    }

    /// Whether this runs a command (`command.exec`/`command.shell`): the
    /// jobs with live output, a runner of their own, and a cancel.
    pub fn is_command(&self) -> bool {
        matches!(self, Operation::CommandExec(_) | Operation::CommandShell(_))
    }

    /// Whether this needs root on the host itself, not only a system
    /// service's consent: accounts (the shadow tools, `/etc/shadow`, SSH
    /// keys in homes), deployed files, trusted CAs, `/proc/sys` and
    /// `sysctl.d`, networkd and resolved configuration files, unit drop-ins,
    /// and signals to others' processes. An agent that is not root runs
    /// these in a root unit of their own (`agent::privileged`); the rest it
    /// asks systemd's services for, which polkit allows it.
    pub fn needs_root(&self) -> bool {
        use Operation::*;
        matches!(
            self,
            DnsSet(_)
                | InterfaceSet(_)
                | NtpServersSet(_)
                | DropInPut(_)
                | DropInDelete(_)
                | ProcessSignal(_)
                | CaAdd(_)
                | CaRemove(_)
                | SysctlList(_)
                | SysctlGet(_)
                | SysctlSet(_)
                | SysctlDelete(_)
                | FileDeploy(_)
                | FileStatus(_)
                | FileUndeploy(_)
                | UserList(_)
                | UserGet(_)
                | UserAdd(_)
                | UserModify(_)
                | UserLock(_)
                | UserUnlock(_)
                | UserDelete(_)
                | UserPasswordSet(_)
                | UserKeyList(_)
                | UserKeyAdd(_)
                | UserKeyRemove(_)
                | GroupAdd(_)
                | GroupDelete(_)
        )
    }

    /// Whether running this operation twice on a host is harmless (SPEC §4).
    pub fn is_idempotent(&self) -> bool {
        self.spec().idempotent
    }

    /// Whether the operation may run for long (commands, pings).
    pub fn runs_long(&self) -> bool {
        // A log read that waits for entries holds its slot as long as a ping.
        self.spec().long || matches!(self, Operation::LogGet(q) if q.wait.is_some())
    }
}

/// An operation without input takes `null` or `{}`.
fn no_input(type_name: &str, data: &serde_json::Value) -> Result<(), InvalidInput> {
    match data {
        serde_json::Value::Null => Ok(()),
        serde_json::Value::Object(m) if m.is_empty() => Ok(()),
        _ => Err(InvalidInput::new(
            "operation.data",
            format!("{type_name} takes no input"),
        )),
    }
}

/// The wire form of an operation before it is checked: a type name and its data.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationRequest {
    /// One of the operation types, e.g. `node.hostname.get`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The operation's input; omitted or `null` for operations without input.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl TryFrom<OperationRequest> for Operation {
    type Error = InvalidInput;
    fn try_from(req: OperationRequest) -> Result<Self, Self::Error> {
        Operation::parse(&req.type_name, req.data)
    }
}

impl Operation {
    /// Build and validate an operation from its type name and JSON data. Errors
    /// name the field as `operation.type` or `operation.data.<path>`.
    pub fn parse(type_name: &str, data: serde_json::Value) -> Result<Operation, InvalidInput> {
        let mut op = Operation::from_data(type_name, data)?;
        op.validate()?;
        op.seal()?;
        Ok(op)
    }

    /// Whether how long the operation runs is up to the agent: a command that
    /// gives no timeout gets the agent's configured default.
    pub fn runs_for_agent_default(&self) -> bool {
        match self {
            Operation::CommandExec(c) => c.timeout.is_none(),
            Operation::CommandShell(c) => c.timeout.is_none(),
            _ => false,
        }
    }

    /// The shortest job deadline that lets the operation finish and answer on
    /// agents whose command default is `command_default`.
    pub fn min_deadline(&self, command_default: Duration) -> Duration {
        self.expected_runtime(command_default) + ANSWER_GRACE
    }

    /// The longest time the operation may legitimately run on an agent whose
    /// command default is `command_default`.
    fn expected_runtime(&self, command_default: Duration) -> Duration {
        match self {
            Operation::CommandExec(c) => c.timeout.unwrap_or(command_default),
            Operation::CommandShell(c) => c.timeout.unwrap_or(command_default),
            Operation::Ping(p) => {
                p.timeout
                    .unwrap_or(DEFAULT_PING_TIMEOUT)
                    .saturating_mul(p.count)
                    + Duration::from_secs(p.count.into())
            }
            Operation::LogGet(q) => Duration::from_secs(q.wait.unwrap_or(0).into()),
            // A reboot's job ends when the host is back.
            Operation::PowerReboot(p) if !p.dry_run => {
                p.delay().unwrap_or_default() + crate::provider::logind::MIN_DELAY + REBOOT_RETURN
            }
            Operation::SysctlSet(_) => UNIT_JOB_WAIT,
            // Each PackageKit query, plan and proof may wait QUERY_WAIT
            // (queued behind another transaction); the change itself longer.
            Operation::PackageList | Operation::PackageSearch(_) => QUERY_WAIT,
            Operation::PackageGet(_) | Operation::PackageUpdates => QUERY_WAIT * 2,
            Operation::PackageInstall(PackageNames { dry_run, .. })
            | Operation::PackageRemove(PackageNames { dry_run, .. })
            | Operation::PackageUpdate(PackageUpdate { dry_run, .. }) => match dry_run {
                true => QUERY_WAIT * 4,
                false => CHANGE_WAIT + QUERY_WAIT * 5,
            },
            Operation::PackageRefresh(r) => match r.dry_run {
                true => QUERY_WAIT * 2,
                false => REFRESH_WAIT + QUERY_WAIT * 4,
            },
            // Applying, the link settling, then the confirmation.
            Operation::InterfaceSet(s) if !s.dry_run => {
                s.confirm_within() + crate::provider::interfaces::SETTLE + Duration::from_secs(10)
            }
            _ => match self.unit_change() {
                Some((action, c))
                    if action.runs_job() || (c.now && action.then_now().is_some()) =>
                {
                    UNIT_JOB_WAIT
                }
                _ => Duration::ZERO,
            },
        }
    }

    /// Check the input; called when the job is created and again by the agent.
    /// Fields are named from the request (`operation.data.hostname`).
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.validate_input()
            .and_then(|()| self.guard_own_units())
            .map_err(|e| InvalidInput::new(format!("operation.data.{}", e.field), e.reason))
    }

    /// Unit changes that would cut the host off from its management (stopping
    /// OSAPI, the bus, the journal) or are more than a service operation
    /// (starting `reboot.target`, `rescue.target`, `debug-shell.service`) are
    /// refused unless the request says `force`. A dry run changes nothing and
    /// is let through.
    fn guard_own_units(&self) -> Result<(), InvalidInput> {
        match self.unit_change() {
            Some((action, c)) if c.now && action.then_now().is_none() => Err(InvalidInput::new(
                "now",
                "only enable, disable and mask take now",
            )),
            Some((action, c)) => {
                let then = action.then_now().filter(|_| c.now);
                c.guard(
                    action.stops(),
                    action.starts() || then.is_some_and(UnitAction::starts),
                )
            }
            None => Ok(()),
        }
    }

    /// The unit change this operation is, if it is one.
    pub fn unit_change(&self) -> Option<(UnitAction, &ServiceChange)> {
        let (action, change) = match self {
            Operation::ServiceStart(c) => (UnitAction::Start, c),
            Operation::ServiceStop(c) => (UnitAction::Stop, c),
            Operation::ServiceRestart(c) => (UnitAction::Restart, c),
            Operation::ServiceTryRestart(c) => (UnitAction::TryRestart, c),
            Operation::ServiceReload(c) => (UnitAction::Reload, c),
            Operation::ServiceEnable(c) => (UnitAction::Enable, c),
            Operation::ServiceDisable(c) => (UnitAction::Disable, c),
            Operation::ServiceMask(c) => (UnitAction::Mask, c),
            Operation::ServiceUnmask(c) => (UnitAction::Unmask, c),
            _ => return None,
        };
        Some((action, change))
    }

    /// Turns secrets given in clear into what the agent needs (a password
    /// into its hash), so that the job, the bus and the agent never hold
    /// them. Called by [`Operation::parse`], and by `osapictl` before a
    /// request leaves it.
    pub fn seal(&mut self) -> Result<(), InvalidInput> {
        match self {
            Operation::UserPasswordSet(p) => p
                .seal()
                .map_err(|e| InvalidInput::new(format!("operation.data.{}", e.field), e.reason)),
            _ => Ok(()),
        }
    }

    /// The fields of its data that a job's detail never shows: secrets (a
    /// command's environment values, a password's hash). An object field
    /// keeps its keys, a text field is hidden whole.
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            Operation::CommandExec(_) | Operation::CommandShell(_) => &["env"],
            Operation::UserPasswordSet(_) => &["hash", "password"],
            _ => &[],
        }
    }

    /// The request form of this operation (type name and data).
    pub fn to_request(&self) -> OperationRequest {
        let value = serde_json::to_value(self).unwrap_or_default();
        OperationRequest {
            type_name: self.type_name().to_owned(),
            data: value.get("data").cloned().unwrap_or_default(),
        }
    }
}

fn typed_data<T: DeserializeOwned>(data: serde_json::Value) -> Result<T, InvalidInput> {
    let data = if data.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        data
    };
    serde_path_to_error::deserialize(data).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            "operation.data".to_owned()
        } else {
            format!("operation.data.{path}")
        };
        InvalidInput::new(field, e.into_inner().to_string())
    })
}

/// A name that is also a file name (a CA's, a stored file's): 1 to `max`
/// letters, digits, dots, hyphens or underscores, starting with a letter or
/// digit (so never `.`, `..` or hidden).
pub(super) fn check_plain_name(field: &str, name: &str, max: usize) -> Result<(), InvalidInput> {
    let ok = (1..=max).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(
            field,
            format!(
                "1-{max} letters, digits, dots, hyphens or underscores, starting with a letter or digit"
            ),
        ))
    }
}

/// A Linux interface name: 1–15 bytes, no `/`, whitespace or `:`.
pub(super) fn validate_interface(name: &str, field: &str) -> Result<(), InvalidInput> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(
            field,
            "not a valid interface name (1-15 characters, no '/', ':' or whitespace)",
        ))
    }
}

fn validate_command(command: &str, field: &str) -> Result<(), InvalidInput> {
    if command.trim().is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    if command.contains('\0') {
        return Err(InvalidInput::new(field, "must not contain NUL"));
    }
    Ok(())
}

fn validate_timeout(timeout: Option<Duration>, field: &str) -> Result<(), InvalidInput> {
    match timeout {
        Some(t) if t.is_zero() || t > MAX_REQUESTED_COMMAND_TIMEOUT => Err(InvalidInput::new(
            field,
            format!(
                "must be between 1s and {}s",
                MAX_REQUESTED_COMMAND_TIMEOUT.as_secs()
            ),
        )),
        _ => Ok(()),
    }
}

fn validate_cwd(cwd: Option<&str>, field: &str) -> Result<(), InvalidInput> {
    match cwd {
        Some(c) if !c.starts_with('/') || c.contains('\0') => {
            Err(InvalidInput::new(field, "must be an absolute path"))
        }
        _ => Ok(()),
    }
}

/// Optional durations as human strings (`"1s"`, `"500ms"`) or whole seconds.
pub(crate) mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Seconds(s)) => Ok(Some(Duration::from_secs(s))),
            Some(Raw::Text(t)) => humantime::parse_duration(&t)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {t:?}: {e}"))),
        }
    }
}

/// One valid operation per row of the table, in order, for tests that must
/// cover every operation (a new row without an example fails them).
#[cfg(test)]
pub(crate) fn examples() -> Vec<Operation> {
    use serde_json::json;
    [
        ("node.hostname.get", json!(null)),
        (
            "node.hostname.set",
            json!({"hostname": "web-01", "pretty": "Web 1"}),
        ),
        ("node.status.get", json!({})),
        ("node.uptime.get", json!(null)),
        ("node.os.get", json!(null)),
        ("node.disk.get", json!(null)),
        ("node.memory.get", json!(null)),
        ("node.load.get", json!(null)),
        ("network.dns.get", json!({"interface": "eth0"})),
        (
            "network.dns.set",
            json!({"interface": "eth0", "servers": ["1.1.1.1", "2606:4700::1111"], "search_domains": ["example.com"]}),
        ),
        ("network.interface.list", json!(null)),
        ("network.interface.get", json!({"interface": "eth0"})),
        (
            "network.interface.set",
            json!({"interface": "eth0", "addresses": ["10.0.0.2/24"], "routes": [{"destination": "0.0.0.0/0", "gateway": "10.0.0.1"}], "mtu": 1400, "confirm_within": "30s"}),
        ),
        (
            "network.ping.do",
            json!({"address": "127.0.0.1", "count": 3, "timeout": "1s"}),
        ),
        (
            "command.exec.execute",
            json!({"command": "/bin/echo", "args": ["a", "b"], "env": {"A": "1"}}),
        ),
        (
            "command.shell.execute",
            json!({"command": "echo hi | tr a-z A-Z", "timeout": 5}),
        ),
        ("service.unit.list", json!({"pattern": "ssh*", "state": "active"})),
        ("service.unit.get", json!({"unit": "ssh.service"})),
        ("service.unit.start", json!({"unit": "ssh.service"})),
        ("service.unit.stop", json!({"unit": "ssh.service", "dry_run": true})),
        ("service.unit.restart", json!({"unit": "osapi-agent.service", "force": true})),
        ("service.unit.try-restart", json!({"unit": "ssh.service"})),
        ("service.unit.reload", json!({"unit": "ssh.service"})),
        ("service.unit.enable", json!({"unit": "ssh.service", "now": true})),
        ("service.unit.disable", json!({"unit": "ssh.service"})),
        ("service.unit.mask", json!({"unit": "ssh.service"})),
        ("service.unit.unmask", json!({"unit": "ssh.service"})),
        ("service.dropin.get", json!({"unit": "ssh.service", "name": "limits"})),
        (
            "service.dropin.put",
            json!({"unit": "ssh.service", "name": "limits", "content": "[Service]\nLimitNOFILE=4096\n"}),
        ),
        ("service.dropin.delete", json!({"unit": "ssh.service", "name": "limits", "dry_run": true})),
        ("time.clock.get", json!(null)),
        ("time.zone.set", json!({"timezone": "Europe/Berlin", "dry_run": true})),
        ("time.ntp.set", json!({"enabled": true})),
        ("time.ntp_servers.set", json!({"servers": ["192.0.2.1", "ntp.example.org"]})),
        ("log.entries.get", json!({"unit": "ssh.service", "priority": "warning", "since": "1h", "limit": 20})),
        ("power.status.get", json!(null)),
        ("power.reboot", json!({"in": "1m", "message": "kernel update"})),
        ("power.poweroff", json!({"dry_run": true})),
        ("power.cancel", json!({})),
        ("sysctl.key.list", json!({"prefix": "net.ipv4"})),
        ("sysctl.key.get", json!({"key": "net.ipv4.ip_forward"})),
        ("sysctl.key.set", json!({"key": "net.ipv4.ip_forward", "value": "1"})),
        ("sysctl.key.delete", json!({"key": "net.ipv4.ip_forward", "dry_run": true})),
        ("process.list", json!({"user": "root"})),
        ("process.get", json!({"pid": 1})),
        ("process.signal", json!({"pid": 4242, "signal": "HUP"})),
        ("time.clock.set", json!({"time": "2026-12-07T10:00:00Z"})),
        ("cert.ca.list", json!({"local": true})),
        (
            "cert.ca.add",
            json!({"pem": crate::provider::trust::tests::TEST_CA, "name": "corp-root"}),
        ),
        ("cert.ca.remove", json!({"name": "corp-root", "dry_run": true})),
        ("user.account.list", json!({"system": true})),
        ("user.account.get", json!({"name": "alice"})),
        ("user.account.add", json!({"name": "alice", "comment": "Alice", "shell": "/bin/bash", "groups": ["sudo"]})),
        ("user.account.modify", json!({"name": "alice", "shell": "/bin/zsh"})),
        ("user.account.lock", json!({"name": "alice"})),
        ("user.account.unlock", json!({"name": "alice", "dry_run": true})),
        ("user.account.delete", json!({"name": "alice", "remove_home": true})),
        ("user.password.set", json!({"name": "alice", "hash": "$6$rounds=5000$salt$abcdefghijklmnopqrstuvwxyz"})),
        ("user.key.list", json!({"name": "alice"})),
        ("user.key.add", json!({"name": "alice", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINQ1+mO8Y+zkDoDxC+UuDwcF6gvIM1zIojqqFdgnaSV7 alice@laptop"})),
        ("user.key.remove", json!({"name": "alice", "key": "SHA256:v5G1wTUufHsPCX/e1XXyV3UQ1y0fl2jNJEr6Vq/4GtA"})),
        ("user.group.list", json!(null)),
        ("user.group.get", json!({"name": "sudo"})),
        ("user.group.add", json!({"name": "deploy", "gid": 1500})),
        (
            "file.deploy",
            json!({"name": "motd", "path": "/etc/motd", "mode": "0644", "template": true}),
        ),
        ("file.status", json!({"name": "motd"})),
        ("file.undeploy", json!({"name": "motd", "path": "/etc/motd"})),
        ("user.group.delete", json!({"name": "deploy"})),
        ("package.list", json!(null)),
        ("package.get", json!({"name": "openssh-server"})),
        ("package.search", json!({"query": "nginx"})),
        ("package.updates", json!(null)),
        ("package.install", json!({"names": ["nginx", "certbot"], "dry_run": true})),
        ("package.remove", json!({"names": ["telnet"]})),
        ("package.update", json!({"names": ["openssl"]})),
        ("package.refresh", json!({"force": true})),
    ]
    .into_iter()
    .map(|(t, data)| Operation::parse(t, data).unwrap_or_else(|e| panic!("{t}: {e}")))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operation_has_an_example_that_round_trips() {
        let examples = examples();
        let names: Vec<&str> = examples.iter().map(Operation::type_name).collect();
        assert_eq!(names, OPERATION_TYPES, "one example per row, in order");
        for op in examples {
            let text = serde_json::to_string(&op).unwrap();
            let back: Operation = serde_json::from_str(&text).unwrap();
            assert_eq!(back, op, "{text}");
            assert!(std::ptr::eq(
                op.spec(),
                OperationSpec::find(op.type_name()).unwrap()
            ));
        }
    }

    #[test]
    fn now_belongs_to_changes_of_the_unit_file() {
        let e = Operation::parse(
            "service.unit.start",
            json!({"unit": "a.service", "now": true}),
        )
        .unwrap_err();
        assert_eq!(e.field, "operation.data.now");
        for op in [
            "service.unit.enable",
            "service.unit.disable",
            "service.unit.mask",
        ] {
            Operation::parse(op, json!({"unit": "a.service", "now": true})).unwrap();
        }
        // Enabling with now starts the unit: the start guard applies.
        let e = Operation::parse(
            "service.unit.enable",
            json!({"unit": "rescue.target", "now": true}),
        )
        .unwrap_err();
        assert_eq!(e.field, "operation.data.force");
        Operation::parse("service.unit.enable", json!({"unit": "rescue.target"})).unwrap();
    }

    #[test]
    fn unknown_type_names_the_field() {
        let e = Operation::parse("node.reboot", json!(null)).unwrap_err();
        assert_eq!(e.field, "operation.type");
    }

    #[test]
    fn wrong_types_and_unknown_fields_name_the_field() {
        let e = Operation::parse("network.ping.do", json!({"address": "x", "count": "three"}))
            .unwrap_err();
        assert_eq!(e.field, "operation.data.count");
        let e = Operation::parse("node.hostname.set", json!({"hostname": "a", "colour": 1}))
            .unwrap_err();
        assert_eq!(e.field, "operation.data.colour", "{e}");
        let e = Operation::parse("node.hostname.get", json!({"x": 1})).unwrap_err();
        assert_eq!(e.field, "operation.data");
    }

    #[test]
    fn validation_rejects_bad_values() {
        let bad = [
            (
                "node.hostname.set",
                json!({"hostname": "-bad"}),
                "operation.data.hostname",
            ),
            (
                "node.hostname.set",
                json!({"hostname": "a..b"}),
                "operation.data.hostname",
            ),
            (
                "network.dns.set",
                json!({"interface": "eth0", "servers": ["1.2.3"]}),
                "operation.data.servers[0]",
            ),
            (
                "network.dns.set",
                json!({"interface": "eth0", "search_domains": ["bad domain"]}),
                "operation.data.search_domains[0]",
            ),
            (
                "network.dns.get",
                json!({"interface": "a/b"}),
                "operation.data.interface",
            ),
            (
                "network.ping.do",
                json!({"address": "x", "count": 0}),
                "operation.data.count",
            ),
            (
                "network.ping.do",
                json!({"address": "x", "count": 101}),
                "operation.data.count",
            ),
            (
                "command.exec.execute",
                json!({"command": ""}),
                "operation.data.command",
            ),
            (
                "command.exec.execute",
                json!({"command": "x", "timeout": "301s"}),
                "operation.data.timeout",
            ),
            (
                "command.shell.execute",
                json!({"command": "x", "cwd": "relative"}),
                "operation.data.cwd",
            ),
        ];
        for (t, data, field) in bad {
            let e = Operation::parse(t, data.clone()).unwrap_err();
            assert_eq!(e.field, field, "{t} {data}: {e}");
        }
    }

    #[test]
    fn a_key_is_added_by_its_line_and_removed_by_line_or_fingerprint() {
        let fingerprint =
            json!({"name": "alice", "key": "SHA256:v5G1wTUufHsPCX/e1XXyV3UQ1y0fl2jNJEr6Vq/4GtA"});
        let e = Operation::parse("user.key.add", fingerprint.clone()).unwrap_err();
        assert_eq!(e.field, "operation.data.key");
        Operation::parse("user.key.remove", fingerprint).unwrap();
    }

    #[test]
    fn a_package_removal_never_names_osapi() {
        for own in ["osapi", "nats-server", "packagekit"] {
            let e =
                Operation::parse("package.remove", json!({"names": ["curl", own]})).unwrap_err();
            assert_eq!(e.field, "operation.data.names[1]", "{own}");
        }
    }

    #[test]
    fn kinds_permissions_and_idempotence() {
        let exec = Operation::parse("command.exec.execute", json!({"command": "true"})).unwrap();
        assert_eq!(exec.kind(), Kind::Modify);
        assert_eq!(exec.permission(), Permission::CommandExecute);
        assert!(!exec.is_idempotent());
        assert_eq!(Operation::HostnameGet.permission(), Permission::NodeRead);
        assert_eq!(Operation::HostnameGet.kind(), Kind::Query);
        assert!(Operation::HostnameGet.is_idempotent());
    }

    #[test]
    fn deadlines_allow_the_runtime_and_the_agent_default_only_without_a_timeout() {
        let minute = Duration::from_secs(60);
        let bare = Operation::parse("command.shell.execute", json!({"command": "true"})).unwrap();
        assert!(bare.runs_for_agent_default());
        assert_eq!(bare.min_deadline(minute), Duration::from_secs(65));
        let own = Operation::parse(
            "command.exec.execute",
            json!({"command": "true", "timeout": "2s"}),
        )
        .unwrap();
        assert!(!own.runs_for_agent_default());
        assert_eq!(own.min_deadline(minute), Duration::from_secs(7));
        let ping =
            Operation::parse("network.ping.do", json!({"address": "::1", "count": 3})).unwrap();
        assert!(!ping.runs_for_agent_default());
        // Three probes of 1 s each, a second apart, then the grace.
        assert_eq!(ping.min_deadline(minute), Duration::from_secs(11));
        assert_eq!(
            Operation::HostnameGet.min_deadline(minute),
            Duration::from_secs(5)
        );
    }
}
