#!/usr/bin/env bash
# Installs the clients of the compatibility matrix, only what is missing:
#   Debian: kcat (librdkafka 2.0.2), golang-go + golang-github-shopify-sarama-dev (GOPATH mode)
#   PyPI:   confluent-kafka, kafka-python, aiokafka
#   npm:    kafkajs (compat/node, from its package-lock.json)
#   Debian: a JDK and Maven when missing (the machine image has JDK 17 and Maven 3.8)
#   Maven Central: Apache Kafka 4.4 for tools/kafka (the reference broker) and
#           kafka-clients + kafka-streams 4.4 for compat/java, into ~/.m2
#   Go module proxy: IBM/sarama and franz-go for compat/go/modern (go.sum pins them)
# The rdkafka crate is built by cargo (compat/rdkafka in the workspace).
# Safe to run again and again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

run() {
    printf '+ %s\n' "$*"
    "$@"
}
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        run "$@"
    elif command -v sudo >/dev/null 2>&1; then
        run sudo "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

missing=()
for pkg in kcat golang-go golang-github-shopify-sarama-dev gcc nodejs npm python3-pip default-jdk-headless maven; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        # node/npm/pip may come from elsewhere (nvm, pyenv): only install what has no command.
        case "$pkg" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
        python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
        golang-go) command -v go >/dev/null 2>&1 && continue ;;
        default-jdk-headless) command -v javac >/dev/null 2>&1 && continue ;;
        maven) command -v mvn >/dev/null 2>&1 && continue ;;
        esac
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "Debian packages present"
fi

pip_missing=()
python3 -c "import confluent_kafka" >/dev/null 2>&1 || pip_missing+=("confluent-kafka>=2.12,<3")
python3 -c "import kafka" >/dev/null 2>&1 || pip_missing+=("kafka-python>=2")
python3 -c "import aiokafka" >/dev/null 2>&1 || pip_missing+=("aiokafka")
# kafka-python's optional codecs (it offers snappy, lz4 and zstd through these).
python3 -c "import snappy" >/dev/null 2>&1 || pip_missing+=("python-snappy")
python3 -c "import lz4.frame" >/dev/null 2>&1 || pip_missing+=("lz4")
python3 -c "import zstandard" >/dev/null 2>&1 || pip_missing+=("zstandard")
if [ "${#pip_missing[@]}" -gt 0 ]; then
    # Debian's system Python refuses plain pip installs (PEP 668); a CI machine is
    # disposable, so override that there.
    run python3 -m pip install --quiet "${pip_missing[@]}" ||
        run python3 -m pip install --quiet --break-system-packages "${pip_missing[@]}"
else
    echo "Python clients present"
fi

if [ -d node/node_modules/kafkajs ]; then
    echo "kafkajs present"
else
    (cd node && run npm ci --no-audit --no-fund --loglevel=error)
fi

# Maven Central: the reference broker's jars (cached under ~/.cache/strikemq) and the
# Java driver's dependencies; the Java driver itself is built by compat/run.py.
run python3 ../tools/kafka/kafka.py resolve
(cd java && run mvn -B -q dependency:go-offline >/dev/null)
# Go module proxy: the modules of compat/go/modern (built by compat/run.py).
(cd go/modern && run go mod download)
