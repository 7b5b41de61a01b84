//! The start-up story in one place, top to bottom: effective configuration → storage →
//! data plane (its wake-up) → group coordinator → broker → background threads →
//! listeners → data plane threads → admin API. Every dependency is passed in; nothing
//! is wired afterwards. [`Running::shutdown`] undoes it in the right order.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::admin::{AdminContext, AdminServer};
use crate::broker::Broker;
use crate::config::EffectiveConfig;
use crate::group::Coordinator;
use crate::net::{DataPlane, Server};
use crate::storage::{FlushPolicy, RetentionPolicy, Storage, StorageConfig};
use crate::txn::{TxnConfig, TxnCoordinator};

/// A serving broker: what [`start`] built, for the banner and for [`Running::shutdown`].
pub struct Running {
    pub kafka_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub advertised: String,
    pub storage: Arc<Storage>,
    pub groups: Arc<Coordinator>,
    pub txn: Arc<TxnCoordinator>,
    server: Server,
    admin: AdminServer,
    flusher: Background,
    retention: Background,
}

/// A background thread that sleeps until it is due or told to stop.
struct Background {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Background {
    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// Builds and starts everything for `effective` (already probed: `net::probe::resolve`).
pub fn start(effective: EffectiveConfig) -> anyhow::Result<Running> {
    let cfg = effective.config.clone();
    let flush = cfg.flush;
    let storage = Arc::new(
        Storage::open(StorageConfig::from_config(&cfg))
            .with_context(|| format!("opening data directory {}", cfg.data_dir.display()))?,
    );
    // The data plane's shared state exists before any thread runs, so that its
    // wake-up can be handed to the coordinator and the broker.
    let data_plane = DataPlane::new(&cfg).context("preparing the data plane")?;
    let groups = Arc::new(
        Coordinator::open(
            &cfg.data_dir,
            flush,
            crate::group::GroupConfig::from_config(&cfg),
            data_plane.waker(),
        )
        .with_context(|| format!("opening committed offsets in {}", cfg.data_dir.display()))?,
    );
    let listener = TcpListener::bind(cfg.listen)
        .with_context(|| format!("binding Kafka listener {}", cfg.listen))?;
    let admin_listener = TcpListener::bind(cfg.admin_listen)
        .with_context(|| format!("binding admin listener {}", cfg.admin_listen))?;
    let kafka_addr = listener.local_addr()?;
    let host = cfg.advertised_host(kafka_addr);
    let txn = Arc::new(
        TxnCoordinator::open(
            &cfg.data_dir,
            flush,
            TxnConfig {
                max_timeout_ms: cfg.transaction_max_timeout_ms,
                max_ids: cfg.max_transactional_ids,
            },
        )
        .with_context(|| format!("opening the transaction log in {}", cfg.data_dir.display()))?,
    );
    let broker = Arc::new(
        Broker::new(
            effective,
            storage.clone(),
            groups.clone(),
            data_plane.waker(),
            (host.clone(), kafka_addr.port()),
        )
        .with_transactions(txn.clone())
        .context("finishing transactions interrupted by the last stop")?,
    );
    txn.start_timer()
        .context("starting the transaction timeout timer")?;
    let flusher = start_flusher(storage.clone(), groups.clone(), txn.clone())?;
    let retention = start_retention(storage.clone(), &cfg)?;
    let server = data_plane
        .start(broker.clone(), listener)
        .context("starting the data plane")?;
    let advertised = format!("{host}:{}", kafka_addr.port());
    let admin = AdminServer::start(
        admin_listener,
        AdminContext {
            broker,
            net: server.stats(),
            kafka_addr,
            advertised: advertised.clone(),
            admin_addr: cfg.admin_listen,
            flusher: Some(flusher.thread.thread().clone()),
        },
    )
    .context("starting the admin API")?;
    Ok(Running {
        kafka_addr,
        admin_addr: admin.local_addr(),
        advertised,
        storage,
        groups,
        txn,
        server,
        admin,
        flusher,
        retention,
    })
}

/// The flush policy can change at runtime (PUT /v1/config), so the flusher always runs
/// and follows the policy in force; outside interval mode it sleeps until the admin API
/// wakes it with a new policy (or shutdown does).
fn start_flusher(
    storage: Arc<Storage>,
    groups: Arc<Coordinator>,
    txn: Arc<TxnCoordinator>,
) -> anyhow::Result<Background> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("strikemq-flush".into())
        .spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                match storage.flush_policy() {
                    FlushPolicy::IntervalMs(ms) => {
                        std::thread::park_timeout(Duration::from_millis(ms));
                        if let Err(e) = storage.flush_all() {
                            tracing::warn!(error = %e, "periodic flush failed");
                        }
                        if let Err(e) = txn.sync() {
                            tracing::warn!(error = %e, "periodic sync of the transaction log failed");
                        }
                        if let Err(e) = groups.sync_offsets() {
                            tracing::warn!(error = %e, "periodic sync of committed offsets failed");
                        }
                    }
                    _ => std::thread::park(),
                }
            }
        })
        .context("starting the flusher")?;
    Ok(Background { stop, thread })
}

/// Retention every `retention_check_interval_ms` and compaction of
/// `cleanup.policy=compact` topics every `log_cleaner_backoff_ms` (Kafka's cleaner
/// wakes as often), on one thread sleeping until the nearer of the two (an idle broker
/// wakes once per interval, not per loop tick). Unlinking and rewriting happen in the
/// pass, outside the partition locks, so the data path never waits for them.
fn start_retention(
    storage: Arc<Storage>,
    cfg: &crate::config::Config,
) -> anyhow::Result<Background> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let defaults = RetentionPolicy {
        retention_ms: cfg.retention_ms,
        retention_bytes: cfg.retention_bytes,
    };
    let retention_every = Duration::from_millis(cfg.retention_check_interval_ms);
    let compaction_every = Duration::from_millis(cfg.log_cleaner_backoff_ms);
    let thread = std::thread::Builder::new()
        .name("strikemq-retention".into())
        .spawn(move || {
            let mut next_retention = Instant::now() + retention_every;
            let mut next_compaction = Instant::now() + compaction_every;
            loop {
                let deadline = next_retention.min(next_compaction);
                loop {
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::park_timeout(deadline - now);
                }
                let now = Instant::now();
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                if now >= next_retention {
                    storage.enforce_retention(defaults, now_ms);
                    next_retention = now + retention_every;
                }
                if now >= next_compaction {
                    storage.compact(now_ms);
                    next_compaction = now + compaction_every;
                }
            }
        })
        .context("starting the retention thread")?;
    Ok(Background { stop, thread })
}

impl Running {
    /// Stops serving: both drains are bounded (admin::SHUTDOWN_WAIT_MS,
    /// net::SHUTDOWN_DRAIN_MS) and run side by side, so that SIGTERM exits within a
    /// second even with stuck clients; then the background threads, the coordinator
    /// (after the data plane: parked joins and syncs were answered, no commit is in
    /// flight) and a final flush.
    pub fn shutdown(self) -> anyhow::Result<()> {
        let admin = self.admin;
        let admin_stopping = std::thread::Builder::new()
            .name("strikemq-admin-stop".into())
            .spawn(move || admin.shutdown())
            .context("starting the admin shutdown")?;
        self.server.shutdown();
        let _ = admin_stopping.join();
        self.flusher.stop();
        self.retention.stop();
        self.groups.shutdown();
        self.txn.shutdown();
        self.storage.flush_all().context("final flush")?;
        Ok(())
    }
}
