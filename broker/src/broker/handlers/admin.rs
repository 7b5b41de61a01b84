//! The admin apis: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs, DescribeCluster.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::acls::{authorized_operations, CLUSTER_OPERATIONS};
use crate::broker::{code, storage_error_code, Broker};
use crate::storage::{
    accepted_topic_configs, is_list_config, list_items, spec_of, validate_topic_config,
    validate_topic_name, TopicConfig, TopicInfo, RETENTION_BYTES_CONFIG, RETENTION_MS_CONFIG,
};

/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;
/// DescribeConfigs config sources (`DYNAMIC_TOPIC_CONFIG` is a topic's own value).
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// (name, value, DescribeConfigs source).
type ConfigEntry = (String, String, i8);

/// (error code, error message) of one altered resource.
type AlterOutcome = (i16, Option<String>);

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl Broker {
    pub(in crate::broker) fn create_topics(
        &self,
        req: CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        // Configs are reported from v5 on.
        const CONFIGS_IN_RESPONSE_VERSION: i16 = 5;
        let mut seen = HashSet::new();
        let duplicates: HashSet<String> = req
            .topics
            .iter()
            .filter(|t| !seen.insert(t.name.0.to_string()))
            .map(|t| t.name.0.to_string())
            .collect();
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let result = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
                let fail = |code: i16, msg: String| {
                    result
                        .clone()
                        .with_error_code(code)
                        .with_error_message(Some(sb(msg)))
                };
                if duplicates.contains(&name) {
                    return fail(
                        code::INVALID_REQUEST,
                        format!("topic {name:?} appears more than once"),
                    );
                }
                if let Err(e) = validate_topic_name(&name) {
                    return fail(code::INVALID_TOPIC_EXCEPTION, e.to_string());
                }
                if !matches!(t.replication_factor, -1 | 1) {
                    return fail(
                        code::INVALID_REPLICATION_FACTOR,
                        format!(
                            "replication factor {} is larger than the 1 broker available",
                            t.replication_factor
                        ),
                    );
                }
                let partitions = match (t.num_partitions, t.assignments.len()) {
                    (-1, 0) => self.effective.config.default_partitions,
                    (-1, n) => n as i32,
                    (n, _) => n,
                };
                if partitions < 1 {
                    return fail(
                        code::INVALID_PARTITIONS,
                        format!("invalid partition count {partitions}"),
                    );
                }
                let mut configs = BTreeMap::new();
                for c in &t.configs {
                    let Some(value) = &c.value else {
                        return fail(
                            code::INVALID_CONFIG,
                            format!("topic config {} has a null value", c.name.as_str()),
                        );
                    };
                    if let Err(msg) = validate_topic_config(&c.name, value) {
                        return fail(code::INVALID_CONFIG, msg);
                    }
                    configs.insert(c.name.to_string(), value.to_string());
                }
                if self.storage.topic(&name).is_some() {
                    return fail(
                        code::TOPIC_ALREADY_EXISTS,
                        format!("topic {name:?} already exists"),
                    );
                }
                let config = TopicConfig { configs };
                if let Err(e) = self.check_topic_limits(&name, partitions) {
                    return fail(storage_error_code(&e), e.to_string());
                }
                let info = if req.validate_only {
                    TopicInfo {
                        name: name.clone(),
                        id: Uuid::nil(),
                        partitions,
                        config,
                    }
                } else {
                    match self.create_topic(&name, partitions, config) {
                        Ok(info) => {
                            tracing::info!(topic = %name, partitions, "created topic");
                            info
                        }
                        Err(e) => return fail(storage_error_code(&e), e.to_string()),
                    }
                };
                let configs = self
                    .topic_configs(&info)
                    .into_iter()
                    .map(|(k, v, source)| {
                        CreatableTopicConfigs::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                            .with_config_source(source)
                    })
                    .collect();
                result
                    .with_topic_id(info.id)
                    .with_num_partitions(info.partitions)
                    .with_replication_factor(1)
                    .with_configs((version >= CONFIGS_IN_RESPONSE_VERSION).then_some(configs))
            })
            .collect();
        CreateTopicsResponse::default().with_topics(results)
    }

    pub(in crate::broker) fn delete_topics(
        &self,
        req: DeleteTopicsRequest,
        _version: i16,
    ) -> DeleteTopicsResponse {
        // v6+ names topics by name or id in `topics`; older versions use `topic_names`.
        let targets: Vec<(Option<TopicName>, Uuid)> = if req.topics.is_empty() {
            req.topic_names
                .into_iter()
                .map(|n| (Some(n), Uuid::nil()))
                .collect()
        } else {
            req.topics
                .into_iter()
                .map(|t| (t.name, t.topic_id))
                .collect()
        };
        let responses = targets
            .into_iter()
            .map(|(name, id)| {
                let resolved = match &name {
                    Some(n) => Some(n.0.to_string()),
                    None => self.storage.topic_by_id(id).map(|i| i.name),
                };
                let result = DeletableTopicResult::default()
                    .with_name(name.clone())
                    .with_topic_id(id);
                let Some(topic) = resolved else {
                    return result.with_error_code(code::UNKNOWN_TOPIC_ID);
                };
                match self.storage.delete_topic(&topic) {
                    Ok(info) => {
                        tracing::info!(topic = %topic, "deleted topic");
                        result
                            .with_name(Some(StrBytes::from_string(info.name).into()))
                            .with_topic_id(info.id)
                    }
                    Err(e) => result
                        .with_error_code(storage_error_code(&e))
                        .with_error_message(Some(sb(e.to_string()))),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    pub(in crate::broker) fn create_partitions(
        &self,
        req: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let name: &str = &t.name.0;
                let Some(info) = self.storage.topic(name) else {
                    return result
                        .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(Some(sb(format!("unknown topic {name:?}"))));
                };
                if t.count <= info.partitions {
                    return result
                        .with_error_code(code::INVALID_PARTITIONS)
                        .with_error_message(Some(sb(format!(
                            "topic {name:?} has {} partitions; the new count {} must be larger",
                            info.partitions, t.count
                        ))));
                }
                if let Err(e) = self.check_partition_limit(name, t.count) {
                    return result
                        .with_error_code(storage_error_code(&e))
                        .with_error_message(Some(sb(e.to_string())));
                }
                if req.validate_only {
                    return result;
                }
                match self.add_partitions(name, t.count) {
                    Ok(_) => result,
                    Err(e) => result
                        .with_error_code(storage_error_code(&e))
                        .with_error_message(Some(sb(e.to_string()))),
                }
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }

    /// The default of an accepted topic config: the table's, or the broker's own
    /// setting for the ones a broker setting provides.
    fn topic_config_default(&self, name: &str) -> Option<String> {
        let cfg = &self.effective.config;
        match name {
            "max.message.bytes" => Some(cfg.max_message_bytes.to_string()),
            RETENTION_BYTES_CONFIG => Some(cfg.retention_bytes.to_string()),
            RETENTION_MS_CONFIG => Some(cfg.retention_ms.to_string()),
            "segment.bytes" => Some(cfg.segment_bytes.to_string()),
            other => spec_of(other).and_then(|s| s.default.map(str::to_string)),
        }
    }

    /// The configs reported for a topic: every accepted one at its default
    /// (DEFAULT_CONFIG), overridden by the topic's own configs (TOPIC_CONFIG).
    /// (name, value, source).
    fn topic_configs(&self, info: &TopicInfo) -> Vec<ConfigEntry> {
        let mut out: BTreeMap<String, (String, i8)> = accepted_topic_configs()
            .filter_map(|s| {
                let value = self.topic_config_default(s.name)?;
                Some((s.name.to_string(), (value, SOURCE_DEFAULT_CONFIG)))
            })
            .collect();
        for (k, v) in &info.config.configs {
            out.insert(k.clone(), (v.clone(), SOURCE_TOPIC_CONFIG));
        }
        out.into_iter().map(|(k, (v, s))| (k, v, s)).collect()
    }

    pub(in crate::broker) fn describe_configs(
        &self,
        req: DescribeConfigsRequest,
    ) -> DescribeConfigsResponse {
        let results = req
            .resources
            .into_iter()
            .map(|r| {
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let entries: Result<Vec<ConfigEntry>, (i16, String)> = match r.resource_type {
                    RESOURCE_TOPIC => match self.storage.topic(&r.resource_name) {
                        Some(info) => Ok(self.topic_configs(&info)),
                        None => Err((
                            code::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("unknown topic {:?}", r.resource_name.as_str()),
                        )),
                    },
                    RESOURCE_BROKER => Ok(self.broker_configs()),
                    RESOURCE_GROUP if r.resource_name.is_empty() => Err((
                        code::INVALID_REQUEST,
                        "group name must not be empty".to_string(),
                    )),
                    RESOURCE_GROUP => Ok(self.group_configs()),
                    other => Err((
                        code::INVALID_REQUEST,
                        format!("unsupported resource type {other}"),
                    )),
                };
                match entries {
                    Err((c, msg)) => result.with_error_code(c).with_error_message(Some(sb(msg))),
                    Ok(entries) => {
                        let wanted: Option<HashSet<String>> = r
                            .configuration_keys
                            .map(|keys| keys.iter().map(|k| k.to_string()).collect());
                        let configs = entries
                            .into_iter()
                            .filter(|(k, _, _)| wanted.as_ref().is_none_or(|w| w.contains(k)))
                            .map(|(k, v, source)| {
                                let documentation = (r.resource_type == RESOURCE_TOPIC
                                    && req.include_documentation)
                                    .then(|| spec_of(&k).map(|s| sb(s.effect)))
                                    .flatten();
                                DescribeConfigsResourceResult::default()
                                    .with_documentation(documentation)
                                    .with_name(sb(k))
                                    .with_value(Some(sb(v)))
                                    // Topic configs can be altered (AlterConfigs);
                                    // the broker's are static.
                                    .with_read_only(r.resource_type != RESOURCE_TOPIC)
                                    .with_config_source(source)
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                }
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    /// Changes a topic's configs with `change` (on a copy), validates and persists the
    /// result unless `validate_only`. Only topics can be altered: the broker's own
    /// configuration is static (config file, `--set`, `PUT /v1/config`).
    fn alter_topic_configs(
        &self,
        resource_type: i8,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    ) -> AlterOutcome {
        if resource_type != RESOURCE_TOPIC {
            return (
                code::INVALID_REQUEST,
                Some(format!(
                    "only topic configs (resource type {RESOURCE_TOPIC}) can be altered, got resource type {resource_type}"
                )),
            );
        }
        let Some(info) = self.storage.topic(name) else {
            return (
                code::UNKNOWN_TOPIC_OR_PARTITION,
                Some(format!("unknown topic {name:?}")),
            );
        };
        let mut configs = info.config.configs.clone();
        if let Err(msg) = change(&mut configs) {
            return (code::INVALID_CONFIG, Some(msg));
        }
        for (k, v) in &configs {
            if let Err(msg) = validate_topic_config(k, v) {
                return (code::INVALID_CONFIG, Some(msg));
            }
        }
        if validate_only {
            return (code::NONE, None);
        }
        match self.storage.set_topic_config(name, TopicConfig { configs }) {
            Ok(info) => {
                tracing::info!(topic = %name, configs = ?info.config.configs, "altered topic configs");
                (code::NONE, None)
            }
            Err(e) => (storage_error_code(&e), Some(e.to_string())),
        }
    }

    /// AlterConfigs (API 33): the given set replaces all of the topic's own configs.
    pub(in crate::broker) fn alter_configs(
        &self,
        req: AlterConfigsRequest,
    ) -> AlterConfigsResponse {
        use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
        let responses = req
            .resources
            .into_iter()
            .map(|r| {
                let (error, message) = self.alter_topic_configs(
                    r.resource_type,
                    &r.resource_name,
                    req.validate_only,
                    |configs| {
                        configs.clear();
                        for c in &r.configs {
                            let value = c.value.as_ref().ok_or_else(|| {
                                format!("topic config {} has a null value", c.name.as_str())
                            })?;
                            configs.insert(c.name.to_string(), value.to_string());
                        }
                        Ok(())
                    },
                );
                AlterConfigsResourceResponse::default()
                    .with_error_code(error)
                    .with_error_message(message.map(sb))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    }

    /// IncrementalAlterConfigs (API 44): SET and DELETE per config; APPEND and
    /// SUBTRACT apply to list configs only (`cleanup.policy`), from the topic's value
    /// or else the default, as Kafka's `ConfigAdminManager` does.
    pub(in crate::broker) fn incremental_alter_configs(
        &self,
        req: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
        let responses = req
            .resources
            .into_iter()
            .map(|r| {
                let (error, message) = self.alter_topic_configs(
                    r.resource_type,
                    &r.resource_name,
                    req.validate_only,
                    |configs| {
                        for c in &r.configs {
                            let name = c.name.as_str();
                            match c.config_operation {
                                OP_SET => {
                                    let value = c.value.as_ref().ok_or_else(|| {
                                        format!("SET of topic config {name} has a null value")
                                    })?;
                                    configs.insert(name.to_string(), value.to_string());
                                }
                                OP_DELETE => {
                                    configs.remove(name);
                                }
                                OP_APPEND | OP_SUBTRACT if is_list_config(name) => {
                                    let value = c.value.as_ref().ok_or_else(|| {
                                        format!("APPEND or SUBTRACT of topic config {name} has a null value")
                                    })?;
                                    let current = configs
                                        .get(name)
                                        .cloned()
                                        .or_else(|| self.topic_config_default(name))
                                        .unwrap_or_default();
                                    let mut items = list_items(&current);
                                    let given = list_items(value);
                                    if c.config_operation == OP_APPEND {
                                        for item in given {
                                            if !items.contains(&item) {
                                                items.push(item);
                                            }
                                        }
                                    } else {
                                        items.retain(|i| !given.contains(i));
                                    }
                                    configs.insert(name.to_string(), items.join(","));
                                }
                                OP_APPEND | OP_SUBTRACT => {
                                    return Err(format!(
                                        "topic config {name} is not a list: APPEND and SUBTRACT do not apply"
                                    ))
                                }
                                op => {
                                    return Err(format!(
                                        "unknown config operation {op} for topic config {name}"
                                    ))
                                }
                            }
                        }
                        Ok(())
                    },
                );
                AlterConfigsResourceResponse::default()
                    .with_error_code(error)
                    .with_error_message(message.map(sb))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }

    /// A group's configs (KIP-848 group configs, resource type 32), for any group name
    /// as Kafka 4 answers even for a group that does not exist: the defaults that
    /// apply here, from the broker's configuration. Read-only: group configs cannot be
    /// altered (Kafka's share.* and streams.* ones are not listed: no such groups here).
    fn group_configs(&self) -> Vec<ConfigEntry> {
        let cfg = &self.effective.config;
        [
            (
                "consumer.heartbeat.interval.ms",
                cfg.group_consumer_heartbeat_interval_ms.to_string(),
            ),
            (
                "consumer.session.timeout.ms",
                cfg.group_consumer_session_timeout_ms.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v, SOURCE_DEFAULT_CONFIG))
        .collect()
    }

    fn broker_configs(&self) -> Vec<ConfigEntry> {
        let cfg = &self.effective.config;
        [
            (
                "auto.create.topics.enable",
                cfg.auto_create_topics.to_string(),
            ),
            ("broker.id", cfg.node_id.to_string()),
            (
                "group.initial.rebalance.delay.ms",
                cfg.group_initial_rebalance_delay_ms.to_string(),
            ),
            (
                "group.max.session.timeout.ms",
                cfg.group_max_session_timeout_ms.to_string(),
            ),
            (
                "group.min.session.timeout.ms",
                cfg.group_min_session_timeout_ms.to_string(),
            ),
            (
                "log.cleaner.backoff.ms",
                cfg.log_cleaner_backoff_ms.to_string(),
            ),
            ("log.dirs", cfg.data_dir.display().to_string()),
            ("log.retention.bytes", cfg.retention_bytes.to_string()),
            (
                "log.retention.check.interval.ms",
                cfg.retention_check_interval_ms.to_string(),
            ),
            ("log.retention.ms", cfg.retention_ms.to_string()),
            ("log.segment.bytes", cfg.segment_bytes.to_string()),
            ("message.max.bytes", cfg.max_message_bytes.to_string()),
            ("num.partitions", cfg.default_partitions.to_string()),
            (
                "offsets.retention.check.interval.ms",
                cfg.offsets_retention_check_interval_ms.to_string(),
            ),
            (
                "offsets.retention.minutes",
                cfg.offsets_retention_minutes.to_string(),
            ),
            ("socket.request.max.bytes", cfg.max_frame_bytes.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v, SOURCE_STATIC_BROKER_CONFIG))
        .collect()
    }

    pub(in crate::broker) fn describe_cluster(
        &self,
        req: DescribeClusterRequest,
    ) -> DescribeClusterResponse {
        DescribeClusterResponse::default()
            .with_endpoint_type(1)
            .with_cluster_id(sb(self.effective.config.cluster_id.clone()))
            .with_controller_id(self.node_id().into())
            .with_brokers(vec![DescribeClusterBroker::default()
                .with_broker_id(self.node_id().into())
                .with_host(sb(self.advertised.0.clone()))
                .with_port(self.advertised.1)])
            .with_cluster_authorized_operations(authorized_operations(
                req.include_cluster_authorized_operations,
                CLUSTER_OPERATIONS,
            ))
    }
}
