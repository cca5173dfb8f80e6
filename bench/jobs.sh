#!/bin/bash
# jobs.sh -- core0 jobs through zos-proxy against the raw job protocol straight to the node.
#
# Starts one simulated node (build/zos-node-sim, plain TCP) and zos-proxy in front of it,
# builds bench/jobs_client.c (hiredis, one thread per connection) into a temp dir, then in
# one run measures, for `core.ping`:
#   * proxy:  "ZOS.CMD core.ping" sent to zos-proxy;
#   * direct: the same job with the raw protocol straight to the node (core0-protocol.md
#             §3.3): RPUSH core:default + BRPOPLPUSH result:<id>:flag + BRPOPLPUSH result:<id>;
# with N jobs over C connections (jobs/s, p50/p99 latency) and one connection sequentially,
# plus a PING round trip to the proxy (and to the node).  Each measurement runs ROUNDS
# times, proxy and direct interleaved; the median is shown.  Prints a table, the ratios and
# the targets (proxy rate >= 0.9x direct; single-job latency through the proxy <= direct +
# one PING round trip to the proxy).  This is a benchmark, not a test: it exits 0 when the
# run completed, whether the targets are met or not.
#
#   N=5000 C=50 SEQ=1000 ROUNDS=5 BUILD=build bench/jobs.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${N:-5000}
C=${C:-50}
SEQ=${SEQ:-1000}
ROUNDS=${ROUNDS:-5}
WARM=${WARM:-500}

tmp=$(mktemp -d /tmp/zos-bench-jobs.XXXXXX)

PY=${PYTHON:-python3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
cleanup() {
    stop_all
    rm -rf "$tmp"
}
trap cleanup EXIT
die() { echo "jobs.sh: $*" >&2; exit 1; }

# ---- build
if ! make --no-print-directory -s "$BUILD/zos-proxy" "$BUILD/zos-node-sim" >"$tmp/make.log" 2>&1; then
    [ -x "$BUILD/zos-proxy" ] && [ -x "$BUILD/zos-node-sim" ] ||
        die "make $BUILD/zos-proxy $BUILD/zos-node-sim failed: $(tail -5 "$tmp/make.log")"
    echo "jobs.sh: warning: make failed, measuring the binaries already in $BUILD/" >&2
fi
cc -O2 -std=c11 -o "$tmp/jobs_client" bench/jobs_client.c \
    $(pkg-config --cflags --libs hiredis) -lpthread || die "cannot build bench/jobs_client.c"
CLIENT=$tmp/jobs_client

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the node
"$BUILD/zos-node-sim" --no-tls >"$tmp/sim.out" 2>"$tmp/sim.err" &
simpid=$!
pids+=("$simpid")
for i in $(seq 200); do
    grep -q '^zos-node-sim ready' "$tmp/sim.out" 2>/dev/null && break
    kill -0 "$simpid" 2>/dev/null || die "zos-node-sim exited: $(cat "$tmp/sim.err")"
    sleep 0.05
done
read -r _ _ addr tlsword <"$tmp/sim.out" || die "zos-node-sim printed no ready line"
NODE_PORT=${addr##*:}
redispid=$(cat /proc/"$simpid"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . | head -1)

# ---- the proxy
PROXY_PORT=$(free_port)
cat >"$tmp/proxy.toml" <<EOF
[proxy]
listen = 127.0.0.1:$PROXY_PORT
log-level = warn

[node]
address = 127.0.0.1
port = $NODE_PORT
tls = no
EOF
HOME=$tmp ZOS_CONFIG=$tmp/proxy.toml "$BUILD/zos-proxy" -c "$tmp/proxy.toml" 2>"$tmp/proxy.log" &
proxypid=$!
pids+=("$proxypid")
wait_listen zos-proxy "$proxypid" "$PROXY_PORT" "$tmp/proxy.log"
[ "$(redis-cli -p "$PROXY_PORT" zos.cmd core.ping 2>/dev/null)" != "" ] || die "ZOS.CMD core.ping fails"

# ---- measuring
cpu_ticks() { # pid: utime+stime in clock ticks
    [ -n "${1:-}" ] && [ -r /proc/"$1"/stat ] || { echo 0; return; }
    sed 's/^.*) //' /proc/"$1"/stat | awk '{ print $12 + $13 }'
}
HZ=$(getconf CLK_TCK)
declare -A R # results: R[label,round,field]

run() { # label round mode port n c
    local label=$1 round=$2 mode=$3 port=$4 n=$5 c=$6 out p0 s0 r0 p1 s1 r1
    p0=$(cpu_ticks "$proxypid"); s0=$(cpu_ticks "$simpid"); r0=$(cpu_ticks "$redispid")
    out=$("$CLIENT" "$mode" 127.0.0.1 "$port" "$n" "$c" 2>"$tmp/client.err")
    local rc=$?
    p1=$(cpu_ticks "$proxypid"); s1=$(cpu_ticks "$simpid"); r1=$(cpu_ticks "$redispid")
    [ $rc -eq 0 ] || die "$label: jobs_client failed: $out $(cat "$tmp/client.err")"
    local kv
    for kv in $out; do R[$label,$round,${kv%%=*}]=${kv#*=}; done
    R[$label,$round,proxy_cpu]=$(awk -v a="$p0" -v b="$p1" -v hz="$HZ" 'BEGIN { print (b - a) / hz }')
    R[$label,$round,sim_cpu]=$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" 'BEGIN { print (b - a) / hz }')
    R[$label,$round,redis_cpu]=$(awk -v a="$r0" -v b="$r1" -v hz="$HZ" 'BEGIN { print (b - a) / hz }')
}

median() { # label field: the median over the rounds
    local label=$1 field=$2 r
    for ((r = 1; r <= ROUNDS; r++)); do echo "${R[$label,$r,$field]}"; done |
        sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# warm-up: connections, the proxy's job links, the node's pool
"$CLIENT" proxy 127.0.0.1 "$PROXY_PORT" "$WARM" "$C" >/dev/null 2>&1
"$CLIENT" direct 127.0.0.1 "$NODE_PORT" "$WARM" "$C" >/dev/null 2>&1

for ((round = 1; round <= ROUNDS; round++)); do
    run ping_proxy "$round" ping "$PROXY_PORT" "$SEQ" 1
    run ping_node "$round" ping "$NODE_PORT" "$SEQ" 1
    if ((round % 2)); then
        run direct_c "$round" direct "$NODE_PORT" "$N" "$C"
        run proxy_c "$round" proxy "$PROXY_PORT" "$N" "$C"
        run direct_1 "$round" direct "$NODE_PORT" "$SEQ" 1
        run proxy_1 "$round" proxy "$PROXY_PORT" "$SEQ" 1
    else
        run proxy_c "$round" proxy "$PROXY_PORT" "$N" "$C"
        run direct_c "$round" direct "$NODE_PORT" "$N" "$C"
        run proxy_1 "$round" proxy "$PROXY_PORT" "$SEQ" 1
        run direct_1 "$round" direct "$NODE_PORT" "$SEQ" 1
    fi
done
kill -0 "$proxypid" 2>/dev/null || die "zos-proxy died during the run: $(tail -20 "$tmp/proxy.log")"

# ---- report
row() { # label title
    local l=$1 secs n
    secs=$(median "$l" secs)
    local cpu="  (run too short for CPU figures)"
    if awk -v s="$secs" 'BEGIN { exit !(s >= 0.5) }'; then
        cpu=$(printf '   %5.0f%% %5.0f%% %5.0f%% %5.0f%%' \
            "$(awk -v c="$(median "$l" cpu_secs)" -v s="$secs" 'BEGIN { print 100 * c / s }')" \
            "$(awk -v c="$(median "$l" proxy_cpu)" -v s="$secs" 'BEGIN { print 100 * c / s }')" \
            "$(awk -v c="$(median "$l" sim_cpu)" -v s="$secs" 'BEGIN { print 100 * c / s }')" \
            "$(awk -v c="$(median "$l" redis_cpu)" -v s="$secs" 'BEGIN { print 100 * c / s }')")
    fi
    printf '  %-36s %9.0f %9.3f %9.3f%s\n' "$2" "$(median "$l" rate)" \
        "$(awk -v v="$(median "$l" p50_us)" 'BEGIN { print v / 1000 }')" \
        "$(awk -v v="$(median "$l" p99_us)" 'BEGIN { print v / 1000 }')" "$cpu"
}
cores=$(nproc)
echo "zos-proxy job benchmark: core.ping on one zos-node-sim (plain TCP, 127.0.0.1), $cores CPU cores"
echo "client: bench/jobs_client.c (C, hiredis $(pkg-config --modversion hiredis), one thread per connection)"
echo "N=$N jobs over C=$C connections; sequential runs: $SEQ jobs on 1 connection; median of $ROUNDS rounds"
echo "load average before the run: $load_start (other work on the machine makes the figures noisy)"
echo
printf '  %-36s %9s %9s %9s   %s\n' "" "ops/s" "p50 ms" "p99 ms" "CPU % of one core:"
printf '  %-36s %9s %9s %9s   %6s %6s %6s %6s\n' "" "" "" "" client proxy sim redis
row direct_c "direct raw protocol, C=$C"
row proxy_c "proxy ZOS.CMD core.ping, C=$C"
row direct_1 "direct raw protocol, C=1"
row proxy_1 "proxy ZOS.CMD core.ping, C=1"
row ping_proxy "PING round trip to the proxy, C=1"
row ping_node "PING round trip to the node, C=1"
echo

# Paired per round (proxy and direct ran back to back, so drifting load on the machine
# hits both): the median of the per-round rate ratios and latency margins decides.
per_round() { # expression over p (proxy) d (direct) t (PING RTT): one value per round
    local pl=$1 dl=$2 f=$3 expr=$4 r
    for ((r = 1; r <= ROUNDS; r++)); do
        awk -v p="${R[$pl,$r,$f]}" -v d="${R[$dl,$r,$f]}" -v t="${R[ping_proxy,$r,p50_us]}" \
            "BEGIN { printf \"%.3f\\n\", $expr }"
    done
}
med() { sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rate_ratios=$(per_round proxy_c direct_c rate "p / d")
rate_ratio=$(echo "$rate_ratios" | med)
margins=$(per_round proxy_1 direct_1 p50_us "(p - d - t) / 1000")
margin=$(echo "$margins" | med)
p50_proxy=$(awk -v v="$(median proxy_1 p50_us)" 'BEGIN { printf "%.3f", v / 1000 }')
p50_direct=$(awk -v v="$(median direct_1 p50_us)" 'BEGIN { printf "%.3f", v / 1000 }')
rtt=$(awk -v v="$(median ping_proxy p50_us)" 'BEGIN { printf "%.3f", v / 1000 }')
met() { awk -v ok="$1" 'BEGIN { print (ok ? "met" : "NOT met") }'; }
echo "ratios and targets (median of the per-round pairs; each round's value in brackets)"
printf '  rate, proxy / direct (C=%s): %.2fx   target >= 0.90x   %s   [%s]\n' "$C" "$rate_ratio" \
    "$(met "$(awk -v r="$rate_ratio" 'BEGIN { print (r >= 0.9) }')")" "$(echo $rate_ratios)"
printf '  single-job p50 (C=1): proxy %s ms, direct %s ms (%.2fx), PING round trip to the proxy %s ms\n' \
    "$p50_proxy" "$p50_direct" "$(awk -v p="$p50_proxy" -v d="$p50_direct" 'BEGIN { print p / d }')" "$rtt"
printf '  proxy p50 - direct p50 - PING RTT: %+.3f ms   target <= 0   %s   [%s]\n' "$margin" \
    "$(met "$(awk -v m="$margin" 'BEGIN { print (m <= 0) }')")" "$(echo $margins)"
echo

# Where the CPU goes in the concurrent runs: with every process on the same few cores,
# a client near 100% of a core, or all of them together near cores x 100%, limits both.
client_pct=$(awk -v c="$(median proxy_c cpu_secs)" -v s="$(median proxy_c secs)" 'BEGIN { printf "%.0f", 100 * c / s }')
total_pct=$(awk -v a="$(median proxy_c cpu_secs)" -v b="$(median proxy_c proxy_cpu)" \
    -v c="$(median proxy_c sim_cpu)" -v d="$(median proxy_c redis_cpu)" -v s="$(median proxy_c secs)" \
    'BEGIN { printf "%.0f", 100 * (a + b + c + d) / s }')
echo "bottleneck check (proxy run, C=$C): client ${client_pct}% of a core; client+proxy+sim+redis ${total_pct}% of $((cores * 100))%"
if [ "$client_pct" -ge 90 ]; then
    echo "  the client is the bottleneck: these rates are a floor of what proxy and node can do"
elif [ "$total_pct" -ge $((cores * 85)) ]; then
    echo "  the machine is saturated (all processes share $cores cores): the rates compare CPU cost per job, not capacity"
else
    echo "  the C client is not the bottleneck"
fi
exit 0
