//! The real `strikemq` binary driven by librdkafka (the `rdkafka` crate): what a user
//! of a Kafka client sees. Each test starts its own broker.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::NewPartitions;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::statistics::Statistics;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset};

use common::rdkafka_util::*;
use common::{unique_topic, wait_until, TestBroker};

/// How long a test may take to read back what it produced.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a consumer keeps polling after the expected count to catch extras.
const QUIET: Duration = Duration::from_millis(500);

/// Deterministic, index-dependent, non-trivial bytes (incompressible enough that a
/// mix-up between records shows).
fn payload(index: usize, len: usize) -> Vec<u8> {
    let mut state = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn keyed_record(i: usize) -> TestRecord {
    let mut headers = vec![
        ("index".to_string(), Some(i.to_string().into_bytes())),
        ("trace".to_string(), Some(payload(i, 16))),
    ];
    if i % 7 == 0 {
        // A header without a value is legal and must survive as such.
        headers.push(("empty".to_string(), None));
    }
    TestRecord {
        partition: None,
        key: Some(format!("key-{i}").into_bytes()),
        value: Some(format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes()),
        headers,
    }
}

/// Consumes every partition of `topic` from the beginning and checks that each
/// partition holds exactly the records whose deliveries landed there, in the order
/// they were sent, at contiguous offsets starting at 0 and at the offsets the
/// producer was told.
fn assert_log_matches(
    broker: &TestBroker,
    topic: &str,
    partitions: &[i32],
    sent: &[TestRecord],
    deliveries: &[(i32, i64)],
    consumer_settings: &[(&str, &str)],
) {
    let mut config = consumer_config(broker);
    for (k, v) in consumer_settings {
        config.set(*k, *v);
    }
    let consumer = create_consumer(&config);
    assign(&consumer, topic, partitions, Offset::Beginning);
    let consumed = by_partition(consume_exactly(
        &consumer,
        sent.len(),
        CONSUME_TIMEOUT,
        QUIET,
    ));

    let mut expected: BTreeMap<i32, Vec<(i64, &TestRecord)>> = BTreeMap::new();
    for (record, &(partition, offset)) in sent.iter().zip(deliveries) {
        expected
            .entry(partition)
            .or_default()
            .push((offset, record));
    }
    for (partition, want) in &expected {
        let got = consumed
            .get(partition)
            .unwrap_or_else(|| panic!("nothing read from partition {partition}"));
        assert_contiguous(got, 0);
        assert_eq!(
            got.len(),
            want.len(),
            "record count in partition {partition}"
        );
        for (got, (offset, sent)) in got.iter().zip(want) {
            assert_eq!(got.offset, *offset, "acked offset vs read offset");
            assert!(
                got.same_content(sent),
                "partition {partition} offset {}: read {got:?}, sent {sent:?}",
                got.offset
            );
        }
    }
    let unexpected: Vec<_> = consumed
        .keys()
        .filter(|p| !expected.contains_key(p))
        .collect();
    assert!(
        unexpected.is_empty(),
        "records in partitions nothing was sent to: {unexpected:?}"
    );
}

#[test]
fn ten_thousand_keyed_records_with_headers_read_back_exactly_across_three_partitions() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("keyed");
    create_topic(&broker, &topic, 3);

    let sent: Vec<TestRecord> = (0..10_000).map(keyed_record).collect();
    let producer = create_producer(&producer_config(&broker));
    let deliveries = produce_ok(&producer, &topic, &sent);

    let used: std::collections::BTreeSet<i32> = deliveries.iter().map(|d| d.0).collect();
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2],
        "keys should spread over all 3 partitions"
    );
    assert_log_matches(&broker, &topic, &[0, 1, 2], &sent, &deliveries, &[]);
}

/// Produces a few hundred compressible records with `codec` and reads them back.
fn compression_round_trip(codec: &str) {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic(&format!("codec-{codec}"));
    create_topic(&broker, &topic, 1);

    let sent: Vec<TestRecord> = (0..400)
        .map(|i| {
            let mut record = keyed_record(i);
            // Repetitive text so the codec really compresses.
            record.value = Some(format!("{codec} record {i} ").repeat(20).into_bytes());
            record
        })
        .collect();
    let mut config = producer_config(&broker);
    config
        .set("compression.codec", codec)
        .set("linger.ms", "20")
        .set("batch.num.messages", "100");
    let producer = create_producer(&config);
    let deliveries = produce_ok(&producer, &topic, &sent);
    assert_log_matches(&broker, &topic, &[0], &sent, &deliveries, &[]);
}

#[test]
fn gzip_compressed_records_round_trip() {
    compression_round_trip("gzip");
}

#[test]
fn snappy_compressed_records_round_trip() {
    compression_round_trip("snappy");
}

#[test]
fn lz4_compressed_records_round_trip() {
    compression_round_trip("lz4");
}

#[test]
fn zstd_compressed_records_round_trip() {
    compression_round_trip("zstd");
}

const MIB: usize = 1024 * 1024;

/// A producer allowed to send requests of up to 4 MiB (so the broker, not
/// librdkafka, decides whether a 2 MiB record is too large).
fn big_producer(broker: &TestBroker) -> TestProducer {
    let mut config = producer_config(broker);
    config.set("message.max.bytes", (4 * MIB).to_string());
    create_producer(&config)
}

/// Consumer settings that allow fetching multi-MiB records.
const BIG_FETCH: &[(&str, &str)] = &[
    ("fetch.max.bytes", "8388608"),
    ("max.partition.fetch.bytes", "8388608"),
    ("receive.message.max.bytes", "16777216"),
];

#[test]
fn two_mib_record_in_one_produce_request_reads_back_byte_exact() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("big");
    create_topic(&broker, &topic, 1);

    let sent = vec![
        TestRecord::value(payload(1, 2 * MIB)),
        TestRecord::value(b"small record after the big one".to_vec()),
    ];
    let producer = big_producer(&broker);
    let deliveries = produce_ok(&producer, &topic, &sent);
    assert_log_matches(&broker, &topic, &[0], &sent, &deliveries, BIG_FETCH);
}

#[test]
fn record_batch_above_max_message_bytes_fails_with_message_too_large_and_broker_keeps_serving() {
    let mut broker = TestBroker::start(&["--set", "max_message_bytes=1048576"]);
    let topic = unique_topic("too-large");
    create_topic(&broker, &topic, 1);
    let producer = big_producer(&broker);

    let outcome = produce(&producer, &topic, &[TestRecord::value(payload(2, 2 * MIB))]);
    match &outcome[0] {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("expected MessageSizeTooLarge for a 2 MiB record, got {other:?}"),
    }
    broker.assert_running();

    // Below the limit still works, on the same producer and a fresh consumer.
    let sent = vec![TestRecord::value(payload(3, 512 * 1024))];
    let deliveries = produce_ok(&producer, &topic, &sent);
    assert_log_matches(&broker, &topic, &[0], &sent, &deliveries, BIG_FETCH);
}

#[test]
fn consumer_reads_a_fifty_mib_backlog_completely() {
    const COUNT: usize = 51_200;
    const SIZE: usize = 1024;
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("backlog");
    create_topic(&broker, &topic, 1);

    let sent: Vec<TestRecord> = (0..COUNT)
        .map(|i| {
            let mut value = payload(i, SIZE);
            value[..8].copy_from_slice(&(i as u64).to_le_bytes());
            TestRecord::value(value)
        })
        .collect();
    let producer = create_producer(&producer_config(&broker));
    produce_ok(&producer, &topic, &sent);
    drop(sent);

    let consumer = create_consumer(&consumer_config(&broker));
    assign(&consumer, &topic, &[0], Offset::Beginning);
    let consumed = consume_exactly(&consumer, COUNT, Duration::from_secs(120), QUIET);
    assert_contiguous(&consumed, 0);
    for (i, record) in consumed.iter().enumerate() {
        let mut want = payload(i, SIZE);
        want[..8].copy_from_slice(&(i as u64).to_le_bytes());
        assert!(
            record.value.as_deref() == Some(&want[..]),
            "record {i} differs from what was sent"
        );
    }
}

#[test]
fn consumer_with_check_crcs_reads_plain_and_compressed_batches_without_error() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("crc");
    create_topic(&broker, &topic, 2);

    let mut sent: Vec<TestRecord> = (0..500).map(keyed_record).collect();
    let mut deliveries = produce_ok(&create_producer(&producer_config(&broker)), &topic, &sent);
    let compressed: Vec<TestRecord> = (500..1000).map(keyed_record).collect();
    let mut config = producer_config(&broker);
    config.set("compression.codec", "lz4");
    deliveries.extend(produce_ok(&create_producer(&config), &topic, &compressed));
    sent.extend(compressed);

    assert_log_matches(
        &broker,
        &topic,
        &[0, 1],
        &sent,
        &deliveries,
        &[("check.crcs", "true")],
    );
}

#[test]
fn idempotent_producer_writes_each_record_exactly_once_in_order() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("idempotent");
    create_topic(&broker, &topic, 1);

    let mut config = producer_config(&broker);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("batch.num.messages", "50");
    let producer = create_producer(&config);
    let sent: Vec<TestRecord> = (0..3_000).map(keyed_record).collect();
    let deliveries = produce_ok(&producer, &topic, &sent);
    assert_log_matches(&broker, &topic, &[0], &sent, &deliveries, &[]);
}

#[test]
fn admin_client_creates_grows_and_deletes_topics_and_rejects_bad_requests() {
    let broker = TestBroker::start(&[]);
    let admin = create_admin(&broker);
    let topic = unique_topic("admin");

    assert_eq!(admin_create_topic(&admin, &topic, 3), Ok(topic.clone()));
    assert_eq!(cluster_topics(&broker).get(&topic), Some(&3));

    let grow = NewPartitions::new(&topic, 5);
    let results = block_on(
        admin.create_partitions([&grow], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("CreatePartitions request");
    assert_eq!(results, vec![Ok(topic.clone())]);
    assert_eq!(cluster_topics(&broker).get(&topic), Some(&5));

    assert_eq!(
        admin_create_topic(&admin, &topic, 1),
        Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists)),
        "creating an existing topic"
    );
    assert_eq!(
        admin_create_topic(&admin, "a$#!", 1),
        Err(("a$#!".to_string(), RDKafkaErrorCode::InvalidTopic)),
        "creating a topic with illegal characters"
    );
    assert!(!cluster_topics(&broker).contains_key("a$#!"));

    let results = block_on(
        admin.delete_topics(&[&topic], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("DeleteTopics request");
    assert_eq!(results, vec![Ok(topic.clone())]);
    wait_until("deleted topic to leave metadata", CLIENT_TIMEOUT, || {
        !cluster_topics(&broker).contains_key(&topic)
    });
}

/// How the broker goes down between the two halves of a restart test.
enum Shutdown {
    Graceful,
    Kill9,
}

/// Produces, takes the broker down, restarts it on the same data dir and port, reads
/// everything back, then produces more and checks that offsets continue without a gap.
fn restart_preserves_acknowledged_records(shutdown: Shutdown, extra_args: &[&str]) {
    let mut broker = TestBroker::start(extra_args);
    let topic = unique_topic("restart");
    create_topic(&broker, &topic, 2);
    let before: Vec<TestRecord> = (0..600).map(keyed_record).collect();
    let before_deliveries = {
        let producer = create_producer(&producer_config(&broker));
        produce_ok(&producer, &topic, &before)
    };

    match shutdown {
        Shutdown::Graceful => broker.stop(),
        Shutdown::Kill9 => broker.kill9(),
    }
    broker.restart();

    assert_log_matches(&broker, &topic, &[0, 1], &before, &before_deliveries, &[]);

    let after: Vec<TestRecord> = (600..1200).map(keyed_record).collect();
    let after_deliveries = {
        let producer = create_producer(&producer_config(&broker));
        produce_ok(&producer, &topic, &after)
    };
    for partition in [0, 1] {
        let old = before_deliveries
            .iter()
            .filter(|d| d.0 == partition)
            .count() as i64;
        if let Some(first_new) = after_deliveries.iter().find(|d| d.0 == partition) {
            assert_eq!(
                first_new.1, old,
                "partition {partition}: first offset after restart"
            );
        }
    }
    let all: Vec<TestRecord> = before.into_iter().chain(after).collect();
    let all_deliveries: Vec<(i32, i64)> = before_deliveries
        .into_iter()
        .chain(after_deliveries)
        .collect();
    assert_log_matches(&broker, &topic, &[0, 1], &all, &all_deliveries, &[]);
}

#[test]
fn restart_after_sigterm_keeps_every_record_and_continues_offsets() {
    restart_preserves_acknowledged_records(Shutdown::Graceful, &[]);
}

#[test]
fn restart_after_kill9_with_flush_always_keeps_every_acked_record_and_continues_offsets() {
    restart_preserves_acknowledged_records(Shutdown::Kill9, &["--set", "flush=always"]);
}

/// Captures the cumulative number of Fetch requests from librdkafka statistics.
#[derive(Default)]
struct FetchCounter {
    samples: Mutex<Vec<(Instant, i64)>>,
}

impl ClientContext for FetchCounter {
    fn stats(&self, statistics: Statistics) {
        let fetches = statistics
            .brokers
            .values()
            .map(|b| b.req.get("Fetch").copied().unwrap_or(0))
            .sum();
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Instant::now(), fetches));
    }
}

impl ConsumerContext for FetchCounter {}

#[test]
fn idle_consumer_long_polls_with_few_fetches_and_sees_a_new_record_quickly() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("long-poll");
    create_topic(&broker, &topic, 1);

    let mut config = consumer_config(&broker);
    config
        .set("statistics.interval.ms", "1000")
        // librdkafka's default: the broker is asked to hold an empty fetch 500 ms.
        .set("fetch.wait.max.ms", "500");
    let consumer = create_consumer_with(&config, FetchCounter::default());
    assign(&consumer, &topic, &[0], Offset::Beginning);

    let mut producer_config = producer_config(&broker);
    producer_config.set("linger.ms", "0");
    let producer = create_producer(&producer_config);
    producer
        .client()
        .fetch_metadata(Some(&topic), CLIENT_TIMEOUT)
        .expect("producer metadata warm-up");

    // Idle for a little over 5 s: statistics arrive every second; the first sample
    // (connection set-up) is skipped, the rest span at least three seconds.
    let idle_end = Instant::now() + Duration::from_millis(5_300);
    while Instant::now() < idle_end {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            panic!("empty topic delivered {:?}", message.map(|m| m.offset()));
        }
    }
    let samples = consumer.context().samples.lock().expect("samples").clone();
    assert!(
        samples.len() >= 5,
        "expected ≥ 5 statistics callbacks in 5.3 s, got {}",
        samples.len()
    );
    let (t0, f0) = samples[1];
    let (t1, f1) = samples[samples.len() - 1];
    let seconds = (t1 - t0).as_secs_f64();
    let rate = (f1 - f0) as f64 / seconds;
    eprintln!(
        "idle consumer: {} Fetch requests in {seconds:.2} s",
        f1 - f0
    );
    assert!(
        rate <= 5.0,
        "idle consumer made {rate:.1} Fetch requests per second (≤ 5 expected with long-poll)"
    );

    let sent_at = Instant::now();
    produce_ok(&producer, &topic, &[TestRecord::value(b"wake up".to_vec())]);
    let deadline = sent_at + Duration::from_secs(5);
    let message = loop {
        assert!(Instant::now() < deadline, "new record not seen within 5 s");
        match consumer.poll(Duration::from_millis(1)) {
            None => {}
            Some(Ok(m)) => break to_consumed(&m),
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    };
    let latency = sent_at.elapsed();
    eprintln!("produce → consume while long-polling: {latency:?}");
    assert_eq!(message.value.as_deref(), Some(&b"wake up"[..]));
    assert!(
        latency < Duration::from_millis(200),
        "a waiting consumer saw the new record only after {latency:?}"
    );
}

#[test]
fn producing_to_an_unknown_topic_creates_it_by_default() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("auto-created");
    let sent: Vec<TestRecord> = (0..10).map(keyed_record).collect();
    let producer = create_producer(&producer_config(&broker));
    let deliveries = produce_ok(&producer, &topic, &sent);
    assert_eq!(cluster_topics(&broker).get(&topic), Some(&1));
    assert_log_matches(&broker, &topic, &[0], &sent, &deliveries, &[]);
}

#[test]
fn with_auto_create_off_unknown_topics_are_reported_and_produce_fails() {
    let broker = TestBroker::start(&["--set", "auto_create_topics=false"]);
    let topic = unique_topic("not-created");

    let metadata = topic_metadata(&broker, &topic);
    let entry = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("metadata answers for the requested topic");
    assert_eq!(
        entry.error(),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    );

    let mut config = producer_config(&broker);
    config
        // Do not wait librdkafka's default 30 s before believing the broker.
        .set("topic.metadata.propagation.max.ms", "1000")
        .set("message.timeout.ms", "10000");
    let producer = create_producer(&config);
    let outcome = produce(&producer, &topic, &[TestRecord::value(b"nowhere".to_vec())]);
    match &outcome[0] {
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition,
        )) => {}
        other => panic!("expected an unknown-topic error, got {other:?}"),
    }
    assert!(!cluster_topics(&broker).contains_key(&topic));
}

/// Regression (found by the client compatibility matrix, compat/): ListOffsets by
/// timestamp answers with the first *record* whose timestamp qualifies, as Kafka does,
/// also inside a compressed batch; it used to answer the batch's first offset, so
/// `offsets_for_times` sent confluent-kafka and kafka-python back to offset 0.
#[test]
fn offsets_for_times_finds_the_record_inside_a_compressed_batch() {
    use rdkafka::producer::{BaseProducer, BaseRecord};
    use rdkafka::TopicPartitionList;

    let broker = TestBroker::start(&[]);
    let topic = unique_topic("ts-inside-batch");
    create_topic(&broker, &topic, 1);
    const BASE: i64 = 1_700_000_000_000;
    let mut config = producer_config(&broker);
    config
        .set("linger.ms", "200")
        .set("compression.type", "lz4");
    let producer: BaseProducer = config.create().expect("producer");
    for i in 0..100i64 {
        let key = format!("k{i}");
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(0)
                    .key(&key)
                    .payload("v")
                    .timestamp(BASE + i * 1000),
            )
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let consumer = create_consumer(&consumer_config(&broker));
    for (query, want_offset) in [
        (BASE, 0),
        (BASE + 50_500, 51),
        (BASE + 51_000, 51),
        (BASE + 99_000, 99),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(query))
            .unwrap();
        let found = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .expect("offsets_for_times");
        let offset = found.elements()[0].offset();
        assert_eq!(offset, Offset::Offset(want_offset), "timestamp {query}");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(BASE + 100_000))
        .unwrap();
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times");
    assert_eq!(found.elements()[0].offset(), Offset::End);
}
