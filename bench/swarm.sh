#!/usr/bin/env bash
# bench/swarm.sh — a swarm of SWARM_NODES (50) macronode nodes on this
# machine's loopback: bootstrap time, DHT lookup latency, fetch on miss,
# memory per node. The work is done by bench/swarm.py (standard library
# Python); this wrapper finds the binary and Python. See bench/README.md.
#
# Run from the repo root after `make build`:  bench/swarm.sh   (or make swarm)
# Env: SWARM_NODES (50), SWARM_BOOTSTRAP (2), SWARM_OBJECTS (3 per node),
#      SWARM_OBJ_KIB (1024), SWARM_LOOKUPS (100), SWARM_FETCHES (50 per phase),
#      SWARM_PARALLEL (4), SWARM_START_BATCH (5), SWARM_KEEP=1 (keep the temp
#      dir with every node's log when something fails), MACRONODE_BIN.
# Exits non-zero only when the swarm cannot be set up, never on a number.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MACRONODE_BIN=${MACRONODE_BIN:-$here/../build/macronode}
[[ -x $MACRONODE_BIN ]] || { echo "swarm: no binary at $MACRONODE_BIN (make build)" >&2; exit 2; }
# exec: Ctrl-C and SIGTERM reach the driver itself, whose finally block stops
# every node it started and removes its temp directory.
exec /usr/bin/python3 "$here/swarm.py" "$@"
