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
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::storage::FlushPolicy;

use super::{PendingOffset, TxnMeta, TxnState};

/// The transaction log inside the data directory (not a `<topic>-<n>` directory).
pub const TXN_FILE: &str = "__transaction_state.log";
const TMP_SUFFIX: &str = ".tmp";
const MAGIC: &[u8; 8] = b"SMQTXN01";
const FRAME_HEADER_BYTES: usize = 8;
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

/// The open log file.
pub(super) struct TxnLog {
    path: PathBuf,
    file: File,
    flush: FlushPolicy,
    last_sync: Instant,
}

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
        let mut valid_len = None;
        match File::open(&path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                let (changes, used) = decode_log(&bytes).map_err(|why| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {why}", path.display()),
                    )
                })?;
                if used < bytes.len() {
                    tracing::warn!(
                        file = %path.display(),
                        ignored_bytes = bytes.len() - used,
                        "ignoring a torn or corrupt tail of the transaction log"
                    );
                }
                for change in changes {
                    match change {
                        Change::Put(id, meta) => {
                            ids.insert(id, meta);
                        }
                        Change::Remove(id) => {
                            ids.remove(&id);
                        }
                    }
                }
                valid_len = Some(used as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Err(e) = compact(data_dir, &path, &ids) {
            let _ = std::fs::remove_file(data_dir.join(format!("{TXN_FILE}{TMP_SUFFIX}")));
            match valid_len {
                Some(len) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot compact the transaction log; appending to it as is");
                    OpenOptions::new().write(true).open(&path)?.set_len(len)?;
                }
                None => return Err(e),
            }
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((
            TxnLog {
                path,
                file,
                flush,
                last_sync: Instant::now(),
            },
            ids,
        ))
    }

    /// Appends `changes` in one write (fsynced when the policy says so). A write cut
    /// short is cut back so that recovery does not stop before later records.
    pub(super) fn append(&mut self, changes: &[Change]) -> io::Result<()> {
        let mut buf = Vec::new();
        for change in changes {
            encode_change(&mut buf, change);
        }
        let start_len = self.file.metadata()?.len();
        if let Err(e) = self.file.write_all(&buf) {
            if let Err(cut) = self.file.set_len(start_len) {
                tracing::error!(file = %self.path.display(), error = %cut, "cannot cut a failed write from the transaction log");
            }
            return Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            ));
        }
        let due = match self.flush {
            FlushPolicy::Never => false,
            FlushPolicy::Always => true,
            FlushPolicy::IntervalMs(ms) => self.last_sync.elapsed().as_millis() >= u128::from(ms),
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        Ok(())
    }
}

fn compact(data_dir: &Path, path: &Path, ids: &HashMap<String, TxnMeta>) -> io::Result<()> {
    let tmp = data_dir.join(format!("{TXN_FILE}{TMP_SUFFIX}"));
    let mut image = MAGIC.to_vec();
    for (id, meta) in ids {
        encode_change(&mut image, &Change::Put(id.clone(), meta.clone()));
    }
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&image)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(data_dir)?.sync_all()
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
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
}

/// The changes in a log image and how many bytes of it were whole records. Errors only
/// on a foreign file (wrong magic).
pub(super) fn decode_log(bytes: &[u8]) -> Result<(Vec<Change>, usize), String> {
    if bytes.is_empty() {
        return Ok((Vec::new(), 0));
    }
    if bytes.len() < MAGIC.len() {
        // A file cut inside its magic was created and never written: empty.
        return if MAGIC.starts_with(bytes) {
            Ok((Vec::new(), 0))
        } else {
            Err("not a transaction log (bad magic)".into())
        };
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a transaction log (bad magic)".into());
    }
    let mut pos = MAGIC.len();
    let mut changes = Vec::new();
    while let Some(header) = bytes.get(pos..pos + FRAME_HEADER_BYTES) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > RECORD_BODY_BYTES_MAX {
            break;
        }
        let start = pos + FRAME_HEADER_BYTES;
        let Some(body) = bytes.get(start..start + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Some(change) = decode_body(body) else {
            break;
        };
        changes.push(change);
        pos = start + len;
    }
    Ok((changes, pos))
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
