//! Failed authentications, aggregated: a flood of junk tokens must not fill the
//! audit trail and push real entries out. The first 401 from a source in a
//! window is recorded as usual; the rest from that source in the same window
//! are counted, and become one entry (`count` = how many) when the window
//! closes. Nothing goes unrecorded, only uncounted one by one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

use super::AuditEntry;

/// How long one source's failures are gathered into one entry.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at once; beyond, further sources share one aggregate, so
/// a spray of addresses costs bounded memory.
const MAX_SOURCES: usize = 4096;
/// The shared aggregate's source when [`MAX_SOURCES`] is reached.
const OTHER_SOURCES: &str = "other";

struct Aggregate {
    opened: Instant,
    /// Failures after the first, not yet recorded.
    count: u64,
    /// The latest of them, as a template for the aggregate entry.
    last: Option<AuditEntry>,
}

/// Per-source windows of failed authentications.
#[derive(Default)]
pub struct FailedAuth {
    sources: Mutex<HashMap<String, Aggregate>>,
}

impl FailedAuth {
    /// Take a 401: `Some(entry)` to record it now (the first of its window),
    /// or `None` when it was counted into its source's aggregate.
    pub fn admit(&self, mut entry: AuditEntry, now: Instant) -> Option<AuditEntry> {
        let Ok(mut sources) = self.sources.lock() else {
            return Some(entry);
        };
        let key = if sources.len() >= MAX_SOURCES && !sources.contains_key(&entry.source_ip) {
            OTHER_SOURCES.to_owned()
        } else {
            entry.source_ip.clone()
        };
        if let Some(agg) = sources.get_mut(&key)
            && now.duration_since(agg.opened) < WINDOW
        {
            agg.count += 1;
            agg.last = Some(entry);
            return None;
        }
        // A new window. One that closed without a flush hands its count to
        // this entry, which then stands for all of them.
        let carried = sources
            .insert(
                key,
                Aggregate {
                    opened: now,
                    count: 0,
                    last: None,
                },
            )
            .map_or(0, |old| old.count);
        if carried > 0 {
            entry.count = Some(carried + 1);
        }
        Some(entry)
    }

    /// The aggregates of windows closed by `now` (all of them with `all`,
    /// at shutdown), as entries to record.
    pub fn flush(&self, now: Instant, all: bool) -> Vec<AuditEntry> {
        let Ok(mut sources) = self.sources.lock() else {
            return Vec::new();
        };
        let closed: Vec<String> = sources
            .iter()
            .filter(|(_, a)| all || now.duration_since(a.opened) >= WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|k| {
                let agg = sources.remove(&k)?;
                aggregate_entry(agg, &k)
            })
            .collect()
    }
}

/// One entry standing for an aggregate's counted failures from `source`.
fn aggregate_entry(agg: Aggregate, source: &str) -> Option<AuditEntry> {
    let last = agg.last?;
    (agg.count > 0).then(|| AuditEntry {
        id: Uuid::now_v7(),
        timestamp: OffsetDateTime::now_utc(),
        source_ip: source.to_owned(),
        count: Some(agg.count),
        detail: None,
        duration_ms: 0,
        job_id: None,
        ..last
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sample_entry;

    fn failure(source: &str) -> AuditEntry {
        AuditEntry {
            user: crate::audit::ANONYMOUS.into(),
            roles: vec![],
            response_code: 401,
            source_ip: source.into(),
            job_id: None,
            ..sample_entry()
        }
    }

    #[test]
    fn the_first_failure_is_recorded_the_rest_counted_per_source() {
        let f = FailedAuth::default();
        let t0 = Instant::now();
        assert!(f.admit(failure("10.0.0.1"), t0).is_some());
        for _ in 0..529 {
            assert!(f.admit(failure("10.0.0.1"), t0).is_none());
        }
        // Another source has a window of its own.
        assert!(f.admit(failure("10.0.0.2"), t0).is_some());
        assert!(f.flush(t0, false).is_empty(), "windows still open");
        let closed = f.flush(t0 + WINDOW, false);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].count, Some(529));
        assert_eq!(closed[0].source_ip, "10.0.0.1");
        assert_eq!(closed[0].response_code, 401);
        // A new window after the flush starts with a recorded entry again.
        assert!(f.admit(failure("10.0.0.1"), t0 + WINDOW).is_some());
    }

    #[test]
    fn a_late_flush_loses_nothing() {
        let f = FailedAuth::default();
        let t0 = Instant::now();
        f.admit(failure("10.0.0.1"), t0);
        f.admit(failure("10.0.0.1"), t0);
        f.admit(failure("10.0.0.1"), t0);
        // No flush ran; the next failure comes after the window.
        let e = f.admit(failure("10.0.0.1"), t0 + WINDOW).unwrap();
        assert_eq!(e.count, Some(3), "two counted plus this one");
        // And the new window starts from there.
        assert!(f.admit(failure("10.0.0.1"), t0 + WINDOW).is_none());
    }

    #[test]
    fn a_spray_of_sources_costs_bounded_memory() {
        let f = FailedAuth::default();
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES + 100) {
            f.admit(failure(&format!("fd00::{i:x}")), t0);
        }
        assert!(f.sources.lock().unwrap().len() <= MAX_SOURCES + 1);
        let all = f.flush(t0, true);
        assert_eq!(all.len(), 1, "only the shared aggregate counted any");
        assert_eq!(all[0].source_ip, OTHER_SOURCES);
        // The first of them was recorded on its own.
        assert_eq!(all[0].count, Some(99));
    }

    #[test]
    fn aggregate_entries_keep_the_source() {
        let agg = Aggregate {
            opened: Instant::now(),
            count: 2,
            last: Some(failure("192.0.2.9")),
        };
        let e = aggregate_entry(agg, "192.0.2.9").unwrap();
        assert_eq!((e.source_ip.as_str(), e.count), ("192.0.2.9", Some(2)));
    }
}
