//! Graceful shutdown of the real `strikemq` binary under load: pipelined producers on
//! several connections, tailing consumers and parked long-poll fetches, then SIGTERM.
//! The process must exit 0 within a second, every answered request must be durable,
//! no client may see a torn response, and parked fetches must be answered. Once per
//! I/O backend.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::records::RecordBatchDecoder;

use common::ledger::{
    parse_record_value, produce_until_closed, seed_from_env, Client, PartitionLedger, ProduceLoad,
    Received, SplitMix64,
};
use common::raw::{self, create_topics, fetch_request, RawConn, FETCH_VERSION};
use common::{unique_topic, TestBroker};

/// What the issue promises: SIGTERM under load exits within a second.
const EXIT_WITHIN: Duration = Duration::from_secs(1);
/// Load before the signal, so that requests are in flight everywhere.
const WARM_UP: Duration = Duration::from_millis(500);
const PRODUCERS: i32 = 4;
/// Full speed: no pause, a deep pipeline.
const LOAD: ProduceLoad = ProduceLoad {
    pipeline_depth: 8,
    records_per_request_max: 8,
    interval: Duration::ZERO,
};
/// Tailing consumers wait this long for new data per Fetch.
const TAIL_MAX_WAIT_MS: i32 = 500;
/// Parked fetches wait far longer than the test: only the shutdown can answer them.
const PARKED_MAX_WAIT_MS: i32 = 60_000;
const PARKED_FETCHES: usize = 3;
/// Requests the never-reading client writes at most (it blocks long before).
const NEVER_READ_REQUESTS_MAX: usize = 100_000;
const SEED_ENV: &str = "STRIKEMQ_SHUTDOWN_SEED";

/// How a tailing consumer ended.
struct TailOutcome {
    records: u64,
    torn: Option<(usize, usize)>,
}

/// Follows one partition with long polls until the broker closes the connection.
fn tail(mut client: Client, topic: &str, partition: i32) -> TailOutcome {
    let mut offset = 0;
    let mut records = 0;
    loop {
        let request = fetch_request(topic, partition, offset, TAIL_MAX_WAIT_MS);
        let Ok(cid) = client.send(&request, FETCH_VERSION) else {
            return TailOutcome {
                records,
                torn: None,
            };
        };
        match client.recv::<FetchRequest>(FETCH_VERSION, cid) {
            Received::Response(response) => {
                assert_eq!(response.error_code, raw::NONE, "Fetch error");
                let p = &response.responses[0].partitions[0];
                assert_eq!(p.error_code, raw::NONE, "Fetch partition error");
                let Some(mut bytes) = p.records.clone() else {
                    continue;
                };
                if bytes.is_empty() {
                    continue;
                }
                let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("fetched batches");
                for record in sets.into_iter().flat_map(|set| set.records) {
                    if record.offset >= offset {
                        let value = record.value.as_deref().unwrap_or_default();
                        parse_record_value(partition, value);
                        offset = record.offset + 1;
                        records += 1;
                    }
                }
            }
            Received::Closed => {
                return TailOutcome {
                    records,
                    torn: None,
                }
            }
            Received::Torn { got, expected } => {
                return TailOutcome {
                    records,
                    torn: Some((got, expected)),
                }
            }
        }
    }
}

/// Sends one Fetch on an empty partition that only the shutdown can answer; returns
/// when it was answered (None: the connection closed without an answer).
fn parked_fetch(mut client: Client, topic: &str) -> Option<Instant> {
    let request = fetch_request(topic, 0, 0, PARKED_MAX_WAIT_MS);
    let cid = client
        .send(&request, FETCH_VERSION)
        .expect("send parked fetch");
    match client.recv::<FetchRequest>(FETCH_VERSION, cid) {
        Received::Response(response) => {
            assert_eq!(response.error_code, raw::NONE, "parked Fetch error");
            let p = &response.responses[0].partitions[0];
            assert_eq!(p.error_code, raw::NONE, "parked Fetch partition error");
            Some(Instant::now())
        }
        Received::Closed => None,
        Received::Torn { got, expected } => {
            panic!("parked fetch: torn response ({got} of {expected} bytes)")
        }
    }
}

/// A client that asks for the whole partition again and again and never reads: its
/// responses pile up in the socket and the broker's output buffer. Shutdown must not
/// wait on it for long.
fn never_read(mut client: Client, topic: &str) {
    let request = fetch_request(topic, 0, 0, 0);
    for _ in 0..NEVER_READ_REQUESTS_MAX {
        if client.send(&request, FETCH_VERSION).is_err() {
            return;
        }
    }
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().expect("client thread")
}

fn sigterm_under_load(backend: &str) {
    let backend_arg = format!("io_backend={backend}");
    let mut broker = TestBroker::start(&["--set", &backend_arg]);
    let mut rng = SplitMix64::new(seed_from_env(SEED_ENV));
    let topic = unique_topic("shutdown");
    let idle = unique_topic("shutdown-idle");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], PRODUCERS);
    create_topics(&mut conn, &[&idle], 1);
    drop(conn);

    let connect = || Client::connect(&broker).expect("connect");
    let producers: Vec<(Client, u64)> = (0..PRODUCERS)
        .map(|_| (connect(), rng.next_u64()))
        .collect();
    let tails: Vec<Client> = (0..PRODUCERS).map(|_| connect()).collect();
    let parked: Vec<Client> = (0..PARKED_FETCHES).map(|_| connect()).collect();
    let stuck = connect();

    let (signalled, status, exit_after, produced, tailed, answered) = thread::scope(|s| {
        let producing: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(p, (client, seed))| {
                let topic = topic.as_str();
                let ledger = PartitionLedger::new(p as i32);
                s.spawn(move || produce_until_closed(client, topic, ledger, seed, LOAD))
            })
            .collect();
        let tailing: Vec<_> = tails
            .into_iter()
            .enumerate()
            .map(|(p, client)| {
                let topic = topic.as_str();
                s.spawn(move || tail(client, topic, p as i32))
            })
            .collect();
        let parking: Vec<_> = parked
            .into_iter()
            .map(|client| {
                let idle = idle.as_str();
                s.spawn(move || parked_fetch(client, idle))
            })
            .collect();
        thread::sleep(WARM_UP / 2);
        // Once there is data to send back.
        let stuck = s.spawn(|| never_read(stuck, &topic));
        thread::sleep(WARM_UP / 2);
        broker.assert_running();
        let signalled = Instant::now();
        let (status, exit_after) = broker.terminate_timed();
        join(stuck);
        (
            signalled,
            status,
            exit_after,
            producing.into_iter().map(join).collect::<Vec<_>>(),
            tailing.into_iter().map(join).collect::<Vec<_>>(),
            parking.into_iter().map(join).collect::<Vec<_>>(),
        )
    });

    // The broker's own timestamps of the stop, to see where the time went.
    for line in broker.log_text().lines() {
        if ["shutting down", "did not stop", "stopped cleanly"]
            .iter()
            .any(|m| line.contains(m))
        {
            eprintln!("{backend}: {line}");
        }
    }
    let acked: usize = produced.iter().map(|o| o.ledger.acked.len()).sum();
    let records_tailed: u64 = tailed.iter().map(|t| t.records).sum();
    eprintln!(
        "{backend}: exit {status} {exit_after:?} after SIGTERM; {acked} produce requests \
         answered, {records_tailed} records tailed"
    );
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}; log:\n{}",
        broker.log_text()
    );
    assert!(
        exit_after <= EXIT_WITHIN,
        "exit took {exit_after:?} after SIGTERM (limit {EXIT_WITHIN:?}); log:\n{}",
        broker.log_text()
    );
    assert!(
        acked > 0 && records_tailed > 0,
        "no load reached the broker"
    );
    for (p, o) in produced.iter().enumerate() {
        assert!(o.torn.is_none(), "producer {p}: torn response {:?}", o.torn);
    }
    for (p, t) in tailed.iter().enumerate() {
        assert!(t.torn.is_none(), "consumer {p}: torn response {:?}", t.torn);
    }
    for (i, when) in answered.iter().enumerate() {
        let when = when.unwrap_or_else(|| panic!("parked fetch {i} was never answered"));
        assert!(
            when >= signalled,
            "parked fetch {i} answered before the signal"
        );
    }

    // Everything answered is there after a restart, and offsets continue.
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    for outcome in produced {
        let mut ledger = outcome.ledger;
        let log_end = ledger.verify(&mut conn, &topic);
        let p = ledger.partition;
        let (error_code, base_offset) = raw::produce(
            &mut conn,
            &topic,
            p,
            common::ledger::batch_of(p, ledger.next_seq, 1),
        );
        assert_eq!(error_code, raw::NONE, "produce after restart");
        assert_eq!(
            base_offset, log_end,
            "partition {p}: next offset after restart"
        );
    }
}

#[test]
fn sigterm_under_load_with_epoll_exits_0_within_a_second_and_loses_no_answered_request() {
    sigterm_under_load("epoll");
}

#[test]
fn sigterm_under_load_with_io_uring_exits_0_within_a_second_and_loses_no_answered_request() {
    sigterm_under_load("io_uring");
}
