#!/usr/bin/env bash
# Floor vs broker at 1 KiB, closed loop and open loop at 20k/s, repetitions interleaved
# (A B C ... A B C ...) so drift on a shared machine hits every configuration alike.
# Usage: loadgen/bench/side_by_side.sh OUT_DIR [REPS] [DURATION_S]
# Needs: cargo build --release -p strikemq -p loadgen (with CARGO_TARGET_DIR set if used).
set -euo pipefail
out=${1:?usage: side_by_side.sh OUT_DIR [REPS] [DURATION_S]}
reps=${2:-3}
dur=${3:-10}
target=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$out"
data=$(mktemp -d)
# On a shared machine other sessions stop their brokers by process name; a private copy
# under another name keeps this run's broker out of that crossfire.
cp "$target/strikemq" "$data/sbs-broker"
"$data/sbs-broker" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$data/data" \
  >"$out/broker.out" 2>"$out/broker.err" &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  grep -q 'strikemq ready kafka=' "$out/broker.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^strikemq ready kafka=\([^ ]*\).*/\1/p' "$out/broker.out")
[ -n "$addr" ] || { echo "broker did not start" >&2; exit 1; }
common=(--size 1024 --duration-s "$dur" --warmup-s 2 --no-progress)
{
  echo "git $(git rev-parse HEAD)$(git diff --quiet || echo -dirty)"
  rustc --version; uname -r; nproc; grep -m1 'model name' /proc/cpuinfo; uptime
} >"$out/environment.txt"
for rep in $(seq "$reps"); do
  "$target/loadgen" floor "${common[@]}" --mode blocking --json "$out/floor-blocking-closed-$rep.json"
  "$target/loadgen" floor "${common[@]}" --mode busy-poll --json "$out/floor-busy-closed-$rep.json"
  "$target/loadgen" produce "${common[@]}" --bootstrap "$addr" --topic sbs --inflight 1 --acks 1 \
    --json "$out/broker-closed-$rep.json"
  "$target/loadgen" floor "${common[@]}" --mode blocking --rate 20000 \
    --json "$out/floor-blocking-open20k-$rep.json"
  "$target/loadgen" produce "${common[@]}" --bootstrap "$addr" --topic sbs --rate 20000 --acks 1 \
    --json "$out/broker-open20k-$rep.json"
done
python3 - "$out" <<'PY'
import json, glob, os, statistics, sys
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "*-[0-9]*.json"))):
    name = os.path.basename(f).rsplit("-", 1)[0]
    runs.setdefault(name, []).append(json.load(open(f)))
print(f"{'configuration':<24}{'p50 µs median [min-max]':>28}{'p99.9 µs median [min-max]':>30}{'rate/s':>10}{'errors':>8}")
for name, rs in runs.items():
    def col(k):
        v = [r["latency_us"][k] for r in rs]
        return f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"
    rate = statistics.median(r["rate_per_s"] for r in rs)
    errors = sum(r["errors"] + r["timeouts"] for r in rs)
    print(f"{name:<24}{col('p50'):>28}{col('p99_9'):>30}{rate:>10.0f}{errors:>8}")
PY
