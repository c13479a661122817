//! JWT validation and the RBAC matrix, against a running API.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use osapi::rbac::Permission;
use reqwest::Method;
use serde_json::json;

use crate::harness::{AgentSpec, SIGNING_KEY, Stack, send_json};

/// Every protected endpoint, with a request that is valid apart from auth.
fn endpoints() -> Vec<(Method, &'static str, Option<serde_json::Value>, Permission)> {
    use Permission::*;
    vec![
        (Method::GET, "/api/v1/health/status", None, HealthRead),
        (Method::GET, "/api/v1/node/hostname", None, NodeRead),
        (Method::GET, "/api/v1/node/status", None, NodeRead),
        (Method::GET, "/api/v1/node/uptime", None, NodeRead),
        (Method::GET, "/api/v1/node/os", None, NodeRead),
        (Method::GET, "/api/v1/node/disk", None, NodeRead),
        (Method::GET, "/api/v1/node/memory", None, NodeRead),
        (Method::GET, "/api/v1/node/load", None, NodeRead),
        (
            Method::PUT,
            "/api/v1/node/hostname",
            Some(json!({"hostname": "rbac-test"})),
            NodeWrite,
        ),
        (Method::GET, "/api/v1/network/dns/lo", None, NetworkRead),
        (
            Method::PUT,
            "/api/v1/network/dns/lo",
            Some(json!({"servers": ["192.0.2.53"]})),
            NetworkWrite,
        ),
        (
            Method::POST,
            "/api/v1/network/ping",
            Some(json!({"address": "127.0.0.1", "count": 1})),
            NetworkRead,
        ),
        (
            Method::POST,
            "/api/v1/command/exec",
            Some(json!({"command": "/bin/true"})),
            CommandExecute,
        ),
        (
            Method::POST,
            "/api/v1/command/shell",
            Some(json!({"command": "true"})),
            CommandExecute,
        ),
        (
            Method::POST,
            "/api/v1/jobs",
            Some(json!({"operation": {"type": "node.load.get"}})),
            JobWrite,
        ),
        (Method::GET, "/api/v1/jobs", None, JobRead),
        (Method::GET, "/api/v1/jobs/stats", None, JobRead),
        (
            Method::GET,
            "/api/v1/jobs/0190a7b8-0000-7000-8000-000000000000",
            None,
            JobRead,
        ),
        (
            Method::DELETE,
            "/api/v1/jobs/0190a7b8-0000-7000-8000-000000000000",
            None,
            JobWrite,
        ),
        (
            Method::POST,
            "/api/v1/jobs/0190a7b8-0000-7000-8000-000000000000/retry",
            None,
            JobWrite,
        ),
        (Method::GET, "/api/v1/agents", None, AgentRead),
        (Method::GET, "/api/v1/agents/rbac-node", None, AgentRead),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_its_endpoints() {
    // A simulated agent, so node:write really "sets" a hostname without touching this host.
    let stack =
        Stack::start(&[AgentSpec::real("rbac-node").simulate(std::time::Duration::ZERO)]).await;
    let roles = osapi::rbac::Roles::default();
    for role in ["admin", "write", "read"] {
        let token = stack.token(&[role]);
        let granted = roles.get(role).unwrap();
        for (method, path, body, perm) in endpoints() {
            let mut req = stack.request(method.clone(), path, &token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let (status, resp) = send_json(req).await;
            if granted.contains(&perm) {
                // Allowed: anything but 401/403 (unknown job ids are 404).
                assert!(
                    status != 401 && status != 403,
                    "{role} {method} {path}: {status} {resp}"
                );
                assert!(status < 500, "{role} {method} {path}: {status} {resp}");
            } else {
                assert_eq!(status, 403, "{role} {method} {path}: {resp}");
                assert_eq!(resp["permission"], perm.as_str(), "{resp}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_roles_permission_claims_and_generic_jobs() {
    let stack =
        Stack::start(&[AgentSpec::real("perm-node").simulate(std::time::Duration::ZERO)]).await;
    // The harness config defines `ops: [node:read, job:read]`.
    let ops = stack.token(&["ops"]);
    assert_eq!(stack.get_json("/api/v1/node/hostname", &ops).await.0, 200);
    assert_eq!(stack.get_json("/api/v1/jobs", &ops).await.0, 200);
    assert_eq!(stack.get_json("/api/v1/agents", &ops).await.0, 403);

    // A permissions claim replaces role expansion, even for admin.
    let narrow = stack.token_for("narrow", &["admin"], Some(vec![Permission::NodeRead]));
    assert_eq!(stack.get_json("/api/v1/node/uptime", &narrow).await.0, 200);
    let (status, body) = stack.get_json("/api/v1/agents", &narrow).await;
    assert_eq!(
        (status, body["permission"].as_str()),
        (403, Some("agent:read"))
    );

    // An unknown role grants nothing.
    assert_eq!(
        stack
            .get_json("/api/v1/node/uptime", &stack.token(&["nobody"]))
            .await
            .0,
        403
    );

    // write has job:write but not command:execute: POST /jobs must not run a command.
    let write = stack.token(&["write"]);
    let (status, body) =
        send_json(stack.request(Method::POST, "/api/v1/jobs", &write).json(
            &json!({"operation": {"type": "command.shell.execute", "data": {"command": "id"}}}),
        ))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["permission"], "command:execute");
    let (_, jobs) = stack
        .get_json(
            "/api/v1/jobs?operation=command.shell.execute",
            &stack.token(&["admin"]),
        )
        .await;
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "a job was created: {jobs}"
    );
    // ...while write may create a node job through the same endpoint.
    let (status, _) = send_json(
        stack
            .request(Method::POST, "/api/v1/jobs", &write)
            .json(&json!({"operation": {"type": "node.load.get"}})),
    )
    .await;
    assert_eq!(status, 201);
}

fn forge(header: serde_json::Value, claims: serde_json::Value, key: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        format!("{h}.{p}").as_bytes(),
    );
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_never_500() {
    let stack = Stack::start(&[]).await;
    let now = osapi::token::now_unix();
    let claims =
        json!({"sub": "mallory", "roles": ["admin"], "iat": now, "exp": now + 600, "iss": "osapi"});
    let key = SIGNING_KEY.as_bytes();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("alg none", Some(none)),
        (
            "HS512 header",
            Some(forge(
                json!({"alg": "HS512", "typ": "JWT"}),
                claims.clone(),
                key,
            )),
        ),
        (
            "RS256 header",
            Some(forge(
                json!({"alg": "RS256", "typ": "JWT"}),
                claims.clone(),
                key,
            )),
        ),
        (
            "wrong key",
            Some(forge(
                json!({"alg": "HS256"}),
                claims.clone(),
                b"some-other-signing-key-0123456789abcdef",
            )),
        ),
        (
            "expired",
            Some(forge(
                json!({"alg": "HS256"}),
                json!({"sub": "m", "roles": ["admin"], "iat": now - 7200, "exp": now - 3600, "iss": "osapi"}),
                key,
            )),
        ),
        (
            "missing roles",
            Some(forge(
                json!({"alg": "HS256"}),
                json!({"sub": "m", "iat": now, "exp": now + 600, "iss": "osapi"}),
                key,
            )),
        ),
        (
            "wrong issuer",
            Some(forge(
                json!({"alg": "HS256"}),
                json!({"sub": "m", "roles": ["admin"], "iat": now, "exp": now + 600, "iss": "evil"}),
                key,
            )),
        ),
        ("garbage", Some("not-a-token".into())),
        ("three garbage parts", Some("a.b.c".into())),
        ("missing header", None),
    ];
    for (name, token) in cases {
        let mut req = stack.http.get(stack.url("/api/v1/node/hostname"));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{name}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{name}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 401, "{name}");
        // The problem never echoes the token back.
        if let Some(t) = token.filter(|t| t.len() > 8) {
            assert!(!body.to_string().contains(&t), "{name}: token echoed");
        }
    }
    // A non-Bearer scheme is a missing token, too.
    let resp = stack
        .http
        .get(stack.url("/api/v1/node/hostname"))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Open endpoints need no token.
    for path in [
        "/health",
        "/health/ready",
        "/api/v1/version",
        "/api/v1/openapi.json",
    ] {
        assert_eq!(
            stack
                .http
                .get(stack.url(path))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_only_for_configured_origins() {
    let opts = crate::harness::StackOptions {
        api_env: vec![(
            "OSAPI_API_SERVER_SECURITY_CORS_ALLOW_ORIGINS".into(),
            "[https://ui.example]".into(),
        )],
        ..Default::default()
    };
    let stack = Stack::start_with(&[], opts).await;
    let preflight = |origin: &'static str| {
        stack
            .http
            .request(Method::OPTIONS, stack.url("/api/v1/jobs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://ui.example").await.unwrap();
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://ui.example")
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
