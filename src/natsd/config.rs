//! Rendering [`Settings`] as a nats-server configuration file.
//!
//! The output uses the JSON-compatible subset of nats-server's configuration
//! syntax: quoted keys, double-quoted strings, `{}` blocks and `[]` lists. It is
//! not strictly JSON, because nats-server's lexer only knows the escapes `\"`,
//! `\\`, `\t`, `\n`, `\r` and `\xXX` (no `\uXXXX`): other control characters
//! are written as `\xXX`. `$` needs no escape inside a quoted string; variable
//! references only exist for unquoted values.

use std::fmt::Write as _;

use super::{NkeyUser, Permissions, ROUTE_USER, ServerAuth, Settings, TlsFiles};

/// Renders the nats-server configuration for `settings`, with the monitoring
/// endpoint on `127.0.0.1:monitor_port`.
///
/// The settings are used as given; [`Settings::validate`] is the caller's job.
pub fn generate_config(settings: &Settings, monitor_port: u16) -> String {
    let mut out = String::new();
    out.push_str("{\n");
    // "host"/"port" rather than "listen": an IPv6 host needs no brackets this way.
    field(&mut out, 1, "host", &quote(&settings.host));
    field(&mut out, 1, "port", &settings.port.to_string());
    if let Some(name) = &settings.server_name {
        field(&mut out, 1, "server_name", &quote(name));
    }
    // Monitoring is only for our own health probe; never expose it.
    field(
        &mut out,
        1,
        "http",
        &quote(&format!("127.0.0.1:{monitor_port}")),
    );
    // The journal (or our tracing subscriber) stamps every line already.
    field(&mut out, 1, "logtime", "false");

    out.push_str("  \"jetstream\": {\n");
    field(
        &mut out,
        2,
        "store_dir",
        &quote(&settings.store_dir.to_string_lossy()),
    );
    // Memory-backed streams (none unless configured) may hold this much in
    // all, not nats-server's default of three quarters of the host's memory.
    field(
        &mut out,
        2,
        "max_memory_store",
        &settings.max_memory_store.to_string(),
    );
    close_block(&mut out, 1);

    if let Some(t) = &settings.tls {
        tls_block(&mut out, 1, t, false);
    }

    match &settings.auth {
        ServerAuth::None => {}
        ServerAuth::UserPass(users) => {
            let entries = users
                .iter()
                .map(|(user, password)| {
                    format!(
                        "{{\"user\": {}, \"password\": {}}}",
                        quote(user),
                        quote(password)
                    )
                })
                .collect::<Vec<_>>();
            authorization(&mut out, &entries);
        }
        ServerAuth::Nkey(users) => {
            let entries = users.iter().map(nkey_user).collect::<Vec<_>>();
            authorization(&mut out, &entries);
        }
    }

    if let Some(cluster) = &settings.cluster {
        out.push_str("  \"cluster\": {\n");
        if !cluster.name.is_empty() {
            field(&mut out, 2, "name", &quote(&cluster.name));
        }
        field(&mut out, 2, "host", &quote(&cluster.host));
        field(&mut out, 2, "port", &cluster.port.to_string());
        let password = cluster.password.as_deref().filter(|p| !p.is_empty());
        if let Some(password) = password {
            out.push_str("    \"authorization\": {\n");
            field(&mut out, 3, "user", &quote(ROUTE_USER));
            field(&mut out, 3, "password", &quote(password));
            field(&mut out, 3, "timeout", "5");
            close_block(&mut out, 2);
        }
        if let Some(t) = &cluster.tls {
            tls_block(&mut out, 2, t, true);
        }
        let routes = cluster
            .routes
            .iter()
            .map(|route| quote(&route_url(route, password)))
            .collect::<Vec<_>>();
        list(&mut out, 2, "routes", &routes);
        close_block(&mut out, 1);
    }

    // Every entry above ends with ",\n"; the last comma is dropped here so the
    // file stays JSON-shaped (nats-server would accept it either way).
    trim_trailing_comma(&mut out);
    out.push_str("}\n");
    out
}

/// Quotes `s` as a nats-server double-quoted string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Only ASCII control characters reach here, so one byte each.
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One entry of `authorization.users`, on one line.
fn nkey_user(user: &NkeyUser) -> String {
    match &user.permissions {
        None => format!("{{\"nkey\": {}}}", quote(&user.public_key)),
        Some(p) => format!(
            "{{\"nkey\": {}, \"permissions\": {}}}",
            quote(&user.public_key),
            permissions(p)
        ),
    }
}

fn permissions(p: &Permissions) -> String {
    let subjects = |list: &[String]| {
        let quoted = list.iter().map(|s| quote(s)).collect::<Vec<_>>();
        format!("[{}]", quoted.join(", "))
    };
    format!(
        "{{\"publish\": {{\"allow\": {}, \"deny\": {}}}, \"subscribe\": {{\"allow\": {}}}}}",
        subjects(&p.publish_allow),
        subjects(&p.publish_deny),
        subjects(&p.subscribe_allow)
    )
}

/// A route URL with the scheme, and the routes' credentials when set (this
/// file is 0600 and never leaves the run directory).
fn route_url(route: &str, password: Option<&str>) -> String {
    let full = if route.contains("://") {
        route.to_owned()
    } else {
        format!("nats-route://{route}")
    };
    // Credentials written in the route itself win.
    let Some(pw) = password else { return full };
    match reqwest::Url::parse(&full) {
        Ok(mut url) if url.username().is_empty() => {
            // The url crate percent-encodes what user-info cannot hold.
            let _ = url.set_username(ROUTE_USER);
            let _ = url.set_password(Some(pw));
            url.to_string()
        }
        _ => full,
    }
}

/// A `tls` block; `verify_peers` makes peers present a certificate signed by
/// the CA (mutual TLS, for routes).
fn tls_block(out: &mut String, level: usize, t: &TlsFiles, verify_peers: bool) {
    indent(out, level);
    out.push_str("\"tls\": {\n");
    field(
        out,
        level + 1,
        "cert_file",
        &quote(&t.cert_file.to_string_lossy()),
    );
    field(
        out,
        level + 1,
        "key_file",
        &quote(&t.key_file.to_string_lossy()),
    );
    if let Some(ca) = &t.ca_file {
        field(out, level + 1, "ca_file", &quote(&ca.to_string_lossy()));
        if verify_peers {
            field(out, level + 1, "verify", "true");
        }
    }
    field(out, level + 1, "timeout", "5");
    close_block(out, level);
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn field(out: &mut String, level: usize, key: &str, value: &str) {
    indent(out, level);
    let _ = writeln!(out, "{}: {value},", quote(key));
}

fn list(out: &mut String, level: usize, key: &str, items: &[String]) {
    indent(out, level);
    let _ = writeln!(out, "{}: [", quote(key));
    for (i, item) in items.iter().enumerate() {
        indent(out, level + 1);
        out.push_str(item);
        out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
    }
    indent(out, level);
    out.push_str("],\n");
}

fn authorization(out: &mut String, users: &[String]) {
    out.push_str("  \"authorization\": {\n");
    list(out, 2, "users", users);
    close_block(out, 1);
}

fn close_block(out: &mut String, level: usize) {
    trim_trailing_comma(out);
    indent(out, level);
    out.push_str("},\n");
}

fn trim_trailing_comma(out: &mut String) {
    if out.ends_with(",\n") {
        out.truncate(out.len() - 2);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::natsd::{ClusterSettings, resolve_binary};
    use std::path::Path;

    fn settings() -> Settings {
        Settings {
            binary: "nats-server".into(),
            host: "127.0.0.1".into(),
            port: 4222,
            store_dir: "/var/lib/osapi/nats".into(),
            server_name: None,
            auth: ServerAuth::None,
            tls: None,
            cluster: None,
            monitor_port: None,
            run_dir: "/run/osapi".into(),
            max_memory_store: crate::natsd::MIN_MEMORY_STORE,
        }
    }

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON-shaped ({e}):\n{text}"))
    }

    /// Lets the real nats-server parse the text (`-t` only checks the config).
    fn assert_nats_accepts(text: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.conf");
        std::fs::write(&path, text).unwrap();
        let binary = resolve_binary(Path::new("nats-server")).unwrap();
        let out = std::process::Command::new(binary)
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nats-server rejected:\n{text}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn minimal_config_has_listen_jetstream_and_monitoring() {
        let text = generate_config(&settings(), 18222);
        let v = json(&text);
        assert_eq!(v["host"], "127.0.0.1");
        assert_eq!(v["port"], 4222);
        assert_eq!(v["http"], "127.0.0.1:18222");
        assert_eq!(v["jetstream"]["store_dir"], "/var/lib/osapi/nats");
        assert_eq!(v["jetstream"]["max_memory_store"], 64 << 20);
        assert!(v.get("authorization").is_none());
        assert!(v.get("cluster").is_none());
        assert!(v.get("server_name").is_none());
        assert_nats_accepts(&text);
    }

    #[test]
    fn user_pass_block_escapes_special_characters() {
        let password = "p\"a\\s$s{w}\t#o'r\nd\u{1}é";
        let mut s = settings();
        s.auth = ServerAuth::UserPass(vec![
            ("admin".into(), password.into()),
            ("we\"ird".into(), "$HOME".into()),
        ]);
        let text = generate_config(&s, 8222);
        assert!(
            text.contains(r#"{"user": "admin", "password": "p\"a\\s$s{w}\t#o'r\nd\x01é"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"user": "we\"ird", "password": "$HOME"}"#),
            "{text}"
        );
        assert_nats_accepts(&text);
    }

    #[test]
    fn quote_round_trips_through_json_without_control_bytes() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "$VAR",
            "${x}",
            "tab\tnl\ncr\r",
            "ü€😀",
        ] {
            let back: String = serde_json::from_str(&quote(s)).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(quote("\u{0}\u{1b}\u{7f}"), r#""\x00\x1b\x7f""#);
    }

    #[test]
    fn nkey_block_lists_public_keys() {
        let key = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
        let mut s = settings();
        s.auth = ServerAuth::Nkey(vec![
            NkeyUser::unrestricted(key),
            NkeyUser {
                public_key: nkeys::KeyPair::new_user().public_key(),
                permissions: Some(Permissions {
                    publish_allow: vec!["$KV.b.>".into(), "a.*".into()],
                    publish_deny: vec!["$JS.API.STREAM.PURGE.KV_b".into()],
                    subscribe_allow: vec!["_INBOX_agent.>".into()],
                }),
            },
        ]);
        let text = generate_config(&s, 8222);
        let v = json(&text);
        let users = &v["authorization"]["users"];
        assert_eq!(users[0]["nkey"], key);
        assert!(users[0].get("permissions").is_none());
        assert_eq!(
            users[1]["permissions"]["publish"]["allow"],
            serde_json::json!(["$KV.b.>", "a.*"])
        );
        assert_eq!(
            users[1]["permissions"]["publish"]["deny"][0],
            "$JS.API.STREAM.PURGE.KV_b"
        );
        assert_eq!(
            users[1]["permissions"]["subscribe"]["allow"][0],
            "_INBOX_agent.>"
        );
        assert_nats_accepts(&text);
    }

    #[test]
    fn cluster_block_has_routes_and_server_name() {
        let mut s = settings();
        s.server_name = Some("host-a".into());
        s.cluster = Some(ClusterSettings {
            name: "osapi".into(),
            host: "0.0.0.0".into(),
            port: 6222,
            routes: vec!["nats-route://10.0.0.2:6222".into(), "10.0.0.3:6222".into()],
            password: Some("s3cret/with:odd@chars".into()),
            tls: None,
        });
        let text = generate_config(&s, 8222);
        let v = json(&text);
        assert_eq!(v["server_name"], "host-a");
        assert_eq!(v["cluster"]["name"], "osapi");
        assert_eq!(v["cluster"]["host"], "0.0.0.0");
        assert_eq!(v["cluster"]["port"], 6222);
        assert_eq!(v["cluster"]["authorization"]["user"], ROUTE_USER);
        assert_eq!(
            v["cluster"]["authorization"]["password"],
            "s3cret/with:odd@chars"
        );
        assert_eq!(
            v["cluster"]["routes"],
            serde_json::json!([
                "nats-route://osapi-route:s3cret%2Fwith%3Aodd%40chars@10.0.0.2:6222",
                "nats-route://osapi-route:s3cret%2Fwith%3Aodd%40chars@10.0.0.3:6222"
            ])
        );
        assert_nats_accepts(&text);
    }

    #[test]
    fn tls_blocks_for_clients_and_routes() {
        let dir = tempfile::tempdir().unwrap();
        let made = crate::tls::generate(dir.path(), &["127.0.0.1".to_owned()], false).unwrap();
        let files = TlsFiles {
            cert_file: made.cert.clone(),
            key_file: made.key.clone(),
            ca_file: Some(made.ca_cert.clone()),
        };
        let mut s = settings();
        s.tls = Some(TlsFiles {
            ca_file: None,
            ..files.clone()
        });
        s.cluster = Some(ClusterSettings {
            name: "osapi".into(),
            host: "127.0.0.1".into(),
            port: 6222,
            routes: vec![],
            password: None,
            tls: Some(files),
        });
        let text = generate_config(&s, 8222);
        let v = json(&text);
        assert_eq!(v["tls"]["cert_file"], made.cert.to_str().unwrap());
        assert!(
            v["tls"].get("verify").is_none(),
            "clients use nkeys, not certificates"
        );
        assert_eq!(
            v["cluster"]["tls"]["ca_file"],
            made.ca_cert.to_str().unwrap()
        );
        assert_eq!(v["cluster"]["tls"]["verify"], true);
        assert_nats_accepts(&text);
    }

    #[test]
    fn ipv6_host_needs_no_brackets() {
        let mut s = settings();
        s.host = "::1".into();
        let text = generate_config(&s, 8222);
        assert_eq!(json(&text)["host"], "::1");
        assert_nats_accepts(&text);
    }
}
