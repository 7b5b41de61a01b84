//! The workloads: wiring of driver, schedule, recorder and report for each subcommand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;

use crate::cli::{Driver, E2eArgs, FetchArgs, FloorArgs, LoadArgs, ProduceArgs, Timing};
use crate::consumer::Consumer;
use crate::drivers::native::{
    self, connect_to_leader, encode_batch, log_end_offset, produce_frame, produce_outcome,
    produce_request, produce_response_frame, FixedFrame, ProduceChecker, SeqEncoder, Target,
    PRODUCE_VERSION,
};
use crate::floor::{start_echo_server, EchoChecker};
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::report::{IntervalLog, Summary};
use crate::runner::{self, Checker, Encoder, RunConfig};
use crate::schedule::{Clock, NS_PER_S};
use crate::schedule::{Sample, Schedule};
use crate::verify::{encode_value, ValueHeader};
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
        start_ns: None,
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
    let request = produce_frame(&target, 1, args.load.size, 1)?;
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
    if args.driver == Driver::Rdkafka {
        return produce_rdkafka(args, timing);
    }
    let (client, target) = connect_to_leader(
        &args.target.bootstrap,
        &args.target.topic,
        args.target.partition,
        PollMode::Blocking,
    )?;
    let encoder = FixedFrame {
        frame: produce_frame(&target, args.acks, args.load.size, args.batch as usize)?,
        payload_bytes: args.load.size as u64 * args.batch as u64,
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

/// acks used to prepare the fetch backlog: the leader has it before we read it.
const BACKLOG_ACKS: i16 = -1;
/// "Not known yet" for the e2e consumer's expected record count.
const EXPECTED_UNKNOWN: u64 = u64::MAX;

fn rate(n: u64, ns: u64) -> f64 {
    n as f64 * NS_PER_S as f64 / ns.max(1) as f64
}

pub fn fetch(args: &FetchArgs) -> anyhow::Result<Summary> {
    args.validate()?;
    let timeout = Duration::from_secs_f64(args.response_timeout_s);
    let (mut client, target) = connect_to_leader(
        &args.target.bootstrap,
        &args.target.topic,
        args.target.partition,
        PollMode::Blocking,
    )?;
    let start_offset = log_end_offset(&mut client, &target)?;
    let clock = Clock::new();
    let prepared = Instant::now();
    let mut seq = 0u64;
    let mut value = Vec::with_capacity(args.size);
    while seq < args.records {
        let n = (args.batch as u64).min(args.records - seq);
        let values: Vec<Bytes> = (seq..seq + n)
            .map(|s| {
                value.clear();
                let h = ValueHeader {
                    seq: s,
                    intended_ns: 0,
                    stamp_ns: clock.now_ns(),
                };
                encode_value(h, args.size, &mut value);
                Bytes::copy_from_slice(&value)
            })
            .collect();
        let req = produce_request(&target, BACKLOG_ACKS, encode_batch(&values)?);
        let resp = client.call(&req, PRODUCE_VERSION)?;
        for (_, r) in produce_outcome(&resp) {
            if let Err(code) = r {
                bail!("producing the backlog at seq {seq} failed with error code {code}");
            }
        }
        seq += n;
    }
    eprintln!(
        "loadgen: backlog of {} records from offset {start_offset} produced in {:.2} s",
        args.records,
        prepared.elapsed().as_secs_f64()
    );

    runner::pin_current_thread(args.pin_core)?;
    // The backlog is complete, so no long-poll: an empty answer means the end of the log.
    let mut consumer = Consumer::new(
        client,
        target,
        start_offset,
        0,
        args.max_bytes,
        args.records,
    );
    let mut rec = Recorder::new(0);
    let t0_ns = clock.now_ns();
    let mut last_progress = Instant::now();
    while !consumer.verifier.complete() {
        let sent_ns = clock.now_ns();
        let polled = consumer.poll(|_, _| {})?;
        let done_ns = clock.now_ns();
        let s = Sample {
            intended_ns: sent_ns,
            sent_ns,
            done_ns,
        };
        rec.record(s, polled.bytes);
        if polled.records > 0 {
            last_progress = Instant::now();
        } else if consumer.offset >= polled.high_watermark || last_progress.elapsed() > timeout {
            break;
        }
    }
    let measured_ns = clock.now_ns() - t0_ns;
    let report = consumer.verifier.report();
    let mut summary = Summary::new(
        "fetch",
        "native",
        Schedule::Closed { inflight: 1 },
        params(args),
        &rec,
        rec.count(),
        measured_ns,
    );
    summary.latency_from = "actual send of each Fetch request (closed loop)".into();
    summary.records = Some(report.received);
    summary.records_per_s = Some(rate(report.received, measured_ns));
    summary.verification = Some(report);
    Ok(summary)
}

pub fn e2e(args: &E2eArgs) -> anyhow::Result<Summary> {
    let timing = args.validate()?;
    let connect = || {
        connect_to_leader(
            &args.target.bootstrap,
            &args.target.topic,
            args.target.partition,
            PollMode::Blocking,
        )
    };
    let (producer, target) = connect()?;
    let (mut consumer_client, _) = connect()?;
    let start_offset = log_end_offset(&mut consumer_client, &target)?;
    let clock = Clock::new();
    let start_ns = clock.now_ns();
    let (rec, ilog) = recorder_for(&args.load, "e2e")?;
    let mut rec = rec;
    rec.warmup_end_ns = start_ns + timing.warmup_ns;
    let total = Duration::from_nanos(timing.warmup_ns + timing.duration_ns);
    let progress = Progress::start(!args.load.no_progress, total, rec.progress.clone());
    let expected = Arc::new(AtomicU64::new(EXPECTED_UNKNOWN));
    let timeout = Duration::from_nanos(timing.response_timeout_ns);

    let consumer_thread = {
        let (expected, target, pin) = (expected.clone(), target.clone(), args.load.pin_core);
        let (max_wait_ms, max_bytes) = (args.max_wait_ms, args.max_bytes);
        std::thread::Builder::new()
            .name("loadgen-consume".into())
            .spawn(
                move || -> anyhow::Result<(Recorder, crate::verify::VerifyReport)> {
                    runner::pin_current_thread(pin)?;
                    let mut c = Consumer::new(
                        consumer_client,
                        target,
                        start_offset,
                        max_wait_ms,
                        max_bytes,
                        EXPECTED_UNKNOWN,
                    );
                    let mut last_progress = Instant::now();
                    loop {
                        let n = expected.load(Ordering::Acquire);
                        if n != EXPECTED_UNKNOWN {
                            c.verifier.set_expected(n);
                            if c.verifier.complete() || last_progress.elapsed() > timeout {
                                break;
                            }
                        }
                        // One arrival instant per Fetch answer, taken at the first record.
                        let mut done_ns = None;
                        let polled = c.poll(|h, len| {
                            let done = *done_ns.get_or_insert_with(|| clock.now_ns());
                            if let Some(h) = h {
                                let s = Sample {
                                    intended_ns: h.intended_ns,
                                    sent_ns: h.stamp_ns,
                                    done_ns: done,
                                };
                                rec.record(s, len as u64);
                            }
                        })?;
                        if polled.records > 0 {
                            last_progress = Instant::now();
                        }
                    }
                    rec.finish(clock.now_ns());
                    Ok((rec, c.verifier.report()))
                },
            )
            .context("starting the consumer thread")?
    };

    let cfg = RunConfig {
        schedule: timing.schedule,
        warmup_ns: timing.warmup_ns,
        duration_ns: timing.duration_ns,
        response_timeout: timeout,
        pin_core: args.load.pin_core,
        start_ns: Some(start_ns),
    };
    let encoder = SeqEncoder::new(target, args.acks, args.load.size, clock);
    let produced = runner::run(
        producer.into_reader(),
        clock,
        &cfg,
        Recorder::new(0),
        Box::new(encoder),
        Box::new(ProduceChecker::default()),
    );
    // The consumer stops once it has everything that was sent (or nothing, on failure).
    let sent = produced.as_ref().map_or(0, |r| r.sent);
    expected.store(sent, Ordering::Release);
    let consumed = consumer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"));
    if let Some(p) = progress {
        p.finish();
    }
    let produced = produced.context("producer")?;
    let (rec, report) = consumed?.context("consumer")?;
    if let Some(l) = ilog {
        l.finish()?;
    }
    let mut summary = Summary::new(
        "e2e",
        "native",
        timing.schedule,
        params(args),
        &rec,
        sent,
        timing.duration_ns,
    );
    summary.latency_from = match timing.schedule {
        Schedule::Closed { .. } => "producer's stamp before encoding to consumption (closed loop)",
        Schedule::Open { .. } => "intended send to consumption (open loop, CO-corrected)",
    }
    .into();
    summary.errors += produced.recorder.errors;
    summary.timeouts += produced.recorder.timeouts;
    summary.records = Some(report.received);
    summary.records_per_s = Some(rate(rec.count(), timing.duration_ns));
    summary.verification = Some(report);
    Ok(summary)
}

fn produce_rdkafka(args: &ProduceArgs, timing: Timing) -> anyhow::Result<Summary> {
    // librdkafka retries an unreachable bootstrap forever; fail fast and clearly instead.
    drop(native::connect(&args.target.bootstrap)?);
    let props = crate::drivers::rdkafka::parse_properties(&args.properties)?;
    let config =
        crate::drivers::rdkafka::producer_config(&args.target.bootstrap, args.acks, &props);
    let (rec, ilog) = recorder_for(&args.load, "produce rdkafka")?;
    let total = Duration::from_nanos(timing.warmup_ns + timing.duration_ns);
    let progress = Progress::start(!args.load.no_progress, total, rec.progress.clone());
    let cfg = RunConfig {
        schedule: timing.schedule,
        warmup_ns: timing.warmup_ns,
        duration_ns: timing.duration_ns,
        response_timeout: Duration::from_nanos(timing.response_timeout_ns),
        pin_core: args.load.pin_core,
        start_ns: None,
    };
    let result = crate::drivers::rdkafka::produce(
        &config,
        &args.target.topic,
        args.target.partition,
        args.load.size,
        &cfg,
        rec,
        Clock::new(),
    );
    if let Some(p) = progress {
        p.finish();
    }
    let result = result?;
    if let Some(l) = ilog {
        l.finish()?;
    }
    let mut summary = Summary::new(
        "produce",
        "rdkafka",
        timing.schedule,
        params(args),
        &result.recorder,
        result.sent,
        result.measured_ns,
    );
    summary.latency_from = match timing.schedule {
        Schedule::Closed { .. } => "enqueue into librdkafka to delivery callback (closed loop)",
        Schedule::Open { .. } => "intended send to delivery callback (open loop, CO-corrected)",
    }
    .into();
    Ok(summary)
}
