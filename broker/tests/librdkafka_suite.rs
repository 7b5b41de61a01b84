//! Broker behaviour that librdkafka's own integration suite (tools/librdkafka-suite,
//! docs/librdkafka-suite.md) found wrong, each reproduced here with raw requests so
//! that it stays fixed without that suite.

mod common;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeGroupsRequest, GroupId, ListOffsetsRequest,
};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use common::raw::*;
use common::{unique_topic, TestBroker};

/// Kafka's answers without an authorizer: every operation the resource type supports
/// (bit n = AclOperation code n). Topic: READ WRITE CREATE DELETE ALTER DESCRIBE
/// DESCRIBE_CONFIGS ALTER_CONFIGS.
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
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
    let resp = conn.call(
        &DescribeGroupsRequest::default().with_groups(vec![group]),
        5,
    );
    assert_eq!(resp.groups[0].authorized_operations, OMITTED);
}

/// One batch of records with these timestamps (offsets 0..), compressed with `codec`.
fn batch_with_timestamps(timestamps_ms: &[i64], compression: Compression) -> Bytes {
    let values: Vec<String> = (0..timestamps_ms.len())
        .map(|i| format!("record {i}"))
        .collect();
    let records: Vec<_> = values
        .iter()
        .zip(timestamps_ms)
        .map(|(v, &ts)| (None, Some(v.as_bytes()), ts))
        .collect();
    let batch = batch_of(&records, compression);
    let mut check = batch.clone();
    let decoded = RecordBatchDecoder::decode_all(&mut check).expect("decode own batch");
    assert_eq!(decoded.len(), 1, "exactly one batch");
    assert_eq!(decoded[0].records.len(), timestamps_ms.len());
    batch
}

/// (offset, timestamp) that ListOffsets answers for `timestamp` on partition 0.
fn list_offset(conn: &mut RawConn, topic: &str, timestamp: i64) -> (i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let resp = conn.call(&req, 8);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE, "ListOffsets {timestamp} on {topic}");
    (p.offset, p.timestamp)
}

/// 0081_admin (ListOffsets MAX_TIMESTAMP): the answer was the last offset of the batch
/// holding the largest timestamp; Kafka (since KAFKA-16310, 3.8) answers the offset of
/// the record that has it: 1 for timestamps [t+100, t+400, t+250] in one batch.
#[test]
fn list_offsets_max_timestamp_names_the_record_not_the_end_of_its_batch() {
    const MAX_TIMESTAMP: i64 = -3;
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let base = 10_000_000;
    for (name, compression) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
    ] {
        let topic = unique_topic(&format!("maxts-{name}"));
        create_topics(&mut conn, &[&topic], 1);
        let batch = batch_with_timestamps(&[base + 100, base + 400, base + 250], compression);
        let (err, base_offset) = produce(&mut conn, &topic, 0, batch);
        assert_eq!((err, base_offset), (NONE, 0), "{name}");
        assert_eq!(
            list_offset(&mut conn, &topic, MAX_TIMESTAMP),
            (1, base + 400),
            "{name}"
        );
        // A later batch whose largest timestamp is its first record.
        let batch = batch_with_timestamps(&[base + 900, base + 500], compression);
        assert_eq!(produce(&mut conn, &topic, 0, batch), (NONE, 3), "{name}");
        assert_eq!(
            list_offset(&mut conn, &topic, MAX_TIMESTAMP),
            (3, base + 900),
            "{name}"
        );
        // The timestamp lookups the same librdkafka test makes.
        assert_eq!(list_offset(&mut conn, &topic, base + 50).0, 0, "{name}");
        assert_eq!(list_offset(&mut conn, &topic, -2).0, 0, "{name}");
        assert_eq!(list_offset(&mut conn, &topic, -1).0, 5, "{name}");
    }
}

/// 0081_admin (DescribeConfigs of a GROUP resource, Kafka 4): the broker answered
/// INVALID_REQUEST "unsupported resource type 32"; Kafka 4 describes any group's
/// configs, a group that does not exist included, with their defaults.
#[test]
fn describe_configs_of_a_group_lists_its_defaults() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::DescribeConfigsRequest;
    const RESOURCE_GROUP: i8 = 32;
    const SOURCE_DEFAULT_CONFIG: i8 = 5;
    const INVALID_REQUEST: i16 = 42;

    let broker = TestBroker::start(&["--set", "group_consumer_session_timeout_ms=40000"]);
    let mut conn = RawConn::connect(&broker);
    let describe = |conn: &mut RawConn, name: &str| {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_GROUP)
                .with_resource_name(name.to_string().into())
                .with_configuration_keys(None),
        ]);
        conn.call(&req, 4).results.remove(0)
    };
    let result = describe(&mut conn, "a-group-that-does-not-exist");
    assert_eq!(result.error_code, NONE, "{:?}", result.error_message);
    assert_eq!(result.resource_type, RESOURCE_GROUP);
    let session = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "consumer.session.timeout.ms")
        .expect("consumer.session.timeout.ms listed");
    assert_eq!(session.value.as_deref(), Some("40000"));
    assert_eq!(session.config_source, SOURCE_DEFAULT_CONFIG);
    assert!(result
        .configs
        .iter()
        .any(|c| c.name.as_str() == "consumer.heartbeat.interval.ms"));

    assert_eq!(describe(&mut conn, "").error_code, INVALID_REQUEST);
}
