//! `GET /healthz` and `GET /v1/broker`.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::config_api::{live_config, LiveConfig};
use super::{ApiError, ApiResult, Ctx};
use crate::config::{Fallback, LIVE_KEYS};

#[derive(Serialize)]
pub(super) struct Health {
    status: &'static str,
}

/// The admin listener answers only once the Kafka listener is bound and its event
/// loops run (both start before the ready line), so an answer means both accept.
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize)]
pub(super) struct Listeners {
    kafka: String,
    advertised: String,
    admin: String,
}

#[derive(Serialize)]
pub(super) struct Platform {
    os: &'static str,
    arch: &'static str,
    /// The running kernel's release (`/proc/sys/kernel/osrelease`), when readable.
    kernel: Option<String>,
    cpus: usize,
}

/// A live key whose value differs from the one the broker started with.
#[derive(Serialize)]
pub(super) struct RuntimeChange {
    key: &'static str,
    startup: Value,
    current: Value,
}

#[derive(Serialize)]
pub(super) struct BrokerInfo {
    version: &'static str,
    uptime_ms: u64,
    node_id: i32,
    cluster_id: String,
    listeners: Listeners,
    data_dir: String,
    io_threads: usize,
    platform: Platform,
    topics: usize,
    /// Every configuration key with the value in force now (live keys included).
    effective_config: Value,
    /// Requested values that could not be honoured, and why.
    fallbacks: Vec<Fallback>,
    /// The toggles that `PUT /v1/config` may change, as they are now.
    live: LiveConfig,
    /// Live keys changed since start-up.
    changed_at_runtime: Vec<RuntimeChange>,
}

pub(super) async fn broker(State(ctx): State<Ctx>) -> ApiResult<Json<BrokerInfo>> {
    let eff = &ctx.broker.effective;
    let cfg = &eff.config;
    let startup = serde_json::to_value(cfg)
        .map_err(|e| ApiError::internal(format!("cannot serialize the configuration: {e}")))?;
    let live = live_config(&ctx);
    let live_value = serde_json::to_value(&live)
        .map_err(|e| ApiError::internal(format!("cannot serialize live values: {e}")))?;
    let mut effective_config = startup.clone();
    let mut changed_at_runtime = Vec::new();
    for key in LIVE_KEYS {
        let (Some(now), Some(then)) = (live_value.get(*key), startup.get(*key)) else {
            continue;
        };
        if now != then {
            changed_at_runtime.push(RuntimeChange {
                key,
                startup: then.clone(),
                current: now.clone(),
            });
        }
        if let Some(slot) = effective_config.get_mut(*key) {
            *slot = now.clone();
        }
    }
    Ok(Json(BrokerInfo {
        version: env!("CARGO_PKG_VERSION"),
        uptime_ms: u64::try_from(ctx.broker.started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
        node_id: cfg.node_id,
        cluster_id: cfg.cluster_id.clone(),
        listeners: Listeners {
            kafka: ctx.kafka_addr.to_string(),
            advertised: ctx.advertised.clone(),
            admin: ctx.admin_addr.to_string(),
        },
        data_dir: cfg.data_dir.display().to_string(),
        io_threads: cfg.io_threads,
        platform: Platform {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        topics: ctx.broker.storage.topics().len(),
        effective_config,
        fallbacks: eff.fallbacks.clone(),
        live,
        changed_at_runtime,
    }))
}
