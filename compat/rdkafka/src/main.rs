//! rdkafka-crate (bundled librdkafka) driver of the client compatibility matrix.
//! Usage: `compat-rdkafka BOOTSTRAP SCENARIO TAG`; prints one JSON line
//! `{"client","version","scenario","result","detail"}` (see compat/python/common.py).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(15);
const TS_BASE: i64 = 1_700_000_000_000;

enum Outcome {
    Fail(String),
    Unsupported(String),
}
type R = Result<String, Outcome>;
fn fail<T>(msg: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Fail(msg.into()))
}
fn e2f<E: std::fmt::Display>(e: E) -> Outcome {
    Outcome::Fail(e.to_string())
}

struct Ctx {
    bootstrap: String,
    tag: String,
}

type Rec = (String, String, Vec<(String, String)>);

fn keyed(n: usize, prefix: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            let value = format!("value-{i}-{}", "x".repeat(i % 17));
            let headers = vec![
                ("idx".into(), i.to_string()),
                ("src".into(), "compat".into()),
            ];
            (format!("{prefix}{i}"), value, headers)
        })
        .collect()
}

impl Ctx {
    fn names(&self, s: &str) -> (String, String) {
        let t = format!("compat-{}-{}", self.tag, s.replace('_', "-"));
        (t.clone(), format!("{t}-group"))
    }
    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }
    fn produce(
        &self,
        topic: &str,
        recs: &[Rec],
        partition: i32,
        extra: &[(&str, &str)],
        ts: Option<&dyn Fn(usize) -> i64>,
    ) -> Result<(), Outcome> {
        let mut c = self.config();
        c.set("linger.ms", "5").set("message.timeout.ms", "20000");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        let p: BaseProducer = c.create().map_err(e2f)?;
        for (i, (k, v, h)) in recs.iter().enumerate() {
            let mut headers = OwnedHeaders::new();
            for (hk, hv) in h {
                headers = headers.insert(Header {
                    key: hk,
                    value: Some(hv.as_bytes()),
                });
            }
            let mut r = BaseRecord::to(topic)
                .partition(partition)
                .key(k.as_bytes())
                .payload(v.as_bytes())
                .headers(headers);
            if let Some(ts) = ts {
                r = r.timestamp(ts(i));
            }
            let mut r = Some(r);
            while let Some(rec) = r.take() {
                if let Err((e, back)) = p.send(rec) {
                    if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        return fail(format!("produce: {e}"));
                    }
                    p.poll(Duration::from_millis(50));
                    r = Some(back);
                }
            }
        }
        p.flush(Duration::from_secs(30)).map_err(e2f)
    }
    fn consume(
        &self,
        topic: &str,
        partition: i32,
        offset: Offset,
        n: usize,
        extra: &[(&str, &str)],
    ) -> Result<Vec<(i64, Rec, i64)>, Outcome> {
        let mut c = self.config();
        c.set("group.id", "unused")
            .set("enable.auto.commit", "false");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        let consumer: BaseConsumer = c.create().map_err(e2f)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, offset)
            .map_err(e2f)?;
        consumer.assign(&tpl).map_err(e2f)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push(owned(&m)),
                Some(Err(e)) => return fail(format!("consume: {e}")),
                None => {}
            }
        }
        Ok(out)
    }
    fn roundtrip(
        &self,
        topic: &str,
        recs: &[Rec],
        pextra: &[(&str, &str)],
        cextra: &[(&str, &str)],
    ) -> Result<(), Outcome> {
        self.produce(topic, recs, 0, pextra, None)?;
        let got = self.consume(topic, 0, Offset::Beginning, recs.len(), cextra)?;
        check_same(recs, &got)
    }
    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, Outcome> {
        self.config().create().map_err(e2f)
    }
    fn partitions(&self, topic: &str) -> Option<usize> {
        let c: BaseConsumer = self.config().create().ok()?;
        let md = c.fetch_metadata(None, T).ok()?;
        md.topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
    }
}

fn owned<M: Message>(m: &M) -> (i64, Rec, i64) {
    let s = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    let headers = m
        .headers()
        .map(|h| h.iter().map(|x| (x.key.to_string(), s(x.value))).collect())
        .unwrap_or_default();
    (
        m.offset(),
        (s(m.key()), s(m.payload()), headers),
        m.timestamp().to_millis().unwrap_or(-1),
    )
}

fn check_same(want: &[Rec], got: &[(i64, Rec, i64)]) -> Result<(), Outcome> {
    if want.len() != got.len() {
        return fail(format!(
            "expected {} records, got {}",
            want.len(),
            got.len()
        ));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if *w != g.1 {
            return fail(format!(
                "first difference at #{i}: expected {w:?}, got {:?}",
                g.1
            ));
        }
    }
    Ok(())
}

fn opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(T))
}

/// librdkafka completes the admin futures on its own threads: park until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unparker(Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(100));
    }
}

fn wait_until(mut pred: impl FnMut() -> bool, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if pred() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    pred()
}

fn group_member(ctx: &Ctx, group: &str, topic: &str) -> Result<BaseConsumer, Outcome> {
    let mut c = ctx.config();
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    let consumer: BaseConsumer = c.create().map_err(e2f)?;
    consumer.subscribe(&[topic]).map_err(e2f)?;
    Ok(consumer)
}

fn scenario(ctx: &Ctx, name: &str) -> R {
    let (topic, group) = ctx.names(name);
    if let Some(codec) = name.strip_prefix("compression_") {
        ctx.roundtrip(
            &topic,
            &keyed(300, "k"),
            &[("compression.type", codec)],
            &[],
        )?;
        return Ok(format!("300 records, compression.type={codec}"));
    }
    match name {
        "metadata" => {
            ctx.produce(&topic, &keyed(1, "k"), 0, &[], None)?;
            match ctx.partitions(&topic) {
                Some(1) => Ok("fetch_metadata: topic with 1 partition".into()),
                other => fail(format!("partitions {other:?}")),
            }
        }
        "produce_consume" => {
            ctx.roundtrip(&topic, &keyed(1000, "k"), &[], &[])?;
            Ok("1000 keyed records with headers read back exactly".into())
        }
        "group_commit" | "group_resume" => {
            let (topic, group) = ctx.names("group");
            let resume = name == "group_resume";
            if resume {
                for p in 0..2 {
                    ctx.produce(&topic, &keyed(10, &format!("r{p}-")), p, &[], None)?;
                }
            } else {
                let a = ctx.admin()?;
                block_on(a.create_topics(
                    [&NewTopic::new(&topic, 2, TopicReplication::Fixed(1))],
                    &opts(),
                ))
                .map_err(e2f)?;
            }
            let members: Vec<BaseConsumer> = (0..if resume { 1 } else { 2 })
                .map(|_| group_member(ctx, &group, &topic))
                .collect::<Result<_, _>>()?;
            let got = Mutex::new(Vec::new());
            let poll_all = || {
                for m in &members {
                    if let Some(Ok(msg)) = m.poll(Duration::from_millis(50)) {
                        got.lock().unwrap().push((msg.partition(), msg.offset()));
                    }
                }
                true
            };
            if !resume {
                let held = || {
                    members
                        .iter()
                        .all(|m| m.assignment().map(|a| a.count() > 0).unwrap_or(false))
                };
                if !wait_until(|| poll_all() && held(), Duration::from_secs(30)) {
                    return fail("both members never held partitions");
                }
                for p in 0..2 {
                    ctx.produce(&topic, &keyed(50, &format!("p{p}-")), p, &[], None)?;
                }
            }
            let want = if resume { 20 } else { 100 };
            wait_until(
                || poll_all() && got.lock().unwrap().len() >= want,
                Duration::from_secs(30),
            );
            if resume {
                let end = Instant::now() + Duration::from_secs(1);
                while Instant::now() < end {
                    poll_all();
                }
            }
            for m in &members {
                if m.assignment().map(|a| a.count() > 0).unwrap_or(false) {
                    m.commit_consumer_state(CommitMode::Sync).map_err(e2f)?;
                }
            }
            let mut got = got.into_inner().unwrap();
            got.sort();
            if resume {
                let want: Vec<(i32, i64)> =
                    (0..2).flat_map(|p| (50..60).map(move |o| (p, o))).collect();
                if got != want {
                    return fail(format!("after restart consumed {:?}... ({}), expected offsets 50..59 of each partition", &got[..got.len().min(6)], got.len()));
                }
                return Ok(
                    "fresh member resumed at the committed offsets after a broker restart".into(),
                );
            }
            if got.len() != 100 {
                return fail(format!("consumed {} records, expected 100", got.len()));
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, 0);
            tpl.add_partition(&topic, 1);
            let committed = members[0].committed_offsets(tpl, T).map_err(e2f)?;
            let offs: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
            if offs != vec![Offset::Offset(50), Offset::Offset(50)] {
                return fail(format!("committed offsets {offs:?}"));
            }
            Ok("two members, 100 records, committed [50, 50]".into())
        }
        "admin" => {
            let a = ctx.admin()?;
            block_on(a.create_topics(
                [&NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
                &opts(),
            ))
            .map_err(e2f)?;
            if !wait_until(
                || ctx.partitions(&topic) == Some(3),
                Duration::from_secs(10),
            ) {
                return fail("created topic does not show 3 partitions");
            }
            block_on(a.create_partitions([&NewPartitions::new(&topic, 5)], &opts()))
                .map_err(e2f)?;
            if !wait_until(
                || ctx.partitions(&topic) == Some(5),
                Duration::from_secs(10),
            ) {
                return fail("create_partitions: not 5 partitions");
            }
            block_on(a.delete_topics(&[&topic], &opts())).map_err(e2f)?;
            if !wait_until(|| ctx.partitions(&topic).is_none(), Duration::from_secs(10)) {
                return fail("deleted topic still listed");
            }
            Ok("create (3) -> create_partitions (5) -> delete".into())
        }
        "idempotent" => {
            ctx.roundtrip(
                &topic,
                &keyed(1000, "k"),
                &[("enable.idempotence", "true")],
                &[],
            )?;
            Ok("enable.idempotence=true, 1000 records exactly once".into())
        }
        "crc" => {
            ctx.roundtrip(
                &topic,
                &keyed(300, "k"),
                &[("compression.type", "lz4")],
                &[("check.crcs", "true")],
            )?;
            Ok("check.crcs=true on lz4 batches".into())
        }
        "large_record" => {
            let big: String = (0..1024 * 1024)
                .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
                .collect();
            let recs = vec![(
                "big".to_string(),
                big,
                vec![("h".to_string(), "1".to_string())],
            )];
            ctx.roundtrip(&topic, &recs, &[("message.max.bytes", "4194304")], &[])?;
            Ok("1 MiB value".into())
        }
        "offset_seek" => {
            let recs = keyed(100, "k");
            ctx.produce(&topic, &recs, 0, &[], None)?;
            let got = ctx.consume(&topic, 0, Offset::Offset(42), 58, &[])?;
            if got.first().map(|g| g.0) != Some(42) {
                return fail(format!("from offset 42 got {} records", got.len()));
            }
            check_same(&recs[42..], &got)?;
            Ok("assign at offset 42: offsets 42..99".into())
        }
        "timestamp" => {
            let recs = keyed(100, "k");
            ctx.produce(&topic, &recs, 0, &[], Some(&|i| TS_BASE + i as i64 * 1000))?;
            let c: BaseConsumer = ctx
                .config()
                .set("group.id", "unused")
                .create()
                .map_err(e2f)?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, 0, Offset::Offset(TS_BASE + 50_500))
                .map_err(e2f)?;
            let found = c.offsets_for_times(tpl, T).map_err(e2f)?.elements()[0].offset();
            if found != Offset::Offset(51) {
                return fail(format!(
                    "offsets_for_times(ts of #50 + 500 ms) = {found:?}, expected 51"
                ));
            }
            let got = ctx.consume(&topic, 0, found, 49, &[])?;
            check_same(&recs[51..], &got)?;
            if got[0].2 != TS_BASE + 51_000 {
                return fail(format!("timestamp {}", got[0].2));
            }
            Ok("offsets_for_times -> 51, consumed 51..99 with their timestamps".into())
        }
        "no_autocreate" => {
            let _ = group;
            let p: BaseProducer<DeliveryError> = ctx
                .config()
                .set("message.timeout.ms", "8000")
                .set("topic.metadata.propagation.max.ms", "2000")
                .create_with_context(DeliveryError::default())
                .map_err(e2f)?;
            p.send(BaseRecord::<(), _>::to(&topic).payload("v"))
                .map_err(|(e, _)| e2f(e))?;
            let _ = p.flush(Duration::from_secs(15));
            let err = p.context().0.lock().unwrap().clone();
            if ctx.partitions(&topic).is_some() {
                return fail("topic was created");
            }
            match err {
                None => fail("produce to a missing topic did not fail with auto-create off"),
                Some(e) if e.contains("Unknown topic") => Ok(format!("delivery error: {e}")),
                Some(e) => fail(format!("unexpected error: {e}")),
            }
        }
        _ => Err(Outcome::Unsupported(
            "not implemented for this client".into(),
        )),
    }
}

/// Keeps the first delivery error.
#[derive(Default)]
struct DeliveryError(Mutex<Option<String>>);
impl ClientContext for DeliveryError {}
impl ProducerContext for DeliveryError {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.lock().unwrap().get_or_insert(e.to_string());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ctx = Ctx {
        bootstrap: args[1].clone(),
        tag: args[3].clone(),
    };
    let name = args[2].as_str();
    let (result, detail) = match scenario(&ctx, name) {
        Ok(d) => ("pass", d),
        Err(Outcome::Fail(d)) => ("fail", d),
        Err(Outcome::Unsupported(d)) => ("unsupported", d),
    };
    let (_, lib) = rdkafka::util::get_rdkafka_version();
    let line = serde_json::json!({
        "client": "rdkafka",
        "version": format!("rdkafka crate 0.39 (librdkafka {lib})"),
        "scenario": name,
        "result": result,
        "detail": detail,
    });
    println!("{line}");
}
