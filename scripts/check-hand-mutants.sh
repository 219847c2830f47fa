#!/usr/bin/env bash
# Checks that the test suite catches every hand-made mutant in tests/mutants/:
# for each row of the table in tests/mutants/README.md, applies the patch in a
# scratch worktree, runs the row's command, and expects it to fail. Exits
# non-zero naming any mutant that survived or whose patch no longer applies.
#
#   scripts/check-hand-mutants.sh            # every mutant
#   scripts/check-hand-mutants.sh m1 m6      # those whose patch name contains a word
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scratch=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git worktree add --detach "$scratch/tree" HEAD >/dev/null
# Share the build directory: only the mutated crate is rebuilt.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

wanted() {
    [ "$#" -eq 1 ] && return 0
    local patch=$1 word
    shift
    for word in "$@"; do [[ $patch == *"$word"* ]] && return 0; done
    return 1
}

failed=()
# Rows look like: | `name.patch` | the bug | `command` | caught by |
while IFS='|' read -r _ patch _ command _; do
    patch=$(sed -e 's/^ *`//' -e 's/` *$//' <<<"$patch")
    command=$(sed -e 's/^ *`//' -e 's/` *$//' <<<"$command")
    [[ $patch == *.patch ]] || continue
    wanted "$patch" "$@" || continue
    echo "==> $patch: $command"
    git -C "$scratch/tree" checkout -q -- .
    if ! git -C "$scratch/tree" apply "$root/tests/mutants/$patch"; then
        echo "    the patch no longer applies: make the same change by hand" >&2
        failed+=("$patch (does not apply)")
        continue
    fi
    if (cd "$scratch/tree" && eval "$command") >"$scratch/log" 2>&1; then
        echo "    SURVIVED: the command passed with the mutant in" >&2
        failed+=("$patch (survived)")
    elif grep -q "could not compile" "$scratch/log"; then
        # A failed build proves nothing about the tests.
        echo "    the mutant does not build: make the same change by hand" >&2
        failed+=("$patch (does not build)")
    else
        echo "    caught:"
        grep -m3 -E "^test .* FAILED|panicked at" "$scratch/log" | sed 's/^/      /' || true
    fi
done <tests/mutants/README.md

if [ "${#failed[@]}" -gt 0 ]; then
    printf 'not caught: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "every hand-made mutant was caught"
