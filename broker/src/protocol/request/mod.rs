//! Request header and body decoders: hand-written, bounded, and producing the
//! `kafka_protocol` request structs so the broker and the tests share one vocabulary.
//! The header, Produce and Fetch decode into borrowing views instead ([`views`]), which
//! the broker's hot path uses directly; their owned structs are built from the views.
//!
//! [`APIS`] is the one api table: what is decoded (versions, flexible encoding), what
//! `Broker::handle` dispatches and what ApiVersions advertises.
//!
//! Why not `kafka_protocol`'s own decoders: they size vectors from the array count on
//! the wire, so a 20-byte request can ask for hundreds of gigabytes. Ours reserve only
//! what the bytes present can justify (see [`super::wire`]).
//!
//! Each decoder reads its fields in schema order with `if version >= N` guards, exactly
//! as Kafka's JSON schemas (and `kafka_protocol`'s generated sources) list them. Unknown
//! tagged fields are read and dropped.

mod acl;
mod admin;
mod client;
mod data;
mod group;
#[cfg(test)]
mod tests;
mod txn;
pub mod views;

use bytes::Bytes;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest, ApiKey,
    ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    CreateAclsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeAclsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeTransactionsRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, ListTransactionsRequest,
    MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest,
    RequestHeader, SyncGroupRequest, TxnOffsetCommitRequest,
};

pub use super::wire::DecodeError;
use super::wire::Reader;

/// A decoded request body, one variant per api the broker can read.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
    InitProducerId(InitProducerIdRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    ListGroups(ListGroupsRequest),
    DescribeGroups(DescribeGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    OffsetDelete(OffsetDeleteRequest),
    DeleteRecords(DeleteRecordsRequest),
    DescribeAcls(DescribeAclsRequest),
    CreateAcls(CreateAclsRequest),
    DeleteAcls(DeleteAclsRequest),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    EndTxn(EndTxnRequest),
    TxnOffsetCommit(TxnOffsetCommitRequest),
    DescribeTransactions(DescribeTransactionsRequest),
    ListTransactions(ListTransactionsRequest),
}

/// What the broker knows about one api: the versions its decoder reads, and the first
/// version that uses the flexible (compact, tagged-field) encoding.
struct ApiSpec {
    key: ApiKey,
    version_min: i16,
    version_max: i16,
    flexible_from: i16,
}

const fn spec(key: ApiKey, version_min: i16, version_max: i16, flexible_from: i16) -> ApiSpec {
    ApiSpec {
        key,
        version_min,
        version_max,
        flexible_from,
    }
}

/// The apis this broker decodes. `flexible_from` comes from each api's JSON schema
/// ("flexibleVersions") and is used for the header even beyond `version_max`.
const APIS: &[ApiSpec] = &[
    spec(ApiKey::Produce, 3, 11, 9),
    spec(ApiKey::Fetch, 4, 16, 12),
    spec(ApiKey::ListOffsets, 1, 8, 6),
    spec(ApiKey::Metadata, 0, 12, 9),
    spec(ApiKey::ApiVersions, 0, 4, 3),
    spec(ApiKey::CreateTopics, 2, 7, 5),
    spec(ApiKey::DeleteTopics, 1, 6, 4),
    spec(ApiKey::InitProducerId, 0, 5, 2),
    spec(ApiKey::DescribeConfigs, 1, 4, 4),
    spec(ApiKey::AlterConfigs, 0, 2, 2),
    spec(ApiKey::IncrementalAlterConfigs, 0, 1, 1),
    spec(ApiKey::CreatePartitions, 0, 3, 2),
    spec(ApiKey::DescribeCluster, 0, 1, 0),
    spec(ApiKey::FindCoordinator, 0, 6, 3),
    spec(ApiKey::JoinGroup, 0, 9, 6),
    spec(ApiKey::SyncGroup, 0, 5, 4),
    spec(ApiKey::Heartbeat, 0, 4, 4),
    spec(ApiKey::LeaveGroup, 0, 5, 4),
    spec(ApiKey::OffsetCommit, 2, 9, 8),
    spec(ApiKey::OffsetFetch, 1, 9, 6),
    spec(ApiKey::ListGroups, 0, 5, 3),
    spec(ApiKey::DescribeGroups, 0, 5, 5),
    spec(ApiKey::DeleteGroups, 0, 2, 2),
    spec(ApiKey::OffsetDelete, 0, 0, NEVER_FLEXIBLE),
    spec(ApiKey::DeleteRecords, 0, 2, 2),
    // Kafka 4 dropped v0 of the ACL apis (KIP-896).
    spec(ApiKey::DescribeAcls, 1, 3, 2),
    spec(ApiKey::CreateAcls, 1, 3, 2),
    spec(ApiKey::DeleteAcls, 1, 3, 2),
    spec(ApiKey::ConsumerGroupHeartbeat, 0, 1, 0),
    spec(ApiKey::ConsumerGroupDescribe, 0, 1, 0),
    // v4+ is broker-to-broker (KIP-890 verification); clients use v0-3.
    spec(ApiKey::AddPartitionsToTxn, 0, 3, 3),
    spec(ApiKey::AddOffsetsToTxn, 0, 4, 3),
    // v5 (KIP-890 part 2: an epoch bump per transaction) is not built.
    spec(ApiKey::EndTxn, 0, 4, 3),
    spec(ApiKey::TxnOffsetCommit, 0, 3, 3),
    spec(ApiKey::DescribeTransactions, 0, 0, 0),
    // v2's regular-expression filter is not built.
    spec(ApiKey::ListTransactions, 0, 1, 0),
];

/// `flexible_from` for an api that has no flexible version.
const NEVER_FLEXIBLE: i16 = i16::MAX;

/// Api keys below this have a slot in [`API_INDEX`] (Kafka's keys run to ~90).
const API_INDEX_SLOTS: usize = 128;
/// No api at this key.
const NO_API: u8 = u8::MAX;

/// [`APIS`] position by api key, built at compile time (a key past the slots fails
/// the build), so every request header looks its api up in one load instead of a
/// scan of the table.
const API_INDEX: [u8; API_INDEX_SLOTS] = {
    assert!(APIS.len() < NO_API as usize);
    let mut index = [NO_API; API_INDEX_SLOTS];
    let mut i = 0;
    while i < APIS.len() {
        index[APIS[i].key as i16 as usize] = i as u8;
        i += 1;
    }
    index
};

fn api_spec(api_key: i16) -> Option<&'static ApiSpec> {
    let slot = *API_INDEX.get(usize::try_from(api_key).ok()?)?;
    APIS.get(usize::from(slot))
}

/// Whether `api_key` at `version` uses the flexible encoding (compact strings and
/// arrays, tagged fields, response header v1 except for ApiVersions).
pub fn is_flexible(api_key: i16, version: i16) -> bool {
    api_spec(api_key).is_some_and(|api| version >= api.flexible_from)
}

/// The version range each decoder supports, for the broker's ApiVersions table.
pub fn supported_versions(api_key: i16) -> Option<(i16, i16)> {
    api_spec(api_key).map(|api| (api.version_min, api.version_max))
}

/// Every api key the broker decodes, in table order (for building the ApiVersions answer).
pub fn supported_api_keys() -> impl Iterator<Item = i16> {
    APIS.iter().map(|api| api.key as i16)
}

/// Decodes the request header. `frame` is the whole request after the 4-byte size
/// prefix; on success it is advanced past the header, leaving the body.
///
/// Header v1 (api key, api version, correlation id, nullable client id) for classic
/// versions, v2 (plus tagged fields) for flexible ones. The client id stays a classic
/// nullable STRING even in v2. An unknown api key gets a v1 header so the broker still
/// learns the correlation id; [`decode_request`] then reports the key.
pub fn decode_header(frame: &mut Bytes) -> Result<RequestHeader, DecodeError> {
    let view = views::header(frame)?;
    let header = view.to_header(frame);
    bytes::Buf::advance(frame, view.len);
    Ok(header)
}

/// The decoding parameters of `api_key` at `version`, checked against the decoder's
/// range.
fn checked_version(api_key: i16, version: i16) -> Result<(&'static ApiSpec, Version), DecodeError> {
    let api = api_spec(api_key).ok_or(DecodeError::UnknownApiKey(api_key))?;
    if version < api.version_min || version > api.version_max {
        return Err(DecodeError::UnsupportedVersion { api_key, version });
    }
    let v = Version {
        number: version,
        flexible: version >= api.flexible_from,
    };
    Ok((api, v))
}

/// Decodes a Produce body at `version` into a view over `body`; also returns the bytes
/// it took (anything after is ignored, as in [`decode_request`]).
pub fn produce_view(
    version: i16,
    body: &[u8],
) -> Result<(views::ProduceView<'_>, usize), DecodeError> {
    let (_, v) = checked_version(ApiKey::Produce as i16, version)?;
    views::ProduceView::parse(body, v)
}

/// Decodes a Fetch body at `version` into a view over `body` (see [`produce_view`]).
pub fn fetch_view(version: i16, body: &[u8]) -> Result<(views::FetchView<'_>, usize), DecodeError> {
    let (_, v) = checked_version(ApiKey::Fetch as i16, version)?;
    views::FetchView::parse(body, v)
}

/// Decodes the body of request `api_key` at `version`. An unknown key gives
/// [`DecodeError::UnknownApiKey`], a version outside the decoder's range
/// [`DecodeError::UnsupportedVersion`].
///
/// Bytes left after a complete body are ignored, as Kafka ignores them: `body` is left
/// pointing at them.
pub fn decode_request(
    api_key: i16,
    version: i16,
    body: &mut Bytes,
) -> Result<Request, DecodeError> {
    let (api, v) = checked_version(api_key, version)?;
    match api.key {
        ApiKey::Produce => {
            let (view, used) = views::ProduceView::parse(body, v)?;
            let req = view.to_request(body);
            bytes::Buf::advance(body, used);
            return Ok(Request::Produce(req));
        }
        ApiKey::Fetch => {
            let (view, used) = views::FetchView::parse(body, v)?;
            let req = view.to_request(body);
            bytes::Buf::advance(body, used);
            return Ok(Request::Fetch(req));
        }
        _ => {}
    }
    let r = &mut Reader::new(body);
    Ok(match api.key {
        ApiKey::ApiVersions => Request::ApiVersions(client::api_versions(r, v)?),
        ApiKey::Metadata => Request::Metadata(client::metadata(r, v)?),
        ApiKey::DescribeCluster => Request::DescribeCluster(client::describe_cluster(r, v)?),
        ApiKey::InitProducerId => Request::InitProducerId(client::init_producer_id(r, v)?),
        ApiKey::ListOffsets => Request::ListOffsets(data::list_offsets(r, v)?),
        ApiKey::CreateTopics => Request::CreateTopics(admin::create_topics(r, v)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(admin::delete_topics(r, v)?),
        ApiKey::CreatePartitions => Request::CreatePartitions(admin::create_partitions(r, v)?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(admin::describe_configs(r, v)?),
        ApiKey::AlterConfigs => Request::AlterConfigs(admin::alter_configs(r, v)?),
        ApiKey::IncrementalAlterConfigs => {
            Request::IncrementalAlterConfigs(admin::incremental_alter_configs(r, v)?)
        }
        ApiKey::FindCoordinator => Request::FindCoordinator(group::find_coordinator(r, v)?),
        ApiKey::JoinGroup => Request::JoinGroup(group::join_group(r, v)?),
        ApiKey::SyncGroup => Request::SyncGroup(group::sync_group(r, v)?),
        ApiKey::Heartbeat => Request::Heartbeat(group::heartbeat(r, v)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(group::leave_group(r, v)?),
        ApiKey::OffsetCommit => Request::OffsetCommit(group::offset_commit(r, v)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(group::offset_fetch(r, v)?),
        ApiKey::ListGroups => Request::ListGroups(group::list_groups(r, v)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(group::describe_groups(r, v)?),
        ApiKey::DeleteGroups => Request::DeleteGroups(group::delete_groups(r, v)?),
        ApiKey::OffsetDelete => Request::OffsetDelete(group::offset_delete(r, v)?),
        ApiKey::DeleteRecords => Request::DeleteRecords(data::delete_records(r, v)?),
        ApiKey::DescribeAcls => Request::DescribeAcls(acl::describe_acls(r, v)?),
        ApiKey::CreateAcls => Request::CreateAcls(acl::create_acls(r, v)?),
        ApiKey::DeleteAcls => Request::DeleteAcls(acl::delete_acls(r, v)?),
        ApiKey::ConsumerGroupHeartbeat => {
            Request::ConsumerGroupHeartbeat(group::consumer_group_heartbeat(r, v)?)
        }
        ApiKey::ConsumerGroupDescribe => {
            Request::ConsumerGroupDescribe(group::consumer_group_describe(r, v)?)
        }
        ApiKey::AddPartitionsToTxn => {
            Request::AddPartitionsToTxn(txn::add_partitions_to_txn(r, v)?)
        }
        ApiKey::AddOffsetsToTxn => Request::AddOffsetsToTxn(txn::add_offsets_to_txn(r, v)?),
        ApiKey::EndTxn => Request::EndTxn(txn::end_txn(r, v)?),
        ApiKey::TxnOffsetCommit => Request::TxnOffsetCommit(txn::txn_offset_commit(r, v)?),
        ApiKey::DescribeTransactions => {
            Request::DescribeTransactions(txn::describe_transactions(r, v)?)
        }
        ApiKey::ListTransactions => Request::ListTransactions(txn::list_transactions(r, v)?),
        // The table and this match list the same apis; a key in one but not the
        // other is a bug here, reported rather than panicking.
        _ => return Err(DecodeError::UnknownApiKey(api_key)),
    })
}

/// The request version as the field decoders need it: the number for `if version >= N`
/// guards, and whether strings, arrays and tagged fields use the flexible encoding.
#[derive(Debug, Clone, Copy)]
struct Version {
    number: i16,
    flexible: bool,
}
