"""aiokafka (asyncio, its own protocol code) driver of the compatibility matrix.
See common.py."""

import asyncio
import os
import time

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError

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
)

CLIENT = "aiokafka"
VERSION = aiokafka.__version__


def sync(coro_fn):
    """Runs an async scenario from the synchronous harness."""

    def run(bootstrap, tag):
        return asyncio.run(asyncio.wait_for(coro_fn(bootstrap, tag), 90))

    return run


async def produce(bootstrap, topic, records, partition=0, conf=None, timestamps=None):
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, request_timeout_ms=15000, **(conf or {}))
    await p.start()
    try:
        futs = []
        for i, (k, v, h) in enumerate(records):
            kw = {"timestamp_ms": timestamps[i]} if timestamps else {}
            futs.append(await p.send(topic, value=v, key=k, headers=h, partition=partition, **kw))
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def consume_assigned(bootstrap, topic, partition, offset, n, conf=None, timeout_s=20):
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **(conf or {}))
    await c.start()
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.seek(tp, offset)
    out = []
    deadline = time.time() + timeout_s
    try:
        while len(out) < n and time.time() < deadline:
            for msgs in (await c.getmany(timeout_ms=200)).values():
                out.extend(msgs)
    finally:
        await c.stop()
    return out


def triples(msgs):
    return [(m.key, m.value, list(m.headers or [])) for m in msgs]


async def admin(bootstrap):
    a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await a.start()
    return a


async def partitions_of(bootstrap, topic):
    a = await admin(bootstrap)
    try:
        (desc,) = await a.describe_topics([topic])
    finally:
        await a.close()
    if desc.get("error_code"):
        return None
    return {p["partition"] if isinstance(p, dict) else p.partition for p in desc["partitions"]}


async def wait_for(pred, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if await pred():
            return True
        await asyncio.sleep(0.1)
    return await pred()


async def s_metadata(bootstrap, tag):
    topic, _ = names(tag, "metadata")
    await produce(bootstrap, topic, keyed_records(1))
    a = await admin(bootstrap)
    try:
        topics = await a.list_topics()
        cluster = await a.describe_cluster()
    finally:
        await a.close()
    if topic not in topics:
        raise Fail(f"{topic} not listed")
    parts = await partitions_of(bootstrap, topic)
    if parts != {0}:
        raise Fail(f"partitions {parts}")
    return f"list_topics, describe_cluster: {cluster.get('cluster_id')}"


async def roundtrip(bootstrap, topic, records, pconf=None, cconf=None):
    await produce(bootstrap, topic, records, conf=pconf)
    got = await consume_assigned(bootstrap, topic, 0, 0, len(records), conf=cconf)
    check_same(records, triples(got))


async def s_produce_consume(bootstrap, tag):
    topic, _ = names(tag, "produce_consume")
    await roundtrip(bootstrap, topic, keyed_records())
    return "1000 keyed records with headers read back exactly"


def compression(codec):
    async def run(bootstrap, tag):
        topic, _ = names(tag, f"compression_{codec}")
        await roundtrip(bootstrap, topic, keyed_records(300), pconf={"compression_type": codec})
        return f"300 records, compression_type={codec}"

    return run


def group_consumer(bootstrap, group, topic, i):
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=f"compat-member-{i}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


async def s_group_commit(bootstrap, tag):
    topic, group = names(tag, "group")
    a = await admin(bootstrap)
    await a.create_topics([NewTopic(topic, 2, 1)])
    await a.close()
    members = [group_consumer(bootstrap, group, topic, i) for i in range(2)]
    got = [[], []]
    total = 2 * GROUP_PER_PARTITION
    for c in members:
        await c.start()
    produced = False

    async def member(i):
        c = members[i]
        deadline = time.time() + 45
        while time.time() < deadline:
            for msgs in (await c.getmany(timeout_ms=100)).values():
                got[i].extend(msgs)
            if produced and sum(map(len, got)) >= total:
                break
        await c.commit()

    tasks = [asyncio.create_task(member(i)) for i in range(2)]
    try:
        if not await wait_for(lambda: asyncio.sleep(0, all(c.assignment() for c in members)), 30):
            raise Fail(f"both members never held partitions: {[c.assignment() for c in members]}")
        for p in (0, 1):
            await produce(bootstrap, topic, keyed_records(GROUP_PER_PARTITION, prefix=f"p{p}-"), partition=p)
        produced = True
        await asyncio.gather(*tasks)
        n = sum(map(len, got))
        if n != total:
            raise Fail(f"consumed {n} records, expected {total}")
        offs = [await members[0].committed(TopicPartition(topic, p)) for p in (0, 1)]
    finally:
        for t in tasks:
            t.cancel()
        for c in members:
            await c.stop()
    if offs != [GROUP_PER_PARTITION] * 2:
        raise Fail(f"committed offsets {offs}")
    return f"two members, {len(got[0])}+{len(got[1])} records, committed {offs}"


async def s_group_resume(bootstrap, tag):
    topic, group = names(tag, "group")
    for p in (0, 1):
        await produce(bootstrap, topic, keyed_records(RESUME_PER_PARTITION, prefix=f"r{p}-"), partition=p)
    c = group_consumer(bootstrap, group, topic, 9)
    await c.start()
    got = []
    try:
        deadline = time.time() + 30
        while len(got) < 2 * RESUME_PER_PARTITION and time.time() < deadline:
            for msgs in (await c.getmany(timeout_ms=200)).values():
                got.extend(msgs)
        end = time.time() + 1
        while time.time() < end:
            for msgs in (await c.getmany(timeout_ms=200)).values():
                got.extend(msgs)
    finally:
        await c.stop()
    offsets = sorted((m.partition, m.offset) for m in got)
    want = sorted(
        (p, o) for p in (0, 1) for o in range(GROUP_PER_PARTITION, GROUP_PER_PARTITION + RESUME_PER_PARTITION)
    )
    if offsets != want:
        raise Fail(f"after restart consumed {offsets[:6]}... ({len(offsets)}), expected offsets 50..59 of each partition")
    return "fresh member resumed at the committed offsets after a broker restart"


async def s_admin(bootstrap, tag):
    topic, _ = names(tag, "admin")
    a = await admin(bootstrap)
    try:
        await a.create_topics([NewTopic(topic, 3, 1)])

        async def has(n):
            return await partitions_of(bootstrap, topic) == set(range(n))

        if not await wait_for(lambda: has(3), 10):
            raise Fail(f"created topic shows {await partitions_of(bootstrap, topic)}")
        await a.create_partitions({topic: NewPartitions(5)})
        if not await wait_for(lambda: has(5), 10):
            raise Fail(f"create_partitions: topic shows {await partitions_of(bootstrap, topic)}")
        await a.delete_topics([topic])

        async def gone():
            return topic not in await a.list_topics()

        if not await wait_for(gone, 10):
            raise Fail("deleted topic still listed")
    finally:
        await a.close()
    return "create (3) -> create_partitions (5) -> delete"


async def s_idempotent(bootstrap, tag):
    topic, _ = names(tag, "idempotent")
    await roundtrip(bootstrap, topic, keyed_records(), pconf={"enable_idempotence": True, "acks": "all"})
    return "enable_idempotence=True, 1000 records exactly once"


async def s_crc(bootstrap, tag):
    topic, _ = names(tag, "crc")
    await roundtrip(bootstrap, topic, keyed_records(300), pconf={"compression_type": "lz4"}, cconf={"check_crcs": True})
    return "check_crcs=True on lz4 batches"


async def s_large(bootstrap, tag):
    topic, _ = names(tag, "large_record")
    value = os.urandom(LARGE)
    await produce(bootstrap, topic, [(b"big", value, [("h", b"1")])], conf={"max_request_size": 4 * LARGE})
    got = await consume_assigned(bootstrap, topic, 0, 0, 1)
    if not got or got[0].value != value:
        raise Fail(f"1 MiB record not read back ({len(got)} records)")
    return "1 MiB value"


async def s_offset_seek(bootstrap, tag):
    topic, _ = names(tag, "offset_seek")
    recs = keyed_records(100)
    await produce(bootstrap, topic, recs)
    got = await consume_assigned(bootstrap, topic, 0, 42, 58)
    if [m.offset for m in got] != list(range(42, 100)):
        raise Fail(f"from offset 42 got offsets {[m.offset for m in got][:5]}...")
    check_same(recs[42:], triples(got))
    return "seek to offset 42: offsets 42..99"


async def s_timestamp(bootstrap, tag):
    topic, _ = names(tag, "timestamp")
    recs = keyed_records(100)
    await produce(bootstrap, topic, recs, timestamps=[TS_BASE + i * 1000 for i in range(100)])
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    tp = TopicPartition(topic, 0)
    try:
        found = (await c.offsets_for_times({tp: TS_BASE + 50_500}))[tp]
    finally:
        await c.stop()
    if found is None or found.offset != 51:
        raise Fail(f"offsets_for_times(ts of #50 + 500 ms) = {found}, expected offset 51")
    got = await consume_assigned(bootstrap, topic, 0, found.offset, 49)
    check_same(recs[51:], triples(got))
    if got[0].timestamp != TS_BASE + 51_000:
        raise Fail(f"timestamp {got[0].timestamp}")
    return "offsets_for_times -> 51, consumed 51..99 with their timestamps"


async def s_no_autocreate(bootstrap, tag):
    topic, _ = names(tag, "no_autocreate")
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=4000)
    await p.start()
    try:
        await asyncio.wait_for(p.send_and_wait(topic, b"v"), 15)
    except (KafkaError, asyncio.TimeoutError) as e:
        err = f"{type(e).__name__}: {e}"
    else:
        raise Fail("produce to a missing topic succeeded with auto-create off")
    finally:
        await p.stop()
    a = await admin(bootstrap)
    try:
        if topic in await a.list_topics():
            raise Fail("topic was created")
    finally:
        await a.close()
    if "UnknownTopic" not in err and "KafkaTimeoutError" not in err:
        raise Fail(f"unexpected error {err}")
    return err


SCENARIOS = {
    "metadata": sync(s_metadata),
    "produce_consume": sync(s_produce_consume),
    "compression_gzip": sync(compression("gzip")),
    "compression_snappy": sync(compression("snappy")),
    "compression_lz4": sync(compression("lz4")),
    "compression_zstd": sync(compression("zstd")),
    "group_commit": sync(s_group_commit),
    "group_resume": sync(s_group_resume),
    "admin": sync(s_admin),
    "idempotent": sync(s_idempotent),
    "crc": sync(s_crc),
    "large_record": sync(s_large),
    "offset_seek": sync(s_offset_seek),
    "timestamp": sync(s_timestamp),
    "no_autocreate": sync(s_no_autocreate),
}

if __name__ == "__main__":
    main(CLIENT, VERSION, SCENARIOS)
