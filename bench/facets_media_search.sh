#!/usr/bin/env bash
# bench/facets_media_search.sh — the Media and Search facet drills (issue 17):
# p50/p95/p99 of each beside the spec limit and our target.
#
#   Media : 1 MiB ranges at random offsets of one large object, GET
#           /media/{cid}, CONNS_MEDIA concurrent clients (spec 256).
#           Spec p95 ≤ 100 ms, target p95 ≤ 10 ms.
#   Search: mixed queries (one term, AND, OR, NOT, phrase, prefix) over
#           DOCS generated documents, GET /search, CONNS_SEARCH clients.
#           Spec p95 ≤ 150 ms, target p95 ≤ 15 ms (on 10^6 documents).
#
# Run from the repo root:  bench/facets_media_search.sh
# Env: MACRONODE_BIN (build/macronode), MEDIA_MIB (1024: the spec's 1 GiB),
#      DOCS (1000000), CONNS_MEDIA (256), CONNS_SEARCH (64), DURATION (10s),
#      WARMUP (2s), THREADS (2), WORKERS (0: one gateway worker per CPU),
#      ONLY=media|search, DOCS_CACHE=FILE (keep the
#      generated database there and reuse it: 10^6 documents take minutes).
#
# The object is uploaded through PUT /o like any client's. The search
# documents are generated straight into the search service's SQLite file
# (<data_dir>/search/index.db, the schema of src/svc/search/search_db.c)
# before the node starts: a million PUTs would measure the upload path,
# not the query path. The service counts them at start (search_documents).
# Prints one line per drill:
#   FACET <name> p50_ms p95_ms p99_ms spec_p95_ms target_p95_ms req_s non2xx
# Exits non-zero only when a server or a tool fails — never on a number.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

MEDIA_MIB=${MEDIA_MIB:-1024}
DOCS=${DOCS:-1000000}
CONNS_MEDIA=${CONNS_MEDIA:-256}
CONNS_SEARCH=${CONNS_SEARCH:-64}
WRK_THREADS=${THREADS:-2}
ONLY=${ONLY:-}
DOCS_CACHE=${DOCS_CACHE:-}   # a file: generated documents kept (and reused) there

[[ -x $BENCH_WRK_BIN ]] || bench_die "wrk not found at $BENCH_WRK_BIN (apt-get install wrk)"
bench_find_node
bench_init

APORT="" GPORT=""
bench_free_port_into APORT
bench_free_port_into GPORT

# --- the node's data dir, with the search documents in place -------------------
# (this script starts the node itself: bench_start_node takes flags only,
# and the documents must be in <data_dir>/search before it starts)
mkdir -m 0700 "$BENCH_TMP/var"
if [[ $ONLY != media ]]; then
	mkdir -m 0700 "$BENCH_TMP/var/search"
	if [[ -n $DOCS_CACHE && -s $DOCS_CACHE ]]; then
		cp "$DOCS_CACHE" "$BENCH_TMP/var/search/index.db" || bench_die "cannot copy $DOCS_CACHE"
	else
		bench_log "generating $DOCS search documents ..."
		python3 "$here/facets_search_gen.py" "$BENCH_TMP/var/search/index.db" "$DOCS" ||
			bench_die "document generation failed"
		[[ -n $DOCS_CACHE ]] && cp "$BENCH_TMP/var/search/index.db" "$DOCS_CACHE"
	fi
fi

# The drill's token has no Tenant caveat, which init's facet-token-holders
# rule does not need; tagging the facet routes "core" too keeps the drill
# independent of the bundle. VERIFIED_CACHE sets gateway.verified_cache
# (default the node's, 64 MiB per worker).
vcache=""
[[ -z ${VERIFIED_CACHE:-} ]] || vcache=", \"verified_cache\": \"$VERIFIED_CACHE\""
cat >"$BENCH_TMP/node.json" <<JSON
{ "services": ["gateway", "storage", "audit", "search"],
  "storage": { "max_object": "2GiB" },
  "quota": { "requests_per_second": 0 },
  "policy": { "tags_facet": "core,facet" },
  "limits": { "requests_per_second": 0 },
  "gateway": { "workers": ${WORKERS:-0}$vcache } }
JSON
bench_start_node_keep() {
	bench_init_wall "$BENCH_TMP/var"
	BENCH_NODE_LOG="$BENCH_TMP/node.log"
	"$BENCH_NODE_BIN" run --config "$BENCH_TMP/node.json" \
		--http-addr "127.0.0.1:$APORT" --gateway-addr "127.0.0.1:$GPORT" \
		--data-dir "$BENCH_TMP/var" --log-level warn </dev/null >>"$BENCH_NODE_LOG" 2>&1 &
	BENCH_NODE_PID=$!
	bench_track "$BENCH_NODE_PID"
}
bench_start_node_keep
bench_wait_http "http://127.0.0.1:$APORT/readyz" 30 "$BENCH_NODE_PID" ||
	{ bench_tail "$BENCH_NODE_LOG"; bench_die "macronode not ready"; }
# init's token is scoped to /o: mint one for the facet routes too.
BENCH_TOKEN=$(RON_DATA_DIR="$BENCH_TMP/var" "$BENCH_NODE_BIN" token mint \
	--key "$BENCH_TMP/var/auth/keys/k1.key" --kid k1 --prefix / --method GET --method POST \
	2>>"$BENCH_NODE_LOG" | tail -1)
[[ -n $BENCH_TOKEN ]] || bench_die "could not mint a token for the facet routes"
AUTH="Authorization: Bearer $BENCH_TOKEN"
G="http://127.0.0.1:$GPORT"

# wrk's Lua: randomised requests; done() prints the percentiles we need.
cat >"$BENCH_TMP/pct.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("PCT %.3f %.3f %.3f %d %d\n", latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.requests,
    summary.errors.status))
end
LUA

# One request before the load: a drill of refusals measures nothing.
probe() {   # url [curl args]
	local url=$1 code
	shift
	code=$(curl -s -o "$BENCH_TMP/probe.out" -w '%{http_code}' -H "$AUTH" "$@" "$url")
	if [[ $code != 2* ]]; then
		cat "$BENCH_TMP/probe.out" >&2
		bench_die "probe $url answered $code"
	fi
}

report() {   # name spec target
	local line p50 p95 p99 n bad rps
	line=$(awk '/^PCT / {print; exit}' "$WRK_OUT")
	read -r _ p50 p95 p99 n bad <<<"$line"
	rps=$WRK_RPS
	printf '%-8s p50 %8s ms  p95 %8s ms  p99 %8s ms  | spec p95 <= %s ms, target p95 <= %s ms | %s req/s, non-2xx %s\n' \
		"$1" "$p50" "$p95" "$p99" "$2" "$3" "$rps" "$bad"
	printf 'FACET %s %s %s %s %s %s %s %s\n' "$1" "$p50" "$p95" "$p99" "$2" "$3" "$rps" "$bad"
}

# --- Media ------------------------------------------------------------------------
if [[ $ONLY != search ]]; then
	bench_log "uploading a $MEDIA_MIB MiB object ..."
	head -c $((MEDIA_MIB * 1024 * 1024)) /dev/urandom >"$BENCH_TMP/big.bin"
	cid=$(curl -sS --fail -X POST -H "$AUTH" -H "Content-Type: video/mp4" \
		-T "$BENCH_TMP/big.bin" "$G/o" | sed -n 's/.*"cid":"\([^"]*\)".*/\1/p')
	[[ -n $cid ]] || { bench_tail "$BENCH_NODE_LOG"; bench_die "upload failed"; }
	# nginx serves the same file (NGINX=0: not): the yardstick of what this
	# machine can move at this concurrency, beside the spec's limit.
	if [[ ${NGINX:-1} != 0 && -x $BENCH_NGINX_BIN ]]; then
		chmod 0711 "$BENCH_TMP"          # nginx workers run as 'nobody'
		mkdir -p "$BENCH_TMP/www/media"
		mv "$BENCH_TMP/big.bin" "$BENCH_TMP/www/media/$cid"
		chmod -R a+rX "$BENCH_TMP/www"
		NPORT=""
		bench_free_port_into NPORT
		# shellcheck disable=SC2034 # read by bench_start_nginx
		BENCH_NGINX_EXTRA="
        sendfile   on;
        tcp_nopush on;
        location /media/ {
            root $BENCH_TMP/www;
            default_type video/mp4;
        }"
		nworkers=${WORKERS:-0}
		((nworkers > 0)) || nworkers=$(nproc)
		bench_start_nginx "$NPORT" "$nworkers"
		bench_wait_http "http://127.0.0.1:$NPORT/healthz" 10 "$BENCH_NGINX_PID" ||
			{ bench_tail "$BENCH_NGINX_LOG"; bench_die "nginx did not start"; }
	fi
	rm -f "$BENCH_TMP/big.bin"
	cat >"$BENCH_TMP/media.lua" <<LUA
local size = $((MEDIA_MIB * 1024 * 1024))
local mib = 1048576
math.randomseed(42)
request = function()
  local s = math.random(0, size - mib)
  return wrk.format("GET", "/media/$cid", { ["Range"] = "bytes=" .. s .. "-" .. (s + mib - 1),
    ["Authorization"] = "Bearer $BENCH_TOKEN" })
end
LUA
	cat "$BENCH_TMP/pct.lua" >>"$BENCH_TMP/media.lua"
	probe "$G/media/$cid" -r 0-1048575
	printf '# media: %s MiB object, 1 MiB random ranges, wrk -t%s -c%s -d%s\n' \
		"$MEDIA_MIB" "$WRK_THREADS" "$CONNS_MEDIA" "$WRK_DURATION"
	WRK_CONNS=$CONNS_MEDIA bench_wrk media "$G/media/$cid" -s "$BENCH_TMP/media.lua" || exit 1
	report media 100 10
	# The same ranges from /o/{b3}: what the facet adds to the object path.
	sed "s|/media/$cid|/o/$cid|" "$BENCH_TMP/media.lua" >"$BENCH_TMP/o.lua"
	WRK_CONNS=$CONNS_MEDIA bench_wrk o-ranges "$G/o/$cid" -s "$BENCH_TMP/o.lua" || exit 1
	report o-ranges - -
	if [[ -n ${NPORT:-} ]]; then
		WRK_CONNS=$CONNS_MEDIA bench_wrk nginx-ranges "http://127.0.0.1:$NPORT/media/$cid" \
			-s "$BENCH_TMP/media.lua" || exit 1
		report nginx-ranges - -
	fi
	# Fewer clients: 256 concurrent 1 MiB answers are bound by the bytes
	# the machine moves (Little: clients / throughput), not by the route.
	light=$((CONNS_MEDIA / 32 > WRK_THREADS ? CONNS_MEDIA / 32 : WRK_THREADS))   # wrk: -c ≥ -t
	WRK_CONNS=$light bench_wrk media-light "$G/media/$cid" -s "$BENCH_TMP/media.lua" || exit 1
	report "media/${light}c" 100 10
fi

# --- Search -----------------------------------------------------------------------
if [[ $ONLY != media ]]; then
	docs=$(curl -s "http://127.0.0.1:$APORT/metrics" | awk '/^search_documents / {print $2}')
	cat >"$BENCH_TMP/search.lua" <<LUA
local qs = {}
local words = {}
for i = 0, 4999 do words[#words + 1] = "w" .. i end
math.randomseed(7)
local function w() return words[math.random(1, #words)] end
request = function()
  local k = math.random(1, 6)
  local q
  if k == 1 then q = w()
  elseif k == 2 then q = w() .. "+AND+" .. w()
  elseif k == 3 then q = w() .. "+OR+" .. w()
  elseif k == 4 then q = w() .. "+NOT+" .. w()
  elseif k == 5 then q = "%22" .. w() .. "+" .. w() .. "%22"
  else q = w() .. "*" end
  return wrk.format("GET", "/search?q=" .. q .. "&limit=10",
    { ["Authorization"] = "Bearer $BENCH_TOKEN" })
end
LUA
	cat "$BENCH_TMP/pct.lua" >>"$BENCH_TMP/search.lua"
	probe "$G/search?q=w1&limit=10"
	printf '# search: %s documents indexed, mixed queries, wrk -t%s -c%s -d%s\n' \
		"${docs:-?}" "$WRK_THREADS" "$CONNS_SEARCH" "$WRK_DURATION"
	WRK_CONNS=$CONNS_SEARCH bench_wrk search "$G/search" -s "$BENCH_TMP/search.lua" || exit 1
	report search 150 15
	# The same mix at a quarter of the clients: queueing vs. query cost.
	light=$((CONNS_SEARCH / 4 > WRK_THREADS ? CONNS_SEARCH / 4 : WRK_THREADS))   # wrk: -c ≥ -t
	WRK_CONNS=$light bench_wrk search-light "$G/search" -s "$BENCH_TMP/search.lua" || exit 1
	report "search/${light}c" 150 15
	curl -s "http://127.0.0.1:$APORT/metrics" |
		awk '/^(search_queries_total|facet_deadline_timeouts_total|facet_busy_total)/' >&2
fi
