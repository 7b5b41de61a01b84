//! Coordinator transitions without sockets: fencing, timeouts, persistence, recovery.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

/// Records every marker written.
#[derive(Default)]
#[allow(clippy::type_complexity)]
struct Recorder(
    Mutex<Vec<(String, i32, i64, i16, bool)>>,
    Mutex<Vec<(String, String, i32, i64)>>,
);

impl Markers for Recorder {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        pid: i64,
        epoch: i16,
        commit: bool,
    ) -> io::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push((topic.to_string(), partition, pid, epoch, commit));
        Ok(())
    }

    fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<(String, i32, PendingOffset)>,
    ) -> io::Result<()> {
        for (topic, partition, o) in offsets {
            self.1
                .lock()
                .unwrap()
                .push((group.to_string(), topic, partition, o.offset));
        }
        Ok(())
    }
}

fn alloc() -> impl Fn() -> i64 {
    let next = AtomicI64::new(1000);
    move || next.fetch_add(1, Ordering::Relaxed)
}

fn coordinator() -> (TxnCoordinator, Arc<Recorder>) {
    let c = TxnCoordinator::in_memory(TxnConfig::default());
    let r = Arc::new(Recorder::default());
    c.set_markers(r.clone());
    (c, r)
}

fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

#[test]
fn init_keeps_producer_id_and_bumps_epoch() {
    let (c, _) = coordinator();
    let a = alloc();
    let (pid, e0) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    assert_eq!(e0, 0);
    let (pid2, e1) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    assert_eq!((pid2, e1), (pid, 1));
    let (other, _) = c.init_producer_id("u", 60_000, None, &a).unwrap();
    assert_ne!(other, pid);
}

#[test]
fn init_checks_timeout_and_id() {
    let (c, _) = coordinator();
    let a = alloc();
    assert_eq!(
        c.init_producer_id("t", 900_001, None, &a),
        Err(TxnError::InvalidTimeout)
    );
    assert_eq!(
        c.init_producer_id("t", 0, None, &a),
        Err(TxnError::InvalidTimeout)
    );
    assert_eq!(
        c.init_producer_id("", 1000, None, &a),
        Err(TxnError::InvalidRequest)
    );
    assert!(c.init_producer_id("t", 900_000, None, &a).is_ok());
    assert_eq!(
        TxnError::InvalidTimeout.code(0),
        code::INVALID_TRANSACTION_TIMEOUT
    );
}

#[test]
fn kip360_bump_only_by_the_current_producer() {
    let (c, _) = coordinator();
    let a = alloc();
    let (pid, e0) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    let (_, e1) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    assert_eq!(
        c.init_producer_id("t", 60_000, Some((pid, e0)), &a),
        Err(TxnError::Fenced)
    );
    assert_eq!(
        c.init_producer_id("t", 60_000, Some((pid, e1)), &a),
        Ok((pid, e1 + 1))
    );
}

#[test]
fn init_aborts_an_open_transaction_and_fences_its_producer() {
    let (c, r) = coordinator();
    let a = alloc();
    let (pid, e0) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    c.add_partitions("t", pid, e0, &parts(&[("x", 0), ("y", 1)]))
        .unwrap();
    assert_eq!(c.check_produce(pid, e0, "x", 0), Ok(()));
    assert_eq!(
        c.check_produce(pid, e0, "x", 9),
        Err(TxnError::InvalidTxnState)
    );
    assert_eq!(
        c.check_produce(pid + 99, e0, "x", 0),
        Err(TxnError::InvalidProducerIdMapping)
    );
    let (_, e_new) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    // Aborted at e0 + 1, answered e0 + 2 (Kafka bumps twice too: fence, then init).
    assert_eq!(e_new, e0 + 2);
    let written = r.0.lock().unwrap().clone();
    assert_eq!(
        written,
        vec![
            ("x".into(), 0, pid, e0 + 1, false),
            ("y".into(), 1, pid, e0 + 1, false)
        ]
    );
    // The zombie can neither add nor commit.
    assert_eq!(
        c.add_partitions("t", pid, e0, &parts(&[("x", 0)])),
        Err(TxnError::Fenced)
    );
    assert_eq!(c.end_txn("t", pid, e0, true), Err(TxnError::Fenced));
    assert_eq!(c.check_produce(pid, e0, "x", 0), Err(TxnError::Fenced));
}

#[test]
fn commit_writes_markers_to_every_partition_once() {
    let (c, r) = coordinator();
    let a = alloc();
    let (pid, e) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    c.add_partitions("t", pid, e, &parts(&[("x", 0)])).unwrap();
    c.add_partitions("t", pid, e, &parts(&[("x", 0), ("x", 1)]))
        .unwrap();
    c.end_txn("t", pid, e, true).unwrap();
    assert_eq!(r.0.lock().unwrap().len(), 2);
    assert!(r.0.lock().unwrap().iter().all(|m| m.4));
    // A retried EndTxn is answered the same, without markers; the opposite is refused.
    c.end_txn("t", pid, e, true).unwrap();
    assert_eq!(r.0.lock().unwrap().len(), 2);
    assert_eq!(
        c.end_txn("t", pid, e, false),
        Err(TxnError::InvalidTxnState)
    );
    assert_eq!(c.describe("t").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(
        c.end_txn("t", pid + 1, e, true),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        c.end_txn("nope", pid, e, true),
        Err(TxnError::InvalidProducerIdMapping)
    );
}

#[test]
fn timed_out_transaction_is_aborted_and_fenced() {
    let (c, r) = coordinator();
    let a = alloc();
    let (pid, e) = c.init_producer_id("t", 1_000, None, &a).unwrap();
    c.add_partitions("t", pid, e, &parts(&[("x", 0)])).unwrap();
    let started = c.describe("t").unwrap().started_ms;
    assert_eq!(c.abort_timed_out(started + 999), (0, Some(started + 1_000)));
    assert_eq!(c.abort_timed_out(started + 1_000), (1, None));
    assert_eq!(r.0.lock().unwrap()[0], ("x".into(), 0, pid, e + 1, false));
    assert_eq!(c.end_txn("t", pid, e, true), Err(TxnError::Fenced));
    assert_eq!(c.abort_timed_out(started + 5_000), (0, None));
}

#[test]
fn partitions_per_transaction_are_bounded() {
    let (c, _) = coordinator();
    let a = alloc();
    let (pid, e) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    let many: Vec<(String, i32)> = (0..=PARTITIONS_PER_TXN_MAX as i32)
        .map(|p| ("x".to_string(), p))
        .collect();
    assert_eq!(
        c.add_partitions("t", pid, e, &many),
        Err(TxnError::InvalidRequest)
    );
    assert!(c.add_partitions("t", pid, e, &many[..10]).is_ok());
}

#[test]
fn ids_are_bounded_by_evicting_idle_ones() {
    let c = TxnCoordinator::in_memory(TxnConfig {
        max_timeout_ms: 60_000,
        max_ids: 2,
    });
    let a = alloc();
    let (p1, e1) = c.init_producer_id("a", 1000, None, &a).unwrap();
    let (p2, e2) = c.init_producer_id("b", 1000, None, &a).unwrap();
    c.add_partitions("a", p1, e1, &parts(&[("x", 0)])).unwrap();
    c.add_partitions("b", p2, e2, &parts(&[("x", 0)])).unwrap();
    assert_eq!(c.init_producer_id("c", 1000, None, &a), Err(TxnError::Full));
    c.end_txn("a", p1, e1, false).unwrap();
    assert!(c.init_producer_id("c", 1000, None, &a).is_ok());
    assert!(c.describe("a").is_none());
    assert_eq!(c.list().len(), 2);
}

#[test]
fn restart_completes_prepared_and_aborts_ongoing() {
    let dir = tempfile::tempdir().unwrap();
    let a = alloc();
    let (pid_o, pid_c);
    {
        let c =
            TxnCoordinator::open(dir.path(), FlushPolicy::Always, TxnConfig::default()).unwrap();
        let e;
        (pid_o, e) = c.init_producer_id("ongoing", 60_000, None, &a).unwrap();
        c.add_partitions("ongoing", pid_o, e, &parts(&[("x", 0)]))
            .unwrap();
        let e2;
        (pid_c, e2) = c.init_producer_id("prepared", 60_000, None, &a).unwrap();
        c.add_partitions("prepared", pid_c, e2, &parts(&[("y", 3)]))
            .unwrap();
        // As if the broker died between logging PrepareCommit and the markers.
        let mut inner = c.lock();
        let mut meta = inner.ids["prepared"].clone();
        meta.state = TxnState::PrepareCommit;
        c.put(&mut inner, "prepared", meta).unwrap();
    }
    let c = TxnCoordinator::open(dir.path(), FlushPolicy::Always, TxnConfig::default()).unwrap();
    let r = Arc::new(Recorder::default());
    c.set_markers(r.clone());
    assert_eq!(c.max_producer_id(), pid_o.max(pid_c));
    assert_eq!(c.recover().unwrap(), 2);
    let mut written = r.0.lock().unwrap().clone();
    written.sort();
    assert_eq!(
        written,
        vec![
            ("x".into(), 0, pid_o, 1, false),
            ("y".into(), 3, pid_c, 0, true)
        ]
    );
    assert_eq!(
        c.describe("ongoing").unwrap().state,
        TxnState::CompleteAbort
    );
    assert_eq!(
        c.describe("prepared").unwrap().state,
        TxnState::CompleteCommit
    );
    // The producer id of each transactional id survives.
    assert_eq!(
        c.init_producer_id("prepared", 60_000, None, &a).unwrap(),
        (pid_c, 1)
    );
    drop(c);
    let c = TxnCoordinator::open(dir.path(), FlushPolicy::Always, TxnConfig::default()).unwrap();
    assert_eq!(c.recover().unwrap(), 0);
}

#[test]
fn txn_offsets_are_committed_only_with_the_transaction() {
    let (c, r) = coordinator();
    let a = alloc();
    let (pid, e) = c.init_producer_id("t", 60_000, None, &a).unwrap();
    let o = |offset| {
        vec![(
            "x".to_string(),
            0,
            PendingOffset {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
            },
        )]
    };
    // Without AddOffsetsToTxn first: refused.
    assert_eq!(
        c.add_offsets("t", pid, e, "g", o(5)),
        Err(TxnError::InvalidTxnState)
    );
    c.add_partitions("t", pid, e, &[(group_partition("g"), 0)])
        .unwrap();
    c.add_offsets("t", pid, e, "g", o(5)).unwrap();
    c.add_offsets("t", pid, e, "g", o(7)).unwrap();
    c.end_txn("t", pid, e, false).unwrap();
    assert!(
        r.1.lock().unwrap().is_empty(),
        "aborted offsets stay invisible"
    );
    c.add_partitions("t", pid, e, &[(group_partition("g"), 0)])
        .unwrap();
    c.add_offsets("t", pid, e, "g", o(9)).unwrap();
    c.end_txn("t", pid, e, true).unwrap();
    assert_eq!(
        r.1.lock().unwrap().clone(),
        vec![("g".into(), "x".into(), 0, 9)]
    );
}

#[test]
fn timer_aborts_without_being_asked() {
    let c = Arc::new(TxnCoordinator::in_memory(TxnConfig::default()));
    let r = Arc::new(Recorder::default());
    c.set_markers(r.clone());
    c.start_timer().unwrap();
    let a = alloc();
    let (pid, e) = c.init_producer_id("t", 50, None, &a).unwrap();
    c.add_partitions("t", pid, e, &parts(&[("x", 0)])).unwrap();
    // Bounded wait for the timer thread (not a timing assertion: it only bounds the test).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.describe("t").unwrap().state != TxnState::CompleteAbort {
        assert!(std::time::Instant::now() < deadline, "timer never aborted");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(r.0.lock().unwrap().len(), 1);
    c.shutdown();
}
