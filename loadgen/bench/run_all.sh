#!/usr/bin/env bash
# The committed loadgen measurements, all configurations interleaved per repetition
# (A B C … A B C …) so that drift on a shared machine hits every configuration alike:
#   overhead / side by side: floor (blocking, busy-poll) vs native produce, 1 KiB closed
#     loop, and floor vs broker at 20k/s open loop;
#   max rate of one producer: native pipelined (--inflight 64), rdkafka linger.ms=0 and 5.
# Usage: loadgen/bench/run_all.sh OUT_DIR [REPS] [DURATION_S]
# Needs: cargo build --release -p strikemq -p loadgen (with CARGO_TARGET_DIR set if used).
set -euo pipefail
out=${1:?usage: run_all.sh OUT_DIR [REPS] [DURATION_S]}
reps=${2:-3}
dur=${3:-5}
target=${CARGO_TARGET_DIR:-target}/release
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
data=$(mktemp -d)
# Other sessions on this machine stop their brokers by process name; a private copy under
# another name keeps this run's broker out of that crossfire. Only this PID is killed.
cp "$target/strikemq" "$data/lg-bench-broker"
"$data/lg-bench-broker" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$data/data" \
  >"$out/broker.out" 2>"$out/broker.err" &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  grep -q 'strikemq ready kafka=' "$out/broker.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^strikemq ready kafka=\([^ ]*\).*/\1/p' "$out/broker.out")
[ -n "$addr" ] || { echo "broker did not start" >&2; exit 1; }
env_line() { echo "$(date -u +%FT%TZ) $1: $(cat /proc/loadavg)"; }
{
  echo "git $(git rev-parse HEAD)$(git diff --quiet HEAD -- . || echo ' dirty')"
  rustc --version
  echo "kernel $(uname -r)"
  grep -m1 'model name' /proc/cpuinfo
  echo "cores $(nproc)"
  echo "reps $reps, duration ${dur} s, warm-up 2 s, size 1024 B"
  echo "load average (1, 5, 15 min) before, between repetitions and after:"
  env_line start
} >"$out/environment.txt"
common=(--size 1024 --duration-s "$dur" --warmup-s 2 --no-progress)
lg="$target/loadgen"
for rep in $(seq "$reps"); do
  "$lg" floor "${common[@]}" --mode blocking --json "$out/floor-blocking-closed-$rep.json"
  "$lg" floor "${common[@]}" --mode busy-poll --json "$out/floor-busy-closed-$rep.json"
  "$lg" produce "${common[@]}" --bootstrap "$addr" --topic sbs --acks 1 \
    --json "$out/native-produce-closed-$rep.json"
  "$lg" floor "${common[@]}" --mode blocking --rate 20000 --json "$out/floor-blocking-open20k-$rep.json"
  "$lg" produce "${common[@]}" --bootstrap "$addr" --topic sbs --rate 20000 --acks 1 \
    --json "$out/native-produce-open20k-$rep.json"
  "$lg" produce "${common[@]}" --bootstrap "$addr" --topic max --inflight 64 --acks 1 \
    --json "$out/max-native-inflight64-$rep.json"
  "$lg" produce "${common[@]}" --bootstrap "$addr" --topic max --driver rdkafka --inflight 10000 \
    --acks 1 -X linger.ms=0 --json "$out/max-rdkafka-linger0-$rep.json"
  "$lg" produce "${common[@]}" --bootstrap "$addr" --topic max --driver rdkafka --inflight 10000 \
    --acks 1 -X linger.ms=5 --json "$out/max-rdkafka-linger5-$rep.json"
  env_line "after rep $rep" >>"$out/environment.txt"
done
python3 "$here/summarize.py" "$out" >"$out/summary.md"
cat "$out/summary.md"
