#!/bin/bash
# shellcheck disable=SC2154 # PY is the caller's
# bench/lib.sh -- helpers the benchmark scripts share (sourced, not run).
# The caller sets PY (a python3 with the stdlib) and defines die MESSAGE.

# Free loopback TCP ports: bound to port 0 all at once so they differ, then released.
free_ports() {
    "$PY" - "$1" <<'EOF'
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
}

# listens PID PORT: true when process PID holds a listening socket on PORT (checked in
# /proc, so that a stranger's server on the same port never counts as ours).
listens() {
    "$PY" - "$1" "$2" <<'EOF'
import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
inodes = set()
for f in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(f).read().splitlines()[1:]
    except OSError:
        continue
    for l in lines:
        p = l.split()
        if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(p[9])
try:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:[") and t[8:-1] in inodes:
            sys.exit(0)
except OSError:
    pass
sys.exit(1)
EOF
}

# wait_listen NAME PID PORT LOG: up to 10 s for PID to listen on PORT.
wait_listen() {
    local name=$1 pid=$2 port=$3 log=$4
    for _ in $(seq 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $log" >&2; tail -n 20 "$log" >&2
            die "$name (pid $pid) exited at start"
        fi
        listens "$pid" "$port" && return 0
        sleep 0.05
    done
    echo "--- $log" >&2; tail -n 20 "$log" >&2
    die "$name (pid $pid) does not listen on 127.0.0.1:$port after 10 s"
}

cpu_busy() { # percent of all CPUs busy during 1 s (from /proc/stat)
    local a b
    a=$(head -n 1 /proc/stat)
    sleep 1
    b=$(head -n 1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ idle[NR] = $5 + $6; tot[NR] = 0; for (i = 2; i <= NF; i++) tot[NR] += $i }
        END { d = tot[2] - tot[1]; printf "%.0f", (d > 0 ? 100 * (1 - (idle[2] - idle[1]) / d) : 0) }'
}

# The processes a benchmark starts go into its pids array; its EXIT trap calls stop_all.
pids=()

# stop_pid PID [SECONDS]: SIGTERM (and SIGCONT, should it be stopped), SIGKILL after SECONDS
# (10), reaped and dropped from pids.  Returns its exit status (137 when it had to be killed).
stop_pid() {
    local p=$1 t=${2:-10} i keep=() rc
    kill "$p" 2>/dev/null
    kill -CONT "$p" 2>/dev/null
    for _ in $(seq $((t * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    rc=$?
    for i in "${pids[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
    pids=("${keep[@]}")
    return $rc
}

# stop_all: every process of pids at once (SIGTERM, SIGKILL after 5 s), reaped.
stop_all() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; kill -CONT "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    pids=()
}

# anomaly MESSAGE: noted (stderr now, the summary later); failure MESSAGE: also fails the run.
anomalies=()
failed=0
anomaly() { anomalies+=("$*"); echo "  ! $*" >&2; }
failure() { failed=1; anomaly "$@"; }

# The closing block of a run: every anomaly noted, or "Anomalies: none".
anomalies_report() {
    if [ ${#anomalies[@]} -gt 0 ]; then
        echo "Anomalies:"
        printf '  - %s\n' "${anomalies[@]}"
    else
        echo "Anomalies: none"
    fi
}
