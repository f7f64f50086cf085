#!/usr/bin/env bash
# One command for the training songs closer to real records (models/data/realdata.py):
#   bash models/data/make_real_data.sh OUT [SEED] [SONGS] [SECONDS] [REMIXES]
# Needs the three source snapshots under $STEMSPHERE_MIRROR (default /work/.mirror; fetched as
# github:<owner>/<repo> at the commits in models/README.md) and the packages of models/setup.sh.
# Deterministic per SEED; resumable (songs with a meta.json are skipped).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OUT [SEED=1] [SONGS=100] [SECONDS=10] [REMIXES=SONGS]" >&2; exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$1; seed=${2:-1}; songs=${3:-100}; seconds=${4:-10}; remixes=${5:-$songs}
extra=()
if command -v praat >/dev/null && [ -d /usr/share/asterisk/sounds/en ]; then
  extra+=(--realvoice)
fi
exec nice -n 10 /usr/bin/python3 "$here/realdata.py" --out "$out" --seed "$seed" \
  --songs "$songs" --seconds "$seconds" --remix "$remixes" "${extra[@]}"
