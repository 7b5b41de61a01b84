//! KIP-848 consumer groups (`group.protocol=consumer`) against the real binary:
//! confluent-kafka members (driven by `groups_consumer_protocol.py`) split partitions,
//! a joining member only takes what must move, a killed member is replaced after its
//! session timeout, committed offsets resume exactly after a restart; and the raw
//! protocol for the error codes (epochs, fencing, type conflicts, bounds).
//!
//! The broker runs with a 6 s consumer session timeout and 500 ms heartbeats so that a
//! vanished member is noticed in seconds. Time bounds only catch hangs.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::raw::{self, RawConn};
use common::{unique_topic, TestBroker};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const SESSION_ARGS: &[&str] = &[
    "--set",
    "group_consumer_session_timeout_ms=6000",
    "--set",
    "group_consumer_heartbeat_interval_ms=500",
];
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/groups_consumer_protocol.py"
);

const NONE: i16 = 0;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNRELEASED_INSTANCE_ID: i16 = 111;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;
const INVALID_REGULAR_EXPRESSION: i16 = 128;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// confluent-kafka with the consumer protocol (librdkafka ≥ 2.12), or a skip.
fn has_confluent_kafka() -> bool {
    let present = Command::new("python3")
        .args([
            "-c",
            "import confluent_kafka, sys; sys.exit(0 if confluent_kafka.libversion()[1] >= 0x020c0000 else 1)",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    common::tool_or_skip(
        present,
        "confluent-kafka >= 2.12",
        "python3 -m pip install 'confluent-kafka>=2.12'",
    )
}

/// Runs a mode of the Python driver (bounded) and parses its JSON report.
fn run_driver(args: &[&str]) -> serde_json::Value {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let status = common::wait_timeout(&mut child, Duration::from_secs(90));
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("driver output");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "driver {args:?} failed ({status:?}); stderr:\n{err}"
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn partitions_of(v: &serde_json::Value) -> Vec<BTreeSet<i64>> {
    v.as_array()
        .expect("assignments")
        .iter()
        .map(|a| {
            a.as_array()
                .expect("partitions")
                .iter()
                .map(|p| p.as_i64().expect("partition"))
                .collect()
        })
        .collect()
}

fn split_among_all(assignments: &[BTreeSet<i64>], partitions: i64) -> bool {
    let all: Vec<i64> = assignments.iter().flatten().copied().collect();
    let union: BTreeSet<i64> = all.iter().copied().collect();
    assignments.iter().all(|a| !a.is_empty())
        && all.len() == partitions as usize
        && union == (0..partitions).collect()
}

fn produce_spread(conn: &mut RawConn, topic: &str, partitions: i32, per_partition: usize) {
    for p in 0..partitions {
        let values: Vec<Vec<u8>> = (0..per_partition)
            .map(|i| format!("p{p}-{i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let (code, _) = raw::produce(conn, topic, p, raw::record_batch(&refs, None));
        assert_eq!(code, NONE, "produce to {topic}[{p}]");
    }
}

#[test]
fn uniform_two_members_split_and_a_third_only_takes_what_must_move() {
    if !has_confluent_kafka() {
        return;
    }
    let broker = TestBroker::start(SESSION_ARGS);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("kip848-split");
    raw::create_topics(&mut conn, &[&topic], 4);
    let report = run_driver(&[
        "split",
        &broker.bootstrap(),
        &topic,
        "kip848-split",
        "uniform",
    ]);
    let two = partitions_of(&report["two"]);
    let settled = partitions_of(&report["settled"]);
    assert!(split_among_all(&two, 4), "{report}");
    assert!(split_among_all(&settled, 4), "{report}");
    for i in 0..2 {
        assert!(
            settled[i].is_subset(&two[i]),
            "member {i} lost a partition it keeps or gained one: {report}"
        );
    }
    assert_eq!(two[0].len(), 2, "an even split: {report}");
    eprintln!("uniform: {report}");
}

#[test]
fn range_assignor_gives_contiguous_ranges() {
    if !has_confluent_kafka() {
        return;
    }
    let broker = TestBroker::start(SESSION_ARGS);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("kip848-range");
    raw::create_topics(&mut conn, &[&topic], 4);
    let report = run_driver(&[
        "split",
        &broker.bootstrap(),
        &topic,
        "kip848-range",
        "range",
    ]);
    let settled = partitions_of(&report["settled"]);
    assert!(split_among_all(&settled, 4), "{report}");
    for a in &settled {
        let (lo, hi) = (a.first().unwrap(), a.last().unwrap());
        assert_eq!((hi - lo + 1) as usize, a.len(), "not a range: {report}");
    }
}

#[test]
fn member_killed_without_leaving_is_replaced_after_its_session_timeout() {
    if !has_confluent_kafka() {
        return;
    }
    let broker = TestBroker::start(SESSION_ARGS);
    let mut conn = RawConn::connect(&broker);
    let topic = unique_topic("kip848-kill");
    raw::create_topics(&mut conn, &[&topic], 4);
    let report = run_driver(&["takeover", &broker.bootstrap(), &topic, "kip848-kill"]);
    assert_eq!(report["after"], serde_json::json!([0, 1, 2, 3]), "{report}");
    let took = report["takeover_s"].as_f64().expect("takeover_s");
    // The broker, not the survivor, notices the loss: after the 6 s session timeout.
    assert!(
        took >= 5.0,
        "replaced before the session timed out: {report}"
    );
    eprintln!("takeover after SIGKILL: {took:.2} s (session 6 s)");
}

#[test]
fn committed_offsets_resume_exactly_after_a_restart() {
    if !has_confluent_kafka() {
        return;
    }
    let mut broker = TestBroker::start(SESSION_ARGS);
    let topic = unique_topic("kip848-resume");
    {
        let mut conn = RawConn::connect(&broker);
        raw::create_topics(&mut conn, &[&topic], 2);
        produce_spread(&mut conn, &topic, 2, 5);
    }
    let first = run_driver(&["consume", &broker.bootstrap(), &topic, "kip848-resume", "6"]);
    broker.restart();
    let second = run_driver(&["consume", &broker.bootstrap(), &topic, "kip848-resume", "4"]);
    let records = |r: &serde_json::Value| -> Vec<(i64, i64)> {
        r["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|x| (x[0].as_i64().unwrap(), x[1].as_i64().unwrap()))
            .collect()
    };
    let mut all = records(&first);
    all.extend(records(&second));
    let unique: BTreeSet<(i64, i64)> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a record twice: {first} {second}");
    let want: BTreeSet<(i64, i64)> = (0..2).flat_map(|p| (0..5).map(move |o| (p, o))).collect();
    assert_eq!(unique, want, "{first} {second}");
    // The second run starts each partition exactly at the first run's commit.
    for (p, committed) in first["committed"].as_object().expect("committed") {
        let p: i64 = p.parse().unwrap();
        let resumed = records(&second)
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .min();
        if let Some(resumed) = resumed {
            assert_eq!(Some(resumed), committed.as_i64(), "partition {p}");
        }
    }
}

/// Membership is not persisted: after a restart the member's heartbeat gets
/// UNKNOWN_MEMBER_ID, librdkafka rejoins with epoch 0, gets its partitions back and
/// resumes at its committed offsets.
#[test]
fn a_live_member_rejoins_after_a_restart_and_resumes_at_its_commits() {
    use std::io::{BufRead, BufReader};
    if !has_confluent_kafka() {
        return;
    }
    let mut broker = TestBroker::start(SESSION_ARGS);
    let topic = unique_topic("kip848-live");
    {
        let mut conn = RawConn::connect(&broker);
        raw::create_topics(&mut conn, &[&topic], 2);
        produce_spread(&mut conn, &topic, 2, 5);
    }
    let mut child = Command::new("python3")
        .args([SCRIPT, "live", &broker.bootstrap(), &topic, "kip848-live"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3");
    let (tx, rx) = std::sync::mpsc::channel::<(i64, i64)>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let Some(r) = v["record"].as_array() {
                let _ = tx.send((r[0].as_i64().unwrap_or(-1), r[1].as_i64().unwrap_or(-1)));
            }
        }
    });
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let collect = |seen: &mut Vec<(i64, i64)>, n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => seen.push(r),
                Err(_) => return false,
            }
        }
        true
    };
    let before = collect(&mut seen, 10);
    if before {
        broker.restart();
        let mut conn = RawConn::connect(&broker);
        for p in 0..2 {
            let values: Vec<Vec<u8>> = (0..5)
                .map(|i| format!("after-{p}-{i}").into_bytes())
                .collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            raw::produce(&mut conn, &topic, p, raw::record_batch(&refs, None));
        }
    }
    let after = before && collect(&mut seen, 20);
    // Give a duplicate a moment to show up.
    std::thread::sleep(Duration::from_millis(500));
    seen.extend(rx.try_iter());
    drop(child.stdin.take());
    if common::wait_timeout(&mut child, Duration::from_secs(15)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        before,
        "the member never consumed the first 10 records: {seen:?}"
    );
    assert!(
        after,
        "the member did not come back after the restart: {seen:?}"
    );
    let unique: BTreeSet<(i64, i64)> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a record twice: {seen:?}");
    let want: BTreeSet<(i64, i64)> = (0..2).flat_map(|p| (0..10).map(move |o| (p, o))).collect();
    assert_eq!(unique, want);
}

/// The Java client 4.x where the machine has its jars: `STRIKEMQ_KAFKA_LIBS` (a
/// directory of jars: kafka-clients and its dependencies) or
/// `~/.cache/strikemq/kafka-<version>/lib`. Skipped otherwise (not a CI requirement).
#[test]
fn java_client_splits_rejoins_and_describes_with_the_consumer_protocol() {
    let libs = common::kafka_client_libs();
    let has_java = Command::new("java")
        .arg("-version")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let Some(libs) = libs.filter(|_| has_java) else {
        eprintln!("SKIP: no java or no kafka-clients 4.x jars (set STRIKEMQ_KAFKA_LIBS)");
        return;
    };
    let broker = TestBroker::start(SESSION_ARGS);
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/Kip848Check.java");
    let mut child = Command::new("java")
        .args([
            "-cp",
            &format!("{libs}/*"),
            source,
            &broker.bootstrap(),
            "kip848-java",
            "kip848-java",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn java");
    let status = common::wait_timeout(&mut child, Duration::from_secs(180));
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("java output");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.is_some_and(|s| s.success()),
        "java failed ({status:?}):\n{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("commit ok"), "{out}");
    assert!(
        out.contains("describe: state=Stable type=Consumer assignor=uniform members=3"),
        "{out}"
    );
    assert!(
        out.contains("type=Consumer, protocol='consumer', groupState=Stable"),
        "{out}"
    );
    assert!(out.contains("closed"), "{out}");
}

// ---------------------------------------------------------------------------------
// Raw protocol.

fn heartbeat(
    conn: &mut RawConn,
    group: &str,
    member_id: &str,
    epoch: i32,
    topics: Option<&[&str]>,
    owned: Option<Vec<TopicPartitions>>,
) -> ConsumerGroupHeartbeatResponse {
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member_id))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
        .with_subscribed_topic_names(
            topics.map(|ts| ts.iter().map(|t| raw::topic_name(t)).collect()),
        )
        .with_topic_partitions(owned);
    conn.call(&req, 1)
}

fn owned_partitions(resp: &ConsumerGroupHeartbeatResponse) -> Vec<TopicPartitions> {
    resp.assignment
        .as_ref()
        .map(|a| {
            a.topic_partitions
                .iter()
                .map(|tp| {
                    TopicPartitions::default()
                        .with_topic_id(tp.topic_id)
                        .with_partitions(tp.partitions.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn count(resp: &ConsumerGroupHeartbeatResponse) -> usize {
    resp.assignment.as_ref().map_or(0, |a| {
        a.topic_partitions.iter().map(|t| t.partitions.len()).sum()
    })
}

fn commit(conn: &mut RawConn, group: &str, member: &str, epoch: i32, topic: &str) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(epoch)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(raw::topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    conn.call(&req, 9).topics[0].partitions[0].error_code
}

#[test]
fn consumer_group_heartbeat_epochs_revocation_and_errors_over_the_wire() {
    let broker = TestBroker::start(SESSION_ARGS);
    let mut a = RawConn::connect(&broker);
    let mut b = RawConn::connect(&broker);
    raw::create_topics(&mut a, &["kip848-raw"], 4);
    let group = "kip848-raw";
    let topics: &[&str] = &["kip848-raw"];

    // a joins alone: every partition, epoch 1.
    let a1 = heartbeat(&mut a, group, "member-a", 0, Some(topics), None);
    assert_eq!(a1.error_code, NONE, "{a1:?}");
    assert_eq!(a1.member_epoch, 1);
    assert_eq!(count(&a1), 4);
    assert_eq!(a1.heartbeat_interval_ms, 500);

    // b joins: epoch 2, but nothing yet: a still owns everything.
    let b1 = heartbeat(&mut b, group, "member-b", 0, Some(topics), None);
    assert_eq!((b1.error_code, b1.member_epoch, count(&b1)), (NONE, 2, 0));
    // a is told to keep 2 (its epoch stays until it lets the others go).
    let a2 = heartbeat(
        &mut a,
        group,
        "member-a",
        1,
        None,
        Some(owned_partitions(&a1)),
    );
    assert_eq!((a2.member_epoch, count(&a2)), (1, 2), "{a2:?}");
    // Before a acknowledges, b still gets nothing.
    let b2 = heartbeat(&mut b, group, "member-b", 2, None, Some(Vec::new()));
    assert_eq!(
        count(&b2),
        0,
        "assigned before the revocation was acknowledged"
    );
    // a reports it owns only its 2: epoch 2; now b gets the other 2.
    let a3 = heartbeat(
        &mut a,
        group,
        "member-a",
        1,
        None,
        Some(owned_partitions(&a2)),
    );
    assert_eq!((a3.member_epoch, count(&a3)), (2, 2));
    let b3 = heartbeat(&mut b, group, "member-b", 2, None, Some(Vec::new()));
    assert_eq!((b3.member_epoch, count(&b3)), (2, 2));

    // Fencing: a wrong epoch, an unknown member.
    assert_eq!(
        heartbeat(&mut a, group, "member-a", 7, None, None).error_code,
        FENCED_MEMBER_EPOCH
    );
    assert_eq!(
        heartbeat(&mut a, group, "nobody", 2, None, None).error_code,
        UNKNOWN_MEMBER_ID
    );
    // Offsets with member epochs.
    assert_eq!(commit(&mut a, group, "member-a", 2, "kip848-raw"), NONE);
    assert_eq!(
        commit(&mut a, group, "member-a", 1, "kip848-raw"),
        STALE_MEMBER_EPOCH
    );
    assert_eq!(
        commit(&mut a, group, "nobody", 2, "kip848-raw"),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(&mut a, group, "", -1, "kip848-raw"),
        UNKNOWN_MEMBER_ID
    );
    let fetch = |conn: &mut RawConn, member: Option<&str>, epoch: i32| {
        let req =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_member_id(member.map(s))
                .with_member_epoch(epoch)
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(raw::topic_name("kip848-raw"))
                    .with_partition_indexes(vec![0])]))]);
        conn.call(&req, 9).groups[0].error_code
    };
    assert_eq!(fetch(&mut a, Some("member-a"), 2), NONE);
    assert_eq!(fetch(&mut a, Some("member-a"), 1), STALE_MEMBER_EPOCH);
    assert_eq!(fetch(&mut a, None, -1), NONE, "an admin client's fetch");

    // One id, one type: a classic member cannot join, a consumer member cannot join a
    // classic group with members.
    let classic_join = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(b"m"))]);
    assert_eq!(
        a.call(&classic_join, 5).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let classic = classic_join
        .clone()
        .with_group_id(GroupId(s("kip848-classic")));
    let first = a.call(&classic, 5);
    let joined = a.call(&classic.with_member_id(first.member_id), 5);
    assert_eq!(joined.error_code, NONE);
    assert_eq!(
        heartbeat(&mut b, "kip848-classic", "member-x", 0, Some(topics), None).error_code,
        GROUP_ID_NOT_FOUND
    );

    // ListGroups v5 reports the type; ConsumerGroupDescribe the members.
    let listed = a.call(&ListGroupsRequest::default(), 5);
    let types: Vec<(String, String, String)> = listed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.group_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect();
    assert!(
        types.contains(&(group.into(), "consumer".into(), "Stable".into())),
        "{types:?}"
    );
    assert!(
        types
            .iter()
            .any(|(id, t, _)| id == "kip848-classic" && t == "classic"),
        "{types:?}"
    );
    let only_consumer = a.call(
        &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        5,
    );
    assert!(only_consumer
        .groups
        .iter()
        .all(|g| g.group_type.as_str() == "consumer"));
    let described = a.call(
        &ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(s(group)), GroupId(s("kip848-classic"))]),
        0,
    );
    let g = &described.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (NONE, "Stable"));
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    assert!(g
        .members
        .iter()
        .all(|m| m.client_host.as_str() == "/127.0.0.1"));
    let assigned: usize = g
        .members
        .iter()
        .map(|m| {
            m.assignment
                .topic_partitions
                .iter()
                .map(|t| t.partitions.len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(assigned, 4);
    assert_eq!(described.groups[1].error_code, GROUP_ID_NOT_FOUND);

    // Bad input: no subscription on join, an unknown assignor, a regex too long or
    // invalid, epoch -2 without an instance id.
    assert_eq!(
        heartbeat(&mut b, "kip848-bad", "m", 0, None, None).error_code,
        INVALID_REQUEST
    );
    let join = |conn: &mut RawConn, req: ConsumerGroupHeartbeatRequest| conn.call(&req, 1);
    let base = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("kip848-bad")))
        .with_member_id(s("m"))
        .with_rebalance_timeout_ms(30_000);
    assert_eq!(
        join(
            &mut b,
            base.clone()
                .with_subscribed_topic_names(Some(vec![]))
                .with_server_assignor(Some(s("sticky")))
        )
        .error_code,
        UNSUPPORTED_ASSIGNOR
    );
    assert_eq!(
        join(
            &mut b,
            base.clone()
                .with_subscribed_topic_regex(Some(s(&"a".repeat(2_000))))
        )
        .error_code,
        INVALID_REGULAR_EXPRESSION
    );
    assert_eq!(
        join(
            &mut b,
            base.clone()
                .with_subscribed_topic_regex(Some(s("(unclosed")))
        )
        .error_code,
        INVALID_REGULAR_EXPRESSION
    );
    assert_eq!(
        join(&mut b, base.clone().with_member_epoch(-2)).error_code,
        INVALID_REQUEST
    );

    // The admin API shows the KIP-848 group: state, epoch, members, assignments.
    let detail: serde_json::Value = serde_json::from_str(
        &ureq::get(format!("{}/v1/groups/{group}", broker.admin_url()))
            .call()
            .expect("GET /v1/groups/{id}")
            .body_mut()
            .read_to_string()
            .expect("body"),
    )
    .expect("json");
    assert_eq!(detail["state"], "Stable", "{detail}");
    assert_eq!(detail["protocol_type"], "consumer", "{detail}");
    assert_eq!(detail["generation"], 2, "{detail}");
    let members = detail["members"].as_array().expect("members");
    assert_eq!(members.len(), 2, "{detail}");
    let shown: usize = members
        .iter()
        .flat_map(|m| {
            m["assignment"]
                .as_array()
                .expect("decoded assignment")
                .iter()
        })
        .map(|t| {
            assert_eq!(t["topic"], "kip848-raw");
            t["partitions"].as_array().expect("partitions").len()
        })
        .sum();
    assert_eq!(shown, 4, "{detail}");

    // Leave (epoch -1): the survivor gets everything, at a new epoch.
    let left = heartbeat(&mut b, group, "member-b", -1, None, None);
    assert_eq!((left.error_code, left.member_epoch), (NONE, -1));
    let a4 = heartbeat(
        &mut a,
        group,
        "member-a",
        2,
        None,
        Some(owned_partitions(&a3)),
    );
    assert_eq!((a4.member_epoch, count(&a4)), (3, 4), "{a4:?}");
    raw::assert_broker_healthy(&mut { broker });
}

#[test]
fn regex_subscriptions_follow_new_topics_and_static_members_come_back() {
    let broker = TestBroker::start(SESSION_ARGS);
    let mut conn = RawConn::connect(&broker);
    raw::create_topics(&mut conn, &["orders-eu", "payments"], 1);
    let group = "kip848-regex";
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s("static-1"))
        .with_instance_id(Some(s("instance-1")))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(s("orders-.*")));
    let joined = conn.call(&req, 1);
    assert_eq!((joined.error_code, count(&joined)), (NONE, 1), "{joined:?}");
    // A new matching topic moves the group epoch and is assigned.
    raw::create_topics(&mut conn, &["orders-us"], 2);
    let hb = heartbeat(
        &mut conn,
        group,
        "static-1",
        joined.member_epoch,
        None,
        Some(owned_partitions(&joined)),
    );
    assert_eq!(count(&hb), 3, "{hb:?}");
    assert!(hb.member_epoch > joined.member_epoch);

    // The instance id is in use: another member cannot take it.
    let other = req.clone().with_member_id(s("static-2"));
    assert_eq!(conn.call(&other, 1).error_code, UNRELEASED_INSTANCE_ID);
    // After a temporary leave (epoch -2) a new member id takes it over, assignment and
    // epoch included.
    let left = conn.call(
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s("static-1"))
            .with_instance_id(Some(s("instance-1")))
            .with_member_epoch(-2),
        1,
    );
    assert_eq!((left.error_code, left.member_epoch), (NONE, -2));
    let back = conn.call(&other, 1);
    assert_eq!(back.error_code, NONE, "{back:?}");
    assert_eq!(back.member_epoch, hb.member_epoch);
    assert_eq!(count(&back), 3);
}

/// A member that never acknowledges a revocation is removed after its rebalance
/// timeout, and its partitions go to the member waiting for them.
#[test]
fn a_member_that_does_not_revoke_within_its_rebalance_timeout_is_removed() {
    let broker = TestBroker::start(SESSION_ARGS);
    let mut a = RawConn::connect(&broker);
    let mut b = RawConn::connect(&broker);
    raw::create_topics(&mut a, &["kip848-stuck"], 2);
    let group = "kip848-stuck";
    let join = |conn: &mut RawConn, id: &str| {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(id))
            .with_rebalance_timeout_ms(1_000)
            .with_subscribed_topic_names(Some(vec![raw::topic_name("kip848-stuck")]));
        conn.call(&req, 1)
    };
    let a1 = join(&mut a, "stuck");
    assert_eq!(count(&a1), 2);
    let b1 = join(&mut b, "waiting");
    assert_eq!(count(&b1), 0);
    // a learns it must give one up, and then only heartbeats claiming it still owns
    // both (it never lets go).
    let a2 = heartbeat(
        &mut a,
        group,
        "stuck",
        a1.member_epoch,
        None,
        Some(owned_partitions(&a1)),
    );
    assert_eq!(count(&a2), 1);
    let started = std::time::Instant::now();
    loop {
        let hb = heartbeat(
            &mut a,
            group,
            "stuck",
            a1.member_epoch,
            None,
            Some(owned_partitions(&a1)),
        );
        if hb.error_code != NONE {
            assert_eq!(hb.error_code, UNKNOWN_MEMBER_ID, "{hb:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "removed before its rebalance timeout"
    );
    let b2 = heartbeat(
        &mut b,
        group,
        "waiting",
        b1.member_epoch,
        None,
        Some(Vec::new()),
    );
    assert_eq!((b2.error_code, count(&b2)), (NONE, 2), "{b2:?}");
}
