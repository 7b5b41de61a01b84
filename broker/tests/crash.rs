//! Crash consistency of the real `strikemq` binary: `kill -9` at a random moment under
//! load, restart on the same data dir, and check every acknowledged record and every
//! acknowledged offset commit; the same loop with transactional producers (every
//! acknowledged commit visible to read_committed, nothing aborted); then torn and
//! garbage segment tails made by hand. Each runs under both write paths (`segment_write=mmap` and `pwrite`, the latter and one
//! mmap loop with the pre-fault window on).
//!
//! The loop runs `STRIKEMQ_CRASH_ITERATIONS` times (default 20; `just crash 100`
//! locally) on one data dir, so damage would accumulate. The schedule comes from a
//! seeded RNG; the seed is printed and `STRIKEMQ_CRASH_SEED` replays it.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;

use common::ledger::{
    batch_of, produce_until_closed, seed_from_env, Acked, Client, PartitionLedger, ProduceLoad,
    Received, SplitMix64,
};
use common::raw::{self, create_topics, topic_name, RawConn};
use common::txn_ledger::{transact_until_closed, verify_transactions, Fate, TxnLedger, TxnLoad};
use common::{unique_topic, TestBroker};

const ITERATIONS_ENV: &str = "STRIKEMQ_CRASH_ITERATIONS";
const SEED_ENV: &str = "STRIKEMQ_CRASH_SEED";
const DEFAULT_ITERATIONS: usize = 20;
/// One producer connection per partition.
const PARTITIONS: i32 = 3;
/// A steady rate rather than a flood, so that a kill lands at varied points of the
/// request cycle, with several requests in flight on each connection.
const LOAD: ProduceLoad = ProduceLoad {
    pipeline_depth: 4,
    records_per_request_max: 4,
    interval: Duration::from_millis(2),
};
const COMMIT_INTERVAL: Duration = Duration::from_millis(5);
/// The kill comes this long after the load starts (uniform, from the seeded RNG).
const KILL_AFTER_MS_MIN: u64 = 30;
const KILL_AFTER_MS_MAX: u64 = 400;
/// Small segments, so that the loop crosses segment rolls and crashes near them.
const SEGMENT_BYTES: &str = "segment_bytes=32768";
const GROUP: &str = "crash-group";
/// The write paths every scenario runs under. The pwrite run also has the pre-fault
/// window on, twice the segment size, so the next segment is prepared (and adopted)
/// at every roll and a kill lands in the middle of that too.
const MMAP: &[&str] = &["--set", "segment_write=mmap"];
const PWRITE_WITH_WINDOW: &[&str] = &[
    "--set",
    "segment_write=pwrite",
    "--set",
    "segment_prefault_bytes=65536",
];
const MMAP_WITH_WINDOW: &[&str] = &[
    "--set",
    "segment_write=mmap",
    "--set",
    "segment_prefault_bytes=65536",
];
const WRITE_PATHS: [&[&str]; 3] = [MMAP, PWRITE_WITH_WINDOW, MMAP_WITH_WINDOW];
const OFFSET_COMMIT_VERSION: i16 = 7;
const OFFSET_FETCH_VERSION: i16 = 7;

fn iterations() -> usize {
    match std::env::var(ITERATIONS_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{ITERATIONS_ENV}={text:?} is not a count")),
        Err(_) => DEFAULT_ITERATIONS,
    }
}

/// What the test knows about the group's committed offsets.
struct CommitLedger {
    /// Per partition: the offset known to be committed (acknowledged or served
    /// after a restart), -1 for none.
    committed: Vec<i64>,
    /// A commit sent but not answered: it may or may not have taken effect.
    in_flight: Option<i64>,
    next: i64,
}

fn commit_request(topic: &str, offset: i64) -> OffsetCommitRequest {
    // A "simple" commit (no member, generation -1), as admin tools and manual
    // consumers send; the store is the same as for group members.
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                (0..PARTITIONS)
                    .map(|p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1)
                    })
                    .collect(),
            )])
}

fn commit_until_closed(mut client: Client, topic: &str, mut ledger: CommitLedger) -> CommitLedger {
    loop {
        let offset = ledger.next;
        ledger.next += 1;
        ledger.in_flight = Some(offset);
        let Ok(cid) = client.send(&commit_request(topic, offset), OFFSET_COMMIT_VERSION) else {
            return ledger;
        };
        match client.recv::<OffsetCommitRequest>(OFFSET_COMMIT_VERSION, cid) {
            Received::Response(response) => {
                for p in &response.topics[0].partitions {
                    assert_eq!(
                        p.error_code,
                        raw::NONE,
                        "commit partition {}",
                        p.partition_index
                    );
                }
                ledger.committed.iter_mut().for_each(|c| *c = offset);
                ledger.in_flight = None;
            }
            Received::Closed | Received::Torn { .. } => return ledger,
        }
        thread::sleep(COMMIT_INTERVAL);
    }
}

/// Every partition's committed offset must be the acknowledged one or the one in
/// flight at the kill.
fn verify_commits(conn: &mut RawConn, topic: &str, ledger: &mut CommitLedger) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes((0..PARTITIONS).collect())]));
    let response = conn.call(&request, OFFSET_FETCH_VERSION);
    assert_eq!(response.error_code, raw::NONE, "OffsetFetch");
    for p in &response.topics[0].partitions {
        let i = p.partition_index as usize;
        let known = ledger.committed[i];
        assert!(
            p.committed_offset == known || Some(p.committed_offset) == ledger.in_flight,
            "partition {i}: committed offset {} after restart; acknowledged {known}, \
             in flight {:?}",
            p.committed_offset,
            ledger.in_flight
        );
        ledger.committed[i] = p.committed_offset;
    }
    ledger.in_flight = None;
}

/// One produce that must land exactly at the log end (offsets continue, no gap).
fn produce_probe(conn: &mut RawConn, topic: &str, ledger: &mut PartitionLedger, log_end: i64) {
    let p = ledger.partition;
    let first_seq = ledger.next_seq;
    ledger.next_seq += 1;
    let (error_code, base_offset) = raw::produce(conn, topic, p, batch_of(p, first_seq, 1));
    assert_eq!(error_code, raw::NONE, "partition {p}: probe produce");
    assert_eq!(
        base_offset, log_end,
        "partition {p}: the first produce after a restart must get the next offset"
    );
    ledger.acked.push(Acked {
        base_offset,
        first_seq,
        records: 1,
    });
}

/// The loop: load, kill -9 at a random moment, restart, verify everything, repeat.
fn kill9_loop(flush: &str, write_path: &[&str]) {
    let iterations = iterations();
    let mut rng = SplitMix64::new(seed_from_env(SEED_ENV));
    let flush_arg = format!("flush={flush}");
    let mut args = vec!["--set", &flush_arg, "--set", SEGMENT_BYTES];
    args.extend_from_slice(write_path);
    let mut broker = TestBroker::start(&args);
    let topic = unique_topic("crash");
    create_topics(&mut RawConn::connect(&broker), &[&topic], PARTITIONS);
    let mut ledgers: Vec<PartitionLedger> = (0..PARTITIONS).map(PartitionLedger::new).collect();
    let mut commits = CommitLedger {
        committed: vec![-1; PARTITIONS as usize],
        in_flight: None,
        next: 0,
    };
    let started = Instant::now();
    let mut acked_total = 0;
    for iteration in 0..iterations {
        let kill_after = Duration::from_millis(rng.range(KILL_AFTER_MS_MIN, KILL_AFTER_MS_MAX));
        let producers: Vec<Client> = (0..PARTITIONS)
            .map(|_| Client::connect(&broker).expect("connect producer"))
            .collect();
        let committer = Client::connect(&broker).expect("connect committer");
        let seeds: Vec<u64> = (0..PARTITIONS).map(|_| rng.next_u64()).collect();
        let topic_ref = topic.as_str();
        (ledgers, commits) = thread::scope(|s| {
            let producing: Vec<_> = std::mem::take(&mut ledgers)
                .into_iter()
                .zip(producers)
                .zip(seeds)
                .map(|((ledger, client), seed)| {
                    s.spawn(move || {
                        produce_until_closed(client, topic_ref, ledger, seed, LOAD).ledger
                    })
                })
                .collect();
            let commit_ledger = std::mem::replace(
                &mut commits,
                CommitLedger {
                    committed: Vec::new(),
                    in_flight: None,
                    next: 0,
                },
            );
            let committing =
                s.spawn(move || commit_until_closed(committer, topic_ref, commit_ledger));
            thread::sleep(kill_after);
            broker.kill9();
            let ledgers = producing
                .into_iter()
                .map(|h| h.join().expect("producer thread"))
                .collect();
            (ledgers, committing.join().expect("committer thread"))
        });
        broker.restart();

        let mut conn = RawConn::connect(&broker);
        let mut log_ends = Vec::new();
        for ledger in &mut ledgers {
            let log_end = ledger.verify(&mut conn, &topic);
            produce_probe(&mut conn, &topic, ledger, log_end);
            log_ends.push(log_end);
        }
        verify_commits(&mut conn, &topic, &mut commits);
        acked_total = ledgers.iter().map(|l| l.acked.len()).sum::<usize>();
        // Records a producer never heard back about but the broker kept: the kill
        // landed between the append and the response.
        // (+ 1: the probe, acknowledged after the verification read the log.)
        let kept_unacked: u64 = ledgers
            .iter()
            .map(|l| l.verified.len() as u64 + 1 - l.acked.iter().map(|a| a.records).sum::<u64>())
            .sum();
        eprintln!(
            "iteration {iteration}: killed after {kill_after:?}; log ends {log_ends:?}; \
             {acked_total} acknowledged produces so far, {kept_unacked} records kept \
             without acknowledgement; committed {:?}",
            commits.committed
        );
    }
    // A clean stop and one more check: the loop's data dir is still whole.
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    for ledger in &mut ledgers {
        ledger.verify(&mut conn, &topic);
    }
    verify_commits(&mut conn, &topic, &mut commits);
    assert!(
        acked_total > iterations,
        "the load barely ran ({acked_total} acknowledged produces): nothing was tested"
    );
    eprintln!(
        "{iterations} kill -9 iterations with flush={flush} {write_path:?} in {:?}",
        started.elapsed()
    );
}

#[test]
fn kill9_loop_with_flush_always_keeps_every_acknowledged_record_and_commit() {
    kill9_loop("always", MMAP);
}

/// `flush=never` promises to survive a process crash (what reached the page cache is
/// the file's content), not an OS crash: see docs/durability.md.
#[test]
fn kill9_loop_with_flush_never_keeps_everything_acknowledged_on_a_process_crash() {
    kill9_loop("never", MMAP);
}

#[test]
fn kill9_loop_with_interval_flush_keeps_everything_acknowledged_on_a_process_crash() {
    kill9_loop("20ms", MMAP);
}

/// pwrite + fdatasync before the ack, with the window preparing segments meanwhile.
#[test]
fn kill9_loop_pwrite_with_flush_always_keeps_every_acknowledged_record_and_commit() {
    kill9_loop("always", PWRITE_WITH_WINDOW);
}

#[test]
fn kill9_loop_pwrite_with_flush_never_keeps_everything_acknowledged_on_a_process_crash() {
    kill9_loop("never", PWRITE_WITH_WINDOW);
}

#[test]
fn kill9_loop_pwrite_with_interval_flush_keeps_everything_acknowledged_on_a_process_crash() {
    kill9_loop("20ms", PWRITE_WITH_WINDOW);
}

/// The mapping written while the pre-fault thread faults pages in just ahead of it.
#[test]
fn kill9_loop_mmap_with_window_keeps_everything_acknowledged_on_a_process_crash() {
    kill9_loop("never", MMAP_WITH_WINDOW);
}

// ---------------------------------------------------------------------------------
// Transactional producers under kill -9.

/// Transactional producers, each on its own connection, on the same partitions (their
/// transactions and markers interleave).
const TXN_PRODUCERS: usize = 2;
const TXN_LOAD: TxnLoad = TxnLoad {
    partitions: PARTITIONS,
    records_per_partition_max: 3,
    abort_one_in: 3,
    offsets_one_in: 2,
    interval: Duration::from_millis(1),
};

/// The loop with transactional producers (raw requests, one at a time, so the test
/// knows which EndTxn the broker acknowledged): transactions over random subsets of
/// the partitions, two in three committed, the rest aborted, every other one also
/// committing an offset for the producer's group, until the kill; after each restart
/// a read_committed reading (with the aborted-transactions filter of Kafka's
/// consumers) must show every acknowledged commit whole, nothing of an aborted or
/// unfinished transaction, an unanswered commit all or nothing, and no transaction
/// still open; the log's offsets run from 0 without a gap or a repeat; and each
/// group's offset is that of its producer's latest committed transaction.
fn kill9_loop_transactional(flush: &str, write_path: &[&str]) {
    let iterations = iterations();
    let mut rng = SplitMix64::new(seed_from_env(SEED_ENV));
    let flush_arg = format!("flush={flush}");
    let mut args = vec!["--set", &flush_arg, "--set", SEGMENT_BYTES];
    args.extend_from_slice(write_path);
    let mut broker = TestBroker::start(&args);
    let topic = unique_topic("crash-txn");
    create_topics(&mut RawConn::connect(&broker), &[&topic], PARTITIONS);
    let mut ledgers: Vec<TxnLedger> = (0..TXN_PRODUCERS)
        .map(|i| TxnLedger::new(i, &format!("crash-txn-{i}")))
        .collect();
    let started = Instant::now();
    for iteration in 0..iterations {
        let kill_after = Duration::from_millis(rng.range(KILL_AFTER_MS_MIN, KILL_AFTER_MS_MAX));
        let clients: Vec<Client> = (0..TXN_PRODUCERS)
            .map(|_| Client::connect(&broker).expect("connect transactional producer"))
            .collect();
        let seeds: Vec<u64> = (0..TXN_PRODUCERS).map(|_| rng.next_u64()).collect();
        let topic_ref = topic.as_str();
        ledgers = thread::scope(|s| {
            let running: Vec<_> = std::mem::take(&mut ledgers)
                .into_iter()
                .zip(clients)
                .zip(seeds)
                .map(|((ledger, client), seed)| {
                    s.spawn(move || {
                        transact_until_closed(client, topic_ref, ledger, seed, TXN_LOAD)
                    })
                })
                .collect();
            thread::sleep(kill_after);
            broker.kill9();
            running
                .into_iter()
                .map(|h| h.join().expect("transactional producer thread"))
                .collect()
        });
        let in_flight: usize = ledgers.iter().map(|l| l.count(Fate::CommitInFlight)).sum();
        broker.restart();
        let mut conn = RawConn::connect(&broker);
        let ends = verify_transactions(&mut conn, &topic, PARTITIONS, &mut ledgers);
        let committed: usize = ledgers.iter().map(|l| l.count(Fate::Committed)).sum();
        let aborted: usize = ledgers.iter().map(|l| l.count(Fate::Aborted)).sum();
        eprintln!(
            "iteration {iteration}: killed after {kill_after:?}; log ends {ends:?}; \
             {committed} transactions committed, {aborted} aborted so far \
             ({in_flight} commit(s) unanswered at the kill)"
        );
    }
    // A clean stop and one more check.
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    verify_transactions(&mut conn, &topic, PARTITIONS, &mut ledgers);
    let committed: usize = ledgers.iter().map(|l| l.count(Fate::Committed)).sum();
    let aborted: usize = ledgers.iter().map(|l| l.count(Fate::Aborted)).sum();
    assert!(
        committed > iterations && aborted > iterations,
        "the load barely ran ({committed} committed, {aborted} aborted): nothing was tested"
    );
    eprintln!(
        "{iterations} kill -9 iterations with transactional producers, flush={flush} \
         {write_path:?} in {:?}",
        started.elapsed()
    );
}

#[test]
fn kill9_loop_transactional_keeps_every_acknowledged_commit_and_no_aborted_record() {
    kill9_loop_transactional("always", MMAP);
}

/// The transaction log and the markers are not fsynced with `flush=never`, but what
/// reached the page cache survives a process crash (docs/durability.md).
#[test]
fn kill9_loop_transactional_with_flush_never_keeps_every_acknowledged_commit() {
    kill9_loop_transactional("never", MMAP);
}

#[test]
fn kill9_loop_transactional_pwrite_keeps_every_acknowledged_commit_and_no_aborted_record() {
    kill9_loop_transactional("always", PWRITE_WITH_WINDOW);
}

// ---------------------------------------------------------------------------------
// Damaged segment tails, made by hand while the broker is stopped.

/// (position, length) of each batch in a segment file's bytes, read from the v2 batch
/// headers (base offset i64, then batch length i32 counting the bytes after it) until
/// the zero-filled preallocated tail.
fn batch_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    const LENGTH_FIELD_END: usize = 12;
    let mut spans = Vec::new();
    let mut pos = 0;
    while pos + LENGTH_FIELD_END <= bytes.len() {
        let len_bytes: [u8; 4] = bytes[pos + 8..pos + 12].try_into().expect("4 bytes");
        let batch_len = i32::from_be_bytes(len_bytes);
        if batch_len <= 0 {
            break;
        }
        let total = LENGTH_FIELD_END + batch_len as usize;
        assert!(pos + total <= bytes.len(), "segment ends inside a batch");
        spans.push((pos, total));
        pos += total;
    }
    spans
}

/// The offset after a v2 batch: base offset (bytes 0..8) + last offset delta (bytes
/// 23..27) + 1.
fn batch_next_offset(batch: &[u8]) -> i64 {
    let base = i64::from_be_bytes(batch[..8].try_into().expect("8 bytes"));
    let delta = i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes"));
    base + i64::from(delta) + 1
}

/// The segment files of a partition, oldest first.
fn segment_files(broker: &TestBroker, topic: &str, partition: i32) -> Vec<PathBuf> {
    let dir = broker.data_dir().join(format!("{topic}-{partition}"));
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {dir:?}: {e}"))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no segment in {dir:?}");
    files
}

/// Produces `requests` acknowledged batches of 3 records to partition 0.
fn produce_batches(conn: &mut RawConn, topic: &str, ledger: &mut PartitionLedger, requests: usize) {
    for _ in 0..requests {
        let first_seq = ledger.next_seq;
        ledger.next_seq += 3;
        let (error_code, base_offset) = raw::produce(conn, topic, 0, batch_of(0, first_seq, 3));
        assert_eq!(error_code, raw::NONE, "produce");
        ledger.acked.push(Acked {
            base_offset,
            first_seq,
            records: 3,
        });
    }
}

fn write_at(path: &Path, position: u64, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    file.seek(SeekFrom::Start(position)).expect("seek");
    file.write_all(bytes).expect("write garbage");
}

/// Restarts, checks the log against the ledger (the damaged batch, if any, no longer
/// acknowledged), produces at the expected end, and checks again after a kill -9.
fn restart_and_verify(
    broker: &mut TestBroker,
    topic: &str,
    ledger: &mut PartitionLedger,
    expected_end: i64,
    what: &str,
) {
    broker.restart();
    let mut conn = RawConn::connect(broker);
    let log_end = ledger.verify(&mut conn, topic);
    assert_eq!(log_end, expected_end, "{what}: log end after restart");
    produce_probe(&mut conn, topic, ledger, log_end);
    // The probe overwrote the bytes where the damage was: it must survive a crash,
    // and nothing of the damage may come back.
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::connect(broker);
    assert_eq!(
        ledger.verify(&mut conn, topic),
        expected_end + 1,
        "{what}: log end after the probe and a kill -9"
    );
}

#[test]
fn torn_final_batch_is_cut_and_the_intact_prefix_is_served_and_continued() {
    for write_path in WRITE_PATHS {
        eprintln!("write path {write_path:?}");
        torn_final_batch(write_path);
    }
}

fn torn_final_batch(write_path: &[&str]) {
    let mut args = vec!["--set", "flush=always"];
    args.extend_from_slice(write_path);
    let mut broker = TestBroker::start(&args);
    let topic = unique_topic("torn");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);
    let mut ledger = PartitionLedger::new(0);
    produce_batches(&mut conn, &topic, &mut ledger, 10);

    // Cut inside the batch header, in the middle of the records, and one byte short.
    let cuts: [fn(usize) -> usize; 3] = [|_len| 20, |len| len / 2, |len| len - 1];
    for keep in cuts {
        produce_batches(&mut conn, &topic, &mut ledger, 1);
        broker.stop();
        let segment = segment_files(&broker, &topic, 0).pop().expect("a segment");
        let bytes = fs::read(&segment).expect("read segment");
        let spans = batch_spans(&bytes);
        let &(last_pos, last_len) = spans.last().expect("batches in the segment");
        let cut_at = last_pos + keep(last_len);
        OpenOptions::new()
            .write(true)
            .open(&segment)
            .and_then(|f| f.set_len(cut_at as u64))
            .expect("truncate segment");
        // The torn batch was acknowledged, but its bytes are gone: no longer promised.
        let torn = ledger.acked.pop().expect("the last batch");
        let expected_end = torn.base_offset;
        let what = format!("segment cut at byte {cut_at} (last batch {last_pos}+{last_len})");
        restart_and_verify(&mut broker, &topic, &mut ledger, expected_end, &what);
        conn = RawConn::connect(&broker);
    }
}

#[test]
fn garbage_after_the_last_batch_is_cut_and_produces_continue_at_the_right_offset() {
    for write_path in WRITE_PATHS {
        eprintln!("write path {write_path:?}");
        garbage_after_the_last_batch(write_path);
    }
}

fn garbage_after_the_last_batch(write_path: &[&str]) {
    // Small segments: the same damage is also tried at the end of a sealed segment.
    let mut args = vec!["--set", "flush=always", "--set", "segment_bytes=4096"];
    args.extend_from_slice(write_path);
    let mut broker = TestBroker::start(&args);
    let topic = unique_topic("garbage");
    let mut conn = RawConn::connect(&broker);
    create_topics(&mut conn, &[&topic], 1);
    let mut ledger = PartitionLedger::new(0);
    produce_batches(&mut conn, &topic, &mut ledger, 30);
    let mut rng = SplitMix64::new(7);
    let random_garbage: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8 | 1).collect();

    enum Garbage {
        Random,
        /// The last batch again: a replayed write must not become a duplicate.
        ReplayedLastBatch,
        /// The last batch at the next offset with a flipped byte in its records: a
        /// plausible batch whose CRC fails.
        CorruptCopyOfLastBatch,
    }
    for (garbage, sealed) in [
        (Garbage::Random, false),
        (Garbage::ReplayedLastBatch, false),
        (Garbage::CorruptCopyOfLastBatch, false),
        (Garbage::Random, true),
        (Garbage::CorruptCopyOfLastBatch, true),
    ] {
        produce_batches(&mut conn, &topic, &mut ledger, 2);
        let expected_end = ledger
            .acked
            .last()
            .map_or(0, |a| a.base_offset + a.records as i64);
        broker.stop();
        let mut files = segment_files(&broker, &topic, 0);
        assert!(files.len() >= 2, "expected several segments, got {files:?}");
        let segment = if sealed {
            files.swap_remove(files.len() - 2)
        } else {
            files.pop().expect("active segment")
        };
        let bytes = fs::read(&segment).expect("read segment");
        let &(last_pos, last_len) = batch_spans(&bytes).last().expect("batches");
        let data_end = last_pos + last_len;
        let last_batch = &bytes[last_pos..data_end];
        let junk: Vec<u8> = match garbage {
            Garbage::Random => random_garbage.clone(),
            Garbage::ReplayedLastBatch => last_batch.to_vec(),
            Garbage::CorruptCopyOfLastBatch => {
                // The next base offset (not covered by the CRC), so that only the CRC
                // check can tell it from a real batch.
                let mut copy = last_batch.to_vec();
                let next_offset = batch_next_offset(last_batch);
                copy[..8].copy_from_slice(&next_offset.to_be_bytes());
                let i = copy.len() - 10;
                copy[i] ^= 0x5a;
                copy
            }
        };
        write_at(&segment, data_end as u64, &junk);
        let what = format!(
            "{} bytes of garbage after byte {data_end} of {} segment {segment:?}",
            junk.len(),
            if sealed { "sealed" } else { "active" }
        );
        restart_and_verify(&mut broker, &topic, &mut ledger, expected_end, &what);
        conn = RawConn::connect(&broker);
    }
}
