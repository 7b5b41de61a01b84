//! Percentile harness for the release table. Criterion reports means; the table needs
//! p50 and p99.9, so each sample here is timed on its own and recorded in an
//! HdrHistogram (ns, 3 significant digits). Operations far shorter than a clock read
//! (header decode) are timed in batches of `per_sample` calls and each sample is the
//! batch mean, which narrows their tail: said in the JSON next to the numbers.
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
use strikemq::protocol::request::decode_header;
use strikemq::storage::{FlushPolicy, LogMapLayout, Storage, StorageConfig, TopicConfig};

#[path = "common/mod.rs"]
mod common;
use common::one_record_batch;

const WARMUP_SAMPLES: u64 = 20_000;
const SAMPLES: u64 = 200_000;
/// `segment_prefault_bytes` of the log append row: one segment's worth.
const LOG_APPEND_WINDOW_BYTES: u64 = 64 << 20;

/// Times `f` `SAMPLES` times (after a warm-up), `per_sample` calls per sample.
fn measure(id: &str, what: &str, per_sample: u64, mut f: impl FnMut()) -> Value {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for _ in 0..WARMUP_SAMPLES * per_sample {
        f();
    }
    for _ in 0..SAMPLES {
        let t = Instant::now();
        for _ in 0..per_sample {
            f();
        }
        let ns = t.elapsed().as_nanos() as u64 / per_sample;
        h.saturating_record(ns.max(1));
    }
    let q = |p: f64| h.value_at_quantile(p) as f64;
    eprintln!(
        "{id:<24} p50 {:>8} ns  p99 {:>8} ns  p99.9 {:>8} ns  max {:>10} ns",
        q(0.5),
        q(0.99),
        q(0.999),
        h.max()
    );
    json!({
        "id": id, "what": what, "iterations": SAMPLES, "calls_per_sample": per_sample,
        "p50_ns": q(0.5), "p90_ns": q(0.9), "p99_ns": q(0.99), "p99_9_ns": q(0.999),
        "p99_99_ns": q(0.9999), "max_ns": h.max() as f64, "mean_ns": h.mean(),
    })
}

fn log_append() -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        // Small segments so rolls happen inside the measurement, as in a long run.
        segment_bytes: 64 << 20,
        index_interval_bytes: 4096,
        flush: FlushPolicy::Never,
        // The pre-fault window on, one segment wide: the background thread keeps
        // the pages ahead faulted in and prepares the next segment before the roll.
        segment_prefault_bytes: LOG_APPEND_WINDOW_BYTES,
        segment_hugepages: false,
        segment_write: strikemq::storage::SegmentWrite::Mmap,
        max_batch_bytes: 8 << 20,
        log_map: LogMapLayout::Global,
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
        1,
        || {
            partition.append(black_box(&batch)).expect("append");
        },
    )
}

fn header_decode() -> Value {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(9)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka")))
        .encode(&mut buf, 2)
        .expect("header");
    let frame = buf.freeze();
    measure(
        "kafka_header_decode",
        "decode_header of a Produce v9 request header (flexible, client id \"rdkafka\")",
        64,
        || {
            let mut f = frame.clone();
            black_box(decode_header(black_box(&mut f)).expect("decode"));
        },
    )
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
    let benchmarks = vec![log_append(), header_decode()];
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
