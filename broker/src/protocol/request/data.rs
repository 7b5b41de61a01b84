//! The data path's owned decoders: ListOffsets and DeleteRecords (Produce and Fetch are
//! views, `views.rs`).

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{DeleteRecordsRequest, ListOffsetsRequest};

use super::{DecodeError, Reader, Version};

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

pub(super) fn delete_records(
    r: &mut Reader,
    v: Version,
) -> Result<DeleteRecordsRequest, DecodeError> {
    let mut req = DeleteRecordsRequest::default();
    req.topics = r.array(v.flexible, |r| {
        let mut topic = DeleteRecordsTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.partitions = r.array(v.flexible, |r| {
            let mut partition = DeleteRecordsPartition::default();
            partition.partition_index = r.i32()?;
            partition.offset = r.i64()?;
            r.tagged_fields_if(v.flexible)?;
            Ok(partition)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    req.timeout_ms = r.i32()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}
