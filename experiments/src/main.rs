//! `experiments`: run a named experiment (`experiments/NAME.toml`) honestly, keep its
//! results, and redraw plots and the release table from what was kept.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod definition;
mod plots;
mod results;
mod runner;
mod table;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Repository root (default: the current directory if it has experiments/, else the
    /// checkout this binary was built from).
    #[arg(long, global = true)]
    repo: Option<PathBuf>,
    /// Where results folders go (default: REPO/results).
    #[arg(long, global = true)]
    results_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the experiments with their questions.
    List,
    /// Run an experiment (a name under experiments/ or a path to a .toml file).
    Run {
        name: String,
        /// Target an external Kafka-compatible cluster instead of starting brokers.
        #[arg(long)]
        bootstrap: Option<String>,
        /// Broker binary (default: cargo build --release, then target/release/strikemq).
        #[arg(long)]
        broker_bin: Option<PathBuf>,
        /// loadgen binary (default: cargo build --release, then target/release/loadgen).
        #[arg(long)]
        loadgen_bin: Option<PathBuf>,
        /// Override the definition's repetitions.
        #[arg(long)]
        repetitions: Option<u32>,
        /// Multiply every duration and warm-up (recorded in meta.json).
        #[arg(long)]
        duration_scale: Option<f64>,
        /// Directory on a real disk for experiments with data_dirs = ["disk"]
        /// (default: REPO/target; refused if it is tmpfs).
        #[arg(long)]
        disk_dir: Option<PathBuf>,
    },
    /// Redraw the plots of an experiment's latest results folder (or --dir) from saved data.
    Plots {
        name: String,
        /// A specific results folder instead of the latest.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Regenerate results/RELEASE.md (and the README's table) from committed results.
    ReleaseTable {
        /// README to update between its release-table markers (default: REPO/README.md).
        #[arg(long)]
        readme: Option<PathBuf>,
        /// Do not touch any README.
        #[arg(long)]
        no_readme: bool,
    },
}

fn repo_root(given: Option<PathBuf>) -> PathBuf {
    if let Some(r) = given {
        return r;
    }
    if let Ok(cwd) = std::env::current_dir() {
        if cwd.join("experiments").is_dir() && cwd.join("Cargo.toml").is_file() {
            return cwd;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let repo = repo_root(cli.repo);
    let results_dir = cli.results_dir.unwrap_or_else(|| repo.join("results"));
    match cli.cmd {
        Cmd::List => {
            for e in definition::load_all(&repo)? {
                let q = e.question.split_whitespace().collect::<Vec<_>>().join(" ");
                let runs = e.variants().len();
                let expanded = if runs != e.configs.len() || e.passes > 1 {
                    format!(" ({runs} runs per repetition, {} passes)", e.passes)
                } else {
                    String::new()
                };
                println!(
                    "{:<18} {} configs × {} reps{expanded}\n    {q}\n",
                    e.name,
                    e.configs.len(),
                    e.repetitions
                );
            }
        }
        Cmd::Run {
            name,
            bootstrap,
            broker_bin,
            loadgen_bin,
            repetitions,
            duration_scale,
            disk_dir,
        } => {
            let (exp, text) = definition::load(&repo, &name)?;
            let opts = runner::Options {
                repo: repo.clone(),
                results_dir,
                bootstrap,
                broker_bin,
                loadgen_bin,
                repetitions,
                duration_scale,
                disk_dir,
            };
            runner::run(exp, &text, &opts)?;
        }
        Cmd::Plots { name, dir } => {
            let dir = match dir {
                Some(d) => d,
                None => results::latest_run_dir(&results_dir, &name)?,
            };
            let written = plots::draw_all(&dir)
                .with_context(|| format!("drawing plots in {}", dir.display()))?;
            for w in written {
                println!("{}", dir.join(w).display());
            }
        }
        Cmd::ReleaseTable { readme, no_readme } => {
            let readme = if no_readme {
                None
            } else {
                Some(readme.unwrap_or_else(|| repo.join("README.md")))
            };
            let out = table::write(&results_dir, readme.as_deref())?;
            println!("{}", out.display());
        }
    }
    Ok(())
}
