//! The request loop shared by every request/response workload (floor, native produce,
//! the producer side of fetch and e2e): closed loop on one thread, open loop with a
//! paced sender thread and this thread reading responses, matched by correlation id.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::recorder::Recorder;
use crate::schedule::{intended_send_ns, pace_until, tighten_timer_slack, Clock, Sample, Schedule};
use crate::wire::{response_correlation_id, write_all, FrameReader};

/// How often a blocked reader wakes to look at its deadlines.
const READ_POLL: Duration = Duration::from_millis(100);

/// Builds requests. Runs on the sending thread.
pub trait Encoder: Send {
    /// Appends one complete request frame for message `index`, with correlation id `cid`,
    /// intended to be sent at `intended_ns` on the run clock.
    fn encode(
        &mut self,
        cid: i32,
        index: u64,
        intended_ns: u64,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<()>;
    /// Payload (record value) bytes one request carries, for bytes/s.
    fn payload_bytes(&self) -> u64;
}

/// Judges responses. Runs on the receiving thread.
pub trait Checker: Send {
    /// Ok(true): success; Ok(false): an error response (counted, run goes on);
    /// Err: the stream cannot be trusted any more (run stops).
    fn check(&mut self, payload: &[u8]) -> anyhow::Result<bool>;
}

/// Timing and placement of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub schedule: Schedule,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    /// Longest wait for any response; past it the outstanding requests count as timeouts.
    pub response_timeout: Duration,
    pub pin_core: Option<usize>,
    /// Start of the schedule on the run clock (default: now). e2e sets it so that its
    /// consumer applies the same warm-up boundary.
    pub start_ns: Option<u64>,
}

/// What a run did.
pub struct RunResult {
    pub recorder: Recorder,
    pub sent: u64,
    /// Length of the measured window (after warm-up).
    pub measured_ns: u64,
}

/// Pins the calling thread when asked; a failure is reported, not fatal to correctness
/// but fatal to the claim, so it is an error.
pub fn pin_current_thread(core: Option<usize>) -> anyhow::Result<()> {
    if let Some(id) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            bail!("could not pin a client thread to core {id}");
        }
    }
    Ok(())
}

/// Runs the schedule over `conn` until the window closes and every request is answered
/// (or timed out). The recorder's warm-up boundary is set here from the schedule start.
pub fn run(
    conn: FrameReader,
    clock: Clock,
    cfg: &RunConfig,
    mut recorder: Recorder,
    encoder: Box<dyn Encoder>,
    checker: Box<dyn Checker>,
) -> anyhow::Result<RunResult> {
    pin_current_thread(cfg.pin_core)?;
    conn.stream()
        .set_read_timeout(Some(READ_POLL))
        .context("setting the read timeout")?;
    let start_ns = cfg.start_ns.unwrap_or_else(|| clock.now_ns());
    recorder.warmup_end_ns = start_ns + cfg.warmup_ns;
    let end_ns = recorder.warmup_end_ns + cfg.duration_ns;
    let window = Window { start_ns, end_ns };
    let sent = match cfg.schedule {
        Schedule::Closed { inflight } => closed_loop(
            conn,
            clock,
            cfg,
            window,
            inflight,
            &mut recorder,
            encoder,
            checker,
        )?,
        Schedule::Open {
            rate_per_s,
            max_inflight,
        } => open_loop(
            conn,
            clock,
            cfg,
            window,
            (rate_per_s, max_inflight),
            &mut recorder,
            encoder,
            checker,
        )?,
    };
    recorder.finish(clock.now_ns());
    Ok(RunResult {
        recorder,
        sent,
        measured_ns: cfg.duration_ns,
    })
}

#[derive(Clone, Copy)]
struct Window {
    start_ns: u64,
    end_ns: u64,
}

fn next_cid(cid: &mut i32) -> i32 {
    *cid = cid.wrapping_add(1) & i32::MAX;
    *cid
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The sending half of the closed loop.
struct ClosedSender {
    encoder: Box<dyn Encoder>,
    out: Vec<u8>,
    cid: i32,
    index: u64,
}

impl ClosedSender {
    fn send(
        &mut self,
        clock: &Clock,
        conn: &FrameReader,
        pending: &mut VecDeque<(i32, u64)>,
    ) -> anyhow::Result<()> {
        self.out.clear();
        let c = next_cid(&mut self.cid);
        self.encoder
            .encode(c, self.index, clock.now_ns(), &mut self.out)?;
        let sent_ns = clock.now_ns();
        write_all(conn.stream(), &self.out).context("sending a request")?;
        pending.push_back((c, sent_ns));
        self.index += 1;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn closed_loop(
    mut conn: FrameReader,
    clock: Clock,
    cfg: &RunConfig,
    window: Window,
    inflight: u32,
    rec: &mut Recorder,
    encoder: Box<dyn Encoder>,
    mut checker: Box<dyn Checker>,
) -> anyhow::Result<u64> {
    let payload_bytes = encoder.payload_bytes();
    let mut sender = ClosedSender {
        encoder,
        out: Vec::new(),
        cid: 0,
        index: 0,
    };
    let mut pending: VecDeque<(i32, u64)> = VecDeque::with_capacity(inflight as usize);
    for _ in 0..inflight {
        sender.send(&clock, &conn, &mut pending)?;
    }
    let mut last_progress = Instant::now();
    while !pending.is_empty() {
        let payload = match conn.read_frame(Some(Instant::now() + READ_POLL)) {
            Ok(p) => p,
            Err(e) if is_timeout(&e) => {
                if last_progress.elapsed() >= cfg.response_timeout {
                    rec.timeouts += pending.len() as u64;
                    break;
                }
                continue;
            }
            Err(e) => return Err(e).context("reading a response"),
        };
        let done_ns = clock.now_ns();
        last_progress = Instant::now();
        let got = response_correlation_id(payload).context("response shorter than its header")?;
        let Some(pos) = pending.iter().position(|&(c, _)| c == got) else {
            bail!("response with unknown correlation id {got}");
        };
        let (_, sent_ns) = pending.remove(pos).expect("position is in range");
        if checker.check(payload)? {
            let s = Sample {
                intended_ns: sent_ns,
                sent_ns,
                done_ns,
            };
            rec.record(s, payload_bytes);
        } else {
            rec.error();
        }
        if clock.now_ns() < window.end_ns {
            sender.send(&clock, &conn, &mut pending)?;
        }
    }
    Ok(sender.index)
}

/// A request written by the sender, announced to the reader.
enum Sent {
    Request {
        cid: i32,
        intended_ns: u64,
        sent_ns: u64,
    },
    /// The schedule is over; `total` requests were sent.
    Done { total: u64 },
    /// The sender failed; the reader stops.
    Failed,
}

/// What the sender has announced so far.
struct Announced {
    /// Correlation id → (intended, sent) of requests not yet answered.
    pending: HashMap<i32, (u64, u64)>,
    total: Option<u64>,
    failed: bool,
}

impl Announced {
    fn absorb(&mut self, m: Sent) {
        match m {
            Sent::Request {
                cid,
                intended_ns,
                sent_ns,
            } => {
                self.pending.insert(cid, (intended_ns, sent_ns));
            }
            Sent::Done { total } => self.total = Some(total),
            Sent::Failed => self.failed = true,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn open_loop(
    mut conn: FrameReader,
    clock: Clock,
    cfg: &RunConfig,
    window: Window,
    (rate_per_s, max_inflight): (f64, u32),
    rec: &mut Recorder,
    encoder: Box<dyn Encoder>,
    mut checker: Box<dyn Checker>,
) -> anyhow::Result<u64> {
    let payload_bytes = encoder.payload_bytes();
    let write_half = conn.stream().try_clone().context("cloning the socket")?;
    let completed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Sent>();
    let sender = {
        let (completed, stop, pin) = (completed.clone(), stop.clone(), cfg.pin_core);
        std::thread::Builder::new()
            .name("loadgen-send".into())
            .spawn(move || -> anyhow::Result<()> {
                let r = send_on_schedule(
                    &write_half,
                    clock,
                    window,
                    rate_per_s,
                    max_inflight,
                    &completed,
                    &stop,
                    pin,
                    encoder,
                    &tx,
                );
                if r.is_err() {
                    let _ = tx.send(Sent::Failed);
                }
                r
            })
            .context("starting the sender thread")?
    };

    let mut ann = Announced {
        pending: HashMap::with_capacity(1024),
        total: None,
        failed: false,
    };
    let mut answered = 0u64;
    let mut last_progress = Instant::now();
    let result: anyhow::Result<()> = loop {
        for m in rx.try_iter() {
            ann.absorb(m);
        }
        if ann.failed || ann.total.is_some_and(|t| answered >= t) {
            break Ok(());
        }
        let payload = match conn.read_frame(Some(Instant::now() + READ_POLL)) {
            Ok(p) => p,
            Err(e) if is_timeout(&e) => {
                // Only outstanding requests can time out; an idle wait between sends is fine.
                if ann.pending.is_empty() {
                    last_progress = Instant::now();
                } else if last_progress.elapsed() >= cfg.response_timeout {
                    rec.timeouts += ann.pending.len() as u64;
                    break Ok(());
                }
                continue;
            }
            Err(e) => break Err(anyhow::Error::from(e).context("reading a response")),
        };
        let done_ns = clock.now_ns();
        last_progress = Instant::now();
        let Some(got) = response_correlation_id(payload) else {
            break Err(anyhow::anyhow!("response shorter than its header"));
        };
        // The sender announces a request just before writing it, so its entry is at most
        // one channel message away.
        while !ann.pending.contains_key(&got) && !ann.failed {
            match rx.recv_timeout(cfg.response_timeout) {
                Ok(m) => ann.absorb(m),
                Err(_) => break,
            }
        }
        let Some((intended_ns, sent_ns)) = ann.pending.remove(&got) else {
            break Err(anyhow::anyhow!(
                "response with unknown correlation id {got}"
            ));
        };
        answered += 1;
        completed.store(answered, Ordering::Release);
        match checker.check(payload) {
            Ok(true) => rec.record(
                Sample {
                    intended_ns,
                    sent_ns,
                    done_ns,
                },
                payload_bytes,
            ),
            Ok(false) => rec.error(),
            Err(e) => break Err(e),
        }
    };
    stop.store(true, Ordering::Release);
    // A sender blocked in a write to a broker that stopped reading would never see `stop`;
    // shutting the socket down fails that write. After a clean run the sender is done.
    let _ = conn.stream().shutdown(std::net::Shutdown::Both);
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?;
    // When the sender failed first, its error is the story; when the reader stopped first
    // (error or timeouts), a failed write on the shut-down socket is only a consequence.
    if ann.failed {
        sent?;
    }
    result?;
    Ok(ann.total.unwrap_or(answered))
}

#[allow(clippy::too_many_arguments)]
fn send_on_schedule(
    stream: &std::net::TcpStream,
    clock: Clock,
    window: Window,
    rate_per_s: f64,
    max_inflight: u32,
    completed: &AtomicU64,
    stop: &AtomicBool,
    pin_core: Option<usize>,
    mut encoder: Box<dyn Encoder>,
    tx: &mpsc::Sender<Sent>,
) -> anyhow::Result<()> {
    pin_current_thread(pin_core)?;
    tighten_timer_slack();
    let mut out = Vec::new();
    let mut cid = 0i32;
    let mut index = 0u64;
    loop {
        let intended_ns = intended_send_ns(window.start_ns, index, rate_per_s);
        if intended_ns >= window.end_ns || stop.load(Ordering::Acquire) {
            break;
        }
        pace_until(&clock, intended_ns);
        // At the in-flight cap the sender waits; the wait is send lag, measured, and the
        // latency still counts from the intended time.
        while index - completed.load(Ordering::Acquire) >= max_inflight as u64 {
            if stop.load(Ordering::Acquire) {
                let _ = tx.send(Sent::Done { total: index });
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(10));
        }
        out.clear();
        let c = next_cid(&mut cid);
        encoder.encode(c, index, intended_ns, &mut out)?;
        let sent_ns = clock.now_ns();
        let _ = tx.send(Sent::Request {
            cid: c,
            intended_ns,
            sent_ns,
        });
        write_all(stream, &out).context("sending a request")?;
        index += 1;
    }
    let _ = tx.send(Sent::Done { total: index });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PollMode;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    /// A request frame whose payload carries the correlation id where Kafka's does.
    struct Frame;
    impl Encoder for Frame {
        fn encode(&mut self, cid: i32, _: u64, _: u64, out: &mut Vec<u8>) -> anyhow::Result<()> {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 9]);
            out.extend_from_slice(&cid.to_be_bytes());
            Ok(())
        }
        fn payload_bytes(&self) -> u64 {
            1
        }
    }

    /// Odd correlation ids are "error responses".
    struct OddIsError;
    impl Checker for OddIsError {
        fn check(&mut self, payload: &[u8]) -> anyhow::Result<bool> {
            Ok(response_correlation_id(payload).unwrap() % 2 == 0)
        }
    }

    /// A server that reads requests and answers only while `answer` says so.
    fn server(answer: fn(i32) -> bool) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 12];
            while s.read_exact(&mut req).is_ok() {
                let cid = i32::from_be_bytes(req[8..12].try_into().unwrap());
                if answer(cid) {
                    let mut resp = 4i32.to_be_bytes().to_vec();
                    resp.extend_from_slice(&cid.to_be_bytes());
                    if write_all(&s, &resp).is_err() {
                        return;
                    }
                }
            }
        });
        addr
    }

    fn run_against(addr: std::net::SocketAddr, schedule: Schedule) -> RunResult {
        let conn = FrameReader::new(TcpStream::connect(addr).unwrap(), PollMode::Blocking).unwrap();
        let cfg = RunConfig {
            schedule,
            warmup_ns: 0,
            duration_ns: 200_000_000,
            response_timeout: Duration::from_millis(300),
            pin_core: None,
            start_ns: None,
        };
        run(
            conn,
            Clock::new(),
            &cfg,
            Recorder::new(0),
            Box::new(Frame),
            Box::new(OddIsError),
        )
        .unwrap()
    }

    #[test]
    fn error_responses_are_counted_not_recorded() {
        let r = run_against(server(|_| true), Schedule::Closed { inflight: 4 });
        let (ok, errors) = (r.recorder.count(), r.recorder.errors);
        assert!(ok > 0 && errors > 0);
        assert_eq!(ok + errors, r.sent);
        assert!(
            ok.abs_diff(errors) <= 1,
            "alternating: {ok} ok, {errors} errors"
        );
    }

    #[test]
    fn a_silent_server_times_out_instead_of_hanging_closed_loop() {
        let started = Instant::now();
        let r = run_against(server(|cid| cid < 10), Schedule::Closed { inflight: 1 });
        assert_eq!(r.recorder.timeouts, 1);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_silent_server_times_out_instead_of_hanging_open_loop() {
        let started = Instant::now();
        let schedule = Schedule::Open {
            rate_per_s: 1000.0,
            max_inflight: 1000,
        };
        let r = run_against(server(|cid| cid < 10), schedule);
        assert!(r.recorder.timeouts > 0, "timeouts {}", r.recorder.timeouts);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn open_loop_sends_exactly_the_schedule() {
        let schedule = Schedule::Open {
            rate_per_s: 5000.0,
            max_inflight: 1000,
        };
        let r = run_against(server(|_| true), schedule);
        // 5000/s for 0.2 s.
        assert_eq!(r.sent, 1000);
        assert_eq!(r.recorder.count() + r.recorder.errors, 1000);
        assert_eq!(r.recorder.timeouts, 0);
    }
}
