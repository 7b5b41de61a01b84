//! DeleteRecords: moves partitions' log start offsets (what Kafka Streams uses to purge
//! repartition topics). Errors as Kafka's `ReplicaManager.deleteRecords`: an offset
//! above the high watermark (or below -1) is OFFSET_OUT_OF_RANGE, an unknown topic or
//! partition UNKNOWN_TOPIC_OR_PARTITION, a topic whose `cleanup.policy` does not
//! include `delete` POLICY_VIOLATION; the low watermark answered is the log start
//! offset afterwards (-1 on error).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::{code, Broker};
use crate::storage::DeleteRecordsError;

/// The low watermark of a partition result that failed.
const NO_LOW_WATERMARK: i64 = -1;

impl Broker {
    pub(in crate::broker) fn delete_records(
        &self,
        req: DeleteRecordsRequest,
    ) -> DeleteRecordsResponse {
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let topic = self.storage.topic(&t.name.0);
                let deletable = topic.as_ref().map(|info| {
                    info.config
                        .configs
                        .get("cleanup.policy")
                        .is_none_or(|policy| policy.split(',').any(|p| p.trim() == "delete"))
                });
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(NO_LOW_WATERMARK);
                        let part = self.storage.partition(&t.name.0, p.partition_index);
                        let (Some(part), Some(deletable)) = (part, deletable) else {
                            return result.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                        };
                        if !deletable {
                            return result.with_error_code(code::POLICY_VIOLATION);
                        }
                        match part.delete_records_before(p.offset) {
                            Ok(low_watermark) => result.with_low_watermark(low_watermark),
                            Err(e) => {
                                let error_code = match e {
                                    DeleteRecordsError::OffsetOutOfRange { .. } => {
                                        code::OFFSET_OUT_OF_RANGE
                                    }
                                    DeleteRecordsError::Deleted => code::UNKNOWN_TOPIC_OR_PARTITION,
                                    DeleteRecordsError::Io(ref io) => {
                                        tracing::warn!(topic = %t.name.0, partition = p.partition_index, error = %io, "DeleteRecords failed");
                                        code::KAFKA_STORAGE_ERROR
                                    }
                                };
                                result.with_error_code(error_code)
                            }
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    }
}
