//! Fetch with long-polling: answer at once when `min_bytes` are there, otherwise park
//! until data arrives or `max_wait_ms` passes. Consumers never need to busy-poll.
//!
//! The request is a view over its frame and the response is encoded straight into the
//! connection's [`Output`]; the records are copied from the log under the partition
//! lock, or (`fetch_zero_copy`) spliced in as a shared slice of the segment mapping
//! that the data plane sends with a vectored send. Either way a fetch answered at once
//! allocates nothing (see `tests::hot_path_allocates_nothing`). A fetch
//! that does not have `min_bytes` yet is written and then taken back out of the buffer
//! (it carries fewer than `min_bytes` of records, so that costs little) and parked.
//!
//! A parked fetch remembers each partition it reads and the offsets it saw there; a
//! wake-up (any append, any group change) re-evaluates it only when one of those
//! moved, so a parked consumer costs one offsets read (a partition-lock acquisition)
//! per watched partition per wake-up, not a rebuilt response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::{code, enc, Broker, FrameError, Outcome};
use crate::output::Output;
use crate::protocol::encode::{
    put_array_len, put_i16, put_i32, put_i64, put_length_of_bytes, put_str, put_uuid,
    tagged_fields_if,
};
use crate::protocol::request;
use crate::protocol::request::views::{FetchTopicView, FetchView, FETCH_TOPIC_ID_VERSION};
use crate::storage::{Committed, EachAborted, Offsets, Partition, ReadError, TopicPartitions};

/// Longest wait honoured, whatever the client asks: bounds how long a connection stays
/// parked.
const MAX_WAIT_MS_CAP: i32 = 60_000;
/// Fetch responses carry `errorCode` and `sessionId` from this version on.
const SESSION_VERSION: i16 = 7;
/// ... `logStartOffset` from this one.
const LOG_START_OFFSET_VERSION: i16 = 5;
/// ... and `preferredReadReplica` from this one.
const PREFERRED_READ_REPLICA_VERSION: i16 = 11;
/// Kafka's READ_COMMITTED isolation level: the response lists aborted transactions
/// instead of null, and records stop at the last stable offset.
const READ_COMMITTED: i8 = 1;
/// Offsets reported when a partition could not be read at all.
const NO_OFFSETS: Offsets = Offsets {
    log_start_offset: -1,
    log_end_offset: -1,
};

/// A partition a parked fetch reads, and the offsets it saw there.
struct Watch {
    partition: Arc<Partition>,
    seen: Offsets,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("seen", &self.seen).finish()
    }
}

impl Watch {
    /// Whether the partition changed in a way that may change the answer: data
    /// appended, the log start moved (retention) or the topic was deleted.
    fn moved(&self) -> bool {
        self.partition.is_deleted() || self.partition.offsets() != self.seen
    }
}

/// A Fetch waiting for data.
#[derive(Debug)]
pub struct ParkedFetch {
    correlation_id: i32,
    version: i16,
    /// The request frame; the view is decoded again from `frame[body_at..]` (it was
    /// validated when the fetch arrived).
    frame: Bytes,
    body_at: usize,
    watches: Vec<Watch>,
    /// When the wait is over and the fetch is answered with whatever there is.
    pub deadline: Instant,
}

/// What one pass over a fetch's partitions wrote.
struct Pass {
    record_bytes: usize,
    any_error: bool,
}

impl Broker {
    /// Answers a fetch at once when it can, else parks it. `frame` is the request frame
    /// and `body_at` where its body (the bytes `req` was decoded from) starts.
    pub(in crate::broker) fn fetch_or_park(
        &self,
        req: &FetchView<'_>,
        correlation_id: i32,
        frame: &Bytes,
        body_at: usize,
        out: &mut Output,
    ) -> Result<Outcome, FrameError> {
        if self.try_answer(req, correlation_id, false, out)? {
            return Ok(Outcome::Responded);
        }
        let wait_ms = req.max_wait_ms.clamp(0, MAX_WAIT_MS_CAP) as u64;
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let watches = self.watches(req);
        // Data appended between the pass above and the watches would go unnoticed
        // until the deadline: look once more now that the watches are set.
        if self.try_answer(req, correlation_id, false, out)? {
            return Ok(Outcome::Responded);
        }
        Ok(Outcome::Park(Box::new(crate::broker::Parked::Fetch(
            ParkedFetch {
                correlation_id,
                version: req.version(),
                frame: frame.clone(),
                body_at,
                watches,
                deadline,
            },
        ))))
    }

    /// Re-examines a parked fetch. Answers it (appending the response to `out`,
    /// returning true) when `min_bytes` are available, when its deadline has passed, on
    /// an error, or when `force` (shutdown). Otherwise returns false and appends
    /// nothing; unless a watched partition moved that costs no pass at all.
    pub(in crate::broker) fn resume_fetch(
        &self,
        parked: &mut ParkedFetch,
        out: &mut Output,
        force: bool,
    ) -> Result<bool, FrameError> {
        let expired = Instant::now() >= parked.deadline;
        if !force && !expired && !parked.watches.iter().any(Watch::moved) {
            return Ok(false);
        }
        let body = parked.frame.get(parked.body_at..).unwrap_or_default();
        let (req, _) = request::fetch_view(parked.version, body)?;
        let cid = parked.correlation_id;
        if self.try_answer(&req, cid, force || expired, out)? {
            return Ok(true);
        }
        // Something moved but not enough arrived: watch from here (see fetch_or_park).
        parked.watches = self.watches(&req);
        self.try_answer(&req, cid, false, out)
    }

    /// The partitions `req` reads that exist, with their offsets now.
    fn watches(&self, req: &FetchView<'_>) -> Vec<Watch> {
        let mut watches = Vec::new();
        for t in req.topics() {
            let Some(topic) = self.fetch_topic(req.version(), &t) else {
                continue;
            };
            for p in t.partitions() {
                if let Some(partition) = topic.partition(p.partition) {
                    let seen = partition.offsets();
                    watches.push(Watch { partition, seen });
                }
            }
        }
        watches
    }

    /// The topic a fetch topic refers to (by id from v13); `None` if unknown.
    fn fetch_topic(&self, version: i16, t: &FetchTopicView<'_>) -> Option<TopicPartitions> {
        if version >= FETCH_TOPIC_ID_VERSION {
            self.storage.topic_partitions_by_id(t.topic_id)
        } else {
            self.storage.topic_partitions(t.name)
        }
    }

    /// Writes the response for `req` to `out` and keeps it when it is due (`min_bytes`
    /// there, an error, or `must_answer`); otherwise takes it back out and returns false.
    fn try_answer(
        &self,
        req: &FetchView<'_>,
        correlation_id: i32,
        must_answer: bool,
        out: &mut Output,
    ) -> Result<bool, FrameError> {
        let version = req.version();
        let flexible =
            request::is_flexible(kafka_protocol::messages::ApiKey::Fetch as i16, version);
        let frame = out.begin_frame(correlation_id, flexible);
        let pass = self.write_fetch_response(req, flexible, out);
        let min_bytes = req.min_bytes.max(0) as usize;
        if !(must_answer || pass.any_error || pass.record_bytes >= min_bytes) {
            out.abandon_frame(frame);
            return Ok(false);
        }
        out.finish_frame(frame).map_err(enc)?;
        Ok(true)
    }

    /// One pass over the requested partitions, encoding the `FetchResponse` body.
    fn write_fetch_response(&self, req: &FetchView<'_>, flexible: bool, out: &mut Output) -> Pass {
        let version = req.version();
        let head = out.bytes_mut();
        put_i32(head, 0); // throttle_time_ms
                          // A client that sends a session id expects us to know it; we never hand one out.
        let session_error = req.session_id != 0;
        if version >= SESSION_VERSION {
            let error_code = if session_error {
                code::FETCH_SESSION_ID_NOT_FOUND
            } else {
                code::NONE
            };
            put_i16(head, error_code);
            put_i32(head, 0); // session_id: no fetch sessions
        }
        if session_error {
            put_array_len(out.bytes_mut(), flexible, Some(0));
            tagged_fields_if(out.bytes_mut(), flexible);
            return Pass {
                record_bytes: 0,
                any_error: true,
            };
        }
        let mut budget_bytes = req.max_bytes.max(0) as usize;
        let mut pass = Pass {
            record_bytes: 0,
            any_error: false,
        };
        let aborted = (req.isolation_level == READ_COMMITTED).then_some(());
        let topics = req.topics();
        put_array_len(out.bytes_mut(), flexible, Some(topics.len()));
        for t in topics {
            if version < FETCH_TOPIC_ID_VERSION {
                put_str(out.bytes_mut(), flexible, t.name);
            } else {
                put_uuid(out.bytes_mut(), &t.topic_id);
            }
            let topic = self.fetch_topic(version, &t);
            let partitions = t.partitions();
            put_array_len(out.bytes_mut(), flexible, Some(partitions.len()));
            for p in partitions {
                let head = PartitionHead {
                    version,
                    flexible,
                    index: p.partition,
                    aborted,
                };
                let partition = topic.as_ref().and_then(|t| t.partition(p.partition));
                let Some(partition) = partition else {
                    pass.any_error = true;
                    let missing = if version >= FETCH_TOPIC_ID_VERSION && topic.is_none() {
                        code::UNKNOWN_TOPIC_ID
                    } else {
                        code::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    head.put(out, missing, NO_OFFSETS, None);
                    continue;
                };
                let limit = (p.partition_max_bytes.max(0) as usize).min(budget_bytes);
                if limit == 0 && pass.record_bytes > 0 {
                    // Budget spent: report offsets only.
                    head.put(out, code::NONE, partition.offsets(), None);
                    continue;
                }
                // Only the first non-empty partition may exceed the budget (so one
                // oversized batch can always make progress).
                let mut take = |records: &Committed<'_>| -> bool {
                    let n = records.bytes.len();
                    if n > 0 && (pass.record_bytes == 0 || n <= budget_bytes) {
                        pass.record_bytes += n;
                        budget_bytes = budget_bytes.saturating_sub(n);
                        true
                    } else {
                        false
                    }
                };
                let read = if head.aborted.is_some() {
                    // read_committed: up to the last stable offset, with the aborted
                    // transactions of the range returned.
                    partition.read_committed_with(
                        p.fetch_offset,
                        limit.max(1),
                        |offsets, lso, records, aborted| {
                            let records = take(&records).then_some(&records);
                            head.put_committed(out, code::NONE, offsets, lso, aborted, records);
                        },
                    )
                } else {
                    partition.read_with(p.fetch_offset, limit.max(1), |offsets, records| {
                        let records = take(&records).then_some(&records);
                        head.put(out, code::NONE, offsets, records);
                    })
                };
                match read {
                    Ok(()) => {}
                    Err(ReadError::OffsetOutOfRange) => {
                        pass.any_error = true;
                        let o = partition.offsets();
                        head.put(out, code::OFFSET_OUT_OF_RANGE, o, None);
                    }
                    Err(ReadError::Io(e)) => {
                        pass.any_error = true;
                        tracing::warn!(error = %e, "fetch read failed");
                        head.put(out, code::KAFKA_STORAGE_ERROR, NO_OFFSETS, None);
                    }
                }
            }
            tagged_fields_if(out.bytes_mut(), flexible);
        }
        tagged_fields_if(out.bytes_mut(), flexible);
        pass
    }
}

/// What every `PartitionData` of one response shares, and its index.
#[derive(Clone, Copy)]
struct PartitionHead {
    version: i16,
    flexible: bool,
    index: i32,
    /// `Some(())`: read_committed (an aborted-transactions list); `None`: null.
    aborted: Option<()>,
}

impl PartitionHead {
    /// One `PartitionData`, in schema order (no tagged fields: no diverging epoch,
    /// leader change or snapshot on a single node), with no open transactions.
    /// `records`: copied or spliced as the connection's output does it; `None` is an
    /// empty (not null) record set.
    fn put(&self, out: &mut Output, error_code: i16, o: Offsets, records: Option<&Committed<'_>>) {
        self.put_committed(out, error_code, o, o.log_end_offset, &mut |_| 0, records);
    }

    /// [`PartitionHead::put`] with the last stable offset and, for read_committed,
    /// the aborted transactions (`aborted` visits them and returns how many).
    fn put_committed(
        &self,
        out: &mut Output,
        error_code: i16,
        o: Offsets,
        last_stable_offset: i64,
        aborted: &mut EachAborted<'_>,
        records: Option<&Committed<'_>>,
    ) {
        let records_bytes = records.map_or(0, |r| r.bytes.len());
        let head = out.bytes_mut();
        put_i32(head, self.index);
        put_i16(head, error_code);
        put_i64(head, o.log_end_offset); // high watermark
        put_i64(head, last_stable_offset);
        if self.version >= LOG_START_OFFSET_VERSION {
            put_i64(head, o.log_start_offset);
        }
        if self.aborted.is_some() {
            let count = aborted(&mut |_, _| {});
            put_array_len(head, self.flexible, Some(count));
            let flexible = self.flexible;
            aborted(&mut |producer_id, first_offset| {
                put_i64(head, producer_id);
                put_i64(head, first_offset);
                tagged_fields_if(head, flexible);
            });
        } else {
            put_array_len(head, self.flexible, None);
        }
        if self.version >= PREFERRED_READ_REPLICA_VERSION {
            put_i32(head, -1);
        }
        put_length_of_bytes(head, self.flexible, Some(records_bytes));
        if let Some(r) = records {
            out.put_records(r.bytes, || r.share());
        }
        tagged_fields_if(out.bytes_mut(), self.flexible);
    }
}
