#!/bin/sh
# A whole fleet on one machine: one coordinator and two agents on loopback.
# Installs what is missing, builds, starts the fleet, prints it with
# `mlxctl nodes`, then stops everything cleanly.
#
#   deploy/local/cluster.sh           run, show the fleet, stop
#   deploy/local/cluster.sh --keep    keep the fleet running until Ctrl-C
#
# Environment: MLX_DEMO_PORT_BASE (default 17400) moves every port;
# MLX_BIN_DIR uses binaries already built there (skips install and build).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
keep=false
for arg in "$@"; do
    case "$arg" in
    --keep) keep=true ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster.sh: unknown argument '$arg'; see --help" >&2; exit 2 ;;
    esac
done

if [ -z "${MLX_BIN_DIR:-}" ]; then
    "$root/deploy/install-deps.sh"
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$root/build" -j "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)" >/dev/null
    MLX_BIN_DIR="$root/build/bin"
fi
bin=$MLX_BIN_DIR

base=${MLX_DEMO_PORT_BASE:-17400}
control="tcp://127.0.0.1:$base"
http="127.0.0.1:$((base + 80))"
api="http://$http"
work=$(mktemp -d "${TMPDIR:-/tmp}/mlx-fleet-demo.XXXXXX")
pids=""

stop() {
    trap - EXIT INT TERM
    if [ -n "$pids" ]; then
        echo "Stopping the fleet..."
        # Agents first (the coordinator is last in the list), so they
        # deregister while the coordinator still listens.
        for pid in $pids; do
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
    fi
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

"$bin/mlx-coordinator" serve --data "$work/coordinator" --control "$control" \
    --http "$http" --heartbeat-ms 500 >"$work/coordinator.log" 2>&1 &
coordinator=$!
for i in 1 2; do
    "$bin/mlx-agent" serve --data "$work/agent-$i" --name "agent-$i" \
        --coordinator "$control" --listen "tcp://127.0.0.1:$((base + i))" \
        --http "127.0.0.1:$((base + 80 + i))" --heartbeat-ms 500 \
        >"$work/agent-$i.log" 2>&1 &
    pids="$pids $!"
done
pids="$pids $coordinator"

# Wait until both agents are up (registration takes a heartbeat or two).
deadline=$(($(date +%s) + 20))
up=0
while [ "$up" -lt 2 ]; do
    for pid in $pids; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "cluster.sh: a process of the fleet stopped (a port in use?); logs follow" >&2
            tail -n 20 "$work"/*.log >&2
            exit 1
        fi
    done
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "cluster.sh: the agents did not come up within 20 s; logs follow" >&2
        tail -n 20 "$work"/*.log >&2
        exit 1
    fi
    sleep 0.2
    up=$("$bin/mlxctl" --coordinator "$api" nodes --json 2>/dev/null |
        grep -o '"state":"up"' | wc -l | tr -d ' ') || up=0
done

echo "The fleet (mlxctl --coordinator $api nodes):"
echo
"$bin/mlxctl" --coordinator "$api" nodes
echo

if $keep; then
    echo "Running. Try: $bin/mlxctl --coordinator $api nodes --json"
    echo "Press Ctrl-C to stop."
    wait "$coordinator"
fi
