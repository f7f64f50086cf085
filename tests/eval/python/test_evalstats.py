"""Properties of the evaluation statistics (bench/quality/evalstats.py)."""
import numpy as np
import pytest

import evalstats as E


def _clips(rng, n_clips, n_frames, mean=3.0, sd=2.0, backends=1):
    return [rng.normal(mean, sd, size=(n_frames, 1, backends)) for _ in range(n_clips)]


def test_bootstrap_interval_covers_the_point_and_the_true_mean():
    rng = np.random.default_rng(5)
    clips = _clips(rng, 12, 10)
    point, reps = E.bootstrap(clips, E.mean_of_stem_medians, n_boot=800)
    lo, hi = E.interval(reps)
    assert lo[0] < point[0] < hi[0]
    assert lo[0] < 3.0 < hi[0]


def test_bootstrap_interval_shrinks_with_more_clips_and_frames():
    rng = np.random.default_rng(6)
    small = _clips(rng, 4, 5)
    large = _clips(rng, 32, 40)
    w = []
    for clips in (small, large):
        _, reps = E.bootstrap(clips, E.mean_of_stem_medians, n_boot=600)
        lo, hi = E.interval(reps)
        w.append(hi[0] - lo[0])
    assert w[1] < 0.5 * w[0]


def test_bootstrap_point_is_mean_over_clips_of_median_over_frames_then_mean_over_stems():
    a = np.array([[1.0, 10.0], [2.0, 20.0], [9.0, 30.0]])[:, :, None]  # (F=3, S=2, B=1)
    b = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 2.0]])[:, :, None]
    point, _ = E.bootstrap([a, b], E.mean_of_stem_medians, n_boot=10)
    clip_a = (2.0 + 20.0) / 2
    clip_b = (4.0 + 0.0) / 2
    assert point[0] == pytest.approx((clip_a + clip_b) / 2)


def test_paired_difference_is_exact_when_backends_differ_by_a_constant():
    rng = np.random.default_rng(7)
    clips = []
    for _ in range(6):
        x = rng.normal(0, 3, size=(8, 2, 1))
        clips.append(np.concatenate([x, x + 0.5], axis=2))
    point, reps = E.bootstrap(clips, E.mean_of_stem_medians, n_boot=300)
    d = reps[:, 1] - reps[:, 0]
    assert np.allclose(d, 0.5)  # same draws for both back ends: no noise in the difference
    assert point[1] - point[0] == pytest.approx(0.5)


def test_nan_frames_are_ignored_like_museval():
    a = np.array([1.0, np.nan, 3.0, np.nan])[:, None, None]
    point, _ = E.bootstrap([a], E.mean_of_stem_medians, n_boot=20)
    assert point[0] == pytest.approx(2.0)


def _tone(freq, n=44100 * 2, rate=44100):
    t = np.arange(n) / rate
    x = np.sin(2 * np.pi * freq * t)
    return np.stack([x, x], axis=1)


def test_routing_of_a_signal_already_separated_is_identity():
    stems = [_tone(220.0), _tone(2500.0), _tone(9000.0)]
    m = E.routing_matrix(stems, stems)
    assert np.allclose(m, np.eye(3), atol=1e-3)


def test_routing_rows_sum_to_one_and_follow_the_energy():
    s = _tone(440.0)
    out = [0.5 * s, 0.5 * s, np.zeros_like(s), np.zeros_like(s)]  # equal halves in two outputs
    m = E.routing_matrix([s], out)
    assert m.sum() == pytest.approx(1.0)
    assert m[0, :2] == pytest.approx([0.5, 0.5], abs=1e-9)
    swapped = E.routing_matrix([_tone(300.0), _tone(5000.0)], [_tone(5000.0), _tone(300.0)])
    assert np.allclose(swapped, [[0, 1], [1, 0]], atol=1e-3)


def test_routing_of_a_silent_true_stem_is_nan():
    m = E.routing_matrix([np.zeros((44100, 2))], [_tone(440.0, 44100)])
    assert np.isnan(m).all()


def test_frame_energies_drop_the_partial_second():
    x = np.ones((44100 * 2 + 100, 2))
    e = E.frame_energies(x)
    assert e.tolist() == [2 * 44100.0, 2 * 44100.0]


def test_level_ratio_db_is_stem_energy_over_mix_energy():
    frames = np.zeros((3, 2, 1))
    frames[:, 0, 0] = [1.0, 0.0, 0.0]
    frames[:, 1, 0] = [50.0, 25.0, 25.0]
    assert E.level_ratio_db(frames)[0] == pytest.approx(-20.0)
