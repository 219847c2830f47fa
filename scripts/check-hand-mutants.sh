#!/usr/bin/env bash
# Checks that the test suite catches every hand-made mutant in tests/mutants/,
# as committed (HEAD): for each row of the table in tests/mutants/README.md,
# applies the patch in a scratch worktree, runs the row's command, and expects
# one of the tests the row names as catching it to fail. Exits non-zero naming
# any mutant that survived, no longer applies, no longer builds, or failed
# only for another reason; and if a patch has no row, or no row was checked.
#
#   scripts/check-hand-mutants.sh            # every mutant
#   scripts/check-hand-mutants.sh m1 m6      # those whose patch name contains a word
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# A command that hangs must not hold up the rest (or CI) for ever.
LIMIT=${HAND_MUTANTS_TIMEOUT:-900}

git worktree prune
scratch=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git worktree add --detach "$scratch/tree" HEAD >/dev/null
tree="$scratch/tree"
# A build directory of its own: in the checkout's, cargo would take the last
# mutant's build of the crate as up to date and test it in place of the
# crate. The dependencies are built there once and kept (`cargo clean`
# removes them); without debug information, to build faster and smaller.
export CARGO_TARGET_DIR="${HAND_MUTANTS_TARGET:-$root/target/hand-mutants}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"

wanted() {
    [ "$#" -eq 1 ] && return 0
    local patch=$1 word
    shift
    for word in "$@"; do [[ $patch == *"$word"* ]] && return 0; done
    return 1
}

# Strips the backticks and blanks around a table cell.
cell() { sed -e 's/^ *`//' -e 's/` *$//' <<<"$1"; }

show_log() { tail -n 40 "$scratch/log" | sed 's/^/      /' >&2; }

failed=()
checked=0
rows=0
# Rows look like: | `name.patch` | the bug | `command` | `test` that catches it... |
while IFS='|' read -r -u 3 _ patch _ command caught _; do
    patch=$(cell "$patch")
    [[ $patch == *.patch ]] || continue
    rows=$((rows + 1))
    wanted "$patch" "$@" || continue
    command=$(cell "$command")
    if [[ $command != "cargo "* ]]; then
        echo "==> $patch: its command cell is not a cargo command: $command" >&2
        failed+=("$patch (unreadable row)")
        continue
    fi
    # The tests named in the last column, in backticks.
    mapfile -t tests < <(grep -o '`[a-z0-9_]*`' <<<"$caught" | tr -d '`')
    echo "==> $patch: $command"
    checked=$((checked + 1))
    git -C "$tree" checkout -q -- .
    if ! git -C "$tree" apply "tests/mutants/$patch"; then
        echo "    the patch no longer applies: make the same change by hand" >&2
        failed+=("$patch (does not apply)")
        continue
    fi
    if (cd "$tree" && timeout "$LIMIT" bash -c "$command") </dev/null >"$scratch/log" 2>&1; then
        echo "    SURVIVED: the command passed with the mutant in" >&2
        show_log
        failed+=("$patch (survived)")
        continue
    fi
    if grep -q "could not compile" "$scratch/log"; then
        # A failed build proves nothing about the tests.
        echo "    the mutant does not build: make the same change by hand" >&2
        show_log
        failed+=("$patch (does not build)")
        continue
    fi
    hit=""
    for test in "${tests[@]}"; do
        if grep -Eq "^test ([a-z0-9_]+::)*${test} \.\.\. FAILED" "$scratch/log"; then
            hit="$test"
            break
        fi
    done
    if [ -n "$hit" ]; then
        echo "    caught by $hit"
    else
        echo "    the command failed, but none of ${tests[*]:-(no test named)} did" >&2
        show_log
        failed+=("$patch (failed for another reason)")
    fi
done 3<"$tree/tests/mutants/README.md"

patches=$(find "$tree/tests/mutants" -name '*.patch' | wc -l)
if [ "$#" -eq 0 ] && [ "$rows" -ne "$patches" ]; then
    failed+=("$patches patches but $rows table rows: every patch needs its row")
fi
if [ "$checked" -eq 0 ]; then
    failed+=("no mutant was checked")
fi
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'not caught: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "every hand-made mutant checked ($checked) was caught"
