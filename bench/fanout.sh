#!/usr/bin/env bash
# fanout.sh -- one zos-proxy in front of 100 .. 10,000 node names (issue 12): config check,
# startup, memory, and ZOS.ALL PING to every node, cold and warm, side by side with a naive
# client that visits the nodes one after the other.  A benchmark, not a test: targets are
# printed as "met" / "not met" and never change the exit status.  See bench/README.md.
#
#   bench/fanout.sh                    (make bench runs it; builds nothing itself)
#
# Environment:
#   SIZES="100 1000 10000"  numbers of node names, each run once for plain and once for TLS
#   KINDS="plain tls"       which configs: plain names only, TLS (+AUTH) names only
#   SERVERS=20              redis-servers of each kind the names are spread over
#   CHECK_NAMES=40000       names of the extra `zos-proxy -t` timing (plain and TLS mixed; 0 skips)
#   NAIVE_CAP=500           the naive client visits at most this many names; figures for more
#                           are extrapolated (marked *)
#   WARM=3                  warm ZOS.ALL PING rounds (the median is shown)
#   COLD_TIMEOUT=300        seconds the first fan-out may take: client socket timeout and
#                           ZOS.ALL TIMEOUT (in ms) when the proxy knows that form
#   NOFILE=65536            descriptor limit asked for (capped by the hard limit)
#   ZOS_PROXY=build/zos-proxy
#   KEEP=1                  keep the temporary directory (configs, logs)
#
# Exit status: 0 when every figure was measured; 1 when a server did not start, the proxy
# died or a client failed ("fail" in the table, the reason under "Anomalies").
set -u
set -o pipefail
export LC_ALL=C

SIZES=${SIZES:-"100 1000 10000"}
KINDS=${KINDS:-"plain tls"}
SERVERS=${SERVERS:-20}
CHECK_NAMES=${CHECK_NAMES:-40000}
NAIVE_CAP=${NAIVE_CAP:-500}
WARM=${WARM:-3}
COLD_TIMEOUT=${COLD_TIMEOUT:-300}
NOFILE=${NOFILE:-65536}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PROXY_BIN=${ZOS_PROXY:-$root/build/zos-proxy}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
fi
HELPER=$here/fanout_client.py

die() { echo "fanout: $*" >&2; exit 1; }
for c in redis-server redis-cli openssl "$PY" timeout; do
    command -v "$c" >/dev/null 2>&1 || die "missing $c (see make deps)"
done
[ -x "$PROXY_BIN" ] || die "no $PROXY_BIN: run make build/zos-proxy first"
for v in SERVERS NAIVE_CAP COLD_TIMEOUT NOFILE; do
    case ${!v} in '' | *[!0-9]* | 0) die "$v must be a positive integer" ;; esac
done
case $WARM in '' | *[!0-9]*) die "WARM must be an integer" ;; esac
case $CHECK_NAMES in '' | *[!0-9]*) die "CHECK_NAMES must be an integer" ;; esac
for n in $SIZES; do case $n in '' | *[!0-9]* | 0) die "SIZES: '$n' is not a positive integer" ;; esac; done
for k in $KINDS; do case $k in plain | tls) ;; *) die "KINDS: '$k' is not plain or tls" ;; esac; done

# --- descriptors: 10,000 node links need 10,000 of them ----------------------
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$NOFILE" ]; then
    ulimit -Hn "$NOFILE" 2>/dev/null || true
fi
ulimit -Sn "$NOFILE" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
nofile_hard=$(ulimit -Hn)

# --- temp dir, cleanup of every process we start, by PID ------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zos-fanout.XXXXXX") || die "mktemp failed"
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
    trap - EXIT INT TERM
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'echo "fanout: interrupted" >&2; exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

t0=$SECONDS
busy0=$(cpu_busy)
SECRET=fanout-secret-$$

# --- 2 x SERVERS redis-servers: plain, and TLS with requirepass ---------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" >"$tmp/openssl.log" 2>&1 ||
    { cat "$tmp/openssl.log" >&2; die "openssl could not make a certificate"; }
read -r -a ports <<<"$(free_ports $((2 * SERVERS)))"
plain_ports=() tls_ports=() pairs=""
for i in $(seq 0 $((SERVERS - 1))); do
    p=${ports[$i]} q=${ports[$((SERVERS + i))]}
    mkdir -p "$tmp/r$p" "$tmp/r$q"
    redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no --maxclients 20000 \
        --dir "$tmp/r$p" --logfile "$tmp/r$p/redis.log" &
    pids+=("$!")
    pairs+="$!:$p,"
    redis-server --bind 127.0.0.1 --port 0 --tls-port "$q" \
        --tls-cert-file "$tmp/tls.crt" --tls-key-file "$tmp/tls.key" \
        --tls-ca-cert-file "$tmp/tls.crt" --tls-auth-clients no \
        --requirepass "$SECRET" --save '' --appendonly no --maxclients 20000 \
        --dir "$tmp/r$q" --logfile "$tmp/r$q/redis.log" &
    pids+=("$!")
    pairs+="$!:$q,"
    plain_ports+=("$p") tls_ports+=("$q")
done
"$PY" "$HELPER" waitlisten --pairs "$pairs" --timeout 30 || die "a redis-server did not start (logs in $tmp/r*/)"
PLAIN_PORTS=$(IFS=,; echo "${plain_ports[*]}")
TLS_PORTS=$(IFS=,; echo "${tls_ports[*]}")
out=$(redis-cli --tls --insecure -p "${tls_ports[0]}" -a "$SECRET" --no-auth-warning ping 2>&1)
[ "$out" = PONG ] || die "PING to a TLS redis-server gave '$out'"

# write_conf FILE KIND N PORT: a proxy config with N names (and FILE.nodes for the naive client)
write_conf() {
    "$PY" "$HELPER" conf --out "$1" --nodes-out "$1.nodes" --kind "$2" --n "$3" \
        --plain-ports "$PLAIN_PORTS" --tls-ports "$TLS_PORTS" --secret "$SECRET" \
        --listen "127.0.0.1:$4" --set "max-clients=64" --set "log-level=info"
}

# start_proxy CONF LOG PORT: starts zos-proxy, sets proxy_pid and startup_s (from the
# launch until its port answers PING; the poller runs before the launch so that its own
# start-up is not counted).  Returns 1 when it did not come up.
start_proxy() {
    local conf=$1 log=$2 port=$3 wp t_launch ready
    rm -f "$tmp/polling"
    "$PY" "$HELPER" waitping --port "$port" --ready-file "$tmp/polling" --timeout 120 >"$tmp/ready.out" &
    wp=$!
    for _ in $(seq 500); do [ -e "$tmp/polling" ] && break; sleep 0.01; done
    t_launch=$EPOCHREALTIME
    "$PROXY_BIN" -c "$conf" >"$log" 2>&1 &
    proxy_pid=$!
    pids+=("$proxy_pid")
    if ! wait "$wp"; then
        startup_s=fail
        return 1
    fi
    ready=$(sed -n 's/^ready_at=//p' "$tmp/ready.out")
    startup_s=$(awk -v a="$t_launch" -v b="$ready" 'BEGIN { printf "%.3f", b - a }')
}

# log_anomalies FILE WHAT: the proxy's warn/error lines (its shutdown lines are never read)
log_anomalies() {
    local n
    n=$(awk '$3 == "W" || $3 == "E"' "$1" | wc -l)
    [ "$n" -gt 0 ] || return 0
    anomaly "$2 logged $n warn/error line(s): $(awk '$3 == "W" || $3 == "E"' "$1" | cut -d' ' -f3- |
        sed -E "s/'[pt][0-9]{5}'/'X'/g" | sort | uniq -c | sort -rn | head -n 3 | tr -s ' ' | tr '\n' ';')"
}

# --- does this proxy know ZOS.ALL TIMEOUT <ms>? (a one-node proxy answers) -------
ALL_TIMEOUT_MS=$((COLD_TIMEOUT * 1000))
read -r P_PROBE <<<"$(free_ports 1)"
write_conf "$tmp/probe.toml" plain 1 "$P_PROBE" || die "cannot write a config"
start_proxy "$tmp/probe.toml" "$tmp/probe.log" "$P_PROBE" ||
    { tail -n 5 "$tmp/probe.log" >&2; die "zos-proxy does not start with a one-node config"; }
timeout_verb=$("$PY" "$HELPER" probe --port "$P_PROBE" | sed -n 's/^timeout_verb=//p')
stop_pid "$proxy_pid"
if [ "$timeout_verb" != yes ]; then
    ALL_TIMEOUT_MS=0 # said in the report's header
fi

# --- one size of one kind --------------------------------------------------------
declare -A R
kv_into() { # PREFIX < key=value lines
    local k v
    while IFS='=' read -r k v; do [ -n "$k" ] && R[$1,$k]=$v; done
}

measure() {
    local kind=$1 n=$2 port conf log out
    read -r port <<<"$(free_ports 1)"
    conf=$tmp/$kind-$n.toml log=$tmp/$kind-$n.log
    write_conf "$conf" "$kind" "$n" "$port" || { failure "cannot write $conf"; return; }
    out=$("$PY" "$HELPER" checkt --bin "$PROXY_BIN" --conf "$conf" --repeat 3)
    kv_into "$kind,$n" <<<"$out"
    [ "${R[$kind,$n,check_rc]:-1}" = 0 ] ||
        failure "zos-proxy -t rejects $conf: ${R[$kind,$n,check_out]:-?}"
    echo "fanout: $kind N=$n: proxy" >&2
    if ! start_proxy "$conf" "$log" "$port"; then
        failure "$kind N=$n: zos-proxy did not answer PING: $(tail -n 3 "$log" | tr '\n' ' ')"
        stop_pid "$proxy_pid"
        return
    fi
    R[$kind,$n,startup_s]=$startup_s
    if out=$(timeout $((COLD_TIMEOUT + 120)) "$PY" "$HELPER" fanout --port "$port" --pid "$proxy_pid" \
        --n "$n" --timeout "$COLD_TIMEOUT" --all-timeout "$ALL_TIMEOUT_MS" --warm "$WARM" 2>"$tmp/fanout.err"); then
        kv_into "$kind,$n" <<<"$out"
    else
        failure "$kind N=$n: fan-out client: $(tail -n 2 "$tmp/fanout.err" | tr '\n' ' ')"
        kv_into "$kind,$n" <<<"$out"
    fi
    kill -0 "$proxy_pid" 2>/dev/null ||
        failure "$kind N=$n: zos-proxy died: $(tail -n 3 "$log" | tr '\n' ' ')"
    [ -n "${R[$kind,$n,cold_errors]:-}" ] && anomaly "$kind N=$n: first fan-out errors: ${R[$kind,$n,cold_errors]}"
    [ -n "${R[$kind,$n,warm_errors]:-}" ] && anomaly "$kind N=$n: warm fan-out errors: ${R[$kind,$n,warm_errors]}"
    R[$kind,$n,descriptors]=$(grep -m 1 -o 'descriptors:.*' "$log")
    log_anomalies "$log" "zos-proxy ($kind, N=$n)"
    stop_pid "$proxy_pid"
    echo "fanout: $kind N=$n: naive client" >&2
    if out=$(timeout 900 "$PY" "$HELPER" naive --nodes "$conf.nodes" --cap "$NAIVE_CAP" \
        --secret "$([ "$kind" = tls ] && echo "$SECRET")" 2>"$tmp/naive.err"); then
        kv_into "$kind,$n" <<<"$out"
    else
        failure "$kind N=$n: naive client: $(tail -n 2 "$tmp/naive.err" | tr '\n' ' ')"
    fi
}

echo "fanout: $SERVERS plain + $SERVERS TLS redis-servers; sizes $SIZES; ulimit -n $nofile" >&2
for n in $SIZES; do
    for kind in $KINDS; do measure "$kind" "$n"; done
done
if [ "$CHECK_NAMES" -gt 0 ]; then
    write_conf "$tmp/mix-$CHECK_NAMES.toml" mix "$CHECK_NAMES" "$P_PROBE" || failure "cannot write the -t config"
    kv_into "mix,$CHECK_NAMES" <<<"$("$PY" "$HELPER" checkt --bin "$PROXY_BIN" --conf "$tmp/mix-$CHECK_NAMES.toml" --repeat 3)"
    [ "${R[mix,$CHECK_NAMES,check_rc]:-1}" = 0 ] ||
        failure "zos-proxy -t rejects $CHECK_NAMES names: ${R[mix,$CHECK_NAMES,check_out]:-?}"
fi
busy1=$(cpu_busy)

# --- report ------------------------------------------------------------------------
get() { echo "${R[$1]:-fail}"; }
num() { awk -v a="$1" -v f="$2" 'BEGIN { if (a ~ /^[0-9.]+$/) printf f, a; else printf "%s", a }'; }
mb() { awk -v a="$1" 'BEGIN { if (a ~ /^[0-9]+$/) printf "%.1f", a * 1024 / 1e6; else printf "%s", a }'; }
# naive KIND N FIELD: the naive figure, extrapolated to N when fewer names were visited
naive() {
    local m v
    m=${R[$1,$2,naive_measured]:-} v=${R[$1,$2,$3]:-}
    [ -n "$m" ] && [ -n "$v" ] || { echo fail; return; }
    awk -v v="$v" -v m="$m" -v n="$2" 'BEGIN { if (m < n) printf "%.3f*", v * n / m; else printf "%.3f", v }'
}
ratio() { awk -v a="${1%\*}" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.1fx", a / b; else printf "n/a" }'; }
row() { # TITLE VALUES...
    local t=$1
    shift
    printf '  %-40s' "$t"
    printf ' %12s' "$@"
    echo
}
table() {
    local kind=$1 n vals
    echo
    if [ "$kind" = tls ]; then
        echo "TLS names (proxy -> redis: TLS + AUTH; $SERVERS TLS redis-servers)"
    else
        echo "plain names (proxy -> redis: plain TCP; $SERVERS plain redis-servers)"
    fi
    vals=(); for n in $SIZES; do vals+=("N=$n"); done; row "" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(num "$(get "$kind,$n,check_s")" %.3f)"); done; row "zos-proxy -t (s, best of 3)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(get "$kind,$n,startup_s")"); done; row "startup until PING answers (s)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(mb "$(get "$kind,$n,rss_idle_kib")")"); done; row "idle RSS, no link yet (MB)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(num "$(get "$kind,$n,cold_s")" %.3f)"); done; row "first ZOS.ALL PING, proxy (s)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(naive "$kind" "$n" naive_cold_s)"); done; row "  naive sequential client (s)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(ratio "$(naive "$kind" "$n" naive_cold_s)" "$(get "$kind,$n,cold_s")")"); done; row "  naive / proxy" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(get "$kind,$n,cold_pong")/$n"); done; row "  answered PONG, proxy" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(get "$kind,$n,naive_cold_pong")/$(get "$kind,$n,naive_measured")"); done; row "  answered PONG, naive (of visited)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(num "$(get "$kind,$n,cold_cpu_s")" %.2f)"); done; row "  proxy CPU, utime+stime (s)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(num "$(get "$kind,$n,warm_s")" %.3f)"); done; row "warm ZOS.ALL PING, median of $WARM (s)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(num "$(get "$kind,$n,warm_cpu_s")" %.2f)"); done; row "  proxy CPU per round (s)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(naive "$kind" "$n" naive_warm_s)"); done; row "  naive, connections kept (s)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(ratio "$(naive "$kind" "$n" naive_warm_s)" "$(get "$kind,$n,warm_s")")"); done; row "  naive / proxy" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(get "$kind,$n,warm_pong")/$n"); done; row "  answered PONG, proxy (worst round)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(mb "$(get "$kind,$n,rss_links_kib")")"); done; row "RSS, every link open (MB)" "${vals[@]}"
    vals=(); for n in $SIZES; do vals+=("$(get "$kind,$n,nfds")"); done; row "proxy descriptors then" "${vals[@]}"
}
verdict() { # VALUE OP LIMIT
    awk -v a="$1" -v op="$2" -v m="$3" 'BEGIN { if (a !~ /^[0-9.]+$/) print "n/a";
        else if ((op == "<=" && a + 0 <= m + 0) || (op == ">=" && a + 0 >= m + 0)) print "met"; else print "not met" }'
}

echo >&2
echo
echo "zos-proxy fan-out benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, redis $(redis-server --version | awk '{print $3}' | sed 's/v=//')"
echo "$SERVERS plain + $SERVERS TLS redis-servers (RSA-2048 cert, requirepass) on 127.0.0.1; N names round-robin over"
echo "the servers of one kind, plain and TLS names in separate configs (one fresh proxy per config)."
echo "ulimit -n $nofile (hard $nofile_hard); proxy: max-clients 64, other keys default; first fan-out:"
if [ "$ALL_TIMEOUT_MS" -gt 0 ]; then
    echo "ZOS.ALL TIMEOUT $ALL_TIMEOUT_MS PING, client socket timeout $COLD_TIMEOUT s."
else
    echo "ZOS.ALL PING (this proxy has no TIMEOUT form), client socket timeout $COLD_TIMEOUT s."
fi
echo "naive client: Python, one name after the other: connect, TLS handshake, AUTH, PING (first"
echo "pass), then PING on each kept connection (warm pass); * = timed on the first $NAIVE_CAP names, x N/$NAIVE_CAP."
for kind in $KINDS; do table "$kind"; done
if [ "$CHECK_NAMES" -gt 0 ]; then
    echo
    printf '  zos-proxy -t, %d names (plain and TLS mixed): %s s (best of 3)\n' "$CHECK_NAMES" \
        "$(num "$(get "mix,$CHECK_NAMES,check_s")" %.3f)"
fi
echo
for kind in $KINDS; do
    for n in $SIZES; do
        [ -n "${R[$kind,$n,descriptors]:-}" ] && echo "  $kind N=$n: ${R[$kind,$n,descriptors]}"
    done
done
[ "$(for kind in $KINDS; do for n in $SIZES; do echo "${R[$kind,$n,descriptors]:-}"; done; done | grep -c .)" -gt 0 ] ||
    echo "  (the proxy logged no 'descriptors:' line)"

echo
echo "Targets (issue 12; information, not pass/fail), at 10,000 TLS names:"
if [[ " $SIZES " == *" 10000 "* ]] && [[ " $KINDS " == *" tls "* ]]; then
    p=$(get tls,10000,cold_pong)
    printf '  first fan-out completes, every node answers:  %s/10000 PONG in %s s  -> %s\n' "$p" \
        "$(num "$(get tls,10000,cold_s)" %.1f)" "$(verdict "$p" '>=' 10000)"
    w=$(verdict "$(get tls,10000,warm_s)" '<=' 0.5)
    [ "$w" = met ] && [ "$(get tls,10000,warm_pong)" != 10000 ] && w="not met (only $(get tls,10000,warm_pong)/10000 answered)"
    printf '  warm ZOS.ALL PING <= 0.5 s, every node:       %s s  -> %s\n' "$(num "$(get tls,10000,warm_s)" %.3f)" "$w"
    printf '  idle RSS before any link <= 30 MB:            %s MB -> %s\n' "$(mb "$(get tls,10000,rss_idle_kib)")" \
        "$(verdict "$(mb "$(get tls,10000,rss_idle_kib)")" '<=' 30)"
else
    echo "  n/a: SIZES or KINDS leave out 10000 TLS names"
fi
if [ "$CHECK_NAMES" = 40000 ]; then
    printf '  zos-proxy -t at 40,000 names <= 0.2 s:        %s s  -> %s\n' "$(num "$(get mix,40000,check_s)" %.3f)" \
        "$(verdict "$(get mix,40000,check_s)" '<=' 0.2)"
else
    echo "  zos-proxy -t at 40,000 names: n/a (CHECK_NAMES=$CHECK_NAMES)"
fi
echo
echo "CPU used by other work (1 s samples, our servers idle): ${busy0}% before, ${busy1}% after; $((SECONDS - t0)) s in all"
if awk -v a="$busy0" -v b="$busy1" 'BEGIN { exit !(a > 10 || b > 10) }'; then
    echo "note: other processes were using the CPUs: figures are noisy, run again on a quiet machine"
fi
echo
anomalies_report
exit $failed
