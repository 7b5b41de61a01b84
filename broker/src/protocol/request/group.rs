//! Consumer groups: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete,
//! and the KIP-848 consumer protocol: ConsumerGroupHeartbeat, ConsumerGroupDescribe.

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, SyncGroupRequest,
};

use super::{DecodeError, Reader, Version};

pub(super) fn find_coordinator(
    r: &mut Reader,
    v: Version,
) -> Result<FindCoordinatorRequest, DecodeError> {
    let mut req = FindCoordinatorRequest::default();
    if v.number <= 3 {
        req.key = r.string(v.flexible)?;
    }
    if v.number >= 1 {
        req.key_type = r.i8()?;
    }
    if v.number >= 4 {
        req.coordinator_keys = r.array(v.flexible, |r| r.string(v.flexible))?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn join_group(r: &mut Reader, v: Version) -> Result<JoinGroupRequest, DecodeError> {
    let mut req = JoinGroupRequest::default();
    req.group_id = r.string(v.flexible)?.into();
    req.session_timeout_ms = r.i32()?;
    if v.number >= 1 {
        req.rebalance_timeout_ms = r.i32()?;
    }
    req.member_id = r.string(v.flexible)?;
    if v.number >= 5 {
        req.group_instance_id = r.nullable_string(v.flexible)?;
    }
    req.protocol_type = r.string(v.flexible)?;
    req.protocols = r.array(v.flexible, |r| {
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = r.string(v.flexible)?;
        protocol.metadata = r.bytes(v.flexible)?;
        r.tagged_fields_if(v.flexible)?;
        Ok(protocol)
    })?;
    if v.number >= 8 {
        req.reason = r.nullable_string(v.flexible)?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn sync_group(r: &mut Reader, v: Version) -> Result<SyncGroupRequest, DecodeError> {
    let mut req = SyncGroupRequest::default();
    req.group_id = r.string(v.flexible)?.into();
    req.generation_id = r.i32()?;
    req.member_id = r.string(v.flexible)?;
    if v.number >= 3 {
        req.group_instance_id = r.nullable_string(v.flexible)?;
    }
    if v.number >= 5 {
        req.protocol_type = r.nullable_string(v.flexible)?;
        req.protocol_name = r.nullable_string(v.flexible)?;
    }
    req.assignments = r.array(v.flexible, |r| {
        let mut assignment = SyncGroupRequestAssignment::default();
        assignment.member_id = r.string(v.flexible)?;
        assignment.assignment = r.bytes(v.flexible)?;
        r.tagged_fields_if(v.flexible)?;
        Ok(assignment)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn heartbeat(r: &mut Reader, v: Version) -> Result<HeartbeatRequest, DecodeError> {
    let mut req = HeartbeatRequest::default();
    req.group_id = r.string(v.flexible)?.into();
    req.generation_id = r.i32()?;
    req.member_id = r.string(v.flexible)?;
    if v.number >= 3 {
        req.group_instance_id = r.nullable_string(v.flexible)?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn leave_group(r: &mut Reader, v: Version) -> Result<LeaveGroupRequest, DecodeError> {
    let mut req = LeaveGroupRequest::default();
    req.group_id = r.string(v.flexible)?.into();
    if v.number <= 2 {
        req.member_id = r.string(v.flexible)?;
    } else {
        req.members = r.array(v.flexible, |r| {
            let mut member = MemberIdentity::default();
            member.member_id = r.string(v.flexible)?;
            member.group_instance_id = r.nullable_string(v.flexible)?;
            if v.number >= 5 {
                member.reason = r.nullable_string(v.flexible)?;
            }
            r.tagged_fields_if(v.flexible)?;
            Ok(member)
        })?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn offset_commit(
    r: &mut Reader,
    v: Version,
) -> Result<OffsetCommitRequest, DecodeError> {
    let mut req = OffsetCommitRequest::default();
    req.group_id = r.string(v.flexible)?.into();
    req.generation_id_or_member_epoch = r.i32()?;
    req.member_id = r.string(v.flexible)?;
    if v.number >= 7 {
        req.group_instance_id = r.nullable_string(v.flexible)?;
    }
    if v.number <= 4 {
        req.retention_time_ms = r.i64()?;
    }
    req.topics = r.array(v.flexible, |r| {
        let mut topic = OffsetCommitRequestTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.partitions = r.array(v.flexible, |r| {
            let mut partition = OffsetCommitRequestPartition::default();
            partition.partition_index = r.i32()?;
            partition.committed_offset = r.i64()?;
            if v.number >= 6 {
                partition.committed_leader_epoch = r.i32()?;
            }
            partition.committed_metadata = r.nullable_string(v.flexible)?;
            r.tagged_fields_if(v.flexible)?;
            Ok(partition)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn offset_fetch(r: &mut Reader, v: Version) -> Result<OffsetFetchRequest, DecodeError> {
    let mut req = OffsetFetchRequest::default();
    if v.number <= 7 {
        req.group_id = r.string(v.flexible)?.into();
        let topic = |r: &mut Reader| {
            let mut topic = OffsetFetchRequestTopic::default();
            topic.name = r.string(v.flexible)?.into();
            topic.partition_indexes = r.array(v.flexible, |r| r.i32())?;
            r.tagged_fields_if(v.flexible)?;
            Ok(topic)
        };
        // A null topic list ("all committed offsets") exists from v2.
        req.topics = if v.number >= 2 {
            r.nullable_array(v.flexible, topic)?
        } else {
            Some(r.array(v.flexible, topic)?)
        };
    } else {
        req.groups = r.array(v.flexible, |r| {
            let mut group = OffsetFetchRequestGroup::default();
            group.group_id = r.string(v.flexible)?.into();
            if v.number >= 9 {
                group.member_id = r.nullable_string(v.flexible)?;
                group.member_epoch = r.i32()?;
            }
            group.topics = r.nullable_array(v.flexible, |r| {
                let mut topic = OffsetFetchRequestTopics::default();
                topic.name = r.string(v.flexible)?.into();
                topic.partition_indexes = r.array(v.flexible, |r| r.i32())?;
                r.tagged_fields_if(v.flexible)?;
                Ok(topic)
            })?;
            r.tagged_fields_if(v.flexible)?;
            Ok(group)
        })?;
    }
    if v.number >= 7 {
        req.require_stable = r.bool()?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn list_groups(r: &mut Reader, v: Version) -> Result<ListGroupsRequest, DecodeError> {
    let mut req = ListGroupsRequest::default();
    if v.number >= 4 {
        req.states_filter = r.array(v.flexible, |r| r.string(v.flexible))?;
    }
    if v.number >= 5 {
        req.types_filter = r.array(v.flexible, |r| r.string(v.flexible))?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn describe_groups(
    r: &mut Reader,
    v: Version,
) -> Result<DescribeGroupsRequest, DecodeError> {
    let mut req = DescribeGroupsRequest::default();
    req.groups = r.array(v.flexible, |r| Ok(r.string(v.flexible)?.into()))?;
    if v.number >= 3 {
        req.include_authorized_operations = r.bool()?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn delete_groups(
    r: &mut Reader,
    v: Version,
) -> Result<DeleteGroupsRequest, DecodeError> {
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = r.array(v.flexible, |r| Ok(r.string(v.flexible)?.into()))?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn offset_delete(
    r: &mut Reader,
    v: Version,
) -> Result<OffsetDeleteRequest, DecodeError> {
    let mut req = OffsetDeleteRequest::default();
    req.group_id = r.string(v.flexible)?.into();
    req.topics = r.array(v.flexible, |r| {
        let mut topic = OffsetDeleteRequestTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.partitions = r.array(v.flexible, |r| {
            let mut partition = OffsetDeleteRequestPartition::default();
            partition.partition_index = r.i32()?;
            Ok(partition)
        })?;
        Ok(topic)
    })?;
    Ok(req)
}

/// ConsumerGroupHeartbeat (key 68), flexible in every version; v1 adds the regex.
pub(super) fn consumer_group_heartbeat(
    r: &mut Reader,
    v: Version,
) -> Result<ConsumerGroupHeartbeatRequest, DecodeError> {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = r.string(v.flexible)?.into();
    req.member_id = r.string(v.flexible)?;
    req.member_epoch = r.i32()?;
    req.instance_id = r.nullable_string(v.flexible)?;
    req.rack_id = r.nullable_string(v.flexible)?;
    req.rebalance_timeout_ms = r.i32()?;
    req.subscribed_topic_names =
        r.nullable_array(v.flexible, |r| Ok(r.string(v.flexible)?.into()))?;
    if v.number >= 1 {
        req.subscribed_topic_regex = r.nullable_string(v.flexible)?;
    }
    req.server_assignor = r.nullable_string(v.flexible)?;
    req.topic_partitions = r.nullable_array(v.flexible, |r| {
        let mut tp = TopicPartitions::default();
        tp.topic_id = r.uuid()?;
        tp.partitions = r.array(v.flexible, |r| r.i32())?;
        r.tagged_fields_if(v.flexible)?;
        Ok(tp)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

/// ConsumerGroupDescribe (key 69), flexible in every version.
pub(super) fn consumer_group_describe(
    r: &mut Reader,
    v: Version,
) -> Result<ConsumerGroupDescribeRequest, DecodeError> {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = r.array(v.flexible, |r| Ok(r.string(v.flexible)?.into()))?;
    req.include_authorized_operations = r.bool()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}
