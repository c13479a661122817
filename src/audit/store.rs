//! Audit entries in the audit bucket, key = entry id. Ids are UUIDv7 and entries
//! are stored in order, so the bucket's stream is the listing's index, read with
//! [`StreamPager`]: newest first for pages, oldest first for the export.

use async_nats::jetstream::kv;
use futures::{Stream, StreamExt, TryStreamExt};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuditEntry, EntrySink};
use crate::bus::{BusError, Order, StreamPager};

/// How many entries one listing request inspects at most when filters skip most
/// of them; past this it returns a cursor to go on.
const MAX_SCAN: usize = 5000;

/// Filters of the listing and the export.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<String>,
    /// Entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Entries before this time.
    pub until: Option<OffsetDateTime>,
}

impl AuditFilter {
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.user.as_deref().is_none_or(|u| u == e.user)
            && self.since.is_none_or(|s| e.timestamp >= s)
            && self.until.is_none_or(|u| e.timestamp < u)
    }
}

/// One page of entries, newest first.
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass back to continue below the last entry inspected; `None` at the end.
    pub next_cursor: Option<u64>,
}

#[derive(Clone)]
pub struct AuditStore {
    kv: kv::Store,
}

impl AuditStore {
    pub fn new(kv: kv::Store) -> Self {
        AuditStore { kv }
    }

    pub async fn put(&self, entry: &AuditEntry) -> Result<(), BusError> {
        let body = serde_json::to_vec(entry).map_err(|source| BusError::Corrupt {
            what: "audit entry",
            source,
        })?;
        // A put, not a create: a retry after a lost acknowledgement stores the same
        // key again instead of failing.
        self.kv
            .put(entry.id.to_string(), body.into())
            .await
            .map_err(|e| BusError::request("storing an audit entry", e))?;
        Ok(())
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<AuditEntry>, BusError> {
        let Some(bytes) = self
            .kv
            .get(id.to_string())
            .await
            .map_err(|e| BusError::request("reading an audit entry", e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| BusError::Corrupt {
                what: "audit entry",
                source,
            })
    }

    /// Entries newest first, from `cursor` (a stream sequence) downwards when given.
    pub async fn list(
        &self,
        filter: &AuditFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, BusError> {
        let mut pager = StreamPager::open(
            &self.kv.stream,
            Order::NewestFirst,
            cursor,
            "listing audit entries",
        )
        .await?;
        let mut entries = Vec::new();
        'pages: while !pager.is_done() && pager.scanned() < MAX_SCAN {
            for (seq, entry) in pager.next_window::<AuditEntry>().await? {
                if !filter.matches(&entry) {
                    continue;
                }
                if entries.len() == limit {
                    pager.resume_at(seq);
                    break 'pages;
                }
                entries.push(entry);
            }
            if entries.len() == limit {
                break;
            }
        }
        Ok(AuditPage {
            entries,
            next_cursor: pager.cursor(),
        })
    }

    /// Every matching entry, oldest first, read a window at a time as the consumer
    /// asks for more (nothing is collected in memory).
    pub fn export(
        &self,
        filter: AuditFilter,
    ) -> impl Stream<Item = Result<AuditEntry, BusError>> + Send + 'static {
        let stream = self.kv.stream.clone();
        futures::stream::try_unfold(None::<StreamPager>, move |pager| {
            let stream = stream.clone();
            let filter = filter.clone();
            async move {
                let mut pager: StreamPager = match pager {
                    Some(p) => p,
                    None => {
                        StreamPager::open(
                            &stream,
                            Order::OldestFirst,
                            None,
                            "exporting audit entries",
                        )
                        .await?
                    }
                };
                while !pager.is_done() {
                    let window: Vec<AuditEntry> = pager
                        .next_window::<AuditEntry>()
                        .await?
                        .into_iter()
                        .map(|(_, e)| e)
                        .filter(|e| filter.matches(e))
                        .collect();
                    if !window.is_empty() {
                        return Ok::<_, BusError>(Some((window, Some(pager))));
                    }
                }
                Ok(None)
            }
        })
        .map_ok(|window| futures::stream::iter(window.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }
}

impl EntrySink for AuditStore {
    async fn put(&self, entry: &AuditEntry) -> Result<(), BusError> {
        AuditStore::put(self, entry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[test]
    fn filters_by_user_and_half_open_time_range() {
        let mut e = crate::audit::sample_entry();
        e.timestamp = at(1_714_564_800);
        let f = |user: Option<&str>, since, until| AuditFilter {
            user: user.map(str::to_owned),
            since,
            until,
        };
        assert!(f(None, None, None).matches(&e));
        assert!(f(Some("alice"), None, None).matches(&e));
        assert!(!f(Some("bob"), None, None).matches(&e));
        assert!(f(None, Some(e.timestamp), None).matches(&e));
        assert!(!f(None, None, Some(e.timestamp)).matches(&e));
        assert!(f(None, Some(at(1_714_561_200)), Some(at(1_714_568_400))).matches(&e));
    }
}
