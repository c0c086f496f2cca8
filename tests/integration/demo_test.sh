#!/bin/sh
# The README's first command, as a user runs it (with the binaries of this
# build): both agents must be listed as up, and nothing may be left running.
set -eu
root=$1
bin=$2
# Below Linux's ephemeral range (32768+), where outgoing connections would
# take our ports; the script uses base..base+82.
base=$((20000 + $$ % 12000))
out=$(MLX_BIN_DIR="$bin" MLX_DEMO_PORT_BASE=$base "$root/deploy/local/cluster.sh" 2>&1) || {
    echo "cluster.sh failed:"
    echo "$out"
    exit 1
}
echo "$out"
for name in agent-1 agent-2; do
    echo "$out" | grep -Eq "^$name +[0-9a-f]{16} +up " || {
        echo "FAIL: $name is not listed as up"
        exit 1
    }
done
if pgrep -f "mlx-fleet-demo" >/dev/null 2>&1; then
    echo "FAIL: processes of the demo are still running"
    exit 1
fi
echo "PASS"
