//! `GET /v1/groups`, `GET/DELETE /v1/groups/{id}`, on the group coordinator's API.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use serde::Serialize;

use super::{path_param, ApiError, ApiResult, Ctx};
use crate::group::{code, GroupDescription, GroupState};

/// The Kafka consumer protocol's type name: its assignments can be decoded.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// Highest ConsumerProtocolAssignment version known; newer ones are read as this one,
/// as Kafka's clients do (fields are only ever appended).
const ASSIGNMENT_VERSION_MAX: i16 = 3;

#[derive(Serialize)]
pub(super) struct GroupList {
    groups: Vec<GroupSummary>,
}

#[derive(Serialize)]
pub(super) struct GroupSummary {
    group_id: String,
    state: &'static str,
    protocol_type: Option<String>,
    members: usize,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

pub(super) async fn list(State(ctx): State<Ctx>) -> Json<GroupList> {
    let coordinator = ctx.broker.groups();
    let groups = coordinator
        .list()
        .into_iter()
        .map(|g| GroupSummary {
            members: coordinator.describe_any(&g.group_id).members.len(),
            state: g.state_name,
            protocol_type: non_empty(&g.protocol_type),
            group_id: g.group_id,
        })
        .collect();
    Json(GroupList { groups })
}

#[derive(Serialize)]
pub(super) struct AssignedPartitions {
    topic: String,
    partitions: Vec<i32>,
}

#[derive(Serialize)]
pub(super) struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    /// Decoded when the group uses the standard consumer protocol and is stable.
    assignment: Option<Vec<AssignedPartitions>>,
}

#[derive(Serialize)]
pub(super) struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub metadata: String,
    /// The partition's end offset, and how far the group is behind it (null when the
    /// partition no longer exists).
    pub end_offset: Option<i64>,
    pub lag: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct GroupDetail {
    group_id: String,
    state: &'static str,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<Member>,
    offsets: Vec<GroupOffset>,
}

/// The standard consumer protocol's assignment, or None when it does not decode.
fn decode_assignment(bytes: &Bytes) -> Option<Vec<AssignedPartitions>> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]).clamp(0, ASSIGNMENT_VERSION_MAX);
    let _ = buf.split_to(2);
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    Some(
        assignment
            .assigned_partitions
            .into_iter()
            .map(|tp| AssignedPartitions {
                topic: tp.topic.0.to_string(),
                partitions: tp.partitions,
            })
            .collect(),
    )
}

/// Committed offsets of a group with the lag against each partition's end.
pub(super) fn offsets_with_lag(ctx: &Ctx, group_id: &str) -> Vec<GroupOffset> {
    let committed = ctx
        .broker
        .groups()
        .committed(group_id, None)
        .unwrap_or_default();
    committed
        .into_iter()
        .filter_map(|((topic, partition), c)| {
            let c = c?;
            let end_offset = ctx
                .broker
                .storage
                .partition(&topic, partition)
                .map(|p| p.offsets().log_end_offset);
            Some(GroupOffset {
                lag: end_offset.map(|end| (end - c.offset).max(0)),
                end_offset,
                committed_offset: c.offset,
                metadata: c.metadata,
                topic,
                partition,
            })
        })
        .collect()
}

/// The group, or 404 when the coordinator does not know it (Dead without offsets) or
/// the id is not a valid group id.
fn known_group(ctx: &Ctx, id: &str) -> ApiResult<GroupDescription> {
    let d = ctx.broker.groups().describe_any(id);
    if d.error_code != code::NONE || d.state == GroupState::Dead {
        return Err(ApiError::not_found(format!("unknown group {id:?}")));
    }
    Ok(d)
}

pub(super) async fn describe(
    State(ctx): State<Ctx>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<GroupDetail>> {
    let id = path_param(id, "id")?;
    let d = known_group(&ctx, &id)?;
    let consumer = d.protocol_type == CONSUMER_PROTOCOL_TYPE;
    let members = d
        .members
        .into_iter()
        .map(|m| Member {
            assignment: if consumer && !m.assignment.is_empty() {
                decode_assignment(&m.assignment)
            } else {
                None
            },
            member_id: m.member_id,
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            host: m.client_host,
        })
        .collect();
    Ok(Json(GroupDetail {
        offsets: offsets_with_lag(&ctx, &id),
        group_id: d.group_id,
        state: d.state_name,
        generation: d.generation_id,
        protocol_type: non_empty(&d.protocol_type),
        protocol: non_empty(&d.protocol_name),
        leader: d.leader,
        members,
    }))
}

#[derive(Serialize)]
pub(super) struct GroupDeleted {
    deleted: String,
}

pub(super) async fn delete(
    State(ctx): State<Ctx>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<GroupDeleted>> {
    let id = path_param(id, "id")?;
    match ctx.broker.groups().delete(&id) {
        code::NONE => Ok(Json(GroupDeleted { deleted: id })),
        code::NON_EMPTY_GROUP => Err(ApiError::conflict(format!(
            "group {id:?} has active members; it can be deleted once they leave"
        ))),
        code::GROUP_ID_NOT_FOUND | code::INVALID_GROUP_ID => {
            Err(ApiError::not_found(format!("unknown group {id:?}")))
        }
        other => Err(ApiError::internal(format!(
            "deleting group {id:?} failed with Kafka error code {other}"
        ))),
    }
}
