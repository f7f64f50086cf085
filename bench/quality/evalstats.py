"""Statistics of the real-music evaluation (issue 11): bootstrap confidence intervals over clips
and 1 s frames, paired differences, the soft routing matrix and per-frame levels.

Bootstrap: one replicate draws the set's clips with replacement and, inside each drawn clip, its
1 s frames with replacement, then recomputes the set's figure (e.g. the mean over clips of the
median over frames). The same draws serve every back end, so a difference between two back ends
is bootstrapped as a paired difference. The interval is the 2.5 and 97.5 percentiles of the
replicates. A back end "beats" another only when the interval of the paired difference lies
entirely above 0.
"""

import numpy as np

STEMS = ("vocals", "drums", "bass", "other")


def bootstrap(clips, clip_stat, n_boot=1000, seed=0):
    """clips: list of arrays, each (frames, ...) for one clip; clip_stat(array) -> 1-D array
    (one value per back end, say) of a clip. Returns (point, replicates): point = nanmean over
    clips of clip_stat(clip); replicates (n_boot, K) = the same after resampling clips and,
    inside each drawn clip, its frames."""
    rng = np.random.default_rng(seed)
    point = np.nanmean(np.stack([np.atleast_1d(clip_stat(c)) for c in clips]), axis=0)
    n = len(clips)
    per_clip = []  # per clip: (n_boot, K) stats of frame resamples
    for c in clips:
        idx = rng.integers(0, len(c), size=(n_boot, len(c)))
        per_clip.append(np.asarray(clip_stat(c[idx])).reshape(n_boot, -1))
    per_clip = np.stack(per_clip)  # (n, n_boot, K)
    draw = rng.integers(0, n, size=(n_boot, n))
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            reps = np.nanmean(per_clip[draw, np.arange(n_boot)[:, None]], axis=1)
    return point, reps


def interval(replicates, level=0.95):
    """Percentile interval of each column of the replicates (NaN replicates ignored)."""
    a = (1 - level) / 2
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return (np.nanpercentile(replicates, 100 * a, axis=0),
                np.nanpercentile(replicates, 100 * (1 - a), axis=0))


def mean_of_stem_medians(frames):
    """Clip figure for museval v4 SDR: frames (F, S, B) per-second SDR of S stems and B back
    ends -> (B,) the mean over stems of the nanmedian over frames (museval: median of frames,
    headline = mean over targets). Infinite frames (a perfect second) count as very large."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(frames, axis=-3)  # (..., S, B)
        return np.nanmean(med, axis=-2)


def level_ratio_db(energies):
    """Clip figure for leakage: energies (F, 2, B) = per-frame energy of the leaked stem and of
    the mixture for B back ends -> (B,) 10·log10(Σ stem / Σ mixture)."""
    total = energies.sum(axis=-3)  # (..., 2, B)
    num, den = total[..., 0, :], total[..., 1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(np.maximum(num, 1e-30) / den)


def frame_energies(x, rate=44100):
    """Energy (sum over both channels) of each whole 1 s frame of x (N, C): museval's grid,
    the trailing partial second dropped."""
    n = len(x) // rate
    if n == 0:
        return np.array([float(np.sum(x ** 2))])
    return np.sum(x[:n * rate].reshape(n, rate, -1) ** 2, axis=(1, 2))


def _power_spectrogram(x, nfft, hop):
    """|STFT|² summed over channels, Hann window, frames (T, nfft/2+1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    pad = np.pad(x, ((nfft // 2, nfft // 2 + nfft), (0, 0))).T  # (C, N)
    t = 1 + (pad.shape[1] - nfft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(pad, nfft, axis=1)[:, ::hop][:, :t]
    spec = np.fft.rfft(frames * np.hanning(nfft + 1)[:nfft], axis=-1)  # (C, T, F)
    return np.sum(spec.real ** 2 + spec.imag ** 2, axis=0)


def _fit_outputs(outputs, n):
    fit = []
    for y in outputs:
        y = np.asarray(y, dtype=np.float64)[:n]
        if len(y) < n:
            y = np.pad(y, ((0, n - len(y)),) + ((0, 0),) * (y.ndim - 1))
        fit.append(y)
    return fit


def _routing_sums(true_stems, outputs, nfft, hop):
    """(num (J, K), den (J,)): Σ |S_j|² w_k and Σ |S_j|² over one stretch of audio."""
    p_out = np.stack([_power_spectrogram(y, nfft, hop) for y in outputs])  # (K, T, F)
    total = p_out.sum(axis=0)
    k = len(outputs)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(total > 0, p_out / np.where(total > 0, total, 1), 1.0 / k)
    num, den = [], []
    for s in true_stems:
        p = _power_spectrogram(s, nfft, hop)
        num.append(np.einsum("tf,ktf->k", p, w))
        den.append(p.sum())
    return np.array(num), np.array(den)


def routing_matrix(true_stems, outputs, nfft=2048, hop=512):
    """Soft routing in the STFT domain: share of each true stem's energy that lands in each
    output. Every time-frequency bin's energy of true stem j is split among the outputs in
    proportion to the outputs' energy in that bin, w_k = |Y_k|² / Σ_l |Y_l|² (equal shares
    where every output is silent), and summed: R[j, k] = Σ |S_j|² w_k / Σ |S_j|².
    true_stems, outputs: lists of (N, C) arrays (the outputs padded/truncated to the length of
    the true stems). Rows sum to 1; a silent true stem gives a row of NaN."""
    n = len(true_stems[0])
    num, den = _routing_sums(true_stems, _fit_outputs(outputs, n), nfft, hop)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den[:, None] > 0, num / np.where(den > 0, den, 1)[:, None], np.nan)


def routing_frames(true_stems, outputs, rate=44100, nfft=2048, hop=512):
    """The routing sums per 1 s frame, so that shares can be bootstrapped over frames:
    num (F, J, K) and den (F, J); the last frame takes the trailing partial second."""
    n = len(true_stems[0])
    outputs = _fit_outputs(outputs, n)
    n_sec = max(1, n // rate)
    num = np.zeros((n_sec, len(true_stems), len(outputs)))
    den = np.zeros((n_sec, len(true_stems)))
    for s in range(n_sec):
        a, b = s * rate, (s + 1) * rate if s + 1 < n_sec else n
        num[s], den[s] = _routing_sums([t[a:b] for t in true_stems], [o[a:b] for o in outputs],
                                       nfft, hop)
    return num, den
