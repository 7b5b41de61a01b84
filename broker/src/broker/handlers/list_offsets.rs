//! ListOffsets: earliest, latest, max timestamp, or the first record at or after a
//! timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::{code, Broker};

/// ListOffsets special timestamps.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

impl Broker {
    pub(in crate::broker) fn list_offsets(
        &self,
        req: ListOffsetsRequest,
        version: i16,
    ) -> ListOffsetsResponse {
        // The leader epoch exists from v4 on; earlier versions must leave it unset.
        let leader_epoch = if version >= 4 { 0 } else { -1 };
        // read_committed (v2+): "latest" is the last stable offset.
        let read_committed = version >= 2 && req.isolation_level == 1;
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let resp = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(leader_epoch);
                        let Some(part) = self.storage.partition(&t.name.0, p.partition_index)
                        else {
                            return resp.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                        };
                        let offsets = part.offsets();
                        let found = match p.timestamp {
                            LATEST_TIMESTAMP if read_committed => {
                                Some((part.last_stable_offset(), -1))
                            }
                            LATEST_TIMESTAMP => Some((offsets.log_end_offset, -1)),
                            EARLIEST_TIMESTAMP => Some((offsets.log_start_offset, -1)),
                            MAX_TIMESTAMP => part.max_timestamp(),
                            ts => part.offset_for_timestamp(ts),
                        };
                        match found {
                            Some((offset, ts)) => resp.with_offset(offset).with_timestamp(ts),
                            None => resp,
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }
}
