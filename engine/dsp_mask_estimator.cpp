#include "engine/dsp_mask_estimator.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace stemsphere {

namespace {
// Odd tap count closest to `seconds` worth of frames/bins, at least 3.
size_t odd_taps(double count) {
    auto n = static_cast<size_t>(std::lround(count));
    n = std::max<size_t>(n, 3);
    return n | 1u;
}

float median_of(float* values, size_t n) {
    float* mid = values + n / 2;
    std::nth_element(values, mid, values + n);
    return *mid;
}

// Second-order smooth step: 1 below corner, 0 far above (a Butterworth-like magnitude squared).
double low_shelf(double hz, double corner) {
    return 1.0 / (1.0 + std::pow(hz / corner, 4.0));
}
}  // namespace

DspMaskEstimator::DspMaskEstimator(const StftFormat& format) : format_(format) {
    const double hop_s = static_cast<double>(format.hop) / format.sample_rate;
    const double bin_hz = format.sample_rate / static_cast<double>(format.fft_size);
    // ~110 ms of past frames: long enough to hold a sustained note against a hit, short
    // enough to follow chord changes. ~400 Hz across for the percussive median.
    time_taps_ = odd_taps(0.11 / hop_s);
    freq_taps_ = odd_taps(400.0 / bin_hz);
    const size_t bins = format.bins();
    history_.assign(time_taps_ * bins, 0.0f);
    magnitude_.assign(bins, 0.0f);
    low_prior_.resize(bins);
    voice_prior_.resize(bins);
    scratch_.resize(std::max(time_taps_, freq_taps_));
    for (size_t k = 0; k < bins; ++k) {
        const double hz = format.bin_hz(k);
        low_prior_[k] = static_cast<float>(low_shelf(hz, 180.0));
        voice_prior_[k] = static_cast<float>((1.0 - low_shelf(hz, 160.0)) * low_shelf(hz, 8000.0));
    }
}

void DspMaskEstimator::reset() {
    std::fill(history_.begin(), history_.end(), 0.0f);
    history_pos_ = 0;
}

void DspMaskEstimator::estimate(const std::complex<float>* left, const std::complex<float>* right,
                                float* masks) {
    const size_t bins = format_.bins();
    float* hist = history_.data() + history_pos_ * bins;
    for (size_t k = 0; k < bins; ++k) {
        const float m = 0.5f * (std::abs(left[k]) + std::abs(right[k]));
        magnitude_[k] = m;
        hist[k] = m;
    }
    history_pos_ = (history_pos_ + 1) % time_taps_;

    const size_t half = freq_taps_ / 2;
    constexpr float kTiny = 1e-20f;
    for (size_t k = 0; k < bins; ++k) {
        for (size_t t = 0; t < time_taps_; ++t) scratch_[t] = history_[t * bins + k];
        const float harmonic = median_of(scratch_.data(), time_taps_);

        // Frequency median; the edges use the available neighbours only.
        const size_t lo = k >= half ? k - half : 0;
        const size_t hi = std::min(bins, k + half + 1);
        for (size_t j = lo; j < hi; ++j) scratch_[j - lo] = magnitude_[j];
        const float percussive = median_of(scratch_.data(), hi - lo);

        const float h2 = harmonic * harmonic;
        const float p2 = percussive * percussive;
        const float denom = h2 + p2;
        const float h_share = denom > kTiny ? h2 / denom : 1.0f;
        const float p_share = 1.0f - h_share;

        // Coherent, equal-level channels → 1 (centre); uncorrelated → 0; out of phase → 0.
        const float lr = std::norm(left[k]) + std::norm(right[k]);
        const float sum = std::norm(left[k] + right[k]);
        const float coherence = lr > kTiny ? sum / (2.0f * lr) : 1.0f;  // in [0, 1]
        const float centre = std::clamp(2.0f * coherence - 1.0f, 0.0f, 1.0f);
        const float centre_weight = centre * centre;

        const float low = low_prior_[k];
        const float vocal = h_share * (1.0f - low) * voice_prior_[k] * centre_weight;
        const float bass = h_share * low;
        masks[static_cast<size_t>(Stem::kVocals) * bins + k] = vocal;
        masks[static_cast<size_t>(Stem::kDrums) * bins + k] = p_share;
        masks[static_cast<size_t>(Stem::kBass) * bins + k] = bass;
        // The residual keeps Σ masks == 1 exactly in float.
        masks[static_cast<size_t>(Stem::kOther) * bins + k] =
            std::max(0.0f, 1.0f - vocal - p_share - bass);
    }
}

}  // namespace stemsphere
