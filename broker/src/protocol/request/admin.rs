//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs.

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{alter_configs_request, incremental_alter_configs_request};
use kafka_protocol::messages::{
    AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

use super::{DecodeError, Reader, Version};

pub(super) fn create_topics(
    r: &mut Reader,
    v: Version,
) -> Result<CreateTopicsRequest, DecodeError> {
    let mut req = CreateTopicsRequest::default();
    req.topics = r.array(v.flexible, |r| {
        let mut topic = CreatableTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.num_partitions = r.i32()?;
        topic.replication_factor = r.i16()?;
        topic.assignments = r.array(v.flexible, |r| {
            let mut assignment = CreatableReplicaAssignment::default();
            assignment.partition_index = r.i32()?;
            assignment.broker_ids = r.array(v.flexible, |r| Ok(r.i32()?.into()))?;
            r.tagged_fields_if(v.flexible)?;
            Ok(assignment)
        })?;
        topic.configs = r.array(v.flexible, |r| {
            let mut config = CreatableTopicConfig::default();
            config.name = r.string(v.flexible)?;
            config.value = r.nullable_string(v.flexible)?;
            r.tagged_fields_if(v.flexible)?;
            Ok(config)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    req.timeout_ms = r.i32()?;
    req.validate_only = r.bool()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn delete_topics(
    r: &mut Reader,
    v: Version,
) -> Result<DeleteTopicsRequest, DecodeError> {
    let mut req = DeleteTopicsRequest::default();
    if v.number >= 6 {
        req.topics = r.array(v.flexible, |r| {
            let mut topic = DeleteTopicState::default();
            topic.name = r.nullable_string(v.flexible)?.map(Into::into);
            topic.topic_id = r.uuid()?;
            r.tagged_fields_if(v.flexible)?;
            Ok(topic)
        })?;
    } else {
        req.topic_names = r.array(v.flexible, |r| Ok(r.string(v.flexible)?.into()))?;
    }
    req.timeout_ms = r.i32()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn create_partitions(
    r: &mut Reader,
    v: Version,
) -> Result<CreatePartitionsRequest, DecodeError> {
    let mut req = CreatePartitionsRequest::default();
    req.topics = r.array(v.flexible, |r| {
        let mut topic = CreatePartitionsTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.count = r.i32()?;
        topic.assignments = r.nullable_array(v.flexible, |r| {
            let mut assignment = CreatePartitionsAssignment::default();
            assignment.broker_ids = r.array(v.flexible, |r| Ok(r.i32()?.into()))?;
            r.tagged_fields_if(v.flexible)?;
            Ok(assignment)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    req.timeout_ms = r.i32()?;
    req.validate_only = r.bool()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn describe_configs(
    r: &mut Reader,
    v: Version,
) -> Result<DescribeConfigsRequest, DecodeError> {
    let mut req = DescribeConfigsRequest::default();
    req.resources = r.array(v.flexible, |r| {
        let mut resource = DescribeConfigsResource::default();
        resource.resource_type = r.i8()?;
        resource.resource_name = r.string(v.flexible)?;
        resource.configuration_keys = r.nullable_array(v.flexible, |r| r.string(v.flexible))?;
        r.tagged_fields_if(v.flexible)?;
        Ok(resource)
    })?;
    req.include_synonyms = r.bool()?;
    if v.number >= 3 {
        req.include_documentation = r.bool()?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn alter_configs(
    r: &mut Reader,
    v: Version,
) -> Result<AlterConfigsRequest, DecodeError> {
    let mut req = AlterConfigsRequest::default();
    req.resources = r.array(v.flexible, |r| {
        let mut resource = alter_configs_request::AlterConfigsResource::default();
        resource.resource_type = r.i8()?;
        resource.resource_name = r.string(v.flexible)?;
        resource.configs = r.array(v.flexible, |r| {
            let mut config = alter_configs_request::AlterableConfig::default();
            config.name = r.string(v.flexible)?;
            config.value = r.nullable_string(v.flexible)?;
            r.tagged_fields_if(v.flexible)?;
            Ok(config)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(resource)
    })?;
    req.validate_only = r.bool()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn incremental_alter_configs(
    r: &mut Reader,
    v: Version,
) -> Result<IncrementalAlterConfigsRequest, DecodeError> {
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = r.array(v.flexible, |r| {
        let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
        resource.resource_type = r.i8()?;
        resource.resource_name = r.string(v.flexible)?;
        resource.configs = r.array(v.flexible, |r| {
            let mut config = incremental_alter_configs_request::AlterableConfig::default();
            config.name = r.string(v.flexible)?;
            config.config_operation = r.i8()?;
            config.value = r.nullable_string(v.flexible)?;
            r.tagged_fields_if(v.flexible)?;
            Ok(config)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(resource)
    })?;
    req.validate_only = r.bool()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}
