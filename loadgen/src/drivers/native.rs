//! The native driver: a minimal Kafka client on the `kafka-protocol` codec, one TCP
//! connection, requests encoded here and responses decoded here. It trusts the broker
//! enough to decode with the crate's decoders, but never panics on what it reads.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest, FetchResponse,
    ListOffsetsRequest, MetadataRequest, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::error::usage;
use crate::runner::{Checker, Encoder};
use crate::wire::{self, frame, patch_request_correlation_id, FrameReader, PollMode};

pub const CLIENT_ID: &str = "loadgen";
pub const API_VERSIONS_VERSION: i16 = 3;
pub const METADATA_VERSION: i16 = 9;
pub const PRODUCE_VERSION: i16 = 9;
/// The last Fetch version that names topics (13+ use topic ids).
pub const FETCH_VERSION: i16 = 12;
pub const LIST_OFFSETS_VERSION: i16 = 5;
/// CreateTopics v4+ accepts replication factor -1 (the broker's default).
pub const CREATE_TOPICS_VERSION: i16 = 5;
/// Broker-side timeout of CreateTopics.
const CREATE_TOPICS_TIMEOUT_MS: i32 = 30_000;
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// How long to wait for the TCP connection to a broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a setup call (ApiVersions, Metadata, ListOffsets) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Metadata right after auto-creating a topic may report no leader yet: retry this long.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Broker-side timeout carried in Produce requests.
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// ListOffsets timestamp meaning "the log end offset".
const LATEST_TIMESTAMP: i64 = -1;
/// Kafka error codes the setup retries on (the topic is being created).
const LEADER_NOT_AVAILABLE: i16 = 5;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Size of a record batch header up to and including its length field.
const BATCH_LENGTH_END: usize = 12;

/// Appends one request frame.
pub fn encode_request<R: Request>(
    out: &mut Vec<u8>,
    cid: i32,
    version: i16,
    req: &R,
) -> anyhow::Result<()> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(cid)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    frame(out, |b| {
        header.encode(b, R::header_version(version))?;
        req.encode(b, version)
    })
}

/// Decodes a response payload (after the length prefix) to (correlation id, body).
pub fn decode_response<R: Request>(
    payload: &[u8],
    version: i16,
) -> anyhow::Result<(i32, R::Response)> {
    let mut b = Bytes::copy_from_slice(payload);
    let header = ResponseHeader::decode(&mut b, R::Response::header_version(version))
        .context("decoding a response header")?;
    let body = R::Response::decode(&mut b, version)
        .with_context(|| format!("decoding a response to api key {} v{version}", R::KEY))?;
    Ok((header.correlation_id, body))
}

/// Resolves and connects; an address that does not resolve or answer is a usage error.
pub fn connect(addr: &str) -> anyhow::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| usage(format!("bootstrap address {addr:?} does not resolve: {e}")))?
        .collect();
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true).context("setting TCP_NODELAY")?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(usage(match last {
        Some(e) => format!("broker at {addr:?} is unreachable: {e}"),
        None => format!("bootstrap address {addr:?} resolves to nothing"),
    }))
}

/// One connection used synchronously (setup calls), then handed to the runner.
pub struct Client {
    reader: FrameReader,
    cid: i32,
    out: Vec<u8>,
    pub addr: String,
}

impl Client {
    pub fn connect(addr: &str, mode: PollMode) -> anyhow::Result<Client> {
        let stream = connect(addr)?;
        Ok(Client {
            reader: FrameReader::new(stream, mode).context("configuring the socket")?,
            cid: 0,
            out: Vec::new(),
            addr: addr.to_string(),
        })
    }

    /// Sends `req` and waits for its response.
    pub fn call<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        self.cid = self.cid.wrapping_add(1) & i32::MAX;
        self.out.clear();
        encode_request(&mut self.out, self.cid, version, req)?;
        wire::write_all(self.reader.stream(), &self.out)
            .with_context(|| format!("sending to {}", self.addr))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        self.reader
            .stream()
            .set_read_timeout(Some(CALL_TIMEOUT))
            .context("setting the read timeout")?;
        let payload = self.reader.read_frame(Some(deadline)).with_context(|| {
            format!(
                "waiting for the answer to api key {} from {}",
                R::KEY,
                self.addr
            )
        })?;
        let (cid, resp) = decode_response::<R>(payload, version)?;
        if cid != self.cid {
            bail!("answer with correlation id {cid}, expected {}", self.cid);
        }
        Ok(resp)
    }

    pub fn into_reader(self) -> FrameReader {
        self.reader
    }
}

/// Where a partition lives.
#[derive(Debug, Clone)]
pub struct Target {
    pub topic: String,
    pub partition: i32,
    pub leader_addr: String,
}

/// Checks that the broker speaks the versions this driver uses.
fn check_api_versions(client: &mut Client) -> anyhow::Result<()> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let resp = client.call(&req, API_VERSIONS_VERSION)?;
    if resp.error_code != 0 {
        bail!("ApiVersions failed with error code {}", resp.error_code);
    }
    for (key, version) in [
        (ApiKey::Produce, PRODUCE_VERSION),
        (ApiKey::Fetch, FETCH_VERSION),
        (ApiKey::Metadata, METADATA_VERSION),
        (ApiKey::ListOffsets, LIST_OFFSETS_VERSION),
    ] {
        let ok = resp
            .api_keys
            .iter()
            .any(|k| k.api_key == key as i16 && (k.min_version..=k.max_version).contains(&version));
        if !ok {
            bail!("broker {} does not support {key:?} v{version}", client.addr);
        }
    }
    Ok(())
}

/// Which partitions a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSpec {
    /// One partition, by number (of an existing or auto-created topic).
    One(i32),
    /// Partitions 0..n; the topic is created with n partitions if it does not exist.
    First(i32),
}

/// Creates `topics` with `partitions` partitions (replication: the broker's default);
/// topics that already exist are left alone (Metadata then checks their size).
fn create_topics(client: &mut Client, topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(CREATE_TOPICS_TIMEOUT_MS)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.clone())))
                        .with_num_partitions(partitions)
                        .with_replication_factor(-1)
                })
                .collect(),
        );
    let resp = client.call(&req, CREATE_TOPICS_VERSION)?;
    for r in &resp.topics {
        if !matches!(r.error_code, 0 | TOPIC_ALREADY_EXISTS) {
            bail!(
                "creating topic {:?} with {partitions} partitions failed with error code {}: {}",
                r.name.0.as_str(),
                r.error_code,
                r.error_message.as_ref().map_or("", |m| m.as_str())
            );
        }
    }
    Ok(())
}

/// Connects to `bootstrap`, creates the topics when a partition count is asked for, and
/// finds the leader of every partition with Metadata (waiting for leaders of new topics).
/// Targets come topic by topic, partitions in order.
pub fn discover(
    bootstrap: &str,
    topics: &[String],
    spec: &PartitionSpec,
) -> anyhow::Result<Vec<Target>> {
    let mut client = Client::connect(bootstrap, PollMode::Blocking)?;
    check_api_versions(&mut client)?;
    if let PartitionSpec::First(n) = spec {
        create_topics(&mut client, topics, *n)?;
    }
    let req = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(true);
    let started = Instant::now();
    'retry: loop {
        let resp = client.call(&req, METADATA_VERSION)?;
        let mut targets = Vec::new();
        for topic in topics {
            let t = resp
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                .ok_or_else(|| anyhow!("Metadata answer does not mention topic {topic:?}"))?;
            let retryable = matches!(
                t.error_code,
                LEADER_NOT_AVAILABLE | UNKNOWN_TOPIC_OR_PARTITION
            );
            if t.error_code != 0 && !retryable {
                bail!(
                    "Metadata for topic {topic:?} failed with error code {}",
                    t.error_code
                );
            }
            let wanted: Vec<i32> = match spec {
                PartitionSpec::One(p) => vec![*p],
                PartitionSpec::First(n) => (0..*n).collect(),
            };
            let known = t.error_code == 0 && !t.partitions.is_empty();
            for partition in wanted {
                let p = t.partitions.iter().find(|p| p.partition_index == partition);
                match p {
                    Some(p) if p.error_code == 0 && p.leader_id.0 >= 0 => {
                        let leader = resp
                            .brokers
                            .iter()
                            .find(|b| b.node_id == p.leader_id)
                            .ok_or_else(|| {
                                anyhow!("leader {} not among the brokers", p.leader_id.0)
                            })?;
                        targets.push(Target {
                            topic: topic.clone(),
                            partition,
                            leader_addr: format!("{}:{}", leader.host.as_str(), leader.port),
                        });
                    }
                    None if known => {
                        return Err(usage(format!(
                            "topic {topic:?} has {} partitions; partition {partition} does not \
                             exist (use another --topic, or delete the topic)",
                            t.partitions.len()
                        )));
                    }
                    _ => {
                        if started.elapsed() > LEADER_WAIT {
                            bail!(
                                "no leader for {topic:?} partition {partition} after {LEADER_WAIT:?}"
                            );
                        }
                        std::thread::sleep(Duration::from_millis(50));
                        continue 'retry;
                    }
                }
            }
        }
        return Ok(targets);
    }
}

/// A checked connection to a partition leader (an address from Metadata).
pub fn connect_leader(addr: &str, mode: PollMode) -> anyhow::Result<Client> {
    let mut client = Client::connect(addr, mode)?;
    check_api_versions(&mut client)?;
    Ok(client)
}

/// The log end offsets of `targets` (where records produced from now on will land),
/// in the order given. All targets must have `client`'s broker as leader.
pub fn log_end_offsets(client: &mut Client, targets: &[Target]) -> anyhow::Result<Vec<i64>> {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for t in targets {
        let p = ListOffsetsPartition::default()
            .with_partition_index(t.partition)
            .with_current_leader_epoch(-1)
            .with_timestamp(LATEST_TIMESTAMP);
        match topics.iter_mut().find(|x| x.name.0.as_str() == t.topic) {
            Some(x) => x.partitions.push(p),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let resp = client.call(&req, LIST_OFFSETS_VERSION)?;
    targets
        .iter()
        .map(|t| {
            let p = resp
                .topics
                .iter()
                .filter(|x| x.name.0.as_str() == t.topic)
                .flat_map(|x| x.partitions.iter())
                .find(|p| p.partition_index == t.partition)
                .ok_or_else(|| {
                    anyhow!(
                        "ListOffsets answer does not mention {}/{}",
                        t.topic,
                        t.partition
                    )
                })?;
            if p.error_code != 0 {
                bail!(
                    "ListOffsets of {}/{} failed with error code {}",
                    t.topic,
                    t.partition,
                    p.error_code
                );
            }
            Ok(p.offset)
        })
        .collect()
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Encodes one uncompressed v2 record batch holding `values` (no key, no producer id).
pub fn encode_batch(values: &[Bytes]) -> anyhow::Result<Bytes> {
    encode_keyed_batch(values, None)
}

/// Encodes one uncompressed v2 record batch holding `values`, all with `key`.
pub fn encode_keyed_batch(values: &[Bytes], key: Option<Bytes>) -> anyhow::Result<Bytes> {
    let timestamp = wall_clock_ms();
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol's encoder starts a new batch whenever offset - sequence
            // changes, so a constant NO_SEQUENCE would give one batch per record (which
            // Apache Kafka refuses in Produce v3+: INVALID_RECORD). Sequences counting up
            // from NO_SEQUENCE keep one batch, whose base sequence stays NO_SEQUENCE.
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp,
            key: key.clone(),
            value: Some(v.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).context("encoding a record batch")?;
    Ok(buf.freeze())
}

/// A Produce request carrying one batch to one partition.
pub fn produce_request(target: &Target, acks: i16, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(target.topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(target.partition)
                .with_records(Some(batch))])])
}

/// A complete Produce frame (correlation id 0, to be patched) for one batch of `records`
/// records of `size` zero bytes: what the produce workload and the floor send.
pub fn produce_frame(
    target: &Target,
    acks: i16,
    size: usize,
    records: usize,
) -> anyhow::Result<Vec<u8>> {
    let values = vec![Bytes::from(vec![0u8; size]); records];
    let batch = encode_batch(&values)?;
    let mut out = Vec::new();
    encode_request(
        &mut out,
        0,
        PRODUCE_VERSION,
        &produce_request(target, acks, batch),
    )?;
    Ok(out)
}

/// A complete successful Produce response frame for `target`: the size the floor answers.
pub fn produce_response_frame(target: &Target) -> anyhow::Result<Vec<u8>> {
    let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_string(target.topic.clone())))
        .with_partition_responses(vec![PartitionProduceResponse::default()
            .with_index(target.partition)
            .with_base_offset(0)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(0)])]);
    let mut out = Vec::new();
    frame(&mut out, |b| {
        ResponseHeader::default()
            .with_correlation_id(0)
            .encode(b, ProduceResponse::header_version(PRODUCE_VERSION))?;
        resp.encode(b, PRODUCE_VERSION)
    })?;
    Ok(out)
}

/// Records past which the fetch floor's answers never reach the high watermark.
const FETCH_FLOOR_HIGH_WATERMARK: i64 = i64::MAX / 2;

/// A Fetch v12 response frame for `target` holding one record batch (`batch`, as the
/// fetch backlog is produced), and where that batch's base offset sits in the frame, so
/// that the fetch floor can answer each Fetch with the next records.
pub fn fetch_response_frame(target: &Target, batch: &Bytes) -> anyhow::Result<(Vec<u8>, usize)> {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_string(target.topic.clone())))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(target.partition)
            .with_high_watermark(FETCH_FLOOR_HIGH_WATERMARK)
            .with_last_stable_offset(FETCH_FLOOR_HIGH_WATERMARK)
            .with_log_start_offset(0)
            .with_records(Some(batch.clone()))])]);
    let mut out = Vec::new();
    frame(&mut out, |b| {
        ResponseHeader::default()
            .with_correlation_id(0)
            .encode(b, FetchResponse::header_version(FETCH_VERSION))?;
        resp.encode(b, FETCH_VERSION)
    })?;
    // The batch is copied whole into the frame: find it by its header (base offset,
    // length, epoch, magic, CRC, …), which is unique in the frame.
    let head = &batch[..batch.len().min(BATCH_LENGTH_END + 49)];
    let at = out
        .windows(head.len())
        .position(|w| w == head)
        .context("the record batch is not in the encoded Fetch response")?;
    Ok((out, at))
}

/// Sends the same pre-encoded request every time, patching only the correlation id: the
/// client's per-request cost is a 4-byte write and the send system call.
pub struct FixedFrame {
    pub frame: Vec<u8>,
    pub payload_bytes: u64,
}

impl Encoder for FixedFrame {
    fn encode(&mut self, cid: i32, _: u64, _: u64, out: &mut Vec<u8>) -> anyhow::Result<()> {
        out.extend_from_slice(&self.frame);
        patch_request_correlation_id(out, cid);
        Ok(())
    }

    fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }
}

/// Produce outcome per partition: the base offset or the error code.
pub fn produce_outcome(resp: &ProduceResponse) -> Vec<(i32, Result<i64, i16>)> {
    resp.responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| {
            let r = if p.error_code == 0 {
                Ok(p.base_offset)
            } else {
                Err(p.error_code)
            };
            (p.index, r)
        })
        .collect()
}

/// Counts a Produce response with any partition error (or none at all) as an error.
#[derive(Default)]
pub struct ProduceChecker {
    /// First few error codes seen, for the report.
    pub first_errors: Vec<i16>,
}

impl Checker for ProduceChecker {
    fn check(&mut self, payload: &[u8]) -> anyhow::Result<bool> {
        let (_, resp) = decode_response::<ProduceRequest>(payload, PRODUCE_VERSION)?;
        let outcome = produce_outcome(&resp);
        let error = outcome.iter().find_map(|(_, r)| r.err());
        if let Some(code) = error {
            if self.first_errors.len() < 10 {
                self.first_errors.push(code);
                eprintln!("loadgen: produce error code {code}");
            }
        }
        Ok(!outcome.is_empty() && error.is_none())
    }
}

/// A Fetch request for several partitions, each from its own offset.
pub fn fetch_request(parts: &[(Target, i64)], max_wait_ms: i32, max_bytes: i32) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (t, offset) in parts {
        let p = FetchPartition::default()
            .with_partition(t.partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(*offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(max_bytes);
        match topics.iter_mut().find(|x| x.topic.0.as_str() == t.topic) {
            Some(x) => x.partitions.push(p),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// One fetched (non-control) record.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub offset: i64,
    pub value: Option<Bytes>,
}

/// The records of one partition in a Fetch response, in log order. A truncated batch at
/// the end (the broker may cut at max_bytes) is dropped: it is fetched again next time.
pub fn fetched_records(resp: &FetchResponse, target: &Target) -> anyhow::Result<Vec<Fetched>> {
    if resp.error_code != 0 {
        bail!("Fetch failed with error code {}", resp.error_code);
    }
    let mut out = Vec::new();
    for t in &resp.responses {
        if t.topic.0.as_str() != target.topic {
            continue;
        }
        for p in t
            .partitions
            .iter()
            .filter(|p| p.partition_index == target.partition)
        {
            if p.error_code != 0 {
                bail!(
                    "Fetch of partition {} failed with error code {}",
                    target.partition,
                    p.error_code
                );
            }
            let Some(records) = &p.records else { continue };
            let mut rest = records.clone();
            while rest.len() >= BATCH_LENGTH_END {
                let batch_len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
                if batch_len < 0 {
                    bail!("record batch with negative length {batch_len}");
                }
                let total = BATCH_LENGTH_END + batch_len as usize;
                if rest.len() < total {
                    break;
                }
                let mut batch = rest.split_to(total);
                if batch_is_plain(&batch) {
                    plain_batch_records(&batch, &mut out).context("decoding a record batch")?;
                    continue;
                }
                let set =
                    RecordBatchDecoder::decode(&mut batch).context("decoding a record batch")?;
                out.extend(
                    set.records
                        .into_iter()
                        .filter(|r| !r.control)
                        .map(|r| Fetched {
                            offset: r.offset,
                            value: r.value,
                        }),
                );
            }
            rest.advance(rest.len());
        }
    }
    Ok(out)
}

/// Size of a v2 record batch header (base offset … record count).
const BATCH_HEADER_BYTES: usize = 61;
const BATCH_MAGIC_AT: usize = 16;
const BATCH_CRC_AT: usize = 17;
/// The CRC covers the batch from its attributes to its end.
const BATCH_ATTRIBUTES_AT: usize = 21;
const BATCH_RECORD_COUNT_AT: usize = 57;
/// Attribute bits: compression codec, and the control flag.
const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_CONTROL: i16 = 0x20;

/// A v2 batch that the lean decoder reads: uncompressed (compressed batches, which
/// loadgen never produces, go through kafka-protocol's decoder).
fn batch_is_plain(batch: &[u8]) -> bool {
    batch.len() >= BATCH_HEADER_BYTES
        && batch[BATCH_MAGIC_AT] == 2
        && i16::from_be_bytes([batch[BATCH_ATTRIBUTES_AT], batch[BATCH_ATTRIBUTES_AT + 1]])
            & ATTR_COMPRESSION_MASK
            == 0
}

/// The records of one uncompressed v2 batch: CRC32C checked as a consumer with
/// check.crcs does, each record's offset and value (a slice of the response, no copy, no
/// allocation per record); a control batch gives none. The per-record decode of
/// kafka-protocol (a Vec, Bytes and a header map per record) cost the measuring client
/// as much as the broker's own work per Fetch.
fn plain_batch_records(batch: &Bytes, out: &mut Vec<Fetched>) -> anyhow::Result<()> {
    let be32 = |at: usize| i32::from_be_bytes(batch[at..at + 4].try_into().expect("4 bytes"));
    let stored = be32(BATCH_CRC_AT) as u32;
    // CRC-32C (Castagnoli = iSCSI) by crc-fast, as the broker checks it (crc32c, the
    // tests' oracle, is slower on batches of a MiB).
    let computed = crc_fast::checksum(
        crc_fast::CrcAlgorithm::Crc32Iscsi,
        &batch[BATCH_ATTRIBUTES_AT..],
    ) as u32;
    if stored != computed {
        bail!("record batch CRC {stored:#010x}, computed {computed:#010x}");
    }
    let attributes =
        i16::from_be_bytes([batch[BATCH_ATTRIBUTES_AT], batch[BATCH_ATTRIBUTES_AT + 1]]);
    if attributes & ATTR_CONTROL != 0 {
        return Ok(());
    }
    let base_offset = i64::from_be_bytes(batch[0..8].try_into().expect("8 bytes"));
    let count = be32(BATCH_RECORD_COUNT_AT);
    let mut at = BATCH_HEADER_BYTES;
    let mut r = Reader {
        buf: batch,
        at: &mut at,
    };
    for _ in 0..count.max(0) {
        let len = usize::try_from(r.varint()?).context("negative record length")?;
        let end = r.at.checked_add(len).filter(|&e| e <= batch.len());
        let end = end.context("record runs past its batch")?;
        r.skip(1)?; // attributes
        r.varint()?; // timestamp delta (a varlong: same encoding)
        let offset_delta = r.varint()?;
        let key_len = r.varint()?;
        if key_len > 0 {
            r.skip(key_len as usize)?;
        }
        let value_len = r.varint()?;
        let value = if value_len >= 0 {
            let start = *r.at;
            r.skip(value_len as usize)?;
            Some(batch.slice(start..*r.at))
        } else {
            None
        };
        *r.at = end; // headers: not needed
        out.push(Fetched {
            offset: base_offset + offset_delta,
            value,
        });
    }
    Ok(())
}

/// A bounds-checked cursor over a record batch.
struct Reader<'a> {
    buf: &'a [u8],
    at: &'a mut usize,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> anyhow::Result<()> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        *self.at = end.context("record field runs past its batch")?;
        Ok(())
    }

    /// A zigzag varint or varlong.
    fn varint(&mut self) -> anyhow::Result<i64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(*self.at)
                .context("varint runs past its batch")?;
            *self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        bail!("varint longer than 10 bytes")
    }
}

/// Produces one record per request from a message source (target, key and value per
/// message): keyed, multi-partition and verified workloads.
pub struct MessageEncoder {
    pub messages: crate::shape::Messages,
    pub acks: i16,
    size: usize,
}

impl MessageEncoder {
    pub fn new(messages: crate::shape::Messages, acks: i16, size: usize) -> Self {
        MessageEncoder {
            messages,
            acks,
            size,
        }
    }
}

impl Encoder for MessageEncoder {
    fn encode(
        &mut self,
        cid: i32,
        index: u64,
        intended_ns: u64,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        let t = self.messages.next(index, intended_ns);
        let key = self.messages.key().map(Bytes::copy_from_slice);
        let batch = encode_keyed_batch(&[Bytes::copy_from_slice(&self.messages.value)], key)?;
        encode_request(
            out,
            cid,
            PRODUCE_VERSION,
            &produce_request(&self.messages.targets[t], self.acks, batch),
        )
    }

    fn payload_bytes(&self) -> u64 {
        self.size as u64
    }
}

/// Pre-encoded frames, one per target, sent in turn with only the correlation id
/// patched: unkeyed multi-partition produce costs the client no encoding either.
pub struct RoundRobinFrames {
    pub frames: Vec<Vec<u8>>,
    pub payload_bytes: u64,
}

impl Encoder for RoundRobinFrames {
    fn encode(&mut self, cid: i32, index: u64, _: u64, out: &mut Vec<u8>) -> anyhow::Result<()> {
        let f = &self.frames[(index % self.frames.len() as u64) as usize];
        out.extend_from_slice(f);
        patch_request_correlation_id(out, cid);
        Ok(())
    }

    fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn a_batch_of_values_is_one_record_batch() {
        let values: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 10])).collect();
        let buf = encode_batch(&values).unwrap();
        // v2 batch header: baseOffset (8), batchLength (4), then 49 more bytes to the
        // records count; base sequence at 53..57.
        let batch_length = i32::from_be_bytes(buf[8..12].try_into().unwrap()) as usize;
        assert_eq!(12 + batch_length, buf.len(), "exactly one batch");
        let base_sequence = i32::from_be_bytes(buf[53..57].try_into().unwrap());
        assert_eq!(base_sequence, NO_SEQUENCE);
        let count = i32::from_be_bytes(buf[57..61].try_into().unwrap());
        assert_eq!(count, 5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch of records with keys, null values, headers and an offset base, by
    /// kafka-protocol's encoder (the oracle).
    fn oracle_batch(base: i64, n: usize, control: bool) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let mut headers = IndexMap::new();
                if i % 3 == 0 {
                    headers.insert(
                        StrBytes::from_static_str("h"),
                        Some(Bytes::from(vec![7u8; i])),
                    );
                }
                Record {
                    transactional: false,
                    control,
                    delete_horizon: false,
                    partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                    producer_id: NO_PRODUCER_ID,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    timestamp_type: TimestampType::Creation,
                    offset: base + i as i64,
                    sequence: NO_SEQUENCE.wrapping_add(i as i32),
                    timestamp: 1_700_000_000_000 + i as i64 * 1000,
                    key: (i % 2 == 0).then(|| Bytes::from(format!("key-{i}"))),
                    value: (i % 5 != 4).then(|| Bytes::from(vec![i as u8; i * 37 % 300])),
                    headers,
                }
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.freeze()
    }

    #[test]
    fn lean_batch_decode_matches_kafka_protocol() {
        for (base, n) in [(0, 1), (5, 2), (1000, 17), (1 << 40, 300)] {
            let batch = oracle_batch(base, n, false);
            assert!(batch_is_plain(&batch));
            let mut lean = Vec::new();
            plain_batch_records(&batch, &mut lean).unwrap();
            let set = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
            assert_eq!(lean.len(), set.records.len());
            for (l, o) in lean.iter().zip(&set.records) {
                assert_eq!((l.offset, &l.value), (o.offset, &o.value));
            }
        }
    }

    #[test]
    fn lean_batch_decode_refuses_bad_crc_and_truncation_and_skips_control() {
        let batch = oracle_batch(0, 10, false);
        let mut bad = batch.to_vec();
        *bad.last_mut().unwrap() ^= 1;
        let e = plain_batch_records(&Bytes::from(bad), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("CRC"), "{e}");
        // A record count larger than the records present, with a valid CRC.
        let mut short = batch.to_vec();
        short[BATCH_RECORD_COUNT_AT..BATCH_RECORD_COUNT_AT + 4]
            .copy_from_slice(&11i32.to_be_bytes());
        let crc = crc32c::crc32c(&short[BATCH_ATTRIBUTES_AT..]);
        short[BATCH_CRC_AT..BATCH_CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(plain_batch_records(&Bytes::from(short), &mut Vec::new()).is_err());
        let control = oracle_batch(0, 1, true);
        let mut out = Vec::new();
        plain_batch_records(&control, &mut out).unwrap();
        assert!(out.is_empty());
    }
}
