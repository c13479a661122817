//! The `OSAPI_*` environment overlay (SPEC §3): environment wins over the file.
//!
//! `api.server.port` is `OSAPI_API_SERVER_PORT`. Names are resolved against the
//! traced [`schema`](super::schema), never by splitting on `_`. Values of text
//! keys (strings, durations, paths, enums) are taken verbatim, so a password
//! like `*x: #y` survives; other values are read as YAML scalars or flow
//! collections: `[nats://a:4222, nats://b:4222]`, `{group: web.dev}`.

use super::error::ConfigProblem;
use super::schema::{ENV_PREFIX, KeyKind, schema};
use super::tree::{Kind, Node, Origin, parse_yaml};

/// `OSAPI_*` variables that are not configuration keys: the CLI's own settings
/// (`osapictl` reads `OSAPI_URL`/`OSAPI_TOKEN`/`OSAPI_TOKEN_FILE`, SPEC §9) and
/// `OSAPI_FILE`, the environment form of `osapi -f`.
pub const NON_CONFIG_ENV_VARS: &[&str] =
    &["OSAPI_URL", "OSAPI_TOKEN", "OSAPI_TOKEN_FILE", "OSAPI_FILE"];

/// Grafts every `OSAPI_*` variable of `env` onto `tree`, returning problems
/// (unknown names, unparseable values). Other variables are ignored.
pub(crate) fn apply(tree: &mut Node, env: &[(String, String)]) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let schema = match schema() {
        Ok(s) => s,
        Err(e) => {
            problems.push(ConfigProblem::new("", e));
            return problems;
        }
    };
    for (name, value) in env {
        if !name.starts_with(ENV_PREFIX) || NON_CONFIG_ENV_VARS.contains(&name.as_str()) {
            continue;
        }
        let problem = |key: &str, message: String| ConfigProblem {
            env_var: Some(name.clone()),
            ..ConfigProblem::new(key, message)
        };
        // An exact key first; then an entry of a free-form map
        // (`OSAPI_NODE_AGENT_LABELS_GROUP=web.dev` → labels.group).
        let (path, kind) = if let Some(&i) = schema.by_env.get(name) {
            (schema.keys[i].path.clone(), schema.keys[i].kind)
        } else if let Some((key, entry)) = schema
            .keys
            .iter()
            .filter(|k| k.kind == KeyKind::Map)
            .find_map(|k| {
                name.strip_prefix(&k.env_var)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .filter(|rest| !rest.is_empty())
                    .map(|rest| (k, rest.to_ascii_lowercase()))
            })
        {
            let mut path = key.path.clone();
            path.push(entry);
            (path, KeyKind::Scalar)
        } else if let Some(section) = schema.sections.get(name) {
            problems.push(problem(
                section,
                format!("{name} names the section {section}, not a key; set its keys one by one"),
            ));
            continue;
        } else {
            let near = super::de::suggest(name, schema.keys.iter().map(|k| k.env_var.as_str()));
            let message = match near {
                Some(s) => format!("unknown configuration variable (did you mean {s}?)"),
                None => "unknown configuration variable (see docs/configuration.md for the names)"
                    .to_owned(),
            };
            problems.push(problem("", message));
            continue;
        };
        let origin = Origin::Env(name.clone());
        let node = match kind {
            KeyKind::Text | KeyKind::Enum => Node::new(Kind::Str(value.clone()), origin),
            KeyKind::Scalar | KeyKind::List | KeyKind::Map => {
                match parse_yaml(value, Some(&origin)) {
                    Ok(node) => node,
                    Err(e) => {
                        problems.push(problem(
                            &path.join("."),
                            format!("cannot parse value: {}", e.message),
                        ));
                        continue;
                    }
                }
            }
        };
        tree.set(&path, node);
    }
    problems
}
