//! What a crash test of transactions needs: a raw transactional producer (InitProducerId,
//! AddPartitionsToTxn, transactional Produce, AddOffsetsToTxn + TxnOffsetCommit, EndTxn,
//! one request at a time, so the test knows exactly which transactions the broker
//! acknowledged) that runs until the broker dies under it, a ledger of every
//! transaction's fate, and a read_committed reader that filters aborted transactions as
//! Kafka's consumers do (the aborted-transactions list of Fetch plus the abort markers).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, FetchRequest, GroupId,
    InitProducerIdRequest, OffsetFetchRequest, ProduceRequest, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::records::RecordBatchDecoder;

use super::ledger::{Client, Received, SplitMix64};
use super::raw::{
    self, produce_request, topic_name, transactional_batch, ProducerState, RawConn, FETCH_VERSION,
    PRODUCE_VERSION,
};

const INIT_PRODUCER_ID_VERSION: i16 = 4;
const ADD_PARTITIONS_VERSION: i16 = 3;
const END_TXN_VERSION: i16 = 3;
const ADD_OFFSETS_VERSION: i16 = 3;
const TXN_OFFSET_COMMIT_VERSION: i16 = 3;
const OFFSET_FETCH_VERSION: i16 = 7;
/// The partition of the transactional topic whose consumed offset the transactions
/// commit (as a consume-transform-produce loop commits its input's offsets).
const OFFSETS_PARTITION: i32 = 0;
/// Long enough that the broker never aborts a transaction of a live producer by timeout
/// during a test: every abort the test sees is one it asked for or a crash's.
pub const TXN_TIMEOUT_MS: i32 = 60_000;
/// InitProducerId answers a test may retry: the coordinator busy with the previous
/// epoch's transaction (CONCURRENT_TRANSACTIONS) or loading (COORDINATOR_LOAD_IN_PROGRESS,
/// COORDINATOR_NOT_AVAILABLE).
const INIT_RETRIABLE: [i16; 3] = [51, 14, 15];
const INIT_ATTEMPTS_MAX: usize = 50;

/// What the test knows about one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Records sent, and no EndTxn(commit) sent (or an EndTxn(abort) not answered): the
    /// broker must abort it, so none of it may ever be visible to read_committed.
    Open,
    /// EndTxn(commit) sent without an answer: visible entirely or not at all.
    CommitInFlight,
    /// EndTxn(commit) acknowledged (or its in-flight commit was seen after a restart).
    Committed,
    /// EndTxn(abort) acknowledged, or resolved as aborted after a restart.
    Aborted,
}

/// Record values per partition, in offset (or send) order.
pub type Values = BTreeMap<i32, Vec<Vec<u8>>>;

#[derive(Debug)]
pub struct Txn {
    /// Every record value sent in the transaction (acknowledged or not), per partition.
    pub values: Values,
    pub fate: Fate,
    /// The offset committed for the producer's group inside the transaction, if any.
    pub offset: Option<i64>,
}

/// One transactional producer's history across crashes.
#[derive(Debug)]
pub struct TxnLedger {
    /// Index of the producer: its values start with `x<producer>-`.
    pub producer: usize,
    pub transactional_id: String,
    /// The consumer group whose offsets the transactions commit.
    pub group: String,
    pub txns: Vec<Txn>,
}

impl TxnLedger {
    pub fn new(producer: usize, transactional_id: &str) -> TxnLedger {
        TxnLedger {
            producer,
            transactional_id: transactional_id.to_string(),
            group: format!("{transactional_id}-group"),
            txns: Vec::new(),
        }
    }

    pub fn count(&self, fate: Fate) -> usize {
        self.txns.iter().filter(|t| t.fate == fate).count()
    }
}

/// The value of record `record` of partition `partition` in transaction `txn` of
/// producer `producer`.
pub fn txn_value(producer: usize, txn: usize, partition: i32, record: usize) -> Vec<u8> {
    format!("x{producer}-t{txn:07}-p{partition}-r{record}").into_bytes()
}

/// (producer, transaction) of a value made by [`txn_value`]; fails on anything else.
fn parse_txn_value(partition: i32, value: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(value);
    let parsed = (|| {
        let rest = text.strip_prefix('x')?;
        let (producer, rest) = rest.split_once("-t")?;
        let (txn, rest) = rest.split_once("-p")?;
        let (p, _) = rest.split_once("-r")?;
        (p.parse::<i32>().ok()? == partition).then_some(())?;
        Some((producer.parse().ok()?, txn.parse().ok()?))
    })();
    parsed.unwrap_or_else(|| panic!("partition {partition}: foreign or corrupt record {text:?}"))
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(id.to_string().into())
}

/// How a transactional load runs.
#[derive(Clone, Copy, Debug)]
pub struct TxnLoad {
    pub partitions: i32,
    pub records_per_partition_max: u64,
    /// One transaction in this many is aborted on purpose; the others are committed.
    pub abort_one_in: u64,
    /// One transaction in this many also commits an offset for the producer's group
    /// (AddOffsetsToTxn + TxnOffsetCommit).
    pub offsets_one_in: u64,
    /// Pause after each transaction.
    pub interval: Duration,
}

/// Runs transactions (InitProducerId first) until the broker closes the connection;
/// every request is answered before the next is sent, and every answer goes into the
/// ledger. A Kafka error in an answer fails the test.
pub fn transact_until_closed(
    mut client: Client,
    topic: &str,
    mut ledger: TxnLedger,
    seed: u64,
    load: TxnLoad,
) -> TxnLedger {
    let mut rng = SplitMix64::new(seed);
    let id = ledger.transactional_id.clone();
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(&id)))
        .with_transaction_timeout_ms(TXN_TIMEOUT_MS)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let mut attempts = 0;
    let (producer_id, producer_epoch) = loop {
        let Ok(cid) = client.send(&init, INIT_PRODUCER_ID_VERSION) else {
            return ledger;
        };
        let Received::Response(r) =
            client.recv::<InitProducerIdRequest>(INIT_PRODUCER_ID_VERSION, cid)
        else {
            return ledger;
        };
        attempts += 1;
        if INIT_RETRIABLE.contains(&r.error_code) && attempts < INIT_ATTEMPTS_MAX {
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(r.error_code, raw::NONE, "{id}: InitProducerId");
        break (r.producer_id, r.producer_epoch);
    };
    // Sequences restart at 0 with every epoch, per partition.
    let mut sequences = vec![0i32; load.partitions as usize];
    loop {
        let n = ledger.txns.len();
        let commit = rng.next_u64() % load.abort_one_in != 0;
        // A non-empty subset of the partitions.
        let mask = rng.range(1, (1u64 << load.partitions) - 1);
        let partitions: Vec<i32> = (0..load.partitions)
            .filter(|p| mask & (1 << p) != 0)
            .collect();
        let with_offset = rng.next_u64() % load.offsets_one_in == 0;
        ledger.txns.push(Txn {
            values: BTreeMap::new(),
            fate: Fate::Open,
            offset: None,
        });

        let add = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id(&id))
            .with_v3_and_below_producer_id(producer_id)
            .with_v3_and_below_producer_epoch(producer_epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions.clone())]);
        let Ok(cid) = client.send(&add, ADD_PARTITIONS_VERSION) else {
            return ledger;
        };
        let Received::Response(r) =
            client.recv::<AddPartitionsToTxnRequest>(ADD_PARTITIONS_VERSION, cid)
        else {
            return ledger;
        };
        assert_eq!(r.error_code, raw::NONE, "{id}: AddPartitionsToTxn");
        for t in &r.results_by_topic_v3_and_below {
            for p in &t.results_by_partition {
                assert_eq!(
                    p.partition_error_code,
                    raw::NONE,
                    "{id}: AddPartitionsToTxn partition {}",
                    p.partition_index
                );
            }
        }

        for &p in &partitions {
            let records = rng.range(1, load.records_per_partition_max) as usize;
            let values: Vec<Vec<u8>> = (0..records)
                .map(|r| txn_value(ledger.producer, n, p, r))
                .collect();
            // Counted as sent before the write: a partly written request may still
            // have reached the broker.
            ledger.txns[n]
                .values
                .entry(p)
                .or_default()
                .extend(values.iter().cloned());
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let batch: Bytes = transactional_batch(
                &refs,
                ProducerState {
                    producer_id: producer_id.0,
                    producer_epoch,
                    base_sequence: sequences[p as usize],
                },
            );
            let request: ProduceRequest =
                produce_request(topic, p, batch).with_transactional_id(Some(txn_id(&id)));
            let Ok(cid) = client.send(&request, PRODUCE_VERSION) else {
                return ledger;
            };
            let Received::Response(r) = client.recv::<ProduceRequest>(PRODUCE_VERSION, cid) else {
                return ledger;
            };
            let pr = &r.responses[0].partition_responses[0];
            assert_eq!(
                pr.error_code,
                raw::NONE,
                "{id}: transactional produce to partition {p}"
            );
            sequences[p as usize] += records as i32;
        }

        if with_offset {
            // Part of the transaction from the moment it is sent.
            let offset = n as i64 + 1;
            ledger.txns[n].offset = Some(offset);
            let group = GroupId(ledger.group.clone().into());
            let add = AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id(&id))
                .with_producer_id(producer_id)
                .with_producer_epoch(producer_epoch)
                .with_group_id(group.clone());
            let Ok(cid) = client.send(&add, ADD_OFFSETS_VERSION) else {
                return ledger;
            };
            let Received::Response(r) =
                client.recv::<AddOffsetsToTxnRequest>(ADD_OFFSETS_VERSION, cid)
            else {
                return ledger;
            };
            assert_eq!(r.error_code, raw::NONE, "{id}: AddOffsetsToTxn");
            let commit = TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id(&id))
                .with_group_id(group)
                .with_producer_id(producer_id)
                .with_producer_epoch(producer_epoch)
                .with_generation_id(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(OFFSETS_PARTITION)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)])]);
            let Ok(cid) = client.send(&commit, TXN_OFFSET_COMMIT_VERSION) else {
                return ledger;
            };
            let Received::Response(r) =
                client.recv::<TxnOffsetCommitRequest>(TXN_OFFSET_COMMIT_VERSION, cid)
            else {
                return ledger;
            };
            for t in &r.topics {
                for p in &t.partitions {
                    assert_eq!(p.error_code, raw::NONE, "{id}: TxnOffsetCommit");
                }
            }
        }

        let end = EndTxnRequest::default()
            .with_transactional_id(txn_id(&id))
            .with_producer_id(producer_id)
            .with_producer_epoch(producer_epoch)
            .with_committed(commit);
        if commit {
            ledger.txns[n].fate = Fate::CommitInFlight;
        }
        let Ok(cid) = client.send(&end, END_TXN_VERSION) else {
            return ledger;
        };
        let Received::Response(r) = client.recv::<EndTxnRequest>(END_TXN_VERSION, cid) else {
            return ledger;
        };
        assert_eq!(r.error_code, raw::NONE, "{id}: EndTxn(commit={commit})");
        ledger.txns[n].fate = if commit {
            Fate::Committed
        } else {
            Fate::Aborted
        };
        if !load.interval.is_zero() {
            thread::sleep(load.interval);
        }
    }
}

/// One partition as a read_committed consumer sees it, read with raw Fetches
/// (isolation level 1) from offset 0.
pub struct CommittedView {
    /// (offset, value) of every record a read_committed consumer delivers, in order.
    pub visible: Vec<(i64, Vec<u8>)>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// Data records, visible or not, and markers: what the log holds.
    pub entries: usize,
}

/// Reads `partition` up to its last stable offset with read_committed Fetches and
/// filters it as Kafka's consumers do: a transactional batch of a producer listed in
/// the aborted transactions (from its first offset on) is skipped until that
/// producer's abort marker; markers are never delivered. Also checks that the offsets
/// of the log (data and markers) run from 0 without a gap or a repeat.
pub fn read_committed(conn: &mut RawConn, topic: &str, partition: i32) -> CommittedView {
    let mut entries = Vec::new();
    let mut aborted: BTreeSet<(i64, i64)> = BTreeSet::new(); // (first offset, producer id)
    let mut offset = 0i64;
    let (high_watermark, last_stable_offset) = loop {
        let request: FetchRequest =
            raw::fetch_request(topic, partition, offset, 0).with_isolation_level(1);
        let response = conn.call(&request, FETCH_VERSION);
        assert_eq!(response.error_code, raw::NONE, "Fetch");
        let p = &response.responses[0].partitions[0];
        assert_eq!(
            p.error_code,
            raw::NONE,
            "Fetch {topic}-{partition} at {offset}"
        );
        for a in p.aborted_transactions.iter().flatten() {
            aborted.insert((a.first_offset, a.producer_id.0));
        }
        let before = entries.len();
        if let Some(bytes) = p.records.as_ref().filter(|b| !b.is_empty()) {
            let mut bytes = bytes.clone();
            for set in RecordBatchDecoder::decode_all(&mut bytes).expect("decode batches") {
                for record in set.records {
                    if record.offset >= offset {
                        offset = record.offset + 1;
                        entries.push(record);
                    }
                }
            }
        }
        if offset >= p.last_stable_offset {
            break (p.high_watermark, p.last_stable_offset);
        }
        assert!(
            entries.len() > before,
            "Fetch {topic}-{partition} at {offset} returned nothing below the last stable \
             offset {}",
            p.last_stable_offset
        );
    };
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            e.offset, i as i64,
            "partition {partition}: gap or repeat in the log's offsets"
        );
    }
    let mut pending: Vec<(i64, i64)> = aborted.into_iter().collect();
    pending.reverse(); // pop() yields the lowest first offset
    let mut aborting: HashSet<i64> = HashSet::new();
    let mut visible = Vec::new();
    for e in &entries {
        while pending.last().is_some_and(|&(first, _)| first <= e.offset) {
            let (_, producer_id) = pending.pop().expect("checked");
            aborting.insert(producer_id);
        }
        if e.control {
            // Key: i16 version, i16 type (0 abort, 1 commit).
            let is_abort = e
                .key
                .as_ref()
                .is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 0]);
            if is_abort {
                aborting.remove(&e.producer_id);
            }
            continue;
        }
        if e.transactional && aborting.contains(&e.producer_id) {
            continue;
        }
        visible.push((
            e.offset,
            e.value.as_ref().map(|v| v.to_vec()).unwrap_or_default(),
        ));
    }
    CommittedView {
        visible,
        high_watermark,
        last_stable_offset,
        entries: entries.len(),
    }
}

/// Checks what read_committed readers see of `topic` against the ledgers, right after a
/// restart: no transaction left open (last stable offset = high watermark), every
/// acknowledged commit wholly visible, nothing of an aborted or unfinished transaction
/// visible, an unanswered commit all or nothing; each producer's transactions in order
/// and no record twice. Resolves the fates the restart decided. Returns the log end
/// offsets.
pub fn verify_transactions(
    conn: &mut RawConn,
    topic: &str,
    partitions: i32,
    ledgers: &mut [TxnLedger],
) -> Vec<i64> {
    let mut seen: BTreeMap<(usize, usize), Values> = BTreeMap::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let view = read_committed(conn, topic, p);
        assert_eq!(
            view.last_stable_offset, view.high_watermark,
            "partition {p}: a transaction is still open after the restart"
        );
        assert_eq!(view.entries as i64, view.high_watermark, "partition {p}");
        let mut last_txn: BTreeMap<usize, usize> = BTreeMap::new();
        let mut values = HashSet::new();
        for (offset, value) in view.visible {
            let (producer, txn) = parse_txn_value(p, &value);
            assert!(
                producer < ledgers.len() && txn < ledgers[producer].txns.len(),
                "partition {p}: offset {offset} holds a record of a transaction never begun: \
                 {:?}",
                String::from_utf8_lossy(&value)
            );
            assert!(
                last_txn.get(&producer).is_none_or(|&t| t <= txn),
                "partition {p}: producer {producer}'s transaction {txn} at offset {offset} \
                 after its transaction {}",
                last_txn[&producer]
            );
            last_txn.insert(producer, txn);
            assert!(
                values.insert(value.clone()),
                "partition {p}: record {:?} visible twice",
                String::from_utf8_lossy(&value)
            );
            seen.entry((producer, txn))
                .or_default()
                .entry(p)
                .or_default()
                .push(value);
        }
        ends.push(view.high_watermark);
    }
    for ledger in ledgers.iter_mut() {
        for (n, txn) in ledger.txns.iter_mut().enumerate() {
            let visible = seen.remove(&(ledger.producer, n)).unwrap_or_default();
            let who = format!(
                "{} transaction {n} ({:?}, partitions {:?})",
                ledger.transactional_id,
                txn.fate,
                txn.values.keys().collect::<Vec<_>>()
            );
            match txn.fate {
                Fate::Committed => assert!(
                    visible == txn.values,
                    "{who}: acknowledged commit not whole: visible {}, sent {}",
                    show(&visible),
                    show(&txn.values)
                ),
                Fate::Open | Fate::Aborted => {
                    assert!(
                        visible.is_empty(),
                        "{who}: records of an aborted transaction visible to read_committed: \
                         {}",
                        show(&visible)
                    );
                    txn.fate = Fate::Aborted;
                }
                Fate::CommitInFlight => {
                    if visible.is_empty() {
                        txn.fate = Fate::Aborted;
                    } else {
                        assert!(
                            visible == txn.values,
                            "{who}: a commit in flight at the kill is partly visible: \
                             visible {}, sent {}",
                            show(&visible),
                            show(&txn.values)
                        );
                        txn.fate = Fate::Committed;
                    }
                }
            }
        }
    }
    assert!(seen.is_empty(), "records of unknown transactions: {seen:?}");
    for ledger in ledgers.iter() {
        verify_group_offset(conn, topic, ledger);
    }
    ends
}

/// The group's committed offset must be the one of its latest committed transaction
/// that carried one (-1 when none did): offsets commit with the records, atomically,
/// and an aborted transaction's offsets never count.
fn verify_group_offset(conn: &mut RawConn, topic: &str, ledger: &TxnLedger) {
    let want = ledger
        .txns
        .iter()
        .filter(|t| t.fate == Fate::Committed)
        .filter_map(|t| t.offset)
        .max()
        .unwrap_or(-1);
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(ledger.group.clone().into()))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![OFFSETS_PARTITION])]));
    let response = conn.call(&request, OFFSET_FETCH_VERSION);
    assert_eq!(
        response.error_code,
        raw::NONE,
        "OffsetFetch {}",
        ledger.group
    );
    let got = response.topics[0].partitions[0].committed_offset;
    assert_eq!(
        got, want,
        "{}: the group's offset after the restart is not the one of its latest committed \
         transaction",
        ledger.group
    );
}

/// Values per partition as text, for failure messages.
fn show(values: &Values) -> String {
    let text: BTreeMap<i32, Vec<String>> = values
        .iter()
        .map(|(p, vs)| {
            let vs = vs.iter().map(|v| String::from_utf8_lossy(v).into_owned());
            (*p, vs.collect())
        })
        .collect();
    format!("{text:?}")
}
