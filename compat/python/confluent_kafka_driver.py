"""confluent-kafka (librdkafka) driver of the compatibility matrix. See common.py."""

import os
import time

import confluent_kafka
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from common import (
    GROUP_PER_PARTITION,
    LARGE,
    RESUME_PER_PARTITION,
    TS_BASE,
    Fail,
    Unsupported,
    check_same,
    keyed_records,
    main,
    names,
    wait_until,
)

CLIENT = "confluent-kafka"
VERSION = f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"


def produce(bootstrap, topic, records, partition=0, conf=None, timestamps=None):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.timeout.ms": 20000, **(conf or {})})
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    for i, (k, v, h) in enumerate(records):
        kw = {"timestamp": timestamps[i]} if timestamps else {}
        while True:
            try:
                p.produce(topic, value=v, key=k, headers=h, partition=partition, on_delivery=on_delivery, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(30)
    if left or errors:
        raise Fail(f"produce: {left} undelivered, errors: {errors[:3]}")


def consume_assigned(bootstrap, topic, partition, offset, n, conf=None, timeout_s=20):
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, **(conf or {})}
    )
    c.assign([TopicPartition(topic, partition, offset)])
    out = []
    deadline = time.time() + timeout_s
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise Fail(f"consume: {m.error()}")
        out.append(m)
    c.close()
    return out


def triples(msgs):
    return [(m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])]) for m in msgs]


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap, topic, partitions):
    a = admin(bootstrap)  # the client must outlive its futures
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(15)


def s_metadata(bootstrap, tag):
    topic, _ = names(tag, "metadata")
    produce(bootstrap, topic, keyed_records(1))
    md = admin(bootstrap).list_topics(timeout=10)
    if topic not in md.topics:
        raise Fail(f"{topic} not listed: {sorted(md.topics)[:10]}")
    parts = md.topics[topic].partitions
    if list(parts) != [0] or parts[0].leader not in md.brokers:
        raise Fail(f"partitions {parts}, brokers {md.brokers}")
    return f"{len(md.brokers)} broker(s), cluster {md.cluster_id}, controller {md.controller_id}"


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
        topic, _ = names(tag, f"compression_{codec}")
        roundtrip(bootstrap, topic, keyed_records(300), pconf={"compression.type": codec})
        return f"300 records, compression.type={codec}"

    return run


def group_consumer(bootstrap, group, topic, protocol="classic"):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if protocol == "consumer":
        # KIP-848: the broker decides session and heartbeat timing.
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c = Consumer(conf)
    c.subscribe([topic])
    return c


def kip848_supported():
    # librdkafka 2.12 made group.protocol=consumer generally available.
    if confluent_kafka.libversion()[1] < 0x020C0000:
        raise Unsupported(f"librdkafka {confluent_kafka.libversion()[0]} predates KIP-848 GA (2.12)")


def s_group_commit_consumer(bootstrap, tag):
    kip848_supported()
    return s_group_commit(bootstrap, tag, "consumer")


def s_group_resume_consumer(bootstrap, tag):
    kip848_supported()
    return s_group_resume(bootstrap, tag, "consumer")


def s_group_commit(bootstrap, tag, protocol="classic"):
    topic, group = names(tag, "group")
    create_topic(bootstrap, topic, 2)
    a, b = group_consumer(bootstrap, group, topic, protocol), group_consumer(bootstrap, group, topic, protocol)
    got = {a: [], b: []}

    def poll_both():
        for c in (a, b):
            m = c.poll(0.1)
            if m is not None and not m.error():
                got[c].append(m)

    if not wait_until(lambda: (poll_both() or True) and a.assignment() and b.assignment(), 30, 0):
        raise Fail(f"both members never held partitions: {a.assignment()} / {b.assignment()}")
    for p in (0, 1):
        produce(bootstrap, topic, keyed_records(GROUP_PER_PARTITION, prefix=f"p{p}-"), partition=p)
    total = 2 * GROUP_PER_PARTITION
    wait_until(lambda: (poll_both() or True) and len(got[a]) + len(got[b]) >= total, 30, 0)
    n = len(got[a]) + len(got[b])
    if n != total:
        raise Fail(f"consumed {n} records, expected {total}")
    for c in (a, b):
        c.commit(asynchronous=False)
    committed = a.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    offs = [tp.offset for tp in committed]
    a.close()
    b.close()
    if offs != [GROUP_PER_PARTITION] * 2:
        raise Fail(f"committed offsets {offs}")
    return f"two members, {len(got[a])}+{len(got[b])} records, committed {offs}"


def s_group_resume(bootstrap, tag, protocol="classic"):
    topic, group = names(tag, "group")
    for p in (0, 1):
        produce(bootstrap, topic, keyed_records(RESUME_PER_PARTITION, prefix=f"r{p}-"), partition=p)
    c = group_consumer(bootstrap, group, topic, protocol)
    got = []
    deadline = time.time() + 30
    while len(got) < 2 * RESUME_PER_PARTITION and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m)
    end = time.time() + 1
    while time.time() < end:  # anything beyond what is expected is a failure
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    offsets = sorted((m.partition(), m.offset()) for m in got)
    want = sorted(
        (p, o) for p in (0, 1) for o in range(GROUP_PER_PARTITION, GROUP_PER_PARTITION + RESUME_PER_PARTITION)
    )
    if offsets != want:
        raise Fail(f"after restart consumed {offsets[:6]}... ({len(offsets)}), expected offsets 50..59 of each partition")
    return "fresh member resumed at the committed offsets after a broker restart"


def s_admin(bootstrap, tag):
    topic, _ = names(tag, "admin")
    a = admin(bootstrap)
    for f in a.create_topics([NewTopic(topic, 3, 1)]).values():
        f.result(15)
    if not wait_until(lambda: len(a.list_topics(topic, timeout=5).topics[topic].partitions) == 3, 10):
        raise Fail("created topic does not show 3 partitions")
    for f in a.create_partitions([NewPartitions(topic, 5)]).values():
        f.result(15)
    if not wait_until(lambda: len(a.list_topics(topic, timeout=5).topics[topic].partitions) == 5, 10):
        raise Fail("create_partitions: topic does not show 5 partitions")
    for f in a.delete_topics([topic]).values():
        f.result(15)
    if not wait_until(lambda: topic not in a.list_topics(timeout=5).topics, 10):
        raise Fail("deleted topic still listed")
    return "create (3) -> create_partitions (5) -> delete"


def s_idempotent(bootstrap, tag):
    topic, _ = names(tag, "idempotent")
    roundtrip(bootstrap, topic, keyed_records(), pconf={"enable.idempotence": True, "acks": "all"})
    return "enable.idempotence=true, 1000 records exactly once"


def s_crc(bootstrap, tag):
    topic, _ = names(tag, "crc")
    roundtrip(bootstrap, topic, keyed_records(300), pconf={"compression.type": "lz4"}, cconf={"check.crcs": True})
    return "check.crcs=true, plain and lz4 batches"


def s_large(bootstrap, tag):
    topic, _ = names(tag, "large_record")
    value = os.urandom(LARGE)
    produce(bootstrap, topic, [(b"big", value, [("h", b"1")])], conf={"message.max.bytes": 4 * LARGE})
    got = consume_assigned(bootstrap, topic, 0, 0, 1)
    if not got or got[0].value() != value:
        raise Fail(f"1 MiB record not read back ({len(got)} records)")
    return "1 MiB value"


def s_offset_seek(bootstrap, tag):
    topic, _ = names(tag, "offset_seek")
    recs = keyed_records(100)
    produce(bootstrap, topic, recs)
    got = consume_assigned(bootstrap, topic, 0, 42, 58)
    if [m.offset() for m in got] != list(range(42, 100)):
        raise Fail(f"from offset 42 got offsets {[m.offset() for m in got][:5]}...")
    check_same(recs[42:], triples(got))
    return "assign at offset 42: offsets 42..99"


def s_timestamp(bootstrap, tag):
    topic, _ = names(tag, "timestamp")
    recs = keyed_records(100)
    produce(bootstrap, topic, recs, timestamps=[TS_BASE + i * 1000 for i in range(100)])
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    (tp,) = c.offsets_for_times([TopicPartition(topic, 0, TS_BASE + 50_500)], timeout=10)
    c.close()
    if tp.offset != 51:
        raise Fail(f"offsets_for_times(ts of #50 + 500 ms) = {tp.offset}, expected 51")
    got = consume_assigned(bootstrap, topic, 0, tp.offset, 49)
    check_same(recs[51:], triples(got))
    if got[0].timestamp()[1] != TS_BASE + 51_000:
        raise Fail(f"timestamp {got[0].timestamp()}")
    return "offsets_for_times -> 51, consumed 51..99 with their timestamps"


def s_no_autocreate(bootstrap, tag):
    topic, _ = names(tag, "no_autocreate")
    p = Producer(
        {"bootstrap.servers": bootstrap, "message.timeout.ms": 8000, "topic.metadata.propagation.max.ms": 2000}
    )
    errors = []
    p.produce(topic, b"v", on_delivery=lambda err, _m: errors.append(err))
    p.flush(15)
    if not errors or errors[0] is None:
        raise Fail("produce to a missing topic succeeded with auto-create off")
    err = errors[0]
    a = admin(bootstrap)
    if topic in a.list_topics(timeout=5).topics:
        raise Fail("topic was created")
    if err.code() not in (confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART, confluent_kafka.KafkaError._UNKNOWN_TOPIC):
        raise Fail(f"unexpected error {err}")
    return f"delivery error: {err.str()}"


def end_offset(bootstrap, topic, isolation):
    """ListOffsets(latest) of partition 0 with the isolation level: the LSO for read_committed."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def read_to_end(bootstrap, topic, isolation):
    """Values of partition 0 up to its end as `isolation` sees it (the LSO for read_committed)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "isolation.level": isolation})
    tp = TopicPartition(topic, 0)
    end = end_offset(bootstrap, topic, isolation)
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + 20
    while True:
        pos = c.position([tp])[0].offset
        if pos >= end:
            break
        if time.time() > deadline:
            raise Fail(f"{isolation}: position {pos} never reached the end {end} after {out}")
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise Fail(f"{isolation}: {m.error()}")
        out.append(m.value().decode())
    c.close()
    return out


def s_transactions(bootstrap, tag):
    out, group = names(tag, "transactions")
    inp = out + "-in"
    a = admin(bootstrap)
    for f in a.create_topics([NewTopic(out, 1, 1), NewTopic(inp, 1, 1)]).values():
        f.result(15)
    produce(bootstrap, inp, keyed_records(6, prefix="in"))
    committed = [f"c-{i}" for i in range(10)]
    aborted = [f"a-{i}" for i in range(5)]
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"compat-{tag}-txn",
                  "transaction.timeout.ms": 60000, "message.timeout.ms": 20000})
    p.init_transactions(30)

    def send_all(values, keys=None):
        for i, v in enumerate(values):
            p.produce(out, value=v.encode(), key=(keys[i] if keys else v.encode()), partition=0)
        if p.flush(30):
            raise Fail("transactional produce: not delivered")

    p.begin_transaction()
    send_all(committed)
    p.commit_transaction(30)
    p.begin_transaction()
    send_all(aborted)
    # Open: ListOffsets(latest) is the last stable offset for read_committed, the high
    # watermark for read_uncommitted.
    held_back, end_while_open = (end_offset(bootstrap, out, iso) for iso in ("read_committed", "read_uncommitted"))
    p.abort_transaction(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.subscribe([inp])
    got = []
    deadline = time.time() + 30
    while len(got) < 6 and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m)
    if len(got) != 6:
        raise Fail(f"consume-transform-produce: consumed {len(got)} of 6 input records")
    transformed = ["t-" + m.value().decode() for m in got]
    p.begin_transaction()
    send_all(transformed, keys=[m.key() for m in got])
    p.send_offsets_to_transaction([TopicPartition(inp, 0, got[-1].offset() + 1)], c.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    c.close()
    if (held_back, end_while_open) != (len(committed) + 1, len(committed) + 1 + len(aborted)):
        raise Fail(f"while a transaction was open: read_committed end {held_back} (expected {len(committed) + 1}), "
                   f"high watermark {end_while_open}")
    rc = read_to_end(bootstrap, out, "read_committed")
    if rc != committed + transformed:
        raise Fail(f"read_committed saw {rc}, expected {committed + transformed}")
    ru = read_to_end(bootstrap, out, "read_uncommitted")
    if ru != committed + aborted + transformed:
        raise Fail(f"read_uncommitted saw {ru}, expected {committed + aborted + transformed}")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    (tp,) = c.committed([TopicPartition(inp, 0)], timeout=10)
    c.close()
    if tp.offset != 6:
        raise Fail(f"group offset after the transaction {tp.offset}, expected 6")
    return (f"commit (10), abort (5; while open read_committed ends at {held_back}, high watermark "
            f"{end_while_open}), consume-transform-produce (6, send_offsets_to_transaction with the group's "
            f"metadata): read_committed {len(rc)} records, read_uncommitted {len(ru)}, group offset 6")


SCENARIOS = {
    "metadata": s_metadata,
    "produce_consume": s_produce_consume,
    "compression_gzip": compression("gzip"),
    "compression_snappy": compression("snappy"),
    "compression_lz4": compression("lz4"),
    "compression_zstd": compression("zstd"),
    "group_commit": s_group_commit,
    "group_resume": s_group_resume,
    "group_commit_consumer": s_group_commit_consumer,
    "group_resume_consumer": s_group_resume_consumer,
    "admin": s_admin,
    "idempotent": s_idempotent,
    "crc": s_crc,
    "large_record": s_large,
    "offset_seek": s_offset_seek,
    "timestamp": s_timestamp,
    "no_autocreate": s_no_autocreate,
    "transactions": s_transactions,
}

if __name__ == "__main__":
    main(CLIENT, VERSION, SCENARIOS)
