#!/usr/bin/env python3
"""Client compatibility matrix: every client, every scenario, against the real broker.

For each client the runner starts a fresh broker (its own data dir, a free port), runs
the client's driver once per scenario with a per-cell timeout (a hang fails that cell,
not the run), restarts the broker on the same port and data dir before `group_resume` (and `group_resume_consumer`),
and points `no_autocreate` at a second broker started with auto_create_topics=false.
Each driver prints one JSON line per scenario:
  {"client","version","scenario","result":"pass|fail|unsupported","detail"}
The lines are echoed as they come and the matrix is written to docs/compat.md.
Exit status: 1 if any cell failed (unsupported is fine), 0 otherwise.

Usage: compat/run.py [--clients a,b] [--scenarios x,y] [--timeout S] [--out FILE]
                     [--no-build] [--no-report]
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
}


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
    known = {}
    with open(os.path.join(COMPAT, "known_failures.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                client, scenario, reason = line.split(" ", 2)
                known[(client, scenario)] = reason
    return known


def md_escape(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def report(path, results, versions, order, scenarios, elapsed):
    sha = git("rev-parse", "--short=12", "HEAD")
    dirty = " (dirty)" if git("status", "--porcelain", "--untracked-files=no") else ""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    by = {(r["client"], r["scenario"]): r for r in results}
    fails = [r for r in results if r["result"] == "fail"]
    L = []
    L.append("# Client compatibility matrix\n")
    L.append("Generated by `just compat` (`compat/run.py`); do not edit by hand. Every cell is one run of "
             "the client's driver in `compat/` against a real `strikemq` (debug build, default "
             "configuration), with fresh topic and group names and a per-cell timeout.\n")
    L.append(f"- date: {now}\n- git: `{sha}`{dirty}\n- platform: {platform.system()} {platform.release()} "
             f"{platform.machine()}\n- wall time: {elapsed:.0f} s\n- cells: "
             f"{sum(r['result'] == 'pass' for r in results)} pass, {len(fails)} fail "
             f"({sum(bool(r.get('known')) for r in fails)} known), "
             f"{sum(r['result'] == 'unsupported' for r in results)} not supported by the client\n")
    L.append("`pass`: the scenario ran and every check held. `**FAIL**`: see the details below "
             "(`(known)`: listed with its reason in `compat/known_failures.txt`, does not fail CI). "
             "`pass (retried)`: failed once, passed on the one retry (both attempts below). "
             "`n/s`: the client does not offer the feature (reason below).\n")
    L.append("| client | version | driver |\n|---|---|---|")
    drivers = {"kcat": "compat/kcat/kcat.sh", "confluent-kafka": "compat/python/confluent_kafka_driver.py",
               "kafka-python": "compat/python/kafka_python_driver.py", "aiokafka": "compat/python/aiokafka_driver.py",
               "kafkajs": "compat/node/kafkajs.js", "sarama": "compat/go/sarama.go",
               "rdkafka": "compat/rdkafka/src/main.rs"}
    for c in order:
        L.append(f"| {c} | {md_escape(versions.get(c) or 'unknown')} | `{drivers.get(c, '')}` |")
    L.append("")
    L.append("| scenario | " + " | ".join(order) + " |")
    L.append("|---|" + "---|" * len(order))
    for s in scenarios:
        L.append(f"| {SCENARIO_DOC.get(s, s)} (`{s}`) | " + " | ".join(cell(by.get((c, s))) for c in order) + " |")
    L.append("")
    L.append("## Failures\n")
    if not fails:
        L.append("None.\n")
    for r in fails:
        tag = " (known: listed in `compat/known_failures.txt`)" if r.get("known") else ""
        L.append(f"- **{r['client']} / {r['scenario']}**{tag}: {md_escape(r['detail'])}")
    flaky = [r for r in results if r.get("flaky")]
    if flaky:
        L.append("\n## Passed only on the retry\n")
        L.append("A failed cell is run once more with fresh names; these failed first:\n")
        for r in flaky:
            L.append(f"- {r['client']} / {r['scenario']}: first attempt: {md_escape(r['flaky'])}")
    L.append("")
    L.append("## Not supported by the client\n")
    uns = [r for r in results if r["result"] == "unsupported"]
    if not uns:
        L.append("None.\n")
    for r in uns:
        L.append(f"- {r['client']} / {r['scenario']}: {md_escape(r['detail'])}")
    L.append("")
    L.append("## What each passing cell checked\n")
    L.append("<details><summary>details per cell</summary>\n")
    for r in results:
        if r["result"] == "pass":
            L.append(f"- {r['client']} / {r['scenario']} ({r.get('seconds', '?')} s): {md_escape(r['detail'])}")
    L.append("\n</details>\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="kcat,confluent-kafka,kafka-python,aiokafka,kafkajs,sarama,rdkafka")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--timeout", type=float, default=60, help="seconds per cell")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "compat.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    order = [c for c in args.clients.split(",") if c]
    scenarios = [s for s in args.scenarios.split(",") if s]
    tdir = target_dir()
    table = clients(tdir)
    unknown = [c for c in order if c not in table]
    if unknown:
        sys.exit(f"unknown client(s): {unknown}; known: {list(table)}")

    started = time.time()
    known = load_known()
    results, versions = [], {}
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
    binary = os.path.join(tdir, "debug", "strikemq")
    work = tempfile.mkdtemp(prefix="strikemq-compat-")
    strict = Broker(binary, os.path.join(work, "strict"), ["--set", "auto_create_topics=false"]).start()
    try:
        for c in order:
            if c in build_failed:
                for s in scenarios:
                    r = {"client": c, "version": None, "scenario": s, "result": "fail",
                         "detail": f"driver did not build: {build_failed[c]}"}
                    print(json.dumps(r), flush=True)
                    results.append(r)
                continue
            broker = Broker(binary, os.path.join(work, c)).start()
            group_tags = {}
            try:
                for s in scenarios:
                    first = None
                    for attempt in range(2):
                        note = ""
                        if s.startswith("group_resume") and attempt == 0:
                            rc = broker.restart()
                            if rc != 0:
                                note = f" (broker exited {rc} on SIGTERM before the restart)"
                        if not broker.alive():
                            note += " (broker had died; restarted)"
                            broker.start()
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
                        if r["result"] != "fail" or s.startswith("group_resume") or (c, s) in known or attempt == 1:
                            break
                        first = r["detail"]
                        print(json.dumps({**r, "retrying": True}), flush=True)
                    if first is not None and r["result"] == "pass":
                        r["flaky"] = first
                    elif first is not None and first != r["detail"]:
                        r["detail"] = f"{r['detail']} (first attempt: {first})"
                    if r["result"] == "fail" and (c, s) in known:
                        r["known"] = True
                    if r["result"] == "pass" and (c, s) in known:
                        print(f"NOTE: {c} / {s} is listed in compat/known_failures.txt but passed: remove it",
                              flush=True)
                    if r.get("version"):
                        versions[c] = r["version"]
                    print(json.dumps(r), flush=True)
                    results.append(r)
            finally:
                rc = broker.stop()
                if rc not in (0, None):
                    r = {"client": c, "version": versions.get(c), "scenario": "broker_exit", "result": "fail",
                         "detail": f"broker exited {rc} on SIGTERM after the {c} cells"}
                    print(json.dumps(r), flush=True)
                    results.append(r)
    finally:
        strict.stop()
    elapsed = time.time() - started
    if not args.no_report:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        report(args.out, results, versions, order, scenarios, elapsed)
        print(f"wrote {os.path.relpath(args.out, ROOT)}")
    shutil.rmtree(work, ignore_errors=True)
    n_fail = sum(r["result"] == "fail" and not r.get("known") for r in results)
    n_known = sum(r["result"] == "fail" and bool(r.get("known")) for r in results)
    n_pass = sum(r["result"] == "pass" for r in results)
    n_uns = sum(r["result"] == "unsupported" for r in results)
    print(f"known failures (compat/known_failures.txt): {n_known}; not supported by the client: {n_uns}")
    print(f"compat: {n_pass} passed, {n_fail} failed, {n_uns + n_known} skipped")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
