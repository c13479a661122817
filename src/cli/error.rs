//! What `osapictl` can fail with, and the exit status each failure maps to
//! (SPEC §9: 0 all hosts succeeded, 1 some failed, 2 usage error, 3 auth error).
//!
//! Every variant displays as one line for people; the binary prints it on stderr.

use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

use crate::job::{HostResult, HostStatus, JobStatus};
use crate::wire::Problem;

/// Exit status: every host succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status: some host failed, or the request failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad flags or arguments (clap uses 2 for its own errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the API refused the token (401) or a permission (403).
pub const EXIT_AUTH: u8 = 3;

/// How a command that got its answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every host succeeded (or nothing host-related was asked).
    Ok,
    /// At least one host failed or timed out, or the job did.
    SomeFailed,
}

impl Status {
    /// A job's status and results as an exit status.
    pub fn of_job(status: JobStatus, results: &[HostResult]) -> Status {
        let job_failed = matches!(
            status,
            JobStatus::Failed | JobStatus::PartialFailure | JobStatus::Timeout
        );
        let host_failed = results.iter().any(|r| r.status != HostStatus::Completed);
        if job_failed || host_failed {
            Status::SomeFailed
        } else {
            Status::Ok
        }
    }
}

/// Everything `osapictl` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered with an error status (its problem+json body, or one made
    /// up from a body that was not one).
    #[error("{}", api_message(*.status, .problem))]
    Api { status: u16, problem: Box<Problem> },
    #[error("cannot reach the API at {url}: {}", root_cause(.source))]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the API at {url} did not answer within {}", humantime::format_duration(*.after))]
    Timeout { url: String, after: Duration },
    #[error("request to {url} failed: {}", root_cause(.source))]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected answer from the API ({what}): {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot set up the HTTP client: {}", root_cause(.0))]
    ClientSetup(#[source] reqwest::Error),
    #[error("invalid API URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot read config file {}: {source}", .path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse config file {}: {reason}", .path.display())]
    ConfigParse { path: PathBuf, reason: String },
    #[error("cannot read token file {}: {source}", .path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {} is empty", .path.display())]
    EmptyToken { path: PathBuf },
    #[error("cannot read the API's CA certificate {} (api.client.tls.ca_file): {source}", .path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An argument the parser accepted but the operation does not (checked before
    /// sending, with the same rules as the server).
    #[error("invalid {arg}: {reason}")]
    BadArgument { arg: String, reason: String },
    #[error(
        "refusing to run {operation} on {target}: standard input is not a terminal to confirm on; pass --yes"
    )]
    ConfirmationRequired { operation: String, target: String },
    #[error("aborted: {operation} on {target} was not confirmed")]
    Declined { operation: String, target: String },
    #[error("cannot {doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render the answer as {format}: {reason}")]
    Render {
        format: &'static str,
        reason: String,
    },
    #[error("job {job_id} is still {} after waiting {}; follow it with `osapictl job get {job_id}`",
        .status.as_str(), humantime::format_duration(*.waited))]
    StillRunning {
        job_id: Uuid,
        status: JobStatus,
        waited: Duration,
    },
}

impl CliError {
    /// The exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api {
                status: 401 | 403, ..
            } => EXIT_AUTH,
            CliError::InvalidUrl { .. }
            | CliError::ConfigRead { .. }
            | CliError::ConfigParse { .. }
            | CliError::TokenFile { .. }
            | CliError::EmptyToken { .. }
            | CliError::CaFile { .. }
            | CliError::BadArgument { .. }
            | CliError::ConfirmationRequired { .. } => EXIT_USAGE,
            CliError::Api { .. }
            | CliError::Connect { .. }
            | CliError::Timeout { .. }
            | CliError::Transport { .. }
            | CliError::Decode { .. }
            | CliError::ClientSetup(_)
            | CliError::Declined { .. }
            | CliError::Io { .. }
            | CliError::Render { .. }
            | CliError::StillRunning { .. } => EXIT_FAILED,
        }
    }
}

/// The exit status of a whole invocation.
pub fn exit_code(result: &Result<Status, CliError>) -> u8 {
    match result {
        Ok(Status::Ok) => EXIT_OK,
        Ok(Status::SomeFailed) => EXIT_FAILED,
        Err(e) => e.exit_code(),
    }
}

/// `Forbidden (403): missing permission audit:read`, plus the field, permission or
/// job the problem names when its detail does not already say so.
fn api_message(status: u16, p: &Problem) -> String {
    let mut msg = format!("{} ({status}): {}", p.title, p.detail);
    // The server's input errors read "field: reason"; permissions and job ids are
    // distinctive enough to look for anywhere in the detail.
    if let Some(f) = &p.field
        && !p.detail.starts_with(&format!("{f}:"))
    {
        msg.push_str(&format!(" [field: {f}]"));
    }
    for (label, value) in [("permission", &p.permission), ("job", &p.job_id)] {
        if let Some(v) = value
            && !p.detail.contains(v.as_str())
        {
            msg.push_str(&format!(" [{label}: {v}]"));
        }
    }
    msg
}

/// The innermost cause: reqwest's own message ("error sending request") hides the
/// one that helps ("Connection refused").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, detail: &str) -> Problem {
        Problem {
            type_uri: "https://osapi.dev/problems/x".into(),
            title: "Title".into(),
            status,
            detail: detail.into(),
            field: None,
            permission: None,
            job_id: None,
        }
    }

    #[test]
    fn auth_problems_exit_3_others_1() {
        for (status, code) in [
            (401, 3),
            (403, 3),
            (400, 1),
            (404, 1),
            (409, 1),
            (500, 1),
            (503, 1),
            (504, 1),
        ] {
            let e = CliError::Api {
                status,
                problem: Box::new(problem(status, "x")),
            };
            assert_eq!(e.exit_code(), code, "{status}");
        }
    }

    #[test]
    fn local_argument_problems_exit_2() {
        let e = CliError::BadArgument {
            arg: "hostname".into(),
            reason: "bad".into(),
        };
        assert_eq!(e.exit_code(), 2);
        let e = CliError::ConfirmationRequired {
            operation: "node.hostname.set".into(),
            target: "_all".into(),
        };
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--yes"));
        let e = CliError::EmptyToken { path: "/t".into() };
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn results_decide_success() {
        use crate::job::JobError;
        let ok = HostResult {
            hostname: "a".into(),
            status: HostStatus::Completed,
            data: None,
            error: None,
            duration_ms: 1,
        };
        let bad = HostResult {
            hostname: "b".into(),
            status: HostStatus::Failed,
            data: None,
            error: Some(JobError {
                code: "x".into(),
                message: "y".into(),
            }),
            duration_ms: 1,
        };
        assert_eq!(
            exit_code(&Ok(Status::of_job(
                JobStatus::Completed,
                std::slice::from_ref(&ok)
            ))),
            0
        );
        assert_eq!(
            exit_code(&Ok(Status::of_job(
                JobStatus::PartialFailure,
                &[ok.clone(), bad]
            ))),
            1
        );
        assert_eq!(exit_code(&Ok(Status::of_job(JobStatus::Timeout, &[]))), 1);
        assert_eq!(
            exit_code(&Ok(Status::of_job(
                JobStatus::Failed,
                std::slice::from_ref(&ok)
            ))),
            1
        );
        assert_eq!(
            exit_code(&Ok(Status::of_job(JobStatus::Processing, &[ok]))),
            0
        );
    }

    #[test]
    fn api_message_adds_what_the_detail_lacks() {
        let mut p = problem(403, "missing permission audit:read");
        p.permission = Some("audit:read".into());
        assert_eq!(
            api_message(403, &p),
            "Title (403): missing permission audit:read"
        );
        let mut p = problem(400, "must be a hostname");
        p.field = Some("hostname".into());
        assert_eq!(
            api_message(400, &p),
            "Title (400): must be a hostname [field: hostname]"
        );
        let mut p = problem(400, "hostname: must be an RFC 1123 hostname");
        p.field = Some("hostname".into());
        assert_eq!(
            api_message(400, &p),
            "Title (400): hostname: must be an RFC 1123 hostname"
        );
        let mut p = problem(504, "no host answered");
        p.job_id = Some("0190".into());
        assert_eq!(
            api_message(504, &p),
            "Title (504): no host answered [job: 0190]"
        );
    }
}
