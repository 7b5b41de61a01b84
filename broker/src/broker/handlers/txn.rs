//! The transaction apis over the coordinator (`crate::txn`): AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn; and the marker writer the coordinator
//! uses to append COMMIT/ABORT control batches and to commit transactional offsets.

use std::io;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse,
};

use crate::broker::{code, Broker};
use crate::group::limits::OFFSET_METADATA_BYTES_MAX;
use crate::group::{CommitBy, Committed, Coordinator, Waker};
use crate::protocol::batch::control_batch;
use crate::storage::{AppendError, Storage};
use crate::txn::{group_partition, Markers, PendingOffset, TxnState, GROUP_PARTITION_PREFIX};

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

/// Every state name Kafka's ListTransactions filters by.
const STATE_NAMES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

impl Broker {
    pub(in crate::broker) fn describe_transactions(
        &self,
        req: DescribeTransactionsRequest,
    ) -> DescribeTransactionsResponse {
        let states = req
            .transactional_ids
            .into_iter()
            .map(|id| {
                let Some(m) = self.txn.describe(&id.0) else {
                    return DescribedState::default()
                        .with_error_code(code::TRANSACTIONAL_ID_NOT_FOUND)
                        .with_transactional_id(id)
                        .with_transaction_state(
                            kafka_protocol::protocol::StrBytes::from_static_str(""),
                        )
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1)
                        .with_transaction_start_time_ms(-1);
                };
                // Topics of the transaction, without the groups' pseudo-partitions.
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, p) in m
                    .partitions
                    .iter()
                    .filter(|(t, _)| !t.starts_with(GROUP_PARTITION_PREFIX))
                {
                    match topics.last_mut() {
                        Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*p),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(kafka_protocol::messages::TopicName(
                                    topic.clone().into(),
                                ))
                                .with_partitions(vec![*p]),
                        ),
                    }
                }
                DescribedState::default()
                    .with_transactional_id(id)
                    .with_transaction_state(m.state.name().into())
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(if m.state == TxnState::Ongoing {
                        m.started_ms
                    } else {
                        -1
                    })
                    .with_producer_id(m.producer_id.into())
                    .with_producer_epoch(m.epoch)
                    .with_topics(topics)
            })
            .collect();
        DescribeTransactionsResponse::default().with_transaction_states(states)
    }

    pub(in crate::broker) fn list_transactions(
        &self,
        req: ListTransactionsRequest,
        version: i16,
    ) -> ListTransactionsResponse {
        let unknown: Vec<_> = req
            .state_filters
            .iter()
            .filter(|f| !STATE_NAMES.contains(&f.as_str()))
            .cloned()
            .collect();
        let now_ms = now_ms();
        let min_duration_ms = if version >= 1 {
            req.duration_filter
        } else {
            -1
        };
        let mut listed: Vec<(String, crate::txn::TxnMeta)> = self
            .txn
            .list()
            .into_iter()
            .filter(|(_, m)| {
                req.state_filters.is_empty()
                    || req
                        .state_filters
                        .iter()
                        .any(|f| f.as_str() == m.state.name())
            })
            .filter(|(_, m)| {
                req.producer_id_filters.is_empty()
                    || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
            })
            .filter(|(_, m)| {
                min_duration_ms < 0
                    || (m.state == TxnState::Ongoing
                        && now_ms.saturating_sub(m.started_ms) >= min_duration_ms)
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let states = listed
            .into_iter()
            .map(|(id, m)| {
                ListedState::default()
                    .with_transactional_id(kafka_protocol::messages::TransactionalId(id.into()))
                    .with_producer_id(m.producer_id.into())
                    .with_transaction_state(m.state.name().into())
            })
            .collect();
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(states)
    }
}
