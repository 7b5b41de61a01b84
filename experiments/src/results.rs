//! A results folder: `results/<experiment>/<date>-<host>/` with `meta.json` (environment,
//! the experiment file, every run with requested and effective configuration and its
//! summary), `runs.csv` (the same runs, one row each, for pandas and spreadsheets),
//! `raw/` (loadgen JSON, HdrHistogram interval logs, broker banners) and the plots.
//!
//! `meta.json` is the source of truth: plots and tables are drawn from it alone (and the
//! interval logs), so they can be redrawn without rerunning.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Latency summary in µs, as loadgen writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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

/// What kind of process served the run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A broker this runner started.
    Broker,
    /// An external cluster (`--bootstrap`): no broker started, no CPU measured.
    External,
    /// The loopback TCP echo floor.
    Floor,
}

/// Whether a run may enter comparisons.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The broker's effective configuration differs from the requested one.
    Fallback,
    /// loadgen failed (errors, timeouts, verification) or the broker did not start.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Position in the interleaved schedule (0-based).
    pub order: u32,
    pub label: String,
    pub kind: RunKind,
    /// 1-based repetition.
    pub rep: u32,
    pub status: Status,
    /// Why the run is excluded (fallbacks with their reasons, or the failure).
    pub excluded_reason: Option<String>,
    /// The floor labels that match this run's workload (broker runs).
    pub floors: Vec<String>,
    pub series: Option<String>,
    /// Workload actually passed (after configuration overrides).
    pub workload: serde_json::Value,
    /// The loadgen command line (binary name first).
    pub loadgen_args: Vec<String>,
    /// Requested: profile and `--set` overrides.
    pub requested: serde_json::Value,
    /// Effective configuration and fallbacks as the broker reported them (`--print-config`).
    pub effective: serde_json::Value,
    pub latency_us: Option<Percentiles>,
    pub service_us: Option<Percentiles>,
    pub send_lag_us: Option<Percentiles>,
    pub rate_per_s: Option<f64>,
    pub bytes_per_s: Option<f64>,
    pub errors: Option<u64>,
    pub timeouts: Option<u64>,
    /// Broker user+system CPU seconds while loadgen ran (warm-up included).
    pub broker_cpu_s: Option<f64>,
    /// `broker_cpu_s` over the loadgen wall time, in percent of one core.
    pub broker_cpu_pct: Option<f64>,
    pub wall_s: f64,
    /// How loadgen's measured connections waited (`blocking`, `busy-poll`); for floors,
    /// the client end.
    #[serde(default)]
    pub client_wait: Option<String>,
    /// Data directory kind (`disk`, `tmpfs`) when the experiment names one.
    #[serde(default)]
    pub data_dir: Option<String>,
    /// File system type of the data directory (statfs), e.g. `ext4`, `tmpfs`.
    #[serde(default)]
    pub data_fs: Option<String>,
    /// Pass of the whole plan (1 = first touch of memory, 2+ = reuse) when several.
    #[serde(default)]
    pub pass: Option<u32>,
    /// Broker CPU seconds over `idle_window_s` after loadgen exited (no client connected).
    #[serde(default)]
    pub idle_cpu_s: Option<f64>,
    #[serde(default)]
    pub idle_window_s: Option<f64>,
    /// `idle_cpu_s` in percent of one core over the window.
    #[serde(default)]
    pub idle_cpu_pct: Option<f64>,
    /// Start-to-ready: from spawning the broker to its ready line (Apache Kafka: format,
    /// JVM start, Metadata answering), in seconds.
    #[serde(default)]
    pub ready_s: Option<f64>,
    /// The broker's resident set at the end of the idle window (VmRSS), in KiB.
    #[serde(default)]
    pub idle_rss_kib: Option<u64>,
    /// The storage floor that bounds this run (produce; `sync` for flush=always).
    #[serde(default)]
    pub storage_floor: Option<String>,
    /// A storage floor's passes as loadgen reported them (first pass, rewrite pass).
    #[serde(default)]
    pub storage: Option<serde_json::Value>,
    /// Files relative to the results folder.
    pub json: Option<String>,
    pub interval_log: Option<String>,
    pub broker_log: Option<String>,
}

impl Run {
    pub fn comparable(&self) -> bool {
        self.status == Status::Ok && self.latency_us.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub git_sha: String,
    pub git_dirty: bool,
    pub rustc: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub host: String,
    /// UTC, RFC 3339.
    pub time: String,
    pub load_average: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub experiment: String,
    pub question: String,
    pub environment: Environment,
    /// The experiment file, verbatim.
    pub experiment_toml: String,
    pub repetitions: u32,
    /// External cluster address, if the run targeted one.
    pub bootstrap: Option<String>,
    pub broker_binary: Option<String>,
    pub loadgen_binary: String,
    pub runs: Vec<Run>,
}

impl Meta {
    pub fn read(dir: &Path) -> Result<Meta> {
        let path = dir.join("meta.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(dir.join("meta.json"), text)?;
        std::fs::write(dir.join("runs.csv"), runs_csv(&self.runs))?;
        Ok(())
    }

    /// Labels in definition order: floors first, then configurations.
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.runs {
            if !out.contains(&r.label) {
                out.push(r.label.clone());
            }
        }
        out
    }

    pub fn runs_of<'a>(&'a self, label: &'a str) -> impl Iterator<Item = &'a Run> + 'a {
        self.runs.iter().filter(move |r| r.label == label)
    }
}

pub const CSV_HEADER: &str = "order,label,kind,rep,status,excluded_reason,series,mode,size,rate,inflight,\
p50_us,p90_us,p99_us,p99_9_us,p99_99_us,max_us,mean_us,count,rate_per_s,bytes_per_s,errors,timeouts,\
send_lag_p50_us,send_lag_p99_9_us,service_p50_us,service_p99_9_us,broker_cpu_s,broker_cpu_pct,wall_s,json,interval_log,\
client_wait,data_dir,data_fs,pass,batch,mb_per_s,idle_cpu_pct,idle_window_s,storage_floor,rewrite_mb_per_s";

/// One row per configuration × repetition (floors included), RFC 4180 quoting.
pub fn runs_csv(runs: &[Run]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in runs {
        let w = &r.workload;
        let num = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
        let int = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        let lat = r.latency_us.as_ref();
        let lag = r.send_lag_us.as_ref();
        let svc = r.service_us.as_ref();
        let fields: Vec<String> = vec![
            r.order.to_string(),
            r.label.clone(),
            format!("{:?}", r.kind).to_lowercase(),
            r.rep.to_string(),
            format!("{:?}", r.status).to_lowercase(),
            r.excluded_reason.clone().unwrap_or_default(),
            r.series.clone().unwrap_or_default(),
            w.get("mode")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
            int(w.get("size").and_then(|v| v.as_u64())),
            int(w.get("rate").and_then(|v| v.as_u64())),
            int(w.get("inflight").and_then(|v| v.as_u64())),
            num(lat.map(|p| p.p50)),
            num(lat.map(|p| p.p90)),
            num(lat.map(|p| p.p99)),
            num(lat.map(|p| p.p99_9)),
            num(lat.map(|p| p.p99_99)),
            num(lat.map(|p| p.max)),
            num(lat.map(|p| p.mean)),
            int(lat.map(|p| p.count)),
            num(r.rate_per_s),
            num(r.bytes_per_s),
            int(r.errors),
            int(r.timeouts),
            num(lag.map(|p| p.p50)),
            num(lag.map(|p| p.p99_9)),
            num(svc.map(|p| p.p50)),
            num(svc.map(|p| p.p99_9)),
            num(r.broker_cpu_s),
            num(r.broker_cpu_pct),
            format!("{:.3}", r.wall_s),
            r.json.clone().unwrap_or_default(),
            r.interval_log.clone().unwrap_or_default(),
            r.client_wait.clone().unwrap_or_default(),
            r.data_dir.clone().unwrap_or_default(),
            r.data_fs.clone().unwrap_or_default(),
            r.pass.map(|p| p.to_string()).unwrap_or_default(),
            int(w.get("batch").and_then(|v| v.as_u64())),
            num(r.bytes_per_s.map(|b| b / 1e6)),
            num(r.idle_cpu_pct),
            num(r.idle_window_s),
            r.storage_floor.clone().unwrap_or_default(),
            num(r
                .storage
                .as_ref()
                .and_then(|s| s["rewrite_pass"]["mb_per_s"].as_f64())),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// Median, min and max of the values (None when empty).
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// A human summary table (stdout after a run, and `summary.md` in the folder).
pub fn summary_markdown(meta: &Meta) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {} — {}\n\n{}\n",
        meta.experiment, meta.environment.time, meta.question
    );
    let _ = writeln!(
        s,
        "{} repetitions; median [min–max] over comparable repetitions; latency in µs.\n",
        meta.repetitions
    );
    // Columns that only some experiments have appear only when some run has them.
    let has_idle = meta.runs.iter().any(|r| r.idle_cpu_pct.is_some());
    let has_mb = meta
        .runs
        .iter()
        .any(|r| r.storage.is_some() || r.data_dir.is_some() || r.storage_floor.is_some());
    let _ = writeln!(
        s,
        "| configuration | n | p50 | p99 | p99.9 | rate/s |{} broker CPU % |{} excluded |",
        if has_mb { " MB/s |" } else { "" },
        if has_idle { " idle CPU % |" } else { "" },
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|{}{}---|",
        if has_mb { "---|" } else { "" },
        if has_idle { "---|" } else { "" },
    );
    for label in meta.labels() {
        let runs: Vec<&Run> = meta.runs_of(&label).collect();
        let ok: Vec<&Run> = runs.iter().copied().filter(|r| r.comparable()).collect();
        let col = |f: &dyn Fn(&Run) -> Option<f64>, prec: usize| {
            let v: Vec<f64> = ok.iter().filter_map(|r| f(r)).collect();
            match spread(&v) {
                Some((m, lo, hi)) => format!("{m:.prec$} [{lo:.prec$}–{hi:.prec$}]"),
                None => "–".into(),
            }
        };
        // The same reason for every repetition is said once, with the repetitions named.
        let mut excluded: Vec<(Vec<u32>, String)> = Vec::new();
        for r in runs.iter().filter(|r| !r.comparable()) {
            let why = r
                .excluded_reason
                .clone()
                .unwrap_or_else(|| "no data".into());
            match excluded.iter_mut().find(|e| e.1 == why) {
                Some(e) => e.0.push(r.rep),
                None => excluded.push((vec![r.rep], why)),
            }
        }
        let excluded: Vec<String> = excluded
            .into_iter()
            .map(|(reps, why)| {
                let reps: Vec<String> = reps.iter().map(|r| r.to_string()).collect();
                format!("reps {}: {why}", reps.join(","))
            })
            .collect();
        let mb = if has_mb {
            format!(" {} |", col(&|r| r.bytes_per_s.map(|b| b / 1e6), 0))
        } else {
            String::new()
        };
        let idle = if has_idle {
            format!(" {} |", col(&|r| r.idle_cpu_pct, 1))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} |{mb} {} |{idle} {} |",
            ok.len(),
            col(&|r| r.latency_us.as_ref().map(|p| p.p50), 1),
            col(&|r| r.latency_us.as_ref().map(|p| p.p99), 1),
            col(&|r| r.latency_us.as_ref().map(|p| p.p99_9), 1),
            col(&|r| r.rate_per_s, 0),
            col(&|r| r.broker_cpu_pct, 0),
            excluded.join("; ").replace('|', "/"),
        );
    }
    s
}

/// The newest run folder of an experiment (folder names sort by date).
pub fn latest_run_dir(results: &Path, experiment: &str) -> Result<PathBuf> {
    let dir = results.join(experiment);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no results for {experiment:?} in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
        .with_context(|| format!("no run folder with meta.json under {}", dir.display()))
}

fn cmd_text(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Seconds since the epoch to (UTC date `YYYY-MM-DD`, RFC 3339 time).
pub fn utc(secs: u64) -> (String, String) {
    // Howard Hinnant's civil-from-days: no date crate needed for one timestamp.
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let time = format!(
        "{date}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    (date, time)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn environment(repo: &Path) -> Environment {
    let repo_s = repo.display().to_string();
    let git_sha = cmd_text("git", &["-C", &repo_s, "rev-parse", "HEAD"]);
    // Dirty means changed sources: results folders (written by this very session) and
    // untracked files do not change what was measured.
    let git_dirty = !cmd_text(
        "git",
        &[
            "-C",
            &repo_s,
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)results",
        ],
    )
    .is_empty();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    Environment {
        git_sha,
        git_dirty,
        rustc: cmd_text("rustc", &["--version"]),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        cpu_model,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_bytes,
        host: hostname(),
        time: utc(now_secs()).1,
        load_average: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0).1, "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400).0, "2000-02-29");
        assert_eq!(utc(1_700_000_000).1, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn spread_and_csv_quoting() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(&[1.0, 2.0]), Some((1.5, 1.0, 2.0)));
        assert_eq!(spread(&[]), None);
        assert_eq!(csv_field("a,b \"c\""), "\"a,b \"\"c\"\"\"");
    }

    #[test]
    fn every_csv_row_has_as_many_fields_as_the_header() {
        let meta: Meta = serde_json::from_value(serde_json::json!({
            "experiment": "x", "question": "q", "experiment_toml": "", "repetitions": 1,
            "bootstrap": null, "broker_binary": null, "loadgen_binary": "l",
            "environment": {"git_sha": "", "git_dirty": false, "rustc": "", "kernel": "",
                "cpu_model": "", "cores": 1, "memory_bytes": 0, "host": "", "time": "",
                "load_average": ""},
            "runs": [{"order": 0, "label": "a", "kind": "broker", "rep": 1, "status": "ok",
                "excluded_reason": null, "floors": [], "series": null,
                "workload": {"mode": "produce", "batch": 1000}, "loadgen_args": [],
                "requested": null, "effective": null, "latency_us": null, "service_us": null,
                "send_lag_us": null, "rate_per_s": 1.0, "bytes_per_s": 2e6, "errors": 0,
                "timeouts": 0, "broker_cpu_s": null, "broker_cpu_pct": null, "wall_s": 1.0,
                "json": null, "interval_log": null, "broker_log": null}]
        }))
        .expect("a meta.json from before the new fields still parses");
        let csv = runs_csv(&meta.runs);
        let header = CSV_HEADER.split(',').count();
        for line in csv.lines() {
            assert_eq!(line.split(',').count(), header, "{line}");
        }
        assert!(
            csv.lines().nth(1).unwrap().contains(",1000,2.000,"),
            "{csv}"
        );
    }
}
