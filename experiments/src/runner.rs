//! Runs an experiment: configurations × repetitions, interleaved (A B C A B C …) so drift
//! on a shared machine hits every configuration alike; the loopback floors measured in
//! the same run; a fresh broker and data directory per run; the broker's *effective*
//! configuration read back and any difference from the request marked and excluded.
//!
//! No broker outlives the runner: each is spawned with PR_SET_PDEATHSIG (dies with us
//! even on SIGKILL), registered so the Ctrl-C/SIGTERM handler stops it by PID, and
//! stopped on drop. Nothing here ever signals a process it did not start.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::definition::{
    set_value_text, Configuration, Experiment, FloorKey, StorageFloorStep, Variant, Workload,
};
use crate::results::{self, Meta, Percentiles, Run, RunKind, Status};

const READY_PREFIX: &str = "strikemq ready kafka=";
/// tools/kafka/kafka.py's ready line: `kafka ready bootstrap=ADDR dir=… pids=PID …`.
const KAFKA_READY_PREFIX: &str = "kafka ready bootstrap=";
/// Apache Kafka formats its log dir and starts a JVM: it gets longer than our broker.
const KAFKA_READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Kafka's orderly shutdown (controlled shutdown, log flush) takes seconds; kafka.py
/// itself escalates to SIGKILL after 20 s.
const KAFKA_STOP_GRACE: Duration = Duration::from_secs(30);
/// The heap kafka-server-start.sh gives the broker when KAFKA_HEAP_OPTS is unset: the
/// experiments run Kafka with its own defaults (tools/kafka/kafka.py alone uses 512 MiB).
const KAFKA_DEFAULT_HEAP: &str = "-Xmx1G -Xms1G";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A broker gets this long after SIGTERM before SIGKILL (it drains for ≤ 1 s).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// loadgen may overrun its duration by this much (connect, backlog, drain) before it is killed.
const LOADGEN_SLACK: Duration = Duration::from_secs(60);
/// Pause between loadgen's exit and the idle-CPU window: the broker handles the
/// disconnects and its workers spin out `idle_spin_us` (what "falls back to 0 within
/// the budget" allows), then nothing may run.
const IDLE_SETTLE: Duration = Duration::from_millis(500);

/// PIDs of children that are still running, for the signal handler.
static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn register(pid: i32) {
    if let Ok(mut l) = LIVE.lock() {
        l.push(pid);
    }
}
fn unregister(pid: i32) {
    if let Ok(mut l) = LIVE.lock() {
        l.retain(|p| *p != pid);
    }
}

/// Ctrl-C, SIGTERM, SIGHUP: stop every child we started (by PID), then exit 130.
pub fn install_signal_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        let pids: Vec<i32> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
        eprintln!(
            "\nexperiments: interrupted; stopping {} child process(es)",
            pids.len()
        );
        for &pid in &pids {
            // SAFETY: kill(2) with a PID this process spawned and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_GRACE;
        for &pid in &pids {
            while Instant::now() < deadline && alive(pid) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(pid) {
                // SAFETY: as above; the child ignored SIGTERM for STOP_GRACE.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::process::exit(130);
    })
    .context("installing the Ctrl-C handler")
}

/// True while `pid` exists and is not a zombie (our unreaped children linger as zombies).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Ask the kernel to SIGTERM this child when the runner dies, however it dies.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Binaries to run. The broker is copied under a private name so that nobody stopping
/// "strikemq" processes by name on this shared machine hits a measurement in progress.
pub struct Binaries {
    pub broker: Option<PathBuf>,
    pub loadgen: PathBuf,
    /// `tools/kafka/kafka.py`, which starts Apache Kafka for `broker = "kafka"` configurations.
    pub kafka_script: PathBuf,
    _private: Option<tempfile_dir::Dir>,
}

mod tempfile_dir {
    //! A directory removed on drop (the runner has no tempfile dependency).
    use std::path::PathBuf;
    pub struct Dir(pub PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Binaries {
    /// Uses the given paths, or builds `strikemq` and `loadgen` in release mode once.
    pub fn prepare(
        repo: &Path,
        broker: Option<PathBuf>,
        loadgen: Option<PathBuf>,
        need_broker: bool,
    ) -> Result<Binaries> {
        let (broker, loadgen) = match (broker, loadgen) {
            (Some(b), Some(l)) => (Some(b), l),
            (b, l) => {
                let dir = build_release(repo, need_broker)?;
                (
                    b.or_else(|| need_broker.then(|| dir.join("strikemq"))),
                    l.unwrap_or_else(|| dir.join("loadgen")),
                )
            }
        };
        if !loadgen.is_file() {
            bail!("no loadgen binary at {}", loadgen.display());
        }
        let (broker, private) = match broker {
            Some(b) if need_broker => {
                if !b.is_file() {
                    bail!("no broker binary at {}", b.display());
                }
                let dir = std::env::temp_dir().join(format!("xp-bin-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let copy = dir.join("xp-strikemq");
                std::fs::copy(&b, &copy)
                    .with_context(|| format!("copying {} to {}", b.display(), copy.display()))?;
                (Some(copy), Some(tempfile_dir::Dir(dir)))
            }
            _ => (None, None),
        };
        Ok(Binaries {
            broker,
            loadgen,
            kafka_script: repo.join("tools").join("kafka").join("kafka.py"),
            _private: private,
        })
    }
}

/// `cargo build --release -p strikemq -p loadgen`; returns `<target>/release`.
fn build_release(repo: &Path, need_broker: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(repo)
        .args(["build", "--release", "-p", "loadgen"]);
    if need_broker {
        cmd.args(["-p", "strikemq"]);
    }
    eprintln!("experiments: building release binaries (cargo build --release)");
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    let out = Command::new(&cargo)
        .current_dir(repo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let target = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(target).join("release"))
}

/// A broker we started. Dropping it stops it.
struct Broker {
    child: Child,
    pid: i32,
    /// The process whose CPU and memory are the broker's: `pid` for strikemq, the JVM
    /// (a child of kafka.py) for Apache Kafka.
    measure_pid: i32,
    addr: String,
    /// From spawn to the ready line, in seconds.
    ready_s: f64,
    stop_grace: Duration,
}

/// The environment Apache Kafka runs with in an experiment (its default heap unless the
/// caller set KAFKA_HEAP_OPTS).
fn kafka_heap() -> String {
    std::env::var("KAFKA_HEAP_OPTS").unwrap_or_else(|_| KAFKA_DEFAULT_HEAP.to_string())
}

/// `kafka.py` arguments for a configuration's `set` (Kafka settings).
fn kafka_set_args(c: &Configuration) -> Vec<String> {
    let mut a = Vec::new();
    for (k, v) in &c.set {
        a.push("--set".into());
        a.push(format!("{k}={}", set_value_text(v)));
    }
    a
}

/// What Apache Kafka will run with (version, Java, heap, settings): `kafka.py settings`.
fn kafka_settings(script: &Path, c: &Configuration) -> Result<Value> {
    let out = Command::new("python3")
        .arg(script)
        .arg("settings")
        .args(kafka_set_args(c))
        .env("KAFKA_HEAP_OPTS", kafka_heap())
        .output()
        .with_context(|| format!("running {} settings", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} settings failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing kafka.py settings")
}

impl Broker {
    fn start(bin: &Path, args: &[String], log: &Path, core: Option<usize>) -> Result<Broker> {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            // Its own process group: a terminal Ctrl-C reaches the runner, which stops
            // the broker itself (and a run is never cut between measurement and stop).
            .process_group(0);
        die_with_parent(&mut cmd);
        if let Some(core) = core {
            pin_child(&mut cmd, core);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id() as i32;
        register(pid);
        let stdout = child.stdout.take().context("broker stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(READY_PREFIX) {
                    // The line may carry more fields after the address (admin=…).
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let spawned = Instant::now();
        let mut broker = Broker {
            child,
            pid,
            measure_pid: pid,
            addr: String::new(),
            ready_s: 0.0,
            stop_grace: STOP_GRACE,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) if !addr.is_empty() => broker.addr = addr,
            _ => bail!(
                "broker did not print `{READY_PREFIX}…` within {READY_TIMEOUT:?} (see {})",
                log.display()
            ),
        }
        broker.ready_s = spawned.elapsed().as_secs_f64();
        Ok(broker)
    }

    /// Apache Kafka through `kafka.py start --foreground` (formats `data`, starts the
    /// JVM, prints the ready line once Metadata lists the node; stops the JVM on SIGTERM).
    fn start_kafka(
        script: &Path,
        c: &Configuration,
        data: &Path,
        log: &Path,
        core: Option<usize>,
    ) -> Result<Broker> {
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["start", "--foreground", "--dir"])
            .arg(data)
            .args(kafka_set_args(c))
            .env("KAFKA_HEAP_OPTS", kafka_heap())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .process_group(0);
        die_with_parent(&mut cmd);
        if let Some(core) = core {
            pin_child(&mut cmd, core);
        }
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let pid = child.id() as i32;
        register(pid);
        let stdout = child.stdout.take().context("kafka.py stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(KAFKA_READY_PREFIX) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let jvm = rest
                        .split_whitespace()
                        .find_map(|f| f.strip_prefix("pids="))
                        .and_then(|p| p.split(',').next())
                        .and_then(|p| p.parse::<i32>().ok());
                    let _ = tx.send((addr, jvm));
                }
            }
        });
        let mut broker = Broker {
            child,
            pid,
            measure_pid: pid,
            addr: String::new(),
            ready_s: 0.0,
            stop_grace: KAFKA_STOP_GRACE,
        };
        match rx.recv_timeout(KAFKA_READY_TIMEOUT) {
            Ok((addr, Some(jvm))) if !addr.is_empty() => {
                broker.addr = addr;
                broker.measure_pid = jvm;
            }
            _ => bail!(
                "kafka.py did not print `{KAFKA_READY_PREFIX}…` within {KAFKA_READY_TIMEOUT:?} (see {} and {}/node1/kafka.log)",
                log.display(),
                data.display()
            ),
        }
        broker.ready_s = spawned.elapsed().as_secs_f64();
        Ok(broker)
    }

    /// SIGTERM, wait for the clean exit, SIGKILL after STOP_GRACE.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            unregister(self.pid);
            return Some(st);
        }
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let deadline = Instant::now() + self.stop_grace;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
            }
        };
        unregister(self.pid);
        status
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pin_child(cmd: &mut Command, core: usize) {
    // SAFETY: sched_setaffinity on the child itself, with a zeroed then filled cpu_set_t.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Resident set size of a process (VmRSS), in KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process in seconds (all its threads, SQPOLL's kernel thread too).
fn cpu_seconds(pid: i32) -> Option<f64> {
    schedstat_cpu_seconds(pid).or_else(|| stat_cpu_seconds(pid))
}

/// CPU time of every thread of `pid` (the SQPOLL kernel thread is one of them), in
/// nanoseconds from the scheduler (`/proc/PID/task/*/schedstat`, first field): exact,
/// where `stat`'s ticks are 10 ms samples that charge a whole tick to any thread
/// that happens to run when the timer fires. Threads that exited are missing from the
/// sum, which is why the broker is only ever measured while its threads run.
fn schedstat_cpu_seconds(pid: i32) -> Option<f64> {
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// CPU time of `pid` from `/proc/PID/stat` (utime + stime, clock ticks).
fn stat_cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / hz.max(1) as f64)
}

/// The broker's arguments for a configuration (without the data dir).
fn broker_args(c: &Configuration) -> Vec<String> {
    let mut a = vec!["--profile".to_string(), c.profile.clone()];
    for (k, v) in &c.set {
        a.push("--set".into());
        a.push(format!("{k}={}", set_value_text(v)));
    }
    a
}

/// Asks the broker binary for the effective configuration of these arguments.
fn print_config(bin: &Path, args: &[String], data_dir: &Path) -> Result<Value> {
    let out = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .arg("--print-config")
        .output()
        .with_context(|| format!("running {} --print-config", bin.display()))?;
    if !out.status.success() {
        bail!(
            "broker refused {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing --print-config JSON")
}

/// Every way the effective configuration differs from the request, with reasons.
pub fn differences(c: &Configuration, effective: &Value) -> Vec<String> {
    let mut reasons: Vec<String> = Vec::new();
    if c.broker == "kafka" {
        // Kafka's settings go to server.properties as given: nothing to fall back from.
        return reasons;
    }
    if let Some(fbs) = effective["fallbacks"].as_array() {
        for fb in fbs {
            reasons.push(format!(
                "{}: requested {}, effective {} ({})",
                fb["key"].as_str().unwrap_or("?"),
                text(&fb["requested"]),
                text(&fb["effective"]),
                fb["reason"].as_str().unwrap_or("no reason given")
            ));
        }
    }
    for (key, want) in &c.set {
        let got = &effective["config"][key.as_str()];
        let want = set_value_text(want);
        if text(got) != want && !reasons.iter().any(|r| r.starts_with(&format!("{key}:"))) {
            reasons.push(format!("{key}: requested {want}, effective {}", text(got)));
        }
    }
    reasons
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// loadgen arguments for a workload (target and output files appended by the caller).
fn loadgen_args(w: &Workload) -> Vec<String> {
    let mut a: Vec<String> = vec![w.mode().to_string()];
    let mut push = |k: &str, v: String| {
        a.push(k.to_string());
        a.push(v);
    };
    push("--size", w.size().to_string());
    if w.mode() == "fetch" {
        // fetch consumes a prepared backlog: no schedule, duration or interval log.
        if let Some(r) = w.records {
            push("--records", r.to_string());
        }
        if let Some(b) = w.batch {
            push("--batch", b.to_string());
        }
    } else {
        push("--duration-s", w.duration_s().to_string());
        push("--warmup-s", w.warmup_s().to_string());
        if let Some(i) = w.inflight {
            push("--inflight", i.to_string());
        }
        if let Some(r) = w.rate {
            push("--rate", r.to_string());
        }
        if let Some(acks) = w.acks {
            push("--acks", acks.to_string());
        }
        if w.mode() == "produce" {
            if let Some(b) = w.batch {
                push("--batch", b.to_string());
            }
        }
    }
    if let Some(d) = &w.driver {
        push("--driver", d.clone());
    }
    if let (Some(m), "fetch" | "e2e") = (w.max_bytes, w.mode()) {
        push("--max-bytes", m.to_string());
    }
    // The shape flags (multi-topic, multi-partition, multi-producer), passed through.
    for (flag, v) in [
        ("--partitions", w.partitions),
        ("--topics", w.topics),
        ("--producers", w.producers),
        ("--connections", w.connections),
        ("--consumers", w.consumers),
    ] {
        if let Some(v) = v {
            push(flag, v.to_string());
        }
    }
    if let Some(k) = &w.keys {
        push("--keys", k.clone());
    }
    if let Some(core) = w.client_core {
        push("--pin-core", core.to_string());
    }
    if let Some(wait) = &w.wait {
        push("--wait", wait.clone());
    }
    a
}

fn floor_args(mode: &str, key: &FloorKey, w: &Workload) -> Vec<String> {
    let mut a: Vec<String> = vec!["floor".into(), "--mode".into(), mode.into()];
    if key.fetch {
        a.extend(["--like".into(), "fetch".into()]);
    }
    a.extend(["--size".into(), key.size.to_string()]);
    // A fetch workload has no duration of its own: the floor uses the experiment's.
    a.extend(["--duration-s".into(), w.duration_s().to_string()]);
    a.extend(["--warmup-s".into(), w.warmup_s().to_string()]);
    if let Some(i) = key.inflight {
        a.extend(["--inflight".into(), i.to_string()]);
    }
    if let Some(r) = key.rate {
        a.extend(["--rate".into(), r.to_string()]);
    }
    if let Some(b) = key.batch {
        a.extend(["--batch".into(), b.to_string()]);
    }
    if let Some(core) = w.client_core {
        a.extend(["--pin-core".into(), core.to_string()]);
    }
    a
}

/// `loadgen floor --storage DIR` for a storage floor step.
fn storage_floor_args(f: &StorageFloorStep, dir: &Path, w: &Workload) -> Vec<String> {
    let sink = f.kind.starts_with("sink");
    let mut a: Vec<String> = vec![
        "floor".into(),
        if sink { "--sink" } else { "--storage" }.into(),
        dir.display().to_string(),
    ];
    if f.kind.ends_with("sync") {
        a.push("--sync".into());
    }
    if sink {
        // The echo floor's client loop with the produce runs' depth.
        a.extend(["--inflight".into(), w.inflight.unwrap_or(1).to_string()]);
    }
    a.extend(["--size".into(), f.key.size.to_string()]);
    if let Some(b) = f.key.batch {
        a.extend(["--batch".into(), b.to_string()]);
    }
    a.extend(["--duration-s".into(), f.duration_s.to_string()]);
    a.extend(["--warmup-s".into(), f.warmup_s.to_string()]);
    if let Some(core) = w.client_core {
        a.extend(["--pin-core".into(), core.to_string()]);
    }
    a
}

/// Where data directories of one kind go: `None` is the system temporary directory.
fn data_root(kind: Option<&str>, disk_dir: &Path) -> Result<PathBuf> {
    let pid = std::process::id();
    let root = match kind {
        None => std::env::temp_dir(),
        Some("disk") => disk_dir.to_path_buf(),
        Some("tmpfs") => PathBuf::from(TMPFS_DIR),
        Some(other) => bail!("data directory kind {other:?} is not disk or tmpfs"),
    };
    let fs = fs_type(&root);
    // A "disk" that is memory (or a "tmpfs" that is not) would label the results wrongly.
    match kind {
        Some("disk") if fs == "tmpfs" => bail!(
            "data_dirs \"disk\": {} is on tmpfs; pass --disk-dir DIR on a real disk",
            root.display()
        ),
        Some("tmpfs") if fs != "tmpfs" => {
            bail!("data_dirs \"tmpfs\": {} is {fs}, not tmpfs", root.display())
        }
        _ => {}
    }
    Ok(root.join(format!("xp-data-{pid}")))
}

/// Before a step on a real disk: write back every dirty page (sync(2)), so each
/// storage floor and each broker run starts from the same clean page cache. Without it a
/// step inherits the previous steps' gigabytes of dirty pages and meets writeback
/// throttling they caused: the rows would depend on their order in the plan.
fn settle_disk(kind: Option<&str>) {
    if kind == Some("disk") {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
    }
}

/// Where tmpfs data directories go.
const TMPFS_DIR: &str = "/dev/shm";

/// The file system type of a directory (the same code as loadgen's storage floor).
#[path = "../../loadgen/src/fs_type.rs"]
mod fs_type;
pub use fs_type::fs_type;

/// Options from the command line.
pub struct Options {
    pub repo: PathBuf,
    pub results_dir: PathBuf,
    pub bootstrap: Option<String>,
    pub broker_bin: Option<PathBuf>,
    pub loadgen_bin: Option<PathBuf>,
    /// Override the definition's repetitions (quick looks while developing).
    pub repetitions: Option<u32>,
    /// Scale every duration and warm-up (e.g. 0.5 for a shorter run; stated in meta.json).
    pub duration_scale: Option<f64>,
    /// Directory on a real disk for `data_dirs = ["disk"]` (default: REPO/target).
    pub disk_dir: Option<PathBuf>,
}

/// One scheduled step of the interleaved plan.
enum Step<'a> {
    Floor {
        mode: &'a str,
        key: FloorKey,
        label: String,
    },
    Storage(StorageFloorStep),
    Config(Box<Variant>),
}

/// `label` in pass `pass` of `passes`: suffixed only when there are several.
fn pass_label(label: &str, pass: u32, passes: u32) -> String {
    if passes > 1 {
        format!("{label}.pass{pass}")
    } else {
        label.to_string()
    }
}

/// Runs `exp` and returns the results folder.
pub fn run(mut exp: Experiment, toml_text: &str, opts: &Options) -> Result<PathBuf> {
    if let Some(r) = opts.repetitions {
        exp.repetitions = r.max(1);
    }
    if let Some(s) = opts.duration_scale {
        if s.is_nan() || s <= 0.0 {
            bail!("--duration-scale {s} must be > 0");
        }
        let scale = |w: &mut Workload| {
            w.duration_s = w.duration_s.map(|d| d * s);
            w.warmup_s = w.warmup_s.map(|d| d * s);
        };
        scale(&mut exp.workload);
        for c in &mut exp.configs {
            scale(&mut c.workload);
        }
        exp.idle_cpu_s = exp.idle_cpu_s.map(|i| i * s);
    }
    let bootstrap = opts.bootstrap.clone().or_else(|| exp.bootstrap.clone());
    let bins = Binaries::prepare(
        &opts.repo,
        opts.broker_bin.clone(),
        opts.loadgen_bin.clone(),
        bootstrap.is_none(),
    )?;
    install_signal_handler()?;

    let scratch = std::env::temp_dir().join(format!("xp-data-{}", std::process::id()));
    let _scratch_guard = tempfile_dir::Dir(scratch.clone());
    std::fs::create_dir_all(&scratch)?;
    // One scratch root per data directory kind, each removed when the runner ends.
    let disk_dir = opts
        .disk_dir
        .clone()
        .unwrap_or_else(|| opts.repo.join("target"));
    let mut roots: BTreeMap<Option<String>, PathBuf> = BTreeMap::new();
    let mut _root_guards = Vec::new();
    let kinds: Vec<Option<String>> = if exp.data_dirs.is_empty() {
        vec![None]
    } else {
        exp.data_dirs.iter().cloned().map(Some).collect()
    };
    for kind in kinds {
        let root = match &kind {
            None => scratch.clone(),
            Some(k) => {
                let r = data_root(Some(k), &disk_dir)?;
                std::fs::create_dir_all(&r).with_context(|| format!("creating {}", r.display()))?;
                _root_guards.push(tempfile_dir::Dir(r.clone()));
                r
            }
        };
        roots.insert(kind, root);
    }

    // Fail fast on a bad key or value, before any measurement: the broker names it.
    let mut effective: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(bin) = &bins.broker {
        for c in &exp.configs {
            let e = if c.broker == "kafka" {
                kafka_settings(&bins.kafka_script, c)
            } else {
                print_config(bin, &broker_args(c), &scratch.join("probe"))
            }
            .with_context(|| format!("config {:?} (nothing was measured)", c.label))?;
            let diffs = differences(c, &e);
            if !diffs.is_empty() {
                eprintln!(
                    "experiments: {:?} will be EXCLUDED from comparisons (effective config differs):",
                    c.label
                );
                for d in &diffs {
                    eprintln!("    {d}");
                }
            }
            effective.insert(c.label.clone(), e);
        }
    } else if exp.configs.iter().any(|c| !c.set.is_empty()) {
        eprintln!(
            "experiments: external cluster {}: toggle overrides are not applied, only workloads differ",
            bootstrap.as_deref().unwrap_or("?")
        );
    }

    let env = results::environment(&opts.repo);
    let (date, _) = results::utc(results::now_secs());
    let base = opts.results_dir.join(&exp.name);
    let mut out = base.join(format!("{date}-{}", env.host));
    let mut n = 2;
    while out.exists() {
        out = base.join(format!("{date}-{}-{n}", env.host));
        n += 1;
    }
    std::fs::create_dir_all(out.join("raw"))?;

    let mut plan: Vec<Step> = Vec::new();
    for key in exp.floor_keys() {
        for mode in &exp.floor_modes {
            plan.push(Step::Floor {
                mode,
                label: exp.floor_label(mode, &key),
                key: key.clone(),
            });
        }
    }
    if bootstrap.is_none() {
        for f in exp.storage_floor_steps() {
            plan.push(Step::Storage(f));
        }
    }
    for v in exp.variants() {
        plan.push(Step::Config(Box::new(v)));
    }

    let mut meta = Meta {
        experiment: exp.name.clone(),
        question: exp.question.trim().to_string(),
        environment: env,
        experiment_toml: toml_text.to_string(),
        repetitions: exp.repetitions,
        bootstrap: bootstrap.clone(),
        broker_binary: opts.broker_bin.as_ref().map(|p| p.display().to_string()),
        loadgen_binary: bins.loadgen.display().to_string(),
        runs: Vec::new(),
    };
    if let Some(s) = opts.duration_scale {
        meta.question
            .push_str(&format!("\n\n(Durations scaled by {s} for this run.)"));
    }
    let total = plan.len() as u32 * exp.repetitions * exp.passes;
    let started = Instant::now();
    eprintln!(
        "experiments: {} — {} steps ({} configurations + floors) × {} repetitions × {} passes → {}",
        exp.name,
        plan.len(),
        exp.configs.len(),
        exp.repetitions,
        exp.passes,
        out.display()
    );
    let passes = exp.passes;
    for (pass, rep) in (1..=passes).flat_map(|p| (1..=exp.repetitions).map(move |r| (p, r))) {
        for step in &plan {
            let order = meta.runs.len() as u32;
            let mut run = match step {
                Step::Floor { mode, key, label } => {
                    let args = floor_args(mode, key, &exp.workload);
                    let label = pass_label(label, pass, passes);
                    let mut run = run_floor(&bins, &out, order, &label, rep, args, key)?;
                    run.client_wait = Some(
                        if *mode == "blocking" {
                            "blocking"
                        } else {
                            "busy-poll"
                        }
                        .into(),
                    );
                    run
                }
                Step::Storage(f) => {
                    let root = &roots[&f.data_dir];
                    settle_disk(f.data_dir.as_deref());
                    run_storage_floor(&bins, &out, order, f, rep, pass, passes, root, &exp)?
                }
                Step::Config(v) => {
                    let w = exp.workload_for(&v.config);
                    let floors = exp
                        .echo_floors_for(v)
                        .iter()
                        .map(|f| pass_label(f, pass, passes))
                        .collect();
                    let mut config = v.config.clone();
                    config.label = pass_label(&config.label, pass, passes);
                    let root = &roots[&v.data_dir];
                    settle_disk(v.data_dir.as_deref());
                    let mut run = run_config(
                        &bins,
                        &out,
                        root,
                        order,
                        &config,
                        &w,
                        rep,
                        floors,
                        bootstrap.as_deref(),
                        effective.get(&v.base_label),
                        exp.idle_cpu_s,
                    )?;
                    run.client_wait = v.client_wait.clone();
                    run.data_dir = v.data_dir.clone();
                    if bootstrap.is_none() {
                        run.data_fs = Some(fs_type(root));
                    }
                    run.storage_floor = exp
                        .storage_floor_for(v)
                        .map(|f| pass_label(&f, pass, passes));
                    run
                }
            };
            if passes > 1 {
                run.pass = Some(pass);
            }
            eprintln!(
                "[{:>3}/{total}] {:>5.0}s  rep {rep} {:<28} {}",
                order + 1,
                started.elapsed().as_secs_f64(),
                run.label,
                progress_line(&run)
            );
            meta.runs.push(run);
            // Written after every run so an interrupted experiment keeps what it measured.
            meta.write(&out)?;
        }
    }
    std::fs::write(out.join("summary.md"), results::summary_markdown(&meta))?;
    crate::plots::draw_all(&out).context("drawing plots")?;
    print!("{}", results::summary_markdown(&meta));
    eprintln!("experiments: results in {}", out.display());
    Ok(out)
}

fn progress_line(r: &Run) -> String {
    match (&r.latency_us, r.status) {
        (Some(l), st) => format!(
            "p50 {:>8.1} µs  p99.9 {:>9.1} µs  {:>8.0}/s{}{}",
            l.p50,
            l.p99_9,
            r.rate_per_s.unwrap_or(0.0),
            r.broker_cpu_pct
                .map(|c| format!("  cpu {c:.0}%"))
                .unwrap_or_default(),
            if st == Status::Ok {
                String::new()
            } else {
                format!("  EXCLUDED: {}", r.excluded_reason.as_deref().unwrap_or(""))
            }
        ),
        (None, _) => format!(
            "FAILED: {}",
            r.excluded_reason.as_deref().unwrap_or("no data")
        ),
    }
}

fn file_stem(order: u32, label: &str, rep: u32) -> String {
    format!("{order:03}-{label}-r{rep}")
}

fn run_floor(
    bins: &Binaries,
    out: &Path,
    order: u32,
    label: &str,
    rep: u32,
    args: Vec<String>,
    key: &FloorKey,
) -> Result<Run> {
    let stem = file_stem(order, label, rep);
    let started = Instant::now();
    let lg = run_loadgen(bins, out, &stem, args, true, None)?;
    let mut run = blank_run(order, label, RunKind::Floor, rep);
    run.workload =
        json!({"mode": "floor", "size": key.size, "rate": key.rate, "inflight": key.inflight});
    run.wall_s = started.elapsed().as_secs_f64();
    lg.fill(&mut run);
    Ok(run)
}

#[allow(clippy::too_many_arguments)]
fn run_config(
    bins: &Binaries,
    out: &Path,
    scratch: &Path,
    order: u32,
    c: &Configuration,
    w: &Workload,
    rep: u32,
    floors: Vec<String>,
    bootstrap: Option<&str>,
    effective: Option<&Value>,
    idle_cpu_s: Option<f64>,
) -> Result<Run> {
    let stem = file_stem(order, &c.label, rep);
    let kind = if bootstrap.is_some() {
        RunKind::External
    } else {
        RunKind::Broker
    };
    let mut run = blank_run(order, &c.label, kind, rep);
    run.floors = floors;
    run.series = c.series.clone();
    run.workload = serde_json::to_value(w)?;
    run.requested = if c.broker == "kafka" {
        json!({"broker": "kafka", "set": c.set})
    } else {
        json!({"profile": c.profile, "set": c.set})
    };
    let mut reasons: Vec<String> = Vec::new();

    let mut args = loadgen_args(w);
    args.extend(["--topic".into(), format!("xp-{}-r{rep}", c.label)]);
    let data = scratch.join(&stem);
    let (mut broker, addr) = match bootstrap {
        Some(addr) => {
            run.effective =
                json!({"external": addr, "note": "toggles not applied to an external cluster"});
            (None, addr.to_string())
        }
        None => {
            let bin = bins.broker.as_ref().context("no broker binary")?;
            // Fresh data directory per run: no backlog, no warm page cache from the last.
            let _ = std::fs::remove_dir_all(&data);
            std::fs::create_dir_all(&data)?;
            let mut bargs: Vec<String> = vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--admin-listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
                data.display().to_string(),
            ];
            bargs.extend(broker_args(c));
            let eff = match effective {
                Some(e) => e.clone(),
                None if c.broker == "kafka" => kafka_settings(&bins.kafka_script, c)?,
                None => print_config(bin, &broker_args(c), &data)?,
            };
            reasons.extend(differences(c, &eff));
            run.effective = eff;
            let log_rel = format!("raw/{stem}.broker.log");
            run.broker_log = Some(log_rel.clone());
            let started = if c.broker == "kafka" {
                Broker::start_kafka(
                    &bins.kafka_script,
                    c,
                    &data,
                    &out.join(&log_rel),
                    w.broker_core,
                )
            } else {
                Broker::start(bin, &bargs, &out.join(&log_rel), w.broker_core)
            };
            let broker = match started {
                Ok(b) => b,
                Err(e) => {
                    run.status = Status::Failed;
                    run.excluded_reason = Some(format!("{e:#}"));
                    return Ok(run);
                }
            };
            // The banner is a second witness: a FALLBACK line the JSON missed still counts.
            let banner = std::fs::read_to_string(out.join(&log_rel)).unwrap_or_default();
            for line in banner.lines().filter(|l| l.contains("FALLBACK")) {
                let key = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .trim_end_matches(':');
                if !reasons
                    .iter()
                    .any(|r| !key.is_empty() && r.starts_with(key))
                {
                    reasons.push(format!("banner: {}", line.trim()));
                }
            }
            let addr = broker.addr.clone();
            run.ready_s = Some(broker.ready_s);
            (Some(broker), addr)
        }
    };
    args.extend(["--bootstrap".into(), addr]);

    let cpu0 = broker.as_ref().and_then(|b| cpu_seconds(b.measure_pid));
    let started = Instant::now();
    let lg = run_loadgen(bins, out, &stem, args, w.mode() != "fetch", Some(w))?;
    run.wall_s = started.elapsed().as_secs_f64();
    if let Some(b) = &broker {
        if let (Some(c0), Some(c1)) = (cpu0, cpu_seconds(b.measure_pid)) {
            run.broker_cpu_s = Some(c1 - c0);
            run.broker_cpu_pct = Some(100.0 * (c1 - c0) / run.wall_s.max(1e-9));
        }
        // loadgen has exited, so no client is connected: whatever the broker burns now
        // is its own idling (a spin that does not end shows here). The window starts
        // after IDLE_SETTLE: the broker first sees the disconnects and its workers
        // spin out their budget (idle_spin_us is at most 1 s; the runs use <= 1 ms).
        if idle_cpu_s.is_some() {
            std::thread::sleep(IDLE_SETTLE);
        }
        if let (Some(window_s), Some(c0)) = (idle_cpu_s, cpu_seconds(b.measure_pid)) {
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(window_s));
            run.idle_rss_kib = rss_kib(b.measure_pid);
            if let Some(c1) = cpu_seconds(b.measure_pid) {
                let elapsed = t0.elapsed().as_secs_f64();
                run.idle_cpu_s = Some(c1 - c0);
                run.idle_window_s = Some(elapsed);
                run.idle_cpu_pct = Some(100.0 * (c1 - c0) / elapsed.max(1e-9));
            }
        }
    }
    let exit = broker.as_mut().and_then(|b| b.stop());
    if broker.is_some() {
        // Written data can be gigabytes (on tmpfs: memory); the next run starts fresh.
        let _ = std::fs::remove_dir_all(&data);
    }
    lg.fill(&mut run);
    if let Some(st) = exit {
        if !st.success() && run.status == Status::Ok {
            run.status = Status::Failed;
            run.excluded_reason = Some(format!("broker exited with {st} on SIGTERM"));
        }
    }
    if !reasons.is_empty() && run.status == Status::Ok {
        run.status = Status::Fallback;
        run.excluded_reason = Some(reasons.join("; "));
    }
    Ok(run)
}

#[allow(clippy::too_many_arguments)]
fn run_storage_floor(
    bins: &Binaries,
    out: &Path,
    order: u32,
    f: &StorageFloorStep,
    rep: u32,
    pass: u32,
    passes: u32,
    root: &Path,
    exp: &Experiment,
) -> Result<Run> {
    let label = pass_label(&f.label, pass, passes);
    let stem = file_stem(order, &label, rep);
    let dir = root.join(&stem);
    std::fs::create_dir_all(&dir)?;
    let args = storage_floor_args(f, &dir, &exp.workload);
    let started = Instant::now();
    let lg = run_loadgen(bins, out, &stem, args, false, None)?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut run = blank_run(order, &label, RunKind::Floor, rep);
    run.workload = json!({
        "mode": if f.kind.starts_with("sink") { "floor-sink" } else { "floor-storage" },
        "size": f.key.size,
        "batch": f.key.batch,
        "sync": f.kind.ends_with("sync"),
        "data_dir": f.data_dir,
    });
    run.wall_s = started.elapsed().as_secs_f64();
    run.data_dir = f.data_dir.clone();
    run.data_fs = Some(fs_type(root));
    run.storage = lg.summary.as_ref().map(|s| s["storage"].clone());
    lg.fill(&mut run);
    Ok(run)
}

fn blank_run(order: u32, label: &str, kind: RunKind, rep: u32) -> Run {
    Run {
        order,
        label: label.to_string(),
        kind,
        rep,
        status: Status::Ok,
        excluded_reason: None,
        floors: Vec::new(),
        series: None,
        workload: Value::Null,
        loadgen_args: Vec::new(),
        requested: Value::Null,
        effective: Value::Null,
        latency_us: None,
        service_us: None,
        send_lag_us: None,
        rate_per_s: None,
        bytes_per_s: None,
        errors: None,
        timeouts: None,
        broker_cpu_s: None,
        broker_cpu_pct: None,
        wall_s: 0.0,
        client_wait: None,
        data_dir: None,
        data_fs: None,
        pass: None,
        idle_cpu_s: None,
        idle_window_s: None,
        idle_cpu_pct: None,
        ready_s: None,
        idle_rss_kib: None,
        storage_floor: None,
        storage: None,
        json: None,
        interval_log: None,
        broker_log: None,
    }
}

/// What one loadgen invocation produced.
struct LoadgenOutcome {
    args: Vec<String>,
    status: ExitStatus,
    summary: Option<Value>,
    json_rel: String,
    ilog_rel: Option<String>,
    stderr_tail: String,
}

impl LoadgenOutcome {
    fn fill(self, run: &mut Run) {
        run.loadgen_args = self.args;
        if let Some(s) = &self.summary {
            let pct = |k: &str| serde_json::from_value::<Percentiles>(s[k].clone()).ok();
            run.latency_us = pct("latency_us");
            run.service_us = pct("service_us");
            run.send_lag_us = pct("send_lag_us");
            run.rate_per_s = s["rate_per_s"].as_f64();
            run.bytes_per_s = s["bytes_per_s"].as_f64();
            run.errors = s["errors"].as_u64();
            run.timeouts = s["timeouts"].as_u64();
            run.json = Some(self.json_rel.clone());
        }
        run.interval_log = self.ilog_rel.clone();
        if !self.status.success() || self.summary.is_none() {
            run.status = Status::Failed;
            run.excluded_reason = Some(format!(
                "loadgen exited with {}: {}",
                self.status,
                self.stderr_tail.trim()
            ));
        }
    }
}

fn run_loadgen(
    bins: &Binaries,
    out: &Path,
    stem: &str,
    mut args: Vec<String>,
    interval_log: bool,
    w: Option<&Workload>,
) -> Result<LoadgenOutcome> {
    let json_rel = format!("raw/{stem}.json");
    let ilog_rel = interval_log.then(|| format!("raw/{stem}.hlog"));
    args.extend(["--json".into(), out.join(&json_rel).display().to_string()]);
    if let Some(il) = &ilog_rel {
        args.extend(["--interval-log".into(), out.join(il).display().to_string()]);
    }
    if args.first().map(|a| a.as_str()) != Some("fetch") {
        args.push("--no-progress".into());
    }
    if let Some(w) = w {
        args.extend(w.args.iter().cloned());
    }
    let stdout_path = out.join(format!("raw/{stem}.loadgen.txt"));
    let stderr_path = out.join(format!("raw/{stem}.loadgen.err"));
    let mut cmd = Command::new(&bins.loadgen);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bins.loadgen.display()))?;
    let pid = child.id() as i32;
    register(pid);
    let budget = w.map_or(20.0, |w| w.duration_s() + w.warmup_s());
    let deadline = Instant::now() + Duration::from_secs_f64(budget) + LOADGEN_SLACK;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    unregister(pid);
    let summary = std::fs::read_to_string(out.join(&json_rel))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
    let ilog_rel = ilog_rel.filter(|il| out.join(il).is_file());
    // Relative paths in the recorded command line so the folder is relocatable.
    let shown: Vec<String> = std::iter::once("loadgen".to_string())
        .chain(args.iter().map(|a| {
            a.strip_prefix(&format!("{}/", out.display()))
                .map(str::to_string)
                .unwrap_or_else(|| a.clone())
        }))
        .collect();
    Ok(LoadgenOutcome {
        args: shown,
        status,
        summary,
        json_rel,
        ilog_rel,
        stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallbacks_and_mismatches_are_reasons() {
        let c: Configuration = toml::from_str(
            r#"label = "x"
profile = "tuned"
set = { io_backend = "io_uring", busy_poll_us = 50, tcp_nodelay = true }"#,
        )
        .unwrap();
        let eff = json!({
            "config": {"io_backend": "epoll", "busy_poll_us": 0, "tcp_nodelay": true},
            "fallbacks": [{"key": "io_backend", "requested": "io_uring", "effective": "epoll", "reason": "not built"}]
        });
        let d = differences(&c, &eff);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("not built"));
        assert!(d[1].starts_with("busy_poll_us: requested 50, effective 0"));
        let ok = json!({"config": {"io_backend": "io_uring", "busy_poll_us": 50, "tcp_nodelay": true}, "fallbacks": []});
        assert!(differences(&c, &ok).is_empty());
    }

    #[test]
    fn fetch_has_no_schedule_flags() {
        let w = Workload {
            mode: Some("fetch".into()),
            rate: Some(10),
            records: Some(100),
            ..Default::default()
        };
        let a = loadgen_args(&w);
        assert!(a.contains(&"--records".to_string()));
        assert!(!a.contains(&"--rate".to_string()));
        assert!(!a.contains(&"--duration-s".to_string()));
    }

    #[test]
    fn client_wait_and_batch_reach_loadgen() {
        let w = Workload {
            mode: Some("produce".into()),
            wait: Some("busy-poll".into()),
            batch: Some(1000),
            ..Default::default()
        };
        let a = loadgen_args(&w).join(" ");
        assert!(a.contains("--wait busy-poll"), "{a}");
        assert!(a.contains("--batch 1000"), "{a}");
        let key = w.floor_key();
        let f = floor_args("client-busy-poll", &key, &w).join(" ");
        assert!(f.starts_with("floor --mode client-busy-poll"), "{f}");
        assert!(f.contains("--batch 1000"), "{f}");
        assert!(!loadgen_args(&Workload::default()).contains(&"--wait".to_string()));
    }

    #[test]
    fn storage_floor_arguments() {
        let step = StorageFloorStep {
            label: "floor-storage-sync.tmpfs".into(),
            key: FloorKey {
                size: 16384,
                rate: None,
                inflight: None,
                batch: Some(64),
                fetch: false,
            },
            kind: "sync".into(),
            data_dir: Some("tmpfs".into()),
            duration_s: 1.5,
            warmup_s: 0.5,
        };
        let a = storage_floor_args(&step, Path::new("/dev/shm/x"), &Workload::default());
        assert_eq!(
            a.join(" "),
            "floor --storage /dev/shm/x --sync --size 16384 --batch 64 --duration-s 1.5 --warmup-s 0.5"
        );
        let sink = StorageFloorStep {
            kind: "sink-sync".into(),
            ..step
        };
        let w = Workload {
            inflight: Some(8),
            ..Default::default()
        };
        assert_eq!(
            storage_floor_args(&sink, Path::new("/dev/shm/x"), &w).join(" "),
            "floor --sink /dev/shm/x --sync --inflight 8 --size 16384 --batch 64 --duration-s 1.5 --warmup-s 0.5"
        );
        assert_eq!(pass_label("a", 2, 2), "a.pass2");
        assert_eq!(pass_label("a", 1, 1), "a");
    }

    #[test]
    fn data_roots_are_checked_against_their_kind() {
        let shm = Path::new(TMPFS_DIR);
        if fs_type(shm) == "tmpfs" {
            assert!(data_root(Some("tmpfs"), Path::new("/")).is_ok());
            let e = data_root(Some("disk"), shm).unwrap_err();
            assert!(e.to_string().contains("--disk-dir"), "{e}");
        } else {
            let e = data_root(Some("tmpfs"), Path::new("/")).unwrap_err();
            assert!(e.to_string().contains("not tmpfs"), "{e}");
        }
        assert!(data_root(Some("nvme"), Path::new("/")).is_err());
    }
}
