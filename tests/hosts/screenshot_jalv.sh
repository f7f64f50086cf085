#!/usr/bin/env bash
# Screenshot of Stemsphere's generic controls in jalv.gtk3 on a virtual display (for docs/daw.md).
# Needs xvfb, x11-apps and netpbm (not in apt-packages.txt: docs only, not a test).
# Usage: screenshot_jalv.sh LV2_DIR OUT.png
set -euo pipefail
lv2_dir=$1 out=$2
work=$(mktemp -d /tmp/stemsphere-shot.XXXXXX)
export LV2_PATH=$lv2_dir JACK_NO_AUDIO_RESERVATION=1 JACK_DEFAULT_SERVER=stemsphere-shot-$$ HOME=$work
display=:$((100 + $$ % 100))
Xvfb "$display" -screen 0 1200x1400x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb=$!
jackd -n "$JACK_DEFAULT_SERVER" --no-realtime -d dummy -r 48000 -p 256 >"$work/jackd.log" 2>&1 &
jackd=$!
trap 'kill $jalv $jackd $xvfb 2>/dev/null; rm -rf "$work"' EXIT
jalv=""
sleep 2
DISPLAY=$display jalv.gtk3 https://stemsphere.dev/plugins/stemsphere >"$work/jalv.log" 2>&1 &
jalv=$!
sleep 6
DISPLAY=$display xwd -root -silent | xwdtopnm 2>/dev/null | pnmcut -left 0 -top 0 -width 640 -height 1200 |
  pnmquant 64 2>/dev/null | pnmtopng >"$out"
echo "wrote $out"
