//! `max_topics` and `max_partitions_per_topic`: every path that creates topics or
//! partitions (CreateTopics, CreatePartitions, auto-creation on Metadata/Produce, the
//! admin API) goes through these, so a refusal creates nothing anywhere.

use super::metrics::Limit;
use super::Broker;
use crate::storage::{StorageError, TopicConfig, TopicInfo};

impl Broker {
    /// Whether a new topic `name` with `partitions` partitions fits the limits now.
    /// A refusal is counted and logged (rate-limited).
    pub(crate) fn check_topic_limits(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<(), StorageError> {
        self.check_partition_limit(name, partitions)?;
        let limit = self.effective.config.max_topics;
        if self.storage.topic(name).is_none() && self.storage.topics().len() >= limit {
            self.metrics.limits.hit(
                Limit::MaxTopics,
                format_args!("refused to create topic {name:?}: max_topics = {limit} reached"),
            );
            return Err(StorageError::TooManyTopics { limit });
        }
        Ok(())
    }

    /// Whether topic `name` may have `partitions` partitions.
    pub(crate) fn check_partition_limit(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<(), StorageError> {
        let limit = self.effective.config.max_partitions_per_topic;
        if partitions > limit {
            self.metrics.limits.hit(
                Limit::MaxPartitionsPerTopic,
                format_args!(
                    "refused {partitions} partitions for topic {name:?}: \
                     max_partitions_per_topic = {limit}"
                ),
            );
            return Err(StorageError::TooManyPartitions {
                requested: partitions,
                limit,
            });
        }
        Ok(())
    }

    /// Creates a topic within the limits. The check and the creation happen under one
    /// lock, so concurrent creations cannot overshoot `max_topics` together.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<TopicInfo, StorageError> {
        let _creating = self
            .topic_create_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.check_topic_limits(name, partitions)?;
        self.storage.create_topic(name, partitions, config)
    }

    /// Grows a topic to `total_partitions` within `max_partitions_per_topic`.
    pub fn add_partitions(
        &self,
        name: &str,
        total_partitions: i32,
    ) -> Result<TopicInfo, StorageError> {
        let _creating = self
            .topic_create_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.check_partition_limit(name, total_partitions)?;
        self.storage.create_partitions(name, total_partitions)
    }
}
