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
pub const PROFILES: [&str; 2] = ["baseline", "tuned"];
/// Floor variants (`loadgen floor --mode`).
pub const FLOOR_MODES: [&str; 2] = ["blocking", "busy-poll"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    /// One paragraph: the question this experiment answers.
    pub question: String,
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Which loopback floors to measure in the same run (default: both).
    #[serde(default = "default_floor_modes")]
    pub floor_modes: Vec<String>,
    /// An external cluster to target instead of starting brokers (CLI `--bootstrap` wins).
    #[serde(default)]
    pub bootstrap: Option<String>,
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
    /// Extra loadgen arguments, verbatim, appended last.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    pub label: String,
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
fn default_profile() -> String {
    "baseline".into()
}
fn default_floor_modes() -> Vec<String> {
    FLOOR_MODES.iter().map(|s| s.to_string()).collect()
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
            broker_core
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
        Ok(())
    }

    /// The floor that matches this workload: same request size and schedule.
    pub fn floor_key(&self) -> FloorKey {
        FloorKey {
            size: self.size(),
            rate: self.rate,
            inflight: self.inflight,
        }
    }
}

/// Floors are measured once per distinct (size, schedule) among the configurations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FloorKey {
    pub size: u64,
    pub rate: Option<u64>,
    pub inflight: Option<u64>,
}

impl FloorKey {
    /// A short label suffix, e.g. `1024B-closed1` or `1024B-20000ps`.
    pub fn suffix(&self) -> String {
        match self.rate {
            Some(r) => format!("{}B-{}ps", self.size, r),
            None => format!("{}B-closed{}", self.size, self.inflight.unwrap_or(1)),
        }
    }
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
        Ok(())
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
}
