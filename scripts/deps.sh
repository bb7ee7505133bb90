#!/usr/bin/env bash
# Installs every Debian package that macronode's build, tests and benchmarks
# need. Idempotent: packages already present are skipped, and apt-get is not
# touched at all when nothing is missing. Debian 12 packages only.
set -euo pipefail

PKGS=(
  # build
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  # libraries (DESIGN.md §7)
  libevent-dev libhttp-parser-dev libnghttp2-dev libssl-dev libsodium-dev liblmdb-dev
  libjansson-dev libcbor-dev libzstd-dev zlib1g-dev libunistring-dev
  libseccomp-dev librust-blake3-dev
  # issue 17: search (SQLite FTS5), media types (libmagic)
  libsqlite3-dev libmagic-dev
  # sd_notify (Type=notify under systemd)
  libsystemd-dev
  # the dht service: OpenDHT 2.4 (C binding + the C++ library its shim uses)
  libopendht-c-dev libopendht-dev
  # tests
  libcmocka-dev python3-pytest python3-cryptography curl openssl b3sum prometheus procps
  # the web console's browser test (tests/integration/test_console.py)
  chromium chromium-driver python3-selenium
  # checks: the readiness model, static analysis (C and the Python tests)
  spin cppcheck clang-tools-14 python3-pyflakes
  # man pages: mandoc -Tlint (tests/integration/test_man.py)
  mandoc
  # benchmarks
  wrk nginx-light nghttp2-client
  # the Tor transport's tests (tests/integration/test_tor.py, make tor-test): tor, tor-gencert
  tor
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx-light's package starts a system nginx on port 80; benchmarks run their
# own instance, so do not leave the packaged one running.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
pkill -x nginx >/dev/null 2>&1 || true
