#!/usr/bin/env bash
# What the browser tests need besides the apt packages (chromium, nodejs): playwright-core from
# npm, installed once into a cache outside the clone (STEMSPHERE_NODE_DIR, default
# /var/cache/stemsphere/node) and reused when present. No browser is downloaded: the tests
# drive Debian's /usr/bin/chromium.
set -euo pipefail
dir=${STEMSPHERE_NODE_DIR:-/var/cache/stemsphere/node}
version=1.52.0
if [ -f "$dir/node_modules/playwright-core/package.json" ] &&
   grep -q "\"version\": \"$version\"" "$dir/node_modules/playwright-core/package.json"; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
mkdir -p "$dir"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund --prefix "$dir" \
  "playwright-core@$version"
echo "setup: playwright-core $version in $dir"
