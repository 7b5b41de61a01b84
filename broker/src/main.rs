//! `strikemq`: parse flags into a typed configuration, probe it against this kernel,
//! start everything (`strikemq::startup`), and shut down cleanly on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use strikemq::config::{Config, Profile};

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
    let effective = strikemq::net::probe::resolve(requested);
    if cli.print_config {
        println!("{}", serde_json::to_string_pretty(&effective)?);
        return Ok(());
    }

    // Block the shutdown signals before any thread starts so that every thread inherits
    // the mask and only the main thread's sigwait sees them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("blocking signals")?;

    let started = std::time::Instant::now();
    let banner = effective.banner_lines();
    let data_dir = effective.config.data_dir.clone();
    let running = strikemq::startup::start(effective)?;

    eprintln!(
        "strikemq {} — Kafka-compatible broker",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!(
        "  kafka listener: {} (advertised as {})",
        running.kafka_addr, running.advertised
    );
    eprintln!(
        "  admin listener: http://{} (REST admin API, /metrics)",
        running.admin_addr
    );
    eprintln!(
        "  data dir: {} ({} topics recovered)",
        data_dir.display(),
        running.storage.topics().len()
    );
    eprintln!(
        "  consumer groups: {} with committed offsets",
        running.groups.groups_with_offsets()
    );
    eprintln!("  effective configuration:");
    for line in banner {
        eprintln!("{line}");
    }
    eprintln!("  ready in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    // The one machine-readable line on stdout: harnesses wait for it.
    println!(
        "strikemq ready kafka={} admin={}",
        running.kafka_addr, running.admin_addr
    );

    let signal = signals.wait().context("waiting for a signal")?;
    tracing::info!(?signal, "shutting down");
    running.shutdown()?;
    tracing::info!("stopped cleanly");
    Ok(())
}
