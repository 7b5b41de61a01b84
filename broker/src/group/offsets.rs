//! Committed offsets: an in-memory map backed by an append-only log in the data
//! directory, so that a broker restart loses no acknowledged commit.
//!
//! File format (`__consumer_offsets.log`, pinned by the tests below):
//! - an 8-byte magic `SMQOFS01`;
//! - records `[u32 body_len][u32 crc32c(body)][body]`, big-endian, where the body is
//!   `u8 kind, u16 group_len, group` followed by, for a commit
//!   `u16 topic_len, topic, i32 partition, i64 offset, i32 leader_epoch,
//!   i64 commit_timestamp_ms, u16 metadata_len, metadata`; for an offset deletion
//!   `u16 topic_len, topic, i32 partition`; for a group deletion nothing more.
//!
//! A record is appended (and with `FlushPolicy::Always` fsynced) before the commit is
//! acknowledged. Loading stops at the first record that is short or fails its CRC (a
//! torn tail: the write that was cut off was never acknowledged) and the file is then
//! rewritten with only the latest record per key (temp file + fsync + rename).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use crate::record_log::{put_frame, RecordLog};
use crate::storage::FlushPolicy;

/// What the file is, in log lines.
const WHAT: &str = "offsets log";

/// The offsets log inside the data directory. Not a `<topic>-<n>` directory, so the
/// topic scan of storage never mistakes it for a topic.
pub const OFFSETS_FILE: &str = "__consumer_offsets.log";
const MAGIC: &[u8; 8] = b"SMQOFS01";
/// Largest record body: group id + topic + metadata at their limits plus fixed fields.
/// A length above it can only be garbage.
const RECORD_BODY_BYTES_MAX: usize = 64 * 1024;

const KIND_COMMIT: u8 = 1;
const KIND_DELETE_OFFSET: u8 = 2;
const KIND_DELETE_GROUP: u8 = 3;

/// One committed position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A topic partition of a group.
pub type PartitionKey = (String, i32);

/// One change to the store, as written to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Commit(String, PartitionKey, Committed),
    DeleteOffset(String, PartitionKey),
    DeleteGroup(String),
}

/// Committed offsets of every group.
pub struct OffsetStore {
    groups: HashMap<String, BTreeMap<PartitionKey, Committed>>,
    /// Where the store keeps its log (none: memory only, for tests and embedding).
    log: Option<RecordLog>,
}

impl OffsetStore {
    /// A store that keeps nothing on disk.
    pub fn in_memory() -> OffsetStore {
        OffsetStore {
            groups: HashMap::new(),
            log: None,
        }
    }

    /// Loads `<data_dir>/__consumer_offsets.log` (ignoring a torn tail), compacts it to
    /// the latest record per key and opens it for appending.
    pub fn open(data_dir: &Path, flush: FlushPolicy) -> io::Result<OffsetStore> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(OFFSETS_FILE);
        let mut store = OffsetStore::in_memory();
        let valid_len = RecordLog::read(&path, MAGIC, RECORD_BODY_BYTES_MAX, WHAT, |body| {
            decode_change(body).map(|c| store.apply(c)).is_some()
        })?;
        // Compaction: the latest value per key (record_log.rs says what a crash or a
        // full disk leaves).
        let mut image = Vec::new();
        for (group, offsets) in &store.groups {
            for (key, committed) in offsets {
                encode_change(
                    &mut image,
                    &Change::Commit(group.clone(), key.clone(), committed.clone()),
                );
            }
        }
        store.log = Some(RecordLog::rewrite_and_open(
            &path, MAGIC, &image, valid_len, flush, WHAT,
        )?);
        Ok(store)
    }

    /// Number of groups with at least one committed offset.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of `group`, ordered by topic and partition.
    pub fn all(&self, group: &str) -> Vec<(PartitionKey, Committed)> {
        self.groups
            .get(group)
            .map(|m| m.iter().map(|(k, c)| (k.clone(), c.clone())).collect())
            .unwrap_or_default()
    }

    /// Stores `commits` of `group`: logged first (one write, one fsync when flushing
    /// always), then visible. On an I/O error nothing is visible.
    pub fn commit(
        &mut self,
        group: &str,
        commits: Vec<(PartitionKey, Committed)>,
    ) -> io::Result<()> {
        let changes = commits
            .into_iter()
            .map(|(key, c)| Change::Commit(group.to_string(), key, c))
            .collect();
        self.log_and_apply(changes)
    }

    /// Deletes the given offsets of `group` (those that exist).
    pub fn delete_offsets(&mut self, group: &str, keys: Vec<PartitionKey>) -> io::Result<()> {
        let existing = self.groups.get(group);
        let changes: Vec<Change> = keys
            .into_iter()
            .filter(|k| existing.is_some_and(|m| m.contains_key(k)))
            .map(|k| Change::DeleteOffset(group.to_string(), k))
            .collect();
        self.log_and_apply(changes)
    }

    /// Deletes every offset of `group`.
    pub fn delete_group(&mut self, group: &str) -> io::Result<()> {
        if !self.groups.contains_key(group) {
            return Ok(());
        }
        self.log_and_apply(vec![Change::DeleteGroup(group.to_string())])
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        match self.log.as_mut() {
            Some(log) => log.sync(),
            None => Ok(()),
        }
    }

    fn log_and_apply(&mut self, changes: Vec<Change>) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        if let Some(log) = self.log.as_mut() {
            let mut buf = Vec::new();
            for change in &changes {
                encode_change(&mut buf, change);
            }
            log.append(&buf)?;
        }
        for change in changes {
            self.apply(change);
        }
        Ok(())
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Commit(group, key, committed) => {
                self.groups.entry(group).or_default().insert(key, committed);
            }
            Change::DeleteOffset(group, key) => {
                if let Some(m) = self.groups.get_mut(&group) {
                    m.remove(&key);
                    if m.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
            Change::DeleteGroup(group) => {
                self.groups.remove(&group);
            }
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Callers bound every string far below u16::MAX (group id, topic, metadata limits);
    // a longer one is cut rather than written with a wrong length.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn encode_change(out: &mut Vec<u8>, change: &Change) {
    let mut body = Vec::with_capacity(64);
    match change {
        Change::Commit(group, (topic, partition), c) => {
            body.push(KIND_COMMIT);
            put_str(&mut body, group);
            put_str(&mut body, topic);
            body.extend_from_slice(&partition.to_be_bytes());
            body.extend_from_slice(&c.offset.to_be_bytes());
            body.extend_from_slice(&c.leader_epoch.to_be_bytes());
            body.extend_from_slice(&c.commit_timestamp_ms.to_be_bytes());
            put_str(&mut body, &c.metadata);
        }
        Change::DeleteOffset(group, (topic, partition)) => {
            body.push(KIND_DELETE_OFFSET);
            put_str(&mut body, group);
            put_str(&mut body, topic);
            body.extend_from_slice(&partition.to_be_bytes());
        }
        Change::DeleteGroup(group) => {
            body.push(KIND_DELETE_GROUP);
            put_str(&mut body, group);
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
        decode_change(body).map(|c| changes.push(c)).is_some()
    })?;
    Ok((changes, used))
}

/// A cursor over one record body; every read is bounds-checked.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_be_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn decode_change(body: &[u8]) -> Option<Change> {
    let mut c = Cursor(body);
    let kind = c.u8()?;
    let group = c.string()?;
    let change = match kind {
        KIND_COMMIT => {
            let topic = c.string()?;
            let partition = c.i32()?;
            let offset = c.i64()?;
            let leader_epoch = c.i32()?;
            let commit_timestamp_ms = c.i64()?;
            let metadata = c.string()?;
            Change::Commit(
                group,
                (topic, partition),
                Committed {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms,
                },
            )
        }
        KIND_DELETE_OFFSET => {
            let topic = c.string()?;
            let partition = c.i32()?;
            Change::DeleteOffset(group, (topic, partition))
        }
        KIND_DELETE_GROUP => Change::DeleteGroup(group),
        _ => return None,
    };
    c.0.is_empty().then_some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        }
    }

    fn key(topic: &str, partition: i32) -> PartitionKey {
        (topic.to_string(), partition)
    }

    #[test]
    fn on_disk_format_is_pinned() {
        let mut buf = Vec::new();
        encode_change(&mut buf, &Change::DeleteGroup("g".into()));
        // len 4, crc32c(01 00 01 'g'), kind 3, group "g".
        let body = [3u8, 0, 1, b'g'];
        let mut want = 4u32.to_be_bytes().to_vec();
        want.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        want.extend_from_slice(&body);
        assert_eq!(buf, want);

        let mut buf = Vec::new();
        encode_change(
            &mut buf,
            &Change::Commit("g".into(), key("t", 2), committed(7)),
        );
        let body = &buf[8..];
        assert_eq!(body[0], KIND_COMMIT);
        assert_eq!(body.len(), 1 + 3 + 3 + 4 + 8 + 4 + 8 + 6);
    }

    #[test]
    fn commits_survive_reopen_and_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = OffsetStore::open(dir.path(), FlushPolicy::Always).unwrap();
            s.commit(
                "g",
                vec![(key("t", 0), committed(5)), (key("t", 1), committed(9))],
            )
            .unwrap();
            s.commit("g", vec![(key("t", 0), committed(6))]).unwrap();
            s.commit("h", vec![(key("u", 0), committed(1))]).unwrap();
            s.delete_offsets("g", vec![key("t", 1)]).unwrap();
            s.delete_group("h").unwrap();
        }
        let s = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(s.get("g", "t", 0), Some(&committed(6)));
        assert_eq!(s.get("g", "t", 1), None);
        assert!(!s.has_group("h"));
        assert_eq!(s.group_count(), 1);
    }

    #[test]
    fn recover_after_torn_tail_keeps_whole_records_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
            for i in 0..10 {
                s.commit("g", vec![(key("t", 0), committed(i))]).unwrap();
            }
        }
        let path = dir.path().join(OFFSETS_FILE);
        let whole = std::fs::read(&path).unwrap();
        // A cut-off record and then a flipped byte in a final one.
        let mut torn = whole.clone();
        let mut extra = Vec::new();
        encode_change(
            &mut extra,
            &Change::Commit("g".into(), key("t", 0), committed(99)),
        );
        torn.extend_from_slice(&extra[..extra.len() - 3]);
        std::fs::write(&path, &torn).unwrap();
        let s = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(9));
        drop(s);
        // Compacted to one record.
        let compacted = std::fs::read(&path).unwrap();
        assert!(
            compacted.len() < whole.len() / 5,
            "{} bytes",
            compacted.len()
        );

        let mut corrupt = compacted.clone();
        encode_change(
            &mut corrupt,
            &Change::Commit("g".into(), key("t", 0), committed(50)),
        );
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        std::fs::write(&path, &corrupt).unwrap();
        let s = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(s.get("g", "t", 0).map(|c| c.offset), Some(9));
    }

    #[test]
    fn foreign_file_is_an_error_not_silently_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OFFSETS_FILE), b"something else entirely").unwrap();
        assert!(OffsetStore::open(dir.path(), FlushPolicy::Never).is_err());
    }

    #[test]
    fn oversized_length_is_treated_as_torn() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0; 12]);
        let (changes, used) = decode_log(&bytes).unwrap();
        assert!(changes.is_empty());
        assert_eq!(used, MAGIC.len());
    }
}
