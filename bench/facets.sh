#!/usr/bin/env bash
# bench/facets.sh — the facet drills of issue 17, side by side with their
# limits: each drill prints p50/p95/p99 beside the spec's limit and our
# target (ten times stricter). One node runs every drill; a drill is one
# section (a function drill_<name>) and DRILLS picks them:
#
#   graph   GET /g/{user}/followers pages (with cursors, limit 100) of a user
#           with GRAPH_FOLLOWERS followers, wrk -c$CONNS for $DURATION
#   feed    POST /feed by a user with 10k followers, then with 100k
#           (FEED_SIZES), FEED_RUNS posts each: time from the POST until the
#           last follower's feed shows it (and every follower is checked)
#   model   the feed's design measurement (bench/social_model.c, in process,
#           no node): fan-out on write vs on read, docs/social.md
#   storm   facet, core and admin requests while a storm runs
#           (facets_storm.py): one tenant far over its quota, then the
#           in-flight cap filled by uploads held open — facets are shed
#           first, core routes and the admin plane keep answering
#   media   1 MiB ranges of a 1 GiB object over /media/{cid}, 256 clients
#   search  mixed FTS5 queries over 10^6 generated documents, 64 clients
#           (both run by facets_media_search.sh on a node of its own; its
#           env applies: MEDIA_MIB, DOCS, DOCS_CACHE, CONNS_MEDIA, ...)
#
# Performance is printed, never judged: the script fails only when the node
# does not start or a drill's requests fail. Usage, from the repo root after
# `make build`:
#
#   bench/facets.sh                      # every drill
#   DRILLS=graph DURATION=5s bench/facets.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

DRILLS=${DRILLS:-"graph feed model storm media search"}
MODEL_BIN=${SOCIAL_MODEL_BIN:-build/tests/social_model}
FEED_SIZES=${FEED_SIZES:-"10000 100000"}
FEED_RUNS=${FEED_RUNS:-20}
GRAPH_FOLLOWERS=${GRAPH_FOLLOWERS:-10000}
PY=${PYTHON:-/usr/bin/python3}

for d in $DRILLS; do
	case $d in graph|feed|model|storm|media|search) ;;
	*) bench_die "DRILLS: unknown drill '$d' (graph, feed, model, storm, media, search)" ;; esac
done

bench_init
bench_find_node

# --- the node: every facet service, quotas and rate caps off ------------------
APORT="" GPORT=""
bench_free_port_into APORT
bench_free_port_into GPORT
VAR=$BENCH_TMP/var
mkdir -m 0700 "$VAR"
bench_init_wall "$VAR"
export RON_KEK_FILE=$VAR.kek

# macronode init's bundle admits the core routes only; the drills add what an
# operator opening the facets would: token holders may use them, anyone may
# read the graph.
cat >"$VAR/policy/policy.json" <<-'EOF2'
	{"version": 2, "defaults": {"default_action": "deny"},
	 "rules": [
	  {"id": "anonymous-get", "when": {"method": "GET", "require_tags_all": ["core"]}, "action": "allow", "reason": "objects are public to read"},
	  {"id": "token-holders", "when": {"method": "*", "require_tags_all": ["core", "token"]}, "action": "allow", "reason": "capability token presented"},
	  {"id": "facet-token-holders", "when": {"method": "*", "require_tags_all": ["facet", "token"]}, "action": "allow", "reason": "facets for token holders"},
	  {"id": "facet-read", "when": {"method": "GET", "require_tags_all": ["facet"]}, "action": "allow", "reason": "the graph is public to read"}]}
EOF2
"$BENCH_NODE_BIN" policy sign "$VAR/policy/policy.json" --key "$VAR/policy/signing.key" \
	>"$BENCH_TMP/sign.out" 2>&1 || { bench_tail "$BENCH_TMP/sign.out"; bench_die "policy sign failed"; }

node_config() { # node_config QUOTA_RPS MAX_INFLIGHT [MIN_BODY_RATE] (reloaded live)
	cat >"$BENCH_TMP/node.json" <<-EOF2
	{"admin": {"addr": "127.0.0.1:$APORT"},
	 "gateway": {"addr": "127.0.0.1:$GPORT"},
	 "paths": {"data_dir": "$VAR"},
	 "log": {"level": "warn"},
	 "timeouts": {"read": "60s", "body_grace": "60s"},
	 "storage": {"max_uploads": 256, "max_uploads_per_peer": 0},
	 "services": ["audit", "storage", "gateway", "social"],
	 "quota": {"requests_per_second": $1, "burst": $(($1 > 0 ? $1 : 1))},
	 "limits": {"requests_per_second": 0, "max_connections": 4096, "max_inflight": $2,
	            "min_body_rate": "${3:-1KiB}"}}
	EOF2
}
node_config 0 4096
BENCH_NODE_LOG=$BENCH_TMP/node.log
"$BENCH_NODE_BIN" run --config "$BENCH_TMP/node.json" </dev/null >>"$BENCH_NODE_LOG" 2>&1 &
NODE_PID=$!
bench_track "$NODE_PID"
bench_wait_http "http://127.0.0.1:$APORT/readyz" 30 "$NODE_PID" ||
	{ bench_tail "$BENCH_NODE_LOG"; bench_die "macronode not ready"; }
GW=127.0.0.1:$GPORT
SOCK=$VAR/run/social.sock

mint() { # mint TENANT
	"$BENCH_NODE_BIN" token mint --key "$VAR/auth/keys/k1.key" --kid k1 --tenant "$1" \
		--ttl 2h 2>>"$BENCH_TMP/mint.err" || bench_die "token mint failed"
}

# --- the table ------------------------------------------------------------------
ROWS=()
row() { # row DRILL P50 P95 P99 N SPEC TARGET
	ROWS+=("$(printf '| %-31s | %9s | %9s | %9s | %7s | %-12s | %-12s |' "$@")")
}

# --- drill: graph -----------------------------------------------------------------
drill_graph() {
	local out lat
	"$PY" "$here/facets_social.py" setup "$SOCK" star "$GRAPH_FOLLOWERS" ||
		bench_die "graph: setup failed"
	"$PY" "$here/facets_social.py" paths "$GW" star 100 100 "$BENCH_TMP/graph-paths.txt" ||
		bench_die "graph: paths failed"
	out=$BENCH_TMP/wrk-graph.txt
	PATHS=$BENCH_TMP/graph-paths.txt bench_wrk_raw "$out" "$WRK_DURATION" "http://$GW/" \
		-s "$here/facets_graph.lua" || { bench_tail "$out"; bench_die "graph: wrk failed"; }
	lat=$(awk '$1 == "LAT" { print $2, $3, $4, $5, $6 }' "$out")
	[[ -n $lat ]] || { bench_tail "$out"; bench_die "graph: no latency line"; }
	read -r p50 p95 p99 n errs <<<"$lat"
	((errs == 0)) || bench_log "warning: graph: $errs errors (non-2xx or socket)"
	printf 'DRILL graph-followers-page %s %s %s %s\n' "$p50" "$p95" "$p99" "$n"
	row "graph: follower page (c$WRK_CONNS)" "$p50" "$p95" "$p99" "$n" "—" "p95 ≤ 5 ms"
}

# --- drill: feed --------------------------------------------------------------------
drill_feed() {
	local cid size author line spec target
	cid=$(printf 'a post for the feed drill %s\n' "$(date +%s%N)" |
		curl -sS --max-time 30 -H "Authorization: Bearer $BENCH_TOKEN" \
			-H 'Content-Type: application/octet-stream' --data-binary @- "http://$GW/o" |
		sed -n 's/.*"cid":"\(b3:[0-9a-f]*\)".*/\1/p')
	[[ -n $cid ]] || bench_die "feed: could not store the post's object"
	for size in $FEED_SIZES; do
		author=author$size
		"$PY" "$here/facets_social.py" setup "$SOCK" "$author" "$size" ||
			bench_die "feed: setup failed"
		last=$(printf 'f%06d' $((size - 1)))
		line=$("$PY" "$here/facets_social.py" feed "$GW" "$SOCK" "$author" "$size" "$FEED_RUNS" \
			"$cid" "$(mint "$author")" "$(mint "$last")") || bench_die "feed: drill failed"
		printf '%s\n' "$line"
		read -r _ _ p50 p95 p99 n <<<"$line"
		spec="—" target="—"
		if ((size == 10000)); then spec="p95 ≤ 2 s"; target="p95 ≤ 200 ms"; fi
		row "feed: fanout to $((size / 1000))k followers" "$p50" "$p95" "$p99" "$n" "$spec" "$target"
	done
}

# --- drill: storm -------------------------------------------------------------------
STORM_SECONDS=${STORM_SECONDS:-10}
STORM_INFLIGHT=${STORM_INFLIGHT:-40}     # limits.max_inflight per gateway worker: facets shed at 30
STORM_CONNS=${STORM_CONNS:-96}           # uploads held open at the ramp's top (2 workers: ~48 each)
STORM_LINES=()
reloads_ok() {
	curl -sS "http://127.0.0.1:$APORT/metrics" |
		awk '/^config_reloads_total\{result="ok"\}/ { print $2; found=1 } END { if (!found) print 0 }'
}
storm_reload() { # storm_reload QUOTA_RPS MAX_INFLIGHT [MIN_BODY_RATE]
	local before
	before=$(reloads_ok)
	node_config "$@"
	kill -HUP "$NODE_PID"
	for _ in $(seq 100); do
		(($(reloads_ok) > before)) && return 0
		sleep 0.1
	done
	bench_die "storm: the node did not reload its config"
}
drill_storm() {
	local small out
	"$PY" "$here/facets_social.py" setup "$SOCK" star 1000 || bench_die "storm: setup failed"
	small=$(head -c 4096 /dev/urandom | curl -sS --max-time 30 -H "Authorization: Bearer $BENCH_TOKEN" \
		-H 'Content-Type: application/octet-stream' --data-binary @- "http://$GW/o" |
		sed -n 's/.*"cid":"\(b3:[0-9a-f]*\)".*/\1/p')
	[[ -n $small ]] || bench_die "storm: could not store the object"
	local facet="/g/star/followers?limit=100" alice bob storm filler="" i
	alice=$(mint alice) bob=$(mint bob) storm=$(mint storm)
	for i in 0 1 2 3 4 5 6 7; do filler+="${filler:+,}$(mint "filler$i")"; done
	storm_reload 100 4096
	out=$("$PY" "$here/facets_storm.py" run "$GW" "$APORT" quota "$STORM_SECONDS" 64 \
		"/o/$small" "$storm" "$facet" "$alice" "/o/$small" "$bob") || bench_die "storm: quota phase failed"
	printf '%s\n' "$out"
	mapfile -t -O "${#STORM_LINES[@]}" STORM_LINES <<<"$out"
	storm_reload 0 "$STORM_INFLIGHT" 0
	out=$("$PY" "$here/facets_storm.py" run "$GW" "$APORT" overload "$STORM_SECONDS" "$STORM_CONNS" \
		"/o" "$filler" "$facet" "$alice" "/o/$small" "$bob") || bench_die "storm: overload phase failed"
	printf '%s\n' "$out"
	mapfile -t -O "${#STORM_LINES[@]}" STORM_LINES <<<"$out"
	storm_reload 0 4096
}

# --- drills: media, search (facets_media_search.sh, a node of its own) -------------
drill_ms() { # drill_ms media|search
	local out l
	out=$(ONLY=$1 bash "$here/facets_media_search.sh") || bench_die "$1: facets_media_search.sh failed"
	printf '%s\n' "$out"
	while read -r l; do
		# FACET <name> p50 p95 p99 spec_p95 target_p95 req_s non2xx
		# shellcheck disable=SC2086
		set -- $l
		[[ ${1:-} == FACET ]] || continue
		if [[ $6 == - ]]; then
			row "$2 (baseline)" "$3" "$4" "$5" "—" "—" "—"
		else
			row "$2" "$3" "$4" "$5" "—" "p95 ≤ $6 ms" "p95 ≤ $7 ms"
		fi
	done <<<"$out"
}
drill_media() { drill_ms media; }
drill_search() { drill_ms search; }

# --- drill: model (no node) -----------------------------------------------------------
MODEL_LINES=()
drill_model() {
	local out
	[[ -x $MODEL_BIN ]] || bench_die "model: $MODEL_BIN not built (ninja -C build)"
	out=$(TMPDIR=$BENCH_TMP "$MODEL_BIN" 10000 100 1000 5000) || bench_die "model: failed"
	printf '%s\n' "$out"
	mapfile -t MODEL_LINES <<<"$out"
}

for d in $DRILLS; do
	"drill_$d"
done

printf '\n# facet drills (ms; the node: 1 gateway worker per CPU, social on LMDB in %s)\n' "$VAR"
printf '| %-31s | %9s | %9s | %9s | %7s | %-12s | %-12s |\n' drill p50 p95 p99 n "spec limit" "our target"
printf '|%s|\n' "---------------------------------|-----------|-----------|-----------|---------|--------------|--------------"
((${#ROWS[@]} == 0)) || printf '%s\n' "${ROWS[@]}"
if ((${#STORM_LINES[@]} > 0)); then
	printf '\n# under a storm (facets_storm.py; samplers at ~50 req/s each, ms; quota phase: the storm tenant over 100 req/s; overload@N: limits.max_inflight %s per worker, N uploads held open)\n' \
		"$STORM_INFLIGHT"
	printf '| %-12s | %-6s | %7s | %7s | %6s | %6s | %5s | %8s | %8s |\n' phase class n 2xx 429 503 other p50 p95
	printf '|%s|\n' "--------------|--------|---------|---------|--------|--------|-------|----------|----------"
	for l in "${STORM_LINES[@]}"; do
		# shellcheck disable=SC2086
		set -- $l
		[[ ${1:-} == STORM ]] || continue
		printf '| %-12s | %-6s | %7s | %7s | %6s | %6s | %5s | %8s | %8s |\n' "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10}"
	done
fi
if ((${#MODEL_LINES[@]} > 0)); then
	printf '\n# feed design (in process, LMDB on disk): fan-out on write vs on read, ms\n'
	printf '%s\n' "${MODEL_LINES[@]}"
fi
curl -sS "http://127.0.0.1:$APORT/metrics" | grep -E '^(social_fanout_seconds_(sum|count)|facet_latency_seconds_count|facet_busy_total|social_rejected_total\{reason="busy"\})' >&2 || true
