#!/usr/bin/env bash
# One function builds a server TLS context (DESIGN.md §1): SSL_CTX_new may
# appear in src/core/tls.c and nowhere else under src/. Prints the offending
# lines and exits 1 otherwise. Comment lines (starting with /*, * or //) are
# skipped so that headers may name the rule; any other mention counts, calls
# and function pointers alike (SSL_CTX_new_ex included).
set -u
root=${1:-.}
cd "$root" || exit 1
[ -f src/core/tls.c ] || { echo "check_tls_ctx: src/core/tls.c not found under $root"; exit 1; }
hits=$(grep -rn --include='*.c' --include='*.h' 'SSL_CTX_new' src |
  grep -v '^src/core/tls\.c:' |
  grep -Ev '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*|//)')
if [ -n "$hits" ]; then
  echo "SSL_CTX_new outside src/core/tls.c (use tls_server_new):"
  echo "$hits"
  exit 1
fi
# ... and tls.c itself calls it once (tls_ctx_build).
n=$(grep -Ev '^[[:space:]]*(/\*|\*|//)' src/core/tls.c | grep -c 'SSL_CTX_new')
if [ "$n" -ne 1 ]; then
  echo "src/core/tls.c: SSL_CTX_new appears $n times; one builder only:"
  grep -n 'SSL_CTX_new' src/core/tls.c
  exit 1
fi
echo "tls ctx ok"
exit 0
