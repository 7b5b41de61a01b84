#!/usr/bin/env python3
"""Rebalance time, classic vs KIP-848 consumer protocol (issue 19).

`just experiment-rebalance` runs it (not part of CI). It starts its own broker on
127.0.0.1 (release build unless --binary) with a fresh data directory and a producer
that writes a record to every partition of a 6-partition topic every 10 ms. Then, per
protocol and per run, in a fresh group:

1. two members (separate processes, confluent-kafka) subscribe and settle: each owns
   partitions and receives records;
2. a third member starts (t_join, taken by that process just before `subscribe`);
3. the run ends when every member's assignment has not changed for 3 s and the three
   own all 6 partitions (60 s at most: then the run is marked `timeout`).

Rebalance time = max over the three members of (the first record the member receives
at or after both t_join and its last assignment change) − t_join: the time until every
member fetches its final assignment. A member whose partitions did not change (the
consumer protocol's sticky assignment) fetches on, so its share is the fetch interval.

Protocols: `classic-eager` (range: every member stops during the rebalance),
`classic-cooperative` (cooperative-sticky: incremental on the client side) and
`consumer` (KIP-848, the broker's `uniform` assignor). Heartbeat settings: classic
session 6 s / heartbeat 500 ms; consumer: the broker's
group_consumer_heartbeat_interval_ms (set to 500 here too, so both sides get the same
chance to notice a change). The initial rebalance delay is 0 (it only delays the first
join of an empty group anyway).

Writes results/rebalance/<date>-<host>/runs.csv, summary.md and meta.json. Needs
confluent-kafka >= 2.12 (librdkafka with group.protocol=consumer).
"""

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 6
PRODUCE_EVERY_S = 0.010
FETCH_EVENT_EVERY_S = 0.005
SETTLED_FOR_S = 3.0
RUN_TIMEOUT_S = 60.0
PROTOCOLS = ["classic-eager", "classic-cooperative", "consumer"]


def member_conf(bootstrap, group, protocol, name):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 10,
        "broker.address.family": "v4",
    }
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["session.timeout.ms"] = 6000
        conf["heartbeat.interval.ms"] = 500
        conf["partition.assignment.strategy"] = (
            "cooperative-sticky" if protocol == "classic-cooperative" else "range"
        )
    return conf


def member_main(bootstrap, topic, group, protocol, name):
    """A member process: JSON lines on stdout until stdin closes."""
    from confluent_kafka import Consumer

    c = Consumer(member_conf(bootstrap, group, protocol, name))
    out = sys.stdout
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(json.dumps({"ev": "start", "t": time.time()}), file=out, flush=True)
    c.subscribe([topic])
    last_assigned, last_fetch = None, 0.0
    deadline = time.time() + 300
    while not stop.is_set() and time.time() < deadline:
        msg = c.poll(0.005)
        now = time.time()
        assigned = sorted(tp.partition for tp in c.assignment())
        if assigned != last_assigned:
            print(json.dumps({"ev": "assigned", "t": now, "p": assigned}), file=out, flush=True)
            last_assigned = assigned
            last_fetch = 0.0
        if msg is not None and not msg.error() and now - last_fetch >= FETCH_EVENT_EVERY_S:
            print(json.dumps({"ev": "fetch", "t": now, "p": msg.partition()}), file=out, flush=True)
            last_fetch = now
    c.close()


class Member:
    def __init__(self, bootstrap, topic, group, protocol, name):
        self.events = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "member", bootstrap, topic, group, protocol, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.lock:
                self.events.append(ev)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def assigned(self):
        a = [e for e in self.snapshot() if e["ev"] == "assigned"]
        return (a[-1]["p"], a[-1]["t"]) if a else ([], 0.0)

    def fetching_since(self, t):
        return any(e["ev"] == "fetch" and e["t"] >= t for e in self.snapshot())

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def wait_settled(members, since, timeout_s):
    """Until all own every partition between them, unchanged for SETTLED_FOR_S."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        now = time.time()
        views = [m.assigned() for m in members]
        owned = sorted(p for a, _ in views for p in a)
        stable = all(now - t >= SETTLED_FOR_S for _, t in views)
        if owned == list(range(PARTITIONS)) and all(a for a, _ in views) and stable:
            if all(m.fetching_since(max(since, t)) for m, (_, t) in zip(members, views)):
                return True
        time.sleep(0.05)
    return False


def one_run(bootstrap, topic, protocol, index):
    group = f"rebalance-{protocol}-{index}-{os.getpid()}"
    first = [Member(bootstrap, topic, group, protocol, f"m{i}") for i in range(2)]
    try:
        if not wait_settled(first, 0.0, RUN_TIMEOUT_S):
            return {"protocol": protocol, "run": index, "result": "timeout (two members never settled)"}
        third = Member(bootstrap, topic, group, protocol, "m2")
        members = first + [third]
        deadline = time.time() + 10
        t_join = None
        while t_join is None and time.time() < deadline:
            starts = [e["t"] for e in third.snapshot() if e["ev"] == "start"]
            t_join = starts[0] if starts else None
            time.sleep(0.01)
        if t_join is None:
            return {"protocol": protocol, "run": index, "result": "third member never started"}
        settled = wait_settled(members, t_join, RUN_TIMEOUT_S)
        per_member = []
        moved = 0
        for m in members:
            events = m.snapshot()
            final, changed_at = m.assigned()
            before = [e for e in events if e["ev"] == "assigned" and e["t"] < t_join]
            if before and before[-1]["p"] != final:
                moved += len(set(before[-1]["p"]) - set(final))
            from_t = max(t_join, changed_at)
            fetches = [e["t"] for e in events if e["ev"] == "fetch" and e["t"] >= from_t]
            per_member.append(fetches[0] - t_join if fetches else None)
        ok = settled and all(x is not None for x in per_member)
        return {
            "protocol": protocol,
            "run": index,
            "result": "ok" if ok else "timeout",
            "rebalance_ms": round(max(per_member) * 1000, 1) if ok else "",
            "member_ms": ";".join("" if x is None else f"{x * 1000:.1f}" for x in per_member),
            "partitions_taken_from_old_members": moved,
            "final": ";".join(",".join(map(str, m.assigned()[0])) for m in members),
        }
    finally:
        for m in first + ([third] if "third" in locals() else []):
            m.stop()


def start_broker(binary, data_dir):
    args = [
        binary,
        "--listen", "127.0.0.1:0",
        "--admin-listen", "127.0.0.1:0",
        "--data-dir", str(data_dir),
        "--set", "group_initial_rebalance_delay_ms=0",
        "--set", "group_consumer_heartbeat_interval_ms=500",
        "--set", "group_consumer_session_timeout_ms=6000",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    for line in proc.stdout:
        if "ready" in line and "kafka=" in line:
            addr = line.split("kafka=")[1].split()[0]
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, addr
        if time.time() > deadline:
            break
    proc.kill()
    sys.exit("the broker did not start")


def producer_loop(bootstrap, topic, stop):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "broker.address.family": "v4"})
    while not stop.is_set():
        for part in range(PARTITIONS):
            p.produce(topic, value=b"x", partition=part)
        p.poll(0)
        time.sleep(PRODUCE_EVERY_S)
    p.flush(10)


def summarize(rows):
    lines = ["| protocol | runs ok | median ms | p90 ms | max ms | partitions taken from old members (median) |",
             "|---|---|---|---|---|---|"]
    for proto in PROTOCOLS:
        ok = sorted(r["rebalance_ms"] for r in rows if r["protocol"] == proto and r["result"] == "ok")
        n = len([r for r in rows if r["protocol"] == proto])
        moved = [r["partitions_taken_from_old_members"] for r in rows if r["protocol"] == proto and r["result"] == "ok"]
        if ok:
            p90 = ok[min(len(ok) - 1, int(round(0.9 * (len(ok) - 1))))]
            lines.append(f"| {proto} | {len(ok)}/{n} | {median(ok):.0f} | {p90:.0f} | {ok[-1]:.0f} | {median(moved):.0f} |")
        else:
            lines.append(f"| {proto} | 0/{n} | | | | |")
    return "\n".join(lines)


def run(args):
    binary = args.binary or str(REPO / "target" / "release" / "strikemq")
    if not args.binary:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "strikemq"], cwd=REPO, check=True)
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    if confluent_kafka.libversion()[1] < 0x020C0000:
        sys.exit(f"librdkafka {confluent_kafka.libversion()[0]} has no group.protocol=consumer (need 2.12+)")
    data_dir = Path(tempfile.mkdtemp(prefix="strikemq-rebalance-"))
    broker, bootstrap = start_broker(binary, data_dir)
    stop = threading.Event()
    rows = []
    try:
        topic = "rebalance"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
            f.result(10)
        threading.Thread(target=producer_loop, args=(bootstrap, topic, stop), daemon=True).start()
        protocols = [p for p in args.protocols.split(",") if p]
        for i in range(args.runs):
            # Interleaved, so that a slow moment of the machine hits every protocol.
            for proto in protocols:
                row = one_run(bootstrap, topic, proto, i)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        stop.set()
        broker.terminate()
        try:
            broker.wait(15)
        except subprocess.TimeoutExpired:
            broker.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    out = REPO / "results" / "rebalance" / f"{time.strftime('%Y-%m-%d')}-{platform.node()}"
    out.mkdir(parents=True, exist_ok=True)
    fields = ["protocol", "run", "result", "rebalance_ms", "member_ms", "partitions_taken_from_old_members", "final"]
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    table = summarize(rows)
    (out / "summary.md").write_text(
        "# Rebalance time: a third member joins two (6 partitions)\n\n"
        "Time from the third member's `subscribe` until every member fetches its final "
        "assignment (experiments/rebalance.py explains the measure).\n\n" + table + "\n"
    )
    meta = {
        "binary": binary,
        "git": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "runs": args.runs,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "broker_settings": {
            "group_initial_rebalance_delay_ms": 0,
            "group_consumer_heartbeat_interval_ms": 500,
            "group_consumer_session_timeout_ms": 6000,
        },
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(table)
    print(f"written to {out}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        member_main(*sys.argv[2:7])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--runs", type=int, default=10)
    r.add_argument("--protocols", default=",".join(PROTOCOLS))
    r.add_argument("--binary", help="a strikemq binary (default: build and use the release one)")
    args = ap.parse_args()
    run(args)


if __name__ == "__main__":
    main()
