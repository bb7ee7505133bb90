# shellcheck shell=bash
# bench/lib.sh — shared helpers for macronode benchmarks (source, don't run).
#
# Conventions (DESIGN.md §8): every benchmark runs macronode and a peer
# (nginx) in the same run, on loopback only, and prints ratios.  Nothing here
# ever fails on a performance number; it fails only when a server does not
# start or the load generator breaks.
#
# Usage:
#   source "$(dirname "$0")/lib.sh"
#   bench_init                       # mktemp dir in $BENCH_TMP, EXIT trap
#   port=$(bench_free_port)
#   bench_start_nginx "$port"        # /healthz on 127.0.0.1:$port
#   bench_wait_http "http://127.0.0.1:$port/healthz" 10 "$BENCH_NGINX_PID"
#   bench_wrk nginx "http://127.0.0.1:$port/healthz"   # sets WRK_* vars
#
# Every process started through these helpers is recorded and terminated by
# the EXIT trap (TERM, then KILL after a grace period); the temp dir is removed.

BENCH_TMP=""
BENCH_PIDS=()
BENCH_WRK_PID=""
BENCH_NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
BENCH_WRK_BIN=${WRK_BIN:-/usr/bin/wrk}

bench_log()  { printf '%s\n' "$*" >&2; }
bench_die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- lifecycle ---------------------------------------------------------------

bench_init() {
	# Run as root on a throwaway machine with no "macronode" user, the node
	# would refuse to start (node.user, docs/operations.md "Privileges").
	if [[ $(id -u) == 0 && -z ${RON_ALLOW_ROOT:-} ]]; then export RON_ALLOW_ROOT=true; fi
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/macronode-bench.XXXXXX") ||
		bench_die "mktemp failed"
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Remember a pid so the EXIT trap stops it.
bench_track() { BENCH_PIDS+=("$1"); }

# Stop one pid: TERM, wait up to ~5 s, then KILL it and any children it left.
bench_stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		bench_log "warning: pid $pid ignored SIGTERM, sending SIGKILL"
		pkill -KILL -P "$pid" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

bench_cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	[[ -n $BENCH_WRK_PID ]] && bench_stop_pid "$BENCH_WRK_PID"
	for pid in "${BENCH_PIDS[@]}"; do
		bench_stop_pid "$pid"
	done
	BENCH_PIDS=()
	if [[ -n $BENCH_TMP && -d $BENCH_TMP ]]; then
		if ((rc != 0)) && [[ -n ${BENCH_KEEP_LOGS:-} ]]; then
			bench_log "logs kept in $BENCH_TMP"
		else
			rm -rf -- "$BENCH_TMP"
		fi
	fi
	exit "$rc"
}

# Print the last lines of a log file to stderr (for failure diagnostics).
bench_tail() {
	[[ -s $1 ]] || return 0
	bench_log "--- last lines of $(basename "$1") ---"
	tail -n "${2:-20}" "$1" >&2
	bench_log "---"
}

# --- ports -------------------------------------------------------------------

# A throwaway self-signed P-256 certificate for localhost/127.0.0.1 in DIR:
# DIR/cert.pem and DIR/key.pem (mode 0600, as the node requires).
bench_make_cert() {
	local dir=$1
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>"$BENCH_TMP/openssl.log" ||
		{ bench_tail "$BENCH_TMP/openssl.log"; bench_die "openssl req failed"; }
	chmod 600 "$dir/key.pem"
}

# nginx server-block lines for TLS on 127.0.0.1:PORT with DIR's certificate,
# under the node's own TLS policy (TLS 1.3, X25519/P-256, the three suites,
# tickets, server preference), so both peers negotiate the same thing.
bench_nginx_tls_lines() {
	local port=$1 dir=$2
	printf '%s\n' \
		"        listen 127.0.0.1:$port ssl http2;" \
		"        ssl_certificate     $dir/cert.pem;" \
		"        ssl_certificate_key $dir/key.pem;" \
		"        ssl_protocols       TLSv1.3;" \
		"        ssl_ecdh_curve      X25519:prime256v1;" \
		"        ssl_session_tickets on;" \
		"        ssl_prefer_server_ciphers on;" \
		"        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;"
}

# Print a TCP port that nothing on this host is listening on right now.
# (Racy by nature; the callers bind immediately after.)
bench_free_port() {
	local port i used
	used=$(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}')
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! grep -qx -- "$port" <<<"$used" &&
		   ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			# Also avoid handing out the same port twice in one run.
			if [[ " ${BENCH_PORTS_GIVEN:-} " != *" $port "* ]]; then
				BENCH_PORTS_GIVEN="${BENCH_PORTS_GIVEN:-} $port"
				printf '%s\n' "$port"
				return 0
			fi
		fi
	done
	bench_die "could not find a free TCP port"
}

# Call as: bench_free_port_into VAR  (keeps BENCH_PORTS_GIVEN in this shell)
bench_free_port_into() {
	local _p
	_p=$(bench_free_port) || exit 1
	BENCH_PORTS_GIVEN="${BENCH_PORTS_GIVEN:-} $_p"
	printf -v "$1" '%s' "$_p"
}

# --- readiness ---------------------------------------------------------------

# bench_wait_http URL TIMEOUT_SECONDS [PID]
# Poll until curl -sf URL succeeds; fail early if PID has exited.
bench_wait_http() {
	local url=$1 timeout=${2:-10} pid=${3:-} deadline
	deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		if curl -sf -o /dev/null --max-time 1 "$url"; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 2
		fi
		sleep 0.1
	done
	return 1
}

# --- nginx peer --------------------------------------------------------------

# bench_start_nginx PORT [WORKERS]
# Starts nginx in the foreground (daemon off) with a generated config whose
# pid/log/temp paths all live under $BENCH_TMP/nginx.  Serves
#   GET /healthz -> 200 {"status":"ok"} (application/json)
# Extra server-block directives may be passed in $BENCH_NGINX_EXTRA.
# Sets BENCH_NGINX_PID, BENCH_NGINX_LOG.
bench_start_nginx() {
	local port=$1 workers=${2:-1} dir="$BENCH_TMP/nginx"
	[[ -x $BENCH_NGINX_BIN ]] ||
		bench_die "nginx not found at $BENCH_NGINX_BIN (apt-get install nginx-light)"
	mkdir -p "$dir/tmp" "$dir/logs"
	BENCH_NGINX_LOG="$BENCH_TMP/nginx-error.log"
	# No 'user' directive: as root the worker drops to 'nobody', which is fine
	# because 'return' touches no file (the master opens the logs).
	cat >"$dir/nginx.conf" <<-EOF
		daemon off;
		master_process on;
		worker_processes $workers;
		pid $dir/nginx.pid;
		error_log $BENCH_NGINX_LOG warn;
		events { worker_connections 4096; }
		http {
		    access_log off;
		    client_body_temp_path $dir/tmp/client_body;
		    proxy_temp_path       $dir/tmp/proxy;
		    fastcgi_temp_path     $dir/tmp/fastcgi;
		    uwsgi_temp_path       $dir/tmp/uwsgi;
		    scgi_temp_path        $dir/tmp/scgi;
		    keepalive_requests    1000000;
		    server {
		        listen 127.0.0.1:$port;
		        location = /healthz {
		            default_type application/json;
		            return 200 '{"status":"ok"}';
		        }
		        ${BENCH_NGINX_EXTRA:-}
		    }
		}
	EOF
	"$BENCH_NGINX_BIN" -t -q -p "$dir" -e "$BENCH_NGINX_LOG" -c "$dir/nginx.conf" \
		2>"$BENCH_TMP/nginx-t.log" || {
		bench_tail "$BENCH_TMP/nginx-t.log"
		bench_tail "$BENCH_NGINX_LOG"
		bench_die "generated nginx config rejected"
	}
	"$BENCH_NGINX_BIN" -p "$dir" -e "$BENCH_NGINX_LOG" -c "$dir/nginx.conf" \
		</dev/null >"$BENCH_TMP/nginx-stdout.log" 2>&1 &
	BENCH_NGINX_PID=$!
	bench_track "$BENCH_NGINX_PID"
}

# --- macronode ---------------------------------------------------------------

# bench_find_node: sets BENCH_NODE_BIN from $MACRONODE_BIN or build/macronode.
bench_find_node() {
	BENCH_NODE_BIN=${MACRONODE_BIN:-build/macronode}
	if [[ ! -x $BENCH_NODE_BIN ]]; then
		bench_die "macronode binary not found at '$BENCH_NODE_BIN' (cwd $PWD).
Run from the repo root after 'make build' (or 'ninja -C build'),
or set MACRONODE_BIN=/path/to/macronode."
	fi
}

# bench_init_wall DATA_DIR: `macronode init` (key, signed default policy);
# sets BENCH_TOKEN to the write token it printed. Benchmarks run behind the
# wall like any node (quotas off in their configs: they measure serving).
bench_init_wall() {
	"$BENCH_NODE_BIN" init --data-dir "$1" >"$BENCH_TMP/init.out" 2>"$BENCH_TMP/init.err" ||
		{ bench_tail "$BENCH_TMP/init.err"; bench_die "macronode init failed"; }
	BENCH_TOKEN=$(awk '/^Write token/ { getline; print $1; exit }' "$BENCH_TMP/init.out")
	[[ -n $BENCH_TOKEN ]] || bench_die "no token in the output of macronode init"
	export BENCH_TOKEN
}

# bench_start_node HTTP_PORT GATEWAY_PORT [extra args...]
# Sets BENCH_NODE_PID, BENCH_NODE_LOG, and BENCH_TOKEN (the write token
# `macronode init` minted: the node runs behind the wall like any other).
bench_start_node() {
	local aport=$1 gport=$2
	shift 2
	BENCH_NODE_LOG="$BENCH_TMP/node.log"
	mkdir -m 0700 "$BENCH_TMP/var"
	bench_init_wall "$BENCH_TMP/var"
	"$BENCH_NODE_BIN" run \
		--http-addr "127.0.0.1:$aport" \
		--gateway-addr "127.0.0.1:$gport" \
		--data-dir "$BENCH_TMP/var" \
		--log-level warn "$@" \
		</dev/null >>"$BENCH_NODE_LOG" 2>&1 &
	BENCH_NODE_PID=$!
	bench_track "$BENCH_NODE_PID"
}

# --- wrk ---------------------------------------------------------------------

WRK_THREADS=${THREADS:-1}
WRK_CONNS=${CONNS:-32}
WRK_DURATION=${DURATION:-10s}
WRK_WARMUP=${WARMUP:-2s}

# Duration string (wrk syntax: 10, 10s, 2m, 1h) -> whole seconds.
bench_seconds() {
	local d=$1
	case $d in
	*h) echo $((${d%h} * 3600)) ;;
	*m) echo $((${d%m} * 60)) ;;
	*s) echo "${d%s}" ;;
	*)  echo "$d" ;;
	esac
}

# wrk time string (123.45us | 1.20ms | 2.00s | 1.00m) -> milliseconds.
bench_to_ms() {
	awk -v t="$1" 'BEGIN {
		v = t + 0; u = t; sub(/^[0-9.]+/, "", u)
		if (u == "us") v /= 1000; else if (u == "ms") ; else if (u == "s") v *= 1000;
		else if (u == "m") v *= 60000; else if (u == "h") v *= 3600000;
		else { print "nan"; exit }
		printf "%.3f\n", v }'
}

# bench_wrk_raw OUTFILE DURATION URL [extra wrk args]
bench_wrk_raw() {
	local out=$1 dur=$2 url=$3 limit
	shift 3
	limit=$(($(bench_seconds "$dur") + 30))
	# In the background + wait, so INT/TERM reach the trap at once.
	timeout -k 5 "$limit" "$BENCH_WRK_BIN" -t"$WRK_THREADS" -c"$WRK_CONNS" \
		-d"$dur" --latency "$@" "$url" >"$out" 2>&1 &
	BENCH_WRK_PID=$!
	wait "$BENCH_WRK_PID"
	local rc=$?
	BENCH_WRK_PID=""
	return "$rc"
}

# bench_wrk NAME URL [extra wrk args]
# Warm-up ($WRK_WARMUP, discarded), then the measured run.  Sets:
#   WRK_RPS WRK_P99_MS WRK_REQS WRK_NON2XX WRK_SOCKERR WRK_OUT (raw output file)
# Returns non-zero if wrk fails or completes no requests.
bench_wrk() {
	local name=$1 url=$2 f
	shift 2
	WRK_OUT="$BENCH_TMP/wrk-$name.txt"
	if [[ $WRK_WARMUP != 0 && $WRK_WARMUP != 0s ]]; then
		bench_wrk_raw "$BENCH_TMP/wrk-$name-warmup.txt" "$WRK_WARMUP" "$url" "$@" || {
			bench_tail "$BENCH_TMP/wrk-$name-warmup.txt"
			bench_log "wrk warm-up against $name failed"
			return 1
		}
	fi
	bench_wrk_raw "$WRK_OUT" "$WRK_DURATION" "$url" "$@" || {
		bench_tail "$WRK_OUT"
		bench_log "wrk against $name failed"
		return 1
	}
	f=$WRK_OUT
	WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$f")
	WRK_REQS=$(awk '/requests in/ {print $1; exit}' "$f")
	WRK_P99_MS=$(bench_to_ms "$(awk '$1 == "99%" {print $2; exit}' "$f")")
	WRK_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$f")
	WRK_NON2XX=${WRK_NON2XX:-0}
	WRK_SOCKERR=$(sed -n 's/^ *Socket errors: *//p' "$f")
	if [[ -z $WRK_RPS || -z $WRK_REQS || $WRK_REQS == 0 || $WRK_P99_MS == nan ]]; then
		bench_tail "$f"
		bench_log "could not parse wrk output for $name (or zero requests)"
		return 1
	fi
	if ((WRK_NON2XX > 0)); then
		bench_log "warning: $name: $WRK_NON2XX of $WRK_REQS responses were non-2xx/3xx"
	fi
	if [[ -n $WRK_SOCKERR ]]; then
		bench_log "warning: $name: socket errors: $WRK_SOCKERR"
	fi
	return 0
}

# --- reporting ---------------------------------------------------------------

# bench_ratio A B -> A/B, 3 significant digits ("n/a" if B is zero).
bench_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.3g\n", a / b }'
}
