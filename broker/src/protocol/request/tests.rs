//! Decoders checked against `kafka_protocol` as the oracle, plus hostile input.
//!
//! For every api and every version in its range, a request with non-default values in
//! every field of that version is encoded by `kafka_protocol`, then decoded both by it
//! and by us; the two must agree, and every strict prefix of the frame must be reported
//! as truncated.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest, ApiVersionsRequest,
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreateAclsRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest, DeleteGroupsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeAclsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeTransactionsRequest, EndTxnRequest,
    FetchRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, ListTransactionsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, RequestHeader,
    SyncGroupRequest, TopicName, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::protocol::{Decodable, Encodable, Request as KafkaRequest};
use uuid::Uuid;

use super::*;

const CORRELATION_ID: i32 = 0x0102_0304;

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(text: &'static str) -> TopicName {
    TopicName(s(text))
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_0000 + n)
}

/// Header + body as a client would send it (without the 4-byte size prefix).
fn frame<R: KafkaRequest>(req: &R, version: i16) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = CORRELATION_ID;
    header.client_id = Some(s("test-client"));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, R::header_version(version)).unwrap();
    req.encode(&mut buf, version).unwrap();
    buf.freeze()
}

/// The oracle check for one request at one version; see the module comment.
fn check<R: KafkaRequest + PartialEq + std::fmt::Debug + Clone>(
    req: R,
    version: i16,
    wrap: fn(R) -> Request,
) {
    let context = format!("api {} v{version}", R::KEY);
    let full = frame(&req, version);

    let mut oracle_buf = full.clone();
    let oracle_header = RequestHeader::decode(&mut oracle_buf, R::header_version(version)).unwrap();
    let oracle = R::decode(&mut oracle_buf, version).unwrap();
    assert!(oracle_buf.is_empty(), "{context}: oracle left bytes");
    // The sample must hold only fields that exist in this version, or the comparison
    // below would silently test less than it claims.
    assert_eq!(
        oracle, req,
        "{context}: sample does not survive its own version"
    );

    let mut ours_buf = full.clone();
    let header = decode_header(&mut ours_buf).unwrap();
    assert_eq!(header, oracle_header, "{context}: header");
    let ours = decode_request(header.request_api_key, version, &mut ours_buf).unwrap();
    assert_eq!(ours, wrap(oracle), "{context}: body");
    assert!(ours_buf.is_empty(), "{context}: body not fully consumed");

    for len in 0..full.len() {
        let mut cut = full.slice(..len);
        let result = decode_header(&mut cut)
            .and_then(|h| decode_request(h.request_api_key, h.request_api_version, &mut cut));
        assert_eq!(
            result,
            Err(DecodeError::Truncated),
            "{context}: prefix of {len} bytes"
        );
    }
}

/// Runs `check` for every version the decoder supports, with nullable fields set and
/// with them null.
fn check_all_versions<R: KafkaRequest + PartialEq + std::fmt::Debug + Clone>(
    sample: fn(i16, bool) -> R,
    wrap: fn(R) -> Request,
) {
    let (min, max) = supported_versions(R::KEY).unwrap();
    for version in min..=max {
        check(sample(version, false), version, wrap);
        check(sample(version, true), version, wrap);
    }
}

fn api_versions_sample(v: i16, _null: bool) -> ApiVersionsRequest {
    let mut req = ApiVersionsRequest::default();
    if v >= 3 {
        req.client_software_name = s("strikemq-test");
        req.client_software_version = s("1.2.3");
    }
    req
}

fn metadata_sample(v: i16, null: bool) -> MetadataRequest {
    let mut req = MetadataRequest::default();
    // With `null`: from v10 the second topic is named by id only; v1..v9 ask for all
    // topics with a null list.
    let topics = (0..2)
        .map(|i| {
            let mut t = MetadataRequestTopic::default();
            if v >= 10 {
                t.topic_id = uuid(i);
            }
            let by_id_only = null && v >= 10 && i == 1;
            t.name = (!by_id_only).then(|| topic(["alpha", "beta"][i as usize]));
            t
        })
        .collect();
    let all_topics = null && (1..10).contains(&v);
    req.topics = (!all_topics).then_some(topics);
    if v >= 4 {
        req.allow_auto_topic_creation = false;
    }
    if (8..=10).contains(&v) {
        req.include_cluster_authorized_operations = true;
    }
    if v >= 8 {
        req.include_topic_authorized_operations = true;
    }
    req
}

fn describe_cluster_sample(v: i16, _null: bool) -> DescribeClusterRequest {
    let mut req = DescribeClusterRequest::default();
    req.include_cluster_authorized_operations = true;
    if v >= 1 {
        req.endpoint_type = 2;
    }
    req
}

fn init_producer_id_sample(v: i16, null: bool) -> InitProducerIdRequest {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = (!null).then(|| s("txn-1").into());
    req.transaction_timeout_ms = 60_000;
    if v >= 3 {
        req.producer_id = 4242.into();
        req.producer_epoch = 7;
    }
    req
}

fn produce_sample(_v: i16, null: bool) -> ProduceRequest {
    let mut req = ProduceRequest::default();
    req.transactional_id = (!null).then(|| s("txn-2").into());
    req.acks = -1;
    req.timeout_ms = 1500;
    req.topic_data = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut t = TopicProduceData::default();
            t.name = topic(name);
            t.partition_data = (0..2)
                .map(|i| {
                    let mut p = PartitionProduceData::default();
                    p.index = i + 3;
                    p.records = if null && i == 1 {
                        None
                    } else {
                        Some(Bytes::from_static(b"record batch bytes"))
                    };
                    p
                })
                .collect();
            t
        })
        .collect();
    req
}

fn fetch_sample(v: i16, null: bool) -> FetchRequest {
    let mut req = FetchRequest::default();
    if v >= 12 {
        req.cluster_id = (!null).then(|| s("cluster-x"));
    }
    if v <= 14 {
        req.replica_id = 5.into();
    }
    if v >= 15 {
        let mut state = ReplicaState::default();
        state.replica_id = 6.into();
        state.replica_epoch = 77;
        req.replica_state = state;
    }
    req.max_wait_ms = 500;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.isolation_level = 1;
    if v >= 7 {
        req.session_id = 99;
        req.session_epoch = 3;
    }
    req.topics = (0..2)
        .map(|i| {
            let mut t = FetchTopic::default();
            if v <= 12 {
                t.topic = topic(["alpha", "beta"][i as usize]);
            }
            if v >= 13 {
                t.topic_id = uuid(i);
            }
            t.partitions = (0..2)
                .map(|p| {
                    let mut fp = FetchPartition::default();
                    fp.partition = p + 1;
                    if v >= 9 {
                        fp.current_leader_epoch = 11;
                    }
                    fp.fetch_offset = 1000 + p as i64;
                    if v >= 12 {
                        fp.last_fetched_epoch = 10;
                    }
                    if v >= 5 {
                        fp.log_start_offset = 12;
                    }
                    fp.partition_max_bytes = 65536;
                    fp
                })
                .collect();
            t
        })
        .collect();
    if v >= 7 {
        req.forgotten_topics_data = (0..2)
            .map(|i| {
                let mut t = ForgottenTopic::default();
                if v <= 12 {
                    t.topic = topic(["gamma", "delta"][i as usize]);
                }
                if v >= 13 {
                    t.topic_id = uuid(10 + i);
                }
                t.partitions = vec![4, 5];
                t
            })
            .collect();
    }
    if v >= 11 {
        req.rack_id = s("rack-a");
    }
    req
}

fn list_offsets_sample(v: i16, _null: bool) -> ListOffsetsRequest {
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    if v >= 2 {
        req.isolation_level = 1;
    }
    req.topics = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut t = ListOffsetsTopic::default();
            t.name = topic(name);
            t.partitions = (0..2)
                .map(|i| {
                    let mut p = ListOffsetsPartition::default();
                    p.partition_index = i;
                    if v >= 4 {
                        p.current_leader_epoch = 8;
                    }
                    p.timestamp = -2;
                    p
                })
                .collect();
            t
        })
        .collect();
    req
}

fn create_topics_sample(_v: i16, null: bool) -> CreateTopicsRequest {
    let mut req = CreateTopicsRequest::default();
    req.topics = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut t = CreatableTopic::default();
            t.name = topic(name);
            t.num_partitions = 3;
            t.replication_factor = 1;
            t.assignments = (0..2)
                .map(|i| {
                    let mut a = CreatableReplicaAssignment::default();
                    a.partition_index = i;
                    a.broker_ids = vec![1.into(), 2.into()];
                    a
                })
                .collect();
            t.configs = (0..2)
                .map(|i| {
                    let mut c = CreatableTopicConfig::default();
                    c.name = s(["retention.ms", "cleanup.policy"][i]);
                    c.value = if null && i == 1 {
                        None
                    } else {
                        Some(s("1000"))
                    };
                    c
                })
                .collect();
            t
        })
        .collect();
    req.timeout_ms = 30_000;
    req.validate_only = true;
    req
}

fn delete_topics_sample(v: i16, null: bool) -> DeleteTopicsRequest {
    let mut req = DeleteTopicsRequest::default();
    if v >= 6 {
        req.topics = (0..2)
            .map(|i| {
                let mut t = DeleteTopicState::default();
                t.name = if null && i == 1 {
                    None
                } else {
                    Some(topic("alpha"))
                };
                t.topic_id = uuid(i);
                t
            })
            .collect();
    } else {
        req.topic_names = vec![topic("alpha"), topic("beta")];
    }
    req.timeout_ms = 30_000;
    req
}

fn create_partitions_sample(_v: i16, null: bool) -> CreatePartitionsRequest {
    let mut req = CreatePartitionsRequest::default();
    req.topics = ["alpha", "beta"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let mut t = CreatePartitionsTopic::default();
            t.name = topic(name);
            t.count = 6;
            t.assignments = if null && i == 1 {
                None
            } else {
                let mut a = CreatePartitionsAssignment::default();
                a.broker_ids = vec![1.into(), 2.into()];
                Some(vec![a.clone(), a])
            };
            t
        })
        .collect();
    req.timeout_ms = 30_000;
    req.validate_only = true;
    req
}

fn describe_configs_sample(v: i16, null: bool) -> DescribeConfigsRequest {
    let mut req = DescribeConfigsRequest::default();
    req.resources = (0..2)
        .map(|i| {
            let mut r = DescribeConfigsResource::default();
            r.resource_type = 2;
            r.resource_name = s(["alpha", "beta"][i]);
            r.configuration_keys = if null && i == 1 {
                None
            } else {
                Some(vec![s("retention.ms"), s("segment.bytes")])
            };
            r
        })
        .collect();
    req.include_synonyms = true;
    if v >= 3 {
        req.include_documentation = true;
    }
    req
}

#[test]
fn api_versions_matches_oracle() {
    check_all_versions(api_versions_sample, Request::ApiVersions);
}

#[test]
fn metadata_matches_oracle() {
    check_all_versions(metadata_sample, Request::Metadata);
}

#[test]
fn describe_cluster_matches_oracle() {
    check_all_versions(describe_cluster_sample, Request::DescribeCluster);
}

#[test]
fn init_producer_id_matches_oracle() {
    check_all_versions(init_producer_id_sample, Request::InitProducerId);
}

#[test]
fn produce_matches_oracle() {
    check_all_versions(produce_sample, Request::Produce);
}

#[test]
fn fetch_matches_oracle() {
    check_all_versions(fetch_sample, Request::Fetch);
}

#[test]
fn list_offsets_matches_oracle() {
    check_all_versions(list_offsets_sample, Request::ListOffsets);
}

#[test]
fn create_topics_matches_oracle() {
    check_all_versions(create_topics_sample, Request::CreateTopics);
}

#[test]
fn delete_topics_matches_oracle() {
    check_all_versions(delete_topics_sample, Request::DeleteTopics);
}

#[test]
fn create_partitions_matches_oracle() {
    check_all_versions(create_partitions_sample, Request::CreatePartitions);
}

#[test]
fn describe_configs_matches_oracle() {
    check_all_versions(describe_configs_sample, Request::DescribeConfigs);
}

fn alter_configs_sample(_v: i16, null: bool) -> AlterConfigsRequest {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut req = AlterConfigsRequest::default();
    req.resources = (0..2)
        .map(|i| {
            let mut r = AlterConfigsResource::default();
            r.resource_type = 2;
            r.resource_name = s(["alpha", "beta"][i]);
            r.configs = [("retention.ms", "60000"), ("retention.bytes", "1048576")]
                .iter()
                .enumerate()
                .map(|(j, (k, v))| {
                    let mut c = AlterableConfig::default();
                    c.name = s(k);
                    c.value = if null && i == 1 && j == 1 {
                        None
                    } else {
                        Some(s(v))
                    };
                    c
                })
                .collect();
            r
        })
        .collect();
    req.validate_only = true;
    req
}

#[test]
fn alter_configs_matches_oracle() {
    check_all_versions(alter_configs_sample, Request::AlterConfigs);
}

fn incremental_alter_configs_sample(_v: i16, null: bool) -> IncrementalAlterConfigsRequest {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = (0..2)
        .map(|i| {
            let mut r = AlterConfigsResource::default();
            r.resource_type = 2;
            r.resource_name = s(["alpha", "beta"][i]);
            r.configs = [("retention.ms", 0i8, "60000"), ("retention.bytes", 1, "")]
                .iter()
                .map(|(k, op, v)| {
                    let mut c = AlterableConfig::default();
                    c.name = s(k);
                    c.config_operation = *op;
                    c.value = if null && *op == 1 { None } else { Some(s(v)) };
                    c
                })
                .collect();
            r
        })
        .collect();
    req.validate_only = true;
    req
}

#[test]
fn incremental_alter_configs_matches_oracle() {
    check_all_versions(
        incremental_alter_configs_sample,
        Request::IncrementalAlterConfigs,
    );
}

fn find_coordinator_sample(v: i16, _null: bool) -> FindCoordinatorRequest {
    let mut req = FindCoordinatorRequest::default();
    if v <= 3 {
        req.key = s("group-a");
    }
    if v >= 1 {
        req.key_type = 1;
    }
    if v >= 4 {
        req.coordinator_keys = vec![s("group-a"), s("group-b")];
    }
    req
}

fn join_group_sample(v: i16, null: bool) -> JoinGroupRequest {
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(s("group-a"));
    req.session_timeout_ms = 10_000;
    if v >= 1 {
        req.rebalance_timeout_ms = 20_000;
    }
    req.member_id = s("member-1");
    if v >= 5 {
        req.group_instance_id = (!null).then(|| s("instance-1"));
    }
    req.protocol_type = s("consumer");
    req.protocols = ["range", "roundrobin"]
        .into_iter()
        .map(|name| {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = s(name);
            p.metadata = Bytes::from_static(b"subscription");
            p
        })
        .collect();
    if v >= 8 {
        req.reason = (!null).then(|| s("rejoin"));
    }
    req
}

fn sync_group_sample(v: i16, null: bool) -> SyncGroupRequest {
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(s("group-a"));
    req.generation_id = 4;
    req.member_id = s("member-1");
    if v >= 3 {
        req.group_instance_id = (!null).then(|| s("instance-1"));
    }
    if v >= 5 {
        req.protocol_type = (!null).then(|| s("consumer"));
        req.protocol_name = (!null).then(|| s("range"));
    }
    req.assignments = ["member-1", "member-2"]
        .into_iter()
        .map(|member| {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = s(member);
            a.assignment = Bytes::from_static(b"assignment");
            a
        })
        .collect();
    req
}

fn heartbeat_sample(v: i16, null: bool) -> HeartbeatRequest {
    let mut req = HeartbeatRequest::default();
    req.group_id = GroupId(s("group-a"));
    req.generation_id = 4;
    req.member_id = s("member-1");
    if v >= 3 {
        req.group_instance_id = (!null).then(|| s("instance-1"));
    }
    req
}

fn leave_group_sample(v: i16, null: bool) -> LeaveGroupRequest {
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(s("group-a"));
    if v <= 2 {
        req.member_id = s("member-1");
    } else {
        req.members = ["member-1", "member-2"]
            .into_iter()
            .map(|member| {
                let mut m = MemberIdentity::default();
                m.member_id = s(member);
                m.group_instance_id = (!null).then(|| s("instance-1"));
                if v >= 5 {
                    m.reason = (!null).then(|| s("shutdown"));
                }
                m
            })
            .collect();
    }
    req
}

fn offset_commit_sample(v: i16, null: bool) -> OffsetCommitRequest {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s("group-a"));
    req.generation_id_or_member_epoch = 4;
    req.member_id = s("member-1");
    if v >= 7 {
        req.group_instance_id = (!null).then(|| s("instance-1"));
    }
    if v <= 4 {
        req.retention_time_ms = 86_400_000;
    }
    req.topics = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut t = OffsetCommitRequestTopic::default();
            t.name = topic(name);
            t.partitions = (0..2)
                .map(|i| {
                    let mut p = OffsetCommitRequestPartition::default();
                    p.partition_index = i;
                    p.committed_offset = 500 + i64::from(i);
                    if v >= 6 {
                        p.committed_leader_epoch = 3;
                    }
                    p.committed_metadata = (!null).then(|| s("meta"));
                    p
                })
                .collect();
            t
        })
        .collect();
    req
}

fn offset_fetch_sample(v: i16, null: bool) -> OffsetFetchRequest {
    let mut req = OffsetFetchRequest::default();
    if v <= 7 {
        req.group_id = GroupId(s("group-a"));
        // With `null` from v2: all committed offsets of the group.
        req.topics = if null && v >= 2 {
            None
        } else {
            Some(
                ["alpha", "beta"]
                    .into_iter()
                    .map(|name| {
                        let mut t = OffsetFetchRequestTopic::default();
                        t.name = topic(name);
                        t.partition_indexes = vec![0, 1];
                        t
                    })
                    .collect(),
            )
        };
    } else {
        req.groups = ["group-a", "group-b"]
            .into_iter()
            .map(|group_id| {
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = GroupId(s(group_id));
                if v >= 9 {
                    g.member_id = (!null).then(|| s("member-1"));
                    g.member_epoch = 6;
                }
                g.topics = (!null).then(|| {
                    ["alpha", "beta"]
                        .into_iter()
                        .map(|name| {
                            let mut t = OffsetFetchRequestTopics::default();
                            t.name = topic(name);
                            t.partition_indexes = vec![0, 1];
                            t
                        })
                        .collect()
                });
                g
            })
            .collect();
    }
    if v >= 7 {
        req.require_stable = true;
    }
    req
}

fn list_groups_sample(v: i16, _null: bool) -> ListGroupsRequest {
    let mut req = ListGroupsRequest::default();
    if v >= 4 {
        req.states_filter = vec![s("Stable"), s("Empty")];
    }
    if v >= 5 {
        req.types_filter = vec![s("classic"), s("consumer")];
    }
    req
}

fn describe_groups_sample(v: i16, _null: bool) -> DescribeGroupsRequest {
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(s("group-a")), GroupId(s("group-b"))];
    if v >= 3 {
        req.include_authorized_operations = true;
    }
    req
}

fn delete_groups_sample(_v: i16, _null: bool) -> DeleteGroupsRequest {
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![GroupId(s("group-a")), GroupId(s("group-b"))];
    req
}

fn offset_delete_sample(_v: i16, _null: bool) -> OffsetDeleteRequest {
    let mut req = OffsetDeleteRequest::default();
    req.group_id = GroupId(s("group-a"));
    req.topics = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut t = OffsetDeleteRequestTopic::default();
            t.name = topic(name);
            t.partitions = (0..2)
                .map(|i| {
                    let mut p = OffsetDeleteRequestPartition::default();
                    p.partition_index = i;
                    p
                })
                .collect();
            t
        })
        .collect();
    req
}

#[test]
fn find_coordinator_matches_oracle() {
    check_all_versions(find_coordinator_sample, Request::FindCoordinator);
}

#[test]
fn join_group_matches_oracle() {
    check_all_versions(join_group_sample, Request::JoinGroup);
}

#[test]
fn sync_group_matches_oracle() {
    check_all_versions(sync_group_sample, Request::SyncGroup);
}

#[test]
fn heartbeat_matches_oracle() {
    check_all_versions(heartbeat_sample, Request::Heartbeat);
}

#[test]
fn leave_group_matches_oracle() {
    check_all_versions(leave_group_sample, Request::LeaveGroup);
}

#[test]
fn offset_commit_matches_oracle() {
    check_all_versions(offset_commit_sample, Request::OffsetCommit);
}

#[test]
fn offset_fetch_matches_oracle() {
    check_all_versions(offset_fetch_sample, Request::OffsetFetch);
}

#[test]
fn list_groups_matches_oracle() {
    check_all_versions(list_groups_sample, Request::ListGroups);
}

#[test]
fn describe_groups_matches_oracle() {
    check_all_versions(describe_groups_sample, Request::DescribeGroups);
}

#[test]
fn delete_groups_matches_oracle() {
    check_all_versions(delete_groups_sample, Request::DeleteGroups);
}

#[test]
fn offset_delete_matches_oracle() {
    check_all_versions(offset_delete_sample, Request::OffsetDelete);
}

fn delete_records_sample(_v: i16, _null: bool) -> DeleteRecordsRequest {
    let mut req = DeleteRecordsRequest::default();
    req.topics = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut t = DeleteRecordsTopic::default();
            t.name = topic(name);
            t.partitions = (0..2)
                .map(|i| {
                    let mut p = DeleteRecordsPartition::default();
                    p.partition_index = i;
                    p.offset = if i == 0 { -1 } else { 0x0102_0304_0506 };
                    p
                })
                .collect();
            t
        })
        .collect();
    req.timeout_ms = 30_000;
    req
}

#[test]
fn delete_records_matches_oracle() {
    check_all_versions(delete_records_sample, Request::DeleteRecords);
}

fn describe_acls_sample(_v: i16, null: bool) -> DescribeAclsRequest {
    let mut req = DescribeAclsRequest::default();
    req.resource_type_filter = 2;
    req.resource_name_filter = (!null).then(|| s("alpha"));
    req.pattern_type_filter = 3;
    req.principal_filter = (!null).then(|| s("User:alice"));
    req.host_filter = (!null).then(|| s("127.0.0.1"));
    req.operation = 4;
    req.permission_type = 3;
    req
}

#[test]
fn describe_acls_matches_oracle() {
    check_all_versions(describe_acls_sample, Request::DescribeAcls);
}

fn create_acls_sample(_v: i16, _null: bool) -> CreateAclsRequest {
    let mut req = CreateAclsRequest::default();
    req.creations = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut c = AclCreation::default();
            c.resource_type = 2;
            c.resource_name = s(name);
            c.resource_pattern_type = 3;
            c.principal = s("User:alice");
            c.host = s("*");
            c.operation = 4;
            c.permission_type = 3;
            c
        })
        .collect();
    req
}

#[test]
fn create_acls_matches_oracle() {
    check_all_versions(create_acls_sample, Request::CreateAcls);
}

fn delete_acls_sample(_v: i16, null: bool) -> DeleteAclsRequest {
    let mut req = DeleteAclsRequest::default();
    req.filters = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let mut f = DeleteAclsFilter::default();
            f.resource_type_filter = 2;
            f.resource_name_filter = (!null).then(|| s(name));
            f.pattern_type_filter = 1;
            f.principal_filter = (!null).then(|| s("User:alice"));
            f.host_filter = (!null).then(|| s("*"));
            f.operation = 2;
            f.permission_type = 1;
            f
        })
        .collect();
    req
}

#[test]
fn delete_acls_matches_oracle() {
    check_all_versions(delete_acls_sample, Request::DeleteAcls);
}

fn consumer_group_heartbeat_sample(v: i16, null: bool) -> ConsumerGroupHeartbeatRequest {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s("group-a"));
    req.member_id = s("member-1");
    req.member_epoch = 7;
    req.rebalance_timeout_ms = 30_000;
    if null {
        // A plain heartbeat: everything unchanged is null.
        req.rebalance_timeout_ms = -1;
        return req;
    }
    req.instance_id = Some(s("instance-1"));
    req.rack_id = Some(s("rack-1"));
    req.subscribed_topic_names = Some(vec![topic("alpha"), topic("beta")]);
    if v >= 1 {
        req.subscribed_topic_regex = Some(s("^orders-.*"));
    }
    req.server_assignor = Some(s("uniform"));
    req.topic_partitions = Some(
        (0..2)
            .map(|i| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = uuid(i + 1);
                tp.partitions = vec![0, 2];
                tp
            })
            .collect(),
    );
    req
}

fn consumer_group_describe_sample(_v: i16, null: bool) -> ConsumerGroupDescribeRequest {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s("group-a")), GroupId(s("group-b"))];
    req.include_authorized_operations = !null;
    req
}

#[test]
fn consumer_group_heartbeat_matches_oracle() {
    check_all_versions(
        consumer_group_heartbeat_sample,
        Request::ConsumerGroupHeartbeat,
    );
}

#[test]
fn consumer_group_describe_matches_oracle() {
    check_all_versions(
        consumer_group_describe_sample,
        Request::ConsumerGroupDescribe,
    );
}

/// A request header (v1, or v2 when `flexible`) followed by `body`.
fn raw_frame(api_key: i16, version: i16, flexible: bool, body: &[u8]) -> Bytes {
    let mut buf = Vec::new();
    buf.extend_from_slice(&api_key.to_be_bytes());
    buf.extend_from_slice(&version.to_be_bytes());
    buf.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    buf.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    if flexible {
        buf.push(0); // no tagged fields
    }
    buf.extend_from_slice(body);
    Bytes::from(buf)
}

fn decode_frame(mut frame: Bytes) -> Result<Request, DecodeError> {
    let header = decode_header(&mut frame)?;
    decode_request(
        header.request_api_key,
        header.request_api_version,
        &mut frame,
    )
}

const METADATA: i16 = ApiKey::Metadata as i16;
const PRODUCE: i16 = ApiKey::Produce as i16;
const API_VERSIONS: i16 = ApiKey::ApiVersions as i16;

#[test]
fn huge_array_count_is_rejected_before_allocating() {
    // Metadata v1: topics count i32::MAX, padded to a 30-byte frame. Reserving that
    // many topics would need ~100 GB; the count must be refused against the 14 bytes
    // actually left.
    let mut body = i32::MAX.to_be_bytes().to_vec();
    body.resize(30 - 10, 0);
    let frame = raw_frame(METADATA, 1, false, &body);
    assert_eq!(frame.len(), 30);
    assert_eq!(decode_frame(frame), Err(DecodeError::Truncated));

    // Metadata v9 (flexible): compact count u32::MAX (encoded as five bytes).
    let mut body = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    body.resize(30 - 11, 0);
    let frame = raw_frame(METADATA, 9, true, &body);
    assert_eq!(frame.len(), 30);
    assert_eq!(decode_frame(frame), Err(DecodeError::Truncated));
}

#[test]
fn huge_tagged_field_count_is_rejected() {
    // ApiVersions v3 header v2 whose tagged-field count claims u32::MAX fields.
    let mut buf = raw_frame(API_VERSIONS, 3, false, &[]).to_vec();
    buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
    assert_eq!(
        decode_header(&mut Bytes::from(buf)),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn negative_non_null_length_is_invalid() {
    // Metadata v1, one topic whose name length is -2.
    let body = [0, 0, 0, 1, 0xff, 0xfe, b'a', b'b'];
    assert_eq!(
        decode_frame(raw_frame(METADATA, 1, false, &body)),
        Err(DecodeError::Invalid("negative length"))
    );
}

#[test]
fn overlong_varint_is_invalid() {
    // ApiVersions v3: the client software name's compact length spans six bytes.
    let body = [0x81, 0x80, 0x80, 0x80, 0x80, 0x00, b'a'];
    assert_eq!(
        decode_frame(raw_frame(API_VERSIONS, 3, true, &body)),
        Err(DecodeError::Invalid("varint too long"))
    );
}

#[test]
fn invalid_utf8_topic_name_is_invalid() {
    let body = [0, 0, 0, 1, 0, 2, 0xc3, 0x28];
    assert_eq!(
        decode_frame(raw_frame(METADATA, 1, false, &body)),
        Err(DecodeError::Invalid("string is not UTF-8"))
    );
}

#[test]
fn null_non_nullable_fields_are_invalid() {
    // Produce v3: null transactional id (fine), acks, timeout, one topic with a null name.
    let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0, 100, 0, 0, 0, 1, 0xff, 0xff];
    body.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        decode_frame(raw_frame(PRODUCE, 3, false, &body)),
        Err(DecodeError::Invalid("null non-nullable string"))
    );
    // Metadata v0 has no "all topics" null list.
    assert_eq!(
        decode_frame(raw_frame(METADATA, 0, false, &[0xff, 0xff, 0xff, 0xff])),
        Err(DecodeError::Invalid("null non-nullable array"))
    );
}

#[test]
fn unknown_api_key_still_yields_the_correlation_id() {
    let mut frame = raw_frame(9999, 0, false, &[1, 2, 3]);
    let header = decode_header(&mut frame).unwrap();
    assert_eq!(header.correlation_id, CORRELATION_ID);
    assert_eq!(
        decode_request(
            header.request_api_key,
            header.request_api_version,
            &mut frame
        ),
        Err(DecodeError::UnknownApiKey(9999))
    );
    assert_eq!(supported_versions(9999), None);
}

#[test]
fn versions_outside_the_range_are_unsupported() {
    for version in [-1, 2, 12] {
        assert_eq!(
            decode_request(PRODUCE, version, &mut Bytes::new()),
            Err(DecodeError::UnsupportedVersion {
                api_key: PRODUCE,
                version
            })
        );
    }
    assert_eq!(supported_versions(PRODUCE), Some((3, 11)));
}

#[test]
fn future_api_versions_header_is_flexible() {
    // A v127 ApiVersions request has a v2 header: its tagged fields must be consumed so
    // the broker can answer UNSUPPORTED_VERSION with the right correlation id.
    let mut frame = raw_frame(API_VERSIONS, 127, true, &[]);
    let header = decode_header(&mut frame).unwrap();
    assert_eq!(header.request_api_version, 127);
    assert_eq!(header.correlation_id, CORRELATION_ID);
    assert!(frame.is_empty());
    assert_eq!(
        decode_request(API_VERSIONS, 127, &mut frame),
        Err(DecodeError::UnsupportedVersion {
            api_key: API_VERSIONS,
            version: 127
        })
    );
}

#[test]
fn trailing_bytes_after_the_body_are_left_alone() {
    let mut frame = frame(&describe_cluster_sample(1, false), 1).to_vec();
    frame.extend_from_slice(b"junk");
    let mut frame = Bytes::from(frame);
    let header = decode_header(&mut frame).unwrap();
    let request = decode_request(header.request_api_key, 1, &mut frame).unwrap();
    assert_eq!(
        request,
        Request::DescribeCluster(describe_cluster_sample(1, false))
    );
    assert_eq!(&frame[..], b"junk");
}

#[test]
fn produce_records_are_a_slice_of_the_frame() {
    let full = frame(&produce_sample(9, false), 9);
    let frame_range = full.as_ptr_range();
    let mut body = full.clone();
    let header = decode_header(&mut body).unwrap();
    let Ok(Request::Produce(req)) = decode_request(PRODUCE, header.request_api_version, &mut body)
    else {
        panic!("produce did not decode");
    };
    let records = req.topic_data[0].partition_data[0]
        .records
        .as_ref()
        .unwrap();
    assert!(
        frame_range.contains(&records.as_ptr()),
        "records were copied"
    );
}

#[test]
fn header_flexibility_agrees_with_kafka_protocol_beyond_the_decoder_ranges() {
    // The oracle tests cover the header inside each decoder's range; this covers the
    // versions outside it, which the broker must still parse to answer with an error.
    for key in supported_api_keys() {
        let api = ApiKey::try_from(key).unwrap();
        for version in 0..=20 {
            let mut frame = raw_frame(key, version, api.request_header_version(version) == 2, &[]);
            let header = decode_header(&mut frame).unwrap();
            assert_eq!(header.correlation_id, CORRELATION_ID);
            assert!(frame.is_empty(), "api {key} v{version}: header length");
        }
    }
}

/// xorshift64: a tiny deterministic generator, enough to spray bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Random bodies for every supported api and version, and valid frames with random
/// bytes overwritten: decoding may fail but must never panic or hang.
#[test]
fn random_bytes_never_panic() {
    const ITERATIONS: usize = 100_000;
    const BODY_BYTES_MAX: u64 = 64;
    const CORRUPTIONS_MAX: u64 = 4;
    let seeds: Vec<Bytes> = vec![
        frame(&metadata_sample(12, false), 12),
        frame(&produce_sample(9, true), 9),
        frame(&fetch_sample(15, false), 15),
        frame(&create_topics_sample(5, true), 5),
        frame(&describe_configs_sample(4, true), 4),
        frame(&incremental_alter_configs_sample(1, true), 1),
        frame(&alter_configs_sample(0, false), 0),
        frame(&list_offsets_sample(3, false), 3),
        frame(&join_group_sample(9, false), 9),
        frame(&offset_commit_sample(8, true), 8),
        frame(&offset_fetch_sample(9, false), 9),
        frame(&leave_group_sample(5, false), 5),
    ];
    let apis: Vec<(i16, i16, i16)> = supported_api_keys()
        .filter_map(|key| supported_versions(key).map(|(min, max)| (key, min, max)))
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..ITERATIONS {
        if i % 2 == 0 {
            let (key, min, max) = apis[rng.next() as usize % apis.len()];
            let version = min + (rng.next() % (max - min + 1) as u64) as i16;
            let len = (rng.next() % BODY_BYTES_MAX) as usize;
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = decode_request(key, version, &mut Bytes::from(body));
        } else {
            let mut buf = seeds[rng.next() as usize % seeds.len()].to_vec();
            for _ in 0..=rng.next() % CORRUPTIONS_MAX {
                let at = rng.next() as usize % buf.len();
                buf[at] = rng.next() as u8;
            }
            let _ = decode_frame(Bytes::from(buf));
        }
    }
}

/// The compile-time index answers exactly what a scan of the table answers, for
/// every key a header can carry (negative and unknown ones included).
#[test]
fn api_index_agrees_with_the_table() {
    for key in i16::MIN..=i16::MAX {
        let scanned = super::APIS.iter().find(|api| api.key as i16 == key);
        let indexed = super::api_spec(key);
        // `APIS` is a const (each use may be its own copy): compare the entries.
        let fields =
            |a: &super::ApiSpec| (a.key as i16, a.version_min, a.version_max, a.flexible_from);
        assert_eq!(scanned.map(fields), indexed.map(fields), "api key {key}");
    }
}

fn add_partitions_to_txn_sample(_v: i16, null: bool) -> AddPartitionsToTxnRequest {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = s("txn-1").into();
    req.v3_and_below_producer_id = 4242.into();
    req.v3_and_below_producer_epoch = 3;
    let topics = if null { 0 } else { 2 };
    req.v3_and_below_topics = (0..topics)
        .map(|i| {
            let mut t = AddPartitionsToTxnTopic::default();
            t.name = s(["topic-a", "topic-b"][i as usize]).into();
            t.partitions = vec![0, 2, i];
            t
        })
        .collect();
    req
}

fn add_offsets_to_txn_sample(_v: i16, _null: bool) -> AddOffsetsToTxnRequest {
    let mut req = AddOffsetsToTxnRequest::default();
    req.transactional_id = s("txn-1").into();
    req.producer_id = 4242.into();
    req.producer_epoch = 3;
    req.group_id = s("group-1").into();
    req
}

fn end_txn_sample(_v: i16, null: bool) -> EndTxnRequest {
    let mut req = EndTxnRequest::default();
    req.transactional_id = s("txn-1").into();
    req.producer_id = 4242.into();
    req.producer_epoch = 3;
    req.committed = !null;
    req
}

fn txn_offset_commit_sample(v: i16, null: bool) -> TxnOffsetCommitRequest {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = s("txn-1").into();
    req.group_id = s("group-1").into();
    req.producer_id = 4242.into();
    req.producer_epoch = 3;
    if v >= 3 {
        req.generation_id = 7;
        req.member_id = s("member-1");
        req.group_instance_id = (!null).then(|| s("instance-1"));
    }
    req.topics = (0..2)
        .map(|i| {
            let mut t = TxnOffsetCommitRequestTopic::default();
            t.name = s(["topic-a", "topic-b"][i]).into();
            t.partitions = (0..2)
                .map(|p| {
                    let mut part = TxnOffsetCommitRequestPartition::default();
                    part.partition_index = p;
                    part.committed_offset = 100 + i64::from(p);
                    if v >= 2 {
                        part.committed_leader_epoch = 5;
                    }
                    part.committed_metadata = (!null).then(|| s("meta"));
                    part
                })
                .collect();
            t
        })
        .collect();
    req
}

#[test]
fn add_partitions_to_txn_matches_oracle() {
    check_all_versions(add_partitions_to_txn_sample, Request::AddPartitionsToTxn);
}

#[test]
fn add_offsets_to_txn_matches_oracle() {
    check_all_versions(add_offsets_to_txn_sample, Request::AddOffsetsToTxn);
}

#[test]
fn end_txn_matches_oracle() {
    check_all_versions(end_txn_sample, Request::EndTxn);
}

#[test]
fn txn_offset_commit_matches_oracle() {
    check_all_versions(txn_offset_commit_sample, Request::TxnOffsetCommit);
}

fn describe_transactions_sample(_v: i16, null: bool) -> DescribeTransactionsRequest {
    let mut req = DescribeTransactionsRequest::default();
    if !null {
        req.transactional_ids = vec![s("txn-1").into(), s("txn-2").into()];
    }
    req
}

fn list_transactions_sample(v: i16, null: bool) -> ListTransactionsRequest {
    let mut req = ListTransactionsRequest::default();
    if !null {
        req.state_filters = vec![s("Ongoing"), s("PrepareCommit")];
        req.producer_id_filters = vec![4242.into(), 7.into()];
    }
    if v >= 1 {
        req.duration_filter = if null { -1 } else { 60_000 };
    }
    req
}

#[test]
fn describe_transactions_matches_oracle() {
    check_all_versions(describe_transactions_sample, Request::DescribeTransactions);
}

#[test]
fn list_transactions_matches_oracle() {
    check_all_versions(list_transactions_sample, Request::ListTransactions);
}
