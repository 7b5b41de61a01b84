"""kafka-python (pure Python, its own protocol code) driver of the compatibility matrix.
See common.py."""

import os
import threading
import time

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic

from common import (
    GROUP_PER_PARTITION,
    LARGE,
    RESUME_PER_PARTITION,
    TS_BASE,
    Fail,
    check_same,
    keyed_records,
    main,
    names,
    wait_until,
)

CLIENT = "kafka-python"
VERSION = kafka.__version__
COMMON = {"request_timeout_ms": 15000}


def codecs_available():
    from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

    return {"gzip": has_gzip(), "snappy": has_snappy(), "lz4": has_lz4(), "zstd": has_zstd()}


def produce(bootstrap, topic, records, partition=0, conf=None, timestamps=None):
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **COMMON, **(conf or {}))
    futures = []
    for i, (k, v, h) in enumerate(records):
        kw = {"timestamp_ms": timestamps[i]} if timestamps else {}
        futures.append(p.send(topic, value=v, key=k, headers=h, partition=partition, **kw))
    p.flush(30)
    for f in futures:
        f.get(timeout=10)
    p.close(5)


def consumer(bootstrap, **conf):
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **COMMON, **conf)


def consume_assigned(bootstrap, topic, partition, offset, n, conf=None, timeout_s=20):
    c = consumer(bootstrap, **(conf or {}))
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.seek(tp, offset)
    out = []
    deadline = time.time() + timeout_s
    while len(out) < n and time.time() < deadline:
        for msgs in c.poll(timeout_ms=200).values():
            out.extend(msgs)
    c.close()
    return out


def triples(msgs):
    return [(m.key, m.value, list(m.headers or [])) for m in msgs]


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, **COMMON)


def partitions_of(bootstrap, topic):
    c = consumer(bootstrap)
    try:
        return c.partitions_for_topic(topic)
    finally:
        c.close()


def s_metadata(bootstrap, tag):
    topic, _ = names(tag, "metadata")
    produce(bootstrap, topic, keyed_records(1))
    a = admin(bootstrap)
    topics = a.list_topics()
    cluster = a.describe_cluster()
    a.close()
    if topic not in topics:
        raise Fail(f"{topic} not listed")
    parts = partitions_of(bootstrap, topic)
    if parts != {0}:
        raise Fail(f"partitions {parts}")
    return f"list_topics, describe_cluster: {cluster.get('cluster_id')}, {len(cluster.get('brokers', []))} broker(s)"


def roundtrip(bootstrap, topic, records, pconf=None, cconf=None):
    produce(bootstrap, topic, records, conf=pconf)
    got = consume_assigned(bootstrap, topic, 0, 0, len(records), conf=cconf)
    check_same(records, triples(got))


def s_produce_consume(bootstrap, tag):
    topic, _ = names(tag, "produce_consume")
    roundtrip(bootstrap, topic, keyed_records())
    return "1000 keyed records with headers read back exactly"


def compression(codec):
    def run(bootstrap, tag):
        from common import Unsupported

        if not codecs_available()[codec]:
            raise Unsupported(f"{codec}: the optional codec library is not installed")
        topic, _ = names(tag, f"compression_{codec}")
        roundtrip(bootstrap, topic, keyed_records(300), pconf={"compression_type": codec})
        return f"300 records, compression_type={codec}"

    return run


def group_consumer(bootstrap, group, topic, client_id="compat-member"):
    return consumer(
        bootstrap,
        client_id=client_id,
        group_id=group,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


def s_group_commit(bootstrap, tag):
    # One thread per member, as applications run them: kafka-python's poll() blocks
    # inside a rebalance, so two members polled from one thread can starve each other.
    topic, group = names(tag, "group")
    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, 2, 1)])
    a.close()
    members = [group_consumer(bootstrap, group, topic, f"compat-member-{i}") for i in range(2)]
    got = [[], []]
    produced = threading.Event()
    stop = threading.Event()
    total = 2 * GROUP_PER_PARTITION

    def member(i):
        c = members[i]
        c.subscribe([topic])
        while not stop.is_set():
            for msgs in c.poll(timeout_ms=100).values():
                got[i].extend(msgs)
            if produced.is_set() and sum(map(len, got)) >= total:
                break
        c.commit()

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    # Staggered: the second member joins a group that is already stable, as a scaled-out
    # application does (simultaneous first joins hit a kafka-python 3.0 race; see report).
    threads[0].start()
    wait_until(lambda: members[0].assignment(), 15)
    threads[1].start()
    if not wait_until(lambda: all(c.assignment() for c in members), 30):
        stop.set()
        raise Fail(f"both members never held partitions: {[c.assignment() for c in members]}")
    for p in (0, 1):
        produce(bootstrap, topic, keyed_records(GROUP_PER_PARTITION, prefix=f"p{p}-"), partition=p)
    produced.set()
    if not wait_until(lambda: sum(map(len, got)) >= total, 30):
        stop.set()
    for t in threads:
        t.join(20)
    n = sum(map(len, got))
    if n != total:
        raise Fail(f"consumed {n} records, expected {total}")
    offs = [members[0].committed(TopicPartition(topic, p)) for p in (0, 1)]
    for c in members:
        c.close()
    if offs != [GROUP_PER_PARTITION] * 2:
        raise Fail(f"committed offsets {offs}")
    return f"two members (a thread each), {len(got[0])}+{len(got[1])} records, committed {offs}"


def s_group_resume(bootstrap, tag):
    topic, group = names(tag, "group")
    for p in (0, 1):
        produce(bootstrap, topic, keyed_records(RESUME_PER_PARTITION, prefix=f"r{p}-"), partition=p)
    c = group_consumer(bootstrap, group, topic)
    c.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < 2 * RESUME_PER_PARTITION and time.time() < deadline:
        for msgs in c.poll(timeout_ms=200).values():
            got.extend(msgs)
    end = time.time() + 1
    while time.time() < end:
        for msgs in c.poll(timeout_ms=200).values():
            got.extend(msgs)
    c.close()
    offsets = sorted((m.partition, m.offset) for m in got)
    want = sorted(
        (p, o) for p in (0, 1) for o in range(GROUP_PER_PARTITION, GROUP_PER_PARTITION + RESUME_PER_PARTITION)
    )
    if offsets != want:
        raise Fail(f"after restart consumed {offsets[:6]}... ({len(offsets)}), expected offsets 50..59 of each partition")
    return "fresh member resumed at the committed offsets after a broker restart"


def s_admin(bootstrap, tag):
    topic, _ = names(tag, "admin")
    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, 3, 1)])
    if not wait_until(lambda: partitions_of(bootstrap, topic) == {0, 1, 2}, 10):
        raise Fail(f"created topic shows partitions {partitions_of(bootstrap, topic)}")
    a.create_partitions({topic: NewPartitions(5)})
    if not wait_until(lambda: partitions_of(bootstrap, topic) == set(range(5)), 10):
        raise Fail(f"create_partitions: topic shows {partitions_of(bootstrap, topic)}")
    a.delete_topics([topic])
    if not wait_until(lambda: topic not in a.list_topics(), 10):
        raise Fail("deleted topic still listed")
    a.close()
    return "create (3) -> create_partitions (5) -> delete"


def s_idempotent(bootstrap, tag):
    topic, _ = names(tag, "idempotent")
    roundtrip(bootstrap, topic, keyed_records(), pconf={"enable_idempotence": True, "acks": "all"})
    return "enable_idempotence=True, 1000 records exactly once"


def s_crc(bootstrap, tag):
    topic, _ = names(tag, "crc")
    conf = {"compression_type": "lz4"} if codecs_available()["lz4"] else {}
    roundtrip(bootstrap, topic, keyed_records(300), pconf=conf, cconf={"check_crcs": True})
    return f"check_crcs=True ({conf or 'uncompressed'})"


def s_large(bootstrap, tag):
    topic, _ = names(tag, "large_record")
    value = os.urandom(LARGE)
    produce(bootstrap, topic, [(b"big", value, [("h", b"1")])], conf={"max_request_size": 4 * LARGE})
    got = consume_assigned(bootstrap, topic, 0, 0, 1)
    if not got or got[0].value != value:
        raise Fail(f"1 MiB record not read back ({len(got)} records)")
    return "1 MiB value"


def s_offset_seek(bootstrap, tag):
    topic, _ = names(tag, "offset_seek")
    recs = keyed_records(100)
    produce(bootstrap, topic, recs)
    got = consume_assigned(bootstrap, topic, 0, 42, 58)
    if [m.offset for m in got] != list(range(42, 100)):
        raise Fail(f"from offset 42 got offsets {[m.offset for m in got][:5]}...")
    check_same(recs[42:], triples(got))
    return "seek to offset 42: offsets 42..99"


def s_timestamp(bootstrap, tag):
    topic, _ = names(tag, "timestamp")
    recs = keyed_records(100)
    produce(bootstrap, topic, recs, timestamps=[TS_BASE + i * 1000 for i in range(100)])
    c = consumer(bootstrap)
    tp = TopicPartition(topic, 0)
    found = c.offsets_for_times({tp: TS_BASE + 50_500})[tp]
    c.close()
    if found is None or found.offset != 51:
        raise Fail(f"offsets_for_times(ts of #50 + 500 ms) = {found}, expected offset 51")
    got = consume_assigned(bootstrap, topic, 0, found.offset, 49)
    check_same(recs[51:], triples(got))
    if got[0].timestamp != TS_BASE + 51_000:
        raise Fail(f"timestamp {got[0].timestamp}")
    return "offsets_for_times -> 51, consumed 51..99 with their timestamps"


def s_no_autocreate(bootstrap, tag):
    topic, _ = names(tag, "no_autocreate")
    p = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=4000, **COMMON)
    try:
        p.send(topic, b"v").get(timeout=10)
    except Exception as e:  # noqa: BLE001
        err = f"{type(e).__name__}: {e}"
    else:
        raise Fail("produce to a missing topic succeeded with auto-create off")
    finally:
        p.close(2)
    a = admin(bootstrap)
    if topic in a.list_topics():
        raise Fail("topic was created")
    a.close()
    if "UnknownTopic" not in err and "KafkaTimeoutError" not in err:
        raise Fail(f"unexpected error {err}")
    return err


SCENARIOS = {
    "metadata": s_metadata,
    "produce_consume": s_produce_consume,
    "compression_gzip": compression("gzip"),
    "compression_snappy": compression("snappy"),
    "compression_lz4": compression("lz4"),
    "compression_zstd": compression("zstd"),
    "group_commit": s_group_commit,
    "group_resume": s_group_resume,
    "admin": s_admin,
    "idempotent": s_idempotent,
    "crc": s_crc,
    "large_record": s_large,
    "offset_seek": s_offset_seek,
    "timestamp": s_timestamp,
    "no_autocreate": s_no_autocreate,
}

if __name__ == "__main__":
    main(CLIENT, VERSION, SCENARIOS)
