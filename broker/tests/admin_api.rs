//! The REST admin API of the real `strikemq` binary, driven by a real HTTP client
//! (ureq), with rdkafka and kcat on the Kafka side: every endpoint, every error status,
//! REST-produced messages read by Kafka clients byte for byte, Kafka-produced
//! compressed messages peeked, live configuration changes and the metrics.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::Offset;
use serde_json::{json, Value};

use common::rdkafka_util::{
    assign, consume_exactly, consumer_config, create_consumer, create_producer, produce_ok,
    producer_config, to_consumed, ConsumedRecord, TestRecord,
};
use common::{unique_topic, wait_timeout, TestBroker};

/// Upper bound for one admin HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const KCAT_TIMEOUT: Duration = Duration::from_secs(30);

/// A small JSON client for the admin API that returns every status (no error on 4xx).
struct Admin {
    agent: ureq::Agent,
    base: String,
}

struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", self.text))
    }

    /// Asserts an error reply: the status and a JSON `{"error": ...}` containing `words`.
    fn assert_error(&self, status: u16, words: &str) {
        assert_eq!(self.status, status, "status of {:?}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "error content type {:?}",
            self.content_type
        );
        let message = self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error string in {:?}", self.text))
            .to_string();
        assert!(
            message.contains(words),
            "error {message:?} should mention {words:?}"
        );
    }
}

impl Admin {
    fn new(broker: &TestBroker) -> Admin {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build()
            .into();
        Admin {
            agent,
            base: broker.admin_url(),
        }
    }

    fn request(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        self.request_headers(method, path, content_type, &[], body)
    }

    fn request_headers(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.to_vec()).expect("build request");
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Reply {
            status: response.status().as_u16(),
            content_type,
            text: response
                .body_mut()
                .read_to_string()
                .unwrap_or_else(|e| panic!("{method} {path}: reading body: {e}")),
        }
    }

    /// A request with exactly these headers (names lower-case).
    fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let content_type = headers
            .iter()
            .find(|(n, _)| *n == "content-type")
            .map(|(_, v)| *v);
        let extra: Vec<_> = headers
            .iter()
            .filter(|(n, _)| *n != "content-type")
            .copied()
            .collect();
        self.request_headers(method, path, content_type, &extra, body)
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, b"")
    }

    fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None, b"")
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.request(
            method,
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }

    /// GET that must answer 200 with JSON.
    fn get_ok(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
        reply.json()
    }

    fn create_topic(&self, name: &str, partitions: i32) -> Value {
        let reply = self.send(
            "POST",
            "/v1/topics",
            &json!({"name": name, "partitions": partitions}),
        );
        assert_eq!(reply.status, 201, "create {name}: {}", reply.text);
        reply.json()
    }

    fn produce(&self, topic: &str, messages: Value) -> Value {
        let path = format!("/v1/topics/{topic}/messages");
        let reply = self.send("POST", &path, &json!({ "messages": messages }));
        assert_eq!(reply.status, 200, "POST {path}: {}", reply.text);
        reply.json()
    }
}

/// The value of the sample `name{labels}` in Prometheus text, if present.
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        (series == name_and_labels).then(|| value.parse().ok())?
    })
}

#[test]
fn health_and_broker_info_report_listeners_platform_and_effective_configuration() {
    let broker = TestBroker::start(&["--profile", "tuned"]);
    let admin = Admin::new(&broker);
    assert_eq!(admin.get_ok("/healthz"), json!({"status": "ok"}));

    let info = admin.get_ok("/v1/broker");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["listeners"]["kafka"], broker.bootstrap());
    assert_eq!(
        format!("http://{}", info["listeners"]["admin"].as_str().unwrap()),
        broker.admin_url()
    );
    assert_eq!(info["data_dir"], broker.data_dir().display().to_string());
    assert_eq!(info["platform"]["os"], "linux");
    assert!(info["uptime_ms"].as_u64().is_some());
    // The tuned profile asks for io_uring; what runs is reported, with the reason.
    let effective = &info["effective_config"];
    assert_eq!(effective["loop_timeout_ms"], 1, "tuned profile");
    let fallbacks = info["fallbacks"].as_array().expect("fallbacks");
    if effective["io_backend"] != "io_uring_sqpoll" {
        assert!(
            fallbacks
                .iter()
                .any(|f| f["key"] == "io_backend" && f["reason"].is_string()),
            "io_backend fell back without a reason: {info}"
        );
    }
    assert_eq!(info["live"]["flush"], "never");
    assert_eq!(info["changed_at_runtime"], json!([]));
}

#[test]
fn topics_are_created_listed_described_and_deleted_with_their_data() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-topics");
    let created = admin.send(
        "POST",
        "/v1/topics",
        &json!({"name": topic, "partitions": 3, "configs": {"retention.ms": "60000"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(created["partition_count"], 3);
    assert_eq!(created["configs"]["retention.ms"], "60000");

    admin.produce(
        &topic,
        json!([{"value": "a", "partition": 2}, {"value": "b", "partition": 2}]),
    );
    let list = admin.get_ok("/v1/topics");
    let entry = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic.as_str())
        .unwrap_or_else(|| panic!("{topic} not listed: {list}"));
    assert_eq!(entry["partitions"], 3);
    assert_eq!(entry["messages"], 2);
    assert_eq!(
        entry["offsets"][2],
        json!({"partition": 2, "start_offset": 0, "end_offset": 2})
    );

    let detail = admin.get_ok(&format!("/v1/topics/{topic}"));
    assert_eq!(detail["id"], created["id"]);
    assert_eq!(detail["partitions"][2]["end_offset"], 2);
    assert!(detail["partitions"][2]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(detail["partitions"][0]["size_bytes"], 0);

    admin
        .send("POST", "/v1/topics", &json!({"name": topic}))
        .assert_error(409, "already exists");

    let deleted = admin.delete(&format!("/v1/topics/{topic}"));
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json()["deleted"], topic.as_str());
    admin
        .get(&format!("/v1/topics/{topic}"))
        .assert_error(404, "unknown topic");
    admin
        .delete(&format!("/v1/topics/{topic}"))
        .assert_error(404, "unknown topic");
    assert!(
        !broker.data_dir().join(format!("{topic}-2")).exists(),
        "partition data left behind"
    );
    // Defaults: the broker's default_partitions.
    let other = unique_topic("admin-default");
    assert_eq!(admin.create_topic_default(&other)["partition_count"], 1);
}

impl Admin {
    fn create_topic_default(&self, name: &str) -> Value {
        let reply = self.send("POST", "/v1/topics", &json!({ "name": name }));
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json()
    }
}

#[test]
fn every_error_is_json_with_its_status_and_names_the_culprit() {
    let broker = TestBroker::start(&["--set", "admin_max_body_bytes=4096"]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-errors");
    admin.create_topic(&topic, 1);

    // 404: unknown route, topic, partition, group.
    admin
        .get("/v1/nothing-here")
        .assert_error(404, "no such endpoint");
    admin
        .get("/v1/topics/no-such-topic")
        .assert_error(404, "unknown topic");
    admin
        .get(&format!("/v1/topics/{topic}/messages?partition=7"))
        .assert_error(404, "no partition 7");
    // A produce to a name that can never exist is not auto-created.
    admin
        .send(
            "POST",
            "/v1/topics/bad%2Fname/messages",
            &json!({"messages": [{"value": "x"}]}),
        )
        .assert_error(404, "only ASCII letters");
    // 405: a known path, a wrong method.
    admin
        .request("PATCH", "/v1/topics", Some("application/json"), b"{}")
        .assert_error(405, "PATCH");
    admin.delete("/v1/broker").assert_error(405, "DELETE");
    admin
        .request(
            "PUT",
            "/v1/topics/x/messages",
            Some("application/json"),
            b"{}",
        )
        .assert_error(405, "PUT");
    // 400: bad JSON, bad fields (named), bad parameters (named), bad names.
    admin
        .request("POST", "/v1/topics", Some("application/json"), b"{not json")
        .assert_error(400, "body");
    admin
        .send(
            "POST",
            "/v1/topics",
            &json!({"name": topic, "partitions": "three"}),
        )
        .assert_error(400, "partitions");
    admin
        .send("POST", "/v1/topics", &json!({"name": "bad/name"}))
        .assert_error(400, "name");
    admin
        .send(
            "POST",
            "/v1/topics",
            &json!({"name": "ok-name", "partitions": 0}),
        )
        .assert_error(400, "partitions");
    admin
        .send(
            "POST",
            "/v1/topics",
            &json!({"name": "ok-name", "colour": "red"}),
        )
        .assert_error(400, "colour");
    // A name that can never exist is an unknown topic, and the message says why.
    admin
        .get("/v1/topics/bad%2Fname")
        .assert_error(404, "only ASCII letters");
    for (query, param) in [
        ("partition=-1", "partition"),
        ("offset=abc", "offset"),
        ("limit=0", "limit"),
    ] {
        admin
            .get(&format!("/v1/topics/{topic}/messages?{query}"))
            .assert_error(400, param);
    }
    let messages = format!("/v1/topics/{topic}/messages");
    admin
        .send("POST", &messages, &json!({"messages": []}))
        .assert_error(400, "messages");
    admin
        .send(
            "POST",
            &messages,
            &json!({"messages": [{"value": "x", "partition": 5}]}),
        )
        .assert_error(404, "messages[0].partition");
    admin
        .send("POST", &messages, &json!({"messages": [{"value": 12}]}))
        .assert_error(400, "messages[0].value");
    admin
        .send(
            "POST",
            &messages,
            &json!({"messages": [{"value_b64": "%%%"}]}),
        )
        .assert_error(400, "messages[0].value_b64");
    admin
        .send(
            "POST",
            &messages,
            &json!({"messages": [{"value": "a", "value_b64": "YQ=="}]}),
        )
        .assert_error(400, "not both");
    admin
        .send("PUT", "/v1/config", &json!({"loop_timeout_ms": -5}))
        .assert_error(400, "loop_timeout_ms");
    admin
        .send("PUT", "/v1/config", &json!({"flush": "sometimes"}))
        .assert_error(400, "flush");
    admin
        .send("PUT", "/v1/config", &json!({"no_such_key": 1}))
        .assert_error(400, "no_such_key");
    // 409: a structural change.
    admin
        .send(
            "PUT",
            "/v1/config",
            &json!({"conn_buffer": "circular", "loop_timeout_ms": 5}),
        )
        .assert_error(409, "conn_buffer");
    assert_eq!(
        admin.get_ok("/v1/config")["loop_timeout_ms"],
        100,
        "a rejected request changes nothing"
    );
    // 413: a body over admin_max_body_bytes.
    let big = json!({"messages": [{"value": "x".repeat(8192)}]});
    admin
        .send("POST", &messages, &big)
        .assert_error(413, "larger than");
    // 415: a browser's body that is not declared JSON, even from the admin's own origin.
    let own_origin = broker.admin_url();
    admin
        .request_with(
            "POST",
            "/v1/topics",
            &[("origin", &own_origin), ("content-type", "text/plain")],
            br#"{"name":"csrf"}"#,
        )
        .assert_error(415, "application/json");
    admin
        .request_with(
            "PUT",
            "/v1/config",
            &[("sec-fetch-site", "same-origin")],
            br#"{"flush":"always"}"#,
        )
        .assert_error(415, "application/json");
    // 403: a state change a browser sent for another origin.
    admin
        .request_with(
            "POST",
            "/v1/topics",
            &[
                ("origin", "http://127.0.0.1:1"),
                ("content-type", "application/json"),
            ],
            br#"{"name":"csrf"}"#,
        )
        .assert_error(403, "cross-site request protection");
    assert!(
        admin.get("/v1/topics/csrf").status == 404,
        "the refused requests created nothing"
    );
    assert_eq!(admin.get_ok("/v1/config")["flush"], "never");
}

/// What `curl -d BODY` sends: a form content type, no browser headers.
const CURL_FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn bodies_from_scripts_are_json_whatever_their_declared_type() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    for (i, content_type) in [
        Some(CURL_FORM),
        Some("text/plain"),
        Some("application/octet-stream"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("labelled-{i}");
        let body = format!(r#"{{"name":"{name}","partitions":2}}"#);
        let reply = admin.request("POST", "/v1/topics", content_type, body.as_bytes());
        assert_eq!(reply.status, 201, "{content_type:?}: {}", reply.text);
        assert_eq!(
            admin.get_ok(&format!("/v1/topics/{name}"))["partition_count"],
            2
        );
        let reply = admin.request(
            "PUT",
            "/v1/config",
            content_type,
            format!(r#"{{"loop_timeout_ms":{}}}"#, 10 + i).as_bytes(),
        );
        assert_eq!(reply.status, 200, "{content_type:?}: {}", reply.text);
        assert_eq!(admin.get_ok("/v1/config")["loop_timeout_ms"], 10 + i);
    }
    // It must still be JSON: a real form body is a 400 naming the body.
    admin
        .request(
            "POST",
            "/v1/topics",
            Some(CURL_FORM),
            b"name=x&partitions=1",
        )
        .assert_error(400, "body");
}

/// The seed's quick example, with the ports this broker got: `curl -d` (no content
/// type given, so a form one), then kcat reads what it produced. The topic does not
/// exist before: the REST produce creates it as a Kafka Produce would.
#[test]
fn the_seed_quick_example_works_as_written() {
    let Some(kcat) = common::kcat_or_skip() else {
        return;
    };
    let broker = TestBroker::start(&[]);
    let admin_port = broker
        .admin_url()
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let kafka_port = broker
        .bootstrap()
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let body = r#"{"messages":[{"value":"hello"},{"key":"k1","value":"world"}]}"#;
    let url = format!("localhost:{admin_port}/v1/topics/demo/messages");
    let (status, answer) = match common::find_program("curl") {
        Some(curl) => {
            let out = Command::new(curl)
                .args(["-s", "-w", "\n%{http_code}", "-X", "POST", &url, "-d", body])
                .output()
                .expect("run curl");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let (answer, status) = text.rsplit_once('\n').expect("status line");
            (status.parse::<u16>().expect("status"), answer.to_string())
        }
        // Without curl: exactly what curl -d sends.
        None => curl_like_post(&format!("127.0.0.1:{admin_port}"), &admin_port, body),
    };
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
    assert_eq!(answer["count"], 2, "{answer}");
    assert_eq!(admin_partitions(&broker, "demo"), 1, "default_partitions");

    let mut child = Command::new(kcat)
        .args([
            "-b",
            &format!("127.0.0.1:{kafka_port}"),
            "-C",
            "-t",
            "demo",
            "-e",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    let status = wait_timeout(&mut child, KCAT_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("kcat did not finish within {KCAT_TIMEOUT:?}")
    });
    let output = child.wait_with_output().expect("kcat output");
    assert!(
        status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello\nworld\n");
}

fn admin_partitions(broker: &TestBroker, topic: &str) -> i64 {
    Admin::new(broker).get_ok(&format!("/v1/topics/{topic}"))["partition_count"]
        .as_i64()
        .expect("partition_count")
}

/// `curl -X POST localhost:PORT/v1/topics/demo/messages -d BODY` byte for byte (curl
/// 7.88's headers): for machines without curl.
fn curl_like_post(addr: &str, port: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .expect("timeout");
    let request = format!(
        "POST /v1/topics/demo/messages HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: curl/7.88.1\r\n\
         Accept: */*\r\nContent-Length: {}\r\nContent-Type: {CURL_FORM}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    let (head, answer) = reply.split_once("\r\n\r\n").expect("head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, answer.to_string())
}

#[test]
fn rest_produce_auto_creates_within_kafkas_rules_or_names_the_setting() {
    let broker = TestBroker::start(&["--set", "default_partitions=3", "--set", "max_topics=2"]);
    let admin = Admin::new(&broker);
    let produced = admin.produce("auto-a", json!([{"key": "k", "value": "v"}]));
    assert_eq!(produced["count"], 1);
    assert_eq!(admin_partitions(&broker, "auto-a"), 3, "default_partitions");
    admin.produce("auto-b", json!([{"value": "v"}]));
    // max_topics, as for a Kafka auto-create: 409 naming the limit, nothing created.
    admin
        .send(
            "POST",
            "/v1/topics/auto-c/messages",
            &json!({"messages": [{"value": "v"}]}),
        )
        .assert_error(409, "max_topics");
    assert_eq!(admin.get("/v1/topics/auto-c").status, 404);

    let off = TestBroker::start(&["--set", "auto_create_topics=false"]);
    let admin = Admin::new(&off);
    admin
        .request(
            "POST",
            "/v1/topics/demo/messages",
            Some(CURL_FORM),
            br#"{"messages":[{"value":"hello"}]}"#,
        )
        .assert_error(404, "auto_create_topics");
    assert_eq!(admin.get("/v1/topics/demo").status, 404);
}

#[test]
fn cors_is_off_by_default_and_allows_only_the_configured_origin() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let reply = admin
        .agent
        .get(format!("{}/v1/topics", admin.base))
        .header("origin", "http://evil.example")
        .call()
        .unwrap();
    assert!(reply.headers().get("access-control-allow-origin").is_none());
    admin
        .request("OPTIONS", "/v1/topics", None, b"")
        .assert_error(405, "OPTIONS");

    let broker = TestBroker::start(&["--set", "admin_cors_origin=http://localhost:3000"]);
    let admin = Admin::new(&broker);
    let reply = admin
        .agent
        .get(format!("{}/v1/topics", admin.base))
        .call()
        .unwrap();
    assert_eq!(
        reply.headers().get("access-control-allow-origin").unwrap(),
        "http://localhost:3000"
    );
    let preflight = admin.request("OPTIONS", "/v1/config", None, b"");
    assert_eq!(preflight.status, 204);
}

/// Records as rdkafka sees them, each with its timestamp (ms).
fn consume_with_timestamps(consumer: &BaseConsumer, count: usize) -> Vec<(ConsumedRecord, i64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count}",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consumer error");
            out.push((to_consumed(&m), m.timestamp().to_millis().unwrap_or(-1)));
        }
    }
    out
}

#[test]
fn rest_produced_messages_are_consumed_byte_for_byte_by_rdkafka() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-rest-to-rdkafka");
    admin.create_topic(&topic, 2);
    let binary: Vec<u8> = (0..=255u8).collect();
    // Raw JSON text: header order matters and json! would sort the keys.
    let body = format!(
        r#"{{"messages": [
            {{"key": "k1", "value": "hello", "headers": {{"h1": "v1", "empty": null}}, "partition": 1, "timestamp": 1700000000123}},
            {{"value_b64": "{}", "partition": 1}},
            {{"key": "null-value", "partition": 1}},
            {{"key": "ünïcödé ✓", "value": "", "partition": 1}}
        ]}}"#,
        BASE64.encode(&binary)
    );
    let reply = admin.request(
        "POST",
        &format!("/v1/topics/{topic}/messages"),
        Some("application/json"),
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let produced = reply.json();
    assert_eq!(produced["count"], 4);
    assert_eq!(produced["base_offset"], 0);
    assert_eq!(
        produced["partitions"],
        json!([{"partition": 1, "base_offset": 0, "count": 4}])
    );
    let again = admin.produce(&topic, json!([{"value": "later", "partition": 1}]));
    assert_eq!(again["base_offset"], 4, "offsets continue");

    let consumer = create_consumer(&consumer_config(&broker));
    assign(&consumer, &topic, &[1], Offset::Beginning);
    let got = consume_with_timestamps(&consumer, 5);
    assert_eq!(got[0].0.offset, 0);
    assert_eq!(got[0].0.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(got[0].0.value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(
        got[0].0.headers,
        vec![
            ("h1".to_string(), Some(b"v1".to_vec())),
            ("empty".to_string(), None)
        ]
    );
    assert_eq!(got[0].1, 1_700_000_000_123);
    assert_eq!(got[1].0.key, None);
    assert_eq!(
        got[1].0.value.as_deref(),
        Some(binary.as_slice()),
        "binary value byte for byte"
    );
    assert_eq!(got[2].0.value, None, "null value stays null");
    assert_eq!(got[3].0.key.as_deref(), Some("ünïcödé ✓".as_bytes()));
    assert_eq!(
        got[3].0.value.as_deref(),
        Some(&b""[..]),
        "empty value stays empty, not null"
    );
    assert_eq!(
        (got[4].0.offset, got[4].0.value.as_deref()),
        (4, Some(&b"later"[..]))
    );
}

#[test]
fn rest_messages_without_partition_follow_kafkas_key_partitioner() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-partitioner");
    admin.create_topic(&topic, 4);
    // librdkafka's murmur2_random partitioner is the Java client's default.
    let mut config = producer_config(&broker);
    config.set("partitioner", "murmur2_random");
    let producer = create_producer(&config);
    for key in ["alpha", "beta", "gamma", "delta", "epsilon"] {
        let record = TestRecord {
            key: Some(key.as_bytes().to_vec()),
            ..TestRecord::value("v")
        };
        let (kafka_partition, _) = produce_ok(&producer, &topic, &[record])[0];
        let rest = admin.produce(&topic, json!([{"key": key, "value": "v"}]));
        assert_eq!(
            rest["partitions"][0]["partition"], kafka_partition,
            "key {key}"
        );
    }
}

#[test]
fn rest_produced_messages_are_consumed_by_kcat() {
    let Some(kcat) = common::kcat_or_skip() else {
        return;
    };
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-rest-to-kcat");
    admin.create_topic(&topic, 1);
    admin.produce(
        &topic,
        json!([
            {"key": "k1", "value": "first value", "headers": {"trace": "abc"}},
            {"key": "k2", "value": "{\"json\": true}"},
            {"value": "no key"}
        ]),
    );
    let mut child = Command::new(kcat)
        .args([
            "-b",
            &broker.bootstrap(),
            "-X",
            "broker.address.family=v4",
            "-C",
            "-t",
            &topic,
            "-e",
            "-o",
            "beginning",
            "-q",
            "-f",
            "%o|%k|%s|%h\n",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    let status = wait_timeout(&mut child, KCAT_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("kcat did not finish within {KCAT_TIMEOUT:?}")
    });
    let output = child.wait_with_output().expect("kcat output");
    assert!(
        status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "0|k1|first value|trace=abc",
            "1|k2|{\"json\": true}|",
            "2||no key|",
        ]
    );
}

#[test]
fn rdkafka_compressed_messages_are_peeked_decompressed_in_every_codec() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("admin-peek-{codec}"));
        admin.create_topic(&topic, 1);
        let mut config = producer_config(&broker);
        config.set("compression.type", codec).set("linger.ms", "50");
        let producer = create_producer(&config);
        let records: Vec<TestRecord> = (0..20)
            .map(|i| TestRecord {
                partition: Some(0),
                key: Some(format!("key-{i}").into_bytes()),
                value: Some(format!("value {i} {}", "compressible ".repeat(10)).into_bytes()),
                headers: vec![("n".to_string(), Some(i.to_string().into_bytes()))],
            })
            .collect();
        let before_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        produce_ok(&producer, &topic, &records);

        let peek = admin.get_ok(&format!(
            "/v1/topics/{topic}/messages?partition=0&offset=3&limit=5"
        ));
        let messages = peek["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 5, "{codec}: {peek}");
        for (j, m) in messages.iter().enumerate() {
            let i = j + 3;
            assert_eq!(m["offset"], i, "{codec}");
            assert_eq!(m["key"], format!("key-{i}"), "{codec}");
            assert_eq!(
                m["value"],
                format!("value {i} {}", "compressible ".repeat(10)),
                "{codec}"
            );
            assert_eq!(m["value_base64"], false);
            assert_eq!(m["headers"], json!({"n": i.to_string()}), "{codec}");
            // The record's own timestamp, not the batch's first one or "now".
            let ts = m["timestamp"].as_i64().unwrap();
            assert!(
                ts >= before_ms - 1000 && ts <= before_ms + 30_000,
                "{codec}: timestamp {ts}"
            );
            assert_eq!(m["timestamp_type"], "create_time");
        }
        assert_eq!(peek["next_offset"], 8);
        assert_eq!(peek["end_offset"], 20);
    }
}

#[test]
fn peek_returns_real_timestamps_base64_for_binary_and_caps_the_limit() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-peek");
    admin.create_topic(&topic, 1);
    let binary = [0xffu8, 0xfe, 0x00, 0x80];
    admin.produce(
        &topic,
        json!([
            {"key_b64": BASE64.encode(binary), "value_b64": BASE64.encode(binary), "timestamp": 1_000},
            {"value": "text", "timestamp": 2_000, "headers": {"bin": null}}
        ]),
    );
    let peek = admin.get_ok(&format!("/v1/topics/{topic}/messages"));
    let m = &peek["messages"];
    assert_eq!(m[0]["key"], BASE64.encode(binary));
    assert_eq!(m[0]["key_base64"], true);
    assert_eq!(m[0]["value_base64"], true);
    assert_eq!(m[0]["timestamp"], 1_000);
    assert_eq!(m[1]["timestamp"], 2_000, "each record's own timestamp");
    assert_eq!(m[1]["headers"], json!({"bin": null}));

    // 1200 records; a limit of 5000 returns at most 1000.
    let many: Vec<Value> = (0..1200)
        .map(|i| json!({"value": format!("m{i}")}))
        .collect();
    admin.produce(&topic, Value::Array(many));
    let peek = admin.get_ok(&format!("/v1/topics/{topic}/messages?limit=5000"));
    assert_eq!(peek["messages"].as_array().unwrap().len(), 1000);
    assert_eq!(peek["next_offset"], 1000);
    let tail = admin.get_ok(&format!(
        "/v1/topics/{topic}/messages?offset=1000&limit=5000"
    ));
    assert_eq!(tail["messages"].as_array().unwrap().len(), 202);
    let past = admin.get_ok(&format!("/v1/topics/{topic}/messages?offset=99999"));
    assert_eq!(past["messages"], json!([]));
}

#[test]
fn a_long_polling_fetch_returns_as_soon_as_rest_produces() {
    use common::raw::{fetch, RawConn};
    const FETCH_MAX_WAIT_MS: i32 = 8_000;
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-wake");
    admin.create_topic(&topic, 1);
    std::thread::scope(|s| {
        let fetcher = s.spawn(|| {
            let mut conn = RawConn::connect(&broker);
            let started = Instant::now();
            let fetched = fetch(&mut conn, &topic, 0, 0, FETCH_MAX_WAIT_MS);
            (started.elapsed(), fetched.records.len())
        });
        // Let the fetch park first.
        std::thread::sleep(Duration::from_millis(300));
        admin.produce(&topic, json!([{"value": "wake up"}]));
        let (elapsed, records) = fetcher.join().expect("fetcher");
        assert_eq!(records, 1);
        assert!(
            elapsed < Duration::from_secs(4),
            "the fetch waited {elapsed:?} instead of waking"
        );
    });
}

/// Voluntary context switches of every thread of `pid`: each event-loop timeout
/// wakes its thread once.
fn context_switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let status =
            std::fs::read_to_string(task.expect("task").path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn wakeups_per_second(pid: u32) -> f64 {
    let window = Duration::from_millis(1000);
    let before = context_switches(pid);
    std::thread::sleep(window);
    (context_switches(pid) - before) as f64 / window.as_secs_f64()
}

#[test]
fn live_config_change_shows_in_broker_info_and_in_the_event_loops() {
    let broker = TestBroker::start(&["--set", "loop_timeout_ms=1000"]);
    let admin = Admin::new(&broker);
    // loop_timeout_ms bounds the wait of a worker that has connections (one without
    // any, like the acceptor, waits for its eventfd only): keep one open and idle.
    let _idle_client = std::net::TcpStream::connect(broker.bootstrap()).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let idle = wakeups_per_second(broker.pid());

    let reply = admin.send(
        "PUT",
        "/v1/config",
        &json!({"loop_timeout_ms": 1, "flush": "always", "busy_poll_us": 50}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"loop_timeout_ms": 1, "idle_spin_us": 0, "busy_poll_us": 50, "prefer_busy_poll": false, "flush": "always"})
    );
    let info = admin.get_ok("/v1/broker");
    assert_eq!(info["effective_config"]["loop_timeout_ms"], 1);
    assert_eq!(info["effective_config"]["flush"], "always");
    assert_eq!(info["live"]["busy_poll_us"], 50);
    let changed: Vec<&str> = info["changed_at_runtime"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(changed, vec!["loop_timeout_ms", "busy_poll_us", "flush"]);

    // Behaviour: the worker with the idle connection now wakes every millisecond.
    std::thread::sleep(Duration::from_millis(1100)); // the loops finish their 1 s waits
    let busy = wakeups_per_second(broker.pid());
    assert!(
        busy > 200.0 && busy > 20.0 * idle.max(1.0),
        "wake-ups per second: {idle:.0} at 1000 ms, {busy:.0} at 1 ms"
    );
    // And back.
    let reply = admin.send("PUT", "/v1/config", &json!({"loop_timeout_ms": 1000}));
    assert_eq!(reply.status, 200);
    std::thread::sleep(Duration::from_millis(100));
    let calm = wakeups_per_second(broker.pid());
    assert!(
        calm < busy / 10.0,
        "wake-ups per second back at 1000 ms: {calm:.0}"
    );

    // A structural key sent with its running value is a no-op, not a conflict.
    let running = info["effective_config"]["io_backend"].clone();
    let reply = admin.send("PUT", "/v1/config", &json!({"io_backend": running}));
    assert_eq!(reply.status, 200, "{}", reply.text);
    // Data produced with flush=always still reads back.
    let topic = unique_topic("admin-flush-always");
    admin.create_topic(&topic, 1);
    admin.produce(&topic, json!([{"value": "durable"}]));
    assert_eq!(
        admin.get_ok(&format!("/v1/topics/{topic}/messages"))["messages"][0]["value"],
        "durable"
    );
}

#[test]
fn metrics_count_requests_latency_bytes_connections_and_partition_offsets() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let topic = unique_topic("admin-metrics");
    admin.create_topic(&topic, 2);
    let producer = create_producer(&producer_config(&broker));
    let records: Vec<TestRecord> = (0..10)
        .map(|i| TestRecord {
            partition: Some(1),
            ..TestRecord::value(format!("m{i}"))
        })
        .collect();
    produce_ok(&producer, &topic, &records);
    let consumer = create_consumer(&consumer_config(&broker));
    assign(&consumer, &topic, &[1], Offset::Beginning);
    consume_exactly(
        &consumer,
        10,
        Duration::from_secs(30),
        Duration::from_millis(300),
    );

    let reply = admin.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let text = reply.text;
    let produce_requests = metric(
        &text,
        r#"strikemq_requests_total{api="Produce",api_key="0"}"#,
    )
    .expect("produce count");
    assert!(produce_requests >= 1.0, "{text}");
    assert_eq!(
        metric(
            &text,
            r#"strikemq_request_duration_seconds_count{api="Produce",api_key="0"}"#
        ),
        Some(produce_requests)
    );
    assert_eq!(
        metric(
            &text,
            r#"strikemq_request_duration_seconds_bucket{api="Produce",api_key="0",le="+Inf"}"#
        ),
        Some(produce_requests)
    );
    assert!(metric(&text, r#"strikemq_requests_total{api="Fetch",api_key="1"}"#).unwrap() >= 1.0);
    assert_eq!(
        metric(
            &text,
            r#"strikemq_request_errors_total{api="Produce",api_key="0"}"#
        ),
        Some(0.0)
    );
    assert!(metric(&text, "strikemq_received_bytes_total").unwrap() > 10.0 * 2.0);
    assert!(metric(&text, "strikemq_sent_bytes_total").unwrap() > 0.0);
    assert!(
        metric(&text, "strikemq_connections").unwrap() >= 2.0,
        "producer and consumer"
    );
    assert!(
        metric(&text, "strikemq_parked_requests_total").unwrap() >= 1.0,
        "the consumer long-polls"
    );
    assert!(metric(&text, "strikemq_parked_requests").is_some());
    assert_eq!(
        metric(
            &text,
            &format!(r#"strikemq_partition_end_offset{{topic="{topic}",partition="1"}}"#)
        ),
        Some(10.0)
    );
    assert_eq!(
        metric(
            &text,
            &format!(r#"strikemq_partition_end_offset{{topic="{topic}",partition="0"}}"#)
        ),
        Some(0.0)
    );
    // Buckets are cumulative.
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(r#"strikemq_request_duration_seconds_bucket{api="Produce""#))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");

    drop(consumer);
    drop(producer);
    common::wait_until("connections to close", Duration::from_secs(10), || {
        let text = admin.get("/metrics").text;
        metric(&text, "strikemq_connections") == Some(0.0)
    });
}

#[test]
fn groups_show_state_members_decoded_assignment_offsets_and_lag() {
    use rdkafka::consumer::{CommitMode, Consumer};
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    assert_eq!(admin.get_ok("/v1/groups"), json!({"groups": []}));
    admin
        .get("/v1/groups/nobody")
        .assert_error(404, "unknown group");
    admin
        .delete("/v1/groups/nobody")
        .assert_error(404, "unknown group");
    admin
        .request("POST", "/v1/groups", Some("application/json"), b"{}")
        .assert_error(405, "POST");

    let topic = unique_topic("admin-groups");
    let group = unique_topic("admin-group");
    admin.create_topic(&topic, 2);
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"value": format!("v{i}"), "partition": 0}))
        .collect();
    admin.produce(&topic, Value::Array(five));

    let mut config = consumer_config(&broker);
    config
        .set("group.id", &group)
        .set("client.id", "admin-test-client")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    let consumer = create_consumer(&config);
    consumer.subscribe(&[&topic]).expect("subscribe");
    // Consume three records of partition 0 and commit after the third.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut consumed = 0;
    while consumed < 3 {
        assert!(Instant::now() < deadline, "consumed {consumed} of 3");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consumer error");
            consumed += 1;
            if consumed == 3 {
                consumer
                    .commit_message(&m, CommitMode::Sync)
                    .expect("commit");
            }
        }
    }

    let list = admin.get_ok("/v1/groups");
    assert_eq!(
        list["groups"],
        json!([{"group_id": group, "state": "Stable", "protocol_type": "consumer", "members": 1}])
    );
    let detail = admin.get_ok(&format!("/v1/groups/{group}"));
    assert_eq!(detail["state"], "Stable");
    assert!(detail["generation"].as_i64().unwrap() >= 1);
    assert_eq!(detail["protocol_type"], "consumer");
    assert!(detail["protocol"].is_string(), "{detail}");
    let member = &detail["members"][0];
    assert_eq!(member["client_id"], "admin-test-client");
    assert_eq!(detail["leader"], member["member_id"]);
    assert_eq!(
        member["assignment"],
        json!([{"topic": topic, "partitions": [0, 1]}]),
        "decoded consumer-protocol assignment"
    );
    assert_eq!(
        detail["offsets"],
        json!([{"topic": topic, "partition": 0, "committed_offset": 3, "metadata": "", "end_offset": 5, "lag": 2}])
    );
    let metrics = admin.get("/metrics").text;
    assert_eq!(
        metric(
            &metrics,
            &format!(r#"strikemq_group_lag{{group="{group}",topic="{topic}",partition="0"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &metrics,
            &format!(r#"strikemq_group_members{{group="{group}"}}"#)
        ),
        Some(1.0)
    );

    // An active group cannot be deleted; once its member left, it can.
    admin
        .delete(&format!("/v1/groups/{group}"))
        .assert_error(409, "active members");
    consumer.unsubscribe();
    drop(consumer);
    common::wait_until("the group to be empty", Duration::from_secs(20), || {
        admin.get_ok(&format!("/v1/groups/{group}"))["state"] == "Empty"
    });
    let deleted = admin.delete(&format!("/v1/groups/{group}"));
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json(), json!({"deleted": group}));
    admin
        .get(&format!("/v1/groups/{group}"))
        .assert_error(404, "unknown group");
}

#[test]
fn openapi_document_describes_every_endpoint_and_its_error_shape() {
    let broker = TestBroker::start(&[]);
    let admin = Admin::new(&broker);
    let doc = admin.get_ok("/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: BTreeMap<String, Vec<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| {
            let methods = ops
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .cloned()
                .collect();
            (p.clone(), methods)
        })
        .collect();
    for (path, methods) in [
        ("/v1/broker", vec!["get"]),
        ("/v1/config", vec!["get", "put"]),
        ("/v1/topics", vec!["get", "post"]),
        ("/v1/topics/{name}", vec!["delete", "get"]),
        ("/v1/topics/{name}/messages", vec!["get", "post"]),
        ("/v1/groups", vec!["get"]),
        ("/v1/groups/{id}", vec!["delete", "get"]),
        ("/metrics", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/v1/openapi.json", vec!["get"]),
    ] {
        assert_eq!(
            paths.get(path),
            Some(&methods.iter().map(|m| m.to_string()).collect()),
            "{path}"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["Error"]["required"],
        json!(["error"])
    );
}
