//! Hostile clients and the configurable limits (docs/limits.md), against the real
//! broker binary over real sockets. bad_input.rs proves each malformed request alone;
//! here every hostile case runs while a well-behaved client on another connection
//! does produce + fetch round trips throughout, and each limit is shown to refuse (or
//! close, or pause) exactly what it should, to keep serving the rest, and to count
//! its hits in `/metrics`.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, MetadataRequest, ProduceRequest};

use common::raw::*;
use common::{list_tree, unique_topic, wait_until, TestBroker};

/// How long the broker may take to reject a malformed request.
const REJECT_WITHIN: Duration = Duration::from_secs(5);
/// The broker's RSS after hostile input must stay below this (it idles near 10 MiB).
const RSS_KIB_MAX: u64 = 200 * 1024;
/// Longest produce + fetch round trip the well-behaved client may see while the
/// hostile one does its worst (generous: the test machine is shared and loaded).
const ROUND_TRIP_MAX: Duration = Duration::from_secs(5);
/// Pause between the well-behaved client's round trips.
const ROUND_TRIP_PAUSE: Duration = Duration::from_millis(20);
/// Connections of the slowloris test (fewer if RLIMIT_NOFILE's hard limit is lower).
const SLOWLORIS_CONNECTIONS: usize = 2000;
/// File descriptors kept free for everything else the test process opens.
const SPARE_FDS: u64 = 200;
/// The never-reading client writes requests in chunks of this many...
const REQUESTS_PER_WRITE: usize = 500;
/// ...up to this many in all (≈ 25 MB of requests asking for ≈ 100 GB of answers):
/// far more than socket buffers hold, so the broker must stop reading before.
const UNREAD_REQUESTS_MAX: usize = 200_000;
const POLICY_VIOLATION: i16 = 44;
const INVALID_PARTITIONS: i16 = 37;
const CREATE_PARTITIONS_VERSION: i16 = 3;

/// A client doing produce + fetch round trips on its own connection until stopped;
/// any error or a round trip slower than `ROUND_TRIP_MAX` fails the test at `stop`.
struct WellBehaved {
    stop: Arc<AtomicBool>,
    trips: Arc<AtomicU64>,
    thread: JoinHandle<(u64, Duration)>,
}

impl WellBehaved {
    fn start(broker: &TestBroker) -> WellBehaved {
        let topic = unique_topic("well-behaved");
        let mut conn = RawConn::connect(broker);
        create_topics(&mut conn, &[&topic], 1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let trips_shared = Arc::new(AtomicU64::new(0));
        let trips_done = trips_shared.clone();
        let thread = thread::spawn(move || {
            let mut trips = 0u64;
            let mut slowest = Duration::ZERO;
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let value = format!("record-{trips}");
                let (error, offset) = produce(
                    &mut conn,
                    &topic,
                    0,
                    record_batch(&[value.as_bytes()], None),
                );
                assert_eq!(error, NONE, "well-behaved produce #{trips}");
                assert_eq!(offset, trips as i64, "well-behaved produce offset");
                let fetched = fetch(&mut conn, &topic, 0, offset, 0);
                assert_eq!(fetched.error_code, NONE, "well-behaved fetch #{trips}");
                let got = fetched.records.first().and_then(|r| r.value.clone());
                assert_eq!(got.as_deref(), Some(value.as_bytes()), "fetched value");
                slowest = slowest.max(started.elapsed());
                trips += 1;
                trips_done.store(trips, Ordering::Relaxed);
                thread::sleep(ROUND_TRIP_PAUSE);
            }
            (trips, slowest)
        });
        WellBehaved {
            stop,
            trips: trips_shared,
            thread,
        }
    }

    /// Waits until the client completes another round trip, so each hostile case
    /// overlaps with well-behaved traffic (not only the sequence as a whole).
    fn wait_for_round_trip(&self, what: &str) {
        let from = self.trips.load(Ordering::Relaxed);
        wait_until(
            &format!("{what}: a well-behaved round trip"),
            ROUND_TRIP_MAX,
            || self.trips.load(Ordering::Relaxed) > from || self.thread.is_finished(),
        );
    }

    fn stop(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let (trips, slowest) = match self.thread.join() {
            Ok(stats) => stats,
            Err(_) => panic!("{what}: the well-behaved client failed (see its panic above)"),
        };
        eprintln!("{what}: well-behaved client made {trips} round trips, slowest {slowest:?}");
        assert!(
            trips > 0,
            "{what}: the well-behaved client made no round trip"
        );
        assert!(
            slowest < ROUND_TRIP_MAX,
            "{what}: a well-behaved round trip took {slowest:?}"
        );
    }
}

/// `strikemq_limit_hits_total{limit=...}` from `/metrics`.
fn limit_hits(broker: &TestBroker, limit: &str) -> u64 {
    metric(
        broker,
        &format!("strikemq_limit_hits_total{{limit=\"{limit}\"}}"),
    )
}

/// No panic, still running, still answering, RSS bounded.
fn assert_unharmed(broker: &mut TestBroker, what: &str) {
    assert_broker_healthy(broker);
    let rss_kib = broker.rss_kib();
    assert!(rss_kib < RSS_KIB_MAX, "{what}: broker RSS {rss_kib} KiB");
    let log = broker.log_text();
    assert!(
        !log.contains("panicked"),
        "{what}: broker log has a panic:\n{log}"
    );
}

fn connect(broker: &TestBroker) -> TcpStream {
    let stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
}

/// Whether the broker has closed `stream` (EOF or reset), waiting at most `within`.
fn is_closed(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the broker sent bytes on a connection expected to be closed"),
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        ),
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Hostile frames beyond bad_input.rs: (what, bytes to send as they are, whether only
/// a close is acceptable). The others may instead get a Kafka error answer.
fn hostile_frames() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut cases = Vec::new();
    let api_versions = encode_request(&api_versions_request(), API_VERSIONS_VERSION, 3);

    cases.push(("zero length", 0i32.to_be_bytes().to_vec(), true));
    cases.push(("negative length", (-5i32).to_be_bytes().to_vec(), true));
    cases.push(("2 GiB length prefix", i32::MAX.to_be_bytes().to_vec(), true));
    // A frame body that ends before its declared length, followed by the next frame:
    // the broker reads the start of the next frame as the rest of the first.
    let mut b = (api_versions.len() as i32).to_be_bytes().to_vec();
    b.extend_from_slice(&api_versions[..api_versions.len() - 3]);
    b.extend_from_slice(&frame(&api_versions));
    cases.push(("truncated frame then another", b, false));

    let mut b = header_for::<MetadataRequest>(4, 5);
    b.put_i32(i32::MIN); // topics count -2^31 (only -1 means null)
    cases.push(("Metadata v4 topics count -2^31", frame(&b), false));
    let mut b = header_for::<ProduceRequest>(3, 6);
    b.put_i16(-1);
    b.put_i16(-1);
    b.put_i32(1_000);
    b.put_i32(i32::MIN); // topic_data count
    cases.push(("Produce v3 topic count -2^31", frame(&b), false));

    // Flexible versions: unsigned varints with 5+ continuation bytes.
    let mut b = header_for::<MetadataRequest>(9, 7);
    b.put_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    cases.push(("compact array count: 7-byte varint", frame(&b), false));
    let mut b = header_for::<MetadataRequest>(9, 8);
    b.put_u8(2); // one topic
    b.put_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]); // name length, unterminated
    cases.push((
        "compact string length: unterminated varint",
        frame(&b),
        false,
    ));
    // Request header v2: the tagged-field count right after the client id.
    let mut b = BytesMut::new();
    b.put_i16(ApiKey::Metadata as i16);
    b.put_i16(9);
    b.put_i32(9);
    b.put_i16(-1); // null client id
    b.put_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0x7f]); // tagged fields count
    cases.push(("header tagged-field count: 6-byte varint", frame(&b), false));

    // Invalid UTF-8: the client id, then a topic name.
    let mut b = BytesMut::new();
    b.put_i16(ApiKey::ApiVersions as i16);
    b.put_i16(0);
    b.put_i32(10);
    b.put_i16(3);
    b.put_slice(&[0xc3, 0x28, 0xff]);
    cases.push(("client id not UTF-8", frame(&b), false));
    let mut b = header_for::<MetadataRequest>(4, 11);
    b.put_i32(1);
    b.put_i16(4);
    b.put_slice(&[b'b', 0xc3, 0x28, 0xff]);
    b.put_u8(1); // allow auto-creation
    cases.push((
        "topic name not UTF-8 (auto-create allowed)",
        frame(&b),
        false,
    ));
    let mut b = header_for::<MetadataRequest>(9, 12);
    b.put_u8(2); // one topic
    b.put_u8(4); // compact string of 3 bytes
    b.put_slice(&[0xe2, 0x82, 0x28]);
    b.put_u8(0); // topic tagged fields
    b.put_u8(1); // allow auto-creation
    b.put_u8(0);
    b.put_u8(0);
    b.put_u8(0); // request tagged fields
    cases.push(("compact topic name not UTF-8", frame(&b), false));

    // Unknown API keys and versions out of range (ApiVersions is answered instead:
    // bad_input.rs).
    for (key, version) in [
        (9999i16, 0i16),
        (-1, 0),
        (ApiKey::Produce as i16, 99),
        (ApiKey::Produce as i16, 2),
        (ApiKey::Fetch as i16, -1),
        (ApiKey::Metadata as i16, 13),
    ] {
        let mut b = BytesMut::new();
        encode_header(&mut b, key, version, 20, 1);
        b.put_slice(&[0u8; 16]);
        let what: &'static str = Box::leak(format!("api {key} v{version}").into_boxed_str());
        cases.push((what, frame(&b), true));
    }
    cases
}

#[test]
fn hostile_frames_get_an_error_or_a_close_while_another_client_is_served() {
    let mut broker = TestBroker::start(&[]);
    let client = WellBehaved::start(&broker);
    for (what, bytes, close_only) in hostile_frames() {
        let mut conn = connect(&broker);
        let started = Instant::now();
        conn.write_all(&bytes).expect("send hostile frame");
        let mut raw = RawConnView(conn);
        let outcome = raw.outcome(REJECT_WITHIN);
        eprintln!("{what}: {outcome} after {:?}", started.elapsed());
        if close_only {
            assert_eq!(outcome, "closed", "{what}: expected the connection closed");
        }
        client.wait_for_round_trip(what);
        assert_unharmed(&mut broker, what);
    }
    let names: Vec<String> = list_tree(broker.data_dir())
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains('\u{fffd}') && !n.contains("/b")),
        "a non-UTF-8 topic name reached the disk: {names:?}"
    );
    client.stop("hostile frames");
    assert_unharmed(&mut broker, "after all hostile frames");
}

/// Either an answer frame or a close within `within`, from a plain stream.
struct RawConnView(TcpStream);

impl RawConnView {
    fn outcome(&mut self, within: Duration) -> &'static str {
        self.0.set_read_timeout(Some(within)).expect("timeout");
        let mut len = [0u8; 4];
        match self.0.read_exact(&mut len) {
            Ok(()) => {
                let len = i32::from_be_bytes(len);
                assert!((0..64 * 1024 * 1024).contains(&len), "answer length {len}");
                let mut body = vec![0u8; len as usize];
                self.0.read_exact(&mut body).expect("answer body");
                "answered"
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                "closed"
            }
            Err(e) => panic!("neither an answer nor a close within {within:?}: {e}"),
        }
    }
}

/// Raises this process's soft RLIMIT_NOFILE to the hard limit (the broker, started
/// afterwards, inherits it) and returns how many connections the test can open.
fn raise_fd_limit(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass, nothing else.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let available = lim.rlim_cur.saturating_sub(SPARE_FDS) as usize;
    if available < wanted {
        eprintln!(
            "RLIMIT_NOFILE hard limit {}: {available} connections",
            lim.rlim_max
        );
    }
    wanted.min(available)
}

#[test]
fn slowloris_connections_are_closed_after_partial_frame_timeout_and_others_are_served() {
    let connections = raise_fd_limit(SLOWLORIS_CONNECTIONS);
    let timeout_ms = 1500;
    let mut broker =
        TestBroker::start(&["--set", &format!("partial_frame_timeout_ms={timeout_ms}")]);
    let client = WellBehaved::start(&broker);
    // A connection that sends nothing is idle, not stalled mid-frame: it must
    // outlive the slowloris ones (idle_timeout_ms is 10 minutes).
    let mut silent = connect(&broker);
    let header = encode_request(&metadata_request(&[], false), METADATA_VERSION, 1);
    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut s = connect(&broker);
        // The length prefix and half of the header, then nothing.
        let mut half = (header.len() as i32).to_be_bytes().to_vec();
        half.extend_from_slice(&header[..header.len() / 2]);
        s.write_all(&half).expect("send half a header");
        stalled.push(s);
    }
    eprintln!(
        "{connections} stalled connections opened in {:?}",
        opened.elapsed()
    );
    let rss_kib = broker.rss_kib();
    eprintln!("broker RSS with {connections} stalled connections: {rss_kib} KiB");
    assert!(
        rss_kib < RSS_KIB_MAX,
        "RSS {rss_kib} KiB with stalled connections"
    );
    // Closed after the timeout plus at most two sweeps (a quarter of it each), with a
    // generous margin for a loaded machine.
    let bound = opened.elapsed() + Duration::from_millis(timeout_ms * 3) + REJECT_WITHIN;
    wait_until("every stalled connection closed", bound, || {
        limit_hits(&broker, "partial_frame_timeout_ms") >= connections as u64
    });
    for (i, s) in stalled.iter_mut().enumerate() {
        assert!(
            is_closed(s, REJECT_WITHIN),
            "stalled connection {i} still open"
        );
    }
    assert_eq!(
        limit_hits(&broker, "partial_frame_timeout_ms"),
        connections as u64,
        "one hit per stalled connection"
    );
    assert!(
        !is_closed(&mut silent, Duration::from_millis(100)),
        "a silent (idle) connection was closed by partial_frame_timeout_ms"
    );
    // One log line for the first hit, then at most one per second: not one per close.
    let lines = broker
        .log_text()
        .lines()
        .filter(|l| l.contains("partial_frame_timeout_ms"))
        .count();
    assert!(
        (1..=20).contains(&lines),
        "{lines} log lines for {connections} hits"
    );
    client.stop("slowloris");
    assert_unharmed(&mut broker, "slowloris");
}

#[test]
fn a_client_that_never_reads_is_paused_then_closed_and_others_are_served() {
    let idle_ms = 3000;
    let mut broker = TestBroker::start(&["--set", &format!("idle_timeout_ms={idle_ms}")]);
    let topic = unique_topic("unread");
    let mut setup = RawConn::connect(&broker);
    create_topics(&mut setup, &[&topic], 1);
    let value = vec![b'x'; 256 * 1024];
    for _ in 0..4 {
        let (error, _) = produce(&mut setup, &topic, 0, record_batch(&[&value], None));
        assert_eq!(error, NONE);
    }
    let client = WellBehaved::start(&broker);

    // Fetches (1 MiB answers each) and produces, sent without ever reading.
    let mut hog = connect(&broker);
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let fetch = encode_request(&fetch_request(&topic, 0, 0, 0), FETCH_VERSION, 1);
    let small = record_batch(&[b"v"], None);
    let produce_req = encode_request(&produce_request(&topic, 0, small), PRODUCE_VERSION, 2);
    // Chunks of requests (one write each), until the broker stops reading and the
    // socket buffers on both sides are full.
    let mut chunk = Vec::new();
    for i in 0..REQUESTS_PER_WRITE {
        let req = if i % 2 == 0 { &fetch } else { &produce_req };
        chunk.extend_from_slice(&frame(req));
    }
    let mut sent = 0;
    let started = Instant::now();
    while sent < UNREAD_REQUESTS_MAX && started.elapsed() < Duration::from_secs(20) {
        if hog.write_all(&chunk).is_err() {
            break; // the broker stopped reading: its socket buffer is full
        }
        sent += REQUESTS_PER_WRITE;
    }
    eprintln!("sent {sent} requests without reading before the broker stopped reading");
    assert!(
        sent < UNREAD_REQUESTS_MAX,
        "the broker never stopped reading an unread connection"
    );
    assert_unharmed(&mut broker, "client that never reads");
    // Paused, it handles no request: after idle_timeout_ms it is closed.
    let mut drained = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    hog.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let deadline = Instant::now() + Duration::from_millis(idle_ms * 3) + REJECT_WITHIN;
    thread::sleep(Duration::from_millis(idle_ms + idle_ms / 2));
    loop {
        assert!(
            Instant::now() < deadline,
            "the never-reading client was not closed"
        );
        match hog.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the unread responses: {e}"),
        }
    }
    eprintln!("closed after {drained} response bytes were queued");
    assert!(limit_hits(&broker, "idle_timeout_ms") >= 1);
    client.stop("client that never reads");
    assert_unharmed(&mut broker, "after the never-reading client");
}

#[test]
fn connections_beyond_max_connections_per_ip_are_closed_and_the_others_served() {
    let per_ip = 4;
    let mut broker = TestBroker::start(&["--set", &format!("max_connections_per_ip={per_ip}")]);
    let mut conns: Vec<RawConn> = (0..per_ip).map(|_| RawConn::connect(&broker)).collect();
    for c in &mut conns {
        assert_eq!(
            c.call(&api_versions_request(), API_VERSIONS_VERSION)
                .error_code,
            NONE
        );
    }
    let mut extra = RawConn::connect(&broker);
    extra.expect_closed(REJECT_WITHIN, "connection over max_connections_per_ip");
    assert_eq!(limit_hits(&broker, "max_connections_per_ip"), 1);
    assert_eq!(limit_hits(&broker, "max_connections"), 0);
    for c in &mut conns {
        assert_eq!(
            c.call(&api_versions_request(), API_VERSIONS_VERSION)
                .error_code,
            NONE
        );
    }
    // A closed connection frees its place.
    drop(conns.pop());
    wait_until("a freed place is usable", REJECT_WITHIN, || {
        let mut c = connect(&broker);
        c.write_all(&frame(&encode_request(
            &api_versions_request(),
            API_VERSIONS_VERSION,
            1,
        )))
        .is_ok()
            && RawConnView(c).outcome(REJECT_WITHIN) == "answered"
    });
    assert!(broker.log_text().contains("max_connections_per_ip"));
    broker.assert_running();
}

#[test]
fn connections_beyond_max_connections_are_closed_and_the_others_served() {
    let broker = TestBroker::start(&["--set", "max_connections=2"]);
    let mut a = RawConn::connect(&broker);
    let mut b = RawConn::connect(&broker);
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.call(&api_versions_request(), API_VERSIONS_VERSION)
                .error_code,
            NONE
        );
    }
    for i in 0..3 {
        let mut extra = RawConn::connect(&broker);
        extra.expect_closed(
            REJECT_WITHIN,
            &format!("connection {} over max_connections", i + 3),
        );
    }
    assert_eq!(limit_hits(&broker, "max_connections"), 3);
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.call(&api_versions_request(), API_VERSIONS_VERSION)
                .error_code,
            NONE
        );
    }
}

#[test]
fn idle_timeout_closes_a_silent_connection_but_not_a_busy_one() {
    let idle_ms = 600;
    let broker = TestBroker::start(&["--set", &format!("idle_timeout_ms={idle_ms}")]);
    let mut silent = connect(&broker);
    let mut busy = RawConn::connect(&broker);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(idle_ms * 3) {
        assert_eq!(
            busy.call(&api_versions_request(), API_VERSIONS_VERSION)
                .error_code,
            NONE
        );
        thread::sleep(Duration::from_millis(idle_ms / 6));
    }
    assert!(
        is_closed(&mut silent, REJECT_WITHIN),
        "a silent connection outlived idle_timeout_ms"
    );
    assert!(started.elapsed() >= Duration::from_millis(idle_ms));
    assert_eq!(limit_hits(&broker, "idle_timeout_ms"), 1);
}

/// A counter from `/metrics`, by its name with labels (`name{label="value"}`).
fn metric(broker: &TestBroker, name: &str) -> u64 {
    let url = format!("{}/metrics", broker.admin_url());
    let text = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .expect("metrics body");
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .expect("counter value")
}

/// (tx_queue, rx_queue) of the loopback TCP socket from `local_port` to `remote_port`,
/// from /proc/net/tcp: bytes the kernel holds for it in each direction.
fn tcp_queues(local_port: u16, remote_port: u16) -> (u64, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 {
            continue;
        }
        if port(fields[1]) == Some(local_port) && port(fields[2]) == Some(remote_port) {
            let (tx, rx) = fields[4].split_once(':').expect("tx:rx");
            let hex = |v: &str| u64::from_str_radix(v, 16).expect("queue size");
            return (hex(tx), hex(rx));
        }
    }
    panic!("no socket {local_port} -> {remote_port} in /proc/net/tcp");
}

#[test]
fn max_inflight_requests_pauses_reading_until_the_client_reads_then_resumes() {
    let max_inflight = 2u64;
    let mut broker =
        TestBroker::start(&["--set", &format!("max_inflight_requests={max_inflight}")]);
    // Far more answers than the kernel's socket buffers hold: once they are full,
    // answers queue in the broker until max_inflight_requests stops it reading.
    let requests = 60_000i32;
    let mut conn = connect(&broker);
    let mut batch = Vec::new();
    for cid in 0..requests {
        let req = encode_request(&api_versions_request(), API_VERSIONS_VERSION, cid);
        batch.extend_from_slice(&frame(&req));
    }
    let writer = {
        let mut w = conn.try_clone().expect("clone");
        w.set_write_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        thread::spawn(move || w.write_all(&batch))
    };
    wait_until(
        "reading paused by max_inflight_requests",
        REJECT_WITHIN * 2,
        || limit_hits(&broker, "max_inflight_requests") >= 1,
    );
    // Paused: the answers produced stop growing...
    let mut produced = metric(&broker, "strikemq_sent_bytes_total");
    wait_until("the paused broker to stop answering", REJECT_WITHIN, || {
        thread::sleep(Duration::from_millis(200));
        let now = metric(&broker, "strikemq_sent_bytes_total");
        std::mem::replace(&mut produced, now) == now
    });
    // ...and of what was produced, all but at most max_inflight answers are in the
    // kernel (the broker's send queue or the client's receive queue): the broker
    // holds no more than that itself (without the limit: up to its 8 MiB backlog).
    let client_port = conn.local_addr().expect("addr").port();
    let broker_port = conn.peer_addr().expect("addr").port();
    let (_, client_rx) = tcp_queues(client_port, broker_port);
    let (broker_tx, _) = tcp_queues(broker_port, client_port);
    let held = produced.saturating_sub(client_rx + broker_tx);
    let answer_bytes = {
        let mut probe = RawConn::connect(&broker);
        let before = metric(&broker, "strikemq_sent_bytes_total");
        probe.call(&api_versions_request(), API_VERSIONS_VERSION);
        metric(&broker, "strikemq_sent_bytes_total") - before
    };
    eprintln!(
        "paused: {produced} answer bytes produced, {client_rx} in the client's receive \
         queue, {broker_tx} in the broker's send queue, {held} held by the broker \
         ({answer_bytes} bytes per answer)"
    );
    assert!(
        held <= max_inflight * answer_bytes,
        "the broker holds {held} answer bytes, more than max_inflight_requests answers"
    );
    // Reading resumes as the answers are read: every request gets its answer, in order.
    for cid in 0..requests {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).expect("answer length");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        conn.read_exact(&mut body).expect("answer body");
        let got = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        assert_eq!(got, cid, "answers in request order");
    }
    writer
        .join()
        .expect("writer")
        .expect("all requests written");
    assert_unharmed(&mut broker, "max_inflight_requests");
}

/// CreateTopics of `name` is refused with `code` and a message naming `limit_key`.
fn assert_create_refused(
    conn: &mut RawConn,
    name: &str,
    partitions: i32,
    code: i16,
    limit_key: &str,
) {
    let r = conn.call(
        &create_topics_request(&[name], partitions),
        CREATE_TOPICS_VERSION,
    );
    assert_eq!(r.topics[0].error_code, code, "{:?}", r.topics[0]);
    let message = r.topics[0].error_message.as_deref().unwrap_or_default();
    assert!(message.contains(limit_key), "{message}");
}

#[test]
fn max_topics_and_max_partitions_per_topic_answer_the_kafka_error_and_create_nothing() {
    let broker = TestBroker::start(&[
        "--set",
        "max_topics=2",
        "--set",
        "max_partitions_per_topic=3",
    ]);
    let mut conn = RawConn::connect(&broker);
    let before = list_tree(broker.data_dir());

    assert_create_refused(
        &mut conn,
        "too-wide",
        4,
        INVALID_PARTITIONS,
        "max_partitions_per_topic",
    );
    assert_eq!(
        list_tree(broker.data_dir()),
        before,
        "a refused topic touched the disk"
    );

    create_topics(&mut conn, &["first", "second"], 3);
    let after_two = list_tree(broker.data_dir());
    assert_create_refused(&mut conn, "third", 1, POLICY_VIOLATION, "max_topics");

    // Auto-creation through Metadata and Produce hits the same limit.
    let md = conn.call(&metadata_request(&["auto"], true), METADATA_VERSION);
    assert_eq!(
        md.topics[0].error_code, POLICY_VIOLATION,
        "Metadata auto-create"
    );
    let (error, _) = produce(&mut conn, "auto-too", 0, record_batch(&[b"v"], None));
    assert_eq!(error, POLICY_VIOLATION, "Produce auto-create");

    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name("first"))
            .with_count(4)]);
    let r = conn.call(&grow, CREATE_PARTITIONS_VERSION);
    assert_eq!(
        r.results[0].error_code, INVALID_PARTITIONS,
        "CreatePartitions"
    );
    assert_eq!(
        list_tree(broker.data_dir()),
        after_two,
        "refused creations touched the disk"
    );

    // The admin API's topic creation goes through the same limits.
    let (status, body) = post_json(
        &broker,
        "/v1/topics",
        r#"{"name": "rest", "partitions": 1}"#,
    );
    assert_eq!(status, 409, "POST /v1/topics over max_topics: {body}");
    assert!(body.contains("max_topics"), "{body}");
    assert_eq!(
        list_tree(broker.data_dir()),
        after_two,
        "refused creations touched the disk"
    );

    assert_eq!(limit_hits(&broker, "max_partitions_per_topic"), 2);
    assert_eq!(limit_hits(&broker, "max_topics"), 4);
    assert!(broker.log_text().contains("max_topics = 2 reached"));
}

/// POSTs a JSON body to the admin API; (status, body), 4xx included.
fn post_json(broker: &TestBroker, path: &str, json: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(IO_TIMEOUT))
        .build()
        .into();
    let url = format!("{}{path}", broker.admin_url());
    let mut response = agent
        .post(&url)
        .header("content-type", "application/json")
        .send(json)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}
