#!/usr/bin/env bash
# Build the cargo-fuzz targets and run each for a bounded time; exit non-zero on any
# crash, leak, timeout or out-of-memory finding. Used by CI (.ci/run, 60 s a target)
# and by `just fuzz TARGET SECONDS` / `just fuzz-all SECONDS`. See docs/fuzzing.md.
#
#   broker/fuzz/run.sh SECONDS [TARGET...]     (no TARGET: every target)
#
# Environment:
#   FUZZ_JOBS        targets run at once (default: min(cores, 2)); each is one process
#   FUZZ_TOOLCHAIN   nightly | stable (default: nightly when rustup has it). Stable
#                    builds through RUSTC_BOOTSTRAP=1 without a sanitizer (-s none).
#   FUZZ_OUT         build output, working corpus, crash artifacts and logs
#                    (default: $CARGO_TARGET_DIR/fuzz, else <repo>/target/fuzz);
#                    never inside the source tree.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo/broker"

seconds="${1:?usage: broker/fuzz/run.sh SECONDS [TARGET...]}"
shift
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "SECONDS must be a positive integer, got '$seconds'" >&2
    exit 2
fi
all_targets=(frame_header request_decode broker_handle record_batch admin_json)
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    if ! printf '%s\n' "${all_targets[@]}" | grep -qx "$t"; then
        echo "unknown fuzz target '$t' (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done

# Past the fuzzing time, libFuzzer still writes its stats and the process exits; a
# run that overshoots this much is hung and fails.
OUTER_TIMEOUT_MARGIN_S=120
# libFuzzer's per-input limits: a slow input (-timeout) or a big allocation
# (-malloc_limit_mb, -rss_limit_mb) is reported as a finding, like a crash.
INPUT_TIMEOUT_S=10
RSS_LIMIT_MB=2048
# Largest input libFuzzer generates: frames of a few KiB reach every decoder branch
# and the ring buffer's spill path (its ring is 4 KiB).
MAX_LEN_BYTES=16384

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        toolchain=nightly
    else
        toolchain=stable
    fi
fi
case "$toolchain" in
nightly) fuzz=(cargo +nightly fuzz) sanitizer=() ;;
# Stable: cargo-fuzz needs -Z flags, which RUSTC_BOOTSTRAP unlocks; AddressSanitizer
# needs a nightly std, so run without one (panics, aborts, OOM and leaks of the Rust
# code are still found; memory errors in C codecs are not).
stable) fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz) sanitizer=(-s none) ;;
*)
    echo "FUZZ_TOOLCHAIN must be nightly or stable, got '$toolchain'" >&2
    exit 2
    ;;
esac

out="${FUZZ_OUT:-${CARGO_TARGET_DIR:-$repo/target}/fuzz}"
mkdir -p "$out"
echo "fuzz: toolchain $toolchain, ${seconds}s a target, output in $out"
# One build of every target (cargo fuzz build without a name builds them all).
"${fuzz[@]}" build "${sanitizer[@]}" --target-dir "$out/build"

status_dir="$out/status"
rm -rf "$status_dir"
mkdir -p "$status_dir"
run_one() {
    local t="$1" rc=0
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/tmp/$t"
    # The working corpus comes first: libFuzzer adds new inputs there, never to
    # the checked-in seeds. TMPDIR holds broker_handle's data directory, which the
    # fuzzer process cannot delete when it exits; it is removed below.
    TMPDIR="$out/tmp/$t" timeout $((seconds + OUTER_TIMEOUT_MARGIN_S)) \
        "${fuzz[@]}" run "${sanitizer[@]}" --target-dir "$out/build" "$t" \
        "$out/corpus/$t" "$here/seeds/$t" -- \
        -max_total_time="$seconds" -timeout="$INPUT_TIMEOUT_S" \
        -rss_limit_mb="$RSS_LIMIT_MB" -max_len="$MAX_LEN_BYTES" \
        -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 \
        >"$out/$t.log" 2>&1 || rc=$?
    rm -rf "${out:?}/tmp/$t"
    echo "$rc" >"$status_dir/$t"
}

# Each target is one libFuzzer process; at most FUZZ_JOBS at once.
jobs="${FUZZ_JOBS:-$(($(nproc) < 2 ? $(nproc) : 2))}"
running=()
for t in "${targets[@]}"; do
    if [ "${#running[@]}" -ge "$jobs" ]; then
        wait "${running[0]}" || true
        running=("${running[@]:1}")
    fi
    echo "fuzz: $t for ${seconds}s (log: $out/$t.log)"
    run_one "$t" &
    running+=($!)
done
wait

failed=0
printf '\n%-15s %12s %9s %7s %7s %s\n' target executions exec/s cov ft result
for t in "${targets[@]}"; do
    log="$out/$t.log"
    rc="$(cat "$status_dir/$t" 2>/dev/null || echo missing)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    last="$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)"
    cov="$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")"
    if [ "$rc" = 0 ]; then
        result=ok
    elif [ "$rc" = 124 ]; then
        result="HUNG (outer timeout)"
    else
        result="FAILED (exit $rc)"
    fi
    printf '%-15s %12s %9s %7s %7s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
    if [ "$rc" != 0 ]; then
        failed=1
        echo "--- $t: last lines of $log" >&2
        tail -n 40 "$log" >&2
        echo "--- crashing inputs (copy into broker/fuzz/regressions/$t/ once fixed):" >&2
        ls -l "$out/artifacts/$t" >&2 || true
    fi
done
exit "$failed"
