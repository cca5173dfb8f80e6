#!/bin/bash
# run.sh -- runs libFuzzer targets one after the other, SECONDS each, each on
# a working copy of its seed corpus (tests/fuzz/corpus/<name>/, if any) so
# that the repository's corpus is never written to.
#
#   tests/fuzz/run.sh SECONDS WORKDIR TARGET...
#
# WORKDIR/<name>/ is the working corpus (kept: a later run goes on from it);
# crash inputs go to WORKDIR/<name>-crash-*.  Prints one line per target and
# ends with "fuzz: N passed, N failed"; exits non-zero if any target failed.
set -u
cd "$(dirname "$0")/../.."
secs=${1:?seconds}; work=${2:?workdir}; shift 2
passed=0; failed=0
mkdir -p "$work" || exit 1
for bin in "$@"; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus=tests/fuzz/corpus/${name#fuzz_}
    mkdir -p "$work/$name"
    if [ -d "$corpus" ]; then
        cp -n "$corpus"/* "$work/$name"/ 2>/dev/null
    fi
    dict=tests/fuzz/$name.dict
    [ -f "$dict" ] || dict=tests/fuzz/resp.dict
    log=$work/$name.log
    "$bin" "$work/$name" -dict="$dict" -max_total_time="$secs" -timeout=30 \
        -artifact_prefix="$work/$name-" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "$name: ok, ${runs:-?} runs in $secs s"
    else
        failed=$((failed + 1))
        echo "$name: FAILED (exit $rc); the end of $log:"
        tail -40 "$log"
        ls "$work/$name"-* 2>/dev/null | sed 's/^/  reproducer: /'
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
