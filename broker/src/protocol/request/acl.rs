//! The ACL apis: DescribeAcls, CreateAcls, DeleteAcls. The broker has no authorizer,
//! so it answers them all with SECURITY_DISABLED as Kafka does; they are still decoded
//! in full so that a malformed request closes the connection like any other.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use super::{DecodeError, Reader, Version};

pub(super) fn describe_acls(
    r: &mut Reader,
    v: Version,
) -> Result<DescribeAclsRequest, DecodeError> {
    let mut req = DescribeAclsRequest::default();
    req.resource_type_filter = r.i8()?;
    req.resource_name_filter = r.nullable_string(v.flexible)?;
    // Every decodable version (1+) has the pattern type.
    req.pattern_type_filter = r.i8()?;
    req.principal_filter = r.nullable_string(v.flexible)?;
    req.host_filter = r.nullable_string(v.flexible)?;
    req.operation = r.i8()?;
    req.permission_type = r.i8()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn create_acls(r: &mut Reader, v: Version) -> Result<CreateAclsRequest, DecodeError> {
    let mut req = CreateAclsRequest::default();
    req.creations = r.array(v.flexible, |r| {
        let mut creation = AclCreation::default();
        creation.resource_type = r.i8()?;
        creation.resource_name = r.string(v.flexible)?;
        creation.resource_pattern_type = r.i8()?;
        creation.principal = r.string(v.flexible)?;
        creation.host = r.string(v.flexible)?;
        creation.operation = r.i8()?;
        creation.permission_type = r.i8()?;
        r.tagged_fields_if(v.flexible)?;
        Ok(creation)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn delete_acls(r: &mut Reader, v: Version) -> Result<DeleteAclsRequest, DecodeError> {
    let mut req = DeleteAclsRequest::default();
    req.filters = r.array(v.flexible, |r| {
        let mut filter = DeleteAclsFilter::default();
        filter.resource_type_filter = r.i8()?;
        filter.resource_name_filter = r.nullable_string(v.flexible)?;
        filter.pattern_type_filter = r.i8()?;
        filter.principal_filter = r.nullable_string(v.flexible)?;
        filter.host_filter = r.nullable_string(v.flexible)?;
        filter.operation = r.i8()?;
        filter.permission_type = r.i8()?;
        r.tagged_fields_if(v.flexible)?;
        Ok(filter)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}
