//! Every version the broker advertises in ApiVersions is really answered: for each API
//! and each version in its advertised range, a request that touches a real topic gets a
//! decodable response of that version with no error (the ACL apis: SECURITY_DISABLED,
//! as Kafka without an authorizer), and the connection stays open.
//! (A response field set for a version that lacks it would close the connection.)
//! The apis and ranges come from the broker's one api table: ApiVersions must answer
//! exactly it, and every api in it must be exercised here.

mod common;

use bytes::Bytes;
use common::raw::{self, RawConn};
use common::TestBroker;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strikemq::protocol::request::{supported_api_keys, supported_versions};

fn advertised(conn: &mut RawConn) -> Vec<ApiVersion> {
    let resp = conn.call(&raw::api_versions_request(), 3);
    assert_eq!(resp.error_code, 0);
    resp.api_keys
}

thread_local! {
    /// The apis this test exercised, checked against the api table at the end.
    static EXERCISED: std::cell::RefCell<std::collections::BTreeSet<i16>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

fn range_of(apis: &[ApiVersion], key: ApiKey) -> std::ops::RangeInclusive<i16> {
    EXERCISED.with(|e| e.borrow_mut().insert(key as i16));
    let api = apis
        .iter()
        .find(|a| a.api_key == key as i16)
        .unwrap_or_else(|| panic!("{key:?} is not advertised"));
    api.min_version..=api.max_version
}

#[test]
fn every_advertised_version_of_every_api_is_answered_without_error() {
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let apis = advertised(&mut conn);
    // ApiVersions answers exactly the broker's one api table.
    let table: Vec<(i16, i16, i16)> = supported_api_keys()
        .filter_map(|k| supported_versions(k).map(|(lo, hi)| (k, lo, hi)))
        .collect();
    let answered: Vec<(i16, i16, i16)> = apis
        .iter()
        .map(|a| (a.api_key, a.min_version, a.max_version))
        .collect();
    assert_eq!(answered, table, "ApiVersions vs the api table");

    let topic = "every-version";
    raw::create_topics(&mut conn, &[topic], 1);
    let meta = conn.call(&raw::metadata_request(&[topic], false), 12);
    let topic_id = meta.topics[0].topic_id;
    assert!(!topic_id.is_nil());

    for v in range_of(&apis, ApiKey::ApiVersions) {
        let resp = conn.call(&raw::api_versions_request(), v);
        assert_eq!(resp.error_code, 0, "ApiVersions v{v}");
        assert!(!resp.api_keys.is_empty(), "ApiVersions v{v}");
    }
    for v in range_of(&apis, ApiKey::Metadata) {
        let mut req = raw::metadata_request(&[topic], false);
        if v < 4 {
            req.allow_auto_topic_creation = true;
        }
        let resp = conn.call(&req, v);
        assert_eq!(resp.topics.len(), 1, "Metadata v{v}");
        assert_eq!(resp.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(resp.topics[0].partitions.len(), 1, "Metadata v{v}");
        assert_eq!(resp.brokers.len(), 1, "Metadata v{v}");
    }
    let mut produced = 0i64;
    for v in range_of(&apis, ApiKey::Produce) {
        let batch = raw::record_batch(&[format!("v{v}").as_bytes()], None);
        let resp = conn.call(&raw::produce_request(topic, 0, batch), v);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{v}");
        assert_eq!(p.base_offset, produced, "Produce v{v}");
        produced += 1;
    }
    for v in range_of(&apis, ApiKey::Fetch) {
        let mut req = raw::fetch_request(topic, 0, 0, 0);
        if v >= 13 {
            req.topics[0].topic_id = topic_id;
            req.topics[0].topic = TopicName::default();
        }
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "Fetch v{v}");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, produced, "Fetch v{v}");
        let records: Bytes = p.records.clone().unwrap_or_default();
        assert!(!records.is_empty(), "Fetch v{v} returned no records");
    }
    for v in range_of(&apis, ApiKey::ListOffsets) {
        for (ts, want) in [(-2i64, 0i64), (-1, produced)] {
            let req = ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(raw::topic_name(topic))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts)])]);
            let resp = conn.call(&req, v);
            let p = &resp.topics[0].partitions[0];
            assert_eq!(
                (p.error_code, p.offset),
                (0, want),
                "ListOffsets v{v} ts {ts}"
            );
        }
    }
    for v in range_of(&apis, ApiKey::CreateTopics) {
        let name = format!("created-v{v}");
        let resp = conn.call(&raw::create_topics_request(&[&name], 2), v);
        assert_eq!(
            resp.topics[0].error_code, 0,
            "CreateTopics v{v}: {:?}",
            resp.topics[0]
        );
    }
    for v in range_of(&apis, ApiKey::CreatePartitions) {
        let name = format!("created-v{}", 2 + v);
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(raw::topic_name(&name))
                .with_count(3)]);
        let resp = conn.call(&req, v);
        assert_eq!(
            resp.results[0].error_code, 0,
            "CreatePartitions v{v}: {:?}",
            resp.results[0]
        );
    }
    for v in range_of(&apis, ApiKey::DeleteTopics) {
        let name = format!("created-v{}", 1 + v);
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(5000);
        if v >= 6 {
            req.topics = vec![DeleteTopicState::default().with_name(Some(raw::topic_name(&name)))];
        } else {
            req.topic_names = vec![raw::topic_name(&name)];
        }
        let resp = conn.call(&req, v);
        assert_eq!(
            resp.responses[0].error_code, 0,
            "DeleteTopics v{v}: {:?}",
            resp.responses[0]
        );
    }
    for v in range_of(&apis, ApiKey::DescribeConfigs) {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str(topic))
                .with_configuration_keys(None),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("0"))
                .with_configuration_keys(None),
        ]);
        let resp = conn.call(&req, v);
        for r in &resp.results {
            assert_eq!(r.error_code, 0, "DescribeConfigs v{v}: {r:?}");
            assert!(!r.configs.is_empty(), "DescribeConfigs v{v}");
        }
    }
    // Each version sets a different retention.ms, which DescribeConfigs must then
    // report as the topic's own (DYNAMIC_TOPIC_CONFIG = 1).
    let retention_ms_of = |conn: &mut RawConn| {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str(topic))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
        ]);
        let resp = conn.call(&req, 4);
        let c = &resp.results[0].configs[0];
        (c.value.as_ref().map(|v| v.to_string()), c.config_source)
    };
    for v in range_of(&apis, ApiKey::AlterConfigs) {
        use kafka_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let value = format!("{}", 1000 + i64::from(v));
        let req =
            AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str(topic))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_string(value.clone())))])]);
        let resp = conn.call(&req, v);
        assert_eq!(
            resp.responses[0].error_code, 0,
            "AlterConfigs v{v}: {resp:?}"
        );
        assert_eq!(
            retention_ms_of(&mut conn),
            (Some(value), 1),
            "AlterConfigs v{v}"
        );
    }
    for v in range_of(&apis, ApiKey::IncrementalAlterConfigs) {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let value = format!("{}", 2000 + i64::from(v));
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str(topic))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(value.clone())))]),
        ]);
        let resp = conn.call(&req, v);
        assert_eq!(
            resp.responses[0].error_code, 0,
            "IncrementalAlterConfigs v{v}: {resp:?}"
        );
        assert_eq!(
            retention_ms_of(&mut conn),
            (Some(value), 1),
            "IncrementalAlterConfigs v{v}"
        );
    }
    for v in range_of(&apis, ApiKey::DescribeCluster) {
        let resp = conn.call(&DescribeClusterRequest::default(), v);
        assert_eq!(resp.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(resp.brokers.len(), 1, "DescribeCluster v{v}");
    }
    for v in range_of(&apis, ApiKey::InitProducerId) {
        // Idempotent (null transactional id); the transactional one is below.
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "InitProducerId v{v}");
        assert!(resp.producer_id.0 >= 0, "InitProducerId v{v}");
    }
    every_version_of_delete_records(&mut conn, &apis);
    every_version_of_the_acl_apis(&mut conn, &apis);
    every_version_of_the_group_apis(&mut conn, &apis, topic);
    every_version_of_the_consumer_group_apis(&mut conn, &apis, topic);
    every_version_of_the_txn_apis(&mut conn, &apis, topic);
    // Every api in the table was exercised above: a new one needs its section here.
    let exercised: Vec<i16> = EXERCISED.with(|e| e.borrow().iter().copied().collect());
    let mut table: Vec<i16> = supported_api_keys().collect();
    table.sort_unstable();
    assert_eq!(exercised, table, "apis exercised vs the api table");
}

/// DeleteRecords: each version moves the log start offset one record further and
/// answers it as the low watermark.
fn every_version_of_delete_records(conn: &mut RawConn, apis: &[ApiVersion]) {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let topic = "every-version-delete-records";
    raw::create_topics(conn, &[topic], 1);
    for i in 0..8 {
        let batch = raw::record_batch(&[format!("r{i}").as_bytes()], None);
        assert_eq!(raw::produce(conn, topic, 0, batch).0, 0);
    }
    for v in range_of(apis, ApiKey::DeleteRecords) {
        let offset = i64::from(v) + 1;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(raw::topic_name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(offset)])]);
        let resp = conn.call(&req, v);
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (0, offset),
            "DeleteRecords v{v}"
        );
    }
}

/// The ACL apis: the broker has no authorizer, so every version answers
/// SECURITY_DISABLED with Kafka's own messages (Kafka 4's `AclApis`).
fn every_version_of_the_acl_apis(conn: &mut RawConn, apis: &[ApiVersion]) {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    const SECURITY_DISABLED: i16 = 54;
    for v in range_of(apis, ApiKey::DescribeAcls) {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, SECURITY_DISABLED, "DescribeAcls v{v}");
        assert_eq!(
            resp.error_message.as_deref(),
            Some("No Authorizer is configured on the broker"),
            "DescribeAcls v{v}"
        );
        assert!(resp.resources.is_empty(), "DescribeAcls v{v}");
    }
    let creation = AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("t"))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:alice"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(3)
        .with_permission_type(3);
    for v in range_of(apis, ApiKey::CreateAcls) {
        let req = CreateAclsRequest::default().with_creations(vec![creation.clone(); 2]);
        let resp = conn.call(&req, v);
        assert_eq!(resp.results.len(), 2, "CreateAcls v{v}");
        for r in &resp.results {
            assert_eq!(r.error_code, SECURITY_DISABLED, "CreateAcls v{v}");
            assert_eq!(
                r.error_message.as_deref(),
                Some("No Authorizer is configured."),
                "CreateAcls v{v}"
            );
        }
    }
    for v in range_of(apis, ApiKey::DeleteAcls) {
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        let req = DeleteAclsRequest::default().with_filters(vec![filter; 3]);
        let resp = conn.call(&req, v);
        assert_eq!(resp.filter_results.len(), 3, "DeleteAcls v{v}");
        for r in &resp.filter_results {
            assert_eq!(r.error_code, SECURITY_DISABLED, "DeleteAcls v{v}");
            assert_eq!(
                r.error_message.as_deref(),
                Some("No Authorizer is configured."),
                "DeleteAcls v{v}"
            );
            assert!(r.matching_acls.is_empty(), "DeleteAcls v{v}");
        }
    }
}

/// A member of `group` that joined (JoinGroup v5, member id required) and synced.
fn stable_member(conn: &mut RawConn, group: &str) -> (StrBytes, i32) {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    let join = |member: StrBytes| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(member)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"meta"))])
    };
    let first = conn.call(&join(StrBytes::default()), 5);
    let joined = conn.call(&join(first.member_id), 5);
    assert_eq!(joined.error_code, 0, "join {group}");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(joined.member_id.clone())
            .with_assignment(Bytes::from_static(b"assignment"))]);
    assert_eq!(conn.call(&sync, 3).error_code, 0, "sync {group}");
    (joined.member_id, joined.generation_id)
}

fn every_version_of_the_group_apis(conn: &mut RawConn, apis: &[ApiVersion], topic: &str) {
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
    let gid = |name: String| GroupId(StrBytes::from_string(name));

    for v in range_of(apis, ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req.coordinator_keys = vec![
                StrBytes::from_static_str("g1"),
                StrBytes::from_static_str("g2"),
            ];
        } else {
            req.key = StrBytes::from_static_str("g1");
        }
        let resp = conn.call(&req, v);
        if v >= 4 {
            assert_eq!(resp.coordinators.len(), 2, "FindCoordinator v{v}");
            assert!(resp
                .coordinators
                .iter()
                .all(|c| c.error_code == 0 && c.port > 0));
        } else {
            assert_eq!(resp.error_code, 0, "FindCoordinator v{v}");
            assert!(resp.port > 0, "FindCoordinator v{v}");
        }
    }
    for v in range_of(apis, ApiKey::JoinGroup) {
        let group = format!("join-v{v}");
        let join = |member: StrBytes| {
            JoinGroupRequest::default()
                .with_group_id(gid(group.clone()))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(30_000)
                .with_member_id(member)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"meta"))])
        };
        let mut resp = conn.call(&join(StrBytes::default()), v);
        if v >= 4 {
            assert_eq!(resp.error_code, 79, "JoinGroup v{v}: member id required");
            resp = conn.call(&join(resp.member_id), v);
        }
        assert_eq!(resp.error_code, 0, "JoinGroup v{v}");
        assert_eq!(resp.leader, resp.member_id, "JoinGroup v{v}");
        assert_eq!(resp.members.len(), 1, "JoinGroup v{v}");
        assert_eq!(
            resp.protocol_name.as_deref(),
            Some("range"),
            "JoinGroup v{v}"
        );
    }
    for v in range_of(apis, ApiKey::SyncGroup) {
        let group = format!("sync-v{v}");
        let first = stable_member(conn, &group);
        // A second member makes a new generation that this version's sync completes.
        let join = JoinGroupRequest::default()
            .with_group_id(gid(group.clone()))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(first.0.clone())
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("roundrobin"))
                .with_metadata(Bytes::from_static(b"meta"))]);
        let joined = conn.call(&join, 5);
        assert_eq!(joined.error_code, 0, "rejoin before SyncGroup v{v}");
        let mut req = SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(joined.generation_id)
            .with_member_id(joined.member_id.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(Bytes::from_static(b"mine"))]);
        if v >= 5 {
            req.protocol_type = Some(StrBytes::from_static_str("consumer"));
            req.protocol_name = Some(StrBytes::from_static_str("roundrobin"));
        }
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "SyncGroup v{v}");
        assert_eq!(
            resp.assignment,
            Bytes::from_static(b"mine"),
            "SyncGroup v{v}"
        );
    }
    let (member, generation) = stable_member(conn, "heartbeat");
    for v in range_of(apis, ApiKey::Heartbeat) {
        let req = HeartbeatRequest::default()
            .with_group_id(gid("heartbeat".into()))
            .with_generation_id(generation)
            .with_member_id(member.clone());
        assert_eq!(conn.call(&req, v).error_code, 0, "Heartbeat v{v}");
    }
    for v in range_of(apis, ApiKey::LeaveGroup) {
        let group = format!("leave-v{v}");
        let (member, _) = stable_member(conn, &group);
        let mut req = LeaveGroupRequest::default().with_group_id(gid(group));
        if v >= 3 {
            req.members = vec![MemberIdentity::default().with_member_id(member)];
        } else {
            req.member_id = member;
        }
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "LeaveGroup v{v}");
        if v >= 3 {
            assert_eq!(resp.members[0].error_code, 0, "LeaveGroup v{v}");
        }
    }
    for v in range_of(apis, ApiKey::OffsetCommit) {
        let req = OffsetCommitRequest::default()
            .with_group_id(gid("offsets".into()))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(raw::topic_name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(i64::from(v))
                    .with_committed_leader_epoch(if v >= 6 { 0 } else { -1 })
                    .with_committed_metadata(Some(StrBytes::from_static_str(
                        "md",
                    )))])]);
        let resp = conn.call(&req, v);
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{v}"
        );
    }
    let last_commit = i64::from(*range_of(apis, ApiKey::OffsetCommit).end());
    for v in range_of(apis, ApiKey::OffsetFetch) {
        let resp = if v >= 8 {
            let req = OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid("offsets".into()))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(raw::topic_name(topic))
                        .with_partition_indexes(vec![0])])),
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid("offsets".into()))
                    .with_topics(None),
            ]);
            let resp = conn.call(&req, v);
            assert_eq!(resp.groups.len(), 2, "OffsetFetch v{v}");
            for g in &resp.groups {
                assert_eq!(g.error_code, 0, "OffsetFetch v{v}");
                let p = &g.topics[0].partitions[0];
                assert_eq!(
                    (p.committed_offset, p.error_code),
                    (last_commit, 0),
                    "OffsetFetch v{v}"
                );
                assert_eq!(p.metadata.as_deref(), Some("md"), "OffsetFetch v{v}");
            }
            continue;
        } else {
            let req = OffsetFetchRequest::default()
                .with_group_id(gid("offsets".into()))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(raw::topic_name(topic))
                    .with_partition_indexes(vec![0])]));
            conn.call(&req, v)
        };
        assert_eq!(resp.error_code, 0, "OffsetFetch v{v}");
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.committed_offset, p.error_code),
            (last_commit, 0),
            "OffsetFetch v{v}"
        );
        if v >= 5 {
            assert_eq!(p.committed_leader_epoch, 0, "OffsetFetch v{v}");
        }
    }
    for v in range_of(apis, ApiKey::ListGroups) {
        let resp = conn.call(&ListGroupsRequest::default(), v);
        assert_eq!(resp.error_code, 0, "ListGroups v{v}");
        assert!(
            resp.groups
                .iter()
                .any(|g| g.group_id.0.as_str() == "heartbeat"),
            "ListGroups v{v}"
        );
        if v >= 4 {
            assert!(
                resp.groups.iter().all(|g| !g.group_state.is_empty()),
                "ListGroups v{v}"
            );
        }
    }
    for v in range_of(apis, ApiKey::DescribeGroups) {
        let req = DescribeGroupsRequest::default().with_groups(vec![gid("heartbeat".into())]);
        let resp = conn.call(&req, v);
        let g = &resp.groups[0];
        assert_eq!(g.error_code, 0, "DescribeGroups v{v}");
        assert_eq!(g.group_state.as_str(), "Stable", "DescribeGroups v{v}");
        assert_eq!(g.members.len(), 1, "DescribeGroups v{v}");
        assert_eq!(
            g.members[0].member_assignment,
            Bytes::from_static(b"assignment")
        );
    }
    for v in range_of(apis, ApiKey::OffsetDelete) {
        let req = OffsetDeleteRequest::default()
            .with_group_id(gid("offsets".into()))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(raw::topic_name(topic))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])]);
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "OffsetDelete v{v}");
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "OffsetDelete v{v}"
        );
    }
    for v in range_of(apis, ApiKey::DeleteGroups) {
        let group = format!("delete-v{v}");
        let commit = OffsetCommitRequest::default()
            .with_group_id(gid(group.clone()))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(raw::topic_name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        assert_eq!(conn.call(&commit, 8).topics[0].partitions[0].error_code, 0);
        let resp = conn.call(
            &DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]),
            v,
        );
        assert_eq!(resp.results[0].error_code, 0, "DeleteGroups v{v}");
    }
}

/// KIP-848: each version joins a member of its own group (by name), heartbeats, and
/// ConsumerGroupDescribe sees it.
fn every_version_of_the_consumer_group_apis(conn: &mut RawConn, apis: &[ApiVersion], topic: &str) {
    for v in range_of(apis, ApiKey::ConsumerGroupHeartbeat) {
        let group = format!("kip848-v{v}");
        let join = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_member_id(StrBytes::from_string(format!("member-v{v}")))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![raw::topic_name(topic)]));
        let resp = conn.call(&join, v);
        assert_eq!(resp.error_code, 0, "ConsumerGroupHeartbeat v{v}: {resp:?}");
        assert_eq!(resp.member_epoch, 1, "ConsumerGroupHeartbeat v{v}");
        let assigned: usize = resp.assignment.as_ref().map_or(0, |a| {
            a.topic_partitions.iter().map(|t| t.partitions.len()).sum()
        });
        assert!(assigned > 0, "ConsumerGroupHeartbeat v{v}: {resp:?}");
    }
    for v in range_of(apis, ApiKey::ConsumerGroupDescribe) {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_static_str("kip848-v0"))]);
        let resp = conn.call(&req, v);
        let g = &resp.groups[0];
        assert_eq!(g.error_code, 0, "ConsumerGroupDescribe v{v}");
        assert_eq!(g.members.len(), 1, "ConsumerGroupDescribe v{v}");
        assert_eq!(
            g.group_state.as_str(),
            "Stable",
            "ConsumerGroupDescribe v{v}"
        );
    }
}

/// AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn, each version on a
/// real transaction of one transactional id.
fn every_version_of_the_txn_apis(conn: &mut RawConn, apis: &[ApiVersion], topic: &str) {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let id = TransactionalId(StrBytes::from_static_str("every-version-txn"));
    let init = conn.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(id.clone()))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
        4,
    );
    assert_eq!(init.error_code, 0, "InitProducerId with a transactional id");
    let (pid, epoch) = (init.producer_id, init.producer_epoch);
    let add_partition = |conn: &mut RawConn, v: i16| {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(id.clone())
            .with_v3_and_below_producer_id(pid)
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(raw::topic_name(topic))
                .with_partitions(vec![0])]);
        let resp = conn.call(&req, v);
        let code =
            resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
        assert_eq!(code, 0, "AddPartitionsToTxn v{v}");
    };
    for v in range_of(apis, ApiKey::AddPartitionsToTxn) {
        add_partition(conn, v);
    }
    let group = GroupId(StrBytes::from_static_str("every-version-txn-group"));
    for v in range_of(apis, ApiKey::AddOffsetsToTxn) {
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(id.clone())
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_group_id(group.clone());
        assert_eq!(conn.call(&req, v).error_code, 0, "AddOffsetsToTxn v{v}");
    }
    for v in range_of(apis, ApiKey::TxnOffsetCommit) {
        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(id.clone())
            .with_group_id(group.clone())
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(raw::topic_name(topic))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(0)
                    .with_committed_leader_epoch(-1)])]);
        let resp = conn.call(&req, v);
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "TxnOffsetCommit v{v}"
        );
    }
    for v in range_of(apis, ApiKey::EndTxn) {
        add_partition(conn, 3);
        let req = EndTxnRequest::default()
            .with_transactional_id(id.clone())
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_committed(v % 2 == 0);
        assert_eq!(conn.call(&req, v).error_code, 0, "EndTxn v{v}");
    }
    add_partition(conn, 3);
    for v in range_of(apis, ApiKey::DescribeTransactions) {
        let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![id.clone()]);
        let resp = conn.call(&req, v);
        let state = &resp.transaction_states[0];
        assert_eq!(state.error_code, 0, "DescribeTransactions v{v}");
        assert_eq!(
            state.transaction_state.as_str(),
            "Ongoing",
            "DescribeTransactions v{v}"
        );
        assert_eq!((state.producer_id, state.producer_epoch), (pid, epoch));
        assert_eq!(
            state.topics[0].partitions,
            vec![0],
            "DescribeTransactions v{v}"
        );
    }
    for v in range_of(apis, ApiKey::ListTransactions) {
        let req = ListTransactionsRequest::default()
            .with_state_filters(vec![StrBytes::from_static_str("Ongoing")])
            .with_duration_filter(-1);
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "ListTransactions v{v}");
        assert_eq!(resp.transaction_states.len(), 1, "ListTransactions v{v}");
        assert_eq!(resp.transaction_states[0].transactional_id, id);
    }
}
