//! The transaction log: the latest metadata of every transactional id, in an
//! append-only file in the data directory, so that producer ids, epochs and the state
//! of an unfinished transaction survive a restart (and a kill -9).
//!
//! File format (`__transaction_state.log`, modelled on the offsets log and pinned by
//! the tests below):
//! - an 8-byte magic `SMQTXN01`;
//! - records `[u32 body_len][u32 crc32c(body)][body]`, big-endian. The body is
//!   `u8 kind, u16 id_len, transactional_id`, then for a put `i64 producer_id,
//!   i16 epoch, i32 timeout_ms, u8 state, i64 started_ms, u32 partition_count` and per
//!   partition `u16 topic_len, topic, i32 partition`, then `u32 offset_count` and per
//!   pending transactional offset `u16 group_len, group, u16 topic_len, topic,
//!   i32 partition, i64 offset, i32 leader_epoch, u16 metadata_len, metadata`; for a
//!   removal nothing more.
//!
//! Every record is the whole metadata of one id (as Kafka's own transaction log
//! writes it), so the latest record per id is all that recovery needs. A record is
//! appended (and with `FlushPolicy::Always` fsynced) before the transition it
//! describes is acknowledged; loading stops at the first short or corrupt record (a
//! torn tail, never acknowledged) and the file is then rewritten with the latest
//! record per id (temp file + fsync + rename).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::Path;

use crate::record_log::{put_frame, RecordLog};
use crate::storage::FlushPolicy;

use super::{PendingOffset, TxnMeta, TxnState};

/// The transaction log inside the data directory (not a `<topic>-<n>` directory).
pub const TXN_FILE: &str = "__transaction_state.log";
const MAGIC: &[u8; 8] = b"SMQTXN01";
/// Largest record body: an id and `PARTITIONS_PER_TXN_MAX` partitions with topic
/// names at their limit. A length above it can only be garbage.
const RECORD_BODY_BYTES_MAX: usize = 64 * 1024
    + super::PARTITIONS_PER_TXN_MAX * (2 + TOPIC_NAME_BYTES_MAX + 4)
    + super::PARTITIONS_PER_TXN_MAX * (3 * 2 + 2 * TOPIC_NAME_BYTES_MAX + 16 + 4096 + 4);

/// Kafka's longest topic name.
const TOPIC_NAME_BYTES_MAX: usize = 249;

const KIND_PUT: u8 = 1;
const KIND_REMOVE: u8 = 2;

/// One change, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Put(String, TxnMeta),
    Remove(String),
}

/// What the file is, in log lines.
const WHAT: &str = "transaction log";

/// The open log file.
pub(super) struct TxnLog(RecordLog);

impl TxnLog {
    /// Loads the log of `data_dir` (ignoring a torn tail), rewrites it compacted and
    /// opens it for appending. Returns the latest metadata per id.
    pub(super) fn open(
        data_dir: &Path,
        flush: FlushPolicy,
    ) -> io::Result<(TxnLog, HashMap<String, TxnMeta>)> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(TXN_FILE);
        let mut ids = HashMap::new();
        let valid_len = RecordLog::read(&path, MAGIC, RECORD_BODY_BYTES_MAX, WHAT, |body| {
            match decode_body(body) {
                Some(Change::Put(id, meta)) => {
                    ids.insert(id, meta);
                }
                Some(Change::Remove(id)) => {
                    ids.remove(&id);
                }
                None => return false,
            }
            true
        })?;
        let mut image = Vec::new();
        for (id, meta) in &ids {
            encode_change(&mut image, &Change::Put(id.clone(), meta.clone()));
        }
        let log = RecordLog::rewrite_and_open(&path, MAGIC, &image, valid_len, flush, WHAT)?;
        Ok((TxnLog(log), ids))
    }

    /// Appends `changes` in one write (fsynced when the policy says so; a write cut
    /// short is cut back: record_log.rs).
    pub(super) fn append(&mut self, changes: &[Change]) -> io::Result<()> {
        let mut buf = Vec::new();
        for change in changes {
            encode_change(&mut buf, change);
        }
        self.0.append(&buf)
    }

    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.0.sync()
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Callers bound ids and topic names far below u16::MAX.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    buf.extend_from_slice(bytes);
}

pub(super) fn encode_change(out: &mut Vec<u8>, change: &Change) {
    let mut body = Vec::with_capacity(64);
    match change {
        Change::Put(id, m) => {
            body.push(KIND_PUT);
            put_str(&mut body, id);
            body.extend_from_slice(&m.producer_id.to_be_bytes());
            body.extend_from_slice(&m.epoch.to_be_bytes());
            body.extend_from_slice(&m.timeout_ms.to_be_bytes());
            body.push(m.state as u8);
            body.extend_from_slice(&m.started_ms.to_be_bytes());
            body.extend_from_slice(&(m.partitions.len() as u32).to_be_bytes());
            for (topic, partition) in &m.partitions {
                put_str(&mut body, topic);
                body.extend_from_slice(&partition.to_be_bytes());
            }
            body.extend_from_slice(&(m.offsets.len() as u32).to_be_bytes());
            for ((group, topic, partition), o) in &m.offsets {
                put_str(&mut body, group);
                put_str(&mut body, topic);
                body.extend_from_slice(&partition.to_be_bytes());
                body.extend_from_slice(&o.offset.to_be_bytes());
                body.extend_from_slice(&o.leader_epoch.to_be_bytes());
                put_str(&mut body, &o.metadata);
            }
        }
        Change::Remove(id) => {
            body.push(KIND_REMOVE);
            put_str(&mut body, id);
        }
    }
    put_frame(out, &body);
}

/// The changes in a log image and how many bytes of it were whole records. Errors only
/// on a foreign file (wrong magic).
#[cfg(test)]
fn decode_log(bytes: &[u8]) -> Result<(Vec<Change>, usize), String> {
    let mut changes = Vec::new();
    let used = crate::record_log::decode_frames(bytes, MAGIC, RECORD_BODY_BYTES_MAX, |body| {
        decode_body(body).map(|c| changes.push(c)).is_some()
    })?;
    Ok((changes, used))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.i32().map(|v| v as u32)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    fn str(&mut self) -> Option<String> {
        let len = self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))?;
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

fn decode_body(body: &[u8]) -> Option<Change> {
    let mut c = Cursor(body);
    let kind = c.u8()?;
    let id = c.str()?;
    let change = match kind {
        KIND_PUT => {
            let producer_id = c.i64()?;
            let epoch = c.i16()?;
            let timeout_ms = c.i32()?;
            let state = TxnState::from_u8(c.u8()?)?;
            let started_ms = c.i64()?;
            let count = c.u32()? as usize;
            if count > super::PARTITIONS_PER_TXN_MAX {
                return None;
            }
            let mut partitions = BTreeSet::new();
            for _ in 0..count {
                let topic = c.str()?;
                let partition = c.i32()?;
                partitions.insert((topic, partition));
            }
            let count = c.u32()? as usize;
            if count > super::PARTITIONS_PER_TXN_MAX {
                return None;
            }
            let mut offsets = BTreeMap::new();
            for _ in 0..count {
                let group = c.str()?;
                let topic = c.str()?;
                let partition = c.i32()?;
                let offset = c.i64()?;
                let leader_epoch = c.i32()?;
                let metadata = c.str()?;
                offsets.insert(
                    (group, topic, partition),
                    PendingOffset {
                        offset,
                        leader_epoch,
                        metadata,
                    },
                );
            }
            Change::Put(
                id,
                TxnMeta {
                    producer_id,
                    epoch,
                    timeout_ms,
                    state,
                    started_ms,
                    partitions,
                    offsets,
                },
            )
        }
        KIND_REMOVE => Change::Remove(id),
        _ => return None,
    };
    c.0.is_empty().then_some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: TxnState, parts: &[(&str, i32)]) -> TxnMeta {
        TxnMeta {
            producer_id: 42,
            epoch: 3,
            timeout_ms: 60_000,
            state,
            started_ms: 1_700_000_000_000,
            partitions: parts.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            offsets: [(
                ("g".to_string(), "x".to_string(), 1),
                PendingOffset {
                    offset: 10,
                    leader_epoch: -1,
                    metadata: "m".into(),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn format_is_pinned() {
        let mut buf = Vec::new();
        encode_change(&mut buf, &Change::Remove("t".into()));
        // len 4 = kind + u16 len + "t"
        assert_eq!(&buf[..4], &[0, 0, 0, 4]);
        assert_eq!(&buf[8..], &[KIND_REMOVE, 0, 1, b't']);
        assert_eq!(MAGIC, b"SMQTXN01");
    }

    #[test]
    fn round_trip_and_torn_tail_ignored() {
        let mut image = MAGIC.to_vec();
        let a = Change::Put("a".into(), meta(TxnState::Ongoing, &[("x", 0), ("y", 2)]));
        let b = Change::Put("b".into(), meta(TxnState::PrepareCommit, &[]));
        encode_change(&mut image, &a);
        encode_change(&mut image, &b);
        let whole = image.len();
        encode_change(&mut image, &Change::Remove("a".into()));
        image.truncate(image.len() - 2); // torn
        let (changes, used) = decode_log(&image).unwrap();
        assert_eq!(changes, vec![a, b]);
        assert_eq!(used, whole);
    }

    #[test]
    fn corrupt_record_stops_loading() {
        let mut image = MAGIC.to_vec();
        encode_change(&mut image, &Change::Remove("a".into()));
        let first = image.len();
        encode_change(&mut image, &Change::Remove("b".into()));
        let last = image.len() - 1;
        image[last] ^= 0xff;
        let (changes, used) = decode_log(&image).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(used, first);
        assert!(decode_log(b"NOTATXNLOG").is_err());
    }

    #[test]
    fn reopen_keeps_latest_per_id() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, ids) = TxnLog::open(dir.path(), FlushPolicy::Always).unwrap();
            assert!(ids.is_empty());
            log.append(&[Change::Put(
                "a".into(),
                meta(TxnState::Ongoing, &[("x", 1)]),
            )])
            .unwrap();
            log.append(&[Change::Put("a".into(), meta(TxnState::CompleteCommit, &[]))])
                .unwrap();
            log.append(&[Change::Put("b".into(), meta(TxnState::Empty, &[]))])
                .unwrap();
            log.append(&[Change::Remove("b".into())]).unwrap();
        }
        let (_log, ids) = TxnLog::open(dir.path(), FlushPolicy::Always).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids["a"].state, TxnState::CompleteCommit);
    }
}
