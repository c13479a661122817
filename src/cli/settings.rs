//! Where `osapictl` finds the API and its token (SPEC §9).
//!
//! Each setting independently: flag > environment (`OSAPI_URL`, `OSAPI_TOKEN`,
//! `OSAPI_TOKEN_FILE`, then the config keys' own `OSAPI_API_CLIENT_URL`,
//! `OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN[_FILE]`, `OSAPI_API_CLIENT_TLS_CA_FILE`),
//! then `api.client` of a config file, then the default. The config file
//! is `--config PATH` when given (only that file); otherwise
//! `$XDG_CONFIG_HOME/osapi/osapictl.yaml` (`~/.config/...`) and then
//! `/etc/osapi/osapi.yaml`, each key from the first file that has it. Default
//! files that are missing or unreadable (the system file is often readable only
//! by group `osapi`) are skipped.
//!
//! At one level, an inline token beats a token file. Files are read with a small
//! lenient struct that only knows `api.client`, so server-only sections the CLI
//! cannot use (say, a signing key file it may not read) never get in the way.
//! The token is never printed: [`Settings`]' `Debug` hides it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::CliError;

/// The URL used when nothing else names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// The system-wide config, shared with the daemons.
pub const SYSTEM_CONFIG: &str = crate::config::DEFAULT_CONFIG_PATH;

/// Settings as given on the command line.
#[derive(Clone, Default)]
pub struct SettingFlags {
    pub url: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

impl fmt::Debug for SettingFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingFlags")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("token_file", &self.token_file)
            .field("config", &self.config)
            .finish()
    }
}

/// Where a setting came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "{name}"),
            Source::Env(name) => write!(f, "${name}"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Default => write!(f, "the default"),
        }
    }
}

/// The resolved settings.
#[derive(Clone)]
pub struct Settings {
    /// Base URL without a trailing slash.
    pub url: String,
    pub url_source: Source,
    pub token: Option<String>,
    pub token_source: Option<Source>,
    /// The only CA trusted for https:// (`api.client.tls.ca_file`): pins the
    /// API's generated certificate. `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("url_source", &self.url_source)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("token_source", &self.token_source)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Resolve from the flags, this process's environment and the default files.
pub fn resolve(flags: &SettingFlags) -> Result<Settings, CliError> {
    // Read (never change) only the variables that matter here.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("OSAPI_") || k == "HOME" || k == "XDG_CONFIG_HOME")
        .collect();
    resolve_with(flags, &env, &default_config_paths(&env))
}

/// The default config files, in order: the user's, then the system's.
pub fn default_config_paths(env: &HashMap<String, String>) -> Vec<PathBuf> {
    let user_dir = env
        .get("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env.get("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(h).join(".config"))
        });
    user_dir
        .map(|d| d.join("osapi").join("osapictl.yaml"))
        .into_iter()
        .chain([PathBuf::from(SYSTEM_CONFIG)])
        .collect()
}

/// A token, inline or in a file, before the file is read.
enum TokenSpec {
    Inline(String),
    File(PathBuf),
}

/// Resolve with an explicit environment and list of default files (for tests).
pub fn resolve_with(
    flags: &SettingFlags,
    env: &HashMap<String, String>,
    defaults: &[PathBuf],
) -> Result<Settings, CliError> {
    let env_var = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();

    let mut url = flags
        .url
        .clone()
        .map(|u| (u, Source::Flag("--url")))
        .or_else(|| env_var("OSAPI_URL").map(|u| (u, Source::Env("OSAPI_URL"))))
        .or_else(|| {
            env_var("OSAPI_API_CLIENT_URL").map(|u| (u, Source::Env("OSAPI_API_CLIENT_URL")))
        });

    let mut token = match (&flags.token, &flags.token_file) {
        (Some(t), _) => Some((TokenSpec::Inline(t.clone()), Source::Flag("--token"))),
        (None, Some(p)) => Some((TokenSpec::File(p.clone()), Source::Flag("--token-file"))),
        (None, None) => None,
    };
    if token.is_none() {
        token = env_var("OSAPI_TOKEN")
            .map(|t| (TokenSpec::Inline(t), Source::Env("OSAPI_TOKEN")))
            .or_else(|| {
                env_var("OSAPI_TOKEN_FILE")
                    .map(|p| (TokenSpec::File(p.into()), Source::Env("OSAPI_TOKEN_FILE")))
            })
            .or_else(|| {
                const VAR: &str = "OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN";
                env_var(VAR).map(|t| (TokenSpec::Inline(t), Source::Env(VAR)))
            })
            .or_else(|| {
                const VAR: &str = "OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN_FILE";
                env_var(VAR).map(|p| (TokenSpec::File(p.into()), Source::Env(VAR)))
            });
    }

    // Files are read only when they could matter, except an explicit --config,
    // whose mistakes should always surface.
    let files: Vec<(PathBuf, bool)> = match &flags.config {
        Some(p) => vec![(p.clone(), true)],
        None if url.is_none() || token.is_none() => {
            defaults.iter().map(|p| (p.clone(), false)).collect()
        }
        None => Vec::new(),
    };
    let mut ca_file = env_var("OSAPI_API_CLIENT_TLS_CA_FILE").map(PathBuf::from);
    for (path, explicit) in files {
        let Some(client) = read_client_section(&path, explicit)? else {
            continue;
        };
        if ca_file.is_none() {
            ca_file = client
                .tls
                .as_ref()
                .and_then(|t| t.ca_file.clone())
                .filter(|p| !p.as_os_str().is_empty());
        }
        if url.is_none() {
            url = client
                .url
                .filter(|u| !u.trim().is_empty())
                .map(|u| (u, Source::File(path.clone())));
        }
        if token.is_none() {
            let sec = client.security.unwrap_or_default();
            token = sec
                .bearer_token
                .filter(|t| !t.trim().is_empty())
                .map(TokenSpec::Inline)
                .or_else(|| sec.bearer_token_file.map(TokenSpec::File))
                .map(|t| (t, Source::File(path.clone())));
        }
    }

    let (url, url_source) = url.unwrap_or_else(|| (DEFAULT_URL.to_owned(), Source::Default));
    let url = normalise_url(&url)?;
    let (token, token_source) = match token {
        None => (None, None),
        Some((TokenSpec::Inline(t), src)) => (Some(t.trim().to_owned()), Some(src)),
        Some((TokenSpec::File(p), src)) => (Some(read_token_file(&p)?), Some(src)),
    };
    Ok(Settings {
        url,
        url_source,
        token,
        token_source,
        ca_file,
    })
}

fn normalise_url(raw: &str) -> Result<String, CliError> {
    let raw = raw.trim();
    let bad = |reason: &str| CliError::InvalidUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("only http:// and https:// are supported"));
    }
    if parsed.host_str().is_none() {
        return Err(bad("no host"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

fn read_token_file(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::EmptyToken {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

/// Only the part of `osapi.yaml` the CLI reads; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
struct FileRoot {
    #[serde(default)]
    api: Option<FileApi>,
}

#[derive(Debug, Default, Deserialize)]
struct FileApi {
    #[serde(default)]
    client: Option<FileClient>,
}

/// `api.client` itself is strict, as in the daemons' schema: a misspelt key is
/// an error, not a silently ignored setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClient {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    security: Option<FileSecurity>,
    #[serde(default)]
    tls: Option<FileTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecurity {
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
}

/// `api.client` of one file. A default file that cannot be read is skipped
/// (`Ok(None)`); one that can be read but not parsed is an error either way.
fn read_client_section(path: &Path, explicit: bool) -> Result<Option<FileClient>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) if !explicit => return Ok(None),
        Err(source) => {
            return Err(CliError::ConfigRead {
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(parse_client_section(path, &text)?
        .api
        .and_then(|a| a.client))
}

fn parse_client_section(path: &Path, text: &str) -> Result<FileRoot, CliError> {
    if text.trim().is_empty() {
        return Ok(FileRoot::default());
    }
    let parse_error = |reason: String| CliError::ConfigParse {
        path: path.to_owned(),
        reason,
    };
    // SPEC §3: a path ending in .toml is TOML with the same schema.
    if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(text).map_err(|e| parse_error(e.to_string()))
    } else {
        serde_saphyr::from_str::<Option<FileRoot>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| parse_error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const SERVER_CONFIG: &str = "\
debug: false
api:
  server:
    port: 8080
    security:
      signing_key_file: /nonexistent/unreadable.key
      roles: {ops: [node:read]}
  client:
    url: http://file.example:9000/
    security:
      bearer_token: file-token
nats:
  server: {port: 4222}
";

    #[test]
    fn defaults_without_anything() {
        let s = resolve_with(&SettingFlags::default(), &env(&[]), &[]).unwrap();
        assert_eq!(s.url, DEFAULT_URL);
        assert_eq!(s.url_source, Source::Default);
        assert!(s.token.is_none());
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "osapi.yaml", SERVER_CONFIG);
        let defaults = [file.clone()];

        let s = resolve_with(&SettingFlags::default(), &env(&[]), &defaults).unwrap();
        assert_eq!(
            (s.url.as_str(), s.token.as_deref()),
            ("http://file.example:9000", Some("file-token"))
        );
        assert_eq!(s.token_source, Some(Source::File(file.clone())));

        let e = env(&[
            ("OSAPI_URL", "http://env.example:1"),
            ("OSAPI_TOKEN", "env-token"),
        ]);
        let s = resolve_with(&SettingFlags::default(), &e, &defaults).unwrap();
        assert_eq!(
            (s.url.as_str(), s.token.as_deref()),
            ("http://env.example:1", Some("env-token"))
        );

        let flags = SettingFlags {
            url: Some("https://flag.example".into()),
            token: Some("flag-token".into()),
            ..Default::default()
        };
        let s = resolve_with(&flags, &e, &defaults).unwrap();
        assert_eq!(
            (s.url.as_str(), s.token.as_deref()),
            ("https://flag.example", Some("flag-token"))
        );
        assert_eq!(s.url_source, Source::Flag("--url"));

        // Each setting on its own: a flag URL does not stop the token coming from the env.
        let flags = SettingFlags {
            url: Some("https://flag.example".into()),
            ..Default::default()
        };
        let s = resolve_with(&flags, &e, &defaults).unwrap();
        assert_eq!(s.token.as_deref(), Some("env-token"));
    }

    #[test]
    fn token_files_are_read_and_trimmed_and_levels_win_whole() {
        let dir = tempfile::tempdir().unwrap();
        let tok = write(dir.path(), "tok", "  from-file\n");
        let flags = SettingFlags {
            token_file: Some(tok.clone()),
            ..Default::default()
        };
        // A token file flag beats an inline token in the environment.
        let s = resolve_with(&flags, &env(&[("OSAPI_TOKEN", "env-token")]), &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("from-file"));
        // In the environment, OSAPI_TOKEN beats OSAPI_TOKEN_FILE.
        let e = env(&[
            ("OSAPI_TOKEN", "env-token"),
            ("OSAPI_TOKEN_FILE", tok.to_str().unwrap()),
        ]);
        let s = resolve_with(&SettingFlags::default(), &e, &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("env-token"));
        let e = env(&[("OSAPI_TOKEN_FILE", tok.to_str().unwrap())]);
        let s = resolve_with(&SettingFlags::default(), &e, &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("from-file"));
        // The config keys' own variables come after osapictl's short ones.
        let e = env(&[
            ("OSAPI_TOKEN_FILE", tok.to_str().unwrap()),
            ("OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN", "schema-token"),
        ]);
        let s = resolve_with(&SettingFlags::default(), &e, &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("from-file"));
        let e = env(&[
            ("OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN", "schema-token"),
            (
                "OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN_FILE",
                tok.to_str().unwrap(),
            ),
        ]);
        let s = resolve_with(&SettingFlags::default(), &e, &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("schema-token"));
        let e = env(&[(
            "OSAPI_API_CLIENT_SECURITY_BEARER_TOKEN_FILE",
            tok.to_str().unwrap(),
        )]);
        let s = resolve_with(&SettingFlags::default(), &e, &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("from-file"));
        let e = env(&[
            ("OSAPI_API_CLIENT_URL", "https://schema.example/"),
            ("OSAPI_TOKEN", "t"),
        ]);
        let s = resolve_with(&SettingFlags::default(), &e, &[]).unwrap();
        assert_eq!(s.url, "https://schema.example");
        let e = env(&[
            ("OSAPI_URL", "https://short.example"),
            ("OSAPI_API_CLIENT_URL", "https://schema.example"),
        ]);
        let s = resolve_with(&SettingFlags::default(), &e, &[]).unwrap();
        assert_eq!(s.url, "https://short.example");

        let empty = write(dir.path(), "empty", "\n");
        let flags = SettingFlags {
            token_file: Some(empty),
            ..Default::default()
        };
        assert!(matches!(
            resolve_with(&flags, &env(&[]), &[]),
            Err(CliError::EmptyToken { .. })
        ));
        let flags = SettingFlags {
            token_file: Some(dir.path().join("missing")),
            ..Default::default()
        };
        assert!(matches!(
            resolve_with(&flags, &env(&[]), &[]),
            Err(CliError::TokenFile { .. })
        ));
    }

    #[test]
    fn default_files_merge_per_key_and_missing_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let tok = write(dir.path(), "tok", "user-file-token");
        let user = write(
            dir.path(),
            "osapictl.yaml",
            &format!(
                "api:\n  client:\n    security:\n      bearer_token_file: {}\n",
                tok.display()
            ),
        );
        let system = write(dir.path(), "osapi.yaml", SERVER_CONFIG);
        let defaults = [dir.path().join("absent.yaml"), user, system.clone()];
        let s = resolve_with(&SettingFlags::default(), &env(&[]), &defaults).unwrap();
        assert_eq!(s.token.as_deref(), Some("user-file-token"));
        assert_eq!(s.url, "http://file.example:9000");
        assert_eq!(s.url_source, Source::File(system));
    }

    #[test]
    fn explicit_config_replaces_the_defaults_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let system = write(dir.path(), "osapi.yaml", SERVER_CONFIG);
        let mine = write(
            dir.path(),
            "mine.yaml",
            "api: {client: {url: 'http://mine:1'}}\n",
        );
        let flags = SettingFlags {
            config: Some(mine),
            ..Default::default()
        };
        let s = resolve_with(&flags, &env(&[]), &[system]).unwrap();
        assert_eq!(s.url, "http://mine:1");
        assert!(s.token.is_none());

        let flags = SettingFlags {
            config: Some(dir.path().join("nope.yaml")),
            ..Default::default()
        };
        let err = resolve_with(&flags, &env(&[]), &[]).unwrap_err();
        assert!(matches!(err, CliError::ConfigRead { .. }));
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn toml_and_odd_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = write(
            dir.path(),
            "c.toml",
            "[api.client]\nurl = \"http://toml:2\"\n[nats.server]\nport = 1\n",
        );
        let flags = SettingFlags {
            config: Some(t),
            ..Default::default()
        };
        assert_eq!(
            resolve_with(&flags, &env(&[]), &[]).unwrap().url,
            "http://toml:2"
        );

        let e = write(dir.path(), "empty.yaml", "");
        let flags = SettingFlags {
            config: Some(e),
            ..Default::default()
        };
        assert_eq!(
            resolve_with(&flags, &env(&[]), &[]).unwrap().url,
            DEFAULT_URL
        );

        let bad = write(dir.path(), "bad.yaml", "api: [unclosed\n");
        let flags = SettingFlags {
            config: Some(bad),
            ..Default::default()
        };
        assert!(matches!(
            resolve_with(&flags, &env(&[]), &[]),
            Err(CliError::ConfigParse { .. })
        ));

        // A misspelt api.client key is named, not ignored.
        let typo = write(
            dir.path(),
            "typo.yaml",
            "api: {client: {ulr: 'http://x:1'}}\n",
        );
        let flags = SettingFlags {
            config: Some(typo),
            ..Default::default()
        };
        match resolve_with(&flags, &env(&[]), &[]) {
            Err(CliError::ConfigParse { reason, .. }) => {
                assert!(reason.contains("ulr"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls_are_checked() {
        for bad in ["ftp://x", "not a url", "unix:///run/osapi/api.sock"] {
            let flags = SettingFlags {
                url: Some(bad.into()),
                ..Default::default()
            };
            assert!(
                matches!(
                    resolve_with(&flags, &env(&[]), &[]),
                    Err(CliError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let flags = SettingFlags {
            token: Some("s3cr3t".into()),
            ..Default::default()
        };
        assert!(!format!("{flags:?}").contains("s3cr3t"));
        let s = resolve_with(&flags, &env(&[]), &[]).unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    #[test]
    fn user_config_path_follows_xdg_then_home() {
        let p = default_config_paths(&env(&[("HOME", "/home/u")]));
        assert_eq!(
            p,
            [
                PathBuf::from("/home/u/.config/osapi/osapictl.yaml"),
                PathBuf::from(SYSTEM_CONFIG)
            ]
        );
        let p = default_config_paths(&env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/x")]));
        assert_eq!(p[0], PathBuf::from("/x/osapi/osapictl.yaml"));
        assert_eq!(
            default_config_paths(&env(&[])),
            [PathBuf::from(SYSTEM_CONFIG)]
        );
    }
}
