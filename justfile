# StrikeMQ in Rust — the front door. `just --list` explains every recipe.

# Run the broker (release build) with any extra flags, e.g. `just broker --profile tuned`
broker *ARGS:
    cargo run --release -p strikemq -- {{ARGS}}

# Install the test tools that are missing (kcat, kafka-python, Chromium, playwright-core; .ci/test-tools.sh), then run every test: the workspace's and the console's in a real browser
test:
    bash .ci/test-tools.sh
    cargo test --workspace
    cargo build -q -p strikemq
    cd broker/tests/browser && npm test

# The console's browser tests only (headless Chromium against a debug broker)
test-browser:
    bash .ci/test-tools.sh
    cargo build -q -p strikemq
    cd broker/tests/browser && npm test

# Rewrite the console screenshots in docs/console/ (one per page) from a browser test run
screenshots:
    bash .ci/test-tools.sh
    cargo build -q -p strikemq
    cd broker/tests/browser && STRIKEMQ_SCREENSHOT_DIR=docs/console npm test

# Fuzz one target of broker/fuzz for SECONDS (frame_header, request_decode, broker_handle, record_batch, admin_json); see docs/fuzzing.md
fuzz TARGET SECONDS="600":
    bash broker/fuzz/run.sh {{SECONDS}} {{TARGET}}

# Fuzz every target for SECONDS each, two at a time (FUZZ_JOBS to change)
fuzz-all SECONDS="600":
    bash broker/fuzz/run.sh {{SECONDS}}

# Criterion micro benchmarks, then the percentile harness that writes results/micro/ for the release table
bench *ARGS:
    cargo bench -p strikemq --bench storage --bench handle {{ARGS}}
    cargo bench -p strikemq --bench percentiles

# Run an experiment (experiments/NAME.toml) into results/NAME/<date>-<host>/; extra flags e.g. --bootstrap HOST:PORT
experiment NAME *ARGS:
    cargo run --release -q -p experiments -- run {{NAME}} {{ARGS}}

# Issue 13: every wait configuration against a blocking and a busy-polling client, three floors, idle CPU (≈ 9 min)
experiment-spin-vs-block *ARGS:
    cargo run --release -q -p experiments -- run spin-vs-block {{ARGS}}

# Issue 14: batched produce and fetch against storage and bandwidth floors, disk and tmpfs, two passes (≈ 10 min); DISK_DIR must be on a real disk
experiment-throughput DISK_DIR="target" *ARGS:
    cargo run --release -q -p experiments -- run throughput --disk-dir {{DISK_DIR}} {{ARGS}}

# Issue 19: rebalance time, classic (eager, cooperative) vs KIP-848 consumer protocol: a third member joins two, time until all fetch their final assignment; RUNS per protocol, interleaved (≈ 15 s per run); writes results/rebalance/<date>-<host>/
experiment-rebalance RUNS="10" *ARGS:
    python3 experiments/rebalance.py run --runs {{RUNS}} {{ARGS}}

# Issue 16: strikemq baseline and tuned against Apache Kafka 4.4 (defaults, 1 GiB heap) in the same run: produce, fetch, produce->consume, batched, start-to-ready, idle CPU and RSS, floors (≈ 6 min)
experiment-vs-kafka *ARGS:
    python3 tools/kafka/kafka.py resolve
    cargo run --release -q -p experiments -- run vs-kafka {{ARGS}}

# loadgen's produce, verified produce->consume and verified fetch across a 3-node Apache Kafka (6 partitions, 2 per leader); writes results/kafka-cluster/
kafka-cluster-run SECONDS="10":
    bash tools/kafka/cluster-run.sh {{SECONDS}}

# List the experiments with the question each answers
experiments:
    cargo run --release -q -p experiments -- list

# Redraw an experiment's plots from its latest saved results (no rerun)
plots NAME *ARGS:
    cargo run --release -q -p experiments -- plots {{NAME}} {{ARGS}}

# Regenerate results/RELEASE.md and the README's performance table from committed results
release-table:
    cargo run --release -q -p experiments -- release-table

# Execute notebooks/latency.ipynb headless on the committed results (installs notebooks/requirements.txt if missing)
notebook:
    python3 -c "import pandas, matplotlib, nbclient, nbformat, ipykernel" 2>/dev/null || python3 -m pip install -q -r notebooks/requirements.txt
    cd notebooks && python3 -m jupyter execute latency.ipynb

# Format check, lints and tests, as CI runs them
ci:
    bash .ci/run

# Client compatibility matrix: every client x scenario against strikemq and Apache Kafka 4.4 (BROKER=strikemq or kafka for one), writes docs/compat.md
compat BROKER="strikemq,kafka" *ARGS:
    bash compat/install.sh
    python3 compat/run.py --broker {{BROKER}} {{ARGS}}

# librdkafka 2.12.1's own integration suite against a release strikemq (--broker kafka: Apache Kafka 4.4; --set sweep: every broker test); builds the suite once (≈ 10 min), writes results/librdkafka/ (docs/librdkafka-suite.md)
librdkafka-suite *ARGS:
    bash tools/librdkafka-suite/run.sh {{ARGS}}

# A local Apache Kafka 4.4 (KRaft, one combined node, 512 MiB heap) on 127.0.0.1 until Ctrl-C; jars from Maven Central, cached (tools/kafka/kafka.py)
kafka PORT="9092" *ARGS:
    python3 tools/kafka/kafka.py start --foreground --port {{PORT}} {{ARGS}}

# N Apache Kafka nodes (combined broker+controller, an N-voter quorum) on 127.0.0.1 ports PORT..PORT+N-1 until Ctrl-C
kafka-cluster N="3" PORT="19092" *ARGS:
    python3 tools/kafka/kafka.py start --foreground --nodes {{N}} --port {{PORT}} {{ARGS}}

# Crash-consistency loop with N kill -9 iterations per flush mode (CI runs 20); SEED=... replays a schedule
crash N="100" SEED="":
    STRIKEMQ_CRASH_ITERATIONS={{N}} {{ if SEED != "" { "STRIKEMQ_CRASH_SEED=" + SEED } else { "" } }} cargo test -p strikemq --test crash -- --nocapture

# Bounded soak, not part of CI: a release broker, fixed-rate producers, a consumer group and REST peeks for SECONDS; writes results/soak/<date>-<host>/ with a PASS/FAIL verdict
soak SECONDS="600" *ARGS:
    python3 -c "import confluent_kafka" 2>/dev/null || python3 -m pip install -q confluent-kafka
    cargo build --release -q -p strikemq -p loadgen
    python3 experiments/soak.py run --seconds {{SECONDS}} {{ARGS}}
