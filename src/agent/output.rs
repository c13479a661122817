//! A command job's live output, from the runner to the bus (issue 12):
//! numbered records, no character cut between two, at most the live cap of
//! each stream (then one `truncated` record), and last the `exit` record.
//! A record that cannot be sent is logged and skipped: live output is a
//! view, the job's result is what counts.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Outcome;
use crate::bus::JobStore;
use crate::job::{OutputChunk, OutputCut, OutputExit, OutputOffsets, OutputRecord, OutputStream};
use crate::provider::{CommandResult, LiveReader, OutputPiece};

/// Most bytes of output in one record.
const CHUNK: usize = 64 * 1024;
/// How often a running command's job is checked for a cancel request.
const CANCEL_POLL: Duration = Duration::from_millis(500);
/// After a record could not be sent, the next ones are dropped this long
/// (the bus is away: the job must not wait on it) before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Sends one host's output of one job.
pub(super) struct OutputPump {
    store: JobStore,
    id: Uuid,
    hostname: String,
    /// The last record's number.
    seq: u64,
    /// Bytes of each stream handed to the bus (their text in records), and
    /// which streams were cut.
    sent: OutputOffsets,
    /// What records the bus took say (an agent started again goes on
    /// from there, so the runner frees only up to it).
    published: OutputOffsets,
    cap: u64,
    /// The start of a character cut at a piece's end, per stream.
    held: [Vec<u8>; 2],
    /// When a send last failed (the first failure is logged).
    failed_at: Option<Instant>,
    /// Nothing is sent at all (where an earlier attempt stopped is unknown).
    off: bool,
    /// The exit was sent already (by an earlier attempt).
    exited: bool,
}

fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

impl OutputPump {
    /// A pump going on after `last`, the host's last record (an earlier
    /// attempt's), if any.
    pub(super) fn new(
        store: JobStore,
        id: Uuid,
        hostname: String,
        cap: u64,
        last: Option<&OutputRecord>,
    ) -> Self {
        let sent = last.map(OutputRecord::sent).unwrap_or_default();
        OutputPump {
            store,
            id,
            hostname,
            seq: last.map_or(0, OutputRecord::seq),
            sent,
            published: sent,
            cap,
            held: [Vec::new(), Vec::new()],
            failed_at: None,
            off: false,
            exited: matches!(last, Some(OutputRecord::Exit(_))),
        }
    }

    /// A pump that sends nothing: an earlier attempt sent output, but how
    /// far is unknown (starting over would send it twice).
    pub(super) fn off(store: JobStore, id: Uuid, hostname: String) -> Self {
        let mut pump = OutputPump::new(store, id, hostname, 0, None);
        pump.off = true;
        pump
    }

    /// Where a runner going on after the last record starts reading.
    pub(super) fn sent(&self) -> OutputOffsets {
        self.sent
    }

    /// How far the runner may free each stream: what the bus took, or all
    /// of a stream no more of which is sent.
    pub(super) fn done_with(&self) -> OutputOffsets {
        let mut done = self.published;
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            if self.off || self.sent.cut(stream) {
                *done.of_mut(stream) = u64::MAX;
            }
        }
        done
    }

    /// Sends what the runner hands on until it is done, merging what is
    /// already queued of one stream into one record, and tells the runner
    /// how far it got.
    pub(super) async fn run(mut self, mut reader: LiveReader) -> Self {
        while let Some(mut piece) = reader.pieces.recv().await {
            while piece.bytes.len() < CHUNK {
                match reader.pieces.try_recv() {
                    Ok(next) if next.stream == piece.stream => piece.bytes.extend(next.bytes),
                    Ok(next) => {
                        self.send(piece).await;
                        reader.confirm(self.done_with());
                        piece = next;
                    }
                    Err(_) => break,
                }
            }
            self.send(piece).await;
            reader.confirm(self.done_with());
        }
        self
    }

    async fn send(&mut self, piece: OutputPiece) {
        let i = index(piece.stream);
        if self.sent.cut(piece.stream) {
            return;
        }
        let mut bytes = std::mem::take(&mut self.held[i]);
        bytes.extend_from_slice(&piece.bytes);
        let start = self.sent.of(piece.stream);
        let room = usize::try_from(self.cap.saturating_sub(start)).unwrap_or(usize::MAX);
        let over = bytes.len() > room;
        bytes.truncate(room);
        // A character cut at the end waits for its other bytes.
        let whole = bytes.len() - crate::provider::command::partial_utf8_tail(&bytes);
        if !over {
            self.held[i] = bytes.split_off(whole);
        } else {
            bytes.truncate(whole);
        }
        // Records of at most CHUNK bytes, each cut between characters.
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let mut end = rest.len().min(CHUNK);
            if end < rest.len() {
                let partial = crate::provider::command::partial_utf8_tail(&rest[..end]);
                if partial < end {
                    end -= partial;
                }
            }
            let (part, tail) = rest.split_at(end);
            self.put_chunk(piece.stream, part).await;
            rest = tail;
        }
        if over {
            *self.sent.cut_mut(piece.stream) = true;
            self.seq += 1;
            let cut = OutputRecord::Truncated(OutputCut {
                hostname: self.hostname.clone(),
                seq: self.seq,
                stream: piece.stream,
                after_bytes: self.sent.of(piece.stream),
                sent: self.sent,
            });
            self.put(&cut, false).await;
        }
    }

    async fn put_chunk(&mut self, stream: OutputStream, part: &[u8]) {
        let offset = self.sent.of(stream);
        *self.sent.of_mut(stream) += part.len() as u64;
        self.seq += 1;
        let chunk = OutputChunk {
            hostname: self.hostname.clone(),
            seq: self.seq,
            offset,
            data: String::from_utf8_lossy(part).into_owned(),
            sent: self.sent,
        };
        let record = match stream {
            OutputStream::Stdout => OutputRecord::Stdout(chunk),
            OutputStream::Stderr => OutputRecord::Stderr(chunk),
        };
        self.put(&record, false).await;
    }

    /// The last record: how the command ended here.
    pub(super) async fn exit(mut self, outcome: &Outcome) {
        if self.exited {
            return;
        }
        // A character's first bytes that never got the rest: as they are.
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let held = std::mem::take(&mut self.held[index(stream)]);
            if !held.is_empty() {
                self.put_chunk(stream, &held).await;
            }
        }
        let ran: Option<CommandResult> = outcome
            .data
            .as_ref()
            .and_then(|d| serde_json::from_value(d.clone()).ok());
        self.seq += 1;
        let exit = OutputRecord::Exit(OutputExit {
            hostname: self.hostname.clone(),
            seq: self.seq,
            exit_code: ran.as_ref().and_then(|r| r.exit_code),
            signal: ran.as_ref().and_then(|r| r.signal),
            timed_out: ran.as_ref().is_some_and(|r| r.timed_out),
            cancelled: ran.as_ref().is_some_and(|r| r.cancelled)
                || outcome
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == "cancelled"),
            error: outcome.error.clone(),
            sent: self.sent,
        });
        // The last record gets its try even while the bus was failing.
        self.put(&exit, true).await;
    }

    async fn put(&mut self, record: &OutputRecord, last: bool) {
        let resting = self.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER);
        if self.off || (resting && !last) {
            return;
        }
        match self.store.put_output(self.id, record).await {
            Ok(()) => {
                self.failed_at = None;
                self.published = record.sent();
            }
            Err(e) => {
                if self.failed_at.is_none() {
                    tracing::warn!(error = %e, "cannot send a command's live output; its result keeps it");
                }
                self.failed_at = Some(Instant::now());
            }
        }
    }
}

/// Fires `cancel` once someone asked to cancel job `id`; checks every
/// [`CANCEL_POLL`]. Ends when it fired or when `cancel` is dropped.
pub(super) async fn watch_cancel(
    store: JobStore,
    id: Uuid,
    cancel: tokio::sync::watch::Sender<bool>,
) {
    // The first look is the run's own, before it started.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CANCEL_POLL, CANCEL_POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.closed() => return,
        }
        match store.cancel_requested(id).await {
            Ok(true) => {
                tracing::info!("cancel requested");
                cancel.send_replace(true);
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read whether the job was cancelled"),
        }
    }
}
