#!/bin/bash
# run-all.sh -- every suite of `make test`: unit (cmocka), conformance of the
# simulated node, integration (real redis-server, sshd, the real binaries).
# Ends with one line "N passed, N failed" summed over the suites.
# LOAD=N runs it all while N busy processes keep N cores busy (tests/lib/burn.py):
# no test may depend on timing, so the outcome must be the same.
set -u
cd "$(dirname "$0")/.."
if [ "${LOAD:-0}" != 0 ] && [ -z "${ZOS_LOAD:-}" ]; then
    exec /usr/bin/python3 tests/lib/burn.py "$LOAD" -- tests/run-all.sh "$@"
fi
BUILD=${BUILD:-build}
export ZOS_BUILD=$PWD/$BUILD
total_p=0; total_f=0; log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # suite name, command...: runs it, adds its counts
    local name=$1; shift
    echo "=== $name"
    "$@" 2>&1 | tee "$log"; local rc=${PIPESTATUS[0]}
    local line p f e
    line=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -1)
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
    e=$(echo "$line" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || true)
    p=${p:-0}; f=$(( ${f:-0} + ${e:-0} ))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$name: exited $rc"; fi
    total_p=$((total_p + p)); total_f=$((total_f + f))
}

units=$(ls $BUILD/tests/test_* 2>/dev/null | grep -v '\.d$' || true)
count unit tests/run-unit.sh $units
PYTEST="/usr/bin/python3 -m pytest -q -p no:cacheprovider"
for suite in source conformance integration jobs cli e2e clients; do
    if ls tests/$suite/test_*.py >/dev/null 2>&1; then
        count $suite $PYTEST tests/$suite
    fi
done
# Under CI, each fuzz target (make fuzz) FUZZ_SECONDS on a scratch copy of its seed
# corpus, one test each; crash inputs are kept in $BUILD/fuzz/.
if [ "${CI:-}" = true ] && ls $BUILD/fuzz/fuzz_* >/dev/null 2>&1; then
    fuzz_work=$(mktemp -d)
    count fuzz tests/fuzz/run.sh "${FUZZ_SECONDS:-40}" "$fuzz_work" $BUILD/fuzz/fuzz_*
    mv "$fuzz_work"/fuzz_*-* "$BUILD/fuzz/" 2>/dev/null
    rm -rf "$fuzz_work"
fi
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
