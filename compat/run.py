#!/usr/bin/env python3
"""Client compatibility matrix: every client, every scenario, against strikemq and Apache Kafka.

`--broker strikemq`, `--broker kafka` or both (the default, one after the other): for each
broker and client the runner starts a fresh broker (its own data dir, free ports), runs
the client's driver once per scenario with a per-cell timeout (a hang fails that cell,
not the run), restarts the broker on the same port and data dir before `group_resume` (and `group_resume_consumer`),
and points `no_autocreate` at a second broker started with auto_create_topics=false.
Each driver prints one JSON line per scenario:
  {"client","version","scenario","result":"pass|fail|unsupported","detail"}
The lines are echoed as they come; each broker's results are saved to
compat/results/BROKER.json and docs/compat.md shows both brokers side by side.
Apache Kafka 4.4 is started by tools/kafka/kafka.py (KRaft, one combined node, the
settings of a local dev Kafka: see KAFKA_SET below).
Exit status: 1 if any cell failed that compat/known_failures.txt does not list for that
broker, or (when both brokers ran) if a cell's result differs between the two brokers and
compat/known_differences.txt does not explain it; 0 otherwise.

Usage: compat/run.py [--broker strikemq,kafka] [--clients a,b] [--scenarios x,y]
                     [--timeout S] [--out FILE] [--no-build] [--no-report]
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPAT = os.path.join(ROOT, "compat")
sys.path.insert(0, os.path.join(COMPAT, "python"))
from common import SCENARIOS  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools", "kafka"))
import kafka as apache_kafka  # noqa: E402

BROKERS = ["strikemq", "kafka"]
# Beyond tools/kafka/kafka.py's dev settings (group.initial.rebalance.delay.ms=0, ...):
# the matrix sends a 1 MiB record; Kafka's default message.max.bytes (1048588) is 12 bytes
# of batch overhead short of that, ours is 8 MiB: a local dev Kafka that takes 1 MiB
# records raises it, as we do here.
KAFKA_SET = ["message.max.bytes=8388608"]

SCENARIO_DOC = {
    "metadata": "metadata / topic listing",
    "produce_consume": "1,000 keyed records with headers, read back exactly",
    "compression_gzip": "gzip",
    "compression_snappy": "snappy",
    "compression_lz4": "lz4",
    "compression_zstd": "zstd",
    "group_commit": "consumer group: 2 members, commit",
    "group_resume": "... resumed after a broker restart",
    "group_commit_consumer": "KIP-848 group (group.protocol=consumer): 2 members, commit",
    "group_resume_consumer": "... resumed after a broker restart",
    "admin": "admin: create / create partitions / delete topic",
    "idempotent": "idempotent producer",
    "crc": "CRC verification on",
    "large_record": "1 MiB record",
    "offset_seek": "consume from an offset",
    "timestamp": "offsets for times, consume from there",
    "no_autocreate": "missing topic, auto-create off: the right error",
    "admin_more": "AdminClient: describeCluster, describe/incrementalAlter configs, listOffsets, describe/delete group",
    "streams_wordcount": "Kafka Streams word count (at_least_once), same counts",
    "streams_purge": "... Streams purges its repartition topic (DeleteRecords)",
    "transactions": "transactions: commit, abort (LSO while open), read_committed vs read_uncommitted, offsets sent to the transaction",
}
# Scenarios only some clients run (what their API offers beyond the shared list).
EXTRA_SCENARIOS = {"java": ["admin_more", "streams_wordcount", "streams_purge", "transactions"],
                   "confluent-kafka": ["transactions"], "franz-go": ["transactions"]}


def target_dir():
    if os.environ.get("CARGO_TARGET_DIR"):
        return os.environ["CARGO_TARGET_DIR"]
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    return json.loads(out)["target_directory"]


def go_env(build_dir):
    # GOPATH mode against Debian's packaged sources (the module proxy is not reachable).
    return {**os.environ, "GO111MODULE": "off", "GOPATH": f"{build_dir}/gopath:/usr/share/gocode",
            "GOCACHE": f"{build_dir}/gocache"}


DEFAULT_CLIENTS = ["kcat", "confluent-kafka", "kafka-python", "aiokafka", "kafkajs", "sarama", "sarama-ibm", "franz-go",
                   "rdkafka", "java"]


def clients(tdir):
    build_dir = os.path.join(tdir, "compat")
    return {
        "kcat": {"cmd": ["bash", f"{COMPAT}/kcat/kcat.sh"]},
        "confluent-kafka": {"cmd": [sys.executable, f"{COMPAT}/python/confluent_kafka_driver.py"]},
        "kafka-python": {"cmd": [sys.executable, f"{COMPAT}/python/kafka_python_driver.py"]},
        "aiokafka": {"cmd": [sys.executable, f"{COMPAT}/python/aiokafka_driver.py"]},
        "kafkajs": {"cmd": ["node", f"{COMPAT}/node/kafkajs.js"]},
        "sarama": {
            "cmd": [f"{build_dir}/sarama-driver"],
            "build": (["go", "build", "-o", f"{build_dir}/sarama-driver", "sarama.go"], f"{COMPAT}/go", go_env(build_dir)),
        },
        "rdkafka": {
            "cmd": [f"{tdir}/debug/compat-rdkafka"],
            "build": (["cargo", "build", "-q", "-p", "compat-rdkafka"], ROOT, None),
        },
        # Current Go clients, Go modules from the module proxy (compat/go/modern/go.mod).
        "franz-go": {
            "cmd": [f"{build_dir}/franz-go-driver"],
            "build": (["go", "build", "-o", f"{build_dir}/franz-go-driver", "./franz"], f"{COMPAT}/go/modern",
                      {**os.environ, "GO111MODULE": "on"}),
        },
        "sarama-ibm": {
            "cmd": [f"{build_dir}/sarama-ibm-driver"],
            "build": (["go", "build", "-o", f"{build_dir}/sarama-ibm-driver", "./sarama"], f"{COMPAT}/go/modern",
                      {**os.environ, "GO111MODULE": "on"}),
        },
        # kafka-clients and kafka-streams 4.4 from Maven Central (cached in ~/.m2).
        "java": {
            "cmd": ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp",
                    f"{COMPAT}/java/target/classes:{COMPAT}/java/target/lib/*", "compat.Driver"],
            "build": (["mvn", "-B", "-q", "package", "dependency:copy-dependencies", "-DoutputDirectory=target/lib",
                       "-DincludeScope=runtime"], f"{COMPAT}/java", None),
        },
    }


class Broker:
    def __init__(self, binary, data_dir, extra=()):
        self.binary, self.data_dir, self.extra = binary, data_dir, list(extra)
        self.port, self.proc = 0, None

    def start(self):
        self.log = open(os.path.join(os.path.dirname(self.data_dir), os.path.basename(self.data_dir) + ".log"), "ab")
        args = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--admin-listen", "127.0.0.1:0",
                "--data-dir", self.data_dir, *self.extra]
        # A restart on the same port may race the old socket's release: retry briefly.
        for _attempt in range(20):
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
            line = self.proc.stdout.readline()
            m = re.search(r"kafka=127\.0\.0\.1:(\d+) admin=(\S+)", line)
            if m:
                self.port, self.admin = int(m.group(1)), m.group(2)
                return self
            self.proc.wait(5)
            time.sleep(0.25)
        raise RuntimeError(f"broker did not start; see {self.log.name}")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        return rc

    def restart(self):
        rc = self.stop()
        self.start()
        return rc


class KafkaBroker:
    """Apache Kafka with the interface of Broker (tools/kafka/kafka.py, one combined node)."""

    def __init__(self, data_dir, extra=()):
        self.data_dir, self.extra, self.cluster = data_dir, list(extra), None
        self.admin = ""  # no REST admin: drivers that use one fall back to a Kafka AdminClient

    def start(self):
        if self.cluster is None:
            self.cluster = apache_kafka.start(1, 0, self.data_dir, [*KAFKA_SET, *self.extra])
        else:
            apache_kafka.stop_dir(self.data_dir, keep=True)
            self.cluster.procs = apache_kafka.launch(self.data_dir, self.cluster.java_cmd, self.cluster.ports,
                                                     self.cluster.ready_timeout_s)
        return self

    @property
    def bootstrap(self):
        return self.cluster.bootstrap

    def alive(self):
        return self.cluster is not None and self.cluster.alive()

    def stop(self):
        if self.cluster is None:
            return None
        rcs = []
        for p in self.cluster.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.cluster.procs:
            try:
                rcs.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                rcs.append(p.wait())
        apache_kafka.stop_dir(self.data_dir, keep=True)
        # kafka.Kafka exits 143 (128 + SIGTERM) after its orderly shutdown.
        return 0 if all(rc in (0, 143) for rc in rcs) else max(rcs)

    def restart(self):
        rc = self.stop()
        self.start()
        return rc


def make_broker(kind, binary, data_dir, strict=False):
    if kind == "kafka":
        return KafkaBroker(data_dir, ["auto.create.topics.enable=false"] if strict else [])
    return Broker(binary, data_dir, ["--set", "auto_create_topics=false"] if strict else [])


def run_cell(name, cmd, broker, scenario, tag, timeout):
    started = time.time()
    proc = subprocess.Popen(
        [*cmd, broker.bootstrap, scenario, tag], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "COMPAT_ADMIN": broker.admin},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"client": name, "version": None, "scenario": scenario, "result": "fail",
                    "detail": f"timeout: no answer within {timeout} s (client hung)", "seconds": round(time.time() - started, 1)}
    line = None
    for raw in out.splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                cand = json.loads(raw)
            except ValueError:
                continue
            if cand.get("scenario") == scenario:
                line = cand
    if line is None:
        tail = " | ".join((err or out).strip().splitlines()[-4:])
        line = {"client": name, "version": None, "scenario": scenario, "result": "fail",
                "detail": f"driver exited {proc.returncode} without a result: {tail}"}
    line["client"] = name
    line["seconds"] = round(time.time() - started, 1)
    return line


def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def cell(r):
    if r is None:
        return "–"
    if r["result"] == "fail" and r.get("known"):
        return "**FAIL** (known)"
    if r["result"] == "pass" and r.get("flaky"):
        return "pass (retried)"
    return {"pass": "pass", "fail": "**FAIL**", "unsupported": "n/s"}[r["result"]]


def load_known():
    """compat/known_failures.txt: (broker, client, scenario) -> reason; broker may be `both`."""
    known = {}
    with open(os.path.join(COMPAT, "known_failures.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                broker, client, scenario, reason = line.split(" ", 3)
                for b in (BROKERS if broker == "both" else [broker]):
                    known[(b, client, scenario)] = reason
    return known


def load_differences():
    """compat/known_differences.txt: (client, scenario) -> why the brokers' results differ."""
    known = {}
    with open(os.path.join(COMPAT, "known_differences.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                client, scenario, reason = line.split(" ", 2)
                known[(client, scenario)] = reason
    return known


def differences(runs):
    """Cells whose result differs between the brokers: [(client, scenario, {broker: result})]."""
    if len(runs) < 2:
        return []
    by = {b: {(r["client"], r["scenario"]): r for r in run["results"]} for b, run in runs.items()}
    keys = sorted(set.intersection(*[set(v) for v in by.values()]))
    out = []
    for k in keys:
        res = {b: by[b][k]["result"] for b in runs}
        if len(set(res.values())) > 1:
            out.append((k[0], k[1], res))
    return out


def md_escape(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


DRIVERS = {"kcat": "compat/kcat/kcat.sh", "confluent-kafka": "compat/python/confluent_kafka_driver.py",
           "kafka-python": "compat/python/kafka_python_driver.py", "aiokafka": "compat/python/aiokafka_driver.py",
           "kafkajs": "compat/node/kafkajs.js", "sarama": "compat/go/sarama.go",
           "rdkafka": "compat/rdkafka/src/main.rs", "java": "compat/java/src/main/java/compat/Driver.java",
           "franz-go": "compat/go/modern/franz/main.go", "sarama-ibm": "compat/go/modern/sarama/main.go"}


def report(path, runs, known_diff):
    """docs/compat.md from the saved runs ({broker: run}), both brokers side by side."""
    brokers = [b for b in BROKERS if b in runs]
    order, scenarios = [], []
    for b in brokers:
        order += [c for c in runs[b]["order"] if c not in order]
        scenarios += [x for x in runs[b]["scenarios"] if x not in scenarios]
        scenarios += [r["scenario"] for r in runs[b]["results"] if r["scenario"] not in scenarios]
    by = {b: {(r["client"], r["scenario"]): r for r in runs[b]["results"]} for b in brokers}
    versions = {}
    for b in brokers:
        versions.update(runs[b]["versions"])
    diffs = differences(runs)
    L = ["# Client compatibility matrix\n"]
    L.append("Generated by `just compat` (`compat/run.py`); do not edit by hand. Every cell is one run of "
             "the client's driver in `compat/` against a real broker: `strikemq` (debug build, default "
             "configuration) and Apache Kafka (`tools/kafka/kafka.py`: KRaft, one combined "
             "broker+controller node, the settings below), with fresh topic and group names and a per-cell "
             "timeout. A cell reads `strikemq · kafka`.\n")
    L.append("| broker | version | run | git | wall time | cells | settings beyond the defaults |")
    L.append("|---|---|---|---|---|---|---|")
    for b in brokers:
        r = runs[b]
        res = r["results"]
        fails = [x for x in res if x["result"] == "fail"]
        cells = (f"{sum(x['result'] == 'pass' for x in res)} pass, {len(fails)} fail "
                 f"({sum(bool(x.get('known')) for x in fails)} known), "
                 f"{sum(x['result'] == 'unsupported' for x in res)} n/s")
        sets = ", ".join(f"`{k}={v}`" for k, v in r.get("settings", {}).items()) or "none"
        L.append(f"| {b} | {md_escape(r['version'])} | {r['date']} | `{r['git']}` | {r['elapsed']:.0f} s | "
                 f"{cells} | {sets} |")
    L.append(f"\nplatform: {platform.system()} {platform.release()} {platform.machine()}\n")
    L.append("`pass`: the scenario ran and every check held (exact records, offsets, timestamps, committed "
             "offsets: a pass on both brokers means the same values). `**FAIL**`: see the failures below "
             "(`(known)`: listed with its reason in `compat/known_failures.txt`, does not fail CI). "
             "`pass (retried)`: failed once, passed on the one retry. `n/s`: the client does not offer the "
             "feature. `≠`: the brokers differ in this cell; every difference is explained in "
             "`compat/known_differences.txt` (listed below), and CI fails on one that is not.\n")
    L.append("| client | version | driver |\n|---|---|---|")
    for c in order:
        L.append(f"| {c} | {md_escape(versions.get(c) or 'unknown')} | `{DRIVERS.get(c, '')}` |")
    L.append("")
    L.append("| scenario | " + " | ".join(order) + " |")
    L.append("|---|" + "---|" * len(order))
    diffset = {(c, sc) for c, sc, _ in diffs}
    for sc in scenarios:
        cells = []
        for c in order:
            parts = [cell(by[b].get((c, sc))) for b in brokers]
            mark = " ≠" if (c, sc) in diffset else ""
            cells.append(" · ".join(parts) + mark)
        L.append(f"| {SCENARIO_DOC.get(sc, sc)} (`{sc}`) | " + " | ".join(cells) + " |")
    L.append("")
    if len(brokers) == 2:
        L.append("## Differences between strikemq and Apache Kafka\n")
        if not diffs:
            L.append("None.\n")
        for c, sc, res in diffs:
            why = known_diff.get((c, sc))
            got = ", ".join(f"{b}: {v}" for b, v in res.items())
            L.append(f"- **{c} / {sc}** ({got}): " + (md_escape(why) if why else "**UNEXPLAINED**"))
        L.append("")
    for b in brokers:
        fails = [r for r in runs[b]["results"] if r["result"] == "fail"]
        L.append(f"## Failures against {b}\n")
        if not fails:
            L.append("None.\n")
        for r in fails:
            tag = " (known: listed in `compat/known_failures.txt`)" if r.get("known") else ""
            L.append(f"- **{r['client']} / {r['scenario']}**{tag}: {md_escape(r['detail'])}")
        flaky = [r for r in runs[b]["results"] if r.get("flaky")]
        if flaky:
            L.append(f"\nPassed against {b} only on the retry (a failed cell is run once more with fresh names):\n")
            for r in flaky:
                L.append(f"- {r['client']} / {r['scenario']}: first attempt: {md_escape(r['flaky'])}")
        L.append("")
    L.append("## Not supported by the client\n")
    seen = set()
    for b in brokers:
        for r in runs[b]["results"]:
            if r["result"] == "unsupported" and (r["client"], r["scenario"]) not in seen:
                seen.add((r["client"], r["scenario"]))
                L.append(f"- {r['client']} / {r['scenario']}: {md_escape(r['detail'])}")
    if not seen:
        L.append("None.")
    L.append("")
    L.append("## What each passing cell checked\n")
    for b in brokers:
        L.append(f"<details><summary>details per cell against {b}</summary>\n")
        for r in runs[b]["results"]:
            if r["result"] == "pass":
                L.append(f"- {r['client']} / {r['scenario']} ({r.get('seconds', '?')} s): {md_escape(r['detail'])}")
        L.append("\n</details>\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def run_broker(kind, args, order, scenarios, table, binary, known, build_failed):
    """Every client x scenario against one kind of broker; returns the run record."""
    started = time.time()
    results, versions = [], {}
    work = tempfile.mkdtemp(prefix=f"compat-{kind}-")
    strict = make_broker(kind, binary, os.path.join(work, "strict"), strict=True).start()
    try:
        for c in order:
            if c in build_failed:
                for s in scenarios:
                    r = {"client": c, "version": None, "scenario": s, "result": "fail",
                         "detail": f"driver did not build: {build_failed[c]}"}
                    print(json.dumps({**r, "broker": kind}), flush=True)
                    results.append(r)
                continue
            broker = make_broker(kind, binary, os.path.join(work, c)).start()
            group_tags = {}
            try:
                # An explicit --scenarios list runs as given; the default one adds each client's extras.
                extras = [] if args.scenarios_given else EXTRA_SCENARIOS.get(c, []) if args.extra else []
                for s in scenarios + [x for x in extras if x not in scenarios]:
                    first = None
                    for attempt in range(2):
                        note = ""
                        if s.startswith("group_resume") and attempt == 0:
                            rc = broker.restart()
                            if rc != 0:
                                note = f" (broker exited {rc} on SIGTERM before the restart)"
                        if not broker.alive():
                            note += " (broker had died; restarted)"
                            broker.restart()
                        target = strict if s == "no_autocreate" else broker
                        tag = f"{c}-{uuid.uuid4().hex[:8]}"
                        # group_resume(_consumer) resumes group_commit(_consumer)'s group.
                        commit_of = s.replace("group_resume", "group_commit")
                        if s.startswith("group_resume") and group_tags.get(commit_of):
                            tag = group_tags[commit_of]
                        r = run_cell(c, table[c]["cmd"], target, s, tag, args.timeout)
                        if s.startswith("group_commit"):
                            group_tags[s] = tag
                        if note:
                            r["detail"] += note
                            if r["result"] == "pass":
                                r["result"] = "fail"
                        # group_resume depends on the broker restart: no retry.
                        if r["result"] != "fail" or s.startswith("group_resume") or (kind, c, s) in known or attempt == 1:
                            break
                        first = r["detail"]
                        print(json.dumps({**r, "broker": kind, "retrying": True}), flush=True)
                    if first is not None and r["result"] == "pass":
                        r["flaky"] = first
                    elif first is not None and first != r["detail"]:
                        r["detail"] = f"{r['detail']} (first attempt: {first})"
                    if r["result"] == "fail" and (kind, c, s) in known:
                        r["known"] = True
                    if r["result"] == "pass" and (kind, c, s) in known:
                        print(f"NOTE: {c} / {s} is listed for {kind} in compat/known_failures.txt but passed: "
                              "remove it", flush=True)
                    if r.get("version"):
                        versions[c] = r["version"]
                    print(json.dumps({**r, "broker": kind}), flush=True)
                    results.append(r)
            finally:
                rc = broker.stop()
                if rc not in (0, None):
                    r = {"client": c, "version": versions.get(c), "scenario": "broker_exit", "result": "fail",
                         "detail": f"broker exited {rc} on SIGTERM after the {c} cells"}
                    print(json.dumps({**r, "broker": kind}), flush=True)
                    results.append(r)
    finally:
        strict.stop()
        shutil.rmtree(work, ignore_errors=True)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    dirty = " (dirty)" if git("status", "--porcelain", "--untracked-files=no") else ""
    if kind == "kafka":
        version = f"Apache Kafka {apache_kafka.VERSION} ({apache_kafka.java_version()})"
        settings = {**apache_kafka.settings(1, KAFKA_SET)}
    else:
        version = f"strikemq {git('describe', '--always', '--dirty')}"
        settings = {}
    return {"broker": kind, "version": version, "settings": settings, "date": now,
            "git": git("rev-parse", "--short=12", "HEAD") + dirty, "elapsed": time.time() - started,
            "order": order, "scenarios": scenarios, "versions": versions, "results": results}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="strikemq,kafka", help="strikemq, kafka or both (comma-separated)")
    ap.add_argument("--clients", default=",".join(DEFAULT_CLIENTS))
    ap.add_argument("--scenarios", default=None,
                    help="comma-separated; run exactly these (default: the shared list plus each client's extras)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per cell")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "compat.md"))
    ap.add_argument("--results-dir", default=os.path.join(COMPAT, "results"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--no-extra", dest="extra", action="store_false",
                    help="skip the client-specific scenarios (admin_more, streams_*, transactions)")
    args = ap.parse_args()
    kinds = [b for b in args.broker.split(",") if b]
    if not kinds or any(b not in BROKERS for b in kinds):
        sys.exit(f"--broker: {args.broker!r}; expected strikemq, kafka or both")
    order = [c for c in args.clients.split(",") if c]
    args.scenarios_given = args.scenarios is not None
    scenarios = [s for s in (args.scenarios or ",".join(SCENARIOS)).split(",") if s]
    tdir = target_dir()
    table = clients(tdir)
    unknown = [c for c in order if c not in table]
    if unknown:
        sys.exit(f"unknown client(s): {unknown}; known: {list(table)}")

    known = load_known()
    known_diff = load_differences()
    build_failed = {}
    if not args.no_build:
        subprocess.run(["cargo", "build", "-q", "-p", "strikemq"], cwd=ROOT, check=True)
        for c in order:
            b = table[c].get("build")
            if b:
                os.makedirs(os.path.join(tdir, "compat"), exist_ok=True)
                r = subprocess.run(b[0], cwd=b[1], env=b[2], capture_output=True, text=True)
                if r.returncode != 0:
                    build_failed[c] = (r.stderr or r.stdout).strip()[-400:]
    if "kafka" in kinds:
        apache_kafka.resolve()
    binary = os.path.join(tdir, "debug", "strikemq")
    runs = {}
    for kind in kinds:
        runs[kind] = run_broker(kind, args, order, scenarios, table, binary, known, build_failed)
        os.makedirs(args.results_dir, exist_ok=True)
        with open(os.path.join(args.results_dir, f"{kind}.json"), "w") as f:
            json.dump(runs[kind], f, indent=1)
            f.write("\n")
    diffs = differences(runs)
    if not args.no_report:
        saved = dict(runs)
        for b in BROKERS:  # the other broker's last saved run, for the side-by-side report
            path = os.path.join(args.results_dir, f"{b}.json")
            if b not in saved and os.path.exists(path):
                with open(path) as f:
                    saved[b] = json.load(f)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        report(args.out, saved, known_diff)
        print(f"wrote {os.path.relpath(args.out, ROOT)}")
    unexplained = [(c, s, res) for c, s, res in diffs if (c, s) not in known_diff]
    for c, s, res in diffs:
        why = "explained" if (c, s) in known_diff else "UNEXPLAINED (add it to compat/known_differences.txt)"
        print(f"difference: {c} / {s}: {res}: {why}", flush=True)
    if len(runs) == 2:
        ran = {(c, s) for c in order for s in scenarios}
        for k in sorted(set(known_diff) & ran - {(c, s) for c, s, _ in diffs}):
            print(f"NOTE: {k[0]} / {k[1]} is listed in compat/known_differences.txt but the brokers agree: "
                  "remove it", flush=True)
    all_results = [r for run in runs.values() for r in run["results"]]
    n_fail = sum(r["result"] == "fail" and not r.get("known") for r in all_results)
    n_known = sum(r["result"] == "fail" and bool(r.get("known")) for r in all_results)
    n_pass = sum(r["result"] == "pass" for r in all_results)
    n_uns = sum(r["result"] == "unsupported" for r in all_results)
    print(f"brokers: {', '.join(kinds)}; known failures (compat/known_failures.txt): {n_known}; "
          f"not supported by the client: {n_uns}; unexplained differences: {len(unexplained)}")
    print(f"compat: {n_pass} passed, {n_fail + len(unexplained)} failed, {n_uns + n_known} skipped")
    return 1 if n_fail or unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
