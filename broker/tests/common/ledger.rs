//! What a durability test needs to prove "every acknowledged record survived": a
//! fallible raw Kafka client (the broker dies under it on purpose), records whose value
//! names the partition and a sequence number, a ledger of what was sent and what was
//! acknowledged at which offset, and a checker that reads a partition back.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ProduceRequest, ResponseHeader};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request};

use super::raw::{self, encode_request, produce_request, record_batch, RawConn, PRODUCE_VERSION};
use super::TestBroker;

/// Socket timeout of the fallible client: a broker that neither answers nor closes
/// within it is a hang, which the tests report as a failure.
pub const CLIENT_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of every record value (the prefix names it, the rest is a checkable filler).
pub const VALUE_BYTES: usize = 96;
/// Largest response frame the fallible client accepts.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A small deterministic RNG (SplitMix64): the tests print the seed so that a failing
/// schedule can be replayed, and need no `rand` dependency for it.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high]`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}

/// A seed from `env` when set (to replay a failure), else from the clock; printed.
pub fn seed_from_env(env: &str) -> u64 {
    let seed = match std::env::var(env) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{env}={text:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("seed {seed} (replay with {env}={seed})");
    seed
}

/// What reading one response gave.
#[derive(Debug)]
pub enum Received<T> {
    Response(T),
    /// The connection ended at a frame boundary (EOF or reset): no answer.
    Closed,
    /// The connection ended inside a response frame: `got` of `expected` bytes.
    Torn {
        got: usize,
        expected: usize,
    },
}

/// A raw Kafka connection that reports a dead broker instead of panicking.
pub struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

impl Client {
    pub fn connect(broker: &TestBroker) -> io::Result<Client> {
        let stream = TcpStream::connect(broker.bootstrap())?;
        stream.set_read_timeout(Some(CLIENT_IO_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            next_correlation_id: 0,
        })
    }

    /// Writes one request; `Err` when the broker is gone.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> io::Result<i32> {
        self.next_correlation_id += 1;
        let correlation_id = self.next_correlation_id;
        let body = encode_request(request, version, correlation_id);
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        Ok(correlation_id)
    }

    /// Reads `buf.len()` bytes; returns how many arrived before the connection ended.
    fn read_full(&mut self, buf: &mut [u8]) -> usize {
        let mut got = 0;
        while got < buf.len() {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_disconnect(&e) => break,
                Err(e) => panic!("reading a response: {e} (a hang is a failure)"),
            }
        }
        got
    }

    /// Reads the next response, which must be the one to `correlation_id`.
    pub fn recv<R: Request>(&mut self, version: i16, correlation_id: i32) -> Received<R::Response> {
        let mut len = [0u8; 4];
        match self.read_full(&mut len) {
            0 => return Received::Closed,
            4 => {}
            got => return Received::Torn { got, expected: 4 },
        }
        let len = i32::from_be_bytes(len);
        assert!(
            (0..=RESPONSE_BYTES_MAX as i32).contains(&len),
            "response frame length {len} out of range"
        );
        let mut body = vec![0u8; len as usize];
        let got = self.read_full(&mut body);
        if got < body.len() {
            return Received::Torn {
                got: 4 + got,
                expected: 4 + body.len(),
            };
        }
        let mut frame = Bytes::from(body);
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .unwrap_or_else(|e| panic!("response header of api {}: {e}", R::KEY));
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        let response = R::Response::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode api {} v{version} response: {e}", R::KEY));
        assert!(frame.is_empty(), "bytes left after api {} response", R::KEY);
        Received::Response(response)
    }
}

/// The value of record `seq` of `partition`: `p<partition>-s<seq>-` then a filler that
/// depends on both, so a torn or mixed-up record cannot pass for a good one.
pub fn record_value(partition: i32, seq: u64) -> Vec<u8> {
    let mut value = format!("p{partition}-s{seq:010}-").into_bytes();
    let mut filler = (seq.wrapping_mul(31) ^ partition as u64) as u8;
    while value.len() < VALUE_BYTES {
        filler = filler.wrapping_mul(13).wrapping_add(7);
        value.push(b'a' + filler % 26);
    }
    value
}

/// The sequence number of a record value of `partition`; fails on anything that is
/// not exactly what [`record_value`] makes (corruption, another partition's record).
pub fn parse_record_value(partition: i32, value: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(value);
    let seq = text
        .strip_prefix(&format!("p{partition}-s"))
        .and_then(|rest| rest.get(..10))
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("partition {partition}: foreign or corrupt record {text:?}"));
    assert_eq!(
        record_value(partition, seq),
        value,
        "partition {partition}: record {seq} is corrupt"
    );
    seq
}

/// One produce request that was answered without error.
#[derive(Clone, Copy, Debug)]
pub struct Acked {
    pub base_offset: i64,
    pub first_seq: u64,
    pub records: u64,
}

/// Everything a test knows about one partition across crashes.
#[derive(Debug, Default)]
pub struct PartitionLedger {
    pub partition: i32,
    /// Sequence numbers below this were sent (acknowledged or not).
    pub next_seq: u64,
    pub acked: Vec<Acked>,
    /// The log as the last verification read it: everything the broker served after
    /// a restart must stay exactly as it was.
    pub verified: Vec<u64>,
}

impl PartitionLedger {
    pub fn new(partition: i32) -> PartitionLedger {
        PartitionLedger {
            partition,
            ..PartitionLedger::default()
        }
    }

    /// Reads the whole partition back and checks it against the ledger: offsets from 0
    /// without a gap; every record one that was sent, uncorrupted, at most once, in
    /// send order; every acknowledged record at the offset it was acknowledged with;
    /// everything an earlier verification saw still there. Returns the log end offset.
    pub fn verify(&mut self, conn: &mut RawConn, topic: &str) -> i64 {
        let p = self.partition;
        let log = read_partition(conn, topic, p);
        let mut seqs = Vec::with_capacity(log.len());
        for (i, (offset, value)) in log.iter().enumerate() {
            assert_eq!(
                *offset, i as i64,
                "partition {p}: gap or reorder in offsets"
            );
            let seq = parse_record_value(p, value);
            assert!(
                seq < self.next_seq,
                "partition {p}: offset {offset} holds record {seq} that was never sent"
            );
            if let Some(&prev) = seqs.last() {
                assert!(
                    seq > prev,
                    "partition {p}: record {seq} at offset {offset} after record {prev} \
                     (duplicate or out of order)"
                );
            }
            seqs.push(seq);
        }
        assert!(
            seqs.len() >= self.verified.len() && seqs[..self.verified.len()] == self.verified[..],
            "partition {p}: records served after an earlier restart changed or vanished \
             (had {}, now {})",
            self.verified.len(),
            seqs.len()
        );
        for a in &self.acked {
            for i in 0..a.records {
                let offset = a.base_offset + i as i64;
                let found = seqs.get(offset as usize).copied();
                assert_eq!(
                    found,
                    Some(a.first_seq + i),
                    "partition {p}: acknowledged record {} should be at offset {offset}",
                    a.first_seq + i
                );
            }
        }
        self.verified = seqs;
        self.verified.len() as i64
    }
}

/// Every record of a partition as (offset, value), read from offset 0 to the high
/// watermark with one Fetch per step.
pub fn read_partition(conn: &mut RawConn, topic: &str, partition: i32) -> Vec<(i64, Vec<u8>)> {
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut offset = 0i64;
    loop {
        let fetched = raw::fetch(conn, topic, partition, offset, 0);
        assert_eq!(
            fetched.error_code,
            raw::NONE,
            "Fetch {topic}-{partition} at {offset}"
        );
        let before = out.len();
        for record in fetched.records {
            if record.offset >= offset {
                let value = record.value.map(|v| v.to_vec()).unwrap_or_default();
                offset = record.offset + 1;
                out.push((record.offset, value));
            }
        }
        if offset >= fetched.high_watermark {
            return out;
        }
        assert!(
            out.len() > before,
            "Fetch {topic}-{partition} at {offset} returned nothing below the high \
             watermark {}",
            fetched.high_watermark
        );
    }
}

/// One v2 batch with records `first_seq..first_seq + records` of `partition`.
pub fn batch_of(partition: i32, first_seq: u64, records: u64) -> Bytes {
    let values: Vec<Vec<u8>> = (first_seq..first_seq + records)
        .map(|seq| record_value(partition, seq))
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    record_batch(&refs, None)
}

/// How a producer loop sends.
#[derive(Clone, Copy, Debug)]
pub struct ProduceLoad {
    /// Produce requests kept in flight on the connection.
    pub pipeline_depth: usize,
    /// Records per request: 1..=this (from the seeded RNG).
    pub records_per_request_max: u64,
    /// Pause after each request written (zero: as fast as the broker answers).
    pub interval: Duration,
}

/// How a producer loop ended.
pub struct ProduceOutcome {
    pub ledger: PartitionLedger,
    /// The connection ended inside a response: (bytes got, bytes of the frame).
    pub torn: Option<(usize, usize)>,
}

/// Produces acks=-1 batches to `ledger.partition` until the broker closes the
/// connection; every answered request goes into the ledger.
pub fn produce_until_closed(
    mut client: Client,
    topic: &str,
    mut ledger: PartitionLedger,
    seed: u64,
    load: ProduceLoad,
) -> ProduceOutcome {
    let p = ledger.partition;
    let mut rng = SplitMix64::new(seed);
    let mut in_flight: VecDeque<(i32, u64, u64)> = VecDeque::new();
    let mut closed = false;
    loop {
        while !closed && in_flight.len() < load.pipeline_depth {
            let records = rng.range(1, load.records_per_request_max);
            let first_seq = ledger.next_seq;
            // Counted as sent before the write: a partly written request may still
            // have reached the broker.
            ledger.next_seq += records;
            let request = produce_request(topic, p, batch_of(p, first_seq, records));
            match client.send(&request, PRODUCE_VERSION) {
                Ok(cid) => in_flight.push_back((cid, first_seq, records)),
                Err(_) => closed = true,
            }
            if !load.interval.is_zero() {
                thread::sleep(load.interval);
            }
        }
        let Some((cid, first_seq, records)) = in_flight.pop_front() else {
            return ProduceOutcome { ledger, torn: None };
        };
        match client.recv::<ProduceRequest>(PRODUCE_VERSION, cid) {
            Received::Response(response) => {
                let r = &response.responses[0].partition_responses[0];
                assert_eq!(r.error_code, raw::NONE, "partition {p}: produce error");
                ledger.acked.push(Acked {
                    base_offset: r.base_offset,
                    first_seq,
                    records,
                });
            }
            Received::Closed => return ProduceOutcome { ledger, torn: None },
            Received::Torn { got, expected } => {
                return ProduceOutcome {
                    ledger,
                    torn: Some((got, expected)),
                }
            }
        }
    }
}
