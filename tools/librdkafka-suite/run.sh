#!/usr/bin/env bash
# librdkafka's own integration suite (its tests/ folder, 2.12.1 as bundled by the
# rdkafka-sys crate) against a strikemq on loopback, or against Apache Kafka 4.4.
#
#   tools/librdkafka-suite/run.sh [--broker strikemq|kafka] [--set focus|sweep]
#                                 [--tests "0103 0011 ..."] [--timeout SECONDS]
#                                 [--budget SECONDS] [--out DIR] [--bin PATH] [--quick]
#
# 1. Copies the bundled librdkafka tree to ~/.cache/strikemq/librdkafka-2.12.1 (never
#    touches the cargo registry), configures it with what the machine has (no SSL,
#    GSSAPI, curl: nothing is downloaded) and builds librdkafka and tests/test-runner
#    once (a stamp file says it is done; ≈ 10 min on a busy 2-vCPU VM).
# 2. Starts the broker: a release strikemq (cargo build --release) on 127.0.0.1 with a
#    temp data dir, or `tools/kafka/kafka.py start`, both with the settings of the
#    suite's "default" scenario: topics auto-created with 4 partitions.
# 3. Runs each test number with `timeout` (TESTS=NNNN ./test-runner -L -p1: the tests of
#    that number that need a broker; the mock-cluster "local" ones are not ours),
#    stops when the total budget is spent, then stops the broker.
# 4. Writes results/librdkafka/<date>-<host>[-kafka]/: results.tsv (one line per test:
#    name, state, seconds, reason), failures/<name>.txt (the last lines of a failing
#    test's log), meta.json (librdkafka version, broker and its commit, load average).
#
# --quick passes the runner's -Q (fewer messages, shorter waits; what librdkafka's CI
# runs). --bin runs that strikemq binary instead of building a release one.
#
# What differs from librdkafka's own setup (a 3-broker trivup cluster):
# - patches/0001: topics the tests create ask for replication factor 3; it is capped
#   at TEST_REPLICATION_FACTOR_MAX (1: one broker, strikemq or Kafka alike);
# - KAFKA_PATH is a stand-in: bin/kafka-topics.sh is kafka-topics.py (confluent-kafka
#   AdminClient), bin/kafka-run-class.sh runs java on Apache Kafka 4.4's jars (0098's
#   Java transactional producer);
# - TEST_KAFKA_VERSION=4.4.0 for both brokers (the tests pick Kafka-4 expectations).
#
# Tests that cannot run against one single-node broker without SASL/SSL are not run
# (EXCLUDED below, each with its reason, written to results.tsv as "excluded").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RDK_VERSION="2.12.1"
CACHE="${STRIKEMQ_RDK_CACHE:-$HOME/.cache/strikemq/librdkafka-$RDK_VERSION}"
KAFKA_VERSION="4.4.0"

BROKER=strikemq
SET=focus
TESTS_ARG=""
PER_TEST_TIMEOUT=300
BUDGET=3600
OUT=""
BIN=""
QUICK=""

# Transactions, compaction, admin/ACLs, DeleteRecords, read_committed: the tests whose
# sources name transactional.id, isolation.level, cleanup.policy, DeleteRecords or
# AclBinding and need a broker, plus 0118 (commit during a rebalance) and 0090
# (idempotent producer, which transactions build on).
FOCUS="0011 0055 0061 0077 0081 0090 0098 0103 0118 0129 0137"

# number -> why it is not run against a single-node, plaintext broker.
declare -A EXCLUDED=(
  [0097]="SSL certificate verification: needs an SSL listener (librdkafka built without SSL)"
  [0101]="fetch from follower (KIP-392): needs a multi-broker cluster with racks"
  [0115]="producer authorization errors: needs SASL and an authorizer with ACLs"
  [0119]="consumer authorization errors: needs SASL and an authorizer with ACLs"
  [0126]="OAUTHBEARER/OIDC: needs SASL and an OIDC token endpoint"
  [0135]="SASL credentials: needs a SASL listener"
  [0142]="re-authentication (KIP-368): needs a SASL listener"
)

usage() { sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --broker) BROKER="$2"; shift 2 ;;
    --set) SET="$2"; shift 2 ;;
    --tests) TESTS_ARG="$2"; shift 2 ;;
    --timeout) PER_TEST_TIMEOUT="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --quick) QUICK="-Q"; shift ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
case "$BROKER" in strikemq|kafka) ;; *) echo "run.sh: --broker must be strikemq or kafka, not '$BROKER'" >&2; exit 2 ;; esac
case "$SET" in focus|sweep) ;; *) echo "run.sh: --set must be focus or sweep, not '$SET'" >&2; exit 2 ;; esac
[[ "$PER_TEST_TIMEOUT" =~ ^[0-9]+$ ]] || { echo "run.sh: --timeout must be whole seconds, not '$PER_TEST_TIMEOUT'" >&2; exit 2; }
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "run.sh: --budget must be whole seconds, not '$BUDGET'" >&2; exit 2; }

log() { echo "[librdkafka-suite] $*" >&2; }

# ---------------------------------------------------------------- 1. build the suite
PATCHES="$ROOT/tools/librdkafka-suite/patches"
build_suite() {
  # The stamp holds the hash of our patches: a changed patch rebuilds from a fresh copy.
  local want
  want=$(cat "$PATCHES"/*.patch 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [[ -x "$CACHE/tests/test-runner" && "$(cat "$CACHE/.strikemq-built" 2>/dev/null)" == "$want" ]]; then
    return
  fi
  local src
  src=$(ls -d "$HOME"/.cargo/registry/src/index.crates.io-*/rdkafka-sys-*+"$RDK_VERSION"/librdkafka 2>/dev/null | head -1 || true)
  if [[ -z "$src" ]]; then
    echo "run.sh: librdkafka $RDK_VERSION sources not found in the cargo registry; run 'cargo fetch' in $ROOT first" >&2
    exit 1
  fi
  log "copying $src to $CACHE"
  rm -rf "$CACHE"
  mkdir -p "$(dirname "$CACHE")"
  cp -a "$src" "$CACHE"
  chmod -R u+w "$CACHE"
  local p
  for p in "$PATCHES"/*.patch; do
    [[ -e "$p" ]] || continue
    log "applying $(basename "$p")"
    (cd "$CACHE" && patch -s -p1 <"$p")
  done
  if [[ ! -e /usr/include/rapidjson/schema.h ]]; then
    log "rapidjson headers missing: 0098, 0053, 0110 skip their checks (apt-get install rapidjson-dev)"
  fi
  log "configuring (no SSL, GSSAPI, curl: nothing downloaded)"
  (cd "$CACHE" && ./configure --disable-ssl --disable-gssapi --disable-curl --disable-lz4-ext >strikemq-configure.out 2>&1) \
    || { tail -30 "$CACHE/strikemq-configure.out" >&2; exit 1; }
  log "building librdkafka and tests/test-runner (long the first time)"
  local jobs
  jobs=$(nproc)
  (cd "$CACHE" && nice make -j"$jobs" libs >strikemq-build.out 2>&1 && nice make -C tests -j"$jobs" build >>strikemq-build.out 2>&1) \
    || { tail -30 "$CACHE/strikemq-build.out" >&2; exit 1; }
  echo "$want" >"$CACHE/.strikemq-built"
}

# A stand-in KAFKA_PATH for the tests that shell out to Kafka's tools: 0077, 0052,
# 0045 and 0113 run bin/kafka-topics.sh (here kafka-topics.py: confluent-kafka's
# AdminClient, no client-side config checks), 0098 runs tests/java's
# TransactionProducerCli through bin/kafka-run-class.sh on Apache Kafka 4.4's client
# jars (`tools/kafka/kafka.py resolve`, cached in ~/.m2).
kafka_path_standin() {
  local kp="$CACHE/kafka-path"
  rm -rf "$kp"
  mkdir -p "$kp/libs" "$kp/bin"
  ln -sf "$ROOT/tools/librdkafka-suite/kafka-topics.py" "$kp/bin/kafka-topics.sh"
  python3 -c 'import confluent_kafka' 2>/dev/null \
    || log "no confluent_kafka for python3: tests that run kafka-topics.sh fail (pip install confluent-kafka)"
  if command -v java >/dev/null && command -v javac >/dev/null; then
    local cpdir jar
    cpdir=$(python3 "$ROOT/tools/kafka/kafka.py" resolve 2>/dev/null | sed -n 's/.*class path: \([^ ]*\).*/\1/p' | tail -1)
    if [[ -n "$cpdir" && -d "$cpdir" ]]; then
      for jar in "$cpdir"/*.jar; do ln -sf "$jar" "$kp/libs/"; done
    else
      log "tools/kafka/kafka.py resolve failed: 0098's Java producer cannot run"
    fi
  else
    log "no java/javac: 0098's Java producer cannot run"
  fi
  cat >"$kp/bin/kafka-run-class.sh" <<'EOF'
#!/usr/bin/env bash
# Stand-in for Kafka's bin/kafka-run-class.sh: java on libs/* plus $CLASSPATH.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec java -Xmx256m -cp "${CLASSPATH:+$CLASSPATH:}$here/libs/*" "$@"
EOF
  chmod +x "$kp/bin/kafka-run-class.sh"
  echo "$kp"
}

# ---------------------------------------------------------------- 2. the broker
BROKER_PID=""
BROKER_DIR=""
# The suite's scenario: "default" (topics auto-created), then "noautocreate" for the
# tests that need a broker without auto-creation (a second pass on a fresh broker).
SCENARIO=default
AUTO_CREATE=true
BOOTSTRAP=""
BROKER_DESC=""

start_strikemq() {
  if [[ -z "$BIN" ]]; then
    log "building a release strikemq"
    (cd "$ROOT" && cargo build --release -q -p strikemq)
    BIN="$ROOT/target/release/strikemq"
  fi
  BROKER_DIR=$(mktemp -d /tmp/strikemq-rdk-suite.XXXXXX)
  local ready="$BROKER_DIR/stdout"
  "$BIN" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$BROKER_DIR/data" \
    --set auto_create_topics="$AUTO_CREATE" --set default_partitions=4 \
    >"$ready" 2>"$BROKER_DIR/stderr" </dev/null &
  BROKER_PID=$!
  local i
  for i in $(seq 1 100); do
    if grep -q '^strikemq ready ' "$ready" 2>/dev/null; then break; fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      cat "$BROKER_DIR/stderr" >&2; echo "run.sh: strikemq exited at start" >&2; exit 1
    fi
    sleep 0.1
  done
  BOOTSTRAP=$(grep -m1 '^strikemq ready ' "$ready" | tr ' ' '\n' | sed -n 's/^kafka=//p')
  [[ -n "$BOOTSTRAP" ]] || { echo "run.sh: no ready line from strikemq" >&2; stop_broker; exit 1; }
  BROKER_DESC="strikemq $("$BIN" --version | awk '{print $2}') ($BIN)"
}

start_kafka() {
  BROKER_DIR=$(mktemp -d /tmp/kafka-rdk-suite.XXXXXX)
  local line
  line=$(python3 "$ROOT/tools/kafka/kafka.py" start --dir "$BROKER_DIR/kafka" \
    --set num.partitions=4 --set auto.create.topics.enable="$AUTO_CREATE" \
    --set group.initial.rebalance.delay.ms=3000 | grep '^kafka ready' | tail -1)
  BOOTSTRAP=$(echo "$line" | tr ' ' '\n' | sed -n 's/^bootstrap=//p')
  [[ -n "$BOOTSTRAP" ]] || { echo "run.sh: Apache Kafka did not start" >&2; exit 1; }
  BROKER_DESC="Apache Kafka $KAFKA_VERSION (tools/kafka/kafka.py)"
}

stop_broker() {
  if [[ "$BROKER" == kafka && -n "$BROKER_DIR" && -d "$BROKER_DIR/kafka" ]]; then
    python3 "$ROOT/tools/kafka/kafka.py" stop --dir "$BROKER_DIR/kafka" >/dev/null 2>&1 || true
  fi
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
  if [[ -n "$BROKER_DIR" && -d "$BROKER_DIR" ]]; then
    # Keep the broker's own log next to the results before the temp dir goes.
    [[ -f "$BROKER_DIR/stderr" && -n "${RESULTS:-}" ]] && tail -200 "$BROKER_DIR/stderr" >"$RESULTS/broker-log-tail.txt" || true
    rm -rf "$BROKER_DIR"
  fi
  BROKER_DIR=""
}
trap stop_broker EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the list
# test.c's table, one test a line: name, then its flags and scenario as written.
test_table() {
  awk '/^struct test tests\[\] = \{/,/^\};/' "$CACHE/tests/test.c" \
    | tr '\n' ' ' | sed 's/_TEST(/\n_TEST(/g' | grep '^_TEST(' \
    | sed -n 's/^_TEST(\([0-9]\{4\}_[A-Za-z0-9_]*\),\(.*\)/\1\t\2/p'
}
# Every test number with a test that needs a broker (not TEST_F_LOCAL, not manual).
all_broker_tests() {
  test_table | grep -v 'TEST_F_LOCAL' | grep -v 'TEST_F_MANUAL' | cut -c1-4 | sort -u
}
# Why the runner skipped NAME without saying (its summary leaves the reason empty or
# generic): another scenario, or librdkafka's own known-issue flag.
skip_reason() {
  local line
  line=$(test_table | grep -P "^$1\t" | head -1)
  local scenario=""
  [[ "$line" =~ scenario\ *=\ *\"([a-z0-9,]+)\" ]] && scenario=${BASH_REMATCH[1]}
  if [[ -n "$scenario" && "$scenario" != *default* ]]; then
    echo "needs the $scenario scenario (a broker without topic auto-creation): not run here"
  elif [[ "$line" == *TEST_F_KNOWN_ISSUE* ]]; then
    echo "librdkafka marks it a known issue (TEST_F_KNOWN_ISSUE): not run by its runner"
  fi
}

# ---------------------------------------------------------------- 3. run
build_suite

if [[ -n "$TESTS_ARG" ]]; then
  LIST=$(echo "$TESTS_ARG" | tr ', ' '\n\n' | grep -v '^$' || true)
elif [[ "$SET" == sweep ]]; then
  LIST=$(all_broker_tests)
else
  LIST=$(echo "$FOCUS" | tr ' ' '\n')
fi
for n in $LIST; do
  [[ "$n" =~ ^[0-9]{4}$ ]] || { echo "run.sh: a test is a 4-digit number, not '$n'" >&2; exit 2; }
done

HOST=$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)
if [[ -z "$OUT" ]]; then
  suffix=""
  [[ "$BROKER" == kafka ]] && suffix="-kafka"
  [[ "$SET" == sweep && -z "$TESTS_ARG" ]] && suffix="$suffix-sweep"
  OUT="$ROOT/results/librdkafka/$(date +%Y-%m-%d)-$HOST$suffix"
fi
RESULTS="$OUT"
rm -rf "$RESULTS"
mkdir -p "$RESULTS/failures"
LOGS="$CACHE/logs/$(basename "$RESULTS")"
rm -rf "$LOGS"
mkdir -p "$LOGS"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# The commit the broker was built from (taken now: the tree may move during a long run).
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[[ -n "$(git -C "$ROOT" status --porcelain -- broker 2>/dev/null)" ]] && dirty=true
if [[ "$BROKER" == kafka ]]; then start_kafka; else start_strikemq; fi
log "broker: $BROKER_DESC at $BOOTSTRAP"

TEST_CONF="$LOGS/test.conf"
cat >"$TEST_CONF" <<EOF
# Written by tools/librdkafka-suite/run.sh
bootstrap.servers=$BOOTSTRAP
broker.address.family=v4
test.timeout.multiplier=${RDK_TIMEOUT_MULTIPLIER:-2}
EOF

JAVA_KAFKA_PATH=""
if JAVA_KAFKA_PATH=$(kafka_path_standin); then
  log "Kafka's tools for the suite: KAFKA_PATH=$JAVA_KAFKA_PATH"
else
  JAVA_KAFKA_PATH=""
fi

strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

printf 'test\tstate\tseconds\treason\n' >"$RESULTS/results.tsv"
START=$(date +%s)
# Names of the tests of another scenario than the default, by test.c's table.
noauto_names=$(test_table | grep -P '\tscenario *= *"noautocreate"|\t.*\.scenario *= *"noautocreate"' | cut -f1)
noauto_numbers=$(for n in $LIST; do
  [[ -n "${EXCLUDED[$n]:-}" ]] && continue
  if grep -q "^$n" <<<"$noauto_names"; then echo "$n"; fi
done | sort -u)

run_pass() {
for n in $1; do
  if [[ -n "${EXCLUDED[$n]:-}" ]]; then
    [[ "$SCENARIO" == default ]] && printf '%s\texcluded\t0\t%s\n' "$n" "${EXCLUDED[$n]}" >>"$RESULTS/results.tsv"
    continue
  fi
  now=$(date +%s)
  left=$((BUDGET - (now - START)))
  if (( left <= 10 )); then
    printf '%s\tnot-run\t0\t%s\n' "$n" "total budget of ${BUDGET}s spent" >>"$RESULTS/results.tsv"
    continue
  fi
  t=$PER_TEST_TIMEOUT
  (( t > left )) && t=$left
  log "test $n (timeout ${t}s)"
  tlog="$LOGS/$n.log"
  [[ "$SCENARIO" == default ]] || tlog="$LOGS/$n-$SCENARIO.log"
  t0=$(date +%s.%N)
  set +e
  (cd "$CACHE/tests" && \
    env TESTS="$n" TEST_KAFKA_VERSION="$KAFKA_VERSION" RDKAFKA_TEST_CONF="$TEST_CONF" \
      TEST_SCENARIO="$SCENARIO" \
      TEST_REPLICATION_FACTOR_MAX=1 \
      ${JAVA_KAFKA_PATH:+KAFKA_PATH="$JAVA_KAFKA_PATH" BROKERS="$BOOTSTRAP"} \
      LD_LIBRARY_PATH="$CACHE/src:$CACHE/src-cpp" \
      timeout -k 10 "$t" ./test-runner -L -p1 $QUICK) >"$tlog.raw" 2>&1
  rc=$?
  set -e
  t1=$(date +%s.%N)
  strip_ansi <"$tlog.raw" >"$tlog"
  rm -f "$tlog.raw"
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  # The runner's summary table, one row per test name of that number:
  #   | NAME | PASSED|FAILED|SKIPPED|RUNNING | 12.345s | reason
  # (mock-cluster "local" tests show as skipped by -L: not listed). Killed by the
  # timeout, there is no table: every test that started is a timeout.
  rows=$(grep -E "^\| +${n}_[A-Za-z0-9_]+ +\|" "$tlog" \
    | awk -F'|' '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); gsub(/^ +|s? +$/, "", $4);
                   r = $5; for (i = 6; i <= NF; i++) r = r "|" $i; gsub(/^ +| +$/, "", r);
                   printf "%s\t%s\t%s\t%s\n", $2, $3, $4, r }' \
    || true)
  # Mock-cluster ("local") tests share numbers with broker tests; -L skips them.
  local_names=$(test_table | grep 'TEST_F_LOCAL' | cut -f1)
  rows=$(while IFS=$'\t' read -r name st nsecs why; do
    [[ -z "$name" ]] && continue
    grep -qx "$name" <<<"$local_names" && continue
    # Each scenario pass reports its own tests.
    if grep -qx "$name" <<<"$noauto_names"; then
      [[ "$SCENARIO" == default && -n "$noauto_numbers" ]] && continue
    else
      [[ "$SCENARIO" != default ]] && continue
    fi
    if [[ "$st" == SKIPPED && ( -z "$why" || "$why" == *"negative test flags"* ) ]]; then
      r=$(skip_reason "$name")
      [[ -n "$r" ]] && why="$r"
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$st" "$nsecs" "$why"
  done <<<"$rows")
  if [[ -z "$rows" ]] && ! grep -q ' SUMMARY$' "$tlog"; then
    started=$(grep -oE "=+ Running test ${n}_[A-Za-z0-9_]+" "$tlog" | awk '{print $NF}' | sort -u || true)
    [[ -z "$started" ]] && started="$n"
    # A failed test makes the runner abort (test_fail0's assert) before its table.
    rows=$(for name in $started; do
      why=$(grep -m1 -A1 "^### Test \"$name[\" ]" "$tlog" | tail -1 || true)
      if [[ -n "$why" ]]; then st=FAILED
      elif (( rc == 124 || rc == 137 )); then st=RUNNING; why="killed after ${t}s"
      elif grep -qE "=+ Test $name PASSED" "$tlog"; then st=PASSED
      elif grep -qE "=+ Test $name SKIPPED" "$tlog"; then st=SKIPPED
      else st=FAILED; why="runner exited $rc without a summary"; fi
      printf '%s\t%s\t%s\t%s\n' "$name" "$st" "$secs" "$why"
    done)
  fi
  while IFS=$'\t' read -r name st nsecs why; do
    [[ -z "$name" ]] && continue
    case "$st" in
      PASSED) state=pass ;;
      SKIPPED) state=skip ;;
      FAILED) state=fail ;;
      RUNNING) state=timeout ;;
      *) state=$(echo "$st" | tr 'A-Z' 'a-z') ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$state" "$nsecs" "$(echo "$why" | cut -c1-300)" >>"$RESULTS/results.tsv"
    if [[ "$state" == fail || "$state" == timeout ]]; then
      tail -120 "$tlog" >"$RESULTS/failures/$name.txt"
    fi
  done <<<"$rows"
  log "  $(grep -P "^${n}[_\t]" "$RESULTS/results.tsv" | cut -f1,2 | tr '\t\n' ' ')"
  if ! { [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; } && [[ "$BROKER" == strikemq ]]; then
    log "strikemq is gone after test $n: restarting it"
    tail -50 "$BROKER_DIR/stderr" >"$RESULTS/failures/broker-exit-after-$n.txt" 2>/dev/null || true
    echo "run.sh: strikemq exited during test $n" >&2
    stop_broker
    start_strikemq
    sed -i "s/^bootstrap.servers=.*/bootstrap.servers=$BOOTSTRAP/" "$TEST_CONF"
  fi
done
}

run_pass "$LIST"
if [[ -n "$noauto_numbers" ]]; then
  log "scenario noautocreate: a fresh broker without topic auto-creation"
  stop_broker
  SCENARIO=noautocreate
  AUTO_CREATE=false
  if [[ "$BROKER" == kafka ]]; then start_kafka; else start_strikemq; fi
  sed -i "s/^bootstrap.servers=.*/bootstrap.servers=$BOOTSTRAP/" "$TEST_CONF"
  run_pass "$noauto_numbers"
fi
END=$(date +%s)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
stop_broker

# ---------------------------------------------------------------- 4. meta.json
python3 - "$RESULTS" <<EOF
import csv, json, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(out + "/results.tsv"), delimiter="\t"))
counts = {}
for r in rows:
    counts[r["state"]] = counts.get(r["state"], 0) + 1
meta = {
    "librdkafka_version": "$RDK_VERSION",
    "librdkafka_configure": "--disable-ssl --disable-gssapi --disable-curl --disable-lz4-ext",
    "test_runner_args": "-L -p1 $QUICK (TESTS=<number>, one runner per number)",
    "test_kafka_version": "$KAFKA_VERSION",
    "test_timeout_multiplier": "${RDK_TIMEOUT_MULTIPLIER:-2}",
    "broker": "$BROKER",
    "broker_desc": "$BROKER_DESC",
    "broker_settings": "auto-create topics (off for the noautocreate scenario pass), 4 partitions by default, Kafka's initial rebalance delay (3000 ms)",
    "broker_commit": "$commit",
    "broker_dirty": "$dirty" == "true",
    "set": "${TESTS_ARG:-$SET}",
    "per_test_timeout_s": $PER_TEST_TIMEOUT,
    "budget_s": $BUDGET,
    "wall_s": $((END - START)),
    "host": "$HOST",
    "nproc": $(nproc),
    "kernel": "$(uname -r)",
    "loadavg_before": "$LOAD_BEFORE",
    "loadavg_after": "$LOAD_AFTER",
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
    "counts": counts,
}
json.dump(meta, open(out + "/meta.json", "w"), indent=2)
print(json.dumps(counts))
EOF
rmdir "$RESULTS/failures" 2>/dev/null || true
log "results in $RESULTS (full logs in $LOGS)"
column -t -s $'\t' "$RESULTS/results.tsv" >&2 || cat "$RESULTS/results.tsv" >&2
