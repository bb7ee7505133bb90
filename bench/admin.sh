#!/usr/bin/env bash
# bench/admin.sh — admin plane GET /healthz: macronode vs nginx, same run.
#
# Run from the repo root:  bench/admin.sh
# Env: MACRONODE_BIN (default build/macronode), CONNS (32), DURATION (10s),
#      THREADS (1), WARMUP (2s), PEER_ONLY=1 (nginx only; harness self-check),
#      BENCH_KEEP_LOGS=1 (keep the temp dir when something fails).
# Prints req/s and p99 for both and the macronode/nginx ratios, then one
# machine-readable line per metric:
#   RATIO admin-healthz req_s|p99_ms <node> <nginx> <node/nginx>
# Exits
# non-zero only if a server fails to start or wrk fails — never on a number.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

peer_only=${PEER_ONLY:-0}
[[ -x $BENCH_WRK_BIN ]] || bench_die "wrk not found at $BENCH_WRK_BIN (apt-get install wrk)"
((peer_only)) || bench_find_node

bench_init

# --- start servers -----------------------------------------------------------
NPORT="" APORT="" GPORT=""
bench_free_port_into NPORT

if ((!peer_only)); then
	bench_free_port_into APORT
	bench_free_port_into GPORT
	bench_start_node "$APORT" "$GPORT"
	bench_wait_http "http://127.0.0.1:$APORT/healthz" 10 "$BENCH_NODE_PID"
	case $? in
	0) ;;
	2) bench_tail "$BENCH_NODE_LOG"; bench_die "macronode exited before answering GET /healthz" ;;
	*) bench_tail "$BENCH_NODE_LOG"; bench_die "macronode did not answer GET /healthz on 127.0.0.1:$APORT within 10 s" ;;
	esac
fi

# The admin plane is one single-threaded process: give nginx one worker.
bench_start_nginx "$NPORT" 1
bench_wait_http "http://127.0.0.1:$NPORT/healthz" 10 "$BENCH_NGINX_PID"
case $? in
0) ;;
2) bench_tail "$BENCH_NGINX_LOG"; bench_die "nginx exited before answering GET /healthz" ;;
*) bench_tail "$BENCH_NGINX_LOG"; bench_die "nginx did not answer GET /healthz on 127.0.0.1:$NPORT within 10 s" ;;
esac

printf '# admin /healthz: wrk -t%s -c%s -d%s --latency (warm-up %s each)\n' \
	"$WRK_THREADS" "$WRK_CONNS" "$WRK_DURATION" "$WRK_WARMUP"
printf '# nginx worker_processes 1 (admin plane is one single-threaded process); %s CPUs shared with wrk\n' \
	"$(nproc 2>/dev/null || echo '?')"

# --- load --------------------------------------------------------------------
# nginx idles while the node is measured and vice versa.
if ((!peer_only)); then
	bench_wrk macronode "http://127.0.0.1:$APORT/healthz" || exit 1
	node_rps=$WRK_RPS node_p99=$WRK_P99_MS
	kill -0 "$BENCH_NODE_PID" 2>/dev/null || {
		bench_tail "$BENCH_NODE_LOG"
		bench_die "macronode exited during the benchmark"
	}
fi
bench_wrk nginx "http://127.0.0.1:$NPORT/healthz" || exit 1
nginx_rps=$WRK_RPS nginx_p99=$WRK_P99_MS

# --- report ------------------------------------------------------------------
printf '%-10s %12s %9s\n' target 'req/s' p99_ms
((peer_only)) || printf '%-10s %12.1f %9.2f\n' macronode "$node_rps" "$node_p99"
printf '%-10s %12.1f %9.2f\n' nginx "$nginx_rps" "$nginx_p99"
if ((!peer_only)); then
	printf 'ratio macronode/nginx req/s: %s\n' "$(bench_ratio "$node_rps" "$nginx_rps")"
	printf 'ratio macronode/nginx p99:   %s\n' "$(bench_ratio "$node_p99" "$nginx_p99")"
	# Machine-readable: RATIO <figure> <metric> <node> <nginx> <node/nginx>
	printf 'RATIO admin-healthz req_s %s %s %s\n' "$node_rps" "$nginx_rps" "$(bench_ratio "$node_rps" "$nginx_rps")"
	printf 'RATIO admin-healthz p99_ms %s %s %s\n' "$node_p99" "$nginx_p99" "$(bench_ratio "$node_p99" "$nginx_p99")"
fi
exit 0
