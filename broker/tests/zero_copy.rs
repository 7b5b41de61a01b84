//! Zero-copy fetch (`fetch_zero_copy`) against the real `strikemq` binary: the record
//! bytes go from the segment mapping to the socket in a vectored send, and nothing a
//! client can observe changes.
//!
//! - The raw Fetch response bytes are identical to the copying path's, for the same
//!   log, over a real socket, with many pipelined 1-MiB responses held back by a slow
//!   reader with a small receive buffer (partial sends resume in the middle of a
//!   piece; responses stay in order), under each io backend.
//! - kcat with `check.crcs=true` and an rdkafka consumer read a multi-MiB backlog
//!   exactly through a slow reader, copy and zero-copy, under each io backend.
//! - Retention deleting the segment a response is still being sent from does not
//!   crash the broker, and the client receives every byte it was promised.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::Offset;

use common::raw::{create_topics, encode_request, produce, record_batch, topic_name, RawConn};
use common::rdkafka_util::{
    assert_contiguous, assign, consume_exactly, consumer_config, create_consumer,
};
use common::{kcat_or_skip, unique_topic, wait_timeout, wait_until, TestBroker};

const BACKENDS: [&str; 2] = ["epoll", "io_uring"];
const MIB: usize = 1024 * 1024;
/// Small segments, so the backlog spans several and fetches cross segment ends.
const SEGMENT_BYTES: &str = "segment_bytes=1048576";
/// A receive buffer small enough that the broker's sends stop part-way (with the
/// pipelined megabytes of responses), yet above loopback's 64 KiB MSS: a window below
/// one segment makes Linux trickle one segment per persist timer (~200 ms), which
/// tests the TCP stack, not the broker.
const SLOW_RCVBUF_BYTES: i32 = 128 * 1024;
/// How long a raw read may wait for bytes the broker owes.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

fn zero_copy_arg(on: bool) -> String {
    format!("fetch_zero_copy={on}")
}

fn start(backend: &str, zero_copy: bool, extra: &[&str]) -> TestBroker {
    let backend = format!("io_backend={backend}");
    let zero_copy = zero_copy_arg(zero_copy);
    let mut args = vec![
        "--set",
        &backend,
        "--set",
        &zero_copy,
        "--set",
        SEGMENT_BYTES,
    ];
    args.extend_from_slice(extra);
    TestBroker::start(&args)
}

/// Deterministic bytes that differ per record, so a mix-up shows.
fn value(i: usize, len: usize) -> Vec<u8> {
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The same batches, in the same order, to the same partitions: two brokers that
/// receive this hold byte-identical logs.
fn produce_backlog(broker: &TestBroker, topic: &str, partitions: i32) {
    let mut conn = RawConn::connect(broker);
    create_topics(&mut conn, &[topic], partitions);
    for i in 0..120 {
        // 1 to ~32 KiB per record, 1 to 8 records per batch: ~6 MiB in all.
        let values: Vec<Vec<u8>> = (0..1 + i % 8)
            .map(|j| value(i * 8 + j, 1 + (i * 7919 + j * 104_729) % (32 * 1024)))
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let (code, _) = produce(
            &mut conn,
            topic,
            (i % partitions as usize) as i32,
            record_batch(&refs, None),
        );
        assert_eq!(code, 0, "produce batch {i}");
    }
}

fn partition(index: i32, offset: i64, max_bytes: i32) -> FetchPartition {
    FetchPartition::default()
        .with_partition(index)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(max_bytes)
}

/// Fetches of every shape: whole partitions, mid-log offsets, a tiny budget (one
/// batch), the end of the log, out of range, an unknown partition.
fn fetch_shapes(topic: &str) -> Vec<FetchRequest> {
    let fetch = |max_bytes: i32, parts: Vec<FetchPartition>| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(parts)])
    };
    vec![
        fetch(MIB as i32, vec![partition(0, 0, MIB as i32)]),
        fetch(
            4 * MIB as i32,
            vec![
                partition(0, 0, MIB as i32),
                partition(1, 0, MIB as i32),
                partition(2, 0, MIB as i32),
            ],
        ),
        fetch(
            2 * MIB as i32,
            vec![partition(1, 37, MIB as i32), partition(2, 101, 300_000)],
        ),
        fetch(1, vec![partition(0, 5, 1)]),
        fetch(
            MIB as i32,
            vec![
                partition(2, 1_000_000, MIB as i32),
                partition(9, 0, MIB as i32),
            ],
        ),
        fetch(MIB as i32, vec![partition(0, 150, MIB as i32)]),
    ]
}

/// A connection whose reader is slow: a tiny receive buffer, and reads of a few KiB
/// with pauses.
struct SlowReader {
    stream: TcpStream,
}

impl SlowReader {
    fn connect(broker: &TestBroker) -> SlowReader {
        let stream = TcpStream::connect(broker.bootstrap()).expect("connect");
        let fd = stream.as_raw_fd();
        let size = SLOW_RCVBUF_BYTES;
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUF");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        SlowReader { stream }
    }

    fn send_all(&mut self, frames: &[Vec<u8>]) {
        use std::io::Write;
        for f in frames {
            self.stream.write_all(f).expect("send request");
        }
    }

    /// Reads `n` bytes, at most `chunk` per read, pausing now and then.
    fn read_slowly(&mut self, n: usize, chunk: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let mut at = 0;
        let mut reads = 0u32;
        while at < n {
            let end = (at + chunk).min(n);
            let got = self
                .stream
                .read(&mut out[at..end])
                .expect("read response bytes");
            assert!(got > 0, "broker closed after {at} of {n} bytes");
            at += got;
            reads += 1;
            if reads % 64 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        out
    }

    /// One whole response frame (size prefix included), read slowly.
    fn read_frame_slowly(&mut self, chunk: usize) -> Vec<u8> {
        let mut frame = self.read_slowly(4, 4);
        let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert!((0..=64 * MIB as i32).contains(&size), "frame size {size}");
        frame.extend(self.read_slowly(size as usize, chunk));
        frame
    }
}

/// Every fetch shape at each classic and flexible version (name-addressed: v4-v12),
/// pipelined before any response is read.
fn pipelined_requests(topic: &str) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut correlation_id = 0;
    for version in [4, 7, 11, 12] {
        for req in fetch_shapes(topic) {
            correlation_id += 1;
            let body = encode_request(&req, version, correlation_id);
            let mut frame = (body.len() as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            frames.push(frame);
        }
    }
    frames
}

/// The response frames to `requests`, read through a slow reader.
fn responses_through_a_slow_reader(broker: &TestBroker, requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut reader = SlowReader::connect(broker);
    reader.send_all(requests);
    // Give the broker time to answer everything it can and fill the socket.
    std::thread::sleep(Duration::from_millis(200));
    (0..requests.len())
        .map(|i| reader.read_frame_slowly(1000 + i * 997))
        .collect()
}

#[test]
fn fetch_responses_are_byte_identical_with_and_without_zero_copy_under_a_slow_reader() {
    for backend in BACKENDS {
        let topic = unique_topic("zc-bytes");
        let mut copy = start(backend, false, &[]);
        let mut zero = start(backend, true, &[]);
        produce_backlog(&copy, &topic, 3);
        produce_backlog(&zero, &topic, 3);
        let requests = pipelined_requests(&topic);
        let copied = responses_through_a_slow_reader(&copy, &requests);
        let spliced = responses_through_a_slow_reader(&zero, &requests);
        let mut record_bytes = 0;
        for (i, (c, z)) in copied.iter().zip(&spliced).enumerate() {
            assert!(
                c == z,
                "{backend}: response {i} differs between copy ({} bytes) and zero-copy ({} bytes)",
                c.len(),
                z.len()
            );
            record_bytes += c.len();
        }
        assert!(
            record_bytes > 16 * MIB,
            "{backend}: only {record_bytes} response bytes; the backlog did not load the socket"
        );
        copy.assert_running();
        zero.assert_running();
    }
}

/// Produces `count` lines of about 1 KiB with kcat to partition 0 of `topic`.
fn kcat_lines(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let filler: String =
                std::iter::repeat_n((b'a' + (i % 26) as u8) as char, 1000).collect();
            format!("line-{i:06}-{filler}")
        })
        .collect()
}

fn run_kcat(kcat: &std::path::Path, args: &[&str], stdin: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(kcat)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    let mut stdin_pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin_pipe.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_timeout(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = writer.join();
    let out = out_reader.join().expect("stdout reader");
    let err = err_reader.join().expect("stderr reader");
    match status {
        Some(s) if s.success() => out,
        other => panic!("kcat {args:?} ended with {other:?}\nstderr:\n{err}"),
    }
}

#[test]
fn kcat_with_check_crcs_reads_a_backlog_through_a_small_receive_buffer_copy_and_zero_copy() {
    let Some(kcat) = kcat_or_skip() else {
        return;
    };
    let lines = kcat_lines(8000);
    let mut input = lines.join("\n");
    input.push('\n');
    for backend in BACKENDS {
        for zero_copy in [false, true] {
            let mut broker = start(backend, zero_copy, &[]);
            let bootstrap = broker.bootstrap();
            let topic = unique_topic("zc-kcat");
            let common_args = [
                "-b",
                &bootstrap,
                "-X",
                "broker.address.family=v4",
                "-t",
                &topic,
            ];
            let mut produce_args = common_args.to_vec();
            produce_args.extend(["-P", "-p", "0", "-X", "message.timeout.ms=20000"]);
            run_kcat(&kcat, &produce_args, input.as_bytes());
            let mut consume_args = common_args.to_vec();
            consume_args.extend([
                "-C",
                "-e",
                "-q",
                "-o",
                "beginning",
                "-X",
                "check.crcs=true",
                "-X",
                "socket.receive.buffer.bytes=131072",
                "-X",
                "fetch.max.bytes=4194304",
                "-X",
                "queued.max.messages.kbytes=1024",
            ]);
            let got = run_kcat(&kcat, &consume_args, b"");
            let got: Vec<&str> = got.lines().collect();
            assert_eq!(got.len(), lines.len(), "{backend} zero_copy={zero_copy}");
            assert!(
                got.iter().zip(&lines).all(|(g, w)| g == w),
                "{backend} zero_copy={zero_copy}: records differ from what was produced"
            );
            broker.assert_running();
        }
    }
}

#[test]
fn rdkafka_consumer_reads_a_backlog_exactly_through_a_slow_reader_copy_and_zero_copy() {
    for backend in BACKENDS {
        for zero_copy in [false, true] {
            let mut broker = start(backend, zero_copy, &[]);
            let topic = unique_topic("zc-rdkafka");
            produce_backlog(&broker, &topic, 1);
            // What the backlog holds, read over a raw connection (copying or not,
            // the client must see exactly this).
            let mut conn = RawConn::connect(&broker);
            let mut want = Vec::new();
            loop {
                let f = common::raw::fetch(&mut conn, &topic, 0, want.len() as i64, 0);
                if f.records.is_empty() {
                    break;
                }
                want.extend(f.records.into_iter().map(|r| r.value));
            }
            let mut config = consumer_config(&broker);
            config
                .set("check.crcs", "true")
                .set("socket.receive.buffer.bytes", "131072")
                .set("queued.max.messages.kbytes", "512")
                .set("fetch.max.bytes", "4194304");
            let consumer = create_consumer(&config);
            assign(&consumer, &topic, &[0], Offset::Beginning);
            let got = consume_exactly(
                &consumer,
                want.len(),
                Duration::from_secs(60),
                Duration::from_millis(300),
            );
            assert_contiguous(&got, 0);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.value.as_deref() == w.as_deref(),
                    "{backend} zero_copy={zero_copy}: record {i} differs"
                );
            }
            broker.assert_running();
        }
    }
}

fn segment_files(broker: &TestBroker, topic: &str) -> Vec<std::path::PathBuf> {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn retention_deleting_a_segment_under_a_pending_zero_copy_send_delivers_every_promised_byte() {
    const SEGMENT: usize = 16 * MIB;
    for backend in BACKENDS {
        let segment_bytes = format!("segment_bytes={SEGMENT}");
        let mut broker = TestBroker::start(&[
            "--set",
            &format!("io_backend={backend}"),
            "--set",
            "fetch_zero_copy=true",
            "--set",
            &segment_bytes,
            "--set",
            "retention_check_interval_ms=50",
            // The test batches are stamped 2023: keep them until retention.bytes says.
            "--set",
            "retention_ms=-1",
        ]);
        let topic = unique_topic("zc-retention");
        let mut conn = RawConn::connect(&broker);
        create_topics(&mut conn, &[&topic], 1);
        // A bit more than one segment: the first is sealed, the second active.
        let mut produced = 0;
        let mut i = 0;
        while produced < SEGMENT + MIB {
            let values: Vec<Vec<u8>> = (0..4).map(|j| value(i * 4 + j, 60_000)).collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let (code, _) = produce(&mut conn, &topic, 0, record_batch(&refs, None));
            assert_eq!(code, 0, "produce batch {i}");
            produced += 240_000;
            i += 1;
        }
        assert_eq!(
            segment_files(&broker, &topic).len(),
            2,
            "{backend}: two segments"
        );

        // A fetch of the whole first segment, left unread in a tiny receive buffer:
        // most of its ~16 MiB is still in the broker's output (referencing the mapping).
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(SEGMENT as i32)
            .with_min_bytes(1)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(&topic))
                .with_partitions(vec![partition(0, 0, SEGMENT as i32)])]);
        let body = encode_request(&req, 12, 1);
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut reader = SlowReader::connect(&broker);
        reader.send_all(&[frame]);
        std::thread::sleep(Duration::from_millis(200));

        // Retention now deletes that segment (retention.bytes = 1 keeps only the
        // active one).
        let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.clone()))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("1")))]),
        ]);
        let resp = conn.call(&alter, 1);
        assert_eq!(resp.responses[0].error_code, 0, "{resp:?}");
        wait_until(
            "retention to delete the first segment",
            Duration::from_secs(20),
            || segment_files(&broker, &topic).len() == 1,
        );

        // Every promised byte arrives, and it is the log as produced.
        let started = Instant::now();
        let frame = reader.read_frame_slowly(64 * 1024);
        eprintln!(
            "{backend}: {} bytes read after the deletion in {:?}",
            frame.len(),
            started.elapsed()
        );
        let mut body = Bytes::from(frame).slice(4..);
        let resp = {
            use kafka_protocol::messages::{FetchResponse, ResponseHeader};
            use kafka_protocol::protocol::Decodable;
            let _ = ResponseHeader::decode(&mut body, 1).expect("header");
            FetchResponse::decode(&mut body, 12).expect("fetch response")
        };
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let mut records = p.records.clone().expect("records");
        assert!(
            records.len() > SEGMENT / 2,
            "{backend}: only {} record bytes",
            records.len()
        );
        let batches = RecordBatchDecoder::decode_all(&mut records).expect("CRC-valid batches");
        let mut n = 0;
        for batch in batches {
            for r in batch.records {
                assert_eq!(r.offset, n as i64);
                assert!(
                    r.value.as_deref() == Some(&value(n, 60_000)[..]),
                    "{backend}: record {n} differs"
                );
                n += 1;
            }
        }
        assert!(n > 0);
        broker.assert_running();
        // And the broker goes on serving: the log now starts after the deleted segment.
        let after = common::raw::fetch(&mut conn, &topic, 0, 0, 0);
        assert_eq!(
            after.error_code, 1,
            "{backend}: offset 0 is out of range now"
        );
    }
}
