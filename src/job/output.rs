//! A job's live output (issue 12): what a command prints, as its agent sends
//! it while the command runs and `GET /api/v1/jobs/{id}/output` streams it.
//!
//! Per host, records are numbered from 1 (`seq`) in the order the agent sent
//! them: `stdout` and `stderr` chunks, a `truncated` note when a stream
//! passed the live cap, and one `exit` when the command ended. Each carries
//! how far each stream was sent (`sent`), so an agent started again while a
//! command still runs goes on where its predecessor stopped.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::JobError;

/// Which of a command's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Bytes of each stream: read, or sent; and (in records) whether the
/// stream was cut at the live cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputOffsets {
    pub stdout: u64,
    pub stderr: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdout_cut: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stderr_cut: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl OutputOffsets {
    pub fn of(&self, stream: OutputStream) -> u64 {
        match stream {
            OutputStream::Stdout => self.stdout,
            OutputStream::Stderr => self.stderr,
        }
    }

    pub fn of_mut(&mut self, stream: OutputStream) -> &mut u64 {
        match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        }
    }

    pub fn cut(&self, stream: OutputStream) -> bool {
        match stream {
            OutputStream::Stdout => self.stdout_cut,
            OutputStream::Stderr => self.stderr_cut,
        }
    }

    pub fn cut_mut(&mut self, stream: OutputStream) -> &mut bool {
        match stream {
            OutputStream::Stdout => &mut self.stdout_cut,
            OutputStream::Stderr => &mut self.stderr_cut,
        }
    }
}

/// One record of a host's live output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OutputRecord {
    Stdout(OutputChunk),
    Stderr(OutputChunk),
    Truncated(OutputCut),
    Exit(OutputExit),
}

impl OutputRecord {
    /// The SSE event name.
    pub fn event(&self) -> &'static str {
        match self {
            OutputRecord::Stdout(_) => "stdout",
            OutputRecord::Stderr(_) => "stderr",
            OutputRecord::Truncated(_) => "truncated",
            OutputRecord::Exit(_) => "exit",
        }
    }

    pub fn hostname(&self) -> &str {
        match self {
            OutputRecord::Stdout(c) | OutputRecord::Stderr(c) => &c.hostname,
            OutputRecord::Truncated(c) => &c.hostname,
            OutputRecord::Exit(e) => &e.hostname,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            OutputRecord::Stdout(c) | OutputRecord::Stderr(c) => c.seq,
            OutputRecord::Truncated(c) => c.seq,
            OutputRecord::Exit(e) => e.seq,
        }
    }

    /// How far each stream was sent, this record included.
    pub fn sent(&self) -> OutputOffsets {
        match self {
            OutputRecord::Stdout(c) | OutputRecord::Stderr(c) => c.sent,
            OutputRecord::Truncated(c) => c.sent,
            OutputRecord::Exit(e) => e.sent,
        }
    }

    /// The record's own fields, without its `event` tag (an SSE event's data).
    pub fn data(&self) -> serde_json::Result<String> {
        match self {
            OutputRecord::Stdout(c) | OutputRecord::Stderr(c) => serde_json::to_string(c),
            OutputRecord::Truncated(c) => serde_json::to_string(c),
            OutputRecord::Exit(e) => serde_json::to_string(e),
        }
    }

    /// A record from an SSE event's name and data.
    pub fn from_event(event: &str, data: &str) -> Option<OutputRecord> {
        Some(match event {
            "stdout" => OutputRecord::Stdout(serde_json::from_str(data).ok()?),
            "stderr" => OutputRecord::Stderr(serde_json::from_str(data).ok()?),
            "truncated" => OutputRecord::Truncated(serde_json::from_str(data).ok()?),
            "exit" => OutputRecord::Exit(serde_json::from_str(data).ok()?),
            _ => return None,
        })
    }
}

/// Text a command printed (lossy UTF-8; a character cut between two
/// chunks is whole in the second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputChunk {
    pub hostname: String,
    pub seq: u64,
    /// Where `data` starts in its stream, in bytes.
    pub offset: u64,
    pub data: String,
    pub sent: OutputOffsets,
}

/// A stream passed the live cap: nothing more of it is sent live (the
/// job's result keeps its own, smaller, cap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputCut {
    pub hostname: String,
    pub seq: u64,
    pub stream: OutputStream,
    /// Bytes of the stream sent before the cut.
    pub after_bytes: u64,
    pub sent: OutputOffsets,
}

/// How the command ended on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputExit {
    pub hostname: String,
    pub seq: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    /// Why the host's result failed, when it did.
    pub error: Option<JobError>,
    pub sent: OutputOffsets,
}

/// The last event of a job's output stream: the job settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputEnd {
    pub job_id: uuid::Uuid,
    pub status: super::JobStatus,
}

/// Someone asked to stop a job (`POST /jobs/{id}/cancel`): stored beside
/// its results, read by the agents running it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CancelRequest {
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_through_sse_events_and_back() {
        let sent = OutputOffsets {
            stdout: 6,
            stderr_cut: true,
            ..OutputOffsets::default()
        };
        let records = [
            OutputRecord::Stdout(OutputChunk {
                hostname: "web-01".into(),
                seq: 1,
                offset: 0,
                data: "hello\n".into(),
                sent,
            }),
            OutputRecord::Truncated(OutputCut {
                hostname: "web-01".into(),
                seq: 2,
                stream: OutputStream::Stderr,
                after_bytes: 10,
                sent,
            }),
            OutputRecord::Exit(OutputExit {
                hostname: "web-01".into(),
                seq: 3,
                exit_code: Some(0),
                signal: None,
                timed_out: false,
                cancelled: false,
                error: None,
                sent,
            }),
        ];
        for r in records {
            let data = r.data().unwrap();
            assert!(!data.contains("\"event\""), "{data}");
            assert_eq!(OutputRecord::from_event(r.event(), &data), Some(r.clone()));
            // Stored whole, with its tag.
            let stored = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<OutputRecord>(&stored).unwrap(), r);
        }
        assert_eq!(OutputRecord::from_event("end", "{}"), None);
    }
}
