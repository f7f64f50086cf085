#pragma once
// Energy-ratio separation metrics that need no projection: museval BSS Eval v4 SDR (per-second
// SNR with museval's silent-frame rule), the MDX-challenge uSDR, and SI-SDR. Every function takes
// estimates already fitted to the reference length (fit_length) with matching channel counts.
#include <cstddef>
#include <vector>

#include "tools/eval/audio_file.h"

namespace stemsphere::eval {

// Frame layout of museval/mir_eval: nwin = floor((N - W + H) / H) frames [t·H, t·H + W) when
// W < N, otherwise one frame over the whole signal. A trailing partial window is dropped.
struct FrameGrid {
    size_t window = 0;
    size_t hop = 0;
    size_t count = 0;
    size_t begin(size_t t) const { return t * hop; }
};
FrameGrid frame_grid(size_t frames, size_t window, size_t hop);

// museval's _any_source_silent for frame [begin, end): some signal whose channel sum is exactly 0
// at every sample.
bool any_signal_silent(const std::vector<const Audio*>& signals, size_t begin, size_t end);

// museval v4 SDR per frame: result[j][t] = 10·log10(Σ s_j² / Σ (ŝ_j − s_j)²) over frame t and all
// channels; +inf for a perfect frame; NaN for every target in frames where any reference or any
// estimate of the evaluated set is silent (museval's rule, which couples the targets).
std::vector<std::vector<double>> framewise_sdr_v4(const std::vector<const Audio*>& references,
                                                  const std::vector<const Audio*>& estimates,
                                                  size_t window, size_t hop);

// Median of the non-NaN values (numpy nanmedian); NaN when there are none.
double nan_median(std::vector<double> values);

// MDX uSDR over the whole signal: 10·log10((Σ s² + δ) / (Σ (s − ŝ)² + δ)), δ = 1e-7.
double usdr(const Audio& reference, const Audio& estimate);

// SI-SDR (Le Roux et al. 2019) on the stacked multichannel vector after removing each channel's
// mean from both signals: α = ⟨ŝ, s⟩ / ⟨s, s⟩, 10·log10(‖αs‖² / ‖αs − ŝ‖²). Stacking (one α for
// all channels) keeps an inter-channel level error visible; mean removal ignores DC offsets.
// NaN when the reference is silent (α undefined), +inf for a perfect estimate.
double si_sdr(const Audio& reference, const Audio& estimate);

// 10·log10(num / den) with museval's and mir_eval's convention: +inf whenever den == 0.
double safe_db(double num, double den);

}  // namespace stemsphere::eval
