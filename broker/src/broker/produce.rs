//! Produce: validate and append record batches, answer per partition.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;

use super::{code, Broker};
use crate::storage::AppendError;

/// Kafka's `acks=0`: the client expects no response at all.
const ACKS_NONE: i16 = 0;

impl Broker {
    /// Returns None when no response is due (acks=0).
    pub(super) fn produce(&self, req: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
        let allow_create = self.effective.config.auto_create_topics;
        let mut appended_any = false;
        let mut responses = Vec::with_capacity(req.topic_data.len());
        for topic in req.topic_data {
            let name: &str = &topic.name.0;
            // The common case (topic exists) costs map lookups only; the topic-level
            // diagnosis (invalid name, unknown, auto-create) runs once, when needed.
            let mut topic_error: Option<i16> = None;
            let mut partitions = Vec::with_capacity(topic.partition_data.len());
            for pd in topic.partition_data {
                let resp = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let mut partition = self.storage.partition(name, pd.index);
                if partition.is_none() && topic_error.is_none() {
                    match self.topic_for_request(name, allow_create) {
                        Ok(_) => partition = self.storage.partition(name, pd.index),
                        Err(code) => topic_error = Some(code),
                    }
                }
                if let Some(code) = topic_error {
                    partitions.push(resp.with_error_code(code));
                    continue;
                }
                let Some(partition) = partition else {
                    partitions.push(resp.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                    continue;
                };
                let records = pd.records.unwrap_or_default();
                if records.is_empty() {
                    partitions.push(
                        resp.with_error_code(code::CORRUPT_MESSAGE)
                            .with_error_message(Some(StrBytes::from_static_str("no records"))),
                    );
                    continue;
                }
                match partition.append(&records) {
                    Ok(a) => {
                        appended_any |= !a.duplicate;
                        partitions.push(
                            resp.with_base_offset(a.base_offset)
                                .with_log_start_offset(a.log_start_offset),
                        );
                    }
                    Err(e) => {
                        if matches!(e, AppendError::Io(_)) {
                            warn!(topic = name, partition = pd.index, error = %e, "append failed");
                        }
                        partitions.push(
                            resp.with_error_code(append_error_code(&e))
                                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                        );
                    }
                }
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_topic_id(topic.topic_id)
                    .with_partition_responses(partitions),
            );
        }
        if appended_any {
            self.wake_parked();
        }
        if req.acks == ACKS_NONE {
            return None;
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}

fn append_error_code(e: &AppendError) -> i16 {
    match e {
        AppendError::Corrupt(_) | AppendError::Records(_) => code::CORRUPT_MESSAGE,
        AppendError::UnsupportedMagic(_) => code::INVALID_RECORD,
        AppendError::TooLarge(_) => code::MESSAGE_TOO_LARGE,
        AppendError::OutOfOrderSequence => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::InvalidProducerEpoch => code::INVALID_PRODUCER_EPOCH,
        AppendError::Io(_) => code::KAFKA_STORAGE_ERROR,
    }
}
