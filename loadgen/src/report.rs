//! Results: percentiles in µs, the human table on stdout, the JSON summary, and the
//! HdrHistogram interval log writer.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::recorder::{Interval, Recorder};
use crate::schedule::{Schedule, NS_PER_S};
use crate::verify::VerifyReport;

const NS_PER_US: f64 = 1_000.0;

/// Percentiles of one histogram, in µs.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let q = |q: f64| h.value_at_quantile(q) as f64 / NS_PER_US;
        Percentiles {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: h.max() as f64 / NS_PER_US,
            mean: h.mean() / NS_PER_US,
            count: h.len(),
        }
    }
}

/// The machine-readable result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub workload: String,
    pub driver: String,
    pub schedule: Schedule,
    /// What `latency_us` is measured from.
    pub latency_from: String,
    /// The exact parameters of the run (the parsed command line).
    pub params: serde_json::Value,
    pub latency_us: Percentiles,
    pub service_us: Percentiles,
    pub send_lag_us: Percentiles,
    pub count: u64,
    pub sent: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub duration_s: f64,
    pub rate_per_s: f64,
    pub bytes_per_s: f64,
    /// Records consumed (fetch, e2e): `count` is then per request (fetch) or per record.
    pub records: Option<u64>,
    pub records_per_s: Option<f64>,
    pub verification: Option<VerifyReport>,
    /// The resolved shape: topics, partitions and their leaders, client threads.
    pub layout: Option<serde_json::Value>,
    /// How the measured client connections waited: `blocking` or `busy-poll` (none for
    /// librdkafka, which waits in its own threads).
    pub client_wait: Option<String>,
    /// How the floor's echo server waited (floor runs only).
    pub server_wait: Option<String>,
    /// The storage floor's passes (floor --storage only).
    pub storage: Option<serde_json::Value>,
    pub environment: Environment,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub loadgen_version: String,
    pub kernel: String,
    pub cpus: usize,
}

impl Environment {
    pub fn here() -> Environment {
        Environment {
            loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        }
    }
}

impl Summary {
    pub fn new(
        workload: &str,
        driver: &str,
        schedule: Schedule,
        params: serde_json::Value,
        rec: &Recorder,
        sent: u64,
        measured_ns: u64,
    ) -> Summary {
        let duration_s = measured_ns as f64 / NS_PER_S as f64;
        let latency_from = match schedule {
            Schedule::Closed { .. } => "actual send (closed loop: no intended time)",
            Schedule::Open { .. } => "intended send (open loop, coordinated-omission corrected)",
        };
        Summary {
            workload: workload.to_string(),
            driver: driver.to_string(),
            schedule,
            latency_from: latency_from.to_string(),
            params,
            latency_us: Percentiles::of(&rec.latency),
            service_us: Percentiles::of(&rec.service),
            send_lag_us: Percentiles::of(&rec.send_lag),
            count: rec.count(),
            sent,
            errors: rec.errors,
            timeouts: rec.timeouts,
            duration_s,
            rate_per_s: rec.count() as f64 / duration_s.max(f64::MIN_POSITIVE),
            bytes_per_s: rec.payload_bytes as f64 / duration_s.max(f64::MIN_POSITIVE),
            records: None,
            records_per_s: None,
            verification: None,
            layout: None,
            client_wait: None,
            server_wait: None,
            storage: None,
            environment: Environment::here(),
        }
    }

    /// True when the run had no errors, no timeouts and (if verified) no problems.
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.timeouts == 0 && self.verification.as_ref().is_none_or(|v| v.ok())
    }

    /// The human table.
    pub fn table(&self) -> String {
        let sched = match self.schedule {
            Schedule::Closed { inflight } => format!("closed loop, {inflight} in flight"),
            Schedule::Open {
                rate_per_s,
                max_inflight,
            } => format!("open loop at {rate_per_s}/s (at most {max_inflight} in flight)"),
        };
        let wait = match (&self.client_wait, &self.server_wait) {
            (Some(c), Some(srv)) => format!(" · client {c}, server {srv}"),
            (Some(c), None) => format!(" · client {c}"),
            _ => String::new(),
        };
        let mut s = format!(
            "loadgen {} · driver {}{wait} · {sched}\nlatency measured from the {}\n",
            self.workload, self.driver, self.latency_from
        );
        s += &format!(
            "{:<10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}   (µs)\n",
            "", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        );
        let mut rows: Vec<(&str, &Percentiles)> = vec![("latency", &self.latency_us)];
        // In closed loop service time equals latency; send lag is zero by construction
        // there, printed anyway so that every table has the same rows to compare.
        if matches!(self.schedule, Schedule::Open { .. }) {
            rows.push(("service", &self.service_us));
        }
        rows.push(("send lag", &self.send_lag_us));
        for (name, p) in rows {
            s += &format!(
                "{name:<10}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}\n",
                p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max, p.mean
            );
        }
        let asked = match self.schedule {
            Schedule::Open { rate_per_s, .. } => format!(" of {rate_per_s:.1}/s asked"),
            Schedule::Closed { .. } => String::new(),
        };
        // Bandwidth floors and batched runs are read in GB/s.
        let gb = if self.bytes_per_s >= 1e9 {
            format!(", {:.2} GB/s", self.bytes_per_s / 1e9)
        } else {
            String::new()
        };
        s += &format!(
            "achieved {:.1}/s{asked} over {:.1} s  ·  {:.0} B/s ({:.2} MB/s{gb}) payload\n",
            self.rate_per_s,
            self.duration_s,
            self.bytes_per_s,
            self.bytes_per_s / 1e6,
        );
        s += &format!(
            "count {}  sent {}  errors {}  timeouts {}  send lag p99 {:.1} µs max {:.1} µs\n",
            self.count,
            self.sent,
            self.errors,
            self.timeouts,
            self.send_lag_us.p99,
            self.send_lag_us.max,
        );
        if let Some(l) = &self.layout {
            s += &format!(
                "shape: {} partition(s) on {} leader(s), {} producer thread(s), {} consumer thread(s)\n",
                l["partitions"].as_array().map_or(0, |a| a.len()),
                l["leaders"].as_array().map_or(0, |a| a.len()),
                l["producer_streams"],
                l["consumer_threads"],
            );
        }
        if let (Some(n), Some(r)) = (self.records, self.records_per_s) {
            s += &format!("records {n}  ({r:.1} records/s)\n");
        }
        if let Some(st) = self.storage.as_ref().filter(|st| st.get("sink").is_some()) {
            s += &format!(
                "sink: each request written into a file in {} ({}{}, {} bytes round and round)\n",
                st["sink"].as_str().unwrap_or(""),
                st["fs"].as_str().unwrap_or(""),
                if st["sync"].as_bool() == Some(true) {
                    ", fdatasync per write"
                } else {
                    ""
                },
                st["file_bytes"],
            );
        } else if let Some(st) = &self.storage {
            for pass in ["first_pass", "rewrite_pass"] {
                let p = &st[pass];
                s += &format!(
                    "storage {pass}: {:.1} MB/s ({} bytes in {:.3} s)\n",
                    p["mb_per_s"].as_f64().unwrap_or(0.0),
                    p["bytes"],
                    p["seconds"].as_f64().unwrap_or(0.0),
                );
            }
        }
        if let Some(v) = &self.verification {
            s += &format!(
                "verification {}: {v}\n",
                if v.ok() { "ok" } else { "FAILED" }
            );
        }
        s
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, self)?;
        w.write_all(b"\n")?;
        w.flush()?;
        Ok(())
    }
}

/// Writes interval histograms (values in ns) to an HdrHistogram interval log on its own
/// thread, so serialisation never delays the recording thread.
///
/// Several recorders (one per client thread) may feed one log: every recorder emits every
/// interval of the shared run-clock grid (empty ones too), so an interval is complete,
/// summed and written once `sources` contributions have arrived.
pub struct IntervalLog {
    pub sink: Sender<Interval>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl IntervalLog {
    pub fn start(
        path: PathBuf,
        tag_comment: String,
        sources: usize,
    ) -> anyhow::Result<IntervalLog> {
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let (sink, rx) = channel();
        let base = SystemTime::now();
        let handle = std::thread::Builder::new()
            .name("loadgen-ilog".into())
            .spawn(move || write_intervals(file, base, &tag_comment, sources.max(1), rx))
            .context("starting the interval log writer")?;
        Ok(IntervalLog { sink, handle })
    }

    /// Waits for every interval to be written. Drop all other senders first.
    pub fn finish(self) -> anyhow::Result<()> {
        drop(self.sink);
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("interval log writer panicked"))?
    }
}

/// The run clock starts at process start, so interval times (run clock, ns) are offsets
/// from `base` closely enough for a 1 s time series.
fn write_intervals(
    file: File,
    base: SystemTime,
    comment: &str,
    sources: usize,
    rx: Receiver<Interval>,
) -> anyhow::Result<()> {
    let mut w = BufWriter::new(file);
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(comment)
        .add_comment("values in ns")
        .with_start_time(base)
        .with_base_time(base)
        .with_max_value_divisor(NS_PER_US)
        .begin_log_with(&mut w, &mut serializer)
        .context("writing the interval log header")?;
    let mut first_start_ns = None;
    // start → (contributions, end, summed histogram), written in start order.
    let mut pending: BTreeMap<u64, (usize, u64, Histogram<u64>)> = BTreeMap::new();
    fn write<W: Write, S: hdrhistogram::serialization::Serializer>(
        log: &mut IntervalLogWriter<'_, '_, W, S>,
        first_start_ns: &mut Option<u64>,
        (start_ns, end_ns): (u64, u64),
        h: &Histogram<u64>,
    ) -> anyhow::Result<()> {
        let origin = *first_start_ns.get_or_insert(start_ns);
        log.write_histogram(
            h,
            Duration::from_nanos(start_ns.saturating_sub(origin)),
            Duration::from_nanos(end_ns.saturating_sub(start_ns)),
            None,
        )
        .map_err(|e| anyhow::anyhow!("writing an interval: {e:?}"))
    }
    for iv in rx {
        let e = pending
            .entry(iv.start_ns)
            .or_insert_with(|| (0, iv.end_ns, crate::recorder::new_histogram()));
        e.0 += 1;
        e.1 = e.1.max(iv.end_ns);
        let _ = e.2.add(&iv.latency);
        // Write the oldest intervals once every source has delivered them.
        while let Some(entry) = pending.first_entry() {
            if entry.get().0 < sources {
                break;
            }
            let (start, (_, end, h)) = entry.remove_entry();
            write(&mut log, &mut first_start_ns, (start, end), &h)?;
        }
    }
    // Whatever is left (a source ended early on failure) is written as it stands.
    for (start, (_, end, h)) in pending {
        write(&mut log, &mut first_start_ns, (start, end), &h)?;
    }
    drop(log);
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Sample;
    use crate::verify::Verifier;

    fn summary(rec: &Recorder) -> Summary {
        let schedule = Schedule::Closed { inflight: 1 };
        Summary::new(
            "t",
            "d",
            schedule,
            serde_json::Value::Null,
            rec,
            2,
            NS_PER_S,
        )
    }

    #[test]
    fn percentiles_in_microseconds_and_rate() {
        let mut rec = Recorder::new(0);
        for latency_ns in [10_000, 20_000] {
            let s = Sample {
                intended_ns: 0,
                sent_ns: 0,
                done_ns: latency_ns,
            };
            rec.record(s, 100);
        }
        let s = summary(&rec);
        assert!(
            (s.latency_us.p50 - 10.0).abs() < 0.01,
            "{}",
            s.latency_us.p50
        );
        assert!(
            (s.latency_us.max - 20.0).abs() < 0.02,
            "{}",
            s.latency_us.max
        );
        assert_eq!(s.rate_per_s, 2.0);
        assert_eq!(s.bytes_per_s, 200.0);
        assert!(s.clean());
    }

    #[test]
    fn errors_timeouts_and_failed_verification_are_not_clean() {
        let mut rec = Recorder::new(0);
        rec.error();
        assert!(!summary(&rec).clean());
        let mut rec = Recorder::new(0);
        rec.timeouts = 1;
        assert!(!summary(&rec).clean());
        let mut s = summary(&Recorder::new(0));
        let mut v = Verifier::new(2);
        v.observe(Some(1), 0);
        s.verification = Some(v.report());
        assert!(!s.clean());
        assert!(s.table().contains("verification FAILED"), "{}", s.table());
    }
}
