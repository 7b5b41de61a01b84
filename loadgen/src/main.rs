//! `loadgen`: see `loadgen --help`. Exit codes: 0 clean run, 1 a run with errors,
//! timeouts or failed verification (or an internal failure), 2 bad parameters or an
//! unreachable broker.

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Cmd};
use loadgen::error::is_usage;
use loadgen::workloads;

fn run(cli: Cli) -> anyhow::Result<bool> {
    let (summary, load) = match &cli.cmd {
        Cmd::Floor(a) => (workloads::floor(a)?, &a.load),
        Cmd::Produce(a) => (workloads::produce(a)?, &a.load),
        Cmd::E2e(a) => (workloads::e2e(a)?, &a.load),
        Cmd::Fetch(a) => {
            let summary = workloads::fetch(a)?;
            print!("{}", summary.table());
            if let Some(path) = &a.json {
                summary.write_json(path)?;
            }
            return Ok(summary.clean());
        }
    };
    workloads::report(&summary, load)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: the run had errors, timeouts or failed verification");
            ExitCode::from(1)
        }
        Err(e) if is_usage(&e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
