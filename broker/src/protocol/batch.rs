//! Kafka v2 record batch header, on bytes alone (no I/O).
//!
//! Layout (big-endian), 61 bytes before the records:
//!
//! | offset | field                | type |
//! |-------:|----------------------|------|
//! | 0      | baseOffset           | i64  |
//! | 8      | batchLength          | i32  | bytes after this field
//! | 12     | partitionLeaderEpoch | i32  |
//! | 16     | magic                | i8   | 2 (v0/v1 message sets keep magic at 16 too)
//! | 17     | crc                  | u32  | CRC32C of bytes 21..end
//! | 21     | attributes           | i16  |
//! | 23     | lastOffsetDelta      | i32  |
//! | 27     | baseTimestamp        | i64  |
//! | 35     | maxTimestamp         | i64  |
//! | 43     | producerId           | i64  |
//! | 51     | producerEpoch        | i16  |
//! | 53     | baseSequence         | i32  |
//! | 57     | recordsCount         | i32  |
//! | 61     | records …            |      |
//!
//! [`RecordBatch::parse`] checks the framing and the magic; the CRC is checked
//! separately by [`RecordBatch::verify_crc`] because recovery of old segments and
//! the read path only need the framing.

/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Size of the v2 header up to and including `recordsCount`.
pub const RECORD_BATCH_HEADER_BYTES: usize = 61;
/// Smallest legal `batchLength` of a v2 batch (a header with no records).
pub const MIN_BATCH_LENGTH_BYTES: usize = RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES;
/// The only record batch format this broker stores.
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `baseSequence` of a batch that carries no sequence.
pub const NO_SEQUENCE: i32 = -1;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;

/// CRC32C (Castagnoli), as a v2 batch's `crc` holds it. Every produced batch is
/// checked with it, so it is on the append's hot path: `crc-fast` folds with
/// (VP)CLMULQDQ and the crc32 instruction together where the CPU has them (0.6-0.7x
/// the time of `crc32c` 0.6 at 1 KiB, 0.4x at 16 KiB here), with a table fallback
/// elsewhere. The `crc32c` crate is the tests' oracle.
pub fn crc32c(bytes: &[u8]) -> u32 {
    // CRC-32/ISCSI is CRC32C's catalogue name; the result fits in 32 bits.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Why bytes are not a well-formed v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The buffer ends before the batch does.
    #[error("truncated record batch: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    /// `batchLength` is negative or shorter than a v2 header.
    #[error("bad record batch length {0}")]
    BadLength(i32),
    /// Not a v2 batch; the value is reported so the caller can answer UnsupportedMagic.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("record batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
}

/// A zero-copy view of one whole v2 record batch (header and records).
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

impl<'a> RecordBatch<'a> {
    /// Parses the batch at the start of `buf` (which may hold more bytes after it).
    /// Checks, in order: enough bytes for the length, a positive length, the magic,
    /// a length at least as long as a v2 header, and that the whole batch is present.
    pub fn parse(buf: &'a [u8]) -> Result<RecordBatch<'a>, BatchError> {
        if buf.len() < LOG_OVERHEAD_BYTES {
            return Err(BatchError::Truncated {
                needed_bytes: LOG_OVERHEAD_BYTES,
                available_bytes: buf.len(),
            });
        }
        let batch_length = i32::from_be_bytes(read_array(buf, BATCH_LENGTH_AT));
        if batch_length <= 0 {
            return Err(BatchError::BadLength(batch_length));
        }
        if buf.len() <= MAGIC_AT {
            return Err(BatchError::Truncated {
                needed_bytes: MAGIC_AT + 1,
                available_bytes: buf.len(),
            });
        }
        // The magic sits at byte 16 in v0/v1 message sets too, so an old client gets
        // UnsupportedMagic rather than a confusing length error.
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        // batch_length > 0 was checked, so the cast is lossless.
        let batch_length_bytes = batch_length as usize;
        if batch_length_bytes < MIN_BATCH_LENGTH_BYTES {
            return Err(BatchError::BadLength(batch_length));
        }
        let total_bytes = LOG_OVERHEAD_BYTES + batch_length_bytes;
        if buf.len() < total_bytes {
            return Err(BatchError::Truncated {
                needed_bytes: total_bytes,
                available_bytes: buf.len(),
            });
        }
        Ok(RecordBatch {
            bytes: &buf[..total_bytes],
        })
    }

    /// The whole batch, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Size of the whole batch in bytes (`batchLength` + 12).
    pub fn total_bytes(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        i64::from_be_bytes(read_array(self.bytes, BASE_OFFSET_AT))
    }
    pub fn batch_length(&self) -> i32 {
        i32::from_be_bytes(read_array(self.bytes, BATCH_LENGTH_AT))
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        i32::from_be_bytes(read_array(self.bytes, PARTITION_LEADER_EPOCH_AT))
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_AT] as i8
    }
    /// The CRC stored in the header.
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(read_array(self.bytes, CRC_AT))
    }
    pub fn attributes(&self) -> i16 {
        i16::from_be_bytes(read_array(self.bytes, ATTRIBUTES_AT))
    }
    pub fn last_offset_delta(&self) -> i32 {
        i32::from_be_bytes(read_array(self.bytes, LAST_OFFSET_DELTA_AT))
    }
    pub fn base_timestamp(&self) -> i64 {
        i64::from_be_bytes(read_array(self.bytes, BASE_TIMESTAMP_AT))
    }
    pub fn max_timestamp(&self) -> i64 {
        i64::from_be_bytes(read_array(self.bytes, MAX_TIMESTAMP_AT))
    }
    pub fn producer_id(&self) -> i64 {
        i64::from_be_bytes(read_array(self.bytes, PRODUCER_ID_AT))
    }
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes(read_array(self.bytes, PRODUCER_EPOCH_AT))
    }
    pub fn base_sequence(&self) -> i32 {
        i32::from_be_bytes(read_array(self.bytes, BASE_SEQUENCE_AT))
    }
    pub fn records_count(&self) -> i32 {
        i32::from_be_bytes(read_array(self.bytes, RECORDS_COUNT_AT))
    }
    /// Offset of the last record: `baseOffset + lastOffsetDelta` (saturating, so a
    /// hostile header cannot overflow; callers reject a negative delta first).
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes() & COMPRESSION_MASK) as u8
    }
    /// True when timestamps are LogAppendTime rather than CreateTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// CRC32C over `attributes` .. end, as the header's `crc` should hold.
    pub fn computed_crc(&self) -> u32 {
        crc32c(&self.bytes[ATTRIBUTES_AT..])
    }
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let stored = self.crc();
        let computed = self.computed_crc();
        if stored == computed {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { stored, computed })
        }
    }
}

/// Iterates over concatenated batches. Yields each batch, or the error at the first
/// malformed one and then stops. [`Batches::position`] is the byte offset just past
/// the last well-formed batch, i.e. the valid length of the buffer so far.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            position: 0,
            failed: false,
        }
    }
    /// Bytes consumed by the well-formed batches yielded so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<RecordBatch<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        match RecordBatch::parse(&self.buf[self.position..]) {
            Ok(batch) => {
                self.position += batch.total_bytes();
                Some(Ok(batch))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Largest records section the broker inflates for its own use (timestamp repair on
/// produce, ListOffsets by timestamp, the admin peek). Producers cap a batch's
/// *uncompressed* size (librdkafka `message.max.bytes` 1 MB, the Java client's
/// `batch.size` 16 KiB), so real batches stay far below it; a zip bomb (1 GiB of zeros
/// is about 1 MiB of gzip and 32 KiB of zstd) stops here instead of eating memory.
pub const MAX_DECOMPRESSED_RECORDS_BYTES: usize = 64 * 1024 * 1024;
/// Smallest encoded v2 record: length, attributes, timestampDelta, offsetDelta,
/// keyLength, valueLength and headerCount, one byte each. A batch claiming more records
/// than its records section can hold at this size is corrupt.
pub const MIN_RECORD_BYTES: usize = 7;
/// Most records of one batch the broker decodes into record structs (the admin peek):
/// each costs about 200 bytes of memory besides its bytes, so this bounds a peek's
/// memory to tens of MiB. librdkafka's `batch.num.messages` defaults to 10,000.
pub const MAX_DECODED_RECORDS_PER_BATCH: usize = 256 * 1024;

/// The snappy-java ("xerial") stream header Kafka's Java client writes before its
/// length-prefixed snappy blocks; without it the payload is one raw snappy block.
const XERIAL_SNAPPY_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Why the records of a (well-framed) batch cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The attributes name a codec Kafka does not define (5–7).
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// The records inflate beyond [`MAX_DECOMPRESSED_RECORDS_BYTES`] (or claim more
    /// records than [`MAX_DECODED_RECORDS_PER_BATCH`] where records are decoded).
    #[error("records inflate beyond {limit_bytes} bytes (compression bomb?)")]
    TooLarge { limit_bytes: usize },
    /// The codec rejected the compressed bytes.
    #[error("records do not decompress ({codec}): {reason}")]
    Decompress { codec: &'static str, reason: String },
    /// The decompressed bytes are not the records the header announces.
    #[error("malformed records: {0}")]
    Malformed(&'static str),
}

/// Reads at most `limit_bytes` from `reader`: more means a bomb.
fn read_bounded(
    reader: impl std::io::Read,
    codec: &'static str,
    limit_bytes: usize,
) -> Result<Vec<u8>, RecordsError> {
    use std::io::Read as _;
    let mut out = Vec::new();
    // One byte more than the limit tells "exactly at the limit" from "beyond it".
    let cap = u64::try_from(limit_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| RecordsError::Decompress {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > limit_bytes {
        return Err(RecordsError::TooLarge { limit_bytes });
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, refusing before allocating when the block's
/// announced length would take `out` past `limit_bytes`.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit_bytes: usize) -> Result<(), RecordsError> {
    let err = |e: snap::Error| RecordsError::Decompress {
        codec: "snappy",
        reason: e.to_string(),
    };
    let len = snap::raw::decompress_len(block).map_err(err)?;
    let start = out.len();
    if len > limit_bytes.saturating_sub(start) {
        return Err(RecordsError::TooLarge { limit_bytes });
    }
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(err)?;
    out.truncate(start + written);
    Ok(())
}

/// Inflates a records section compressed with Kafka codec `codec` (1 gzip, 2 snappy,
/// 3 lz4, 4 zstd), reading at most `limit_bytes` of output, so a compression bomb
/// costs at most that much memory. Codec 0 returns the bytes as they are.
pub fn decompress_records(
    codec: u8,
    compressed: &[u8],
    limit_bytes: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, RecordsError> {
    use std::borrow::Cow;
    let decompress_err = |codec: &'static str| {
        move |e: std::io::Error| RecordsError::Decompress {
            codec,
            reason: e.to_string(),
        }
    };
    match codec {
        0 => Ok(Cow::Borrowed(compressed)),
        // Multi-member: Java's GZIPInputStream reads concatenated members too.
        1 => read_bounded(
            flate2::read::MultiGzDecoder::new(compressed),
            "gzip",
            limit_bytes,
        )
        .map(Cow::Owned),
        2 => {
            let mut out = Vec::new();
            match compressed.strip_prefix(XERIAL_SNAPPY_HEADER.as_slice()) {
                None => snappy_block(compressed, &mut out, limit_bytes)?,
                Some(mut blocks) => {
                    while !blocks.is_empty() {
                        let (len, rest) = blocks
                            .split_first_chunk::<4>()
                            .ok_or(RecordsError::Malformed("truncated snappy block length"))?;
                        let len = u32::from_be_bytes(*len) as usize;
                        let block = rest
                            .get(..len)
                            .ok_or(RecordsError::Malformed("truncated snappy block"))?;
                        snappy_block(block, &mut out, limit_bytes)?;
                        blocks = &rest[len..];
                    }
                }
            }
            Ok(Cow::Owned(out))
        }
        3 => {
            let decoder = lz4::Decoder::new(compressed).map_err(decompress_err("lz4"))?;
            read_bounded(decoder, "lz4", limit_bytes).map(Cow::Owned)
        }
        4 => {
            let decoder =
                zstd::stream::read::Decoder::new(compressed).map_err(decompress_err("zstd"))?;
            read_bounded(decoder, "zstd", limit_bytes).map(Cow::Owned)
        }
        other => Err(RecordsError::UnknownCompression(other)),
    }
}

/// The records section of a v2 batch, decompressed (bounded by
/// [`MAX_DECOMPRESSED_RECORDS_BYTES`]), after checking that it can hold the number of
/// records the header claims.
pub fn batch_records<'a>(
    batch: &RecordBatch<'a>,
) -> Result<std::borrow::Cow<'a, [u8]>, RecordsError> {
    let compressed = &batch.as_bytes()[RECORD_BATCH_HEADER_BYTES..];
    let records = decompress_records(
        batch.compression(),
        compressed,
        MAX_DECOMPRESSED_RECORDS_BYTES,
    )?;
    let count = usize::try_from(batch.records_count())
        .map_err(|_| RecordsError::Malformed("negative record count"))?;
    if count > records.len() / MIN_RECORD_BYTES {
        return Err(RecordsError::Malformed(
            "more records claimed than bytes hold",
        ));
    }
    Ok(records)
}

/// Reads one zigzag varlong of at most 10 bytes from the front of `buf`.
fn varlong(buf: &mut &[u8]) -> Result<i64, RecordsError> {
    const MAX_VARLONG_BYTES: usize = 10;
    let mut raw = 0u64;
    for i in 0..MAX_VARLONG_BYTES {
        let (&byte, rest) = buf
            .split_first()
            .ok_or(RecordsError::Malformed("truncated varint"))?;
        *buf = rest;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(RecordsError::Malformed("varint longer than 10 bytes"))
}

/// Walks the records of one v2 batch, yielding `(offset, timestamp)` per record
/// without decoding keys, values or headers (no allocation per record).
pub fn record_offsets_and_timestamps(
    batch: &[u8],
    mut visit: impl FnMut(i64, i64) -> std::ops::ControlFlow<()>,
) -> Result<(), RecordsError> {
    let header = RecordBatch::parse(batch)?;
    let records = batch_records(&header)?;
    let mut rest: &[u8] = &records;
    for _ in 0..header.records_count() {
        let len = usize::try_from(varlong(&mut rest)?)
            .map_err(|_| RecordsError::Malformed("negative record length"))?;
        let mut record = rest
            .get(..len)
            .ok_or(RecordsError::Malformed("record longer than the batch"))?;
        rest = &rest[len..];
        let _attributes = record
            .split_first()
            .ok_or(RecordsError::Malformed("empty record"))?;
        record = &record[1..];
        let timestamp_delta = varlong(&mut record)?;
        let offset_delta = varlong(&mut record)?;
        let offset = header.base_offset().wrapping_add(offset_delta);
        let timestamp = header.base_timestamp().wrapping_add(timestamp_delta);
        if visit(offset, timestamp).is_break() {
            return Ok(());
        }
    }
    Ok(())
}

/// The largest record timestamp of one v2 batch, from its records (decompressed when
/// needed, bounded); `None` when it has no records.
pub fn records_max_timestamp(batch: &[u8]) -> Result<Option<i64>, RecordsError> {
    let mut max = None;
    record_offsets_and_timestamps(batch, |_, ts| {
        max = max.max(Some(ts));
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(max)
}

/// Appends to `out` the index (counted from `first_index`) of every record of one v2
/// batch that has a null key, reading the records (decompressed when needed, bounded)
/// only as far as their keys; returns the number of records read.
pub fn keyless_records(
    batch: &[u8],
    first_index: i32,
    out: &mut Vec<i32>,
) -> Result<i32, RecordsError> {
    let header = RecordBatch::parse(batch)?;
    let records = batch_records(&header)?;
    let mut rest: &[u8] = &records;
    let count = header.records_count();
    for i in 0..count {
        let len = usize::try_from(varlong(&mut rest)?)
            .map_err(|_| RecordsError::Malformed("negative record length"))?;
        let mut record = rest
            .get(..len)
            .ok_or(RecordsError::Malformed("record longer than the batch"))?;
        rest = &rest[len..];
        record = record
            .get(1..)
            .ok_or(RecordsError::Malformed("empty record"))?; // attributes
        let _timestamp_delta = varlong(&mut record)?;
        let _offset_delta = varlong(&mut record)?;
        if varlong(&mut record)? < 0 {
            out.push(first_index.saturating_add(i));
        }
    }
    Ok(count)
}

/// One record of a v2 batch as log compaction sees it: its bytes (length prefix
/// included, valid in any batch with the same base offset and base timestamp), its
/// offset delta, its key (`None` = null) and whether its value is null (a tombstone).
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub raw: &'a [u8],
    /// The record's timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    pub is_tombstone: bool,
}

/// Walks the `count` records of a decompressed records section (see
/// [`batch_records`]), bounded by the bytes present.
pub fn for_each_record<'a>(
    records: &'a [u8],
    count: i32,
    mut visit: impl FnMut(RecordRef<'a>),
) -> Result<(), RecordsError> {
    let mut rest: &'a [u8] = records;
    for _ in 0..count {
        let before = rest;
        let len = usize::try_from(varlong(&mut rest)?)
            .map_err(|_| RecordsError::Malformed("negative record length"))?;
        let prefix = before.len() - rest.len();
        let mut body: &'a [u8] = rest
            .get(..len)
            .ok_or(RecordsError::Malformed("record longer than the batch"))?;
        let raw = &before[..prefix + len];
        rest = &rest[len..];
        body = body
            .get(1..)
            .ok_or(RecordsError::Malformed("empty record"))?; // attributes
        let timestamp_delta = varlong(&mut body)?;
        let offset_delta = varlong(&mut body)?;
        let key_len = varlong(&mut body)?;
        let key = match usize::try_from(key_len) {
            Err(_) => None,
            Ok(n) => {
                let k = body
                    .get(..n)
                    .ok_or(RecordsError::Malformed("key longer than the record"))?;
                body = &body[n..];
                Some(k)
            }
        };
        let is_tombstone = varlong(&mut body)? < 0;
        visit(RecordRef {
            raw,
            timestamp_delta,
            offset_delta,
            key,
            is_tombstone,
        });
    }
    Ok(())
}

/// The offset of the first record of `batch` whose timestamp is `max` (the batch's
/// max timestamp: Kafka's `RecordBatch.offsetOfMaxTimestamp`, what ListOffsets
/// MAX_TIMESTAMP answers since KAFKA-16310): the base offset for a LogAppendTime batch
/// (every record has the batch's time), else found by walking the (decompressed)
/// records. None when no record has it or the batch is malformed.
pub fn offset_of_max_timestamp(batch: &RecordBatch<'_>, max: i64) -> Option<i64> {
    if batch.is_log_append_time() {
        return Some(batch.base_offset());
    }
    let base_ts = batch.base_timestamp();
    let records = batch_records(batch).ok()?;
    let mut found = None;
    for_each_record(&records, batch.records_count(), |r| {
        if found.is_none() && base_ts.checked_add(r.timestamp_delta) == Some(max) {
            found = Some(r.offset_delta);
        }
    })
    .ok()?;
    found.and_then(|delta| batch.base_offset().checked_add(delta))
}

/// A copy of `original` (a v2 batch) holding only `records` (raw records of it, see
/// [`RecordRef::raw`]), uncompressed: same base offset, last offset delta, timestamps
/// and producer fields, so every kept record keeps its offset; the records count,
/// length, compression bits and CRC are rewritten. Appended to `out`.
pub fn rebuild_batch(
    original: &RecordBatch<'_>,
    records: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), BatchError> {
    let start = out.len();
    out.extend_from_slice(&original.as_bytes()[..RECORD_BATCH_HEADER_BYTES]);
    for r in records {
        out.extend_from_slice(r);
    }
    let total = out.len() - start;
    let batch = &mut out[start..];
    let batch_length =
        i32::try_from(total - LOG_OVERHEAD_BYTES).map_err(|_| BatchError::BadLength(i32::MAX))?;
    batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = original.attributes() & !COMPRESSION_MASK;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let count = i32::try_from(records.len()).map_err(|_| BatchError::BadLength(i32::MAX))?;
    batch[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Marks a v2 batch as LogAppendTime stamped at `append_time_ms`: the timestamp type
/// bit, `maxTimestamp`, and the CRC32C that covers both (what Kafka's broker does to
/// a batch appended to a `message.timestamp.type=LogAppendTime` topic).
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) -> Result<(), BatchError> {
    let attributes = RecordBatch::parse(batch)?.attributes() | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    set_max_timestamp(batch, append_time_ms)
}

/// Rewrites a v2 batch's `maxTimestamp` and the CRC32C that covers it.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) -> Result<(), BatchError> {
    let total = RecordBatch::parse(batch)?.total_bytes();
    batch[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c(&batch[21..total]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// The first record of one v2 batch whose timestamp is at least `timestamp_ms`, as
/// `(offset, timestamp)`, the way Kafka's ListOffsets answers a timestamp query (record
/// granularity, compressed batches decompressed, bounded). A log-append-time batch
/// gives every record its max timestamp. `Ok(None)` when no record qualifies.
pub fn first_record_at_or_after(
    batch: &[u8],
    timestamp_ms: i64,
) -> Result<Option<(i64, i64)>, RecordsError> {
    let header = RecordBatch::parse(batch)?;
    if header.is_log_append_time() {
        return Ok((header.max_timestamp() >= timestamp_ms)
            .then(|| (header.base_offset(), header.max_timestamp())));
    }
    let mut found = None;
    record_offsets_and_timestamps(batch, |offset, ts| {
        if ts >= timestamp_ms {
            found = Some((offset, ts));
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })?;
    Ok(found)
}

/// Control record type of a transaction marker (Kafka's `ControlRecordType`).
pub const CONTROL_TYPE_ABORT: i16 = 0;
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// A transaction marker as Kafka writes it: a v2 batch with the control and
/// transactional attribute bits (bits 5 and 4), the producer's id and epoch, no
/// sequence, and one record whose key is `i16 version 0, i16 type` (0 abort, 1 commit)
/// and whose value is `i16 version 0, i32 coordinator_epoch`. Base offset 0 (storage
/// assigns it). Appended to `out`.
pub fn control_batch(
    out: &mut Vec<u8>,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) {
    let kind = if commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    // The one record, varints zigzag-encoded: attributes 0, timestamp delta 0, offset
    // delta 0, key length 4, key, value length 6, value, no headers.
    let mut record = [0u8; 17];
    record[0] = 16 << 1; // record length 16 (zigzag)
    record[4] = 4 << 1;
    record[5..7].copy_from_slice(&0i16.to_be_bytes());
    record[7..9].copy_from_slice(&kind.to_be_bytes());
    record[9] = 6 << 1;
    record[10..12].copy_from_slice(&0i16.to_be_bytes());
    record[12..16].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let start = out.len();
    out.resize(start + RECORD_BATCH_HEADER_BYTES, 0);
    out.extend_from_slice(&record);
    let b = &mut out[start..];
    let batch_length = (RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + record.len()) as i32;
    b[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    b[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&0i32.to_be_bytes());
    b[MAGIC_AT] = MAGIC_V2 as u8;
    b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2]
        .copy_from_slice(&(CONTROL_BIT | TRANSACTIONAL_BIT).to_be_bytes());
    b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    b[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&NO_SEQUENCE.to_be_bytes());
    b[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c(&b[ATTRIBUTES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The control type of a control batch (its first record's key: 0 abort, 1 commit),
/// `None` when the batch is not a well-formed uncompressed control batch.
pub fn control_type(batch: &[u8]) -> Option<i16> {
    let header = RecordBatch::parse(batch).ok()?;
    if !header.is_control() || header.compression() != 0 {
        return None;
    }
    // Record: length, attributes, timestamp delta, offset delta, key length are small
    // varints in every marker Kafka or this broker writes; read them generally anyway.
    let mut at = RECORD_BATCH_HEADER_BYTES;
    let bytes = header.as_bytes();
    let varint = |at: &mut usize| -> Option<i64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        None
    };
    varint(&mut at)?; // length
    at += 1; // attributes
    varint(&mut at)?; // timestamp delta
    varint(&mut at)?; // offset delta
    let key_len = varint(&mut at)?;
    if key_len < 4 {
        return None;
    }
    let key = bytes.get(at..at + 4)?;
    Some(i16::from_be_bytes([key[2], key[3]]))
}

/// Overwrites the base offset of the batch at the start of `batch`. The CRC does
/// not cover the base offset, so it stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    match batch.get_mut(BASE_OFFSET_AT..BASE_OFFSET_AT + 8) {
        Some(field) => {
            field.copy_from_slice(&base_offset.to_be_bytes());
            Ok(())
        }
        None => Err(BatchError::Truncated {
            needed_bytes: 8,
            available_bytes: batch.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_batch_is_what_kafka_protocol_reads_as_a_marker() {
        use kafka_protocol::records::RecordBatchDecoder;
        for commit in [true, false] {
            let mut out = Vec::new();
            control_batch(&mut out, 77, 3, commit, 5, 1_700_000_000_000);
            let b = RecordBatch::parse(&out).unwrap();
            b.verify_crc().unwrap();
            assert!(b.is_control() && b.is_transactional());
            assert_eq!(
                (b.producer_id(), b.producer_epoch(), b.base_sequence()),
                (77, 3, -1)
            );
            assert_eq!(control_type(&out), Some(if commit { 1 } else { 0 }));
            let mut bytes = Bytes::from(out.clone());
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let rec = &set.records[0];
            assert!(rec.control && rec.transactional);
            assert_eq!(rec.producer_id, 77);
            let key = rec.key.as_ref().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, u8::from(commit)]);
            assert_eq!(&rec.value.as_ref().unwrap()[..], &[0, 0, 0, 0, 0, 5]);
        }
    }
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// A header with the given fields followed by `payload` as the records section.
    fn hand_built_batch(
        base_offset: i64,
        last_offset_delta: i32,
        attributes: i16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        let batch_length = (MIN_BATCH_LENGTH_BYTES + payload.len()) as i32;
        b.extend_from_slice(&batch_length.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes()); // partition leader epoch
        b.push(MAGIC_V2 as u8);
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&last_offset_delta.to_be_bytes());
        b.extend_from_slice(&1_000i64.to_be_bytes()); // base timestamp
        b.extend_from_slice(&2_000i64.to_be_bytes()); // max timestamp
        b.extend_from_slice(&42i64.to_be_bytes()); // producer id
        b.extend_from_slice(&3i16.to_be_bytes()); // producer epoch
        b.extend_from_slice(&11i32.to_be_bytes()); // base sequence
        b.extend_from_slice(&(last_offset_delta + 1).to_be_bytes()); // records count
        b.extend_from_slice(payload);
        let crc = crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn encoded_with_crate(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.to_vec()
    }

    #[test]
    fn a_rebuilt_batch_keeps_offsets_timestamps_and_producer_and_decodes() {
        for compression in [Compression::None, Compression::Zstd] {
            let mut records: Vec<Record> = (0..4)
                .map(|i| record(100 + i, 7 + i as i32, 5_000 + i, false))
                .collect();
            records[1].key = None;
            records[2].value = None;
            let bytes = encoded_with_crate(&records, compression);
            let batch = RecordBatch::parse(&bytes).unwrap();
            let inflated = batch_records(&batch).unwrap();
            let mut seen = Vec::new();
            for_each_record(&inflated, batch.records_count(), |r| seen.push(r)).unwrap();
            let described: Vec<(i64, bool, bool)> = seen
                .iter()
                .map(|r| (r.offset_delta, r.key.is_some(), r.is_tombstone))
                .collect();
            assert_eq!(
                described,
                [
                    (0, true, false),
                    (1, false, false),
                    (2, true, true),
                    (3, true, false)
                ]
            );
            // Keep the second and the third only.
            let mut out = Vec::new();
            rebuild_batch(&batch, &[seen[1].raw, seen[2].raw], &mut out).unwrap();
            let rebuilt = RecordBatch::parse(&out).unwrap();
            rebuilt.verify_crc().unwrap();
            assert_eq!(rebuilt.compression(), 0);
            assert_eq!(rebuilt.last_offset(), batch.last_offset());
            assert_eq!(rebuilt.producer_id(), batch.producer_id());
            let decoded = kafka_protocol::records::RecordBatchDecoder::decode_all(
                &mut Bytes::from(out.clone()),
            )
            .unwrap();
            let kept: Vec<(i64, i64, bool)> = decoded
                .into_iter()
                .flat_map(|set| set.records)
                .map(|r| (r.offset, r.timestamp, r.value.is_none()))
                .collect();
            assert_eq!(kept, [(101, 5_001, false), (102, 5_002, true)]);
        }
    }

    fn record(offset: i64, sequence: i32, timestamp: i64, transactional: bool) -> Record {
        Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 5,
            producer_id: 99,
            producer_epoch: 4,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence,
            timestamp,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from(vec![b'v'; 100])),
            headers: IndexMap::new(),
        }
    }

    #[test]
    fn hand_built_header_fields_parse() {
        let bytes = hand_built_batch(5, 2, TRANSACTIONAL_BIT | 3, b"records");
        let batch = RecordBatch::parse(&bytes).unwrap();
        assert_eq!(batch.base_offset(), 5);
        assert_eq!(batch.total_bytes(), RECORD_BATCH_HEADER_BYTES + 7);
        assert_eq!(batch.batch_length() as usize, MIN_BATCH_LENGTH_BYTES + 7);
        assert_eq!(batch.partition_leader_epoch(), 7);
        assert_eq!(batch.magic(), 2);
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.last_offset(), 7);
        assert_eq!(batch.base_timestamp(), 1_000);
        assert_eq!(batch.max_timestamp(), 2_000);
        assert_eq!(batch.producer_id(), 42);
        assert_eq!(batch.producer_epoch(), 3);
        assert_eq!(batch.base_sequence(), 11);
        assert_eq!(batch.records_count(), 3);
        assert_eq!(batch.compression(), 3);
        assert!(batch.is_transactional());
        assert!(!batch.is_control());
        batch.verify_crc().unwrap();
    }

    #[test]
    fn truncated_batch_reports_needed_and_available() {
        let bytes = hand_built_batch(0, 0, 0, b"abc");
        assert_eq!(
            RecordBatch::parse(&bytes[..5]).unwrap_err(),
            BatchError::Truncated {
                needed_bytes: 12,
                available_bytes: 5
            }
        );
        assert_eq!(
            RecordBatch::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
            BatchError::Truncated {
                needed_bytes: bytes.len(),
                available_bytes: bytes.len() - 1
            }
        );
    }

    #[test]
    fn zero_or_short_length_is_bad_length() {
        assert_eq!(
            RecordBatch::parse(&[0u8; 64]).unwrap_err(),
            BatchError::BadLength(0)
        );
        let mut bytes = hand_built_batch(0, 0, 0, b"");
        bytes[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&20i32.to_be_bytes());
        assert_eq!(
            RecordBatch::parse(&bytes).unwrap_err(),
            BatchError::BadLength(20)
        );
        bytes[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            RecordBatch::parse(&bytes).unwrap_err(),
            BatchError::BadLength(-5)
        );
    }

    #[test]
    fn old_magic_is_reported_with_its_value() {
        let mut bytes = hand_built_batch(0, 0, 0, b"");
        bytes[MAGIC_AT] = 1;
        assert_eq!(
            RecordBatch::parse(&bytes).unwrap_err(),
            BatchError::UnsupportedMagic(1)
        );
    }

    #[test]
    fn flipped_byte_is_crc_mismatch() {
        let mut bytes = hand_built_batch(0, 0, 0, b"payload");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let err = RecordBatch::parse(&bytes)
            .unwrap()
            .verify_crc()
            .unwrap_err();
        assert!(matches!(err, BatchError::CrcMismatch { .. }), "{err:?}");
    }

    #[test]
    fn base_offset_rewrite_keeps_crc_valid() {
        let mut bytes = hand_built_batch(0, 4, 0, b"payload");
        set_base_offset(&mut bytes, 1_234_567).unwrap();
        let batch = RecordBatch::parse(&bytes).unwrap();
        assert_eq!(batch.base_offset(), 1_234_567);
        assert_eq!(batch.last_offset(), 1_234_571);
        batch.verify_crc().unwrap();
        assert!(set_base_offset(&mut [0u8; 4], 1).is_err());
    }

    #[test]
    fn iterator_walks_concatenated_batches_and_stops_at_garbage() {
        let mut buf = hand_built_batch(0, 0, 0, b"one");
        let first_len = buf.len();
        buf.extend(hand_built_batch(1, 1, 0, b"two!"));
        let valid_len = buf.len();
        buf.extend_from_slice(&[0xff; 5]);
        let mut it = Batches::new(&buf);
        assert_eq!(it.next().unwrap().unwrap().base_offset(), 0);
        assert_eq!(it.position(), first_len);
        assert_eq!(it.next().unwrap().unwrap().base_offset(), 1);
        assert!(matches!(it.next(), Some(Err(BatchError::Truncated { .. }))));
        assert!(it.next().is_none());
        assert_eq!(it.position(), valid_len);
    }

    #[test]
    fn crate_encoded_batch_agrees_with_our_parse() {
        let records: Vec<Record> = (0..3)
            .map(|i| record(10 + i, 20 + i as i32, 5_000 + i, true))
            .collect();
        let bytes = encoded_with_crate(&records, Compression::None);
        let batch = RecordBatch::parse(&bytes).unwrap();
        assert_eq!(batch.total_bytes(), bytes.len());
        assert_eq!(batch.base_offset(), 10);
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.base_timestamp(), 5_000);
        assert_eq!(batch.max_timestamp(), 5_002);
        assert_eq!(batch.producer_id(), 99);
        assert_eq!(batch.producer_epoch(), 4);
        assert_eq!(batch.base_sequence(), 20);
        assert_eq!(batch.records_count(), 3);
        assert_eq!(batch.partition_leader_epoch(), 5);
        assert!(batch.is_transactional());
        assert_eq!(batch.compression(), 0);
        batch.verify_crc().unwrap();

        // The crate's decoder sees the same batch after our base offset rewrite.
        let mut rewritten = bytes.clone();
        set_base_offset(&mut rewritten, 500).unwrap();
        let mut decode_buf = Bytes::from(rewritten);
        let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut decode_buf).unwrap();
        let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![500, 501, 502]);

        for i in [ATTRIBUTES_AT, RECORDS_COUNT_AT + 1, bytes.len() - 1] {
            let mut corrupted = bytes.clone();
            corrupted[i] ^= 0x40;
            let err = RecordBatch::parse(&corrupted)
                .unwrap()
                .verify_crc()
                .unwrap_err();
            assert!(
                matches!(err, BatchError::CrcMismatch { .. }),
                "byte {i}: {err:?}"
            );
        }
    }

    #[test]
    fn every_codec_inflates_and_walks_records_like_the_crate_decoder() {
        let records: Vec<Record> = (0..50)
            .map(|i| record(100 + i, i as i32, 9_000 - ((i + 3) % 7) * 10, false))
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = encoded_with_crate(&records, compression);
            assert_eq!(
                records_max_timestamp(&bytes),
                Ok(Some(9_000)),
                "{compression:?}"
            );
            assert_eq!(
                first_record_at_or_after(&bytes, 8_995),
                Ok(Some((104, 9_000))),
                "{compression:?}"
            );
            assert_eq!(first_record_at_or_after(&bytes, 9_001), Ok(None));
        }
    }

    #[test]
    fn bombs_stop_at_the_limit_for_every_codec() {
        use std::io::Write as _;
        const LIMIT_BYTES: usize = 4096;
        let zeros = vec![0u8; LIMIT_BYTES + 1];
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&zeros).unwrap();
        let gzip = gzip.finish().unwrap();
        let zstd = zstd::encode_all(&zeros[..], 1).unwrap();
        let mut lz4 = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz4.write_all(&zeros).unwrap();
        let (lz4, result) = lz4.finish();
        result.unwrap();
        let snappy = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        let mut xerial = XERIAL_SNAPPY_HEADER.to_vec();
        // Two blocks that only together exceed the limit.
        for block_bytes in [LIMIT_BYTES / 2 + 1, LIMIT_BYTES / 2] {
            let block = snap::raw::Encoder::new()
                .compress_vec(&zeros[..block_bytes])
                .unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        for (codec, bytes) in [(1, gzip), (2, snappy), (2, xerial), (3, lz4), (4, zstd)] {
            assert_eq!(
                decompress_records(codec, &bytes, LIMIT_BYTES),
                Err(RecordsError::TooLarge {
                    limit_bytes: LIMIT_BYTES
                }),
                "codec {codec}"
            );
            // One byte more of room and the same bytes inflate fine.
            assert_eq!(
                decompress_records(codec, &bytes, LIMIT_BYTES + 1)
                    .unwrap()
                    .len(),
                LIMIT_BYTES + 1,
                "codec {codec}"
            );
        }
        assert_eq!(
            decompress_records(5, b"", LIMIT_BYTES),
            Err(RecordsError::UnknownCompression(5))
        );
    }

    #[test]
    fn record_count_beyond_what_the_bytes_hold_is_malformed() {
        let mut bytes = encoded_with_crate(&[record(0, 0, 1, false)], Compression::None);
        bytes[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c(&bytes[ATTRIBUTES_AT..]);
        bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            records_max_timestamp(&bytes),
            Err(RecordsError::Malformed(_))
        ));
    }

    #[test]
    fn crate_encoded_records_with_different_producers_become_separate_batches() {
        let mut records = vec![record(0, 0, 1, false), record(1, 1, 2, false)];
        records[1].producer_id = 100;
        let bytes = encoded_with_crate(&records, Compression::None);
        let batches: Vec<RecordBatch<'_>> = Batches::new(&bytes).map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].producer_id(), 99);
        assert_eq!(batches[1].producer_id(), 100);
        assert_eq!(batches[1].base_offset(), 1);
        assert!(batches.iter().all(|b| b.verify_crc().is_ok()));
    }

    #[test]
    fn crc32c_matches_the_crc32c_crate_at_every_length_and_alignment() {
        // Every length up to past the SIMD paths' block sizes (the small-buffer path
        // ends at 256 bytes), at each of 8 start alignments, and a 1 MiB buffer.
        let data: Vec<u8> = (0..(1u32 << 20) + 64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for offset in 0..8 {
            for len in 0..=4200 {
                let bytes = &data[offset..offset + len];
                assert_eq!(
                    crc32c(bytes),
                    ::crc32c::crc32c(bytes),
                    "len {len} at offset {offset}"
                );
            }
        }
        assert_eq!(crc32c(&data), ::crc32c::crc32c(&data));
    }
}
