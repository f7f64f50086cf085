"""Band-split mask network shared by training, export and the parity fixture.

The network sees one STFT frame at a time (N = 1024, hop 256 at 44.1/48 kHz; N scales with the
rate so a frame always spans ~23 ms and the bin spacing is always ~43 Hz). Everything the model
sees or outputs is defined in Hz, so one set of weights serves every N:

  bands   B triangular bands, centres equally spaced on the mel scale from 0 Hz to 22050 Hz,
          forming a partition of unity over bins (bins above 22050 Hz belong to the last band).
  input   per band: log mean power of mid (L+R)/2 and side (L-R)/2, normalised by the window
          energy so the value does not depend on N; then a fixed affine normalisation.
  body    1x1 input layer, residual stack of causal dilated convolutions over frames (kernel K),
          each followed by a 1x1 layer; ReLU everywhere.
  output  4 x B logits -> softmax over the 4 stems per band -> bin masks by the same triangular
          weights. A convex combination of softmaxes sums to 1: the stems sum to the mixture.

Guided variants (file format 2) also see the engine's DSP masks: their band averages are 4B more
inputs, the 4 x B outputs are logit corrections, and the bin mask is
  m_s(k) = softmax_s( log(dsp_s(k) + GUIDE_FLOOR) + interp(logits_s)(k) ),
so an untrained (zero output layer) guided network reproduces the DSP back end, keeps its
per-bin detail (harmonic/percussive, centre coherence) and learns where to overrule it.

Live: output frame t = mask for frame t (no look-ahead). Studio: the same causal body, but the
output at frame t is the mask for frame t - lookahead, so the model sees `lookahead` future frames.
C++ twin: engine/neural/neural_mask_estimator.{h,cpp}; file format: docs/models.md.
"""
import ctypes
import math
import os
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn as nn
import torch.nn.functional as F

STEMS = ("vocals", "drums", "bass", "other")
FMAX_HZ = 22050.0
POWER_FLOOR = 1e-10
DEFAULT_DSP_BRIDGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                  "models", "libstemsphere_dsp_bridge.so")
GUIDE_FLOOR = 0.02  # lets a guided network restore a stem the DSP masks set to 0 (logit ~ +4)


def mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def band_centres_hz(bands):
    top = mel(FMAX_HZ)
    return [700.0 * (10 ** (top * i / (bands - 1) / 2595.0) - 1.0) for i in range(bands)]


def band_weights(n_fft, rate, bands):
    """(bins, bands) triangular partition of unity; row k is bin k's share of each band."""
    centres = band_centres_hz(bands)
    bins = n_fft // 2 + 1
    w = torch.zeros(bins, bands, dtype=torch.float64)
    for k in range(bins):
        f = min(k * rate / n_fft, FMAX_HZ)
        j = 0
        while j + 2 < bands and centres[j + 1] <= f:
            j += 1
        frac = (f - centres[j]) / (centres[j + 1] - centres[j])
        frac = min(max(frac, 0.0), 1.0)
        w[k, j] = 1.0 - frac
        w[k, j + 1] = frac
    return w.float()


def analysis_window(n_fft):
    """sqrt of the periodic Hann window, as the engine's STFT uses."""
    return torch.sqrt(torch.hann_window(n_fft, periodic=True, dtype=torch.float64)).float()


def band_geometry(weights):
    """Sparse form of band_weights: per bin, its lower band and the upper band's share."""
    lower = torch.argmax((weights > 0).int(), dim=1).clamp_max(weights.shape[1] - 2)
    frac = weights.gather(1, (lower + 1).unsqueeze(1)).squeeze(1)
    return lower, frac


def band_sum(power, geometry, bands):
    """Σ_k weight(k, b) · power[..., k] with the two-band sparse weights."""
    lower, frac = geometry
    out = torch.zeros(*power.shape[:-1], bands, dtype=power.dtype, device=power.device)
    out.index_add_(power.dim() - 1, lower, power * (1 - frac))
    out.index_add_(power.dim() - 1, lower + 1, power * frac)
    return out


def band_weight_sums(geometry, bands):
    """(B,) Σ_k weight(k, b): what a band average divides by."""
    return band_sum(torch.ones_like(geometry[1]), geometry, bands).clamp_min(1e-12)


def features(left, right, geometry, n_fft, bands):
    """left/right: complex (..., frames, bins) unnormalised spectra -> (..., frames, 2B)."""
    window_energy = n_fft / 2.0  # sum of the squared sqrt-Hann window
    norm = band_weight_sums(geometry, bands) * window_energy
    mid = 0.5 * (left + right)
    side = 0.5 * (left - right)
    pm = band_sum(mid.real ** 2 + mid.imag ** 2, geometry, bands) / norm
    ps = band_sum(side.real ** 2 + side.imag ** 2, geometry, bands) / norm
    return torch.cat([torch.log(pm + POWER_FLOOR), torch.log(ps + POWER_FLOOR)], dim=-1)


def dsp_band_features(dsp_masks, geometry, bands):
    """(..., 4, bins) DSP bin masks -> (..., 4B) weighted band means (each in [0, 1])."""
    return (band_sum(dsp_masks, geometry, bands) / band_weight_sums(geometry, bands)).flatten(-2)


class MaskNet(nn.Module):
    def __init__(self, bands=64, channels=128, dilations=(1, 2, 4, 8, 16, 32), kernel=3,
                 lookahead=0, guided=False, bound=0.0):
        super().__init__()
        self.bands, self.channels, self.kernel = bands, channels, kernel
        self.dilations = list(dilations)
        self.lookahead = lookahead
        self.guided = guided
        # Guided only: corrections are bound * tanh(raw / bound) when bound > 0, so a network
        # meeting music unlike its training data can move the DSP masks only so far. Not used by
        # the shipped weights: with this unnormalised body the raw corrections ran off to
        # hundreds in training, the tanh saturated and learning stopped (train.py
        # --correction-l2 keeps corrections small instead).
        self.bound = float(bound)
        inputs = (6 if guided else 2) * bands
        self.register_buffer("feat_mean", torch.zeros(inputs))
        self.register_buffer("feat_std", torch.ones(inputs))
        self.inp = nn.Linear(inputs, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d)
                                   for d in self.dilations)
        self.mixes = nn.ModuleList(nn.Linear(channels, channels) for _ in self.dilations)
        self.out = nn.Linear(channels, 4 * bands)
        if guided:  # start as the DSP back end: zero corrections
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        assert lookahead <= self.receptive_field() - 1

    def receptive_field(self):
        return 1 + (self.kernel - 1) * sum(self.dilations)

    def forward(self, feats):
        """feats (batch, frames, 2B | 6B) -> band masks (batch, frames, 4, B), or for a guided
        network band logit corrections. Zero history before frame 0 in every layer, exactly as
        the C++ estimator starts."""
        h = F.relu(self.inp((feats - self.feat_mean) / self.feat_std))
        for conv, mix, d in zip(self.convs, self.mixes, self.dilations):
            x = F.pad(h.transpose(1, 2), ((self.kernel - 1) * d, 0))
            y = F.relu(conv(x)).transpose(1, 2)
            h = h + F.relu(mix(y))
        logits = self.out(h).view(h.shape[0], h.shape[1], 4, self.bands)
        if not self.guided:
            return torch.softmax(logits, dim=2)
        return self.bound * torch.tanh(logits / self.bound) if self.bound > 0 else logits


def bin_masks(band_masks, geometry):
    """(..., 4, B) band masks -> (..., 4, bins) by the triangular interpolation."""
    lower, frac = geometry
    return band_masks[..., lower] * (1 - frac) + band_masks[..., lower + 1] * frac


def guided_masks(band_logits, dsp_masks, geometry):
    """Guided output: (..., 4, B) logit corrections and the (..., 4, bins) DSP masks of the same
    frame -> (..., 4, bins) masks, a softmax over stems per bin (sums to 1)."""
    return torch.softmax(torch.log(dsp_masks + GUIDE_FLOOR) + bin_masks(band_logits, geometry),
                         dim=-2)


def network_inputs(model, left, right, geometry, n_fft, dsp_masks=None):
    """Per-frame inputs of `model`: mid/side log band powers, plus the DSP band means if guided."""
    feats = features(left, right, geometry, n_fft, model.bands)
    if model.guided:
        feats = torch.cat([feats, dsp_band_features(dsp_masks, geometry, model.bands)], dim=-1)
    return feats


def output_masks(model, out, geometry, dsp_masks=None):
    """Network output for frames t -> bin masks for frames t - lookahead (the first `lookahead`
    output frames, which have no frame of their own, are dropped)."""
    d = model.lookahead
    out = out[:, d:]
    if not model.guided:
        return bin_masks(out, geometry)
    return guided_masks(out, dsp_masks[:, :dsp_masks.shape[1] - d], geometry)


LIVE = dict(bands=64, channels=64, dilations=(1, 2, 4, 8, 16, 32), kernel=3, lookahead=0)
STUDIO = dict(bands=64, channels=64, dilations=(1, 2, 4, 8, 16, 32, 64), kernel=3, lookahead=64)
# The offline Render mode's network: centred context, 1.48 s each side. Train with --frames well
# above the look-ahead (e.g. 640).
RENDER = dict(bands=64, channels=64, dilations=(1, 2, 4, 8, 16, 32, 64, 128), kernel=3,
              lookahead=255)
VARIANTS = {"live": LIVE, "studio": STUDIO,
            "live-guided": dict(LIVE, guided=True), "studio-guided": dict(STUDIO, guided=True),
            "render-guided": dict(RENDER, guided=True)}


class DspBridge:
    """The engine's DspMaskEstimator over whole spectrogram sequences (models/dsp_bridge.cpp)."""

    def __init__(self, path, workers=1):
        if not os.path.exists(path):
            raise SystemExit(f"{path}: no DSP bridge library (cmake --build build "
                             "--target stemsphere_dsp_bridge)")
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None  # ctypes drops the GIL
        self.lib = ctypes.CDLL(path)
        f = self.lib.stemsphere_dsp_masks
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_double, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def masks(self, mix_spec, n_fft, hop, rate):
        """mix_spec complex (batch, 2, T, F) -> float32 (batch, T, 4, F)."""
        spec = mix_spec.detach().to("cpu", torch.complex64).contiguous()
        b, _, t, f = spec.shape
        out = torch.empty(b, t, 4, f, dtype=torch.float32)

        def one(i):
            left, right = spec[i, 0].contiguous(), spec[i, 1].contiguous()
            return self.lib.stemsphere_dsp_masks(rate, n_fft, hop, t, left.data_ptr(),
                                                 right.data_ptr(), out[i].data_ptr())
        codes = list(self.pool.map(one, range(b))) if self.pool else [one(i) for i in range(b)]
        if any(codes):
            raise RuntimeError("stemsphere_dsp_masks failed")
        return out.to(mix_spec.device)
