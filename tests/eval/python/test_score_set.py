"""score.py end to end on constructed clips, with the project's scorer (build/.../stemsphere-eval):
a back end that returns the true sources scores far above the floor, routes each source to its
stem, and is called better than DSP; a DSP row equal to the floor scores exactly the floor."""
import os

import numpy as np
import pytest

import eval_sets
import score

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EVAL_BIN = os.path.join(os.environ.get("STEMSPHERE_BUILD_DIR", os.path.join(REPO, "build")),
                        "tools", "eval", "stemsphere-eval")


class NoiseSongs:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def fretsonfire(self, clip):
        n = int(clip["seconds"] * 44100)
        t = np.arange(n) / 44100
        g = 0.2 * np.sin(2 * np.pi * 660 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
        r = 0.05 * self.rng.standard_normal(n)
        return {"other": np.stack([g, g], 1), "accompaniment": np.stack([r, r], 1)}


@pytest.mark.skipif(not os.access(EVAL_BIN, os.X_OK), reason="stemsphere-eval not built")
def test_score_set_on_known_estimates(tmp_path):
    clips = []
    for k in range(2):
        entry = {"id": "fof/t@%d" % k, "set": "fretsonfire", "split": "dev", "source": "x",
                 "path": "/x", "start": k, "seconds": 3}
        d = str(tmp_path / ("clip%d" % k))
        eval_sets.build_clip(NoiseSongs(k), entry, d)
        clips.append(score.Clip(d))
    rng = np.random.default_rng(9)
    stems = {"dsp": [], "live": []}
    for c in clips:
        stems["dsp"].append({s: c.mixture / 4 for s in score.STEMS})
        g, r = c.ref("other"), c.ref("accompaniment")
        eps = lambda: 1e-3 * rng.standard_normal(g.shape)  # noqa: E731
        stems["live"].append({"vocals": r + eps(), "drums": eps(), "bass": eps(),
                              "other": g + eps()})
    res = score.score_set("fretsonfire", clips, stems, ["dsp", "live"], EVAL_BIN,
                          str(tmp_path / "work"), n_boot=100)
    rows = res["rows"]
    assert rows["dsp"]["sdr_v4_mean"][0] == pytest.approx(rows["floor"]["sdr_v4_mean"][0],
                                                          abs=1e-4)
    assert rows["live"]["sdr_v4_mean"][0] > rows["irm"]["sdr_v4_mean"][0] > \
        rows["floor"]["sdr_v4_mean"][0] + 3
    diff = rows["live"]["sdr_v4_mean_minus_dsp"]
    assert diff[1] > 0 and score.verdict(diff) == "beats DSP"
    assert rows["live"]["routing"]["guitar"][3] > 0.99  # guitar -> other
    assert rows["live"]["routing"]["rest"][0] > 0.99  # rest -> vocals here
    assert rows["dsp"]["routing"]["guitar"] == pytest.approx([0.25] * 4, abs=1e-6)
    assert rows["live"]["shares"]["guitar in other"][0] > 0.99
    assert rows["live"]["shares"]["rest leaking into other"][0] < 0.01
    lo, hi = rows["dsp"]["shares"]["guitar in other"][1:]
    assert lo <= 0.25 + 1e-9 and hi >= 0.25 - 1e-9
    report = {"split": "dev", "boot": 100, "sets": {"fretsonfire": res}}
    import io
    out = io.StringIO()
    score.print_report(report, out)
    text = out.getvalue()
    assert "Live (neural)" in text and "beats DSP" in text and "guitar in other" in text


class MixedLayouts:
    """A 4-stem clip and a vocals/accompaniment clip in one set, as the MUSDB test half has."""

    def musdb(self, clip):
        rng = np.random.default_rng(len(clip["id"]))
        n = 3 * 44100
        t = np.arange(n) / 44100
        tone = lambda f: np.stack([np.sin(2 * np.pi * f * t)] * 2, 1) * 0.1  # noqa: E731
        if clip["id"].endswith("4"):
            return {"vocals": tone(880), "drums": 0.05 * rng.standard_normal((n, 2)),
                    "bass": tone(55), "other": tone(3000)}
        return {"vocals": tone(660), "accompaniment": tone(110)}


@pytest.mark.skipif(not os.access(EVAL_BIN, os.X_OK), reason="stemsphere-eval not built")
def test_a_set_mixing_four_stem_and_two_stem_clips_scores_each_on_its_own_stems(tmp_path):
    clips = []
    for cid in ("musdb/a4", "musdb/b2"):
        d = str(tmp_path / cid.replace("/", "_"))
        eval_sets.build_clip(MixedLayouts(), {"id": cid, "set": "musdb-previews", "split": "test",
                                              "source": "x", "path": "x"}, d)
        clips.append(score.Clip(d))
    stems = {"dsp": [{s: c.mixture / 4 for s in score.STEMS} for c in clips]}
    res = score.score_set("musdb-previews", clips, stems, ["dsp"], EVAL_BIN,
                          str(tmp_path / "work"), n_boot=50)
    dsp = res["rows"]["dsp"]
    assert list(dsp["sdr_v4"]) == ["vocals", "drums", "bass", "other", "accompaniment"]
    assert list(dsp["routing"]) == ["vocals", "drums", "bass", "other", "accompaniment"]
    assert dsp["routing"]["accompaniment"] == pytest.approx([0.25] * 4, abs=1e-6)
    per = res["per_clip"]
    assert dsp["sdr_v4_mean"][0] == pytest.approx(
        (per["musdb/a4"]["dsp sdr_v4_mean"] + per["musdb/b2"]["dsp sdr_v4_mean"]) / 2)
    assert dsp["sdr_v4_mean"][0] == pytest.approx(res["rows"]["floor"]["sdr_v4_mean"][0],
                                                  abs=1e-4)
