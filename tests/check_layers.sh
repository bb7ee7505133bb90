#!/usr/bin/env bash
# The include graph must respect lib ← core ← svc ← node: a lower layer never
# includes a header of a higher one (DESIGN.md §6).
set -u
root=${1:-.}
cd "$root/src" || exit 1
rank() { case "$1" in lib) echo 0;; core) echo 1;; svc) echo 2;; node) echo 3;; *) echo -1;; esac; }
bad=0
while IFS= read -r f; do
  layer=${f%%/*}
  lr=$(rank "$layer")
  while IFS= read -r inc; do
    il=${inc%%/*}
    ir=$(rank "$il")
    [ "$ir" -lt 0 ] && continue
    if [ "$ir" -gt "$lr" ]; then
      echo "layer violation: $f includes $inc"
      bad=1
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done < <(find lib core svc node -name '*.[ch]')
[ $bad -eq 0 ] && echo "layers ok"
exit $bad
