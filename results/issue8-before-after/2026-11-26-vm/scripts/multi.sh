#!/usr/bin/env bash
# Interleaved closed-loop 1 KiB produce against several broker binaries (rotating order per rep) + echo floor.
set -euo pipefail
out=$1; reps=$2; dur=$3; shift 3
lg=target/release/loadgen
mkdir -p "$out"; d=$(mktemp -d); names=(); addrs=(); pids=()
for b in "$@"; do
  n=$(basename $b); cp $b $d/ab-$n
  $d/ab-$n --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir $d/data-$n >$d/$n.out 2>$d/$n.err & pids+=($!)
  names+=($n)
done
trap 'kill ${pids[@]} 2>/dev/null; wait 2>/dev/null; rm -rf $d' EXIT
sleep 1
for n in "${names[@]}"; do addrs+=($(sed -n 's/^strikemq ready kafka=\([^ ]*\).*/\1/p' $d/$n.out)); done
common=(--size 1024 --duration-s $dur --warmup-s 2 --no-progress)
k=${#names[@]}
for r in $(seq $reps); do
  $lg floor "${common[@]}" --mode blocking --json $out/floor-$r.json >/dev/null
  for j in $(seq 0 $((k-1))); do
    i=$(( (j + r) % k ))
    $lg produce "${common[@]}" --bootstrap ${addrs[$i]} --topic ab --acks 1 --json $out/${names[$i]}-$r.json >/dev/null
  done
done
python3 - "$out" "$reps" floor "${names[@]}" <<'PY'
import json,sys,statistics as st
out,reps=sys.argv[1],int(sys.argv[2])
for name in sys.argv[3:]:
    L=[json.load(open(f"{out}/{name}-{r}.json"))["latency_us"] for r in range(1,reps+1)]
    p50=[l["p50"] for l in L]; p999=[l["p99_9"] for l in L]
    print(f"{name:18} p50 {st.median(p50):6.2f} [{min(p50):.2f}-{max(p50):.2f}]  p99.9 {st.median(p999):7.1f} [{min(p999):.1f}-{max(p999):.1f}]")
PY
