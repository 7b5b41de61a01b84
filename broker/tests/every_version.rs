//! Every version the broker advertises in ApiVersions is really answered: for each API
//! and each version in its advertised range, a request that touches a real topic gets a
//! decodable response of that version with no error, and the connection stays open.
//! (A response field set for a version that lacks it would close the connection.)

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

fn advertised(conn: &mut RawConn) -> Vec<ApiVersion> {
    let resp = conn.call(&raw::api_versions_request(), 3);
    assert_eq!(resp.error_code, 0);
    resp.api_keys
}

fn range_of(apis: &[ApiVersion], key: ApiKey) -> std::ops::RangeInclusive<i16> {
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
    assert!(apis.len() >= 11, "advertised: {apis:?}");

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
    for v in range_of(&apis, ApiKey::DescribeCluster) {
        let resp = conn.call(&DescribeClusterRequest::default(), v);
        assert_eq!(resp.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(resp.brokers.len(), 1, "DescribeCluster v{v}");
    }
    for v in range_of(&apis, ApiKey::InitProducerId) {
        let req = InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let resp = conn.call(&req, v);
        assert_eq!(resp.error_code, 0, "InitProducerId v{v}");
        assert!(resp.producer_id.0 >= 0, "InitProducerId v{v}");
    }
}
