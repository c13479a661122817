//! The web console (`/ui/`) in a real browser: Debian's headless Chromium,
//! driven over the W3C WebDriver protocol through ChromeDriver, against a
//! live stack whose agent reads and sets the hostname through the real
//! `systemd-hostnamed` (in namespaces of its own: this machine's name never
//! changes). Each page's screenshot is saved under
//! `$CARGO_TARGET_TMPDIR/console-screenshots/`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::dbus_harness::{Hostnamed, PrivateBus, Timedated, require_program, seal_clock_warp};
use crate::harness::{AgentSpec, Stack, free_port, send_json, start_shell, wait_for, wait_for_ok};

/// How long a page may take to show what is waited for.
const PAGE: Duration = Duration::from_secs(30);

/// ChromeDriver and the browsers it starts, in a process group of their own
/// so that all of them go when the test ends, however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// One browser session.
struct Browser {
    http: reqwest::Client,
    session: String,
    shots: PathBuf,
    _profile: tempfile::TempDir,
    _driver: Driver,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = require_program("chromium", "chromium");
        let chromedriver = require_program("chromedriver", "chromium-driver");
        let port = free_port();
        let driver = Driver(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver"),
        );
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        wait_for_ok("chromedriver", || http.get(format!("{base}/status"))).await;
        let profile = tempfile::tempdir().expect("profile dir");
        // Root needs --no-sandbox; the rest keeps Chromium off the network
        // (this machine's closed network refuses its background calls).
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {resp}"));
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Browser {
            http,
            session: format!("{base}/session/{id}"),
            shots,
            _profile: profile,
            _driver: driver,
        }
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver json");
        if let Some(err) = resp["value"]["error"].as_str() {
            panic!("webdriver {path}: {err}: {}", resp["value"]["message"]);
        }
        resp["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` in the page with `args`; what it returns.
    async fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The text of every element `css` matches, now.
    async fn texts(&self, css: &str) -> Vec<String> {
        let v = self
            .run(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);",
                json!([css]),
            )
            .await;
        serde_json::from_value(v).expect("texts")
    }

    /// Waits until an element `css` matches has text containing `wanted`;
    /// returns that text.
    async fn wait_text(&self, css: &str, wanted: &str) -> String {
        wait_for(&format!("{css} showing {wanted:?}"), PAGE, || async {
            self.texts(css)
                .await
                .into_iter()
                .find(|t| t.contains(wanted))
        })
        .await
    }

    /// Waits for `css` and acts on the first match: `click()`, or set its
    /// value to `text` (as typing would, with an input event).
    async fn act(&self, css: &str, text: Option<&str>) {
        let script = "const e = document.querySelector(arguments[0]); if (!e) return false; \
             if (arguments[1] === null) { e.click(); } else { e.focus(); e.value = arguments[1]; \
             e.dispatchEvent(new Event('input', {bubbles: true})); } return true;";
        wait_for(&format!("{css} to act on"), PAGE, || async {
            (self.run(script, json!([css, text])).await.as_bool() == Some(true)).then_some(())
        })
        .await;
    }

    async fn click(&self, css: &str) {
        self.act(css, None).await;
    }

    async fn fill(&self, css: &str, text: &str) {
        self.act(css, Some(text)).await;
    }

    /// Clicks `css` as a user would (the browser's own click, so a
    /// `confirm()` it opens does not stop the driver), then accepts the
    /// dialog.
    async fn click_and_confirm(&self, css: &str) {
        let found = self
            .call(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_owned();
        self.call(
            Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
        self.call(Method::POST, "/alert/accept", Some(json!({})))
            .await;
    }

    /// Submits the form `css` is in, the way pressing Enter in it would.
    async fn submit(&self, css: &str) {
        let script = "const e = document.querySelector(arguments[0]); if (!e) return false; \
             e.form.requestSubmit(); return true;";
        wait_for(&format!("{css} to submit"), PAGE, || async {
            (self.run(script, json!([css])).await.as_bool() == Some(true)).then_some(())
        })
        .await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.call(Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 screenshot"))
            .expect("decode screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("save screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_shows_the_fleet_and_changes_a_host_after_a_dry_run() {
    seal_clock_warp();
    let bus = PrivateBus::start().await;
    let hostnamed = Hostnamed::start(&bus).await;
    let _timedated = Timedated::start(&bus).await;
    let stack = Stack::start(&[
        AgentSpec::real("console-host").env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
    ])
    .await;
    let admin = stack.token_for("alice", &["admin"], None);
    let read = stack.token_for("bob", &["read"], None);
    // busctl prints `s "name"`.
    let static_hostname = || {
        let printed = bus.get_property(
            "org.freedesktop.hostname1",
            "/org/freedesktop/hostname1",
            "org.freedesktop.hostname1",
            "StaticHostname",
        );
        printed
            .trim()
            .trim_start_matches("s ")
            .trim_matches('"')
            .to_owned()
    };
    let before = static_hostname();
    assert!(!before.is_empty(), "hostnamed has a static hostname");
    let (_, clock) = stack
        .get_json("/api/v1/time/clock?target=console-host", &admin)
        .await;
    let timezone = clock["results"][0]["data"]["timezone"]
        .as_str()
        .unwrap_or_else(|| panic!("the clock: {clock}"))
        .to_owned();
    let browser = Browser::start().await;
    let ui = stack.url("/ui/");

    // Sign-in, first with a token the API refuses: an error page says so.
    let opened = Instant::now();
    browser.open(&ui).await;
    browser.fill("#token", "not-a-token").await;
    browser.screenshot("sign-in").await;
    browser.submit("#token").await;
    browser
        .wait_text("#signin-error", "The API refused this token")
        .await;
    browser.wait_text("#signin-error .error", "401").await;
    browser.screenshot("bad-token").await;

    // Then with the admin token: the fleet lists the live agent and its vitals.
    browser.fill("#token", &admin).await;
    browser.submit("#token").await;
    browser.wait_text("#agents a.host", "console-host").await;
    println!(
        "console: bad token, then signed in and fleet shown, {} ms after opening",
        opened.elapsed().as_millis()
    );
    let row = browser.wait_text("#agents tbody tr", "console-host").await;
    assert!(
        row.contains(env!("CARGO_PKG_VERSION")) && row.contains("GiB"),
        "{row}"
    );
    assert_eq!(browser.texts("#who").await, ["alice (admin)"]);
    browser.screenshot("fleet").await;

    // The host: a hostname read through hostnamed.
    browser.click("#agents a.host").await;
    browser.wait_text("#hostname dd", &before).await;
    browser.wait_text("#status dd", "kernel").await;
    browser.wait_text("#time .value", &timezone).await;
    browser.screenshot("host").await;

    // A change: the preview is a dry run (nothing changes), Apply changes it.
    browser
        .fill("#hostname input[name=hostname]", "console-renamed")
        .await;
    browser.submit("#hostname input[name=hostname]").await;
    browser
        .wait_text("#hostname .change .after", "console-renamed")
        .await;
    assert_eq!(static_hostname(), before, "a preview changes nothing");
    browser.screenshot("host-preview").await;
    browser.click("#hostname button.apply").await;
    browser.wait_text("#hostname .applied", "Changed.").await;
    assert_eq!(static_hostname(), "console-renamed");
    assert_eq!(hostnamed.etc_hostname().trim(), "console-renamed");
    browser
        .wait_text("#hostname .value", "console-renamed")
        .await;

    // Jobs: newest first, filtered, and one job's timeline and results.
    browser
        .open(&stack.url("/ui/#/jobs?operation=node.hostname.set"))
        .await;
    browser.wait_text("#jobs tbody", "node.hostname.set").await;
    let rows = browser.texts("#jobs tbody tr").await;
    assert_eq!(rows.len(), 2, "the dry run and the change: {rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.contains("node.hostname.set") && r.contains("alice"))
    );
    browser.screenshot("jobs").await;
    browser.click("#jobs a.job").await;
    browser
        .wait_text("#job-operation", "node.hostname.set")
        .await;
    browser.wait_text("#job .result", "console-host").await;
    browser.wait_text("#job tbody", "completed").await;
    browser.screenshot("job").await;

    // A command's output, live over the SSE endpoint, then its exit.
    let job = &start_shell(
        &stack,
        &admin,
        "",
        json!({"command": "echo first-line; sleep 1; echo second-line >&2"}),
    )
    .await;
    browser.open(&stack.url(&format!("/ui/#/job/{job}"))).await;
    browser.wait_text("pre.output", "first-line").await;
    let output = browser.wait_text("pre.output", "[exit code 0]").await;
    assert!(output.contains("second-line"), "{output}");
    assert_eq!(browser.texts("pre.output .stderr").await, ["second-line\n"]);
    browser.wait_text("#job-status", "completed").await;
    // The page has reloaded the job after the stream's `end`.
    browser.wait_text("#output[data-ended]", "").await;
    browser.screenshot("job-output").await;

    // Retry: asks first, then opens the new job, which says whose retry it is.
    browser.click_and_confirm("#retry").await;
    browser.wait_text("#job dd", job).await;
    let retried = browser.run("return location.hash;", json!([])).await;
    assert_ne!(
        retried,
        format!("#/job/{job}"),
        "the page moved to the new job"
    );
    browser.wait_text("pre.output", "second-line").await;
    browser.wait_text("#job-status", "completed").await;

    // Cancel: a long command stopped from its page, which then says so.
    let long = start_shell(
        &stack,
        &admin,
        "",
        json!({"command": "echo started; sleep 60"}),
    )
    .await;
    browser.open(&stack.url(&format!("/ui/#/job/{long}"))).await;
    browser.wait_text("pre.output", "started").await;
    browser.click_and_confirm("#cancel").await;
    browser.wait_text("pre.output", "[cancelled]").await;
    browser.wait_text("#output[data-ended]", "").await;
    assert_eq!(
        browser.texts("#cancel").await.len(),
        0,
        "nothing left to cancel"
    );

    // The audit trail shows the change, by whom.
    browser.open(&stack.url("/ui/#/audit?user=alice")).await;
    browser
        .wait_text("#audit tbody tr", "PUT /api/v1/node/hostname")
        .await;
    let puts: Vec<String> = browser
        .texts("#audit tbody tr")
        .await
        .into_iter()
        .filter(|r| r.contains("PUT /api/v1/node/hostname"))
        .collect();
    assert_eq!(puts.len(), 2, "the preview and the change: {puts:?}");
    assert!(puts.iter().all(|r| r.contains("alice")), "{puts:?}");
    browser.screenshot("audit").await;
    // Export goes through the API's JSONL export, with the page's filter.
    browser.click("#export").await;
    wait_for("the export in the audit trail", PAGE, || async {
        let (_, page) = stack.get_json("/api/v1/audit?user=alice", &admin).await;
        page["entries"]
            .as_array()?
            .iter()
            .any(|e| e["path"] == "/api/v1/audit/export" && e["response_code"] == 200)
            .then_some(())
    })
    .await;

    // With the token kept in the tab: how long the fleet takes to show,
    // from the start of the page load (printed; docs/benchmarks.md).
    browser.open(&stack.url("/ui/#/")).await;
    browser
        .call(Method::POST, "/refresh", Some(json!({})))
        .await;
    browser.wait_text("#agents a.host", "console-host").await;
    let first_render = browser
        .run(
            "return performance.getEntriesByName('osapi:fleet-shown')[0].startTime;",
            json!([]),
        )
        .await;
    println!("console: fleet shown {first_render} ms after navigation started");

    // A read-only token: the same pages, no button that writes.
    browser.click("#sign-out").await;
    browser.fill("#token", &read).await;
    browser.submit("#token").await;
    browser.wait_text("#agents a.host", "console-host").await;
    // No button at all on the host and job pages, marked or not.
    let buttons = "return document.querySelectorAll('main button, [data-write]').length;";
    browser.open(&stack.url("/ui/#/host/console-host")).await;
    browser
        .wait_text("#hostname .value", "console-renamed")
        .await;
    browser.wait_text("#time .value", &timezone).await;
    assert_eq!(browser.run(buttons, json!([])).await, 0, "host page");
    browser.open(&stack.url(&format!("/ui/#/job/{job}"))).await;
    browser.wait_text("#job-status", "completed").await;
    assert_eq!(browser.run(buttons, json!([])).await, 0, "job page");
    assert!(browser.texts("#nav a").await.iter().all(|t| t != "Audit"));
    browser.screenshot("read-only").await;

    // The server refuses what the page would not offer.
    let (status, _) = send_json(
        stack
            .request(
                Method::PUT,
                "/api/v1/node/hostname?target=console-host",
                &read,
            )
            .json(&json!({"hostname": "not-allowed"})),
    )
    .await;
    assert_eq!(status, 403);
}

/// The page and its files answer with the policy, and the console's own
/// endpoint tells a token's holder what it may do.
#[tokio::test]
async fn whoami_reports_the_tokens_permissions_and_refuses_a_bad_token() {
    let stack = Stack::start(&[]).await;
    let read = stack.token_for("bob", &["read"], None);
    let (status, me) = stack.get_json("/api/v1/auth/whoami", &read).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["subject"], "bob");
    let perms: Vec<&str> = me["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        perms.contains(&"node:read") && !perms.contains(&"node:write"),
        "{perms:?}"
    );
    let (status, body) = stack.get_json("/api/v1/auth/whoami", "garbage").await;
    assert_eq!(status, 401, "{body}");
    let page = stack
        .http
        .get(stack.url("/ui/"))
        .send()
        .await
        .expect("GET /ui/");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
}
