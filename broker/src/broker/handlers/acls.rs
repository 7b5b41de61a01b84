//! DescribeAcls, CreateAcls, DeleteAcls: the broker has no authorizer, so every ACL
//! request is answered as Kafka answers it without one (`AclApis` in Kafka's server):
//! SECURITY_DISABLED, with Kafka's messages, for the request as a whole (DescribeAcls)
//! or for each creation and each filter.
//!
//! Authorized operations (Metadata, DescribeCluster, DescribeGroups,
//! ConsumerGroupDescribe with `include_*_authorized_operations`): without an authorizer
//! Kafka reports every operation the resource type supports (`AuthHelper` falls back
//! to `AclEntry.supportedOperations`), and tools read that as "you may do anything".

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{code, Broker, AUTHORIZED_OPERATIONS_OMITTED};

/// Kafka's `AclOperation` codes used below.
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

/// The bitfield of authorized operations: bit `n` set for operation code `n`.
const fn bits(ops: &[u8]) -> i32 {
    let mut field = 0i32;
    let mut i = 0;
    while i < ops.len() {
        field |= 1 << ops[i];
        i += 1;
    }
    field
}

/// Every operation a topic supports (Kafka's `AclEntry.supportedOperations(TOPIC)`).
pub(in crate::broker) const TOPIC_OPERATIONS: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DESCRIBE,
    DELETE,
    ALTER,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);
/// Every operation a group supports (Kafka 4: group configs add the two config ones).
pub(in crate::broker) const GROUP_OPERATIONS: i32 =
    bits(&[READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS]);
/// Every operation the cluster supports.
pub(in crate::broker) const CLUSTER_OPERATIONS: i32 = bits(&[
    CREATE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
    ALTER,
    DESCRIBE,
]);

/// What to answer in an `*_authorized_operations` field: all of `supported` when the
/// client asked for them (no authorizer), else Kafka's "not requested" marker.
pub(in crate::broker) fn authorized_operations(requested: bool, supported: i32) -> i32 {
    if requested {
        supported
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    }
}

/// Kafka's message for DescribeAcls without an authorizer.
const DESCRIBE_MESSAGE: &str = "No Authorizer is configured on the broker";
/// Kafka's message for CreateAcls and DeleteAcls without an authorizer.
const ALTER_MESSAGE: &str = "No Authorizer is configured.";

impl Broker {
    pub(in crate::broker) fn describe_acls(&self) -> DescribeAclsResponse {
        DescribeAclsResponse::default()
            .with_error_code(code::SECURITY_DISABLED)
            .with_error_message(Some(StrBytes::from_static_str(DESCRIBE_MESSAGE)))
    }

    pub(in crate::broker) fn create_acls(&self, req: &CreateAclsRequest) -> CreateAclsResponse {
        let results = req
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code::SECURITY_DISABLED)
                    .with_error_message(Some(StrBytes::from_static_str(ALTER_MESSAGE)))
            })
            .collect();
        CreateAclsResponse::default().with_results(results)
    }

    pub(in crate::broker) fn delete_acls(&self, req: &DeleteAclsRequest) -> DeleteAclsResponse {
        let results = req
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code::SECURITY_DISABLED)
                    .with_error_message(Some(StrBytes::from_static_str(ALTER_MESSAGE)))
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorized_operation_bitfields_are_kafkas_without_an_authorizer() {
        // Kafka 4.x answers these values for a cluster without an authorizer.
        assert_eq!(TOPIC_OPERATIONS, 3576);
        assert_eq!(GROUP_OPERATIONS, 3400);
        assert_eq!(CLUSTER_OPERATIONS, 8096);
        assert_eq!(authorized_operations(false, TOPIC_OPERATIONS), i32::MIN);
        assert_eq!(
            authorized_operations(true, GROUP_OPERATIONS),
            GROUP_OPERATIONS
        );
    }
}
