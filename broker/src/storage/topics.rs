//! Topics: partition directories (`<data_dir>/<topic>-<partition>/`), persisted
//! metadata inside partition 0's directory (`<data_dir>/<topic>-0/topic.json`), and the
//! in-memory map of them. The metadata lives inside a partition directory because a
//! legal 249-character topic name plus any suffix would exceed the 255-byte file name
//! limit; `<topic>-<partition>` is exactly what Kafka's 249 limit was chosen for.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use uuid::Uuid;

use super::log::PartitionLog;
use super::prefault::Prefaulter;
use super::segment::{sync_dir, MapOptions};
use super::{
    validate_topic_config, validate_topic_name, CleanupPolicy, CompactionPolicy, FlushCell,
    LogMapKind, LogOverrides, Partition, RetentionPolicy, StorageConfig, StorageError, TopicConfig,
    TopicInfo,
};

/// Kafka brokers have no hard limit; we bound it so one request cannot create
/// millions of directories.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
const TOPIC_META_FILE: &str = "topic.json";
/// The partition whose directory holds the topic metadata.
const META_PARTITION_SUFFIX: &str = "-0";
const TMP_SUFFIX: &str = ".tmp";
/// Bumped when the metadata file changes incompatibly.
const TOPIC_META_FORMAT_VERSION: u32 = 1;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct TopicMeta {
    format_version: u32,
    name: String,
    /// Hyphenated UUID (the uuid crate is built without serde here).
    id: String,
    partitions: i32,
    config: TopicConfig,
}

pub(crate) struct Topic {
    pub(crate) info: TopicInfo,
    pub(crate) partitions: Vec<Arc<Partition>>,
}

/// foldhash, not SipHash: every Produce and Fetch looks its topics up by name, and
/// SipHash-1-3 was most of a lookup (~150 of ~260 instructions). The seed is random
/// per map (`foldhash::fast::RandomState`), and only topics that exist are keys.
type FastHash = foldhash::fast::RandomState;

#[derive(Default)]
pub(crate) struct TopicMaps {
    by_name: HashMap<String, Arc<Topic>, FastHash>,
    by_id: HashMap<Uuid, String, FastHash>,
}

/// The partition map, chosen once at startup (`log_map`). Either way a lock is held
/// only to clone an `Arc`, never during file I/O.
pub(crate) enum LogMap {
    /// One reader-writer lock over the whole map: every lookup touches the same
    /// cache line (the lock word), so readers on different cores contend on it.
    Global(RwLock<TopicMaps>),
    /// N independent locks; a name (or topic id) picks its shard by hash. Lookups of
    /// different topics on different cores touch different cache lines.
    Sharded(ShardedMaps),
}

/// One shard on its own cache lines (128 bytes: adjacent-line prefetch on x86 pairs
/// 64-byte lines), so two shards' lock words never share a line.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Shard(RwLock<TopicMaps>);

pub(crate) struct ShardedMaps {
    shards: Box<[Shard]>,
    hasher: FastHash,
}

impl ShardedMaps {
    fn new(shards: usize) -> ShardedMaps {
        ShardedMaps {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            hasher: FastHash::default(),
        }
    }
    fn shard<K: std::hash::Hash + ?Sized>(&self, key: &K) -> &RwLock<TopicMaps> {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(key);
        &self.shards[(h % self.shards.len() as u64) as usize].0
    }
}

fn read_lock(lock: &RwLock<TopicMaps>) -> std::sync::RwLockReadGuard<'_, TopicMaps> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock(lock: &RwLock<TopicMaps>) -> std::sync::RwLockWriteGuard<'_, TopicMaps> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl LogMap {
    pub(crate) fn new(kind: LogMapKind, shards: usize) -> LogMap {
        match kind {
            LogMapKind::Global => LogMap::Global(RwLock::default()),
            LogMapKind::Sharded => LogMap::Sharded(ShardedMaps::new(shards)),
        }
    }
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic>> {
        let lock = match self {
            LogMap::Global(lock) => lock,
            LogMap::Sharded(s) => s.shard(name),
        };
        read_lock(lock).by_name.get(name).cloned()
    }
    pub(crate) fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        match self {
            LogMap::Global(lock) => {
                let m = read_lock(lock);
                m.by_id
                    .get(&id)
                    .and_then(|name| m.by_name.get(name))
                    .cloned()
            }
            LogMap::Sharded(s) => {
                // The id's shard names the topic; the name's shard holds it.
                let name = read_lock(s.shard(&id)).by_id.get(&id).cloned()?;
                self.get(&name).filter(|t| t.info.id == id)
            }
        }
    }
    pub(crate) fn all(&self) -> Vec<Arc<Topic>> {
        match self {
            LogMap::Global(lock) => read_lock(lock).by_name.values().cloned().collect(),
            LogMap::Sharded(s) => s
                .shards
                .iter()
                .flat_map(|shard| {
                    read_lock(&shard.0)
                        .by_name
                        .values()
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect(),
        }
    }
    /// Inserts or replaces the topic of that name. Writers are serialized by the
    /// store's admin mutex, so the two shard updates below cannot interleave with
    /// another writer's.
    pub(crate) fn insert(&self, topic: Arc<Topic>) {
        match self {
            LogMap::Global(lock) => {
                let mut m = write_lock(lock);
                m.by_id.insert(topic.info.id, topic.info.name.clone());
                m.by_name.insert(topic.info.name.clone(), topic);
            }
            LogMap::Sharded(s) => {
                write_lock(s.shard(&topic.info.id))
                    .by_id
                    .insert(topic.info.id, topic.info.name.clone());
                write_lock(s.shard(topic.info.name.as_str()))
                    .by_name
                    .insert(topic.info.name.clone(), topic);
            }
        }
    }
    pub(crate) fn remove(&self, name: &str) -> Option<Arc<Topic>> {
        match self {
            LogMap::Global(lock) => {
                let mut m = write_lock(lock);
                let topic = m.by_name.remove(name)?;
                m.by_id.remove(&topic.info.id);
                Some(topic)
            }
            LogMap::Sharded(s) => {
                let topic = write_lock(s.shard(name)).by_name.remove(name)?;
                write_lock(s.shard(&topic.info.id))
                    .by_id
                    .remove(&topic.info.id);
                Some(topic)
            }
        }
    }
}

pub(crate) struct TopicStore {
    pub(crate) cfg: Arc<StorageConfig>,
    /// The live flush policy, shared with every partition log.
    pub(crate) flush: Arc<FlushCell>,
    map: LogMap,
    /// Serializes create/delete/grow so the existence check and the file work agree,
    /// without holding the map lock during that file work.
    admin: Mutex<()>,
    /// How every partition maps and writes its segments (with the window's queue).
    map_options: MapOptions,
    /// The pre-fault window's thread (when `segment_prefault_bytes` > 0); dropped,
    /// so stopped and joined, with the store.
    _prefaulter: Option<Prefaulter>,
}

fn meta_path(data_dir: &Path, name: &str) -> PathBuf {
    partition_dir(data_dir, name, 0).join(TOPIC_META_FILE)
}

fn partition_dir(data_dir: &Path, name: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{name}-{partition}"))
}

/// write temp (+ fsync) + rename (+ fsync dir): a reader sees the old or the new file.
/// The fsyncs are skipped under `FlushPolicy::Never`, whose promise is surviving a
/// process crash (the rename alone gives that), not a machine crash: they are most of
/// the cost of creating a topic.
fn write_meta(data_dir: &Path, info: &TopicInfo, durable: bool) -> Result<(), StorageError> {
    let meta = TopicMeta {
        format_version: TOPIC_META_FORMAT_VERSION,
        name: info.name.clone(),
        id: info.id.hyphenated().to_string(),
        partitions: info.partitions,
        config: info.config.clone(),
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
    let path = meta_path(data_dir, &info.name);
    let dir = partition_dir(data_dir, &info.name, 0);
    let tmp = dir.join(format!("{TOPIC_META_FILE}{TMP_SUFFIX}"));
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&json)?;
        if durable {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, &path)?;
    if durable {
        sync_dir(&dir)?;
    }
    Ok(())
}

fn read_meta(path: &Path, expected_name: &str) -> Result<TopicInfo, StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = fs::read(path)?;
    let meta: TopicMeta = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if meta.format_version != TOPIC_META_FORMAT_VERSION {
        return Err(corrupt(format!(
            "unknown format_version {}",
            meta.format_version
        )));
    }
    if meta.name != expected_name {
        return Err(corrupt(format!("names topic {:?}", meta.name)));
    }
    validate_topic_name(&meta.name)?;
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&meta.partitions) {
        return Err(corrupt(format!("partition count {}", meta.partitions)));
    }
    let id = Uuid::parse_str(&meta.id).map_err(|e| corrupt(e.to_string()))?;
    Ok(TopicInfo {
        name: meta.name,
        id,
        partitions: meta.partitions,
        config: meta.config,
    })
}

fn check_topic_config(config: &TopicConfig) -> Result<(), StorageError> {
    for (name, value) in &config.configs {
        validate_topic_config(name, value).map_err(StorageError::InvalidConfig)?;
    }
    Ok(())
}

/// Hands a topic's configs, parsed for the append path, to its partitions.
fn apply_overrides(partitions: &[Arc<Partition>], config: &TopicConfig) {
    let overrides = LogOverrides::of(config);
    for partition in partitions {
        partition.log.set_overrides(overrides);
    }
}

fn check_partition_count(partitions: i32) -> Result<(), StorageError> {
    if (1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        Ok(())
    } else {
        Err(StorageError::InvalidPartitions(partitions))
    }
}

impl TopicStore {
    pub(crate) fn open(cfg: StorageConfig) -> Result<TopicStore, StorageError> {
        let invalid = |what: &str| {
            StorageError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, what))
        };
        if cfg.segment_bytes == 0 {
            return Err(invalid("segment_bytes must be > 0"));
        }
        if cfg.max_batch_bytes == 0 {
            return Err(invalid("max_batch_bytes must be > 0"));
        }
        fs::create_dir_all(&cfg.data_dir)?;
        let flush = Arc::new(FlushCell::new(cfg.flush));
        let cfg = Arc::new(cfg);
        let prefaulter = match cfg.segment_prefault_bytes {
            0 => None,
            bytes => Some(Prefaulter::start(
                bytes,
                cfg.segment_bytes,
                cfg.segment_prefault_outrun,
            )?),
        };
        let store = TopicStore {
            cfg: Arc::clone(&cfg),
            flush: Arc::clone(&flush),
            map: LogMap::new(cfg.log_map, cfg.log_map_shards),
            admin: Mutex::new(()),
            map_options: MapOptions {
                hugepages: cfg.segment_hugepages,
                write: cfg.segment_write,
                window: prefaulter.as_ref().map(Prefaulter::window),
            },
            _prefaulter: prefaulter,
        };
        for entry in fs::read_dir(&cfg.data_dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let Some(name) = file_name.strip_suffix(META_PARTITION_SUFFIX) else {
                continue;
            };
            let tmp = entry.path().join(format!("{TOPIC_META_FILE}{TMP_SUFFIX}"));
            if tmp.exists() {
                // A metadata write that did not reach its rename.
                tracing::warn!(file = %tmp.display(), "removing unfinished metadata file");
                fs::remove_file(&tmp)?;
            }
            let meta = entry.path().join(TOPIC_META_FILE);
            if !meta.is_file() {
                // Partition 0 of a topic being created or deleted when the broker stopped.
                continue;
            }
            let info = read_meta(&meta, name)?;
            let mut partitions = Vec::with_capacity(info.partitions as usize);
            for p in 0..info.partitions {
                let log = PartitionLog::open(
                    partition_dir(&cfg.data_dir, name, p),
                    Arc::clone(&cfg),
                    Arc::clone(&flush),
                    store.map_options.clone(),
                )?;
                partitions.push(Arc::new(Partition { log }));
            }
            apply_overrides(&partitions, &info.config);
            tracing::debug!(topic = %info.name, partitions = info.partitions, "recovered topic");
            store.map.insert(Arc::new(Topic { info, partitions }));
        }
        Ok(store)
    }

    fn durable_metadata(&self) -> bool {
        self.flush.get() != super::FlushPolicy::Never
    }

    fn admin_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create_partition_dirs(
        &self,
        name: &str,
        range: std::ops::Range<i32>,
    ) -> Result<Vec<Arc<Partition>>, StorageError> {
        let mut created = Vec::with_capacity(range.len());
        for p in range {
            match PartitionLog::create(
                partition_dir(&self.cfg.data_dir, name, p),
                Arc::clone(&self.cfg),
                Arc::clone(&self.flush),
                self.map_options.clone(),
            ) {
                Ok(log) => created.push(Arc::new(Partition { log })),
                Err(e) => {
                    for partition in &created {
                        let _ = fs::remove_dir_all(partition.log.dir());
                    }
                    return Err(e);
                }
            }
        }
        Ok(created)
    }

    pub(crate) fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<TopicInfo, StorageError> {
        validate_topic_name(name)?;
        check_partition_count(partitions)?;
        check_topic_config(&config)?;
        let _admin = self.admin_lock();
        if self.map.get(name).is_some() {
            return Err(StorageError::TopicExists(name.into()));
        }
        let mut id = Uuid::new_v4();
        while id.is_nil() || self.map.get_by_id(id).is_some() {
            id = Uuid::new_v4();
        }
        let info = TopicInfo {
            name: name.into(),
            id,
            partitions,
            config,
        };
        let created = self.create_partition_dirs(name, 0..partitions)?;
        apply_overrides(&created, &info.config);
        // The metadata file is written last: it is what makes the topic exist on restart.
        if let Err(e) = write_meta(&self.cfg.data_dir, &info, self.durable_metadata()) {
            for partition in &created {
                let _ = fs::remove_dir_all(partition.log.dir());
            }
            return Err(e);
        }
        self.map.insert(Arc::new(Topic {
            info: info.clone(),
            partitions: created,
        }));
        Ok(info)
    }

    pub(crate) fn delete_topic(&self, name: &str) -> Result<TopicInfo, StorageError> {
        validate_topic_name(name)?;
        let _admin = self.admin_lock();
        let topic = self
            .map
            .remove(name)
            .ok_or(StorageError::UnknownTopicOrPartition)?;
        // Metadata first: a crash mid-delete leaves orphan directories (removed when
        // the name is created again), never a half-deleted topic that comes back.
        fs::remove_file(meta_path(&self.cfg.data_dir, name))?;
        if self.durable_metadata() {
            sync_dir(&partition_dir(&self.cfg.data_dir, name, 0))?;
        }
        let mut first_error = None;
        for partition in &topic.partitions {
            partition.log.mark_deleted();
            // Mappings survive unlinking: outstanding `Bytes` stay valid.
            if let Err(e) = fs::remove_dir_all(partition.log.dir()) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(topic.info.clone()),
        }
    }

    pub(crate) fn create_partitions(
        &self,
        name: &str,
        total_partitions: i32,
    ) -> Result<TopicInfo, StorageError> {
        validate_topic_name(name)?;
        let _admin = self.admin_lock();
        let topic = self
            .map
            .get(name)
            .ok_or(StorageError::UnknownTopicOrPartition)?;
        if total_partitions <= topic.info.partitions {
            return Err(StorageError::InvalidPartitions(total_partitions));
        }
        check_partition_count(total_partitions)?;
        let created = self.create_partition_dirs(name, topic.info.partitions..total_partitions)?;
        apply_overrides(&created, &topic.info.config);
        let info = TopicInfo {
            partitions: total_partitions,
            ..topic.info.clone()
        };
        if let Err(e) = write_meta(&self.cfg.data_dir, &info, self.durable_metadata()) {
            for partition in &created {
                let _ = fs::remove_dir_all(partition.log.dir());
            }
            return Err(e);
        }
        let mut partitions = topic.partitions.clone();
        partitions.extend(created);
        self.map.insert(Arc::new(Topic {
            info: info.clone(),
            partitions,
        }));
        Ok(info)
    }

    pub(crate) fn set_topic_config(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<TopicInfo, StorageError> {
        validate_topic_name(name)?;
        check_topic_config(&config)?;
        let _admin = self.admin_lock();
        let topic = self
            .map
            .get(name)
            .ok_or(StorageError::UnknownTopicOrPartition)?;
        let info = TopicInfo {
            config,
            ..topic.info.clone()
        };
        write_meta(&self.cfg.data_dir, &info, self.durable_metadata())?;
        apply_overrides(&topic.partitions, &info.config);
        self.map.insert(Arc::new(Topic {
            info: info.clone(),
            partitions: topic.partitions.clone(),
        }));
        Ok(info)
    }

    pub(crate) fn enforce_retention(&self, defaults: RetentionPolicy, now_ms: i64) -> usize {
        let mut total = 0;
        for topic in self.map.all() {
            // Even without a retention limit a pass runs: DeleteRecords may have moved
            // a partition's log start offset past whole segments.
            let policy = defaults.for_topic(&topic.info.config);
            for (index, partition) in topic.partitions.iter().enumerate() {
                if let Some(d) = partition.log.apply_retention(policy, now_ms) {
                    tracing::info!(
                        topic = %topic.info.name,
                        partition = index,
                        segments = d.segments,
                        bytes = d.bytes,
                        log_start_offset = d.log_start_offset,
                        retention_ms = policy.retention_ms,
                        retention_bytes = policy.retention_bytes,
                        "retention deleted segments"
                    );
                    total += d.segments;
                }
            }
        }
        total
    }

    pub(crate) fn compact(&self, now_ms: i64) -> usize {
        let mut total = 0;
        for topic in self.map.all() {
            let config = &topic.info.config;
            if !CleanupPolicy::of(config).compact {
                continue;
            }
            let policy = CompactionPolicy::of(config);
            for (index, partition) in topic.partitions.iter().enumerate() {
                match partition.log.compact(policy, now_ms) {
                    Ok(Some(done)) if done.segments_rewritten > 0 => {
                        tracing::info!(
                            topic = %topic.info.name,
                            partition = index,
                            segments = done.segments_rewritten,
                            records_removed = done.records_removed,
                            bytes_before = done.bytes_before,
                            bytes_after = done.bytes_after,
                            "compacted"
                        );
                        total += done.segments_rewritten;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        topic = %topic.info.name,
                        partition = index,
                        error = %e,
                        "compaction failed; the log is unchanged"
                    ),
                }
            }
        }
        total
    }

    pub(crate) fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.map.get(name).map(|t| t.info.clone())
    }

    pub(crate) fn topic_by_id(&self, id: Uuid) -> Option<TopicInfo> {
        self.map.get_by_id(id).map(|t| t.info.clone())
    }

    pub(crate) fn topics(&self) -> Vec<TopicInfo> {
        let mut all: Vec<TopicInfo> = self.map.all().iter().map(|t| t.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// A topic's entry by name or by id (`Storage::topic_partitions`).
    pub(crate) fn entry(&self, name: &str) -> Option<Arc<Topic>> {
        self.map.get(name)
    }

    pub(crate) fn entry_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.map.get_by_id(id)
    }

    pub(crate) fn partition(&self, name: &str, partition: i32) -> Option<Arc<Partition>> {
        let topic = self.map.get(name)?;
        let index = usize::try_from(partition).ok()?;
        topic.partitions.get(index).cloned()
    }

    /// Flushes every partition; keeps going after a failure and returns the first.
    pub(crate) fn flush_all(&self) -> std::io::Result<()> {
        let mut first_error = None;
        for topic in self.map.all() {
            for partition in &topic.partitions {
                if let Err(e) = partition.log.flush() {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, (log_map, log_map_shards): (LogMapKind, usize)) -> TopicStore {
        TopicStore::open(StorageConfig {
            segment_bytes: 1 << 16,
            log_map,
            log_map_shards,
            ..StorageConfig::defaults_in(dir)
        })
        .unwrap()
    }

    #[test]
    fn global_and_sharded_maps_agree_on_every_operation() {
        for layout in [
            (LogMapKind::Global, 0),
            (LogMapKind::Sharded, 1),
            (LogMapKind::Sharded, 64),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path(), layout);
            let mut ids = Vec::new();
            for i in 0..40 {
                let info = s
                    .create_topic(&format!("t{i}"), 1 + i % 3, TopicConfig::default())
                    .unwrap();
                ids.push(info.id);
            }
            for (i, id) in ids.iter().enumerate() {
                let name = format!("t{i}");
                assert_eq!(s.topic(&name).unwrap().id, *id, "{layout:?}");
                assert_eq!(s.topic_by_id(*id).unwrap().name, name, "{layout:?}");
                assert!(s.partition(&name, i as i32 % 3).is_some(), "{layout:?}");
                assert!(s.partition(&name, 3).is_none(), "{layout:?}");
            }
            s.delete_topic("t7").unwrap();
            assert!(s.topic("t7").is_none() && s.topic_by_id(ids[7]).is_none());
            s.create_partitions("t8", 5).unwrap();
            assert!(s.partition("t8", 4).is_some());
            let names: Vec<_> = s.topics().into_iter().map(|t| t.name).collect();
            assert_eq!(names.len(), 39, "{layout:?}");
            assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted");
            drop(s);
            // Reopen (recovery inserts through the map too).
            let s = store(dir.path(), layout);
            assert_eq!(s.topics().len(), 39);
            assert_eq!(s.topic_by_id(ids[8]).unwrap().partitions, 5);
        }
    }

    #[test]
    fn shards_do_not_share_cache_lines() {
        assert!(std::mem::align_of::<Shard>() >= 128);
        assert_eq!(std::mem::size_of::<Shard>() % 128, 0);
    }
}
