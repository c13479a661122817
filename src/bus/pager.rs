//! Walking a bucket's stream by sequence, a window at a time, by direct get.
//!
//! A bucket whose keys are written once (job ids, audit entry ids — both UUIDv7)
//! holds its values in creation order, so the stream itself is the index: the
//! newest values are the highest sequences. A [`StreamPager`] reads a window of
//! sequences concurrently (direct gets pipeline on one connection), skips what
//! is gone (expired, deleted, overwritten) and hands back a cursor — the next
//! sequence not yet read — so listings stay cheap however many values exist.

use async_nats::HeaderMap;
use async_nats::jetstream::stream;
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use super::BusError;

/// Sequences read per window.
const WINDOW: u64 = 32;
/// Direct gets in flight at once.
const IN_FLIGHT: usize = 16;

/// A delete or purge marker left by the KV layer.
pub(crate) fn is_tombstone(headers: &HeaderMap) -> bool {
    headers
        .get("KV-Operation")
        .is_some_and(|v| matches!(v.as_str(), "DEL" | "PURGE"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// A position in a stream and a direction to read it in.
pub struct StreamPager {
    stream: stream::Stream,
    order: Order,
    /// Lowest and highest sequence the walk covers (fixed when opened).
    first: u64,
    last: u64,
    /// Next sequence to read; outside `first..=last` when done.
    next: u64,
    scanned: usize,
    doing: &'static str,
}

impl StreamPager {
    /// Start at `cursor` (a sequence a previous page handed out) or at the newest
    /// (`NewestFirst`) or oldest (`OldestFirst`) value.
    pub async fn open(
        stream: &stream::Stream,
        order: Order,
        cursor: Option<u64>,
        doing: &'static str,
    ) -> Result<Self, BusError> {
        let info = stream
            .get_info()
            .await
            .map_err(|e| BusError::request(doing, e))?;
        let first = info.state.first_sequence.max(1);
        let last = info.state.last_sequence;
        let next = match order {
            Order::NewestFirst => cursor.unwrap_or(last).min(last),
            Order::OldestFirst => cursor.unwrap_or(first).max(first),
        };
        Ok(StreamPager {
            stream: stream.clone(),
            order,
            first,
            last,
            next,
            scanned: 0,
            doing,
        })
    }

    pub fn is_done(&self) -> bool {
        self.next < self.first || self.next > self.last || self.next == 0
    }

    /// Sequences inspected so far.
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// Where a later page continues: the next sequence not yet read, `None` at the end.
    pub fn cursor(&self) -> Option<u64> {
        (!self.is_done()).then_some(self.next)
    }

    /// Continue from `seq` rather than after the last window: for a caller that
    /// stopped part-way through one (a full page), `seq` being the first value it
    /// did not take.
    pub fn resume_at(&mut self, seq: u64) {
        self.next = seq;
    }

    /// The next window's values, in this pager's order, with their sequences.
    /// Sequences holding nothing (gone, a delete marker) or a value that does not
    /// decode as `T` are skipped. Empty when done.
    pub async fn next_window<T: DeserializeOwned>(&mut self) -> Result<Vec<(u64, T)>, BusError> {
        if self.is_done() {
            return Ok(Vec::new());
        }
        let window: Vec<u64> = match self.order {
            Order::NewestFirst => {
                let low = self.first.max(self.next.saturating_sub(WINDOW - 1));
                let w = (low..=self.next).rev().collect();
                self.next = low - 1;
                w
            }
            Order::OldestFirst => {
                let high = self.last.min(self.next + WINDOW - 1);
                let w = (self.next..=high).collect();
                self.next = high + 1;
                w
            }
        };
        self.scanned += window.len();
        let stream = &self.stream;
        let doing = self.doing;
        let fetched: Vec<Option<(u64, T)>> = futures::stream::iter(window)
            .map(|seq| async move {
                match stream.direct_get(seq).await {
                    Ok(msg) if is_tombstone(&msg.headers) => Ok(None),
                    Ok(msg) => Ok(serde_json::from_slice(&msg.payload).ok().map(|v| (seq, v))),
                    Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
                    Err(e) => Err(BusError::request(doing, e)),
                }
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(fetched.into_iter().flatten().collect())
    }
}
