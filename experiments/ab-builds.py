#!/usr/bin/env python3
"""Same-run comparison of two broker builds: is the new build's latency no worse?

The experiment runner compares configurations of one build. A change to the data path
(zero-copy fetch, new validation in Produce) must also show that the old build and the
new one answer the same workload alike, measured side by side in one run. This script
starts each build in turn on a fresh data dir, runs the same loadgen workload against
it, and interleaves the repetitions (A B A B ...) so that drift on the machine hits both
alike; a TCP echo floor of the same size is measured between them. It writes one JSON
per run and summary.json/summary.md with the median and the min-max spread of the
repetitions for p50/p99/p99.9.

Usage:
  experiments/ab-builds.py --a OLD_BROKER_BIN --b NEW_BROKER_BIN --loadgen LOADGEN_BIN \
      --out results/ab-builds/RUN [--reps 5] [--duration-s 10] [--profile baseline]
      [--wait blocking|busy-poll] [--size 1024] [--label-a main --label-b new]

Bounded: every broker is stopped after its run (kill, then wait 5 s), every loadgen run
is bounded by --duration-s plus a timeout, and only 127.0.0.1 is used.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PERCENTILES = ["p50", "p99", "p99_9"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(binary, profile, data_dir, extra):
    port = free_port()
    out = open(os.path.join(data_dir, "broker.out"), "w")
    err = open(os.path.join(data_dir, "broker.err"), "w")
    cmd = [binary, "--listen", f"127.0.0.1:{port}", "--admin-listen", "127.0.0.1:0",
           "--data-dir", os.path.join(data_dir, "data"), "--profile", profile] + extra
    proc = subprocess.Popen(cmd, stdout=out, stderr=err)
    deadline = time.time() + 10
    while time.time() < deadline:
        with open(os.path.join(data_dir, "broker.out")) as f:
            if any(line.startswith("strikemq ready ") for line in f):
                return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"broker {binary} did not become ready; see {data_dir}/broker.err")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def loadgen(args, sub, json_path, extra):
    cmd = [args.loadgen, sub, "--size", str(args.size), "--duration-s", str(args.duration_s),
           "--warmup-s", str(args.warmup_s), "--json", json_path, "--no-progress"] + extra
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   timeout=args.duration_s + args.warmup_s + 60)
    with open(json_path) as f:
        return json.load(f)


def summarize(runs):
    out = {}
    for p in PERCENTILES:
        values = [r["latency_us"][p] for r in runs]
        out[p] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    out["errors"] = sum(r["errors"] + r["timeouts"] for r in runs)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="the reference broker binary (e.g. main's build)")
    ap.add_argument("--b", required=True, help="the broker binary under test")
    ap.add_argument("--label-a", default="a")
    ap.add_argument("--label-b", default="b")
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration-s", type=float, default=10.0)
    ap.add_argument("--warmup-s", type=float, default=2.0)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--profile", default="baseline")
    ap.add_argument("--wait", default="blocking", choices=["blocking", "busy-poll"])
    ap.add_argument("--broker-arg", action="append", default=[],
                    help="extra broker flag, passed to both builds (repeatable)")
    args = ap.parse_args()
    if args.reps < 1 or args.reps > 50:
        sys.exit(f"--reps {args.reps}: must be 1..50")
    for b in (args.a, args.b, args.loadgen):
        if not os.access(b, os.X_OK):
            sys.exit(f"not an executable: {b}")
    os.makedirs(args.out, exist_ok=True)
    floor_mode = "blocking" if args.wait == "blocking" else "client-busy-poll"
    builds = [(args.label_a, args.a), (args.label_b, args.b)]
    runs = {label: [] for label, _ in builds}
    floors = []
    loads = []
    for rep in range(args.reps):
        for label, binary in builds:
            scratch = tempfile.mkdtemp(prefix=f"ab-{label}-")
            try:
                proc, port = start_broker(binary, args.profile, scratch, args.broker_arg)
                loads.append(os.getloadavg()[0])
                path = os.path.join(args.out, f"{label}-rep{rep}.json")
                try:
                    runs[label].append(loadgen(args, "produce", path,
                                               ["--bootstrap", f"127.0.0.1:{port}", "--wait", args.wait]))
                finally:
                    stop(proc)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        path = os.path.join(args.out, f"floor-rep{rep}.json")
        floors.append(loadgen(args, "floor", path, ["--mode", floor_mode]))
    summary = {
        "question": "same workload, two builds, interleaved in one run: is B no worse than A?",
        "workload": {"mode": "produce", "size": args.size, "inflight": 1, "acks": 1,
                     "duration_s": args.duration_s, "warmup_s": args.warmup_s,
                     "profile": args.profile, "client_wait": args.wait,
                     "broker_args": args.broker_arg, "reps": args.reps},
        "builds": {label: {"binary": binary, "summary": summarize(runs[label])} for label, binary in builds},
        "floor": {"mode": floor_mode, "summary": summarize(floors)},
        "load_average_1m_at_each_start": loads,
        "kernel": platform.release(),
        "host": platform.node(),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    lines = [f"# {args.label_a} vs {args.label_b}: {args.size} B produce, closed loop, acks=1, "
             f"profile {args.profile}, client {args.wait}, {args.reps} interleaved reps of {args.duration_s} s",
             "", "| | " + " | ".join(f"{p} µs median [min–max]" for p in PERCENTILES) + " | errors |",
             "|---|" + "---|" * (len(PERCENTILES) + 1)]
    rows = [(label, summary["builds"][label]["summary"]) for label, _ in builds]
    rows.append((f"floor ({floor_mode} echo)", summary["floor"]["summary"]))
    for label, s in rows:
        cells = [f"{s[p]['median']:.1f} [{s[p]['min']:.1f}–{s[p]['max']:.1f}]" for p in PERCENTILES]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {s['errors']} |")
    a = summary["builds"][args.label_a]["summary"]
    b = summary["builds"][args.label_b]["summary"]
    lines += ["", "Ratio of medians B/A: " + ", ".join(
        f"{p} {b[p]['median'] / a[p]['median']:.2f}" for p in PERCENTILES),
        f"Load average (1 min) at each broker start: {min(loads):.2f}–{max(loads):.2f}"]
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
