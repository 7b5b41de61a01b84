//! `strikemq`: parse flags into a typed configuration, open storage, serve, and shut
//! down cleanly on SIGINT/SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use strikemq::admin::{AdminContext, AdminServer};
use strikemq::broker::Broker;
use strikemq::config::{Config, EffectiveConfig, Flush, LogMapKind, Profile};
use strikemq::group::Coordinator;
use strikemq::net::Server;
use strikemq::storage::{FlushPolicy, LogMapLayout, RetentionPolicy, Storage, StorageConfig};

/// A Kafka-wire-compatible single-node broker for local development and latency research.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Kafka listener address (port 0 picks a free port) [default: 127.0.0.1:9092]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// REST admin listener address [default: 127.0.0.1:8080]
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Data directory [default: ./strikemq-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Host name reported to clients in Metadata [default: the listener's IP]
    #[arg(long)]
    advertised_host: Option<String>,
    /// TOML file with configuration keys (see README)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Starting point for every toggle
    #[arg(long, value_enum, default_value = "baseline")]
    profile: Profile,
    /// Set any configuration key: --set key=value (repeatable; wins over the file)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Print the effective configuration as JSON and exit
    #[arg(long)]
    print_config: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("strikemq: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRIKEMQ_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let mut sets = cli.sets.clone();
    let flag = |k: &str, v: String| format!("{k}={}", toml::Value::String(v));
    if let Some(a) = cli.listen {
        sets.push(flag("listen", a.to_string()));
    }
    if let Some(a) = cli.admin_listen {
        sets.push(flag("admin_listen", a.to_string()));
    }
    if let Some(d) = &cli.data_dir {
        sets.push(flag("data_dir", d.display().to_string()));
    }
    if let Some(h) = &cli.advertised_host {
        sets.push(flag("advertised_host", h.clone()));
    }
    let requested = Config::load(cli.profile, cli.config.as_deref(), &sets)?;
    let effective = EffectiveConfig::resolve(requested);
    if cli.print_config {
        println!("{}", serde_json::to_string_pretty(&effective)?);
        return Ok(());
    }
    let cfg = effective.config.clone();

    // Block the shutdown signals before any thread starts so that every thread inherits
    // the mask and only the main thread's sigwait sees them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking signals")?;

    let started = std::time::Instant::now();
    let flush = match cfg.flush {
        Flush::Never => FlushPolicy::Never,
        Flush::Always => FlushPolicy::Always,
        Flush::IntervalMs(ms) => FlushPolicy::IntervalMs(ms),
    };
    let storage = Arc::new(
        Storage::open(StorageConfig {
            data_dir: cfg.data_dir.clone(),
            segment_bytes: cfg.segment_bytes,
            index_interval_bytes: cfg.index_interval_bytes,
            flush,
            segment_prefault_bytes: cfg.segment_prefault_bytes,
            segment_hugepages: cfg.segment_hugepages,
            segment_write: cfg.segment_write,
            max_batch_bytes: cfg.max_message_bytes,
            log_map: match cfg.log_map {
                LogMapKind::Global => LogMapLayout::Global,
                LogMapKind::Sharded => LogMapLayout::Sharded {
                    shards: cfg.log_map_shards,
                },
            },
        })
        .with_context(|| format!("opening data directory {}", cfg.data_dir.display()))?,
    );
    let groups = Arc::new(
        Coordinator::open(&cfg.data_dir, flush)
            .with_context(|| format!("opening committed offsets in {}", cfg.data_dir.display()))?,
    );
    let listener = TcpListener::bind(cfg.listen)
        .with_context(|| format!("binding Kafka listener {}", cfg.listen))?;
    let admin_listener = TcpListener::bind(cfg.admin_listen)
        .with_context(|| format!("binding admin listener {}", cfg.admin_listen))?;
    let bound = listener.local_addr()?;
    let host = cfg.advertised_host(bound);
    let broker = Arc::new(Broker::new(
        effective.clone(),
        storage.clone(),
        (host.clone(), bound.port()),
    ));
    // The flush policy can change at runtime (PUT /v1/config), so the flusher always
    // runs and follows the policy in force; outside interval mode it sleeps until the
    // admin API wakes it with a new policy (or shutdown does).
    let stop_flusher = Arc::new(AtomicBool::new(false));
    let flusher = {
        let storage = storage.clone();
        let groups = groups.clone();
        let stop = stop_flusher.clone();
        std::thread::Builder::new()
            .name("strikemq-flush".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match storage.flush_policy() {
                        FlushPolicy::IntervalMs(ms) => {
                            std::thread::park_timeout(Duration::from_millis(ms));
                            if let Err(e) = storage.flush_all() {
                                tracing::warn!(error = %e, "periodic flush failed");
                            }
                            if let Err(e) = groups.sync_offsets() {
                                tracing::warn!(error = %e, "periodic sync of committed offsets failed");
                            }
                        }
                        _ => std::thread::park(),
                    }
                }
            })
            .context("starting the flusher")?
    };

    // Retention: one pass per interval, sleeping the whole interval in between (an
    // idle broker wakes once per interval, not per loop tick). Unlinking happens in
    // the pass, outside the partition locks, so the data path never waits for it.
    let stop_retention = Arc::new(AtomicBool::new(false));
    let retention = {
        let storage = storage.clone();
        let stop = stop_retention.clone();
        let defaults = RetentionPolicy {
            retention_ms: cfg.retention_ms,
            retention_bytes: cfg.retention_bytes,
        };
        let interval = Duration::from_millis(cfg.retention_check_interval_ms);
        std::thread::Builder::new()
            .name("strikemq-retention".into())
            .spawn(move || loop {
                let deadline = std::time::Instant::now() + interval;
                loop {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::park_timeout(deadline - now);
                }
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                storage.enforce_retention(defaults, now_ms);
            })
            .context("starting the retention thread")?
    };

    broker.set_group_coordinator(groups.clone());
    let server = Server::start(broker.clone(), listener).context("starting the data plane")?;
    let admin = AdminServer::start(
        admin_listener,
        AdminContext {
            broker,
            net: server.stats(),
            kafka_addr: bound,
            advertised: format!("{host}:{}", bound.port()),
            admin_addr: cfg.admin_listen,
            flusher: Some(flusher.thread().clone()),
        },
    )
    .context("starting the admin API")?;
    let admin_addr = admin.local_addr();

    eprintln!(
        "strikemq {} — Kafka-compatible broker",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!(
        "  kafka listener: {bound} (advertised as {host}:{})",
        bound.port()
    );
    eprintln!("  admin listener: http://{admin_addr} (REST admin API, /metrics)");
    eprintln!(
        "  data dir: {} ({} topics recovered)",
        cfg.data_dir.display(),
        storage.topics().len()
    );
    eprintln!(
        "  consumer groups: {} with committed offsets",
        groups.groups_with_offsets()
    );
    eprintln!("  effective configuration:");
    for line in effective.banner_lines() {
        eprintln!("{line}");
    }
    eprintln!("  ready in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    // The one machine-readable line on stdout: harnesses wait for it.
    println!("strikemq ready kafka={bound} admin={admin_addr}");

    let signal = signals.wait().context("waiting for a signal")?;
    tracing::info!(?signal, "shutting down");
    // Both drains are bounded (admin::SHUTDOWN_WAIT_MS, net::SHUTDOWN_DRAIN_MS) and run
    // side by side, so that SIGTERM exits within a second even with stuck clients.
    let admin_stopping = std::thread::Builder::new()
        .name("strikemq-admin-stop".into())
        .spawn(move || admin.shutdown())
        .context("starting the admin shutdown")?;
    server.shutdown();
    let _ = admin_stopping.join();
    stop_flusher.store(true, Ordering::Release);
    flusher.thread().unpark();
    let _ = flusher.join();
    stop_retention.store(true, Ordering::Release);
    retention.thread().unpark();
    let _ = retention.join();
    // After the data plane: parked joins and syncs were answered, no commit is in flight.
    groups.shutdown();
    storage.flush_all().context("final flush")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
