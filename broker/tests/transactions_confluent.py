"""confluent-kafka (librdkafka) transactions (KIP-98) for
broker/tests/transactions_confluent.rs. Every mode prints JSON on stdout (one object, or
one object per line for `worker`) and exits non-zero with a message on stderr when the
scenario fails. Bounded: every wait has a deadline.

Modes:
  visibility BOOTSTRAP TOPIC TXID
      on a 2-partition topic: commits c1-* (both partitions), aborts a-* (both),
      commits c2-*; reports the values of each kind.
  zombie BOOTSTRAP TOPIC TXID
      a producer opens a transaction; a second producer with the same transactional.id
      initialises; the first one's commit must fail: reports its error (name, fatal);
      the second commits fresh-*.
  timeout BOOTSTRAP TOPIC TXID
      a producer with transaction.timeout.ms=2000 produces late-* and stays silent until
      the partition's end moves past its records (the broker's abort marker); then its
      commit must fail: reports the error and how long the broker took.
  fill BOOTSTRAP TOPIC PARTITIONS N
      N keyed records (key k<i>, value v<i>, partition i % PARTITIONS), idempotent.
  worker BOOTSTRAP IN OUT GROUP TXID BATCH HANG_AFTER
      consume-transform-produce: consumes IN with isolation.level=read_committed in
      group GROUP, and for each batch of up to BATCH records produces (key, b"out-" +
      value) to the same partition of OUT in one transaction together with the
      consumed offsets (send_offsets_to_transaction). Prints {"committed": n,
      "records": k} after each commit. With HANG_AFTER >= 0, after that many commits it
      opens one more transaction (records produced and flushed, offsets sent), prints
      {"open": k} and waits to be killed. Otherwise it exits with {"done": n} once the
      group's committed offsets reach the end of IN.
  read BOOTSTRAP TOPIC PARTITIONS ISOLATION EXPECTED
      reads TOPIC from the beginning with the isolation level until EXPECTED records
      came, then 1.5 s more; reports [[partition, offset, key, value], ...].
"""
import json
import os
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)

DEADLINE_S = 60
# TXN_DEBUG=cgrp,eos (librdkafka debug contexts) to see what a worker does.
DEBUG = {"debug": os.environ["TXN_DEBUG"]} if os.environ.get("TXN_DEBUG") else {}
TXN_CALL_TIMEOUT_S = 30
QUIET_S = 1.5


def fail(message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


def emit(obj):
    print(json.dumps(obj), flush=True)


def txn_producer(bootstrap, txid, timeout_ms=60000):
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "transactional.id": txid,
            "transaction.timeout.ms": timeout_ms,
            # librdkafka: socket.timeout.ms <= transaction.timeout.ms + 100.
            "socket.timeout.ms": min(timeout_ms, 10000),
            "message.timeout.ms": min(timeout_ms, 30000),
        }
    )
    p.init_transactions(TXN_CALL_TIMEOUT_S)
    return p


def produce(p, topic, partition, values, keys=None):
    for i, v in enumerate(values):
        key = keys[i] if keys else None
        p.produce(topic, value=v.encode(), key=key, partition=partition, on_delivery=check_delivery)
    left = p.flush(TXN_CALL_TIMEOUT_S)
    if left:
        fail(f"{left} messages not delivered within {TXN_CALL_TIMEOUT_S} s")


def check_delivery(err, msg):
    if err is not None:
        fail(f"delivery failed: {err}")


def values(prefix, n):
    return [f"{prefix}-{i}" for i in range(n)]


def error_of(exc):
    err = exc.args[0] if exc.args else None
    if err is None or not hasattr(err, "name"):
        return {"name": str(exc), "fatal": False, "abortable": False}
    return {"name": err.name(), "fatal": err.fatal(), "abortable": err.txn_requires_abort(), "text": err.str()}


def visibility(bootstrap, topic, txid):
    p = txn_producer(bootstrap, txid)
    c1 = [values("c1", 5), values("c1b", 2)]
    p.begin_transaction()
    produce(p, topic, 0, c1[0])
    produce(p, topic, 1, c1[1])
    p.commit_transaction(TXN_CALL_TIMEOUT_S)
    aborted = [values("a", 4), values("ab", 3)]
    p.begin_transaction()
    produce(p, topic, 0, aborted[0])
    produce(p, topic, 1, aborted[1])
    p.abort_transaction(TXN_CALL_TIMEOUT_S)
    c2 = values("c2", 3)
    p.begin_transaction()
    produce(p, topic, 0, c2)
    p.commit_transaction(TXN_CALL_TIMEOUT_S)
    emit({"committed": c1[0] + c1[1] + c2, "aborted": aborted[0] + aborted[1]})


def zombie(bootstrap, topic, txid):
    old = txn_producer(bootstrap, txid)
    old.begin_transaction()
    produce(old, topic, 0, values("zombie", 3))
    # The same transactional.id starts again elsewhere: the old producer's open
    # transaction is aborted and its epoch fenced.
    fresh = txn_producer(bootstrap, txid)
    try:
        old.commit_transaction(TXN_CALL_TIMEOUT_S)
        fail("the zombie's commit succeeded")
    except KafkaException as e:
        zombie_error = error_of(e)
    fresh.begin_transaction()
    produce(fresh, topic, 0, values("fresh", 2))
    fresh.commit_transaction(TXN_CALL_TIMEOUT_S)
    emit({"zombie_error": zombie_error, "fresh": values("fresh", 2), "zombie": values("zombie", 3)})


def high_watermark(bootstrap, topic, partition):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-watermarks", "broker.address.family": "v4"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        c.close()


def timeout(bootstrap, topic, txid):
    p = txn_producer(bootstrap, txid, timeout_ms=2000)
    p.begin_transaction()
    late = values("late", 3)
    produce(p, topic, 0, late)
    started = time.time()
    deadline = started + DEADLINE_S
    # The abort marker shows as the partition's end moving past the 3 records.
    while high_watermark(bootstrap, topic, 0) < len(late) + 1:
        if time.time() > deadline:
            fail("the broker never aborted the timed-out transaction")
        time.sleep(0.2)
    aborted_after_s = time.time() - started
    try:
        p.commit_transaction(TXN_CALL_TIMEOUT_S)
        fail("the commit of a timed-out transaction succeeded")
    except KafkaException as e:
        commit_error = error_of(e)
    emit({"late": late, "commit_error": commit_error, "aborted_after_s": aborted_after_s})


def fill(bootstrap, topic, partitions, n):
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % partitions, on_delivery=check_delivery)
        p.poll(0)
    if p.flush(TXN_CALL_TIMEOUT_S):
        fail("fill: not everything delivered")
    emit({"produced": n})


def worker(bootstrap, inp, out, group, txid, batch, hang_after):
    # The producer first: init_transactions fences a predecessor with the same id and
    # aborts its open transaction (with its pending offsets) before this consumer
    # reads the group's committed offsets.
    producer = txn_producer(bootstrap, txid)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": group,
            "client.id": txid,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # A killed predecessor leaves the group after its session timeout.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            **DEBUG,
        }
    )
    consumer.subscribe([inp])
    meta = consumer.list_topics(inp, timeout=10).topics[inp]
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(inp, p), timeout=10)[1]
        for p in meta.partitions
    }
    commits = 0
    deadline = time.time() + DEADLINE_S * 2
    while time.time() < deadline:
        msgs = consumer.consume(batch, timeout=0.5)
        for m in msgs:
            if m.error():
                fail(f"consumer error: {m.error()}")
        if not msgs:
            # Only once this member owns every partition: an OffsetFetch sent while
            # its JoinGroup waits for a dead predecessor waits behind it (one request
            # at a time per connection, in Kafka too).
            if len(consumer.assignment()) < len(ends):
                continue
            committed = consumer.committed([TopicPartition(inp, p) for p in ends], timeout=10)
            if all(tp.offset == ends[tp.partition] for tp in committed):
                consumer.close()
                emit({"done": commits})
                return
            continue
        next_offsets = {}
        producer.begin_transaction()
        for m in msgs:
            producer.produce(
                out, key=m.key(), value=b"out-" + m.value(), partition=m.partition(), on_delivery=check_delivery
            )
            next_offsets[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(inp, p, o) for p, o in sorted(next_offsets.items())]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TXN_CALL_TIMEOUT_S)
        if 0 <= hang_after <= commits:
            if producer.flush(TXN_CALL_TIMEOUT_S):
                fail("open transaction: records not delivered")
            emit({"open": len(msgs)})
            time.sleep(DEADLINE_S * 2)
            fail("the open worker was never killed")
        producer.commit_transaction(TXN_CALL_TIMEOUT_S)
        commits += 1
        emit({"committed": commits, "records": len(msgs)})
    fail(f"worker: not done within {DEADLINE_S * 2} s after {commits} commits")


def read(bootstrap, topic, partitions, isolation, expected):
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": "txn-reader",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    records = []
    deadline = time.time() + DEADLINE_S
    quiet_end = None
    while time.time() < deadline:
        if len(records) >= expected and quiet_end is None:
            quiet_end = time.time() + QUIET_S
        if quiet_end is not None and time.time() >= quiet_end:
            break
        m = c.poll(0.1)
        if m is None:
            continue
        if m.error():
            fail(f"consumer error: {m.error()}")
        key = m.key().decode() if m.key() is not None else None
        records.append([m.partition(), m.offset(), key, m.value().decode()])
    c.close()
    emit(records)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "visibility":
        visibility(*args)
    elif mode == "zombie":
        zombie(*args)
    elif mode == "timeout":
        timeout(*args)
    elif mode == "fill":
        fill(args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "worker":
        worker(*args[:5], int(args[5]), int(args[6]))
    elif mode == "read":
        read(args[0], args[1], int(args[2]), args[3], int(args[4]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
