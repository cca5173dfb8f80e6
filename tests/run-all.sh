#!/bin/bash
# run-all.sh -- every suite of `make test`: unit (cmocka), conformance of the
# simulated node, integration (real redis-server, sshd, the real binaries).
# Ends with one line "N passed, N failed" summed over the suites.
set -u
cd "$(dirname "$0")/.."
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
for suite in conformance integration jobs cli e2e; do
    if ls tests/$suite/test_*.py >/dev/null 2>&1; then
        count $suite $PYTEST tests/$suite
    fi
done
if [ "${CI:-}" = true ] && [ -x $BUILD/fuzz/fuzz_resp ]; then
    count fuzz sh -c "$BUILD/fuzz/fuzz_resp -max_total_time=60 -print_final_stats=0 >/dev/null 2>&1 \
        && echo 'fuzz: 1 passed, 0 failed' || { echo 'fuzz: 0 passed, 1 failed'; exit 1; }"
fi
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
