//! `cert.ca.*` and `user.*` through the API with a real agent on this
//! machine: what it reads (this host's CA bundle, its accounts through NSS),
//! the input rules, the permissions, and that a password given in clear
//! never reaches the job. Changes to the trust store and the accounts run in
//! the appliance container (`scripts/appliance-test.sh`): a test never
//! changes this machine's.

use reqwest::Method;
use serde_json::json;

use crate::harness::{AgentSpec, Stack, send_json};

/// A CA certificate made with openssl (valid until 2126), also the unit
/// tests'.
const TEST_CA: &str = include_str!("../data/test-ca.pem");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_cas_list_and_an_add_is_checked_first() {
    let stack = Stack::start(&[AgentSpec::real("ca-host")]).await;
    let admin = stack.token(&["admin"]);
    let read = stack.token(&["read"]);

    // The bundle this machine's TLS clients read, certificate by certificate.
    let (status, body) = stack.get_json("/api/v1/cert/ca", &read).await;
    assert_eq!(status, 200, "{body}");
    let all = body["results"][0]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
    assert_eq!(
        all.len(),
        bundle.matches("-----BEGIN CERTIFICATE-----").count(),
        "{body}"
    );
    assert!(
        all.iter()
            .all(|c| c["sha256"].as_str().is_some_and(|s| s.len() == 64)
                && c["subject"].as_str().is_some_and(|s| !s.is_empty())),
        "{body}"
    );
    let (status, body) = stack.get_json("/api/v1/cert/ca?local=true", &read).await;
    assert_eq!(status, 200, "{body}");
    // This machine has no CA of OSAPI's (the appliance test adds one).
    assert_eq!(body["results"][0]["data"], serde_json::json!([]), "{body}");

    let add = |body: serde_json::Value, query: &str, token: &str| {
        stack
            .request(Method::POST, &format!("/api/v1/cert/ca{query}"), token)
            .json(&body)
    };
    // read may only look; what is not a certificate is a 400 on `pem`.
    let (status, _) = send_json(add(json!({"pem": TEST_CA}), "?dry_run=true", &read)).await;
    assert_eq!(status, 403);
    let corrupt = TEST_CA.replace("MIIBzTCC", "MIIBzTCD");
    for pem in ["hello", corrupt.as_str()] {
        let (status, body) = send_json(add(json!({"pem": pem}), "?dry_run=true", &admin)).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("pem")),
            "{body}"
        );
    }
    // A dry run names the file it would write, from the common name.
    let (status, body) = send_json(add(json!({"pem": TEST_CA}), "?dry_run=true", &admin)).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["results"][0]["data"];
    assert_eq!(data["name"], "osapi-test-root-ca", "{body}");
    assert_eq!(data["changed"], true, "{body}");
    assert_eq!(
        data["path"], "/usr/local/share/ca-certificates/osapi/osapi-test-root-ca.crt",
        "{body}"
    );
    assert!(
        !std::path::Path::new("/usr/local/share/ca-certificates/osapi/osapi-test-root-ca.crt")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_read_through_nss_and_passwords_never_reach_the_job() {
    let stack = Stack::start(&[AgentSpec::real("user-host")]).await;
    let admin = stack.token(&["admin"]);
    let write = stack.token(&["write"]);
    let read = stack.token(&["read"]);

    let (status, body) = stack.get_json("/api/v1/users/root", &read).await;
    assert_eq!(status, 200, "{body}");
    let root = &body["results"][0]["data"];
    assert_eq!(
        (root["uid"].as_u64(), root["group"].as_str()),
        (Some(0), Some("root")),
        "{body}"
    );
    assert!(
        root.get("hash").is_none() && !body.to_string().contains("$6$"),
        "{body}"
    );
    let (status, body) = stack.get_json("/api/v1/users?system=true", &read).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["results"][0]["data"]
            .as_array()
            .is_some_and(|all| all.iter().any(|u| u["name"] == "root")),
        "{body}"
    );
    let (status, body) = stack.get_json("/api/v1/users?system=maybe", &read).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("system")),
        "{body}"
    );
    let (status, body) = stack.get_json("/api/v1/groups/root", &read).await;
    assert_eq!(
        (status, body["results"][0]["data"]["gid"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    let (status, body) = stack
        .get_json("/api/v1/users/osapi-no-such-user", &read)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = stack.get_json("/api/v1/users/Bad%20Name", &read).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );

    // user:write is admin's alone: the write role makes no accounts.
    let create = |token: &str| {
        stack
            .request(Method::POST, "/api/v1/users?dry_run=true", token)
            .json(&json!({"name": "osapi-itest", "shell": "/bin/sh"}))
    };
    let (status, _) = send_json(create(&write)).await;
    assert_eq!(status, 403, "the write role may not make accounts");
    let (status, body) = send_json(create(&admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["data"]["changed"], true, "{body}");
    assert!(
        nix::unistd::User::from_name("osapi-itest")
            .unwrap()
            .is_none(),
        "a dry run made it"
    );

    // A password in clear: the job holds its hash, never the password, and
    // its detail shows neither (a hash can be cracked offline).
    let secret = "itest-Clear-Password-7";
    let (status, body) = send_json(
        stack
            .request(
                Method::PUT,
                "/api/v1/users/root/password?dry_run=true",
                &admin,
            )
            .json(&json!({"password": secret})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains(secret), "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    let (status, job) = stack
        .get_json(&format!("/api/v1/jobs/{job_id}"), &admin)
        .await;
    assert_eq!(status, 200, "{job}");
    let text = job.to_string();
    assert!(!text.contains(secret), "{job}");
    assert_eq!(job["operation"]["data"]["hash"], "<hidden>", "{job}");
    assert!(!text.contains("$6$"), "{job}");
    // In a query it is refused: a URL ends up in logs.
    let (status, body) = send_json(stack.request(
        Method::PUT,
        &format!("/api/v1/users/root/password?dry_run=true&password={secret}"),
        &admin,
    ))
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("password")),
        "{body}"
    );
    assert!(!body.to_string().contains(secret), "{body}");
    // A weak hash scheme is refused by name.
    let (status, body) = send_json(
        stack
            .request(
                Method::PUT,
                "/api/v1/users/root/password?dry_run=true",
                &admin,
            )
            .json(&json!({"hash": "$1$salt$0123456789abcdefghijkl"})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("hash")),
        "{body}"
    );
    // Deleting root needs force, before any job.
    let (status, body) =
        send_json(stack.request(Method::DELETE, "/api/v1/users/root?dry_run=true", &admin)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
}
