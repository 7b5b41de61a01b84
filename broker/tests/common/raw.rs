//! A raw Kafka connection over `std::net::TcpStream`, with `kafka_protocol` as the
//! independent codec: build requests, send hostile bytes, decode responses.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest, MetadataRequest,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use super::TestBroker;

/// Read/write timeout of a raw connection: nothing a test does legitimately takes
/// longer, and a broker that neither answers nor closes fails the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response frame a test accepts.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Versions used by these tests (all inside what the broker advertises).
pub const PRODUCE_VERSION: i16 = 8;
pub const FETCH_VERSION: i16 = 12;
pub const METADATA_VERSION: i16 = 12;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const API_VERSIONS_VERSION: i16 = 3;

// Kafka error codes asserted by the tests.
pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub struct RawConn {
    stream: TcpStream,
    next_correlation_id: i32,
}

/// What the broker did with a request it should not accept.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Closed,
    Answered(Bytes),
}

impl RawConn {
    pub fn connect(broker: &TestBroker) -> RawConn {
        let addr = broker.bootstrap();
        let stream = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            next_correlation_id: 1,
        }
    }

    pub fn correlation_id(&mut self) -> i32 {
        self.next_correlation_id += 1;
        self.next_correlation_id
    }

    /// Writes bytes as they are (no length prefix added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to broker");
    }

    /// Writes `body` with its 4-byte length prefix.
    pub fn send_frame(&mut self, body: &[u8]) {
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(body);
        self.send_raw(&frame);
    }

    /// Reads one length-prefixed response frame.
    pub fn read_frame(&mut self) -> io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        assert!(
            (0..=RESPONSE_BYTES_MAX as i32).contains(&len),
            "response frame length {len} out of range"
        );
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Sends `request` at `version` and returns the correlation id.
    pub fn send_request<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        let correlation_id = self.correlation_id();
        let frame = encode_request(request, version, correlation_id);
        self.send_frame(&frame);
        correlation_id
    }

    /// Reads the response to `correlation_id` and decodes it at `version`.
    pub fn read_response<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let mut frame = self
            .read_frame()
            .unwrap_or_else(|e| panic!("no response to api {} v{version}: {e}", R::KEY));
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version).expect("response header");
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        let response = R::Response::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode api {} v{version} response: {e}", R::KEY));
        assert!(
            frame.is_empty(),
            "{} bytes left after api {} v{version} response",
            frame.len(),
            R::KEY
        );
        response
    }

    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let correlation_id = self.send_request(request, version);
        self.read_response::<R>(version, correlation_id)
    }

    /// Waits up to `within` for the broker to either close the connection or answer.
    pub fn outcome(&mut self, within: Duration) -> Outcome {
        self.stream
            .set_read_timeout(Some(within))
            .expect("read timeout");
        let started = Instant::now();
        let mut first = [0u8; 1];
        let result = match self.stream.read(&mut first) {
            Ok(0) => Outcome::Closed,
            Ok(_) => {
                // Something came back: collect the rest of that frame.
                let mut rest = [0u8; 3];
                self.stream.read_exact(&mut rest).expect("frame length");
                let len = i32::from_be_bytes([first[0], rest[0], rest[1], rest[2]]);
                assert!(
                    (0..=RESPONSE_BYTES_MAX as i32).contains(&len),
                    "response frame length {len} out of range"
                );
                let mut body = vec![0u8; len as usize];
                self.stream.read_exact(&mut body).expect("frame body");
                Outcome::Answered(Bytes::from(body))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                Outcome::Closed
            }
            Err(e) => panic!(
                "broker neither answered nor closed the connection within {:?}: {e}",
                started.elapsed()
            ),
        };
        self.stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        result
    }

    /// Fails unless the broker closes the connection within `within` (without
    /// answering).
    pub fn expect_closed(&mut self, within: Duration, what: &str) {
        match self.outcome(within) {
            Outcome::Closed => {}
            Outcome::Answered(frame) => {
                panic!(
                    "{what}: expected the connection closed, got a {}-byte answer",
                    frame.len()
                )
            }
        }
    }
}

/// Header + body of a request, without the length prefix.
pub fn encode_request<R: Request>(request: &R, version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_header(
        &mut buf,
        R::KEY,
        version,
        correlation_id,
        R::header_version(version),
    );
    request
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode api {} v{version}: {e}", R::KEY));
    buf
}

/// A request header for any api key and version (also ones no library would send).
pub fn encode_header(
    buf: &mut BytesMut,
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    header_version: i16,
) {
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("strikemq-tests")));
    header.encode(buf, header_version).expect("encode header");
}

/// The header bytes of a request for api `R` at `version`, to be followed by a
/// hand-made body.
pub fn header_for<R: Request>(version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_header(
        &mut buf,
        R::KEY,
        version,
        correlation_id,
        R::header_version(version),
    );
    buf
}

/// Checks, on a new connection, that the broker still answers ApiVersions and
/// Metadata correctly, and that the process is alive.
pub fn assert_broker_healthy(broker: &mut TestBroker) {
    broker.assert_running();
    let mut conn = RawConn::connect(broker);
    let versions = conn.call(&api_versions_request(), API_VERSIONS_VERSION);
    assert_eq!(versions.error_code, NONE, "ApiVersions error code");
    for (key, version) in [
        (ApiKey::Produce, PRODUCE_VERSION),
        (ApiKey::Fetch, FETCH_VERSION),
        (ApiKey::Metadata, METADATA_VERSION),
        (ApiKey::ApiVersions, API_VERSIONS_VERSION),
    ] {
        let entry = versions
            .api_keys
            .iter()
            .find(|a| a.api_key == key as i16)
            .unwrap_or_else(|| panic!("ApiVersions does not list {key:?}"));
        assert!(
            (entry.min_version..=entry.max_version).contains(&version),
            "{key:?} v{version} not in advertised {}..={}",
            entry.min_version,
            entry.max_version
        );
    }

    let metadata = conn.call(&MetadataRequest::default(), METADATA_VERSION);
    assert_eq!(metadata.brokers.len(), 1, "one broker in Metadata");
    let port: i32 = broker
        .bootstrap()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in bootstrap address");
    assert_eq!(metadata.brokers[0].port, port, "advertised port");
    assert_eq!(metadata.error_code, NONE);
}

pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strikemq-tests"))
        .with_client_software_version(StrBytes::from_static_str("0.1"))
}

pub fn metadata_request(topics: &[&str], allow_auto_topic_creation: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(allow_auto_topic_creation)
}

pub fn create_topics_request(topics: &[&str], partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(t))
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                })
                .collect(),
        )
}

/// Creates topics over a raw connection; fails unless each one was created.
pub fn create_topics(conn: &mut RawConn, topics: &[&str], partitions: i32) {
    let response = conn.call(
        &create_topics_request(topics, partitions),
        CREATE_TOPICS_VERSION,
    );
    for result in &response.topics {
        assert_eq!(
            result.error_code, NONE,
            "create topic {:?}: {:?}",
            result.name.0, result.error_message
        );
    }
    assert_eq!(response.topics.len(), topics.len());
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces `batch` to one partition and returns (error code, base offset).
pub fn produce(conn: &mut RawConn, topic: &str, partition: i32, batch: Bytes) -> (i16, i64) {
    let response = conn.call(&produce_request(topic, partition, batch), PRODUCE_VERSION);
    assert_eq!(response.responses.len(), 1, "one topic in Produce response");
    let topic_response = &response.responses[0];
    assert_eq!(topic_response.name.0.as_str(), topic);
    assert_eq!(topic_response.partition_responses.len(), 1);
    let p = &topic_response.partition_responses[0];
    assert_eq!(p.index, partition);
    (p.error_code, p.base_offset)
}

pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(8 * 1024 * 1024)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(4 * 1024 * 1024)])])
}

/// What one Fetch returned for one partition.
#[derive(Debug)]
pub struct Fetched {
    pub error_code: i16,
    pub high_watermark: i64,
    pub records: Vec<Record>,
}

pub fn fetch(
    conn: &mut RawConn,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> Fetched {
    let response = conn.call(
        &fetch_request(topic, partition, offset, max_wait_ms),
        FETCH_VERSION,
    );
    assert_eq!(response.error_code, NONE, "Fetch top-level error");
    assert_eq!(response.responses.len(), 1, "one topic in Fetch response");
    let partitions = &response.responses[0].partitions;
    assert_eq!(partitions.len(), 1, "one partition in Fetch response");
    let p = &partitions[0];
    let records = match &p.records {
        Some(bytes) if !bytes.is_empty() => {
            let mut bytes = bytes.clone();
            RecordBatchDecoder::decode_all(&mut bytes)
                .expect("decode fetched record batches")
                .into_iter()
                .flat_map(|set| set.records)
                .collect()
        }
        _ => Vec::new(),
    };
    Fetched {
        error_code: p.error_code,
        high_watermark: p.high_watermark,
        records,
    }
}

/// Identity of an idempotent producer for a batch.
#[derive(Clone, Copy)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Byte offsets in a v2 record batch header.
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const BASE_SEQUENCE_OFFSET: usize = 53;

/// One record of [`batch_of`]: key, value (`None`: a tombstone), timestamp in ms.
pub type RecordSpec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// One v2 record batch of `records` at offsets 0.., compressed with `compression`, without a producer id: what a
/// non-idempotent client sends, one batch per partition as Kafka requires.
/// kafka-protocol's encoder starts a new batch whenever offset − sequence changes, so
/// the sequences count up from NO_SEQUENCE: one batch, whose base sequence is −1.
pub fn batch_of(records: &[RecordSpec<'_>], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, &(key, value, timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// One v2 batch of one record stamped now (`record_batch` stamps 2023, which time
/// retention would rightly expire at its first pass), with an optional key and a value
/// or, with `None`, a tombstone.
pub fn one_record_now(key: Option<&[u8]>, value: Option<&[u8]>) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    batch_of(&[(key, value, now_ms)], Compression::None)
}

/// One v2 record batch with `values` as records (offsets relative from 0), as a
/// client sends it.
pub fn record_batch(values: &[&[u8]], producer: Option<ProducerState>) -> Bytes {
    batch_with(values, producer, false)
}

/// A transactional batch (attributes bit 4) of `producer`, as a transactional producer
/// sends it inside a transaction.
pub fn transactional_batch(values: &[&[u8]], producer: ProducerState) -> Bytes {
    batch_with(values, Some(producer), true)
}

fn batch_with(values: &[&[u8]], producer: Option<ProducerState>, transactional: bool) -> Bytes {
    // kafka_protocol starts a new batch whenever offset - sequence changes, so give
    // every record sequence = offset and clear the base sequence afterwards when
    // the batch is not idempotent.
    let sequence_base = producer.map_or(0, |p| p.base_sequence);
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: producer.map_or(NO_PRODUCER_ID, |p| p.producer_id),
            producer_epoch: producer.map_or(NO_PRODUCER_EPOCH, |p| p.producer_epoch),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence_base + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(value)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    if producer.is_none() {
        buf[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
            .copy_from_slice(&NO_SEQUENCE.to_be_bytes());
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    let batch = buf.freeze();
    let mut check = batch.clone();
    let decoded = RecordBatchDecoder::decode_all(&mut check).expect("decode own batch");
    assert_eq!(decoded.len(), 1, "exactly one batch");
    assert_eq!(decoded[0].records.len(), values.len());
    batch
}

/// A legacy magic-1 message set with one message (CRC32 over magic..value).
/// A v2 batch header with a correct CRC around a records section written by hand
/// (e.g. a compression bomb), claiming `records_count` records. A `max_timestamp_ms`
/// below `base_timestamp_ms` is impossible, which makes the broker read the records to
/// repair it (as it does for sarama 1.22).
pub fn hand_built_batch(
    codec: i16,
    records_count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    records: &[u8],
) -> Bytes {
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes()); // batch length
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&codec.to_be_bytes()); // attributes
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&base_timestamp_ms.to_be_bytes());
    b.extend_from_slice(&max_timestamp_ms.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&records_count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

pub fn magic_1_message_set(value: &[u8]) -> Bytes {
    let mut message = BytesMut::new();
    message.put_i8(1); // magic
    message.put_i8(0); // attributes: no compression, create time
    message.put_i64(1_700_000_000_000); // timestamp
    message.put_i32(-1); // null key
    message.put_i32(value.len() as i32);
    message.put_slice(value);
    let crc = kafka_protocol::records::IEEE.checksum(&message);

    let mut set = BytesMut::new();
    set.put_i64(0); // offset
    set.put_i32(4 + message.len() as i32); // message size: crc + rest
    set.put_u32(crc);
    set.put_slice(&message);
    set.freeze()
}
