#!/usr/bin/env bash
# Single-connection produce latency (closed loop, 1 KiB, acks=1) for the baseline and
# tuned profiles and for each toggle flipped alone from baseline, next to the TCP echo
# floor, with the broker's CPU use (utime+stime from /proc/PID/stat over the run).
# Repetitions are interleaved (every configuration once per round) so drift on a
# shared machine hits all alike. A fresh broker (and data dir) per run.
# Usage: loadgen/bench/toggles.sh OUT_DIR [REPS] [DURATION_S]
# Needs: cargo build --release -p strikemq -p loadgen (CARGO_TARGET_DIR honoured).
set -euo pipefail
out=${1:?usage: toggles.sh OUT_DIR [REPS] [DURATION_S]}
reps=${2:-3}
dur=${3:-5}
target=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$out"
common=(--size 1024 --duration-s "$dur" --warmup-s 1 --no-progress)
tick=$(getconf CLK_TCK)

# name|broker arguments
configs=(
  "baseline|--profile baseline"
  "tuned|--profile tuned"
  "io_uring|--profile baseline --set io_backend=io_uring"
  "io_uring_sqpoll|--profile baseline --set io_backend=io_uring_sqpoll"
  "io_uring+registered|--profile baseline --set io_backend=io_uring --set uring_registered_buffers=true"
  "io_uring+multishot|--profile baseline --set io_backend=io_uring --set uring_multishot_recv=true"
  "busy_poll_50us|--profile baseline --set busy_poll_us=50"
  "log_map_sharded|--profile baseline --set log_map=sharded"
  "conn_buffer_circular|--profile baseline --set conn_buffer=circular"
  "prefault_2MiB|--profile baseline --set segment_prefault_bytes=2097152"
  "loop_timeout_1ms|--profile baseline --set loop_timeout_ms=1"
  "pin_cores|--profile baseline --set pin_cores=true"
)

{
  echo "git $(git rev-parse HEAD)$(git diff --quiet || echo -dirty)"
  rustc --version; uname -r; nproc; grep -m1 'model name' /proc/cpuinfo; uptime
  printf '%s\n' "${configs[@]}"
} >"$out/environment.txt"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_broker() { # name args... ; writes $out/NAME-REP.json and NAME-REP.cpu
  local name=$1 rep=$2; shift 2
  local data; data=$(mktemp -d)
  # shellcheck disable=SC2086
  "$target/strikemq" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$data" $* \
    >"$out/$name-$rep.out" 2>"$out/$name-$rep.err" &
  local pid=$!
  for _ in $(seq 100); do
    grep -q 'strikemq ready kafka=' "$out/$name-$rep.out" 2>/dev/null && break
    sleep 0.05
  done
  local addr; addr=$(sed -n 's/^strikemq ready kafka=//p' "$out/$name-$rep.out")
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
  "$target/loadgen" produce "${common[@]}" --bootstrap "$addr" --topic t --inflight 1 --acks 1 \
    --json "$out/$name-$rep.json" >/dev/null
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  echo "$c0 $c1 $t0 $t1 $tick" >"$out/$name-$rep.cpu"
  kill "$pid"; wait "$pid" || true
  rm -rf "$data"
}

for rep in $(seq "$reps"); do
  "$target/loadgen" floor "${common[@]}" --mode blocking --json "$out/floor_blocking-$rep.json" >/dev/null
  "$target/loadgen" floor "${common[@]}" --mode busy-poll --json "$out/floor_busy_poll-$rep.json" >/dev/null
  for c in "${configs[@]}"; do
    run_broker "${c%%|*}" "$rep" "${c#*|}"
  done
  echo "round $rep done" >&2
done

python3 - "$out" <<'PY'
import json, glob, os, statistics, sys
out = sys.argv[1]
runs, cpu = {}, {}
for f in sorted(glob.glob(os.path.join(out, "*-[0-9]*.json"))):
    name = os.path.basename(f).rsplit("-", 1)[0]
    runs.setdefault(name, []).append(json.load(open(f)))
    c = f[:-5] + ".cpu"
    if os.path.exists(c):
        c0, c1, t0, t1, tick = map(float, open(c).read().split())
        cpu.setdefault(name, []).append(100.0 * (c1 - c0) / tick / (t1 - t0))
floor = statistics.median(r["latency_us"]["p50"] for r in runs["floor_blocking"])
print(f"| configuration | p50 µs median [min–max] | p50 / blocking floor | p99.9 µs median [min–max] | req/s | broker CPU % |")
print("|---|---|---|---|---|---|")
for name, rs in runs.items():
    def col(k):
        v = [r["latency_us"][k] for r in rs]
        return f"{statistics.median(v):.1f} [{min(v):.1f}–{max(v):.1f}]"
    p50 = statistics.median(r["latency_us"]["p50"] for r in rs)
    rate = statistics.median(r["rate_per_s"] for r in rs)
    errors = sum(r["errors"] + r["timeouts"] for r in rs)
    c = f"{statistics.median(cpu[name]):.0f}" if name in cpu else "–"
    e = f" ({errors} errors)" if errors else ""
    print(f"| {name}{e} | {col('p50')} | {p50/floor:.2f} | {col('p99_9')} | {rate:.0f} | {c} |")
PY
