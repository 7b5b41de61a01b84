//! The request handlers: decoded Kafka requests in, encoded responses out.
//!
//! Knows storage and the protocol, not sockets: the data plane (`net`) hands each
//! request frame to [`Broker::handle`] and writes whatever it appended to `out`. A
//! Fetch that has to wait for data comes back as [`Outcome::Park`]; the data plane keeps
//! it and calls [`Broker::resume`] when woken (see [`Broker::wake_parked`]) or when the
//! request's deadline passes. Any request that must wait for an event (a Fetch for data,
//! later a JoinGroup for its rebalance) is a [`Parked`] variant.

mod handlers;
#[cfg(test)]
mod hot_tests;
mod limits;
pub mod metrics;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::*;
use tracing::debug;

pub use handlers::fetch::ParkedFetch;
pub use handlers::groups::{ParkedJoin, ParkedSync};

/// A request waiting for an event; answered by [`Broker::resume`].
#[derive(Debug)]
pub enum Parked {
    Fetch(ParkedFetch),
    Join(ParkedJoin),
    Sync(ParkedSync),
}

impl Parked {
    /// When the request is answered whatever happens.
    pub fn deadline(&self) -> Instant {
        match self {
            Parked::Fetch(f) => f.deadline,
            Parked::Join(j) => j.deadline,
            Parked::Sync(s) => s.deadline,
        }
    }
}

use crate::config::EffectiveConfig;
use crate::group::{Coordinator, Waker};
use crate::live::LiveToggles;
use crate::output::Output;
use crate::protocol::request::{self, DecodeError, Request};
use crate::protocol::response::{write_response, write_with_header_version};
use crate::storage::{Storage, StorageError, TopicConfig, TopicInfo};
use crate::txn::{TxnConfig, TxnCoordinator};

/// Kafka error codes used by the handlers (the one enum: `protocol::error`).
pub use crate::protocol::error::code;

/// Kafka's "authorized operations were not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// What the data plane knows about the connection a request came on, handed to
/// [`Broker::handle_on`]: the handlers see no sockets. `Copy` and allocation-free, so
/// the hot path pays nothing for it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnContext {
    /// The peer's address (DescribeGroups' `client_host`); `None` off the network
    /// (benches, fuzzing, unit tests).
    pub peer_ip: Option<std::net::IpAddr>,
}

impl ConnContext {
    /// The peer as Kafka writes `client_host` (Java's `InetAddress.toString()`:
    /// "/127.0.0.1"); empty when unknown.
    pub fn client_host(&self) -> String {
        self.peer_ip.map(|ip| format!("/{ip}")).unwrap_or_default()
    }
}

/// What happened to one request.
#[derive(Debug)]
pub enum Outcome {
    /// A response was appended to `out`.
    Responded,
    /// No response is due (Produce with acks=0).
    NoResponse,
    /// A Fetch waits for data; nothing was appended yet.
    Park(Box<Parked>),
}

/// A request the connection cannot survive: the data plane closes it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("malformed request: {0}")]
    Malformed(#[from] DecodeError),
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// The broker: configuration, storage and the little state the handlers share.
pub struct Broker {
    pub effective: EffectiveConfig,
    pub storage: Arc<Storage>,
    /// Host and port that Metadata reports.
    advertised: (String, i32),
    next_producer_id: AtomicI64,
    /// Tells the data plane that parked requests may be answerable (data appended);
    /// the group coordinator holds the same one for parked joins and syncs.
    wake: Waker,
    groups: Arc<Coordinator>,
    /// The transaction coordinator (in memory unless [`Broker::with_transactions`]).
    txn: Arc<TxnCoordinator>,
    pub started_at: Instant,
    /// Toggles that may change while running (`PUT /v1/config`); `net` reads them.
    pub live: LiveToggles,
    /// Request metrics, recorded in [`Broker::handle`] and read by `/metrics`.
    pub metrics: metrics::Metrics,
    /// Held while a topic or partitions are created, so that concurrent creations
    /// cannot pass `max_topics` together (limits.rs).
    topic_create_lock: std::sync::Mutex<()>,
}

impl Broker {
    /// Everything the handlers need, passed in: the storage, the group coordinator
    /// and the data plane's wake-up (`net::DataPlane::waker`, or `group::no_wake()`
    /// where nothing is parked), and the host and port Metadata reports.
    pub fn new(
        effective: EffectiveConfig,
        storage: Arc<Storage>,
        groups: Arc<Coordinator>,
        wake: Waker,
        advertised: (String, u16),
    ) -> Broker {
        // Producer ids must not repeat across restarts (the log keeps their sequence
        // state), so they start from the wall clock in microseconds.
        let pid_start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as i64);
        let live = LiveToggles::new(&effective.config);
        groups.set_topics(Arc::new(handlers::groups::StorageTopics(storage.clone())));
        let txn = Arc::new(TxnCoordinator::in_memory(TxnConfig {
            max_timeout_ms: effective.config.transaction_max_timeout_ms,
            max_ids: effective.config.max_transactional_ids,
        }));
        txn.set_markers(Arc::new(handlers::txn::StorageMarkers {
            storage: storage.clone(),
            groups: groups.clone(),
            wake: wake.clone(),
        }));
        Broker {
            effective,
            storage,
            advertised: (advertised.0, i32::from(advertised.1)),
            next_producer_id: AtomicI64::new(pid_start),
            wake,
            groups,
            txn,
            started_at: Instant::now(),
            live,
            metrics: metrics::Metrics::default(),
            topic_create_lock: std::sync::Mutex::new(()),
        }
    }

    /// Replaces the in-memory transaction coordinator with `txn` (opened on the data
    /// directory): hands it the marker writer, keeps the producer id allocator above
    /// every producer id it already knows, and finishes the transactions a restart
    /// interrupted (prepared ones completed, ongoing ones aborted).
    pub fn with_transactions(mut self, txn: Arc<TxnCoordinator>) -> std::io::Result<Broker> {
        txn.set_markers(Arc::new(handlers::txn::StorageMarkers {
            storage: self.storage.clone(),
            groups: self.groups.clone(),
            wake: self.wake.clone(),
        }));
        let above = txn.max_producer_id().saturating_add(1);
        self.next_producer_id.fetch_max(above, Ordering::Relaxed);
        txn.recover()?;
        self.txn = txn;
        Ok(self)
    }

    /// The transaction coordinator (its timer and the admin API read it).
    pub fn transactions(&self) -> &Arc<TxnCoordinator> {
        &self.txn
    }

    /// Tells the data plane that parked requests may now be answerable.
    pub fn wake_parked(&self) {
        (self.wake)();
    }

    /// Re-examines a parked request. Answers it (appending the response to `out`,
    /// returning true) when its event happened, its deadline passed, or on `force`
    /// (shutdown); otherwise appends nothing and returns false.
    pub fn resume(
        &self,
        parked: &mut Parked,
        out: &mut Output,
        force: bool,
    ) -> Result<bool, FrameError> {
        let out_before = out.len();
        let answered = match parked {
            Parked::Fetch(f) => self.resume_fetch(f, out, force),
            Parked::Join(j) => self.resume_join(j, out.bytes_mut(), force),
            Parked::Sync(s) => self.resume_sync(s, out.bytes_mut(), force),
        };
        self.metrics
            .add_bytes(0, out.len().saturating_sub(out_before));
        answered
    }

    fn node_id(&self) -> i32 {
        self.effective.config.node_id
    }

    /// Handles one request frame (everything after the 4-byte size prefix) and appends
    /// the framed response to `out`; records its service time, bytes and outcome.
    pub fn handle(&self, frame: Bytes, out: &mut Output) -> Result<Outcome, FrameError> {
        self.handle_on(&ConnContext::default(), frame, out)
    }

    /// [`Broker::handle`] for a request that came on the connection `conn`.
    pub fn handle_on(
        &self,
        conn: &ConnContext,
        frame: Bytes,
        out: &mut Output,
    ) -> Result<Outcome, FrameError> {
        const SIZE_PREFIX_BYTES: usize = 4;
        let started = Instant::now();
        // The API key is the frame's first two bytes; a shorter frame fails decoding.
        let api_key = match frame.get(..2) {
            Some(k) => i16::from_be_bytes([k[0], k[1]]),
            None => -1,
        };
        let (in_bytes, out_before) = (frame.len() + SIZE_PREFIX_BYTES, out.len());
        let outcome = self.handle_request(conn, frame, out);
        self.metrics
            .record_request(api_key, started.elapsed(), outcome.is_err());
        self.metrics
            .add_bytes(in_bytes, out.len().saturating_sub(out_before));
        if matches!(outcome, Ok(Outcome::Park(_))) {
            self.metrics.parked_total.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    fn handle_request(
        &self,
        conn: &ConnContext,
        frame: Bytes,
        output: &mut Output,
    ) -> Result<Outcome, FrameError> {
        let header = request::views::header(&frame)?;
        let (api_key, version, cid) = (header.api_key, header.api_version, header.correlation_id);

        // One table (`protocol::request::APIS`) says what is decoded, dispatched here and
        // advertised by ApiVersions.
        let range = request::supported_versions(api_key);
        let in_range = range.is_some_and(|(lo, hi)| (lo..=hi).contains(&version));
        if api_key == ApiKey::ApiVersions as i16 && !in_range {
            // Kafka answers an unknown ApiVersions version with a v0 body so that any
            // client can read the error and the supported list.
            let body = self
                .api_versions()
                .with_error_code(code::UNSUPPORTED_VERSION);
            write_with_header_version(output.bytes_mut(), cid, 0, 0, &body).map_err(enc)?;
            return Ok(Outcome::Responded);
        }
        if !in_range {
            return Err(FrameError::Malformed(match range {
                Some(_) => DecodeError::UnsupportedVersion { api_key, version },
                None => DecodeError::UnknownApiKey(api_key),
            }));
        }
        debug!(api_key, version, cid, "request");
        // The hot apis decode into views over the frame and encode their responses
        // straight into the output: no allocation on their way. A Fetch may splice
        // record bytes into it (`fetch_zero_copy`); every other response is owned bytes.
        let body_at = header.len;
        let body = frame.get(body_at..).unwrap_or_default();
        if api_key == ApiKey::Fetch as i16 {
            let (req, _) = request::fetch_view(version, body)?;
            return self.fetch_or_park(&req, cid, &frame, body_at, output);
        }
        let out = output.bytes_mut();
        if api_key == ApiKey::Produce as i16 {
            let (req, _) = request::produce_view(version, body)?;
            let flexible = request::is_flexible(api_key, version);
            return self.produce(req, version, cid, flexible, out);
        }
        let mut frame_body = frame.slice(body_at..);
        let req = request::decode_request(api_key, version, &mut frame_body)?;
        let v = version;
        match req {
            Request::ApiVersions(_) => write_response(out, cid, v, &self.api_versions()),
            Request::Metadata(r) => write_response(out, cid, v, &self.metadata(r, v)),
            // Decoded as views above; the owned structs exist for tests and fuzzing.
            Request::Produce(_) | Request::Fetch(_) => {
                return Err(FrameError::Malformed(DecodeError::UnknownApiKey(api_key)))
            }
            Request::ListOffsets(r) => write_response(out, cid, v, &self.list_offsets(r, v)),
            Request::CreateTopics(r) => write_response(out, cid, v, &self.create_topics(r, v)),
            Request::DeleteTopics(r) => write_response(out, cid, v, &self.delete_topics(r, v)),
            Request::CreatePartitions(r) => write_response(out, cid, v, &self.create_partitions(r)),
            Request::DescribeConfigs(r) => write_response(out, cid, v, &self.describe_configs(r)),
            Request::AlterConfigs(r) => write_response(out, cid, v, &self.alter_configs(r)),
            Request::IncrementalAlterConfigs(r) => {
                write_response(out, cid, v, &self.incremental_alter_configs(r))
            }
            Request::DescribeCluster(r) => write_response(out, cid, v, &self.describe_cluster(r)),
            Request::InitProducerId(r) => write_response(out, cid, v, &self.init_producer_id(r, v)),
            Request::FindCoordinator(r) => {
                write_response(out, cid, v, &self.find_coordinator(r, v))
            }
            Request::JoinGroup(r) => {
                let client_id = header.client_id.unwrap_or("");
                return self.join_group(r, v, cid, (client_id, conn), out);
            }
            Request::SyncGroup(r) => return self.sync_group(r, v, cid, out),
            Request::Heartbeat(r) => write_response(out, cid, v, &self.heartbeat(r)),
            Request::LeaveGroup(r) => write_response(out, cid, v, &self.leave_group(r, v)),
            Request::OffsetCommit(r) => write_response(out, cid, v, &self.offset_commit(r, v)),
            Request::OffsetFetch(r) => write_response(out, cid, v, &self.offset_fetch(r, v)),
            Request::ListGroups(r) => write_response(out, cid, v, &self.list_groups(r, v)),
            Request::DescribeGroups(r) => write_response(out, cid, v, &self.describe_groups(r, v)),
            Request::DeleteGroups(r) => write_response(out, cid, v, &self.delete_groups(r)),
            Request::OffsetDelete(r) => write_response(out, cid, v, &self.offset_delete(r)),
            Request::DeleteRecords(r) => write_response(out, cid, v, &self.delete_records(r)),
            Request::DescribeAcls(_) => write_response(out, cid, v, &self.describe_acls()),
            Request::CreateAcls(r) => write_response(out, cid, v, &self.create_acls(&r)),
            Request::DeleteAcls(r) => write_response(out, cid, v, &self.delete_acls(&r)),
            Request::ConsumerGroupHeartbeat(r) => {
                let client_id = header.client_id.unwrap_or("");
                let resp = self.consumer_group_heartbeat(r, (client_id, conn));
                write_response(out, cid, v, &resp)
            }
            Request::ConsumerGroupDescribe(r) => {
                write_response(out, cid, v, &self.consumer_group_describe(r))
            }
            Request::AddPartitionsToTxn(r) => {
                write_response(out, cid, v, &self.add_partitions_to_txn(r, v))
            }
            Request::AddOffsetsToTxn(r) => {
                write_response(out, cid, v, &self.add_offsets_to_txn(r, v))
            }
            Request::EndTxn(r) => write_response(out, cid, v, &self.end_txn(r, v)),
            Request::TxnOffsetCommit(r) => {
                write_response(out, cid, v, &self.txn_offset_commit(r, v))
            }
            Request::DescribeTransactions(r) => {
                write_response(out, cid, v, &self.describe_transactions(r))
            }
            Request::ListTransactions(r) => {
                write_response(out, cid, v, &self.list_transactions(r, v))
            }
            #[allow(unreachable_patterns)]
            _ => return Err(FrameError::Malformed(DecodeError::UnknownApiKey(api_key))),
        }
        .map_err(enc)?;
        Ok(Outcome::Responded)
    }

    /// Looks a topic up by name, creating it when allowed. Errors are Kafka codes.
    fn topic_for_request(&self, name: &str, allow_create: bool) -> Result<TopicInfo, i16> {
        if let Some(info) = self.storage.topic(name) {
            return Ok(info);
        }
        if crate::storage::validate_topic_name(name).is_err() {
            return Err(code::INVALID_TOPIC_EXCEPTION);
        }
        if !allow_create {
            return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
        }
        self.auto_create_topic(name)
            .map_err(|e| storage_error_code(&e))
    }

    /// Auto-creation of a topic a client named (Metadata, Produce, the admin API's
    /// produce): `default_partitions`, no configs, within `max_topics`. A topic that
    /// another connection created first is returned as it is. The caller checks
    /// `auto_create_topics`.
    pub(crate) fn auto_create_topic(&self, name: &str) -> Result<TopicInfo, StorageError> {
        let partitions = self.effective.config.default_partitions;
        match self.create_topic(name, partitions, TopicConfig::default()) {
            Ok(info) => {
                tracing::info!(topic = name, partitions, "auto-created topic");
                Ok(info)
            }
            // Another connection created it first.
            Err(StorageError::TopicExists(_)) => self
                .storage
                .topic(name)
                .ok_or(StorageError::UnknownTopicOrPartition),
            Err(e) => Err(e),
        }
    }
}

fn enc(e: anyhow::Error) -> FrameError {
    FrameError::Encode(e.to_string())
}

/// The Kafka error code for a storage-level failure.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::InvalidTopic(..) => code::INVALID_TOPIC_EXCEPTION,
        StorageError::TopicExists(_) => code::TOPIC_ALREADY_EXISTS,
        StorageError::UnknownTopicOrPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
        StorageError::InvalidPartitions(_) | StorageError::TooManyPartitions { .. } => {
            code::INVALID_PARTITIONS
        }
        StorageError::TooManyTopics { .. } => code::POLICY_VIOLATION,
        StorageError::InvalidConfig(_) => code::INVALID_CONFIG,
        StorageError::Io(_) | StorageError::Corrupt { .. } => code::KAFKA_STORAGE_ERROR,
    }
}
