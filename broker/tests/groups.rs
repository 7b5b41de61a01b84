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
    admin_options, block_on, create_admin, create_producer, create_topic, produce_ok,
    producer_config, TestRecord, CLIENT_TIMEOUT,
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

// ---------------------------------------------------------------------------------
// Raw-protocol group members.

mod raw_group {
    use bytes::Bytes;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    use super::common::raw::{topic_name, RawConn};

    pub const JOIN_VERSION: i16 = 5;
    pub const SYNC_VERSION: i16 = 3;
    pub const HEARTBEAT_VERSION: i16 = 3;
    pub const COMMIT_VERSION: i16 = 7;
    pub const FETCH_OFFSETS_VERSION: i16 = 7;

    // Error codes asserted here.
    pub const NONE: i16 = 0;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_REQUEST: i16 = 42;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;

    pub fn s(text: &str) -> StrBytes {
        StrBytes::from_string(text.to_string())
    }

    pub fn gid(text: &str) -> GroupId {
        GroupId(s(text))
    }

    pub fn join_request(
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        session_timeout_ms: i32,
        metadata: Bytes,
    ) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(gid(group))
            .with_session_timeout_ms(session_timeout_ms)
            .with_rebalance_timeout_ms(session_timeout_ms)
            .with_member_id(s(member_id))
            .with_group_instance_id(instance.map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(metadata)])
    }

    pub fn join(
        conn: &mut RawConn,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        session_timeout_ms: i32,
    ) -> JoinGroupResponse {
        let req = join_request(
            group,
            member_id,
            instance,
            session_timeout_ms,
            Bytes::from_static(b"m"),
        );
        conn.call(&req, JOIN_VERSION)
    }

    pub fn sync(
        conn: &mut RawConn,
        group: &str,
        member_id: &str,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncGroupResponse {
        let req = SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation_id)
            .with_member_id(s(member_id))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        conn.call(&req, SYNC_VERSION)
    }

    /// A member that joined (member-id-required round trip) and synced: (id, generation).
    pub fn stable_member(
        conn: &mut RawConn,
        group: &str,
        session_timeout_ms: i32,
    ) -> (String, i32) {
        let first = join(conn, group, "", None, session_timeout_ms);
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        let id = first.member_id.to_string();
        let joined = join(conn, group, &id, None, session_timeout_ms);
        assert_eq!(joined.error_code, NONE, "join: {joined:?}");
        let synced = sync(
            conn,
            group,
            &id,
            joined.generation_id,
            vec![(id.clone(), Bytes::from_static(b"a"))],
        );
        assert_eq!(synced.error_code, NONE);
        (id, joined.generation_id)
    }

    pub fn heartbeat(
        conn: &mut RawConn,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation_id)
            .with_member_id(s(member_id))
            .with_group_instance_id(instance.map(s));
        conn.call(&req, HEARTBEAT_VERSION).error_code
    }

    pub fn leave(conn: &mut RawConn, group: &str, member_id: &str) -> LeaveGroupResponse {
        let req = LeaveGroupRequest::default()
            .with_group_id(gid(group))
            .with_members(vec![MemberIdentity::default().with_member_id(s(member_id))]);
        conn.call(&req, 4)
    }

    /// OffsetCommit of one partition; returns its error code.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        conn: &mut RawConn,
        group: &str,
        member_id: &str,
        generation_id: i32,
        topic: &str,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: &str,
    ) -> i16 {
        let req = OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(s(member_id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(leader_epoch)
                    .with_committed_metadata(Some(s(metadata)))])]);
        let resp = conn.call(&req, COMMIT_VERSION);
        resp.topics[0].partitions[0].error_code
    }

    /// Committed (offset, leader epoch, metadata) per partition.
    pub fn committed(
        conn: &mut RawConn,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Vec<(i64, i32, String)> {
        let req = OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(partitions.to_vec())]));
        let resp = conn.call(&req, FETCH_OFFSETS_VERSION);
        assert_eq!(resp.error_code, NONE, "OffsetFetch");
        resp.topics[0]
            .partitions
            .iter()
            .map(|p| {
                assert_eq!(p.error_code, NONE);
                (
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub fn list(conn: &mut RawConn, states: &[&str]) -> Vec<(String, String)> {
        let req =
            ListGroupsRequest::default().with_states_filter(states.iter().map(|x| s(x)).collect());
        let resp = conn.call(&req, 4);
        assert_eq!(resp.error_code, NONE);
        resp.groups
            .iter()
            .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
            .collect()
    }

    pub fn describe(conn: &mut RawConn, group: &str) -> describe_groups_response::DescribedGroup {
        let req = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
        let mut resp = conn.call(&req, 5);
        resp.groups.remove(0)
    }
}

use raw_group::*;

// ---------------------------------------------------------------------------------
// A member in a child process, so that it can vanish (SIGKILL) without LeaveGroup.

/// Not a test of its own: the body of the child process that
/// `member_killed_without_leave_is_replaced_within_the_session_timeout` starts and kills.
/// It consumes slowly, committing each record synchronously, and reports on stdout.
#[test]
#[ignore = "child process of another test"]
fn child_consumer_process() {
    let Some(bootstrap) = std::env::var_os(CHILD_BOOTSTRAP_ENV) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let consumer: BaseConsumer = group_config(&bootstrap.to_string_lossy(), &var(CHILD_GROUP_ENV))
        .create()
        .expect("child consumer");
    consumer
        .subscribe(&[&var(CHILD_TOPIC_ENV)])
        .expect("subscribe");
    let mut last = BTreeSet::new();
    loop {
        let now = assigned(&consumer);
        if now != last {
            println!("CHILD assigned {}", join_partitions(&now));
            last = now;
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                println!("CHILD rec {} {}", m.partition(), m.offset());
                match consumer.commit_message(&m, CommitMode::Sync) {
                    Ok(()) => println!("CHILD commit {} {}", m.partition(), m.offset()),
                    Err(e) => println!("CHILD commitfail {} {} {e}", m.partition(), m.offset()),
                }
                thread::sleep(Duration::from_millis(100));
            }
            Some(Err(e)) => println!("CHILD error {e}"),
            None => {}
        }
    }
}

fn join_partitions(set: &BTreeSet<i32>) -> String {
    set.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

struct ChildConsumer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildConsumer {
    fn start(broker: &TestBroker, topic: &str, group: &str) -> ChildConsumer {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_consumer_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env(CHILD_BOOTSTRAP_ENV, broker.bootstrap())
            .env(CHILD_TOPIC_ENV, topic)
            .env(CHILD_GROUP_ENV, group)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child consumer");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness prints "test child_consumer_process ... " without a
                // newline, so the first report may share its line.
                if let Some((_, rest)) = line.split_once("CHILD ") {
                    if tx.send(rest.to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        ChildConsumer { child, lines }
    }

    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL child consumer");
        wait_timeout(&mut self.child, Duration::from_secs(10)).expect("child consumer reaped");
    }
}

impl Drop for ChildConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the child reported: partitions it holds, records and successful commits.
#[derive(Default, Debug)]
struct ChildReport {
    assigned: BTreeSet<i32>,
    records: Vec<Seen>,
    committed: BTreeSet<Seen>,
}

impl ChildReport {
    fn absorb(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> i64 { words[i].parse().expect("number") };
        match words.first().copied() {
            Some("assigned") => {
                self.assigned = words
                    .get(1)
                    .map(|w| {
                        w.split(',')
                            .map(|p| p.parse().expect("partition"))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            Some("rec") => self.records.push((num(1) as i32, num(2))),
            Some("commit") => {
                self.committed.insert((num(1) as i32, num(2)));
            }
            _ => {}
        }
    }
}

/// Consumes one record (if any) with `consumer`, committing it synchronously.
fn consume_and_commit(
    consumer: &BaseConsumer,
    seen: &mut Vec<Seen>,
    committed: &mut BTreeSet<Seen>,
) {
    if let Some(result) = consumer.poll(Duration::from_millis(20)) {
        let m = result.expect("consumer error");
        seen.push((m.partition(), m.offset()));
        if consumer.commit_message(&m, CommitMode::Sync).is_ok() {
            committed.insert((m.partition(), m.offset()));
        }
    }
}

#[test]
fn member_killed_without_leave_is_replaced_within_the_session_timeout() {
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: usize = 40;
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("killed");
    create_topic(&broker, &topic, PARTITIONS);
    let group = "killed-group";

    let mut child = ChildConsumer::start(&broker, &topic, group);
    let mut report = ChildReport::default();
    let consumer = group_consumer(&broker, group, &[]);
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut seen = Vec::new();
    let mut committed = BTreeSet::new();

    // Both members hold partitions; then records arrive and the child (slow: 100 ms
    // per record) commits a few of them before it is killed.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        consume_and_commit(&consumer, &mut seen, &mut committed);
        while let Ok(line) = child.lines.try_recv() {
            report.absorb(&line);
        }
        if split_among_all(&[assigned(&consumer), report.assigned.clone()], PARTITIONS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group never split with the child: {report:?}"
        );
    }
    produce_spread(&broker, &topic, PARTITIONS, PER_PARTITION);
    while report.committed.len() < 3 {
        consume_and_commit(&consumer, &mut seen, &mut committed);
        while let Ok(line) = child.lines.try_recv() {
            report.absorb(&line);
        }
        assert!(
            Instant::now() < deadline,
            "child committed nothing: {report:?}"
        );
    }
    let lost_partitions = report.assigned.clone();

    child.kill9();
    let killed_at = Instant::now();
    while let Ok(line) = child.lines.try_recv() {
        report.absorb(&line);
    }
    let bound = Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(15);
    while assigned(&consumer).len() != PARTITIONS as usize {
        consume_and_commit(&consumer, &mut seen, &mut committed);
        assert!(
            killed_at.elapsed() < bound,
            "partitions of the killed member never taken over"
        );
    }
    let takeover = killed_at.elapsed();
    eprintln!(
        "takeover of partitions {lost_partitions:?} {:.2} s after SIGKILL (session.timeout.ms {SESSION_TIMEOUT_MS}, heartbeat.interval.ms {HEARTBEAT_INTERVAL_MS})",
        takeover.as_secs_f64()
    );

    // Everything gets consumed.
    let want: BTreeSet<Seen> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION as i64).map(move |o| (p, o)))
        .collect();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let have: BTreeSet<Seen> = seen.iter().chain(&report.records).copied().collect();
        if have == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "records missing: {:?}",
            want.difference(&have).take(5).collect::<Vec<_>>()
        );
        consume_and_commit(&consumer, &mut seen, &mut committed);
    }
    // No record whose commit was acknowledged is delivered again.
    let mut deliveries: BTreeMap<Seen, usize> = BTreeMap::new();
    for r in seen.iter().chain(&report.records) {
        *deliveries.entry(*r).or_default() += 1;
    }
    for r in committed.iter().chain(&report.committed) {
        assert_eq!(
            deliveries.get(r),
            Some(&1),
            "record {r:?} was committed and still delivered again"
        );
    }
    let duplicates: Vec<&Seen> = deliveries
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(r, _)| r)
        .collect();
    eprintln!("redelivered (consumed but not committed before the kill): {duplicates:?}");
    assert!(duplicates.len() <= lost_partitions.len(), "{duplicates:?}");
}

#[test]
fn cooperative_sticky_members_keep_their_partitions_across_joins() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("coop");
    create_topic(&broker, &topic, 4);
    let group = "coop-group";
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];

    let c1 = group_consumer(&broker, group, &coop);
    c1.subscribe(&[&topic]).expect("subscribe");
    poll_until(
        &[&c1],
        "first member to own all partitions",
        SETTLE_TIMEOUT,
        |a| a[0].len() == 4,
    );
    let c2 = group_consumer(&broker, group, &coop);
    c2.subscribe(&[&topic]).expect("subscribe");
    poll_until(
        &[&c1, &c2],
        "two cooperative members to split",
        SETTLE_TIMEOUT,
        |a| split_among_all(a, 4),
    );
    let (had1, had2) = (assigned(&c1), assigned(&c2));

    let c3 = group_consumer(&broker, group, &coop);
    c3.subscribe(&[&topic]).expect("subscribe");
    poll_until(
        &[&c1, &c2, &c3],
        "three cooperative members to split",
        SETTLE_TIMEOUT,
        |a| split_among_all(a, 4),
    );
    let (now1, now2) = (assigned(&c1), assigned(&c2));
    assert!(
        now1.is_subset(&had1) && now2.is_subset(&had2),
        "sticky: {had1:?}->{now1:?}, {had2:?}->{now2:?}"
    );

    let mut conn = RawConn::connect(&broker);
    let described = raw_group::describe(&mut conn, group);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_data.as_str(), "cooperative-sticky");
    assert_eq!(described.members.len(), 3);
}

#[test]
fn static_member_restart_gets_its_partitions_back_without_a_rebalance() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("static");
    create_topic(&broker, &topic, 4);
    let group = "static-group";

    let a = group_consumer(&broker, group, &[("group.instance.id", "instance-a")]);
    let b = group_consumer(&broker, group, &[("group.instance.id", "instance-b")]);
    a.subscribe(&[&topic]).expect("subscribe");
    b.subscribe(&[&topic]).expect("subscribe");
    poll_until(&[&a, &b], "static members to split", SETTLE_TIMEOUT, |x| {
        split_among_all(x, 4)
    });
    let (had_a, had_b) = (assigned(&a), assigned(&b));
    let mut conn = RawConn::connect(&broker);
    let before: BTreeSet<String> = raw_group::describe(&mut conn, group)
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();

    // Static members do not send LeaveGroup when closed: the group keeps "a".
    drop(a);
    let a2 = group_consumer(&broker, group, &[("group.instance.id", "instance-a")]);
    a2.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while assigned(&a2) != had_a {
        a2.poll(Duration::from_millis(20));
        b.poll(Duration::from_millis(20));
        assert_eq!(assigned(&b), had_b, "the other member was rebalanced");
        assert!(
            Instant::now() < deadline,
            "restarted static member never got {had_a:?}"
        );
    }
    let described = raw_group::describe(&mut conn, group);
    assert_eq!(described.group_state.as_str(), "Stable");
    let after: BTreeSet<String> = described
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    assert_eq!(after.len(), 2);
    assert_eq!(
        before.intersection(&after).count(),
        1,
        "a's member id was replaced, b's kept"
    );
    let instances: BTreeSet<String> = described
        .members
        .iter()
        .filter_map(|m| m.group_instance_id.as_ref().map(|i| i.to_string()))
        .collect();
    assert_eq!(
        instances,
        ["instance-a".to_string(), "instance-b".to_string()].into()
    );
}

/// The first offset a fresh consumer of `group` receives per partition.
fn first_offsets(
    broker: &TestBroker,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let consumer = group_consumer(broker, group, &[]);
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut first = BTreeMap::new();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while first.len() < partitions as usize {
        if let Some(result) = consumer.poll(Duration::from_millis(50)) {
            let m = result.expect("consumer error");
            first.entry(m.partition()).or_insert(m.offset());
        }
        assert!(Instant::now() < deadline, "got only {first:?}");
    }
    first
}

#[test]
fn committed_offsets_survive_sigterm_and_sigkill_restarts() {
    let mut broker = TestBroker::start(&[]);
    let topic = unique_topic("resume");
    create_topic(&broker, &topic, 2);
    produce_spread(&broker, &topic, 2, 10);
    let group = "resume-group";

    // A subscribed consumer commits explicit positions, then SIGTERM.
    {
        let consumer = group_consumer(&broker, group, &[]);
        consumer.subscribe(&[&topic]).expect("subscribe");
        poll_until(&[&consumer], "assignment", SETTLE_TIMEOUT, |a| {
            a[0].len() == 2
        });
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(3))
            .expect("tpl");
        tpl.add_partition_offset(&topic, 1, Offset::Offset(7))
            .expect("tpl");
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    broker.restart();
    assert_eq!(
        first_offsets(&broker, group, &topic, 2),
        BTreeMap::from([(0, 3), (1, 7)])
    );

    // A raw commit with metadata and leader epoch, then SIGKILL right after the answer.
    let mut conn = RawConn::connect(&broker);
    assert_eq!(
        raw_group::commit(
            &mut conn,
            "killed-resume",
            "",
            -1,
            &topic,
            0,
            5,
            0,
            "meta-0"
        ),
        NONE
    );
    assert_eq!(
        raw_group::commit(
            &mut conn,
            "killed-resume",
            "",
            -1,
            &topic,
            1,
            9,
            0,
            "meta-1"
        ),
        NONE
    );
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    assert_eq!(
        raw_group::committed(&mut conn, "killed-resume", &topic, &[0, 1]),
        vec![(5, 0, "meta-0".to_string()), (9, 0, "meta-1".to_string())]
    );
    // The offsets of the first group survived two restarts (the compaction included).
    let first: Vec<i64> = raw_group::committed(&mut conn, group, &topic, &[0, 1])
        .iter()
        .map(|c| c.0)
        .collect();
    assert!(first[0] >= 3 && first[1] >= 7, "{first:?}");
    assert_eq!(
        first_offsets(&broker, "killed-resume", &topic, 2),
        BTreeMap::from([(0, 5), (1, 9)])
    );
    assert!(broker.data_dir().join("__consumer_offsets.log").is_file());
}

#[test]
fn commits_are_durable_with_flush_always() {
    let mut broker = TestBroker::start(&["--set", "flush=\"always\""]);
    let topic = unique_topic("durable");
    create_topic(&broker, &topic, 1);
    let mut conn = RawConn::connect(&broker);
    for offset in 1..=20 {
        assert_eq!(
            raw_group::commit(&mut conn, "durable", "", -1, &topic, 0, offset, -1, ""),
            NONE
        );
    }
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    assert_eq!(
        raw_group::committed(&mut conn, "durable", &topic, &[0]),
        vec![(20, -1, String::new())]
    );
}

/// Runs `program args`, killing it after `timeout`; returns (success, stdout, stderr).
fn run_bounded(program: &str, args: &[&str], timeout: Duration) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    assert!(
        status.is_some(),
        "{program} {args:?} did not finish within {timeout:?}; stderr:\n{err}"
    );
    (status.is_some_and(|s| s.success()), out, err)
}

#[test]
fn kafka_python_consumes_with_a_group_and_commits() {
    let has_kafka_python = Command::new("python3")
        .args(["-c", "import kafka"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !common::tool_or_skip(
        has_kafka_python,
        "kafka-python",
        "python3 -m pip install kafka-python",
    ) {
        return;
    }
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("kafka-python");
    create_topic(&broker, &topic, 2);
    produce_spread(&broker, &topic, 2, 5);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/groups_kafka_python.py");
    let bootstrap = broker.bootstrap();
    let (ok, out, err) = run_bounded(
        "python3",
        &[script, &bootstrap, &topic, "py-group", "10"],
        Duration::from_secs(60),
    );
    assert!(ok, "kafka-python failed; stderr:\n{err}");
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let records: BTreeSet<(i64, i64)> = report["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r[0].as_i64().expect("partition"),
                r[1].as_i64().expect("offset"),
            )
        })
        .collect();
    let want: BTreeSet<(i64, i64)> = (0..2).flat_map(|p| (0..5).map(move |o| (p, o))).collect();
    assert_eq!(records, want);
    assert_eq!(report["committed"], serde_json::json!({"0": 5, "1": 5}));
    let mut conn = RawConn::connect(&broker);
    let committed: Vec<i64> = raw_group::committed(&mut conn, "py-group", &topic, &[0, 1])
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(committed, vec![5, 5]);
}

#[test]
fn kcat_consumes_with_a_group_and_commits_on_exit() {
    let Some(kcat) = common::kcat_or_skip() else {
        return;
    };
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("kcat-group");
    create_topic(&broker, &topic, 2);
    produce_spread(&broker, &topic, 2, 3);
    let bootstrap = broker.bootstrap();
    let kcat = kcat.display().to_string();
    let (ok, out, err) = run_bounded(
        &kcat,
        &[
            "-b",
            &bootstrap,
            "-G",
            "kcat-group",
            &topic,
            "-c",
            "6",
            "-f",
            "%p %o\n",
            "-X",
            "broker.address.family=v4",
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "kcat -G failed; stderr:\n{err}");
    let lines: BTreeSet<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["0 0", "0 1", "0 2", "1 0", "1 1", "1 2"].into(),
        "stdout:\n{out}"
    );
    let mut conn = RawConn::connect(&broker);
    let committed: Vec<i64> = raw_group::committed(&mut conn, "kcat-group", &topic, &[0, 1])
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        committed,
        vec![3, 3],
        "kcat commits what it consumed when it closes"
    );
}

#[test]
fn list_describe_and_delete_groups_through_the_admin_client() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("admin-groups");
    create_topic(&broker, &topic, 2);
    let mut conn = RawConn::connect(&broker);
    // A group that only ever committed (assign + commit): listed as Empty.
    assert_eq!(
        raw_group::commit(&mut conn, "offsets-only", "", -1, &topic, 0, 1, -1, ""),
        NONE
    );

    let consumer = group_consumer(&broker, "live-group", &[("client.id", "admin-test-client")]);
    consumer.subscribe(&[&topic]).expect("subscribe");
    poll_until(&[&consumer], "assignment", SETTLE_TIMEOUT, |a| {
        a[0].len() == 2
    });

    let list = consumer
        .fetch_group_list(None, CLIENT_TIMEOUT)
        .expect("list groups");
    let names: BTreeSet<&str> = list.groups().iter().map(|g| g.name()).collect();
    assert!(
        names.contains("live-group") && names.contains("offsets-only"),
        "{names:?}"
    );
    let described = consumer
        .fetch_group_list(Some("live-group"), CLIENT_TIMEOUT)
        .expect("describe");
    let g = &described.groups()[0];
    assert_eq!(
        (g.state(), g.protocol_type(), g.protocol()),
        ("Stable", "consumer", "range")
    );
    assert_eq!(g.members().len(), 1);
    let m = &g.members()[0];
    assert_eq!(m.client_id(), "admin-test-client");
    assert!(
        m.metadata().is_some_and(|b| !b.is_empty()),
        "subscription metadata"
    );
    assert!(
        m.assignment().is_some_and(|b| !b.is_empty()),
        "assignment bytes"
    );
    assert_eq!(
        raw_group::list(&mut conn, &["Empty"]),
        vec![("offsets-only".to_string(), "Empty".to_string())]
    );
    assert_eq!(
        raw_group::list(&mut conn, &["stable"]),
        vec![("live-group".to_string(), "Stable".to_string())]
    );

    let admin = create_admin(&broker);
    let results = block_on(
        admin.delete_groups(&["live-group"], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("DeleteGroups");
    assert!(
        matches!(&results[0], Err((_, code)) if *code == rdkafka::types::RDKafkaErrorCode::NonEmptyGroup),
        "{results:?}"
    );
    // Its committed offsets keep the group after LeaveGroup (an empty group without
    // offsets is forgotten at once).
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(0))
        .expect("tpl");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(consumer); // LeaveGroup: the group becomes empty.
    let results = block_on(
        admin.delete_groups(
            &["live-group", "offsets-only", "never-existed"],
            &admin_options(),
        ),
        CLIENT_TIMEOUT * 2,
    )
    .expect("DeleteGroups");
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(
        matches!(&results[2], Err((_, code)) if *code == rdkafka::types::RDKafkaErrorCode::GroupIdNotFound),
        "{results:?}"
    );
    assert!(raw_group::list(&mut conn, &[]).is_empty());
    assert_eq!(
        raw_group::committed(&mut conn, "offsets-only", &topic, &[0]),
        vec![(-1, -1, String::new())]
    );
    assert_eq!(
        raw_group::describe(&mut conn, "live-group")
            .group_state
            .as_str(),
        "Dead"
    );
}

#[test]
fn offset_delete_removes_offsets_of_topics_the_group_does_not_consume() {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::OffsetDeleteRequest;
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    raw::create_topics(&mut conn, &["od-a"], 1);
    assert_eq!(
        raw_group::commit(&mut conn, "od", "", -1, "od-a", 0, 4, -1, ""),
        NONE
    );
    let request = |group: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(raw::topic_name("od-a"))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ]),
                OffsetDeleteRequestTopic::default()
                    .with_name(raw::topic_name("no-such-topic"))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ]),
            ])
    };
    let resp = conn.call(&request("od"), 0);
    assert_eq!(resp.error_code, NONE);
    let codes: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions[0].error_code))
        .collect();
    assert_eq!(
        codes,
        vec![("no-such-topic".to_string(), 3), ("od-a".to_string(), NONE)]
    );
    assert_eq!(
        raw_group::committed(&mut conn, "od", "od-a", &[0]),
        vec![(-1, -1, String::new())]
    );
    assert_eq!(
        conn.call(&request("never-existed"), 0).error_code,
        GROUP_ID_NOT_FOUND
    );
}

#[test]
fn hostile_group_requests_get_kafka_errors_and_the_broker_stays_healthy() {
    let mut broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    raw::create_topics(&mut conn, &["hostile"], 1);
    let group = "hostile-group";

    // Unknown group / member.
    assert_eq!(
        raw_group::heartbeat(&mut conn, "nobody-here", "m", None, 1),
        UNKNOWN_MEMBER_ID
    );
    let (id, generation) = raw_group::stable_member(&mut conn, group, 10_000);
    assert_eq!(
        raw_group::heartbeat(&mut conn, group, "someone-else", None, generation),
        UNKNOWN_MEMBER_ID
    );
    // Stale generation.
    assert_eq!(
        raw_group::heartbeat(&mut conn, group, &id, None, generation - 1),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        raw_group::commit(
            &mut conn,
            group,
            &id,
            generation - 1,
            "hostile",
            0,
            1,
            -1,
            ""
        ),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        raw_group::commit(&mut conn, group, "intruder", generation, "hostile", 0, 1, -1, ""),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        raw_group::sync(&mut conn, group, &id, generation + 7, vec![]).error_code,
        ILLEGAL_GENERATION
    );
    // Oversized offset metadata: per-partition error, nothing stored.
    let big = "m".repeat(5_000);
    assert_eq!(
        raw_group::commit(&mut conn, group, &id, generation, "hostile", 0, 1, -1, &big),
        OFFSET_METADATA_TOO_LARGE
    );
    assert_eq!(
        raw_group::committed(&mut conn, group, "hostile", &[0])[0].0,
        -1
    );

    // Oversized member metadata; oversized assignment from the leader.
    let huge = bytes::Bytes::from(vec![7u8; 300 * 1024]);
    let req = raw_group::join_request("hostile-2", "", None, 10_000, huge.clone());
    assert_eq!(conn.call(&req, JOIN_VERSION).error_code, INVALID_REQUEST);
    let first = raw_group::join(&mut conn, "hostile-2", "", None, 10_000);
    let joined = raw_group::join(&mut conn, "hostile-2", &first.member_id, None, 10_000);
    let m = joined.member_id.to_string();
    let synced = raw_group::sync(
        &mut conn,
        "hostile-2",
        &m,
        joined.generation_id,
        vec![(m.clone(), huge)],
    );
    assert_eq!(synced.error_code, INVALID_REQUEST);

    // Bad group ids and session timeouts.
    let long_id = "g".repeat(300);
    assert_eq!(
        raw_group::join(&mut conn, &long_id, "", None, 10_000).error_code,
        INVALID_GROUP_ID
    );
    assert_eq!(
        raw_group::join(&mut conn, "", "", None, 10_000).error_code,
        INVALID_GROUP_ID
    );
    assert_eq!(
        raw_group::join(&mut conn, "short-session", "", None, 10).error_code,
        INVALID_SESSION_TIMEOUT
    );

    // Static membership: a second join with the same instance id fences the first id.
    let first = raw_group::join(&mut conn, "fenced", "", Some("instance-1"), 10_000);
    assert_eq!(first.error_code, NONE);
    let s1 = raw_group::sync(
        &mut conn,
        "fenced",
        &first.member_id,
        first.generation_id,
        vec![],
    );
    assert_eq!(s1.error_code, NONE);
    let second = raw_group::join(&mut conn, "fenced", "", Some("instance-1"), 10_000);
    assert_ne!(second.member_id, first.member_id);
    assert_eq!(
        raw_group::heartbeat(
            &mut conn,
            "fenced",
            &first.member_id,
            Some("instance-1"),
            first.generation_id
        ),
        FENCED_INSTANCE_ID
    );

    // DeleteGroups on a live group; LeaveGroup of an unknown member.
    use kafka_protocol::messages::DeleteGroupsRequest;
    let del = conn.call(
        &DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]),
        2,
    );
    assert_eq!(del.results[0].error_code, NON_EMPTY_GROUP);
    let left = raw_group::leave(&mut conn, group, "not-a-member");
    assert_eq!(left.members[0].error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(
        raw_group::leave(&mut conn, group, &id).members[0].error_code,
        NONE
    );
    assert_eq!(
        raw_group::heartbeat(&mut conn, group, &id, None, generation),
        UNKNOWN_MEMBER_ID
    );
    raw::assert_broker_healthy(&mut broker);
}

#[test]
fn thousands_of_joins_from_one_client_stay_bounded_and_expire() {
    const JOINS: usize = 5_000;
    // 1 s sessions so that handed-out ids expire within the test (Kafka's minimum: 6 s).
    let mut broker = TestBroker::start(&["--set", "group_min_session_timeout_ms=1000"]);
    let mut conn = RawConn::connect(&broker);
    let rss_before_kib = broker.rss_kib();
    let mut codes: BTreeMap<i16, usize> = BTreeMap::new();
    // One group: member ids handed out until the group is full.
    for _ in 0..JOINS {
        *codes
            .entry(raw_group::join(&mut conn, "flood", "", None, 1_000).error_code)
            .or_default() += 1;
    }
    // The group fills up at 1,000 handed-out ids; on a slow machine some of those
    // expire (1 s session) during the loop and free their slot, so only bounds hold.
    assert_eq!(
        codes.keys().copied().collect::<Vec<_>>(),
        vec![MEMBER_ID_REQUIRED, GROUP_MAX_SIZE_REACHED],
        "{codes:?}"
    );
    assert!(codes[&MEMBER_ID_REQUIRED] >= 1_000, "{codes:?}");
    assert!(codes[&GROUP_MAX_SIZE_REACHED] > 0, "{codes:?}");
    // Many groups, each with one handed-out id and big member metadata.
    let metadata = bytes::Bytes::from(vec![1u8; 64 * 1024]);
    for i in 0..JOINS {
        let req = raw_group::join_request(&format!("flood-{i}"), "", None, 1_000, metadata.clone());
        assert_eq!(conn.call(&req, JOIN_VERSION).error_code, MEMBER_ID_REQUIRED);
    }
    let rss_after_kib = broker.rss_kib();
    eprintln!(
        "RSS {rss_before_kib} KiB before, {rss_after_kib} KiB after {} joins",
        2 * JOINS
    );
    assert!(
        rss_after_kib < rss_before_kib + 64 * 1024,
        "RSS grew from {rss_before_kib} KiB to {rss_after_kib} KiB"
    );
    // Handed-out ids that are never used expire with their session (1 s), and the
    // groups with them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !raw_group::list(&mut conn, &[]).is_empty() {
        assert!(Instant::now() < deadline, "flood groups never expired");
        thread::sleep(Duration::from_millis(100));
    }
    raw::assert_broker_healthy(&mut broker);
}

#[test]
fn three_consumer_rebalance_time_from_join_to_first_record_is_reported() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("timing");
    create_topic(&broker, &topic, 3);
    produce_spread(&broker, &topic, 3, 5);
    let started = Instant::now();
    let consumers: Vec<BaseConsumer> = (0..3)
        .map(|_| group_consumer(&broker, "timing-group", &[]))
        .collect();
    for c in &consumers {
        c.subscribe(&[&topic]).expect("subscribe");
    }
    let mut first_record: Vec<Option<Duration>> = vec![None; 3];
    let mut all_split: Option<Duration> = None;
    let deadline = started + SETTLE_TIMEOUT;
    while first_record.iter().any(Option::is_none) || all_split.is_none() {
        for (i, c) in consumers.iter().enumerate() {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(5)) {
                first_record[i].get_or_insert(started.elapsed());
            }
        }
        let a: Vec<BTreeSet<i32>> = consumers.iter().map(assigned).collect();
        if all_split.is_none() && split_among_all(&a, 3) {
            all_split = Some(started.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "no settled group: {first_record:?}"
        );
    }
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    eprintln!(
        "rebalance with three consumers: subscribe -> first records {} / {} / {}, each owning one partition after {} \
         (session.timeout.ms {SESSION_TIMEOUT_MS}, heartbeat.interval.ms {HEARTBEAT_INTERVAL_MS}, max.poll.interval.ms 300000 = rebalance timeout)",
        ms(first_record[0].unwrap_or_default()),
        ms(first_record[1].unwrap_or_default()),
        ms(first_record[2].unwrap_or_default()),
        ms(all_split.unwrap_or_default()),
    );
}

#[test]
fn a_joining_member_waits_parked_until_the_existing_member_rejoins() {
    use kafka_protocol::messages::JoinGroupRequest;
    let broker = TestBroker::start(&[]);
    let mut first = RawConn::connect(&broker);
    let mut second = RawConn::connect(&broker);
    let (id1, generation) = raw_group::stable_member(&mut first, "parked", 10_000);

    let id2 = raw_group::join(&mut second, "parked", "", None, 10_000).member_id;
    let req = raw_group::join_request(
        "parked",
        &id2,
        None,
        10_000,
        bytes::Bytes::from_static(b"m"),
    );
    let pending = second.send_request(&req, JOIN_VERSION);
    assert_eq!(
        raw_group::heartbeat(&mut first, "parked", &id1, None, generation),
        REBALANCE_IN_PROGRESS
    );
    let rejoined = raw_group::join(&mut first, "parked", &id1, None, 10_000);
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.leader.as_str(), id1);
    assert_eq!(rejoined.members.len(), 2);
    let joined = second.read_response::<JoinGroupRequest>(JOIN_VERSION, pending);
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.generation_id, generation + 1);
    assert!(
        joined.members.is_empty(),
        "only the leader gets the members"
    );
}

/// Context switches of the broker's group timer thread (it sleeps on a condvar, so
/// every wake-up is one voluntary switch).
fn timer_thread_wakeups(broker: &TestBroker) -> u64 {
    let tasks = format!("/proc/{}/task", broker.pid());
    for entry in std::fs::read_dir(&tasks).expect("task dir").flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == "group-timer" {
            let status = std::fs::read_to_string(entry.path().join("status")).expect("status");
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("voluntary_ctxt_switches");
        }
    }
    panic!("no group-timer thread in {tasks}");
}

#[test]
fn idle_coordinator_timer_sleeps_without_periodic_wakeups() {
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    raw::create_topics(&mut conn, &["idle"], 1);
    // A group that had a member and keeps committed offsets, then empties.
    let (id, generation) = raw_group::stable_member(&mut conn, "idle-group", 10_000);
    assert_eq!(
        raw_group::commit(
            &mut conn,
            "idle-group",
            &id,
            generation,
            "idle",
            0,
            1,
            -1,
            ""
        ),
        NONE
    );
    assert_eq!(
        raw_group::leave(&mut conn, "idle-group", &id).members[0].error_code,
        NONE
    );
    thread::sleep(Duration::from_millis(200));
    let before = timer_thread_wakeups(&broker);
    thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        timer_thread_wakeups(&broker),
        before,
        "the timer woke up with nothing to time"
    );
}

// ---------------------------------------------------------------------------------
// Commit fencing (librdkafka's 0118_commit_rebalance): a revoked member's commit must
// not overwrite the progress of the partition's new owner.

#[test]
fn revoked_members_commit_is_refused_and_the_new_owners_commit_is_kept() {
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("fence");
    create_topic(&broker, &topic, 4);
    produce_spread(&broker, &topic, 4, 10);
    let group = "fence-group";

    // The old owner, a raw member: Stable, owning everything.
    let mut old = RawConn::connect(&broker);
    let (old_id, old_generation) = raw_group::stable_member(&mut old, group, 10_000);

    // A real client joins: the group prepares a rebalance. While it does, the old owner
    // is still a member of the current generation and commits what it consumed, as a
    // consumer does when its partitions are revoked: kept.
    let new_owner = group_consumer(&broker, group, &[]);
    new_owner.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while raw_group::heartbeat(&mut old, group, &old_id, None, old_generation) == NONE {
        let _ = new_owner.poll(Duration::from_millis(50));
        assert!(Instant::now() < deadline, "the rebalance never started");
    }
    assert_eq!(
        raw_group::commit(
            &mut old,
            group,
            &old_id,
            old_generation,
            &topic,
            0,
            4,
            -1,
            ""
        ),
        NONE,
        "a current member's commit during the rebalance"
    );
    // Then the old owner leaves (0118: the closing consumer completes its unassign and
    // leaves); the new owner gets every partition and resumes where the old one left.
    assert_eq!(
        raw_group::leave(&mut old, group, &old_id).members[0].error_code,
        NONE
    );
    let seen = poll_until(
        &[&new_owner],
        "the new owner to get 4 partitions",
        SETTLE_TIMEOUT,
        |a| a[0].len() == 4,
    );
    let mut first_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in seen.into_iter().flatten() {
        first_offset.entry(p).or_insert(o);
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while !first_offset.contains_key(&0) {
        if let Some(m) = new_owner.poll(Duration::from_millis(50)) {
            let m = m.expect("record");
            first_offset.entry(m.partition()).or_insert(m.offset());
        }
        assert!(Instant::now() < deadline, "no record from partition 0");
    }
    assert_eq!(
        first_offset[&0], 4,
        "resumes at the old owner's kept commit"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(9))
        .expect("tpl");
    new_owner
        .commit(&tpl, CommitMode::Sync)
        .expect("new owner's commit");

    // The revoked member, slow, commits its stale position afterwards: refused, whether
    // it names its old member id and generation or nothing at all.
    assert_eq!(
        raw_group::commit(
            &mut old,
            group,
            &old_id,
            old_generation,
            &topic,
            0,
            5,
            -1,
            ""
        ),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        raw_group::commit(&mut old, group, "", -1, &topic, 0, 5, -1, ""),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(raw_group::committed(&mut old, group, &topic, &[0])[0].0, 9);
    let committed = new_owner
        .committed(Duration::from_secs(10))
        .expect("committed");
    let p0 = committed
        .find_partition(&topic, 0)
        .expect("partition 0")
        .offset();
    assert_eq!(p0, Offset::Offset(9), "the new owner's commit is kept");
}

/// Each fencing answer of OffsetCommit, Heartbeat and SyncGroup over the wire.
#[test]
fn commit_heartbeat_and_sync_fencing_error_codes_over_the_wire() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{JoinGroupRequest, OffsetCommitRequest};
    let broker = TestBroker::start(&[]);
    let mut a = RawConn::connect(&broker);
    let mut b = RawConn::connect(&broker);
    raw::create_topics(&mut a, &["wire-fence"], 1);
    let group = "wire-fence";
    let t = "wire-fence";
    let (a_id, gen1) = raw_group::stable_member(&mut a, group, 10_000);

    // Stable: stale generation, stranger, anonymous commit to a group with members.
    assert_eq!(
        raw_group::commit(&mut a, group, &a_id, gen1, t, 0, 1, -1, ""),
        NONE
    );
    assert_eq!(
        raw_group::commit(&mut a, group, &a_id, gen1 - 1, t, 0, 1, -1, ""),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        raw_group::commit(&mut a, group, "stranger", gen1, t, 0, 1, -1, ""),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        raw_group::commit(&mut a, group, "", -1, t, 0, 1, -1, ""),
        UNKNOWN_MEMBER_ID
    );

    // b joins: PreparingRebalance. Heartbeat and SyncGroup of the current member say
    // REBALANCE_IN_PROGRESS; its commit is still accepted.
    let b_id = raw_group::join(&mut b, group, "", None, 10_000).member_id;
    let b_join =
        raw_group::join_request(group, &b_id, None, 10_000, bytes::Bytes::from_static(b"m"));
    let b_pending = b.send_request(&b_join, JOIN_VERSION);
    assert_eq!(
        raw_group::heartbeat(&mut a, group, &a_id, None, gen1),
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        raw_group::sync(&mut a, group, &a_id, gen1, vec![]).error_code,
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        raw_group::commit(&mut a, group, &a_id, gen1, t, 0, 2, -1, ""),
        NONE
    );

    // a rejoins: CompletingRebalance until the leader syncs.
    let rejoined = raw_group::join(&mut a, group, &a_id, None, 10_000);
    let gen2 = rejoined.generation_id;
    assert_eq!(gen2, gen1 + 1);
    assert_eq!(
        b.read_response::<JoinGroupRequest>(JOIN_VERSION, b_pending)
            .error_code,
        NONE
    );
    assert_eq!(
        raw_group::commit(&mut b, group, &b_id, gen2, t, 0, 3, -1, ""),
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        raw_group::commit(&mut a, group, &a_id, gen1, t, 0, 3, -1, ""),
        ILLEGAL_GENERATION,
        "the generation the rebalance ended"
    );
    assert_eq!(raw_group::committed(&mut a, group, t, &[0])[0].0, 2);

    // Unknown group with a generation: GROUP_ID_NOT_FOUND from OffsetCommit v9,
    // ILLEGAL_GENERATION before; generation −1 (no group management) is accepted.
    let commit_v = |conn: &mut RawConn, generation: i32, member: &str, version: i16| {
        let req = OffsetCommitRequest::default()
            .with_group_id(gid("no-such-group"))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(raw::topic_name(t))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        conn.call(&req, version).topics[0].partitions[0].error_code
    };
    assert_eq!(commit_v(&mut a, 1, "m", 9), GROUP_ID_NOT_FOUND);
    assert_eq!(commit_v(&mut a, 1, "m", 8), ILLEGAL_GENERATION);
    assert_eq!(commit_v(&mut a, -1, "", 9), NONE);
    // Now the group exists (Empty, offsets only): a generation names no member of it.
    assert_eq!(commit_v(&mut a, 1, "m", 9), UNKNOWN_MEMBER_ID);
}

// ---------------------------------------------------------------------------------
// Broker settings of the coordinator and what DescribeGroups reports.

#[test]
fn describe_groups_reports_the_members_client_host() {
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    let (id, _) = raw_group::stable_member(&mut conn, "hosts", 10_000);
    let described = raw_group::describe(&mut conn, "hosts");
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].member_id.as_str(), id);
    // As Kafka writes it (Java's InetAddress.toString()).
    assert_eq!(described.members[0].client_host.as_str(), "/127.0.0.1");
}

#[test]
fn session_timeout_bounds_are_kafkas_by_default_and_configurable() {
    let broker = TestBroker::start(&[]);
    let mut conn = RawConn::connect(&broker);
    for (ms, expected) in [
        (5_999, INVALID_SESSION_TIMEOUT),
        (6_000, MEMBER_ID_REQUIRED),
        (1_800_000, MEMBER_ID_REQUIRED),
        (1_800_001, INVALID_SESSION_TIMEOUT),
    ] {
        assert_eq!(
            raw_group::join(&mut conn, "bounds", "", None, ms).error_code,
            expected,
            "session.timeout.ms {ms}"
        );
    }
    let broker = TestBroker::start(&[
        "--set",
        "group_min_session_timeout_ms=1000",
        "--set",
        "group_max_session_timeout_ms=20000",
    ]);
    let mut conn = RawConn::connect(&broker);
    for (ms, expected) in [
        (999, INVALID_SESSION_TIMEOUT),
        (1_000, MEMBER_ID_REQUIRED),
        (20_000, MEMBER_ID_REQUIRED),
        (20_001, INVALID_SESSION_TIMEOUT),
    ] {
        assert_eq!(
            raw_group::join(&mut conn, "bounds", "", None, ms).error_code,
            expected,
            "session.timeout.ms {ms} within 1000..=20000"
        );
    }
}

/// `group_initial_rebalance_delay_ms`: members that join an empty group within the
/// delay form its first generation together (no second rebalance for the latecomer).
#[test]
fn initial_rebalance_delay_puts_early_joiners_in_one_generation() {
    use kafka_protocol::messages::JoinGroupRequest;
    const DELAY_MS: u64 = 1_500;
    let broker = TestBroker::start(&[
        "--set",
        &format!("group_initial_rebalance_delay_ms={DELAY_MS}"),
    ]);
    let mut first = RawConn::connect(&broker);
    let mut second = RawConn::connect(&broker);
    let started = Instant::now();
    let id1 = raw_group::join(&mut first, "delayed", "", None, 10_000).member_id;
    let req1 = raw_group::join_request(
        "delayed",
        &id1,
        None,
        10_000,
        bytes::Bytes::from_static(b"m"),
    );
    let pending1 = first.send_request(&req1, JOIN_VERSION);
    thread::sleep(Duration::from_millis(300));
    let id2 = raw_group::join(&mut second, "delayed", "", None, 10_000).member_id;
    let req2 = raw_group::join_request(
        "delayed",
        &id2,
        None,
        10_000,
        bytes::Bytes::from_static(b"m"),
    );
    let pending2 = second.send_request(&req2, JOIN_VERSION);
    let joined1 = first.read_response::<JoinGroupRequest>(JOIN_VERSION, pending1);
    let joined2 = second.read_response::<JoinGroupRequest>(JOIN_VERSION, pending2);
    assert!(
        started.elapsed() >= Duration::from_millis(DELAY_MS),
        "the first generation formed before the delay: {:?}",
        started.elapsed()
    );
    assert_eq!((joined1.error_code, joined2.error_code), (NONE, NONE));
    assert_eq!(joined1.generation_id, 1);
    assert_eq!(
        joined2.generation_id, 1,
        "the latecomer is in the first generation"
    );
    assert_eq!(joined1.members.len() + joined2.members.len(), 2);
}
