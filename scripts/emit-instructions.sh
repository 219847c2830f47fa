#!/usr/bin/env bash
# Counts the instructions the logging call spends in djehouty: callgrind runs
# one bench-peers row and counts what executes inside DirectProcessor's emit
# (mapping, encoding, staging), per record logged.
#
# On a shared 2-core machine the rows' CPU time moves by 10% between runs of
# the same binary; this count repeats within 0.1%, so it shows a hot-path
# change of a few percent that the timings hide. It counts instructions, not
# time: cache misses and waits do not show.
#
#   scripts/emit-instructions.sh                          # GELF over TLS, 100,000 records
#   scripts/emit-instructions.sh direct-ltsv-tcp 50000    # another row, another count
set -euo pipefail
cd "$(dirname "$0")/.."

row="${1:-direct-gelf-tls}"
records="${2:-100000}"

command -v valgrind >/dev/null 2>&1 || {
    echo "valgrind is missing: apt-get install valgrind" >&2
    exit 1
}
cargo build --release --locked -p bench-peers >&2
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
    --toggle-collect='*DirectProcessor*LogProcessor*emit*' \
    target/release/bench-peers --records "$records" --repeat 1 --only "$row" \
    >"$out/run.log" 2>&1 || {
    cat "$out/run.log" >&2
    exit 1
}
collected="$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/run.log")"
[ "${collected:-0}" -gt 0 ] || {
    cat "$out/run.log" >&2
    echo "nothing ran in DirectProcessor::emit: is $row a direct row?" >&2
    exit 1
}
grep -q "passed, 0 failed" "$out/run.log" || {
    cat "$out/run.log" >&2
    echo "the row failed" >&2
    exit 1
}
echo "$row: $((collected / records)) instructions per record in DirectProcessor::emit ($records records)"
