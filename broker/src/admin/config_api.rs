//! `GET /v1/config` and `PUT /v1/config`: the toggles that change while running.
//!
//! Live keys: `loop_timeout_ms` (every worker, from its next wait), `idle_spin_us`
//! (every worker, from its next loop iteration), `busy_poll_us` and
//! `prefer_busy_poll` (connections accepted from now on), `flush`
//! (appends from now on). Every other configuration key is structural: it shaped
//! threads, buffers, maps or listeners at start-up, so changing it answers 409. A
//! structural key sent with its current value is accepted as a no-op, so the
//! effective configuration from `GET /v1/broker` can be sent back as it is.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{ApiError, ApiResult, Ctx, JsonBody};
use crate::config::{
    Flush, LIVE_KEYS, MAX_BUSY_POLL_US, MAX_IDLE_SPIN_US, MAX_LOOP_TIMEOUT_MS, MIN_LOOP_TIMEOUT_MS,
};

/// The live toggles as they are now.
#[derive(Debug, Serialize)]
pub(super) struct LiveConfig {
    pub loop_timeout_ms: u64,
    pub idle_spin_us: u32,
    pub busy_poll_us: u32,
    pub prefer_busy_poll: bool,
    pub flush: String,
}

pub(super) fn live_config(ctx: &Ctx) -> LiveConfig {
    let live = &ctx.broker.live;
    LiveConfig {
        loop_timeout_ms: live.loop_timeout_ms(),
        idle_spin_us: live.idle_spin_us(),
        busy_poll_us: live.busy_poll_us(),
        prefer_busy_poll: live.prefer_busy_poll(),
        flush: ctx.broker.storage.flush_policy().to_string(),
    }
}

pub(super) async fn get_config(State(ctx): State<Ctx>) -> Json<LiveConfig> {
    Json(live_config(&ctx))
}

/// A validated change, applied only when the whole request is valid.
#[derive(Debug, Default)]
pub struct Change {
    loop_timeout_ms: Option<u64>,
    idle_spin_us: Option<u32>,
    busy_poll_us: Option<u32>,
    prefer_busy_poll: Option<bool>,
    flush: Option<Flush>,
}

pub(super) async fn put_config(
    State(ctx): State<Ctx>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<LiveConfig>> {
    let startup = serde_json::to_value(&ctx.broker.effective.config)
        .map_err(|e| ApiError::internal(format!("cannot serialize the configuration: {e}")))?;
    let change = validate_change(&startup, &body)?;
    let live = &ctx.broker.live;
    if let Some(ms) = change.loop_timeout_ms {
        live.set_loop_timeout_ms(ms);
    }
    if let Some(us) = change.idle_spin_us {
        live.set_idle_spin_us(us);
    }
    if let Some(us) = change.busy_poll_us {
        live.set_busy_poll_us(us);
    }
    if let Some(on) = change.prefer_busy_poll {
        live.set_prefer_busy_poll(on);
    }
    if let Some(flush) = change.flush {
        let storage = &ctx.broker.storage;
        storage.set_flush_policy(flush);
        if let Some(flusher) = &ctx.flusher {
            flusher.unpark();
        }
        if flush == Flush::Always {
            // What was acknowledged before the switch becomes durable now too.
            storage
                .flush_all()
                .map_err(|e| ApiError::internal(format!("flush after switching to always: {e}")))?;
        }
    }
    let change = serde_json::Value::Object(body);
    tracing::info!(%change, "live configuration changed");
    Ok(Json(live_config(&ctx)))
}

/// Validates a `PUT /v1/config` body against the running configuration `startup`
/// (serialized): 400 for an unknown key or a bad live value, 409 for a structural key
/// sent with another value. Public so the fuzz target `admin_json` runs it.
pub fn validate_change(startup: &Value, body: &Map<String, Value>) -> Result<Change, ApiError> {
    let mut change = Change::default();
    let mut structural = Vec::new();
    for (key, value) in body {
        let bad = |why: &str| ApiError::bad_request(format!("{key}: {why}"));
        match key.as_str() {
            "loop_timeout_ms" => {
                change.loop_timeout_ms = Some(
                    value
                        .as_u64()
                        .filter(|ms| (MIN_LOOP_TIMEOUT_MS..=MAX_LOOP_TIMEOUT_MS).contains(ms))
                        .ok_or_else(|| {
                            bad("must be an integer from 1 to 60000 (to poll, set idle_spin_us)")
                        })?,
                )
            }
            "idle_spin_us" => {
                change.idle_spin_us = Some(
                    value
                        .as_u64()
                        .and_then(|us| u32::try_from(us).ok())
                        .filter(|us| *us <= MAX_IDLE_SPIN_US)
                        .ok_or_else(|| bad("must be an integer from 0 to 1000000"))?,
                )
            }
            "busy_poll_us" => {
                change.busy_poll_us = Some(
                    value
                        .as_u64()
                        .and_then(|us| u32::try_from(us).ok())
                        .filter(|us| *us <= MAX_BUSY_POLL_US)
                        .ok_or_else(|| bad("must be an integer from 0 to 1000000"))?,
                )
            }
            "prefer_busy_poll" => {
                change.prefer_busy_poll =
                    Some(value.as_bool().ok_or_else(|| bad("must be a boolean"))?)
            }
            "flush" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| bad("must be a string: never, always or <N>ms"))?;
                change.flush = Some(text.parse::<Flush>().map_err(|e| bad(&e))?);
            }
            _ => match startup.get(key) {
                Some(current) if current == value => {}
                // Optional keys that are unset serialize as null.
                None if crate::config::is_known_key(key) && value.is_null() => {}
                Some(_) | None if crate::config::is_known_key(key) => structural.push(key.clone()),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "{key}: unknown configuration key"
                    )))
                }
            },
        }
    }
    if !structural.is_empty() {
        return Err(ApiError::conflict(format!(
            "{} cannot change while the broker runs: structural settings shape threads, \
             buffers, maps or listeners at start-up; restart with --set KEY=VALUE \
             (live keys: {})",
            structural.join(", "),
            LIVE_KEYS.join(", ")
        )));
    }
    Ok(change)
}
