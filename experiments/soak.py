#!/usr/bin/env python3
"""Bounded soak of a release broker: producers at a fixed rate, a consumer group, REST peeks.

`just soak SECONDS` runs it (not part of CI). It starts its own broker on 127.0.0.1 with
a fresh data directory, then, for SECONDS:
- `loadgen e2e` produces 1 KiB records open loop at a fixed rate over a few partitions and
  consumes them itself, verifying exactly once and in order;
- a consumer group of two confluent-kafka members (separate processes) consumes the same
  topic and auto-commits;
- a peeker hits GET /v1/topics/{t}/messages, GET /v1/groups/{id} and GET /metrics about
  once a second;
- a sampler records the broker's RSS (anonymous and file-backed apart), fds, threads,
  CPU time and bytes on disk every 5 s.
At the end the group must reach the end offsets with lag 0; the broker is stopped with
SIGTERM and must exit 0. Everything goes into results/soak/<date>-<host>/ with a PASS/FAIL
verdict whose rules are written into summary.md.

Only the standard library plus confluent_kafka (for the group members) is needed; the
HdrHistogram interval log is decoded here so no extra package is required.
"""

import argparse
import base64
import csv
import json
import os
import platform
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from statistics import median
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOPIC = "soak"
GROUP = "soak-group"
SAMPLE_EVERY_S = 5.0
PEEK_EVERY_S = 1.0
# Warm-up, and the window latency percentiles are taken over: a minute each, or a fifth
# of the run when it is shorter than five minutes (so a smoke run still has windows).
WARMUP_S = 60.0
WINDOW_S = 60.0
# The broker keeps a sparse offset index in memory: one 16-byte entry per
# index_interval_bytes of log. It grows with the data by design, so the leak bound
# allows twice that (Vec doubling) on top of a fixed slack.
INDEX_ENTRY_BYTES = 16
RSS_ANON_SLACK_BYTES = 16 << 20
# "p99.9 stable" means no upward trend: the median p99.9 of the later half of the
# post-warm-up windows may be at most this many times the earlier half's. Medians of
# halves, not the last window against the first, because on a 2-core machine shared
# with other builds a single window's tail is often one 100-300 ms stall (loadgen's send
# lag shows the client late too), which would decide a one-window rule alone.
P999_TREND_MAX = 3.0
FD_GROWTH_MAX = 0
GROUP_CATCH_UP_S = 60.0


# ---------------------------------------------------------------- HdrHistogram log


def _zigzag_leb128(buf, pos):
    """One ZigZag LEB128 i64 as HdrHistogram V2 encodes counts (at most 9 bytes)."""
    result = 0
    shift = 0
    for i in range(9):
        b = buf[pos]
        pos += 1
        if i == 8:
            result |= b << 56
            break
        result |= (b & 0x7F) << shift
        shift += 7
        if b & 0x80 == 0:
            break
    return (result >> 1) ^ -(result & 1), pos


class Hist:
    """Just enough of HdrHistogram to merge decoded intervals and read percentiles."""

    def __init__(self, lowest, sigfigs):
        self.unit_mag = max(0, int(lowest).bit_length() - 1)
        largest_single_unit = 2 * 10**sigfigs
        self.sub_mag = max(0, (largest_single_unit - 1).bit_length())
        self.half_mag = max(0, self.sub_mag - 1)
        self.half_count = 1 << self.half_mag
        self.counts = {}
        self.total = 0

    def value_of(self, index):
        bucket = (index >> self.half_mag) - 1
        sub = (index & (self.half_count - 1)) + self.half_count
        if bucket < 0:
            sub -= self.half_count
            bucket = 0
        return sub << (bucket + self.unit_mag)

    def highest_equivalent(self, index):
        value = self.value_of(index)
        bucket = (index >> self.half_mag) - 1
        sub = (index & (self.half_count - 1)) + self.half_count
        if bucket < 0:
            bucket = 0
            sub -= self.half_count
        shift = bucket + self.unit_mag
        # Sub-buckets of the lowest half share the first bucket's width.
        width = 1 << shift
        return value + width - 1

    def add(self, other):
        for i, c in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + c
        self.total += other.total

    def percentile(self, q):
        if self.total == 0:
            return None
        target = max(1, int(q / 100.0 * self.total + 0.5)) if q < 100 else self.total
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= target:
                return self.highest_equivalent(i)
        return None


def decode_histogram(b64):
    raw = base64.b64decode(b64)
    cookie, length = struct.unpack(">ii", raw[:8])
    if cookie & ~0xF0 != 0x1C849304 & ~0xF0:
        raise ValueError(f"not a compressed V2 histogram: cookie {cookie:#x}")
    data = zlib.decompress(raw[8 : 8 + length])
    (_cookie, payload_len, _norm, sigfigs, lowest, _highest, _ratio) = struct.unpack(
        ">iiiiqqd", data[:40]
    )
    h = Hist(lowest, sigfigs)
    payload = data[40 : 40 + payload_len]
    pos = 0
    index = 0
    while pos < len(payload):
        count, pos = _zigzag_leb128(payload, pos)
        if count < 0:
            index += -count
        else:
            if count:
                h.counts[index] = count
                h.total += count
            index += 1
    return h


def read_interval_log(path):
    """[(start_s, histogram)] from an HdrHistogram interval log (values in ns)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#") or line.startswith('"'):
            continue
        parts = line.split(",")
        if len(parts) < 4 or parts[-1].startswith("Tag="):
            continue
        try:
            start = float(parts[-4])
        except ValueError:
            continue
        out.append((start, decode_histogram(parts[-1])))
    return out


def per_minute(intervals, seconds, window_s):
    """p50/p99/p99.9/max (µs) and count for each whole window of the run."""
    rows = []
    minutes = max(1, int(seconds // window_s))
    for m in range(minutes):
        merged = None
        for start, h in intervals:
            if m * window_s <= start < (m + 1) * window_s:
                if merged is None:
                    merged = Hist.__new__(Hist)
                    merged.__dict__.update(h.__dict__)
                    merged.counts = dict(h.counts)
                else:
                    merged.add(h)
        if merged is None or merged.total == 0:
            rows.append({"minute": m + 1, "count": 0})
            continue
        us = lambda v: None if v is None else round(v / 1000.0, 1)  # noqa: E731
        rows.append(
            {
                "minute": m + 1,
                "count": merged.total,
                "p50_us": us(merged.percentile(50)),
                "p99_us": us(merged.percentile(99)),
                "p99_9_us": us(merged.percentile(99.9)),
                "max_us": us(merged.percentile(100)),
            }
        )
    return rows


# ---------------------------------------------------------------- environment


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment():
    """The same fields experiments/src/results.rs writes into meta.json."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    dirty = sh(
        "git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no",
        "--", ".", ":(exclude)results",
    )
    return {
        "git_sha": sh("git", "-C", str(REPO), "rev-parse", "HEAD"),
        "git_dirty": bool(dirty),
        "rustc": sh("rustc", "--version"),
        "kernel": platform.release(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "host": socket.gethostname(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": Path("/proc/loadavg").read_text().strip(),
    }


def results_dir(base):
    date = time.strftime("%Y-%m-%d", time.gmtime())
    host = socket.gethostname()
    d = base / f"{date}-{host}"
    n = 2
    while d.exists():
        d = base / f"{date}-{host}-{n}"
        n += 1
    d.mkdir(parents=True)
    return d


# ---------------------------------------------------------------- broker probes


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    kib = lambda k: int(fields.get(k, "0 kB").split()[0]) * 1024  # noqa: E731
    return {
        "rss_bytes": kib("VmRSS"),
        "rss_anon_bytes": kib("RssAnon"),
        "rss_file_bytes": kib("RssFile"),
        "threads": int(fields.get("Threads", "0")),
    }


def cpu_seconds(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(rest[11]) + int(rest[12])) / ticks


def segment_count(path):
    return sum(1 for _r, _d, fs in os.walk(path) for f in fs if f.endswith(".log")
               and not f.startswith("__"))


def disk_bytes(path):
    allocated = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                allocated += os.stat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return allocated


def http(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def http_post_json(url, body):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5.0) as r:
        return r.status, json.loads(r.read())


# ---------------------------------------------------------------- group member


def member_main(args):
    """One consumer-group member: consume, auto-commit, record the offsets it saw."""
    from confluent_kafka import Consumer, KafkaException

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": GROUP,
            "client.id": f"soak-member-{args.member}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "session.timeout.ms": 10000,
            "fetch.wait.max.ms": 100,
        }
    )
    assignments = []
    c.subscribe(
        [TOPIC],
        on_assign=lambda _c, ps: assignments.append(
            [time.time(), sorted(p.partition for p in ps)]
        ),
    )
    # Per partition, the consumed offsets as [start, end) runs, so coverage and
    # duplicates can be checked without keeping every offset.
    runs = {}
    consumed = 0
    errors = []
    while not stop.is_set():
        batch = c.consume(num_messages=500, timeout=0.2)
        for m in batch:
            if m.error():
                if len(errors) < 20:
                    errors.append(str(m.error()))
                continue
            consumed += 1
            p, o = m.partition(), m.offset()
            rs = runs.setdefault(p, [])
            if rs and rs[-1][1] == o:
                rs[-1][1] = o + 1
            else:
                rs.append([o, o + 1])
    try:
        c.commit(asynchronous=False)
    except KafkaException as e:
        # Nothing new to commit is reported as an error by librdkafka.
        if "NO_OFFSET" not in str(e):
            errors.append(f"final commit: {e}")
    c.close()
    Path(args.out).write_text(
        json.dumps(
            {
                "member": args.member,
                "consumed": consumed,
                "errors": errors,
                "assignments": assignments,
                "runs": {str(p): r for p, r in runs.items()},
            }
        )
    )


def merge_group_runs(members, end_offsets):
    """Coverage of [0, end) per partition by all members together, and duplicates."""
    out = {}
    for p, end in end_offsets.items():
        rs = sorted(r for m in members for r in m["runs"].get(str(p), []))
        total = sum(b - a for a, b in rs)
        covered = 0
        cur_a = cur_b = None
        for a, b in rs:
            if cur_b is None or a > cur_b:
                if cur_b is not None:
                    covered += cur_b - cur_a
                cur_a, cur_b = a, b
            else:
                cur_b = max(cur_b, b)
        if cur_b is not None:
            covered += cur_b - cur_a
        first = rs[0][0] if rs else None
        out[p] = {
            "end_offset": end,
            "consumed": total,
            "unique": covered,
            "duplicates": total - covered,
            "missing": end - covered if first == 0 or end == 0 else end,
        }
    return out


# ---------------------------------------------------------------- the run


class Sampler(threading.Thread):
    def __init__(self, pid, data_dir, t0, path):
        super().__init__(daemon=True)
        self.pid, self.data_dir, self.t0 = pid, data_dir, t0
        self.rows = []
        self.stop = threading.Event()
        self.f = open(path, "w", newline="")
        self.w = csv.writer(self.f)
        self.w.writerow(
            ["t_s", "rss_bytes", "rss_anon_bytes", "rss_file_bytes", "fds", "maps", "segments",
             "threads", "cpu_s", "disk_bytes", "load1"]
        )

    def probe(self):
        """One sample of the broker, not recorded in the series."""
        st = proc_status(self.pid)
        return {
            "t_s": round(time.monotonic() - self.t0, 1),
            **st,
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
            # Segments are mapped, not held open: a leaked segment shows here, not in fds.
            "maps": len(Path(f"/proc/{self.pid}/maps").read_text().splitlines()),
            "segments": segment_count(self.data_dir),
            "cpu_s": round(cpu_seconds(self.pid), 2),
            "disk_bytes": disk_bytes(self.data_dir),
            "load1": float(Path("/proc/loadavg").read_text().split()[0]),
        }

    def idle_probe(self):
        """The broker with no client: the fewest fds of a few probes, since the admin
        server may still be closing the connection of the runner's last request."""
        probes = []
        for _ in range(3):
            time.sleep(0.5)
            probes.append(self.probe())
        return min(probes, key=lambda p: p["fds"])

    def sample(self):
        row = self.probe()
        self.rows.append(row)
        self.w.writerow([row[k] for k in
                         ["t_s", "rss_bytes", "rss_anon_bytes", "rss_file_bytes", "fds", "maps",
                          "segments", "threads", "cpu_s", "disk_bytes", "load1"]])
        self.f.flush()

    def run(self):
        while not self.stop.is_set():
            try:
                self.sample()
            except (FileNotFoundError, ProcessLookupError):
                return
            self.stop.wait(SAMPLE_EVERY_S)


class Peeker(threading.Thread):
    """REST reads a user's tooling would do while the broker works."""

    def __init__(self, admin, partitions):
        super().__init__(daemon=True)
        self.admin, self.partitions = admin, partitions
        self.stop = threading.Event()
        self.ok = {"messages": 0, "group": 0, "metrics": 0}
        self.errors = []
        self.error_count = 0
        self.slowest_ms = 0.0

    def get(self, kind, path, accept_404=False):
        t = time.monotonic()
        try:
            status, body = http(self.admin + path)
            self.ok[kind] += 1
            return json.loads(body) if kind != "metrics" else body
        except urllib.error.HTTPError as e:
            # The group may not exist until its first commit.
            if accept_404 and e.code == 404:
                self.ok[kind] += 1
                return None
            self.error_count += 1
            if len(self.errors) < 20:
                self.errors.append(f"{path}: HTTP {e.code}")
        except (OSError, ValueError) as e:
            self.error_count += 1
            if len(self.errors) < 20:
                self.errors.append(f"{path}: {e}")
        finally:
            self.slowest_ms = max(self.slowest_ms, (time.monotonic() - t) * 1000)
        return None

    def run(self):
        rng = random.Random(8)
        while not self.stop.is_set():
            p = rng.randrange(self.partitions)
            topic = self.get("messages", f"/v1/topics/{TOPIC}")
            end = 0
            if topic:
                end = topic["partitions"][p]["end_offset"]
            # A random offset: old data (cold pages) as well as the head.
            off = rng.randrange(end) if end else 0
            self.get("messages", f"/v1/topics/{TOPIC}/messages?partition={p}&offset={off}&limit=10")
            self.get("group", f"/v1/groups/{GROUP}", accept_404=True)
            self.get("metrics", "/metrics")
            self.stop.wait(PEEK_EVERY_S)


def group_state(admin):
    try:
        _s, body = http(f"{admin}/v1/groups/{GROUP}")
        return json.loads(body)
    except (urllib.error.HTTPError, OSError, ValueError):
        return None


def group_lag(g, end_offsets):
    """Committed offset and lag per partition, against the end offsets seen after the load."""
    committed = {}
    for o in (g or {}).get("offsets") or []:
        if o.get("topic") == TOPIC:
            committed[o["partition"]] = o.get("committed_offset")
    return {
        p: {"committed": committed.get(p), "end": end,
            "lag": None if committed.get(p) is None else end - committed[p]}
        for p, end in end_offsets.items()
    }


def render_main(args):
    """Rewrites summary.md from summary.json (after a change to the wording only)."""
    d = Path(args.dir)
    (d / "summary.md").write_text(render_md(json.loads((d / "summary.json").read_text())))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    m = sub.add_parser("member")
    m.add_argument("--bootstrap", required=True)
    m.add_argument("--member", type=int, required=True)
    m.add_argument("--out", required=True)
    rr = sub.add_parser("render", help="rewrite DIR/summary.md from DIR/summary.json")
    rr.add_argument("dir")
    r = sub.add_parser("run")
    r.add_argument("--seconds", type=float, default=600)
    r.add_argument("--rate", type=float, default=2000, help="records per second, all producers")
    r.add_argument("--size", type=int, default=1024)
    r.add_argument("--partitions", type=int, default=4)
    r.add_argument("--producers", type=int, default=2)
    r.add_argument("--members", type=int, default=2)
    # Smaller than the 1 GiB default so that every partition rolls segments several times
    # during a 10-minute run: rolling is where mappings and fds could leak.
    r.add_argument("--segment-bytes", type=int, default=64 << 20)
    r.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", str(REPO / "target")))
    r.add_argument("--out", default=str(REPO / "results" / "soak"))
    r.add_argument("--set", action="append", default=[], help="broker --set key=value")
    args = ap.parse_args()
    if args.cmd == "member":
        return member_main(args)
    if args.cmd == "render":
        return render_main(args)
    if args.cmd != "run":
        ap.print_help()
        return 2
    return run(args)


def run(args):
    args.warmup_s = min(WARMUP_S, args.seconds / 5)
    args.window_s = min(WINDOW_S, args.seconds / 5)
    broker_bin = Path(args.target_dir) / "release" / "strikemq"
    loadgen_bin = Path(args.target_dir) / "release" / "loadgen"
    for b in (broker_bin, loadgen_bin):
        if not b.exists():
            sys.exit(f"{b} missing: cargo build --release -p strikemq -p loadgen")
    out = results_dir(Path(args.out))
    env_start = environment()
    data_dir = Path(tempfile.mkdtemp(prefix="strikemq-soak-"))
    print(f"soak: {args.seconds:.0f} s at {args.rate:.0f}/s into {out} (data {data_dir})", flush=True)

    broker_cmd = [str(broker_bin), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                  "--data-dir", str(data_dir), "--set", f"segment_bytes={args.segment_bytes}"]
    for kv in args.set:
        broker_cmd += ["--set", kv]
    berr = open(out / "broker.err", "w")
    broker = subprocess.Popen(broker_cmd, stdout=subprocess.PIPE, stderr=berr, text=True)
    ready = broker.stdout.readline().split()
    if not ready or ready[1] != "ready":
        broker.kill()
        sys.exit(f"broker did not start: {ready}")
    kafka = ready[2].split("=", 1)[1]
    admin = "http://" + ready[3].split("=", 1)[1]
    _s, broker_info = http(f"{admin}/v1/broker")
    broker_info = json.loads(broker_info)
    members = []
    problems = []
    exit_code = None
    loadgen_rc = None
    try:
        http_post_json(f"{admin}/v1/topics", {"name": TOPIC, "partitions": args.partitions})
        # The broker with no client connected, to compare with the same after the run:
        # every connection the run opened must have given its fd back.
        sampler = Sampler(broker.pid, data_dir, time.monotonic(), out / "samples.csv")
        idle_before = sampler.idle_probe()
        for i in range(args.members):
            mout = out / f"member-{i}.json"
            members.append((subprocess.Popen(
                [sys.executable, __file__, "member", "--bootstrap", kafka, "--member", str(i),
                 "--out", str(mout)],
                stdout=open(out / f"member-{i}.log", "w"), stderr=subprocess.STDOUT), mout))
        # The group should be formed before the load starts so that the run measures a
        # steady state rather than the first rebalance.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            g = group_state(admin)
            if g and g.get("state") == "Stable" and len(g.get("members", [])) == args.members:
                break
            time.sleep(0.5)
        else:
            problems.append("group did not become Stable with all members within 30 s")

        t0 = time.monotonic()
        sampler.t0 = t0
        sampler.start()
        peeker = Peeker(admin, args.partitions)
        peeker.start()
        loadgen_cmd = [
            str(loadgen_bin), "e2e", "--bootstrap", kafka, "--topic", TOPIC,
            "--partitions", str(args.partitions), "--producers", str(args.producers),
            "--rate", str(args.rate), "--size", str(args.size),
            "--duration-s", str(args.seconds), "--warmup-s", "0",
            "--json", str(out / "loadgen.json"), "--interval-log", str(out / "loadgen.hlog"),
            "--no-progress",
        ]
        with open(out / "loadgen.txt", "w") as lout:
            lg = subprocess.run(loadgen_cmd, stdout=lout, stderr=subprocess.STDOUT,
                                timeout=args.seconds + 300)
        loadgen_rc = lg.returncode
        t_load_end = time.monotonic() - t0

        # The group must get to the end: every partition's committed offset = end offset.
        _s, body = http(f"{admin}/v1/topics/{TOPIC}")
        end_offsets = {p["partition"]: p["end_offset"] for p in json.loads(body)["partitions"]}
        deadline = time.monotonic() + GROUP_CATCH_UP_S
        lag = group_lag(group_state(admin), end_offsets)
        while time.monotonic() < deadline:
            lag = group_lag(group_state(admin), end_offsets)
            if all(v["lag"] == 0 for v in lag.values()):
                break
            time.sleep(1)
        catch_up_s = round(time.monotonic() - t0 - t_load_end, 1)
        peeker.stop.set()
        peeker.join(10)
        # The series ends with the load; the last sample taken while it ran is "end".
        sampler.stop.set()
        sampler.join(10)
        for p, mout in members:
            p.send_signal(signal.SIGTERM)
        for p, mout in members:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                problems.append("a group member did not stop within 30 s")
        # Let the broker notice the closed connections before counting fds.
        time.sleep(1)
        idle_after = sampler.idle_probe()
        final_group = group_state(admin)
        lag_after_leave = group_lag(final_group, end_offsets)
        _s, metrics = http(f"{admin}/metrics")
        (out / "metrics-end.txt").write_bytes(metrics)
    finally:
        broker.send_signal(signal.SIGTERM)
        t_stop = time.monotonic()
        try:
            exit_code = broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
            exit_code = "killed after 10 s"
        stop_s = round(time.monotonic() - t_stop, 2)
        for p, _ in members:
            if p.poll() is None:
                p.kill()
        data_bytes_final = disk_bytes(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

    for f in out.glob("member-*.log"):
        if f.stat().st_size == 0:
            f.unlink()
    member_stats = []
    for _p, mout in members:
        try:
            member_stats.append(json.loads(Path(mout).read_text()))
        except (OSError, ValueError):
            problems.append(f"{mout.name} missing: the member crashed")
    summarize(args, out, env_start, broker_cmd, broker_info, loadgen_cmd, loadgen_rc,
              sampler.rows, idle_before, idle_after, peeker, end_offsets, lag, lag_after_leave, catch_up_s,
              member_stats, exit_code, stop_s, data_bytes_final, problems)


def at_or_after(rows, t):
    for r in rows:
        if r["t_s"] >= t:
            return r
    return rows[-1]


def slope_per_min(rows, key, t_from):
    pts = [(r["t_s"], r[key]) for r in rows if r["t_s"] >= t_from]
    if len(pts) < 2:
        return 0.0
    n = len(pts)
    mx = sum(t for t, _ in pts) / n
    my = sum(v for _, v in pts) / n
    den = sum((t - mx) ** 2 for t, _ in pts)
    return 0.0 if den == 0 else sum((t - mx) * (v - my) for t, v in pts) / den * 60


def summarize(args, out, env_start, broker_cmd, broker_info, loadgen_cmd, loadgen_rc, rows,
              idle_before, idle_after, peeker, end_offsets, lag, lag_after_leave, catch_up_s, member_stats,
              exit_code, stop_s, data_bytes_final, problems):
    lg = json.loads((out / "loadgen.json").read_text()) if (out / "loadgen.json").exists() else {}
    intervals = read_interval_log(out / "loadgen.hlog") if (out / "loadgen.hlog").exists() else []
    minutes = per_minute(intervals, args.seconds, args.window_s)
    # The whole-run percentile from the decoded log must agree with loadgen's own: a check
    # on the decoder above.
    whole = None
    for _s, h in intervals:
        if whole is None:
            whole = Hist.__new__(Hist)
            whole.__dict__.update(h.__dict__)
            whole.counts = dict(h.counts)
        else:
            whole.add(h)
    decoded_p999_us = round(whole.percentile(99.9) / 1000, 1) if whole and whole.total else None

    warm = at_or_after(rows, args.warmup_s) if rows else {}
    end = rows[-1] if rows else {}
    ver = lg.get("verification", {})
    bytes_after_warm = (end.get("disk_bytes", 0) - warm.get("disk_bytes", 0))
    index_growth = bytes_after_warm / 4096 * INDEX_ENTRY_BYTES  # index_interval_bytes default
    anon_bound = RSS_ANON_SLACK_BYTES + 2 * index_growth
    anon_growth = end.get("rss_anon_bytes", 0) - warm.get("rss_anon_bytes", 0)
    # fds move with the connections in flight (REST peeks, fetches): the steady band is
    # the most seen in the first window after warm-up; a leak climbs out of it.
    band = [r for r in rows if args.warmup_s <= r["t_s"] < args.warmup_s + args.window_s]
    fd_band = max((r["fds"] for r in band), default=warm.get("fds", 0))
    fd_growth = end.get("fds", 0) - fd_band
    thread_growth = end.get("threads", 0) - warm.get("threads", 0)
    full = [m for m in minutes if m.get("count")]
    post = [m["p99_9_us"] for m in full if m["minute"] >= 2]
    half = len(post) // 2
    early, late = post[:half], post[len(post) - half:]
    trend = (median(late) / median(early)) if half and median(early) else None
    first_post = next((m for m in full if m["minute"] >= 2), None)
    last = full[-1] if full else None
    # Reported, not judged: the one-window comparison the trend rule replaces.
    ratio = (last["p99_9_us"] / first_post["p99_9_us"]
             if first_post and last and first_post["p99_9_us"] else None)
    # The machine's load during each window, to read a bad window's tail against it.
    for m in minutes:
        w0 = (m["minute"] - 1) * args.window_s
        loads = [r["load1"] for r in rows if w0 <= r["t_s"] < w0 + args.window_s]
        m["load1_mean"] = round(sum(loads) / len(loads), 2) if loads else None
    group_cov = merge_group_runs(member_stats, end_offsets) if member_stats else {}

    checks = []

    def check(name, ok, detail):
        checks.append({"check": name, "pass": bool(ok), "detail": detail})

    check("loadgen exited 0", loadgen_rc == 0, f"exit code {loadgen_rc}")
    check("nothing lost, exactly once, in order (loadgen verification)",
          ver.get("ok", False) or (ver and all(ver.get(k, 1) == 0 for k in
                                               ("lost", "duplicates", "reordered", "foreign"))),
          {k: ver.get(k) for k in ("expected", "received", "lost", "duplicates", "reordered", "foreign")})
    check("no produce errors or timeouts", lg.get("errors", 1) == 0 and lg.get("timeouts", 1) == 0,
          {"errors": lg.get("errors"), "timeouts": lg.get("timeouts")})
    check("group committed offsets reach the end (lag 0 on every partition)",
          all(v["lag"] == 0 for v in lag.values()) and lag,
          {str(p): v for p, v in lag.items()})
    check("group consumed every offset (union of members covers 0..end)",
          group_cov and all(v["missing"] == 0 for v in group_cov.values()),
          {str(p): v for p, v in group_cov.items()})
    check("RssAnon growth after warm-up within bound",
          rows and anon_growth <= anon_bound,
          {"growth_bytes": anon_growth, "bound_bytes": int(anon_bound)})
    check("open fds do not grow after warm-up (end <= most in the first window after it)",
          rows and fd_growth <= FD_GROWTH_MAX,
          {"warmup": warm.get("fds"), "first_window_max": fd_band, "end": end.get("fds")})
    check("every connection's fd released (idle after <= idle before)",
          idle_after.get("fds", 1 << 30) <= idle_before.get("fds", 0),
          {"before": idle_before.get("fds"), "after": idle_after.get("fds")})
    check("threads do not grow after warm-up", rows and thread_growth <= 0,
          {"warmup": warm.get("threads"), "end": end.get("threads")})
    check(f"p99.9 has no upward trend: median of the later half of post-warm-up windows "
          f"<= {P999_TREND_MAX:g}x the earlier half's",
          trend is not None and trend <= P999_TREND_MAX,
          {"early_median_us": median(early) if early else None,
           "late_median_us": median(late) if late else None,
           "trend": None if trend is None else round(trend, 2),
           "last_over_first_post_warmup": None if ratio is None else round(ratio, 2)})
    check("REST peeks all answered", peeker.error_count == 0,
          {"ok": peeker.ok, "errors": peeker.error_count, "first_errors": peeker.errors[:5],
           "slowest_ms": round(peeker.slowest_ms, 1)})
    check("group members reported no errors", not any(m["errors"] for m in member_stats),
          [m["errors"][:3] for m in member_stats])
    check("broker exited 0 on SIGTERM", exit_code == 0, {"exit": exit_code, "stop_s": stop_s})
    check("runner saw no problems", not problems, problems)
    verdict = "PASS" if all(c["pass"] for c in checks) else "FAIL"

    summary = {
        "verdict": verdict,
        "checks": checks,
        "rules": {
            "warmup_s": args.warmup_s,
            "window_s": args.window_s,
            "rss_anon_slack_bytes": RSS_ANON_SLACK_BYTES,
            "rss_anon_bound": "slack + 2 x (bytes written after warm-up / 4096 x 16 B of sparse index)",
            "fd_growth_max": FD_GROWTH_MAX,
            "p99_9_trend_max": P999_TREND_MAX,
        },
        "workload": {"segment_bytes": args.segment_bytes, "seconds": args.seconds, "rate_per_s": args.rate, "size": args.size,
                     "partitions": args.partitions, "producers": args.producers,
                     "group_members": args.members, "topic": TOPIC, "group": GROUP},
        "environment_start": env_start,
        "environment_end": environment(),
        "broker_command": broker_cmd,
        "loadgen_command": loadgen_cmd,
        "effective_config": broker_info.get("config") or broker_info.get("effective_config"),
        "fallbacks": broker_info.get("fallbacks"),
        "memory": {
            "idle_before": idle_before, "warmup": warm, "end": end, "idle_after": idle_after,
            "rss_slope_bytes_per_min": round(slope_per_min(rows, "rss_bytes", args.warmup_s)),
            "rss_anon_slope_bytes_per_min": round(slope_per_min(rows, "rss_anon_bytes", args.warmup_s)),
            "rss_file_slope_bytes_per_min": round(slope_per_min(rows, "rss_file_bytes", args.warmup_s)),
            "fds_slope_per_min": round(slope_per_min(rows, "fds", args.warmup_s), 3),
            "maps_slope_per_min": round(slope_per_min(rows, "maps", args.warmup_s), 3),
            "expected_index_growth_bytes": int(index_growth),
            "load1_max": max((r["load1"] for r in rows), default=None),
            "load1_mean": round(sum(r["load1"] for r in rows) / len(rows), 2) if rows else None,
        },
        "latency_per_minute": minutes,
        "latency_whole_run_us": lg.get("latency_us"),
        "service_whole_run_us": lg.get("service_us"),
        "send_lag_whole_run_us": lg.get("send_lag_us"),
        "decoded_whole_run_p99_9_us": decoded_p999_us,
        "records": {
            "produced": ver.get("expected"), "verified_received": ver.get("received"),
            "group_consumed": sum(m["consumed"] for m in member_stats),
            "end_offsets": {str(p): e for p, e in end_offsets.items()},
            "achieved_rate_per_s": lg.get("rate_per_s"),
        },
        "group": {"lag_at_end": {str(p): v for p, v in lag.items()},
                  "lag_after_members_left": {str(p): v for p, v in lag_after_leave.items()},
                  "catch_up_s": catch_up_s,
                  "members": [{k: m[k] for k in ("member", "consumed", "errors", "assignments")}
                              for m in member_stats]},
        "rest": {"ok": peeker.ok, "errors": peeker.error_count, "slowest_ms": round(peeker.slowest_ms, 1)},
        "broker_exit": {"code": exit_code, "stop_s": stop_s},
        "data_bytes_at_end": data_bytes_final,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(render_md(summary))
    print((out / "summary.md").read_text())
    return 0 if verdict == "PASS" else 1


def mib(b):
    return "n/a" if b is None else f"{b / 1048576:.1f} MiB"


def render_md(s):
    e, w, mem = s["environment_start"], s["workload"], s["memory"]
    warm, end = mem["warmup"], mem["end"]
    lines = [
        f"# Soak {e['time']}: {s['verdict']}",
        "",
        f"{w['seconds']:.0f} s, {w['rate_per_s']:.0f} records/s of {w['size']} B open loop over "
        f"{w['partitions']} partitions ({w['producers']} producer threads, loadgen e2e with its own "
        f"verifying consumer), a {w['group_members']}-member consumer group (confluent-kafka, "
        f"auto-commit 1 s) and REST peeks every {PEEK_EVERY_S:g} s; samples every "
        f"{SAMPLE_EVERY_S:g} s. Segments of {mib(w['segment_bytes'])} so that partitions roll "
        "during the run.",
        "",
        f"git {e['git_sha'][:12]}{' (dirty)' if e['git_dirty'] else ''} · {e['rustc']} · "
        f"kernel {e['kernel']} · {e['cpu_model']} ({e['cores']} cores) · host {e['host']}",
        f"load average at start {e['load_average']}; at end "
        f"{s['environment_end']['load_average']}; 1-min load during the run: mean "
        f"{mem['load1_mean']}, max {mem['load1_max']} (a machine shared with other builds).",
        f"fallbacks: {s['fallbacks'] or 'none'}",
        "",
        "## Checks",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    for c in s["checks"]:
        detail = json.dumps(c["detail"], separators=(",", ":"))
        if len(detail) > 300:
            detail = detail[:297] + "…"
        lines.append(f"| {c['check']} | {'pass' if c['pass'] else '**FAIL**'} | `{detail}` |")
    lines += [
        "",
        "## Broker resources (warm-up = first sample at or after "
        f"{s['rules']['warmup_s']:.0f} s)",
        "",
        "| | warm-up | end (last sample under load) | slope per minute after warm-up |",
        "|---|---|---|---|",
        f"| RSS | {mib(warm.get('rss_bytes'))} | {mib(end.get('rss_bytes'))} | {mib(mem['rss_slope_bytes_per_min'])} |",
        f"| RssAnon (heap, judged) | {mib(warm.get('rss_anon_bytes'))} | {mib(end.get('rss_anon_bytes'))} | {mib(mem['rss_anon_slope_bytes_per_min'])} |",
        f"| RssFile (mapped segments) | {mib(warm.get('rss_file_bytes'))} | {mib(end.get('rss_file_bytes'))} | {mib(mem['rss_file_slope_bytes_per_min'])} |",
        f"| open fds | {warm.get('fds')} | {end.get('fds')} | {mem['fds_slope_per_min']} |",
        f"| memory maps | {warm.get('maps')} | {end.get('maps')} | {mem['maps_slope_per_min']} |",
        f"| segment files | {warm.get('segments')} | {end.get('segments')} | |",
        f"| threads | {warm.get('threads')} | {end.get('threads')} | |",
        f"| CPU time | {warm.get('cpu_s')} s | {end.get('cpu_s')} s | |",
        f"| bytes on disk | {mib(warm.get('disk_bytes'))} | {mib(end.get('disk_bytes'))} | |",
        "",
        f"Expected in-memory sparse-index growth after warm-up: {mib(mem['expected_index_growth_bytes'])}. "
        f"With no client connected, before the run: {mem['idle_before'].get('fds')} fds, "
        f"{mem['idle_before'].get('threads')} threads, RssAnon {mib(mem['idle_before'].get('rss_anon_bytes'))}; "
        f"after it: {mem['idle_after'].get('fds')} fds, {mem['idle_after'].get('threads')} threads, "
        f"RssAnon {mib(mem['idle_after'].get('rss_anon_bytes'))}.",
        "",
        f"## Produce→consume latency per {s['rules']['window_s']:.0f} s window (µs, from the "
        "intended send; loadgen e2e)",
        "",
        "| window | records | p50 | p99 | p99.9 | max | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in s["latency_per_minute"]:
        if not m.get("count"):
            lines.append(f"| {m['minute']} | 0 | | | | | {m.get('load1_mean')} |")
            continue
        lines.append(f"| {m['minute']} | {m['count']} | {m['p50_us']} | {m['p99_us']} | "
                     f"{m['p99_9_us']} | {m['max_us']} | {m.get('load1_mean')} |")
    lw = s["latency_whole_run_us"] or {}
    r = s["records"]
    lines += [
        "",
        f"Whole run (loadgen): p50 {lw.get('p50')} · p99 {lw.get('p99')} · p99.9 {lw.get('p99_9')} · "
        f"max {lw.get('max')} µs; the same p99.9 from the decoded interval log: "
        f"{s['decoded_whole_run_p99_9_us']} µs. Service time (from the actual send) p99.9 "
        f"{(s['service_whole_run_us'] or {}).get('p99_9')} µs; loadgen's own send lag p99.9 "
        f"{(s['send_lag_whole_run_us'] or {}).get('p99_9')}, max "
        f"{(s['send_lag_whole_run_us'] or {}).get('max')} µs (the client itself was late: "
        "descheduled, or its socket full while the broker was). The broker's own Produce "
        "handling time is in `metrics-end.txt` (`strikemq_request_duration_seconds`).",
        "",
        "## Records",
        "",
        f"produced {r['produced']} (achieved {r['achieved_rate_per_s']}/s), verified by loadgen "
        f"{r['verified_received']}, consumed by the group {r['group_consumed']}; end offsets "
        f"{r['end_offsets']}. Group caught up {s['group']['catch_up_s']} s after the load "
        f"stopped. REST: {s['rest']['ok']}, {s['rest']['errors']} errors, slowest "
        f"{s['rest']['slowest_ms']} ms. Broker stop on SIGTERM: exit {s['broker_exit']['code']} "
        f"in {s['broker_exit']['stop_s']} s.",
        "",
        "## Rules",
        "",
        f"- Warm-up is the first {s['rules']['warmup_s']:.0f} s; resources are compared between the first "
        "sample after it and the last sample.",
        "- Memory leaks are judged on RssAnon (heap and anonymous maps). RssFile is the "
        "page cache of mmap'd segments that were written or read; it grows with the data "
        "by design and the kernel reclaims it, so it is reported, not judged. The bound on "
        f"RssAnon growth is {mib(RSS_ANON_SLACK_BYTES)} plus twice the sparse offset index the "
        "broker keeps in memory by design (16 B per 4 KiB of log written after warm-up; "
        "twice because a Vec doubles).",
        "- Open fds move with the connections in flight (REST peeks, parked fetches), so the "
        "last sample under load must not exceed the most seen in the first window after "
        f"warm-up (+{FD_GROWTH_MAX}); and with every client gone, the broker must hold exactly "
        "as many fds as before the run, or fewer (every connection's fd released). Threads must not grow.",
        "- p99.9 must show no upward trend: split the post-warm-up windows (a window is a "
        "minute in a run of five minutes or more) into an earlier and a later half; the "
        f"later half's median p99.9 may be at most {P999_TREND_MAX:g}× the earlier half's. "
        "Medians of halves rather than last-vs-first window, because on this shared 2-core "
        "machine one window's tail is often a single 100-300 ms stall (loadgen's send lag "
        "shows the client late too) and would decide a one-window rule alone. "
        "The last-over-first ratio is still reported.",
        "- Nothing lost, duplicated, reordered or foreign (loadgen's verification), no produce "
        "errors or timeouts, the group's committed offsets equal the end offsets (lag 0), the "
        "members together consumed every offset, every REST peek answered, the broker exits 0 "
        "on SIGTERM.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main() or 0)
