//! The workloads: wiring of driver, schedule, recorder and report for each subcommand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use serde_json::json;

use crate::cli::{
    Driver, E2eArgs, FetchArgs, FloorArgs, FloorMode, LoadArgs, ProduceArgs, TargetArgs, Timing,
};
use crate::consumer::Consumer;
use crate::drivers::native::{
    self, connect_leader, discover, encode_batch, log_end_offsets, produce_frame, produce_outcome,
    produce_request, produce_response_frame, FixedFrame, MessageEncoder, ProduceChecker,
    RoundRobinFrames, Target, PRODUCE_VERSION,
};
use crate::drivers::rdkafka as rdk;
use crate::floor::{start_echo_server, EchoChecker};
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::report::{IntervalLog, Summary};
use crate::runner::{self, Checker, Encoder, RunConfig, RunResult};
use crate::schedule::{Clock, NS_PER_S};
use crate::schedule::{Sample, Schedule};
use crate::shape::KeyDist;
use crate::shape::{
    by_leader, consumer_assignments, new_counts, producer_streams, rate_share, Counts, Messages,
    Picker, StreamPlan,
};
use crate::verify::{encode_value, ValueHeader};
use crate::verify::{Expected, VerifyReport, VerifySet};
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
        Some(p) => Some(IntervalLog::start(p.clone(), format!("loadgen {what}"), 1)?),
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
    args.validate()?;
    let target = Target {
        topic: args.topic.clone(),
        partition: 0,
        leader_addr: String::new(),
    };
    let payload_bytes = args.load.size as u64 * args.batch as u64;
    if let Some(dir) = &args.storage {
        let values = vec![Bytes::from(vec![0u8; args.load.size]); args.batch as usize];
        let batch = encode_batch(&values)?;
        let cfg = crate::floor::StorageFloor {
            dir: dir.clone(),
            write_bytes: batch.len(),
            payload_bytes,
            sync: args.sync,
            warmup_ns: timing.warmup_ns,
            duration_ns: timing.duration_ns,
            max_bytes: crate::cli::file_floor_cap(dir, args.storage_max_bytes, batch.len() as u64),
        };
        let (rec, storage) = crate::floor::run_storage_floor(&cfg)?;
        let mut summary = Summary::new(
            "floor",
            if args.sync {
                "storage-fdatasync"
            } else {
                "storage-write"
            },
            timing.schedule,
            params(args),
            &rec,
            rec.count(),
            storage.first_pass.ns,
        );
        summary.latency_from = if args.sync {
            "start of each write(2) to the end of its fdatasync (first pass, new file, after the warm-up)"
        } else {
            "start to end of each write(2) into the page cache (first pass, new file, after the warm-up)"
        }
        .into();
        summary.storage = Some(serde_json::to_value(&storage)?);
        return Ok(summary);
    }
    if args.like == crate::cli::FloorLike::Fetch {
        return fetch_floor(args, &target, timing);
    }
    let request = produce_frame(&target, 1, args.load.size, args.batch as usize)?;
    let response = produce_response_frame(&target)?;
    let response_payload_bytes = response.len() - 4;
    let (client_mode, server_mode) = args.mode.ends();
    let sink_cap = args
        .sink
        .as_ref()
        .map(|dir| crate::cli::file_floor_cap(dir, args.storage_max_bytes, request.len() as u64));
    let sink = match (&args.sink, sink_cap) {
        (Some(dir), Some(cap)) => Some(crate::floor::Sink::create(dir, args.sync, cap)?),
        _ => None,
    };
    let (addr, server) = start_echo_server(server_mode, response, sink, None)?;
    let stream = native::connect(&addr.to_string())?;
    let conn = FrameReader::new(stream, client_mode)?;
    let job = Job {
        workload: "floor",
        driver: match (args.mode, &args.sink, args.sync) {
            (FloorMode::Blocking, None, _) => "echo-blocking",
            (FloorMode::ClientBusyPoll, None, _) => "echo-client-busy-poll",
            (FloorMode::BusyPoll, None, _) => "echo-busy-poll",
            (FloorMode::Blocking, Some(_), false) => "echo-sink-write-blocking",
            (FloorMode::ClientBusyPoll, Some(_), false) => "echo-sink-write-client-busy-poll",
            (FloorMode::BusyPoll, Some(_), false) => "echo-sink-write-busy-poll",
            (FloorMode::Blocking, Some(_), true) => "echo-sink-fdatasync-blocking",
            (FloorMode::ClientBusyPoll, Some(_), true) => "echo-sink-fdatasync-client-busy-poll",
            (FloorMode::BusyPoll, Some(_), true) => "echo-sink-fdatasync-busy-poll",
        },
        params: params(args),
        load: &args.load,
        timing,
    };
    let encoder = FixedFrame {
        frame: request,
        payload_bytes,
    };
    let mut summary = execute(
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
    summary.client_wait = Some(client_mode.name().into());
    summary.server_wait = Some(server_mode.name().into());
    if let Some(dir) = &args.sink {
        summary.storage = Some(serde_json::json!({
            "sink": dir.display().to_string(),
            "fs": crate::floor::fs_type(dir),
            "sync": args.sync,
            "file_bytes": sink_cap,
        }));
    }
    Ok(summary)
}

/// The Fetch round trip without a broker: an echo server answers each Fetch with a
/// prepared response of one batch (`--batch` × `--size` records, its base offset
/// advancing), and the client is `loadgen fetch`'s own consumer: the same request, the
/// same decode and checks, one Fetch in flight. The values carry no sequence numbers, so
/// the checker counts them as repeats (the same per-record work, bounded examples).
fn fetch_floor(args: &FloorArgs, target: &Target, timing: Timing) -> anyhow::Result<Summary> {
    let values = vec![Bytes::from(vec![0u8; args.load.size]); args.batch as usize];
    let batch = encode_batch(&values)?;
    let (response, at) = native::fetch_response_frame(target, &batch)?;
    let (client_mode, server_mode) = args.mode.ends();
    let advance = crate::floor::Advance {
        base_offset_at: at,
        records: args.batch as i64,
    };
    let (addr, server) = start_echo_server(server_mode, response, None, Some(advance))?;
    let client = native::Client::connect(&addr.to_string(), client_mode)?;
    let max_bytes = i32::try_from(batch.len()).unwrap_or(i32::MAX);
    let mut consumer = Consumer::new(
        client,
        vec![(target.clone(), 0)],
        0,
        max_bytes,
        VerifySet::new(),
    );
    let clock = Clock::new();
    let warm_until = clock.now_ns() + timing.warmup_ns;
    while clock.now_ns() < warm_until {
        consumer.poll(|_, _| {})?;
    }
    let mut rec = Recorder::new(0);
    let t0 = clock.now_ns();
    while clock.now_ns() - t0 < timing.duration_ns {
        let sent_ns = clock.now_ns();
        let polled = consumer.poll(|_, _| {})?;
        if polled.records == 0 {
            bail!("the fetch floor's answer held no records");
        }
        rec.record(
            Sample {
                intended_ns: sent_ns,
                sent_ns,
                done_ns: clock.now_ns(),
            },
            polled.bytes,
        );
    }
    let measured_ns = clock.now_ns() - t0;
    drop(consumer);
    server
        .join()
        .map_err(|_| anyhow::anyhow!("echo server panicked"))?
        .context("echo server")?;
    let mut summary = Summary::new(
        "floor",
        match args.mode {
            FloorMode::Blocking => "fetch-echo-blocking",
            FloorMode::ClientBusyPoll => "fetch-echo-client-busy-poll",
            FloorMode::BusyPoll => "fetch-echo-busy-poll",
        },
        Schedule::Closed { inflight: 1 },
        params(args),
        &rec,
        rec.count(),
        measured_ns,
    );
    summary.latency_from =
        "send of each Fetch to its decoded, checked answer (closed loop, one in flight)".into();
    summary.client_wait = Some(client_mode.name().into());
    summary.server_wait = Some(server_mode.name().into());
    Ok(summary)
}

/// Delay from the end of setup to the common schedule start, so that no client thread
/// starts while another is still being created.
const START_DELAY_NS: u64 = 20_000_000;
/// acks used to prepare the fetch backlog: the leader has it before we read it.
const BACKLOG_ACKS: i16 = -1;

fn rate(n: u64, ns: u64) -> f64 {
    n as f64 * NS_PER_S as f64 / ns.max(1) as f64
}

/// Recorders for `n` client threads sharing one progress counter and one interval log.
fn recorders(
    load: &LoadArgs,
    n: usize,
    what: &str,
) -> anyhow::Result<(Vec<Recorder>, Option<IntervalLog>, Arc<AtomicU64>)> {
    let ilog = match &load.interval_log {
        Some(p) => Some(IntervalLog::start(p.clone(), format!("loadgen {what}"), n)?),
        None => None,
    };
    let counter = Arc::new(AtomicU64::new(0));
    let recs = (0..n)
        .map(|_| {
            let mut r = Recorder::new(0).with_progress(counter.clone());
            if let Some(l) = &ilog {
                r = r.with_intervals(INTERVAL_NS, l.sink.clone());
            }
            r
        })
        .collect();
    Ok((recs, ilog, counter))
}

fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<JoinHandle<anyhow::Result<T>>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .context("starting a client thread")
}

/// Joins every thread (none is left running), then reports the first failure.
fn join_all<T>(handles: Vec<JoinHandle<anyhow::Result<T>>>, what: &str) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => out.push(t),
            Ok(Err(e)) => {
                first_err.get_or_insert(e.context(format!("a {what} thread")));
            }
            Err(_) => {
                first_err.get_or_insert(anyhow!("a {what} thread panicked"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// One recorder for the whole run (HdrHistogram `add` of every thread's) and the sends.
fn merge(results: &[RunResult]) -> (Recorder, u64) {
    let mut rec = Recorder::new(0);
    let mut sent = 0;
    for r in results {
        rec.merge(&r.recorder);
        sent += r.sent;
    }
    (rec, sent)
}

fn check_streams(n: usize) -> anyhow::Result<()> {
    if n > u16::MAX as usize {
        return Err(crate::error::usage(format!(
            "{n} producer connections: at most {} (producers × connections × leaders)",
            u16::MAX
        )));
    }
    Ok(())
}

/// The run configuration of one producing stream: its share of an open-loop rate, and a
/// phase offset of one interval of the total rate per stream so that the union of the
/// streams' schedules is evenly spaced rather than bursts of simultaneous sends.
fn stream_config(
    timing: &Timing,
    load: &LoadArgs,
    plan: &StreamPlan,
    plans: &[StreamPlan],
    start_ns: u64,
) -> RunConfig {
    let (schedule, phase_ns) = match timing.schedule {
        Schedule::Closed { inflight } => (Schedule::Closed { inflight }, 0),
        Schedule::Open {
            rate_per_s,
            max_inflight,
        } => (
            Schedule::Open {
                rate_per_s: rate_share(rate_per_s, plan, plans),
                max_inflight,
            },
            (plan.id as f64 * NS_PER_S as f64 / rate_per_s) as u64,
        ),
    };
    RunConfig {
        schedule,
        warmup_ns: timing.warmup_ns,
        duration_ns: timing.duration_ns,
        response_timeout: Duration::from_nanos(timing.response_timeout_ns),
        pin_core: load.pin_core,
        start_ns: Some(start_ns + phase_ns),
    }
}

/// librdkafka producers each cover every target (librdkafka connects to each leader).
fn rdkafka_streams(targets: &[Target], producers: u32) -> Vec<StreamPlan> {
    (0..producers)
        .map(|p| StreamPlan {
            id: p as u16,
            producer: p,
            leader: "librdkafka".into(),
            targets: targets.to_vec(),
        })
        .collect()
}

/// The resolved shape, for the summary.
fn layout(
    targets: &[Target],
    producer_threads: usize,
    consumer_threads: usize,
) -> serde_json::Value {
    json!({
        "partitions": targets.iter().map(|t| format!("{}/{}", t.topic, t.partition)).collect::<Vec<_>>(),
        "leaders": by_leader(targets)
            .iter()
            .map(|(l, ts)| json!({ "leader": l, "partitions": ts.len() }))
            .collect::<Vec<_>>(),
        "producer_streams": producer_threads,
        "consumer_threads": consumer_threads,
    })
}

fn discover_targets(t: &TargetArgs) -> anyhow::Result<Vec<Target>> {
    discover(&t.bootstrap, &t.topic_names(), &t.partition_spec())
}

/// Log end offsets of every target, asked of each one's leader.
fn start_offsets(targets: &[Target]) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let mut out = HashMap::new();
    for (leader, ts) in by_leader(targets) {
        let mut client = connect_leader(&leader, PollMode::Blocking)?;
        for (t, o) in ts.iter().zip(log_end_offsets(&mut client, &ts)?) {
            out.insert((t.topic.clone(), t.partition), o);
        }
    }
    Ok(out)
}

fn with_offsets(ts: &[Target], offsets: &HashMap<(String, i32), i64>) -> Vec<(Target, i64)> {
    ts.iter()
        .map(|t| {
            let o = offsets.get(&(t.topic.clone(), t.partition)).copied();
            (t.clone(), o.unwrap_or(0))
        })
        .collect()
}

/// The part of `expected` that concerns `parts`.
fn expected_for(expected: &Expected, parts: &[(Target, i64)]) -> Expected {
    expected
        .iter()
        .filter(|((topic, p, _), _)| {
            parts
                .iter()
                .any(|(t, _)| t.topic == *topic && t.partition == *p)
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

pub fn produce(args: &ProduceArgs) -> anyhow::Result<Summary> {
    let timing = args.load.timing()?;
    args.validate()?;
    let targets = discover_targets(&args.target)?;
    let plans = match args.driver {
        Driver::Native => {
            producer_streams(&targets, args.target.producers, args.target.connections)
        }
        Driver::Rdkafka => rdkafka_streams(&targets, args.target.producers),
    };
    check_streams(plans.len())?;
    let size = args.load.size;
    let t = &args.target;
    // Connect everything before the clock starts: an unreachable leader fails fast.
    let mut conns = Vec::new();
    if args.driver == Driver::Native {
        for plan in &plans {
            conns.push(Some(connect_leader(&plan.leader, t.wait)?.into_reader()));
        }
    } else {
        conns.resize_with(plans.len(), || None);
    }
    let rdk_config = match args.driver {
        Driver::Rdkafka => {
            let props = rdk::parse_properties(&args.properties)?;
            Some(rdk::producer_config(&t.bootstrap, args.acks, &props))
        }
        Driver::Native => None,
    };
    let (recs, ilog, counter) = recorders(&args.load, plans.len(), "produce")?;
    let clock = Clock::new();
    let total = Duration::from_nanos(timing.warmup_ns + timing.duration_ns);
    let progress = Progress::start(!args.load.no_progress, total, counter);
    let start_ns = clock.now_ns() + START_DELAY_NS;
    let mut handles = Vec::new();
    for ((plan, conn), rec) in plans.iter().zip(conns).zip(recs) {
        let cfg = stream_config(&timing, &args.load, plan, &plans, start_ns);
        let picker = Picker::new(
            t.keys,
            plan.targets.len(),
            plan.id as u64,
            plans.len() as u64,
        );
        let messages = Messages::new(plan.targets.clone(), picker, size, plan.id);
        let name = format!("loadgen-produce-{}", plan.id);
        let handle = match (conn, &rdk_config) {
            (Some(conn), _) => {
                let encoder: Box<dyn Encoder> = if t.keys != KeyDist::None {
                    Box::new(MessageEncoder::new(messages, args.acks, size))
                } else {
                    let batch = args.batch as usize;
                    let frames = plan
                        .targets
                        .iter()
                        .map(|x| produce_frame(x, args.acks, size, batch))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let payload_bytes = size as u64 * args.batch as u64;
                    if frames.len() == 1 {
                        let frame = frames.into_iter().next().expect("one frame");
                        Box::new(FixedFrame {
                            frame,
                            payload_bytes,
                        })
                    } else {
                        Box::new(RoundRobinFrames {
                            frames,
                            payload_bytes,
                        })
                    }
                };
                spawn(name, move || {
                    let checker = Box::new(ProduceChecker::default());
                    runner::run(conn, clock, &cfg, rec, encoder, checker)
                })?
            }
            (None, Some(config)) => {
                let config = config.clone();
                spawn(name, move || {
                    rdk::produce(&config, messages, size, &cfg, rec, clock)
                })?
            }
            (None, None) => bail!("internal: a stream with neither connection nor config"),
        };
        handles.push(handle);
    }
    let results = join_all(handles, "producer");
    if let Some(p) = progress {
        p.finish();
    }
    let results = results?;
    if let Some(l) = ilog {
        l.finish()?;
    }
    let (rec, sent) = merge(&results);
    let driver = match args.driver {
        Driver::Native => "native",
        Driver::Rdkafka => "rdkafka",
    };
    let mut summary = Summary::new(
        "produce",
        driver,
        timing.schedule,
        params(args),
        &rec,
        sent,
        timing.duration_ns,
    );
    if args.driver == Driver::Rdkafka {
        summary.latency_from = match timing.schedule {
            Schedule::Closed { .. } => {
                "enqueue into librdkafka to delivery callback (closed loop, per producer)"
            }
            Schedule::Open { .. } => "intended send to delivery callback (open loop, CO-corrected)",
        }
        .into();
    } else if plans.len() > 1 {
        summary.latency_from = match timing.schedule {
            Schedule::Closed { .. } => "actual send (closed loop, per connection)",
            Schedule::Open { .. } => "intended send (open loop, CO-corrected, rate shared)",
        }
        .into();
    }
    summary.layout = Some(layout(&targets, plans.len(), 0));
    summary.client_wait = client_wait(args.driver, t.wait);
    Ok(summary)
}

/// What the summary says about the client's waiting (librdkafka waits its own way).
fn client_wait(driver: Driver, wait: PollMode) -> Option<String> {
    match driver {
        Driver::Native => Some(wait.name().into()),
        Driver::Rdkafka => None,
    }
}

/// `total` records dealt over `n` partitions: partition `i`'s share.
fn share(total: u64, n: u64, i: u64) -> u64 {
    total / n.max(1) + u64::from(i < total % n.max(1))
}

/// Produces records 0..n of stream 0 to `target` in batches; returns nothing but errors.
fn produce_backlog(
    client: &mut native::Client,
    target: &Target,
    n: u64,
    args: &FetchArgs,
    clock: Clock,
) -> anyhow::Result<()> {
    let mut seq = 0u64;
    let mut value = Vec::with_capacity(args.size);
    while seq < n {
        let k = (args.batch as u64).min(n - seq);
        let values: Vec<Bytes> = (seq..seq + k)
            .map(|s| {
                value.clear();
                let h = ValueHeader {
                    seq: crate::verify::seq_word(0, s),
                    intended_ns: 0,
                    stamp_ns: clock.now_ns(),
                };
                encode_value(h, args.size, &mut value);
                Bytes::copy_from_slice(&value)
            })
            .collect();
        let req = produce_request(target, BACKLOG_ACKS, encode_batch(&values)?);
        let resp = client.call(&req, PRODUCE_VERSION)?;
        for (_, r) in produce_outcome(&resp) {
            if let Err(code) = r {
                bail!(
                    "producing the backlog of {}/{} at seq {seq} failed with error code {code}",
                    target.topic,
                    target.partition
                );
            }
        }
        seq += k;
    }
    Ok(())
}

/// What one consumer thread brings back.
struct Consumed {
    rec: Recorder,
    report: VerifyReport,
    end_ns: u64,
}

pub fn fetch(args: &FetchArgs) -> anyhow::Result<Summary> {
    args.validate()?;
    let timeout = Duration::from_secs_f64(args.response_timeout_s);
    let targets = discover_targets(&args.target)?;
    let clock = Clock::new();
    let prepared = Instant::now();
    let mut offsets = HashMap::new();
    let mut expected = Expected::new();
    for (leader, ts) in by_leader(&targets) {
        let mut client = connect_leader(&leader, PollMode::Blocking)?;
        for (t, o) in ts.iter().zip(log_end_offsets(&mut client, &ts)?) {
            let i = targets
                .iter()
                .position(|x| x.topic == t.topic && x.partition == t.partition);
            let n = share(args.records, targets.len() as u64, i.unwrap_or(0) as u64);
            produce_backlog(&mut client, t, n, args, clock)?;
            offsets.insert((t.topic.clone(), t.partition), o);
            if n > 0 {
                expected.insert((t.topic.clone(), t.partition, 0), n);
            }
        }
    }
    eprintln!(
        "loadgen: backlog of {} records over {} partition(s) produced in {:.2} s",
        args.records,
        targets.len(),
        prepared.elapsed().as_secs_f64()
    );
    let groups: Vec<Vec<(Target, i64)>> = consumer_assignments(&targets, args.target.consumers)
        .iter()
        .map(|g| with_offsets(g, &offsets))
        .collect();
    let rdk_config = match args.driver {
        Driver::Rdkafka => Some(rdk::consumer_config(
            &args.target.bootstrap,
            &rdk::parse_properties(&args.properties)?,
        )),
        Driver::Native => None,
    };
    let t0_ns = clock.now_ns();
    let mut handles = Vec::new();
    for (i, parts) in groups.iter().enumerate() {
        let verifier = VerifySet::with_expected(&expected_for(&expected, parts));
        let (parts, pin, max_bytes) = (parts.clone(), args.pin_core, args.max_bytes);
        let name = format!("loadgen-fetch-{i}");
        let handle = match &rdk_config {
            None => {
                let client = connect_leader(&parts[0].0.leader_addr, args.target.wait)?;
                spawn(name, move || {
                    runner::pin_current_thread(pin)?;
                    // The backlog is complete, so no long-poll: an empty answer means the
                    // end of the log.
                    let mut c = Consumer::new(client, parts, 0, max_bytes, verifier);
                    let mut rec = Recorder::new(0);
                    let mut last_progress = Instant::now();
                    while !c.verifier.complete() {
                        let sent_ns = clock.now_ns();
                        let polled = c.poll(|_, _| {})?;
                        let s = Sample {
                            intended_ns: sent_ns,
                            sent_ns,
                            done_ns: clock.now_ns(),
                        };
                        rec.record(s, polled.bytes);
                        if polled.records > 0 {
                            last_progress = Instant::now();
                        } else if c.caught_up() || last_progress.elapsed() > timeout {
                            break;
                        }
                    }
                    let end_ns = clock.now_ns();
                    Ok(Consumed {
                        rec,
                        report: c.verifier.report(),
                        end_ns,
                    })
                })?
            }
            Some(config) => {
                let config = config.clone();
                spawn(name, move || {
                    let mut verifier = verifier;
                    let mut rec = Recorder::new(0);
                    let errors = rdk::consume(
                        &config,
                        &parts,
                        &mut verifier,
                        clock,
                        timeout,
                        pin,
                        |_| rdk::Phase::Draining,
                        |_, len, before_ns, after_ns| {
                            let s = Sample {
                                intended_ns: before_ns,
                                sent_ns: before_ns,
                                done_ns: after_ns,
                            };
                            rec.record(s, len as u64);
                        },
                    )?;
                    rec.errors += errors;
                    let end_ns = clock.now_ns();
                    Ok(Consumed {
                        rec,
                        report: verifier.report(),
                        end_ns,
                    })
                })?
            }
        };
        handles.push(handle);
    }
    let consumed = join_all(handles, "consumer")?;
    let measured_ns = consumed.iter().map(|c| c.end_ns).max().unwrap_or(t0_ns) - t0_ns;
    let mut rec = Recorder::new(0);
    for c in &consumed {
        rec.merge(&c.rec);
    }
    let reports: Vec<VerifyReport> = consumed.iter().map(|c| c.report.clone()).collect();
    let report = VerifyReport::combine(&reports);
    let driver = match args.driver {
        Driver::Native => "native",
        Driver::Rdkafka => "rdkafka",
    };
    let mut summary = Summary::new(
        "fetch",
        driver,
        Schedule::Closed { inflight: 1 },
        params(args),
        &rec,
        rec.count(),
        measured_ns,
    );
    summary.latency_from = match args.driver {
        Driver::Native => "actual send of each Fetch request (closed loop, per consumer)",
        Driver::Rdkafka => "start of each librdkafka poll() that returned a record (prefetched records return at once)",
    }
    .into();
    summary.records = Some(report.received);
    summary.records_per_s = Some(rate(report.received, measured_ns));
    summary.verification = Some(report);
    summary.layout = Some(layout(&targets, by_leader(&targets).len(), groups.len()));
    summary.client_wait = client_wait(args.driver, args.target.wait);
    Ok(summary)
}

/// Hands the final counts to a consumer once the producers are done.
struct ExpectedGate {
    shared: Arc<Mutex<Option<Expected>>>,
    parts: Vec<(Target, i64)>,
    applied: bool,
}

impl ExpectedGate {
    fn phase(&mut self, v: &mut VerifySet) -> rdk::Phase {
        if self.applied {
            return rdk::Phase::Draining;
        }
        let Ok(guard) = self.shared.lock() else {
            // A poisoned lock means a producer panicked: drain what there is.
            return rdk::Phase::Draining;
        };
        match guard.as_ref() {
            Some(exp) => {
                v.set_expected(&expected_for(exp, &self.parts));
                self.applied = true;
                rdk::Phase::Draining
            }
            None => rdk::Phase::Running,
        }
    }
}

/// Final counts from every producing stream's per-target counters.
fn expected_from(plans: &[StreamPlan], counts: &[Counts]) -> Expected {
    let mut exp = Expected::new();
    for (plan, c) in plans.iter().zip(counts) {
        for (t, n) in plan.targets.iter().zip(c.iter()) {
            let n = n.load(Ordering::Acquire);
            if n > 0 {
                exp.insert((t.topic.clone(), t.partition, plan.id), n);
            }
        }
    }
    exp
}

pub fn e2e(args: &E2eArgs) -> anyhow::Result<Summary> {
    let timing = args.validate()?;
    let t = &args.target;
    let targets = discover_targets(t)?;
    let plans = match args.driver {
        Driver::Native => producer_streams(&targets, t.producers, t.connections),
        Driver::Rdkafka => rdkafka_streams(&targets, t.producers),
    };
    check_streams(plans.len())?;
    let offsets = start_offsets(&targets)?;
    let groups: Vec<Vec<(Target, i64)>> = consumer_assignments(&targets, t.consumers)
        .iter()
        .map(|g| with_offsets(g, &offsets))
        .collect();
    let (rdk_producer, rdk_consumer) = match args.driver {
        Driver::Rdkafka => {
            let props = rdk::parse_properties(&args.properties)?;
            (
                Some(rdk::producer_config(&t.bootstrap, args.acks, &props)),
                Some(rdk::consumer_config(&t.bootstrap, &props)),
            )
        }
        Driver::Native => (None, None),
    };
    let mut producer_conns = Vec::new();
    let mut consumer_clients = Vec::new();
    if args.driver == Driver::Native {
        for plan in &plans {
            producer_conns.push(Some(connect_leader(&plan.leader, t.wait)?.into_reader()));
        }
        for g in &groups {
            consumer_clients.push(Some(connect_leader(&g[0].0.leader_addr, t.wait)?));
        }
    } else {
        producer_conns.resize_with(plans.len(), || None);
        consumer_clients.resize_with(groups.len(), || None);
    }

    let clock = Clock::new();
    let start_ns = clock.now_ns() + START_DELAY_NS;
    let (recs, ilog, counter) = recorders(&args.load, groups.len(), "e2e")?;
    let total = Duration::from_nanos(timing.warmup_ns + timing.duration_ns);
    let progress = Progress::start(!args.load.no_progress, total, counter);
    let shared: Arc<Mutex<Option<Expected>>> = Arc::new(Mutex::new(None));
    let timeout = Duration::from_nanos(timing.response_timeout_ns);
    let pin = args.load.pin_core;

    let mut consumers = Vec::new();
    for (i, ((parts, client), rec)) in groups.iter().zip(consumer_clients).zip(recs).enumerate() {
        let mut gate = ExpectedGate {
            shared: shared.clone(),
            parts: parts.clone(),
            applied: false,
        };
        let mut rec = rec;
        rec.warmup_end_ns = start_ns + timing.warmup_ns;
        let parts = parts.clone();
        let name = format!("loadgen-consume-{i}");
        let (max_wait_ms, max_bytes) = (args.max_wait_ms, args.max_bytes);
        let handle = match (client, &rdk_consumer) {
            (Some(client), _) => spawn(name, move || {
                runner::pin_current_thread(pin)?;
                let mut c = Consumer::new(client, parts, max_wait_ms, max_bytes, VerifySet::new());
                let mut last_progress = Instant::now();
                loop {
                    match gate.phase(&mut c.verifier) {
                        rdk::Phase::Running => last_progress = Instant::now(),
                        rdk::Phase::Draining => {
                            if c.verifier.complete() || last_progress.elapsed() > timeout {
                                break;
                            }
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
                let end_ns = clock.now_ns();
                rec.finish(end_ns);
                Ok(Consumed {
                    rec,
                    report: c.verifier.report(),
                    end_ns,
                })
            })?,
            (None, Some(config)) => {
                let config = config.clone();
                spawn(name, move || {
                    let mut verifier = VerifySet::new();
                    let errors = rdk::consume(
                        &config,
                        &parts,
                        &mut verifier,
                        clock,
                        timeout,
                        pin,
                        |v| gate.phase(v),
                        |h, len, _, after_ns| {
                            if let Some(h) = h {
                                let s = Sample {
                                    intended_ns: h.intended_ns,
                                    sent_ns: h.stamp_ns,
                                    done_ns: after_ns,
                                };
                                rec.record(s, len as u64);
                            }
                        },
                    )?;
                    rec.errors += errors;
                    let end_ns = clock.now_ns();
                    rec.finish(end_ns);
                    Ok(Consumed {
                        rec,
                        report: verifier.report(),
                        end_ns,
                    })
                })?
            }
            (None, None) => bail!("internal: a consumer with neither client nor config"),
        };
        consumers.push(handle);
    }

    let counts: Vec<Counts> = plans.iter().map(|p| new_counts(p.targets.len())).collect();
    let mut producers = Vec::new();
    for ((plan, conn), c) in plans.iter().zip(producer_conns).zip(&counts) {
        let cfg = stream_config(&timing, &args.load, plan, &plans, start_ns);
        let picker = Picker::new(
            t.keys,
            plan.targets.len(),
            plan.id as u64,
            plans.len() as u64,
        );
        let size = args.load.size;
        let messages =
            Messages::new(plan.targets.clone(), picker, size, plan.id).sequenced(c.clone(), clock);
        let name = format!("loadgen-produce-{}", plan.id);
        let handle = match (conn, &rdk_producer) {
            (Some(conn), _) => {
                let encoder = Box::new(MessageEncoder::new(messages, args.acks, size));
                spawn(name, move || {
                    let checker = Box::new(ProduceChecker::default());
                    runner::run(conn, clock, &cfg, Recorder::new(0), encoder, checker)
                })
            }
            (None, Some(config)) => {
                let config = config.clone();
                spawn(name, move || {
                    rdk::produce(&config, messages, size, &cfg, Recorder::new(0), clock)
                })
            }
            (None, None) => Err(anyhow!(
                "internal: a stream with neither connection nor config"
            )),
        };
        match handle {
            Ok(h) => producers.push(h),
            Err(e) => {
                // The consumers wait for counts: give them what there is, then fail.
                if let Ok(mut g) = shared.lock() {
                    *g = Some(Expected::new());
                }
                return Err(e);
            }
        }
    }
    let produced = join_all(producers, "producer");
    // The consumers stop once they have everything that was sent (or nothing, on failure).
    let expected = expected_from(&plans, &counts);
    let expected_total: u64 = expected.values().sum();
    if let Ok(mut g) = shared.lock() {
        *g = Some(expected);
    }
    let consumed = join_all(consumers, "consumer");
    if let Some(p) = progress {
        p.finish();
    }
    let produced = produced.context("producer")?;
    let consumed = consumed.context("consumer")?;
    if let Some(l) = ilog {
        l.finish()?;
    }
    let (prec, sent) = merge(&produced);
    let mut rec = Recorder::new(0);
    for c in &consumed {
        rec.merge(&c.rec);
    }
    let reports: Vec<VerifyReport> = consumed.iter().map(|c| c.report.clone()).collect();
    let report = VerifyReport::combine(&reports);
    let driver = match args.driver {
        Driver::Native => "native",
        Driver::Rdkafka => "rdkafka",
    };
    let mut summary = Summary::new(
        "e2e",
        driver,
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
    summary.errors += prec.errors;
    summary.timeouts += prec.timeouts;
    if expected_total != sent {
        eprintln!("loadgen: {sent} requests sent but {expected_total} records counted");
    }
    summary.records = Some(report.received);
    summary.records_per_s = Some(rate(rec.count(), timing.duration_ns));
    summary.verification = Some(report);
    summary.layout = Some(layout(&targets, plans.len(), groups.len()));
    summary.client_wait = client_wait(args.driver, t.wait);
    Ok(summary)
}
