//! Produce: validate and append record batches, answer per partition.
//!
//! The request is a view over the frame and the response is encoded straight into the
//! output buffer as the partitions are appended: a steady-state Produce allocates
//! nothing here (see `tests::hot_path_allocates_nothing`).

use tracing::warn;

use crate::broker::{code, enc, Broker, FrameError, Outcome};
use crate::protocol::encode::{
    abandon_frame, begin_frame, finish_frame, put_array_len, put_i16, put_i32, put_i64,
    put_nullable_str, put_str, tagged_fields_if,
};
use crate::protocol::request::views::ProduceView;
use crate::storage::AppendError;

/// Kafka's `acks=0`: the client expects no response at all.
const ACKS_NONE: i16 = 0;
/// Produce responses carry `logStartOffset` from this version on.
const LOG_START_OFFSET_VERSION: i16 = 5;
/// ... and `recordErrors` and `errorMessage` from this one.
const ERROR_MESSAGE_VERSION: i16 = 8;
/// zstd-compressed batches are allowed from this Produce version on (KIP-110): an older
/// request with one gets UNSUPPORTED_COMPRESSION_TYPE, as from Apache Kafka.
const ZSTD_MIN_VERSION: i16 = 7;
/// The compression codec in a v2 batch's attributes (low 3 bits), and zstd's value.
const COMPRESSION_MASK: i16 = 0x07;
const ZSTD: i16 = 4;
/// Where a v2 batch's fields sit: batchLength after baseOffset, attributes after
/// baseOffset, batchLength, partitionLeaderEpoch, magic and crc.
const BATCH_LENGTH_AT: usize = 8;
const ATTRIBUTES_AT: usize = 21;
const BATCH_OVERHEAD: usize = 12;

/// One partition's answer.
struct PartitionAnswer<'m> {
    index: i32,
    error_code: i16,
    base_offset: i64,
    log_start_offset: i64,
    /// The append time of a LogAppendTime topic's batches, else -1.
    log_append_time_ms: i64,
    error_message: Option<std::borrow::Cow<'m, str>>,
    /// Indexes of the records refused one by one (KIP-467); empty otherwise (no
    /// allocation).
    record_errors: Vec<i32>,
}

impl PartitionAnswer<'_> {
    fn error(index: i32, error_code: i16) -> Self {
        PartitionAnswer {
            index,
            error_code,
            base_offset: -1,
            log_start_offset: -1,
            log_append_time_ms: -1,
            error_message: None,
            record_errors: Vec::new(),
        }
    }
}

impl Broker {
    /// Appends every partition's batches and writes the response (none for acks=0).
    pub(in crate::broker) fn produce(
        &self,
        req: ProduceView<'_>,
        version: i16,
        correlation_id: i32,
        flexible: bool,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, FrameError> {
        let allow_create = self.effective.config.auto_create_topics;
        let mut appended_any = false;
        let frame = begin_frame(out, correlation_id, flexible);
        let topics = req.topics();
        put_array_len(out, flexible, Some(topics.len()));
        for topic in topics {
            let name = topic.name;
            put_str(out, flexible, name);
            // The common case (topic exists) costs map lookups only; the topic-level
            // diagnosis (invalid name, unknown, auto-create) runs once, when needed.
            let mut topic_error: Option<i16> = None;
            let partitions = topic.partitions();
            put_array_len(out, flexible, Some(partitions.len()));
            for pd in partitions {
                let mut partition = self.storage.partition(name, pd.index);
                if partition.is_none() && topic_error.is_none() {
                    match self.topic_for_request(name, allow_create) {
                        Ok(_) => partition = self.storage.partition(name, pd.index),
                        Err(code) => topic_error = Some(code),
                    }
                }
                let answer = match (topic_error, partition) {
                    (Some(code), _) => PartitionAnswer::error(pd.index, code),
                    (None, None) => {
                        PartitionAnswer::error(pd.index, code::UNKNOWN_TOPIC_OR_PARTITION)
                    }
                    (None, Some(partition)) => match pd.records.unwrap_or_default() {
                        [] => PartitionAnswer {
                            error_message: Some("no records".into()),
                            ..PartitionAnswer::error(pd.index, code::CORRUPT_MESSAGE)
                        },
                        // From v3 Kafka takes exactly one batch per partition
                        // (ProduceRequest.validateRecords: INVALID_RECORD); every version
                        // served here is v3 or later.
                        records if has_trailing_batch(records) => PartitionAnswer {
                            error_message: Some(
                                "Produce requests are only allowed to contain exactly one record batch per partition".into(),
                            ),
                            ..PartitionAnswer::error(pd.index, code::INVALID_RECORD)
                        },
                        records if version < ZSTD_MIN_VERSION && has_zstd_batch(records) => {
                            PartitionAnswer {
                                error_message: Some(
                                    "zstd compression needs Produce version 7 or later".into(),
                                ),
                                ..PartitionAnswer::error(
                                    pd.index,
                                    code::UNSUPPORTED_COMPRESSION_TYPE,
                                )
                            }
                        }
                        // One branch on the first batch's transactional bit; the
                        // coordinator is asked only for transactional batches.
                        records if is_transactional(records) => {
                            match self.txn_produce_error(records, name, pd.index) {
                                Some(error_code) => PartitionAnswer::error(pd.index, error_code),
                                None => append_answer(
                                    &partition,
                                    records,
                                    name,
                                    pd.index,
                                    &mut appended_any,
                                ),
                            }
                        }
                        records => {
                            append_answer(&partition, records, name, pd.index, &mut appended_any)
                        }
                    },
                };
                put_partition(out, version, flexible, &answer, name);
            }
            tagged_fields_if(out, flexible);
        }
        put_i32(out, 0); // throttle_time_ms
        tagged_fields_if(out, flexible);
        if appended_any {
            self.wake_parked();
        }
        if req.acks == ACKS_NONE {
            abandon_frame(out, frame);
            return Ok(Outcome::NoResponse);
        }
        finish_frame(out, frame).map_err(enc)?;
        Ok(Outcome::Responded)
    }
}

/// Appends one partition's records and says how it went.
fn append_answer(
    partition: &crate::storage::Partition,
    records: &[u8],
    name: &str,
    index: i32,
    appended_any: &mut bool,
) -> PartitionAnswer<'static> {
    match partition.append(records) {
        Ok(a) => {
            *appended_any |= !a.duplicate;
            PartitionAnswer {
                index,
                error_code: code::NONE,
                base_offset: a.base_offset,
                log_start_offset: a.log_start_offset,
                log_append_time_ms: a.log_append_time_ms,
                error_message: None,
                record_errors: Vec::new(),
            }
        }
        Err(e) => {
            if matches!(e, AppendError::Io(_)) {
                warn!(topic = name, partition = index, error = %e, "append failed");
            }
            let error_code = append_error_code(&e);
            let error_message = Some(e.to_string().into());
            let record_errors = match e {
                AppendError::KeylessRecords(indexes) => indexes,
                _ => Vec::new(),
            };
            PartitionAnswer {
                error_message,
                record_errors,
                ..PartitionAnswer::error(index, error_code)
            }
        }
    }
}

/// Whether the first batch of a Produce partition's records has the transactional
/// attribute bit (bit 4 of the attributes at bytes 21..23 of a v2 batch).
fn is_transactional(records: &[u8]) -> bool {
    records.get(22).is_some_and(|low| low & 0x10 != 0)
}

impl Broker {
    /// Why the transactional `records` may not be appended to `topic`/`partition`
    /// (`None`: they may): the partition must be in the producer's ongoing transaction.
    fn txn_produce_error(&self, records: &[u8], topic: &str, partition: i32) -> Option<i16> {
        let Ok(batch) = crate::protocol::batch::RecordBatch::parse(records) else {
            return None; // the append reports the corruption
        };
        self.txn
            .check_produce(
                batch.producer_id(),
                batch.producer_epoch(),
                topic,
                partition,
            )
            .err()
            .map(|e| e.code(code::INVALID_PRODUCER_EPOCH))
    }
}

/// One `PartitionProduceResponse`, in schema order.
fn put_partition(
    out: &mut Vec<u8>,
    version: i16,
    flexible: bool,
    a: &PartitionAnswer<'_>,
    topic: &str,
) {
    put_i32(out, a.index);
    put_i16(out, a.error_code);
    put_i64(out, a.base_offset);
    put_i64(out, a.log_append_time_ms);
    if version >= LOG_START_OFFSET_VERSION {
        put_i64(out, a.log_start_offset);
    }
    if version >= ERROR_MESSAGE_VERSION {
        put_array_len(out, flexible, Some(a.record_errors.len()));
        for &batch_index in &a.record_errors {
            put_i32(out, batch_index);
            // Kafka's message for a keyless record on a compacted topic.
            let message = format!(
                "Compacted topic cannot accept message without key in topic partition {topic}-{}.",
                a.index
            );
            put_nullable_str(out, flexible, Some(&message));
            tagged_fields_if(out, flexible);
        }
        put_nullable_str(out, flexible, a.error_message.as_deref());
    }
    tagged_fields_if(out, flexible);
}

/// The bytes of the batch starting at `at` in `records` as its header declares them
/// (length field plus the 12 bytes before it); None when the field is cut off or
/// negative.
fn declared_batch_bytes(records: &[u8], at: usize) -> Option<usize> {
    let l = records.get(at + BATCH_LENGTH_AT..at + BATCH_LENGTH_AT + 4)?;
    let n = usize::try_from(i32::from_be_bytes([l[0], l[1], l[2], l[3]])).ok()?;
    Some(BATCH_OVERHEAD + n)
}

/// Whether a second whole batch follows the first in `records` (its declared length
/// fits in the bytes left), which Kafka refuses from Produce v3 on. Anything shorter
/// after the first batch is left to the append's validation, as is a first batch that
/// does not fit.
fn has_trailing_batch(records: &[u8]) -> bool {
    let Some(first) = declared_batch_bytes(records, 0).filter(|&n| n <= records.len()) else {
        return false;
    };
    declared_batch_bytes(records, first).is_some_and(|second| first + second <= records.len())
}

/// Whether any v2 batch in `records` is zstd-compressed (a header too short to read is
/// left to the append's own validation).
fn has_zstd_batch(records: &[u8]) -> bool {
    let mut at = 0usize;
    while let Some(header) = records.get(at..at + ATTRIBUTES_AT + 2) {
        let attributes = i16::from_be_bytes([header[ATTRIBUTES_AT], header[ATTRIBUTES_AT + 1]]);
        if attributes & COMPRESSION_MASK == ZSTD {
            return true;
        }
        match declared_batch_bytes(records, at) {
            Some(n) if n > BATCH_OVERHEAD => at += n,
            _ => return false,
        }
    }
    false
}

fn append_error_code(e: &AppendError) -> i16 {
    match e {
        AppendError::Corrupt(_) | AppendError::Records(_) => code::CORRUPT_MESSAGE,
        AppendError::UnsupportedMagic(_) | AppendError::KeylessRecords(_) => code::INVALID_RECORD,
        AppendError::TooLarge(_) => code::MESSAGE_TOO_LARGE,
        AppendError::OutOfOrderSequence => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::InvalidProducerEpoch => code::INVALID_PRODUCER_EPOCH,
        AppendError::Io(_) => code::KAFKA_STORAGE_ERROR,
    }
}
