#!/usr/bin/env bash
# bench/objects.sh — GET /o/{b3}: macronode vs nginx serving the same bytes,
# plaintext and TLS 1.3, same wrk connections; plus time to first byte of a
# 1 MiB range from the middle of a 1 GiB object.
#
# Run from the repo root:  bench/objects.sh
# Env: MACRONODE_BIN (default build/macronode), WORKERS (gateway workers and
#      nginx worker_processes; default nproc), CONNS (32), DURATION (10s),
#      THREADS (1), WARMUP (2s), TTFB_RUNS (9), BIG (1GiB object size in MiB,
#      default 1024), BENCH_KEEP_LOGS=1 (keep the temp dir on failure).
# Exits non-zero only if a server fails to start, an upload fails, the two
# servers disagree on the bytes, or wrk fails — never on a number.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

WORKERS=${WORKERS:-$(nproc 2>/dev/null || echo 2)}
TTFB_RUNS=${TTFB_RUNS:-9}
BIG_MIB=${BIG:-1024}

[[ -x $BENCH_WRK_BIN ]] || bench_die "wrk not found at $BENCH_WRK_BIN (apt-get install wrk)"
command -v openssl >/dev/null || bench_die "openssl CLI not found"
command -v curl >/dev/null || bench_die "curl not found"
bench_find_node
bench_init

# --- files -------------------------------------------------------------------
bench_log "preparing objects (64 KiB, 1 MiB, ${BIG_MIB} MiB) and a self-signed certificate"
src=$BENCH_TMP/src
mkdir -p "$src"
head -c $((64 * 1024)) /dev/urandom >"$src/64k" || bench_die "cannot write test data"
head -c $((1024 * 1024)) /dev/urandom >"$src/1m" || bench_die "cannot write test data"
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$src/big" || bench_die "cannot write test data"

pki=$BENCH_TMP/pki
bench_make_cert "$pki"

# --- macronode ---------------------------------------------------------------
# One data directory for both runs: the TLS run serves what the plaintext run
# stored. The request-rate cap is off (wrk would otherwise measure 429s).
APORT="" GPORT="" NPORT="" TPORT=""
bench_free_port_into APORT
bench_free_port_into GPORT
bench_free_port_into NPORT
bench_free_port_into TPORT
mkdir -m 0700 "$BENCH_TMP/var"
bench_init_wall "$BENCH_TMP/var"

node_config() { # node_config FILE TLS(0|1)
	local tls=""
	if (($2)); then
		tls=", \"tls\": {\"cert_file\": \"$pki/cert.pem\", \"key_file\": \"$pki/key.pem\"}"
	fi
	cat >"$1" <<-EOF
		{"admin": {"addr": "127.0.0.1:$APORT"},
		 "gateway": {"addr": "127.0.0.1:$GPORT", "workers": $WORKERS},
		 "paths": {"data_dir": "$BENCH_TMP/var"},
		 "log": {"level": "warn"},
		 "storage": {"max_object": "$((BIG_MIB > 1 ? BIG_MIB : 1))MiB"},
		 "quota": {"requests_per_second": 0},
		 "limits": {"requests_per_second": 0, "max_connections": 4096, "max_inflight": 4096}$tls}
	EOF
}

NODE_PID=""
start_node() { # start_node TLS(0|1)
	local cfg=$BENCH_TMP/node-$1.json
	node_config "$cfg" "$1"
	BENCH_NODE_LOG=$BENCH_TMP/node.log
	"$BENCH_NODE_BIN" run --config "$cfg" </dev/null >>"$BENCH_NODE_LOG" 2>&1 &
	NODE_PID=$!
	bench_track "$NODE_PID"
	bench_wait_http "http://127.0.0.1:$APORT/readyz" 20 "$NODE_PID"
	case $? in
	0) ;;
	2) bench_tail "$BENCH_NODE_LOG"; bench_die "macronode exited before it was ready" ;;
	*) bench_tail "$BENCH_NODE_LOG"; bench_die "macronode not ready within 20 s" ;;
	esac
}

# put FILE -> prints the cid (curl -T streams the file: PUT /o)
put() {
	local out code
	out=$(curl -sS --max-time 300 -T "$1" -H 'Content-Type: application/octet-stream' \
		-H "Authorization: Bearer $BENCH_TOKEN" \
		-w '\n%{http_code}' "http://127.0.0.1:$GPORT/o") || return 1
	code=${out##*$'\n'}
	[[ $code == 201 || $code == 200 ]] || { bench_log "PUT $1 -> $code: ${out%$'\n'*}"; return 1; }
	sed -n 's/.*"cid":"\(b3:[0-9a-f]\{64\}\)".*/\1/p' <<<"${out%$'\n'*}"
}

start_node 0
declare -A CID
for f in 64k 1m big; do
	CID[$f]=$(put "$src/$f")
	if [[ -z ${CID[$f]} ]]; then
		bench_tail "$BENCH_NODE_LOG"
		bench_die "upload of $f failed"
	fi
	if command -v b3sum >/dev/null; then
		[[ ${CID[$f]} == "b3:$(b3sum --no-names "$src/$f")" ]] ||
			bench_die "macronode returned ${CID[$f]} for $f, b3sum disagrees"
	fi
done

# --- nginx: the same bytes under the same paths --------------------------------
# nginx workers run as 'nobody': copy the objects into a world-readable root
# (the node's data dir is 0700) and open the temp dir for traversal only.
chmod 0711 "$BENCH_TMP"
www=$BENCH_TMP/www
mkdir -p "$www/o"
for f in 64k 1m big; do
	cp "$src/$f" "$www/o/${CID[$f]}"
done
chmod -R a+rX "$www"
# shellcheck disable=SC2034 # read by bench_start_nginx
BENCH_NGINX_EXTRA="
$(bench_nginx_tls_lines "$TPORT" "$pki")
        sendfile   on;
        tcp_nopush on;
        location /o/ {
            root $www;
            default_type application/octet-stream;
            add_header Cache-Control \"public, max-age=31536000, immutable\";
        }"
bench_start_nginx "$NPORT" "$WORKERS"
bench_wait_http "http://127.0.0.1:$NPORT/healthz" 10 "$BENCH_NGINX_PID" ||
	{ bench_tail "$BENCH_NGINX_LOG"; bench_die "nginx did not start"; }

# Both servers must return the same bytes before anything is measured.
check_same() { # check_same SCHEME PORT_NODE PORT_NGINX
	local f a b
	for f in 64k 1m; do
		a=$(curl -sSk --max-time 30 "$1://127.0.0.1:$2/o/${CID[$f]}" | cksum)
		b=$(curl -sSk --max-time 30 "$1://127.0.0.1:$3/o/${CID[$f]}" | cksum)
		[[ $a == "$b" && $a == "$(cksum <"$src/$f")" ]] ||
			bench_die "$1 $f: macronode and nginx bodies differ ($a vs $b)"
	done
}
check_same http "$GPORT" "$NPORT"

# --- measurements --------------------------------------------------------------
# wrk "Transfer/sec: 12.34MB" (binary units) -> MiB/s
wrk_mibs() {
	awk '/^Transfer\/sec:/ { v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
		if (u == "B") v /= 1048576; else if (u == "KB") v /= 1024;
		else if (u == "GB") v *= 1024; else if (u == "TB") v *= 1048576;
		printf "%.1f\n", v }' "$1"
}

RESULTS=()
measure() { # measure LABEL URL_NODE URL_NGINX
	local n_rps n_p99 n_mb
	bench_wrk "node-$1" "$2" || exit 1
	n_rps=$WRK_RPS n_p99=$WRK_P99_MS n_mb=$(wrk_mibs "$WRK_OUT")
	kill -0 "$NODE_PID" 2>/dev/null || { bench_tail "$BENCH_NODE_LOG"; bench_die "macronode died"; }
	bench_wrk "nginx-$1" "$3" || exit 1
	RESULTS+=("$(printf '%-14s %11.1f %9.1f %8.2f | %11.1f %9.1f %8.2f | %6s %6s %6s' "$1" \
		"$n_rps" "$n_mb" "$n_p99" "$WRK_RPS" "$(wrk_mibs "$WRK_OUT")" "$WRK_P99_MS" \
		"$(bench_ratio "$n_rps" "$WRK_RPS")" "$(bench_ratio "$n_mb" "$(wrk_mibs "$WRK_OUT")")" \
		"$(bench_ratio "$n_p99" "$WRK_P99_MS")")")
}

# Time to first byte of a 1 MiB range from the middle of the big object:
# median of TTFB_RUNS runs after one discarded warm-up, in ms.
BIG_LEN=$((BIG_MIB * 1024 * 1024))
R_START=$((BIG_LEN / 2 - 512 * 1024))
R_END=$((R_START + 1024 * 1024 - 1))
ttfb() { # ttfb URL
	local i t code
	local -a ts=()
	for ((i = 0; i <= TTFB_RUNS; i++)); do
		read -r code t < <(curl -sSk --max-time 30 -o /dev/null -H "Range: bytes=$R_START-$R_END" \
			-w '%{http_code} %{time_starttransfer}\n' "$1")
		[[ $code == 206 ]] || bench_die "range GET $1 -> $code (want 206)"
		((i == 0)) || ts+=("$t")
	done
	printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR] = $1} END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m * 1000 }'
}
TTFB=()
measure_ttfb() { # measure_ttfb LABEL SCHEME NODE_PORT NGINX_PORT
	local a b
	a=$(ttfb "$2://127.0.0.1:$3/o/${CID[big]}") || exit 1
	b=$(ttfb "$2://127.0.0.1:$4/o/${CID[big]}") || exit 1
	TTFB+=("$(printf '%-14s %11s %11s %8s' "$1" "$a" "$b" "$(bench_ratio "$a" "$b")")")
}

tls_params() { # tls_params PORT -> "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519"
	openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null | awk '
		/Server Temp Key:/ { g = $4; sub(/,$/, "", g) }
		/^New, / { p = $2; sub(/,$/, "", p); c = $5 }
		END { print p, c, g }'
}

bench_log "plaintext runs"
measure "64KiB" "http://127.0.0.1:$GPORT/o/${CID[64k]}" "http://127.0.0.1:$NPORT/o/${CID[64k]}"
measure "1MiB" "http://127.0.0.1:$GPORT/o/${CID[1m]}" "http://127.0.0.1:$NPORT/o/${CID[1m]}"
measure_ttfb "ttfb-plain" http "$GPORT" "$NPORT"

bench_log "restarting macronode with TLS on the same data directory"
bench_stop_pid "$NODE_PID"
start_node 1
check_same https "$GPORT" "$TPORT"
NODE_TLS=$(tls_params "$GPORT")
NGINX_TLS=$(tls_params "$TPORT")
measure "64KiB-tls" "https://127.0.0.1:$GPORT/o/${CID[64k]}" "https://127.0.0.1:$TPORT/o/${CID[64k]}"
measure "1MiB-tls" "https://127.0.0.1:$GPORT/o/${CID[1m]}" "https://127.0.0.1:$TPORT/o/${CID[1m]}"
measure_ttfb "ttfb-tls" https "$GPORT" "$TPORT"

# --- report ----------------------------------------------------------------------
printf '# GET /o/{b3}: wrk -t%s -c%s -d%s --latency (warm-up %s each), one target at a time\n' \
	"$WRK_THREADS" "$WRK_CONNS" "$WRK_DURATION" "$WRK_WARMUP"
printf '# macronode gateway.workers %s; nginx worker_processes %s (same, for fairness), sendfile on; %s CPUs shared with wrk\n' \
	"$WORKERS" "$WORKERS" "$(nproc 2>/dev/null || echo '?')"
printf '# TLS: macronode %s; nginx %s\n' "$NODE_TLS" "$NGINX_TLS"
printf '%-14s %11s %9s %8s | %11s %9s %8s | %6s %6s %6s\n' object 'node req/s' 'node MiB/s' \
	'node p99' 'nginx req/s' 'ngx MiB/s' 'ngx p99' 'r:rps' 'r:MB/s' 'r:p99'
printf '%s\n' "${RESULTS[@]}"
printf '# TTFB, 1 MiB range at the middle of a %s MiB object (median of %s, ms)\n' "$BIG_MIB" "$TTFB_RUNS"
printf '%-14s %11s %11s %8s\n' run node_ms nginx_ms ratio
printf '%s\n' "${TTFB[@]}"
exit 0
