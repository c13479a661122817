//! Joining a fleet from another host ([`crate::enrollment`]): the agent
//! connects with its own key; while the server refuses it, it files its
//! request with the join credential and looks again, until an admin accepts
//! it or the agent is stopped.

use std::time::Duration;

use async_nats::jetstream;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::{AgentError, AgentSettings};
use crate::bus::Names;
use crate::bus::{self, BusError, Role};
use crate::config::NatsClientAuth;
use crate::enrollment::Enrollment;
use crate::retry::Backoff;

/// The longest wait between two looks: how long an accepted agent may take
/// to notice.
const RETRY_CEILING: Duration = Duration::from_secs(5);
/// File the request again every this many looks (about a minute at the
/// ceiling), in case a full request bucket dropped it.
const REFILE_EVERY: u32 = 12;

/// Connect as this agent; `None` when stopped while still waiting.
pub(super) async fn connect(
    settings: &AgentSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<(async_nats::Client, watch::Receiver<u64>)>, AgentError> {
    let cfg = &settings.agent;
    let name = format!("osapi-agent-{}", cfg.hostname);
    let mut backoff = Backoff::between(Duration::from_millis(500), RETRY_CEILING);
    let mut look = 0u32;
    loop {
        let public_key = match bus::connect_watched(&cfg.nats, Role::Agent, &name).await {
            Err(BusError::NotEnrolled { public_key }) => public_key,
            other => return Ok(Some(other?)),
        };
        if look.is_multiple_of(REFILE_EVERY) {
            match file_request(settings, &name).await {
                Ok(()) => tracing::info!(
                    %public_key,
                    hostname = %cfg.hostname,
                    "asked to join; waiting for an admin: osapictl agent accept {public_key}"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot file the enrollment request yet"),
            }
        }
        crate::systemd::waiting(&format!(
            "pending: waiting for an admin to accept key {public_key}"
        ));
        tokio::select! {
            () = backoff.wait() => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(None),
        }
        look = look.wrapping_add(1);
    }
}

/// File this agent's signed request, with the join credential.
async fn file_request(settings: &AgentSettings, name: &str) -> Result<(), AgentError> {
    let cfg = &settings.agent;
    let NatsClientAuth::Enroll { identity_file, .. } = &cfg.nats.auth else {
        return Ok(());
    };
    let key = bus::credentials::ensure_identity(identity_file).map_err(BusError::from)?;
    let request = Enrollment::request(&key, &cfg.hostname, &cfg.labels, OffsetDateTime::now_utc())?;
    let client = bus::connect(&cfg.nats, Role::Enroll, name).await?;
    let js = jetstream::new(client);
    bus::enrollment::submit(&js, &Names::new(settings.namespace.clone()), &request).await?;
    Ok(())
}
