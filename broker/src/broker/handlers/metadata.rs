//! Metadata: this broker, and the requested (or all) topics, auto-created when allowed.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{metadata_request, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

use super::acls::{authorized_operations, CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use crate::broker::{code, Broker};
use crate::storage::TopicInfo;

impl Broker {
    pub(in crate::broker) fn metadata(
        &self,
        req: MetadataRequest,
        version: i16,
    ) -> MetadataResponse {
        let cfg = &self.effective.config;
        let topic_ops =
            authorized_operations(req.include_topic_authorized_operations, TOPIC_OPERATIONS);
        // v0 sends an empty list for "all topics"; v1+ sends null.
        let wanted: Option<Vec<metadata_request::MetadataRequestTopic>> = match req.topics {
            Some(t) if t.is_empty() && version == 0 => None,
            other => other,
        };
        let allow_create = cfg.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
        let mut topics: Vec<MetadataResponseTopic> = match wanted {
            None => self
                .storage
                .topics()
                .into_iter()
                .map(|t| self.metadata_topic(Ok(t)))
                .collect(),
            Some(list) => list
                .into_iter()
                .map(|t| match t.name {
                    Some(name) => {
                        let found = self.topic_for_request(&name.0, allow_create);
                        let mut topic =
                            self.metadata_topic(found.as_ref().map_err(|e| *e).cloned());
                        if found.is_err() {
                            topic.name = Some(name);
                        }
                        topic
                    }
                    None => match self.storage.topic_by_id(t.topic_id) {
                        Some(info) => self.metadata_topic(Ok(info)),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(t.topic_id)
                            .with_error_code(code::UNKNOWN_TOPIC_ID)
                            .with_topic_authorized_operations(topic_ops),
                    },
                })
                .collect(),
        };
        // Kafka sets them on every topic of the answer, errors included.
        for t in &mut topics {
            t.topic_authorized_operations = topic_ops;
        }
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(self.node_id().into())
                .with_host(StrBytes::from_string(self.advertised.0.clone()))
                .with_port(self.advertised.1)])
            .with_cluster_id(Some(StrBytes::from_string(cfg.cluster_id.clone())))
            .with_controller_id(self.node_id().into())
            .with_topics(topics)
            .with_cluster_authorized_operations(authorized_operations(
                req.include_cluster_authorized_operations,
                CLUSTER_OPERATIONS,
            ))
    }

    fn metadata_topic(&self, found: Result<TopicInfo, i16>) -> MetadataResponseTopic {
        let info = match found {
            Ok(info) => info,
            Err(code) => return MetadataResponseTopic::default().with_error_code(code),
        };
        let node = self.node_id().into();
        let partitions = (0..info.partitions)
            .map(|p| {
                MetadataResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(StrBytes::from_string(info.name).into()))
            .with_topic_id(info.id)
            .with_partitions(partitions)
    }
}
