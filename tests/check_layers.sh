#!/usr/bin/env bash
# The include graph must respect lib ← core ← svc ← node: a lower layer never
# includes a header of a higher one (DESIGN.md §6). Inside core the subject
# folders have an order of their own:
#   core/ (tls) , core/config, core/metrics  ← core/proto ← core/net ← core/auth ← core/objects
#   ← core/dht, core/social (typed clients on the transport) ;  core/audit sits beside core/identity (rank 10: lib and identity only),
#   except its client (audit_client.*), which rides the transport: beside core/proto
# (a codec never knows HTTP; the wall never knows how objects are stored).
# Inside node, node/cli/ (operator tools) may use node/*.h but the supervisor
# never includes a tool.  Every folder under src/ must have a rank here:
# a new folder that is not listed fails the check until it is placed.
set -u
root=${1:-.}
cd "$root/src" || exit 1
rank() {
	case "$1" in
	lib/*) echo 0 ;;
	core/config/* | core/metrics/*) echo 10 ;;
	core/proto/*) echo 11 ;;
	core/net/*) echo 12 ;;
	core/auth/*) echo 13 ;;
	core/objects/*) echo 14 ;;
	core/dht/* | core/mailbox/*) echo 15 ;;
	core/social/*) echo 15 ;;
	core/search/*) echo 15 ;;   # the search facet: codec, query check, client (beside dht: NAME checks names with core/dht/name.h)
	core/audit/audit_client.*) echo 11 ;;
	core/audit/*) echo 10 ;;
	core/*) echo 10 ;;
	svc/*) echo 20 ;;
	node/cli/*) echo 31 ;;
	node/*) echo 30 ;;
	*) echo -1 ;;
	esac
}
bad=0
while IFS= read -r f; do
	lr=$(rank "$f")
	if [ "$lr" -lt 0 ]; then
		echo "layer unknown: $f (place its folder in tests/check_layers.sh)"
		bad=1
		continue
	fi
	while IFS= read -r inc; do
		case "$inc" in mn_build.h | mn_git.h | mn_git_ts.h) continue ;; esac   # generated (meson)
		# A *_test.h (what only tests call) is for its own module: only files
		# of its folder may include it in src/.
		case "$inc" in
		*_test.h)
			if [ "${inc%/*}" != "${f%/*}" ]; then
				echo "test-only header: $f includes $inc"
				bad=1
			fi ;;
		esac
		ir=$(rank "$inc")
		if [ "$ir" -lt 0 ]; then
			echo "layer unknown: $f includes $inc"
			bad=1
		elif [ "$ir" -gt "$lr" ]; then
			echo "layer violation: $f includes $inc"
			bad=1
		fi
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done < <(find lib core svc node -name '*.[ch]' | grep -v '^lib/blake3/')
[ $bad -eq 0 ] && echo "layers ok"
exit $bad
