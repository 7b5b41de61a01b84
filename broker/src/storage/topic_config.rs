//! Topic configs: which ones CreateTopics, AlterConfigs, IncrementalAlterConfigs and
//! the admin API accept, with which values, and what each changes ([`TOPIC_CONFIGS`],
//! the one table; `docs/topic-configs.md` is its long form). A config is either
//! honoured as Kafka honours it, or accepted only with the values that describe what
//! this broker does anyway (`min.insync.replicas=1`, `compression.type=producer`), or
//! refused with INVALID_CONFIG naming it and saying why.
//!
//! [`LogOverrides`] is what the data path needs of a topic's configs, parsed once when
//! they change (not per append): the partition log reads it only when the topic has
//! one (`PartitionLog::overrides`).

use super::TopicConfig;

pub const CLEANUP_POLICY_CONFIG: &str = "cleanup.policy";
pub const RETENTION_MS_CONFIG: &str = "retention.ms";
pub const RETENTION_BYTES_CONFIG: &str = "retention.bytes";
pub const MAX_MESSAGE_BYTES_CONFIG: &str = "max.message.bytes";
pub const SEGMENT_BYTES_CONFIG: &str = "segment.bytes";
pub const SEGMENT_MS_CONFIG: &str = "segment.ms";
pub const MESSAGE_TIMESTAMP_TYPE_CONFIG: &str = "message.timestamp.type";
pub const DELETE_RETENTION_MS_CONFIG: &str = "delete.retention.ms";
pub const MIN_CLEANABLE_DIRTY_RATIO_CONFIG: &str = "min.cleanable.dirty.ratio";
pub const MAX_COMPACTION_LAG_MS_CONFIG: &str = "max.compaction.lag.ms";
const DELETE_RETENTION_MS_DEFAULT: i64 = 86_400_000;
const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;

/// `cleanup.policy` values.
pub const CLEANUP_DELETE: &str = "delete";
pub const CLEANUP_COMPACT: &str = "compact";
/// `message.timestamp.type` values.
pub const CREATE_TIME: &str = "CreateTime";
pub const LOG_APPEND_TIME: &str = "LogAppendTime";

/// The smallest per-topic `segment.bytes`: the broker's own lower bound for
/// `segment_bytes` (Kafka 4 asks for 1 MiB; smaller segments only mean more files).
pub const SEGMENT_BYTES_MIN: i64 = 1024;

/// Which values a config takes.
#[derive(Debug, Clone, Copy)]
pub enum ConfigValues {
    /// A decimal integer in `[min, max]`.
    Int { min: i64, max: i64 },
    /// A decimal number in `[0, 1]` (`min.cleanable.dirty.ratio`).
    Ratio,
    /// Exactly one of these (case-sensitive, as Kafka's validators).
    OneOf(&'static [&'static str]),
    /// A comma-separated, non-empty list of these (`cleanup.policy`); APPEND and
    /// SUBTRACT of IncrementalAlterConfigs apply.
    ListOf(&'static [&'static str]),
    /// Refused whatever the value: the broker cannot do what it asks.
    Refused,
}

/// One topic config: its name, the values accepted, the default reported by
/// DescribeConfigs (`None`: the broker's own setting, filled in by the handler), and
/// what it does here (or why it is refused).
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigSpec {
    pub name: &'static str,
    pub values: ConfigValues,
    pub default: Option<&'static str>,
    pub effect: &'static str,
}

const LONG_MAX: i64 = i64::MAX;
const INT_MAX: i64 = i32::MAX as i64;

const fn spec(
    name: &'static str,
    values: ConfigValues,
    default: Option<&'static str>,
    effect: &'static str,
) -> TopicConfigSpec {
    TopicConfigSpec {
        name,
        values,
        default,
        effect,
    }
}

use ConfigValues::{Int, ListOf, OneOf, Ratio, Refused};

/// Every topic config name Kafka 4 knows, sorted, with what this broker does with it.
pub const TOPIC_CONFIGS: &[TopicConfigSpec] = &[
    spec(CLEANUP_POLICY_CONFIG, ListOf(&[CLEANUP_DELETE, CLEANUP_COMPACT]), Some(CLEANUP_DELETE),
        "delete: retention.* delete old segments. compact: records without a key are refused (INVALID_RECORD, per-record errors), retention.* delete nothing and sealed segments are compacted in the background (latest record per key). compact,delete: both rules."),
    spec("compression.gzip.level", Refused, None, "batches are stored as the producer compressed them (no recompression)"),
    spec("compression.lz4.level", Refused, None, "batches are stored as the producer compressed them (no recompression)"),
    spec("compression.type", OneOf(&["producer"]), Some("producer"),
        "only producer: batches are stored as the producer compressed them (no recompression)"),
    spec("compression.zstd.level", Refused, None, "batches are stored as the producer compressed them (no recompression)"),
    spec(DELETE_RETENTION_MS_CONFIG, Int { min: 0, max: LONG_MAX }, Some("86400000"),
        "how long compaction keeps a tombstone (a null value that is the latest of its key) after its batch's timestamp"),
    spec("file.delete.delay.ms", Int { min: 0, max: LONG_MAX }, Some("60000"),
        "accepted for what it guarantees: a segment deleted (retention, compaction, DeleteRecords) is unlinked at once, but a Fetch that already holds it keeps reading its mapping to the end, which is what Kafka's delay before unlinking protects"),
    spec("flush.messages", Refused, None, "flushing is broker-wide (the flush setting)"),
    spec("flush.ms", Refused, None, "flushing is broker-wide (the flush setting)"),
    spec("follower.replication.throttled.replicas", OneOf(&[""]), Some(""),
        "only empty: one broker, nothing is replicated"),
    spec("index.interval.bytes", Refused, None, "the sparse index interval is broker-wide (index_interval_bytes)"),
    spec("leader.replication.throttled.replicas", OneOf(&[""]), Some(""),
        "only empty: one broker, nothing is replicated"),
    spec("local.retention.bytes", Refused, None, "no tiered storage"),
    spec("local.retention.ms", Refused, None, "no tiered storage"),
    spec(MAX_COMPACTION_LAG_MS_CONFIG, Int { min: 1, max: LONG_MAX }, Some("9223372036854775807"),
        "a dirty sealed segment whose newest record is older than this is compacted at the next cleaner pass whatever min.cleanable.dirty.ratio says (Kafka counts from the segment's first record: this fires no earlier)"),
    spec(MAX_MESSAGE_BYTES_CONFIG, Int { min: 0, max: INT_MAX }, None,
        "largest record batch the topic accepts (MESSAGE_TOO_LARGE above); overrides the broker's max_message_bytes"),
    spec("message.timestamp.after.max.ms", OneOf(&["9223372036854775807"]), Some("9223372036854775807"),
        "only the unlimited value: record timestamps are not checked against the clock"),
    spec("message.timestamp.before.max.ms", OneOf(&["9223372036854775807"]), Some("9223372036854775807"),
        "only the unlimited value: record timestamps are not checked against the clock"),
    spec(MESSAGE_TIMESTAMP_TYPE_CONFIG, OneOf(&[CREATE_TIME, LOG_APPEND_TIME]), Some(CREATE_TIME),
        "LogAppendTime: the broker stamps each batch with its append time (timestamp type bit and max timestamp; consumers see it, Produce answers it as log_append_time_ms)"),
    spec(MIN_CLEANABLE_DIRTY_RATIO_CONFIG, Ratio, Some("0.5"),
        "compaction of a partition runs when its sealed segments not compacted since the broker started are at least this share of its sealed bytes"),
    spec("min.compaction.lag.ms", Refused, None, "not built: compaction never holds back a record for its age"),
    spec("min.insync.replicas", OneOf(&["1"]), Some("1"), "only 1: one broker, one replica"),
    spec("preallocate", OneOf(&["true"]), Some("true"),
        "only true: segment files are always preallocated (fallocate)"),
    spec("remote.storage.enable", OneOf(&["false"]), Some("false"), "only false: no tiered storage"),
    spec(RETENTION_BYTES_CONFIG, Int { min: -1, max: LONG_MAX }, None,
        "delete the oldest segments while the partition stays at least this big (-1 = unlimited)"),
    spec(RETENTION_MS_CONFIG, Int { min: -1, max: LONG_MAX }, None,
        "delete segments whose newest record is older than this (-1 = unlimited)"),
    spec(SEGMENT_BYTES_CONFIG, Int { min: SEGMENT_BYTES_MIN, max: INT_MAX }, None,
        "segment roll size of the topic's partitions; overrides the broker's segment_bytes"),
    spec("segment.index.bytes", Refused, None, "no index files (the offset index is in memory)"),
    spec("segment.jitter.ms", OneOf(&["0"]), Some("0"), "only 0: segments roll exactly at segment.ms"),
    spec(SEGMENT_MS_CONFIG, Int { min: 1, max: LONG_MAX }, Some("604800000"),
        "an append rolls the active segment once it is this old (so retention can delete it)"),
    spec("unclean.leader.election.enable", OneOf(&["true", "false"]), Some("false"),
        "either: one broker, its only replica is always the leader"),
];

/// The table's entry for `name`; names Kafka 4 removed (`message.format.version`, ...)
/// are not in it and are refused as unknown.
pub fn spec_of(name: &str) -> Option<&'static TopicConfigSpec> {
    TOPIC_CONFIGS.iter().find(|s| s.name == name)
}

/// Every accepted topic config name (those not refused whatever the value).
pub fn accepted_topic_configs() -> impl Iterator<Item = &'static TopicConfigSpec> {
    TOPIC_CONFIGS
        .iter()
        .filter(|s| !matches!(s.values, ConfigValues::Refused))
}

/// Checks one topic config; the error names it, the value and what is accepted.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let Some(spec) = spec_of(name) else {
        return Err(format!("unknown topic config {name:?}"));
    };
    let (ok, expected) = match spec.values {
        Refused => {
            return Err(format!(
                "topic config {name} is not supported by this broker: {}",
                spec.effect
            ))
        }
        Int { min, max } => (
            value
                .trim()
                .parse::<i64>()
                .is_ok_and(|v| (min..=max).contains(&v)),
            if max == LONG_MAX {
                format!("an integer >= {min}")
            } else {
                format!("an integer in [{min}, {max}]")
            },
        ),
        Ratio => (
            value
                .trim()
                .parse::<f64>()
                .is_ok_and(|v| (0.0..=1.0).contains(&v)),
            "a number in [0, 1]".to_string(),
        ),
        OneOf(values) => (
            values.contains(&value),
            format!("one of {values:?} ({})", spec.effect),
        ),
        ListOf(values) => (
            !value.trim().is_empty() && value.split(',').all(|i| values.contains(&i.trim())),
            format!("a non-empty comma-separated list of {values:?}"),
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid value {value:?} for topic config {name}: expected {expected}"
        ))
    }
}

/// The items of a list config's value, trimmed, empty items dropped.
pub fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `name` is a list config (APPEND and SUBTRACT apply).
pub fn is_list_config(name: &str) -> bool {
    spec_of(name).is_some_and(|s| matches!(s.values, ListOf(_)))
}

/// A topic's `cleanup.policy`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub fn of(config: &TopicConfig) -> CleanupPolicy {
        match config.configs.get(CLEANUP_POLICY_CONFIG) {
            None => CleanupPolicy {
                delete: true,
                compact: false,
            },
            Some(v) => {
                let items = list_items(v);
                CleanupPolicy {
                    delete: items.iter().any(|i| i == CLEANUP_DELETE),
                    compact: items.iter().any(|i| i == CLEANUP_COMPACT),
                }
            }
        }
    }
}

impl crate::storage::CompactionPolicy {
    /// A compacted topic's `min.cleanable.dirty.ratio` and `delete.retention.ms`
    /// (Kafka's defaults, 0.5 and one day, when not set or not parsable).
    pub fn of(config: &TopicConfig) -> Self {
        let get = |key: &str| config.configs.get(key).map(|v| v.trim());
        crate::storage::CompactionPolicy {
            min_cleanable_dirty_ratio: get(MIN_CLEANABLE_DIRTY_RATIO_CONFIG)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(MIN_CLEANABLE_DIRTY_RATIO_DEFAULT),
            delete_retention_ms: get(DELETE_RETENTION_MS_CONFIG)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(DELETE_RETENTION_MS_DEFAULT),
            max_compaction_lag_ms: get(MAX_COMPACTION_LAG_MS_CONFIG)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(i64::MAX),
        }
    }
}

/// What the data path needs of a topic's configs, parsed once per change. `NONE`
/// (every field at its "broker default" value) is what a topic without configs gets,
/// and the append path then never looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOverrides {
    /// `max.message.bytes`.
    pub max_batch_bytes: Option<usize>,
    /// `segment.bytes`.
    pub segment_bytes: Option<u64>,
    /// `segment.ms`.
    pub segment_ms: Option<u64>,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub keys_required: bool,
}

impl LogOverrides {
    pub const NONE: LogOverrides = LogOverrides {
        max_batch_bytes: None,
        segment_bytes: None,
        segment_ms: None,
        log_append_time: false,
        keys_required: false,
    };

    /// The overrides of a topic's configs. Values were validated when set; one that
    /// does not parse (a hand-edited file) keeps the broker default.
    pub fn of(config: &TopicConfig) -> LogOverrides {
        let int = |key: &str| {
            config
                .configs
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        LogOverrides {
            max_batch_bytes: int(MAX_MESSAGE_BYTES_CONFIG).and_then(|v| usize::try_from(v).ok()),
            segment_bytes: int(SEGMENT_BYTES_CONFIG).and_then(|v| u64::try_from(v).ok()),
            segment_ms: int(SEGMENT_MS_CONFIG).and_then(|v| u64::try_from(v).ok()),
            log_append_time: config
                .configs
                .get(MESSAGE_TIMESTAMP_TYPE_CONFIG)
                .is_some_and(|v| v == LOG_APPEND_TIME),
            keys_required: CleanupPolicy::of(config).compact,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn docs_list_every_config() {
        let docs = include_str!("../../../docs/topic-configs.md");
        for s in TOPIC_CONFIGS {
            assert!(
                docs.contains(&format!("`{}`", s.name)),
                "{} missing",
                s.name
            );
        }
    }

    #[test]
    fn every_default_is_itself_accepted() {
        for s in accepted_topic_configs() {
            if let Some(d) = s.default {
                assert_eq!(validate_topic_config(s.name, d), Ok(()), "{}", s.name);
            }
        }
    }

    #[test]
    fn values_are_checked_and_errors_name_the_config() {
        let ok = [
            ("cleanup.policy", "compact,delete"),
            ("cleanup.policy", "delete, compact"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("retention.ms", "-1"),
            ("segment.bytes", "1024"),
        ];
        for (k, v) in ok {
            assert_eq!(validate_topic_config(k, v), Ok(()), "{k}={v}");
        }
        let bad = [
            ("cleanup.policy", ""),
            ("cleanup.policy", "compact,shred"),
            ("message.timestamp.type", "logappendtime"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("retention.ms", "-2"),
            ("segment.bytes", "1023"),
            ("max.message.bytes", "2147483648"),
            ("compression.type", "gzip"),
            ("min.insync.replicas", "2"),
            ("flush.ms", "1000"),
            ("message.format.version", "3.0"),
            ("no.such.config", "1"),
        ];
        for (k, v) in bad {
            let e = validate_topic_config(k, v).expect_err(k);
            assert!(e.contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn overrides_of_a_topic_without_configs_are_none() {
        assert_eq!(
            LogOverrides::of(&TopicConfig::default()),
            LogOverrides::NONE
        );
        let mut config = TopicConfig::default();
        config
            .configs
            .insert("cleanup.policy".into(), "delete,compact".into());
        config
            .configs
            .insert("message.timestamp.type".into(), "LogAppendTime".into());
        config.configs.insert("segment.bytes".into(), "4096".into());
        let o = LogOverrides::of(&config);
        assert!(o.keys_required && o.log_append_time);
        assert_eq!(o.segment_bytes, Some(4096));
    }
}
