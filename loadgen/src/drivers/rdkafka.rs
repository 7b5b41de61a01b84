//! The rdkafka driver: librdkafka's producer and consumer, as applications use them.
//! Producer latency runs from the send (enqueue into librdkafka) to the delivery
//! callback, which librdkafka's own polling thread runs as soon as the acknowledgement
//! is in. The consumer is a `BaseConsumer` with `assign()`: no group membership, no
//! commits (the broker needs no group coordinator for it).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::drivers::native::Target;
use crate::shape::Messages;
use crate::verify::{decode_value, ValueHeader, VerifySet};

use crate::error::usage;
use crate::recorder::Recorder;
use crate::runner::{pin_current_thread, RunConfig, RunResult};
use crate::schedule::{intended_send_ns, pace_until, tighten_timer_slack, Clock, Sample, Schedule};

/// Back-off when librdkafka's local queue is full; the wait shows as send lag.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(100);
/// At most this many delivery errors are printed (all are counted).
const MAX_PRINTED_ERRORS: u64 = 10;

/// Client properties set unless -X overrides them: latency runs want no batching delay
/// (librdkafka's own linger.ms default is 5 ms).
const DEFAULT_PROPERTIES: &[(&str, &str)] = &[("linger.ms", "0")];

struct State {
    rec: Recorder,
    completed: u64,
}

/// Shared by the sending thread and librdkafka's polling thread.
struct Ctx {
    clock: Clock,
    payload_bytes: u64,
    state: Mutex<State>,
    delivered: Condvar,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    /// (intended, sent) on the run clock.
    type DeliveryOpaque = Box<(u64, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, times: Self::DeliveryOpaque) {
        let done_ns = self.clock.now_ns();
        let (intended_ns, sent_ns) = *times;
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match result {
            Ok(_) => st.rec.record(
                Sample {
                    intended_ns,
                    sent_ns,
                    done_ns,
                },
                self.payload_bytes,
            ),
            Err((e, _)) => {
                if st.rec.errors < MAX_PRINTED_ERRORS {
                    eprintln!("loadgen: delivery failed: {e}");
                }
                st.rec.error();
            }
        }
        st.completed += 1;
        self.delivered.notify_all();
    }
}

/// Parses -X key=value pairs.
pub fn parse_properties(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(usage(format!("-X {p:?}: expected key=value"))),
        })
        .collect()
}

/// The producer configuration: defaults, then acks, then -X (which wins).
pub fn producer_config(bootstrap: &str, acks: i16, props: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in DEFAULT_PROPERTIES {
        cfg.set(*k, *v);
    }
    cfg.set("acks", acks.to_string());
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg
}

/// Produces the records of `messages` (each to its own partition, the one `messages`
/// picked, so that the workload knows what each partition should receive) on the
/// schedule of `run_cfg`.
pub fn produce(
    config: &ClientConfig,
    mut messages: Messages,
    size: usize,
    run_cfg: &RunConfig,
    rec: Recorder,
    clock: Clock,
) -> anyhow::Result<RunResult> {
    let ctx = Ctx {
        clock,
        payload_bytes: size as u64,
        state: Mutex::new(State { rec, completed: 0 }),
        delivered: Condvar::new(),
    };
    let producer: ThreadedProducer<Ctx> = config.create_with_context(ctx).map_err(|e| match e {
        KafkaError::ClientConfig(..) => usage(format!("invalid -X client property: {e}")),
        e => anyhow::Error::new(e).context("creating the librdkafka producer"),
    })?;
    pin_current_thread(run_cfg.pin_core)?;
    tighten_timer_slack();
    let start_ns = run_cfg.start_ns.unwrap_or_else(|| clock.now_ns());
    let warmup_end_ns = start_ns + run_cfg.warmup_ns;
    let end_ns = warmup_end_ns + run_cfg.duration_ns;
    producer
        .context()
        .state
        .lock()
        .map_err(|_| anyhow::anyhow!("recorder lock poisoned"))?
        .rec
        .warmup_end_ns = warmup_end_ns;

    let (max_inflight, rate) = match run_cfg.schedule {
        Schedule::Closed { inflight } => (inflight as u64, None),
        Schedule::Open {
            rate_per_s,
            max_inflight,
        } => (max_inflight as u64, Some(rate_per_s)),
    };
    let mut sent = 0u64;
    loop {
        let intended_ns = match rate {
            Some(r) => {
                let t = intended_send_ns(start_ns, sent, r);
                if t >= end_ns {
                    break;
                }
                pace_until(&clock, t);
                // Waiting at the in-flight cap is send lag: latency still counts from `t`.
                wait_for_slot(&producer, sent, max_inflight, run_cfg.response_timeout)?;
                Some(t)
            }
            None => {
                // Closed loop: the next send is due when a slot frees; no intended time.
                wait_for_slot(&producer, sent, max_inflight, run_cfg.response_timeout)?;
                if clock.now_ns() >= end_ns {
                    break;
                }
                None
            }
        };
        let t = messages.next(sent, intended_ns.unwrap_or_else(|| clock.now_ns()));
        loop {
            let sent_ns = clock.now_ns();
            let intended_ns = intended_ns.unwrap_or(sent_ns);
            let target = &messages.targets[t];
            let mut record =
                BaseRecord::with_opaque_to(&target.topic, Box::new((intended_ns, sent_ns)))
                    .partition(target.partition)
                    .payload(&messages.value[..]);
            if let Some(k) = messages.key() {
                record = record.key(k);
            }
            match producer.send::<[u8], [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(QUEUE_FULL_BACKOFF)
                }
                Err((e, _)) => return Err(e).context("enqueueing a record"),
            }
        }
        sent += 1;
    }
    let flushed = producer.flush(run_cfg.response_timeout);
    let ctx = producer.context();
    let mut st = ctx
        .state
        .lock()
        .map_err(|_| anyhow::anyhow!("recorder lock poisoned"))?;
    if flushed.is_err() {
        st.rec.timeouts += sent - st.completed;
    }
    st.rec.finish(clock.now_ns());
    let rec = std::mem::replace(&mut st.rec, Recorder::new(0));
    Ok(RunResult {
        recorder: rec,
        sent,
        measured_ns: run_cfg.duration_ns,
    })
}

/// Blocks until fewer than `max_inflight` of the `sent` records await delivery.
fn wait_for_slot(
    producer: &ThreadedProducer<Ctx>,
    sent: u64,
    max_inflight: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let ctx = producer.context();
    let deadline = Instant::now() + timeout;
    let mut st = ctx
        .state
        .lock()
        .map_err(|_| anyhow::anyhow!("recorder lock poisoned"))?;
    while sent - st.completed >= max_inflight {
        let now = Instant::now();
        if now >= deadline {
            bail!("no delivery report for {timeout:?} with {max_inflight} in flight");
        }
        st = ctx
            .delivered
            .wait_timeout(st, deadline - now)
            .map_err(|_| anyhow::anyhow!("recorder lock poisoned"))?
            .0;
    }
    Ok(())
}

/// The consumer configuration: a throw-away group id (librdkafka insists on one, the
/// broker never hears of it: assign() only, no subscribe, no commits), then -X.
pub fn consumer_config(bootstrap: &str, props: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", format!("loadgen-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg
}

/// How long one poll() waits before the loop looks at its stop conditions.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Where a consuming loop stands.
pub enum Phase {
    /// Producers are still at work: keep consuming whatever the wait.
    Running,
    /// Every count is known: stop once complete or idle for the idle timeout.
    Draining,
}

/// Consumes `parts` from their offsets with librdkafka until `phase` says draining and
/// the verifier is complete (or nothing arrived for `idle_timeout`). `on_record` gets
/// each record's header, value length, and the run-clock instants before and after the
/// poll that returned it. Returns the poll errors seen (counted, printed up to a few).
#[allow(clippy::too_many_arguments)]
pub fn consume(
    config: &ClientConfig,
    parts: &[(Target, i64)],
    verifier: &mut VerifySet,
    clock: Clock,
    idle_timeout: Duration,
    pin_core: Option<usize>,
    mut phase: impl FnMut(&mut VerifySet) -> Phase,
    mut on_record: impl FnMut(Option<ValueHeader>, usize, u64, u64),
) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = config.create().map_err(|e| match e {
        KafkaError::ClientConfig(..) => usage(format!("invalid -X client property: {e}")),
        e => anyhow::Error::new(e).context("creating the librdkafka consumer"),
    })?;
    let mut tpl = TopicPartitionList::new();
    for (t, offset) in parts {
        tpl.add_partition_offset(&t.topic, t.partition, Offset::Offset(*offset))
            .context("building the assignment")?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    pin_current_thread(pin_core)?;
    let mut errors = 0u64;
    let mut last_progress = Instant::now();
    loop {
        match phase(verifier) {
            Phase::Running => last_progress = Instant::now(),
            Phase::Draining => {
                if verifier.complete() || last_progress.elapsed() > idle_timeout {
                    break;
                }
            }
        }
        let before_ns = clock.now_ns();
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(m)) => {
                let after_ns = clock.now_ns();
                let value = m.payload().unwrap_or(&[]);
                let header = decode_value(value);
                verifier.observe(m.topic(), m.partition(), header.map(|h| h.seq), m.offset());
                on_record(header, value.len(), before_ns, after_ns);
                last_progress = Instant::now();
            }
            Some(Err(e)) => {
                if errors < MAX_PRINTED_ERRORS {
                    eprintln!("loadgen: consumer error: {e}");
                }
                errors += 1;
            }
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_override_defaults() {
        let props =
            parse_properties(&["linger.ms=5".into(), "compression.type=lz4".into()]).unwrap();
        let cfg = producer_config("127.0.0.1:9092", 1, &props);
        assert_eq!(cfg.get("linger.ms"), Some("5"));
        assert_eq!(cfg.get("compression.type"), Some("lz4"));
        assert_eq!(cfg.get("acks"), Some("1"));
        let cfg = producer_config("h:1", -1, &parse_properties(&["acks=0".into()]).unwrap());
        assert_eq!(cfg.get("acks"), Some("0"));
    }

    #[test]
    fn malformed_properties_are_usage_errors() {
        for bad in ["linger.ms", "=5", ""] {
            let e = parse_properties(&[bad.to_string()]).unwrap_err();
            assert!(crate::error::is_usage(&e), "{bad}: {e}");
        }
    }
}
