//! Liveness, readiness, version and the health status report.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::api::AppState;
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::wire::{Component, Health, HealthStatus, Version, WhoAmI};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: 503 until NATS and every bucket answer.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Health), (status = 503, body = crate::api::error::Problem)))]
pub async fn ready(State(s): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    crate::bus::check(
        &async_nats::jetstream::new(s.nats.clone()),
        &s.names,
        &s.nats_config,
    )
    .await?;
    Ok(axum::Json(Health {
        status: "ready".into(),
    }))
}

/// The version of this server.
#[utoipa::path(get, path = "/api/v1/version", tag = "health", responses((status = 200, body = Version)))]
pub async fn version() -> axum::Json<Version> {
    axum::Json(Version {
        version: crate::VERSION.into(),
        api: "v1".into(),
    })
}

/// The caller's subject, roles and permissions (any valid token).
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth", responses((status = 200, body = WhoAmI)), security(("bearer" = [])))]
pub async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        subject: p.subject,
        roles: p.roles,
        permissions: p
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        expires_at: OffsetDateTime::from_unix_timestamp(p.expires_at)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

/// Components, live agents, uptime, memory and version (health:read).
#[utoipa::path(get, path = "/api/v1/health/status", tag = "health", responses((status = 200, body = HealthStatus)), security(("bearer" = [])))]
pub async fn status(State(s): State<AppState>) -> Response {
    let js = async_nats::jetstream::new(s.nats.clone());
    let mut components = Vec::new();
    let state = s.nats.connection_state();
    components.push(Component {
        name: "nats".into(),
        ok: state == async_nats::connection::State::Connected,
        detail: Some(format!("{state:?}").to_lowercase()),
    });
    let cfg = &s.nats_config;
    let streams = crate::bus::provisioned_streams(&s.names, cfg);
    for (name, stream) in streams {
        let (ok, detail) = match js.get_stream(&stream).await {
            Ok(st) => (
                true,
                format!("{} messages", st.cached_info().state.messages),
            ),
            Err(e) => (false, e.to_string()),
        };
        components.push(Component {
            name,
            ok,
            detail: Some(detail),
        });
    }
    let all_ok = components.iter().all(|c| c.ok);
    let body = HealthStatus {
        status: if all_ok { "ok" } else { "degraded" }.into(),
        version: crate::VERSION.into(),
        uptime_seconds: s.started.elapsed().as_secs(),
        memory_rss_bytes: rss_bytes(),
        nats: format!("{state:?}").to_lowercase(),
        agents_live: s.jobs.live.snapshot().len(),
        components,
    };
    let code = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// This process's resident memory, from /proc/self/status.
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
