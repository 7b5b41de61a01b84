//! Transactions (KIP-98): AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit;
//! and for tools (KIP-664): DescribeTransactions, ListTransactions.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    ListTransactionsRequest, TxnOffsetCommitRequest,
};

use super::{DecodeError, Reader, Version};

/// v0–3 only: v4+ (batched transactions, VerifyOnly) is Kafka's broker-to-broker
/// verification (KIP-890), not advertised here.
pub(super) fn add_partitions_to_txn(
    r: &mut Reader,
    v: Version,
) -> Result<AddPartitionsToTxnRequest, DecodeError> {
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = r.string(v.flexible)?.into();
    req.v3_and_below_producer_id = r.i64()?.into();
    req.v3_and_below_producer_epoch = r.i16()?;
    req.v3_and_below_topics = r.array(v.flexible, |r| {
        let mut topic = AddPartitionsToTxnTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.partitions = r.array(v.flexible, |r| r.i32())?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn add_offsets_to_txn(
    r: &mut Reader,
    v: Version,
) -> Result<AddOffsetsToTxnRequest, DecodeError> {
    let mut req = AddOffsetsToTxnRequest::default();
    req.transactional_id = r.string(v.flexible)?.into();
    req.producer_id = r.i64()?.into();
    req.producer_epoch = r.i16()?;
    req.group_id = r.string(v.flexible)?.into();
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn end_txn(r: &mut Reader, v: Version) -> Result<EndTxnRequest, DecodeError> {
    let mut req = EndTxnRequest::default();
    req.transactional_id = r.string(v.flexible)?.into();
    req.producer_id = r.i64()?.into();
    req.producer_epoch = r.i16()?;
    req.committed = r.bool()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn txn_offset_commit(
    r: &mut Reader,
    v: Version,
) -> Result<TxnOffsetCommitRequest, DecodeError> {
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = r.string(v.flexible)?.into();
    req.group_id = r.string(v.flexible)?.into();
    req.producer_id = r.i64()?.into();
    req.producer_epoch = r.i16()?;
    if v.number >= 3 {
        req.generation_id = r.i32()?;
        req.member_id = r.string(v.flexible)?;
        req.group_instance_id = r.nullable_string(v.flexible)?;
    }
    req.topics = r.array(v.flexible, |r| {
        let mut topic = TxnOffsetCommitRequestTopic::default();
        topic.name = r.string(v.flexible)?.into();
        topic.partitions = r.array(v.flexible, |r| {
            let mut p = TxnOffsetCommitRequestPartition::default();
            p.partition_index = r.i32()?;
            p.committed_offset = r.i64()?;
            if v.number >= 2 {
                p.committed_leader_epoch = r.i32()?;
            }
            p.committed_metadata = r.nullable_string(v.flexible)?;
            r.tagged_fields_if(v.flexible)?;
            Ok(p)
        })?;
        r.tagged_fields_if(v.flexible)?;
        Ok(topic)
    })?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

pub(super) fn describe_transactions(
    r: &mut Reader,
    v: Version,
) -> Result<DescribeTransactionsRequest, DecodeError> {
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = r.array(v.flexible, |r| Ok(r.string(v.flexible)?.into()))?;
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}

/// v0–1 (v2's regular-expression filter is not built).
pub(super) fn list_transactions(
    r: &mut Reader,
    v: Version,
) -> Result<ListTransactionsRequest, DecodeError> {
    let mut req = ListTransactionsRequest::default();
    req.state_filters = r.array(v.flexible, |r| r.string(v.flexible))?;
    req.producer_id_filters = r.array(v.flexible, |r| Ok(r.i64()?.into()))?;
    if v.number >= 1 {
        req.duration_filter = r.i64()?;
    }
    r.tagged_fields_if(v.flexible)?;
    Ok(req)
}
