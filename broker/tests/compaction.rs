//! Log compaction against the real `strikemq` binary: many updates to few keys on a
//! `cleanup.policy=compact` topic, then the background pass (on the retention thread)
//! leaves the latest value per key with its offset unchanged, tombstones kept for
//! `delete.retention.ms` and removed after, and a kill -9 and restart keep exactly
//! that. Read back with rdkafka (which skips the gaps and empty batches compaction
//! leaves, as it does on Kafka).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::Offset;

use common::raw::{self, produce, *};
use common::rdkafka_util::*;
use common::{unique_topic, TestBroker};

const KEYS: usize = 8;
const ROUNDS: usize = 25;
const TOMBSTONED_KEY: usize = 3;
const VALUE_BYTES: usize = 120;
const COMPACTION_WAIT: Duration = Duration::from_secs(30);

/// One keyed record (value None = tombstone) in its own batch, stamped now.
fn one(key: &str, value: Option<Vec<u8>>) -> Bytes {
    one_record_now(Some(key.as_bytes()), value.as_deref())
}

fn value_of(key: usize, round: usize) -> Vec<u8> {
    format!("k{key}-r{round}-")
        .bytes()
        .cycle()
        .take(VALUE_BYTES)
        .collect()
}

fn create_compacted(conn: &mut RawConn, topic: &str, delete_retention_ms: &str) {
    create_compacted_with(
        conn,
        topic,
        &[
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", delete_retention_ms),
        ],
    );
}

fn create_compacted_with(conn: &mut RawConn, topic: &str, configs: &[(&str, &str)]) {
    let mut req = raw::create_topics_request(&[topic], 1);
    req.topics[0].configs = [("cleanup.policy", "compact"), ("segment.bytes", "2048")]
        .iter()
        .chain(configs)
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let resp = conn.call(&req, CREATE_TOPICS_VERSION);
    assert_eq!(resp.topics[0].error_code, NONE, "{:?}", resp.topics[0]);
}

/// The latest record per key in offset order, tombstones included.
fn wanted(latest: BTreeMap<String, (i64, Option<Vec<u8>>)>) -> Vec<(String, i64, Option<Vec<u8>>)> {
    let mut want: Vec<_> = latest
        .into_iter()
        .map(|(key, (offset, value))| (key, offset, value))
        .collect();
    want.sort_by_key(|(_, offset, _)| *offset);
    want
}

#[test]
fn max_compaction_lag_compacts_what_the_dirty_ratio_would_leave() {
    let broker = TestBroker::start(&[
        "--set",
        "retention_check_interval_ms=100",
        "--set",
        "log_cleaner_backoff_ms=100",
    ]);
    let mut conn = RawConn::connect(&broker);
    // Ratio 1: only a log with nothing compacted since start-up is due by the ratio, so
    // after the first pass new segments are compacted only when max.compaction.lag.ms
    // says they waited long enough.
    let by_ratio = unique_topic("compacted-ratio-only");
    let with_lag = unique_topic("compacted-max-lag");
    create_compacted_with(&mut conn, &by_ratio, &[("min.cleanable.dirty.ratio", "1")]);
    create_compacted_with(
        &mut conn,
        &with_lag,
        &[
            ("min.cleanable.dirty.ratio", "1"),
            ("max.compaction.lag.ms", "1"),
        ],
    );
    let mut first_sentinel = None;
    for topic in [&by_ratio, &with_lag] {
        let first = write_updates(&mut conn, topic);
        first_sentinel = first.get("sentinel").cloned();
        wait_compacted(&broker, topic, &wanted(first));
    }
    let second: Vec<_> = [&by_ratio, &with_lag]
        .iter()
        .map(|t| write_updates(&mut conn, t))
        .collect();
    // The lagged topic is compacted again: the first round's survivors are superseded,
    // but for its sentinel, whose successor sits in the active segment (never compacted).
    let (offset, value) = first_sentinel.expect("a sentinel");
    let mut want = wanted(second[1].clone());
    want.push(("sentinel".into(), offset, value));
    want.sort_by_key(|(_, offset, _)| *offset);
    wait_compacted(&broker, &with_lag, &want);
    // …while the other, with as many cleaner passes, still holds superseded records.
    std::thread::sleep(Duration::from_millis(500));
    let left = read_all(&broker, &by_ratio);
    assert!(
        left.len() > second[0].len(),
        "{by_ratio} was compacted below its dirty ratio: {} records",
        left.len()
    );
}

/// Writes the updates, the tombstone and a last big record that seals the rest.
/// Returns (key → (offset, value)) of the latest record per key, sentinel included.
fn write_updates(conn: &mut RawConn, topic: &str) -> BTreeMap<String, (i64, Option<Vec<u8>>)> {
    let mut latest = BTreeMap::new();
    for round in 0..ROUNDS {
        for key in 0..KEYS {
            let name = format!("k{key}");
            let value = value_of(key, round);
            let (code, offset) = produce(conn, topic, 0, one(&name, Some(value.clone())));
            assert_eq!(code, NONE);
            latest.insert(name, (offset, Some(value)));
        }
    }
    let name = format!("k{TOMBSTONED_KEY}");
    let (code, offset) = produce(conn, topic, 0, one(&name, None));
    assert_eq!(code, NONE);
    latest.insert(name, (offset, None));
    // Bigger than what is left of a 2 KiB segment: everything above is sealed.
    let sentinel = vec![b's'; 1900];
    let (code, offset) = produce(conn, topic, 0, one("sentinel", Some(sentinel.clone())));
    assert_eq!(code, NONE);
    latest.insert("sentinel".into(), (offset, Some(sentinel)));
    latest
}

/// Everything a consumer from the beginning reads: (key, offset, value).
fn read_all(broker: &TestBroker, topic: &str) -> Vec<(String, i64, Option<Vec<u8>>)> {
    let mut config = consumer_config(broker);
    config.set("check.crcs", "true");
    let consumer = create_consumer(&config);
    assign(&consumer, topic, &[0], Offset::Beginning);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, CLIENT_TIMEOUT)
        .expect("watermarks");
    let mut out = Vec::new();
    let deadline = Instant::now() + CLIENT_TIMEOUT * 2;
    loop {
        assert!(
            Instant::now() < deadline,
            "did not reach {high}: {}",
            out.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.expect("consume");
        let key = String::from_utf8(m.key().expect("every record has a key").to_vec())
            .expect("utf-8 key");
        out.push((key, m.offset(), m.payload().map(<[u8]>::to_vec)));
        if m.offset() == high - 1 {
            return out;
        }
    }
}

fn log_bytes(broker: &TestBroker, topic: &str) -> u64 {
    let dir: PathBuf = broker.data_dir().join(format!("{topic}-0"));
    std::fs::read_dir(&dir)
        .expect("partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::metadata(p).expect("metadata").len())
        .sum()
}

/// Waits until a consumer from the beginning reads exactly `want` (in offset order).
fn wait_compacted(broker: &TestBroker, topic: &str, want: &[(String, i64, Option<Vec<u8>>)]) {
    let deadline = Instant::now() + COMPACTION_WAIT;
    loop {
        let got = read_all(broker, topic);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not compacted to the latest values within {COMPACTION_WAIT:?}: {} records read, {} expected",
            got.len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_offsets_across_kill9() {
    let mut broker = TestBroker::start(&[
        "--set",
        "retention_check_interval_ms=100",
        "--set",
        "log_cleaner_backoff_ms=100",
    ]);
    let mut conn = RawConn::connect(&broker);
    let kept = unique_topic("compacted-keep-tombstones");
    let purged = unique_topic("compacted-purge-tombstones");
    create_compacted(&mut conn, &kept, "86400000");
    create_compacted(&mut conn, &purged, "0");

    for (topic, tombstones_kept) in [(&kept, true), (&purged, false)] {
        let latest = write_updates(&mut conn, topic);
        let end = latest.values().map(|(o, _)| *o).max().expect("records") + 1;
        assert_eq!(end as usize, KEYS * ROUNDS + 2);
        let mut want: Vec<(String, i64, Option<Vec<u8>>)> = latest
            .into_iter()
            .filter(|(_, (_, value))| value.is_some() || tombstones_kept)
            .map(|(key, (offset, value))| (key, offset, value))
            .collect();
        want.sort_by_key(|(_, offset, _)| *offset);

        let bytes_before = log_bytes(&broker, topic);
        wait_compacted(&broker, topic, &want);
        assert!(
            log_bytes(&broker, topic) < bytes_before,
            "{topic}: no bytes reclaimed"
        );

        // The end is untouched (no offset was reassigned); the start moves at most to
        // the first record left (a first segment emptied by compaction is deleted).
        let watermarks = |broker: &TestBroker| {
            create_consumer(&consumer_config(broker))
                .fetch_watermarks(topic, 0, CLIENT_TIMEOUT)
                .expect("watermarks")
        };
        let (low, high) = watermarks(&broker);
        assert!(low <= want[0].1 && high == end, "{topic}: {low}..{high}");

        broker.kill9();
        // As if the broker died while writing a rewritten segment: ignored and removed.
        let dir = broker.data_dir().join(format!("{topic}-0"));
        let stray = dir.join("00000000000000000000.log.cleaned");
        std::fs::write(&stray, b"half a segment").expect("stray file");
        broker.restart();
        assert!(!stray.exists(), "{} left behind", stray.display());
        conn = RawConn::connect(&broker);
        assert_eq!(read_all(&broker, topic), want, "{topic} after kill -9");
        assert_eq!(watermarks(&broker), (low, high), "{topic} after kill -9");
        // Appends continue at the same end.
        let (code, offset) = produce(&mut conn, topic, 0, one("after", Some(b"x".to_vec())));
        assert_eq!((code, offset), (NONE, end), "{topic}");
    }
}

#[test]
fn an_idempotent_producer_continues_after_compaction_and_kill9() {
    let mut broker = TestBroker::start(&[
        "--set",
        "retention_check_interval_ms=100",
        "--set",
        "log_cleaner_backoff_ms=100",
    ]);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("compacted-idempotent");
    create_compacted(&mut conn, &topic, "86400000");
    let mut config = producer_config(&broker);
    config.set("enable.idempotence", "true");
    let producer = create_producer(&config);
    let keyed = |key: usize, value: String| TestRecord {
        key: Some(format!("k{key}").into_bytes()),
        ..TestRecord::value(value)
    };
    // A first batch that compaction keeps (its key is never written again): the
    // producer's state after a restart comes from what is left.
    let first = TestRecord {
        key: Some(b"kept".to_vec()),
        ..TestRecord::value("kept")
    };
    for d in common::rdkafka_util::produce(&producer, &topic, &[first]) {
        d.expect("idempotent delivery");
    }
    for round in 0..ROUNDS {
        let records: Vec<TestRecord> = (0..4)
            .map(|k| keyed(k, format!("{round}-{}", "p".repeat(VALUE_BYTES))))
            .collect();
        for d in common::rdkafka_util::produce(&producer, &topic, &records) {
            d.expect("idempotent delivery");
        }
    }
    // Another (plain) producer supersedes every key, so compaction would empty the
    // idempotent producer's last batch, then a big record seals it all.
    for k in 0..4 {
        let (code, _) = produce(
            &mut conn,
            &topic,
            0,
            one(&format!("k{k}"), Some(b"raw".to_vec())),
        );
        assert_eq!(code, NONE);
    }
    let before = log_bytes(&broker, &topic);
    let (code, _) = produce(
        &mut conn,
        &topic,
        0,
        one("sentinel", Some(vec![b's'; 1900])),
    );
    assert_eq!(code, NONE);
    let deadline = Instant::now() + COMPACTION_WAIT;
    while log_bytes(&broker, &topic) >= before {
        assert!(Instant::now() < deadline, "{topic} never compacted");
        std::thread::sleep(Duration::from_millis(100));
    }

    broker.kill9();
    broker.restart();
    // The same producer (same id, next sequence) goes on without a sequence error.
    let more: Vec<TestRecord> = (0..4).map(|k| keyed(k, "after".into())).collect();
    for d in common::rdkafka_util::produce(&producer, &topic, &more) {
        d.expect("idempotent delivery after compaction and restart");
    }
}
