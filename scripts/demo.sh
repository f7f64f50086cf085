#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, build, then separate and
# spatialise a song on the embedded defaults (DSP back end, MIT KEMAR HRTF).
#   bash scripts/demo.sh                 # a 20 s multi-instrument song the project generates
#   bash scripts/demo.sh my-song.flac    # or your own files (WAV/FLAC/OGG/MP3, mono or stereo)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh" stemsphere_lv2 stemsphere-render stemsphere-demosong
bin="$here/build/tools"
if [ $# -eq 0 ]; then
  song_dir="$here/out/demo-song"
  "$bin/demosong/stemsphere-demosong" --out "$song_dir" --seed 1 --seconds 20
  set -- "$song_dir/mixture.wav"
  out_args=(--out "$here/out/demo-stems")
else
  out_args=()
fi
"$bin/render/stemsphere-render" "${out_args[@]}" "$@"
if [ ${#out_args[@]} -gt 0 ]; then
  echo
  echo "Stems of the demo song (sample-aligned with $1):"
  ls -1 "$here/out/demo-stems"/*.wav
  echo "mix.wav is the binaural mix for headphones; the ground truth is in $here/out/demo-song/."
fi
