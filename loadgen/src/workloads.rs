//! The workloads: wiring of driver, schedule, recorder and report for each subcommand.

use std::time::Duration;

use anyhow::Context;

use crate::cli::{FloorArgs, LoadArgs, ProduceArgs, Timing};
use crate::drivers::native::{
    self, connect_to_leader, produce_frame, produce_response_frame, FixedFrame, ProduceChecker,
    Target,
};
use crate::floor::{start_echo_server, EchoChecker};
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::report::{IntervalLog, Summary};
use crate::runner::{self, Checker, Encoder, RunConfig};
use crate::schedule::{Clock, NS_PER_S};
use crate::wire::{FrameReader, PollMode};

/// Length of one interval of the interval log.
const INTERVAL_NS: u64 = NS_PER_S;

/// Everything a request/response run needs besides the connection.
pub struct Job<'a> {
    pub workload: &'a str,
    pub driver: &'a str,
    pub params: serde_json::Value,
    pub load: &'a LoadArgs,
    pub timing: Timing,
}

/// A recorder with the interval log attached when asked, and its writer.
pub fn recorder_for(
    load: &LoadArgs,
    what: &str,
) -> anyhow::Result<(Recorder, Option<IntervalLog>)> {
    let ilog = match &load.interval_log {
        Some(p) => Some(IntervalLog::start(p.clone(), format!("loadgen {what}"))?),
        None => None,
    };
    let mut rec = Recorder::new(0);
    if let Some(l) = &ilog {
        rec = rec.with_intervals(INTERVAL_NS, l.sink.clone());
    }
    Ok((rec, ilog))
}

/// Runs the request loop over `conn` and summarises it.
pub fn execute(
    job: Job<'_>,
    conn: FrameReader,
    encoder: Box<dyn Encoder>,
    checker: Box<dyn Checker>,
) -> anyhow::Result<Summary> {
    let (rec, ilog) = recorder_for(job.load, job.workload)?;
    let total = Duration::from_nanos(job.timing.warmup_ns + job.timing.duration_ns);
    let progress = Progress::start(!job.load.no_progress, total, rec.progress.clone());
    let cfg = RunConfig {
        schedule: job.timing.schedule,
        warmup_ns: job.timing.warmup_ns,
        duration_ns: job.timing.duration_ns,
        response_timeout: Duration::from_nanos(job.timing.response_timeout_ns),
        pin_core: job.load.pin_core,
    };
    let result = runner::run(conn, Clock::new(), &cfg, rec, encoder, checker);
    if let Some(p) = progress {
        p.finish();
    }
    let result = result?;
    if let Some(l) = ilog {
        l.finish()?;
    }
    Ok(Summary::new(
        job.workload,
        job.driver,
        job.timing.schedule,
        job.params,
        &result.recorder,
        result.sent,
        result.measured_ns,
    ))
}

/// Prints the table, writes the JSON; Ok(false) when the run was not clean.
pub fn report(summary: &Summary, load: &LoadArgs) -> anyhow::Result<bool> {
    print!("{}", summary.table());
    if let Some(path) = &load.json {
        summary.write_json(path)?;
    }
    Ok(summary.clean())
}

fn params<T: serde::Serialize>(args: &T) -> serde_json::Value {
    serde_json::to_value(args).unwrap_or(serde_json::Value::Null)
}

pub fn floor(args: &FloorArgs) -> anyhow::Result<Summary> {
    let timing = args.load.timing()?;
    let target = Target {
        topic: args.topic.clone(),
        partition: 0,
        leader_addr: String::new(),
    };
    let request = produce_frame(&target, 1, args.load.size)?;
    let response = produce_response_frame(&target)?;
    let response_payload_bytes = response.len() - 4;
    let (addr, server) = start_echo_server(args.mode, response)?;
    let stream = native::connect(&addr.to_string())?;
    let conn = FrameReader::new(stream, args.mode)?;
    let job = Job {
        workload: "floor",
        driver: match args.mode {
            PollMode::Blocking => "echo-blocking",
            PollMode::BusyPoll => "echo-busy-poll",
        },
        params: params(args),
        load: &args.load,
        timing,
    };
    let encoder = FixedFrame {
        frame: request,
        payload_bytes: args.load.size as u64,
    };
    let summary = execute(
        job,
        conn,
        Box::new(encoder),
        Box::new(EchoChecker {
            response_payload_bytes,
        }),
    )?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("echo server panicked"))?
        .context("echo server")?;
    Ok(summary)
}

pub fn produce(args: &ProduceArgs) -> anyhow::Result<Summary> {
    let timing = args.load.timing()?;
    args.validate()?;
    let (client, target) = connect_to_leader(
        &args.target.bootstrap,
        &args.target.topic,
        args.target.partition,
        PollMode::Blocking,
    )?;
    let encoder = FixedFrame {
        frame: produce_frame(&target, args.acks, args.load.size)?,
        payload_bytes: args.load.size as u64,
    };
    let job = Job {
        workload: "produce",
        driver: "native",
        params: params(args),
        load: &args.load,
        timing,
    };
    execute(
        job,
        client.into_reader(),
        Box::new(encoder),
        Box::new(ProduceChecker::default()),
    )
}
