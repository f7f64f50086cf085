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

Live: output frame t = mask for frame t (no look-ahead). Studio: the same causal body, but the
output at frame t is the mask for frame t - lookahead, so the model sees `lookahead` future frames.
C++ twin: engine/neural/neural_mask_estimator.{h,cpp}; file format: docs/models.md.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

STEMS = ("vocals", "drums", "bass", "other")
FMAX_HZ = 22050.0
POWER_FLOOR = 1e-10


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


def features(left, right, geometry, n_fft, bands):
    """left/right: complex (..., frames, bins) unnormalised spectra -> (..., frames, 2B)."""
    window_energy = n_fft / 2.0  # sum of the squared sqrt-Hann window
    norm = band_sum(torch.ones_like(geometry[1]), geometry, bands).clamp_min(1e-12) * window_energy
    mid = 0.5 * (left + right)
    side = 0.5 * (left - right)
    pm = band_sum(mid.real ** 2 + mid.imag ** 2, geometry, bands) / norm
    ps = band_sum(side.real ** 2 + side.imag ** 2, geometry, bands) / norm
    return torch.cat([torch.log(pm + POWER_FLOOR), torch.log(ps + POWER_FLOOR)], dim=-1)


class MaskNet(nn.Module):
    def __init__(self, bands=64, channels=128, dilations=(1, 2, 4, 8, 16, 32), kernel=3,
                 lookahead=0):
        super().__init__()
        self.bands, self.channels, self.kernel = bands, channels, kernel
        self.dilations = list(dilations)
        self.lookahead = lookahead
        self.register_buffer("feat_mean", torch.zeros(2 * bands))
        self.register_buffer("feat_std", torch.ones(2 * bands))
        self.inp = nn.Linear(2 * bands, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d)
                                   for d in self.dilations)
        self.mixes = nn.ModuleList(nn.Linear(channels, channels) for _ in self.dilations)
        self.out = nn.Linear(channels, 4 * bands)
        assert lookahead <= self.receptive_field() - 1

    def receptive_field(self):
        return 1 + (self.kernel - 1) * sum(self.dilations)

    def forward(self, feats):
        """feats (batch, frames, 2B) -> band masks (batch, frames, 4, B). Zero history before
        frame 0 in every layer, exactly as the C++ estimator starts."""
        h = F.relu(self.inp((feats - self.feat_mean) / self.feat_std))
        for conv, mix, d in zip(self.convs, self.mixes, self.dilations):
            x = F.pad(h.transpose(1, 2), ((self.kernel - 1) * d, 0))
            y = F.relu(conv(x)).transpose(1, 2)
            h = h + F.relu(mix(y))
        logits = self.out(h).view(h.shape[0], h.shape[1], 4, self.bands)
        return torch.softmax(logits, dim=2)


def bin_masks(band_masks, geometry):
    """(..., 4, B) band masks -> (..., 4, bins) by the triangular interpolation."""
    lower, frac = geometry
    return band_masks[..., lower] * (1 - frac) + band_masks[..., lower + 1] * frac


LIVE = dict(bands=64, channels=64, dilations=(1, 2, 4, 8, 16, 32), kernel=3, lookahead=0)
STUDIO = dict(bands=64, channels=64, dilations=(1, 2, 4, 8, 16, 32, 64), kernel=3, lookahead=64)
VARIANTS = {"live": LIVE, "studio": STUDIO}
