//! Operation → provider: the agent's whole vocabulary in one match, testable with
//! fake providers.

use serde::Serialize;

use crate::job::{JobError, Operation};
use crate::provider::{HostnameChange, ProviderError, Providers};

fn to_value<T: Serialize>(r: Result<T, ProviderError>) -> Result<serde_json::Value, JobError> {
    match r {
        Ok(v) => serde_json::to_value(v).map_err(|e| JobError {
            code: "internal".into(),
            message: e.to_string(),
        }),
        Err(e) => Err(JobError {
            code: e.code().into(),
            message: e.to_string(),
        }),
    }
}

/// Run one operation on this host and return its result data.
pub async fn dispatch(op: &Operation, p: &Providers) -> Result<serde_json::Value, JobError> {
    // Inputs were validated at creation; check again, the agent trusts nothing.
    op.validate().map_err(|e| JobError {
        code: "invalid_input".into(),
        message: e.to_string(),
    })?;
    match op {
        Operation::HostnameGet => to_value(p.hostname.get().await),
        Operation::HostnameSet(h) => to_value(
            p.hostname
                .set(&HostnameChange {
                    hostname: h.hostname.clone(),
                    pretty: h.pretty.clone(),
                })
                .await,
        ),
        Operation::StatusGet => to_value(p.host_info.status().await),
        Operation::UptimeGet => to_value(p.host_info.uptime().await),
        Operation::OsGet => to_value(p.host_info.os().await),
        Operation::DiskGet => to_value(p.host_info.disks().await),
        Operation::MemoryGet => to_value(p.host_info.memory().await),
        Operation::LoadGet => to_value(p.host_info.load().await),
        Operation::DnsGet(d) => to_value(p.dns.get(&d.interface).await),
        Operation::DnsSet(d) => to_value(
            p.dns
                .set(&crate::provider::DnsChange {
                    interface: d.interface.clone(),
                    servers: d.servers.clone(),
                    search_domains: d.search_domains.clone(),
                })
                .await,
        ),
        Operation::Ping(ping) => to_value(
            p.ping
                .ping(&crate::provider::PingRequest {
                    address: ping.address.clone(),
                    count: ping.count,
                    timeout: ping.timeout.unwrap_or(std::time::Duration::from_secs(1)),
                })
                .await,
        ),
        Operation::CommandExec(c) => to_value(
            p.command
                .exec(&crate::provider::ExecRequest {
                    command: c.command.clone(),
                    args: c.args.clone(),
                    cwd: c.cwd.clone(),
                    env: c.env.clone(),
                    timeout: c.timeout,
                })
                .await,
        ),
        Operation::CommandShell(c) => to_value(
            p.command
                .shell(&crate::provider::ShellRequest {
                    command: c.command.clone(),
                    cwd: c.cwd.clone(),
                    timeout: c.timeout,
                })
                .await,
        ),
    }
}
