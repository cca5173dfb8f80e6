#!/usr/bin/env bash
# passthrough.sh -- zos-proxy vs direct redis vs nutcracker (twemproxy), and
# memory per idle client; RESP3 clients too.  A benchmark, not a test: targets are printed as
# "met" / "not met" and never change the exit status.  See bench/README.md.
#
#   bench/passthrough.sh             (make bench runs it; builds nothing itself)
#
# Environment:
#   ROUNDS=3        interleaved rounds per target; the median is reported
#   N=200000        requests per redis-benchmark run (-n)
#   CLIENTS=50      redis-benchmark -c
#   IDLE=10000      idle client connections for the memory figure (0: skip)
#   ZOS_PROXY=build/zos-proxy
#   KEEP=1          keep the temporary directory (logs, configs) for a look
#
# Exit status: 0 when every measurement was taken; 1 when a server could not
# start, a process died, or a redis-benchmark run failed (the table shows
# "fail" there and the reason is printed under "Anomalies").
set -u
set -o pipefail

ROUNDS=${ROUNDS:-3}
N=${N:-200000}
CLIENTS=${CLIENTS:-50}
IDLE=${IDLE:-10000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PROXY_BIN=${ZOS_PROXY:-$root/build/zos-proxy}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
fi
RB_TIMEOUT=180 # seconds; one redis-benchmark run never takes that long unless stuck

die() { echo "passthrough: $*" >&2; exit 1; }
for c in redis-server redis-benchmark redis-cli nutcracker openssl "$PY" timeout; do
    command -v "$c" >/dev/null 2>&1 || die "missing $c (see make deps)"
done
[ -x "$PROXY_BIN" ] || die "no $PROXY_BIN: run make build/zos-proxy first"
case "$ROUNDS" in '' | *[!0-9]* | 0) die "ROUNDS must be a positive integer" ;; esac
case "$N" in '' | *[!0-9]* | 0) die "N must be a positive integer" ;; esac

# --- file descriptors: 10,000 idle clients + benchmark sockets ------------
want_fds=$((IDLE + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
    ulimit -Hn "$want_fds" 2>/dev/null || true
    ulimit -Sn "$want_fds" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
fi
nofile=$(ulimit -n)

# --- temp dir, cleanup of every process we start, by PID ------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zos-bench.XXXXXX") || die "mktemp failed"
rb_pid=
proxy_mem=
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
    trap - EXIT INT TERM
    [ -n "${rb_pid:-}" ] && kill "$rb_pid" 2>/dev/null && wait "$rb_pid" 2>/dev/null
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'echo "passthrough: interrupted" >&2; exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

read -r P_REDIS P_NC P_PROXY P_TLSREDIS P_TLSPROXY P_IDLE P_NCSTATS <<<"$(free_ports 7)"
SECRET=bench-secret-$$

# --- plain redis -----------------------------------------------------------
mkdir -p "$tmp/redis" "$tmp/tlsredis"
redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no \
    --dir "$tmp/redis" --logfile "$tmp/redis.log" --maxclients 20000 &
pid_redis=$!
pids+=("$pid_redis")
wait_listen redis-server "$pid_redis" "$P_REDIS" "$tmp/redis.log"

# --- TLS redis with requirepass (cert made now) ----------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" >"$tmp/openssl.log" 2>&1 ||
    { cat "$tmp/openssl.log" >&2; die "openssl could not make a certificate"; }
redis-server --bind 127.0.0.1 --port 0 --tls-port "$P_TLSREDIS" \
    --tls-cert-file "$tmp/tls.crt" --tls-key-file "$tmp/tls.key" \
    --tls-ca-cert-file "$tmp/tls.crt" --tls-auth-clients no \
    --requirepass "$SECRET" --save '' --appendonly no \
    --dir "$tmp/tlsredis" --logfile "$tmp/tlsredis.log" &
pid_tlsredis=$!
pids+=("$pid_tlsredis")
wait_listen "redis-server (TLS)" "$pid_tlsredis" "$P_TLSREDIS" "$tmp/tlsredis.log"

# --- nutcracker: one pool, one server --------------------------------------
cat >"$tmp/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:$P_NC
  redis: true
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: false
  preconnect: true
  servers:
   - 127.0.0.1:$P_REDIS:1
EOF
nutcracker -c "$tmp/nutcracker.yml" -o "$tmp/nutcracker.log" -s "$P_NCSTATS" -a 127.0.0.1 &
pid_nc=$!
pids+=("$pid_nc")
wait_listen nutcracker "$pid_nc" "$P_NC" "$tmp/nutcracker.log"

# --- zos-proxy: node "plain" on the main port, node "tls" on its own port --
cat >"$tmp/proxy.toml" <<EOF
# zos-proxy config written by bench/passthrough.sh
[proxy]
listen = 127.0.0.1:$P_PROXY
default = plain
max-clients = $((IDLE + 100))
log-level = warn

[plain]
address = 127.0.0.1
port = $P_REDIS
tls = no

[tls]
address = 127.0.0.1
port = $P_TLSREDIS
tls = yes
secret = $SECRET
listen = 127.0.0.1:$P_TLSPROXY
EOF
sed -e "s/^listen = 127.0.0.1:$P_PROXY\$/listen = 127.0.0.1:$P_IDLE/" \
    -e "/^\[tls\]/,\$d" "$tmp/proxy.toml" >"$tmp/proxy-idle.toml"
"$PROXY_BIN" -t -c "$tmp/proxy.toml" >"$tmp/proxy-check.log" 2>&1 ||
    { cat "$tmp/proxy-check.log" >&2; die "zos-proxy -t rejects the bench config"; }
"$PROXY_BIN" -c "$tmp/proxy.toml" >"$tmp/proxy.log" 2>&1 &
pid_proxy=$!
pids+=("$pid_proxy")
wait_listen zos-proxy "$pid_proxy" "$P_PROXY" "$tmp/proxy.log"
wait_listen "zos-proxy [tls] listen" "$pid_proxy" "$P_TLSPROXY" "$tmp/proxy.log"

# Sanity: each path answers and reaches the right server.
redis-cli -p "$P_REDIS" set bench:where direct >/dev/null
out=$(redis-cli -p "$P_PROXY" get bench:where 2>&1)
[ "$out" = direct ] || die "GET through zos-proxy gave '$out', want 'direct'"
out=$(redis-cli -p "$P_NC" get bench:where 2>&1)
[ "$out" = direct ] || die "GET through nutcracker gave '$out', want 'direct'"
out=$(redis-cli -p "$P_TLSPROXY" ping 2>&1)
[ "$out" = PONG ] || die "PING through zos-proxy to the TLS node gave '$out'"
out=$(redis-cli --tls --insecure -p "$P_TLSREDIS" -a "$SECRET" --no-auth-warning ping 2>&1)
[ "$out" = PONG ] || die "PING to the TLS redis gave '$out'"

# --- one redis-benchmark run ------------------------------------------------
# bench TARGET PIPELINE: runs SET and GET, stores "SET GET" requests/s in
# res[TARGET,PIPELINE,ROUND] ("fail fail" when the run failed).
declare -A res
target_args() {
    case $1 in
    direct) echo "-p $P_REDIS" ;;
    nutcracker) echo "-p $P_NC" ;;
    proxy) echo "-p $P_PROXY" ;;
    tlsdirect) echo "-p $P_TLSREDIS --tls --insecure -a $SECRET" ;;
    tlsproxy) echo "-p $P_TLSPROXY" ;;
    direct3) echo "-p $P_REDIS -3" ;;
    proxy3) echo "-p $P_PROXY -3" ;;
    esac
}
bench() {
    local t=$1 pl=$2 round=$3 log="$tmp/rb-$1-P$2-r$3" set get
    # shellcheck disable=SC2046
    timeout "$RB_TIMEOUT" redis-benchmark -h 127.0.0.1 $(target_args "$t") \
        -c "$CLIENTS" -P "$pl" -n "$N" -t set,get --csv >"$log.csv" 2>"$log.err" &
    rb_pid=$! # in the background so that ctrl-c is handled at once, not after the run
    wait "$rb_pid"
    local rc=$?
    rb_pid=
    set=$(awk -F'"' '$2 == "SET" { print $4 }' "$log.csv")
    get=$(awk -F'"' '$2 == "GET" { print $4 }' "$log.csv")
    if [ $rc -ne 0 ] || [ -z "$set" ] || [ -z "$get" ]; then
        failure "redis-benchmark $t -P $pl round $round: exit $rc, $(grep -v 'CONFIG' "$log.err" | tail -n 2 | tr '\n' ' ')"
        set=${set:-fail} get=${get:-fail}
    elif grep -qiE 'error|reset|refused' "$log.err"; then
        anomaly "redis-benchmark $t -P $pl round $round: $(grep -iE 'error|reset|refused' "$log.err" | sort | uniq -c | head -n 3 | tr '\n' ' ')"
    fi
    res[$t,$pl,$round]="$set $get"
    for p in "redis-server:$pid_redis" "redis-server (TLS):$pid_tlsredis" "nutcracker:$pid_nc" "zos-proxy:$pid_proxy"; do
        kill -0 "${p##*:}" 2>/dev/null ||
            { failure "${p%:*} (pid ${p##*:}) died during the $t -P $pl run of round $round"; report_and_exit; }
    done
    printf '.' >&2
}

# log_anomalies FILE NAME: what the proxy logged (at warn or above) while
# running; its own shutdown lines are never read (called before SIGTERM).
log_anomalies() {
    [ -s "$1" ] || return 0
    anomaly "$2 logged $(wc -l <"$1") line(s): $(sed -E 's/^[^ ]+ [^ ]+ //' "$1" | sort | uniq -c | sort -rn | head -n 3 | tr -s ' ' | sed 's/$/;/' | tr '\n' ' ')"
}

# median of the numbers among the arguments ("fail" ignored); "fail" if none
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "fail"; exit }
             if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# med TARGET PIPELINE FIELD(1 SET, 2 GET)
med() {
    local r vals=()
    for r in $(seq "$ROUNDS"); do
        vals+=("$(echo "${res[$1,$2,$r]:-fail fail}" | cut -d' ' -f"$3")")
    done
    median "${vals[@]}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
fmt() { awk -v a="$1" 'BEGIN { if (a ~ /^[0-9.]+$/) printf "%.0f", a; else printf "%s", a }'; }
verdict() { # verdict VALUE MIN
    awk -v a="$1" -v m="$2" 'BEGIN { if (a !~ /^[0-9.]+$/) print "n/a"; else if (a + 0 >= m + 0) print "met"; else print "not met" }'
}

# --- idle clients: memory per connection, on a fresh zos-proxy ------------
idle_out=""
idle_test() {
    [ "$IDLE" -gt 0 ] || return 0
    if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((IDLE + 100)) ]; then
        failure "ulimit -n is $nofile, cannot open $IDLE idle clients (run as root or raise the hard limit)"
        return 0
    fi
    "$PROXY_BIN" -c "$tmp/proxy-idle.toml" >"$tmp/proxy-idle.log" 2>&1 &
    pid_idle=$!
    pids+=("$pid_idle")
    wait_listen "zos-proxy (idle test)" "$pid_idle" "$P_IDLE" "$tmp/proxy-idle.log"
    redis-cli -p "$P_IDLE" get bench:where >/dev/null 2>&1 # the node link exists, as in real use
    if ! idle_out=$("$PY" "$here/idle_clients.py" --port "$P_IDLE" --pid "$pid_idle" --count "$IDLE" 2>"$tmp/idle.err"); then
        failure "idle clients: $(tail -n 3 "$tmp/idle.err" | tr '\n' ' ')"
    fi
    kill -0 "$pid_idle" 2>/dev/null || failure "zos-proxy (idle test) died; log: $(tail -n 3 "$tmp/proxy-idle.log" | tr '\n' ' ')"
    log_anomalies "$tmp/proxy-idle.log" "zos-proxy (idle test)"
    kill "$pid_idle" 2>/dev/null
    wait "$pid_idle" 2>/dev/null
}

report_and_exit() {
    local pl t f name w d n p r
    echo >&2
    echo
    echo "zos-proxy passthrough benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(redis-server --version | awk '{print $3}'), $(nutcracker -V 2>&1 | awk '{print $NF}' | head -n 1)"
    echo "redis-benchmark -c $CLIENTS -n $N -t set,get; median of $ROUNDS interleaved round(s); requests/s"
    echo
    printf '%-6s %-4s %11s %11s %11s %13s %17s\n' pipe test direct nutcracker proxy proxy/direct proxy/nutcracker
    for pl in 1 16; do
        for f in 1 2; do
            [ $f = 1 ] && name=SET || name=GET
            d=$(med direct $pl $f) n=$(med nutcracker $pl $f) p=$(med proxy $pl $f)
            printf '%-6s %-4s %11s %11s %11s %13s %17s\n' "-P $pl" $name "$(fmt "$d")" "$(fmt "$n")" "$(fmt "$p")" \
                "$(ratio "$p" "$d")" "$(ratio "$p" "$n")"
        done
    done
    echo
    echo "TLS to the node (client -> proxy plain, proxy -> redis TLS + AUTH) vs redis-benchmark --tls direct"
    echo
    printf '%-6s %-4s %11s %11s %13s\n' pipe test tls-direct tls-proxy proxy/direct
    for pl in 1 16; do
        for f in 1 2; do
            [ $f = 1 ] && name=SET || name=GET
            d=$(med tlsdirect $pl $f) p=$(med tlsproxy $pl $f)
            printf '%-6s %-4s %11s %11s %13s\n' "-P $pl" $name "$(fmt "$d")" "$(fmt "$p")" "$(ratio "$p" "$d")"
        done
    done
    echo
    echo "RESP3 clients (redis-benchmark -3: HELLO 3 first), straight to redis and through zos-proxy"
    echo
    printf '%-6s %-4s %11s %11s %13s\n' pipe test direct-3 proxy-3 proxy/direct
    for pl in 1 16; do
        for f in 1 2; do
            [ $f = 1 ] && name=SET || name=GET
            d=$(med direct3 $pl $f) p=$(med proxy3 $pl $f)
            printf '%-6s %-4s %11s %11s %13s\n' "-P $pl" $name "$(fmt "$d")" "$(fmt "$p")" "$(ratio "$p" "$d")"
        done
    done
    echo
    echo "Targets (information, not pass/fail):"
    for pl in 16 1; do
        [ $pl = 16 ] && w=2 || w=1
        for f in 1 2; do
            [ $f = 1 ] && name=SET || name=GET
            r=$(ratio "$(med proxy $pl $f)" "$(med nutcracker $pl $f)")
            printf '  -P %-2s %s proxy >= %sx nutcracker: %-5s -> %s\n' $pl $name $w "$r" "$(verdict "$r" $w)"
        done
    done
    if [ -n "$idle_out" ]; then
        local kc kp
        kc=$(echo "$idle_out" | awk -F= '$1 == "kib_per_client_connected" { print $2 }')
        kp=$(echo "$idle_out" | awk -F= '$1 == "kib_per_client_pinged" { print $2 }')
        echo
        echo "Memory per idle client ($IDLE connections to a fresh zos-proxy, VmRSS):"
        echo "$idle_out" | awk -F= '/^rss_/ { printf "  %-18s %8d KiB\n", $1, $2 }'
        printf '  per client, connected only:      %6s KiB  (target <= 4 KiB: %s)\n' "$kc" "$(awk -v v="$kc" 'BEGIN { print (v <= 4 ? "met" : "not met") }')"
        printf '  per client, after one PING each: %6s KiB  (target <= 4 KiB: %s)\n' "$kp" "$(awk -v v="$kp" 'BEGIN { print (v <= 4 ? "met" : "not met") }')"
    elif [ "$IDLE" -gt 0 ]; then
        echo
        echo "Memory per idle client: not measured (see Anomalies)"
    fi
    echo
    echo "zos-proxy after the throughput runs: ${proxy_mem:-n/a}"
    log_anomalies "$tmp/proxy.log" zos-proxy
    echo "CPU used by other work (1 s samples, our servers idle): ${busy0}% before, ${busy1:-n/a}${busy1:+%} after the throughput runs; $((SECONDS - t0)) s in all"
    if awk -v a="$busy0" -v b="${busy1:-0}" 'BEGIN { exit !(a > 10 || b > 10) }'; then
        echo "note: other processes were using the CPUs: figures are noisy, compare ratios and run again on a quiet machine"
    fi
    echo
    anomalies_report
    exit $failed
}

# --- the rounds, interleaved -----------------------------------------------
t0=$SECONDS
busy0=$(cpu_busy)
busy1=
echo "passthrough: redis :$P_REDIS, nutcracker :$P_NC, zos-proxy :$P_PROXY, TLS redis :$P_TLSREDIS, zos-proxy->TLS :$P_TLSPROXY; $ROUNDS round(s) of -n $N" >&2
for r in $(seq "$ROUNDS"); do
    for pl in 1 16; do
        for t in direct nutcracker proxy; do bench $t $pl "$r"; done
    done
done
for r in $(seq "$ROUNDS"); do
    for pl in 1 16; do
        for t in tlsdirect tlsproxy; do bench $t $pl "$r"; done
    done
done
for r in $(seq "$ROUNDS"); do
    for pl in 1 16; do
        for t in direct3 proxy3; do bench $t $pl "$r"; done
    done
done
busy1=$(cpu_busy)
proxy_mem=$(awk '/^VmRSS|^VmHWM/ { printf "%s %s KiB  ", $1, $2 }' "/proc/$pid_proxy/status")
idle_test
report_and_exit
