"""Materialising the evaluation sets: idempotent, rebuilt when missing or changed, references
that sum to the mixture, excerpts of the asked length at 44.1 kHz."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

import eval_sets
import score


class CountingBuilder:
    def __init__(self):
        self.calls = 0

    def fretsonfire(self, clip):
        self.calls += 1
        n = int(clip["seconds"] * 44100)
        t = np.arange(n) / 44100
        g = 0.3 * np.sin(2 * np.pi * 330 * t)
        r = 0.3 * np.sin(2 * np.pi * 110 * t)
        return {"other": np.stack([g, g], 1), "accompaniment": np.stack([r, 0.5 * r], 1)}


CLIP = {"id": "fof/x@0", "set": "fretsonfire", "split": "dev", "source": "debian:x",
        "path": "/nonexistent", "start": 0, "seconds": 2}


def test_build_is_idempotent_and_rebuilds_what_changed_or_vanished(tmp_path):
    b = CountingBuilder()
    out = str(tmp_path / "clip")
    assert eval_sets.build_clip(b, CLIP, out) is True
    assert eval_sets.build_clip(b, CLIP, out) is False
    assert b.calls == 1
    changed = dict(CLIP, seconds=3)
    assert eval_sets.build_clip(b, changed, out) is True
    assert sf.info(os.path.join(out, "mixture.wav")).frames == 3 * 44100
    os.remove(os.path.join(out, "clip.json"))
    assert eval_sets.build_clip(b, changed, out) is True
    assert b.calls == 3


def test_references_sum_to_the_mixture(tmp_path):
    out = str(tmp_path / "clip")
    eval_sets.build_clip(CountingBuilder(), CLIP, out)
    with open(os.path.join(out, "clip.json")) as f:
        meta = json.load(f)
    assert meta["stems"] == ["accompaniment", "other"] and meta["rate"] == 44100
    mix, _ = sf.read(os.path.join(out, "mixture.wav"))
    total = sum(sf.read(os.path.join(out, s + ".wav"))[0] for s in meta["stems"])
    assert np.max(np.abs(mix - total)) < 1e-6


def test_read_audio_resamples_to_44k1_stereo_and_cuts_the_excerpt(tmp_path):
    p = str(tmp_path / "a.wav")
    t = np.arange(48000 * 3) / 48000
    sf.write(p, 0.5 * np.sin(2 * np.pi * 1000 * t), 48000)  # mono 48 kHz
    x = eval_sets.read_audio(p, start=1.0, seconds=1.5)
    assert x.shape == (int(1.5 * 44100), 2)
    spec = np.abs(np.fft.rfft(x[:, 0]))
    assert abs(np.argmax(spec) * 44100 / len(x) - 1000) < 2
    with pytest.raises(ValueError):
        eval_sets.read_audio(p, start=10.0, seconds=1.0)


def test_missing_sources_are_reported_not_fatal(tmp_path):
    dirs, problems = eval_sets.build(str(tmp_path), "dev", str(tmp_path / "no-mirror"),
                                     str(tmp_path / "no-shared"),
                                     sets=("musdb-previews", "drums-alone", "guitar-alone"))
    assert dirs == []
    assert any("musdb" in p for p in problems)
    assert any("github:" in p for p in problems)  # the drum and guitar snapshots


def test_guitar_phrase_is_reproducible_and_pentatonic():
    files = ["Samples/green/ord/twang_%s%d_%s_rr1.wav" % (n, o, d)
             for n in ("a", "bb", "c", "d", "e", "g") for o in (3, 4, 5) for d in ("p", "f")]
    a = eval_sets.guitar_phrase(files, 1, 8.0)
    assert a == eval_sets.guitar_phrase(files, 1, 8.0)
    assert a != eval_sets.guitar_phrase(files, 2, 8.0)
    assert all("_bb" not in p for _, p, _ in a)
    assert a[-1][0] < 8.0 and all(x[0] < y[0] for x, y in zip(a, a[1:]))


def test_fretsonfire_estimates_are_the_plugin_stems_the_set_maps(tmp_path):
    clip_dir = str(tmp_path / "clip")
    eval_sets.build_clip(CountingBuilder(), CLIP, clip_dir)
    c = score.Clip(clip_dir)
    assert c.refs == ["other", "accompaniment"]
    n = c.n
    stems = {s: np.full((n, 2), k + 1.0) for k, s in enumerate(score.STEMS)}  # V1 D2 B3 O4
    est = str(tmp_path / "est")
    score.write_estimate(est, c, stems, score.SETS["fretsonfire"])
    assert sf.read(os.path.join(est, "other.wav"))[0][0, 0] == 4.0
    assert sf.read(os.path.join(est, "accompaniment.wav"))[0][0, 0] == 6.0  # V + D + B
