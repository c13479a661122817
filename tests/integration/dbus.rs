//! The D-Bus providers against the real services: systemd-hostnamed and
//! systemd-resolved on a private bus (see `dbus_harness`), driven through the API
//! and a real agent, checked with `busctl`, `resolvectl` and the namespace's own
//! files — never through our own code. This machine's hostname and resolver must be
//! the same at the end.

use reqwest::Method;
use serde_json::{Value, json};

use crate::dbus_harness::{Hostnamed, PrivateBus, Resolved, Timedated, Veth, seal_clock_warp};
use crate::harness::{AgentSpec, Stack, send_json};

const HOSTNAME1: [&str; 3] = [
    "org.freedesktop.hostname1",
    "/org/freedesktop/hostname1",
    "org.freedesktop.hostname1",
];

fn machine_hostname() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .to_string_lossy()
        .into_owned()
}

/// An agent whose system bus is `bus`.
fn agent_on(name: &str, bus: &PrivateBus) -> AgentSpec {
    AgentSpec::real(name).env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
}

/// The single host result's data of a completed job.
fn completed_data(status: u16, body: &Value) -> &Value {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1), "{body}");
    &body["results"][0]["data"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_is_set_and_read_through_hostnamed() {
    let machine_before = machine_hostname();
    let etc_before = std::fs::read("/etc/hostname").ok();
    let bus = PrivateBus::start().await;
    let hostnamed = Hostnamed::start(&bus).await;
    let stack = Stack::start(&[agent_on("dbus-host", &bus)]).await;
    let token = stack.token(&["admin"]);
    let static_hostname = || {
        let [service, path, iface] = HOSTNAME1;
        bus.get_property(service, path, iface, "StaticHostname")
    };

    let set = |query: &str| {
        stack
            .request(
                Method::PUT,
                &format!("/api/v1/node/hostname{query}"),
                &token,
            )
            .json(&json!({"hostname": "appliance-7", "pretty": "Appliance 7"}))
    };
    // A dry run: before → after, and nothing set.
    let before = static_hostname();
    let (status, body) = send_json(set("?dry_run=true")).await;
    let data = completed_data(status, &body);
    assert_eq!(
        (data["changed"].as_bool(), data["dry_run"].as_bool()),
        (Some(true), Some(true)),
        "{body}"
    );
    assert_eq!(data["after"]["static_hostname"], "appliance-7", "{body}");
    assert_ne!(data["before"]["static_hostname"], "appliance-7", "{body}");
    assert_eq!(static_hostname(), before);

    let (status, body) = send_json(set("")).await;
    let data = completed_data(status, &body);
    assert_eq!(data["changed"], true, "{body}");
    assert_eq!(data["after"]["static_hostname"], "appliance-7", "{body}");
    assert_eq!(data["after"]["pretty_hostname"], "Appliance 7", "{body}");
    assert_eq!(data["after"]["source"], "hostnamed", "{body}");
    // Again: already so, nothing to do.
    let (status, body) = send_json(set("")).await;
    assert_eq!(completed_data(status, &body)["changed"], false, "{body}");

    // Read back with tools that are not ours.
    assert_eq!(static_hostname(), r#"s "appliance-7""#);
    let [service, path, iface] = HOSTNAME1;
    assert_eq!(
        bus.get_property(service, path, iface, "PrettyHostname"),
        r#"s "Appliance 7""#
    );
    assert_eq!(hostnamed.etc_hostname(), "appliance-7");

    let (status, body) = stack.get_json("/api/v1/node/hostname", &token).await;
    let data = completed_data(status, &body);
    assert_eq!(data["hostname"], "appliance-7", "{body}");
    assert_eq!(data["static_hostname"], "appliance-7", "{body}");
    assert_eq!(data["pretty_hostname"], "Appliance 7", "{body}");
    assert_eq!(data["source"], "hostnamed", "{body}");

    // An invalid name is refused before any job exists, and changes nothing.
    let (status, body) = send_json(
        stack
            .request(Method::PUT, "/api/v1/node/hostname", &token)
            .json(&json!({"hostname": "-bad-"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "hostname", "{body}");
    assert_eq!(static_hostname(), r#"s "appliance-7""#);
    assert_eq!(hostnamed.etc_hostname(), "appliance-7");

    assert_eq!(
        machine_hostname(),
        machine_before,
        "the machine's hostname changed"
    );
    assert_eq!(
        std::fs::read("/etc/hostname").ok(),
        etc_before,
        "the machine's /etc/hostname changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_is_set_and_read_through_resolved() {
    let resolv_before = std::fs::read("/etc/resolv.conf").ok();
    let bus = PrivateBus::start().await;
    let link = Veth::create();
    let mut resolved = Resolved::start(&bus).await;
    resolved.wait_link(&bus, link.ifindex()).await;
    let stack = Stack::start(&[agent_on("dbus-dns", &bus)]).await;
    let token = stack.token(&["admin"]);
    let path = format!("/api/v1/network/dns/{}", link.name);

    let set = |query: &str| {
        stack
            .request(Method::PUT, &format!("{path}{query}"), &token)
            .json(&json!({
                "servers": ["192.0.2.53", "2001:db8::53"],
                "search_domains": ["corp.example"]
            }))
    };
    // A dry run: before → after, nothing set.
    let (status, body) = send_json(set("?dry_run=true")).await;
    let data = completed_data(status, &body);
    assert_eq!(
        (data["changed"].as_bool(), data["dry_run"].as_bool()),
        (Some(true), Some(true)),
        "{body}"
    );
    assert_eq!(data["before"]["servers"], json!([]), "{body}");
    assert_eq!(
        data["after"]["servers"],
        json!(["192.0.2.53", "2001:db8::53"]),
        "{body}"
    );
    assert!(
        !resolved
            .resolvectl(&["status", &link.name])
            .contains("192.0.2.53")
    );

    let (status, body) = send_json(set("")).await;
    let data = completed_data(status, &body);
    assert_eq!(data["changed"], true, "{body}");
    assert_eq!(
        data["after"]["servers"],
        json!(["192.0.2.53", "2001:db8::53"]),
        "{body}"
    );
    assert_eq!(
        data["after"]["search_domains"],
        json!(["corp.example"]),
        "{body}"
    );
    assert_eq!(data["source"], "resolved", "{body}");
    // A test veth is managed by no network manager: runtime only, and said so.
    assert_eq!(data["persisted"], false, "{body}");
    assert!(
        data["note"]
            .as_str()
            .is_some_and(|n| n.contains("runtime only")),
        "{body}"
    );

    let status_text = resolved.resolvectl(&["status", &link.name]);
    for expected in ["192.0.2.53", "2001:db8::53", "corp.example"] {
        assert!(
            status_text.contains(expected),
            "{expected} in {status_text}"
        );
    }
    // Again: already so, nothing to do.
    let (status, body) = send_json(set("")).await;
    assert_eq!(completed_data(status, &body)["changed"], false, "{body}");

    let (status, body) = stack.get_json(&path, &token).await;
    let data = completed_data(status, &body);
    assert_eq!(data["interface"], link.name.as_str(), "{body}");
    assert_eq!(
        data["servers"],
        json!(["192.0.2.53", "2001:db8::53"]),
        "{body}"
    );
    assert_eq!(data["search_domains"], json!(["corp.example"]), "{body}");
    assert_eq!(data["source"], "resolved", "{body}");

    // An unknown interface is a 404 naming it, for reads and writes alike.
    let missing = format!("osapi-nx{}", &link.name[7..]);
    let missing_path = format!("/api/v1/network/dns/{missing}");
    for request in [
        stack.get(&missing_path, &token),
        stack
            .request(Method::PUT, &missing_path, &token)
            .json(&json!({"servers": ["192.0.2.1"]})),
    ] {
        let (status, body) = send_json(request).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&missing)),
            "{body}"
        );
        assert!(body["job_id"].is_string(), "{body}");
    }

    // An invalid address is refused before any job exists.
    let (status, body) = send_json(
        stack
            .request(Method::PUT, &path, &token)
            .json(&json!({"servers": ["192.0.2.300"]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "servers[0]", "{body}");
    let status_text = resolved.resolvectl(&["dns", &link.name]);
    assert!(status_text.contains("192.0.2.53"), "{status_text}");

    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        resolv_before,
        "/etc/resolv.conf changed"
    );
}

/// A bus without hostnamed or resolved: reads fall back to uname and resolv.conf and
/// say so; writes fail clearly in the host's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_services_reads_fall_back_and_writes_fail() {
    let bus = PrivateBus::start().await;
    let stack = Stack::start(&[agent_on("dbus-none", &bus)]).await;
    let token = stack.token(&["admin"]);

    let (status, body) = stack.get_json("/api/v1/node/hostname", &token).await;
    let data = completed_data(status, &body);
    assert_eq!(data["source"], "uname", "{body}");
    assert_eq!(data["hostname"], machine_hostname().as_str(), "{body}");

    let (status, body) = stack.get_json("/api/v1/network/dns/lo", &token).await;
    let data = completed_data(status, &body);
    assert_eq!(data["source"], "resolv_conf", "{body}");

    for (path, body) in [
        ("/api/v1/node/hostname", json!({"hostname": "never-set"})),
        ("/api/v1/network/dns/lo", json!({"servers": ["192.0.2.1"]})),
    ] {
        let (status, body) = send_json(stack.request(Method::PUT, path, &token).json(&body)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "failed", "{body}");
        let error = &body["results"][0]["error"];
        assert_eq!(error["code"], "unavailable", "{body}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("systemd-hostnamed") || m.contains("systemd-resolved")),
            "{body}"
        );
    }
}

/// The zone, NTP and the clock through the real systemd-timedated: a zone is
/// set (dry run first), read back with busctl and the namespace's
/// `/etc/localtime`, set again without a change; a zone the tz database lacks
/// and a malformed one are refused. Setting the time is tried as a dry run
/// only: a real one would move this machine's clock. Only zones of offset 0
/// are set, after the clock warp is sealed, so the kernel's zone stays 0;
/// this machine's `/etc/localtime` must be the same at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_zone_is_set_through_timedated() {
    let machine_localtime = std::fs::read_link("/etc/localtime").ok();
    let bus = PrivateBus::start().await;
    let timedated = Timedated::start(&bus).await;
    let stack = Stack::start(&[agent_on("clock-host", &bus)]).await;
    let admin = stack.token(&["admin"]);
    let read = stack.token(&["read"]);
    let zone_property = || {
        bus.get_property(
            "org.freedesktop.timedate1",
            "/org/freedesktop/timedate1",
            "org.freedesktop.timedate1",
            "Timezone",
        )
    };

    let (status, body) = stack.get_json("/api/v1/time/clock", &read).await;
    let data = completed_data(status, &body);
    let before = data["timezone"].as_str().expect("timezone").to_owned();
    assert!(timedated.localtime().ends_with(&before), "{body}");
    let zone = ["Africa/Abidjan", "Atlantic/Reykjavik"]
        .into_iter()
        .find(|z| *z != before)
        .expect("a zone of offset 0 that is not the current one");

    let set = |query: &str, body: Value, token: &str| {
        stack
            .request(Method::PUT, &format!("/api/v1/time/zone{query}"), token)
            .json(&body)
    };
    // A dry run reports before → after and changes nothing.
    let (status, body) = send_json(set("?dry_run=true", json!({"timezone": zone}), &admin)).await;
    let data = completed_data(status, &body);
    assert_eq!(
        (data["changed"].as_bool(), data["dry_run"].as_bool()),
        (Some(true), Some(true)),
        "{body}"
    );
    assert_eq!(data["before"]["timezone"], before.as_str(), "{body}");
    assert_eq!(data["after"]["timezone"], zone, "{body}");
    assert!(timedated.localtime().ends_with(&before));

    // The real change, read back with tools that are not ours.
    let (status, body) = send_json(set("", json!({"timezone": zone}), &admin)).await;
    let data = completed_data(status, &body);
    assert_eq!(data["changed"], true, "{body}");
    assert_eq!(data["after"]["timezone"], zone, "{body}");
    assert_eq!(zone_property(), format!("s \"{zone}\""));
    assert!(
        timedated.localtime().ends_with(zone),
        "{}",
        timedated.localtime()
    );

    // Again: nothing to do.
    let (status, body) = send_json(set("", json!({"timezone": zone}), &admin)).await;
    assert_eq!(completed_data(status, &body)["changed"], false, "{body}");

    // Not in the tz database: the agent refuses it by name, nothing changes.
    let (status, body) = send_json(set("", json!({"timezone": "Mars/Olympus_Mons"}), &admin)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("failed")),
        "{body}"
    );
    let error = &body["results"][0]["error"];
    assert_eq!(error["code"], "invalid_input", "{body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("Mars/Olympus_Mons")),
        "{body}"
    );
    // Malformed: the API refuses it before any job.
    let (status, body) = send_json(set("", json!({"timezone": "../../etc/shadow"}), &admin)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("timezone")),
        "{body}"
    );
    // A read token may not.
    let (status, _) = send_json(set("", json!({"timezone": before}), &read)).await;
    assert_eq!(status, 403);
    assert_eq!(zone_property(), format!("s \"{zone}\""));

    // The time: a dry run shows the new time and sets nothing.
    let (status, body) = send_json(
        stack
            .request(Method::PUT, "/api/v1/time/clock?dry_run=true", &admin)
            .json(&json!({"time": "2031-05-04T03:02:01Z"})),
    )
    .await;
    let data = completed_data(status, &body);
    // This timedated knows no NTP service: NTP is off.
    assert_eq!(data["before"]["ntp"], false, "{body}");
    assert_eq!(data["dry_run"], true, "{body}");
    assert_eq!(data["after"]["time"], "2031-05-04T03:02:01Z", "{body}");
    // And NTP cannot be turned on: the agent says why.
    let (status, body) = send_json(
        stack
            .request(Method::PUT, "/api/v1/time/ntp", &admin)
            .json(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("failed")),
        "{body}"
    );
    let message = body["results"][0]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("no NTP service"), "{body}");
    let year = time::OffsetDateTime::now_utc().year();
    assert!(year < 2031, "this machine's clock moved: {year}");

    drop(stack);
    drop(timedated);
    seal_clock_warp();
    assert_eq!(std::fs::read_link("/etc/localtime").ok(), machine_localtime);
}
