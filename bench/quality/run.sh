#!/usr/bin/env bash
# Separation quality on real music (issue 11; docs/eval.md "Quality bench"):
#
#   bash bench/quality/run.sh BUILD_DIR [--split dev|test] [--modes dsp,live,studio,render]
#                             [--sets a,b,...] [--json FILE] [--boot N] [--keep DIR]
#
# Materialises the clips of one half of bench/quality/split.json into the evaluation cache
# ($STEMSPHERE_EVAL_CACHE, default /var/cache/stemsphere/eval; eval_sets.py), renders each through
# the real plugin bundle with stemsphere-render once per quality mode, scores the stems with
# stemsphere-eval (museval v4 SDR per 1 s frame) and prints, per set, every back end side by side:
# v4 SDR per stem and mean with a 95 % bootstrap interval over clips and frames, the paired
# difference to Live (DSP) with its interval, floor (mixture/K) and oracle IRM rows, the routing
# matrix (share of each true source's energy in each output), the leakage into "vocals" on
# instrumentals and the share of a source played alone that lands in its stem.
#
# The default is the dev half: every choice is made there. `--split test` is for the one report
# per shipped model; do not tune on it. The results also go to BUILD_DIR/quality-<split>.json
# (or --json FILE). Needs stemsphere-eval, stemsphere-render and lv2/stemsphere.lv2 in BUILD_DIR.
# Not run in ctest; about 4-10 minutes of CPU for the dev half.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: bench/quality/run.sh BUILD_DIR [--split dev|test] [--json FILE] ...}
shift
split=dev
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = "--split" ] && split=${args[$((i + 1))]:-dev}
done
json=()
printf '%s\n' "${args[@]}" | grep -qx -- '--json' || json=(--json "$build/quality-$split.json")
exec /usr/bin/python3 "$here/score.py" "$build" "${args[@]}" "${json[@]}"
