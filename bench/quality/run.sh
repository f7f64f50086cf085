#!/usr/bin/env bash
# Separation quality of the plugin's DSP back end, bracketed by a floor and a ceiling, on every
# evaluation clip in shared/stems/musdb18-previews and on one held-out synthetic song.
#
#   bash bench/quality/run.sh BUILD_DIR
#
# Per clip: the input is the sum of the reference stems (MUSDB18-HQ convention; the previews'
# own mixture.wav is a separately coded stream), rendered through the real plugin with
# stemsphere-render (lilv, default controls = Live/DSP). Rows:
#   DSP           the plugin's stems (quality "Live (DSP)", the default)
#   Live, Studio, Render
#                 the plugin's stems in the neural quality modes (models/weights/*.stsnn);
#                 Render is the offline mode (about 1.5 s of context on each side)
#   floor         mixture/4 as every stem (mixture/2 for the vocals/accompaniment clips)
#   IRM engine    oracle power ratio mask in the engine's own Stft at the plugin's size for the
#                 clip's rate (stemsphere-eval oracle --nfft engine: 1024/256 at 44.1/48 kHz)
#   IRM 4096/1024 the same at the usual offline size (the SiSEC "IRM2" ceiling)
# Columns: museval v4 SDR (median of 1 s frames) per stem, and the mean over the clip's stems.
# The 2-stem clips score vocals and accompaniment (= DSP drums + bass + other). Not run in ctest.
# Needs: stemsphere-eval, stemsphere-render, stemsphere-demosong and the bundle built in BUILD_DIR.
set -euo pipefail

build=${1:?usage: bench/quality/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=${STEMSPHERE_SHARED_DIR:-$here/../shared}
clips_dir=$shared/stems/musdb18-previews
eval_cli=$build/tools/eval/stemsphere-eval
render=$build/tools/render/stemsphere-render
demosong=$build/tools/demosong/stemsphere-demosong
bundle=$build/lv2/stemsphere.lv2
# The synthetic song is held out: a seed and length nobody trains or tunes on (docs/eval.md).
demo_seed=${STEMSPHERE_QUALITY_DEMO_SEED:-4242}
demo_seconds=20

for tool in "$eval_cli" "$render" "$demosong"; do
    [ -x "$tool" ] || { echo "quality bench: missing $tool (build it first)" >&2; exit 1; }
done
[ -d "$bundle" ] || { echo "quality bench: missing plugin bundle $bundle" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/stemsphere-quality.XXXXXX")
trap 'rm -rf "$work"' EXIT

clips=()
if [ -d "$clips_dir" ]; then
    for d in "$clips_dir"/*/; do clips+=("${d%/}"); done
else
    echo "quality bench: $clips_dir not found, scoring the synthetic song only" >&2
fi
"$demosong" --out "$work/demo-song" --seed "$demo_seed" --seconds "$demo_seconds" >/dev/null
clips+=("$work/demo-song")

i=0
for ref in "${clips[@]}"; do
    i=$((i + 1))
    out=$work/clip$i
    mkdir -p "$out"
    name=$(basename "$ref")
    [ "$ref" = "$work/demo-song" ] && name="synthetic demo song (seed $demo_seed, ${demo_seconds} s)"
    echo "$name" >"$out/name"
    echo "quality bench: $name" >&2
    extra=()
    [ -f "$ref/drums.wav" ] || extra=(--accompaniment)
    "$eval_cli" mixture --ref "$ref" --out "$out/mixture.wav" >/dev/null
    "$render" "$out/mixture.wav" --out "$out/dsp" --bundle "$bundle" --quiet
    for mode in live studio render; do
        "$render" "$out/mixture.wav" --out "$out/$mode" --bundle "$bundle" --quiet --quality $mode
    done
    "$eval_cli" floor --ref "$ref" --out "$out/floor" >/dev/null
    "$eval_cli" oracle --ref "$ref" --out "$out/irm1024" --nfft engine >"$out/engine-stft"
    "$eval_cli" oracle --ref "$ref" --out "$out/irm4096" --nfft 4096 --hop 1024 >/dev/null
    for row in dsp live studio render floor irm1024 irm4096; do
        "$eval_cli" --ref "$ref" --est "$out/$row" "${extra[@]}" --json "$out/$row.json" >/dev/null
    done
done

/usr/bin/python3 - "$work" <<'PY'
import json, math, os, sys

work = sys.argv[1]
rows = [("dsp", "DSP (plugin, Live)"), ("live", "Live (neural)"), ("studio", "Studio (neural)"),
        ("render", "Render (neural)"), ("floor", "floor (mixture/K)"),
        ("irm1024", "oracle IRM engine STFT"), ("irm4096", "oracle IRM 4096/1024")]
cols = ["vocals", "drums", "bass", "other", "accompaniment"]
heads = ["vocals", "drums", "bass", "other", "accomp.", "mean"]

def fmt(v):
    return "     -" if v is None or (isinstance(v, float) and math.isnan(v)) else "%6.2f" % v

print("Separation quality: museval v4 SDR [dB] (median of 1 s frames; mean over the clip's stems)")
clip_dirs = sorted((d for d in os.listdir(work) if d.startswith("clip")), key=lambda d: int(d[4:]))
real = {}  # row -> per-clip means on the real clips
for d in clip_dirs:
    with open(os.path.join(work, d, "name")) as f:
        name = f.read().strip()
    with open(os.path.join(work, d, "engine-stft")) as f:
        stft = next(l.split()[-1] for l in f if l.startswith("oracle mask on STFT"))
    print("\n%s   (engine STFT %s)" % (name, stft))
    print("  %-22s " % "" + " ".join("%8s" % h for h in heads))
    means = {}
    for key, label in rows:
        with open(os.path.join(work, d, key + ".json")) as f:
            score = json.load(f)
        by = {t["name"]: t["sdr_v4"] for t in score["targets"]}
        means[key] = score["mean"]["sdr_v4"]
        if not name.startswith("synthetic"):
            real.setdefault(key, []).append(means[key])
        cells = [fmt(by.get(c)) for c in cols] + [fmt(means[key])]
        print("  %-22s " % label + " ".join("%8s" % c for c in cells))
    if None not in (means["dsp"], means["floor"], means["irm1024"]):
        gap = means["irm1024"] - means["floor"]
        share = (means["dsp"] - means["floor"]) / gap if gap else float("nan")
        print("  DSP - floor = %+.2f dB; DSP reaches %.0f %% of the floor->IRM(engine) gap"
              % (means["dsp"] - means["floor"], 100 * share))
if real.get("dsp"):
    avg = {k: sum(v) / len(v) for k, v in real.items()}
    print("\nReal clips (%d), mean of the clip means:" % len(real["dsp"]))
    for key, label in rows:
        extra = "" if key == "dsp" else "   (%+.2f dB vs DSP)" % (avg[key] - avg["dsp"])
        print("  %-22s %6.2f%s" % (label, avg[key], extra))
PY
