#!/usr/bin/env python3
"""Median and min-max over repetitions of every configuration in a results folder
(files NAME-REP.json written by loadgen --json), as a markdown table on stdout."""
import glob, json, os, statistics, sys

out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "*-[0-9]*.json"))):
    name = os.path.basename(f).rsplit("-", 1)[0]
    runs.setdefault(name, []).append(json.load(open(f)))


def cell(vals, fmt="{:.1f}"):
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


print("| configuration | reps | p50 µs | p99 µs | p99.9 µs | achieved /s | MB/s | send lag p99 µs | errors+timeouts |")
print("|---|---|---|---|---|---|---|---|---|")
for name, rs in runs.items():
    lat = lambda k: [r["latency_us"][k] for r in rs]
    print(
        f"| {name} | {len(rs)} | {cell(lat('p50'))} | {cell(lat('p99'))} | {cell(lat('p99_9'))} "
        f"| {cell([r['rate_per_s'] for r in rs], '{:.0f}')} "
        f"| {cell([r['bytes_per_s'] / 1e6 for r in rs], '{:.2f}')} "
        f"| {cell([r['send_lag_us']['p99'] for r in rs])} "
        f"| {sum(r['errors'] + r['timeouts'] for r in rs)} |"
    )
