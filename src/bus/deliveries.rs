//! An agent's job deliveries: its durable consumers of the job stream, each
//! followed by a task that recreates it when it is lost, all feeding one
//! channel; and each delivery's acknowledgements. The agent sees
//! [`Delivery`]s, never a JetStream message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::{Config, MessagesErrorKind, Stream as Messages};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::{ConsumerError, Stream};
use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::AgentConsumer;
use super::BusError;
use crate::retry::Backoff;

/// How long the agent waits at start for a consumer the server is slow to create.
pub const CONSUMER_PATIENCE: Duration = Duration::from_secs(60);
/// How long one pull request waits on the server before the client pulls again.
/// Short, because a pull request dies with the server that held it (a
/// consumer's leader moves when a cluster node fails) and the client only
/// notices when the request should have expired: this bounds that stall.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Idle heartbeat of pull requests, so a silent server shows in the logs.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

/// How the agent's consumers redeliver, and how many jobs it takes at once.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub ack_wait: Duration,
    pub max_deliver: u32,
    pub back_off: Vec<Duration>,
    /// Pull batch, and how many deliveries wait in our channel at most: the
    /// agent's job slots. More stay in JetStream, not in our memory.
    pub batch: usize,
}

/// Every delivery of the agent's consumers, in one channel.
pub struct Deliveries {
    rx: mpsc::Receiver<jetstream::Message>,
    followers: JoinSet<()>,
    recovering: Arc<AtomicUsize>,
}

impl Deliveries {
    /// Create (or adopt) each of `consumers` on the job `stream` and start
    /// pulling. A consumer the server refuses is a configuration problem,
    /// reported at once; one slow to appear (a cluster still forming) is
    /// waited for up to [`CONSUMER_PATIENCE`].
    pub async fn open(
        stream: &Stream,
        consumers: Vec<AgentConsumer>,
        settings: &DeliverySettings,
    ) -> Result<Deliveries, BusError> {
        let (tx, rx) = mpsc::channel(settings.batch.max(1));
        let recovering = Arc::new(AtomicUsize::new(0));
        let mut followers = JoinSet::new();
        for AgentConsumer { durable, filter } in consumers {
            let config = Config {
                durable_name: Some(durable.clone()),
                filter_subject: filter,
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                max_deliver: i64::from(settings.max_deliver),
                backoff: settings.back_off.clone(),
                ..Default::default()
            };
            let deadline = Instant::now() + CONSUMER_PATIENCE;
            let mut backoff = Backoff::new();
            let messages = loop {
                match open_consumer(stream, &durable, &config, settings.batch).await {
                    Ok(m) => break m,
                    Err(e) if e.transient && Instant::now() < deadline => {
                        tracing::info!(consumer = %durable, error = %e.detail, "consumer not ready yet; retrying");
                        backoff.wait().await;
                    }
                    Err(e) => {
                        return Err(BusError::Consumer {
                            name: durable,
                            detail: e.detail,
                        });
                    }
                }
            };
            followers.spawn(follow(
                Follow {
                    stream: stream.clone(),
                    durable,
                    config,
                    batch: settings.batch,
                    recovering: recovering.clone(),
                },
                messages,
                tx.clone(),
            ));
        }
        Ok(Deliveries {
            rx,
            followers,
            recovering,
        })
    }

    /// The next delivery; `None` once every consumer's task ended.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await.map(Delivery)
    }

    /// How many consumers are being recreated right now: while any is, the
    /// agent holds back its heartbeat, so the registry never lists an agent
    /// that cannot receive its jobs.
    pub fn recovering(&self) -> Arc<AtomicUsize> {
        self.recovering.clone()
    }

    /// Stop pulling, and give back at once what was delivered but not taken
    /// (rather than after `ack_wait`).
    pub async fn close(mut self) {
        self.followers.abort_all();
        while let Ok(msg) = self.rx.try_recv() {
            Delivery(msg).release().await;
        }
    }
}

/// One delivered job announcement.
pub struct Delivery(jetstream::Message);

impl Delivery {
    /// Which delivery of this announcement this is, from 1.
    pub fn attempt(&self) -> u64 {
        self.0
            .info()
            .map(|i| u64::try_from(i.delivered).unwrap_or(1))
            .unwrap_or(1)
    }

    /// The announced job's id, if the message holds one.
    pub fn job_id(&self) -> Option<Uuid> {
        std::str::from_utf8(&self.0.payload).ok()?.parse().ok()
    }

    pub fn subject(&self) -> &str {
        self.0.subject.as_str()
    }

    /// The API's W3C `traceparent`, to continue its trace.
    pub fn traceparent(&self) -> Option<String> {
        self.0
            .headers
            .as_ref()
            .and_then(|h| h.get(super::TRACEPARENT_HEADER))
            .map(|v| v.to_string())
    }

    /// Still working on it: push the redelivery deadline out.
    pub async fn working(&self) {
        let _ = self.0.ack_with(AckKind::Progress).await;
    }

    /// Not taken: redeliver at once (to us or another agent).
    pub async fn release(&self) {
        let _ = self.0.ack_with(AckKind::Nak(None)).await;
    }

    /// Never to be delivered again (unreadable).
    pub async fn discard(&self) {
        let _ = self.0.ack_with(AckKind::Term).await;
    }

    /// Done: acknowledge and wait for the server to confirm, trying again
    /// briefly. A lost acknowledgement means a redelivery (which finds the
    /// result and does nothing), so this only saves work.
    pub async fn done(&self) {
        let mut backoff = Backoff::new();
        for attempt in 1..=5 {
            match self.0.double_ack().await {
                Ok(()) => return,
                Err(e) if attempt == 5 => {
                    tracing::warn!(error = %e, "could not acknowledge a finished job; it will be redelivered and skipped")
                }
                Err(_) => backoff.wait().await,
            }
        }
    }
}

/// A consumer that could not be opened, and whether trying again may help.
struct OpenError {
    detail: String,
    transient: bool,
}

impl From<ConsumerError> for OpenError {
    fn from(e: ConsumerError) -> Self {
        OpenError {
            transient: super::transient::is_transient(&e),
            detail: e.to_string(),
        }
    }
}

impl From<consumer::StreamError> for OpenError {
    fn from(e: consumer::StreamError) -> Self {
        OpenError {
            transient: e.kind() == consumer::StreamErrorKind::TimedOut,
            detail: e.to_string(),
        }
    }
}

/// Create (or find) a consumer and start pulling from it.
async fn open_consumer(
    stream: &Stream,
    durable: &str,
    config: &Config,
    batch: usize,
) -> Result<Messages, OpenError> {
    let mut consumer = stream
        .get_or_create_consumer(durable, config.clone())
        .await?;
    // An existing durable consumer keeps the settings it was made with; bring
    // its redelivery timing in line with the configuration we keep alive by.
    let current = &consumer.cached_info().config;
    if current.ack_wait != config.ack_wait
        || current.backoff != config.backoff
        || current.max_deliver != config.max_deliver
    {
        // Creating a durable consumer that exists updates its updatable fields
        // (the create endpoint does so on 2.9 as on 2.10+).
        consumer = stream.create_consumer(config.clone()).await?;
    }
    Ok(consumer
        .stream()
        .max_messages_per_batch(batch)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await?)
}

/// What a consumer's task needs to bring it back.
struct Follow {
    stream: Stream,
    durable: String,
    config: Config,
    batch: usize,
    recovering: Arc<AtomicUsize>,
}

/// Forward one consumer's deliveries until the agent stops; when they stop for
/// good, recreate the consumer (once its stream exists again).
async fn follow(f: Follow, mut messages: Messages, tx: mpsc::Sender<jetstream::Message>) {
    use MessagesErrorKind as Kind;
    loop {
        let mut quiet = false;
        while let Some(next) = messages.next().await {
            match next {
                Ok(msg) => {
                    quiet = false;
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                // The stream pulls again by itself (on expiry, on reconnect) and
                // keeps its inbox: pull requests still waiting on the server
                // deliver there. A new stream would leave them behind to swallow
                // jobs until ack_wait, so only a consumer that is gone for good
                // (deleted, or no JetStream answering for it) is recreated.
                Err(e) if matches!(e.kind(), Kind::ConsumerDeleted | Kind::NoResponders) => {
                    tracing::warn!(consumer = %f.durable, error = %e, "consumer lost");
                    break;
                }
                Err(e) if e.kind() == Kind::MissingHeartbeat => {
                    if !quiet {
                        tracing::warn!(consumer = %f.durable, "NATS silent on our pull request; waiting for it to come back");
                        quiet = true;
                    }
                    // Pulls for a consumer the server no longer has (it came back
                    // empty) go unanswered rather than failing: ask after it.
                    if let Err(e) = f.stream.consumer_info(&f.durable).await
                        && matches!(
                            e.kind(),
                            ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                        )
                    {
                        tracing::warn!(consumer = %f.durable, error = %e, "consumer lost");
                        break;
                    }
                }
                Err(e) => tracing::warn!(consumer = %f.durable, error = %e, "error receiving jobs"),
            }
        }
        tracing::warn!(consumer = %f.durable, "consumer stopped delivering; recreating it");
        f.recovering.fetch_add(1, Ordering::SeqCst);
        let mut backoff = Backoff::new();
        messages = loop {
            match open_consumer(&f.stream, &f.durable, &f.config, f.batch).await {
                Ok(m) => break m,
                // A stream that is gone (a wiped store) is the supervisor's or
                // the API's to bring back; agents may not create streams.
                Err(e) => {
                    tracing::warn!(consumer = %f.durable, error = %e.detail, "cannot recreate the consumer yet")
                }
            }
            backoff.wait().await;
        };
        f.recovering.fetch_sub(1, Ordering::SeqCst);
        tracing::info!(consumer = %f.durable, "consumer recreated; receiving jobs again");
    }
}
