//! Fetch with long-polling: answer at once when `min_bytes` are there, otherwise park
//! until data arrives or `max_wait_ms` passes. Consumers never need to busy-poll.

use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::{code, enc, Broker, FrameError, Outcome};
use crate::protocol::response::write_response;
use crate::storage::ReadError;

/// Longest wait honoured, whatever the client asks: bounds how long a connection stays
/// parked.
const MAX_WAIT_MS_CAP: i32 = 60_000;
/// Fetch topic ids (instead of names) from this version on.
const FETCH_TOPIC_ID_VERSION: i16 = 13;

/// A Fetch waiting for data.
#[derive(Debug)]
pub struct ParkedFetch {
    correlation_id: i32,
    version: i16,
    request: FetchRequest,
    /// When the wait is over and the fetch is answered with whatever there is.
    pub deadline: Instant,
}

impl ParkedFetch {
    pub(super) fn new(correlation_id: i32, version: i16, request: FetchRequest) -> ParkedFetch {
        let wait_ms = request.max_wait_ms.clamp(0, MAX_WAIT_MS_CAP) as u64;
        ParkedFetch {
            correlation_id,
            version,
            request,
            deadline: Instant::now() + Duration::from_millis(wait_ms),
        }
    }
}

impl Broker {
    pub(super) fn fetch_or_park(
        &self,
        parked: ParkedFetch,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, FrameError> {
        let mut parked = parked;
        if self.resume_fetch(&mut parked, out, false)? {
            Ok(Outcome::Responded)
        } else {
            Ok(Outcome::Park(Box::new(super::Parked::Fetch(parked))))
        }
    }

    /// Re-examines a fetch. Answers it (appending the response to `out`, returning true)
    /// when `min_bytes` are available, when its deadline has passed, on an error, or when
    /// `force` (shutdown). Otherwise returns false and appends nothing.
    pub(super) fn resume_fetch(
        &self,
        parked: &mut ParkedFetch,
        out: &mut Vec<u8>,
        force: bool,
    ) -> Result<bool, FrameError> {
        let (resp, bytes, any_error) = self.fetch_once(&parked.request, parked.version);
        let min_bytes = parked.request.min_bytes.max(0) as usize;
        let done = force || any_error || bytes >= min_bytes || Instant::now() >= parked.deadline;
        if !done {
            return Ok(false);
        }
        write_response(out, parked.correlation_id, parked.version, &resp).map_err(enc)?;
        Ok(true)
    }

    /// One pass over the requested partitions: the response, the record bytes in it, and
    /// whether any partition reported an error (which answers the fetch at once).
    fn fetch_once(&self, req: &FetchRequest, version: i16) -> (FetchResponse, usize, bool) {
        let mut budget_bytes = req.max_bytes.max(0) as usize;
        let mut total_bytes = 0usize;
        let mut any_error = false;
        let mut topics = Vec::with_capacity(req.topics.len());
        // A client that sends a session id expects us to know it; we never hand one out.
        if req.session_id != 0 {
            let resp = FetchResponse::default().with_error_code(code::FETCH_SESSION_ID_NOT_FOUND);
            return (resp, 0, true);
        }
        for t in &req.topics {
            let by_id;
            let name: Option<&str> = if version >= FETCH_TOPIC_ID_VERSION {
                by_id = self.storage.topic_by_id(t.topic_id).map(|info| info.name);
                by_id.as_deref()
            } else {
                Some(&t.topic.0)
            };
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let mut data = PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_preferred_read_replica((-1).into())
                    .with_records(Some(bytes::Bytes::new()));
                if req.isolation_level == 1 {
                    data.aborted_transactions = Some(Vec::new());
                }
                let partition = name.and_then(|n| self.storage.partition(n, p.partition));
                let Some(partition) = partition else {
                    any_error = true;
                    let missing = if version >= FETCH_TOPIC_ID_VERSION && name.is_none() {
                        code::UNKNOWN_TOPIC_ID
                    } else {
                        code::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    partitions.push(data.with_error_code(missing));
                    continue;
                };
                let limit = (p.partition_max_bytes.max(0) as usize).min(budget_bytes);
                let result = if limit == 0 && total_bytes > 0 {
                    // Budget spent: report offsets only.
                    Ok(None)
                } else {
                    partition.read(p.fetch_offset, limit.max(1)).map(Some)
                };
                match result {
                    Ok(read) => {
                        let offsets = read
                            .as_ref()
                            .map_or_else(|| partition.offsets(), |r| r.offsets);
                        data = data
                            .with_high_watermark(offsets.log_end_offset)
                            .with_last_stable_offset(offsets.log_end_offset)
                            .with_log_start_offset(offsets.log_start_offset);
                        if let Some(read) = read {
                            let n = read.records.len();
                            // Only the first non-empty partition may exceed the budget
                            // (so one oversized batch can always make progress).
                            if n > 0 && (total_bytes == 0 || n <= budget_bytes) {
                                total_bytes += n;
                                budget_bytes = budget_bytes.saturating_sub(n);
                                data.records = Some(read.records);
                            }
                        }
                    }
                    Err(ReadError::OffsetOutOfRange) => {
                        any_error = true;
                        let o = partition.offsets();
                        data = data
                            .with_error_code(code::OFFSET_OUT_OF_RANGE)
                            .with_high_watermark(o.log_end_offset)
                            .with_last_stable_offset(o.log_end_offset)
                            .with_log_start_offset(o.log_start_offset);
                    }
                    Err(ReadError::Io(e)) => {
                        any_error = true;
                        tracing::warn!(error = %e, "fetch read failed");
                        data = data.with_error_code(code::KAFKA_STORAGE_ERROR);
                    }
                }
                partitions.push(data);
            }
            topics.push(
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions),
            );
        }
        let resp = FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics);
        (resp, total_bytes, any_error)
    }
}
