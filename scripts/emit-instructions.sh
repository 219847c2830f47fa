#!/usr/bin/env bash
# Counts the instructions the logging call spends in djehouty: callgrind runs
# one bench-peers row and counts what executes inside DirectProcessor's emit
# (mapping, encoding, staging), per record logged. Why this count and what it
# leaves out: docs/performance.md, "Counting instructions".
#
#   scripts/emit-instructions.sh                          # GELF over TLS, 100,000 records
#   scripts/emit-instructions.sh direct-ltsv-tcp 50000    # another row, another count
set -euo pipefail
cd "$(dirname "$0")/.."

row="${1:-direct-gelf-tls}"
records="${2:-100000}"
[[ "$records" =~ ^[1-9][0-9]*$ ]] || {
    echo "RECORDS must be a positive whole number, not $records" >&2
    exit 1
}
command -v valgrind >/dev/null 2>&1 || {
    echo "valgrind is missing: apt-get install valgrind" >&2
    exit 1
}
# The bench's own settings come from the command line alone.
unset PEERS_RECORDS PEERS_QUICK PEERS_REPEAT PEERS_ONLY PEERS_BUFFER_MIB
cargo build --release --locked -p bench-peers >&2
bench="${CARGO_TARGET_DIR:-target}/release/bench-peers"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Collection is toggled on entering and leaving the function named: the
# name ends at `emit`, so that a closure of emit's, were it not inlined,
# does not toggle it off inside.
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
    --toggle-collect='*DirectProcessor as *LogProcessor>::emit' \
    "$bench" --records "$records" --repeat 1 --only "$row" \
    >"$out/run.log" 2>&1 || {
    cat "$out/run.log" >&2
    exit 1
}
grep -q "passed, 0 failed" "$out/run.log" || {
    cat "$out/run.log" >&2
    echo "the row failed" >&2
    exit 1
}
rows="$(grep -c '^\[[0-9]*/[0-9]*\]' "$out/run.log" || true)"
[ "$rows" -eq 1 ] || {
    grep '^\[' "$out/run.log" >&2
    echo "$row names $rows rows; name one (docs/performance.md lists them)" >&2
    exit 1
}
collected="$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/run.log")"
[ "${collected:-0}" -gt 0 ] || {
    cat "$out/run.log" >&2
    echo "nothing ran in DirectProcessor::emit: is $row a direct row?" >&2
    exit 1
}
echo "$row: $((collected / records)) instructions per record in DirectProcessor::emit ($records records)"
