#!/usr/bin/env bash
# lanes.sh -- latency of small GETs while one client reads huge values, straight to redis
# and through zos-proxy, side by side.  50 clients send GET of a small key at a fixed
# rate; one more client does GET of a 100 MB value in a loop, reading every reply in
# full; p50/p99/p99.9/max of the small GETs, with and without the big reader.
# A benchmark, not a test: targets are printed as "met" / "not met" and never change
# the exit status.  See bench/README.md.
#
#   make build/zos-proxy && bench/lanes.sh          (builds nothing itself)
#   ZOS_BUILD=$PWD/build-x bench/lanes.sh           (another build)
#
# Environment:
#   DURATION=10      seconds each phase measures
#   CLIENTS=50       small-GET connections (one Python process, epoll)
#   INTERVAL_MS=10   each small client sends one GET every INTERVAL_MS (50 clients at 10 ms:
#                    5,000 GET/s in all)
#   BIG_MB=100       size of the big value, MiB (below 512: redis's proto-max-bulk-len)
#   ROUNDS=1         rounds of the four phases; figures are the median over rounds
#   REDIS_MALLOC_CONF=oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1
#                    MALLOC_CONF of redis-server (Debian's uses the shared jemalloc).  Stock
#                    jemalloc gives a 100 MB reply buffer back to the kernel as soon as it is
#                    sent, so every GET of the big value faults in 25,600 fresh pages; on the
#                    2-core VMs a first touch costs ~11 us, and redis then spends ~300 ms
#                    inside each GET (nobody else is served meanwhile), which drowns what the
#                    proxy does.  The default keeps freed memory mapped: ~8 ms per GET, the
#                    copy.  REDIS_MALLOC_CONF= (empty) runs stock redis.
#   ZOS_BUILD=build  directory holding zos-proxy (ZOS_PROXY=path overrides the binary)
#   KEEP=1           keep the temporary directory (config, logs, big-read times)
#
# Exit status: 0 when every figure was measured (whatever they are); 1 when a server did
# not start, a process died, or a client failed (the table shows "fail", the reason is
# under "Anomalies").
set -u
set -o pipefail
export LC_ALL=C

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-50}
INTERVAL_MS=${INTERVAL_MS:-10}
BIG_MB=${BIG_MB:-100}
ROUNDS=${ROUNDS:-1}
REDIS_MALLOC_CONF=${REDIS_MALLOC_CONF-oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
ZOS_BUILD=${ZOS_BUILD:-$root/build}
PROXY_BIN=${ZOS_PROXY:-$ZOS_BUILD/zos-proxy}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
fi
HELPER=$here/lanes_client.py
SMALL_VALUE=lanes-small-value-0123456789abcd # 32 bytes

die() { echo "lanes: $*" >&2; exit 1; }
for c in redis-server redis-cli "$PY" timeout; do
    command -v "$c" >/dev/null 2>&1 || die "missing $c (see make deps)"
done
[ -x "$PROXY_BIN" ] || die "no $PROXY_BIN: run make build/zos-proxy first (or set ZOS_BUILD)"
for v in DURATION CLIENTS BIG_MB ROUNDS; do
    case ${!v} in '' | *[!0-9]* | 0) die "$v must be a positive integer" ;; esac
done
case $INTERVAL_MS in '' | *[!0-9.]* | .) die "INTERVAL_MS must be a positive number" ;; esac
[ "$BIG_MB" -lt 512 ] || die "BIG_MB must be below 512 (redis's proto-max-bulk-len)"
BIG_BYTES=$((BIG_MB * 1048576))

# --- temp dir, cleanup of every process we start, by PID ------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zos-lanes.XXXXXX") || die "mktemp failed"
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
    trap - EXIT INT TERM
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'echo "lanes: interrupted" >&2; exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

t0=$SECONDS
busy0=$(cpu_busy)
read -r P_REDIS P_PROXY <<<"$(free_ports 2)"

# --- redis ------------------------------------------------------------------------------
mkdir -p "$tmp/redis"
MALLOC_CONF=$REDIS_MALLOC_CONF redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no \
    --dir "$tmp/redis" --logfile "$tmp/redis.log" &
pid_redis=$!
pids+=("$pid_redis")
wait_listen redis-server "$pid_redis" "$P_REDIS" "$tmp/redis.log"

# --- zos-proxy, one plain node ------------------------------------------------------------
cat >"$tmp/proxy.toml" <<EOF
# zos-proxy config written by bench/lanes.sh
[proxy]
listen = 127.0.0.1:$P_PROXY
default = plain
log-level = warn

[plain]
address = 127.0.0.1
port = $P_REDIS
tls = no
EOF
"$PROXY_BIN" -t -c "$tmp/proxy.toml" >"$tmp/proxy-check.log" 2>&1 ||
    { cat "$tmp/proxy-check.log" >&2; die "zos-proxy -t rejects the config"; }
"$PROXY_BIN" -c "$tmp/proxy.toml" >"$tmp/proxy.log" 2>&1 &
pid_proxy=$!
pids+=("$pid_proxy")
wait_listen zos-proxy "$pid_proxy" "$P_PROXY" "$tmp/proxy.log"

# --- the keys: a small one, and a BIG_MB one made by SETRANGE at its last byte ------------
out=$(redis-cli -p "$P_REDIS" set lanes:small "$SMALL_VALUE" 2>&1)
[ "$out" = OK ] || die "SET lanes:small gave '$out'"
redis-cli -p "$P_REDIS" del lanes:big >/dev/null 2>&1
out=$(redis-cli -p "$P_REDIS" setrange lanes:big $((BIG_BYTES - 1)) x 2>&1)
[ "$out" = "$BIG_BYTES" ] || die "SETRANGE lanes:big gave '$out', want $BIG_BYTES"
out=$(redis-cli -p "$P_PROXY" get lanes:small 2>&1)
[ "$out" = "$SMALL_VALUE" ] || die "GET lanes:small through zos-proxy gave '$out'"
out=$(redis-cli -p "$P_PROXY" strlen lanes:big 2>&1)
[ "$out" = "$BIG_BYTES" ] || die "STRLEN lanes:big through zos-proxy gave '$out'"

# --- one phase ------------------------------------------------------------------------------
# phase TARGET(direct|proxy) LOAD(idle|big) ROUND: key=value lines into R[TARGET,LOAD,ROUND,key]
declare -A R
kv_into() { # PREFIX < key=value lines
    local k v
    while IFS='=' read -r k v; do [ -n "$k" ] && R[$1,$k]=$v; done
}
alive() {
    kill -0 "$pid_redis" 2>/dev/null || { failure "redis-server died ($1); log: $(tail -n 3 "$tmp/redis.log" | tr '\n' ' ')"; return 1; }
    kill -0 "$pid_proxy" 2>/dev/null || { failure "zos-proxy died ($1); log: $(tail -n 3 "$tmp/proxy.log" | tr '\n' ' ')"; return 1; }
}
phase() {
    local target=$1 load=$2 round=$3 port pid_big='' pid_small watch rc f k
    f=$tmp/$target-$load-r$round
    [ "$target" = direct ] && port=$P_REDIS || port=$P_PROXY
    watch="redis=$pid_redis,proxy=$pid_proxy"
    echo "lanes: round $round: $target, $([ "$load" = big ] && echo "with the $BIG_MB MB reader" || echo "no big reader")" >&2
    "$PY" "$HELPER" slowlog --port "$P_REDIS" --key lanes:big --reset 2>"$f.slow.err" ||
        anomaly "$target, $load, round $round: SLOWLOG RESET: $(tail -n 1 "$f.slow.err")"
    if [ "$load" = big ]; then
        "$PY" "$HELPER" big --port "$port" --key lanes:big --size "$BIG_BYTES" \
            --times-file "$f.bigtimes" --ready-file "$f.bigready" 2>"$f.big.err" &
        pid_big=$!
        pids+=("$pid_big")
        for _ in $(seq 1200); do # the first read done, up to 120 s
            [ -e "$f.bigready" ] && break
            kill -0 "$pid_big" 2>/dev/null || break
            sleep 0.1
        done
        if [ ! -e "$f.bigready" ]; then
            failure "$target round $round: the big reader did not finish a first read: $(tail -n 2 "$f.big.err" | tr '\n' ' ')"
            stop_pid "$pid_big"
            R[$target,$load,$round,count]=fail
            return
        fi
        watch+=",big=$pid_big"
    else
        for k in big_reads big_mean_ms big_max_ms cpu_big; do R[$target,$load,$round,$k]=-; done
    fi
    "$PY" "$HELPER" small --port "$port" --clients "$CLIENTS" --interval-ms "$INTERVAL_MS" \
        --duration "$DURATION" --key lanes:small --value "$SMALL_VALUE" --watch "$watch" \
        ${pid_big:+--big-times "$f.bigtimes"} >"$f.out" 2>"$f.err" &
    pid_small=$!
    pids+=("$pid_small")
    wait "$pid_small" # in the background so that ctrl-c is handled at once
    rc=$?
    stop_pid "$pid_small"
    if [ $rc -ne 0 ]; then
        failure "$target, $load, round $round: small clients: exit $rc, $(tail -n 2 "$f.err" | tr '\n' ' ')"
        R[$target,$load,$round,count]=fail
    else
        kv_into "$target,$load,$round" <"$f.out"
        [ "${R[$target,$load,$round,errors]:-0}" = 0 ] ||
            anomaly "$target, $load, round $round: ${R[$target,$load,$round,errors]} wrong replies, e.g. ${R[$target,$load,$round,error_msg]:-?}"
        [ "${R[$target,$load,$round,unfinished]:-0}" = 0 ] ||
            anomaly "$target, $load, round $round: ${R[$target,$load,$round,unfinished]} GETs had no reply 60 s after the window"
    fi
    if [ -n "$pid_big" ]; then
        # SIGTERM: the reader stops after the read in progress (never cut off mid-reply)
        stop_pid "$pid_big" 60
        rc=$?
        [ $rc -eq 0 ] || failure "$target round $round: big reader: exit $rc, $(tail -n 2 "$f.big.err" | tr '\n' ' ')"
        R[$target,$load,$round,big_total]=$(wc -l <"$f.bigtimes")
    fi
    if "$PY" "$HELPER" slowlog --port "$P_REDIS" --key lanes:big --report >"$f.slow" 2>"$f.slow.err"; then
        kv_into "$target,$load,$round" <"$f.slow"
        [ "$load" = big ] || for k in redis_big_n redis_big_mean_ms redis_big_max_ms; do R[$target,$load,$round,$k]=-; done
    else
        anomaly "$target, $load, round $round: SLOWLOG GET: $(tail -n 1 "$f.slow.err")"
    fi
    alive "$target, $load, round $round"
    sleep 1 # let the machine settle
}

echo "lanes: redis :$P_REDIS, zos-proxy :$P_PROXY; $CLIENTS clients x 1 GET / $INTERVAL_MS ms, $DURATION s per phase, $BIG_MB MB value, $ROUNDS round(s)" >&2
for r in $(seq "$ROUNDS"); do
    for load in idle big; do
        for target in direct proxy; do
            phase $target $load "$r"
            { kill -0 "$pid_redis" && kill -0 "$pid_proxy"; } 2>/dev/null || break 3
        done
    done
done
noisy=0
proxy_mem=$(awk '/^VmRSS|^VmHWM/ { printf "%s %s KiB  ", $1, $2 }' "/proc/$pid_proxy/status" 2>/dev/null)
busy1=$(cpu_busy)

# --- report -----------------------------------------------------------------------------------
# median of the numbers among the arguments; "fail" if none
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "fail"; exit }
             if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() { # TARGET LOAD KEY: median over rounds ("-" when not measured in that phase)
    local r vals=()
    [ "${R[$1,$2,1,$3]:-}" = - ] && { echo -; return; }
    for r in $(seq "$ROUNDS"); do vals+=("${R[$1,$2,$r,$3]:-fail}"); done
    median "${vals[@]}"
}
rounds_of() { # TARGET LOAD KEY: "[a b c]" in ms when ROUNDS > 1
    local r out=""
    [ "$ROUNDS" -gt 1 ] || return 0
    for r in $(seq "$ROUNDS"); do out+=" $(ms "${R[$1,$2,$r,$3]:-fail}")"; done
    echo "[${out# }]"
}
ms() { awk -v a="$1" 'BEGIN { if (a ~ /^[0-9.]+$/) printf "%.2f", a / 1000; else printf "%s", a }'; }
num() { awk -v a="$1" -v f="$2" 'BEGIN { if (a ~ /^[0-9.]+$/) printf f, a; else printf "%s", a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2fx", a / b; else printf "n/a" }'; }
verdict() { # VALUE LIMIT: met when VALUE <= LIMIT
    awk -v a="$1" -v m="$2" 'BEGIN { if (a !~ /^[0-9.]+$/) print "n/a"; else if (a + 0 <= m + 0) print "met"; else print "not met" }'
}
row() { # TITLE idle-direct idle-proxy idle-ratio big-direct big-proxy big-ratio
    printf '  %-22s %9s %9s %8s   %9s %9s %8s\n' "$@"
}
lat_row() { # TITLE KEY
    local id ip bd bp
    id=$(med direct idle "$2") ip=$(med proxy idle "$2") bd=$(med direct big "$2") bp=$(med proxy big "$2")
    row "$1" "$(ms "$id")" "$(ms "$ip")" "$(ratio "$ip" "$id")" "$(ms "$bd")" "$(ms "$bp")" "$(ratio "$bp" "$bd")"
}
plain_row() { # TITLE KEY FORMAT
    row "$1" "$(num "$(med direct idle "$2")" "$3")" "$(num "$(med proxy idle "$2")" "$3")" "" \
        "$(num "$(med direct big "$2")" "$3")" "$(num "$(med proxy big "$2")" "$3")" ""
}

echo >&2
echo
echo "zos-proxy lanes benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, redis $(redis-server --version | awk '{print $3}' | sed 's/v=//'), $PROXY_BIN"
echo "$CLIENTS small-GET clients (one Python process, epoll), each GET of a 32-byte value every $INTERVAL_MS ms"
echo "(open pacing, no catch-up); latency = send() to the last byte of the reply.  Big reader: one"
echo "more connection doing GET of a $BIG_MB MiB value in a loop, every reply read in full; it starts"
echo "before the window and finishes the read in progress after it.  $DURATION s per phase,"
echo "$ROUNDS round(s) (median over rounds); ms unless said.  redis: MALLOC_CONF='$REDIS_MALLOC_CONF'$([ -z "$REDIS_MALLOC_CONF" ] && echo ' (stock)');"
echo "\"redis: GET big\" is redis's own time in one GET of the big value (its slow log, whole"
echo "phase): redis serves nobody meanwhile, so it is a floor for both direct and proxy."
echo "CPU % is of one core over the window (2 cores: 200 in all); \"other processes\" is what"
echo "the rest of the machine took meanwhile: above 20 the figures of that column are noisy."
echo
row "" "no big reader" "" "" "$BIG_MB MB reader" "" ""
row "" direct proxy "proxy/dir" direct proxy "proxy/dir"
lat_row "p50" p50_us
lat_row "p90" p90_us
lat_row "p99" p99_us
lat_row "p99.9" p999_us
lat_row "max" max_us
lat_row "mean" mean_us
plain_row "small GETs done" count %d
plain_row "  per second" rate %d
plain_row "  over 10 ms" over10ms %d
plain_row "  over 100 ms" over100ms %d
plain_row "  sent late" late %d
plain_row "big reads in window" big_reads %d
plain_row "  mean duration" big_mean_ms %s
plain_row "  longest" big_max_ms %s
plain_row "redis: GET big, mean" redis_big_mean_ms %s
plain_row "  longest" redis_big_max_ms %s
plain_row "  other cmds > 1 ms" redis_other_slow %s
plain_row "CPU % small clients" cpu_client %s
plain_row "CPU % big reader" cpu_big %s
plain_row "CPU % redis-server" cpu_redis %s
plain_row "CPU % zos-proxy" cpu_proxy %s
plain_row "CPU % other processes" cpu_other %s
if [ "$ROUNDS" -gt 1 ]; then
    echo
    echo "  per round (ms):"
    for load in idle big; do
        for target in direct proxy; do
            printf '    %-6s %-5s p99 %-30s max %s\n' "$target" "$load" "$(rounds_of $target $load p99_us)" "$(rounds_of $target $load max_us)"
        done
    done
fi
echo
echo "What the big reader costs (big reader / none):  p99 direct $(ratio "$(med direct big p99_us)" "$(med direct idle p99_us)"), proxy $(ratio "$(med proxy big p99_us)" "$(med proxy idle p99_us)");  max direct $(ratio "$(med direct big max_us)" "$(med direct idle max_us)"), proxy $(ratio "$(med proxy big max_us)" "$(med proxy idle max_us)")"
echo
echo "Targets (information, not pass/fail), with the $BIG_MB MB reader:"
bp99=$(med proxy big p99_us)
printf '  proxy p99 <= 2 ms:                 %8s ms  -> %s\n' "$(ms "$bp99")" "$(verdict "$bp99" 2000)"
mr=$(awk -v a="$(med proxy big max_us)" -v b="$(med direct big max_us)" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }')
printf '  proxy max <= 1.7x direct max:      %8s x   -> %s  (%s ms vs %s ms)\n' "$mr" "$(verdict "$mr" 1.7)" \
    "$(ms "$(med proxy big max_us)")" "$(ms "$(med direct big max_us)")"
echo
echo "zos-proxy after the runs: ${proxy_mem:-n/a}"
if [ -s "$tmp/proxy.log" ]; then
    anomaly "zos-proxy logged $(wc -l <"$tmp/proxy.log") line(s) at warn or above: $(sed -E 's/^[^ ]+ [^ ]+ //' "$tmp/proxy.log" | sort | uniq -c | sort -rn | head -n 3 | tr -s ' ' | tr '\n' ';')"
fi
for load in idle big; do
    for target in direct proxy; do
        c=$(med $target $load cpu_other)
        if awk -v c="$c" 'BEGIN { exit !(c ~ /^[0-9.]+$/ && c > 20) }'; then
            noisy=1
        fi
        c=$(med $target $load cpu_client)
        if awk -v c="$c" 'BEGIN { exit !(c ~ /^[0-9.]+$/ && c > 70) }'; then
            anomaly "$target, $load: the small-client process used $c % of a core: it may be what limits the figures"
        fi
    done
done
echo "CPU used by other work (1 s samples, our servers idle): ${busy0}% before, ${busy1}% after; $((SECONDS - t0)) s in all"
if [ $noisy = 1 ] || awk -v a="$busy0" -v b="$busy1" 'BEGIN { exit !(a > 10 || b > 10) }'; then
    echo "note: other processes were using the CPUs: figures are noisy, compare ratios and run again on a quiet machine"
fi
echo
anomalies_report
exit $failed
