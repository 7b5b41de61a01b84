//! Retention and disk full against the real `strikemq` binary: per-topic
//! `retention.bytes` / `retention.ms` set through rdkafka's AdminClient (CreateTopics
//! configs, AlterConfigs) and raw IncrementalAlterConfigs, whole old segments deleted
//! by the timer, the log start offset moved for ListOffsets, Fetch and consumers, all
//! of it kept across a restart; and a data dir on a tiny tmpfs filled until Produce
//! answers KAFKA_STORAGE_ERROR, then given space back. Each scenario that writes runs
//! under both write paths (`segment_write=mmap`, `pwrite`) with the pre-fault window on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AlterConfig, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;

use common::raw::{produce, *};
use common::rdkafka_util::*;
use common::{unique_topic, wait_until, TestBroker};

/// Small segments so a few hundred KiB of records roll many of them.
const SEGMENT_BYTES: &str = "segment_bytes=16384";
/// Retention passes five times a second, so the tests wait for seconds, not minutes.
const CHECK_INTERVAL: &str = "retention_check_interval_ms=200";
const RECORD_VALUE_BYTES: usize = 1000;
const RECORDS: usize = 120;
/// Longest wait for a retention pass to show its effect (many intervals).
const RETENTION_WAIT: Duration = Duration::from_secs(20);
const KAFKA_STORAGE_ERROR: i16 = 56;
const INVALID_CONFIG: i16 = 40;
/// rdkafka's ConfigSource names: a topic's own value, and the broker default.
const DYNAMIC_TOPIC_CONFIG: &str = "DynamicTopic";
const DEFAULT_CONFIG: &str = "Default";

/// The write paths the scenarios run under, each with the pre-fault window on (four
/// test segments wide, so the next segment is prepared at every roll).
const WRITE_PATHS: [&[&str]; 2] = [
    &[
        "--set",
        "segment_write=mmap",
        "--set",
        "segment_prefault_bytes=65536",
    ],
    &[
        "--set",
        "segment_write=pwrite",
        "--set",
        "segment_prefault_bytes=65536",
    ],
];

/// Runs `scenario` once per write path, saying which one on failure.
fn under_each_write_path(paths: &[&[&str]], scenario: fn(&[&str])) {
    for write_path in paths {
        eprintln!("write path {write_path:?}");
        scenario(write_path);
    }
}

fn retention_broker(extra: &[&str]) -> TestBroker {
    let mut args = vec!["--set", SEGMENT_BYTES, "--set", CHECK_INTERVAL];
    args.extend_from_slice(extra);
    TestBroker::start(&args)
}

/// A value that says which record it is, so a read-back proves content, not length.
fn value_of(i: usize, bytes: usize) -> Vec<u8> {
    let tag = format!("record-{i:06}-");
    tag.bytes().cycle().take(bytes).collect()
}

/// Produces `count` one-record batches starting with record `first` and returns
/// their offsets.
fn produce_records(conn: &mut RawConn, topic: &str, first: usize, count: usize) -> Vec<i64> {
    (first..first + count)
        .map(|i| {
            let value = value_of(i, RECORD_VALUE_BYTES);
            let (code, offset) = produce(conn, topic, 0, one_record_now(None, Some(&value)));
            assert_eq!(code, NONE, "produce record {i}");
            offset
        })
        .collect()
}

fn segment_files(broker: &TestBroker, topic: &str) -> Vec<PathBuf> {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// (earliest, latest) offsets of partition 0 as ListOffsets reports them.
fn watermarks(broker: &TestBroker, topic: &str) -> (i64, i64) {
    let consumer = create_consumer(&consumer_config(broker));
    consumer
        .fetch_watermarks(topic, 0, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("ListOffsets of {topic}: {e}"))
}

/// (value, source) of one config of a topic, through rdkafka's DescribeConfigs.
fn topic_config(broker: &TestBroker, topic: &str, name: &str) -> (Option<String>, String) {
    let admin = create_admin(broker);
    let results = block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("DescribeConfigs request");
    let resource = results
        .into_iter()
        .next()
        .expect("one resource")
        .expect("DescribeConfigs of the topic");
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("{name} not reported: {resource:?}"));
    let source: &ConfigSource = &entry.source;
    (entry.value.clone(), format!("{source:?}"))
}

fn create_topic_with(broker: &TestBroker, topic: &str, configs: &[(&str, &str)]) {
    let admin = create_admin(broker);
    let mut new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let results = block_on(
        admin.create_topics([&new_topic], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("CreateTopics request");
    assert!(
        results[0].is_ok(),
        "creating {topic} with {configs:?}: {results:?}"
    );
}

/// Everything from `from` to the end, as (offset, value) pairs, over raw Fetch.
fn read_back(conn: &mut RawConn, topic: &str, from: i64, end: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < end {
        let fetched = fetch(conn, topic, 0, offset, 100);
        assert_eq!(fetched.error_code, NONE, "fetch at {offset}");
        assert!(
            !fetched.records.is_empty(),
            "no records at {offset} < {end}"
        );
        for r in fetched.records {
            if r.offset >= offset && r.offset < end {
                out.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()));
                offset = r.offset + 1;
            }
        }
    }
    out
}

#[test]
fn retention_bytes_from_create_topics_deletes_old_segments_and_moves_the_start() {
    under_each_write_path(
        &WRITE_PATHS,
        retention_bytes_from_create_topics_deletes_old_segments_and_moves_the_start_under,
    );
}

fn retention_bytes_from_create_topics_deletes_old_segments_and_moves_the_start_under(
    write_path: &[&str],
) {
    let mut broker = retention_broker(write_path);
    let topic = unique_topic("ret-bytes");
    // About 3 of the ~8 segments' worth.
    create_topic_with(&broker, &topic, &[("retention.bytes", "40000")]);
    assert_eq!(
        topic_config(&broker, &topic, "retention.bytes"),
        (Some("40000".into()), DYNAMIC_TOPIC_CONFIG.into())
    );
    // Not overridden: the broker default, reported as such.
    assert_eq!(
        topic_config(&broker, &topic, "retention.ms"),
        (Some("604800000".into()), DEFAULT_CONFIG.into())
    );
    let mut conn = RawConn::connect(&broker);
    let offsets = produce_records(&mut conn, &topic, 0, RECORDS);
    assert_eq!(offsets, (0..RECORDS as i64).collect::<Vec<_>>());
    let first_segment = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");

    wait_until(
        "retention to delete the first segment",
        RETENTION_WAIT,
        || !first_segment.exists(),
    );
    let segments = segment_files(&broker, &topic);
    let (earliest, latest) = watermarks(&broker, &topic);
    assert_eq!(latest, RECORDS as i64);
    assert!(earliest > 0, "earliest offset did not move");
    // The start is the base offset of the first segment left (its file name).
    let first_left = segments[0].file_stem().and_then(|s| s.to_str()).unwrap();
    assert_eq!(first_left.parse::<i64>().unwrap(), earliest);
    // Kafka keeps at least retention.bytes; with ~1 KiB records that is >= 39 records.
    assert!(latest - earliest >= 39, "kept only {}", latest - earliest);

    // Below the start: OFFSET_OUT_OF_RANGE; at the start: the right records.
    let below = fetch(&mut conn, &topic, 0, earliest - 1, 100);
    assert_eq!(below.error_code, OFFSET_OUT_OF_RANGE);
    let kept = read_back(&mut conn, &topic, earliest, latest);
    for (offset, value) in &kept {
        assert_eq!(*value, value_of(*offset as usize, RECORD_VALUE_BYTES));
    }
    assert_eq!(kept.len() as i64, latest - earliest);

    // A consumer asking for offset 0 with auto.offset.reset=earliest continues from
    // the new start.
    let mut config = consumer_config(&broker);
    config.set("auto.offset.reset", "earliest");
    let consumer = create_consumer(&config);
    assign(&consumer, &topic, &[0], Offset::Offset(0));
    let consumed = consume_exactly(
        &consumer,
        (latest - earliest) as usize,
        MESSAGE_TIMEOUT,
        Duration::from_millis(300),
    );
    assert_contiguous(&consumed, earliest);
    drop(consumer);

    // The admin API and /metrics show the start too.
    let metrics = ureq::get(format!("{}/metrics", broker.admin_url()))
        .call()
        .expect("GET /metrics")
        .into_body()
        .read_to_string()
        .expect("metrics body");
    let line =
        format!("strikemq_partition_start_offset{{topic=\"{topic}\",partition=\"0\"}} {earliest}");
    assert!(metrics.contains(&line), "no {line:?} in /metrics");
    let view: serde_json::Value = serde_json::from_str(
        &ureq::get(format!("{}/v1/topics/{topic}", broker.admin_url()))
            .call()
            .expect("GET topic")
            .into_body()
            .read_to_string()
            .expect("topic body"),
    )
    .expect("topic JSON");
    assert_eq!(view["partitions"][0]["start_offset"], earliest, "{view}");

    // Restart: config and start offset are kept, offsets continue.
    broker.restart();
    assert_eq!(watermarks(&broker, &topic), (earliest, latest));
    assert_eq!(
        topic_config(&broker, &topic, "retention.bytes"),
        (Some("40000".into()), DYNAMIC_TOPIC_CONFIG.into())
    );
    let mut conn = RawConn::connect(&broker);
    assert_eq!(produce_records(&mut conn, &topic, RECORDS, 1), vec![latest]);
    let log = broker.log_text();
    assert!(
        log.contains("retention deleted segments"),
        "no retention log line"
    );
}

#[test]
fn retention_ms_altered_later_expires_everything_but_the_active_segment() {
    under_each_write_path(
        &WRITE_PATHS,
        retention_ms_altered_later_expires_everything_but_the_active_segment_under,
    );
}

fn retention_ms_altered_later_expires_everything_but_the_active_segment_under(write_path: &[&str]) {
    let mut broker = retention_broker(write_path);
    let topic = unique_topic("ret-ms");
    create_topic_with(&broker, &topic, &[]);
    let mut conn = RawConn::connect(&broker);
    produce_records(&mut conn, &topic, 0, RECORDS);
    let rolled = segment_files(&broker, &topic).len();
    assert!(rolled >= 5, "only {rolled} segments");
    // Nothing expires under the 7-day default.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(segment_files(&broker, &topic).len(), rolled);
    assert_eq!(watermarks(&broker, &topic).0, 0);

    // rdkafka's alter_configs is AlterConfigs (API 33).
    let admin = create_admin(&broker);
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "1");
    let results = block_on(
        admin.alter_configs([&alter], &admin_options()),
        CLIENT_TIMEOUT * 2,
    )
    .expect("AlterConfigs request");
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        topic_config(&broker, &topic, "retention.ms"),
        (Some("1".into()), DYNAMIC_TOPIC_CONFIG.into())
    );
    wait_until(
        "retention.ms to expire the sealed segments",
        RETENTION_WAIT,
        || segment_files(&broker, &topic).len() == 1,
    );
    let (earliest, latest) = watermarks(&broker, &topic);
    assert_eq!(latest, RECORDS as i64);
    assert!(earliest > 0 && earliest < latest, "{earliest}..{latest}");
    let kept = read_back(&mut conn, &topic, earliest, latest);
    assert_eq!(kept.len() as i64, latest - earliest);

    // IncrementalAlterConfigs DELETE puts the default back (source DEFAULT).
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_config_operation(1)]),
    ]);
    let resp = conn.call(&req, 1);
    assert_eq!(resp.responses[0].error_code, NONE, "{resp:?}");
    assert_eq!(
        topic_config(&broker, &topic, "retention.ms"),
        (Some("604800000".into()), DEFAULT_CONFIG.into())
    );
    broker.restart();
    assert_eq!(
        topic_config(&broker, &topic, "retention.ms"),
        (Some("604800000".into()), DEFAULT_CONFIG.into())
    );
    assert_eq!(watermarks(&broker, &topic), (earliest, latest));
}

#[test]
fn invalid_topic_configs_get_invalid_config_and_create_nothing() {
    let broker = retention_broker(&[]);
    let admin = create_admin(&broker);
    for (k, v) in [
        ("retention.ms", "a week"),
        ("retention.bytes", "-7"),
        ("retention.parsecs", "12"),
    ] {
        let topic = unique_topic("ret-bad");
        let new_topic = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set(k, v);
        for validate_only in [true, false] {
            let results = block_on(
                admin.create_topics([&new_topic], &admin_options().validate_only(validate_only)),
                CLIENT_TIMEOUT * 2,
            )
            .expect("CreateTopics request");
            assert_eq!(
                results[0],
                Err((topic.clone(), RDKafkaErrorCode::InvalidConfig)),
                "{k}={v} validate_only={validate_only}"
            );
        }
        assert!(!broker.data_dir().join(format!("{topic}-0")).exists());
    }
    // The REST API refuses the same with a 400 naming the value.
    let topic = unique_topic("ret-rest");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(CLIENT_TIMEOUT))
        .build()
        .into();
    let body = serde_json::json!({"name": topic, "configs": {"retention.bytes": "lots"}});
    let mut resp = agent
        .post(format!("{}/v1/topics", broker.admin_url()))
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("POST /v1/topics");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("body");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("lots") && text.contains("retention.bytes"),
        "{text}"
    );
    assert!(!broker.data_dir().join(format!("{topic}-0")).exists());

    // validate_only with a valid config says yes and creates nothing.
    let topic = unique_topic("ret-validate");
    let new_topic =
        NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("retention.ms", "1000");
    let results = block_on(
        admin.create_topics([&new_topic], &admin_options().validate_only(true)),
        CLIENT_TIMEOUT * 2,
    )
    .expect("CreateTopics request");
    assert!(results[0].is_ok(), "{results:?}");
    assert!(!broker.data_dir().join(format!("{topic}-0")).exists());

    // Altering to an invalid value: INVALID_CONFIG with a message naming it, and the
    // old value stays.
    create_topic_with(&broker, &topic, &[("retention.ms", "1000")]);
    let mut conn = RawConn::connect(&broker);
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("soon")))]),
    ]);
    let resp = conn.call(&req, 1);
    let r = &resp.responses[0];
    assert_eq!(r.error_code, INVALID_CONFIG, "{resp:?}");
    let message = r
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("soon") && message.contains("retention.ms"),
        "{message}"
    );
    assert_eq!(
        topic_config(&broker, &topic, "retention.ms"),
        (Some("1000".into()), DYNAMIC_TOPIC_CONFIG.into())
    );
}

#[test]
fn idle_broker_with_a_retention_timer_uses_no_cpu() {
    under_each_write_path(
        &WRITE_PATHS,
        idle_broker_with_a_retention_timer_uses_no_cpu_under,
    );
}

fn idle_broker_with_a_retention_timer_uses_no_cpu_under(write_path: &[&str]) {
    let mut broker = retention_broker(write_path);
    let topic = unique_topic("ret-idle");
    create_topic_with(&broker, &topic, &[("retention.bytes", "1")]);
    let mut conn = RawConn::connect(&broker);
    produce_records(&mut conn, &topic, 0, 40);
    drop(conn);
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        // utime and stime are fields 14 and 15; the command name may contain spaces,
        // so count from after its closing parenthesis.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(Duration::from_millis(500));
    let pid = broker.pid();
    let before = ticks(pid);
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    let used = ticks(pid) - before;
    // 100 ticks a second: 15 ticks in 3 s would be a 5% busy loop; an idle broker
    // with ten retention passes a second uses none or one.
    assert!(used < 15, "idle broker used {used} CPU ticks in {window:?}");
    broker.assert_running();
}

/// A tmpfs mounted on a directory for the length of a test; unmounted on drop (lazily,
/// so a broker that still holds mappings cannot make it fail).
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    /// Mounts a `size` tmpfs on `dir`, or says why not.
    fn mount(dir: &Path, size: &str) -> Result<TmpfsMount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TmpfsMount(dir.to_path_buf()))
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Without permission to mount, the test is skipped with the reason, unless `CI` is
/// set: there it must run.
fn tmpfs_or_skip(dir: &Path) -> Option<TmpfsMount> {
    match TmpfsMount::mount(dir, "16m") {
        Ok(m) => Some(m),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}; CI is set, so the disk-full test must run (needs root)")
        }
        Err(why) => {
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// Writes zeros to `path` until the file system says ENOSPC (bounded by the tmpfs
/// size).
fn fill_until_enospc(path: &Path) {
    use std::io::Write;
    const CHUNK_BYTES: usize = 4096;
    const FILL_BYTES_MAX: usize = 32 << 20;
    let mut f = std::fs::File::create(path).expect("create second filler");
    let chunk = [0x5Au8; CHUNK_BYTES];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
                break;
            }
        }
        assert!(
            written < FILL_BYTES_MAX,
            "a 16 MiB tmpfs took {written} bytes"
        );
    }
}

fn commit_offset(conn: &mut RawConn, group: &str, topic: &str, offset: i64) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    conn.call(&req, 7).topics[0].partitions[0].error_code
}

fn fetch_committed(conn: &mut RawConn, group: &str, topic: &str) -> i64 {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest};
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])]));
    let resp = conn.call(&req, 7);
    assert_eq!(resp.error_code, NONE, "{resp:?}");
    resp.topics[0].partitions[0].committed_offset
}

/// The window runs under both write paths, twice the segment size, so the pre-fault
/// thread tries to reserve more than the disk has left: it must stop at what it
/// gets, and never fault in (or write) a byte without blocks.
#[test]
fn disk_full_answers_storage_error_keeps_acknowledged_records_and_recovers() {
    under_each_write_path(
        &[
            &[],
            &[
                "--set",
                "segment_write=mmap",
                "--set",
                "segment_prefault_bytes=8388608",
            ],
            &[
                "--set",
                "segment_write=pwrite",
                "--set",
                "segment_prefault_bytes=8388608",
            ],
        ],
        disk_full_answers_storage_error_keeps_acknowledged_records_and_recovers_under,
    );
}

fn disk_full_answers_storage_error_keeps_acknowledged_records_and_recovers_under(
    write_path: &[&str],
) {
    const FILLER_BYTES: usize = 3 << 20;
    const BIG_VALUE_BYTES: usize = 60 << 10;
    const PRODUCES_MAX: usize = 1000;
    let mut args = vec!["--set", "segment_bytes=4194304"];
    args.extend_from_slice(write_path);
    let mut broker = TestBroker::start(&args);
    broker.stop();
    let Some(_mount) = tmpfs_or_skip(broker.data_dir()) else {
        return;
    };
    let filler = broker.data_dir().join("filler");
    std::fs::write(&filler, vec![0xA5u8; FILLER_BYTES]).expect("write filler");
    broker.restart();
    let topic = unique_topic("full");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);

    let mut acked = Vec::new();
    let mut error = None;
    let started = Instant::now();
    for i in 0..PRODUCES_MAX {
        let value = value_of(i, BIG_VALUE_BYTES);
        let (code, offset) = produce(&mut conn, &topic, 0, one_record_now(None, Some(&value)));
        if code != NONE {
            error = Some(code);
            break;
        }
        assert_eq!(offset, i as i64);
        acked.push(offset);
    }
    assert_eq!(
        error,
        Some(KAFKA_STORAGE_ERROR),
        "16 MiB filled by {} records without a storage error",
        acked.len()
    );
    eprintln!(
        "disk full after {} acknowledged records in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(acked.len() > 10, "only {} records fit", acked.len());
    broker.assert_running();
    // Still full: the same request is still an error, never a crash. (A smaller
    // one may still fit in what is left.)
    let (code, _) = produce(
        &mut conn,
        &topic,
        0,
        one_record_now(None, Some(&value_of(999_999, BIG_VALUE_BYTES))),
    );
    assert_eq!(code, KAFKA_STORAGE_ERROR);
    broker.assert_running();

    let end = acked.len() as i64;
    let check = |conn: &mut RawConn| {
        let back = read_back(conn, &topic, 0, end);
        assert_eq!(back.len(), acked.len());
        for (offset, value) in back {
            assert!(
                value == value_of(offset as usize, BIG_VALUE_BYTES),
                "record {offset} damaged"
            );
        }
    };
    check(&mut conn);

    // Fill the last free byte: the other writers must answer errors too, not crash.
    let filler_2 = broker.data_dir().join("filler-2");
    fill_until_enospc(&filler_2);
    let other = unique_topic("full-other");
    let resp = conn.call(&create_topics_request(&[&other], 1), CREATE_TOPICS_VERSION);
    assert_eq!(resp.topics[0].error_code, KAFKA_STORAGE_ERROR, "{resp:?}");
    assert!(!broker.data_dir().join(format!("{other}-0")).exists());
    // A commit may still fit in the offsets log's last page; if it is acknowledged it
    // must be kept, if not the answer is KAFKA_STORAGE_ERROR.
    let commit_code = commit_offset(&mut conn, "full-group", &topic, 7);
    assert!(
        [NONE, KAFKA_STORAGE_ERROR].contains(&commit_code),
        "OffsetCommit on a full disk: {commit_code}"
    );
    broker.assert_running();

    // A restart on the full disk recovers the partition without touching a hole, and
    // starts even though the offsets log cannot be compacted.
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    check(&mut conn);
    assert_eq!(watermarks(&broker, &topic), (0, end));
    if commit_code == NONE {
        assert_eq!(fetch_committed(&mut conn, "full-group", &topic), 7);
    }
    std::fs::remove_file(&filler_2).expect("remove second filler");

    // Space returns: the very next produce succeeds and continues the offsets.
    std::fs::remove_file(&filler).expect("remove filler");
    let value = value_of(acked.len(), BIG_VALUE_BYTES);
    let (code, offset) = produce(&mut conn, &topic, 0, one_record_now(None, Some(&value)));
    assert_eq!((code, offset), (NONE, end));
    check(&mut conn);
    // And everything survives a restart on that file system.
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    check(&mut conn);
    assert_eq!(watermarks(&broker, &topic), (0, end + 1));
}
