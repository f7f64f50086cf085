#!/usr/bin/env bash
# Builds the headless parts of Carla (test host only, never shipped) from the vendored snapshot,
# once, into a cache folder shared by every checkout: discovery, the single-plugin bridge and
# libcarla_host-plugin.so (the rack engine our offline driver links against). carla.md §1-2.
# Usage: build_carla.sh TARBALL CACHE_DIR   -> prints CACHE_DIR/carla-12bc40fd when ready.
# Exit 77 when the tarball is absent (the caller skips), 1 on a failed build.
set -euo pipefail
tarball=$1
cache=$2
name=$(basename "$tarball" .tar.xz)
src="$cache/$name"
stamp="$src/.stemsphere-built"
need=(bin/carla-discovery-native bin/carla-bridge-native bin/libcarla_host-plugin.so)
built() {
  [ -f "$stamp" ] || return 1
  for f in "${need[@]}"; do [ -e "$src/$f" ] || return 1; done
}
if built; then echo "$src"; exit 0; fi
[ -f "$tarball" ] || { echo "no Carla snapshot at $tarball" >&2; exit 77; }
mkdir -p "$cache"
# One builder at a time: parallel ctest runs from several checkouts share the cache.
exec 9>"$cache/.lock"
flock 9
if built; then echo "$src"; exit 0; fi
rm -rf "$src"
tar -xJf "$tarball" -C "$cache"
log="$cache/build-$name.log"
{
  # PKG_CONFIG=false: the minimal variant (no X11/GL/sndfile), same test results (carla.md §2).
  make -C "$src" PKG_CONFIG=false -j2 backend discovery &&
    make -C "$src/source/plugin" PKG_CONFIG=false ../../bin/libcarla_host-plugin.so &&
    make -C "$src/source/bridges-plugin" PKG_CONFIG=false -j2 ../../bin/carla-bridge-native
} >"$log" 2>&1 || { tail -30 "$log" >&2; echo "Carla build failed, log: $log" >&2; exit 1; }
touch "$stamp"
echo "$src"
