#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt-packages.txt that are missing, then
# configures and builds the project into build/ (all targets, or the ones given as arguments).
# Idempotent: a second run only rebuilds what changed. STEMSPHERE_WERROR=ON|OFF sets warnings as
# errors (the test command turns it on); unset keeps the build tree's current choice.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
mapfile -t wanted < <(grep -v '^\s*#' scripts/apt-packages.txt | sed 's/\s.*//' | grep -v '^$')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash scripts/setup-web-tests.sh || echo "setup: the browser tests cannot run (see scripts/setup-web-tests.sh)"
werror=()
[ -n "${STEMSPHERE_WERROR:-}" ] && werror=(-DSTEMSPHERE_WERROR="$STEMSPHERE_WERROR")
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${werror[@]}" >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j"$(nproc)" "${targets[@]}"
