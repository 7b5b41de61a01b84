//! Experiment definitions: `experiments/*.toml`, parsed and validated.
//!
//! A definition is data, in the spirit of OpenMessaging Benchmark's workload files: a
//! question, one workload (what loadgen does), repetitions, and configurations (a label,
//! a broker profile and toggle overrides, optionally workload overrides such as a rate
//! for a sweep). Everything the runner passes to loadgen comes from here, so a results
//! folder that keeps the TOML text keeps the whole setup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Workload modes loadgen knows.
pub const MODES: [&str; 3] = ["produce", "fetch", "e2e"];
/// Broker profiles.
pub const PROFILES: [&str; 3] = ["baseline", "tuned", "polling"];
/// What a configuration runs against: our broker, or Apache Kafka 4.4 started by
/// `tools/kafka/kafka.py` (one KRaft node; `set` becomes its server.properties settings).
pub const BROKERS: [&str; 2] = ["strikemq", "kafka"];
/// Floor variants (`loadgen floor --mode`): both ends blocking, the client busy-polling
/// against a blocking server, both ends busy-polling.
pub const FLOOR_MODES: [&str; 3] = ["blocking", "client-busy-poll", "busy-poll"];
/// How loadgen's measured connections wait (`loadgen --wait`).
pub const CLIENT_WAITS: [&str; 2] = ["blocking", "busy-poll"];
/// Storage floors: `write` and `sync` (`loadgen floor --storage`) write the requests'
/// batches into a file, page cache only or fdatasync per write; `sink` and `sink-sync`
/// (`loadgen floor --sink`) are the TCP + storage floor: the same frames over loopback
/// to an echo server that writes each request into a file before answering, the least
/// any broker does per Produce.
pub const STORAGE_FLOORS: [&str; 4] = ["write", "sync", "sink", "sink-sync"];
/// Where broker data directories (and storage floors) live: the repository's file system
/// (a real disk; `--disk-dir` to choose) or /dev/shm (tmpfs).
pub const DATA_DIRS: [&str; 2] = ["disk", "tmpfs"];
/// Longest idle-CPU window accepted (a typo in ms would otherwise idle for hours).
pub const MAX_IDLE_CPU_S: f64 = 600.0;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    /// One paragraph: the question this experiment answers.
    pub question: String,
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Which loopback floors to measure in the same run (default: blocking and
    /// busy-poll; `client-busy-poll` on request).
    #[serde(default = "default_floor_modes")]
    pub floor_modes: Vec<String>,
    /// An external cluster to target instead of starting brokers (CLI `--bootstrap` wins).
    #[serde(default)]
    pub bootstrap: Option<String>,
    /// Run every configuration once per client wait mode (`blocking`, `busy-poll`); the
    /// label gets `.client-<mode>`. Empty: the workload's own `wait` (default blocking).
    #[serde(default)]
    pub client_wait: Vec<String>,
    /// Run every configuration once per data directory kind (`disk`, `tmpfs`); the label
    /// gets `.<kind>`. Empty: the system temporary directory, as before.
    #[serde(default)]
    pub data_dirs: Vec<String>,
    /// Storage floors (`write`, `sync`) per produce request size and data directory.
    #[serde(default)]
    pub storage_floors: Vec<String>,
    /// Run the whole plan this many times into the same folder (labels get `.passN`), so
    /// that the first touch of memory (pass 1) is seen apart from reuse (later passes).
    #[serde(default = "one")]
    pub passes: u32,
    /// After each broker run, measure the broker's CPU over this many seconds with no
    /// client connected (the spin must end).
    #[serde(default)]
    pub idle_cpu_s: Option<f64>,
    pub workload: Workload,
    #[serde(rename = "config")]
    pub configs: Vec<Configuration>,
}

/// What loadgen does. Every field is optional so a configuration can override just a few;
/// `Workload::merged` applies an override and `validate` checks the result.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// produce | fetch | e2e
    pub mode: Option<String>,
    /// native | rdkafka (produce only)
    pub driver: Option<String>,
    pub size: Option<u64>,
    /// Closed loop: requests in flight. With `rate`: the in-flight cap.
    pub inflight: Option<u64>,
    /// Open loop at this many messages per second.
    pub rate: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup_s: Option<f64>,
    pub acks: Option<i32>,
    /// Records per Produce request (native produce, fetch backlog).
    pub batch: Option<u64>,
    /// Fetch: backlog size in records.
    pub records: Option<u64>,
    /// Fetch and e2e: the Fetch request's max_bytes (a broker still returns one whole batch).
    pub max_bytes: Option<u64>,
    /// Multi-partition / multi-producer flags, passed through as `--partitions` etc.
    pub partitions: Option<u64>,
    pub topics: Option<u64>,
    pub producers: Option<u64>,
    pub connections: Option<u64>,
    pub consumers: Option<u64>,
    /// `none`, `uniform:N` or `sequential` (loadgen `--keys`).
    pub keys: Option<String>,
    /// Pin the client threads (loadgen `--pin-core`).
    pub client_core: Option<usize>,
    /// Pin the broker process (sched_setaffinity before exec).
    pub broker_core: Option<usize>,
    /// How the client waits: `blocking` or `busy-poll` (loadgen `--wait`, native only).
    pub wait: Option<String>,
    /// Extra loadgen arguments, verbatim, appended last.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    pub label: String,
    /// `strikemq` (default) or `kafka` (Apache Kafka 4.4; `profile` does not apply and
    /// `set` holds Kafka settings, e.g. `"num.io.threads" = 8`).
    #[serde(default = "default_broker")]
    pub broker: String,
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Toggle overrides, passed as `--set key=value`.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Workload overrides for this configuration only.
    #[serde(default)]
    pub workload: Workload,
    /// Groups configurations into one curve on the latency-vs-throughput plot.
    #[serde(default)]
    pub series: Option<String>,
}

fn one() -> u32 {
    1
}
fn default_broker() -> String {
    "strikemq".into()
}
fn default_profile() -> String {
    "baseline".into()
}
/// Both ends blocking and both busy-polling, as before the mixed floor existed.
fn default_floor_modes() -> Vec<String> {
    vec!["blocking".into(), "busy-poll".into()]
}

impl Workload {
    /// `self` with every field that `over` sets replaced; `args` are appended.
    pub fn merged(&self, over: &Workload) -> Workload {
        macro_rules! pick {
            ($($f:ident),*) => { Workload { $($f: over.$f.clone().or_else(|| self.$f.clone()),)*
                args: self.args.iter().chain(&over.args).cloned().collect() } };
        }
        pick!(
            mode,
            driver,
            size,
            inflight,
            rate,
            duration_s,
            warmup_s,
            acks,
            batch,
            records,
            max_bytes,
            partitions,
            topics,
            producers,
            connections,
            consumers,
            keys,
            client_core,
            broker_core,
            wait
        )
    }

    pub fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or("produce")
    }
    pub fn size(&self) -> u64 {
        self.size.unwrap_or(1024)
    }
    pub fn duration_s(&self) -> f64 {
        self.duration_s.unwrap_or(10.0)
    }
    pub fn warmup_s(&self) -> f64 {
        self.warmup_s.unwrap_or(2.0)
    }

    fn validate(&self, what: &str) -> Result<()> {
        if !MODES.contains(&self.mode()) {
            bail!("{what}: mode {:?} is not one of {MODES:?}", self.mode());
        }
        if self.size() == 0 {
            bail!("{what}: size must be > 0");
        }
        if self.rate == Some(0) {
            bail!("{what}: rate must be > 0 (omit it for a closed loop)");
        }
        if self.inflight == Some(0) {
            bail!("{what}: inflight must be > 0");
        }
        if self.duration_s().is_nan() || self.duration_s() <= 0.0 {
            bail!("{what}: duration_s {} must be > 0", self.duration_s());
        }
        if self.warmup_s().is_nan() || self.warmup_s() < 0.0 {
            bail!("{what}: warmup_s {} must be >= 0", self.warmup_s());
        }
        if let Some(d) = &self.driver {
            if d != "native" && d != "rdkafka" {
                bail!("{what}: driver {d:?} is not native or rdkafka");
            }
        }
        if let Some(wait) = &self.wait {
            if !CLIENT_WAITS.contains(&wait.as_str()) {
                bail!("{what}: wait {wait:?} is not one of {CLIENT_WAITS:?}");
            }
            if wait == "busy-poll" && self.driver.as_deref() == Some("rdkafka") {
                bail!("{what}: wait \"busy-poll\" needs the native driver (librdkafka waits in its own threads)");
            }
        }
        Ok(())
    }

    /// Records per request when more than one (the floors send the same frame).
    pub fn batch_records(&self) -> Option<u64> {
        self.batch.filter(|&b| b > 1)
    }

    /// The floor that matches this workload: same request size and schedule.
    pub fn floor_key(&self) -> FloorKey {
        FloorKey {
            size: self.size(),
            rate: self.rate,
            // A consumer has one Fetch in flight whatever the workload says.
            inflight: if self.mode() == "fetch" {
                None
            } else {
                self.inflight
            },
            batch: self.batch_records(),
            fetch: self.mode() == "fetch",
        }
    }
}

/// Floors are measured once per distinct (size, schedule) among the configurations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FloorKey {
    pub size: u64,
    pub rate: Option<u64>,
    pub inflight: Option<u64>,
    /// Records per request frame when more than one.
    #[serde(default)]
    pub batch: Option<u64>,
    /// A fetch workload's floor: the echo server answers Fetch requests with record
    /// batches that the client decodes as `loadgen fetch` does (`loadgen floor --like fetch`).
    #[serde(default)]
    pub fetch: bool,
}

impl FloorKey {
    /// A short label suffix, e.g. `1024B-closed1`, `1024B-20000ps` or `1024Bx1000-closed8`.
    pub fn suffix(&self) -> String {
        let size = match self.batch {
            Some(b) => format!("{}Bx{b}", self.size),
            None => format!("{}B", self.size),
        };
        let kind = if self.fetch { "-fetch" } else { "" };
        match self.rate {
            Some(r) => format!("{size}-{r}ps{kind}"),
            None => format!("{size}-closed{}{kind}", self.inflight.unwrap_or(1)),
        }
    }

    /// The storage floor writes one request's records per write: no schedule.
    pub fn storage_key(&self) -> FloorKey {
        FloorKey {
            size: self.size,
            rate: None,
            inflight: None,
            batch: self.batch,
            fetch: false,
        }
    }

    /// Label suffix of a storage floor, e.g. `1024Bx1000`.
    pub fn storage_suffix(&self) -> String {
        match self.batch {
            Some(b) => format!("{}Bx{b}", self.size),
            None => format!("{}B", self.size),
        }
    }
}

/// One configuration as it is run: the definition's configuration with its expansion
/// over client wait modes and data directories applied to label and workload.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The configuration with the expanded label and the workload's `wait` set.
    pub config: Configuration,
    /// The label in the definition.
    pub base_label: String,
    pub client_wait: Option<String>,
    pub data_dir: Option<String>,
}

/// A storage floor of the plan.
#[derive(Debug, Clone)]
pub struct StorageFloorStep {
    pub label: String,
    pub key: FloorKey,
    /// `write` or `sync`.
    pub kind: String,
    pub data_dir: Option<String>,
    /// The produce workload's measured duration and warm-up, which the floor uses (a
    /// floor that wrote less than the broker runs do would meet an emptier page cache).
    pub duration_s: f64,
    pub warmup_s: f64,
}

impl Experiment {
    pub fn parse(text: &str, origin: &str) -> Result<Experiment> {
        let exp: Experiment =
            toml::from_str(text).with_context(|| format!("parsing experiment {origin}"))?;
        exp.validate()
            .with_context(|| format!("experiment {origin}"))?;
        Ok(exp)
    }

    fn validate(&self) -> Result<()> {
        if self.name.is_empty() || !self.name.chars().all(label_char) {
            bail!("name {:?} must be non-empty [a-z0-9._-]", self.name);
        }
        if self.repetitions == 0 {
            bail!("repetitions must be >= 1");
        }
        if self.configs.is_empty() {
            bail!("no [[config]]");
        }
        for m in &self.floor_modes {
            if !FLOOR_MODES.contains(&m.as_str()) {
                bail!("floor mode {m:?} is not one of {FLOOR_MODES:?}");
            }
        }
        for w in &self.client_wait {
            if !CLIENT_WAITS.contains(&w.as_str()) {
                bail!("client_wait {w:?} is not one of {CLIENT_WAITS:?}");
            }
        }
        for d in &self.data_dirs {
            if !DATA_DIRS.contains(&d.as_str()) {
                bail!("data_dirs {d:?} is not one of {DATA_DIRS:?}");
            }
        }
        for f in &self.storage_floors {
            if !STORAGE_FLOORS.contains(&f.as_str()) {
                bail!("storage_floors {f:?} is not one of {STORAGE_FLOORS:?}");
            }
        }
        if self.passes == 0 {
            bail!("passes must be >= 1");
        }
        if let Some(s) = self.idle_cpu_s {
            if !(s > 0.0 && s <= MAX_IDLE_CPU_S) {
                bail!("idle_cpu_s {s} must be > 0 and at most {MAX_IDLE_CPU_S}");
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.configs {
            if c.label.is_empty() || !c.label.chars().all(label_char) {
                bail!("config label {:?} must be non-empty [a-z0-9._-]", c.label);
            }
            if c.label.starts_with("floor") {
                bail!("config label {:?}: `floor*` is reserved", c.label);
            }
            if !seen.insert(&c.label) {
                bail!("config label {:?} appears twice", c.label);
            }
            if !BROKERS.contains(&c.broker.as_str()) {
                bail!(
                    "config {:?}: broker {:?} is not one of {BROKERS:?}",
                    c.label,
                    c.broker
                );
            }
            if c.broker == "kafka" && c.profile != default_profile() {
                bail!(
                    "config {:?}: profile {:?} is a strikemq profile; a kafka configuration takes `set` only",
                    c.label,
                    c.profile
                );
            }
            if !PROFILES.contains(&c.profile.as_str()) {
                bail!(
                    "config {:?}: profile {:?} is not one of {PROFILES:?}",
                    c.label,
                    c.profile
                );
            }
            self.workload_for(c)
                .validate(&format!("config {:?}", c.label))?;
        }
        // Expanded labels must stay distinct too (and every expanded workload valid).
        let mut seen = std::collections::BTreeSet::new();
        for v in self.variants() {
            if !seen.insert(v.config.label.clone()) {
                bail!("expanded label {:?} appears twice", v.config.label);
            }
            self.workload_for(&v.config)
                .validate(&format!("config {:?}", v.config.label))?;
        }
        Ok(())
    }

    /// Every configuration × client wait mode × data directory, in definition order.
    pub fn variants(&self) -> Vec<Variant> {
        let waits: Vec<Option<&String>> = if self.client_wait.is_empty() {
            vec![None]
        } else {
            self.client_wait.iter().map(Some).collect()
        };
        let dirs: Vec<Option<&String>> = if self.data_dirs.is_empty() {
            vec![None]
        } else {
            self.data_dirs.iter().map(Some).collect()
        };
        let mut out = Vec::new();
        for c in &self.configs {
            for d in &dirs {
                for w in &waits {
                    let mut config = c.clone();
                    if let Some(w) = w {
                        config.label = format!("{}.client-{w}", config.label);
                        config.workload.wait = Some((*w).clone());
                    }
                    if let Some(d) = d {
                        config.label = format!("{}.{d}", config.label);
                    }
                    // librdkafka waits in its own threads: no wait mode of ours to name.
                    let w = self.workload_for(&config);
                    let client_wait = match w.driver.as_deref() {
                        Some("rdkafka") => None,
                        _ => w.wait.or_else(|| Some("blocking".into())),
                    };
                    out.push(Variant {
                        base_label: c.label.clone(),
                        client_wait,
                        data_dir: d.cloned(),
                        config,
                    });
                }
            }
        }
        out
    }

    /// Storage floors: one per distinct produce request size × data directory × kind.
    pub fn storage_floor_steps(&self) -> Vec<StorageFloorStep> {
        let mut keys: Vec<(FloorKey, f64, f64)> = Vec::new();
        for c in &self.configs {
            let w = self.workload_for(c);
            if w.mode() == "produce" {
                let k = w.floor_key().storage_key();
                if !keys.iter().any(|(x, _, _)| *x == k) {
                    keys.push((k, w.duration_s(), w.warmup_s()));
                }
            }
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let dirs: Vec<Option<&String>> = if self.data_dirs.is_empty() {
            vec![None]
        } else {
            self.data_dirs.iter().map(Some).collect()
        };
        let mut out = Vec::new();
        for (key, duration_s, warmup_s) in &keys {
            for d in &dirs {
                for kind in &self.storage_floors {
                    let mut label = format!("floor-storage-{kind}");
                    if keys.len() > 1 {
                        label = format!("{label}-{}", key.storage_suffix());
                    }
                    if let Some(d) = d {
                        label = format!("{label}.{d}");
                    }
                    out.push(StorageFloorStep {
                        label,
                        key: key.clone(),
                        kind: kind.clone(),
                        data_dir: d.cloned(),
                        duration_s: *duration_s,
                        warmup_s: *warmup_s,
                    });
                }
            }
        }
        out
    }

    /// The storage floor that bounds a variant: `sync` for `flush = "always"`, else
    /// `write`; same request size and data directory. None when not measured.
    pub fn storage_floor_for(&self, v: &Variant) -> Option<String> {
        let w = self.workload_for(&v.config);
        if w.mode() != "produce" {
            return None;
        }
        let always = v
            .config
            .set
            .get("flush")
            .is_some_and(|f| set_value_text(f) == "always");
        let kind = if always { "sync" } else { "write" };
        self.storage_floor_of_kind(v, kind)
    }

    fn storage_floor_of_kind(&self, v: &Variant, kind: &str) -> Option<String> {
        let w = self.workload_for(&v.config);
        if w.mode() != "produce" {
            return None;
        }
        let key = w.floor_key().storage_key();
        self.storage_floor_steps()
            .into_iter()
            .find(|s| s.kind == kind && s.key == key && s.data_dir == v.data_dir)
            .map(|s| s.label)
    }

    /// The echo floors of a variant, the one matching its client's wait first: a
    /// blocking client against the both-blocking floor, a busy-polling one against the
    /// both-busy-poll floor, then the client-busy-poll one.
    pub fn echo_floors_for(&self, v: &Variant) -> Vec<String> {
        let order: [&str; 3] = if v.client_wait.as_deref() == Some("busy-poll") {
            ["busy-poll", "client-busy-poll", "blocking"]
        } else {
            ["blocking", "client-busy-poll", "busy-poll"]
        };
        let key = self.workload_for(&v.config).floor_key();
        order
            .iter()
            .filter(|m| self.floor_modes.iter().any(|x| x == *m))
            .map(|m| self.floor_label(m, &key))
            .collect()
    }

    pub fn workload_for(&self, c: &Configuration) -> Workload {
        self.workload.merged(&c.workload)
    }

    /// Distinct floors needed by the configurations, in a stable order.
    pub fn floor_keys(&self) -> Vec<FloorKey> {
        let mut keys: Vec<FloorKey> = self
            .configs
            .iter()
            .map(|c| self.workload_for(c).floor_key())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The floor label for a mode and key; the key suffix only when there are several.
    pub fn floor_label(&self, mode: &str, key: &FloorKey) -> String {
        if self.floor_keys().len() > 1 {
            format!("floor-{mode}-{}", key.suffix())
        } else {
            format!("floor-{mode}")
        }
    }
}

fn label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

/// `--set key=value` text for a TOML value (strings unquoted).
pub fn set_value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The directory holding the experiment TOML files.
pub fn definitions_dir(repo: &Path) -> PathBuf {
    repo.join("experiments")
}

/// Loads `NAME` (a name under `experiments/` or a path to a .toml file).
pub fn load(repo: &Path, name: &str) -> Result<(Experiment, String)> {
    let path = if name.ends_with(".toml") {
        PathBuf::from(name)
    } else {
        definitions_dir(repo).join(format!("{name}.toml"))
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no experiment {name:?} (reading {}); `experiments list` shows them",
            path.display()
        )
    })?;
    let exp = Experiment::parse(&text, &path.display().to_string())?;
    Ok((exp, text))
}

/// Every definition, sorted by name.
pub fn load_all(repo: &Path) -> Result<Vec<Experiment>> {
    let dir = definitions_dir(repo);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        // The crate's own manifest shares the folder with the definitions.
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().is_some_and(|n| n != "Cargo.toml")
        {
            let text = std::fs::read_to_string(&path)?;
            out.push(Experiment::parse(&text, &path.display().to_string())?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
name = "t"
question = "q"
[workload]
size = 100
duration_s = 1
[[config]]
label = "a"
[[config]]
label = "b"
profile = "tuned"
set = { io_backend = "epoll", busy_poll_us = 50 }
workload = { rate = 1000 }
"#;

    #[test]
    fn overrides_merge_and_floors_dedupe() {
        let e = Experiment::parse(MIN, "min").unwrap();
        let b = e.workload_for(&e.configs[1]);
        assert_eq!(b.rate, Some(1000));
        assert_eq!(b.size(), 100);
        assert_eq!(e.floor_keys().len(), 2);
        assert_eq!(
            set_value_text(&e.configs[1].set["busy_poll_us"]),
            "50".to_string()
        );
        assert_eq!(set_value_text(&e.configs[1].set["io_backend"]), "epoll");
    }

    #[test]
    fn kafka_configurations_take_settings_not_profiles() {
        let k = format!(
            "{MIN}[[config]]\nlabel = \"k\"\nbroker = \"kafka\"\nset = {{ \"num.io.threads\" = 8 }}\n"
        );
        let e = Experiment::parse(&k, "k").unwrap();
        assert_eq!(e.configs[0].broker, "strikemq");
        assert_eq!(e.configs[2].broker, "kafka");
        assert_eq!(set_value_text(&e.configs[2].set["num.io.threads"]), "8");
        let bad = k.replace("broker = \"kafka\"", "broker = \"redpanda\"");
        let err = format!("{:#}", Experiment::parse(&bad, "bad").unwrap_err());
        assert!(err.contains("redpanda"), "{err}");
        let profiled = k.replace(
            "broker = \"kafka\"",
            "broker = \"kafka\"\nprofile = \"tuned\"",
        );
        let err = format!("{:#}", Experiment::parse(&profiled, "p").unwrap_err());
        assert!(err.contains("takes `set` only"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let bad = MIN.replace("size = 100", "size = 0");
        let err = format!("{:#}", Experiment::parse(&bad, "x").unwrap_err());
        assert!(err.contains("size must be > 0"), "{err}");
        let bad = MIN.replace("profile = \"tuned\"", "profile = \"fast\"");
        let err = format!("{:#}", Experiment::parse(&bad, "x").unwrap_err());
        assert!(err.contains("\"fast\""), "{err}");
        let bad = MIN.replace("label = \"b\"", "label = \"a\"");
        assert!(Experiment::parse(&bad, "x").is_err());
    }

    const EXPANDED: &str = r#"
name = "t"
question = "q"
client_wait = ["blocking", "busy-poll"]
data_dirs = ["disk", "tmpfs"]
storage_floors = ["write", "sync"]
floor_modes = ["blocking", "client-busy-poll", "busy-poll"]
passes = 2
idle_cpu_s = 10
[workload]
size = 1024
batch = 1000
inflight = 8
[[config]]
label = "never"
set = { flush = "never" }
[[config]]
label = "always"
set = { flush = "always" }
[[config]]
label = "fetch"
workload = { mode = "fetch", inflight = 1 }
"#;

    #[test]
    fn expansion_over_client_wait_and_data_dirs_names_every_variant() {
        let e = Experiment::parse(EXPANDED, "x").unwrap();
        let v = e.variants();
        let labels: Vec<&str> = v.iter().map(|v| v.config.label.as_str()).collect();
        assert_eq!(v.len(), 3 * 2 * 2);
        assert_eq!(
            labels[..4],
            [
                "never.client-blocking.disk",
                "never.client-busy-poll.disk",
                "never.client-blocking.tmpfs",
                "never.client-busy-poll.tmpfs"
            ]
        );
        let busy = &v[1];
        assert_eq!(busy.base_label, "never");
        assert_eq!(busy.client_wait.as_deref(), Some("busy-poll"));
        assert_eq!(busy.data_dir.as_deref(), Some("disk"));
        assert_eq!(
            e.workload_for(&busy.config).wait.as_deref(),
            Some("busy-poll")
        );
        // Without expansion a variant is the configuration itself, client blocking.
        let min = Experiment::parse(MIN, "min").unwrap();
        assert_eq!(min.floor_modes, ["blocking", "busy-poll"], "default floors");
        let plain = min.variants();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[0].config.label, "a");
        assert_eq!(plain[0].client_wait.as_deref(), Some("blocking"));
        assert_eq!(plain[0].data_dir, None);
        let rdk = MIN.replace(
            "workload = { rate = 1000 }",
            "workload = { driver = \"rdkafka\" }",
        );
        let rdk = Experiment::parse(&rdk, "rdk").unwrap().variants();
        assert_eq!(rdk[1].client_wait, None, "librdkafka waits its own way");
    }

    #[test]
    fn floors_follow_the_client_wait_and_the_flush_mode() {
        let e = Experiment::parse(EXPANDED, "x").unwrap();
        let v = e.variants();
        // Two floor keys (produce 8 in flight, fetch 1 in flight): suffixed labels.
        assert_eq!(
            e.echo_floors_for(&v[0])[0],
            "floor-blocking-1024Bx1000-closed8"
        );
        assert_eq!(
            e.echo_floors_for(&v[1]),
            [
                "floor-busy-poll-1024Bx1000-closed8",
                "floor-client-busy-poll-1024Bx1000-closed8",
                "floor-blocking-1024Bx1000-closed8"
            ]
        );
        // Storage floors only for produce sizes: one key × 2 dirs × 2 kinds.
        let steps = e.storage_floor_steps();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0].label, "floor-storage-write.disk");
        assert_eq!(
            e.storage_floor_for(&v[0]).unwrap(),
            "floor-storage-write.disk"
        );
        let always_tmpfs = v
            .iter()
            .find(|x| x.config.label == "always.client-blocking.tmpfs")
            .unwrap();
        assert_eq!(
            e.storage_floor_for(always_tmpfs).unwrap(),
            "floor-storage-sync.tmpfs"
        );
        let fetch = v.iter().find(|x| x.base_label == "fetch").unwrap();
        assert_eq!(e.storage_floor_for(fetch), None);
        // A fetch's floor is the fetch-like echo (the client decodes the same batches),
        // one in flight whatever the workload's inflight says.
        assert_eq!(
            e.echo_floors_for(fetch)[0],
            "floor-blocking-1024Bx1000-closed1-fetch"
        );
        // A batch of one is no batch: the floors of existing experiments keep their keys.
        let w = Workload {
            batch: Some(1),
            ..Default::default()
        };
        assert_eq!(w.floor_key().batch, None);
        assert_eq!(w.floor_key().suffix(), "1024B-closed1");
    }

    #[test]
    fn bad_expansion_values_are_named() {
        for (from, to, needle) in [
            (r#""busy-poll"]"#, r#""spin"]"#, "\"spin\""),
            (r#"["disk", "tmpfs"]"#, r#"["nvme"]"#, "\"nvme\""),
            (r#"["write", "sync"]"#, r#"["fsync"]"#, "\"fsync\""),
            ("passes = 2", "passes = 0", "passes"),
            ("idle_cpu_s = 10", "idle_cpu_s = 0", "idle_cpu_s"),
            (
                r#"mode = "fetch", inflight = 1"#,
                r#"mode = "fetch", inflight = 1, driver = "rdkafka""#,
                "busy-poll",
            ),
        ] {
            let bad = EXPANDED.replacen(from, to, 1);
            assert_ne!(bad, EXPANDED, "{from}");
            let err = format!("{:#}", Experiment::parse(&bad, "x").unwrap_err());
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn the_committed_definitions_parse_and_expand() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let all = load_all(repo).unwrap();
        let spin = all.iter().find(|e| e.name == "spin-vs-block").unwrap();
        assert_eq!(spin.variants().len(), 14);
        assert_eq!(spin.floor_modes.len(), 3);
        assert!(spin.idle_cpu_s.is_some());
        let tp = all.iter().find(|e| e.name == "throughput").unwrap();
        assert_eq!(tp.variants().len(), 144); // 72 configurations x (disk, tmpfs): 48 produce, 12 fetch, 12 zero-copy fetch
        assert_eq!(tp.passes, 2);
        assert_eq!(tp.storage_floor_steps().len(), 2 * 2 * 4);
    }
}
