//! Requests every client sends around its data path: ApiVersions, Metadata,
//! DescribeCluster, InitProducerId.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeClusterRequest, InitProducerIdRequest, MetadataRequest,
};

use super::{DecodeError, Reader, Version};

pub(super) fn api_versions(r: &mut Reader, v: Version) -> Result<ApiVersionsRequest, DecodeError> {
    let mut req = ApiVersionsRequest::default();
    if v.number >= 3 {
        req.client_software_name = r.string(v.flexible)?;
        req.client_software_version = r.string(v.flexible)?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn metadata(r: &mut Reader, v: Version) -> Result<MetadataRequest, DecodeError> {
    let mut req = MetadataRequest::default();
    let topic = |r: &mut Reader| {
        let mut topic = MetadataRequestTopic::default();
        if v.number >= 10 {
            topic.topic_id = r.uuid()?;
        }
        // A null name (topic given by id) is only valid from v10.
        topic.name = if v.number >= 10 {
            r.nullable_string(v.flexible)?.map(Into::into)
        } else {
            Some(r.string(v.flexible)?.into())
        };
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    };
    // A null topic list ("all topics") exists from v1; v0 says that with an empty list.
    req.topics = if v.number >= 1 {
        r.nullable_array(v.flexible, topic)?
    } else {
        Some(r.array(v.flexible, topic)?)
    };
    if v.number >= 4 {
        req.allow_auto_topic_creation = r.bool()?;
    }
    if (8..=10).contains(&v.number) {
        req.include_cluster_authorized_operations = r.bool()?;
    }
    if v.number >= 8 {
        req.include_topic_authorized_operations = r.bool()?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn describe_cluster(
    r: &mut Reader,
    v: Version,
) -> Result<DescribeClusterRequest, DecodeError> {
    let mut req = DescribeClusterRequest::default();
    req.include_cluster_authorized_operations = r.bool()?;
    if v.number >= 1 {
        req.endpoint_type = r.i8()?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn init_producer_id(
    r: &mut Reader,
    v: Version,
) -> Result<InitProducerIdRequest, DecodeError> {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = r.nullable_string(v.flexible)?.map(Into::into);
    req.transaction_timeout_ms = r.i32()?;
    if v.number >= 3 {
        req.producer_id = r.i64()?.into();
        req.producer_epoch = r.i16()?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}
