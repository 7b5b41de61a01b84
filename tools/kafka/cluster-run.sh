#!/usr/bin/env bash
# The harness on a real cluster: three Apache Kafka 4.4 nodes (tools/kafka/kafka.py, KRaft,
# combined broker+controller, ports 19092-19094) and loadgen against them with 6
# partitions (2 per leader): produce, produce->consume with exactly-once/in-order
# verification, and a verified fetch of a backlog. Writes results/kafka-cluster/<date>-<host>/
# (loadgen's JSON per step, the partition leaders, a summary). Exits non-zero when a
# verification fails. Bounded: each loadgen step has a timeout; the cluster is stopped
# by PID on exit. `just kafka-cluster-run [SECONDS]`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECONDS_PER_STEP=${1:-10}
PORT=${KAFKA_CLUSTER_PORT:-19092}
B="127.0.0.1:$PORT"
OUT="results/kafka-cluster/$(date -u +%Y-%m-%d)-$(hostname -s)"
mkdir -p "$OUT"
cargo build --release -q -p loadgen
LOADGEN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/loadgen
DIR=$(mktemp -d /tmp/strikemq-kafka-cluster-XXXXXX)
trap 'python3 tools/kafka/kafka.py stop --dir "$DIR"' EXIT
python3 tools/kafka/kafka.py start --nodes 3 --port "$PORT" --dir "$DIR" | tee "$OUT/ready.txt"
tag=$(date +%s)
# The topics are created first and given a moment: right after CreateTopics a leader may
# not know yet that it leads, and loadgen does not retry a NOT_LEADER_OR_FOLLOWER (a
# client would). loadgen then finds them with the 6 partitions it asks for.
python3 - "$B" "$tag" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
names = [f"cluster-{m}-{sys.argv[2]}" for m in ("produce", "e2e", "fetch")]
for f in a.create_topics([NewTopic(n, 6, 1) for n in names]).values():
    f.result(30)
time.sleep(3)
PY
rc=0
for mode in produce e2e fetch; do
    # fetch has no duration: it produces a backlog of --records, then reads it all.
    timing=(--duration-s "$SECONDS_PER_STEP" --warmup-s 1 --no-progress)
    [ "$mode" = fetch ] && timing=(--records 100000)
    timeout $((SECONDS_PER_STEP + 180)) "$LOADGEN" "$mode" --bootstrap "$B" --topic "cluster-$mode-$tag" \
        --partitions 6 "${timing[@]}" --json "$OUT/$mode.json" 2>&1 | tee "$OUT/$mode.txt" || rc=1
done
# The experiment runner against the same cluster (--bootstrap: no broker of ours is
# started and no toggle applies; the `quick` workloads, about 30 s). Its folder is moved
# under $OUT so that results/quick/ keeps only runs against strikemq.
before=$(ls -d results/quick/*/ 2>/dev/null | sort)
if timeout 300 cargo run --release -q -p experiments -- run quick --bootstrap "$B"; then
    new=$(comm -13 <(echo "$before") <(ls -d results/quick/*/ | sort) | tail -n 1)
    [ -n "$new" ] && rm -rf "$OUT/quick-bootstrap" && mv "$new" "$OUT/quick-bootstrap"
else
    rc=1
fi
kcat -b "$B" -L -J >"$OUT/metadata.json" 2>/dev/null || true
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
lines, ok = [], True
try:
    md = json.load(open(os.path.join(out, "metadata.json")))
    for t in md["topics"]:
        if t["topic"].startswith("cluster-"):
            leaders = sorted(p["leader"] for p in t["partitions"])
            lines.append(f"- {t['topic']}: partition leaders {leaders}")
except (OSError, ValueError, KeyError):
    lines.append("- (no kcat metadata)")
for mode in ("produce", "e2e", "fetch"):
    d = json.load(open(os.path.join(out, f"{mode}.json")))
    v = d.get("verification")
    lat = d["latency_us"]
    shape = d.get("layout", {})
    verdict = "not verified (produce only)" if v is None else (
        "verification ok" if not v["lost"] and not v["duplicates"] and not v["reordered"] and not v["foreign"]
        and not v["failed"] else "VERIFICATION FAILED")
    ok &= verdict != "VERIFICATION FAILED"
    lines.append(f"- {mode}: {d['count']} records, errors {d['errors']}, p50 {lat['p50']:.0f} µs, "
                 f"p99 {lat['p99']:.0f} µs, {d['rate_per_s']:.0f}/s; {verdict}"
                 + (f" (expected {v['expected']}, received {v['received']}, lost {v['lost']}, duplicates "
                    f"{v['duplicates']}, reordered {v['reordered']}, partitions {v['partitions']})" if v else ""))
with open(os.path.join(out, "README.md"), "w") as f:
    f.write("# loadgen on a three-node Apache Kafka 4.4 cluster\n\n"
            "Made by `tools/kafka/cluster-run.sh` (`just kafka-cluster-run`): three KRaft nodes on loopback, "
            "6 partitions per topic (2 per leader), loadgen's native driver. The verification is the point; "
            "the latencies are indicative only when the machine was shared.\n\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok else 1)
PY
exit $rc
