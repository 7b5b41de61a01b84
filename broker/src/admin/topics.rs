//! `GET/POST /v1/topics`, `GET/DELETE /v1/topics/{name}`.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{path_param, ApiError, ApiResult, Ctx, JsonBody};
use crate::storage::{StorageError, TopicConfig, TopicInfo, MAX_PARTITIONS_PER_TOPIC};

#[derive(Serialize)]
pub(super) struct PartitionOffsets {
    partition: i32,
    start_offset: i64,
    end_offset: i64,
}

#[derive(Serialize)]
pub(super) struct TopicSummary {
    name: String,
    id: String,
    partitions: i32,
    /// Records between start and end offsets, over all partitions.
    messages: i64,
    offsets: Vec<PartitionOffsets>,
}

#[derive(Serialize)]
pub(super) struct TopicList {
    topics: Vec<TopicSummary>,
}

#[derive(Serialize)]
pub(super) struct PartitionDetail {
    partition: i32,
    start_offset: i64,
    end_offset: i64,
    size_bytes: u64,
}

#[derive(Serialize)]
pub(super) struct TopicDetail {
    name: String,
    id: String,
    partition_count: i32,
    configs: BTreeMap<String, String>,
    partitions: Vec<PartitionDetail>,
}

/// Offsets of every partition of `info` (a partition deleted meanwhile is skipped).
fn partition_offsets(ctx: &Ctx, info: &TopicInfo) -> Vec<(i32, crate::storage::Offsets, u64)> {
    (0..info.partitions)
        .filter_map(|p| {
            let partition = ctx.broker.storage.partition(&info.name, p)?;
            Some((p, partition.offsets(), partition.size_bytes()))
        })
        .collect()
}

pub(super) async fn list(State(ctx): State<Ctx>) -> Json<TopicList> {
    let topics = ctx
        .broker
        .storage
        .topics()
        .into_iter()
        .map(|info| {
            let offsets: Vec<_> = partition_offsets(&ctx, &info)
                .into_iter()
                .map(|(p, o, _)| PartitionOffsets {
                    partition: p,
                    start_offset: o.log_start_offset,
                    end_offset: o.log_end_offset,
                })
                .collect();
            TopicSummary {
                messages: offsets.iter().map(|o| o.end_offset - o.start_offset).sum(),
                name: info.name,
                id: info.id.to_string(),
                partitions: info.partitions,
                offsets,
            }
        })
        .collect();
    Json(TopicList { topics })
}

pub(super) fn detail(ctx: &Ctx, info: TopicInfo) -> TopicDetail {
    let partitions = partition_offsets(ctx, &info)
        .into_iter()
        .map(|(p, o, size_bytes)| PartitionDetail {
            partition: p,
            start_offset: o.log_start_offset,
            end_offset: o.log_end_offset,
            size_bytes,
        })
        .collect();
    TopicDetail {
        name: info.name,
        id: info.id.to_string(),
        partition_count: info.partitions,
        configs: info.config.configs,
        partitions,
    }
}

/// The topic named by the path, or 404: no topic has that name (an invalid name is
/// unknown too, and the message says why it could never exist).
pub(super) fn existing_topic(ctx: &Ctx, name: &str) -> ApiResult<TopicInfo> {
    if let Err(e) = crate::storage::validate_topic_name(name) {
        return Err(ApiError::not_found(format!("unknown topic: {e}")));
    }
    ctx.broker
        .storage
        .topic(name)
        .ok_or_else(|| ApiError::not_found(format!("unknown topic {name:?}")))
}

pub(super) async fn describe(
    State(ctx): State<Ctx>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<TopicDetail>> {
    let name = path_param(name, "name")?;
    let info = existing_topic(&ctx, &name)?;
    Ok(Json(detail(&ctx, info)))
}

#[derive(Serialize)]
pub(super) struct Deleted {
    deleted: String,
    id: String,
}

pub(super) async fn delete(
    State(ctx): State<Ctx>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Deleted>> {
    let name = path_param(name, "name")?;
    existing_topic(&ctx, &name)?;
    let info = ctx
        .broker
        .storage
        .delete_topic(&name)
        .map_err(|e| match e {
            StorageError::UnknownTopicOrPartition => {
                ApiError::not_found(format!("unknown topic {name:?}"))
            }
            other => ApiError::internal(format!("deleting topic {name:?}: {other}")),
        })?;
    tracing::info!(topic = %name, "deleted topic (admin API)");
    // Parked fetches on the topic answer now instead of at their deadline.
    ctx.broker.wake_parked();
    Ok(Json(Deleted {
        deleted: info.name,
        id: info.id.to_string(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTopic {
    name: String,
    /// Defaults to the broker's `default_partitions`.
    partitions: Option<i32>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// A topic create request that passed validation.
pub struct ValidNewTopic {
    pub name: String,
    pub partitions: i32,
    pub config: TopicConfig,
}

/// Validates `POST /v1/topics` (400 naming the field); `default_partitions` stands in
/// for a missing `partitions`. Public so the fuzz target `admin_json` runs it.
pub fn validate_new_topic(
    req: NewTopic,
    default_partitions: i32,
) -> Result<ValidNewTopic, ApiError> {
    crate::storage::validate_topic_name(&req.name)
        .map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    let partitions = req.partitions.unwrap_or(default_partitions);
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err(ApiError::bad_request(format!(
            "partitions: must be from 1 to {MAX_PARTITIONS_PER_TOPIC}, got {partitions}"
        )));
    }
    Ok(ValidNewTopic {
        name: req.name,
        partitions,
        config: TopicConfig {
            configs: req.configs,
        },
    })
}

pub(super) async fn create(
    State(ctx): State<Ctx>,
    JsonBody(req): JsonBody<NewTopic>,
) -> ApiResult<(StatusCode, Json<TopicDetail>)> {
    let ValidNewTopic {
        name,
        partitions,
        config,
    } = validate_new_topic(req, ctx.broker.effective.config.default_partitions)?;
    let info = ctx
        .broker
        .create_topic(&name, partitions, config)
        .map_err(|e| match e {
            StorageError::TopicExists(_) => {
                ApiError::conflict(format!("topic {:?} already exists", name))
            }
            StorageError::InvalidTopic(..) => ApiError::bad_request(format!("name: {e}")),
            StorageError::InvalidPartitions(_) | StorageError::TooManyPartitions { .. } => {
                ApiError::bad_request(format!("partitions: {e}"))
            }
            StorageError::TooManyTopics { .. } => ApiError::conflict(e.to_string()),
            StorageError::InvalidConfig(_) => ApiError::bad_request(format!("configs: {e}")),
            other => ApiError::internal(format!("creating topic {:?}: {other}", name)),
        })?;
    tracing::info!(topic = %info.name, partitions, "created topic (admin API)");
    Ok((StatusCode::CREATED, Json(detail(&ctx, info))))
}
