#!/bin/sh
# Fails unless the plugin binary exports exactly lv2_descriptor (hidden visibility + version
# script) and links with every symbol resolved (no undefined symbols outside its NEEDED libs).
set -eu
so=$1
symbols=$(nm -D --defined-only "$so" | awk '{print $3}' | sort | tr '\n' ' ')
echo "exported: $symbols"
[ "$symbols" = "lv2_descriptor " ] || { echo "FAIL: unexpected exported symbols"; exit 1; }
echo "NEEDED: $(readelf -d "$so" | awk '/NEEDED/ {print $5}' | tr '\n' ' ')"
