#!/usr/bin/env bash
# kcat (Debian's kcat 1.7, librdkafka 2.0.2) driver of the compatibility matrix.
# Usage: kcat.sh BOOTSTRAP SCENARIO TAG; prints one JSON line (see compat/python/common.py).
# kcat has no admin commands: where a scenario needs a topic with 2 partitions (or a
# group's committed offsets) it asks the broker's REST admin API ($COMPAT_ADMIN), or,
# against a broker without one (Apache Kafka: $COMPAT_ADMIN empty), confluent-kafka's
# AdminClient; the `admin` scenario is "not supported by the client". kcat -H sets the same headers on every record.
set -uo pipefail
B=$1
SCENARIO=$2
TAG=$3
T="compat-${TAG}-${SCENARIO//_/-}"
W=$(mktemp -d)
trap 'jobs -p | xargs -r kill 2>/dev/null; rm -rf "$W"' EXIT
VERSION=$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/\1 (librdkafka \2)/p')

emit() { # result detail
    python3 -c 'import json,sys; print(json.dumps({"client":"kcat","version":sys.argv[1],"scenario":sys.argv[2],"result":sys.argv[3],"detail":sys.argv[4]}))' \
        "$VERSION" "$SCENARIO" "$1" "$2"
    exit 0
}
fail() { emit fail "$*"; }
K() { timeout 30 kcat -b "$B" "$@"; }

# N records "k<i><TAB>value-<i>-x..." (the value pattern of common.py)
gen() { # n prefix
    python3 -c 'import sys
n,p=int(sys.argv[1]),sys.argv[2]
for i in range(n): print(p + str(i) + "\tvalue-" + str(i) + "-" + "x" * (i % 17))' "$1" "${2:-k}"
}
produce() { # topic n [kcat args...]
    local topic=$1 n=$2
    shift 2
    gen "$n" >"$W/in"
    K -P -t "$topic" -p 0 -K $'\t' -H src=compat -H tag=kcat "$@" "$W/in" 2>"$W/perr" -l ||
        fail "produce: $(tail -c 400 "$W/perr")"
    # -l reads the file line by line (one record per line)
}
readback() { # topic n first offset [kcat args...]: compare records first..first+n-1 with gen
    local topic=$1 n=$2 first=$3 off=$4
    shift 4
    K -C -t "$topic" -p 0 -o "$off" -c "$n" -e -q -f '%o\t%k\t%s\t%h\n' "$@" >"$W/out" 2>"$W/cerr" ||
        fail "consume: $(tail -c 400 "$W/cerr")"
    python3 - "$W/out" "$n" "$first" <<'PY' || fail "$(cat "$W/diff" 2>/dev/null || echo "readback check crashed")"
import sys
path, n, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
got = open(path).read().splitlines()
want = [f"{off+i}\tk{off+i}\tvalue-{off+i}-{'x'*((off+i)%17)}\tsrc=compat,tag=kcat" for i in range(n)]
bad = None
if len(got) != n:
    bad = f"expected {n} records, got {len(got)}"
else:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            bad = f"first difference at #{i}: expected {w!r}, got {g!r}"
            break
if bad:
    open(path[: -len("out")] + "diff", "w").write(bad)
    sys.exit(1)
PY
}
admin_api() { # method path [json]
    python3 - "${COMPAT_ADMIN:-}" "$B" "$@" <<'PY'
import json, sys, urllib.request
addr, bootstrap, method, path = sys.argv[1:5]
body = sys.argv[5].encode() if len(sys.argv) > 5 else None
if addr:
    req = urllib.request.Request(f"http://{addr}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    print(urllib.request.urlopen(req, timeout=10).read().decode())
    sys.exit(0)
# No REST admin (Apache Kafka): the same two calls through a Kafka AdminClient, answered
# in the REST API's shape.
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": bootstrap})
if method == "POST" and path == "/v1/topics":
    t = json.loads(body)
    a.create_topics([NewTopic(t["name"], t["partitions"], 1)])[t["name"]].result(10)
    print("{}")
elif method == "GET" and path.startswith("/v1/groups/"):
    g = path[len("/v1/groups/"):]
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result(10)
    print(json.dumps({"offsets": [{"topic": tp.topic, "partition": tp.partition, "committed_offset": tp.offset}
                                  for tp in res.topic_partitions]}))
else:
    sys.exit(f"no AdminClient fallback for {method} {path}")
PY
}

case "$SCENARIO" in
metadata)
    produce "$T" 1
    K -L -J -t "$T" >"$W/md" 2>"$W/err" || fail "kcat -L: $(tail -c 300 "$W/err")"
    python3 - "$W/md" "$T" <<'PY' || fail "metadata: $(cat "$W/md" | head -c 400)"
import json, sys
md = json.load(open(sys.argv[1]))
t = [t for t in md["topics"] if t["topic"] == sys.argv[2]]
assert t and [p["partition"] for p in t[0]["partitions"]] == [0], t
assert md["brokers"], md
PY
    emit pass "kcat -L -J: topic with 1 partition, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["brokers"]))' "$W/md") broker(s)"
    ;;
produce_consume)
    produce "$T" 1000
    readback "$T" 1000 0 beginning
    emit pass "1000 keyed records (-K), headers via -H (the same on every record), read back exactly"
    ;;
compression_gzip | compression_snappy | compression_lz4 | compression_zstd)
    codec=${SCENARIO#compression_}
    produce "$T" 300 -z "$codec"
    readback "$T" 300 0 beginning
    emit pass "300 records, -z $codec"
    ;;
group_commit)
    T="compat-${TAG}-group"
    admin_api POST /v1/topics "{\"name\":\"$T\",\"partitions\":2}" >/dev/null || fail "REST create topic"
    for m in a b; do
        timeout 60 kcat -u -b "$B" -G "$T-group" -X auto.offset.reset=earliest -X session.timeout.ms=6000 \
            -X heartbeat.interval.ms=500 -f '%p %o\n' "$T" >"$W/$m.out" 2>"$W/$m.err" &
        echo $! >"$W/$m.pid"
    done
    assigned() { grep 'assigned:' "$W/$1.err" | tail -n1 | grep -q '\['; }
    for _ in $(seq 300); do
        assigned a && assigned b && break
        sleep 0.1
    done
    assigned a && assigned b || fail "both members never held partitions: a: $(grep -h 'rebalanced' "$W/a.err" | tail -n1) b: $(grep -h 'rebalanced' "$W/b.err" | tail -n1)"
    for p in 0 1; do
        gen 50 "p$p-" >"$W/in"
        K -P -t "$T" -p "$p" -K $'\t' -l "$W/in" || fail "produce to partition $p"
    done
    for _ in $(seq 300); do
        [ "$(cat "$W/a.out" "$W/b.out" | wc -l)" -ge 100 ] && break
        sleep 0.1
    done
    n=$(cat "$W/a.out" "$W/b.out" | wc -l)
    na=$(wc -l <"$W/a.out")
    kill -TERM "$(cat "$W/a.pid")" "$(cat "$W/b.pid")"
    wait
    [ "$n" -eq 100 ] || fail "consumed $n records, expected 100"
    committed=$(admin_api GET "/v1/groups/$T-group" | python3 -c 'import json,sys
g=json.load(sys.stdin); print(sorted((o["partition"],o["committed_offset"]) for o in g["offsets"]))' 2>&1)
    [ "$committed" = "[(0, 50), (1, 50)]" ] || fail "committed offsets (REST API or AdminClient) $committed"
    emit pass "two kcat -G members, $na+$((n - na)) records, committed on close (auto commit): $committed"
    ;;
group_resume)
    T="compat-${TAG}-group"
    for p in 0 1; do
        gen 10 "r$p-" >"$W/in"
        K -P -t "$T" -p "$p" -K $'\t' -l "$W/in" || fail "produce to partition $p"
    done
    timeout 60 kcat -u -b "$B" -G "$T-group" -X auto.offset.reset=earliest -f '%p %o\n' "$T" >"$W/c.out" 2>"$W/c.err" &
    pid=$!
    for _ in $(seq 300); do
        [ "$(wc -l <"$W/c.out")" -ge 20 ] && break
        sleep 0.1
    done
    sleep 1
    kill -TERM "$pid"
    wait
    got=$(sort -n -k1 -k2 "$W/c.out" | tr '\n' ' ')
    want=$(for p in 0 1; do for o in $(seq 50 59); do echo "$p $o"; done; done | tr '\n' ' ')
    [ "$got" = "$want" ] || fail "after restart consumed: $(echo "$got" | head -c 200) ($(wc -l <"$W/c.out") records), expected offsets 50..59 of each partition"
    emit pass "fresh member resumed at the committed offsets after a broker restart"
    ;;
admin)
    emit unsupported "kcat has no admin commands (create/delete topics, create partitions)"
    ;;
idempotent)
    produce "$T" 1000 -X enable.idempotence=true
    readback "$T" 1000 0 beginning
    emit pass "-X enable.idempotence=true, 1000 records exactly once"
    ;;
crc)
    produce "$T" 300 -z lz4
    readback "$T" 300 0 beginning -X check.crcs=true
    emit pass "-X check.crcs=true on lz4 batches"
    ;;
large_record)
    head -c 1048576 /dev/urandom >"$W/big"
    K -P -t "$T" -p 0 -X message.max.bytes=4194304 "$W/big" 2>"$W/perr" || fail "produce: $(tail -c 300 "$W/perr")"
    K -C -t "$T" -p 0 -o beginning -c 1 -e -q -f '%s' >"$W/got" 2>"$W/cerr" || fail "consume: $(tail -c 300 "$W/cerr")"
    cmp -s "$W/big" "$W/got" || fail "1 MiB record not read back ($(wc -c <"$W/got") bytes)"
    emit pass "1 MiB value (a file as one record)"
    ;;
offset_seek)
    produce "$T" 100
    readback "$T" 58 42 42
    emit pass "-o 42: offsets 42..99"
    ;;
timestamp)
    # kcat cannot set record timestamps: two batches a second apart, the second's
    # CreateTime is at least ts.
    gen 100 >"$W/all"
    head -n 50 "$W/all" >"$W/in1"
    tail -n 50 "$W/all" >"$W/in2"
    K -P -t "$T" -p 0 -K $'\t' -H src=compat -H tag=kcat -l "$W/in1" || fail "produce 1"
    sleep 1.1
    ts=$(python3 -c 'import time; print(int(time.time()*1000))')
    sleep 0.05
    K -P -t "$T" -p 0 -K $'\t' -H src=compat -H tag=kcat -l "$W/in2" || fail "produce 2"
    q=$(K -Q -t "$T:0:$ts" 2>&1)
    echo "$q" | grep -q "offset 50" || fail "kcat -Q $T:0:$ts: $q (expected offset 50)"
    readback "$T" 50 50 "s@$ts"
    emit pass "-Q (offsets for times) -> 50; -o s@ts consumed 50..99"
    ;;
no_autocreate)
    out=$(echo v | K -P -t "$T" -X message.timeout.ms=8000 -X topic.metadata.propagation.max.ms=2000 2>&1)
    rc=$?
    [ "$rc" -ne 0 ] || echo "$out" | grep -qi "error" || fail "produce to a missing topic succeeded with auto-create off (rc $rc): $out"
    K -L -J >"$W/md" 2>/dev/null
    grep -q "\"$T\"" "$W/md" && fail "topic was created"
    echo "$out" | grep -Eqi "unknown topic|UNKNOWN_TOPIC" || fail "unexpected error (rc $rc): $out"
    emit pass "$(echo "$out" | grep -Ei 'unknown topic' | head -n1 | cut -c1-200)"
    ;;
*)
    emit unsupported "not implemented for this client"
    ;;
esac
