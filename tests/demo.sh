#!/bin/bash
# demo.sh -- `make demo`: two simulated Zero-OS nodes (one TLS + secret), the
# proxy in front of them, driven by redis-cli and the zos CLI.  Everything
# runs on 127.0.0.1 with free ports, in a temp dir, and is stopped on exit.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
tmp=$(mktemp -d /tmp/zos-demo.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

start_sim() { # port, extra args...: waits for the ready line
    local port=$1; shift
    $BUILD/zos-node-sim --port "$port" "$@" > "$tmp/sim-$port.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q ready "$tmp/sim-$port.out" && return 0; sleep 0.05; done
    echo "simulated node on $port did not start:"; cat "$tmp/sim-$port.out"; exit 1
}

secure=$(free_port); plain=$(free_port); pport=$(free_port)
start_sim "$secure" --tls --secret demo-jwt
start_sim "$plain" --no-tls
echo "simulated nodes: 'secure' on $secure (TLS, AUTH demo-jwt), 'plain' on $plain"

export HOME=$tmp/home ZOS_CONFIG=$tmp/zos.toml
mkdir -p "$HOME"
cat > "$ZOS_CONFIG" <<CONF
[app]
defaultzos = secure

[proxy]
listen = 127.0.0.1:$pport

[secure]
address = 127.0.0.1
port = $secure
tls = yes
secret = demo-jwt

[plain]
address = 127.0.0.1
port = $plain
tls = no
CONF
$BUILD/zos-proxy -c "$ZOS_CONFIG" 2> "$tmp/proxy.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$pport" ping >/dev/null 2>&1 && break; sleep 0.05; done

R="redis-cli -p $pport"
echo; echo "=== redis-cli through zos-proxy on 127.0.0.1:$pport"
step $R ZOS.NODES
step $R SET greeting "hello from the default node"
step $R GET greeting
step $R ZOS.AT plain SET greeting "hello from plain"
step $R --user plain --pass x --no-auth-warning GET greeting
step $R ZOS.ALL GET greeting
step $R ZOS.CMD core.ping
step $R ZOS.CMD info.version
step $R ZOS.EXEC 'uname -sr; echo "running as $(id -un)"'
step $R ZOS.ALL ZOS.CMD core.ping
step $R ZOS.EXEC 'exit 3' || true

if [ -x $BUILD/zos ]; then
    echo; echo "=== the zos CLI (config: $ZOS_CONFIG)"
    step $BUILD/zos showactive
    step $BUILD/zos ping
    step $BUILD/zos cmd info.version
    step $BUILD/zos exec 'ls / | head -3'
    step $BUILD/zos exec 'for i in 1 2 3; do echo "tick $i (shown as it comes)"; sleep 0.3; done'
    ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519" 2>/dev/null || { mkdir -p "$HOME/.ssh"; ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519"; }
    step $BUILD/zos container new --name demo --root https://hub.grid.tf/tf-bootable/ubuntu:18.04.flist
    step $BUILD/zos container list
    step $BUILD/zos container zosexec /bin/pwd
    step $BUILD/zos --proxy 127.0.0.1:$pport container list
    step $BUILD/zos container delete
fi
echo; echo "demo done: stopping the proxy and the simulated nodes"
