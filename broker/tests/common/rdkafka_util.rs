//! rdkafka helpers: client configurations with short timeouts, a producer that
//! collects its delivery reports, an assign-only consumer loop, and a small bounded
//! `block_on` for the admin client's futures.
//!
//! Consumer groups are not implemented by the broker yet: consumers here never
//! subscribe and never commit; they `assign()` explicit offsets. librdkafka refuses
//! `assign()` without a `group.id` ("Local: Unknown group"), so one is set.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::TestBroker;

/// Upper bound for one librdkafka request (socket, metadata, admin operation).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a produced message to be acknowledged or failed.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings every client gets: bounded timeouts, IPv4 loopback, no telemetry calls.
fn base_config(broker: &TestBroker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", CLIENT_TIMEOUT.as_millis().to_string())
        .set("socket.connection.setup.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("client.id", "strikemq-tests");
    config
}

/// A producer configuration: acks=all, every message acknowledged or failed within
/// `MESSAGE_TIMEOUT`.
pub fn producer_config(broker: &TestBroker) -> ClientConfig {
    let mut config = base_config(broker);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("request.timeout.ms", CLIENT_TIMEOUT.as_millis().to_string())
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        )
        .set("queue.buffering.max.messages", "100000");
    config
}

/// An assign-only consumer configuration (no group, no commits, CRC checks on).
pub fn consumer_config(broker: &TestBroker) -> ClientConfig {
    let mut config = base_config(broker);
    config
        .set("group.id", "strikemq-tests-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "100");
    config
}

pub fn admin_config(broker: &TestBroker) -> ClientConfig {
    base_config(broker)
}

/// One record to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl TestRecord {
    pub fn value(value: impl Into<Vec<u8>>) -> TestRecord {
        TestRecord {
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ConsumedRecord {
    /// True when key, value and headers equal those of `sent`.
    pub fn same_content(&self, sent: &TestRecord) -> bool {
        self.key == sent.key && self.value == sent.value && self.headers == sent.headers
    }
}

/// Where a produced record ended up, or why it did not.
pub type Delivery = Result<(i32, i64), KafkaError>;

/// Producer context that stores each delivery report under the record's index.
#[derive(Default)]
pub struct DeliveryLog {
    reports: Mutex<BTreeMap<usize, Delivery>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, index: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index, outcome);
    }
}

pub type TestProducer = BaseProducer<DeliveryLog>;

pub fn create_producer(config: &ClientConfig) -> TestProducer {
    TestProducer::from_config_and_context(config, DeliveryLog::default()).expect("create producer")
}

/// Sends every record (retrying while the local queue is full), waits until each one
/// is acknowledged or failed, and returns the delivery reports in record order.
pub fn produce(producer: &TestProducer, topic: &str, records: &[TestRecord]) -> Vec<Delivery> {
    let first_index = {
        let reports = producer.context().reports.lock().expect("reports");
        reports.keys().next_back().map_or(0, |last| last + 1)
    };
    let deadline = Instant::now() + MESSAGE_TIMEOUT + CLIENT_TIMEOUT;
    for (i, record) in records.iter().enumerate() {
        let headers = record
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                })
            });
        let mut base: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, first_index + i).headers(headers);
        if let Some(partition) = record.partition {
            base = base.partition(partition);
        }
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            base = base.payload(value.as_slice());
        }
        loop {
            match producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    assert!(
                        Instant::now() < deadline,
                        "producer queue stayed full until the deadline"
                    );
                    base = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("send of record {i} to {topic} failed locally: {e}"),
            }
        }
    }
    let wanted = first_index..first_index + records.len();
    loop {
        producer.poll(Duration::from_millis(10));
        let reports = producer.context().reports.lock().expect("reports");
        if reports.range(wanted.clone()).count() == records.len() {
            return reports.range(wanted).map(|(_, d)| d.clone()).collect();
        }
        drop(reports);
        assert!(
            Instant::now() < deadline,
            "not every record to {topic} was acknowledged or failed before the deadline"
        );
    }
}

/// `produce`, and fails unless every record was acknowledged.
pub fn produce_ok(producer: &TestProducer, topic: &str, records: &[TestRecord]) -> Vec<(i32, i64)> {
    produce(producer, topic, records)
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.unwrap_or_else(|e| panic!("record {i} to {topic} failed: {e}")))
        .collect()
}

/// A consumer whose context is given (e.g. to capture statistics).
pub fn create_consumer_with<C: ConsumerContext + 'static>(
    config: &ClientConfig,
    context: C,
) -> BaseConsumer<C> {
    BaseConsumer::from_config_and_context(config, context).expect("create consumer")
}

pub fn create_consumer(config: &ClientConfig) -> BaseConsumer {
    BaseConsumer::from_config(config).expect("create consumer")
}

/// Assigns `partitions` of `topic`, each from `offset`.
pub fn assign<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    offset: Offset,
) {
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition_offset(topic, p, offset)
            .expect("add partition offset");
    }
    consumer.assign(&list).expect("assign");
}

pub fn to_consumed(message: &impl Message) -> ConsumedRecord {
    ConsumedRecord {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Polls until exactly `count` records arrived (failing on any consumer error or at
/// `timeout`), then keeps polling for `quiet` to prove that nothing more arrives.
pub fn consume_exactly<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    count: usize,
    timeout: Duration,
    quiet: Duration,
) -> Vec<ConsumedRecord> {
    let mut out = Vec::with_capacity(count);
    let deadline = Instant::now() + timeout;
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {count} records within {timeout:?}",
            out.len()
        );
        consume_one(consumer, &mut out);
    }
    let quiet_end = Instant::now() + quiet;
    while Instant::now() < quiet_end {
        consume_one(consumer, &mut out);
    }
    assert_eq!(
        out.len(),
        count,
        "more records than produced arrived; extra: {:?}",
        out.get(count..)
            .map(|extra| extra.iter().take(3).collect::<Vec<_>>())
    );
    out
}

fn consume_one<C: ConsumerContext>(consumer: &BaseConsumer<C>, out: &mut Vec<ConsumedRecord>) {
    match consumer.poll(Duration::from_millis(100)) {
        None => {}
        Some(Ok(message)) => out.push(to_consumed(&message)),
        Some(Err(e)) => panic!("consumer error after {} records: {e}", out.len()),
    }
}

/// Groups records by partition, keeping their order.
pub fn by_partition(records: Vec<ConsumedRecord>) -> BTreeMap<i32, Vec<ConsumedRecord>> {
    let mut map: BTreeMap<i32, Vec<ConsumedRecord>> = BTreeMap::new();
    for r in records {
        map.entry(r.partition).or_default().push(r);
    }
    map
}

/// Asserts that offsets in one partition are `first, first+1, ...` without gaps or
/// repeats.
pub fn assert_contiguous(records: &[ConsumedRecord], first: i64) {
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.offset,
            first + i as i64,
            "partition {} offset #{i} is {} (expected {})",
            r.partition,
            r.offset,
            first + i as i64
        );
    }
}

/// Metadata for `topic` as seen by a fresh producer-configured client (which asks the
/// broker to auto-create, like a producer does).
pub fn topic_metadata(broker: &TestBroker, topic: &str) -> Metadata {
    let producer: BaseProducer = producer_config(broker).create().expect("create producer");
    producer
        .client()
        .fetch_metadata(Some(topic), CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"))
}

/// All topics in the cluster and their partition counts (no auto-creation).
pub fn cluster_topics(broker: &TestBroker) -> BTreeMap<String, usize> {
    let consumer = create_consumer(&consumer_config(broker));
    let metadata = consumer
        .fetch_metadata(None, CLIENT_TIMEOUT)
        .expect("cluster metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

pub fn create_admin(broker: &TestBroker) -> AdminClient<DefaultClientContext> {
    admin_config(broker).create().expect("create admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CLIENT_TIMEOUT))
        .operation_timeout(Some(Timeout::After(CLIENT_TIMEOUT)))
}

/// Creates `topic` with `partitions` partitions through the admin client and returns
/// the per-topic result.
pub fn admin_create_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
) -> TopicResult {
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let mut results = block_on(
        admin.create_topics([&new_topic], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .unwrap_or_else(|e| panic!("CreateTopics request for {topic:?} failed: {e}"));
    assert_eq!(results.len(), 1, "one result per topic");
    results.remove(0)
}

/// Creates a topic and fails unless it worked.
pub fn create_topic(broker: &TestBroker, topic: &str, partitions: i32) {
    let admin = create_admin(broker);
    if let Err((name, code)) = admin_create_topic(&admin, topic, partitions) {
        panic!("creating topic {name} with {partitions} partitions failed: {code:?}");
    }
}

/// Runs a future to completion on this thread, failing after `timeout`. The admin
/// client's futures are completed by librdkafka's own threads, so parking and
/// waking is all that is needed.
pub fn block_on<F: Future>(future: F, timeout: Duration) -> F::Output {
    struct Unparker(Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let now = Instant::now();
        assert!(now < deadline, "future not ready within {timeout:?}");
        thread::park_timeout((deadline - now).min(Duration::from_millis(50)));
    }
}
