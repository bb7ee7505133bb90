#!/usr/bin/env bash
# bench/oap.sh — throughput of one large object: `macronode get` over OAP/1 +
# TLS 1.3 (omnigate) against curl fetching the same bytes over HTTPS from the
# macronode gateway and from nginx (TLS 1.3, same certificate).
#
# Run from the repo root:  bench/oap.sh
# Env: MACRONODE_BIN (default build/macronode), SIZE (object size in MiB,
#      default 256), RUNS (timed runs per client, default 5; the best and the
#      median are reported), BENCH_KEEP_LOGS=1 (keep the temp dir on failure).
# Besides the table, machine-readable lines against nginx over HTTPS:
#   RATIO oap-<SIZE>MiB|gateway-https-<SIZE>MiB mb_s|mb_s_best <node> <nginx> <node/nginx>
# Every download goes to /dev/null (no disk in the measurement) after one
# verified copy per server. `macronode get` hashes the whole body (and the
# node verifies every 64 KiB group before serving); curl checks nothing.
# Exits non-zero only if a server fails to start, an upload fails or the
# servers disagree on the bytes — never on a number. Bounded: each transfer
# has a 120 s deadline.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

SIZE_MIB=${SIZE:-256}
RUNS=${RUNS:-5}
XFER_TIMEOUT=120

command -v openssl >/dev/null || bench_die "openssl CLI not found"
command -v curl >/dev/null || bench_die "curl not found"
bench_find_node
bench_init

bench_log "preparing a ${SIZE_MIB} MiB object and a self-signed certificate"
src=$BENCH_TMP/obj
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$src" || bench_die "cannot write test data"
pki=$BENCH_TMP/pki
bench_make_cert "$pki"

# --- macronode: gateway (HTTPS) + storage + omnigate (OAP/1) ------------------
APORT="" GPORT="" OPORT="" NPORT="" TPORT=""
for v in APORT GPORT OPORT NPORT TPORT; do bench_free_port_into "$v"; done
mkdir -m 0700 "$BENCH_TMP/var"
bench_init_wall "$BENCH_TMP/var"
cat >"$BENCH_TMP/node.json" <<-EOF
	{"admin": {"addr": "127.0.0.1:$APORT"},
	 "gateway": {"addr": "127.0.0.1:$GPORT", "workers": 1},
	 "oap": {"addr": "127.0.0.1:$OPORT"},
	 "services": ["gateway", "storage", "omnigate"],
	 "paths": {"data_dir": "$BENCH_TMP/var"},
	 "log": {"level": "warn"},
	 "storage": {"max_object": "$((SIZE_MIB + 1))MiB"},
	 "quota": {"requests_per_second": 0},
	 "limits": {"requests_per_second": 0},
	 "tls": {"cert_file": "$pki/cert.pem", "key_file": "$pki/key.pem"}}
EOF
BENCH_NODE_LOG=$BENCH_TMP/node.log
"$BENCH_NODE_BIN" run --config "$BENCH_TMP/node.json" </dev/null >>"$BENCH_NODE_LOG" 2>&1 &
NODE_PID=$!
bench_track "$NODE_PID"
bench_wait_http "http://127.0.0.1:$APORT/readyz" 20 "$NODE_PID" ||
	{ bench_tail "$BENCH_NODE_LOG"; bench_die "macronode not ready within 20 s"; }

PEER=(--peer "127.0.0.1:$OPORT" --ca "$pki/cert.pem")
CID=$(RON_TOKEN=$BENCH_TOKEN timeout "$XFER_TIMEOUT" "$BENCH_NODE_BIN" put "$src" "${PEER[@]}" 2>"$BENCH_TMP/put.err") ||
	{ bench_tail "$BENCH_TMP/put.err"; bench_tail "$BENCH_NODE_LOG"; bench_die "macronode put failed"; }
if command -v b3sum >/dev/null; then
	[[ $CID == "b3:$(b3sum --no-names "$src")" ]] || bench_die "put returned $CID, b3sum disagrees"
fi

# --- nginx: the same bytes over TLS 1.3 -----------------------------------------
chmod 0711 "$BENCH_TMP"
mkdir -p "$BENCH_TMP/www/o"
cp "$src" "$BENCH_TMP/www/o/$CID"
chmod -R a+rX "$BENCH_TMP/www"
# shellcheck disable=SC2034 # read by bench_start_nginx
BENCH_NGINX_EXTRA="
$(bench_nginx_tls_lines "$TPORT" "$pki")
        sendfile on;
        location /o/ { root $BENCH_TMP/www; default_type application/octet-stream; }"
bench_start_nginx "$NPORT" 1
bench_wait_http "http://127.0.0.1:$NPORT/healthz" 10 "$BENCH_NGINX_PID" ||
	{ bench_tail "$BENCH_NGINX_LOG"; bench_die "nginx did not start"; }

# --- the three clients ------------------------------------------------------------
# shellcheck disable=SC2317 # the three are called as "fetch_$c"
fetch_oap()   { timeout "$XFER_TIMEOUT" "$BENCH_NODE_BIN" get "$CID" "${PEER[@]}" -o "$1" 2>>"$BENCH_TMP/get.err"; }
# shellcheck disable=SC2317
fetch_gw()    { curl -sS --max-time "$XFER_TIMEOUT" --cacert "$pki/cert.pem" -o "$1" "https://127.0.0.1:$GPORT/o/$CID"; }
# shellcheck disable=SC2317
fetch_nginx() { curl -sS --max-time "$XFER_TIMEOUT" --cacert "$pki/cert.pem" -o "$1" "https://127.0.0.1:$TPORT/o/$CID"; }

want=$(cksum <"$src")
for c in oap gw nginx; do
	"fetch_$c" "$BENCH_TMP/check" || { bench_tail "$BENCH_TMP/get.err"; bench_die "$c: download failed"; }
	[[ $(cksum <"$BENCH_TMP/check") == "$want" ]] || bench_die "$c: bytes differ from the source"
	rm -f "$BENCH_TMP/check"
done

# MB/s (10^6 bytes) of RUNS downloads to /dev/null: "best median".
measure() {
	local c=$1 i t0 t1
	local -a r=()
	for ((i = 0; i < RUNS; i++)); do
		t0=$(date +%s%N)
		"fetch_$c" /dev/null || bench_die "$c: download failed"
		t1=$(date +%s%N)
		r+=("$(awk -v b=$((SIZE_MIB * 1048576)) -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", b / 1e6 / (ns / 1e9) }')")
	done
	printf '%s\n' "${r[@]}" | sort -g | awk '{ a[NR] = $1 } END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s %.1f\n", a[NR], m }'
}

bench_log "measuring ($RUNS runs each)"
read -r OAP_BEST OAP_MED < <(measure oap)
read -r GW_BEST GW_MED < <(measure gw)
read -r NGX_BEST NGX_MED < <(measure nginx)
kill -0 "$NODE_PID" 2>/dev/null || { bench_tail "$BENCH_NODE_LOG"; bench_die "macronode died"; }

printf '# GET of one %s MiB object over TLS 1.3 on loopback, %s runs each, to /dev/null; MB = 10^6 bytes\n' \
	"$SIZE_MIB" "$RUNS"
printf '# %s CPUs; macronode gateway.workers 1, nginx worker_processes 1 (sendfile on)\n' \
	"$(nproc 2>/dev/null || echo '?')"
printf '%-32s %10s %10s %12s %12s\n' client 'best MB/s' 'median' 'oap/this' '(median)'
row() { printf '%-32s %10s %10s %12s %12s\n' "$1" "$2" "$3" "$(bench_ratio "$OAP_BEST" "$2")" \
	"$(bench_ratio "$OAP_MED" "$3")"; }
row "macronode get (OAP/1, omnigate)" "$OAP_BEST" "$OAP_MED"
row "curl https gateway" "$GW_BEST" "$GW_MED"
row "curl https nginx" "$NGX_BEST" "$NGX_MED"
# Machine-readable: RATIO <figure> <metric> <node> <nginx> <node/nginx>;
# mb_s is the median, mb_s_best the best run (MB = 10^6 bytes; higher is better).
ratio() { printf 'RATIO %s %s %s %s %s\n' "$1" "$2" "$3" "$4" "$(bench_ratio "$3" "$4")"; }
ratio "oap-${SIZE_MIB}MiB" mb_s "$OAP_MED" "$NGX_MED"
ratio "oap-${SIZE_MIB}MiB" mb_s_best "$OAP_BEST" "$NGX_BEST"
ratio "gateway-https-${SIZE_MIB}MiB" mb_s "$GW_MED" "$NGX_MED"
ratio "gateway-https-${SIZE_MIB}MiB" mb_s_best "$GW_BEST" "$NGX_BEST"
exit 0
