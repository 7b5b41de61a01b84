//! `idle_spin_us`: a worker polls without blocking for that long after its last event,
//! then blocks, so a broker that served traffic goes back to (almost) no CPU — with its
//! connections still open and whatever the spin budget — and the budget can change
//! while it runs. Runs under every backend of the CI toggle matrix.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::raw::{produce, record_batch, RawConn};
use common::{unique_topic, TestBroker};

/// CPU ticks (1/100 s) the process has used, user + system.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // utime and stime are fields 14 and 15; the command name may contain spaces, so
    // count from after its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Ticks used over `window` of idleness.
fn idle_ticks(broker: &TestBroker, window: Duration) -> u64 {
    let before = cpu_ticks(broker.pid());
    std::thread::sleep(window);
    cpu_ticks(broker.pid()) - before
}

/// A few hundred produce round trips, each leaving the worker spinning afterwards.
fn traffic(conn: &mut RawConn, topic: &str) {
    let batch: Bytes = record_batch(&[&[7u8; 1024]], None);
    for _ in 0..300 {
        let (code, _) = produce(conn, topic, 0, batch.clone());
        assert_eq!(code, 0, "produce failed");
    }
}

fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .expect("request");
    let mut response = agent.run(request).expect("admin API answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, text)
}

// A spinning core uses 200 ticks in 2 s; an idle broker 0-2. Ten is far from both, and
// leaves room for a loaded CI machine's scheduling noise.
const IDLE_TICKS_MAX: u64 = 10;
const WINDOW: Duration = Duration::from_secs(2);

#[test]
fn a_spinning_worker_stops_spinning_when_traffic_stops() {
    // A budget far longer than a request's gap, so the worker really spins between
    // the requests below, and short enough to be over long before the window starts.
    let mut broker = TestBroker::start(&["--set", "idle_spin_us=50000"]);
    let topic = unique_topic("spin");
    let mut conn = RawConn::connect(&broker);
    traffic(&mut conn, &topic);
    // The connection stays open: an idle connection must not keep the worker awake.
    std::thread::sleep(Duration::from_millis(200));
    let used = idle_ticks(&broker, WINDOW);
    assert!(
        used <= IDLE_TICKS_MAX,
        "{used} CPU ticks in {WINDOW:?} after traffic stopped (connection open)"
    );
    drop(conn);
    std::thread::sleep(Duration::from_millis(200));
    let used = idle_ticks(&broker, WINDOW);
    assert!(
        used <= IDLE_TICKS_MAX,
        "{used} CPU ticks in {WINDOW:?} with no connection"
    );
    broker.assert_running();
}

#[test]
fn idle_spin_us_changes_while_running_and_loop_timeout_zero_is_refused() {
    let mut broker = TestBroker::start(&[]);
    let config = format!("{}/v1/config", broker.admin_url());
    let (status, body) = http("PUT", &config, r#"{"idle_spin_us": 100000}"#);
    assert_eq!(status, 200, "{body}");
    let (_, body) = http("GET", &config, "");
    let live: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(live["idle_spin_us"], 100000, "{body}");

    // With the new budget the worker spins after traffic, and still stops.
    let topic = unique_topic("spin-live");
    let mut conn = RawConn::connect(&broker);
    traffic(&mut conn, &topic);
    std::thread::sleep(Duration::from_millis(300));
    let used = idle_ticks(&broker, WINDOW);
    assert!(
        used <= IDLE_TICKS_MAX,
        "{used} CPU ticks in {WINDOW:?} after traffic stopped with idle_spin_us = 100000"
    );

    for (body, field) in [
        (r#"{"loop_timeout_ms": 0}"#, "loop_timeout_ms"),
        (r#"{"idle_spin_us": 1000001}"#, "idle_spin_us"),
        (r#"{"idle_spin_us": -1}"#, "idle_spin_us"),
    ] {
        let (status, text) = http("PUT", &config, body);
        assert_eq!(status, 400, "{body} -> {text}");
        assert!(text.contains(field), "{body} -> {text}");
    }
    let (_, body) = http("GET", &config, "");
    let live: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        live["idle_spin_us"], 100000,
        "a refused change changed nothing"
    );
    let (_, info) = http("GET", &format!("{}/v1/broker", broker.admin_url()), "");
    assert!(
        info.contains(r#""key":"idle_spin_us""#),
        "GET /v1/broker lists the runtime change: {info}"
    );
    broker.assert_running();
}
