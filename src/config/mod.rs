//! Configuration: `osapi.yaml` (or `.toml`), overlaid by `OSAPI_*` variables
//! (SPEC §3). The key reference is `docs/configuration.md`.
//!
//! Loading is a pipeline, each stage collecting problems rather than stopping:
//!
//! 1. the file is parsed into a generic tree that remembers lines (`tree.rs`);
//! 2. `OSAPI_*` variables are grafted on, resolved against the key schema that
//!    is traced from the raw structs themselves (`schema.rs`, `env.rs`);
//! 3. the tree is deserialized into the raw file structs (`raw.rs`, all
//!    `deny_unknown_fields`) by a deserializer that reports every unknown key
//!    and bad value with its line, not just the first (`de.rs`);
//! 4. raw → typed [`Config`] applies defaults and pairs secrets (`build.rs`);
//! 5. [`Config::validate`] checks meaning (ports, ranges, names, auth blocks).
//!
//! All problems come back together in [`ConfigErrors`], one per line, e.g.
//! `osapi.yaml:12: api.server.prot: unknown key (did you mean port?)`.
//! The environment is passed in explicitly ([`Config::load`]) so tests never
//! touch the process environment; [`Config::load_from_process_env`] is the
//! daemon's entry point. Secrets are not read at load time: see
//! [`SecretSource`] and [`ApiSecurity::signing_key`].

mod build;
mod de;
mod env;
mod error;
mod raw;
mod schema;
mod tree;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use env::NON_CONFIG_ENV_VARS;
pub use error::{ConfigErrors, ConfigProblem};
pub use types::*;
pub use validate::MAX_AGENT_COMMAND_TIMEOUT;

use tree::{KeyPath, Kind, Node, Origin};

/// The environment variable systemd sets for `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY_VAR: &str = "CREDENTIALS_DIRECTORY";

/// The default configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/osapi/osapi.yaml";

/// File syntax; chosen by extension (`.toml` is TOML, anything else YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    pub fn for_path(path: &Path) -> Format {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Yaml,
        }
    }
}

/// A configuration key and its environment variable, for docs and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Dotted key path, e.g. `api.server.port`.
    pub key: String,
    /// `OSAPI_API_SERVER_PORT`.
    pub env_var: String,
}

/// Every configuration key (leaves, lists and maps), in file order.
pub fn known_keys() -> Vec<KeyInfo> {
    schema::schema()
        .map(|s| {
            s.keys
                .iter()
                .map(|k| KeyInfo {
                    key: k.path.join("."),
                    env_var: k.env_var.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The process environment relevant to configuration: `OSAPI_*` variables and
/// `CREDENTIALS_DIRECTORY`. Non-UTF-8 values are converted lossily.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            (k.starts_with(schema::ENV_PREFIX) || k == CREDENTIALS_DIRECTORY_VAR)
                .then(|| (k, v.to_string_lossy().into_owned()))
        })
        .collect()
}

/// What to do after building the typed config.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// [`Config::validate`].
    Validate,
    /// [`Config::check_all`]: also read secrets.
    CheckAll,
}

impl Config {
    /// Loads `path` (which must exist), overlays `env`, validates. `env` is the
    /// environment to use (pass [`process_env()`] in a daemon).
    pub fn load(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        load_file(path, env, false, Depth::Validate)
    }

    /// Like [`Config::load`], but a missing file is fine: defaults plus `env`.
    pub fn load_optional(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        load_file(path, env, true, Depth::Validate)
    }

    /// [`Config::load`] with the process's `OSAPI_*` and `CREDENTIALS_DIRECTORY`.
    pub fn load_from_process_env(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load(path, &process_env())
    }

    /// For `osapi config check`: load, validate, and also resolve the signing
    /// key and every secret/TLS file; every problem is reported.
    pub fn check_file(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        load_file(path, env, false, Depth::CheckAll)
    }

    /// Parses YAML text (mainly for tests).
    pub fn from_str_yaml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        from_source(Some(text), Format::Yaml, None, env, Depth::Validate)
    }

    /// Parses TOML text with the same schema.
    pub fn from_str_toml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        from_source(Some(text), Format::Toml, None, env, Depth::Validate)
    }
}

fn load_file(
    path: &Path,
    env: &[(String, String)],
    optional: bool,
    depth: Depth,
) -> Result<Config, ConfigErrors> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let problem = ConfigProblem {
                file: Some(path.to_path_buf()),
                ..ConfigProblem::new("", format!("cannot read the configuration file: {e}"))
            };
            return Err(ConfigErrors(vec![problem]));
        }
    };
    from_source(
        text.as_deref(),
        Format::for_path(path),
        Some(path),
        env,
        depth,
    )
}

fn from_source(
    text: Option<&str>,
    format: Format,
    file: Option<&Path>,
    env: &[(String, String)],
    depth: Depth,
) -> Result<Config, ConfigErrors> {
    let file_buf: Option<PathBuf> = file.map(Path::to_path_buf);
    let parsed = match text {
        None => Ok(Node::empty_map()),
        Some(t) => match format {
            Format::Yaml => tree::parse_yaml(t, None),
            Format::Toml => tree::parse_toml(t),
        },
    };
    let mut tree = match parsed {
        Ok(tree) => tree,
        // Nothing else can be checked in a file that does not parse.
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigProblem {
                key: String::new(),
                file: file_buf,
                line: e.line,
                env_var: None,
                message: format!("syntax error: {}", e.message),
            }]));
        }
    };
    // An empty or comment-only YAML file is a null document: all defaults.
    if tree.kind == Kind::Null {
        tree = Node::empty_map();
    }

    let mut problems = env::apply(&mut tree, env);
    let (raw, located) = de::deserialize_all::<raw::RawConfig>(&mut tree);
    // A key that failed to parse was replaced by its default; checks on that
    // default would only add noise.
    let failed: Vec<String> = located
        .iter()
        .map(|l| l.path.to_string())
        .filter(|k| !k.is_empty())
        .collect();
    problems.extend(located.into_iter().map(|l| {
        let mut p = ConfigProblem::new(l.path.to_string(), l.message);
        place(&mut p, &l.origin);
        p
    }));

    let credentials = env
        .iter()
        .rev()
        .find(|(k, v)| k == CREDENTIALS_DIRECTORY_VAR && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v));
    let (config, built) = build::build(raw, credentials.as_deref());
    let semantic = match depth {
        Depth::Validate => config.validate(),
        Depth::CheckAll => config.check_all(),
    };
    for mut p in built.0.into_iter().chain(semantic) {
        if failed.iter().any(|f| is_under(&p.key, f)) {
            continue;
        }
        let origin = tree.origin_of(&KeyPath::parse(&p.key));
        place(&mut p, &origin);
        problems.push(p);
    }
    for p in &mut problems {
        if p.env_var.is_none() {
            p.file = file_buf.clone();
        }
    }
    // File problems in line order first; then the rest in discovery order.
    problems.sort_by_key(|p| (p.line.is_none(), p.line));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(problems))
    }
}

fn place(p: &mut ConfigProblem, origin: &Origin) {
    match origin {
        Origin::File(line) => p.line = Some(*line),
        Origin::Env(var) => p.env_var = Some(var.clone()),
        Origin::None => {}
    }
}

/// `key` is `prefix` or inside it (`a.b` is under `a`, `a.b[1]` under `a.b`).
fn is_under(key: &str, prefix: &str) -> bool {
    key == prefix
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}
