#!/usr/bin/env bash
# bench/upload.sh — memory of every process while one large object is
# uploaded: the body streams to an upload file, so no process's RSS may
# follow the object's size (issue 14: < 2 MiB of growth for 1 GiB).
#
# Run from the repo root:  bench/upload.sh
# Env: MACRONODE_BIN (default build/macronode), SIZE (object size in MiB,
#      default 1024), BENCH_KEEP_LOGS=1 (keep the temp dir on failure).
# Prints, per process of the node, VmRSS before the upload and the highest
# VmRSS sampled during it (every 50 ms), and one machine-readable line per
# process: `RSS <process> <before_kib> <max_kib> <growth_kib>`. Exits non-zero
# only if the node does not start or the upload fails, never on a number.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

SIZE_MIB=${SIZE:-1024}

command -v curl >/dev/null || bench_die "curl not found"
bench_find_node
bench_init

APORT="" GPORT=""
bench_free_port_into APORT
bench_free_port_into GPORT
# The defaults (storage.max_object 1 GiB), only the addresses and data dir set.
bench_start_node "$APORT" "$GPORT"
bench_wait_http "http://127.0.0.1:$APORT/readyz" 20 "$BENCH_NODE_PID" ||
	{ bench_tail "$BENCH_NODE_LOG"; bench_die "macronode not ready within 20 s"; }

bench_log "writing a ${SIZE_MIB} MiB object"
src=$BENCH_TMP/obj
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$src" || bench_die "cannot write test data"

# pid -> "role[worker]" for the node's processes (the supervisor and its children).
declare -A NAME
NAME[$BENCH_NODE_PID]=supervisor
for p in $(pgrep -P "$BENCH_NODE_PID"); do
	NAME[$p]=$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{ for (i = 1; i < NF; i++)
		if ($i == "__service") { r = $(i + 1) } else if ($i == "--worker") { w = $(i + 1) }
		print r "[" w "]" }')
done
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

declare -A BEFORE MAX
for p in "${!NAME[@]}"; do
	BEFORE[$p]=$(rss "$p")
	MAX[$p]=${BEFORE[$p]}
done

curl -sS --max-time 600 -T "$src" -H 'Content-Type: application/octet-stream' \
	-H "Authorization: Bearer $BENCH_TOKEN" -o "$BENCH_TMP/put.out" -w '%{http_code}' \
	"http://127.0.0.1:$GPORT/o" >"$BENCH_TMP/put.code" 2>"$BENCH_TMP/put.err" &
CURL_PID=$!
while kill -0 "$CURL_PID" 2>/dev/null; do
	for p in "${!NAME[@]}"; do
		r=$(rss "$p")
		((r > MAX[$p])) && MAX[$p]=$r
	done
	sleep 0.05
done
wait "$CURL_PID" || { bench_tail "$BENCH_TMP/put.err"; bench_die "upload failed"; }
code=$(cat "$BENCH_TMP/put.code")
[[ $code == 201 || $code == 200 ]] ||
	{ bench_tail "$BENCH_TMP/put.out"; bench_die "upload answered $code"; }
if command -v b3sum >/dev/null; then
	grep -q "\"cid\":\"b3:$(b3sum --no-names "$src")\"" "$BENCH_TMP/put.out" ||
		bench_die "the node's id differs from b3sum's"
fi

printf '# one %s MiB upload (curl -T, PUT /o) to a node on its defaults; VmRSS in KiB\n' "$SIZE_MIB"
printf '%-14s %10s %10s %10s\n' process before max growth
for p in "${!NAME[@]}"; do
	printf '%-14s %10s %10s %10s\n' "${NAME[$p]}" "${BEFORE[$p]}" "${MAX[$p]}" \
		"$((MAX[$p] - BEFORE[$p]))"
done | sort
for p in "${!NAME[@]}"; do
	printf 'RSS %s %s %s %s\n' "${NAME[$p]}" "${BEFORE[$p]}" "${MAX[$p]}" "$((MAX[$p] - BEFORE[$p]))"
done | sort
exit 0
