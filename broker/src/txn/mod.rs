//! The transaction coordinator (KIP-98): transactional ids, their producer ids and
//! epochs, and the state of each one's current transaction, persisted in its own log
//! ([`log`]). No sockets and no wire format: the handlers in `broker/` translate.
//!
//! Transitions follow Kafka's `TransactionCoordinator`: InitProducerId bumps the epoch
//! (fencing the previous producer of the id) after aborting a transaction left open;
//! a commit or abort is logged as `PrepareCommit`/`PrepareAbort` first, then its
//! markers are written to every partition of the transaction (through [`Markers`], so
//! this module knows nothing of storage), then `CompleteCommit`/`CompleteAbort` is
//! logged. A restart finishes a prepared transaction and aborts one still `Ongoing`.
//! Unlike Kafka, markers are written before the answer (no asynchronous marker
//! channel), so a coordinator never answers CONCURRENT_TRANSACTIONS for its own
//! pending markers.

pub mod log;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::protocol::error::code;
use crate::storage::FlushPolicy;

use log::{Change, TxnLog};

/// Partitions one transaction may touch (Kafka has no limit; a bound keeps one
/// transaction's log record and marker fan-out finite).
pub const PARTITIONS_PER_TXN_MAX: usize = 1000;
/// Longest transactional id accepted, bytes.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = 1024;
/// Kafka's `transaction.max.timeout.ms` default.
pub const DEFAULT_TRANSACTION_MAX_TIMEOUT_MS: i32 = 900_000;
/// Transactional ids kept by default (`max_transactional_ids`).
pub const DEFAULT_MAX_TRANSACTIONAL_IDS: usize = 10_000;

/// Where a transactional id's current transaction stands (Kafka's `TransactionState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
}

impl TxnState {
    fn from_u8(v: u8) -> Option<TxnState> {
        Some(match v {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }

    /// Kafka's name for the state (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// No transaction in flight: a new one may begin.
    fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// The metadata of one transactional id (what the log stores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// When the current transaction began (Ongoing), else of the last transition;
    /// wall clock, ms.
    pub started_ms: i64,
    pub partitions: BTreeSet<(String, i32)>,
    /// TxnOffsetCommit offsets of this transaction, committed to their groups only
    /// when it commits: (group, topic, partition) → offset.
    pub offsets: BTreeMap<(String, String, i32), PendingOffset>,
}

/// An offset committed inside a transaction (TxnOffsetCommit), not yet visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Why a request was refused; [`TxnError::code`] gives the Kafka code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnError {
    /// Empty or overlong transactional id.
    InvalidRequest,
    /// `transaction_timeout_ms` not in `1..=transaction_max_timeout_ms`.
    InvalidTimeout,
    /// An older epoch (or another producer id) of this transactional id.
    Fenced,
    /// The producer id is not this transactional id's.
    InvalidProducerIdMapping,
    /// The request does not fit the transaction's state.
    InvalidTxnState,
    /// Another transition is under way; retriable.
    Concurrent,
    /// `max_transactional_ids` reached with every id in a transaction; retriable.
    Full,
    /// The transaction log could not be written.
    Storage,
}

impl TxnError {
    /// The Kafka error code, where `fenced_code` is what this api's version answers
    /// for a fenced producer (PRODUCER_FENCED from InitProducerId v4, AddPartitionsToTxn,
    /// AddOffsetsToTxn and EndTxn v2; INVALID_PRODUCER_EPOCH before, as Kafka's
    /// `KafkaApis` does for old clients).
    pub fn code(self, fenced_code: i16) -> i16 {
        match self {
            TxnError::InvalidRequest => code::INVALID_REQUEST,
            TxnError::InvalidTimeout => code::INVALID_TRANSACTION_TIMEOUT,
            TxnError::Fenced => fenced_code,
            TxnError::InvalidProducerIdMapping => code::INVALID_PRODUCER_ID_MAPPING,
            TxnError::InvalidTxnState => code::INVALID_TXN_STATE,
            TxnError::Concurrent => code::CONCURRENT_TRANSACTIONS,
            TxnError::Full => code::COORDINATOR_NOT_AVAILABLE,
            TxnError::Storage => code::COORDINATOR_NOT_AVAILABLE,
        }
    }
}

/// Writes transaction markers; the broker implements it over storage.
pub trait Markers: Send + Sync {
    /// Appends a COMMIT (`commit`) or ABORT control batch of `producer_id` at `epoch`
    /// to the partition. A partition that no longer exists is skipped (`Ok`).
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> io::Result<()>;

    /// Makes the offsets a committed transaction gave `group` visible (TxnOffsetCommit).
    fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<(String, i32, PendingOffset)>,
    ) -> io::Result<()>;
}

/// Limits of the coordinator (from the broker's config).
#[derive(Clone, Copy, Debug)]
pub struct TxnConfig {
    pub max_timeout_ms: i32,
    pub max_ids: usize,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: DEFAULT_TRANSACTION_MAX_TIMEOUT_MS,
            max_ids: DEFAULT_MAX_TRANSACTIONAL_IDS,
        }
    }
}

struct Inner {
    /// Set by [`TxnCoordinator::shutdown`]: the timer thread returns.
    stopping: bool,
    ids: HashMap<String, TxnMeta>,
    /// Producer id → its transactional id (Produce looks transactions up by it).
    by_producer: HashMap<i64, String>,
    log: Option<TxnLog>,
}

/// The transaction coordinator of this broker.
pub struct TxnCoordinator {
    cfg: TxnConfig,
    inner: Mutex<Inner>,
    markers: OnceLock<Arc<dyn Markers>>,
    /// Wakes the timeout timer when a transaction begins (or at shutdown).
    timer: Condvar,
    timer_thread: Mutex<Option<JoinHandle<()>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl TxnCoordinator {
    /// A coordinator that keeps nothing on disk (tests, fuzzing, benches).
    pub fn in_memory(cfg: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            cfg,
            inner: Mutex::new(Inner {
                stopping: false,
                ids: HashMap::new(),
                by_producer: HashMap::new(),
                log: None,
            }),
            markers: OnceLock::new(),
            timer: Condvar::new(),
            timer_thread: Mutex::new(None),
        }
    }

    /// Opens (or creates) the transaction log in `data_dir`. Call
    /// [`TxnCoordinator::set_markers`] and then [`TxnCoordinator::recover`] before use.
    pub fn open(data_dir: &Path, flush: FlushPolicy, cfg: TxnConfig) -> io::Result<TxnCoordinator> {
        let (log, ids) = TxnLog::open(data_dir, flush)?;
        Ok(TxnCoordinator {
            cfg,
            inner: Mutex::new(Inner {
                stopping: false,
                by_producer: ids
                    .iter()
                    .map(|(id, m)| (m.producer_id, id.clone()))
                    .collect(),
                ids,
                log: Some(log),
            }),
            markers: OnceLock::new(),
            timer: Condvar::new(),
            timer_thread: Mutex::new(None),
        })
    }

    /// Hands the coordinator its marker writer (once).
    pub fn set_markers(&self, markers: Arc<dyn Markers>) {
        let _ = self.markers.set(markers);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The highest producer id this coordinator has handed out (-1: none), so that the
    /// broker's allocator never repeats one after a restart.
    pub fn max_producer_id(&self) -> i64 {
        self.lock()
            .ids
            .values()
            .map(|m| m.producer_id)
            .max()
            .unwrap_or(-1)
    }

    /// Finishes what a restart interrupted: a prepared commit or abort is completed
    /// (its markers written again; a second marker is harmless), a transaction still
    /// `Ongoing` is aborted with a bumped epoch, fencing its producer. Returns how many
    /// transactions were finished.
    pub fn recover(&self) -> io::Result<usize> {
        let mut inner = self.lock();
        let unfinished: Vec<String> = inner
            .ids
            .iter()
            .filter(|(_, m)| !m.state.is_idle())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &unfinished {
            let state = inner.ids[id].state;
            let commit = match state {
                TxnState::PrepareCommit => true,
                TxnState::PrepareAbort => false,
                _ => {
                    self.begin_abort_fenced(&mut inner, id)?;
                    false
                }
            };
            self.complete(&mut inner, id, commit)?;
            tracing::info!(transactional_id = %id, commit, "finished a transaction interrupted by the restart");
        }
        Ok(unfinished.len())
    }

    /// Logs `meta` for `id`, then makes it current.
    fn put(&self, inner: &mut Inner, id: &str, meta: TxnMeta) -> io::Result<()> {
        if let Some(log) = inner.log.as_mut() {
            log.append(&[Change::Put(id.to_string(), meta.clone())])?;
        }
        inner.by_producer.insert(meta.producer_id, id.to_string());
        inner.ids.insert(id.to_string(), meta);
        Ok(())
    }

    /// Ongoing → PrepareAbort with the epoch bumped (the producer that left it open is
    /// fenced: its markers and later requests carry the old epoch).
    fn begin_abort_fenced(&self, inner: &mut Inner, id: &str) -> io::Result<()> {
        let mut meta = inner.ids[id].clone();
        meta.epoch = meta.epoch.saturating_add(1);
        meta.state = TxnState::PrepareAbort;
        self.put(inner, id, meta)
    }

    /// Writes the markers of a prepared transaction and logs its completion.
    fn complete(&self, inner: &mut Inner, id: &str, commit: bool) -> io::Result<()> {
        let mut meta = inner.ids[id].clone();
        if let Some(markers) = self.markers.get() {
            for (topic, partition) in &meta.partitions {
                markers.write_marker(topic, *partition, meta.producer_id, meta.epoch, commit)?;
            }
            if commit {
                let mut by_group: BTreeMap<&str, Vec<(String, i32, PendingOffset)>> =
                    BTreeMap::new();
                for ((group, topic, partition), o) in &meta.offsets {
                    by_group
                        .entry(group)
                        .or_default()
                        .push((topic.clone(), *partition, o.clone()));
                }
                for (group, offsets) in by_group {
                    markers.commit_offsets(group, offsets)?;
                }
            }
        }
        meta.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.offsets.clear();
        meta.started_ms = now_ms();
        self.put(inner, id, meta)
    }

    /// InitProducerId with a transactional id: the id's producer id (a new one from
    /// `allocate` for a new id, or when the epoch is exhausted) and its bumped epoch.
    /// `expected` is the producer id and epoch the client already has (KIP-360, v3+).
    pub fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        allocate: &dyn Fn() -> i64,
    ) -> Result<(i64, i16), TxnError> {
        if id.is_empty() || id.len() > TRANSACTIONAL_ID_BYTES_MAX {
            return Err(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.cfg.max_timeout_ms {
            return Err(TxnError::InvalidTimeout);
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(current) = inner.ids.get(id).cloned() else {
            if inner.ids.len() >= self.cfg.max_ids {
                self.evict_one_idle(inner)?;
            }
            let meta = TxnMeta {
                producer_id: allocate(),
                epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                started_ms: now_ms(),
                partitions: BTreeSet::new(),
                offsets: BTreeMap::new(),
            };
            let answer = (meta.producer_id, meta.epoch);
            self.put(inner, id, meta).map_err(storage_err)?;
            return Ok(answer);
        };
        if let Some((pid, epoch)) = expected {
            // KIP-360: only the current producer may bump its own epoch.
            if pid != current.producer_id || epoch != current.epoch {
                return Err(TxnError::Fenced);
            }
        }
        if current.state == TxnState::Ongoing {
            // A transaction left open by the previous producer of this id is aborted
            // first (at a bumped epoch, which fences that producer).
            self.begin_abort_fenced(inner, id).map_err(storage_err)?;
            self.complete(inner, id, false).map_err(storage_err)?;
        } else if matches!(
            current.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        ) {
            // Only reachable when completing failed on I/O: finish it first.
            let commit = current.state == TxnState::PrepareCommit;
            self.complete(inner, id, commit).map_err(storage_err)?;
        }
        let mut meta = inner.ids[id].clone();
        // Epoch exhausted (Kafka: Short.MaxValue - 1): a new producer id at epoch 0.
        if meta.epoch >= i16::MAX - 1 {
            meta.producer_id = allocate();
            meta.epoch = 0;
        } else {
            meta.epoch += 1;
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.offsets.clear();
        meta.started_ms = now_ms();
        let answer = (meta.producer_id, meta.epoch);
        self.put(inner, id, meta).map_err(storage_err)?;
        Ok(answer)
    }

    /// Makes room for a new id: forgets the least recently used idle one.
    fn evict_one_idle(&self, inner: &mut Inner) -> Result<(), TxnError> {
        let victim = inner
            .ids
            .iter()
            .filter(|(_, m)| m.state.is_idle())
            .min_by_key(|(_, m)| m.started_ms)
            .map(|(id, _)| id.clone())
            .ok_or(TxnError::Full)?;
        if let Some(log) = inner.log.as_mut() {
            log.append(&[Change::Remove(victim.clone())])
                .map_err(storage_err)?;
        }
        if let Some(meta) = inner.ids.remove(&victim) {
            inner.by_producer.remove(&meta.producer_id);
        }
        Ok(())
    }

    /// Checks that `(producer_id, epoch)` is the current producer of `id`.
    fn check_producer(
        meta: Option<&TxnMeta>,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&TxnMeta, TxnError> {
        let meta = meta.ok_or(TxnError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != meta.epoch {
            return Err(TxnError::Fenced);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: adds partitions to the transaction,
    /// beginning it when idle.
    pub fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let meta = Self::check_producer(inner.ids.get(id), producer_id, epoch)?;
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(TxnError::Concurrent);
        }
        let mut meta = meta.clone();
        let before = meta.partitions.len();
        for p in partitions {
            meta.partitions.insert(p.clone());
        }
        if meta.partitions.len() > PARTITIONS_PER_TXN_MAX {
            return Err(TxnError::InvalidRequest);
        }
        if meta.state == TxnState::Ongoing && meta.partitions.len() == before {
            return Ok(());
        }
        let begins = meta.state != TxnState::Ongoing;
        if begins {
            meta.state = TxnState::Ongoing;
            meta.started_ms = now_ms();
        }
        self.put(inner, id, meta).map_err(storage_err)?;
        if begins {
            // A new deadline: the timer may be sleeping without one.
            self.timer.notify_one();
        }
        Ok(())
    }

    /// TxnOffsetCommit: keeps `offsets` of `group` with the ongoing transaction, to be
    /// committed with it. The group must have been added (AddOffsetsToTxn), which
    /// Kafka models as the group's offsets partition being in the transaction; here
    /// the pseudo-partition `("__consumer_offsets:" + group, 0)` stands for it.
    pub fn add_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<(String, i32, PendingOffset)>,
    ) -> Result<(), TxnError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let meta = Self::check_producer(inner.ids.get(id), producer_id, epoch)?;
        if meta.state != TxnState::Ongoing
            || !meta.partitions.contains(&(group_partition(group), 0))
        {
            return Err(TxnError::InvalidTxnState);
        }
        let mut meta = meta.clone();
        for (topic, partition, o) in offsets {
            meta.offsets
                .insert((group.to_string(), topic, partition), o);
        }
        if meta.offsets.len() > PARTITIONS_PER_TXN_MAX {
            return Err(TxnError::InvalidRequest);
        }
        self.put(inner, id, meta).map_err(storage_err)
    }

    /// Produce of a transactional batch of `(producer_id, epoch)` to `topic`/`partition`:
    /// accepted only when the partition is in that producer's ongoing transaction
    /// (INVALID_TXN_STATE otherwise, as Kafka's KIP-890 verification answers; an older
    /// epoch than the id's current one is fenced: INVALID_PRODUCER_EPOCH).
    pub fn check_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let inner = self.lock();
        let meta = inner
            .by_producer
            .get(&producer_id)
            .and_then(|id| inner.ids.get(id))
            .filter(|m| m.producer_id == producer_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if epoch < meta.epoch {
            return Err(TxnError::Fenced);
        }
        let in_txn = epoch == meta.epoch
            && meta.state == TxnState::Ongoing
            && meta
                .partitions
                .iter()
                .any(|(t, p)| t == topic && *p == partition);
        if in_txn {
            Ok(())
        } else {
            Err(TxnError::InvalidTxnState)
        }
    }

    /// EndTxn: commits or aborts the ongoing transaction (markers written before the
    /// answer). Ending an already-completed transaction the same way again is
    /// answered with success, as Kafka does for a retried EndTxn.
    pub fn end_txn(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let meta = Self::check_producer(inner.ids.get(id), producer_id, epoch)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {}
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(()),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                return Err(TxnError::Concurrent)
            }
            // Aborting with nothing added is allowed (librdkafka does it); committing
            // nothing too: both are no-ops.
            (TxnState::Empty, _) => return Ok(()),
            _ => return Err(TxnError::InvalidTxnState),
        }
        let mut meta = meta.clone();
        meta.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.put(inner, id, meta).map_err(storage_err)?;
        self.complete(inner, id, commit).map_err(storage_err)
    }

    /// Aborts every transaction open longer than its timeout (epoch bumped, fencing
    /// its producer, as Kafka does). Returns the earliest deadline still pending.
    pub fn abort_timed_out(&self, now_ms: i64) -> (usize, Option<i64>) {
        let mut inner = self.lock();
        self.abort_timed_out_locked(&mut inner, now_ms)
    }

    fn abort_timed_out_locked(&self, inner: &mut Inner, now_ms: i64) -> (usize, Option<i64>) {
        let mut next = None::<i64>;
        let expired: Vec<String> = inner
            .ids
            .iter()
            .filter(|(_, m)| m.state == TxnState::Ongoing)
            .filter_map(|(id, m)| {
                let deadline = m.started_ms.saturating_add(i64::from(m.timeout_ms));
                if deadline <= now_ms {
                    Some(id.clone())
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                    None
                }
            })
            .collect();
        let mut aborted = 0;
        for id in expired {
            let done = self
                .begin_abort_fenced(inner, &id)
                .and_then(|()| self.complete(inner, &id, false));
            match done {
                Ok(()) => {
                    aborted += 1;
                    tracing::info!(transactional_id = %id, "aborted a transaction that outlived its timeout");
                }
                Err(e) => {
                    tracing::warn!(transactional_id = %id, error = %e, "cannot abort a timed-out transaction")
                }
            }
        }
        (aborted, next)
    }

    /// Starts the timeout timer: one thread that sleeps until the nearest deadline of
    /// an ongoing transaction (without a timeout while none is open) and aborts what
    /// expired. Stopped by [`TxnCoordinator::shutdown`].
    pub fn start_timer(self: &Arc<Self>) -> io::Result<()> {
        let me = self.clone();
        let thread = std::thread::Builder::new()
            .name("txn-timer".into())
            .spawn(move || me.run_timer())?;
        *self.timer_thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }

    fn run_timer(&self) {
        let mut inner = self.lock();
        while !inner.stopping {
            let now = now_ms();
            let (_, next) = self.abort_timed_out_locked(&mut inner, now);
            inner = match next {
                None => self.timer.wait(inner).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let wait = Duration::from_millis(deadline.saturating_sub(now).max(1) as u64);
                    self.timer
                        .wait_timeout(inner, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Stops the timer thread and makes the log durable.
    pub fn shutdown(&self) {
        self.lock().stopping = true;
        self.timer.notify_all();
        if let Some(t) = self
            .timer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "cannot sync the transaction log at shutdown");
        }
    }

    /// The metadata of `id` (DescribeTransactions, tests).
    pub fn describe(&self, id: &str) -> Option<TxnMeta> {
        self.lock().ids.get(id).cloned()
    }

    /// Every transactional id and its metadata (ListTransactions).
    pub fn list(&self) -> Vec<(String, TxnMeta)> {
        self.lock()
            .ids
            .iter()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    /// Makes everything logged so far durable (the interval flusher).
    pub fn sync(&self) -> io::Result<()> {
        match self.lock().log.as_mut() {
            Some(log) => log.sync(),
            None => Ok(()),
        }
    }
}

/// The name under which a group's offsets join a transaction (AddOffsetsToTxn); not
/// a valid topic name (':'), so it cannot collide with one. Markers skip it (no such
/// partition in storage).
pub fn group_partition(group: &str) -> String {
    format!("{GROUP_PARTITION_PREFIX}{group}")
}

/// Prefix of [`group_partition`] names.
pub const GROUP_PARTITION_PREFIX: &str = "__consumer_offsets:";

fn storage_err(e: io::Error) -> TxnError {
    tracing::warn!(error = %e, "transaction log write failed");
    TxnError::Storage
}

#[cfg(test)]
mod tests;
