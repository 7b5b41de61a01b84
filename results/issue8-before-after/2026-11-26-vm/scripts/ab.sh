#!/usr/bin/env bash
# A/B: broker before issue 8 (be32b6c) vs after, 1 KiB produce closed loop, interleaved with the echo floor.
set -euo pipefail
out=$1; reps=${2:-5}; dur=${3:-5}
old=${OLD:-/work/target-old/release/strikemq}; new=${NEW:-target/release/strikemq}; lg=target/release/loadgen
mkdir -p "$out"; d=$(mktemp -d)
cp $old $d/ab-old; cp $new $d/ab-new
$d/ab-old --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir $d/old >$d/old.out 2>$d/old.err & po=$!
$d/ab-new --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir $d/new >$d/new.out 2>$d/new.err & pn=$!
trap 'kill $po $pn 2>/dev/null; wait 2>/dev/null; rm -rf $d' EXIT
sleep 1
ao=$(sed -n 's/^strikemq ready kafka=\([^ ]*\).*/\1/p' $d/old.out); an=$(sed -n 's/^strikemq ready kafka=\([^ ]*\).*/\1/p' $d/new.out)
common=(--size 1024 --duration-s $dur --warmup-s 2 --no-progress)
for r in $(seq $reps); do
  $lg floor "${common[@]}" --mode blocking --json $out/floor-$r.json >/dev/null
  if [ $((r % 2)) -eq 1 ]; then
    $lg produce "${common[@]}" --bootstrap $an --topic ab --acks 1 --json $out/new-$r.json >/dev/null
    $lg produce "${common[@]}" --bootstrap $ao --topic ab --acks 1 --json $out/old-$r.json >/dev/null
  else
    $lg produce "${common[@]}" --bootstrap $ao --topic ab --acks 1 --json $out/old-$r.json >/dev/null
    $lg produce "${common[@]}" --bootstrap $an --topic ab --acks 1 --json $out/new-$r.json >/dev/null
  fi
  echo "rep $r done $(cat /proc/loadavg)"
done
python3 - "$out" "$reps" <<'PY'
import json,sys,statistics as st
out,reps=sys.argv[1],int(sys.argv[2])
for name in ["floor","old","new"]:
    p50=[json.load(open(f"{out}/{name}-{r}.json"))["latency_us"]["p50"] for r in range(1,reps+1)]
    p999=[json.load(open(f"{out}/{name}-{r}.json"))["latency_us"]["p99_9"] for r in range(1,reps+1)]
    print(f"{name:6} p50 median {st.median(p50):7.2f} [{min(p50):.2f}-{max(p50):.2f}]  p99.9 median {st.median(p999):8.1f} [{min(p999):.1f}-{max(p999):.1f}]")
PY
