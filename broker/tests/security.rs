//! Security defaults of the real `strikemq` binary: loopback listeners unless told
//! otherwise; topic names and group ids from the network (Kafka API and REST) never
//! create, touch or delete a path outside the data dir; and no admin endpoint changes
//! state on a request a cross-site web page could send without a CORS preflight.
//!
//! bad_input.rs checks that invalid topic names are refused; admin_api.rs that a
//! text/plain POST /v1/topics gets 415 and CORS basics. This file covers the rest:
//! decoys outside the data dir, every Kafka API that takes a name, hostile group ids,
//! URL-encoded REST paths, and every state-changing endpoint against every simple
//! content type.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    DeleteTopicsRequest, GroupId, JoinGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

use common::raw::{
    self, assert_broker_healthy, create_topics, create_topics_request, metadata_request, produce,
    record_batch, topic_name, RawConn, CREATE_TOPICS_VERSION, INVALID_TOPIC_EXCEPTION,
    METADATA_VERSION, NONE, UNKNOWN_TOPIC_OR_PARTITION,
};
use common::{list_tree, TestBroker};

const DELETE_TOPICS_VERSION: i16 = 4;
const OFFSET_COMMIT_VERSION: i16 = 7;
const OFFSET_FETCH_VERSION: i16 = 7;
const JOIN_GROUP_VERSION: i16 = 5;
const DELETE_GROUPS_VERSION: i16 = 2;
const INVALID_GROUP_ID: i16 = 24;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
/// Upper bound for one raw HTTP exchange with the admin API.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The decoy next to the data dir that `../victim` would name (`<name>-<partition>`).
const DECOY_TOPIC_DIR: &str = "victim-0";
const DECOY_FILE: &str = "keep";
/// An absolute path a name like `/tmp/strikemq-abs` would reach.
const ABSOLUTE_PROBE: &str = "/tmp/strikemq-security-abs";

// ---------------------------------------------------------------------------------
// Listeners.

/// `--print-config` of the binary with `args` (and a data dir that is never created).
fn print_config(args: &[&str]) -> Value {
    let root = tempfile::tempdir().expect("temp dir");
    let data_dir = root.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_strikemq"))
        .arg("--print-config")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(args)
        .output()
        .expect("run strikemq --print-config");
    assert!(
        output.status.success(),
        "--print-config failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!data_dir.exists(), "--print-config created the data dir");
    serde_json::from_slice(&output.stdout).expect("--print-config prints JSON")
}

#[test]
fn with_no_listener_flags_both_listeners_are_on_loopback_in_every_profile() {
    for profile in ["baseline", "tuned"] {
        let config = print_config(&["--profile", profile]);
        for key in ["listen", "admin_listen"] {
            let addr = config["config"][key]
                .as_str()
                .unwrap_or_else(|| panic!("no config.{key} in {config}"));
            assert!(
                addr.starts_with("127.0.0.1:"),
                "profile {profile}: {key} defaults to {addr}, not loopback"
            );
        }
    }
    // A config file that sets other keys leaves the listeners on loopback too.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("strikemq.toml");
    fs::write(&file, "flush = \"always\"\nio_backend = \"epoll\"\n").expect("write config");
    let config = print_config(&["--config", file.to_str().expect("utf-8 path")]);
    assert_eq!(config["config"]["listen"], "127.0.0.1:9092");
    assert_eq!(config["config"]["admin_listen"], "127.0.0.1:8080");
}

// ---------------------------------------------------------------------------------
// Names from the network and the file system.

/// Topic names aimed at the file system. None is a legal Kafka topic name.
fn hostile_topic_names() -> Vec<String> {
    vec![
        "..".into(),
        ".".into(),
        "../victim".into(),
        "../../victim".into(),
        "victim/../..".into(),
        ABSOLUTE_PROBE.into(),
        "a/b".into(),
        "a\\b".into(),
        "a\0b".into(),
        "\0".into(),
        "%2F".into(),
        "..%2Fvictim".into(),
        "%2e%2e".into(),
        "a\nb".into(),
        "caf\u{e9}".into(),
        "x".repeat(250),
        "y".repeat(10_000),
    ]
}

/// A broker whose temporary root holds, next to the data dir, a decoy that `../victim`
/// would reach; and the root's tree before any request.
fn broker_with_decoy() -> (TestBroker, Vec<PathBuf>) {
    let broker = TestBroker::start(&[]);
    let decoy = broker.root_dir().join(DECOY_TOPIC_DIR);
    fs::create_dir(&decoy).expect("create decoy");
    fs::write(decoy.join(DECOY_FILE), b"must survive").expect("write decoy");
    fs::create_dir(broker.root_dir().join("victim")).expect("create decoy");
    let before = list_tree(broker.root_dir());
    (broker, before)
}

fn assert_nothing_touched(broker: &TestBroker, before: &[PathBuf], what: &str) {
    assert_eq!(
        list_tree(broker.root_dir()),
        before,
        "{what}: paths appeared or vanished in or next to the data dir"
    );
    let decoy = broker.root_dir().join(DECOY_TOPIC_DIR).join(DECOY_FILE);
    assert_eq!(
        fs::read(&decoy).ok().as_deref(),
        Some(&b"must survive"[..]),
        "{what}: the decoy outside the data dir changed"
    );
    for suffix in ["", "-0"] {
        let probe = format!("{ABSOLUTE_PROBE}{suffix}");
        assert!(!Path::new(&probe).exists(), "{what}: {probe} was created");
    }
}

fn printable(name: &str) -> String {
    let mut shown: String = name.escape_debug().collect();
    if shown.len() > 40 {
        shown.truncate(40);
        shown.push('…');
    }
    shown
}

#[test]
fn hostile_topic_names_through_every_kafka_api_touch_nothing_in_or_outside_the_data_dir() {
    let (mut broker, before) = broker_with_decoy();
    let mut conn = RawConn::connect(&broker);
    let names = hostile_topic_names();
    let not_found = [INVALID_TOPIC_EXCEPTION, UNKNOWN_TOPIC_OR_PARTITION];

    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let created = conn.call(&create_topics_request(&refs, 1), CREATE_TOPICS_VERSION);
    assert_eq!(created.topics.len(), names.len());
    for t in &created.topics {
        assert_eq!(
            t.error_code,
            INVALID_TOPIC_EXCEPTION,
            "CreateTopics {}",
            printable(t.name.0.as_str())
        );
    }
    assert_nothing_touched(&broker, &before, "CreateTopics");

    for name in &names {
        let shown = printable(name);
        let metadata = conn.call(&metadata_request(&[name], true), METADATA_VERSION);
        assert!(
            not_found.contains(&metadata.topics[0].error_code),
            "Metadata (auto-create) {shown}: error {}",
            metadata.topics[0].error_code
        );
        let (error_code, _) = produce(&mut conn, name, 0, record_batch(&[b"v"], None));
        assert!(
            not_found.contains(&error_code),
            "Produce (auto-create) {shown}: error {error_code}"
        );
        let fetched = conn.call(&raw::fetch_request(name, 0, 0, 0), raw::FETCH_VERSION);
        let fetch_error = fetched.responses[0].partitions[0].error_code;
        assert!(
            not_found.contains(&fetch_error),
            "Fetch {shown}: error {fetch_error}"
        );
    }
    assert_nothing_touched(&broker, &before, "Metadata/Produce/Fetch");

    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
    let deleted = conn.call(&request, DELETE_TOPICS_VERSION);
    assert_eq!(deleted.responses.len(), names.len());
    for r in &deleted.responses {
        let shown = printable(r.name.as_ref().map_or("", |n| n.0.as_str()));
        assert!(
            not_found.contains(&r.error_code),
            "DeleteTopics {shown}: error {}",
            r.error_code
        );
    }
    assert_nothing_touched(&broker, &before, "DeleteTopics");

    // Committing offsets for such a topic is data, not a path either.
    for name in &names {
        let _ = offset_commit(&mut conn, "plain-group", name, 1);
    }
    assert_nothing_touched(&broker, &before, "OffsetCommit with hostile topics");

    // Legal but odd names stay inside the data dir.
    let odd = ["...", "-", "_", "..a", "a..", "__consumer_offsets.log"];
    create_topics(&mut conn, &odd, 1);
    let after = list_tree(broker.root_dir());
    let new: Vec<&PathBuf> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(!new.is_empty(), "the odd topics created nothing");
    for path in new {
        assert!(
            path.starts_with("data"),
            "{path:?} was created outside the data dir"
        );
    }
    assert_broker_healthy(&mut broker);
    // And they come back after a restart (a name is never mistaken for a file of ours).
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    let metadata = conn.call(&metadata_request(&odd, false), METADATA_VERSION);
    for t in &metadata.topics {
        assert_eq!(t.error_code, NONE, "odd topic {:?} after restart", t.name);
    }
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

fn offset_commit(conn: &mut RawConn, group: &str, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let response = conn.call(&request, OFFSET_COMMIT_VERSION);
    response.topics[0].partitions[0].error_code
}

fn committed_offset(conn: &mut RawConn, group: &str, topic: &str) -> (i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])]));
    let response = conn.call(&request, OFFSET_FETCH_VERSION);
    if response.error_code != NONE {
        return (response.error_code, -1);
    }
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

fn join_group(conn: &mut RawConn, group: &str) -> i16 {
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(6_000)
        .with_rebalance_timeout_ms(6_000)
        .with_member_id(StrBytes::from_static_str(""))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))]);
    conn.call(&request, JOIN_GROUP_VERSION).error_code
}

#[test]
fn hostile_group_ids_are_kept_as_data_never_as_paths_and_overlong_ones_are_refused() {
    let (mut broker, before) = broker_with_decoy();
    let mut conn = RawConn::connect(&broker);
    let topic = "groups-target";
    create_topics(&mut conn, &[topic], 1);
    let before = {
        // The topic's own directory is expected; nothing else may change from here on.
        let mut b = before;
        b = b.into_iter().chain(list_tree(broker.root_dir())).collect();
        b.sort();
        b.dedup();
        b
    };

    // Kafka allows any non-empty group id up to our limit: these are valid ids, stored
    // verbatim in the offsets log and served back, and never become file names.
    let odd_ids = [
        "..",
        ".",
        "../victim",
        "../../victim-0",
        ABSOLUTE_PROBE,
        "a/b",
        "a\0b",
        "..%2Fvictim",
        "caf\u{e9}",
    ];
    for (i, id) in odd_ids.iter().enumerate() {
        let shown = printable(id);
        assert_eq!(
            offset_commit(&mut conn, id, topic, 100 + i as i64),
            NONE,
            "OffsetCommit for group {shown}"
        );
        let join = join_group(&mut conn, id);
        assert!(
            [NONE, MEMBER_ID_REQUIRED].contains(&join),
            "JoinGroup {shown}: error {join}"
        );
    }
    // Empty: a group cannot be joined (Kafka, like us, still takes offset commits for
    // it, for old clients).
    assert_eq!(
        join_group(&mut conn, ""),
        INVALID_GROUP_ID,
        "JoinGroup \"\""
    );
    // Over the limit: INVALID_GROUP_ID, nothing stored.
    for id in [&"g".repeat(256), &"../".repeat(1000)] {
        let shown = printable(id);
        assert_eq!(
            offset_commit(&mut conn, id, topic, 1),
            INVALID_GROUP_ID,
            "OffsetCommit for group {shown}"
        );
        assert_eq!(
            join_group(&mut conn, id),
            INVALID_GROUP_ID,
            "JoinGroup {shown}"
        );
    }
    assert_nothing_touched(&broker, &before, "hostile group ids");

    // The odd ids survive a restart as the same strings.
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    for (i, id) in odd_ids.iter().enumerate() {
        assert_eq!(
            committed_offset(&mut conn, id, topic),
            (NONE, 100 + i as i64),
            "committed offset of group {} after restart",
            printable(id)
        );
    }
    // Deleting such a group deletes its offsets only.
    let request = DeleteGroupsRequest::default()
        .with_groups_names(odd_ids.iter().map(|id| group_id(id)).collect());
    let deleted = conn.call(&request, DELETE_GROUPS_VERSION);
    for r in &deleted.results {
        assert!(
            [NONE, GROUP_ID_NOT_FOUND].contains(&r.error_code),
            "DeleteGroups {}: error {}",
            printable(r.group_id.0.as_str()),
            r.error_code
        );
    }
    assert_nothing_touched(&broker, &before, "DeleteGroups");
    assert_broker_healthy(&mut broker);
}

// ---------------------------------------------------------------------------------
// The admin API, over raw HTTP/1.1 so that no client normalizes a path or adds a
// header behind the test's back.

struct HttpReply {
    status: u16,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn http(
    broker: &TestBroker,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let addr = broker.admin_url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .expect("timeout");
    stream
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).expect("write request");
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .unwrap_or_else(|e| panic!("{method} {path}: reading reply: {e}"));
    let text = String::from_utf8_lossy(&reply).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header end in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_string(),
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn hostile_names_in_rest_paths_and_bodies_get_4xx_and_touch_nothing() {
    let (mut broker, before) = broker_with_decoy();
    let encoded_names = [
        "..",
        "%2E%2E",
        "%2e%2e",
        ".",
        "..%2Fvictim",
        "..%2F..%2Fvictim",
        "%2E%2E%2Fvictim",
        "..%5Cvictim",
        "%2Ftmp%2Fstrikemq-security-abs",
        "a%00b",
        "a%2Fb",
        "%252E%252E",
    ];
    for name in encoded_names {
        for (method, path, body) in [
            ("GET", format!("/v1/topics/{name}"), None),
            ("DELETE", format!("/v1/topics/{name}"), None),
            ("GET", format!("/v1/topics/{name}/messages"), None),
            (
                "POST",
                format!("/v1/topics/{name}/messages"),
                Some(r#"{"messages":[{"value":"x"}]}"#),
            ),
            ("GET", format!("/v1/groups/{name}"), None),
            ("DELETE", format!("/v1/groups/{name}"), None),
        ] {
            let headers: &[(&str, &str)] = if body.is_some() { &[JSON] } else { &[] };
            let reply = http(
                &broker,
                method,
                &path,
                headers,
                body.unwrap_or("").as_bytes(),
            );
            assert!(
                [400, 404].contains(&reply.status),
                "{method} {path}: status {} {}",
                reply.status,
                reply.body
            );
            assert!(
                reply.body.contains("\"error\""),
                "{method} {path}: not a JSON error: {}",
                reply.body
            );
        }
    }
    for name in hostile_topic_names() {
        let body = serde_json::json!({ "name": name, "partitions": 1 }).to_string();
        let reply = http(&broker, "POST", "/v1/topics", &[JSON], body.as_bytes());
        assert_eq!(
            reply.status,
            400,
            "POST /v1/topics {}: {}",
            printable(&name),
            reply.body
        );
    }
    assert_nothing_touched(&broker, &before, "REST");
    assert_broker_healthy(&mut broker);
}

/// Every state-changing request of the admin API, with a body a real client would send.
fn state_changing_requests(topic: &str) -> Vec<(&'static str, String, String)> {
    vec![
        (
            "POST",
            "/v1/topics".into(),
            r#"{"name":"csrf-created","partitions":1}"#.into(),
        ),
        (
            "POST",
            format!("/v1/topics/{topic}/messages"),
            r#"{"messages":[{"value":"csrf"}]}"#.into(),
        ),
        (
            "PUT",
            "/v1/config".into(),
            r#"{"loop_timeout_ms":7}"#.into(),
        ),
    ]
}

/// Content types a cross-site form or `fetch(..., {mode: "no-cors"})` can send without
/// a preflight (the CORS "simple" ones), plus none at all.
const SIMPLE_CONTENT_TYPES: &[Option<&str>] = &[
    Some("text/plain"),
    Some("text/plain; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=x"),
    Some("text/plain; application/json"),
    None,
];

/// What a cross-site attempt could have changed, read back.
fn observable_state(broker: &TestBroker, topic: &str) -> (u16, String, String) {
    let created = http(broker, "GET", "/v1/topics/csrf-created", &[], b"").status;
    let config: Value =
        serde_json::from_str(&http(broker, "GET", "/v1/config", &[], b"").body).expect("config");
    let described = http(broker, "GET", &format!("/v1/topics/{topic}"), &[], b"").body;
    (created, config["loop_timeout_ms"].to_string(), described)
}

/// Sends every state-changing request as a browser page of `origin` could (a simple
/// content type, the browser's `Origin` and fetch metadata) and expects `status` for
/// each: 403 from a foreign origin, 415 from an allowed one (a browser must label
/// JSON as such).
fn assert_simple_requests_refused(broker: &TestBroker, topic: &str, origin: &str, status: u16) {
    let before = observable_state(broker, topic);
    assert_eq!(before.0, 404, "csrf-created exists before the test");
    for (method, path, body) in state_changing_requests(topic) {
        for content_type in SIMPLE_CONTENT_TYPES {
            for site in [None, Some("same-site"), Some("cross-site")] {
                let mut headers = vec![("Origin", origin)];
                if let Some(ct) = content_type {
                    headers.push(("Content-Type", ct));
                }
                if let Some(site) = site {
                    headers.push(("Sec-Fetch-Site", site));
                }
                let reply = http(broker, method, &path, &headers, body.as_bytes());
                assert_eq!(
                    reply.status, status,
                    "{method} {path} with Content-Type {content_type:?}, Sec-Fetch-Site {site:?}: {} {}",
                    reply.status, reply.body
                );
            }
        }
    }
    assert_eq!(
        observable_state(broker, topic),
        before,
        "a simple cross-site request changed state"
    );
}

#[test]
fn without_cors_no_state_changes_from_other_origins_and_no_origin_is_ever_allowed() {
    let broker = TestBroker::start(&[]);
    let topic = "csrf-target";
    create_topics(&mut RawConn::connect(&broker), &[topic], 1);
    let evil = "http://evil.example";
    assert_simple_requests_refused(&broker, topic, evil, 403);
    // Another port of the same loopback address is another origin, and "null" (a
    // sandboxed frame, a file:// page) is no origin to trust.
    assert_simple_requests_refused(&broker, topic, "http://127.0.0.1:1", 403);
    assert_simple_requests_refused(&broker, topic, "null", 403);

    // Preflights for the non-simple requests (JSON bodies, DELETE) are not approved,
    // so a browser never sends them cross-site.
    for (method, path) in [
        ("POST", "/v1/topics".to_string()),
        ("PUT", "/v1/config".into()),
        ("DELETE", format!("/v1/topics/{topic}")),
        ("DELETE", "/v1/groups/g".into()),
    ] {
        let reply = http(
            &broker,
            "OPTIONS",
            &path,
            &[
                ("Origin", evil),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        );
        assert!(
            !(200..300).contains(&reply.status),
            "preflight for {method} {path} approved with {}",
            reply.status
        );
        for h in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
        ] {
            assert!(reply.header(h).is_none(), "preflight {path}: {h} present");
        }
    }
    // No response, success or error, lets a page of another origin read it.
    for (method, path, headers, body) in [
        ("GET", "/v1/topics".to_string(), vec![], ""),
        ("GET", "/v1/config".into(), vec![], ""),
        ("GET", "/metrics".into(), vec![], ""),
        ("GET", "/v1/topics/nope".into(), vec![], ""),
        (
            "POST",
            "/v1/topics".into(),
            vec![("Content-Type", "text/plain")],
            "{}",
        ),
    ] {
        let mut headers = headers;
        headers.push(("Origin", evil));
        let reply = http(&broker, method, &path, &headers, body.as_bytes());
        assert!(
            reply.header("access-control-allow-origin").is_none()
                && reply.header("access-control-allow-credentials").is_none(),
            "{method} {path} ({}) carries CORS headers",
            reply.status
        );
    }
}

#[test]
fn with_cors_configured_only_that_origin_may_write_and_only_with_json() {
    let allowed = "http://localhost:3000";
    let arg = format!("admin_cors_origin={allowed}");
    let broker = TestBroker::start(&["--set", &arg]);
    let topic = "cors-target";
    create_topics(&mut RawConn::connect(&broker), &[topic], 1);
    // CORS relaxes who may read and lets the one origin write with JSON; any other
    // origin is still refused, and the allowed one must still label its JSON.
    assert_simple_requests_refused(&broker, topic, "http://evil.example", 403);
    assert_simple_requests_refused(&broker, topic, allowed, 415);

    for origin in [allowed, "http://evil.example", "null"] {
        for (method, path, headers) in [
            ("GET", "/v1/topics", vec![("Origin", origin)]),
            (
                "OPTIONS",
                "/v1/config",
                vec![
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "PUT"),
                    ("Access-Control-Request-Headers", "content-type"),
                ],
            ),
        ] {
            let reply = http(&broker, method, path, &headers, b"");
            let allow = reply.header("access-control-allow-origin");
            assert_eq!(
                allow,
                Some(allowed),
                "{method} {path} from {origin}: only the configured origin may be named"
            );
            assert_ne!(allow, Some("*"));
        }
    }
    // The allowed origin's JSON request works (the configured purpose of CORS).
    let reply = http(
        &broker,
        "PUT",
        "/v1/config",
        &[("Origin", allowed), JSON],
        br#"{"loop_timeout_ms":7}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The rule that replaced "every body must be labelled JSON": a browser request for
/// another origin (`Origin` foreign, or `Sec-Fetch-Site: cross-site`) is refused with
/// 403 whatever it is, before anything changes, and DELETEs too; the console's own
/// origin and clients without browser headers (curl, scripts) are served.
#[test]
fn cross_site_requests_get_403_before_anything_changes_and_own_origin_is_served() {
    let broker = TestBroker::start(&[]);
    let topic = "xsite-target";
    create_topics(&mut RawConn::connect(&broker), &[topic], 1);
    let admin = broker.admin_url();
    let before = observable_state(&broker, topic);
    let mut requests = state_changing_requests(topic);
    requests.push(("DELETE", format!("/v1/topics/{topic}"), String::new()));
    for (method, path, body) in &requests {
        for headers in [
            vec![("Origin", "http://evil.example"), JSON],
            vec![("Origin", "http://localhost:1"), JSON],
            vec![("Sec-Fetch-Site", "cross-site"), JSON],
            vec![
                ("Sec-Fetch-Site", "cross-site"),
                ("Sec-Fetch-Mode", "navigate"),
            ],
            vec![
                ("Origin", admin.as_str()),
                ("Sec-Fetch-Site", "cross-site"),
                JSON,
            ],
        ] {
            let reply = http(&broker, method, path, &headers, body.as_bytes());
            assert_eq!(
                reply.status, 403,
                "{method} {path} {headers:?}: {}",
                reply.body
            );
            assert!(
                reply.body.contains("cross-site request protection"),
                "{}",
                reply.body
            );
        }
    }
    assert_eq!(
        observable_state(&broker, topic),
        before,
        "a refused request changed state"
    );

    // The console's own requests: Origin = the admin listener, same-origin metadata.
    let own = [
        ("Origin", admin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
        JSON,
    ];
    let reply = http(
        &broker,
        "PUT",
        "/v1/config",
        &own,
        br#"{"loop_timeout_ms":7}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A script's request: no browser headers, a form label (curl -d).
    let reply = http(
        &broker,
        "PUT",
        "/v1/config",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        br#"{"loop_timeout_ms":8}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = http(&broker, "DELETE", &format!("/v1/topics/{topic}"), &own, b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// DNS rebinding: a page on `evil.example` whose name is made to resolve to 127.0.0.1
/// is same-origin with the admin API, so its JSON requests need no preflight; the
/// `Host` header still names its domain, and that is refused before anything runs.
#[test]
fn requests_naming_a_foreign_host_are_refused_so_dns_rebinding_cannot_drive_the_api() {
    let broker = TestBroker::start(&[]);
    let topic = "rebind-target";
    create_topics(&mut RawConn::connect(&broker), &[topic], 1);
    let port = broker
        .admin_url()
        .rsplit(':')
        .next()
        .expect("admin port")
        .to_string();
    let before = observable_state(&broker, topic);
    let foreign = format!("evil.example:{port}");
    for (method, path, body) in state_changing_requests(topic) {
        let reply = http(
            &broker,
            method,
            &path,
            &[("Host", &foreign), JSON],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.body);
        assert!(reply.body.contains("admin_allowed_hosts"), "{}", reply.body);
    }
    // Reading is refused too: a rebound page must not read topics or messages.
    let reply = http(&broker, "GET", "/v1/topics", &[("Host", &foreign)], b"");
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(
        observable_state(&broker, topic),
        before,
        "a rebound request changed state"
    );

    // Loopback names and IP literals are served.
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let reply = http(&broker, "GET", "/healthz", &[("Host", &host)], b"");
        assert_eq!(reply.status, 200, "Host {host}: {}", reply.body);
    }

    // A name the operator allows is served.
    let allowing = TestBroker::start(&["--set", r#"admin_allowed_hosts=["broker.dev"]"#]);
    let port = allowing
        .admin_url()
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let reply = http(
        &allowing,
        "GET",
        "/v1/topics",
        &[("Host", &format!("broker.dev:{port}"))],
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = http(&allowing, "GET", "/v1/topics", &[("Host", &foreign)], b"");
    assert_eq!(reply.status, 403, "{}", reply.body);
}
