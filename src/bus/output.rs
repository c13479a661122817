//! Jobs' live output on the bus (issue 12): the OUTPUT stream, where agents
//! publish what their commands print as they print it, and the cancel
//! requests beside a job's results.
//!
//! Subjects are `<ns>.output.<job>.<host>`, one per host of a job, so a
//! reader of the whole job filters on `<ns>.output.<job>.>` and an agent
//! going on after a restart reads its host's last record. Readers get
//! records by direct reads from a stream sequence (no consumer state; the
//! sequence is the SSE event id a client resumes from) and are woken by a
//! plain subscription to the same subjects. The stream has limits of its
//! own: [`OUTPUT_MAX_BYTES`] and [`OUTPUT_MAX_AGE`], oldest dropped first.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use uuid::Uuid;

use super::registry::{registry_key, speaks_for};
use super::{BusError, JobStore, Names};
use crate::job::{CancelRequest, OutputRecord};

/// The stream's name under a namespace's prefix.
pub const OUTPUT_STREAM: &str = "OUTPUT";
/// Everything kept of every job's output.
pub const OUTPUT_MAX_BYTES: i64 = 1 << 30;
/// How long output is kept.
pub const OUTPUT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// One record's largest size: a chunk is at most 64 KiB of text, escaped.
const OUTPUT_MAX_MESSAGE: i32 = 512 * 1024;
/// How long one record's publish may take.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);
/// Records read per call.
pub const OUTPUT_READ_BATCH: usize = 256;

/// The OUTPUT stream's settings.
pub fn stream_config(
    names: &Names,
    replicas: usize,
    storage: stream::StorageType,
) -> stream::Config {
    stream::Config {
        name: names.resource(OUTPUT_STREAM),
        subjects: vec![names.subject("output.>")],
        max_bytes: OUTPUT_MAX_BYTES,
        max_age: OUTPUT_MAX_AGE,
        max_message_size: OUTPUT_MAX_MESSAGE,
        storage,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    }
}

/// A job's output subject for one host, or (`None`) for all its hosts.
fn subject(names: &Names, id: Uuid, hostname: Option<&str>) -> String {
    match hostname {
        Some(h) => names.subject(&format!("output.{id}.{}", registry_key(h))),
        None => names.subject(&format!("output.{id}.>")),
    }
}

/// Wakes a reader when a job's output has new records.
pub struct OutputWakeups(async_nats::Subscriber);

impl OutputWakeups {
    /// Resolves when something was published since the last call (however
    /// much), or `None`: the subscription is gone.
    pub async fn next(&mut self) -> Option<()> {
        use futures::{FutureExt as _, StreamExt as _};
        self.0.next().await?;
        // The records are read from the stream: the rest only wake us once.
        while let Some(Some(_)) = self.0.next().now_or_never() {}
        Some(())
    }
}

impl JobStore {
    /// Appends a record of `id`'s output (a repeat of one, by its message
    /// id, is a no-op).
    pub async fn put_output(&self, id: Uuid, record: &OutputRecord) -> Result<(), BusError> {
        let body =
            bytes::Bytes::from(
                serde_json::to_vec(record).map_err(|source| BusError::Corrupt {
                    what: "output",
                    source,
                })?,
            );
        let subject = subject(&self.names, id, Some(record.hostname()));
        let msg_id = format!("{id}.{}.{}", registry_key(record.hostname()), record.seq());
        // One try, briefly: a job never waits on its live view (the agent
        // skips records for a while after a failure).
        let publish = PublishMessage::build().payload(body).message_id(&msg_id);
        let sent = async {
            self.js
                .send_publish(subject, publish)
                .await
                .map_err(|e| BusError::request("sending a job's output", e))?
                .await
                .map_err(|e| BusError::request("sending a job's output", e))
                .map(drop)
        };
        match tokio::time::timeout(PUBLISH_WAIT, sent).await {
            Ok(sent) => sent,
            Err(_) => Err(BusError::Request {
                doing: "sending a job's output",
                detail: format!("no answer within {PUBLISH_WAIT:?}"),
                transient: true,
            }),
        }
    }

    async fn output_stream(&self) -> Result<stream::Stream<()>, BusError> {
        self.js
            .get_stream_no_info(self.names.resource(OUTPUT_STREAM))
            .await
            .map_err(|e| BusError::request("opening the output stream", e))
    }

    /// The last record `hostname` sent of `id`'s output.
    pub async fn last_output(
        &self,
        id: Uuid,
        hostname: &str,
    ) -> Result<Option<OutputRecord>, BusError> {
        let stream = self.output_stream().await?;
        match stream
            .direct_get_last_for_subject(subject(&self.names, id, Some(hostname)))
            .await
        {
            Ok(msg) => serde_json::from_slice(&msg.payload)
                .map(Some)
                .map_err(|source| BusError::Corrupt {
                    what: "output",
                    source,
                }),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(BusError::request("reading a job's output", e)),
        }
    }

    /// Records of `id`'s output from stream sequence `from` on, with their
    /// sequences; at most a batch (ask again from the last one + 1). A record
    /// under another host's subject than its own is skipped.
    pub async fn read_output(
        &self,
        id: Uuid,
        from: u64,
    ) -> Result<Vec<(u64, OutputRecord)>, BusError> {
        let stream = self.output_stream().await?;
        let filter = subject(&self.names, id, None);
        let prefix = self.names.subject(&format!("output.{id}."));
        let mut records = Vec::new();
        let mut next = from.max(1);
        while records.len() < OUTPUT_READ_BATCH {
            let msg = match stream
                .direct_get_next_for_subject(filter.as_str(), Some(next))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(BusError::request("reading a job's output", e)),
            };
            next = msg.sequence + 1;
            let record: OutputRecord =
                serde_json::from_slice(&msg.payload).map_err(|source| BusError::Corrupt {
                    what: "output",
                    source,
                })?;
            let host = msg
                .subject
                .strip_prefix(prefix.as_str())
                .unwrap_or_default();
            if speaks_for(host, record.hostname(), "job output") {
                records.push((msg.sequence, record));
            }
        }
        Ok(records)
    }

    /// A wake-up whenever `id`'s output grows; subscribe before reading, so
    /// nothing published in between is missed.
    pub async fn watch_output(&self, id: Uuid) -> Result<OutputWakeups, BusError> {
        self.js
            .client()
            .subscribe(subject(&self.names, id, None))
            .await
            .map(OutputWakeups)
            .map_err(|e| BusError::request("watching a job's output", e))
    }

    /// Asks the agents running `id` to stop it.
    pub async fn request_cancel(&self, id: Uuid, request: &CancelRequest) -> Result<(), BusError> {
        let key = format!("{id}.cancel");
        self.put_response(&key, "cancel request", "storing a cancel request", request)
            .await
    }

    /// Whether someone asked to cancel `id`.
    pub async fn cancel_requested(&self, id: Uuid) -> Result<bool, BusError> {
        match self.responses.entry(format!("{id}.cancel")).await {
            Ok(Some(entry)) => Ok(entry.operation == jetstream::kv::Operation::Put),
            Ok(None) => Ok(false),
            Err(e) => Err(BusError::request("reading a cancel request", e)),
        }
    }

    /// Drops `id`'s output (the job is deleted).
    pub(super) async fn purge_output(&self, id: Uuid) -> Result<(), BusError> {
        let stream = self.output_stream().await?;
        stream
            .purge()
            .filter(subject(&self.names, id, None))
            .await
            .map(drop)
            .map_err(|e| BusError::request("deleting a job's output", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_has_a_subject_under_its_job() {
        let names = Names::new("osapi");
        let id = Uuid::nil();
        assert_eq!(
            subject(&names, id, Some("web-01.example.com")),
            format!("osapi.output.{id}.web-01.example.com")
        );
        assert_eq!(subject(&names, id, None), format!("osapi.output.{id}.>"));
        let config = stream_config(&names, 1, stream::StorageType::File);
        assert_eq!(config.name, "osapi-OUTPUT");
        assert_eq!(config.subjects, ["osapi.output.>"]);
        assert!(config.allow_direct && config.max_bytes > 0);
    }
}
