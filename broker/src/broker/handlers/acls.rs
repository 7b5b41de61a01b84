//! DescribeAcls, CreateAcls, DeleteAcls: the broker has no authorizer, so every ACL
//! request is answered as Kafka answers it without one (`AclApis` in Kafka's server):
//! SECURITY_DISABLED, with Kafka's messages, for the request as a whole (DescribeAcls)
//! or for each creation and each filter.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{code, Broker};

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
