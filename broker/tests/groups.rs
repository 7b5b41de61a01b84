//! Consumer groups against the real binary: rdkafka consumers that subscribe (eager and
//! cooperative-sticky, dynamic and static members), members that vanish, committed
//! offsets across restarts (SIGTERM and SIGKILL), kafka-python and kcat -G, the admin
//! APIs, and hostile raw-protocol input.
//!
//! Consumers here use a 6 s session timeout and 500 ms heartbeats so that a vanished
//! member is noticed in seconds. No assertion is about speed: time bounds only catch
//! hangs, and measured figures are printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::raw::{self, RawConn};
use common::rdkafka_util::{
    admin_options, block_on, consumer_config, create_admin, create_producer, create_topic,
    produce_ok, producer_config, TestRecord, CLIENT_TIMEOUT,
};
use common::{unique_topic, wait_timeout, TestBroker};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Session timeout of every group member in these tests.
const SESSION_TIMEOUT_MS: u64 = 6_000;
const HEARTBEAT_INTERVAL_MS: u64 = 500;
/// Generous bound for a group to settle (several rebalances at most).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variables that turn the `child_consumer_process` test into the child.
const CHILD_ENV: &str = "STRIKEMQ_GROUPS_CHILD";
const CHILD_BOOTSTRAP_ENV: &str = "STRIKEMQ_GROUPS_CHILD_BOOTSTRAP";
const CHILD_TOPIC_ENV: &str = "STRIKEMQ_GROUPS_CHILD_TOPIC";
const CHILD_GROUP_ENV: &str = "STRIKEMQ_GROUPS_CHILD_GROUP";

fn group_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS.to_string())
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    config
}

fn group_consumer(broker: &TestBroker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = group_config(&broker.bootstrap(), group);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("create group consumer")
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// A record seen by a consumer of these tests.
type Seen = (i32, i64);

/// Polls every consumer (briefly each) until `done` holds for their assignments;
/// returns the records they received meanwhile, per consumer.
fn poll_until(
    consumers: &[&BaseConsumer],
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&[BTreeSet<i32>]) -> bool,
) -> Vec<Vec<Seen>> {
    let deadline = Instant::now() + timeout;
    let mut seen = vec![Vec::new(); consumers.len()];
    loop {
        for (i, c) in consumers.iter().enumerate() {
            if let Some(result) = c.poll(Duration::from_millis(20)) {
                let m = result.unwrap_or_else(|e| panic!("consumer {i} error: {e}"));
                seen[i].push((m.partition(), m.offset()));
            }
        }
        let assignments: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
        if done(&assignments) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; assignments {assignments:?}"
        );
    }
}

/// Every partition of `0..partitions` owned by exactly one consumer, each consumer
/// owning at least one.
fn split_among_all(assignments: &[BTreeSet<i32>], partitions: i32) -> bool {
    let total: usize = assignments.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = assignments.iter().flatten().copied().collect();
    assignments.iter().all(|a| !a.is_empty())
        && total == partitions as usize
        && union == (0..partitions).collect()
}

fn produce_spread(broker: &TestBroker, topic: &str, partitions: i32, per_partition: usize) {
    let producer = create_producer(&producer_config(broker));
    let records: Vec<TestRecord> = (0..partitions)
        .flat_map(|p| {
            (0..per_partition).map(move |i| TestRecord {
                partition: Some(p),
                ..TestRecord::value(format!("p{p}-{i}"))
            })
        })
        .collect();
    produce_ok(&producer, topic, &records);
}

#[test]
fn two_consumers_split_four_partitions_and_a_third_joins() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("split");
    create_topic(&broker, &topic, 4);
    let group = "split-group";

    let c1 = group_consumer(&broker, group, &[]);
    let c2 = group_consumer(&broker, group, &[]);
    c1.subscribe(&[&topic]).expect("subscribe");
    c2.subscribe(&[&topic]).expect("subscribe");
    poll_until(
        &[&c1, &c2],
        "two consumers to split 4 partitions",
        SETTLE_TIMEOUT,
        |a| split_among_all(a, 4),
    );

    let c3 = group_consumer(&broker, group, &[]);
    c3.subscribe(&[&topic]).expect("subscribe");
    let seen = poll_until(
        &[&c1, &c2, &c3],
        "three consumers to split 4 partitions",
        SETTLE_TIMEOUT,
        |a| split_among_all(a, 4),
    );
    assert!(
        seen.iter().all(Vec::is_empty),
        "nothing was produced: {seen:?}"
    );
}
