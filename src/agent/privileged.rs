//! Operations that need root, for an agent that is not root.
//!
//! The packaged agent runs as the unprivileged user `osapi-agent` (issue 12).
//! What systemd's services do for it (hostnamed, timedated, logind, systemd1,
//! PackageKit), polkit allows it by OSAPI's rules. What needs root on the
//! host itself ([`Operation::needs_root`]: accounts, deployed files, trusted
//! CAs, sysctl, network configuration files, drop-ins, signals to others'
//! processes) runs in a unit of its own, as root, outside the agent's
//! sandbox, the way a command job does: `osapi-agent --run-operation`,
//! started over D-Bus as `osapi-op-<job id>.service`, with two pipes as its
//! standard input and output.
//!
//! Over them goes one JSON message per line. The agent sends the operation,
//! already checked (the job's signature is the agent's to verify, and the
//! unit can only be started by who may manage units). The helper may ask
//! back what only the agent can answer: whether NATS is still reached after
//! a network change ([`ToAgent::Reach`]) and a stored file's bytes
//! ([`ToAgent::Fetch`]). It ends with the outcome. Its log goes to the
//! journal under its unit's name.
//!
//! The helper keeps its own state (the records of deployed files) in a
//! directory of root's alone ([`ROOT_STATE_DIR`] beside the agent's), never
//! in the agent's: what the unprivileged agent can write must not steer
//! what root deletes or shows.
//!
//! An agent that is root (development, the integration tests) runs these
//! operations itself, as before.

use std::io::{BufRead as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{Mutex, mpsc};

use super::dispatch::{Outcome, dispatch};
use crate::job::{Job, Operation};
use crate::provider::files::{Fetched, FileSource};
use crate::provider::hostnamed::SystemBus;
use crate::provider::interfaces::Reach;
use crate::provider::{
    BoxFuture, CommandJob, Progress, ProviderError, ProviderResult, Providers, transient,
};

/// The argument that makes an OSAPI executable the root helper.
pub const HELPER_FLAG: &str = "--run-operation";
/// The least time a root step gets, even for a job at its deadline.
const MIN_STEP: Duration = Duration::from_secs(5);
/// Time for the helper's answer after systemd's `RuntimeMaxSec=` stopped it.
const ANSWER_GRACE: Duration = Duration::from_secs(5);
/// The helper's state directory, beside the agent's (`/var/lib/osapi/agent-root`).
const ROOT_STATE_DIR: &str = "agent-root";

/// The agent's messages to the helper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToHelper {
    /// Run this; templates of deployed files see `facts`; `agent_pid` is
    /// the agent's process (signalled only with `force`).
    Run {
        operation: Box<Operation>,
        facts: Value,
        agent_pid: u32,
    },
    /// The answer to [`ToAgent::Reach`].
    Reached { reached: bool },
    /// The answer to [`ToAgent::Fetch`]: the bytes in base64.
    Fetched { sha256: String, bytes: String },
    /// [`ToAgent::Fetch`] failed.
    FetchFailed { detail: String },
}

/// The helper's messages to the agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToAgent {
    /// Is NATS reached within this long?
    Reach { within_ms: u64 },
    /// A stored file, by name.
    Fetch { name: String },
    /// The last message.
    Done { outcome: Outcome },
}

/// Starts root helpers for a non-root agent.
pub struct Privileged {
    bus: SystemBus,
    program: PathBuf,
    /// One deploy or undeploy at a time: each changes the records of
    /// deployed files, which one helper process cannot lock for another.
    file_records: Mutex<()>,
}

impl Privileged {
    /// A runner when this agent needs one: it is not root, and it may start
    /// units ([`transient::starts_units`]).
    pub fn detect() -> Option<Privileged> {
        if nix::unistd::geteuid().is_root() || !transient::starts_units() {
            return None;
        }
        let program = std::env::current_exe().ok()?;
        Some(Privileged {
            bus: SystemBus::new(),
            program,
            file_records: Mutex::new(()),
        })
    }

    /// Runs `job`'s operation in a root helper, answering its questions from
    /// `providers` (the agent's NATS probe and file store).
    pub async fn run(&self, job: &Job, providers: &Providers) -> Outcome {
        let _records = match job.operation {
            Operation::FileDeploy(_) | Operation::FileUndeploy(_) => {
                Some(self.file_records.lock().await)
            }
            _ => None,
        };
        // systemd stops the step at the job's deadline: a step must not go on
        // changing the host after its job was reported.
        let left = (job.deadline() - time::OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO)
            .max(MIN_STEP);
        let unit = format!("osapi-op-{}.service", job.id.simple());
        let talk = self.converse(&unit, job, providers, left);
        match tokio::time::timeout(left + ANSWER_GRACE, talk).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Outcome::failed(super::dispatch::provider_error(&e)),
            Err(_) => {
                transient::stop_helper(&self.bus, &unit).await;
                Outcome::failed(super::dispatch::provider_error(
                    &ProviderError::ServiceTimeout {
                        service: "the root helper",
                        detail: format!("{unit} had not answered after {}s", left.as_secs()),
                    },
                ))
            }
        }
    }

    async fn converse(
        &self,
        unit: &str,
        job: &Job,
        providers: &Providers,
        limit: Duration,
    ) -> ProviderResult<Outcome> {
        let io = |what: &'static str| {
            let unit = unit.to_owned();
            move |e| ProviderError::io(format!("{what} of {unit}"), e)
        };
        let (helper_in, to_helper) = pipe_pair().map_err(io("making a pipe"))?;
        let (from_helper, helper_out) = pipe_pair().map_err(io("making a pipe"))?;
        let argv = vec![
            self.program.to_string_lossy().into_owned(),
            HELPER_FLAG.to_owned(),
        ];
        let env = vec![
            format!("PATH={}", crate::provider::command::COMMAND_PATH),
            "LANG=C.UTF-8".to_owned(),
            format!("STATE_DIRECTORY={}", root_state_dir().display()),
        ];
        transient::start_helper(
            &self.bus,
            unit,
            argv,
            env,
            helper_in.as_fd(),
            helper_out.as_fd(),
            limit,
        )
        .await?;
        // The helper's ends are its own now: EOF comes when it ends.
        drop((helper_in, helper_out));
        let mut to_helper = pipe::Sender::from_owned_fd(to_helper).map_err(io("opening a pipe"))?;
        let from_helper =
            pipe::Receiver::from_owned_fd(from_helper).map_err(io("opening a pipe"))?;
        let mut lines = BufReader::new(from_helper).lines();
        let facts = providers
            .file_source
            .attached()
            .map(|(_, facts)| facts)
            .unwrap_or(Value::Null);
        let run = ToHelper::Run {
            operation: Box::new(job.operation.clone()),
            facts,
            agent_pid: std::process::id(),
        };
        send(&mut to_helper, &run)
            .await
            .map_err(io("writing to the helper"))?;
        let ended = || ProviderError::Interrupted {
            detail: format!("{unit} ended without an answer (journalctl -u {unit})"),
        };
        loop {
            let Some(line) = lines.next_line().await.map_err(io("reading the helper"))? else {
                return Err(ended());
            };
            let message: ToAgent =
                serde_json::from_str(&line).map_err(|e| ProviderError::Parse {
                    file: format!("{unit}'s answer"),
                    detail: e.to_string(),
                })?;
            let answer = match message {
                ToAgent::Done { outcome } => return Ok(outcome),
                ToAgent::Reach { within_ms } => {
                    let reached = match providers.reach.probe() {
                        Some(probe) => probe.reach(Duration::from_millis(within_ms)).await,
                        None => false,
                    };
                    ToHelper::Reached { reached }
                }
                ToAgent::Fetch { name } => match providers.file_source.attached() {
                    Some((source, _)) => match source.fetch(&name).await {
                        Ok(f) => ToHelper::Fetched {
                            sha256: f.sha256,
                            bytes: STANDARD.encode(f.bytes),
                        },
                        Err(e) => ToHelper::FetchFailed {
                            detail: e.to_string(),
                        },
                    },
                    None => ToHelper::FetchFailed {
                        detail: "the agent has no file store".to_owned(),
                    },
                },
            };
            send(&mut to_helper, &answer)
                .await
                .map_err(io("writing to the helper"))?;
        }
    }
}

/// The root helper's state directory: `agent-root` beside the agent's.
fn root_state_dir() -> PathBuf {
    crate::files::agent_state_dir().with_file_name(ROOT_STATE_DIR)
}

/// Makes the helper's state directory root's alone (0700), or refuses one
/// that is not (a link, another owner, open to others): the agent's user
/// must not be able to plant records there. Its parent (`/var/lib/osapi`)
/// is root's, so the agent cannot make it first.
fn own_state_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of this user's alone",
            dir.display()
        )));
    }
    Ok(())
}

/// A pipe: (read end, write end), closed on exec.
fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

async fn send(to: &mut pipe::Sender, message: &ToHelper) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    to.write_all(&line).await
}

/// The helper's side of the pipes: questions out on stdout, answers in
/// from the stdin reader thread, one question at a time.
struct AgentLink {
    answers: Mutex<mpsc::UnboundedReceiver<ToHelper>>,
}

impl AgentLink {
    async fn ask(&self, question: &ToAgent) -> Option<ToHelper> {
        let mut answers = self.answers.lock().await;
        say(question).ok()?;
        answers.recv().await
    }
}

/// The pipe to the agent: standard output as the helper started, moved
/// aside so that nothing else printing to stdout can corrupt the protocol.
static TO_AGENT: std::sync::OnceLock<std::sync::Mutex<std::fs::File>> = std::sync::OnceLock::new();

fn say(message: &ToAgent) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let to = TO_AGENT
        .get()
        .ok_or_else(|| std::io::Error::other("no pipe to the agent"))?;
    let mut out = to.lock().unwrap_or_else(|p| p.into_inner());
    out.write_all(&line)?;
    out.flush()
}

/// Moves the agent's pipe off fd 1 (stdout becomes stderr, the journal).
fn take_stdout() -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let pipe = nix::unistd::dup(stdout.as_fd()).map_err(std::io::Error::from)?;
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(std::io::Error::from)?;
    let _ = TO_AGENT.set(std::sync::Mutex::new(std::fs::File::from(pipe)));
    Ok(())
}

/// [`Reach`] asked of the agent.
struct ReachByAgent(Arc<AgentLink>);

impl Reach for ReachByAgent {
    fn reach(&self, within: Duration) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let within_ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
            matches!(
                self.0.ask(&ToAgent::Reach { within_ms }).await,
                Some(ToHelper::Reached { reached: true })
            )
        })
    }
}

/// [`FileSource`] asked of the agent.
struct FilesByAgent(Arc<AgentLink>);

impl FileSource for FilesByAgent {
    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<Fetched>> {
        Box::pin(async move {
            let unavailable = |detail: String| ProviderError::Unavailable {
                service: "the file store",
                detail,
            };
            let asked = ToAgent::Fetch {
                name: name.to_owned(),
            };
            match self.0.ask(&asked).await {
                Some(ToHelper::Fetched { sha256, bytes }) => Ok(Fetched {
                    bytes: STANDARD
                        .decode(bytes)
                        .map_err(|e| unavailable(e.to_string()))?,
                    sha256,
                }),
                Some(ToHelper::FetchFailed { detail }) => Err(unavailable(detail)),
                _ => Err(unavailable("the agent did not answer".to_owned())),
            }
        })
    }
}

/// The helper: reads one operation from stdin, runs it with the host's
/// providers, writes the outcome to stdout. Returns false when there was no
/// operation to run or the outcome could not be written.
pub async fn serve_helper() -> bool {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Blocking reads on a thread of their own: stdin is the agent's pipe.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<ToHelper>(&line) {
                Ok(message) => {
                    if tx.send(message).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("osapi root helper: a message it cannot read: {e}");
                    break;
                }
            }
        }
    });
    let Some(ToHelper::Run {
        operation,
        facts,
        agent_pid,
    }) = rx.recv().await
    else {
        eprintln!("osapi root helper: no operation to run");
        return false;
    };
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY")
        && let Err(e) = own_state_dir(std::path::Path::new(&dir))
    {
        let outcome = Outcome::failed(super::dispatch::provider_error(&ProviderError::io(
            "the root helper's state directory",
            e,
        )));
        return say(&ToAgent::Done { outcome }).is_ok();
    }
    let link = Arc::new(AgentLink {
        answers: Mutex::new(rx),
    });
    let mut providers = Providers::system(&Default::default());
    providers.processes = Arc::new(crate::provider::processes::ProcProcesses::for_agent(
        agent_pid,
    ));
    providers.reach.attach(Arc::new(ReachByAgent(link.clone())));
    providers
        .file_source
        .attach(Arc::new(FilesByAgent(link.clone())), facts);
    let outcome = dispatch(
        &operation,
        &providers,
        &Progress::none(),
        CommandJob::default(),
    )
    .await;
    match say(&ToAgent::Done { outcome }) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("osapi root helper: cannot answer the agent: {e}");
            false
        }
    }
}

/// For an OSAPI executable's `main`: when it was started as the root helper
/// ([`HELPER_FLAG`] first), runs it and says how it ended.
pub fn run_if_helper() -> Option<std::process::ExitCode> {
    let asked = std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(HELPER_FLAG));
    asked.then(helper_main)
}

/// The root helper's `main`: runs it and says whether it worked.
fn helper_main() -> std::process::ExitCode {
    if let Err(e) = take_stdout() {
        eprintln!("osapi root helper: {e}");
        return std::process::ExitCode::FAILURE;
    }
    // Providers' warnings (a network change reverted, a copy not kept) go to
    // stderr, which is the unit's journal.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(rt) if rt.block_on(serve_helper()) => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("osapi root helper: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goes over the pipes reads back as sent.
    #[test]
    fn messages_round_trip() {
        let run = ToHelper::Run {
            operation: Box::new(Operation::GroupList),
            facts: serde_json::json!({"hostname": "web-01"}),
            agent_pid: 42,
        };
        let text = serde_json::to_string(&run).unwrap_or_default();
        assert!(!text.contains('\n'));
        match serde_json::from_str::<ToHelper>(&text) {
            Ok(ToHelper::Run {
                operation, facts, ..
            }) => {
                assert_eq!(*operation, Operation::GroupList);
                assert_eq!(facts["hostname"], "web-01");
            }
            other => panic!("{other:?}"),
        }
        let done = ToAgent::Done {
            outcome: Outcome::ok(serde_json::json!({"n": 1})),
        };
        let text = serde_json::to_string(&done).unwrap_or_default();
        match serde_json::from_str::<ToAgent>(&text) {
            Ok(ToAgent::Done { outcome }) => {
                assert_eq!(outcome.data, Some(serde_json::json!({"n": 1})))
            }
            other => panic!("{other:?}"),
        }
    }
}
