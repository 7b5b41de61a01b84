//! The bodies of the fuzz targets in `broker/fuzz`, kept in the library so that the
//! crashing inputs kept in `broker/fuzz/regressions/<target>/` replay through exactly
//! the same code under plain `cargo test` (no nightly, no libFuzzer). Each function
//! drives the code path the broker itself uses on untrusted bytes and panics only
//! when an invariant of that path breaks; any panic is a finding.
//!
//! Not part of the broker's API: nothing in the broker calls these.

use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse};
use serde_json::{Map, Value};

use crate::broker::{Broker, Outcome};
use crate::config::{Config, EffectiveConfig, Profile};
use crate::group::Coordinator;
use crate::net::buffer::{InputBuffer, RingInput, VecInput};
use crate::net::next_frame;
use crate::protocol::batch::{
    decompress_records, first_record_at_or_after, record_offsets_and_timestamps,
    records_max_timestamp, Batches, MAX_DECOMPRESSED_RECORDS_BYTES,
};
use crate::protocol::request::{decode_header, decode_request, Request};
use crate::storage::{Storage, StorageConfig, TopicConfig};

/// Largest frame the framing target accepts: small, so the fuzzer reaches both the
/// limit and the ring buffer's spill path with inputs of a few KiB.
const FUZZ_MAX_FRAME_BYTES: usize = 16 * 1024;
/// Ring size of the framing target (the ring's minimum), so frames wrap and spill.
const FUZZ_RING_BYTES: usize = 4096;

/// Target `frame_header`: the byte stream of one connection, split into frames by
/// [`next_frame`] exactly as the data plane does, each frame's request header decoded
/// by [`decode_header`] and its body by [`decode_request`].
///
/// The first input byte picks the size of each simulated `recv` (1–256 bytes). The
/// stream runs through both connection buffers (`vec` and `circular`), which must
/// yield the same frames and the same verdict, and must always make room to progress.
pub fn frame_header(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk_bytes = usize::from(chunk) + 1;
    let from_vec = frames_through(
        VecInput::with_capacity(FUZZ_RING_BYTES),
        stream,
        chunk_bytes,
    );
    let from_ring = frames_through(
        RingInput::with_capacity(FUZZ_RING_BYTES),
        stream,
        chunk_bytes,
    );
    assert_eq!(
        from_vec, from_ring,
        "vec and circular connection buffers disagree"
    );
}

/// The frames `stream` yields through buffer `B`, and whether framing stopped with an
/// error (the connection would close).
fn frames_through<B: InputBuffer>(
    mut rbuf: B,
    mut stream: &[u8],
    chunk_bytes: usize,
) -> (Vec<Bytes>, bool) {
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let spare = rbuf.spare();
        assert!(!spare.is_empty(), "input buffer has no room and no frame");
        let n = spare.len().min(chunk_bytes).min(stream.len());
        for (dst, src) in spare[..n].iter_mut().zip(&stream[..n]) {
            *dst = MaybeUninit::new(*src);
        }
        // SAFETY: the loop above initialized the first `n` bytes of `spare`, as recv
        // would have.
        unsafe { rbuf.commit(n) };
        stream = &stream[n..];
        loop {
            match next_frame(&mut rbuf, FUZZ_MAX_FRAME_BYTES) {
                Ok(Some(frame)) => {
                    decode_frame(frame.clone());
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

/// Header then body, as `Broker::handle` decodes them.
fn decode_frame(mut frame: Bytes) -> Option<Request> {
    let header = decode_header(&mut frame).ok()?;
    decode_request(
        header.request_api_key,
        header.request_api_version,
        &mut frame,
    )
    .ok()
}

/// Target `request_decode`: every request decoder the broker advertises. The first
/// four bytes are the api key and version (big-endian i16 each), the rest the body.
///
/// Differential check against kafka-protocol, the independent codec: a request our
/// decoder accepts is encoded again with kafka-protocol's encoder at that version and
/// decoded again by ours, which must give the same request (nothing invented, lost or
/// misread between versions).
pub fn request_decode(data: &[u8]) {
    let Some((key_version, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let api_key = i16::from_be_bytes([key_version[0], key_version[1]]);
    let version = i16::from_be_bytes([key_version[2], key_version[3]]);
    let Ok(first) = decode_request(api_key, version, &mut Bytes::copy_from_slice(body)) else {
        return;
    };
    // A field kafka-protocol cannot encode at this version is not ours to judge.
    let Some(encoded) = encode_request_body(&first, version) else {
        return;
    };
    let second = decode_request(api_key, version, &mut encoded.freeze());
    match second {
        Ok(second) => assert_eq!(first, second, "api {api_key} v{version} round trip"),
        Err(e) => panic!("api {api_key} v{version}: re-encoded request does not decode: {e}"),
    }
}

/// kafka-protocol's encoding of a decoded request body.
fn encode_request_body(request: &Request, version: i16) -> Option<bytes::BytesMut> {
    use kafka_protocol::protocol::Encodable as _;
    let mut buf = bytes::BytesMut::new();
    macro_rules! encode {
        ($($api:ident),* $(,)?) => {
            match request {
                $(Request::$api(r) => r.encode(&mut buf, version).ok()?,)*
            }
        };
    }
    encode!(
        ApiVersions,
        Metadata,
        Produce,
        Fetch,
        ListOffsets,
        CreateTopics,
        DeleteTopics,
        CreatePartitions,
        DescribeConfigs,
        AlterConfigs,
        IncrementalAlterConfigs,
        DescribeCluster,
        InitProducerId,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        ListGroups,
        DescribeGroups,
        DeleteGroups,
        OffsetDelete,
        DeleteRecords,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeTransactions,
        ListTransactions,
    );
    Some(buf)
}

/// Target `record_batch`: what the produce path and the read paths do with the
/// records of a request: iterate batches, check each CRC, and read their records
/// (every codec, bounded) for the max timestamp and for a timestamp lookup. The
/// first input byte, when it is a codec id (0–4), also inflates the rest as a raw
/// records section. Inflated output must never exceed the bound.
pub fn record_batch(data: &[u8]) {
    if let Some((&codec, rest)) = data.split_first() {
        if codec <= 4 {
            if let Ok(records) = decompress_records(codec, rest, MAX_DECOMPRESSED_RECORDS_BYTES) {
                assert!(records.len() <= MAX_DECOMPRESSED_RECORDS_BYTES);
            }
        }
    }
    let mut position = 0;
    for batch in Batches::new(data) {
        let Ok(batch) = batch else { break };
        assert!(batch.total_bytes() <= data.len() - position);
        position += batch.total_bytes();
        let _ = batch.verify_crc();
        let bytes = batch.as_bytes();
        let mut count = 0i64;
        let walked = record_offsets_and_timestamps(bytes, |_, _| {
            count += 1;
            std::ops::ControlFlow::Continue(())
        });
        if walked.is_ok() {
            assert_eq!(count, i64::from(batch.records_count()));
        }
        let max = records_max_timestamp(bytes);
        if let Ok(Some(max)) = max {
            // The record holding the max timestamp is found by a lookup for it.
            if !batch.is_log_append_time() {
                let found = first_record_at_or_after(bytes, max);
                assert!(
                    matches!(found, Ok(Some((_, ts))) if ts == max),
                    "max timestamp {max} not found by a lookup: {found:?}"
                );
            }
        }
    }
}

/// Target `admin_json`: the admin API's JSON request bodies through the parser and
/// validators its handlers use. The first input byte picks the endpoint (topic
/// create, message produce, config PUT); the rest is the body. A body may be
/// refused only with a 4xx: a 5xx on client input is a bug.
pub fn admin_json(data: &[u8]) {
    use crate::admin::{
        encode_produce_body, parse_json_body, validate_change, validate_new_topic, ApiError,
        NewTopic, ProduceBody,
    };
    /// Partitions of the topic the produce body is validated against.
    const FUZZ_TOPIC_PARTITIONS: i32 = 3;
    let Some((&endpoint, body)) = data.split_first() else {
        return;
    };
    let outcome: Result<(), ApiError> = match endpoint % 3 {
        0 => parse_json_body::<NewTopic>(body)
            .and_then(|t| validate_new_topic(t, 1))
            .map(|t| {
                assert!(t.partitions >= 1);
                assert!(crate::storage::validate_topic_name(&t.name).is_ok());
            }),
        1 => parse_json_body::<ProduceBody>(body)
            .and_then(|b| encode_produce_body(b, "fuzz", FUZZ_TOPIC_PARTITIONS, 0))
            .map(|batches| {
                for (partition, count, batch) in batches {
                    assert!((0..FUZZ_TOPIC_PARTITIONS).contains(&partition));
                    // What the admin API encodes, the produce path must accept.
                    let mut records = 0;
                    for b in Batches::new(&batch) {
                        let b = b.expect("encoded batch parses");
                        b.verify_crc().expect("encoded batch has a valid CRC");
                        records += b.records_count() as usize;
                    }
                    assert_eq!(records, count);
                }
            }),
        _ => {
            let startup = admin_startup_config();
            parse_json_body::<Map<String, Value>>(body)
                .and_then(|b| validate_change(&startup, &b))
                .map(|_| ())
        }
    };
    if let Err(e) = outcome {
        assert!(
            e.status().is_client_error(),
            "{} for client input: {}",
            e.status(),
            e.message()
        );
    }
}

/// The running configuration `PUT /v1/config` compares structural keys with.
fn admin_startup_config() -> Value {
    static STARTUP: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    STARTUP
        .get_or_init(|| {
            serde_json::to_value(Config::profile(Profile::Baseline))
                .expect("the default configuration serializes")
        })
        .clone()
}

/// Executions after which `broker_handle` starts over with a fresh broker and an empty
/// data directory, so a long run neither fills the disk nor accumulates topics.
const FUZZ_BROKER_RESET_EXECS: u64 = 5_000;
/// Most partitions one fuzzed CreateTopics/CreatePartitions may create: creating
/// thousands of directories per execution would make the target measure the file
/// system rather than the broker.
const FUZZ_PARTITIONS_PER_REQUEST_MAX: i64 = 8;
/// Segment size of the fuzzed broker's partitions (sparse files).
const FUZZ_SEGMENT_BYTES: u64 = 1 << 20;

/// The broker `broker_handle` feeds, created on first use.
static BROKER: Mutex<Option<FuzzBroker>> = Mutex::new(None);

/// Drops `broker_handle`'s broker and deletes its data directory (a fuzzer process
/// never gets there; a test replaying inputs should).
pub fn broker_handle_cleanup() {
    *BROKER.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

struct FuzzBroker {
    broker: Broker,
    dir: PathBuf,
    execs: u64,
}

impl Drop for FuzzBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fuzz_broker() -> FuzzBroker {
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "strikemq-fuzz-{}-{}",
        std::process::id(),
        GENERATION.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = Config::profile(Profile::Baseline);
    cfg.data_dir = dir.clone();
    cfg.segment_bytes = FUZZ_SEGMENT_BYTES;
    let storage =
        Storage::open(StorageConfig::from_config(&cfg)).expect("opening the fuzz broker's storage");
    storage
        .create_topic("fuzz", 2, TopicConfig::default())
        .expect("creating the fuzz topic");
    let broker = Broker::new(
        EffectiveConfig::new(cfg, Vec::new()),
        Arc::new(storage),
        Arc::new(Coordinator::in_memory(crate::group::no_wake())),
        crate::group::no_wake(),
        ("127.0.0.1".into(), 9092),
    );
    FuzzBroker {
        broker,
        dir,
        execs: 0,
    }
}

/// Partitions a request would create, for the cap above.
fn partitions_created(frame: &Bytes) -> i64 {
    match decode_frame(frame.clone()) {
        Some(Request::CreateTopics(r)) => r
            .topics
            .iter()
            .map(|t| i64::from(t.num_partitions.max(1)) * (t.assignments.len().max(1) as i64))
            .sum::<i64>()
            .saturating_add(r.topics.len() as i64),
        Some(Request::CreatePartitions(r)) => {
            r.topics.iter().map(|t| i64::from(t.count.max(0))).sum()
        }
        _ => 0,
    }
}

/// Target `broker_handle`: one request frame (without its size prefix) through
/// [`Broker::handle`] on a real broker over a temporary data directory, so the
/// handlers run on fuzzed input too. A handled request either answers with a frame
/// that starts with its correlation id, answers nothing (acks=0), parks, or is a
/// framing error; it never panics. Produce and Fetch answers (hand-encoded) must also
/// decode with kafka-protocol and re-encode with it to the very same bytes.
pub fn broker_handle(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    if partitions_created(&frame) > FUZZ_PARTITIONS_PER_REQUEST_MAX {
        return;
    }
    let mut guard = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    if guard
        .as_ref()
        .is_none_or(|b| b.execs >= FUZZ_BROKER_RESET_EXECS)
    {
        *guard = None; // removes the old data directory first
        *guard = Some(fuzz_broker());
    }
    let Some(fuzz) = guard.as_mut() else { return };
    fuzz.execs += 1;
    // Spliced records (zero-copy fetch), so the size prefix check below also covers
    // the frame accounting of spliced bytes.
    let mut output = crate::output::Output::new(crate::output::RecordsOut::Splice);
    if let Ok(Outcome::Responded) = fuzz.broker.handle(frame, &mut output) {
        let out = output.to_vec();
        let correlation_id = data.get(4..8).expect("a handled request has a header");
        assert!(out.len() >= 8, "response shorter than its header");
        let size = i32::from_be_bytes([out[0], out[1], out[2], out[3]]);
        assert_eq!(size as usize, out.len() - 4, "response size prefix");
        assert_eq!(&out[4..8], correlation_id, "response correlation id");
        let api_key = i16::from_be_bytes([data[0], data[1]]);
        let version = i16::from_be_bytes([data[2], data[3]]);
        if api_key == ApiKey::Produce as i16 {
            assert_oracle_reencodes::<ProduceResponse>(&out, version);
        } else if api_key == ApiKey::Fetch as i16 {
            assert_oracle_reencodes::<FetchResponse>(&out, version);
        }
    }
}

/// Decodes a framed response with kafka-protocol and checks that its encoder gives
/// back exactly the same frame.
fn assert_oracle_reencodes<R>(out: &[u8], version: i16)
where
    R: kafka_protocol::protocol::Decodable
        + kafka_protocol::protocol::Encodable
        + kafka_protocol::protocol::HeaderVersion,
{
    use kafka_protocol::protocol::Decodable as _;
    let mut buf = &out[crate::protocol::response::SIZE_PREFIX_BYTES..];
    let header =
        kafka_protocol::messages::ResponseHeader::decode(&mut buf, R::header_version(version))
            .expect("oracle decodes the response header");
    let body = R::decode(&mut buf, version).expect("oracle decodes the response");
    assert!(
        buf.is_empty(),
        "response has {} bytes the oracle did not read",
        buf.len()
    );
    let mut again = Vec::new();
    crate::protocol::response::write_response(&mut again, header.correlation_id, version, &body)
        .expect("oracle encodes the response");
    assert_eq!(
        again, out,
        "api response differs from the oracle's encoding"
    );
}
