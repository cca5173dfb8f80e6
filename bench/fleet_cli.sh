#!/bin/bash
# fleet_cli.sh -- `zos --all ping` against a shell loop of `zos --node=X ping`, node after node.
#
# Starts NODES simulated nodes (build/zos-node-sim) of each kind in KINDS (plain TCP, and TLS
# with a secret sent as AUTH), writes a zos config naming them, and a zos-proxy in front of
# them.  Then, ROUNDS times, the two orders alternating from round to round, for each kind
# and each way of reaching the nodes (MODES: direct, and through the proxy with --proxy):
#   * fleet: one `zos --all ping` (one child process per node, --parallel PARALLEL);
#   * loop:  `for n in ...; do zos --node=$n ping; done`, as a user would write it today.
# Every run's output is checked (one PONG per node, exit 0).  Prints the median wall times
# side by side and the ratio loop / fleet.  A benchmark, not a test: exit 0 whenever every
# run completed, 1 when a process could not start or a run failed.
#
#   NODES=20 ROUNDS=5 KINDS="plain tls" MODES="direct proxy" PARALLEL= BUILD=build bench/fleet_cli.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODES=${NODES:-20}
ROUNDS=${ROUNDS:-5}
KINDS=${KINDS:-plain tls}
MODES=${MODES:-direct proxy}
PARALLEL=${PARALLEL:-}
KEEP=${KEEP:-0}
SECRET=fleet-bench-secret

tmp=$(mktemp -d /tmp/zos-bench-fleet.XXXXXX)

PY=${PYTHON:-python3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
cleanup() {
    stop_all
    if [ "$KEEP" = 1 ]; then echo "fleet_cli.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "fleet_cli.sh: $*" >&2; exit 1; }

# ---- build
if ! make --no-print-directory -s "$BUILD/zos" "$BUILD/zos-proxy" "$BUILD/zos-node-sim" \
    >"$tmp/make.log" 2>&1; then
    [ -x "$BUILD/zos" ] && [ -x "$BUILD/zos-proxy" ] && [ -x "$BUILD/zos-node-sim" ] ||
        die "make failed: $(tail -5 "$tmp/make.log")"
    echo "fleet_cli.sh: warning: make failed, measuring the binaries already in $BUILD/" >&2
fi
ZOS=$PWD/$BUILD/zos

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the nodes: all started at once, then each one's ready line read
declare -A PORT # PORT[kind,i]
for kind in $KINDS; do
    case $kind in
    plain) args=(--no-tls) ;;
    tls) args=(--tls --secret "$SECRET") ;;
    *) die "KINDS: unknown kind '$kind' (plain, tls)" ;;
    esac
    for ((i = 0; i < NODES; i++)); do
        "$BUILD/zos-node-sim" "${args[@]}" >"$tmp/sim-$kind-$i.out" 2>"$tmp/sim-$kind-$i.err" &
        pids+=("$!")
        echo "$!" >"$tmp/sim-$kind-$i.pid"
    done
done
for kind in $KINDS; do
    for ((i = 0; i < NODES; i++)); do
        f=$tmp/sim-$kind-$i
        for t in $(seq 400); do
            grep -q '^zos-node-sim ready' "$f.out" 2>/dev/null && break
            kill -0 "$(cat "$f.pid")" 2>/dev/null || die "zos-node-sim exited: $(cat "$f.err")"
            sleep 0.05
        done
        read -r _ _ addr _ <"$f.out" || die "zos-node-sim $kind $i printed no ready line"
        PORT[$kind,$i]=${addr##*:}
    done
done

# ---- the config (zos) and the proxy in front of the same nodes
section() { # kind i
    printf '[%s%02d]\naddress = 127.0.0.1\nport = %s\n' "$1" "$2" "${PORT[$1,$2]}"
    if [ "$1" = tls ]; then printf 'tls = yes\nsecret = %s\n\n' "$SECRET"; else printf 'tls = no\n\n'; fi
}
PROXY_PORT=$(free_port)
mkdir -p "$tmp/home"
for kind in $KINDS; do
    {
        printf '[app]\ndebug = false\n\n'
        for ((i = 0; i < NODES; i++)); do section "$kind" "$i"; done
    } >"$tmp/zos-$kind.toml"
done
{
    printf '[proxy]\nlisten = 127.0.0.1:%s\nlog-level = warn\n\n' "$PROXY_PORT"
    for kind in $KINDS; do for ((i = 0; i < NODES; i++)); do section "$kind" "$i"; done; done
} >"$tmp/proxy.toml"
HOME=$tmp/home "$BUILD/zos-proxy" -c "$tmp/proxy.toml" 2>"$tmp/proxy.log" &
proxypid=$!
pids+=("$proxypid")
wait_listen zos-proxy "$proxypid" "$PROXY_PORT" "$tmp/proxy.log"

# ---- runs
now() { date +%s.%N; }
declare -A T # T[kind,mode,way,round] seconds

zos_env() { # kind mode: env + zos argv prefix
    Z=(env HOME="$tmp/home" ZOS_CONFIG="$tmp/zos-$1.toml" "$ZOS")
    [ "$2" = proxy ] && Z+=(--proxy "127.0.0.1:$PROXY_PORT")
    [ -n "$PARALLEL" ] && [ "$3" = fleet ] && Z+=(--parallel "$PARALLEL")
    return 0
}

run_fleet() { # kind mode round
    local t0 t1 rc
    zos_env "$1" "$2" fleet
    t0=$(now)
    "${Z[@]}" --all ping >"$tmp/out" 2>"$tmp/err"
    rc=$?
    t1=$(now)
    [ $rc -eq 0 ] || die "$1/$2: zos --all ping exited $rc: $(tail -5 "$tmp/err")"
    [ "$(grep -c ': "PONG ' "$tmp/out")" -eq "$NODES" ] ||
        die "$1/$2: zos --all ping: not $NODES PONGs: $(head -5 "$tmp/out")"
    T[$1,$2,fleet,$3]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
}

run_loop() { # kind mode round
    local t0 t1 i n=0
    zos_env "$1" "$2" loop
    t0=$(now)
    for ((i = 0; i < NODES; i++)); do
        "${Z[@]}" --node="$(printf '%s%02d' "$1" "$i")" ping >"$tmp/out" 2>"$tmp/err" ||
            die "$1/$2: zos --node=$1$i ping failed: $(tail -3 "$tmp/err")"
        grep -q '^"PONG ' "$tmp/out" && n=$((n + 1))
    done
    t1=$(now)
    [ $n -eq "$NODES" ] || die "$1/$2: the loop got $n PONGs of $NODES"
    T[$1,$2,loop,$3]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
}

median() { # kind mode way
    local r
    for ((r = 1; r <= ROUNDS; r++)); do echo "${T[$1,$2,$3,$r]}"; done |
        sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# warm-up: page cache, the proxy's node links (both ways get them alike afterwards)
for kind in $KINDS; do for mode in $MODES; do run_fleet "$kind" "$mode" 0; done; done

for ((round = 1; round <= ROUNDS; round++)); do
    for kind in $KINDS; do
        for mode in $MODES; do
            if ((round % 2)); then
                run_fleet "$kind" "$mode" "$round"
                run_loop "$kind" "$mode" "$round"
            else
                run_loop "$kind" "$mode" "$round"
                run_fleet "$kind" "$mode" "$round"
            fi
        done
    done
done
kill -0 "$proxypid" 2>/dev/null || die "zos-proxy died during the run: $(tail -20 "$tmp/proxy.log")"

# ---- report
echo "zos fleet CLI benchmark: $NODES zos-node-sim per kind on 127.0.0.1, $(nproc) CPU cores"
echo "fleet: one 'zos --all ping' (--parallel ${PARALLEL:-default});" \
    "loop: 'for n in ...; do zos --node=\$n ping; done'"
echo "median wall time of $ROUNDS rounds, the two orders alternating; load average before: $load_start"
echo
printf '  %-34s %9s %9s %13s %17s\n' "" "loop s" "fleet s" "loop / fleet" "loop per node ms"
for kind in $KINDS; do
    for mode in $MODES; do
        l=$(median "$kind" "$mode" loop)
        f=$(median "$kind" "$mode" fleet)
        label="$kind nodes, $mode"
        [ "$kind" = tls ] && label="tls+AUTH nodes, $mode"
        [ "$mode" = proxy ] && label="${label/proxy/through zos-proxy}"
        printf '  %-34s %9.3f %9.3f %12.1fx %17.1f\n' "$label" "$l" "$f" \
            "$(awk -v l="$l" -v f="$f" 'BEGIN { print l / f }')" \
            "$(awk -v l="$l" -v n="$NODES" 'BEGIN { print 1000 * l / n }')"
    done
done
echo
echo "each round's seconds (loop/fleet):"
for kind in $KINDS; do
    for mode in $MODES; do
        printf '  %-12s %-7s' "$kind" "$mode"
        for ((r = 1; r <= ROUNDS; r++)); do
            printf ' %.3f/%.3f' "${T[$kind,$mode,loop,$r]}" "${T[$kind,$mode,fleet,$r]}"
        done
        echo
    done
done
exit 0
