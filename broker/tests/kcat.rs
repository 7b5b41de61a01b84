//! The real `strikemq` binary driven by Debian's `kcat` (librdkafka 2.x as packaged):
//! the command-line tool developers point at a broker first.
//!
//! Without kcat installed these tests print why and pass, unless `CI` is set: under CI
//! a missing kcat is a failure (`.ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::raw::{create_topics, RawConn};
use common::{kcat_or_skip, unique_topic, wait_timeout, TestBroker};

/// A kcat run that has not finished by then is killed and fails the test.
const KCAT_TIMEOUT: Duration = Duration::from_secs(30);

struct KcatOutput {
    stdout: String,
    stderr: String,
}

/// Runs kcat against `broker` with bounded librdkafka timeouts, feeding `stdin`,
/// killing it after `KCAT_TIMEOUT`, and fails unless it exits 0.
fn kcat(kcat: &Path, broker: &TestBroker, args: &[&str], stdin: &[u8]) -> KcatOutput {
    let bootstrap = broker.bootstrap();
    let mut all_args: Vec<&str> = vec![
        "-b",
        &bootstrap,
        "-m",
        "10",
        "-X",
        "socket.timeout.ms=10000",
        "-X",
        "broker.address.family=v4",
    ];
    all_args.extend_from_slice(args);
    let mut child = Command::new(kcat)
        .args(&all_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");

    let mut child_stdin = child.stdin.take().expect("stdin piped");
    let input = stdin.to_vec();
    let writer = thread::spawn(move || {
        // A kcat that exits early closes the pipe; that shows up in its status.
        let _ = child_stdin.write_all(&input);
    });
    let stdout = drain(child.stdout.take().expect("stdout piped"));
    let stderr = drain(child.stderr.take().expect("stderr piped"));

    let status = wait_timeout(&mut child, KCAT_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = writer.join();
    let output = KcatOutput {
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    match status {
        Some(status) if status.success() => output,
        Some(status) => panic!(
            "kcat {all_args:?} exited with {status}\nstderr:\n{}\nstdout:\n{}",
            output.stderr, output.stdout
        ),
        None => panic!(
            "kcat {all_args:?} did not finish within {KCAT_TIMEOUT:?}\nstderr:\n{}\nstdout:\n{}",
            output.stderr, output.stdout
        ),
    }
}

fn drain<R: Read + Send + 'static>(mut source: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = source.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Produces `lines` (one record per line) to partition 0 of `topic` with kcat.
fn kcat_produce(
    kcat_path: &Path,
    broker: &TestBroker,
    topic: &str,
    extra: &[&str],
    lines: &[String],
) {
    let mut input = lines.join("\n");
    input.push('\n');
    let mut args = vec![
        "-P",
        "-t",
        topic,
        "-p",
        "0",
        "-X",
        "message.timeout.ms=10000",
    ];
    args.extend_from_slice(extra);
    kcat(kcat_path, broker, &args, input.as_bytes());
}

/// Reads all of `topic` from the beginning with kcat, one output line per record.
fn kcat_consume(kcat_path: &Path, broker: &TestBroker, topic: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["-C", "-t", topic, "-e", "-o", "beginning", "-q"];
    args.extend_from_slice(extra);
    let output = kcat(kcat_path, broker, &args, b"");
    output.stdout.lines().map(str::to_string).collect()
}

fn create_topic(broker: &TestBroker, topic: &str, partitions: i32) {
    let mut conn = RawConn::connect(broker);
    create_topics(&mut conn, &[topic], partitions);
}

#[test]
fn kcat_metadata_listing_shows_the_broker_and_a_topic_with_its_partitions() {
    let Some(kcat_path) = kcat_or_skip() else {
        return;
    };
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("kcat-list");
    create_topic(&broker, &topic, 3);

    let output = kcat(&kcat_path, &broker, &["-L", "-t", &topic], b"");
    let listing = output.stdout;
    assert!(
        listing.contains(&format!("at {}", broker.bootstrap())),
        "broker address missing from:\n{listing}"
    );
    assert!(
        listing.contains(&format!("topic \"{topic}\" with 3 partitions:")),
        "topic missing from:\n{listing}"
    );
    for partition in 0..3 {
        assert!(
            listing.contains(&format!("partition {partition}, leader")),
            "partition {partition} missing from:\n{listing}"
        );
    }
}

#[test]
fn kcat_keyed_lines_with_headers_read_back_exactly() {
    let Some(kcat_path) = kcat_or_skip() else {
        return;
    };
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("kcat-keyed");
    create_topic(&broker, &topic, 1);

    let lines: Vec<String> = (0..200)
        .map(|i| format!("key-{i}:value {i} with spaces and: a colon"))
        .collect();
    kcat_produce(
        &kcat_path,
        &broker,
        &topic,
        &["-K:", "-H", "origin=kcat", "-H", "run=42"],
        &lines,
    );

    let got = kcat_consume(&kcat_path, &broker, &topic, &["-f", "%k %s %h\n"]);
    let want: Vec<String> = (0..200)
        .map(|i| format!("key-{i} value {i} with spaces and: a colon origin=kcat,run=42"))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn kcat_consumer_with_check_crcs_reads_everything() {
    let Some(kcat_path) = kcat_or_skip() else {
        return;
    };
    let broker = TestBroker::start(&[]);
    let topic = unique_topic("kcat-crc");
    create_topic(&broker, &topic, 1);

    let lines: Vec<String> = (0..500).map(|i| format!("crc-checked {i}")).collect();
    kcat_produce(&kcat_path, &broker, &topic, &[], &lines);
    let got = kcat_consume(
        &kcat_path,
        &broker,
        &topic,
        &["-X", "check.crcs=true", "-f", "%o %s\n"],
    );
    let want: Vec<String> = (0..500).map(|i| format!("{i} crc-checked {i}")).collect();
    assert_eq!(got, want);
}

/// Produces a few hundred compressible lines with `-z codec` and reads them back.
fn kcat_compression_round_trip(codec: &str) {
    let Some(kcat_path) = kcat_or_skip() else {
        return;
    };
    let broker = TestBroker::start(&[]);
    let topic = unique_topic(&format!("kcat-{codec}"));
    create_topic(&broker, &topic, 1);

    let lines: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "{i} {}",
                format!("{codec} compresses repetition ").repeat(8)
            )
        })
        .collect();
    kcat_produce(
        &kcat_path,
        &broker,
        &topic,
        &["-z", codec, "-X", "linger.ms=20"],
        &lines,
    );
    let got = kcat_consume(&kcat_path, &broker, &topic, &["-f", "%s\n"]);
    assert_eq!(got, lines);
}

#[test]
fn kcat_gzip_round_trip() {
    kcat_compression_round_trip("gzip");
}

#[test]
fn kcat_snappy_round_trip() {
    kcat_compression_round_trip("snappy");
}

#[test]
fn kcat_lz4_round_trip() {
    kcat_compression_round_trip("lz4");
}

#[test]
fn kcat_zstd_round_trip() {
    kcat_compression_round_trip("zstd");
}
