//! The agent registry: each agent puts a heartbeat under its hostname every
//! `heartbeat_interval`; the bucket's TTL makes a silent agent disappear.
//! [`LiveAgents`] is the API's in-memory view, kept current by a watch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use time::OffsetDateTime;

use super::BusError;
use crate::retry::Backoff;
pub use crate::wire::AgentInfo;

/// KV keys cannot hold every character a hostname might; dots are fine.
pub(crate) fn registry_key(hostname: &str) -> String {
    hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether something stored under the host key `key_host` (a heartbeat, a
/// result, an event) may speak for `hostname`: NATS permissions bind an
/// enrolled agent to its own host key, so an entry naming another host is
/// ignored, loudly. `what` names it in that log line.
pub(super) fn speaks_for(key_host: &str, hostname: &str, what: &str) -> bool {
    let ok = registry_key(hostname) == key_host;
    if !ok {
        tracing::warn!(key = key_host, %hostname, "ignoring a {what} that names another host than its key");
    }
    ok
}

/// Writes and reads heartbeats.
#[derive(Clone)]
pub struct Registry {
    kv: kv::Store,
    ttl: Duration,
}

impl Registry {
    pub fn new(kv: kv::Store, ttl: Duration) -> Self {
        Registry { kv, ttl }
    }

    pub async fn heartbeat(&self, info: &AgentInfo) -> Result<(), BusError> {
        let body = serde_json::to_vec(info).map_err(|source| BusError::Corrupt {
            what: "agent info",
            source,
        })?;
        self.kv
            .put(registry_key(&info.hostname), body.into())
            .await
            .map_err(|e| BusError::request("writing a heartbeat", e))?;
        Ok(())
    }

    /// Remove an agent at graceful shutdown, so it leaves the live set at once.
    pub async fn remove(&self, hostname: &str) -> Result<(), BusError> {
        self.kv
            .purge(registry_key(hostname))
            .await
            .map_err(|e| BusError::request("removing a heartbeat", e))
    }

    /// Follow the registry into a [`LiveAgents`] view. The returned view is filled
    /// with the current heartbeats before this returns.
    pub async fn watch(&self) -> Result<LiveAgents, BusError> {
        let live = LiveAgents {
            inner: Arc::new(RwLock::new(HashMap::new())),
            ttl: self.ttl,
        };
        let mut watch = self
            .kv
            .watch_with_history(">")
            .await
            .map_err(|e| BusError::request("watching the registry", e))?;
        // Drain what is stored now (the last entry has delta 0), then keep
        // following in the background.
        let stored = self.kv.status().await.map(|s| s.values()).unwrap_or(0);
        if stored > 0 {
            while let Ok(Some(Ok(entry))) =
                tokio::time::timeout(Duration::from_secs(5), watch.next()).await
            {
                let last = entry.delta == 0;
                live.apply(entry);
                if last {
                    break;
                }
            }
        }
        let follower = live.clone();
        let kv = self.kv.clone();
        tokio::spawn(async move {
            // A watch can end (its consumer lost with a NATS node, the bucket
            // recreated); the view must not silently freeze, so watch again. The
            // history replay re-applies every stored heartbeat, which is harmless.
            loop {
                let mut errors = 0;
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(entry) => {
                            errors = 0;
                            follower.apply(entry)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "registry watch error");
                            errors += 1;
                            if errors >= 3 {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!("registry watch ended; watching again");
                let mut backoff = Backoff::new();
                loop {
                    backoff.wait().await;
                    match kv.watch_with_history(">").await {
                        Ok(w) => {
                            watch = w;
                            break;
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot watch the registry yet"),
                    }
                }
            }
        });
        Ok(live)
    }
}

/// The API's view of live agents: the last heartbeat of each, and when NATS stored it.
#[derive(Clone)]
pub struct LiveAgents {
    inner: Arc<RwLock<HashMap<String, (AgentInfo, OffsetDateTime)>>>,
    ttl: Duration,
}

impl LiveAgents {
    fn apply(&self, entry: kv::Entry) {
        let Ok(mut map) = self.inner.write() else {
            return;
        };
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<AgentInfo>(&entry.value) {
                // NATS binds an enrolled agent to its own key; what it says
                // about itself must be that host too.
                Ok(info) if !speaks_for(&entry.key, &info.hostname, "heartbeat") => {
                    map.remove(&entry.key);
                }
                Ok(info) => {
                    let stored = OffsetDateTime::from_unix_timestamp_nanos(
                        entry.created.unix_timestamp_nanos(),
                    )
                    .unwrap_or_else(|_| OffsetDateTime::now_utc());
                    map.insert(entry.key, (info, stored));
                }
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "ignoring an unreadable heartbeat")
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                map.remove(&entry.key);
            }
        }
    }

    /// The agents whose last heartbeat is younger than the registry TTL, by hostname.
    pub fn snapshot(&self) -> Vec<AgentInfo> {
        let now = OffsetDateTime::now_utc();
        let ttl = time::Duration::try_from(self.ttl).unwrap_or(time::Duration::seconds(30));
        let Ok(map) = self.inner.read() else {
            return Vec::new();
        };
        let mut agents: Vec<AgentInfo> = map
            .values()
            .filter(|(_, stored)| now - *stored < ttl)
            .map(|(info, _)| info.clone())
            .collect();
        agents.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        agents
    }

    pub fn get(&self, hostname: &str) -> Option<AgentInfo> {
        self.snapshot().into_iter().find(|a| a.hostname == hostname)
    }
}
