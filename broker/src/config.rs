//! Startup configuration and the optimization toggles.
//!
//! One flat set of keys, settable three ways that compose in this order (later wins):
//! the profile (`baseline` | `tuned`), the TOML config file, then `--set key=value` and
//! the dedicated command-line flags. Unknown keys and bad values are errors that name
//! the key. The broker reports the *effective* configuration: where a requested value
//! could not be honoured, a [`Fallback`] says what was used instead and why.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::storage::{PrefaultOutrun, SegmentWrite};

/// Largest request frame by default: big enough for any sane produce request.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;
/// Largest record batch by default (Kafka's `message.max.bytes` is ~1 MiB; a dev broker
/// is more generous, and the limit is a setting).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Kafka's default `log.segment.bytes`. Segment files are sparse, so this costs no RSS.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// Kafka's `log.retention.hours` = 168.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `log.retention.check.interval.ms`.
pub const DEFAULT_RETENTION_CHECK_INTERVAL_MS: u64 = 5 * 60 * 1000;
/// Kafka's `log.cleaner.backoff.ms`: how often compaction looks for work.
pub const DEFAULT_LOG_CLEANER_BACKOFF_MS: u64 = 15_000;
/// Kafka's `group.initial.rebalance.delay.ms`.
pub const DEFAULT_GROUP_INITIAL_REBALANCE_DELAY_MS: u32 = 3_000;
/// Kafka's `group.min.session.timeout.ms`.
pub const DEFAULT_GROUP_MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
/// Kafka's `group.max.session.timeout.ms`.
pub const DEFAULT_GROUP_MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;
/// Kafka's `offsets.retention.minutes` (7 days).
pub const DEFAULT_OFFSETS_RETENTION_MINUTES: u64 = 7 * 24 * 60;
/// Kafka's `offsets.retention.check.interval.ms`.
pub const DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS: u64 = 600_000;
/// Largest admin API request body by default (413 above).
pub const DEFAULT_ADMIN_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest event-loop wait: a longer one would make shutdown and deadlines sluggish.
pub const MAX_LOOP_TIMEOUT_MS: u64 = 60_000;
/// Largest SO_BUSY_POLL value accepted (one second of spinning per wait is already absurd).
pub const MAX_BUSY_POLL_US: u32 = 1_000_000;
/// Shortest event-loop wait timeout. 0 used to mean "spin every loop forever" (199% CPU
/// on an idle 2-core VM); polling is now `idle_spin_us`, bounded per worker.
pub const MIN_LOOP_TIMEOUT_MS: u64 = 1;
/// Longest user-space spin after a worker's last event: past a second, spinning is
/// just burning a core.
pub const MAX_IDLE_SPIN_US: u32 = 1_000_000;

// ---- limits (docs/limits.md). Defaults a local developer never hits by accident. ----
/// Open Kafka connections across all workers by default (a dev machine's clients use
/// a handful each; `ulimit -n` is usually the tighter bound).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Open Kafka connections from one IP address by default. On loopback every client is
/// 127.0.0.1, so this matches `max_connections`; it matters on a non-loopback listener.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 10_000;
/// Requests of one connection received but not yet answered (response not yet handed
/// to the kernel, or a parked long-poll) before the broker stops reading it.
pub const DEFAULT_MAX_INFLIGHT_REQUESTS: usize = 1024;
/// Kafka's `connections.max.idle.ms`.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 600_000;
/// Kafka's client `request.timeout.ms`: a frame that has not fully arrived in this long
/// is a stalled (slowloris) client, not a slow network.
pub const DEFAULT_PARTIAL_FRAME_TIMEOUT_MS: u64 = 30_000;
/// Shortest connection timeout accepted (a timer per connection; shorter would close
/// connections between two requests of a normal client).
pub const MIN_CONN_TIMEOUT_MS: u64 = 10;
/// Topics by default.
pub const DEFAULT_MAX_TOPICS: usize = 10_000;
/// Partitions of one topic by default (also the storage format's hard ceiling).
pub const DEFAULT_MAX_PARTITIONS_PER_TOPIC: i32 = crate::storage::MAX_PARTITIONS_PER_TOPIC;

/// When acknowledged data reaches the disk: one type from configuration to storage
/// (`flush` key; defined with its parsing beside the storage that honours it). `Flush`
/// is its configuration-side name.
pub use crate::storage::FlushPolicy as Flush;

/// The I/O backend of the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoBackend {
    Epoll,
    IoUring,
    IoUringSqpoll,
}

/// How the topic-partition map is locked (`log_map` key): one type from
/// configuration to storage.
pub use crate::storage::LogMapKind;

/// How a connection buffers bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnBufferKind {
    Vec,
    Circular,
}

/// A named starting point for the toggles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Everything off, like StrikeMQ v0.1.4: epoll, global map, vec buffers, 100 ms loops.
    Baseline,
    /// The StrikeMQ v0.1.5 set: io_uring+SQPOLL, sharded map, circular buffers,
    /// 2 MiB pre-fault, 1 ms loops.
    Tuned,
    /// What measures fastest on a small VM (results/spin-vs-block): the baseline with
    /// workers that keep polling for `idle_spin_us` after their last event.
    Polling,
}

/// Every configuration key. Field docs give the default and the cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka listener. Loopback by default; port 0 picks a free port.
    pub listen: SocketAddr,
    /// REST admin listener (loopback by default).
    pub admin_listen: SocketAddr,
    /// Origin allowed to call the admin API from a browser (CORS); none = CORS off.
    pub admin_cors_origin: Option<String>,
    /// Largest admin API request body (413 above).
    pub admin_max_body_bytes: usize,
    /// Host names (besides IP literals, `localhost`, `*.localhost` and
    /// `advertised_host`) the admin API answers to; any other `Host` header gets 403.
    /// This stops DNS rebinding: a page whose domain is made to resolve to 127.0.0.1
    /// is same-origin with the API, but its requests carry its own domain as `Host`.
    /// Default: none. `["*"]` turns the check off.
    pub admin_allowed_hosts: Vec<String>,
    /// Where topics live.
    pub data_dir: PathBuf,
    /// Host reported in Metadata; defaults to the listener's IP.
    pub advertised_host: Option<String>,
    /// This broker's node id (and controller id) in Metadata.
    pub node_id: i32,
    /// Cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Create unknown topics on Metadata/Produce (a dev broker's default).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic or of CreateTopics with -1.
    pub default_partitions: i32,
    /// Segment roll size (sparse files: no RSS until written).
    pub segment_bytes: u64,
    /// Sparse offset index granularity.
    pub index_interval_bytes: u32,
    /// Largest record batch accepted (MESSAGE_TOO_LARGE above).
    pub max_message_bytes: usize,
    /// Largest request frame, bytes (default 100 MiB). A larger length prefix closes
    /// the connection before any of the body is buffered; counted as
    /// `strikemq_limit_hits_total{limit="max_frame_bytes"}`.
    pub max_frame_bytes: usize,
    /// Open Kafka connections across all workers (default 10000). The acceptor closes
    /// an extra connection at once.
    pub max_connections: usize,
    /// Open Kafka connections from one IP address (default 10000). The acceptor closes
    /// an extra connection at once.
    pub max_connections_per_ip: usize,
    /// Requests per connection received but not yet answered, parked long-polls
    /// included (default 1024). At the limit the broker stops reading that connection
    /// (backpressure, not an error) until the client reads its responses.
    pub max_inflight_requests: usize,
    /// Milliseconds without a complete request (and no parked long-poll) after which a
    /// connection is closed (default 600000, Kafka's `connections.max.idle.ms`).
    pub idle_timeout_ms: u64,
    /// Milliseconds a connection may spend with a request frame partly received and no
    /// frame completed before it is closed (default 30000). Defeats slowloris clients
    /// that trickle a header and stall, long before `idle_timeout_ms`.
    pub partial_frame_timeout_ms: u64,
    /// Topics in the broker (default 10000). CreateTopics and auto-creation beyond it
    /// answer POLICY_VIOLATION and create nothing.
    pub max_topics: usize,
    /// Partitions of one topic (default and ceiling 10000). CreateTopics,
    /// CreatePartitions and auto-creation beyond it answer INVALID_PARTITIONS.
    pub max_partitions_per_topic: i32,
    /// `never` | `always` | `<N>ms`.
    pub flush: Flush,
    /// Default `retention.ms` of every topic: a sealed segment whose newest record is
    /// older than this is deleted. Default 604800000 (7 days, Kafka's 168 h); -1 = keep.
    pub retention_ms: i64,
    /// Default `retention.bytes` per partition: the oldest sealed segments are deleted
    /// while the partition stays at least this big. Default -1 (unlimited).
    pub retention_bytes: i64,
    /// How often retention is checked, ms (one wakeup per interval). Default 300000
    /// (Kafka's 5 minutes).
    pub retention_check_interval_ms: u64,
    /// How often the compaction pass over `cleanup.policy=compact` topics runs, ms
    /// (Kafka's `log.cleaner.backoff.ms`, default 15000).
    pub log_cleaner_backoff_ms: u64,
    /// How long the first JoinGroup of an empty group waits for more members before
    /// the first generation forms, ms (Kafka's `group.initial.rebalance.delay.ms`,
    /// default 3000); each member that joins meanwhile extends it by as much, within
    /// the rebalance timeout. 0: the first generation forms at once (the tests' setting).
    pub group_initial_rebalance_delay_ms: u32,
    /// Shortest `session.timeout.ms` a member may ask for (default 6000, Kafka's
    /// `group.min.session.timeout.ms`); INVALID_SESSION_TIMEOUT below.
    pub group_min_session_timeout_ms: i32,
    /// Longest `session.timeout.ms` (default 1800000, Kafka's
    /// `group.max.session.timeout.ms`, also the ceiling); INVALID_SESSION_TIMEOUT above.
    pub group_max_session_timeout_ms: i32,
    /// How long the committed offsets of a group without members are kept, minutes
    /// (default 10080 = 7 days, Kafka's `offsets.retention.minutes`): from when the
    /// group emptied or the offset was committed, whichever is later.
    pub offsets_retention_minutes: u64,
    /// How often expired offsets are looked for, ms (default 600000, Kafka's
    /// `offsets.retention.check.interval.ms`): one wake-up of the group timer per
    /// interval while any group has offsets, none otherwise.
    pub offsets_retention_check_interval_ms: u64,
    /// KIP-848 consumer groups: session timeout of a member, ms (Kafka's
    /// `group.consumer.session.timeout.ms`, default 45000; the broker decides it).
    pub group_consumer_session_timeout_ms: u32,
    /// KIP-848 consumer groups: heartbeat interval told to members, ms (Kafka's
    /// `group.consumer.heartbeat.interval.ms`, default 5000).
    pub group_consumer_heartbeat_interval_ms: u32,
    /// Longest `transaction.timeout.ms` a transactional producer may ask for, ms
    /// (Kafka's `transaction.max.timeout.ms`, default 900000); InitProducerId answers
    /// INVALID_TRANSACTION_TIMEOUT above it.
    pub transaction_max_timeout_ms: i32,
    /// Transactional ids the transaction coordinator keeps (default 10000); at the
    /// limit the least recently used idle one is forgotten, and with none idle a new
    /// id is refused with COORDINATOR_NOT_AVAILABLE (retriable).
    pub max_transactional_ids: usize,

    // ---- the optimization matrix (DESIGN.md) ----
    /// `epoll` | `io_uring` | `io_uring_sqpoll`.
    pub io_backend: IoBackend,
    /// SQPOLL kernel thread idle time before it sleeps.
    pub sqpoll_idle_ms: u32,
    /// CPU for the SQPOLL thread (none = kernel's choice).
    pub sqpoll_cpu: Option<u32>,
    /// io_uring submission queue entries.
    pub sq_entries: u32,
    /// Registered (fixed) buffers for io_uring reads/writes.
    pub uring_registered_buffers: bool,
    /// Multishot receive with provided buffer rings.
    pub uring_multishot_recv: bool,
    /// SO_BUSY_POLL on accepted sockets, µs (0 = off). Costs CPU while waiting.
    pub busy_poll_us: u32,
    /// SO_PREFER_BUSY_POLL on accepted sockets.
    pub prefer_busy_poll: bool,
    /// User-space polling, µs (0 = off, the default): after its last event a worker
    /// keeps polling (epoll_wait with timeout 0; on io_uring a completion-queue peek)
    /// for this long before it blocks. Saves the wake-up of a halted vCPU (tens of µs
    /// on a VM) per request while traffic flows; costs one core per worker for this
    /// long after the traffic stops, then nothing. Live (`PUT /v1/config`).
    pub idle_spin_us: u32,
    /// `global` (one lock over the partition map) | `sharded`.
    pub log_map: LogMapKind,
    /// Shards of the sharded map.
    pub log_map_shards: usize,
    /// `vec` (growable, erase-from-front) | `circular` (fixed power-of-two ring).
    pub conn_buffer: ConnBufferKind,
    /// Ring size of the circular buffer.
    pub conn_buffer_bytes: usize,
    /// The pre-fault window, bytes (0 = off): a background thread keeps this many
    /// bytes ahead of each active segment's append position reserved (`fallocate`)
    /// and faulted in (MADV_POPULATE_WRITE, or touching on kernels before 5.14), and
    /// prepares the next segment before the roll, so appends take no page faults.
    /// The thread wakes only when a partition has appended half a window (idle: no
    /// wake-ups). Cost: up to this much dirty page cache and reserved disk per
    /// partition being written (given back when the segment is sealed).
    pub segment_prefault_bytes: u64,
    /// How appends reach the segment file: `mmap` (copy into the shared mapping) |
    /// `pwrite` (pwritev(2) into the file, Kafka's way). Reads are zero-copy from the
    /// mapping either way; same flush, recovery and full-disk behaviour.
    pub segment_write: SegmentWrite,
    /// With the pre-fault window on and `segment_write = mmap`, an append that runs
    /// past the populated window (the appender outran the pre-fault thread): `pwrite`
    /// (pwritev into the same page cache, no fault per page: lower tail) | `fault`
    /// (copy through the mapping and take the faults: lower median).
    pub segment_prefault_outrun: PrefaultOutrun,
    /// MADV_HUGEPAGE on segment mappings.
    pub segment_hugepages: bool,
    /// Longest wait of a worker that has connections, ms (at least 1): such a worker
    /// wakes this often even when nothing happens. A worker without connections and
    /// the acceptor wait for their eventfd only (0 wake-ups while idle).
    pub loop_timeout_ms: u64,
    /// Data-plane worker threads, each owning its connections.
    pub io_threads: usize,
    /// Pin each worker thread to a core.
    pub pin_cores: bool,
    /// TCP_NODELAY on accepted sockets.
    pub tcp_nodelay: bool,
    /// Zero-copy fetch: record bytes go from the segment mapping to the socket with a
    /// vectored send (`sendmsg`; io_uring `SendMsg`) instead of being copied into the
    /// connection's output buffer first. The response bytes are identical either way.
    /// Cost: a reference on the segment mapping per partition answered, held until
    /// sent (a segment deleted meanwhile stays mapped, and its disk space allocated,
    /// until then). With `uring_registered_buffers` the registered-buffer connections
    /// still copy into their send buffer.
    pub fetch_zero_copy: bool,
}

impl Config {
    /// The defaults of a profile.
    pub fn profile(profile: Profile) -> Config {
        let baseline = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_cors_origin: None,
            admin_max_body_bytes: DEFAULT_ADMIN_MAX_BODY_BYTES,
            admin_allowed_hosts: Vec::new(),
            data_dir: PathBuf::from("./strikemq-data"),
            advertised_host: None,
            node_id: 0,
            cluster_id: "strikemq-local-cluster".to_string(),
            auto_create_topics: true,
            default_partitions: 1,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_interval_bytes: 4096,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_inflight_requests: DEFAULT_MAX_INFLIGHT_REQUESTS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            partial_frame_timeout_ms: DEFAULT_PARTIAL_FRAME_TIMEOUT_MS,
            max_topics: DEFAULT_MAX_TOPICS,
            max_partitions_per_topic: DEFAULT_MAX_PARTITIONS_PER_TOPIC,
            flush: Flush::Never,
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: -1,
            retention_check_interval_ms: DEFAULT_RETENTION_CHECK_INTERVAL_MS,
            log_cleaner_backoff_ms: DEFAULT_LOG_CLEANER_BACKOFF_MS,
            group_initial_rebalance_delay_ms: DEFAULT_GROUP_INITIAL_REBALANCE_DELAY_MS,
            group_min_session_timeout_ms: DEFAULT_GROUP_MIN_SESSION_TIMEOUT_MS,
            group_max_session_timeout_ms: DEFAULT_GROUP_MAX_SESSION_TIMEOUT_MS,
            offsets_retention_minutes: DEFAULT_OFFSETS_RETENTION_MINUTES,
            offsets_retention_check_interval_ms: DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            transaction_max_timeout_ms: crate::txn::DEFAULT_TRANSACTION_MAX_TIMEOUT_MS,
            max_transactional_ids: crate::txn::DEFAULT_MAX_TRANSACTIONAL_IDS,
            io_backend: IoBackend::Epoll,
            sqpoll_idle_ms: 1,
            sqpoll_cpu: None,
            sq_entries: 256,
            uring_registered_buffers: false,
            uring_multishot_recv: false,
            busy_poll_us: 0,
            prefer_busy_poll: false,
            idle_spin_us: 0,
            log_map: LogMapKind::Global,
            log_map_shards: 64,
            conn_buffer: ConnBufferKind::Vec,
            conn_buffer_bytes: 128 * 1024,
            segment_prefault_bytes: 0,
            segment_write: SegmentWrite::Mmap,
            segment_prefault_outrun: PrefaultOutrun::Pwrite,
            segment_hugepages: false,
            loop_timeout_ms: 100,
            io_threads: 1,
            pin_cores: false,
            tcp_nodelay: true,
            fetch_zero_copy: false,
        };
        match profile {
            Profile::Baseline => baseline,
            Profile::Tuned => Config {
                io_backend: IoBackend::IoUringSqpoll,
                log_map: LogMapKind::Sharded,
                conn_buffer: ConnBufferKind::Circular,
                segment_prefault_bytes: 2 * 1024 * 1024,
                loop_timeout_ms: 1,
                ..baseline
            },
            Profile::Polling => Config {
                idle_spin_us: POLLING_IDLE_SPIN_US,
                ..baseline
            },
        }
    }

    /// Builds the configuration: profile defaults, then the TOML file, then `sets`
    /// (`key=value`, in order). Errors name the offending key or value.
    pub fn load(
        profile: Profile,
        file: Option<&Path>,
        sets: &[String],
    ) -> Result<Config, ConfigError> {
        let defaults = match toml::Value::try_from(Config::profile(profile)) {
            Ok(toml::Value::Table(t)) => t,
            _ => return Err(ConfigError("internal: defaults do not serialize".into())),
        };
        let mut table = defaults.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let file_table: toml::Table = text
                .parse()
                .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
            for (k, v) in file_table {
                check_known_key(&k)?;
                table.insert(k, v);
            }
        }
        for set in sets {
            let (k, v) = parse_set(set)?;
            table.insert(k, v);
        }
        let cfg: Config =
            toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    // serde's message ("invalid value: integer `-1`, expected usize")
                    // does not say which key; find it by trying each changed key alone.
                    let culprit = table.iter().find(|(k, v)| {
                        defaults.get(*k) != Some(*v) && {
                            let mut one = defaults.clone();
                            one.insert((*k).clone(), (*v).clone());
                            toml::Value::Table(one).try_into::<Config>().is_err()
                        }
                    });
                    match culprit {
                        Some((k, _)) => {
                            ConfigError(format!("invalid value for {k}: {}", e.message()))
                        }
                        None => ConfigError(e.message().to_string()),
                    }
                })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |k: &str, why: &str| Err(ConfigError(format!("invalid value for {k}: {why}")));
        if self.default_partitions < 1 {
            return bad("default_partitions", "must be at least 1");
        }
        if self.io_threads == 0 || self.io_threads > 256 {
            return bad("io_threads", "must be between 1 and 256");
        }
        if self.segment_bytes < 1024 {
            return bad("segment_bytes", "must be at least 1024");
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > i32::MAX as usize {
            return bad("max_frame_bytes", "must be between 1024 and 2^31-1");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_connections_per_ip == 0 {
            return bad("max_connections_per_ip", "must be at least 1");
        }
        if self.max_inflight_requests == 0 {
            return bad("max_inflight_requests", "must be at least 1");
        }
        if self.idle_timeout_ms < MIN_CONN_TIMEOUT_MS {
            return bad("idle_timeout_ms", "must be at least 10");
        }
        if self.partial_frame_timeout_ms < MIN_CONN_TIMEOUT_MS {
            return bad("partial_frame_timeout_ms", "must be at least 10");
        }
        if self.max_topics == 0 {
            return bad("max_topics", "must be at least 1");
        }
        if !(1..=crate::storage::MAX_PARTITIONS_PER_TOPIC).contains(&self.max_partitions_per_topic)
        {
            return bad("max_partitions_per_topic", "must be between 1 and 10000");
        }
        if self.default_partitions > self.max_partitions_per_topic {
            return bad(
                "default_partitions",
                "must be at most max_partitions_per_topic",
            );
        }
        if self.max_message_bytes == 0 {
            return bad(
                "max_message_bytes",
                "must be positive and at most max_frame_bytes",
            );
        }
        if self.retention_ms < -1 {
            return bad("retention_ms", "must be -1 (unlimited) or at least 0");
        }
        if self.retention_bytes < -1 {
            return bad("retention_bytes", "must be -1 (unlimited) or at least 0");
        }
        if self.retention_check_interval_ms == 0 {
            return bad("retention_check_interval_ms", "must be at least 1");
        }
        if self.log_cleaner_backoff_ms == 0 {
            return bad("log_cleaner_backoff_ms", "must be at least 1");
        }
        let ceiling = crate::group::limits::SESSION_TIMEOUT_MS_MAX;
        if !(1..=ceiling).contains(&self.group_min_session_timeout_ms) {
            return bad(
                "group_min_session_timeout_ms",
                "must be between 1 and 1800000",
            );
        }
        if !(self.group_min_session_timeout_ms..=ceiling)
            .contains(&self.group_max_session_timeout_ms)
        {
            return bad(
                "group_max_session_timeout_ms",
                "must be between group_min_session_timeout_ms and 1800000",
            );
        }
        if i64::from(self.group_initial_rebalance_delay_ms)
            > i64::from(crate::group::limits::REBALANCE_TIMEOUT_MS_MAX)
        {
            return bad(
                "group_initial_rebalance_delay_ms",
                "must be at most 1800000",
            );
        }
        // Past 100 years an i64 of milliseconds is still far away; beyond, a typo.
        if self.offsets_retention_minutes == 0 || self.offsets_retention_minutes > 52_560_000 {
            return bad(
                "offsets_retention_minutes",
                "must be between 1 and 52560000 (100 years)",
            );
        }
        if !(1..=1_800_000).contains(&self.group_consumer_session_timeout_ms) {
            return bad(
                "group_consumer_session_timeout_ms",
                "must be between 1 and 1800000",
            );
        }
        if self.group_consumer_heartbeat_interval_ms == 0
            || self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms
        {
            return bad(
                "group_consumer_heartbeat_interval_ms",
                "must be at least 1 and below group_consumer_session_timeout_ms",
            );
        }
        if self.transaction_max_timeout_ms <= 0 {
            return bad("transaction_max_timeout_ms", "must be at least 1");
        }
        if self.max_transactional_ids == 0 {
            return bad("max_transactional_ids", "must be at least 1");
        }
        if self.offsets_retention_check_interval_ms == 0 {
            return bad("offsets_retention_check_interval_ms", "must be at least 1");
        }
        if self.log_map_shards == 0 {
            return bad("log_map_shards", "must be at least 1");
        }
        if !self.conn_buffer_bytes.is_power_of_two() || self.conn_buffer_bytes < 4096 {
            return bad("conn_buffer_bytes", "must be a power of two, at least 4096");
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be positive");
        }
        if self.admin_max_body_bytes < 1024 {
            return bad("admin_max_body_bytes", "must be at least 1024");
        }
        if !(MIN_LOOP_TIMEOUT_MS..=MAX_LOOP_TIMEOUT_MS).contains(&self.loop_timeout_ms) {
            return bad(
                "loop_timeout_ms",
                "must be from 1 to 60000 (0 no longer spins: use idle_spin_us to poll)",
            );
        }
        if self.idle_spin_us > MAX_IDLE_SPIN_US {
            return bad("idle_spin_us", "must be at most 1000000");
        }
        if self.busy_poll_us > MAX_BUSY_POLL_US {
            return bad("busy_poll_us", "must be at most 1000000");
        }
        Ok(())
    }

    /// The host Metadata reports for this broker.
    pub fn advertised_host(&self, bound: SocketAddr) -> String {
        self.advertised_host
            .clone()
            .unwrap_or_else(|| bound.ip().to_string())
    }
}

/// `idle_spin_us` of the `polling` profile: long enough to span a client's think time
/// between closed-loop requests (tens of µs), short enough that a worker is back to
/// 0% CPU a fifth of a millisecond after the traffic stops (results/spin-vs-block).
pub const POLLING_IDLE_SPIN_US: u32 = 200;

/// A configuration error, naming the key or value at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn known_keys() -> Vec<String> {
    match toml::Value::try_from(Config::profile(Profile::Baseline)) {
        Ok(toml::Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Whether `key` is a configuration key.
pub fn is_known_key(key: &str) -> bool {
    // Option fields that are None are absent from the serialized defaults.
    const OPTIONAL_KEYS: &[&str] = &["advertised_host", "sqpoll_cpu", "admin_cors_origin"];
    OPTIONAL_KEYS.contains(&key) || known_keys().iter().any(|k| k == key)
}

fn check_known_key(key: &str) -> Result<(), ConfigError> {
    if is_known_key(key) {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "unknown configuration key {key:?} (known keys: {})",
            known_keys().join(", ")
        )))
    }
}

/// `key=value`: the value is read as a TOML value (number, bool) and otherwise as a string.
fn parse_set(set: &str) -> Result<(String, toml::Value), ConfigError> {
    let Some((k, v)) = set.split_once('=') else {
        return Err(ConfigError(format!("--set expects key=value, got {set:?}")));
    };
    let (k, v) = (k.trim(), v.trim());
    check_known_key(k)?;
    let value = format!("x = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// A requested setting that could not be honoured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    pub key: String,
    pub requested: String,
    pub effective: String,
    pub reason: String,
}

/// What the broker actually runs with, reported by the banner and `--print-config`.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveConfig {
    pub config: Config,
    pub fallbacks: Vec<Fallback>,
}

impl EffectiveConfig {
    /// The configuration as it will run: `fallbacks` say which requested values could
    /// not be honoured (`net::probe` finds them on this kernel; in-process users with
    /// no data plane pass none).
    pub fn new(config: Config, fallbacks: Vec<Fallback>) -> EffectiveConfig {
        EffectiveConfig { config, fallbacks }
    }

    /// Human-readable lines for the startup banner.
    pub fn banner_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Ok(toml::Value::Table(t)) = toml::Value::try_from(&self.config) {
            let map: BTreeMap<_, _> = t.into_iter().collect();
            for (k, v) in map {
                lines.push(format!("  {k} = {v}"));
            }
        }
        for f in &self.fallbacks {
            lines.push(format!(
                "  FALLBACK {}: requested {} -> using {} ({})",
                f.key, f.requested, f.effective, f.reason
            ));
        }
        lines
    }
}

/// The keys that `PUT /v1/config` may change while the broker runs. `flush` lives in
/// storage (`Storage::set_flush_policy`); the others are `live::LiveToggles`.
pub const LIVE_KEYS: &[&str] = &[
    "loop_timeout_ms",
    "idle_spin_us",
    "busy_poll_us",
    "prefer_busy_poll",
    "flush",
];

/// The serialized name of a unit enum value (`io_uring_sqpoll`), as configs spell it.
pub fn enum_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "loop_timeout_ms = 7\nflush = \"always\"\n").unwrap();
        let cfg = Config::load(
            Profile::Tuned,
            Some(&file),
            &["flush=50ms".into(), "io_threads=2".into()],
        )
        .unwrap();
        assert_eq!(cfg.loop_timeout_ms, 7);
        assert_eq!(cfg.flush, Flush::IntervalMs(50));
        assert_eq!(cfg.io_threads, 2);
        assert_eq!(
            cfg.segment_prefault_bytes,
            2 * 1024 * 1024,
            "from the tuned profile"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = Config::load(Profile::Baseline, None, &["no_such_key=1".into()]).unwrap_err();
        assert!(err.0.contains("no_such_key"), "{err}");
        let err = Config::load(Profile::Baseline, None, &["io_threads=0".into()]).unwrap_err();
        assert!(err.0.contains("io_threads"), "{err}");
        let err = Config::load(Profile::Baseline, None, &["flush=sometimes".into()]).unwrap_err();
        assert!(err.0.contains("sometimes"), "{err}");
        let err = Config::load(Profile::Baseline, None, &["io_backend=kqueue".into()]).unwrap_err();
        assert!(err.0.contains("kqueue"), "{err}");
        let err = Config::load(Profile::Baseline, None, &["noequals".into()]).unwrap_err();
        assert!(err.0.contains("key=value"), "{err}");
    }

    #[test]
    fn out_of_range_limits_are_refused_naming_the_key() {
        for set in [
            "max_connections=0",
            "max_connections_per_ip=0",
            "max_inflight_requests=0",
            "idle_timeout_ms=5",
            "partial_frame_timeout_ms=0",
            "max_topics=0",
            "max_partitions_per_topic=0",
            "max_partitions_per_topic=10001",
            "max_connections=-1",
        ] {
            let key = set.split('=').next().unwrap_or_default();
            let err = Config::load(Profile::Baseline, None, &[set.into()]).unwrap_err();
            assert!(err.0.contains(key), "{set}: {err}");
        }
        let cfg = Config::load(
            Profile::Baseline,
            None,
            &["max_topics=5".into(), "partial_frame_timeout_ms=250".into()],
        )
        .unwrap();
        assert_eq!((cfg.max_topics, cfg.partial_frame_timeout_ms), (5, 250));
    }

    #[test]
    fn prefault_outrun_is_set_by_name_and_a_bad_value_is_named() {
        assert_eq!(
            Config::profile(Profile::Baseline).segment_prefault_outrun,
            PrefaultOutrun::Pwrite
        );
        let cfg = Config::load(
            Profile::Tuned,
            None,
            &["segment_prefault_outrun=fault".into()],
        )
        .unwrap();
        assert_eq!(cfg.segment_prefault_outrun, PrefaultOutrun::Fault);
        assert_eq!(
            crate::storage::StorageConfig::from_config(&cfg).segment_prefault_outrun,
            PrefaultOutrun::Fault
        );
        let err = Config::load(
            Profile::Baseline,
            None,
            &["segment_prefault_outrun=sometimes".into()],
        )
        .unwrap_err();
        assert!(err.0.contains("sometimes"), "{err}");
    }

    #[test]
    fn optional_keys_can_be_set() {
        let cfg = Config::load(
            Profile::Baseline,
            None,
            &["advertised_host=kafka.local".into(), "sqpoll_cpu=1".into()],
        )
        .unwrap();
        assert_eq!(cfg.advertised_host.as_deref(), Some("kafka.local"));
        assert_eq!(cfg.sqpoll_cpu, Some(1));
    }

    #[test]
    fn loop_timeout_zero_is_refused_and_polling_is_idle_spin() {
        let err = Config::load(Profile::Baseline, None, &["loop_timeout_ms=0".into()]).unwrap_err();
        assert!(
            err.0.contains("loop_timeout_ms") && err.0.contains("idle_spin_us"),
            "{err}"
        );
        let err =
            Config::load(Profile::Baseline, None, &["idle_spin_us=1000001".into()]).unwrap_err();
        assert!(err.0.contains("idle_spin_us"), "{err}");
        let polling = Config::load(Profile::Polling, None, &[]).unwrap();
        assert_eq!(polling.idle_spin_us, POLLING_IDLE_SPIN_US);
        assert_eq!(
            Config {
                idle_spin_us: 0,
                ..polling
            },
            Config::profile(Profile::Baseline),
            "polling is the baseline plus spinning"
        );
        assert_eq!(Config::profile(Profile::Tuned).idle_spin_us, 0);
    }
}
