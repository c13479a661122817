//! Creating (or adopting) the JOBS stream and the KV buckets.
//!
//! Buckets are made by creating their backing stream `KV_<bucket>` directly and
//! then opening it, because async-nats' `create_key_value` cannot parse the
//! account-info reply of nats-server 2.9 (CRATES.md); the stream settings are
//! exactly what a KV bucket has, so every client sees a normal bucket.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::BusError;
use crate::bus::Names;
use crate::config::{BucketConfig, DiscardPolicy, NatsConfig, StorageKind, StreamConfig};
use crate::retry::Backoff;

/// The four buckets and the job stream, opened.
#[derive(Clone)]
pub struct Buckets {
    pub jobs: kv::Store,
    pub responses: kv::Store,
    pub audit: kv::Store,
    pub registry: kv::Store,
    pub stream: stream::Stream,
}

fn storage(kind: StorageKind) -> stream::StorageType {
    match kind {
        StorageKind::File => stream::StorageType::File,
        StorageKind::Memory => stream::StorageType::Memory,
    }
}

/// How long provisioning keeps trying while JetStream is not ready: a cluster
/// still electing its meta leader, peers not yet joined for the replicas asked.
const PROVISION_PATIENCE: Duration = Duration::from_secs(60);

/// Create or adopt everything the job system needs under `names`. Transient
/// failures (see [`BusError::is_transient`]) are retried for a while, so daemons
/// may start while a cluster is still forming; anything else fails at once.
pub async fn provision(
    js: &jetstream::Context,
    names: &Names,
    cfg: &NatsConfig,
) -> Result<Buckets, BusError> {
    super::retry_transient("provisioning", PROVISION_PATIENCE, |_| {
        provision_once(js, names, cfg, Mode::Create)
    })
    .await
}

/// Open the stream and buckets that someone allowed to create them made (the
/// embedded server's supervisor, or the API), waiting while they are missing.
/// For agents, which may not create, change or delete streams.
pub async fn open(
    js: &jetstream::Context,
    names: &Names,
    cfg: &NatsConfig,
) -> Result<Buckets, BusError> {
    let mut backoff = Backoff::new();
    let mut logged = false;
    loop {
        match provision_once(js, names, cfg, Mode::Open).await {
            Ok(buckets) => return Ok(buckets),
            Err(e) => {
                if !logged {
                    tracing::info!(error = %e, "waiting for the job stream and buckets");
                    crate::systemd::status("waiting for the job stream and buckets");
                    logged = true;
                }
                backoff.wait().await;
            }
        }
    }
}

/// Whether provisioning may create and update streams, or only open them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Open,
}

/// Provision again after every reconnect: the server we came back to may have
/// lost the stream or a bucket (a new cluster, memory storage, a wiped store);
/// existing ones are adopted, so this is cheap when nothing changed.
pub fn reprovision_on_reconnect(
    js: jetstream::Context,
    names: Names,
    cfg: NatsConfig,
    mut connects: tokio::sync::watch::Receiver<u64>,
) -> tokio::task::JoinHandle<()> {
    connects.mark_unchanged();
    tokio::spawn(async move {
        while connects.changed().await.is_ok() {
            let mut backoff = Backoff::between(Duration::from_secs(1), Duration::from_secs(5));
            loop {
                match provision(&js, &names, &cfg).await {
                    Ok(_) => {
                        tracing::info!("stream and buckets in place after reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot provision after reconnecting; trying again");
                        backoff.wait().await;
                    }
                }
            }
        }
    })
}

/// What the memory-backed streams OSAPI makes would reserve of JetStream's
/// memory (their `max_bytes`; JetStream refuses a stream it cannot
/// reserve): the embedded server's `max_memory_store` leaves room for them.
/// Nothing by default: every stream is on disk unless configured otherwise.
pub fn memory_reserved(cfg: &NatsConfig) -> u64 {
    use super::enrollment::{ALL_REQUESTS_MAX_BYTES, DECISIONS_MAX_BYTES};
    let bytes = |n: i64| u64::try_from(n).unwrap_or(0);
    let in_memory = |kind: StorageKind, bytes: u64| match kind {
        StorageKind::Memory => bytes,
        StorageKind::File => 0,
    };
    // The job buckets, and the file store and live output that follow them.
    let jobs = cfg
        .kv
        .max_bytes
        .saturating_mul(2)
        .saturating_add(bytes(super::files::BUCKET_MAX_BYTES))
        .saturating_add(bytes(super::output::OUTPUT_MAX_BYTES));
    // The registry, and the enrollment buckets that follow it.
    let registry = cfg
        .registry
        .max_bytes
        .saturating_add(ALL_REQUESTS_MAX_BYTES)
        .saturating_add(DECISIONS_MAX_BYTES);
    in_memory(cfg.kv.storage, jobs)
        .saturating_add(in_memory(cfg.audit.storage, cfg.audit.max_bytes))
        .saturating_add(in_memory(cfg.registry.storage, registry))
}

async fn provision_once(
    js: &jetstream::Context,
    names: &Names,
    cfg: &NatsConfig,
    mode: Mode,
) -> Result<Buckets, BusError> {
    let stream = ensure_stream(js, job_stream_config(names, &cfg.stream), mode).await?;
    let kv_settings = |bucket: &str| BucketConfig {
        bucket: bucket.to_owned(),
        ttl: cfg.kv.ttl,
        max_bytes: cfg.kv.max_bytes,
        storage: cfg.kv.storage,
        replicas: cfg.kv.replicas,
    };
    let jobs = ensure_bucket(
        js,
        &names.resource(&cfg.kv.jobs_bucket),
        &kv_settings(&cfg.kv.jobs_bucket),
        mode,
    )
    .await?;
    let responses = ensure_bucket(
        js,
        &names.resource(&cfg.kv.responses_bucket),
        &kv_settings(&cfg.kv.responses_bucket),
        mode,
    )
    .await?;
    // A full audit trail makes room by dropping its oldest entries (their
    // journal copies stay): newer entries, an attack's included, always get in.
    let audit_name = names.resource(&cfg.audit.bucket);
    let mut audit_stream = bucket_stream_config(&audit_name, &cfg.audit);
    audit_stream.discard = stream::DiscardPolicy::Old;
    ensure_stream(js, audit_stream, mode).await?;
    let audit = open_bucket(js, &audit_name).await?;
    let registry = ensure_bucket(
        js,
        &names.resource(&cfg.registry.bucket),
        &cfg.registry,
        mode,
    )
    .await?;
    if mode == Mode::Create {
        provision_enrollment(js, names, cfg).await?;
        // Agents open it when they first deploy a file, so an agent never
        // waits for it at start.
        ensure_stream(
            js,
            super::files::stream_config(names, cfg.kv.replicas, storage(cfg.kv.storage)),
            mode,
        )
        .await?;
        // Agents publish to it without opening it; a missing one costs
        // only the live view (the results keep the output).
        ensure_stream(
            js,
            super::output::stream_config(names, cfg.kv.replicas, storage(cfg.kv.storage)),
            mode,
        )
        .await?;
    }
    Ok(Buckets {
        jobs,
        responses,
        audit,
        registry,
        stream,
    })
}

/// The enrollment buckets ([`super::enrollment`]), which agents never open.
async fn provision_enrollment(
    js: &jetstream::Context,
    names: &Names,
    cfg: &NatsConfig,
) -> Result<(), BusError> {
    use super::enrollment::{
        ALL_REQUESTS_MAX_BYTES, DECISIONS_BUCKET, DECISIONS_MAX_BYTES, ONE_REQUEST_MAX_BYTES,
        REQUESTS_BUCKET,
    };
    let settings = |bucket: &str, max_bytes: u64| BucketConfig {
        bucket: bucket.to_owned(),
        ttl: Duration::ZERO,
        max_bytes,
        storage: cfg.registry.storage,
        replicas: cfg.registry.replicas,
    };
    // Anyone with the join credential writes here: small entries, and when
    // full the oldest go (agents file theirs again while they wait).
    let requests = names.resource(REQUESTS_BUCKET);
    let mut stream = bucket_stream_config(
        &requests,
        &settings(REQUESTS_BUCKET, ALL_REQUESTS_MAX_BYTES),
    );
    stream.discard = stream::DiscardPolicy::Old;
    stream.max_message_size = ONE_REQUEST_MAX_BYTES;
    ensure_stream(js, stream, Mode::Create).await?;
    let decisions = names.resource(DECISIONS_BUCKET);
    ensure_stream(
        js,
        bucket_stream_config(&decisions, &settings(DECISIONS_BUCKET, DECISIONS_MAX_BYTES)),
        Mode::Create,
    )
    .await?;
    Ok(())
}

fn job_stream_config(names: &Names, s: &StreamConfig) -> stream::Config {
    stream::Config {
        name: names.resource(&s.name),
        subjects: vec![names.subject("jobs.>")],
        max_age: s.max_age,
        max_messages: s
            .max_msgs
            .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)),
        storage: storage(s.storage),
        num_replicas: s.replicas,
        discard: match s.discard {
            DiscardPolicy::Old => stream::DiscardPolicy::Old,
            DiscardPolicy::New => stream::DiscardPolicy::New,
        },
        duplicate_window: s.max_age.min(Duration::from_secs(120)),
        allow_direct: true,
        ..Default::default()
    }
}

fn bucket_stream_config(bucket: &str, b: &BucketConfig) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        // What the server stores for "no limit"; 0 would read back as -1 and
        // look like a change on every start.
        max_messages: -1,
        max_age: b.ttl,
        max_bytes: i64::try_from(b.max_bytes).unwrap_or(i64::MAX),
        storage: storage(b.storage),
        num_replicas: b.replicas,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        duplicate_window: b.ttl.min(Duration::from_secs(120)),
        max_message_size: -1,
        ..Default::default()
    }
}

async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    mode: Mode,
) -> Result<stream::Stream, BusError> {
    let name = config.name.clone();
    match js.get_stream(&name).await {
        Ok(existing) if mode == Mode::Open => Ok(existing),
        Err(e) if mode == Mode::Open => Err(BusError::provision(format!("stream {name}"), &e)),
        Ok(existing) => {
            let current = &existing.cached_info().config;
            // Adopt an existing stream; bring limits in line with the configuration
            // when they differ (replicas and limits can be changed in place).
            // "No limit" is -1 or 0 depending on who wrote it.
            let limit = |v: i64| if v <= 0 { -1 } else { v };
            if current.max_age != config.max_age
                || current.num_replicas.max(1) != config.num_replicas.max(1)
                || limit(current.max_bytes) != limit(config.max_bytes)
                || limit(current.max_messages) != limit(config.max_messages)
                || current.discard != config.discard
            {
                tracing::info!(
                    stream = %name,
                    replicas = config.num_replicas,
                    "updating the stream to the configured limits"
                );
                match js.update_stream(&config).await {
                    Ok(_) => {}
                    Err(e) if super::transient::is_transient(&e) => {
                        return Err(BusError::provision(format!("stream {name} (update)"), &e));
                    }
                    // The stream works as it is; refusing to start over its
                    // limits would take the host down for a tuning problem.
                    Err(e) => tracing::warn!(
                        stream = %name,
                        error = %e,
                        "cannot change the stream to the configured limits; using it as it is"
                    ),
                }
            }
            Ok(existing)
        }
        Err(_) => match js.create_stream(config).await {
            Ok(s) => Ok(s),
            // Another process may have created it between our get and create.
            Err(create_err) => js
                .get_stream(&name)
                .await
                .map_err(|_| BusError::provision(format!("stream {name}"), &create_err)),
        },
    }
}

async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    b: &BucketConfig,
    mode: Mode,
) -> Result<kv::Store, BusError> {
    ensure_stream(js, bucket_stream_config(bucket, b), mode).await?;
    open_bucket(js, bucket).await
}

async fn open_bucket(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, BusError> {
    js.get_key_value(bucket)
        .await
        .map_err(|e| BusError::provision(format!("bucket {bucket}"), &e))
}

/// Every stream the job system needs, as (what to call it, stream name): the
/// job stream and the backing stream of each bucket.
pub fn provisioned_streams(names: &Names, cfg: &NatsConfig) -> Vec<(String, String)> {
    let stream = names.resource(&cfg.stream.name);
    let mut all = vec![(format!("stream {stream}"), stream)];
    for b in [
        &cfg.kv.jobs_bucket,
        &cfg.kv.responses_bucket,
        &cfg.audit.bucket,
        &cfg.registry.bucket,
    ] {
        let bucket = names.resource(b);
        all.push((format!("bucket {bucket}"), format!("KV_{bucket}")));
    }
    all
}

/// Open every provisioned stream without creating anything: for readiness checks.
pub async fn check(
    js: &jetstream::Context,
    names: &Names,
    cfg: &NatsConfig,
) -> Result<(), BusError> {
    for (what, stream) in provisioned_streams(names, cfg) {
        js.get_stream(&stream)
            .await
            .map_err(|e| BusError::provision(what, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On disk by default: nothing reserved. Every bucket in memory (the
    /// integration test of a wiped server does that): all of their limits.
    #[test]
    fn memory_is_reserved_only_for_memory_backed_streams() {
        let mut cfg = NatsConfig::default();
        assert_eq!(memory_reserved(&cfg), 0);
        cfg.audit.storage = StorageKind::Memory;
        assert_eq!(memory_reserved(&cfg), cfg.audit.max_bytes);
        cfg.kv.storage = StorageKind::Memory;
        cfg.registry.storage = StorageKind::Memory;
        let all = memory_reserved(&cfg);
        assert!(
            all > 2 * cfg.kv.max_bytes + cfg.audit.max_bytes + cfg.registry.max_bytes,
            "{all}"
        );
    }
}
