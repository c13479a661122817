//! A reboot's proof of return.
//!
//! A `power.reboot` job is not finished when logind has scheduled the reboot:
//! the agent records it in a file of its own (the job, its attempt, and what
//! it scheduled, with this boot's id), puts a `started` event on the
//! timeline saying so, and acknowledges the delivery without a result. When
//! the agent starts again it reads that file: in a new boot, it completes the
//! job with the old and new boot ids and the downtime; in the same boot with
//! nothing scheduled any more (cancelled), it fails the job saying so. A host
//! that never comes back leaves the job without a result, and the API reports
//! it as `timeout` at the job's deadline (the delay plus
//! [`crate::job::REBOOT_RETURN`]). `power.cancel` fails a recorded reboot at
//! once.
//!
//! The file lives in the agent's state directory (`$STATE_DIRECTORY`, which
//! systemd sets from `StateDirectory=`; `/var/lib/osapi/agent` otherwise).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Outcome, Shared, finish};
use crate::bus::BusError;
use crate::job::{Job, JobError, JobEvent, Stage};
use crate::provider::PowerChange;
use crate::provider::logind::{Boot, Returned};

const FILE: &str = "reboot-pending.json";

/// A reboot the agent scheduled and has not reported on yet.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Pending {
    job_id: Uuid,
    attempt: u64,
    change: PowerChange,
}

fn path() -> PathBuf {
    crate::files::agent_state_dir().join(FILE)
}

fn read() -> Option<Pending> {
    let text = std::fs::read(path()).ok()?;
    match serde_json::from_slice(&text) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, path = %path().display(), "unreadable pending reboot; dropping it");
            remove();
            None
        }
    }
}

fn remove() {
    if let Err(e) = std::fs::remove_file(path())
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "could not remove the pending reboot record");
    }
}

/// What a recorded reboot has come to, seen from a starting agent.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// A new boot: the proof.
    Returned(Returned),
    /// Same boot, still scheduled: keep waiting.
    Pending,
    /// Same boot, nothing scheduled: it will not happen.
    Gone,
}

fn judge(
    pending: &PowerChange,
    boot_now: &Boot,
    still_scheduled: bool,
    now: OffsetDateTime,
) -> Verdict {
    if boot_now.is_other_than(&pending.boot) {
        let since = pending.after.as_ref().map_or(now, |s| s.at);
        return Verdict::Returned(Returned {
            boot: boot_now.clone(),
            at: now,
            downtime_s: (now - since).as_seconds_f64().max(0.0),
        });
    }
    if still_scheduled {
        Verdict::Pending
    } else {
        Verdict::Gone
    }
}

/// After logind took a reboot: record it and leave the job open. When the
/// record cannot be written, the reboot is cancelled and the job fails: a
/// reboot nobody would report on is not started.
pub(super) async fn hold(
    shared: &Shared,
    job: &Job,
    attempt: u64,
    outcome: Outcome,
    elapsed: Duration,
) -> Result<(), BusError> {
    let change = outcome
        .data
        .clone()
        .and_then(|d| serde_json::from_value::<PowerChange>(d).ok());
    let Some(change) = change else {
        return finish(shared, job, outcome, elapsed, attempt).await;
    };
    let at = change.after.as_ref().map(|s| s.at);
    // One record: a reboot recorded before is replaced by this one.
    close(shared, job.id, "superseded", "another reboot replaced it").await?;
    let pending = Pending {
        job_id: job.id,
        attempt,
        change,
    };
    let written = serde_json::to_vec(&pending)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            let path = path();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::files::replace(&path, &bytes, 0o600)
        });
    if let Err(e) = written {
        tracing::error!(error = %e, "could not record the reboot; cancelling it");
        let cancelled = shared
            .providers
            .power
            .change(
                crate::provider::PowerAction::Cancel,
                Duration::ZERO,
                None,
                false,
            )
            .await;
        let message = format!(
            "could not record the reboot at {} ({e}); {}",
            path().display(),
            match cancelled {
                Ok(_) => "it was cancelled".to_owned(),
                Err(c) => format!("cancelling it failed too: {c}"),
            }
        );
        let error = JobError {
            code: "io_error".into(),
            message,
        };
        return finish(shared, job, Outcome::failed(error), elapsed, attempt).await;
    }
    let when = at
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    tracing::info!(at = %when, "reboot scheduled; the job ends when this host is back");
    shared
        .store
        .append_event(
            job.id,
            &JobEvent {
                at: OffsetDateTime::now_utc(),
                hostname: shared.hostname.clone(),
                stage: Stage::Started,
                attempt,
                detail: Some(format!(
                    "reboot scheduled for {when}; waiting for the host to come back in a new boot"
                )),
            },
        )
        .await
}

/// At start: report on a reboot recorded before it.
pub(super) async fn resume(shared: &Shared) -> Result<(), BusError> {
    let Some(pending) = read() else {
        return Ok(());
    };
    let Some(job) = shared.store.get(pending.job_id).await? else {
        tracing::info!(job_id = %pending.job_id, "the rebooted job no longer exists");
        remove();
        return Ok(());
    };
    let boot_now = match Boot::now() {
        Ok(boot) => boot,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell which boot this is; the reboot stays recorded");
            return Ok(());
        }
    };
    let scheduled = match shared.providers.power.status().await {
        Ok(status) => status.scheduled.is_some(),
        // Not knowing, keep waiting: the deadline still ends it.
        Err(_) => true,
    };
    let outcome = match judge(
        &pending.change,
        &boot_now,
        scheduled,
        OffsetDateTime::now_utc(),
    ) {
        Verdict::Pending => return Ok(()),
        Verdict::Returned(returned) => {
            tracing::info!(old = %pending.change.boot.boot_id, new = %returned.boot.boot_id, downtime_s = returned.downtime_s, "back from the reboot");
            let change = PowerChange {
                returned: Some(returned),
                ..pending.change
            };
            Outcome::ok(serde_json::to_value(change).unwrap_or_default())
        }
        Verdict::Gone => Outcome::failed(JobError {
            code: "not_rebooted".into(),
            message: "the host is still in the same boot and no reboot is scheduled any more \
                      (cancelled outside OSAPI?)"
                .into(),
        }),
    };
    finish(shared, &job, outcome, Duration::ZERO, pending.attempt).await?;
    remove();
    Ok(())
}

/// Ends the recorded reboot's job, if any (and not job `by` itself), as
/// failed with `code`: a cancel, another reboot or a poweroff replaced it.
pub(super) async fn close(
    shared: &Shared,
    by: Uuid,
    code: &str,
    why: &str,
) -> Result<(), BusError> {
    let Some(pending) = read().filter(|p| p.job_id != by) else {
        return Ok(());
    };
    if let Some(job) = shared.store.get(pending.job_id).await? {
        let error = JobError {
            code: code.into(),
            message: format!("the reboot was {code} by job {by}: {why}"),
        };
        finish(
            shared,
            &job,
            Outcome::failed(error),
            Duration::ZERO,
            pending.attempt,
        )
        .await?;
    }
    remove();
    Ok(())
}

/// Whether `job` is the reboot on record: its result comes from the record,
/// never from running it again (a redelivery after the reboot).
pub(super) fn is_recorded(job: Uuid) -> bool {
    read().is_some_and(|p| p.job_id == job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::logind::ScheduledShutdown;

    fn boot(id: char, started: i64) -> Boot {
        Boot {
            boot_id: id.to_string().repeat(32),
            booted_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(started),
            init_start_ticks: u64::try_from(started).unwrap_or(0) * 100,
        }
    }

    fn scheduled_at(at: OffsetDateTime) -> PowerChange {
        PowerChange {
            action: "reboot".into(),
            changed: true,
            dry_run: false,
            boot: boot('a', 10),
            before: None,
            after: Some(ScheduledShutdown {
                kind: "reboot".into(),
                at,
            }),
            returned: None,
        }
    }

    #[test]
    fn a_new_boot_is_the_proof() {
        let at = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(100);
        let now = at + Duration::from_secs(42);
        let change = scheduled_at(at);
        let Verdict::Returned(r) = judge(&change, &boot('b', 10), false, now) else {
            panic!("a new boot id is a return");
        };
        assert_eq!((r.boot, r.downtime_s), (boot('b', 10), 42.0));
        // A container's reboot: the same kernel, a new PID 1.
        assert!(matches!(
            judge(&change, &boot('a', 130), false, now),
            Verdict::Returned(_)
        ));
        assert_eq!(judge(&change, &change.boot, true, now), Verdict::Pending);
        assert_eq!(judge(&change, &change.boot, false, now), Verdict::Gone);
    }
}
