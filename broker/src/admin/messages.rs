//! `GET /v1/topics/{name}/messages` (peek) and `POST /v1/topics/{name}/messages`
//! (produce through the admin API).
//!
//! Peek decodes the stored v2 batches with kafka-protocol's decoder, after inflating
//! gzip, snappy, lz4 and zstd records through the broker's bounded decompression. Produce encodes proper v2 batches
//! (CRC32C and all) with kafka-protocol's encoder and appends them through the same
//! `Partition::append` as a Kafka Produce, so every client reads them.

use std::collections::BTreeMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
    TimestampType,
};
use serde::{Deserialize, Serialize};

use super::topics::existing_topic;
use super::{path_param, ApiError, ApiResult, Ctx, JsonBody};
use crate::protocol::batch::{batch_records, Batches, RecordBatch, MAX_DECODED_RECORDS_PER_BATCH};
use crate::storage::{AppendError, ReadError, StorageError};

/// Records returned by one peek when `limit` is not given.
pub const PEEK_LIMIT_DEFAULT: usize = 10;
/// Most records one peek returns; a larger `limit` is capped to it.
pub const PEEK_LIMIT_MAX: usize = 1000;
/// Bytes read from the log per step of a peek (whole batches; at least one).
const PEEK_READ_BYTES: usize = 1024 * 1024;

#[derive(Serialize)]
pub(super) struct PeekedMessage {
    offset: i64,
    /// Milliseconds since the epoch: the record's create time, or the batch's
    /// log-append time when the batch says so.
    timestamp: i64,
    timestamp_type: &'static str,
    /// UTF-8 text, or base64 when `key_base64` is true; null for a null key.
    key: Option<String>,
    key_base64: bool,
    value: Option<String>,
    value_base64: bool,
    /// Header values as UTF-8 text, or base64 for the names in `headers_base64`.
    headers: IndexMap<String, Option<String>>,
    headers_base64: Vec<String>,
}

#[derive(Serialize)]
pub(super) struct Peek {
    topic: String,
    partition: i32,
    start_offset: i64,
    end_offset: i64,
    /// Where the next peek should start to continue after these messages.
    next_offset: i64,
    messages: Vec<PeekedMessage>,
}

/// Text when the bytes are UTF-8, else base64 (and true).
fn text_or_base64(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (BASE64.encode(bytes), true),
    }
}

struct PeekParams {
    partition: i32,
    offset: Option<i64>,
    limit: usize,
}

fn peek_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<PeekParams> {
    let Query(pairs) =
        query.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let mut params = PeekParams {
        partition: 0,
        offset: None,
        limit: PEEK_LIMIT_DEFAULT,
    };
    for (key, value) in pairs {
        let bad =
            |why: &str| ApiError::bad_request(format!("parameter {key}: {why}, got {value:?}"));
        match key.as_str() {
            "partition" => {
                params.partition = value
                    .parse::<i32>()
                    .ok()
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| bad("must be an integer from 0 to 2^31-1"))?
            }
            "offset" => {
                params.offset = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|o| *o >= 0)
                        .ok_or_else(|| bad("must be an integer from 0 to 2^63-1"))?,
                )
            }
            "limit" => {
                let limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|l| *l >= 1)
                    .ok_or_else(|| bad("must be an integer from 1 to 2^63-1"))?;
                params.limit = usize::try_from(limit)
                    .unwrap_or(usize::MAX)
                    .min(PEEK_LIMIT_MAX);
            }
            // Unknown parameters are ignored, as most HTTP APIs do.
            _ => {}
        }
    }
    Ok(params)
}

pub(super) async fn peek(
    State(ctx): State<Ctx>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Json<Peek>> {
    let name = path_param(name, "name")?;
    let info = existing_topic(&ctx, &name)?;
    let params = peek_params(query)?;
    let partition = ctx
        .broker
        .storage
        .partition(&name, params.partition)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "topic {name:?} has no partition {} (it has {})",
                params.partition, info.partitions
            ))
        })?;
    let offsets = partition.offsets();
    // An offset below the log start (or none) starts at the log start.
    let mut next = params
        .offset
        .unwrap_or(offsets.log_start_offset)
        .max(offsets.log_start_offset);
    let mut messages = Vec::new();
    'read: while messages.len() < params.limit && next < offsets.log_end_offset {
        let read = match partition.read(next, PEEK_READ_BYTES) {
            Ok(r) => r,
            // The log start moved past `next` meanwhile (a concurrent delete).
            Err(ReadError::OffsetOutOfRange) => break,
            Err(ReadError::Io(e)) => {
                return Err(ApiError::internal(format!(
                    "reading {name}-{}: {e}",
                    params.partition
                )))
            }
        };
        if read.records.is_empty() {
            break;
        }
        let mut position = 0usize;
        for batch in Batches::new(&read.records) {
            let batch = batch.map_err(|e| {
                ApiError::internal(format!("stored batch at offset {next} does not parse: {e}"))
            })?;
            let (start, total) = (position, batch.total_bytes());
            position += total;
            let last_offset = batch.last_offset();
            if last_offset < next {
                continue;
            }
            if batch.is_control() {
                // Transaction markers are not messages.
                next = last_offset + 1;
                continue;
            }
            let log_append_time = batch.is_log_append_time();
            let max_timestamp = batch.max_timestamp();
            let set =
                decode_bounded(read.records.slice(start..start + total), &batch).map_err(|e| {
                    ApiError::internal(format!(
                        "stored batch at offset {} does not decode: {e}",
                        batch.base_offset()
                    ))
                })?;
            for record in set.records {
                if record.offset < next {
                    continue;
                }
                if messages.len() == params.limit {
                    break 'read;
                }
                next = record.offset + 1;
                messages.push(peeked(record, log_append_time, max_timestamp));
            }
            next = next.max(last_offset + 1);
        }
    }
    Ok(Json(Peek {
        topic: name,
        partition: params.partition,
        start_offset: offsets.log_start_offset,
        end_offset: offsets.log_end_offset,
        next_offset: next,
        messages,
    }))
}

/// Decodes a stored batch into records with kafka-protocol's decoder, but inflating
/// through [`batch_records`] (bounded) and refusing more records than
/// [`MAX_DECODED_RECORDS_PER_BATCH`], so a compression bomb a producer stored costs a
/// peek bounded memory rather than the broker.
fn decode_bounded(mut bytes: Bytes, batch: &RecordBatch<'_>) -> anyhow::Result<RecordSet> {
    let count = usize::try_from(batch.records_count()).unwrap_or(usize::MAX);
    if count > MAX_DECODED_RECORDS_PER_BATCH {
        anyhow::bail!(
            "{count} records in one batch, more than a peek decodes ({MAX_DECODED_RECORDS_PER_BATCH})"
        );
    }
    let records = Bytes::from(batch_records(batch)?.into_owned());
    // The header (CRC included) is checked by the crate; the records come from above.
    RecordBatchDecoder::decode_with_custom_compression(
        &mut bytes,
        Some(|_: &mut Bytes, _: Compression| Ok(records.clone())),
    )
}

fn peeked(record: Record, log_append_time: bool, max_timestamp: i64) -> PeekedMessage {
    let (key, key_base64) = match &record.key {
        Some(k) => {
            let (text, b64) = text_or_base64(k);
            (Some(text), b64)
        }
        None => (None, false),
    };
    let (value, value_base64) = match &record.value {
        Some(v) => {
            let (text, b64) = text_or_base64(v);
            (Some(text), b64)
        }
        None => (None, false),
    };
    let mut headers = IndexMap::new();
    let mut headers_base64 = Vec::new();
    for (name, value) in &record.headers {
        let name = name.to_string();
        let value = value.as_ref().map(|v| {
            let (text, b64) = text_or_base64(v);
            if b64 {
                headers_base64.push(name.clone());
            }
            text
        });
        headers.insert(name, value);
    }
    PeekedMessage {
        offset: record.offset,
        // In a log-append-time batch every record carries the batch's max timestamp.
        timestamp: if log_append_time {
            max_timestamp
        } else {
            record.timestamp
        },
        timestamp_type: if log_append_time {
            "log_append_time"
        } else {
            "create_time"
        },
        key,
        key_base64,
        value,
        value_base64,
        headers,
        headers_base64,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// UTF-8 text or null. Outer `None`: the field is absent.
    #[serde(default, deserialize_with = "present")]
    key: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<String>>,
    /// Arbitrary bytes as base64, instead of `key` / `value`.
    #[serde(default, deserialize_with = "present")]
    key_b64: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    value_b64: Option<Option<String>>,
    #[serde(default)]
    headers: IndexMap<String, Option<String>>,
    /// Without a partition: murmur2 of the key as Kafka's default partitioner does,
    /// partition 0 for a null key.
    partition: Option<i32>,
    /// Create time in ms since the epoch; defaults to now.
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    messages: Vec<NewMessage>,
}

#[derive(Serialize)]
pub(super) struct PartitionAppended {
    partition: i32,
    base_offset: i64,
    count: usize,
}

#[derive(Serialize)]
pub(super) struct Produced {
    topic: String,
    /// Base offset of the first partition written (the only one, usually).
    base_offset: i64,
    count: usize,
    partitions: Vec<PartitionAppended>,
}

/// Marks a field present (`Some`) even when its value is null, so that "absent" and
/// "null" can be told apart.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Padded standard base64 that also takes non-zero trailing bits ("AB==" as well as
/// "AA=="), as the OpenAPI pattern does.
const BASE64_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The bytes of a key or value given as text (or null) or as base64, not both.
fn decode_field(
    text: Option<Option<String>>,
    b64: Option<Option<String>>,
    field: &str,
) -> ApiResult<Option<Bytes>> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "{field}: give {field} or {field}_b64, not both"
        ))),
        (Some(text), None) => Ok(text.map(Bytes::from)),
        (None, Some(Some(b))) => BASE64_LENIENT
            .decode(b.as_bytes())
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| ApiError::bad_request(format!("{field}_b64: not valid base64: {e}"))),
        (None, Some(None)) => Err(ApiError::bad_request(format!(
            "{field}_b64: must be a base64 string (use {field}: null for null)"
        ))),
        (None, None) => Ok(None),
    }
}

/// Validates a `POST /v1/topics/{name}/messages` body for a topic of `partitions`
/// partitions and encodes one v2 batch per partition, as `(partition, records,
/// batch)`; nothing touches storage. 400/404 name the bad message and field.
/// Public so the fuzz target `admin_json` runs it.
pub fn encode_produce_body(
    body: ProduceBody,
    topic: &str,
    partitions: i32,
    now_ms: i64,
) -> Result<Vec<(i32, usize, BytesMut)>, ApiError> {
    if body.messages.is_empty() {
        return Err(ApiError::bad_request("messages: must not be empty"));
    }
    // Validate everything before appending anything, so a bad message appends nothing.
    let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for (i, m) in body.messages.into_iter().enumerate() {
        let key = decode_field(m.key, m.key_b64, &format!("messages[{i}].key"))?;
        let value = decode_field(m.value, m.value_b64, &format!("messages[{i}].value"))?;
        let partition = match m.partition {
            Some(p) if (0..partitions).contains(&p) => p,
            Some(p) => {
                // 404 like a peek at a missing partition: the field is well-formed,
                // the partition does not exist.
                return Err(ApiError::not_found(format!(
                    "messages[{i}].partition: topic {topic:?} has no partition {p} (it has {partitions})"
                )));
            }
            None => key.as_deref().map_or(0, |k| {
                crate::partitioner::partition_for_key(k, partitions.max(1) as usize) as i32
            }),
        };
        let timestamp = match m.timestamp {
            Some(ts) if ts >= 0 => ts,
            Some(ts) => {
                return Err(ApiError::bad_request(format!(
                    "messages[{i}].timestamp: must be >= 0, got {ts}"
                )))
            }
            None => now_ms,
        };
        let headers = m
            .headers
            .into_iter()
            .map(|(k, v)| (StrBytes::from_string(k), v.map(Bytes::from)))
            .collect();
        let records = by_partition.entry(partition).or_default();
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: records.len() as i64,
            // Counting up from -1 keeps the partition's records in one batch
            // (kafka-protocol's encoder starts a new batch when offset - sequence changes).
            sequence: -1 + records.len() as i32,
            timestamp,
            key,
            value,
            headers,
        });
    }
    let mut batches = Vec::with_capacity(by_partition.len());
    for (partition, records) in &by_partition {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| ApiError::internal(format!("encoding a record batch: {e}")))?;
        batches.push((*partition, records.len(), buf));
    }
    Ok(batches)
}

pub(super) async fn produce(
    State(ctx): State<Ctx>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<ProduceBody>,
) -> ApiResult<Json<Produced>> {
    let name = path_param(name, "name")?;
    let info = topic_or_auto_create(&ctx, &name)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let encoded = encode_produce_body(body, &name, info.partitions, now_ms)?;
    let mut batches = Vec::with_capacity(encoded.len());
    for (partition, count, buf) in encoded {
        let target = ctx
            .broker
            .storage
            .partition(&name, partition)
            .ok_or_else(|| ApiError::not_found(format!("topic {name:?} was deleted")))?;
        batches.push((partition, count, target, buf));
    }
    let mut appended = Vec::with_capacity(batches.len());
    for (partition, count, target, buf) in batches {
        let result = target.append(&buf);
        // Consumers parked on a partition written before a later failure still wake.
        if !appended.is_empty() || result.is_ok() {
            ctx.broker.wake_parked();
        }
        let broker_max_bytes = ctx.broker.effective.config.max_message_bytes;
        let a = result.map_err(|e| match e {
            AppendError::TooLarge(bytes) if bytes > broker_max_bytes => ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "messages for partition {partition}: a batch of {bytes} bytes exceeds max_message_bytes"
                ),
            ),
            // The topic's own configs refuse what the broker would take: a conflict
            // with the topic's state, not a malformed request.
            AppendError::TooLarge(bytes) => ApiError::conflict(format!(
                "messages for partition {partition}: a batch of {bytes} bytes exceeds the topic's max.message.bytes"
            )),
            AppendError::KeylessRecords(_) => ApiError::conflict(format!(
                "topic {name:?} has cleanup.policy compact: every message needs a key"
            )),
            other => ApiError::internal(format!("appending to {name}-{partition}: {other}")),
        })?;
        appended.push(PartitionAppended {
            partition,
            base_offset: a.base_offset,
            count,
        });
    }
    Ok(Json(Produced {
        topic: name,
        base_offset: appended.first().map_or(-1, |a| a.base_offset),
        count: appended.iter().map(|a| a.count).sum(),
        partitions: appended,
    }))
}

/// The topic a produce names; an unknown one is created as a Kafka Produce would
/// create it (the broker's own auto-create path: `default_partitions`, name rules,
/// `max_topics`) when `auto_create_topics` is on, else 404 naming the setting.
fn topic_or_auto_create(ctx: &Ctx, name: &str) -> ApiResult<crate::storage::TopicInfo> {
    match existing_topic(ctx, name) {
        Ok(info) => Ok(info),
        // An invalid name stays 404 with its reason: it could never be created.
        Err(e) if crate::storage::validate_topic_name(name).is_err() => Err(e),
        Err(_) if !ctx.broker.effective.config.auto_create_topics => {
            Err(ApiError::not_found(format!(
                "unknown topic {name:?} (auto_create_topics is off: create it with POST /v1/topics)"
            )))
        }
        Err(_) => ctx.broker.auto_create_topic(name).map_err(|e| match e {
            StorageError::TooManyTopics { .. } => ApiError::conflict(e.to_string()),
            StorageError::TooManyPartitions { .. } => ApiError::conflict(format!(
                "cannot auto-create {name:?} with default_partitions: {e}"
            )),
            StorageError::UnknownTopicOrPartition => {
                ApiError::not_found(format!("topic {name:?} was deleted while being created"))
            }
            other => ApiError::internal(format!("auto-creating topic {name:?}: {other}")),
        }),
    }
}
