//! The group coordinator: classic consumer groups (JoinGroup/SyncGroup/Heartbeat/
//! LeaveGroup) and committed offsets.
//!
//! Knows neither sockets nor the Kafka wire format: the handlers in `broker::groups`
//! decode requests, call the [`Coordinator`] and encode what it returns. A JoinGroup or
//! SyncGroup that must wait for the rest of the group gets a [`Slot`]; the coordinator
//! fills it when the rebalance moves on and calls the waker so the data plane answers.
//!
//! Timeouts are enforced by one timer thread that sleeps on a condvar until the
//! nearest deadline (a session, a pending member id, a rebalance). With no members
//! anywhere it sleeps without a timeout: an idle broker spends no CPU on groups.
//!
//! Group membership lives in memory only (after a restart groups start empty, as in
//! Kafka); committed offsets are persisted by [`offsets::OffsetStore`] before a commit
//! is acknowledged.

mod consumer;
pub mod offsets;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use consumer::ConsumerGroup;
pub use consumer::{
    Assignment, Assignor, ConsumerState, HeartbeatParams, HeartbeatResult, Topics, REGEX_BYTES_MAX,
    SUBSCRIBED_TOPICS_MAX,
};
pub use offsets::{Committed, OffsetStore, PartitionKey};
use state::Group;
pub use state::{GroupState, JoinMember, JoinParams, JoinResult, Slot, SyncParams, SyncResult};

use crate::storage::FlushPolicy;

/// Kafka error codes of the group APIs (the one enum: `protocol::error`).
pub use crate::protocol::error::code;

/// Bounds on what clients can make the coordinator keep.
pub mod limits {
    /// Longest group id (bytes); longer ones get INVALID_GROUP_ID.
    pub const GROUP_ID_BYTES_MAX: usize = 255;
    /// Longest `group.instance.id` (Kafka validates it like a topic name: 249).
    pub const GROUP_INSTANCE_ID_BYTES_MAX: usize = 249;
    /// Members plus handed-out member ids per group (GROUP_MAX_SIZE_REACHED above).
    pub const MEMBERS_PER_GROUP_MAX: usize = 1_000;
    /// Groups with members or offsets; a JoinGroup that would create one more gets
    /// GROUP_MAX_SIZE_REACHED.
    pub const GROUPS_MAX: usize = 100_000;
    /// Protocols (assignors) one member may offer.
    pub const PROTOCOLS_PER_MEMBER_MAX: usize = 32;
    /// Sum of one member's protocol names and metadata.
    pub const MEMBER_METADATA_BYTES_MAX: usize = 256 * 1024;
    /// One member's assignment as sent by the leader.
    pub const ASSIGNMENT_BYTES_MAX: usize = 256 * 1024;
    /// Kafka's `offset.metadata.max.bytes` default.
    pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
    /// Client ids are kept (DescribeGroups) and prefix member ids; longer ones are cut.
    pub const CLIENT_ID_BYTES_MAX: usize = 255;
    /// Ceiling of `group_max_session_timeout_ms` (Kafka's default maximum); the
    /// accepted range is the broker's [`GroupConfig`](super::GroupConfig).
    pub const SESSION_TIMEOUT_MS_MAX: i32 = 1_800_000;
    /// Longest a JoinGroup waits for the rest of the group, whatever the client asks.
    pub const REBALANCE_TIMEOUT_MS_MAX: i32 = 1_800_000;
}

use limits::*;

/// The broker settings of the coordinator (`group_*`, `offsets_retention_*` keys).
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// Accepted `session.timeout.ms` (INVALID_SESSION_TIMEOUT outside).
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    /// Kafka's `offsets.retention.minutes`, for groups without members.
    pub offsets_retention: Duration,
    /// Kafka's `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
    /// KIP-848 groups: `group.consumer.session.timeout.ms` and
    /// `group.consumer.heartbeat.interval.ms` (set by the broker, not the client).
    pub consumer_session_timeout: Duration,
    pub consumer_heartbeat_interval_ms: i32,
}

impl GroupConfig {
    pub fn from_config(cfg: &crate::config::Config) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(u64::from(
                cfg.group_initial_rebalance_delay_ms,
            )),
            session_timeout_ms_min: cfg.group_min_session_timeout_ms,
            session_timeout_ms_max: cfg.group_max_session_timeout_ms,
            offsets_retention: Duration::from_secs(
                cfg.offsets_retention_minutes.saturating_mul(60),
            ),
            offsets_retention_check_interval: Duration::from_millis(
                cfg.offsets_retention_check_interval_ms,
            ),
            consumer_session_timeout: Duration::from_millis(u64::from(
                cfg.group_consumer_session_timeout_ms,
            )),
            consumer_heartbeat_interval_ms: i32::try_from(cfg.group_consumer_heartbeat_interval_ms)
                .unwrap_or(i32::MAX),
        }
    }

    /// For coordinators without a network (unit tests, benches, fuzzing): no initial
    /// delay, sessions from 1 ms, Kafka's retention.
    pub fn immediate() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::ZERO,
            session_timeout_ms_min: 1,
            ..GroupConfig::from_config(&crate::config::Config::profile(
                crate::config::Profile::Baseline,
            ))
        }
    }
}

/// Called when waiting requests may be answerable (the data plane's wake-up).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// A waker for a coordinator or broker without a data plane (unit tests, benches,
/// fuzzing): nothing is parked anywhere, so there is nothing to wake.
pub fn no_wake() -> Waker {
    Arc::new(|| {})
}

/// Who commits offsets, as an OffsetCommit (or TxnOffsetCommit) names itself.
#[derive(Clone, Copy, Debug)]
pub struct CommitBy<'a> {
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    /// The generation (classic groups); −1 for commits without group management.
    pub generation_id: i32,
    /// TxnOffsetCommit: no REBALANCE_IN_PROGRESS, and generation −1 without a member id
    /// is accepted in a group with members (older transactional clients send neither).
    pub transactional: bool,
    /// The answer when the group does not exist and the generation is ≥ 0:
    /// GROUP_ID_NOT_FOUND from OffsetCommit v9 on, ILLEGAL_GENERATION before.
    pub unknown_group_code: i16,
    /// OffsetCommit v9+: `generation_id` may be a KIP-848 member epoch.
    pub member_epochs: bool,
}

impl CommitBy<'_> {
    /// A commit without group management (generation −1, no member): what admin
    /// clients and `assign()` consumers send.
    pub fn simple() -> CommitBy<'static> {
        CommitBy {
            member_id: "",
            group_instance_id: None,
            generation_id: -1,
            transactional: false,
            unknown_group_code: code::ILLEGAL_GENERATION,
            member_epochs: false,
        }
    }
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug)]
pub struct GroupOverview {
    pub group_id: String,
    pub protocol_type: String,
    /// Classic groups' state (consumer groups: Empty or Stable, see `state_name`).
    pub state: GroupState,
    /// The state as ListGroups names it, for either type.
    pub state_name: &'static str,
    /// `classic` or `consumer` (KIP-848).
    pub group_type: &'static str,
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug, Default)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub error_code: i16,
    pub group_id: String,
    pub state: GroupState,
    /// The state's name for either group type (KIP-848 groups: Empty, Reconciling,
    /// Stable).
    pub state_name: &'static str,
    pub protocol_type: String,
    /// The chosen protocol, only while Stable (as Kafka reports it).
    pub protocol_name: String,
    pub members: Vec<DescribedMember>,
    /// Generation and leader (not in DescribeGroups; the admin API shows them).
    pub generation_id: i32,
    pub leader: Option<String>,
}

/// A KIP-848 group as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: ConsumerState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Clone, Debug)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

struct Groups {
    map: HashMap<String, Group>,
    /// KIP-848 consumer groups; an id is in at most one of the two maps.
    consumer: HashMap<String, ConsumerGroup>,
    shutdown: bool,
}

impl Groups {
    fn len(&self) -> usize {
        self.map.len() + self.consumer.len()
    }
    fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id) || self.consumer.contains_key(id)
    }
}

struct Inner {
    groups: Mutex<Groups>,
    /// Signalled when a deadline may have moved earlier, or at shutdown.
    timer: Condvar,
    /// Lock order: `groups` before `offsets`.
    offsets: Mutex<OffsetStore>,
    waker: Waker,
    config: GroupConfig,
    /// Topic metadata for consumer groups (set by the broker; none in bare tests).
    topics: Mutex<Option<Arc<dyn Topics + Send + Sync>>>,
    /// Wall clock at start (ms): offsets of a group not seen emptying since are
    /// counted as idle from here (never expired earlier than Kafka would).
    started_ms: i64,
}

/// The group coordinator of this (single) broker.
pub struct Coordinator {
    inner: Arc<Inner>,
    timer_thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Coordinator {
    /// A coordinator whose offsets live in `<data_dir>/__consumer_offsets.log`;
    /// `waker` tells the data plane when parked joins and syncs can be answered.
    pub fn open(
        data_dir: &Path,
        flush: FlushPolicy,
        config: GroupConfig,
        waker: Waker,
    ) -> io::Result<Coordinator> {
        Ok(Coordinator::with_store(
            OffsetStore::open(data_dir, flush)?,
            config,
            waker,
        ))
    }

    /// A coordinator that keeps offsets in memory only, with
    /// [`GroupConfig::immediate`].
    pub fn in_memory(waker: Waker) -> Coordinator {
        Coordinator::in_memory_with(GroupConfig::immediate(), waker)
    }

    pub fn in_memory_with(config: GroupConfig, waker: Waker) -> Coordinator {
        Coordinator::with_store(OffsetStore::in_memory(), config, waker)
    }

    fn with_store(store: OffsetStore, config: GroupConfig, waker: Waker) -> Coordinator {
        let inner = Arc::new(Inner {
            groups: Mutex::new(Groups {
                map: HashMap::new(),
                consumer: HashMap::new(),
                shutdown: false,
            }),
            timer: Condvar::new(),
            offsets: Mutex::new(store),
            waker,
            config,
            topics: Mutex::new(None),
            started_ms: now_ms(),
        });
        let for_timer = inner.clone();
        let thread = std::thread::Builder::new()
            .name("group-timer".into())
            .spawn(move || run_timer(&for_timer))
            .map_err(|e| tracing::error!(error = %e, "cannot start the group timer thread"))
            .ok();
        Coordinator {
            inner,
            timer_thread: Mutex::new(thread),
        }
    }

    /// Where consumer groups (KIP-848) learn topic ids and partition counts.
    pub fn set_topics(&self, topics: Arc<dyn Topics + Send + Sync>) {
        *lock(&self.inner.topics) = Some(topics);
    }

    /// Number of groups with committed offsets (for the startup banner).
    pub fn groups_with_offsets(&self) -> usize {
        lock(&self.inner.offsets).group_count()
    }

    /// Makes every logged offset durable (the periodic flusher of `flush=<N>ms`).
    pub fn sync_offsets(&self) -> io::Result<()> {
        lock(&self.inner.offsets).sync()
    }

    /// Stops the timer, answers every waiting request and makes the offsets durable.
    pub fn shutdown(&self) {
        {
            let mut g = lock(&self.inner.groups);
            g.shutdown = true;
            for group in g.map.values_mut() {
                group.kill();
            }
            g.map.clear();
            g.consumer.clear();
        }
        self.inner.timer.notify_all();
        if let Some(t) = lock(&self.timer_thread).take() {
            let _ = t.join();
        }
        self.inner.wake();
        if let Err(e) = lock(&self.inner.offsets).sync() {
            tracing::warn!(error = %e, "final sync of the offsets log failed");
        }
    }

    pub fn join(&self, mut p: JoinParams) -> Arc<Slot<JoinResult>> {
        let fail = |c: i16, id: &str| Slot::filled(JoinResult::error(c, id));
        if let Err(c) = validate_group_id(&p.group_id, false) {
            return fail(c, &p.member_id);
        }
        let cfg = &self.inner.config;
        if !(cfg.session_timeout_ms_min..=cfg.session_timeout_ms_max)
            .contains(&p.session_timeout_ms)
        {
            return fail(code::INVALID_SESSION_TIMEOUT, &p.member_id);
        }
        let metadata_bytes: usize = p.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
        if p.protocols.len() > PROTOCOLS_PER_MEMBER_MAX
            || metadata_bytes > MEMBER_METADATA_BYTES_MAX
            || p.group_instance_id
                .as_ref()
                .is_some_and(|i| i.is_empty() || i.len() > GROUP_INSTANCE_ID_BYTES_MAX)
        {
            return fail(code::INVALID_REQUEST, &p.member_id);
        }
        truncate(&mut p.client_id, CLIENT_ID_BYTES_MAX);
        let mut g = lock(&self.inner.groups);
        if g.shutdown {
            return fail(code::REBALANCE_IN_PROGRESS, &p.member_id);
        }
        match g.consumer.get(&p.group_id) {
            // Kafka without a migration policy: a classic member cannot join a
            // consumer group that has members.
            Some(c) if !c.is_idle() => {
                return fail(code::INCONSISTENT_GROUP_PROTOCOL, &p.member_id);
            }
            Some(_) => {
                g.consumer.remove(&p.group_id);
            }
            None => {}
        }
        if !g.map.contains_key(&p.group_id) {
            if !p.member_id.is_empty() {
                return fail(code::UNKNOWN_MEMBER_ID, &p.member_id);
            }
            if g.len() >= GROUPS_MAX {
                return fail(code::GROUP_MAX_SIZE_REACHED, "");
            }
            let delay = self.inner.config.initial_rebalance_delay;
            g.map
                .insert(p.group_id.clone(), Group::new(&p.group_id, delay));
        }
        let group_id = p.group_id.clone();
        let mut prefix = p.client_id.clone();
        truncate(&mut prefix, 64);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        let slot = match g.map.get_mut(&group_id) {
            Some(group) => group.join(p, new_id, Instant::now()),
            None => fail(code::UNKNOWN_MEMBER_ID, ""),
        };
        self.after_change(&mut g, &group_id);
        slot
    }

    pub fn sync(&self, group_id: &str, p: SyncParams) -> Arc<Slot<SyncResult>> {
        if let Err(c) = validate_group_id(group_id, false) {
            return Slot::filled(SyncResult::error(c));
        }
        let mut g = lock(&self.inner.groups);
        let slot = match g.map.get_mut(group_id) {
            Some(group) => group.sync(p, Instant::now()),
            None => Slot::filled(SyncResult::error(code::UNKNOWN_MEMBER_ID)),
        };
        self.after_change(&mut g, group_id);
        slot
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        if let Err(c) = validate_group_id(group_id, false) {
            return c;
        }
        let mut g = lock(&self.inner.groups);
        match g.map.get_mut(group_id) {
            // Only pushes deadlines later: the timer needs no nudge.
            Some(group) => group.heartbeat(member_id, instance, generation_id, Instant::now()),
            None => code::UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup: one error code per (member id, instance id), or a group-level error.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        validate_group_id(group_id, false)?;
        let mut g = lock(&self.inner.groups);
        let Some(group) = g.map.get_mut(group_id) else {
            return Ok(vec![code::UNKNOWN_MEMBER_ID; members.len()]);
        };
        let now = Instant::now();
        let codes = members
            .iter()
            .map(|(id, instance)| group.leave(id, instance.as_deref(), now))
            .collect();
        self.after_change(&mut g, group_id);
        Ok(codes)
    }

    /// OffsetCommit: checks the member and generation as Kafka does (see
    /// [`Group::validate_commit`](state::Group::validate_commit) and [`CommitBy`]), then
    /// logs the offsets (durably first, with `flush=always`). Errors apply to every
    /// partition.
    ///
    /// The offsets are written while the groups lock is still held, as Kafka appends a
    /// commit under its group's lock: no rebalance can fence the member between the
    /// check and the write, so a revoked member's commit is never kept. The cost: with
    /// `flush=always` other groups' requests wait for the commit's fsync.
    pub fn commit(
        &self,
        group_id: &str,
        by: &CommitBy<'_>,
        commits: Vec<(PartitionKey, Committed)>,
    ) -> Result<(), i16> {
        let mut g = lock(&self.inner.groups);
        self.validate_commit_locked(&mut g, group_id, by)?;
        let logged = self.log_commits(group_id, commits);
        drop(g);
        logged
    }

    /// The checks of [`Coordinator::commit`] alone: TxnOffsetCommit is fenced by them
    /// when it arrives, and its offsets are written only when the transaction commits.
    pub fn validate_commit_by(&self, group_id: &str, by: &CommitBy<'_>) -> Result<(), i16> {
        let mut g = lock(&self.inner.groups);
        self.validate_commit_locked(&mut g, group_id, by)
    }

    /// [`Coordinator::validate_commit_by`] with the groups lock held by the caller (the
    /// lock order is groups, then offsets).
    fn validate_commit_locked(
        &self,
        g: &mut Groups,
        group_id: &str,
        by: &CommitBy<'_>,
    ) -> Result<(), i16> {
        validate_group_id(group_id, true)?;
        if let Some(c) = g.consumer.get(group_id) {
            if by.generation_id >= 0 && !by.member_epochs && !c.is_idle() {
                // Kafka: members of the consumer protocol commit with v9+.
                return Err(code::UNSUPPORTED_VERSION);
            }
            c.validate_member_epoch(by.member_id, by.generation_id, false)?;
        } else {
            match g.map.get_mut(group_id) {
                Some(group) => group.validate_commit(
                    by.member_id,
                    by.group_instance_id,
                    by.generation_id,
                    by.transactional,
                    Instant::now(),
                )?,
                // A group that does not use group management (assign + commit): Kafka
                // creates a "simple" group on the fly.
                None if by.generation_id < 0 => {}
                // Kafka keeps a group that has only offsets as an Empty group: a
                // generation names no member of it.
                None if lock(&self.inner.offsets).has_group(group_id) => {
                    return Err(code::UNKNOWN_MEMBER_ID)
                }
                None => return Err(by.unknown_group_code),
            }
        }
        if g.len() >= GROUPS_MAX && !g.contains(group_id) {
            let offsets = lock(&self.inner.offsets);
            if !offsets.has_group(group_id) && offsets.group_count() >= GROUPS_MAX {
                return Err(code::GROUP_MAX_SIZE_REACHED);
            }
        }
        Ok(())
    }

    /// Logs `commits` of `group_id` (durably first with `flush=always`) without the
    /// member checks: those ran already ([`Coordinator::validate_commit_by`]).
    pub fn log_commits(
        &self,
        group_id: &str,
        commits: Vec<(PartitionKey, Committed)>,
    ) -> Result<(), i16> {
        let mut offsets = lock(&self.inner.offsets);
        let first_group = offsets.group_count() == 0;
        offsets.commit(group_id, commits).map_err(|e| {
            tracing::error!(error = %e, group = group_id, "cannot log committed offsets");
            code::KAFKA_STORAGE_ERROR
        })?;
        drop(offsets);
        if first_group {
            // The timer sleeps without a timeout while there is nothing to expire.
            self.inner.timer.notify_one();
        }
        Ok(())
    }

    /// Committed offsets of `group_id`: for the given partitions (`None` where nothing
    /// is committed), or every committed one when `topics` is `None`.
    pub fn committed(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(PartitionKey, Option<Committed>)>, i16> {
        self.committed_for(group_id, topics, None)
    }

    /// [`Coordinator::committed`] for a KIP-848 member (OffsetFetch v9+ names its
    /// member id and epoch): UNKNOWN_MEMBER_ID / STALE_MEMBER_EPOCH as in Kafka.
    pub fn committed_for(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
        member: Option<(&str, i32)>,
    ) -> Result<Vec<(PartitionKey, Option<Committed>)>, i16> {
        validate_group_id(group_id, true)?;
        if let Some((member_id, epoch)) = member {
            let g = lock(&self.inner.groups);
            if let Some(c) = g.consumer.get(group_id) {
                c.validate_member_epoch(member_id, epoch, true)?;
            }
        }
        let offsets = lock(&self.inner.offsets);
        Ok(match topics {
            None => offsets
                .all(group_id)
                .into_iter()
                .map(|(k, c)| (k, Some(c)))
                .collect(),
            Some(topics) => topics
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(|&p| {
                        let c = offsets.get(group_id, topic, p).cloned();
                        ((topic.clone(), p), c)
                    })
                })
                .collect(),
        })
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(&self, group_id: &str, mut p: HeartbeatParams) -> HeartbeatResult {
        if let Err(c) = validate_group_id(group_id, false) {
            return HeartbeatResult::error(c, "invalid group id");
        }
        if p.instance_id
            .as_ref()
            .is_some_and(|i| i.is_empty() || i.len() > GROUP_INSTANCE_ID_BYTES_MAX)
            || p.member_id.len() > GROUP_ID_BYTES_MAX
            || p.rack_id
                .as_ref()
                .is_some_and(|r| r.len() > GROUP_ID_BYTES_MAX)
            || p.subscribed_names
                .as_ref()
                .is_some_and(|n| n.len() > SUBSCRIBED_TOPICS_MAX)
            || p.owned
                .as_ref()
                .is_some_and(|o| o.len() > SUBSCRIBED_TOPICS_MAX)
        {
            return HeartbeatResult::error(code::INVALID_REQUEST, "a field is out of bounds");
        }
        if p.member_epoch < -2 {
            return HeartbeatResult::error(code::INVALID_REQUEST, "invalid member epoch");
        }
        if p.member_epoch == -2 && p.instance_id.is_none() {
            return HeartbeatResult::error(
                code::INVALID_REQUEST,
                "member epoch -2 is for static members (InstanceId)",
            );
        }
        if p.member_epoch == 0 && p.rebalance_timeout_ms <= 0 {
            return HeartbeatResult::error(
                code::INVALID_REQUEST,
                "RebalanceTimeoutMs must be set when joining",
            );
        }
        if let Some(a) = &p.server_assignor {
            if Assignor::parse(a).is_none() {
                return HeartbeatResult::error(
                    code::UNSUPPORTED_ASSIGNOR,
                    "server assignors: uniform, range",
                );
            }
        }
        if p.subscribed_regex
            .as_ref()
            .is_some_and(|r| r.len() > REGEX_BYTES_MAX)
        {
            return HeartbeatResult::error(
                code::INVALID_REGULAR_EXPRESSION,
                "the regex is too long",
            );
        }
        truncate(&mut p.client_id, CLIENT_ID_BYTES_MAX);
        let topics = lock(&self.inner.topics).clone();
        let topics: &dyn Topics = match &topics {
            Some(t) => t.as_ref(),
            None => &NoTopics,
        };
        let mut g = lock(&self.inner.groups);
        if g.shutdown {
            return HeartbeatResult::error(code::COORDINATOR_NOT_AVAILABLE, "shutting down");
        }
        match g.map.get(group_id) {
            Some(classic) if !classic.is_idle() => {
                return HeartbeatResult::error(
                    code::GROUP_ID_NOT_FOUND,
                    "the group is a classic group with members",
                );
            }
            Some(_) => {
                g.map.remove(group_id);
            }
            None => {}
        }
        if !g.consumer.contains_key(group_id) {
            if p.member_epoch != 0 {
                // After a restart members must rejoin (epoch 0).
                return HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "unknown member id");
            }
            if g.len() >= GROUPS_MAX {
                return HeartbeatResult::error(code::GROUP_MAX_SIZE_REACHED, "too many groups");
            }
            g.consumer
                .insert(group_id.to_string(), ConsumerGroup::new(group_id));
        }
        let new_id = uuid::Uuid::new_v4().to_string();
        let session = self.inner.config.consumer_session_timeout;
        let Some(c) = g.consumer.get_mut(group_id) else {
            return HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "unknown member id");
        };
        let mut result = c.heartbeat(p, new_id, session, Instant::now(), topics);
        result.heartbeat_interval_ms = self.inner.config.consumer_heartbeat_interval_ms;
        forget_if_idle(&mut g, &self.inner.offsets, group_id);
        // Sessions and revocation deadlines moved (one wake-up per heartbeat interval
        // of a member, off the data plane).
        self.inner.timer.notify_one();
        result
    }

    /// ConsumerGroupDescribe of one group; `None` when it is not a consumer group.
    pub fn consumer_describe(&self, group_id: &str) -> Option<ConsumerGroupDescription> {
        let g = lock(&self.inner.groups);
        let c = g.consumer.get(group_id)?;
        Some(ConsumerGroupDescription {
            group_id: c.id.clone(),
            state: c.state(),
            group_epoch: c.group_epoch,
            assignment_epoch: c.assignment_epoch,
            assignor: c.assignor.name(),
            members: c
                .describe_members()
                .into_iter()
                .map(|(m, target)| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_names.clone(),
                    subscribed_topic_regex: m.subscribed_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: target,
                })
                .collect(),
        })
    }

    /// A group of either type for the admin API and console: a KIP-848 group is shown
    /// with its group epoch as the generation, its assignor as the protocol and each
    /// member's current assignment encoded as a ConsumerProtocolAssignment (what the
    /// admin API decodes for classic consumer groups too). Classic groups as
    /// [`Coordinator::describe`].
    pub fn describe_any(&self, group_id: &str) -> GroupDescription {
        let consumer = {
            let g = lock(&self.inner.groups);
            g.consumer.get(group_id).map(|c| GroupDescription {
                error_code: code::NONE,
                group_id: c.id.clone(),
                state: if c.is_idle() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                },
                state_name: c.state().name(),
                protocol_type: "consumer".to_string(),
                protocol_name: c.assignor.name().to_string(),
                members: c
                    .members
                    .values()
                    .map(|m| DescribedMember {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: consumer_protocol_assignment(&m.assigned, |id| {
                            c.topic_name(id)
                        }),
                    })
                    .collect(),
                generation_id: c.group_epoch,
                leader: None,
            })
        };
        consumer.unwrap_or_else(|| self.describe(group_id))
    }

    /// Every group with members or committed offsets.
    pub fn list(&self) -> Vec<GroupOverview> {
        let g = lock(&self.inner.groups);
        let offsets = lock(&self.inner.offsets);
        let mut out: Vec<GroupOverview> = g
            .map
            .values()
            .map(|group| GroupOverview {
                group_id: group.id.clone(),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                state: group.state,
                state_name: group.state.name(),
                group_type: "classic",
            })
            .collect();
        out.extend(g.consumer.values().map(|c| GroupOverview {
            group_id: c.id.clone(),
            protocol_type: "consumer".to_string(),
            state: if c.is_idle() {
                GroupState::Empty
            } else {
                GroupState::Stable
            },
            state_name: c.state().name(),
            group_type: "consumer",
        }));
        let only_offsets: BTreeSet<&String> =
            offsets.group_ids().filter(|id| !g.contains(id)).collect();
        out.extend(only_offsets.into_iter().map(|id| GroupOverview {
            group_id: id.clone(),
            protocol_type: String::new(),
            state: GroupState::Empty,
            state_name: GroupState::Empty.name(),
            group_type: "classic",
        }));
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups: classic groups (a KIP-848 group is unknown here, as in Kafka's
    /// DescribeGroups before v6).
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let mut d = self.describe_classic(group_id);
        d.state_name = d.state.name();
        d
    }

    fn describe_classic(&self, group_id: &str) -> GroupDescription {
        let mut d = GroupDescription {
            error_code: code::NONE,
            group_id: group_id.to_string(),
            state: GroupState::Dead,
            state_name: GroupState::Dead.name(),
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
            generation_id: 0,
            leader: None,
        };
        if let Err(c) = validate_group_id(group_id, false) {
            d.error_code = c;
            return d;
        }
        let g = lock(&self.inner.groups);
        let Some(group) = g.map.get(group_id) else {
            // Kafka (v0-5) describes an unknown group as Dead without an error.
            if lock(&self.inner.offsets).has_group(group_id) {
                d.state = GroupState::Empty;
            }
            return d;
        };
        d.state = group.state;
        d.generation_id = group.generation_id;
        d.leader = group.leader.clone();
        d.protocol_type = group.protocol_type.clone().unwrap_or_default();
        let stable = group.state == GroupState::Stable;
        if stable {
            d.protocol_name = group.protocol_name.clone().unwrap_or_default();
        }
        d.members = group
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                // Metadata and assignment only mean something once the group is stable.
                metadata: if stable {
                    m.protocols
                        .iter()
                        .find(|(n, _)| Some(n) == group.protocol_name.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        d
    }

    /// DeleteGroups for one group: its offsets go too.
    pub fn delete(&self, group_id: &str) -> i16 {
        if let Err(c) = validate_group_id(group_id, false) {
            return c;
        }
        let mut g = lock(&self.inner.groups);
        let mut offsets = lock(&self.inner.offsets);
        if g.consumer.get(group_id).is_some_and(|c| !c.is_idle()) {
            return code::NON_EMPTY_GROUP;
        }
        match g.map.get(group_id) {
            Some(group) if !group.is_idle() => return code::NON_EMPTY_GROUP,
            Some(_) => {}
            None if !offsets.has_group(group_id) && !g.consumer.contains_key(group_id) => {
                return code::GROUP_ID_NOT_FOUND
            }
            None => {}
        }
        g.consumer.remove(group_id);
        if let Err(e) = offsets.delete_group(group_id) {
            tracing::error!(error = %e, group = group_id, "cannot log group deletion");
            return code::KAFKA_STORAGE_ERROR;
        }
        if let Some(mut group) = g.map.remove(group_id) {
            group.kill();
        }
        code::NONE
    }

    /// OffsetDelete: a per-partition code, or a group-level error.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        keys: Vec<PartitionKey>,
    ) -> Result<Vec<(PartitionKey, i16)>, i16> {
        validate_group_id(group_id, false)?;
        let mut g = lock(&self.inner.groups);
        let mut offsets = lock(&self.inner.offsets);
        let group = g.map.get(group_id);
        let consumer = g.consumer.get(group_id);
        if group.is_none() && consumer.is_none() && !offsets.has_group(group_id) {
            return Err(code::GROUP_ID_NOT_FOUND);
        }
        // Topics the live members consume cannot lose their offsets.
        let subscribed: Option<Vec<String>> = match group {
            _ if consumer.is_some_and(|c| !c.is_idle()) => {
                consumer.map(ConsumerGroup::subscribed_topics)
            }
            Some(group) if !group.is_idle() => {
                if group.protocol_type.as_deref() != Some("consumer") {
                    return Err(code::NON_EMPTY_GROUP);
                }
                group.subscribed_topics()
            }
            _ => Some(Vec::new()),
        };
        let is_subscribed = |topic: &str| {
            subscribed
                .as_ref()
                .is_none_or(|s| s.iter().any(|t| t == topic))
        };
        let (refused, deletable): (Vec<PartitionKey>, Vec<PartitionKey>) =
            keys.into_iter().partition(|(t, _)| is_subscribed(t));
        if let Err(e) = offsets.delete_offsets(group_id, deletable.clone()) {
            tracing::error!(error = %e, group = group_id, "cannot log offset deletion");
            return Err(code::KAFKA_STORAGE_ERROR);
        }
        drop(offsets);
        self.after_change(&mut g, group_id);
        Ok(refused
            .into_iter()
            .map(|k| (k, code::GROUP_SUBSCRIBED_TO_TOPIC))
            .chain(deletable.into_iter().map(|k| (k, code::NONE)))
            .collect())
    }

    /// After a change to `group_id`: forget it when idle and without offsets, let the
    /// timer recompute its deadline, and let the data plane answer waiting requests.
    fn after_change(&self, g: &mut Groups, group_id: &str) {
        forget_if_idle(g, &self.inner.offsets, group_id);
        self.inner.timer.notify_one();
        self.inner.wake();
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        lock(&self.inner.groups).shutdown = true;
        self.inner.timer.notify_all();
        if let Some(t) = lock(&self.timer_thread).take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn wake(&self) {
        (self.waker)();
    }
}

fn forget_if_idle(g: &mut Groups, offsets: &Mutex<OffsetStore>, group_id: &str) {
    let idle = g.map.get(group_id).is_some_and(Group::is_idle);
    let consumer_idle = g.consumer.get(group_id).is_some_and(ConsumerGroup::is_idle);
    if (idle || consumer_idle) && !lock(offsets).has_group(group_id) {
        g.map.remove(group_id);
        g.consumer.remove(group_id);
    }
}

/// The timer: sleeps until the nearest deadline of any group or the next offsets
/// retention pass (only while some group has offsets), expires what is due, and wakes
/// the data plane when that answered anything.
fn run_timer(inner: &Inner) {
    let mut next_retention_pass = Instant::now() + inner.config.offsets_retention_check_interval;
    let mut g = lock(&inner.groups);
    loop {
        if g.shutdown {
            return;
        }
        let now = Instant::now();
        if now >= next_retention_pass {
            g = expire_offsets(inner, g);
            next_retention_pass = now + inner.config.offsets_retention_check_interval;
            if g.shutdown {
                return;
            }
        }
        let due: Vec<String> = g
            .map
            .values()
            .filter(|group| group.next_deadline().is_some_and(|d| d <= now))
            .map(|group| group.id.clone())
            .collect();
        let mut changed = false;
        for id in &due {
            if let Some(group) = g.map.get_mut(id) {
                changed |= group.expire(now);
            }
            forget_if_idle(&mut g, &inner.offsets, id);
        }
        let due_consumer: Vec<String> = g
            .consumer
            .values()
            .filter(|c| c.next_deadline().is_some_and(|d| d <= now))
            .map(|c| c.id.clone())
            .collect();
        if !due_consumer.is_empty() {
            let topics = lock(&inner.topics).clone();
            let topics: &dyn Topics = match &topics {
                Some(t) => t.as_ref(),
                None => &NoTopics,
            };
            for id in &due_consumer {
                if let Some(c) = g.consumer.get_mut(id) {
                    c.expire(now, topics);
                }
                forget_if_idle(&mut g, &inner.offsets, id);
            }
        }
        if changed {
            inner.wake();
        }
        let has_offsets = lock(&inner.offsets).group_count() > 0;
        let next = g
            .map
            .values()
            .filter_map(|group| group.next_deadline())
            .chain(g.consumer.values().filter_map(ConsumerGroup::next_deadline))
            .chain(has_offsets.then_some(next_retention_pass))
            .min();
        g = match next {
            None => inner.timer.wait(g).unwrap_or_else(|p| p.into_inner()),
            Some(deadline) => {
                // At least 1 ms: a deadline that is due again right away is handled on
                // the next pass rather than in a tight loop.
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                inner
                    .timer
                    .wait_timeout(g, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
}

/// Kafka's offsets retention (KIP-211): the committed offsets of a group without
/// members expire `offsets_retention` after the later of the group emptying and the
/// commit. Groups with members keep theirs. One group at a time, both locks released
/// in between so that heartbeats and commits of other groups go on.
fn expire_offsets<'a>(inner: &'a Inner, g: MutexGuard<'a, Groups>) -> MutexGuard<'a, Groups> {
    let retention_ms =
        i64::try_from(inner.config.offsets_retention.as_millis()).unwrap_or(i64::MAX);
    let ids: Vec<String> = lock(&inner.offsets).group_ids().cloned().collect();
    drop(g);
    let mut expired_total = 0usize;
    for id in ids {
        let mut g = lock(&inner.groups);
        if g.shutdown {
            return g;
        }
        let emptied_ms = match (g.map.get(&id), g.consumer.get(&id)) {
            (Some(group), _) if !group.is_idle() => continue,
            (_, Some(c)) if !c.is_idle() => continue,
            (Some(group), _) => group.emptied_at_ms.unwrap_or(inner.started_ms),
            (_, Some(c)) => c.emptied_at_ms.unwrap_or(inner.started_ms),
            (None, None) => inner.started_ms,
        };
        let now = now_ms();
        let mut offsets = lock(&inner.offsets);
        let expired: Vec<PartitionKey> = offsets
            .all(&id)
            .into_iter()
            .filter(|(_, c)| {
                c.commit_timestamp_ms
                    .max(emptied_ms)
                    .saturating_add(retention_ms)
                    <= now
            })
            .map(|(k, _)| k)
            .collect();
        if expired.is_empty() {
            continue;
        }
        expired_total += expired.len();
        if let Err(e) = offsets.delete_offsets(&id, expired) {
            tracing::warn!(error = %e, group = %id, "cannot log expired offsets; retrying next pass");
            continue;
        }
        drop(offsets);
        forget_if_idle(&mut g, &inner.offsets, &id);
    }
    if expired_total > 0 {
        tracing::info!(
            offsets = expired_total,
            "expired committed offsets of empty groups"
        );
    }
    lock(&inner.groups)
}

/// Topics for a coordinator without a broker: none exist.
struct NoTopics;

impl Topics for NoTopics {
    fn by_name(&self, _: &str) -> Option<(uuid::Uuid, i32)> {
        None
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Group ids: non-empty (except where Kafka allows the empty id: offsets of groups
/// that do not use group management) and bounded.
pub fn validate_group_id(group_id: &str, allow_empty: bool) -> Result<(), i16> {
    if (group_id.is_empty() && !allow_empty) || group_id.len() > GROUP_ID_BYTES_MAX {
        return Err(code::INVALID_GROUP_ID);
    }
    Ok(())
}

/// A ConsumerProtocolAssignment (v0: no user data) of `assigned`, topics by name; an
/// id whose name is unknown is left out.
fn consumer_protocol_assignment(
    assigned: &Assignment,
    name_of: impl Fn(uuid::Uuid) -> Option<String>,
) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    let topics: Vec<(String, &BTreeSet<i32>)> = assigned
        .iter()
        .filter_map(|(id, ps)| name_of(*id).map(|n| (n, ps)))
        .collect();
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (name, partitions) in topics {
        out.extend_from_slice(&(name.len() as i16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for p in partitions {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    // Null user data.
    out.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(out)
}

fn truncate(s: &mut String, max_bytes: usize) {
    if s.len() > max_bytes {
        let mut end = max_bytes;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The members, generation and protocol of a Stable group, in the order of a
/// [`JoinResult`]; for tests.
#[cfg(test)]
impl Coordinator {
    fn state_of(&self, group_id: &str) -> Option<(GroupState, i32, usize)> {
        let g = lock(&self.inner.groups);
        g.map
            .get(group_id)
            .map(|group| (group.state, group.generation_id, group.members.len()))
    }
}
