#!/usr/bin/env bash
# Installs what the tests use, only what is missing: kcat (Debian), kafka-python and
# confluent-kafka >= 2.12 (PyPI), Chromium (Debian) and the browser tests' npm packages (playwright-core,
# broker/tests/browser/package-lock.json). `just test` runs it first, so a fresh
# Debian/Ubuntu machine gets the whole suite with one command. Safe to run again.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

# Debian packages: kcat for the kcat tests and the browser tests; chromium for the
# browser tests; python3-pip for kafka-python; nodejs/npm for playwright-core.
wanted=(kcat chromium python3-pip)
command -v npm >/dev/null 2>&1 || wanted+=(nodejs npm)
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test tools: installing ${missing[*]} (apt-get)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! python3 -c "import kafka" >/dev/null 2>&1; then
    echo "test tools: installing kafka-python (pip)"
    # Debian's system Python refuses plain pip installs (PEP 668); then per user.
    python3 -m pip install --quiet kafka-python ||
        python3 -m pip install --quiet --user --break-system-packages kafka-python
fi

if ! python3 -c "import confluent_kafka as c, sys; sys.exit(0 if c.libversion()[1] >= 0x020c0000 else 1)" >/dev/null 2>&1; then
    echo "test tools: installing confluent-kafka >= 2.12 (pip; KIP-848 group tests)"
    python3 -m pip install --quiet 'confluent-kafka>=2.12,<3' ||
        python3 -m pip install --quiet --user --break-system-packages 'confluent-kafka>=2.12,<3'
fi

browser=broker/tests/browser
if [ ! -d "$browser/node_modules/playwright-core" ] ||
    [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
    echo "test tools: installing the browser tests' npm packages (npm ci)"
    (cd "$browser" && npm ci --no-audit --no-fund --quiet)
fi
echo "test tools: kcat, kafka-python, confluent-kafka, chromium and playwright-core present"
