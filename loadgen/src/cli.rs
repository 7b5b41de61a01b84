//! Command line: subcommands, their flags, and the validation that turns bad values into
//! usage errors (exit 2) naming the value.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::error::usage;
use crate::schedule::{Schedule, NS_PER_S};
use crate::shape::KeyDist;
use crate::wire::PollMode;

/// Largest record value accepted (the broker's default max message size is far below).
pub const MAX_SIZE_BYTES: usize = 64 * 1024 * 1024;
/// In-flight cap of an open-loop run unless --inflight says otherwise.
pub const DEFAULT_OPEN_LOOP_MAX_INFLIGHT: u32 = 10_000;
/// Most records one native Produce request may carry.
pub const MAX_BATCH_RECORDS: u32 = 100_000;
/// Most topics one run may use.
pub const MAX_TOPICS: u32 = 1_000;
/// Most partitions per topic one run may use.
pub const MAX_PARTITIONS: i32 = 10_000;
/// Most producer or consumer threads (each with its own connection) per run.
pub const MAX_CLIENT_THREADS: u32 = 1_024;
/// Longest topic name Kafka accepts.
const MAX_TOPIC_NAME_CHARS: usize = 249;
/// Longest run accepted, so that a typo (duration in ms) does not run for days.
const MAX_DURATION_S: f64 = 24.0 * 3600.0;

/// An honest latency/throughput load generator for Kafka-compatible brokers.
///
/// Closed loop (default): N requests in flight, latency from the actual send.
/// Open loop (--rate): requests at fixed intended times, latency from the intended send
/// time (coordinated-omission corrected), service time from the actual send, and the
/// client's send lag reported separately.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// TCP echo of Produce-sized frames over loopback: the physical floor
    Floor(FloorArgs),
    /// Produce records of --size bytes, one per request (or --batch per request), to the
    /// partitions of the shape
    Produce(ProduceArgs),
    /// Produce a backlog of --records, then consume it with Fetch, verifying every record
    /// arrives exactly once and in order
    Fetch(FetchArgs),
    /// Producer and long-polling consumer at once: latency from a send timestamp carried
    /// in each record to its consumption, verified exactly once and in order
    E2e(E2eArgs),
}

/// Flags shared by every timed workload.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LoadArgs {
    /// Record value size in bytes
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Measured duration in seconds (after warm-up)
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub duration_s: f64,
    /// Warm-up in seconds, excluded from the results
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    pub warmup_s: f64,
    /// Closed loop: requests in flight [default: 1]. Open loop: the in-flight cap
    /// [default: 10000]; hitting it shows as send lag
    #[arg(long)]
    pub inflight: Option<u32>,
    /// Open loop at this many messages per second (omit for closed loop)
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Write the summary as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a 1 s HdrHistogram interval log (latency, ns) to this file
    #[arg(long)]
    pub interval_log: Option<PathBuf>,
    /// Pin the client threads to this CPU core
    #[arg(long)]
    pub pin_core: Option<usize>,
    /// No progress bar even on a terminal
    #[arg(long)]
    pub no_progress: bool,
    /// Give up on a response after this many seconds (counted as a timeout)
    #[arg(long, default_value_t = 10.0)]
    pub response_timeout_s: f64,
}

/// Where to send.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TargetArgs {
    /// Any broker of the cluster, host:port
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic (auto-created through Metadata; created by CreateTopics with --partitions)
    #[arg(long, default_value = "loadgen")]
    pub topic: String,
    /// The one partition to use (without --partitions)
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub partition: i32,
    /// Use partitions 0..N of each topic, creating missing topics with N partitions
    #[arg(long, conflicts_with = "partition", allow_negative_numbers = true)]
    pub partitions: Option<i32>,
    /// Number of topics: 1 is --topic itself, N > 1 are TOPIC-0 … TOPIC-(N-1)
    #[arg(long, default_value_t = 1)]
    pub topics: u32,
    /// Producer threads, each with its own connection per partition leader (and its own
    /// librdkafka instance with --driver rdkafka); the rate is shared among them
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumer threads (fetch, e2e); partitions are dealt round-robin among them
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Connections (each with its own thread) per producer and partition leader, native
    /// driver only; --inflight applies per connection
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Record keys: none (partitions in turn), uniform:N (one of N keys at random),
    /// sequential (a new key per message); a keyed record goes to the partition its key
    /// hashes to (Kafka's murmur2)
    #[arg(long, default_value = "none", value_parser = clap::value_parser!(KeyDist))]
    pub keys: KeyDist,
    /// How the measured connections wait for answers (native driver only): blocking
    /// reads, or busy-poll (non-blocking reads in a spin loop, one core per connection
    /// burnt), the client side of `loadgen floor --mode busy-poll`
    #[arg(long, value_enum, default_value = "blocking")]
    pub wait: PollMode,
}

#[derive(Debug, Clone, Args, Serialize)]
#[command(group(clap::ArgGroup::new("file_floor").args(["storage", "sink"])))]
pub struct FloorArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// blocking: both ends sleep in the kernel; client-busy-poll: the client spins on a
    /// non-blocking socket, the echo server blocks; busy-poll: both ends spin
    #[arg(long, value_enum, default_value = "blocking")]
    pub mode: FloorMode,
    /// Topic name used to size the frames like the broker run's
    #[arg(long, default_value = "loadgen")]
    pub topic: String,
    /// Records per request frame: the same frame as `produce --batch N` (with a deep
    /// --inflight and large frames this is the TCP bandwidth floor)
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Storage floor instead of the TCP echo: write the record batch of each request
    /// (--size × --batch) sequentially into a new file in DIR (page cache), then rewrite
    /// the same bytes in place (memory already touched); MB/s of both passes
    #[arg(long, value_name = "DIR", conflicts_with = "mode")]
    pub storage: Option<PathBuf>,
    /// What the echo floor's frames are like: `produce` (requests carrying --batch ×
    /// --size records, small answers) or `fetch` (small Fetch requests, each answered with
    /// the next --batch × --size records in one batch, which the client decodes and checks
    /// exactly as `loadgen fetch` does: the Fetch round trip without a broker, one in flight)
    #[arg(long, value_enum, default_value = "produce")]
    pub like: FloorLike,
    /// TCP + storage floor: the echo floor whose server also writes each request it
    /// receives into a file in DIR (sequential write(2), page cache) before answering —
    /// the least any broker must do for a Produce: receive the bytes, store them, answer
    #[arg(long, value_name = "DIR", conflicts_with = "storage")]
    pub sink: Option<PathBuf>,
    /// With --storage or --sink: fdatasync after every write (the floor of flush=always)
    #[arg(long, requires = "file_floor")]
    pub sync: bool,
    /// With --storage: the first pass stops at this many bytes even before --warmup-s +
    /// --duration-s; with --sink: the file's size, written sequentially and then round
    /// and round. Either way at most half the free space of DIR (so a fast page cache
    /// cannot fill the disk). The default is large on purpose: a floor that stops early
    /// never reaches the dirty-page writeback a broker's run of the same length meets,
    /// and would flatter the file system
    #[arg(long, default_value_t = DEFAULT_STORAGE_MAX_BYTES, requires = "file_floor")]
    pub storage_max_bytes: u64,
}

/// Default cap of the storage and sink floors' file (before the free-space bound).
pub const DEFAULT_STORAGE_MAX_BYTES: u64 = 16 << 30;

/// The file cap a storage or sink floor in `dir` uses: `requested`, but at most half the
/// free space of `dir`'s file system (and at least one write, so the floor runs).
pub fn file_floor_cap(dir: &std::path::Path, requested: u64, write_bytes: u64) -> u64 {
    let free_half = crate::fs_type::free_bytes(dir).map_or(u64::MAX, |f| f / 2);
    requested.min(free_half).max(write_bytes)
}

/// Which request the echo floor imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloorLike {
    Produce,
    Fetch,
}

/// Who busy-polls in the echo floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloorMode {
    /// Both ends block in the kernel.
    Blocking,
    /// The client busy-polls, the server blocks (a polling client against today's broker).
    ClientBusyPoll,
    /// Both ends busy-poll.
    BusyPoll,
}

impl FloorMode {
    /// (client, server) wait modes.
    pub fn ends(self) -> (PollMode, PollMode) {
        match self {
            FloorMode::Blocking => (PollMode::Blocking, PollMode::Blocking),
            FloorMode::ClientBusyPoll => (PollMode::BusyPoll, PollMode::Blocking),
            FloorMode::BusyPoll => (PollMode::BusyPoll, PollMode::BusyPoll),
        }
    }
}

impl FloorArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.batch == 0 || self.batch > MAX_BATCH_RECORDS {
            return Err(usage(format!(
                "--batch {}: must be between 1 and {MAX_BATCH_RECORDS}",
                self.batch
            )));
        }
        if self.like == FloorLike::Fetch {
            if self.storage.is_some() || self.sink.is_some() {
                return Err(usage(
                    "--like fetch with --storage or --sink: those floors are produce floors",
                ));
            }
            if self.load.inflight.is_some_and(|i| i != 1) || self.load.rate.is_some() {
                return Err(usage(
                    "--like fetch: a consumer has one Fetch in flight (closed loop; no --inflight above 1, no --rate)",
                ));
            }
        }
        if let Some(dir) = &self.sink {
            if !dir.is_dir() {
                return Err(usage(format!("--sink {}: not a directory", dir.display())));
            }
            if self.storage_max_bytes == 0 {
                return Err(usage("--storage-max-bytes 0: must be > 0"));
            }
        }
        if let Some(dir) = &self.storage {
            if !dir.is_dir() {
                return Err(usage(format!(
                    "--storage {}: not a directory",
                    dir.display()
                )));
            }
            if self.storage_max_bytes == 0 {
                return Err(usage("--storage-max-bytes 0: must be > 0"));
            }
            if self.load.rate.is_some() {
                return Err(usage(
                    "--rate with --storage: the storage floor writes back to back (closed loop)",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// acks: 1 (leader) or -1 (all); 0 only with --driver rdkafka (no response to time)
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub acks: i16,
    /// Records per Produce request (one batch) with the native driver; with a deep
    /// --inflight this is the maximum-throughput mode. Latency is then per request
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// native: this crate's minimal client (isolates the broker); rdkafka: librdkafka,
    /// latency to the delivery callback (what applications see)
    #[arg(long, value_enum, default_value = "native")]
    pub driver: Driver,
    /// librdkafka client property key=value, repeatable (e.g. -X linger.ms=5
    /// -X compression.type=lz4); wins over --acks. linger.ms defaults to 0 here
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    Native,
    Rdkafka,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct FetchArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Consumer: native (this crate's Fetch loop, latency per Fetch request) or rdkafka
    /// (a librdkafka consumer with assign(), latency per poll that returned a record);
    /// the backlog is always produced natively
    #[arg(long, value_enum, default_value = "native")]
    pub driver: Driver,
    /// librdkafka consumer property key=value, repeatable (--driver rdkafka)
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Records in the backlog
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Record value size in bytes (at least 24: sequence number and timestamps)
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Records per Produce request while preparing the backlog
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Fetch max_bytes (and partition_max_bytes)
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_bytes: i32,
    /// Write the summary as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Pin the client thread to this CPU core
    #[arg(long)]
    pub pin_core: Option<usize>,
    /// Give up when no record arrives for this many seconds
    #[arg(long, default_value_t = 10.0)]
    pub response_timeout_s: f64,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct E2eArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Producer acks: 1 or -1
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub acks: i16,
    /// Consumer long-poll wait (Fetch max_wait_ms)
    #[arg(long, default_value_t = 500)]
    pub max_wait_ms: i32,
    /// Fetch max_bytes
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_bytes: i32,
    /// native: this crate's producer and Fetch loop; rdkafka: librdkafka producer and
    /// consumer (assign(), no group), what applications see
    #[arg(long, value_enum, default_value = "native")]
    pub driver: Driver,
    /// librdkafka property key=value for both producer and consumer, repeatable
    /// (--driver rdkafka; librdkafka ignores, with a warning, what a role does not use)
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// The validated timing of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub schedule: Schedule,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    pub response_timeout_ns: u64,
}

fn seconds_to_ns(flag: &str, v: f64, allow_zero: bool) -> anyhow::Result<u64> {
    let ok = v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) && v <= MAX_DURATION_S;
    if !ok {
        let need = if allow_zero { ">= 0" } else { "> 0" };
        return Err(usage(format!(
            "{flag} {v}: must be {need} and at most {MAX_DURATION_S} seconds"
        )));
    }
    Ok((v * NS_PER_S as f64) as u64)
}

impl LoadArgs {
    /// Checks every value; the first bad one is a usage error naming it.
    pub fn timing(&self) -> anyhow::Result<Timing> {
        if self.size == 0 || self.size > MAX_SIZE_BYTES {
            return Err(usage(format!(
                "--size {}: must be between 1 and {MAX_SIZE_BYTES} bytes",
                self.size
            )));
        }
        let duration_ns = seconds_to_ns("--duration-s", self.duration_s, false)?;
        let warmup_ns = seconds_to_ns("--warmup-s", self.warmup_s, true)?;
        let response_timeout_ns =
            seconds_to_ns("--response-timeout-s", self.response_timeout_s, false)?;
        if self.inflight == Some(0) {
            return Err(usage(
                "--inflight 0: at least one request must be in flight",
            ));
        }
        if let Some(core) = self.pin_core {
            let cores = core_affinity::get_core_ids().unwrap_or_default();
            if !cores.iter().any(|c| c.id == core) {
                return Err(usage(format!(
                    "--pin-core {core}: no such core (this machine has {})",
                    cores.len()
                )));
            }
        }
        let schedule = match self.rate {
            None => Schedule::Closed {
                inflight: self.inflight.unwrap_or(1),
            },
            Some(r) if r.is_finite() && r > 0.0 => Schedule::Open {
                rate_per_s: r,
                max_inflight: self.inflight.unwrap_or(DEFAULT_OPEN_LOOP_MAX_INFLIGHT),
            },
            Some(r) => {
                return Err(usage(format!(
                    "--rate {r}: must be a positive number of messages per second"
                )))
            }
        };
        Ok(Timing {
            schedule,
            warmup_ns,
            duration_ns,
            response_timeout_ns,
        })
    }
}

impl ProduceArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.target.validate()?;
        if self.target.consumers != 1 {
            return Err(usage(format!(
                "--consumers {}: produce has no consumers",
                self.target.consumers
            )));
        }
        if self.driver == Driver::Rdkafka {
            if self.batch != 1 {
                return Err(usage(
                    "--batch: librdkafka batches by itself (use -X linger.ms, -X batch.size)",
                ));
            }
            if !(-1..=1).contains(&self.acks) {
                return Err(usage(format!("--acks {}: must be 0, 1 or -1", self.acks)));
            }
            check_rdkafka_shape(&self.target)?;
            crate::drivers::rdkafka::parse_properties(&self.properties)?;
            return Ok(());
        }
        if self.batch == 0 || self.batch > MAX_BATCH_RECORDS {
            return Err(usage(format!(
                "--batch {}: must be between 1 and {MAX_BATCH_RECORDS}",
                self.batch
            )));
        }
        if self.batch > 1 && self.target.keys != KeyDist::None {
            return Err(usage(format!(
                "--batch {} with --keys {}: a batch goes to one partition, keys pick one per record",
                self.batch, self.target.keys
            )));
        }
        check_native_properties(&self.properties)?;
        if !matches!(self.acks, 1 | -1) {
            return Err(usage(format!(
                "--acks {}: the native driver supports 1 and -1 (acks=0 has no response to time)",
                self.acks
            )));
        }
        Ok(())
    }
}

fn check_native_properties(properties: &[String]) -> anyhow::Result<()> {
    if !properties.is_empty() {
        return Err(usage(
            "-X: client properties apply to --driver rdkafka only",
        ));
    }
    Ok(())
}

/// librdkafka keeps one connection per broker by itself, and waits its own way.
fn check_rdkafka_shape(t: &TargetArgs) -> anyhow::Result<()> {
    check_rdkafka_wait(t)?;
    if t.connections != 1 {
        return Err(usage(format!(
            "--connections {}: librdkafka keeps one connection per broker (use --producers)",
            t.connections
        )));
    }
    Ok(())
}

/// librdkafka's own threads do the socket I/O: there is no loop of ours to make spin.
fn check_rdkafka_wait(t: &TargetArgs) -> anyhow::Result<()> {
    if t.wait == PollMode::BusyPoll {
        return Err(usage(
            "--wait busy-poll: the native driver only (librdkafka does its socket I/O in \
             its own threads; use --driver native)",
        ));
    }
    Ok(())
}

fn check_value_size(size: usize) -> anyhow::Result<()> {
    let min = crate::verify::VALUE_HEADER_BYTES;
    if size < min || size > MAX_SIZE_BYTES {
        return Err(usage(format!(
            "--size {size}: verified workloads need between {min} and {MAX_SIZE_BYTES} bytes \
             (the value carries a sequence number and two timestamps)"
        )));
    }
    Ok(())
}

fn check_max_bytes(max_bytes: i32, size: usize) -> anyhow::Result<()> {
    if max_bytes <= 0 || (max_bytes as usize) < size {
        return Err(usage(format!(
            "--max-bytes {max_bytes}: must be positive and at least --size {size}"
        )));
    }
    Ok(())
}

impl FetchArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.target.validate()?;
        let t = &self.target;
        if t.producers != 1 || t.connections != 1 {
            return Err(usage(format!(
                "--producers {} --connections {}: fetch prepares its backlog with one \
                 connection per leader; use --consumers",
                t.producers, t.connections
            )));
        }
        if t.keys != KeyDist::None {
            return Err(usage(format!(
                "--keys {}: the fetch backlog is spread round-robin",
                t.keys
            )));
        }
        match self.driver {
            Driver::Native => check_native_properties(&self.properties)?,
            Driver::Rdkafka => {
                check_rdkafka_wait(&self.target)?;
                crate::drivers::rdkafka::parse_properties(&self.properties)?;
            }
        }
        check_value_size(self.size)?;
        check_max_bytes(self.max_bytes, self.size)?;
        if self.records == 0 {
            return Err(usage("--records 0: the backlog needs at least one record"));
        }
        if self.batch == 0 {
            return Err(usage(
                "--batch 0: a Produce request carries at least one record",
            ));
        }
        seconds_to_ns("--response-timeout-s", self.response_timeout_s, false)?;
        Ok(())
    }
}

impl E2eArgs {
    pub fn validate(&self) -> anyhow::Result<Timing> {
        let timing = self.load.timing()?;
        self.target.validate()?;
        check_value_size(self.load.size)?;
        check_max_bytes(self.max_bytes, self.load.size)?;
        if !matches!(self.acks, 1 | -1) {
            return Err(usage(format!(
                "--acks {}: e2e supports 1 and -1",
                self.acks
            )));
        }
        if self.max_wait_ms < 0 {
            return Err(usage(format!(
                "--max-wait-ms {}: must be >= 0",
                self.max_wait_ms
            )));
        }
        match self.driver {
            Driver::Native => check_native_properties(&self.properties)?,
            Driver::Rdkafka => {
                check_rdkafka_shape(&self.target)?;
                crate::drivers::rdkafka::parse_properties(&self.properties)?;
            }
        }
        Ok(timing)
    }
}

impl TargetArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.topics == 0 || self.topics > MAX_TOPICS {
            return Err(usage(format!(
                "--topics {}: must be between 1 and {MAX_TOPICS}",
                self.topics
            )));
        }
        // The longest derived name (TOPIC-(N-1)) must be a valid topic name too.
        let longest = self.topic_names().into_iter().map(|t| t.len()).max();
        if self.topic.is_empty() || longest.unwrap_or(0) > MAX_TOPIC_NAME_CHARS {
            return Err(usage(format!(
                "--topic {:?}: a topic name has 1 to {MAX_TOPIC_NAME_CHARS} characters \
                 (with --topics N, including the -N suffix)",
                self.topic
            )));
        }
        if let Some(n) = self.partitions {
            if !(1..=MAX_PARTITIONS).contains(&n) {
                return Err(usage(format!(
                    "--partitions {n}: must be between 1 and {MAX_PARTITIONS}"
                )));
            }
        }
        for (flag, v) in [
            ("--producers", self.producers),
            ("--consumers", self.consumers),
            ("--connections", self.connections),
        ] {
            if v == 0 || v > MAX_CLIENT_THREADS {
                return Err(usage(format!(
                    "{flag} {v}: must be between 1 and {MAX_CLIENT_THREADS}"
                )));
            }
        }
        if self.producers * self.connections > MAX_CLIENT_THREADS {
            return Err(usage(format!(
                "--producers {} × --connections {}: at most {MAX_CLIENT_THREADS} connections",
                self.producers, self.connections
            )));
        }
        if self.partition < 0 {
            return Err(usage(format!(
                "--partition {}: must be >= 0",
                self.partition
            )));
        }
        Ok(())
    }

    pub fn topic_names(&self) -> Vec<String> {
        crate::shape::topic_names(&self.topic, self.topics)
    }

    pub fn partition_spec(&self) -> crate::drivers::native::PartitionSpec {
        use crate::drivers::native::PartitionSpec;
        match self.partitions {
            Some(n) => PartitionSpec::First(n),
            None => PartitionSpec::One(self.partition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::is_usage;

    fn load(args: &[&str]) -> anyhow::Result<Timing> {
        let mut v = vec!["loadgen", "floor"];
        v.extend_from_slice(args);
        let Cmd::Floor(f) = Cli::try_parse_from(v).expect("parses").cmd else {
            panic!("not floor")
        };
        f.load.timing()
    }

    fn usage_message(args: &[&str]) -> String {
        let e = load(args).unwrap_err();
        assert!(is_usage(&e), "{e}");
        e.to_string()
    }

    #[test]
    fn defaults_are_closed_loop_one_in_flight() {
        let t = load(&[]).unwrap();
        assert_eq!(t.schedule, Schedule::Closed { inflight: 1 });
        assert_eq!(t.duration_ns, 10 * NS_PER_S);
        assert_eq!(t.warmup_ns, 2 * NS_PER_S);
    }

    #[test]
    fn rate_makes_an_open_loop() {
        let t = load(&["--rate", "20000", "--inflight", "50"]).unwrap();
        assert_eq!(
            t.schedule,
            Schedule::Open {
                rate_per_s: 20_000.0,
                max_inflight: 50
            }
        );
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_value() {
        assert!(usage_message(&["--rate", "0"]).contains("--rate 0"));
        assert!(usage_message(&["--rate", "-5"]).contains("--rate -5"));
        assert!(usage_message(&["--rate", "NaN"]).contains("--rate NaN"));
        assert!(usage_message(&["--size", "0"]).contains("--size 0"));
        assert!(usage_message(&["--duration-s", "0"]).contains("--duration-s 0"));
        assert!(usage_message(&["--warmup-s", "-1"]).contains("--warmup-s -1"));
        assert!(usage_message(&["--inflight", "0"]).contains("--inflight 0"));
        assert!(usage_message(&["--pin-core", "4096"]).contains("--pin-core 4096"));
    }

    #[test]
    fn unknown_flags_are_rejected_by_the_parser() {
        let e = Cli::try_parse_from(["loadgen", "floor", "--bogus"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    fn produce(args: &[&str]) -> ProduceArgs {
        let mut v = vec!["loadgen", "produce"];
        v.extend_from_slice(args);
        let Cmd::Produce(p) = Cli::try_parse_from(v).expect("parses").cmd else {
            panic!("not produce")
        };
        p
    }

    #[test]
    fn produce_flag_combinations() {
        assert!(produce(&["--batch", "10"]).validate().is_ok());
        for bad in [
            &["--batch", "0"][..],
            &["--driver", "rdkafka", "--batch", "5"],
            &["-X", "linger.ms=1"],
            &["--driver", "rdkafka", "-X", "linger.ms"],
            &["--partition", "-1"],
        ] {
            let e = produce(bad).validate().unwrap_err();
            assert!(is_usage(&e), "{bad:?}: {e}");
        }
        assert!(produce(&["--driver", "rdkafka", "--acks", "0"])
            .validate()
            .is_ok());
    }

    #[test]
    fn shape_flags_parse_and_bad_values_name_themselves() {
        let p = produce(&[
            "--partitions",
            "3",
            "--producers",
            "2",
            "--keys",
            "uniform:10",
            "--topics",
            "2",
        ]);
        assert!(p.validate().is_ok());
        assert_eq!(p.target.keys, KeyDist::Uniform(10));
        assert_eq!(p.target.topic_names(), vec!["loadgen-0", "loadgen-1"]);
        for (bad, needle) in [
            (&["--partitions", "0"][..], "--partitions 0"),
            (&["--partitions", "-2"], "--partitions -2"),
            (&["--producers", "0"], "--producers 0"),
            (&["--connections", "5000"], "--connections 5000"),
            (&["--topics", "0"], "--topics 0"),
            (&["--consumers", "2"], "--consumers 2"),
            (
                &["--keys", "sequential", "--batch", "4"],
                "--keys sequential",
            ),
            (
                &["--driver", "rdkafka", "--connections", "2"],
                "--connections 2",
            ),
        ] {
            let e = produce(bad).validate().unwrap_err();
            assert!(is_usage(&e), "{bad:?}: {e}");
            assert!(e.to_string().contains(needle), "{bad:?}: {e}");
        }
        let e = Cli::try_parse_from(["loadgen", "produce", "--keys", "zipf:2"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("zipf:2"), "{e}");
        let e = Cli::try_parse_from([
            "loadgen",
            "produce",
            "--partition",
            "1",
            "--partitions",
            "2",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn fetch_refuses_producer_side_shape() {
        let parse = |args: &[&str]| {
            let mut v = vec!["loadgen", "fetch"];
            v.extend_from_slice(args);
            let Cmd::Fetch(f) = Cli::try_parse_from(v).expect("parses").cmd else {
                panic!("not fetch")
            };
            f.validate()
        };
        assert!(parse(&["--partitions", "3", "--consumers", "2"]).is_ok());
        assert!(parse(&["--driver", "rdkafka", "-X", "fetch.wait.max.ms=10"]).is_ok());
        for bad in [
            &["--producers", "2"][..],
            &["--keys", "uniform:3"],
            &["-X", "a=b"],
        ] {
            assert!(is_usage(&parse(bad).unwrap_err()), "{bad:?}");
        }
    }

    #[test]
    fn acks_zero_is_refused_for_native() {
        let Cmd::Produce(p) = Cli::try_parse_from(["loadgen", "produce", "--acks", "0"])
            .unwrap()
            .cmd
        else {
            panic!("not produce")
        };
        assert!(is_usage(&p.validate().unwrap_err()));
    }

    fn parse_cmd(args: &[&str]) -> Cmd {
        let mut v = vec!["loadgen"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("parses").cmd
    }

    #[test]
    fn wait_defaults_to_blocking_and_parses_busy_poll_everywhere() {
        let Cmd::Produce(p) = parse_cmd(&["produce"]) else {
            panic!("not produce")
        };
        assert_eq!(p.target.wait, PollMode::Blocking);
        let Cmd::Produce(p) = parse_cmd(&["produce", "--wait", "busy-poll"]) else {
            panic!("not produce")
        };
        assert_eq!(p.target.wait, PollMode::BusyPoll);
        assert!(p.validate().is_ok());
        let Cmd::Fetch(f) = parse_cmd(&["fetch", "--wait", "busy-poll"]) else {
            panic!("not fetch")
        };
        assert!(f.validate().is_ok());
        let Cmd::E2e(e) = parse_cmd(&["e2e", "--wait", "busy-poll"]) else {
            panic!("not e2e")
        };
        assert!(e.validate().is_ok());
        let e = Cli::try_parse_from(["loadgen", "produce", "--wait", "spin"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("spin"), "{e}");
    }

    #[test]
    fn busy_poll_with_rdkafka_is_a_usage_error_naming_the_value() {
        let check = |r: anyhow::Result<()>| {
            let e = r.unwrap_err();
            assert!(is_usage(&e), "{e}");
            assert!(e.to_string().contains("--wait busy-poll"), "{e}");
        };
        let base = ["--driver", "rdkafka", "--wait", "busy-poll"];
        let mut v = vec!["produce"];
        v.extend(base);
        let Cmd::Produce(p) = parse_cmd(&v) else {
            panic!("not produce")
        };
        check(p.validate());
        let mut v = vec!["fetch"];
        v.extend(base);
        let Cmd::Fetch(f) = parse_cmd(&v) else {
            panic!("not fetch")
        };
        check(f.validate());
        let mut v = vec!["e2e"];
        v.extend(base);
        let Cmd::E2e(e) = parse_cmd(&v) else {
            panic!("not e2e")
        };
        check(e.validate().map(|_| ()));
        // Blocking stays fine with librdkafka.
        let Cmd::Produce(p) = parse_cmd(&["produce", "--driver", "rdkafka", "--wait", "blocking"])
        else {
            panic!("not produce")
        };
        assert!(p.validate().is_ok());
    }

    fn floor_args(args: &[&str]) -> Result<FloorArgs, clap::Error> {
        let mut v = vec!["loadgen", "floor"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| match c.cmd {
            Cmd::Floor(f) => f,
            _ => panic!("not floor"),
        })
    }

    #[test]
    fn floor_modes_name_who_busy_polls() {
        let f = floor_args(&["--mode", "client-busy-poll"]).unwrap();
        assert_eq!(f.mode.ends(), (PollMode::BusyPoll, PollMode::Blocking));
        assert_eq!(
            floor_args(&[]).unwrap().mode.ends(),
            (PollMode::Blocking, PollMode::Blocking)
        );
        assert_eq!(
            floor_args(&["--mode", "busy-poll"]).unwrap().mode.ends(),
            (PollMode::BusyPoll, PollMode::BusyPoll)
        );
    }

    #[test]
    fn storage_floor_flags() {
        let dir = std::env::temp_dir();
        let d = dir.to_str().unwrap();
        let f = floor_args(&["--storage", d, "--sync", "--batch", "64"]).unwrap();
        assert!(f.sync && f.batch == 64);
        assert!(f.validate().is_ok());
        // --sync and --storage-max-bytes need --storage; --storage has no --mode.
        assert!(floor_args(&["--sync"]).is_err());
        assert!(floor_args(&["--storage-max-bytes", "10"]).is_err());
        assert!(floor_args(&["--storage", d, "--mode", "busy-poll"]).is_err());
        // --sink is the echo floor plus a file: it takes --mode and --sync, not --storage.
        let f = floor_args(&["--sink", d, "--sync", "--mode", "busy-poll"]).unwrap();
        assert!(f.sync && f.sink.is_some() && f.validate().is_ok());
        assert!(floor_args(&["--sink", d, "--storage", d]).is_err());
        // --like fetch: one in flight, no file.
        let f = floor_args(&["--like", "fetch", "--batch", "1000"]).unwrap();
        assert!(f.like == FloorLike::Fetch && f.validate().is_ok());
        for bad in [
            vec!["--like", "fetch", "--inflight", "8"],
            vec!["--like", "fetch", "--sink", d],
            vec!["--like", "fetch", "--rate", "10"],
        ] {
            let e = floor_args(&bad).unwrap().validate().unwrap_err();
            assert!(
                is_usage(&e) && e.to_string().contains("--like fetch"),
                "{bad:?}: {e}"
            );
        }
        for (bad, needle) in [
            (
                vec!["--storage", "/nonexistent/loadgen-dir"],
                "--storage /nonexistent",
            ),
            (vec!["--batch", "0"], "--batch 0"),
            (
                vec!["--storage", d, "--storage-max-bytes", "0"],
                "--storage-max-bytes 0",
            ),
            (vec!["--storage", d, "--rate", "100"], "--rate"),
            (
                vec!["--sink", "/nonexistent/loadgen-dir"],
                "--sink /nonexistent",
            ),
            (
                vec!["--sink", d, "--storage-max-bytes", "0"],
                "--storage-max-bytes 0",
            ),
        ] {
            let e = floor_args(&bad).unwrap().validate().unwrap_err();
            assert!(is_usage(&e), "{bad:?}: {e}");
            assert!(e.to_string().contains(needle), "{bad:?}: {e}");
        }
    }
}
