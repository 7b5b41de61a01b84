//! The transaction apis over the coordinator (`crate::txn`): AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn; and the marker writer the coordinator
//! uses to append COMMIT/ABORT control batches and to commit transactional offsets.

use std::io;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

use crate::broker::{code, Broker};
use crate::group::limits::OFFSET_METADATA_BYTES_MAX;
use crate::group::{CommitBy, Committed, Coordinator, Waker};
use crate::protocol::batch::control_batch;
use crate::storage::{AppendError, Storage};
use crate::txn::{group_partition, Markers, PendingOffset};

/// Writes transaction markers into storage (waking parked fetches) and commits the
/// offsets of committed transactions to their groups.
pub(crate) struct StorageMarkers {
    pub(crate) storage: Arc<Storage>,
    pub(crate) groups: Arc<Coordinator>,
    pub(crate) wake: Waker,
}

/// This broker's coordinator epoch in markers: one coordinator, never moved.
const COORDINATOR_EPOCH: i32 = 0;

/// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn answer PRODUCER_FENCED from this
/// version, INVALID_PRODUCER_EPOCH before (Kafka's `KafkaApis`).
const PRODUCER_FENCED_VERSION: i16 = 2;

fn fenced_code(version: i16) -> i16 {
    if version >= PRODUCER_FENCED_VERSION {
        code::PRODUCER_FENCED
    } else {
        code::INVALID_PRODUCER_EPOCH
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Markers for StorageMarkers {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> io::Result<()> {
        let Some(p) = self.storage.partition(topic, partition) else {
            // A group's offsets pseudo-partition, or a topic deleted meanwhile.
            return Ok(());
        };
        let mut batch = Vec::with_capacity(80);
        control_batch(
            &mut batch,
            producer_id,
            epoch,
            commit,
            COORDINATOR_EPOCH,
            now_ms(),
        );
        match p.append(&batch) {
            Ok(_) => {
                (self.wake)();
                Ok(())
            }
            Err(AppendError::Io(e)) => Err(io::Error::other(e)),
            Err(e) => Err(io::Error::other(format!(
                "marker for {topic}-{partition} refused: {e}"
            ))),
        }
    }

    fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<(String, i32, PendingOffset)>,
    ) -> io::Result<()> {
        let ts = now_ms();
        let commits = offsets
            .into_iter()
            .map(|(topic, partition, o)| {
                (
                    (topic, partition),
                    Committed {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata,
                        commit_timestamp_ms: ts,
                    },
                )
            })
            .collect();
        self.groups.log_commits(group, commits).map_err(|code| {
            io::Error::other(format!("committing offsets of {group}: error {code}"))
        })
    }
}

impl Broker {
    pub(in crate::broker) fn add_partitions_to_txn(
        &self,
        req: AddPartitionsToTxnRequest,
        version: i16,
    ) -> AddPartitionsToTxnResponse {
        let id = &req.v3_and_below_transactional_id.0;
        let (pid, epoch) = (
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
        );
        // Unknown partitions fail the request: the others answer
        // OPERATION_NOT_ATTEMPTED, as Kafka does.
        let mut unknown = false;
        let mut partitions = Vec::new();
        for t in &req.v3_and_below_topics {
            for &p in &t.partitions {
                if self.storage.partition(&t.name.0, p).is_some() {
                    partitions.push((t.name.0.to_string(), p));
                } else {
                    unknown = true;
                }
            }
        }
        let verdict = |topic: &str, p: i32| -> Option<i16> {
            if !unknown {
                return None;
            }
            Some(if self.storage.partition(topic, p).is_some() {
                code::OPERATION_NOT_ATTEMPTED
            } else {
                code::UNKNOWN_TOPIC_OR_PARTITION
            })
        };
        let shared = if unknown {
            code::NONE
        } else {
            match self.txn.add_partitions(id, pid, epoch, &partitions) {
                Ok(()) => code::NONE,
                Err(e) => e.code(fenced_code(version)),
            }
        };
        let results = req
            .v3_and_below_topics
            .iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(
                                        verdict(&t.name.0, p).unwrap_or(shared),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
    }

    pub(in crate::broker) fn add_offsets_to_txn(
        &self,
        req: AddOffsetsToTxnRequest,
        version: i16,
    ) -> AddOffsetsToTxnResponse {
        let group = &req.group_id.0;
        let error = if crate::group::validate_group_id(group, true).is_err() {
            code::INVALID_GROUP_ID
        } else {
            let p = [(group_partition(group), 0)];
            match self.txn.add_partitions(
                &req.transactional_id.0,
                req.producer_id.0,
                req.producer_epoch,
                &p,
            ) {
                Ok(()) => code::NONE,
                Err(e) => e.code(fenced_code(version)),
            }
        };
        AddOffsetsToTxnResponse::default().with_error_code(error)
    }

    pub(in crate::broker) fn txn_offset_commit(
        &self,
        req: TxnOffsetCommitRequest,
        version: i16,
    ) -> TxnOffsetCommitResponse {
        let group = &req.group_id.0;
        let mut offsets = Vec::new();
        let mut verdicts = Vec::new();
        for t in &req.topics {
            let topic = t.name.0.to_string();
            let mut partitions = Vec::new();
            for p in &t.partitions {
                let metadata = p.committed_metadata.as_deref().unwrap_or("");
                let error = if self.storage.partition(&topic, p.partition_index).is_none() {
                    Some(code::UNKNOWN_TOPIC_OR_PARTITION)
                } else if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                    Some(code::OFFSET_METADATA_TOO_LARGE)
                } else {
                    offsets.push((
                        topic.clone(),
                        p.partition_index,
                        PendingOffset {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 2 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: metadata.to_string(),
                        },
                    ));
                    None
                };
                partitions.push((p.partition_index, error));
            }
            verdicts.push((t.name.clone(), partitions));
        }
        // Fenced like OffsetCommit (member, generation), then kept with the
        // transaction until it commits.
        let by = CommitBy {
            member_id: &req.member_id,
            group_instance_id: req.group_instance_id.as_deref(),
            generation_id: req.generation_id,
            transactional: true,
            unknown_group_code: code::ILLEGAL_GENERATION,
            member_epochs: true,
        };
        let shared = self
            .groups
            .validate_commit_by(group, &by)
            .and_then(|()| {
                if offsets.is_empty() {
                    return Ok(());
                }
                self.txn
                    .add_offsets(
                        &req.transactional_id.0,
                        req.producer_id.0,
                        req.producer_epoch,
                        group,
                        offsets,
                    )
                    .map_err(|e| e.code(code::INVALID_PRODUCER_EPOCH))
            })
            .err()
            .unwrap_or(code::NONE);
        let topics = verdicts
            .into_iter()
            .map(|(name, partitions)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, error)| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(error.unwrap_or(shared))
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    }

    pub(in crate::broker) fn end_txn(&self, req: EndTxnRequest, version: i16) -> EndTxnResponse {
        let error = match self.txn.end_txn(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
        ) {
            Ok(()) => code::NONE,
            Err(e) => e.code(fenced_code(version)),
        };
        EndTxnResponse::default()
            .with_error_code(error)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    }
}
