//! The data path: Produce, Fetch, ListOffsets.

use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ListOffsetsRequest, ProduceRequest};

use super::{DecodeError, Reader, Version};

/// Fetch's top-level tagged fields (flexible versions only).
const FETCH_TAG_CLUSTER_ID: u32 = 0;
const FETCH_TAG_REPLICA_STATE: u32 = 1;

pub(super) fn produce(r: &mut Reader, v: Version) -> Result<ProduceRequest, DecodeError> {
    let mut req = ProduceRequest::default();
    req.transactional_id = r.nullable_string(v.flexible)?.map(Into::into);
    req.acks = r.i16()?;
    req.timeout_ms = r.i32()?;
    req.topic_data = r.array(v.flexible, |r| {
        let mut topic = TopicProduceData::default();
        topic.name = r.string(v.flexible)?.into();
        topic.partition_data = r.array(v.flexible, |r| {
            let mut partition = PartitionProduceData::default();
            partition.index = r.i32()?;
            // The record batches stay a zero-copy slice of the request frame.
            partition.records = r.nullable_bytes(v.flexible)?;
            r.tagged_fields_if(v.flexible)?;
            Ok(partition)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn fetch(r: &mut Reader, v: Version) -> Result<FetchRequest, DecodeError> {
    let mut req = FetchRequest::default();
    if v.number <= 14 {
        req.replica_id = r.i32()?.into();
    }
    req.max_wait_ms = r.i32()?;
    req.min_bytes = r.i32()?;
    req.max_bytes = r.i32()?;
    req.isolation_level = r.i8()?;
    if v.number >= 7 {
        req.session_id = r.i32()?;
        req.session_epoch = r.i32()?;
    }
    req.topics = r.array(v.flexible, |r| {
        let mut topic = FetchTopic::default();
        if v.number <= 12 {
            topic.topic = r.string(v.flexible)?.into();
        }
        if v.number >= 13 {
            topic.topic_id = r.uuid()?;
        }
        topic.partitions = r.array(v.flexible, |r| fetch_partition(r, v))?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    if v.number >= 7 {
        req.forgotten_topics_data = r.array(v.flexible, |r| {
            let mut topic = ForgottenTopic::default();
            if v.number <= 12 {
                topic.topic = r.string(v.flexible)?.into();
            }
            if v.number >= 13 {
                topic.topic_id = r.uuid()?;
            }
            topic.partitions = r.array(v.flexible, |r| r.i32())?;
            r.tagged_fields_if(v.flexible)?;
            Ok(topic)
        })?;
    }
    if v.number >= 11 {
        req.rack_id = r.string(v.flexible)?;
    }
    if v.flexible {
        r.tagged_fields_with(|tag, field| {
            match tag {
                FETCH_TAG_CLUSTER_ID => req.cluster_id = field.nullable_string(true)?,
                FETCH_TAG_REPLICA_STATE if v.number >= 15 => {
                    let mut state = ReplicaState::default();
                    state.replica_id = field.i32()?.into();
                    state.replica_epoch = field.i64()?;
                    field.tagged_fields()?;
                    req.replica_state = state;
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(req)
}

fn fetch_partition(r: &mut Reader, v: Version) -> Result<FetchPartition, DecodeError> {
    let mut partition = FetchPartition::default();
    partition.partition = r.i32()?;
    if v.number >= 9 {
        partition.current_leader_epoch = r.i32()?;
    }
    partition.fetch_offset = r.i64()?;
    if v.number >= 12 {
        partition.last_fetched_epoch = r.i32()?;
    }
    if v.number >= 5 {
        partition.log_start_offset = r.i64()?;
    }
    partition.partition_max_bytes = r.i32()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(partition)
}

pub(super) fn list_offsets(r: &mut Reader, v: Version) -> Result<ListOffsetsRequest, DecodeError> {
    let mut req = ListOffsetsRequest::default();
    req.replica_id = r.i32()?.into();
    if v.number >= 2 {
        req.isolation_level = r.i8()?;
    }
    req.topics = r.array(v.flexible, |r| {
        let mut topic = ListOffsetsTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.partitions = r.array(v.flexible, |r| {
            let mut partition = ListOffsetsPartition::default();
            partition.partition_index = r.i32()?;
            if v.number >= 4 {
                partition.current_leader_epoch = r.i32()?;
            }
            partition.timestamp = r.i64()?;
            r.tagged_fields_if(v.flexible)?;
            Ok(partition)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}
