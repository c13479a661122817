//! The request side of auditing and the background writer behind it.
//!
//! [`Auditor::record`] writes the journal copy and enqueues the entry in a bounded
//! channel; it never waits for NATS. The writer takes entries one at a time, in
//! order, and stores each with back-off retries until it is stored, so entries
//! made while NATS is away appear once it is back. When the buffer is full the
//! entry is not stored in the bucket (its journal copy exists): that is counted
//! in `osapi_audit_dropped_total` and logged, at most every few seconds.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, Registry};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::failures::FailedAuth;
use super::{AuditEntry, AuditError, JournalSink, journal};
use crate::bus::BusError;
use crate::retry::Backoff;

/// Entries waiting for the bucket at most; past that they are dropped (counted).
pub const BUFFER_CAPACITY: usize = 10_000;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At most one warning of each kind this often, however many entries are affected.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Where the writer stores entries (the audit bucket; a fake in tests).
pub trait EntrySink: Send + Sync + 'static {
    fn put(&self, entry: &AuditEntry) -> impl Future<Output = Result<(), BusError>> + Send;
}

/// Lets a message through at most once per period.
struct RateLimit {
    last: Mutex<Option<Instant>>,
    every: Duration,
}

impl RateLimit {
    fn new(every: Duration) -> Self {
        RateLimit {
            last: Mutex::new(None),
            every,
        }
    }

    fn allow(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let now = Instant::now();
        if last.is_some_and(|l| now.duration_since(l) < self.every) {
            return false;
        }
        *last = Some(now);
        true
    }
}

struct Inner {
    tx: mpsc::Sender<AuditEntry>,
    /// Entries accepted and not yet stored: queued, plus the one being written.
    pending: Arc<AtomicUsize>,
    journal: Option<JournalSink>,
    dropped: IntCounter,
    journal_failures: IntCounter,
    overflow_log: RateLimit,
    journal_log: RateLimit,
    failures: FailedAuth,
}

/// The request path's handle: cheap to clone, never blocks on NATS.
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

/// The background writer; [`AuditWriter::finish`] flushes it on shutdown.
pub struct AuditWriter {
    task: JoinHandle<()>,
    closing: watch::Sender<bool>,
    pending: Arc<AtomicUsize>,
    /// Records aggregated failed authentications as their windows close.
    failures: JoinHandle<()>,
    auditor: Auditor,
}

/// How often closed windows of failed authentications are recorded.
const FAILURES_FLUSH_EVERY: Duration = Duration::from_secs(5);

impl Auditor {
    /// The auditor and its writer storing into `sink`, with its metrics
    /// (`osapi_audit_*`) in `registry`. `journal: None` writes no journal copies.
    pub fn start<S: EntrySink>(
        sink: S,
        journal: Option<JournalSink>,
        capacity: usize,
        registry: &Registry,
    ) -> Result<(Auditor, AuditWriter), AuditError> {
        let (auditor, rx) = Self::unstarted(journal, capacity, registry)?;
        let (closing, closing_rx) = watch::channel(false);
        let pending = auditor.inner.pending.clone();
        let dropped = auditor.inner.dropped.clone();
        let task = tokio::spawn(write_all(sink, rx, pending.clone(), dropped, closing_rx));
        let flusher = auditor.clone();
        let failures = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FAILURES_FLUSH_EVERY);
            loop {
                tick.tick().await;
                flusher.flush_failures(false).await;
            }
        });
        Ok((
            auditor.clone(),
            AuditWriter {
                task,
                closing,
                pending,
                failures,
                auditor,
            },
        ))
    }

    fn unstarted(
        journal: Option<JournalSink>,
        capacity: usize,
        registry: &Registry,
    ) -> Result<(Auditor, mpsc::Receiver<AuditEntry>), AuditError> {
        use crate::metrics;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        let dropped = metrics::counter(
            registry,
            "osapi_audit_dropped_total",
            "Audit entries not stored in the audit bucket: the buffer was full or the bucket refused them (their journal copy was written).",
        )?;
        let journal_failures = metrics::counter(
            registry,
            "osapi_audit_journal_failures_total",
            "Audit entries whose journal copy could not be written (no journal socket, or journald not reading).",
        )?;
        let gauge_pending = pending.clone();
        metrics::scrape_gauge(
            registry,
            "osapi_audit_buffered",
            "Audit entries waiting to be stored in the audit bucket.",
            move || gauge_pending.load(Ordering::Relaxed) as f64,
        )?;
        let inner = Inner {
            tx,
            pending,
            journal,
            dropped,
            journal_failures,
            overflow_log: RateLimit::new(LOG_EVERY),
            journal_log: RateLimit::new(LOG_EVERY),
            failures: FailedAuth::default(),
        };
        Ok((
            Auditor {
                inner: Arc::new(inner),
            },
            rx,
        ))
    }

    /// Record one entry: its journal copy now, its bucket copy through the
    /// buffer. Failed authentications (401) are aggregated per source and
    /// window ([`super::failures`]).
    pub async fn record(&self, entry: AuditEntry) {
        let entry = if entry.response_code == 401 {
            match self.inner.failures.admit(entry, Instant::now()) {
                Some(first) => first,
                None => return,
            }
        } else {
            entry
        };
        self.store(entry).await;
    }

    /// Record the aggregates of failed authentications whose window closed
    /// (every one with `all`).
    async fn flush_failures(&self, all: bool) {
        for entry in self.inner.failures.flush(Instant::now(), all) {
            self.store(entry).await;
        }
    }

    async fn store(&self, entry: AuditEntry) {
        let inner = &self.inner;
        match &inner.journal {
            None => inner.journal_failures.inc(),
            Some(sink) => {
                if let Err(e) = sink.send(&journal::encode(&journal::fields(&entry))).await {
                    inner.journal_failures.inc();
                    // No journal on this host is normal (a development machine).
                    if e.kind() != std::io::ErrorKind::NotFound && inner.journal_log.allow() {
                        tracing::warn!(error = %e, failures = inner.journal_failures.get(), "cannot write audit entries to the journal");
                    }
                }
            }
        }
        // Counted before it is queued, so the writer's decrement never comes first.
        inner.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = inner.tx.try_send(entry) {
            inner.pending.fetch_sub(1, Ordering::Relaxed);
            inner.dropped.inc();
            if inner.overflow_log.allow() {
                let reason = match e {
                    mpsc::error::TrySendError::Full(_) => "the audit buffer is full",
                    mpsc::error::TrySendError::Closed(_) => "the audit writer has stopped",
                };
                tracing::warn!(
                    dropped_total = inner.dropped.get(),
                    "{reason}: audit entries are kept in the journal only"
                );
            }
        }
    }

    /// Entries accepted and not yet in the bucket.
    pub fn buffered(&self) -> usize {
        self.inner.pending.load(Ordering::Relaxed)
    }

    /// Entries not stored in the bucket because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.get()
    }
}

impl AuditWriter {
    /// Stop taking new work once the buffer is empty, storing what is queued for at
    /// most `grace`; what is left then stays in the journal only.
    pub async fn finish(mut self, grace: Duration) {
        self.failures.abort();
        self.auditor.flush_failures(true).await;
        let _ = self.closing.send(true);
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(_) => tracing::debug!("audit entries flushed"),
            Err(_) => {
                self.task.abort();
                tracing::warn!(
                    left = self.pending.load(Ordering::Relaxed),
                    "audit entries not stored in the bucket before shutdown (they are in the journal)"
                );
            }
        }
    }
}

async fn write_all<S: EntrySink>(
    sink: S,
    mut rx: mpsc::Receiver<AuditEntry>,
    pending: Arc<AtomicUsize>,
    dropped: IntCounter,
    mut closing: watch::Receiver<bool>,
) {
    let retry_log = RateLimit::new(LOG_EVERY);
    let mut shutting_down = false;
    loop {
        let entry = if shutting_down {
            // Drain what is queued, then stop.
            match rx.try_recv() {
                Ok(e) => e,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
                _ = closing.changed() => {
                    shutting_down = true;
                    continue;
                }
            }
        };
        let mut backoff = Backoff::between(MIN_BACKOFF, MAX_BACKOFF);
        loop {
            match sink.put(&entry).await {
                Ok(()) => break,
                // Cannot ever be stored (unserialisable, or refused by the
                // bucket rather than NATS being away): retrying would block
                // every later entry. Counted and logged, never silent.
                Err(e) if !e.is_transient() => {
                    dropped.inc();
                    tracing::warn!(id = %entry.id, error = %e, dropped_total = dropped.get(), "dropping an audit entry the bucket refuses (its journal copy was written)");
                    break;
                }
                Err(e) => {
                    if retry_log.allow() {
                        tracing::warn!(error = %e, buffered = pending.load(Ordering::Relaxed), "cannot store audit entries yet; retrying");
                    }
                    backoff.wait().await;
                }
            }
        }
        pending.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sample_entry;

    /// Stores in memory; fails the first `fail` puts as if NATS were away.
    #[derive(Clone, Default)]
    struct Memory {
        stored: Arc<Mutex<Vec<AuditEntry>>>,
        fail: Arc<AtomicUsize>,
    }

    impl EntrySink for Memory {
        async fn put(&self, entry: &AuditEntry) -> Result<(), BusError> {
            if self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(BusError::request(
                    "storing an audit entry",
                    async_nats::jetstream::context::PublishError::new(
                        async_nats::jetstream::context::PublishErrorKind::TimedOut,
                    ),
                ));
            }
            self.stored.lock().unwrap().push(entry.clone());
            Ok(())
        }
    }

    fn text(registry: &Registry) -> String {
        crate::metrics::render(registry).unwrap()
    }

    #[tokio::test]
    async fn overflow_is_counted_never_silent() {
        let registry = Registry::new();
        let (auditor, _rx) = Auditor::unstarted(None, 3, &registry).unwrap();
        for _ in 0..5 {
            auditor.record(sample_entry()).await;
        }
        assert_eq!(auditor.buffered(), 3);
        assert_eq!(auditor.dropped(), 2);
        let t = text(&registry);
        assert!(t.contains("osapi_audit_dropped_total 2\n"), "{t}");
        assert!(t.contains("osapi_audit_buffered 3\n"), "{t}");
        // Without a journal each journal copy is a counted failure.
        assert!(t.contains("osapi_audit_journal_failures_total 5\n"), "{t}");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_stored_in_order_after_failures() {
        let registry = Registry::new();
        let sink = Memory::default();
        sink.fail.store(4, Ordering::SeqCst);
        let (auditor, writer) = Auditor::start(sink.clone(), None, 100, &registry).unwrap();
        let entries: Vec<AuditEntry> = (0..10).map(|_| sample_entry()).collect();
        for e in &entries {
            auditor.record(e.clone()).await;
        }
        // Paused time: the back-off sleeps pass as soon as every task waits.
        writer.finish(Duration::from_secs(60)).await;
        assert_eq!(*sink.stored.lock().unwrap(), entries);
        assert_eq!(auditor.buffered(), 0);
        assert_eq!(auditor.dropped(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn finish_gives_up_after_the_grace() {
        let registry = Registry::new();
        let sink = Memory::default();
        sink.fail.store(usize::MAX, Ordering::SeqCst);
        let (auditor, writer) = Auditor::start(sink.clone(), None, 100, &registry).unwrap();
        auditor.record(sample_entry()).await;
        auditor.record(sample_entry()).await;
        writer.finish(Duration::from_secs(2)).await;
        assert!(sink.stored.lock().unwrap().is_empty());
        assert_eq!(auditor.buffered(), 2);
    }

    #[test]
    fn rate_limit_lets_one_through_per_period() {
        let r = RateLimit::new(Duration::from_secs(3600));
        assert!(r.allow());
        assert!(!r.allow());
    }
}
