//! Broker behaviour that librdkafka's own integration suite (tools/librdkafka-suite,
//! docs/librdkafka-suite.md) found wrong, each reproduced here with raw requests so
//! that it stays fixed without that suite.

mod common;

use kafka_protocol::messages::{DescribeClusterRequest, DescribeGroupsRequest, GroupId};

use common::raw::*;
use common::{unique_topic, TestBroker};

/// Kafka's answers without an authorizer: every operation the resource type supports
/// (bit n = AclOperation code n). Topic: READ WRITE CREATE DELETE ALTER DESCRIBE
/// DESCRIBE_CONFIGS ALTER_CONFIGS.
const TOPIC_OPERATIONS: i32 = (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 10)
    | (1 << 11);
/// Cluster: CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS
/// IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// Group (Kafka 4): READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);
/// "Not requested".
const OMITTED: i32 = i32::MIN;

/// 0081_admin (DescribeTopics, DescribeCluster, DescribeConsumerGroups with
/// `include_authorized_operations`): the broker answered "not requested" (or 0) where
/// Kafka without an authorizer lists every supported operation; tools then show a user
/// who may do nothing.
#[test]
fn authorized_operations_without_an_authorizer_are_all_supported_ones() {
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("authz-ops");
    create_topics(&mut conn, &[&topic], 1);

    // Metadata v10: the last version with both flags.
    let mut req = metadata_request(&[&topic, "no-such-topic-here"], false);
    req.include_topic_authorized_operations = true;
    req.include_cluster_authorized_operations = true;
    let resp = conn.call(&req, 10);
    assert_eq!(resp.cluster_authorized_operations, CLUSTER_OPERATIONS);
    assert_eq!(resp.topics.len(), 2);
    for t in &resp.topics {
        // Kafka sets them on every topic of the answer, the unknown one included.
        assert_eq!(
            t.topic_authorized_operations, TOPIC_OPERATIONS,
            "topic {:?} (error {})",
            t.name, t.error_code
        );
    }
    let resp = conn.call(&metadata_request(&[&topic], false), 10);
    assert_eq!(resp.cluster_authorized_operations, OMITTED);
    assert_eq!(resp.topics[0].topic_authorized_operations, OMITTED);

    let resp = conn.call(
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        0,
    );
    assert_eq!(resp.error_code, NONE);
    assert_eq!(resp.cluster_authorized_operations, CLUSTER_OPERATIONS);
    let resp = conn.call(&DescribeClusterRequest::default(), 0);
    assert_eq!(resp.cluster_authorized_operations, OMITTED);

    let group = GroupId(unique_topic("authz-group").into());
    let resp = conn.call(
        &DescribeGroupsRequest::default()
            .with_groups(vec![group.clone()])
            .with_include_authorized_operations(true),
        5,
    );
    assert_eq!(resp.groups[0].authorized_operations, GROUP_OPERATIONS);
    let resp = conn.call(&DescribeGroupsRequest::default().with_groups(vec![group]), 5);
    assert_eq!(resp.groups[0].authorized_operations, OMITTED);
}
