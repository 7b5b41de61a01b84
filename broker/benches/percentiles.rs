//! Percentile harness for the release table. Criterion reports means; the table needs
//! p50 and p99.9, so every sample here is ONE call timed on its own (two clock reads
//! around it) and recorded in an HdrHistogram (ns, 3 significant digits). The one
//! exception is labelled as such: `kafka_header_decode_batch64`, each sample the
//! mean of 64 calls, which stands beside the single-call header rows (it shows the
//! decode without the clock's cost, and hides the tail).
//!
//! The clocks are measured first and written beside the numbers: `Instant`'s
//! resolution (the smallest step between two reads that differ) and the cost of an
//! empty timed region (`timer.overhead_*`), and the same empty region timed with the
//! TSC (`timer.tsc`, x86-64 with an invariant TSC). Each figure includes its clock's
//! overhead once; it is reported, not subtracted, so a reader can judge how much of
//! a short operation's figure is the clock itself (on the 2-vCPU EPYC VM both clocks
//! cost ~20 ns per empty region, as much as the header decode).
//!
//! Log append is measured three ways: with the pre-fault window on, into pages the
//! window has already populated (`log_append_1kib_window_inside`: in rounds, each
//! waiting untimed for the pre-fault thread, then timing as many appends as fit in
//! the window: what the window is for); with the window on in a tight loop, which
//! outruns the pre-fault thread (`log_append_1kib`, the id earlier runs used for it:
//! what a producer faster than the thread gets; `log_append_1kib_window_outrun_fault`
//! the same with `segment_prefault_outrun = fault`); and with the window off
//! (`log_append_1kib_window_off`).
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
use strikemq::storage::{PrefaultOutrun, Storage, StorageConfig, TopicConfig};

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

/// The time-stamp counter, for single calls too short for `Instant` (whose two
/// reads cost ~20 ns here, as much as a header decode): `lfence; rdtsc` on x86-64
/// with an invariant TSC (`constant_tsc` and `nonstop_tsc` in /proc/cpuinfo),
/// converted to ns with a rate calibrated against `Instant`. None elsewhere.
#[derive(Clone, Copy)]
struct Tsc {
    ticks_per_ns: f64,
}

impl Tsc {
    fn detect() -> Option<Tsc> {
        if !cfg!(target_arch = "x86_64") {
            return None;
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = cpuinfo.lines().find(|l| l.starts_with("flags"))?;
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        if !(has("constant_tsc") && has("nonstop_tsc")) {
            return None;
        }
        // Calibrate over ~100 ms of wall time.
        let (t0, c0) = (Instant::now(), Tsc::read());
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (ns, ticks) = (t0.elapsed().as_nanos() as f64, Tsc::read() - c0);
        Some(Tsc {
            ticks_per_ns: ticks as f64 / ns,
        })
    }

    #[inline(always)]
    fn read() -> u64 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: lfence and rdtsc exist on every x86-64 CPU and only read state;
        // the fence keeps rdtsc from running before earlier instructions finish.
        unsafe {
            std::arch::x86_64::_mm_lfence();
            std::arch::x86_64::_rdtsc()
        }
        #[cfg(not(target_arch = "x86_64"))]
        0
    }
}

/// The TSC's resolution: the smallest non-zero difference of two back-to-back reads,
/// in ns. (On this AMD VM the counter moves in steps of ~10 ns, not one tick per
/// cycle, so a single call is only ever known to ±10 ns.)
fn tsc_step_ns(tsc: Tsc) -> f64 {
    let mut step = u64::MAX;
    for _ in 0..SAMPLES {
        let t = Tsc::read();
        let d = Tsc::read() - t;
        if d > 0 {
            step = step.min(d);
        }
    }
    step as f64 / tsc.ticks_per_ns
}

/// Which clock times a sample.
#[derive(Clone, Copy)]
enum Clock {
    Instant,
    Tsc(Tsc),
}

impl Clock {
    /// The ns `f` takes, between two reads of this clock (its own cost included).
    #[inline(always)]
    fn time(self, f: impl FnOnce()) -> f64 {
        match self {
            Clock::Instant => {
                let t = Instant::now();
                f();
                t.elapsed().as_nanos() as f64
            }
            Clock::Tsc(tsc) => {
                let t = Tsc::read();
                f();
                (Tsc::read() - t) as f64 / tsc.ticks_per_ns
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Clock::Instant => "instant",
            Clock::Tsc(_) => "tsc",
        }
    }
}

fn percentiles_json(h: &Histogram<u64>) -> Value {
    let q = |p: f64| h.value_at_quantile(p) as f64;
    json!({
        "p50_ns": q(0.5), "p90_ns": q(0.9), "p99_ns": q(0.99), "p99_9_ns": q(0.999),
        "p99_99_ns": q(0.9999), "max_ns": h.max() as f64, "mean_ns": h.mean(),
    })
}

/// The empty timed region of `clock`, in ns.
fn empty_region(clock: Clock) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for _ in 0..WARMUP_SAMPLES + SAMPLES {
        let ns = clock.time(|| {});
        h.saturating_record((ns.round() as u64).max(1));
    }
    h
}

/// Times `SAMPLES` single calls of `f` (after a warm-up).
fn measure(id: &str, what: &str, f: impl FnMut()) -> Value {
    measure_with(id, what, Clock::Instant, 1, f)
}

/// Times `SAMPLES` samples of `calls_per_sample` calls of `f` with `clock`; a
/// sample's figure is its time divided by the calls in it (so a batched sample is a
/// mean: it hides the tail, and is only ever reported beside single-call figures).
fn measure_with(
    id: &str,
    what: &str,
    clock: Clock,
    calls_per_sample: u32,
    mut f: impl FnMut(),
) -> Value {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for _ in 0..WARMUP_SAMPLES {
        f();
    }
    for _ in 0..SAMPLES {
        let ns = clock.time(|| {
            for _ in 0..calls_per_sample {
                f();
            }
        });
        h.saturating_record(((ns / f64::from(calls_per_sample)).round() as u64).max(1));
    }
    row(id, what, clock.name(), calls_per_sample, &h, json!({}))
}

/// Prints a row and returns its JSON (`extra`'s fields added).
fn row(
    id: &str,
    what: &str,
    clock: &str,
    calls_per_sample: u32,
    h: &Histogram<u64>,
    extra: Value,
) -> Value {
    let q = |p: f64| h.value_at_quantile(p) as f64;
    eprintln!(
        "{id:<34} p50 {:>8} ns  p99 {:>8} ns  p99.9 {:>8} ns  max {:>10} ns  mean {:>8.0} ns",
        q(0.5),
        q(0.99),
        q(0.999),
        h.max(),
        h.mean()
    );
    let mut v = json!({
        "id": id, "what": what, "iterations": h.len(), "calls_per_sample": calls_per_sample,
        "clock": clock,
    });
    for fields in [percentiles_json(h), extra] {
        if let (Value::Object(m), Value::Object(p)) = (&mut v, fields) {
            m.extend(p);
        }
    }
    v
}

/// A storage with one partition of 64 MiB segments and a pre-fault window of
/// `window_bytes` (0: off) whose outrun appends follow `outrun`, and the 1 KiB
/// one-record batch appended to it.
fn log_append_setup(
    window_bytes: u64,
    outrun: PrefaultOutrun,
) -> (tempfile::TempDir, Storage, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        // Small segments so rolls happen inside the measurement, as in a long run.
        segment_bytes: 64 << 20,
        // With the window on, the background thread keeps the pages ahead faulted in
        // and prepares the next segment before the roll.
        segment_prefault_bytes: window_bytes,
        segment_prefault_outrun: outrun,
        ..StorageConfig::defaults_in(dir.path())
    })
    .expect("open");
    storage
        .create_topic("bench", 1, TopicConfig::default())
        .expect("topic");
    (dir, storage, one_record_batch(1024))
}

/// `Partition::append` of a 1 KiB batch in a tight loop with a pre-fault window of
/// `window_bytes` (0: off, every new page faulted in by the appender). With the
/// window on, this loop appends faster than the pre-fault thread populates (~0.2 µs
/// per 1 KiB append against ~1-4 µs per 4 KiB page here), so it soon runs past the
/// window: `log_append_1kib` and `_window_outrun_fault`, what a producer faster than
/// the thread gets,
/// once per `segment_prefault_outrun` (`pwrite`, the default, and `fault`).
fn log_append(id: &str, window_bytes: u64, outrun: PrefaultOutrun) -> Value {
    let (_dir, storage, batch) = log_append_setup(window_bytes, outrun);
    let partition = storage.partition("bench", 0).expect("partition");
    let window = if window_bytes == 0 {
        "pre-fault window off".to_string()
    } else {
        format!(
            "{} MiB pre-fault window, tight loop: outruns the pre-fault thread, segment_prefault_outrun={}",
            window_bytes >> 20,
            match outrun {
                PrefaultOutrun::Pwrite => "pwrite",
                PrefaultOutrun::Fault => "fault",
            }
        )
    };
    measure(
        id,
        &format!("Partition::append of a 1 KiB one-record v2 batch (64 MiB segments, rolls included, {window}, segment_write=mmap)"),
        || {
            partition.append(black_box(&batch)).expect("append");
        },
    )
}

/// `Partition::append` of a 1 KiB batch into memory the pre-fault window has already
/// made writable, which is what the window is for: in rounds, each waiting (untimed)
/// until the pre-fault thread has populated the window ahead and gone idle
/// (`common::wait_for_window`), then timing single appends, as many as fit in the
/// populated bytes, so no timed append runs past the window. The thread keeps
/// refilling during a round, as in the broker. Rolls to the next (prepared) segment
/// happen inside rounds.
fn log_append_inside_window(id: &str, window_bytes: u64, clock: Clock) -> Value {
    let (_dir, storage, batch) = log_append_setup(window_bytes, PrefaultOutrun::default());
    let partition = storage.partition("bench", 0).expect("partition");
    // The first append creates the active segment and starts its window.
    partition.append(&batch).expect("append");
    measure_inside_window(
        id,
        &format!(
            "Partition::append of a 1 KiB one-record v2 batch (64 MiB segments, rolls included, {} MiB pre-fault window, segment_write=mmap) into pages the window already populated",
            window_bytes >> 20
        ),
        &partition,
        window_bytes,
        batch.len() as u64,
        clock,
        || {
            partition.append(black_box(&batch)).expect("append");
        },
    )
}

/// Times single calls of `f`, each appending `bytes_per_call` to `partition`, only
/// while they fit in what the pre-fault window has populated: in rounds, each after
/// an untimed wait for the pre-fault thread (`common::wait_for_window`), timing at
/// most as many calls as fit in the populated bytes (the thread keeps refilling
/// during a round, as in the broker).
fn measure_inside_window(
    id: &str,
    what: &str,
    partition: &strikemq::storage::Partition,
    window_bytes: u64,
    bytes_per_call: u64,
    clock: Clock,
    mut f: impl FnMut(),
) -> Value {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let (mut warm_up, mut left) = (WARMUP_SAMPLES, SAMPLES);
    let (mut rounds, mut smallest_round) = (0u64, u64::MAX);
    while warm_up + left > 0 {
        let ahead = common::wait_for_window(partition, window_bytes);
        let fits = ahead / bytes_per_call;
        let n = fits.min(warm_up + left);
        rounds += 1;
        smallest_round = smallest_round.min(fits);
        for _ in 0..n {
            let ns = clock.time(&mut f).round() as u64;
            if warm_up > 0 {
                warm_up -= 1;
            } else {
                left -= 1;
                h.saturating_record(ns.max(1));
            }
        }
    }
    eprintln!(
        "{id}: {rounds} rounds, each timing the calls that fit in the populated window (at least {smallest_round} of {bytes_per_call} B) after waiting for the pre-fault thread"
    );
    row(
        id,
        &format!(
            "{what}: {rounds} rounds, each after waiting (untimed) for the pre-fault thread to fill the window, timing at most as many calls as fit in it (at least {smallest_round} per round)"
        ),
        clock.name(),
        1,
        &h,
        json!({ "rounds": rounds, "appends_per_round_min": smallest_round }),
    )
}

/// The two tight-loop rows with the window on, one per `segment_prefault_outrun`.
fn log_append_outrun_rows() -> Vec<Value> {
    vec![
        log_append(
            "log_append_1kib",
            LOG_APPEND_WINDOW_BYTES,
            PrefaultOutrun::Pwrite,
        ),
        log_append(
            "log_append_1kib_window_outrun_fault",
            LOG_APPEND_WINDOW_BYTES,
            PrefaultOutrun::Fault,
        ),
    ]
}

/// Every log append row: inside the window, outrunning it (both ways), window off.
fn log_append_rows(tsc: Option<Tsc>) -> Vec<Value> {
    let mut rows = vec![log_append_inside_window(
        "log_append_1kib_window_inside",
        LOG_APPEND_WINDOW_BYTES,
        Clock::Instant,
    )];
    if let Some(tsc) = tsc {
        // The same, timed with the TSC: its empty region costs ~10 ns less than
        // Instant's here (see `timer`).
        rows.push(log_append_inside_window(
            "log_append_1kib_window_inside_tsc",
            LOG_APPEND_WINDOW_BYTES,
            Clock::Tsc(tsc),
        ));
    }
    rows.extend(log_append_outrun_rows());
    rows.push(log_append(
        "log_append_1kib_window_off",
        0,
        PrefaultOutrun::default(),
    ));
    rows
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

/// Calls per sample of the batched header row.
const HEADER_BATCH_CALLS: u32 = 64;

/// The header decode `Broker::handle` runs: a view over the frame. Three figures:
/// single calls timed with `Instant` (the clock's two reads cost about as much as
/// the decode: see `timer`), single calls timed with the TSC (`lfence; rdtsc`, a few
/// ns, its own empty region in `timer.tsc`), and means of batches of
/// [`HEADER_BATCH_CALLS`] calls (no clock cost to speak of, but a mean: it hides the
/// tail, so it stands beside the single-call rows, never instead of them).
fn header_decode(tsc: Option<Tsc>) -> Vec<Value> {
    let frame = header_frame();
    let decode = || {
        black_box(views::header(black_box(&frame)).expect("decode"));
    };
    let what = "views::header of a Produce v9 request header (flexible, client id \"rdkafka\"): the decode Broker::handle runs";
    let mut rows = vec![measure("kafka_header_decode", what, decode)];
    if let Some(tsc) = tsc {
        rows.push(measure_with(
            "kafka_header_decode_tsc",
            &format!("{what}; single calls timed with the TSC"),
            Clock::Tsc(tsc),
            1,
            decode,
        ));
    }
    rows.push(measure_with(
        "kafka_header_decode_batch64",
        &format!(
            "{what}; each sample the mean of {HEADER_BATCH_CALLS} calls (Instant): hides the tail"
        ),
        Clock::Instant,
        HEADER_BATCH_CALLS,
        decode,
    ));
    rows
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

/// `Broker::handle` of the same Produce with a 64 MiB pre-fault window, timing only
/// requests whose batch fits in the populated window (`measure_inside_window`).
fn handle_produce_inside_window() -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, storage) =
        common::broker_and_storage(dir.path(), "bench", LOG_APPEND_WINDOW_BYTES);
    let frame = common::produce_frame("bench", 9, 1024);
    let mut out = strikemq::output::Output::new(strikemq::output::RecordsOut::Copy);
    out.bytes_mut().reserve(64 * 1024);
    let mut handle_once = || {
        out.clear();
        match broker.handle(black_box(frame.clone()), &mut out) {
            Ok(Outcome::Responded) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    };
    handle_once(); // the first segment and its window
    let partition = storage.partition("bench", 0).expect("partition");
    measure_inside_window(
        "broker_handle_produce_1kib_window_inside",
        &format!(
            "Broker::handle of a 1-partition Produce v9 of one 1 KiB record (acks=1), {} MiB pre-fault window, batches into pages the window already populated",
            LOG_APPEND_WINDOW_BYTES >> 20
        ),
        &partition,
        LOG_APPEND_WINDOW_BYTES,
        common::one_record_batch(1024).len() as u64,
        Clock::Instant,
        handle_once,
    )
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
        handle_produce_inside_window(),
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
    // `cargo bench` passes --bench (and filters); this harness runs everything, except
    // that `STRIKEMQ_PERCENTILES_ONLY=log_append` (or `log_append_window`,
    // `log_append_outrun`, `header`, `handle`: profiling)
    // runs the log append rows alone and writes no results file.
    match std::env::var("STRIKEMQ_PERCENTILES_ONLY").as_deref() {
        Ok("log_append") => {
            log_append_rows(Tsc::detect());
            return;
        }
        Ok("header") => {
            header_decode(Tsc::detect());
            return;
        }
        Ok("log_append_window") => {
            log_append_inside_window(
                "log_append_1kib_window_inside",
                LOG_APPEND_WINDOW_BYTES,
                Clock::Instant,
            );
            return;
        }
        Ok("handle") => {
            handle_produce_and_fetch();
            return;
        }
        Ok("log_append_outrun") => {
            log_append_outrun_rows();
            return;
        }
        _ => {}
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo_s = repo.display().to_string();
    let (resolution_ns, overhead) = timer();
    let overhead_q = |p: f64| overhead.value_at_quantile(p) as f64;
    eprintln!(
        "timer: resolution {resolution_ns} ns, empty timed region p50 {} ns p99.9 {} ns",
        overhead_q(0.5),
        overhead_q(0.999)
    );
    let tsc = Tsc::detect();
    let tsc_overhead = tsc.map(|tsc| {
        let h = empty_region(Clock::Tsc(tsc));
        eprintln!(
            "tsc: {:.3} ticks/ns, empty timed region p50 {} ns p99.9 {} ns",
            tsc.ticks_per_ns,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.999)
        );
        let step = tsc_step_ns(tsc);
        eprintln!("tsc: smallest non-zero step between two reads {step:.1} ns");
        json!({
            "clock": "lfence; rdtsc (invariant TSC), calibrated against Instant over 100 ms",
            "ticks_per_ns": tsc.ticks_per_ns,
            "resolution_ns": step,
            "empty_region": percentiles_json(&h),
        })
    });
    let mut benchmarks = log_append_rows(tsc);
    benchmarks.extend(header_decode(tsc));
    benchmarks.push(header_decode_owned());
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
            "note": "every sample is one call between two clock reads (unless calls_per_sample > 1); figures include the overhead once, not subtracted",
            "tsc": tsc_overhead,
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
