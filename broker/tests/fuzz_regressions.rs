//! The fuzz targets' kept inputs, replayed under plain `cargo test` (no nightly, no
//! libFuzzer) through the very functions the targets call (`strikemq::fuzzing`):
//! - `broker/fuzz/regressions/<target>/`: inputs that crashed (or would crash) the
//!   broker; each must now pass.
//! - `broker/fuzz/seeds/<target>/`: the seed corpus, real encoded requests, batches
//!   and bodies, so the fuzzer starts from valid input. The request seeds must decode.
//!
//! Regenerate the seeds with
//! `cargo test -p strikemq --test fuzz_regressions -- --ignored write_fuzz_seeds`.

mod common;

use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, Request};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strikemq::fuzzing;
use strikemq::protocol::request::{
    decode_header, decode_request, supported_api_keys, supported_versions,
};

use common::raw;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("frame_header", fuzzing::frame_header),
    ("request_decode", fuzzing::request_decode),
    ("broker_handle", fuzzing::broker_handle),
    ("record_batch", fuzzing::record_batch),
    ("admin_json", fuzzing::admin_json),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `fuzz/<kind>/<target>/`, sorted, with its bytes.
fn kept_inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

#[test]
fn every_kept_crashing_input_now_passes_its_target() {
    let mut replayed = 0;
    for (target, run) in TARGETS {
        for (path, bytes) in kept_inputs("regressions", target) {
            eprintln!("replaying {}", path.display());
            run(&bytes);
            replayed += 1;
        }
    }
    fuzzing::broker_handle_cleanup();
    // The directory holds at least the inputs found while bounding decompression.
    assert!(replayed >= 2, "only {replayed} regression inputs found");
}

#[test]
fn every_seed_passes_its_target_and_request_seeds_decode() {
    for (target, run) in TARGETS {
        let seeds = kept_inputs("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (path, bytes) in seeds {
            run(&bytes);
            let what = path.display();
            match target {
                "request_decode" => {
                    let key = i16::from_be_bytes([bytes[0], bytes[1]]);
                    let version = i16::from_be_bytes([bytes[2], bytes[3]]);
                    let mut body = Bytes::copy_from_slice(&bytes[4..]);
                    if let Err(e) = decode_request(key, version, &mut body) {
                        panic!("{what}: seed does not decode: {e}");
                    }
                }
                "broker_handle" => {
                    let mut frame = Bytes::copy_from_slice(&bytes);
                    let header =
                        decode_header(&mut frame).unwrap_or_else(|e| panic!("{what}: {e}"));
                    decode_request(
                        header.request_api_key,
                        header.request_api_version,
                        &mut frame,
                    )
                    .unwrap_or_else(|e| panic!("{what}: seed does not decode: {e}"));
                }
                _ => {}
            }
        }
    }
    fuzzing::broker_handle_cleanup();
}

/// Header + body of `request` at `version`, or None when kafka-protocol cannot encode
/// that request at that version (a field the version lacks).
fn encoded<R: Request + Encodable + HeaderVersion>(request: &R, version: i16) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    raw::encode_header(&mut buf, R::KEY, version, 7, R::header_version(version));
    request.encode(&mut buf, version).ok()?;
    Some(buf)
}

macro_rules! default_request {
    ($key:expr, $version:expr; $($api:ident => $ty:ty),* $(,)?) => {
        match $key {
            $(k if k == ApiKey::$api as i16 => encoded(&<$ty>::default(), $version),)*
            _ => None,
        }
    };
}

/// A fixed topic id for Fetch v13+ seeds.
const SEED_TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(0x5eed);

/// One real request frame (header + body) per api and advertised version.
fn request_seeds() -> Vec<(String, BytesMut)> {
    let mut seeds = Vec::new();
    for key in supported_api_keys() {
        let (lo, hi) = supported_versions(key).expect("advertised");
        for v in lo..=hi {
            let frame = if key == ApiKey::Produce as i16 {
                let batch = batch_with(Compression::None, 3);
                encoded(&raw::produce_request("fuzz", 0, batch), v)
            } else if key == ApiKey::Fetch as i16 {
                let mut req = raw::fetch_request("fuzz", 0, 0, 0);
                if v >= 13 {
                    req.topics[0].topic_id = SEED_TOPIC_ID;
                    req.topics[0].topic = TopicName::default();
                }
                encoded(&req, v)
            } else if key == ApiKey::Metadata as i16 {
                encoded(&raw::metadata_request(&["fuzz"], v < 4), v)
            } else if key == ApiKey::CreateTopics as i16 {
                encoded(&raw::create_topics_request(&["fuzz-new"], 1), v)
            } else {
                default_request!(key, v;
                    ApiVersions => ApiVersionsRequest,
                    ListOffsets => ListOffsetsRequest,
                    DeleteTopics => DeleteTopicsRequest,
                    InitProducerId => InitProducerIdRequest,
                    DescribeConfigs => DescribeConfigsRequest,
                    AlterConfigs => AlterConfigsRequest,
                    IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
                    CreatePartitions => CreatePartitionsRequest,
                    DescribeCluster => DescribeClusterRequest,
                    FindCoordinator => FindCoordinatorRequest,
                    JoinGroup => JoinGroupRequest,
                    SyncGroup => SyncGroupRequest,
                    Heartbeat => HeartbeatRequest,
                    LeaveGroup => LeaveGroupRequest,
                    OffsetCommit => OffsetCommitRequest,
                    OffsetFetch => OffsetFetchRequest,
                    ListGroups => ListGroupsRequest,
                    DescribeGroups => DescribeGroupsRequest,
                    DeleteGroups => DeleteGroupsRequest,
                    OffsetDelete => OffsetDeleteRequest,
                )
            };
            match frame {
                Some(frame) => seeds.push((format!("api{key:02}-v{v:02}"), frame)),
                None => eprintln!("no seed for api {key} v{v}: the encoder refuses defaults"),
            }
        }
    }
    seeds
}

/// A v2 batch of `records` records compressed with `compression`.
fn batch_with(compression: Compression, records: i64) -> Bytes {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i * 10,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value {i} value {i} value {i}"))),
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
    .expect("encode a seed batch");
    buf.freeze()
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

#[test]
#[ignore = "writes broker/fuzz/seeds; run by hand when the protocol or targets change"]
fn write_fuzz_seeds() {
    let requests = request_seeds();
    for (name, frame) in &requests {
        // request_decode: api key and version, then the body.
        let mut header_and_body = frame.clone().freeze();
        let header = decode_header(&mut header_and_body).expect("seed header decodes");
        let mut seed = BytesMut::new();
        seed.put_i16(header.request_api_key);
        seed.put_i16(header.request_api_version);
        seed.extend_from_slice(&header_and_body);
        write_seed("request_decode", name, &seed);
        // broker_handle: the frame as the net layer hands it over.
        write_seed("broker_handle", name, frame);
    }
    // frame_header: a recv size, then a few size-prefixed frames back to back.
    for (i, chunk) in [(0u8, 0u8), (1, 63), (2, 255)] {
        let mut stream = vec![chunk];
        for (_, frame) in requests.iter().skip(usize::from(i) * 7).step_by(11) {
            stream.extend_from_slice(&(frame.len() as i32).to_be_bytes());
            stream.extend_from_slice(frame);
        }
        write_seed("frame_header", &format!("stream-{i}"), &stream);
    }
    // record_batch: one batch per codec, and two batches back to back.
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    for (name, compression) in codecs {
        write_seed(
            "record_batch",
            &format!("batch-{name}"),
            &batch_with(compression, 5),
        );
    }
    let mut two = batch_with(Compression::None, 2).to_vec();
    two.extend_from_slice(&batch_with(Compression::Zstd, 3));
    write_seed("record_batch", "two-batches", &two);
    // admin_json: endpoint byte (0 topic create, 1 produce, 2 config PUT), then a body.
    let bodies: [(&str, u8, &str); 6] = [
        (
            "topic",
            0,
            r#"{"name":"orders","partitions":3,"configs":{"retention.ms":"60000"}}"#,
        ),
        ("topic-default", 0, r#"{"name":"a.b-c_d"}"#),
        (
            "produce",
            1,
            r#"{"messages":[{"key":"k","value":"v","headers":{"h":"x","n":null}},{"key_b64":"AAE=","value":null,"partition":2,"timestamp":5}]}"#,
        ),
        (
            "produce-b64",
            1,
            r#"{"messages":[{"value_b64":"aGVsbG8="}]}"#,
        ),
        (
            "config",
            2,
            r#"{"loop_timeout_ms":5,"busy_poll_us":0,"prefer_busy_poll":false,"flush":"10ms"}"#,
        ),
        (
            "config-structural",
            2,
            r#"{"io_threads":1,"log_map":"sharded"}"#,
        ),
    ];
    for (name, endpoint, body) in bodies {
        let mut seed = vec![endpoint];
        seed.extend_from_slice(body.as_bytes());
        write_seed("admin_json", name, &seed);
    }
    write_decompression_regressions();
}

/// The inputs that made the unbounded decompression of kafka-protocol's decoder (used
/// until the fix that added `MAX_DECOMPRESSED_RECORDS_BYTES`) reserve or inflate
/// gigabytes: written once, kept in `regressions/record_batch/` and, wrapped in a
/// Produce frame, in `regressions/broker_handle/`.
fn write_decompression_regressions() {
    const ONE_MIB: usize = 1 << 20;
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("regressions").join(target);
        std::fs::create_dir_all(&dir).expect("create the regression directory");
        std::fs::write(dir.join(name), bytes).expect("write a regression input");
    };
    // One real record, but a header claiming 2^31 - 1: the decoder reserved a Vec of
    // that many records (hundreds of GiB) before reading any.
    let one = batch_with(Compression::None, 1);
    let mut claims_max = one.to_vec();
    claims_max[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&claims_max[21..]);
    claims_max[17..21].copy_from_slice(&crc.to_be_bytes());
    // A raw snappy block whose length preamble says 4 GiB: zero-filled up front.
    let snappy_4gib = raw::hand_built_batch(2, 1, 1_000, 0, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    // 1 GiB of zeros as 1,024 concatenated zstd frames (about 20 KiB).
    let frame = zstd::encode_all(&vec![0u8; ONE_MIB][..], 3).expect("zstd into memory");
    let zstd_1gib = raw::hand_built_batch(4, 1, 1_000, 0, &frame.repeat(1024));
    for (name, batch) in [
        ("record-count-i32-max", &claims_max[..]),
        ("snappy-claims-4gib", &snappy_4gib[..]),
        ("zstd-1gib-of-zeros", &zstd_1gib[..]),
    ] {
        write("record_batch", name, batch);
        let produce = encoded(
            &raw::produce_request("fuzz", 0, Bytes::copy_from_slice(batch)),
            9,
        )
        .expect("encode a produce request");
        write("broker_handle", name, &produce);
    }
}
