"""confluent-kafka (librdkafka >= 2.12) with group.protocol=consumer (KIP-848), for
broker/tests/groups_consumer_protocol.rs. Every mode prints one JSON object on stdout
and exits non-zero with a message on stderr when the scenario fails. Bounded: every
wait has a deadline.

Modes:
  split BOOTSTRAP TOPIC GROUP ASSIGNOR
      two members split 4 partitions; a third joins; reports the assignments before and
      after, and whether the first two only lost partitions (never gained or swapped).
  member BOOTSTRAP TOPIC GROUP
      one member that prints {"assigned": [...]} whenever its assignment changes, until
      killed (or 60 s).
  takeover BOOTSTRAP TOPIC GROUP
      starts `member` as a child, waits until both own partitions, SIGKILLs the child
      and reports how long until the survivor owns all 4.
  live BOOTSTRAP TOPIC GROUP
      one member that commits each record synchronously and prints {"record": [p, o]}
      after the commit, until stdin closes (or 90 s): it lives through broker restarts.
  consume BOOTSTRAP TOPIC GROUP COUNT
      consumes COUNT records, commits exactly what it consumed, closes; reports the
      records and the committed offsets.
"""
import json
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, TopicPartition

DEADLINE_S = 30


def consumer(bootstrap, group, client_id, extra=None):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "broker.address.family": "v4",
    }
    conf.update(extra or {})
    return Consumer(conf)


def assigned(c):
    return sorted(tp.partition for tp in c.assignment())


def poll_all(consumers, done, what):
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        for c in consumers:
            msg = c.poll(0.05)
            if msg is not None and msg.error():
                fail(f"consumer error while waiting for {what}: {msg.error()}")
        now = [assigned(c) for c in consumers]
        if done(now):
            return now
    fail(f"timed out waiting for {what}: {[assigned(c) for c in consumers]}")


def split_among_all(assignments, partitions):
    flat = [p for a in assignments for p in a]
    return all(assignments) and sorted(flat) == list(range(partitions))


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def split(bootstrap, topic, group, assignor):
    extra = {"group.remote.assignor": assignor}
    members = [consumer(bootstrap, group, f"split-{i}", extra) for i in range(2)]
    for c in members:
        c.subscribe([topic])
    two = poll_all(members, lambda a: split_among_all(a, 4), "two members to split 4 partitions")
    members.append(consumer(bootstrap, group, "split-2", extra))
    members[2].subscribe([topic])
    three = poll_all(members, lambda a: split_among_all(a, 4), "three members to split 4")
    # A little longer: nothing may move back and forth once split.
    end = time.time() + 1.0
    while time.time() < end:
        for c in members:
            c.poll(0.05)
    settled = [assigned(c) for c in members]
    kept_only = all(set(settled[i]) <= set(two[i]) for i in range(2))
    for c in members:
        c.close()
    print(json.dumps({"two": two, "three": three, "settled": settled, "kept_only": kept_only}))


def member(bootstrap, topic, group):
    c = consumer(bootstrap, group, "takeover-child")
    c.subscribe([topic])
    last = None
    deadline = time.time() + 60
    while time.time() < deadline:
        c.poll(0.05)
        now = assigned(c)
        if now != last:
            print(json.dumps({"assigned": now}), flush=True)
            last = now


def takeover(bootstrap, topic, group):
    child = subprocess.Popen(
        [sys.executable, __file__, "member", bootstrap, topic, group],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        survivor = consumer(bootstrap, group, "takeover-survivor")
        survivor.subscribe([topic])
        os.set_blocking(child.stdout.fileno(), False)
        child_assigned = []
        deadline = time.time() + DEADLINE_S
        while time.time() < deadline:
            survivor.poll(0.05)
            for line in child.stdout:
                child_assigned = json.loads(line)["assigned"]
            if child_assigned and assigned(survivor) and len(child_assigned) + len(assigned(survivor)) == 4:
                break
        else:
            fail(f"never split: child {child_assigned}, survivor {assigned(survivor)}")
        before = assigned(survivor)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed_at = time.time()
        deadline = killed_at + DEADLINE_S
        while time.time() < deadline and assigned(survivor) != [0, 1, 2, 3]:
            survivor.poll(0.05)
        took = time.time() - killed_at
        after = assigned(survivor)
        survivor.close()
        print(json.dumps({"before": before, "child": child_assigned, "after": after, "takeover_s": took}))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def live(bootstrap, topic, group):
    import threading

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    c = consumer(bootstrap, group, "live", {"reconnect.backoff.max.ms": 500})
    c.subscribe([topic])
    deadline = time.time() + 90
    while not stop.is_set() and time.time() < deadline:
        msg = c.poll(0.1)
        if msg is None or msg.error():
            continue
        while True:
            try:
                c.commit(message=msg, asynchronous=False)
                break
            except Exception as e:  # noqa: BLE001 - retried until the broker is back
                print(json.dumps({"commit_error": str(e)}), flush=True)
                time.sleep(0.2)
                if time.time() > deadline:
                    return
        print(json.dumps({"record": [msg.partition(), msg.offset()]}), flush=True)
    c.close()


def consume(bootstrap, topic, group, count):
    c = consumer(bootstrap, group, "resume")
    c.subscribe([topic])
    records = []
    positions = {}
    deadline = time.time() + DEADLINE_S
    while len(records) < count and time.time() < deadline:
        msg = c.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            fail(f"consumer error: {msg.error()}")
        records.append([msg.partition(), msg.offset()])
        positions[msg.partition()] = msg.offset() + 1
    if len(records) < count:
        fail(f"consumed {len(records)} of {count}: {records}")
    offsets = [TopicPartition(topic, p, o) for p, o in sorted(positions.items())]
    c.commit(offsets=offsets, asynchronous=False)
    committed = {
        str(tp.partition): tp.offset
        for tp in c.committed([TopicPartition(topic, p) for p in sorted(positions)], timeout=10)
    }
    c.close()
    print(json.dumps({"records": records, "committed": committed}))


def main():
    mode, bootstrap, topic, group = sys.argv[1:5]
    if mode == "split":
        split(bootstrap, topic, group, sys.argv[5])
    elif mode == "member":
        member(bootstrap, topic, group)
    elif mode == "takeover":
        takeover(bootstrap, topic, group)
    elif mode == "live":
        live(bootstrap, topic, group)
    elif mode == "consume":
        consume(bootstrap, topic, group, int(sys.argv[5]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
