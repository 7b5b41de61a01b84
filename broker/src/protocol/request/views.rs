//! Borrowing decoders for the hot requests: the header, Produce and Fetch decode into
//! views over the received frame. Topic names and record batches are slices of the
//! frame and topics and partitions are iterated in place, so handling them allocates
//! nothing.
//!
//! A view is validated whole when it is built (every field of every element read with
//! the same bounds and errors as the owned decoders), so a malformed request is refused
//! before the broker acts on any part of it. The iterators then re-read the same bytes
//! with the same element decoder and cannot fail; should one ever do, it ends early.
//!
//! The owned `kafka_protocol` structs (for tests, the fuzz targets and the oracle
//! comparison) are built from these views by [`ProduceView::to_request`] and
//! [`FetchView::to_request`]: there is one decoder per api.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{api_spec, DecodeError, Version};
use crate::protocol::wire::SliceReader;

/// Fetch's top-level tagged fields (flexible versions only).
const FETCH_TAG_CLUSTER_ID: u32 = 0;
const FETCH_TAG_REPLICA_STATE: u32 = 1;
/// Fetch names topics by id instead of by name from this version on.
pub const FETCH_TOPIC_ID_VERSION: i16 = 13;

/// The request header, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderView<'a> {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<&'a str>,
    /// Header bytes: the body starts here.
    pub len: usize,
}

/// Decodes the request header at the start of `frame` (see [`super::decode_header`]).
pub fn header(frame: &[u8]) -> Result<HeaderView<'_>, DecodeError> {
    const FIXED_BYTES: usize = 8;
    // The fixed fields in one bounds check; a shorter frame fails as before.
    let Some((fixed, rest)) = frame.split_first_chunk::<FIXED_BYTES>() else {
        return Err(DecodeError::Truncated);
    };
    let api_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let r = &mut SliceReader::new(rest);
    let client_id = r.nullable_str(false)?;
    let flexible = api_spec(api_key).is_some_and(|api| api_version >= api.flexible_from);
    r.tagged_fields_if(flexible)?;
    Ok(HeaderView {
        api_key,
        api_version,
        correlation_id,
        client_id,
        len: frame.len() - r.rest().len(),
    })
}

impl HeaderView<'_> {
    /// The owned header, its client id a slice of `frame` (the bytes this view was
    /// decoded from).
    pub fn to_header(&self, frame: &Bytes) -> RequestHeader {
        let mut header = RequestHeader::default();
        header.request_api_key = self.api_key;
        header.request_api_version = self.api_version;
        header.correlation_id = self.correlation_id;
        header.client_id = self.client_id.map(|c| str_bytes(frame, c));
        header
    }
}

/// A `StrBytes` over `text`, which must lie inside `owner`.
fn str_bytes(owner: &Bytes, text: &str) -> StrBytes {
    // `slice_ref` checks that `text` lies inside `owner`; the bytes were validated as
    // UTF-8 when the view was built, so the fallback is never taken.
    StrBytes::from_utf8(owner.slice_ref(text.as_bytes())).unwrap_or_default()
}

/// The elements of an array inside a validated view.
pub struct Elements<'a, T> {
    r: SliceReader<'a>,
    left: usize,
    v: Version,
    element: fn(&mut SliceReader<'a>, Version) -> Result<T, DecodeError>,
}

impl<'a, T> Elements<'a, T> {
    fn new(
        bytes: &'a [u8],
        count: usize,
        v: Version,
        element: fn(&mut SliceReader<'a>, Version) -> Result<T, DecodeError>,
    ) -> Self {
        Elements {
            r: SliceReader::new(bytes),
            left: count,
            v,
            element,
        }
    }
}

impl<T> Iterator for Elements<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match (self.element)(&mut self.r, self.v) {
            Ok(item) => Some(item),
            Err(_) => {
                // Validated at construction: unreachable, but never a panic.
                debug_assert!(false, "validated view failed to re-read");
                self.left = 0;
                None
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Elements<'_, T> {}

/// Reads `count` elements with `element` to validate them; returns the bytes they span.
fn span<'a, T>(
    r: &mut SliceReader<'a>,
    count: usize,
    v: Version,
    element: fn(&mut SliceReader<'a>, Version) -> Result<T, DecodeError>,
) -> Result<&'a [u8], DecodeError> {
    let start = r.rest();
    for _ in 0..count {
        element(r, v)?;
    }
    Ok(&start[..start.len() - r.rest().len()])
}

// ---------------------------------------------------------------------------------
// Produce

/// A Produce request over its frame.
#[derive(Clone, Copy)]
pub struct ProduceView<'a> {
    pub transactional_id: Option<&'a str>,
    pub acks: i16,
    pub timeout_ms: i32,
    topic_count: usize,
    topics: &'a [u8],
    v: Version,
}

#[derive(Clone, Copy)]
pub struct ProduceTopicView<'a> {
    pub name: &'a str,
    partition_count: usize,
    partitions: &'a [u8],
    v: Version,
}

#[derive(Clone, Copy)]
pub struct ProducePartitionView<'a> {
    pub index: i32,
    pub records: Option<&'a [u8]>,
}

impl<'a> ProduceView<'a> {
    /// Decodes and validates a Produce body; returns the view and the bytes it took.
    pub(super) fn parse(body: &'a [u8], v: Version) -> Result<(Self, usize), DecodeError> {
        let r = &mut SliceReader::new(body);
        let transactional_id = r.nullable_str(v.flexible)?;
        let acks = r.i16()?;
        let timeout_ms = r.i32()?;
        let topic_count = r.array_len(v.flexible)?;
        let topics = span(r, topic_count, v, produce_topic)?;
        r.tagged_fields_if(v.flexible)?;
        let view = ProduceView {
            transactional_id,
            acks,
            timeout_ms,
            topic_count,
            topics,
            v,
        };
        Ok((view, body.len() - r.rest().len()))
    }

    pub fn topics(&self) -> Elements<'a, ProduceTopicView<'a>> {
        Elements::new(self.topics, self.topic_count, self.v, produce_topic)
    }

    /// The owned request; `body` is the buffer this view was decoded from.
    pub fn to_request(&self, body: &Bytes) -> ProduceRequest {
        let mut req = ProduceRequest::default();
        req.transactional_id = self.transactional_id.map(|t| str_bytes(body, t).into());
        req.acks = self.acks;
        req.timeout_ms = self.timeout_ms;
        req.topic_data = self
            .topics()
            .map(|t| {
                let mut topic = TopicProduceData::default();
                topic.name = str_bytes(body, t.name).into();
                topic.partition_data = t
                    .partitions()
                    .map(|p| {
                        let mut partition = PartitionProduceData::default();
                        partition.index = p.index;
                        partition.records = p.records.map(|rec| body.slice_ref(rec));
                        partition
                    })
                    .collect();
                topic
            })
            .collect();
        req
    }
}

impl<'a> ProduceTopicView<'a> {
    pub fn partitions(&self) -> Elements<'a, ProducePartitionView<'a>> {
        Elements::new(
            self.partitions,
            self.partition_count,
            self.v,
            produce_partition,
        )
    }
}

fn produce_topic<'a>(
    r: &mut SliceReader<'a>,
    v: Version,
) -> Result<ProduceTopicView<'a>, DecodeError> {
    let name = r.str(v.flexible)?;
    let partition_count = r.array_len(v.flexible)?;
    let partitions = span(r, partition_count, v, produce_partition)?;
    r.tagged_fields_if(v.flexible)?;
    Ok(ProduceTopicView {
        name,
        partition_count,
        partitions,
        v,
    })
}

fn produce_partition<'a>(
    r: &mut SliceReader<'a>,
    v: Version,
) -> Result<ProducePartitionView<'a>, DecodeError> {
    let index = r.i32()?;
    let records = r.nullable_bytes(v.flexible)?;
    r.tagged_fields_if(v.flexible)?;
    Ok(ProducePartitionView { index, records })
}

// ---------------------------------------------------------------------------------
// Fetch

/// A Fetch request over its frame.
#[derive(Clone, Copy)]
pub struct FetchView<'a> {
    pub replica_id: i32,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub isolation_level: i8,
    pub session_id: i32,
    pub session_epoch: i32,
    topic_count: usize,
    topics: &'a [u8],
    forgotten_count: usize,
    forgotten: &'a [u8],
    pub rack_id: &'a str,
    pub cluster_id: Option<&'a str>,
    /// (replica id, replica epoch), v15+.
    pub replica_state: Option<(i32, i64)>,
    v: Version,
}

#[derive(Clone, Copy)]
pub struct FetchTopicView<'a> {
    /// Empty from v13 on (topics are named by id).
    pub name: &'a str,
    /// Nil before v13.
    pub topic_id: Uuid,
    partition_count: usize,
    partitions: &'a [u8],
    v: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPartitionView {
    pub partition: i32,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
    pub partition_max_bytes: i32,
}

/// A forgotten topic: its name or id and the bytes of its partition list.
struct ForgottenView<'a> {
    name: &'a str,
    topic_id: Uuid,
    partition_count: usize,
    partitions: &'a [u8],
}

impl<'a> FetchView<'a> {
    /// Decodes and validates a Fetch body; returns the view and the bytes it took.
    pub(super) fn parse(body: &'a [u8], v: Version) -> Result<(Self, usize), DecodeError> {
        let r = &mut SliceReader::new(body);
        let mut replica_id = -1;
        if v.number <= 14 {
            replica_id = r.i32()?;
        }
        let max_wait_ms = r.i32()?;
        let min_bytes = r.i32()?;
        let max_bytes = r.i32()?;
        let isolation_level = r.i8()?;
        let (mut session_id, mut session_epoch) = (0, -1);
        if v.number >= 7 {
            session_id = r.i32()?;
            session_epoch = r.i32()?;
        }
        let topic_count = r.array_len(v.flexible)?;
        let topics = span(r, topic_count, v, fetch_topic)?;
        let (mut forgotten_count, mut forgotten): (usize, &[u8]) = (0, &[]);
        if v.number >= 7 {
            forgotten_count = r.array_len(v.flexible)?;
            forgotten = span(r, forgotten_count, v, forgotten_topic)?;
        }
        let mut rack_id = "";
        if v.number >= 11 {
            rack_id = r.str(v.flexible)?;
        }
        let (mut cluster_id, mut replica_state) = (None, None);
        if v.flexible {
            r.tagged_fields_with(|tag, field| {
                match tag {
                    FETCH_TAG_CLUSTER_ID => cluster_id = field.nullable_str(true)?,
                    FETCH_TAG_REPLICA_STATE if v.number >= 15 => {
                        let id = field.i32()?;
                        let epoch = field.i64()?;
                        field.tagged_fields()?;
                        replica_state = Some((id, epoch));
                    }
                    _ => {}
                }
                Ok(())
            })?;
        }
        let view = FetchView {
            replica_id,
            max_wait_ms,
            min_bytes,
            max_bytes,
            isolation_level,
            session_id,
            session_epoch,
            topic_count,
            topics,
            forgotten_count,
            forgotten,
            rack_id,
            cluster_id,
            replica_state,
            v,
        };
        Ok((view, body.len() - r.rest().len()))
    }

    pub fn version(&self) -> i16 {
        self.v.number
    }

    pub fn topics(&self) -> Elements<'a, FetchTopicView<'a>> {
        Elements::new(self.topics, self.topic_count, self.v, fetch_topic)
    }

    /// The owned request; `body` is the buffer this view was decoded from.
    pub fn to_request(&self, body: &Bytes) -> FetchRequest {
        let mut req = FetchRequest::default();
        if self.v.number <= 14 {
            req.replica_id = self.replica_id.into();
        }
        req.max_wait_ms = self.max_wait_ms;
        req.min_bytes = self.min_bytes;
        req.max_bytes = self.max_bytes;
        req.isolation_level = self.isolation_level;
        if self.v.number >= 7 {
            req.session_id = self.session_id;
            req.session_epoch = self.session_epoch;
        }
        req.topics = self
            .topics()
            .map(|t| {
                let mut topic = FetchTopic::default();
                if self.v.number < FETCH_TOPIC_ID_VERSION {
                    topic.topic = str_bytes(body, t.name).into();
                } else {
                    topic.topic_id = t.topic_id;
                }
                topic.partitions = t
                    .partitions()
                    .map(|p| {
                        let mut fp = FetchPartition::default();
                        fp.partition = p.partition;
                        if self.v.number >= 9 {
                            fp.current_leader_epoch = p.current_leader_epoch;
                        }
                        fp.fetch_offset = p.fetch_offset;
                        if self.v.number >= 12 {
                            fp.last_fetched_epoch = p.last_fetched_epoch;
                        }
                        if self.v.number >= 5 {
                            fp.log_start_offset = p.log_start_offset;
                        }
                        fp.partition_max_bytes = p.partition_max_bytes;
                        fp
                    })
                    .collect();
                topic
            })
            .collect();
        req.forgotten_topics_data = Elements::new(
            self.forgotten,
            self.forgotten_count,
            self.v,
            forgotten_topic,
        )
        .map(|f| {
            let mut topic = ForgottenTopic::default();
            if self.v.number < FETCH_TOPIC_ID_VERSION {
                topic.topic = str_bytes(body, f.name).into();
            } else {
                topic.topic_id = f.topic_id;
            }
            topic.partitions =
                Elements::new(f.partitions, f.partition_count, self.v, |r, _| r.i32()).collect();
            topic
        })
        .collect();
        if self.v.number >= 11 {
            req.rack_id = str_bytes(body, self.rack_id);
        }
        req.cluster_id = self.cluster_id.map(|c| str_bytes(body, c));
        if let Some((id, epoch)) = self.replica_state {
            let mut state = ReplicaState::default();
            state.replica_id = id.into();
            state.replica_epoch = epoch;
            req.replica_state = state;
        }
        req
    }
}

impl<'a> FetchTopicView<'a> {
    pub fn partitions(&self) -> Elements<'a, FetchPartitionView> {
        Elements::new(
            self.partitions,
            self.partition_count,
            self.v,
            fetch_partition,
        )
    }

    pub fn partition_count(&self) -> usize {
        self.partition_count
    }
}

fn fetch_topic<'a>(r: &mut SliceReader<'a>, v: Version) -> Result<FetchTopicView<'a>, DecodeError> {
    let mut name = "";
    if v.number < FETCH_TOPIC_ID_VERSION {
        name = r.str(v.flexible)?;
    }
    let mut topic_id = Uuid::nil();
    if v.number >= FETCH_TOPIC_ID_VERSION {
        topic_id = r.uuid()?;
    }
    let partition_count = r.array_len(v.flexible)?;
    let partitions = span(r, partition_count, v, fetch_partition)?;
    r.tagged_fields_if(v.flexible)?;
    Ok(FetchTopicView {
        name,
        topic_id,
        partition_count,
        partitions,
        v,
    })
}

fn fetch_partition(r: &mut SliceReader<'_>, v: Version) -> Result<FetchPartitionView, DecodeError> {
    let partition = r.i32()?;
    let mut current_leader_epoch = -1;
    if v.number >= 9 {
        current_leader_epoch = r.i32()?;
    }
    let fetch_offset = r.i64()?;
    let mut last_fetched_epoch = -1;
    if v.number >= 12 {
        last_fetched_epoch = r.i32()?;
    }
    let mut log_start_offset = -1;
    if v.number >= 5 {
        log_start_offset = r.i64()?;
    }
    let partition_max_bytes = r.i32()?;
    r.tagged_fields_if(v.flexible)?;
    Ok(FetchPartitionView {
        partition,
        current_leader_epoch,
        fetch_offset,
        last_fetched_epoch,
        log_start_offset,
        partition_max_bytes,
    })
}

fn forgotten_topic<'a>(
    r: &mut SliceReader<'a>,
    v: Version,
) -> Result<ForgottenView<'a>, DecodeError> {
    let mut name = "";
    if v.number < FETCH_TOPIC_ID_VERSION {
        name = r.str(v.flexible)?;
    }
    let mut topic_id = Uuid::nil();
    if v.number >= FETCH_TOPIC_ID_VERSION {
        topic_id = r.uuid()?;
    }
    let partition_count = r.array_len(v.flexible)?;
    let partitions = span(r, partition_count, v, |r, _| r.i32())?;
    r.tagged_fields_if(v.flexible)?;
    Ok(ForgottenView {
        name,
        topic_id,
        partition_count,
        partitions,
    })
}
