//! Compression bombs over raw TCP: a produce whose records inflate to 1 GiB of zeros
//! must cost the broker bounded memory (it inflates at most
//! `MAX_DECOMPRESSED_RECORDS_BYTES`), get CORRUPT_MESSAGE when the broker has to read
//! the records, and leave another client's connection working throughout.

mod common;

use std::io::Write as _;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::ListOffsetsRequest;

use common::raw::*;
use common::{unique_topic, TestBroker};

/// What each bomb inflates to.
const BOMB_INFLATED_BYTES: usize = 1 << 30;
/// The bomb is built from repeated compressed members/frames of this many zeros (gzip
/// members and zstd frames may be concatenated), so the test compresses only 1 MiB.
const BOMB_CHUNK_BYTES: usize = 1 << 20;
/// Peak RSS (VmHWM) the broker may reach while handling the bombs: its own ~20 MiB plus
/// the 64 MiB decompression bound, with room for the buffer growth around it. Without
/// the bound the broker peaks above 1 GiB.
const PEAK_RSS_KIB_MAX: u64 = 256 * 1024;
const CODEC_GZIP: i16 = 1;
const CODEC_ZSTD: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 7;
const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

fn gzip_bomb() -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(&vec![0u8; BOMB_CHUNK_BYTES])
        .expect("gzip into memory");
    let member = encoder.finish().expect("gzip into memory");
    member.repeat(BOMB_INFLATED_BYTES / BOMB_CHUNK_BYTES)
}

fn zstd_bomb() -> Vec<u8> {
    let frame = zstd::encode_all(&vec![0u8; BOMB_CHUNK_BYTES][..], 3).expect("zstd into memory");
    frame.repeat(BOMB_INFLATED_BYTES / BOMB_CHUNK_BYTES)
}

/// A batch claiming one record around `records`; with `impossible_max_timestamp` the
/// broker has to read (inflate) the records to repair the max timestamp.
fn bomb_batch(codec: i16, records: &[u8], impossible_max_timestamp: bool) -> Bytes {
    let max_timestamp_ms = if impossible_max_timestamp {
        0
    } else {
        BASE_TIMESTAMP_MS + 1_000
    };
    hand_built_batch(codec, 1, BASE_TIMESTAMP_MS, max_timestamp_ms, records)
}

/// The broker's peak resident set size in KiB (VmHWM), which catches a transient
/// allocation that VmRSS after the fact would miss.
fn peak_rss_kib(broker: &mut TestBroker) -> u64 {
    broker.assert_running();
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.pid()))
        .expect("reading the broker's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

fn list_offset_for_timestamp(conn: &mut RawConn, topic: &str, timestamp_ms: i64) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp_ms)])]);
    let response = conn.call(&request, LIST_OFFSETS_VERSION);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[test]
fn gzip_and_zstd_bombs_get_corrupt_message_with_bounded_memory() {
    let mut broker = TestBroker::start(&[]);
    let mut bystander = RawConn::connect(&broker);
    let mut attacker = RawConn::connect(&broker);
    for (codec, name, bomb) in [
        (CODEC_GZIP, "gzip", gzip_bomb()),
        (CODEC_ZSTD, "zstd", zstd_bomb()),
    ] {
        // One topic per codec, so the timestamp lookup below lands in this bomb.
        let topic = unique_topic(name);
        create_topics(&mut bystander, &[&topic], 1);
        assert_eq!(
            produce(&mut bystander, &topic, 0, record_batch(&[b"before"], None)),
            (NONE, 0)
        );
        // The broker must read these records (impossible max timestamp): refused.
        let (error_code, _) = produce(&mut attacker, &topic, 0, bomb_batch(codec, &bomb, true));
        assert_eq!(error_code, CORRUPT_MESSAGE, "{name} bomb on produce");
        let peak = peak_rss_kib(&mut broker);
        assert!(
            peak < PEAK_RSS_KIB_MAX,
            "{name} bomb: broker peaked at {peak} KiB (limit {PEAK_RSS_KIB_MAX})"
        );

        // A plausible header is stored as received (records pass through unread)...
        let (error_code, offset) =
            produce(&mut attacker, &topic, 0, bomb_batch(codec, &bomb, false));
        assert_eq!(error_code, NONE, "{name} bomb with a plausible header");
        // ...and a timestamp lookup inside it inflates it (bounded), then answers at
        // batch granularity.
        assert_eq!(
            list_offset_for_timestamp(&mut attacker, &topic, BASE_TIMESTAMP_MS + 500),
            (NONE, offset),
            "{name} bomb: ListOffsets by timestamp"
        );
        let peak = peak_rss_kib(&mut broker);
        assert!(
            peak < PEAK_RSS_KIB_MAX,
            "{name} bomb after ListOffsets: broker peaked at {peak} KiB (limit {PEAK_RSS_KIB_MAX})"
        );

        // The other client's connection kept working.
        let (error_code, _) = produce(&mut bystander, &topic, 0, record_batch(&[b"after"], None));
        assert_eq!(error_code, NONE, "bystander produce after the {name} bomb");
    }
    assert_broker_healthy(&mut broker);
}
