//! Percentile harness for the release table. Criterion reports means; the table needs
//! p50 and p99.9, so every sample here is ONE call timed on its own (two `Instant::now`
//! reads around it) and recorded in an HdrHistogram (ns, 3 significant digits). No
//! sample is a mean of several calls: that would hide the tail.
//!
//! The clock is measured first and written beside the numbers: its resolution (the
//! smallest step between two reads that differ) and the cost of an empty timed region
//! (`timer_overhead_*`). Each figure includes that overhead once; it is reported, not
//! subtracted, so a reader can judge how much of a short operation's figure is the
//! clock itself.
//!
//! Writes `results/micro/<date>-<host>/percentiles.json`; `just release-table` reads the
//! newest one. Run with `cargo bench -p strikemq --bench percentiles` (or `just bench`).

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use bytes::BytesMut;
use hdrhistogram::Histogram;
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Encodable, StrBytes};
use serde_json::{json, Value};
use strikemq::broker::{Broker, Outcome};
use strikemq::protocol::request::{decode_header, views};
use strikemq::storage::{Storage, StorageConfig, TopicConfig};

#[path = "common/mod.rs"]
mod common;
use common::one_record_batch;

const WARMUP_SAMPLES: u64 = 20_000;
const SAMPLES: u64 = 200_000;
/// `segment_prefault_bytes` of the log append row: one segment's worth.
const LOG_APPEND_WINDOW_BYTES: u64 = 64 << 20;

/// Reads the clock back to back: (smallest non-zero step, histogram of the empty
/// timed region) in ns.
fn timer() -> (u64, Histogram<u64>) {
    let mut resolution_ns = u64::MAX;
    let mut overhead = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for _ in 0..WARMUP_SAMPLES + SAMPLES {
        let t = Instant::now();
        let ns = t.elapsed().as_nanos() as u64;
        if ns > 0 {
            resolution_ns = resolution_ns.min(ns);
        }
        overhead.saturating_record(ns.max(1));
    }
    (resolution_ns, overhead)
}

/// Times `SAMPLES` single calls of `f` (after a warm-up).
fn measure(id: &str, what: &str, mut f: impl FnMut()) -> Value {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for _ in 0..WARMUP_SAMPLES {
        f();
    }
    for _ in 0..SAMPLES {
        let t = Instant::now();
        f();
        let ns = t.elapsed().as_nanos() as u64;
        h.saturating_record(ns.max(1));
    }
    let q = |p: f64| h.value_at_quantile(p) as f64;
    eprintln!(
        "{id:<28} p50 {:>8} ns  p99 {:>8} ns  p99.9 {:>8} ns  max {:>10} ns",
        q(0.5),
        q(0.99),
        q(0.999),
        h.max()
    );
    json!({
        "id": id, "what": what, "iterations": SAMPLES, "calls_per_sample": 1,
        "p50_ns": q(0.5), "p90_ns": q(0.9), "p99_ns": q(0.99), "p99_9_ns": q(0.999),
        "p99_99_ns": q(0.9999), "max_ns": h.max() as f64, "mean_ns": h.mean(),
    })
}

fn log_append() -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        // Small segments so rolls happen inside the measurement, as in a long run.
        segment_bytes: 64 << 20,
        // The pre-fault window on, one segment wide: the background thread keeps
        // the pages ahead faulted in and prepares the next segment before the roll.
        segment_prefault_bytes: LOG_APPEND_WINDOW_BYTES,
        ..StorageConfig::defaults_in(dir.path())
    })
    .expect("open");
    storage
        .create_topic("bench", 1, TopicConfig::default())
        .expect("topic");
    let partition = storage.partition("bench", 0).expect("partition");
    let batch = one_record_batch(1024);
    measure(
        "log_append_1kib",
        "Partition::append of a 1 KiB one-record v2 batch (64 MiB segments, rolls included, 64 MiB pre-fault window, segment_write=mmap)",
        || {
            partition.append(black_box(&batch)).expect("append");
        },
    )
}

fn header_frame() -> bytes::Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(9)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka")))
        .encode(&mut buf, 2)
        .expect("header");
    buf.freeze()
}

/// The header decode `Broker::handle` runs: a view over the frame.
fn header_decode() -> Value {
    let frame = header_frame();
    measure(
        "kafka_header_decode",
        "views::header of a Produce v9 request header (flexible, client id \"rdkafka\"): the decode Broker::handle runs",
        || {
            black_box(views::header(black_box(&frame)).expect("decode"));
        },
    )
}

/// The owned header (`RequestHeader`, client id as a `Bytes` slice) the other tools use.
fn header_decode_owned() -> Value {
    let frame = header_frame();
    measure(
        "kafka_header_decode_owned",
        "decode_header into a kafka_protocol RequestHeader (same header)",
        || {
            let mut f = frame.clone();
            black_box(decode_header(black_box(&mut f)).expect("decode"));
        },
    )
}

/// `Broker::handle` of one warmed-up request, response into a reused buffer.
fn handle(id: &str, what: &str, frame: bytes::Bytes, broker: &Broker) -> Value {
    let mut out = strikemq::output::Output::new(strikemq::output::RecordsOut::Copy);
    out.bytes_mut().reserve(64 * 1024);
    measure(id, what, || {
        out.clear();
        match broker.handle(black_box(frame.clone()), &mut out) {
            Ok(Outcome::Responded) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    })
}

fn handle_produce_and_fetch() -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = common::broker_with_topic(dir.path(), "bench");
    vec![
        handle(
            "broker_handle_produce_1kib",
            "Broker::handle of a 1-partition Produce v9 of one 1 KiB record (acks=1)",
            common::produce_frame("bench", 9, 1024),
            &broker,
        ),
        handle(
            "broker_handle_fetch_one_batch",
            "Broker::handle of a Fetch v12 answered with one 1 KiB batch",
            common::fetch_frame("bench", 12, 1024),
            &broker,
        ),
    ]
}

fn text(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    // `cargo bench` passes --bench (and filters); this harness runs everything.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo_s = repo.display().to_string();
    let (resolution_ns, overhead) = timer();
    let overhead_q = |p: f64| overhead.value_at_quantile(p) as f64;
    eprintln!(
        "timer: resolution {resolution_ns} ns, empty timed region p50 {} ns p99.9 {} ns",
        overhead_q(0.5),
        overhead_q(0.999)
    );
    let mut benchmarks = vec![log_append(), header_decode(), header_decode_owned()];
    benchmarks.extend(handle_produce_and_fetch());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let date = text("date", &["-u", "+%Y-%m-%d"]);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let out = json!({
        "environment": {
            "git_sha": text("git", &["-C", &repo_s, "rev-parse", "HEAD"]),
            "git_dirty": !text("git", &["-C", &repo_s, "status", "--porcelain"]).is_empty(),
            "rustc": text("rustc", &["--version"]),
            "kernel": text("uname", &["-r"]),
            "cpu_model": cpu,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "host": host,
            "time": text("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        },
        "timer": {
            "clock": "std::time::Instant (CLOCK_MONOTONIC)",
            "resolution_ns": resolution_ns,
            "overhead_p50_ns": overhead_q(0.5),
            "overhead_p99_9_ns": overhead_q(0.999),
            "note": "every sample is one call between two clock reads; figures include the overhead once, not subtracted",
        },
        "benchmarks": benchmarks,
    });
    let dir = repo.join("results/micro").join(format!("{date}-{host}"));
    std::fs::create_dir_all(&dir).expect("results/micro dir");
    let path = dir.join("percentiles.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&out).expect("json") + "\n",
    )
    .expect("write percentiles.json");
    eprintln!("wrote {}", path.display());
}
