"""Tests of the training-data pipeline closer to real records (models/data/realdata.py).

Tests marked `needs_sources` play the fetched MuldjordKit / Groove MIDI / Karoryfer snapshots
(STEMSPHERE_MIRROR, default /work/.mirror) and are skipped where they are not present."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal as sps

import realdata as rd

RATE = rd.RATE


def have_sources():
    return all(os.path.isdir(os.path.join(rd.MIRROR, r.replace("/", "+"), "repo"))
               for r in (rd.KIT_REPO, rd.GROOVE_REPO, rd.GUITAR_REPO))


needs_sources = pytest.mark.skipif(not have_sources(), reason="source snapshots not fetched")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    # The generator's own cache (extracted once, ~800 MB; a temporary one would re-extract it).
    return rd.Sources(os.environ.get("STEMSPHERE_REAL_CACHE", rd.DEFAULT_CACHE))


# ------------------------------------------------------------------ production chain

def random_stems(seed, n=RATE * 2):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    return {"vocals": rd.pan(np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.3), -0.1),
            "drums": rng.standard_normal((n, 2)) * (t % 0.25 < 0.05)[:, None],
            "bass": rd.pan(0.8 * np.sin(2 * np.pi * 55 * t), 0.0),
            "other": rng.standard_normal((n, 2)) * 0.2}


def test_stems_sum_to_the_processed_mix_after_bus_processing():
    stems = random_stems(1)
    rng = np.random.default_rng(5)
    for k in stems:
        stems[k], _ = rd.stem_chain(k, stems[k], rng)
    mix = sum(stems.values())
    out, info = rd.bus_process(stems, np.random.default_rng(9))
    # The same bus (same draws) on the mix alone: what a mastering chain would make of the mix.
    bus_mix, _ = rd.bus_process({"mix": mix}, np.random.default_rng(9))
    total = sum(out.values())
    assert np.max(np.abs(total - bus_mix["mix"])) < 1e-9 * np.max(np.abs(mix)) + 1e-12
    # ...and the bus did change the mix (compression and saturation were applied).
    assert info["bus_comp_min_gain_db"] < -0.5
    assert np.sqrt(np.mean((total - mix) ** 2)) > 1e-3 * np.sqrt(np.mean(mix ** 2))


def test_bus_saturation_share_follows_each_stems_energy():
    n = RATE
    loud = np.zeros((n, 2))
    loud[: n // 2] = 0.9
    quiet = np.zeros((n, 2))
    quiet[n // 2:] = 0.9
    out, _ = rd.bus_process({"a": loud, "b": quiet}, np.random.default_rng(3), comp=False)
    # Where a stem is silent it receives (almost) none of the saturation's difference.
    assert np.max(np.abs(out["b"][1000: n // 2 - 1000])) < 1e-3
    assert np.max(np.abs(out["a"][n // 2 + 1000: -1000])) < 1e-3


def test_compressor_reduces_loud_passages_only():
    n = RATE
    x = np.full((n, 2), 0.01)
    x[n // 2:] = 0.5
    g = rd.compressor_gain(x, thr_db=-20, ratio=4, attack=0.005, release=0.1)
    assert np.all(g <= 1.0 + 1e-12)
    assert g[n // 4] > 0.99  # quiet part untouched
    # -6 dB (0.5 amplitude, level -3 dBFS per the detector) is 17 dB over: about -12.8 dB.
    assert 20 * np.log10(g[-1]) == pytest.approx(-12.8, abs=1.0)


def test_deesser_cuts_sibilance_more_than_the_voice():
    rng = np.random.default_rng(2)
    n = RATE
    t = np.arange(n) / RATE
    voice = 0.3 * np.sin(2 * np.pi * 500 * t)
    hiss = sps.sosfilt(sps.butter(4, [5500, 9000], "bandpass", fs=RATE, output="sos"),
                       rng.standard_normal(n)) * (t % 0.5 < 0.08)
    x = np.stack([voice + hiss] * 2, axis=1)
    y = rd.deess(x, np.random.default_rng(1))
    def band(sig, lo, hi):
        return np.sum(sps.sosfilt(sps.butter(4, [lo, hi], "bandpass", fs=RATE, output="sos"),
                                  sig[:, 0]) ** 2)
    hiss_cut = 10 * np.log10(band(y, 5500, 9000) / band(x, 5500, 9000))
    voice_cut = 10 * np.log10(band(y, 400, 600) / band(x, 400, 600))
    assert hiss_cut < -2.0
    assert abs(voice_cut) < 0.2


# ------------------------------------------------------------------ singing

def f0_track(x, hop=0.005, win=0.04, fmin=100, fmax=400):
    """Autocorrelation f0 per frame with parabolic interpolation (Hz)."""
    n, h = int(win * RATE), int(hop * RATE)
    out = []
    for a in range(0, len(x) - n, h):
        f = x[a:a + n] * np.hanning(n)
        r = np.fft.irfft(np.abs(np.fft.rfft(f, 2 * n)) ** 2)[:n]
        lo, hi = int(RATE / fmax), int(RATE / fmin)
        k = lo + int(np.argmax(r[lo:hi]))
        den = r[k - 1] - 2 * r[k] + r[k + 1]
        d = 0.5 * (r[k - 1] - r[k + 1]) / den if den < 0 else 0.0
        out.append(RATE / (k + d))
    return np.array(out)


def test_vibrato_rate_depth_and_delayed_onset_measured_on_a_sung_vowel():
    vib = {"rate": 6.0, "cents": 50.0, "delay": 0.3}
    note = 57  # A3, 220 Hz
    x, f0, _ = rd.vowel_voice([(0.0, 2.5, note)], int(2.6 * RATE), np.random.default_rng(4),
                              vibrato=vib, breathiness=0.0)
    track = f0_track(x[: int(2.4 * RATE)])  # inside the note (the release is silent)
    cents = 1200 * np.log2(track / 220.0)
    times = np.arange(len(track)) * 0.005 + 0.02
    early = cents[(times > 0.08) & (times < 0.28)]
    assert np.max(np.abs(early - np.median(early))) < 8  # no vibrato before its onset
    steady = cents[(times > 0.7) & (times < 2.3)]
    steady = steady - np.mean(steady)
    spec = np.abs(np.fft.rfft(steady * np.hanning(len(steady)), 8192))
    freqs = np.fft.rfftfreq(8192, 0.005)
    rate = freqs[np.argmax(spec[1:]) + 1]
    depth = np.sqrt(2) * np.std(steady)
    assert rate == pytest.approx(6.0, abs=0.3)
    assert depth == pytest.approx(50.0, rel=0.2)


def test_portamento_glides_between_close_notes():
    rng = np.random.default_rng(1)
    f0, _ = rd.pitch_contour([(0.0, 0.5, 57), (0.55, 1.2, 64)], int(1.3 * RATE), rng,
                             vibrato={"rate": 6, "cents": 0.0, "delay": 0.3})
    start = 1200 * np.log2(f0[int(0.552 * RATE)] / 220.0)
    later = 1200 * np.log2(f0[int(0.9 * RATE)] / 220.0)
    assert later == pytest.approx(700, abs=10)
    assert start < 400  # the new note starts near the old pitch and glides up


def test_vowel_voice_is_deterministic_per_seed():
    notes = [(0.1, 0.6, 60), (0.6, 1.0, 62)]
    a = rd.vowel_voice(notes, RATE, np.random.default_rng(7))[0]
    b = rd.vowel_voice(notes, RATE, np.random.default_rng(7))[0]
    c = rd.vowel_voice(notes, RATE, np.random.default_rng(8))[0]
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


# ------------------------------------------------------------------ drums

def write_kit(root, regions):
    import soundfile as sf
    os.makedirs(os.path.join(root, "Stereo"))
    lines = []
    for key, lo, hi, name, freq in regions:
        path = os.path.join(root, "Samples", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        t = np.arange(RATE // 4) / RATE
        sf.write(path, 0.5 * np.sin(2 * np.pi * freq * t), RATE, subtype="FLOAT")
        lines.append(f"<region> key={key} lovel={lo} hivel={hi} sample={name}")
    with open(os.path.join(root, "Stereo", "DrumGizmo MuldjordKit.sfz"), "w") as f:
        f.write("\n".join(lines) + "\n")


def peak_freq(x):
    spec = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spec)]


def test_drum_renderer_picks_the_velocity_layer(tmp_path):
    write_kit(str(tmp_path), [(38, 1, 64, "snare/soft-Snare_top.wav", 300),
                              (38, 65, 127, "snare/hard-Snare_top.wav", 700),
                              (38, 1, 127, "snare/any-OHL.wav", 1100)])
    kit = rd.MultiMicKit(str(tmp_path))
    soft = kit.render_mics([(0.0, 38, 40)], 0.3)
    hard = kit.render_mics([(0.0, 38, 110)], 0.3)
    assert peak_freq(soft["Snare_top"]) == pytest.approx(300, abs=5)
    assert peak_freq(hard["Snare_top"]) == pytest.approx(700, abs=5)
    assert peak_freq(hard["OHL"]) == pytest.approx(1100, abs=5)  # every mic plays the hit
    assert np.max(np.abs(hard["OHL"])) > np.max(np.abs(soft["OHL"]))  # velocity curve


def test_mic_balance_sets_room_level(tmp_path):
    mics = {"Snare_top": np.ones(100), "AmbL": np.ones(100), "AmbR": np.ones(100)}
    rng = np.random.default_rng(0)
    bal = rd.draw_mic_balance(rng)
    quiet = dict(bal, gains=dict(bal["gains"], AmbL=0.0, AmbR=0.0))
    loud = rd.mix_mics(mics, bal, 100 / RATE)
    dry = rd.mix_mics(mics, quiet, 100 / RATE)
    assert np.sum(loud ** 2) > np.sum(dry ** 2)
    assert -20 <= bal["db"]["room"] <= -2 and -6 <= bal["db"]["close"] <= 3


@needs_sources
def test_muldjordkit_hit_bleeds_into_non_close_and_other_close_mics(sources):
    mics = sources.kit.render_mics([(0.0, 38, 100)], 1.0)  # one snare hit
    db = {m: 10 * np.log10(np.sum(x ** 2) + 1e-20) for m, x in mics.items()}
    assert max(db, key=db.get) in ("Snare_top", "Snare_bottom")
    top = db["Snare_top"]
    for mic in ("OHL", "OHR", "AmbL", "AmbR"):  # the kit in the overheads and the room
        assert mic in db and db[mic] > top - 30, (mic, db)
    for mic in ("Tom1", "Hihat"):  # snare bleed into neighbouring close mics
        assert mic in db and top - 40 < db[mic] < top - 3, (mic, db)
    assert "KdrumL" in db and db["KdrumL"] < top - 20  # the kick mic sits inside the drum


@needs_sources
def test_groove_files_are_train_split_and_never_evaluation_clips(sources):
    banned = rd.eval_paths()
    assert len(sources.grooves) > 300
    assert not banned.intersection(p for p, _, _ in sources.grooves)
    assert all("eval_session" not in p for p, _, _ in sources.grooves)


@needs_sources
def test_guitar_sample_pitch_matches_the_note_asked_for(sources):
    rng = np.random.default_rng(0)
    path, shift = rd.pick_sample(sources.guitars["green"], "twang", 45, 90, rng)  # A2, 110 Hz
    assert shift == 0
    x = sources.load(os.path.join(sources.guitar_root, path))[int(0.1 * RATE):int(0.6 * RATE)]
    track = f0_track(x, fmin=60, fmax=400)
    assert np.median(track) == pytest.approx(110.0, rel=0.03)


@needs_sources
def test_generated_song_is_deterministic_and_sane(tmp_path, sources):
    import soundfile as sf
    args = type("A", (), {"out": str(tmp_path / "a"), "seed": 3, "seconds": 4.0,
                          "split": "train", "realvoice": False,
                          "no_mma": False})()
    a = rd.make_song(0, args, sources)
    args.out = str(tmp_path / "b")
    b = rd.make_song(0, args, sources)
    stems = {}
    for k in rd.STEMS:
        xa, sr = sf.read(os.path.join(a, k + ".flac"))
        xb, _ = sf.read(os.path.join(b, k + ".flac"))
        assert sr == RATE and xa.shape == (4 * RATE, 2)
        assert np.array_equal(xa, xb), k
        stems[k] = xa
    mix = sum(stems.values())
    assert np.max(np.abs(mix)) <= 1.0
    for k, x in stems.items():  # every stem present at a mix level
        assert -35 < 10 * np.log10(np.mean(x ** 2)) < -8, k


# ------------------------------------------------------------------ provenance

def test_every_source_is_named_with_its_commit_and_credited():
    import json
    root = os.path.join(os.path.dirname(rd.HERE), "..")
    readme = open(os.path.join(root, "models", "README.md")).read()
    credits = open(os.path.join(root, "models", "ATTRIBUTION.md")).read()
    with open(rd.SPLIT_JSON) as f:
        commits = json.load(f)["sources"]
    for repo in (rd.KIT_REPO, rd.GROOVE_REPO, rd.GUITAR_REPO):
        assert f"`{repo}`" in readme, repo
        assert "@" + commits["github:" + repo] in readme, repo  # the commit the eval uses too
        assert repo in credits, repo
    for name in ("MuldjordKit", "Groove MIDI", "Karoryfer", "guitarix", "Asterisk"):
        assert name in credits


@pytest.mark.skipif(not os.path.isdir(rd.ASTERISK), reason="asterisk-core-sounds-en-wav missing")
def test_real_speech_never_draws_the_evaluation_prompts():
    files = set(rd.speech_files())
    evaluated = {p for p in rd.eval_paths() if p.startswith(rd.ASTERISK)}
    assert len(evaluated) >= 6 and len(files) > 100
    assert not files & evaluated
