#!/usr/bin/env bash
# bench/objects.sh — GET /o/{b3}: macronode vs nginx serving the same bytes,
# plaintext and TLS 1.3, same wrk connections; many concurrent clients
# (wrk -c256, -c1024); time to first byte of a 1 MiB range from the middle of
# a 1 GiB object; the same reads with a cold page cache; and HTTP/2 rows
# (h2load -c32 -m16 against nginx's listen ... ssl http2 on the same files).
#
# Run from the repo root:  bench/objects.sh
# Env: MACRONODE_BIN (default build/macronode), WORKERS (gateway workers and
#      nginx worker_processes; default nproc), CONNS (32), DURATION (10s),
#      THREADS (1), WARMUP (2s), TTFB_RUNS (9), BIG (1GiB object size in MiB,
#      default 1024), ROWS (row groups, default "plain tls h2 ttfb conc cold"),
#      H2_CONNS (32), H2_STREAMS (16) for the h2 rows,
#      CONC_LIST (connection counts of the conc rows, default "256 1024"),
#      COLD_RUNS (5), BENCH_KEEP_LOGS=1 (keep the temp dir on failure).
#      bench/README.md describes each.
# Besides the human tables it prints one machine-readable line per figure and
# metric:  RATIO <figure> <metric> <node> <nginx> <node/nginx>
# Exits non-zero only if a server fails to start, an upload fails, the two
# servers disagree on the bytes, or wrk fails — never on a number.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

WORKERS=${WORKERS:-$(nproc 2>/dev/null || echo 2)}
TTFB_RUNS=${TTFB_RUNS:-21}
TTFB_SOCK_RUNS=${TTFB_SOCK_RUNS:-41}
TTFB_WARMUP=${TTFB_WARMUP:-6}
COLD_RUNS=${COLD_RUNS:-5}
BIG_MIB=${BIG:-1024}
CONC_LIST=${CONC_LIST:-256 1024}
ROWS=${ROWS:-plain tls h2 ttfb conc cold}
H2_CONNS=${H2_CONNS:-32}
H2_STREAMS=${H2_STREAMS:-16}

# --- row selection -----------------------------------------------------------
# A group token (ttfb, conc, cold) selects its plaintext and TLS rows; the
# suffixed form (ttfb-plain, conc-tls, ...) one of them. plain / tls are the
# wrk GET rows of the 64 KiB and 1 MiB objects over that transport.
ROW_TOKENS="plain tls h2 ttfb ttfb-plain ttfb-tls conc conc-plain conc-tls cold cold-plain cold-tls"
for t in $ROWS; do
	[[ " $ROW_TOKENS " == *" $t "* ]] || bench_die "ROWS: unknown row '$t' (known: $ROW_TOKENS)"
done
want() { # want GROUP SCHEME  (want plain plain, want ttfb tls, ...)
	local g=$1 s=$2
	if [[ $g == "$s" ]]; then [[ " $ROWS " == *" $s "* ]]; return; fi
	[[ " $ROWS " == *" $g "* || " $ROWS " == *" $g-$s "* ]]
}
want_scheme() { # any row over this transport? (h2 rows run over TLS)
	want "$1" "$1" || want ttfb "$1" || want conc "$1" || want cold "$1" ||
		{ [[ $1 == tls ]] && [[ " $ROWS " == *" h2 "* ]]; }
}
need_big=0
for s in plain tls; do
	if want ttfb "$s" || want cold "$s"; then need_big=1; fi
done
for c in $CONC_LIST; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || bench_die "CONC_LIST: '$c' is not a positive number"
	((c <= 4096)) || bench_die "CONC_LIST: $c is above the 4096 connections both servers are configured for"
done
[[ $COLD_RUNS =~ ^[1-9][0-9]*$ ]] || bench_die "COLD_RUNS: '$COLD_RUNS' is not a positive number"

[[ -x $BENCH_WRK_BIN ]] || bench_die "wrk not found at $BENCH_WRK_BIN (apt-get install wrk)"
command -v openssl >/dev/null || bench_die "openssl CLI not found"
command -v curl >/dev/null || bench_die "curl not found"
if want cold plain || want cold tls; then
	[[ -x /usr/bin/python3 ]] || bench_die "cold rows need /usr/bin/python3 (os.posix_fadvise); drop 'cold' from ROWS"
fi

# Many clients: wrk, nginx and the node each hold one descriptor per
# connection plus one per file being sent. Raise the soft limit for this
# shell (its children inherit it) or say why not.
if want conc plain || want conc tls; then
	max_c=0
	for c in $CONC_LIST; do ((c > max_c)) && max_c=$c; done
	need_fd=$((2 * max_c + 256))
	cur_fd=$(ulimit -n)
	if [[ $cur_fd != unlimited ]] && ((cur_fd < need_fd)); then
		ulimit -n "$need_fd" 2>/dev/null ||
			bench_die "the conc rows (up to $max_c connections) need 'ulimit -n' >= $need_fd; it is $cur_fd and the hard limit is $(ulimit -Hn): raise it (root, or limits.conf) or set CONC_LIST / ROWS lower"
		bench_log "raised the open-files limit from $cur_fd to $need_fd for the conc rows"
	fi
fi

bench_find_node
bench_init

# --- files -------------------------------------------------------------------
# The big object only when a TTFB or cold row reads it.
OBJS=(64k 1m)
((need_big)) && OBJS+=(big)
bench_log "preparing objects (64 KiB, 1 MiB$( ((need_big)) && printf ', %s MiB' "$BIG_MIB")) and a self-signed certificate"
src=$BENCH_TMP/src
mkdir -p "$src"
head -c $((64 * 1024)) /dev/urandom >"$src/64k" || bench_die "cannot write test data"
head -c $((1024 * 1024)) /dev/urandom >"$src/1m" || bench_die "cannot write test data"
if ((need_big)); then
	head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$src/big" || bench_die "cannot write test data"
fi

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
for f in "${OBJS[@]}"; do
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
for f in "${OBJS[@]}"; do
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

# Machine-readable lines, printed after the human tables:
#   RATIO <figure> <metric> <node> <nginx> <node/nginx>
RATIOS=()
ratio_line() { # ratio_line FIGURE METRIC NODE NGINX
	RATIOS+=("RATIO $1 $2 $3 $4 $(ratio_of "$3" "$4")")
}

# run_wrk NAME URL: bench_wrk, except that a run that completed no request
# at all (e.g. over TLS at -c1024, where every connection handshakes first)
# is a figure, not a failure: req/s 0, p99 n/a, and a warning. Sets R_RPS,
# R_MB, R_P99.
run_wrk() {
	if bench_wrk "$1" "$2"; then
		R_RPS=$WRK_RPS R_MB=$(wrk_mibs "$WRK_OUT") R_P99=$WRK_P99_MS
	elif [[ -s $WRK_OUT ]] && grep -q '^ *0 requests in' "$WRK_OUT"; then
		bench_log "warning: $1: no request completed within $WRK_DURATION; reported as 0 req/s, p99 n/a"
		R_RPS=0 R_MB=0 R_P99=n/a
	else
		exit 1
	fi
}
# fmt WIDTH.PREC VALUE: printf %W.Pf, or the value as is when not a number
fmt() {
	if [[ $2 =~ ^[0-9.]+$ ]]; then printf "%${1}f" "$2"; else printf "%${1%.*}s" "$2"; fi
}
ratio_of() { # like bench_ratio, n/a if either side is not a number
	if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then bench_ratio "$1" "$2"; else echo n/a; fi
}

RESULTS=()
measure() { # measure FIGURE URL_NODE URL_NGINX  (wrk with $WRK_CONNS connections)
	local n_rps n_p99 n_mb
	run_wrk "node-$1" "$2"
	n_rps=$R_RPS n_p99=$R_P99 n_mb=$R_MB
	kill -0 "$NODE_PID" 2>/dev/null || { bench_tail "$BENCH_NODE_LOG"; bench_die "macronode died"; }
	run_wrk "nginx-$1" "$3"
	RESULTS+=("$(printf '%-22s %5s %11s %9s %8s | %11s %9s %8s | %6s %6s %6s' "$1" "$WRK_CONNS" \
		"$(fmt 11.1 "$n_rps")" "$(fmt 9.1 "$n_mb")" "$(fmt 8.2 "$n_p99")" \
		"$(fmt 11.1 "$R_RPS")" "$(fmt 9.1 "$R_MB")" "$(fmt 8.2 "$R_P99")" \
		"$(ratio_of "$n_rps" "$R_RPS")" "$(ratio_of "$n_mb" "$R_MB")" "$(ratio_of "$n_p99" "$R_P99")")")
	ratio_line "$1" req_s "$n_rps" "$R_RPS"
	ratio_line "$1" mib_s "$n_mb" "$R_MB"
	ratio_line "$1" p99_ms "$n_p99" "$R_P99"
}

# HTTP/2 (ALPN h2 on the TLS listeners; nginx: listen ... ssl http2):
# h2load -c H2_CONNS -m H2_STREAMS, the same warm-up and duration as wrk.
# Failed or non-2xx requests are an error, never a number.
H2LOAD_BIN=${H2LOAD_BIN:-/usr/bin/h2load}
run_h2load() { # run_h2load NAME URL -> H_RPS H_MB
	local out="$BENCH_TMP/h2load-$1.txt" fin
	"$H2LOAD_BIN" -c "$H2_CONNS" -m "$H2_STREAMS" -t "$WRK_THREADS" -D "$WRK_DURATION" \
		--warm-up-time "$WRK_WARMUP" "$2" >"$out" 2>&1 || { cat "$out" >&2; bench_die "h2load failed: $1"; }
	grep -q 'Application protocol: h2' "$out" || { cat "$out" >&2; bench_die "$1: h2 was not negotiated"; }
	grep -Eq '^requests: .* 0 failed, 0 errored' "$out" && grep -Eq '^status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$out" ||
		{ cat "$out" >&2; bench_die "$1: h2load saw failed or non-2xx requests"; }
	fin=$(grep '^finished in' "$out")    # finished in 6.00s, 13079.50 req/s, 817.86MB/s
	H_RPS=$(sed -E 's/.*, ([0-9.]+) req\/s.*/\1/' <<<"$fin")
	H_MB=$(sed -E 's/.*, ([0-9.]+)([KMG])B\/s.*/\1 \2/' <<<"$fin" |
		awk '{ v = $1; if ($2 == "K") v /= 1024; if ($2 == "G") v *= 1024; printf "%.1f", v }')
}
measure_h2() { # measure_h2 FIGURE URL_NODE URL_NGINX
	local n_rps n_mb
	run_h2load "node-$1" "$2"
	n_rps=$H_RPS n_mb=$H_MB
	kill -0 "$NODE_PID" 2>/dev/null || { bench_tail "$BENCH_NODE_LOG"; bench_die "macronode died"; }
	run_h2load "nginx-$1" "$3"
	RESULTS+=("$(printf '%-22s %5s %11s %9s %8s | %11s %9s %8s | %6s %6s %6s' "$1" "${H2_CONNS}x$H2_STREAMS" \
		"$(fmt 11.1 "$n_rps")" "$(fmt 9.1 "$n_mb")" n/a \
		"$(fmt 11.1 "$H_RPS")" "$(fmt 9.1 "$H_MB")" n/a \
		"$(ratio_of "$n_rps" "$H_RPS")" "$(ratio_of "$n_mb" "$H_MB")" n/a)")
	ratio_line "$1" req_s "$n_rps" "$H_RPS"
	ratio_line "$1" mib_s "$n_mb" "$H_MB"
}

# Many concurrent clients on the 64 KiB object: one row per CONC_LIST entry.
measure_conc() { # measure_conc plain|tls SCHEME NODE_PORT NGINX_PORT
	local c saved=$WRK_CONNS
	for c in $CONC_LIST; do
		WRK_CONNS=$c
		measure "get-64KiB-c$c-$1" "$2://127.0.0.1:$3/o/${CID[64k]}" "$2://127.0.0.1:$4/o/${CID[64k]}"
	done
	WRK_CONNS=$saved
}

# Median of numbers on stdin (seconds) -> ms with 3 decimals.
median_ms() {
	sort -g | awk '{a[NR] = $1} END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m * 1000 }'
}

# Time to first byte of a 1 MiB range from the middle of the big object:
# median of TTFB_RUNS runs after one discarded warm-up, in ms.
BIG_LEN=$((BIG_MIB * 1024 * 1024))
R_START=$((BIG_LEN / 2 - 512 * 1024))
R_END=$((R_START + 1024 * 1024 - 1))
# curl_time URL WANT_CODE CURL_VAR [curl args] -> the curl -w variable, seconds
curl_time() {
	local url=$1 want=$2 var=$3 code t
	shift 3
	read -r code t < <(curl -sSk --max-time 30 -o /dev/null "$@" \
		-w "%{http_code} %{$var}\n" "$url")
	[[ $code == "$want" ]] || bench_die "GET $url $* -> ${code:-no answer} (want $want)"
	printf '%s\n' "$t"
}
ttfb() { # ttfb URL
	local i t
	local -a ts=()
	# The warm-up runs are discarded: each gateway worker opens the object
	# once (storage OPEN and the check of its 16 Ki outboard entries, a
	# few ms for 1 GiB) and serves it from the open handle afterwards.
	for ((i = 0; i < TTFB_WARMUP + TTFB_RUNS; i++)); do
		t=$(curl_time "$1" 206 time_starttransfer -H "Range: bytes=$R_START-$R_END") || exit 1
		((i < TTFB_WARMUP)) || ts+=("$t")
	done
	printf '%s\n' "${ts[@]}" | median_ms
}
TTFB=()
measure_ttfb() { # measure_ttfb FIGURE SCHEME NODE_PORT NGINX_PORT
	local a b
	a=$(ttfb "$2://127.0.0.1:$3/o/${CID[big]}") || exit 1
	b=$(ttfb "$2://127.0.0.1:$4/o/${CID[big]}") || exit 1
	TTFB+=("$(printf '%-22s %11s %11s %8s' "$1" "$a" "$b" "$(bench_ratio "$a" "$b")")")
	ratio_line "$1" ttfb_ms "$a" "$b"
	# The same at the socket (bench/ttfb.py): the server's part without
	# curl's own ~1 ms, and with connect (+ handshake) counted apart.
	local na nc ga gc
	read -r na nc < <(/usr/bin/python3 "$here/ttfb.py" "$2://127.0.0.1:$3/o/${CID[big]}" \
		"$TTFB_SOCK_RUNS" "$R_START-$R_END") || bench_die "ttfb.py failed against the node"
	read -r ga gc < <(/usr/bin/python3 "$here/ttfb.py" "$2://127.0.0.1:$4/o/${CID[big]}" \
		"$TTFB_SOCK_RUNS" "$R_START-$R_END") || bench_die "ttfb.py failed against nginx"
	TTFB+=("$(printf '%-22s %11s %11s %8s' "$1-sock" "$na" "$ga" "$(bench_ratio "$na" "$ga")")")
	TTFB+=("$(printf '%-22s %11s %11s %8s' "$1-sock-conn" "$nc" "$gc" "$(bench_ratio "$nc" "$gc")")")
	ratio_line "$1-sock" ttfb_ms "$na" "$ga"
	ratio_line "$1-sock-conn" ttfb_ms "$nc" "$gc"
}

# --- cold page cache --------------------------------------------------------------
# Before every cold request the page cache of every file of the node's data
# dir (blobs, LMDB, keys) and of nginx's copies is dropped with
# posix_fadvise(POSIX_FADV_DONTNEED), after an fdatasync so no dirty page
# stays behind. Pages a process has mmap'ed (LMDB's map) stay resident, and
# a page still referenced (e.g. by a socket buffer of a sendfile that just
# ended) is skipped by the kernel: with fincore (util-linux) the object files
# are checked and the drop repeated, at most 5 times, until none is resident.
drop_once() {
	/usr/bin/python3 -c '
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
' "$@" 2>"$BENCH_TMP/drop.err" ||
		{ bench_tail "$BENCH_TMP/drop.err"; bench_die "could not drop the page cache of the object files"; }
}

# KiB of the object files (not LMDB's) under DIR... resident in the page cache.
resident_kib() {
	find "$@" -type f ! -name '*.mdb' -print0 | xargs -0 -r fincore -b -n -o RES 2>/dev/null |
		awk '{s += $1} END {printf "%d\n", s / 1024}'
}

DROP_WARNED=0 DROP_LOGGED=0
drop_cache() {
	local -a files=()
	local try res
	mapfile -d '' files < <(find "$BENCH_TMP/var" "$www" -type f -print0)
	((${#files[@]})) || bench_die "drop_cache: no files found"
	for ((try = 0; try < 5; try++)); do
		drop_once "${files[@]}"
		command -v fincore >/dev/null || return 0
		res=$(resident_kib "$BENCH_TMP/var" "$www")
		if ((res == 0)); then
			((DROP_LOGGED++)) ||
				bench_log "cold: ${#files[@]} files dropped from the page cache; fincore: no object page resident (drops needed: $((try + 1)))"
			return 0
		fi
		sleep 0.05
	done
	if ((!DROP_WARNED)); then
		bench_log "warning: cold: $res KiB of the object files still resident after 5 drops:"
		find "$BENCH_TMP/var" "$www" -type f ! -name '*.mdb' -print0 |
			xargs -0 -r fincore -b -n -o RES,FILE 2>/dev/null | awk '$1 > 0' >&2
		DROP_WARNED=1
	fi
}

# cold FIGURE WANT_CODE CURL_VAR URL_NODE URL_NGINX [curl args]: COLD_RUNS
# rounds of (drop, node request, drop, nginx request); medians in ms.
COLD=()
cold() {
	local fig=$1 want=$2 var=$3 un=$4 ug=$5 i a b metric
	shift 5
	local -a ta=() tb=()
	for ((i = 0; i < COLD_RUNS; i++)); do
		drop_cache
		ta+=("$(curl_time "$un" "$want" "$var" "$@")") || exit 1
		drop_cache
		tb+=("$(curl_time "$ug" "$want" "$var" "$@")") || exit 1
	done
	a=$(printf '%s\n' "${ta[@]}" | median_ms)
	b=$(printf '%s\n' "${tb[@]}" | median_ms)
	[[ $var == time_total ]] && metric=total_ms || metric=ttfb_ms
	COLD+=("$(printf '%-26s %-8s %11s %11s %8s' "$fig" "$metric" "$a" "$b" "$(bench_ratio "$a" "$b")")")
	ratio_line "$fig" "$metric" "$a" "$b"
}
measure_cold() { # measure_cold plain|tls SCHEME NODE_PORT NGINX_PORT
	local p="$2://127.0.0.1"
	cold "cold-get-1MiB-$1" 200 time_total "$p:$3/o/${CID[1m]}" "$p:$4/o/${CID[1m]}"
	cold "cold-ttfb-range-$1" 206 time_starttransfer "$p:$3/o/${CID[big]}" "$p:$4/o/${CID[big]}" \
		-H "Range: bytes=$R_START-$R_END"
}

tls_params() { # tls_params PORT -> "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519"
	openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null | awk '
		/Server Temp Key:/ { g = $4; sub(/,$/, "", g) }
		/^New, / { p = $2; sub(/,$/, "", p); c = $5 }
		END { print p, c, g }'
}

# One transport: the wrk GET rows, the many-client rows, TTFB, cold (cold
# last: it empties the page cache the other rows run warm on).
run_scheme() { # run_scheme plain|tls SCHEME NODE_PORT NGINX_PORT
	local t=$1 sc=$2 np=$3 gp=$4
	if want "$t" "$t"; then
		measure "get-64KiB-$t" "$sc://127.0.0.1:$np/o/${CID[64k]}" "$sc://127.0.0.1:$gp/o/${CID[64k]}"
		measure "get-1MiB-$t" "$sc://127.0.0.1:$np/o/${CID[1m]}" "$sc://127.0.0.1:$gp/o/${CID[1m]}"
	fi
	if [[ $t == tls && " $ROWS " == *" h2 "* ]]; then
		measure_h2 "h2-get-64KiB" "$sc://127.0.0.1:$np/o/${CID[64k]}" "$sc://127.0.0.1:$gp/o/${CID[64k]}"
		measure_h2 "h2-get-1MiB" "$sc://127.0.0.1:$np/o/${CID[1m]}" "$sc://127.0.0.1:$gp/o/${CID[1m]}"
	fi
	if want conc "$t"; then measure_conc "$t" "$sc" "$np" "$gp"; fi
	if want ttfb "$t"; then measure_ttfb "ttfb-range-$t" "$sc" "$np" "$gp"; fi
	if want cold "$t"; then measure_cold "$t" "$sc" "$np" "$gp"; fi
}

NODE_TLS="" NGINX_TLS=""
if want_scheme plain; then
	bench_log "plaintext runs"
	run_scheme plain http "$GPORT" "$NPORT"
fi
if want_scheme tls; then
	bench_log "restarting macronode with TLS on the same data directory"
	bench_stop_pid "$NODE_PID"
	start_node 1
	check_same https "$GPORT" "$TPORT"
	NODE_TLS=$(tls_params "$GPORT")
	NGINX_TLS=$(tls_params "$TPORT")
	run_scheme tls https "$GPORT" "$TPORT"
fi

# --- report ----------------------------------------------------------------------
printf '# GET /o/{b3}: wrk -t%s -c<conns> -d%s --latency (warm-up %s each), one target at a time; rows: %s\n' \
	"$WRK_THREADS" "$WRK_DURATION" "$WRK_WARMUP" "$ROWS"
printf '# macronode gateway.workers %s; nginx worker_processes %s (same, for fairness), sendfile on; %s CPUs shared with wrk\n' \
	"$WORKERS" "$WORKERS" "$(nproc 2>/dev/null || echo '?')"
[[ -n $NODE_TLS ]] && printf '# TLS: macronode %s; nginx %s\n' "$NODE_TLS" "$NGINX_TLS"
if ((${#RESULTS[@]})); then
	printf '%-22s %5s %11s %9s %8s | %11s %9s %8s | %6s %6s %6s\n' figure conns 'node req/s' 'node MiB/s' \
		'node p99' 'nginx req/s' 'ngx MiB/s' 'ngx p99' 'r:rps' 'r:MB/s' 'r:p99'
	printf '%s\n' "${RESULTS[@]}"
fi
if ((${#TTFB[@]})); then
	printf '# TTFB, 1 MiB range at the middle of a %s MiB object (median of %s, ms)\n' "$BIG_MIB" "$TTFB_RUNS"
	printf '%-22s %11s %11s %8s\n' figure node_ms nginx_ms ratio
	printf '%s\n' "${TTFB[@]}"
fi
if ((${#COLD[@]})); then
	printf '# cold page cache (posix_fadvise DONTNEED on both servers'"'"' files before every request): 1 MiB GET time_total, 1 MiB middle range of the %s MiB object TTFB; new connection each; median of %s, ms\n' \
		"$BIG_MIB" "$COLD_RUNS"
	printf '%-26s %-8s %11s %11s %8s\n' figure metric node_ms nginx_ms ratio
	printf '%s\n' "${COLD[@]}"
fi
printf '# machine-readable: RATIO <figure> <metric> <node> <nginx> <node/nginx>; req_s, mib_s: higher is better; *_ms: lower is better\n'
((${#RATIOS[@]})) && printf '%s\n' "${RATIOS[@]}"
exit 0
