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

// In a sorted array of n values that contains `leaving`, replace it by `entering` and keep the
// array sorted: a binary search and a shift, O(n) worst case, no allocation.
void replace_sorted(float* sorted, size_t n, float leaving, float entering) {
    auto i = static_cast<size_t>(std::lower_bound(sorted, sorted + n, leaving) - sorted);
    assert(i < n && sorted[i] == leaving && "sorted window out of step with its ring");
    if (i == n) return;
    while (i + 1 < n && sorted[i + 1] < entering) {
        sorted[i] = sorted[i + 1];
        ++i;
    }
    while (i > 0 && sorted[i - 1] > entering) {
        sorted[i] = sorted[i - 1];
        --i;
    }
    sorted[i] = entering;
}

// x^p for the exponents the tuning uses, without calling pow() per bin in the common cases.
inline float power(float x, float p) {
    if (p == 2.0f) return x * x;
    if (p == 4.0f) return (x * x) * (x * x);
    if (p == 1.0f) return x;
    return std::pow(x, p);
}

// Second-order smooth step: 1 below corner, 0 far above (a Butterworth-like magnitude squared).
double low_shelf(double hz, double corner) {
    return 1.0 / (1.0 + std::pow(hz / corner, 4.0));
}
}  // namespace

DspMaskEstimator::DspMaskEstimator(const StftFormat& format, const DspTuning& tuning)
    : format_(format), tuning_(tuning) {
    const double hop_s = static_cast<double>(format.hop) / format.sample_rate;
    const double bin_hz = format.sample_rate / static_cast<double>(format.fft_size);
    // ~110 ms of past frames: long enough to hold a sustained note against a hit, short
    // enough to follow chord changes. ~400 Hz across for the percussive median.
    time_taps_ = odd_taps(tuning.harmonic_seconds / hop_s);
    freq_taps_ = odd_taps(tuning.percussive_hz / bin_hz);
    const size_t bins = format.bins();
    history_.assign(time_taps_ * bins, 0.0f);
    sorted_history_.assign(time_taps_ * bins, 0.0f);
    magnitude_.assign(bins, 0.0f);
    padded_.assign(bins + freq_taps_ - 1, 0.0f);
    window_.assign(freq_taps_, 0.0f);
    low_prior_.resize(bins);
    voice_prior_.resize(bins);
    for (size_t k = 0; k < bins; ++k) {
        const double hz = format.bin_hz(k);
        low_prior_[k] = static_cast<float>(low_shelf(hz, tuning.bass_corner_hz));
        voice_prior_[k] = static_cast<float>((1.0 - low_shelf(hz, tuning.voice_low_hz)) *
                                             low_shelf(hz, tuning.voice_high_hz));
    }
    if (tuning.centre_seconds > 0.0) {
        centre_keep_ = static_cast<float>(std::exp(-hop_s / tuning.centre_seconds));
        power_avg_.assign(bins, 0.0f);
        cross_avg_.assign(bins, 0.0f);
    }
    if (tuning.vocal_hold_seconds > 0.0) {
        hold_keep_ = static_cast<float>(std::exp(-hop_s / tuning.vocal_hold_seconds));
        vocal_hold_.assign(bins, 0.0f);
    }
}

void DspMaskEstimator::reset() {
    std::fill(history_.begin(), history_.end(), 0.0f);
    std::fill(sorted_history_.begin(), sorted_history_.end(), 0.0f);
    history_pos_ = 0;
    std::fill(power_avg_.begin(), power_avg_.end(), 0.0f);
    std::fill(cross_avg_.begin(), cross_avg_.end(), 0.0f);
    std::fill(vocal_hold_.begin(), vocal_hold_.end(), 0.0f);
}

void DspMaskEstimator::estimate(const std::complex<float>* left, const std::complex<float>* right,
                                float* masks) {
    const size_t bins = format_.bins();
    const size_t taps = time_taps_;
    float* hist = history_.data() + history_pos_ * bins;
    for (size_t k = 0; k < bins; ++k) {
        const float m = 0.5f * (std::abs(left[k]) + std::abs(right[k]));
        magnitude_[k] = m;
        replace_sorted(sorted_history_.data() + k * taps, taps, hist[k], m);
        hist[k] = m;
    }
    history_pos_ = (history_pos_ + 1) % taps;

    // Mirror the spectrum at DC and Nyquist so every bin sees a full frequency window.
    const size_t half = freq_taps_ / 2;
    std::copy(magnitude_.begin(), magnitude_.end(), padded_.begin() + half);
    for (size_t j = 1; j <= half; ++j) {
        padded_[half - j] = magnitude_[std::min(j, bins - 1)];
        padded_[half + bins - 1 + j] = magnitude_[bins - 1 - std::min(j, bins - 1)];
    }
    std::copy(padded_.begin(), padded_.begin() + freq_taps_, window_.begin());
    std::sort(window_.begin(), window_.end());

    constexpr float kTiny = 1e-20f;
    const float margin_power = power(tuning_.percussive_margin, tuning_.hp_power);
    const float vocal_margin_power = power(tuning_.vocal_margin, tuning_.hp_power);
    for (size_t k = 0; k < bins; ++k) {
        if (k > 0)
            replace_sorted(window_.data(), freq_taps_, padded_[k - 1], padded_[k - 1 + freq_taps_]);
        const float harmonic = sorted_history_[k * taps + taps / 2];
        const float percussive = window_[half];

        const float h2 = power(harmonic, tuning_.hp_power);
        const float p2 = power(percussive, tuning_.hp_power);
        const float denom = h2 + p2;
        const float h_share = denom > kTiny ? h2 / denom : 1.0f;
        // With a margin, drums keep only clearly percussive bins; the rest stays harmonic.
        const float hm2 = margin_power * h2;
        const float p_share = tuning_.percussive_margin == 1.0f
                                  ? 1.0f - h_share
                                  : (hm2 + p2 > kTiny ? p2 / (hm2 + p2) : 0.0f);
        const float harm = tuning_.percussive_margin == 1.0f ? h_share : 1.0f - p_share;

        // Coherent, equal-level channels → 1 (centre); uncorrelated → 0; out of phase → 0.
        float lr = std::norm(left[k]) + std::norm(right[k]);
        float sum = std::norm(left[k] + right[k]);
        if (!power_avg_.empty()) {
            // |L+R|² = |L|² + |R|² + 2·Re(L·R*): averaging its parts over a few frames makes
            // the cue a coherence, which a reverberant or widened tail lowers only gradually.
            const float cross = sum - lr;
            power_avg_[k] = centre_keep_ * power_avg_[k] + (1.0f - centre_keep_) * lr;
            cross_avg_[k] = centre_keep_ * cross_avg_[k] + (1.0f - centre_keep_) * cross;
            lr = power_avg_[k];
            sum = lr + cross_avg_[k];
        }
        const float coherence = lr > kTiny ? sum / (2.0f * lr) : 1.0f;  // in [0, 1]
        const float centre = std::clamp(2.0f * coherence - 1.0f, 0.0f, 1.0f);
        const float centre_weight = power(centre, tuning_.centre_power);

        const float low = low_prior_[k];
        float voiced = harm;
        if (tuning_.vocal_margin != 1.0f) {
            const float vm2 = vocal_margin_power * p2;
            voiced = h2 + vm2 > kTiny ? h2 / (h2 + vm2) : 0.0f;
        }
        float vocal = voiced * (1.0f - low) * voice_prior_[k] * centre_weight;
        if (!vocal_hold_.empty() || tuning_.vocal_threshold > 0.0f) {
            float evidence = voice_prior_[k] * centre_weight;
            if (!vocal_hold_.empty()) {
                evidence = std::max(evidence, hold_keep_ * vocal_hold_[k]);
                vocal_hold_[k] = evidence;
            }
            if (tuning_.vocal_threshold > 0.0f) {
                const float t = tuning_.vocal_threshold;
                evidence = evidence > t ? (evidence - t) / (1.0f - t) : 0.0f;
            }
            vocal = voiced * (1.0f - low) * evidence;
        }
        const float bass = harm * low;
        masks[static_cast<size_t>(Stem::kVocals) * bins + k] = vocal;
        masks[static_cast<size_t>(Stem::kDrums) * bins + k] = p_share;
        masks[static_cast<size_t>(Stem::kBass) * bins + k] = bass;
        // The residual keeps Σ masks == 1 exactly in float.
        masks[static_cast<size_t>(Stem::kOther) * bins + k] =
            std::max(0.0f, 1.0f - vocal - p_share - bass);
    }
}

}  // namespace stemsphere
