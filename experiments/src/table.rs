//! The release table, `results/RELEASE.md`: the seed's shape (Metric | p50 | p99.9) from
//! the latest committed micro-benchmark percentiles (`results/micro/*/percentiles.json`,
//! written by `broker/benches/percentiles.rs`) and the latest committed experiment runs,
//! each end-to-end row with its loopback floor beside it, machine and git sha under it.
//! No clock reading: the same inputs give the same bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::results::{latest_run_dir, spread, Meta, Run, RunKind};

/// Micro rows: (id in percentiles.json, metric text, why it may be absent, the seed's
/// figure as StrikeMQ v0.1.5's release notes give it: p50 · p99.9).
const MICRO_ROWS: [(&str, &str, &str, &str); 10] = [
    (
        "log_append_1kib_window_inside",
        "Log append, 1 KiB record batch (in process, pre-fault window on: appends into pages it already populated)",
        "not measured (runs before 2026-12-08 timed the tight loop only)",
        "83 ns · 4.4 µs",
    ),
    (
        "log_append_1kib_window_inside_tsc",
        "Same, single calls timed with the TSC (empty region in the micro file, not subtracted)",
        "not measured (no invariant TSC, or a run before the second session of 2026-12-08)",
        "83 ns · 4.4 µs",
    ),
    (
        "log_append_1kib",
        "Same, tight loop outrunning the pre-fault thread (appends past the window: pwritev)",
        "not measured",
        "83 ns · 4.4 µs",
    ),
    (
        "log_append_1kib_window_outrun_fault",
        "Same, tight loop, `segment_prefault_outrun = fault` (appends past the window take the page faults)",
        "not measured",
        "83 ns · 4.4 µs",
    ),
    (
        "log_append_1kib_window_off",
        "Log append, 1 KiB record batch (in process, pre-fault window off)",
        "not measured",
        "83 ns · 4.4 µs",
    ),
    (
        "handoff_queue_push_pop",
        "Handoff queue push+pop",
        "n/a: no handoff queue (each worker decodes, handles and answers inline)",
        "— · 42 ns (SPSC ring)",
    ),
    (
        "buffer_pool_alloc_free",
        "Buffer pool alloc+free",
        "n/a: no buffer pool (per-connection buffers live as long as the connection)",
        "— · 42 ns",
    ),
    (
        "kafka_header_decode",
        "Kafka request header decode (single calls; timer resolution in the micro file)",
        "not measured",
        "— · 42 ns",
    ),
    (
        "kafka_header_decode_tsc",
        "Same, single calls timed with the TSC (empty region in the micro file, not subtracted)",
        "not measured (no invariant TSC)",
        "— · 42 ns",
    ),
    (
        "kafka_header_decode_batch64",
        "Same, mean of 64 calls per sample (hides the tail; beside, not instead of, the single calls)",
        "not measured",
        "— · 42 ns",
    ),
];

/// The seed's only end-to-end claim ("end-to-end produce p99.9 under 1 ms with kcat"),
/// shown beside the produce rows; it states no p50 and no floor.
const SEED_E2E_PRODUCE: &str = "— · < 1 ms (kcat)";

/// End-to-end rows: metric text and the (experiment, configuration) sources in order of
/// preference; the first with comparable runs wins.
const E2E_ROWS: [(&str, &[(&str, &str)]); 12] = [
    (
        "Produce round trip, 1 KiB, baseline, closed loop",
        &[
            ("baseline-vs-tuned", "baseline-produce"),
            ("quick", "baseline-produce"),
        ],
    ),
    (
        "Produce round trip, 1 KiB, tuned, closed loop",
        &[
            ("baseline-vs-tuned", "tuned-produce"),
            ("quick", "tuned-produce"),
        ],
    ),
    (
        "Fetch round trip, one 1 KiB record, baseline",
        &[("baseline-vs-tuned", "baseline-fetch")],
    ),
    (
        "Fetch round trip, one 1 KiB record, tuned",
        &[("baseline-vs-tuned", "tuned-fetch")],
    ),
    (
        "Produce→consume, 1 KiB, baseline",
        &[
            ("baseline-vs-tuned", "baseline-e2e"),
            ("quick", "baseline-e2e"),
        ],
    ),
    (
        "Produce→consume, 1 KiB, tuned",
        &[("baseline-vs-tuned", "tuned-e2e")],
    ),
    // vs Apache Kafka 4.4: one run, both brokers, the same blocking floor.
    (
        "vs Apache Kafka 4.4, same run: produce round trip, 1 KiB, Kafka (dev defaults, 1 GiB heap)",
        &[("vs-kafka", "kafka-produce")],
    ),
    (
        "Same run: produce round trip, 1 KiB, strikemq baseline",
        &[("vs-kafka", "baseline-produce")],
    ),
    (
        "Same run: produce round trip, 1 KiB, strikemq polling",
        &[("vs-kafka", "polling-produce")],
    ),
    (
        "Same run: fetch round trip, one 1 KiB record, Kafka",
        &[("vs-kafka", "kafka-fetch")],
    ),
    (
        "Same run: fetch round trip, one 1 KiB record, strikemq baseline",
        &[("vs-kafka", "baseline-fetch")],
    ),
    (
        "Loopback TCP echo floor, 1 KiB, both ends busy-polling",
        &[
            ("spin-vs-block", "floor-busy-poll"),
            ("baseline-vs-tuned", "floor-busy-poll"),
        ],
    ),
];

/// The experiment the throughput rows come from.
const THROUGHPUT_EXPERIMENT: &str = "throughput";

/// Throughput rows: metric text, configuration label (before `.disk`/`.tmpfs`) and pass.
/// Produce is set against the storage floor of its data dir (fdatasync floor for
/// flush=always), fetch against the TCP bandwidth floor with the same frames.
const THROUGHPUT_ROWS: [(&str, &str, u32); 8] = [
    (
        "Batched produce, 1 KiB × 1000 per request, 8 in flight, 1 connection",
        "p1k-c1-mmap-pf64m-never",
        2,
    ),
    (
        "Same, first touch of memory (pass 1)",
        "p1k-c1-mmap-pf64m-never",
        1,
    ),
    (
        "Batched produce, 1 KiB × 1000, 8 in flight, 1 connection, segment_write = pwrite, no pre-fault window",
        "p1k-c1-pwrite-pf0-never",
        2,
    ),
    (
        "Batched produce, 1 KiB × 1000, 8 in flight, 4 connections",
        "p1k-c4-mmap-pf64m-never",
        2,
    ),
    (
        "Batched produce, 16 KiB × 64, 8 in flight, 1 connection",
        "p16k-c1-mmap-pf64m-never",
        2,
    ),
    (
        "Batched produce, 1 KiB × 1000, flush=always (vs the fdatasync floor)",
        "p1k-c1-mmap-pf64m-always",
        2,
    ),
    (
        "Fetch of a backlog, ≈1 MiB per Fetch (vs the fetch floor: the same round trip without a broker; before 2026-12-08 the TCP bandwidth floor)",
        "fetch-mmap-pf64m-never",
        2,
    ),
    (
        "Same, fetch_zero_copy (records sent from the mapping, not copied)",
        "fetch-zc-mmap-pf64m-never",
        2,
    ),
];

#[derive(Debug, Deserialize)]
pub struct MicroFile {
    pub environment: MicroEnvironment,
    pub benchmarks: Vec<MicroBench>,
}

#[derive(Debug, Deserialize)]
pub struct MicroEnvironment {
    pub git_sha: String,
    #[serde(default)]
    pub git_dirty: bool,
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    #[serde(default)]
    pub rustc: String,
}

#[derive(Debug, Deserialize)]
pub struct MicroBench {
    pub id: String,
    pub iterations: u64,
    pub p50_ns: f64,
    pub p99_9_ns: f64,
}

fn latest_micro(results: &Path) -> Option<(PathBuf, MicroFile)> {
    let dir = results.join("micro");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("percentiles.json").is_file())
        .collect();
    dirs.sort();
    let d = dirs.pop()?;
    let text = std::fs::read_to_string(d.join("percentiles.json")).ok()?;
    let file = serde_json::from_str(&text).ok()?;
    Some((d, file))
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

fn rel(results: &Path, p: &Path) -> String {
    p.strip_prefix(results.parent().unwrap_or(results))
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Renders RELEASE.md from `results` (a `results/` folder).
pub fn render(results: &Path) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(s, "# Release table\n");
    let _ = writeln!(
        s,
        "Regenerated by `just release-table` from the latest committed results; do not edit by hand.\n\
         End-to-end rows: loadgen's native driver over loopback, median over the comparable repetitions\n\
         [min–max], with the plain TCP echo floor (blocking) of the same size and schedule measured in\n\
         the same run. Micro rows: in-process percentile harness (`broker/benches/percentiles.rs`).\n"
    );
    let _ = writeln!(
        s,
        "| Metric | p50 | p99.9 | StrikeMQ v0.1.5 (seed): p50 · p99.9 |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    let micro = latest_micro(results);
    for (id, metric, absent, seed) in MICRO_ROWS {
        let row = micro
            .as_ref()
            .and_then(|(_, m)| m.benchmarks.iter().find(|b| b.id == id));
        match row {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "| {metric} | {} | {} | {seed} |",
                    fmt_ns(b.p50_ns),
                    fmt_ns(b.p99_9_ns)
                );
            }
            None => {
                let _ = writeln!(s, "| {metric} | {absent} | | {seed} |");
            }
        }
    }
    let mut sources: Vec<(String, Meta)> = Vec::new();
    for (metric, candidates) in E2E_ROWS {
        let mut found = None;
        for (exp, label) in candidates {
            let Ok(dir) = latest_run_dir(results, exp) else {
                continue;
            };
            let meta = Meta::read(&dir)?;
            let runs: Vec<&Run> = meta.runs_of(label).filter(|r| r.comparable()).collect();
            if runs.is_empty() {
                // Name the keys that fell back; the full reasons are in the results folder.
                let why = meta.runs_of(label).find_map(|r| {
                    let reason = r.excluded_reason.as_ref()?;
                    Some(match r.status {
                        crate::results::Status::Fallback => {
                            let keys: Vec<&str> = reason
                                .split("; ")
                                .filter_map(|part| part.split(':').next())
                                .collect();
                            format!("excluded: fallback of {}", keys.join(", "))
                        }
                        _ => "excluded: failed (see runs.csv)".to_string(),
                    })
                });
                if let Some(why) = why {
                    found = Some((why, String::new()));
                    break;
                }
                continue;
            }
            let cell = |f: fn(&Run) -> Option<f64>| -> String {
                let v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
                let floor_label = runs[0].floors.first().cloned().unwrap_or_default();
                let fv: Vec<f64> = meta
                    .runs_of(&floor_label)
                    .filter(|r| r.comparable())
                    .filter_map(f)
                    .collect();
                match (spread(&v), spread(&fv)) {
                    (Some((m, lo, hi)), Some((fm, _, _))) => format!(
                        "{} [{:.1}–{:.1}] · floor {} ({:.1}×)",
                        fmt_us(m),
                        lo,
                        hi,
                        fmt_us(fm),
                        m / fm
                    ),
                    (Some((m, lo, hi)), None) if runs[0].kind == RunKind::Floor => {
                        format!("{} [{lo:.1}–{hi:.1}]", fmt_us(m))
                    }
                    (Some((m, lo, hi)), None) => {
                        format!("{} [{lo:.1}–{hi:.1}] · no floor", fmt_us(m))
                    }
                    _ => "–".into(),
                }
            };
            let p50 = cell(|r| r.latency_us.as_ref().map(|p| p.p50));
            let p999 = cell(|r| r.latency_us.as_ref().map(|p| p.p99_9));
            let src = rel(results, &dir);
            if !sources.iter().any(|(d, _)| *d == src) {
                sources.push((src, meta.clone()));
            }
            found = Some((p50, p999));
            break;
        }
        let (p50, p999) = found.unwrap_or_else(|| ("not measured".into(), String::new()));
        let seed = if metric.starts_with("Produce round trip") {
            SEED_E2E_PRODUCE
        } else {
            "—"
        };
        let _ = writeln!(s, "| {metric} | {p50} | {p999} | {seed} |");
    }
    let _ = writeln!(s);
    if let Ok(dir) = latest_run_dir(results, THROUGHPUT_EXPERIMENT) {
        let meta = Meta::read(&dir)?;
        let _ = writeln!(
            s,
            "| Throughput (payload MB/s, median [min–max]; ratio to the floor of the same run) | data dir on disk | data dir on tmpfs |"
        );
        let _ = writeln!(s, "|---|---|---|");
        for (metric, base, pass) in THROUGHPUT_ROWS {
            let cells: Vec<String> = ["disk", "tmpfs"]
                .iter()
                .map(|d| throughput_cell(&meta, &format!("{base}.{d}.pass{pass}")))
                .collect();
            let _ = writeln!(s, "| {metric} | {} | {} |", cells[0], cells[1]);
        }
        let _ = writeln!(s);
        let src = rel(results, &dir);
        if !sources.iter().any(|(d, _)| *d == src) {
            sources.push((src, meta));
        }
    }
    if let Some((dir, m)) = &micro {
        let e = &m.environment;
        let _ = writeln!(
            s,
            "- Micro: `{}` — {} ({} cores), kernel {}, {}, git {}{}; {} iterations each.",
            rel(results, dir),
            e.cpu_model,
            e.cores,
            e.kernel,
            e.rustc,
            short(&e.git_sha),
            if e.git_dirty { " (dirty)" } else { "" },
            m.benchmarks.first().map(|b| b.iterations).unwrap_or(0)
        );
        let _ = writeln!(
            s,
            "- The seed's micro figures come from Apple Silicon (its release notes: verified on macOS), whose monotonic clock ticks at 24 MHz: 41.67 ns per tick. Its \"42 ns\" rows are one tick and \"83 ns\" is two, so each stands for a range one tick wide either side. Ours are single calls on a clock with a ~10 ns step (TSC) or 20 ns (`Instant`), the clock's own cost included, not subtracted."
        );
    }
    for (dir, meta) in &sources {
        let e = &meta.environment;
        let _ = writeln!(
            s,
            "- End to end: `{dir}` — {} ({} cores), kernel {}, {}, git {}{}; {} repetitions, interleaved.",
            e.cpu_model,
            e.cores,
            e.kernel,
            e.rustc,
            short(&e.git_sha),
            if e.git_dirty { " (dirty)" } else { "" },
            meta.repetitions
        );
    }
    Ok(s)
}

fn fmt_mb(mb: f64) -> String {
    if mb >= 1000.0 {
        format!("{:.2} GB/s", mb / 1000.0)
    } else {
        format!("{mb:.0} MB/s")
    }
}

/// Median payload MB/s of a label with its floor: the storage floor it names (produce),
/// else its first echo floor (fetch: the TCP bandwidth floor with the same frames).
fn throughput_cell(meta: &Meta, label: &str) -> String {
    let mbs = |l: &str| -> Vec<f64> {
        meta.runs_of(l)
            .filter(|r| r.comparable())
            .filter_map(|r| r.bytes_per_s.map(|b| b / 1e6))
            .collect()
    };
    let runs: Vec<&Run> = meta.runs_of(label).collect();
    let Some(first) = runs.first() else {
        return "not measured".into();
    };
    let Some((m, lo, hi)) = spread(&mbs(label)) else {
        return match first.status {
            crate::results::Status::Fallback => "excluded: fallback (see runs.csv)".into(),
            _ => "excluded: failed (see runs.csv)".into(),
        };
    };
    let (floor_label, what) = match &first.storage_floor {
        Some(f) => (f.clone(), "storage floor"),
        None => {
            let floor = first.floors.first().cloned().unwrap_or_default();
            // `loadgen floor --like fetch` floors end in `-fetch` (before any pass suffix).
            let what = if floor
                .split('.')
                .next()
                .is_some_and(|l| l.ends_with("-fetch"))
            {
                "fetch floor"
            } else {
                "TCP floor"
            };
            (floor, what)
        }
    };
    // The TCP + storage floor of the same size, data dir and pass, where measured.
    let sink = sink_label(&floor_label)
        .and_then(|l| spread(&mbs(&l)))
        .map(|(f, _, _)| format!(" · TCP + storage floor {} ({:.2}×)", fmt_mb(f), m / f))
        .unwrap_or_default();
    match spread(&mbs(&floor_label)) {
        Some((f, _, _)) => format!(
            "{} [{lo:.0}–{hi:.0}] · {what} {} ({:.2}×){sink}",
            fmt_mb(m),
            fmt_mb(f),
            m / f
        ),
        None => format!("{} [{lo:.0}–{hi:.0}] · no floor", fmt_mb(m)),
    }
}

/// The sink floor beside a storage floor: `floor-storage-write…` → `floor-storage-sink…`,
/// `floor-storage-sync…` → `floor-storage-sink-sync…`.
fn sink_label(storage_label: &str) -> Option<String> {
    for (from, to) in [
        ("floor-storage-write", "floor-storage-sink"),
        ("floor-storage-sync", "floor-storage-sink-sync"),
    ] {
        if let Some(rest) = storage_label.strip_prefix(from) {
            return Some(format!("{to}{rest}"));
        }
    }
    None
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

pub const README_START: &str = "<!-- release-table:start -->";
pub const README_END: &str = "<!-- release-table:end -->";

/// Writes RELEASE.md and, when the README has the markers, the table between them.
pub fn write(results: &Path, readme: Option<&Path>) -> Result<PathBuf> {
    let text = render(results)?;
    let out = results.join("RELEASE.md");
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    if let Some(readme) = readme {
        let body = std::fs::read_to_string(readme)
            .with_context(|| format!("reading {}", readme.display()))?;
        if let (Some(a), Some(b)) = (body.find(README_START), body.find(README_END)) {
            // The README shows the table and its notes, without RELEASE.md's heading.
            let table: String = text
                .lines()
                .skip_while(|l| !l.starts_with("| Metric"))
                .collect::<Vec<_>>()
                .join("\n");
            let new = format!("{}{README_START}\n{table}\n{}", &body[..a], &body[b..]);
            if new != body {
                std::fs::write(readme, new)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, kind: &str, mb_per_s: f64, extra: serde_json::Value) -> Run {
        let mut v = serde_json::json!({
            "order": 0, "label": label, "kind": kind, "rep": 1, "status": "ok",
            "excluded_reason": null, "floors": [], "series": null, "workload": {},
            "loadgen_args": [], "requested": null, "effective": null,
            "latency_us": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "p99_9": 1.0, "p99_99": 1.0,
                "max": 1.0, "mean": 1.0, "count": 1},
            "service_us": null, "send_lag_us": null, "rate_per_s": 1.0,
            "bytes_per_s": mb_per_s * 1e6, "errors": 0, "timeouts": 0, "broker_cpu_s": null,
            "broker_cpu_pct": null, "wall_s": 1.0, "json": null, "interval_log": null,
            "broker_log": null
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn throughput_cells_stand_next_to_their_floor() {
        let meta: Meta = serde_json::from_value(serde_json::json!({
            "experiment": "throughput", "question": "q", "experiment_toml": "",
            "repetitions": 1, "bootstrap": null, "broker_binary": null, "loadgen_binary": "l",
            "environment": {"git_sha": "", "git_dirty": false, "rustc": "", "kernel": "",
                "cpu_model": "", "cores": 1, "memory_bytes": 0, "host": "", "time": "",
                "load_average": ""},
            "runs": []
        }))
        .unwrap();
        let mut meta = meta;
        meta.runs = vec![
            run(
                "floor-storage-write.disk.pass2",
                "floor",
                2000.0,
                serde_json::json!({}),
            ),
            run(
                "floor-blocking.pass2",
                "floor",
                4000.0,
                serde_json::json!({}),
            ),
            run(
                "p.disk.pass2",
                "broker",
                1000.0,
                serde_json::json!({"storage_floor": "floor-storage-write.disk.pass2",
                    "floors": ["floor-blocking.pass2"]}),
            ),
            run(
                "f.disk.pass2",
                "broker",
                1000.0,
                serde_json::json!({"floors": ["floor-blocking.pass2"]}),
            ),
        ];
        assert_eq!(
            throughput_cell(&meta, "p.disk.pass2"),
            "1.00 GB/s [1000–1000] · storage floor 2.00 GB/s (0.50×)"
        );
        assert_eq!(
            throughput_cell(&meta, "f.disk.pass2"),
            "1.00 GB/s [1000–1000] · TCP floor 4.00 GB/s (0.25×)"
        );
        assert_eq!(throughput_cell(&meta, "absent"), "not measured");
        // A fetch row whose floor is the fetch-like echo names it.
        meta.runs.push(run(
            "floor-blocking-1024Bx1000-closed1-fetch.pass2",
            "floor",
            2000.0,
            serde_json::json!({}),
        ));
        meta.runs.push(run(
            "fz.disk.pass2",
            "broker",
            1600.0,
            serde_json::json!({"floors": ["floor-blocking-1024Bx1000-closed1-fetch.pass2"]}),
        ));
        assert_eq!(
            throughput_cell(&meta, "fz.disk.pass2"),
            "1.60 GB/s [1600–1600] · fetch floor 2.00 GB/s (0.80×)"
        );
        // With the TCP + storage floor of the same data dir and pass, both ratios.
        meta.runs.push(run(
            "floor-storage-sink.disk.pass2",
            "floor",
            1250.0,
            serde_json::json!({}),
        ));
        assert_eq!(
            throughput_cell(&meta, "p.disk.pass2"),
            "1.00 GB/s [1000–1000] · storage floor 2.00 GB/s (0.50×) · TCP + storage floor 1.25 GB/s (0.80×)"
        );
        assert_eq!(
            sink_label("floor-storage-sync-16384Bx64.tmpfs.pass1").as_deref(),
            Some("floor-storage-sink-sync-16384Bx64.tmpfs.pass1")
        );
        assert_eq!(sink_label("floor-blocking.pass2"), None);
    }
}
