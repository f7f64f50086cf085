#include "engine/neural/neural_mask_estimator.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace stemsphere {

namespace {

double mel(double hz) {
    return 2595.0 * std::log10(1.0 + hz / 700.0);
}

// Centres equally spaced in mel from 0 Hz to fmax (stemsphere_model.band_centres_hz).
std::vector<double> band_centres(size_t bands, double fmax) {
    std::vector<double> c(bands);
    const double top = mel(fmax);
    for (size_t i = 0; i < bands; ++i) {
        const double m = top * static_cast<double>(i) / static_cast<double>(bands - 1);
        c[i] = 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
    }
    return c;
}

// Transposes a row-major out × in matrix into in × out.
std::vector<float> transpose(const std::vector<float>& w, size_t out, size_t in) {
    assert(w.size() == out * in);
    std::vector<float> t(w.size());
    for (size_t o = 0; o < out; ++o) {
        for (size_t i = 0; i < in; ++i) t[i * out + o] = w[o * in + i];
    }
    return t;
}

inline float relu(float x) {
    return x > 0.0f ? x : 0.0f;
}

}  // namespace

NeuralMaskEstimator::NeuralMaskEstimator(std::shared_ptr<const NeuralModel> model,
                                         const StftFormat& format)
    : model_(std::move(model)),
      format_(format),
      bins_(format.bins()),
      bands_(model_->bands),
      channels_(model_->channels) {
    const NeuralModel& m = *model_;
    assert(bands_ >= 2 && channels_ >= 1);

    // Band geometry, as stemsphere_model.band_weights (computed in double, stored in float).
    const std::vector<double> centres = band_centres(bands_, m.fmax_hz);
    bin_band_.resize(bins_);
    bin_frac_.resize(bins_);
    std::vector<double> weight_sum(bands_, 0.0);
    for (size_t k = 0; k < bins_; ++k) {
        const double f = std::min(format.bin_hz(k), static_cast<double>(m.fmax_hz));
        size_t j = 0;
        while (j + 2 < bands_ && centres[j + 1] <= f) ++j;
        const double frac = std::clamp((f - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0);
        bin_band_[k] = j;
        bin_frac_[k] = static_cast<float>(frac);
        weight_sum[j] += static_cast<double>(1.0f - static_cast<float>(frac));
        weight_sum[j + 1] += static_cast<double>(static_cast<float>(frac));
    }
    const double window_energy = static_cast<double>(format.fft_size) / 2.0;
    band_norm_.resize(bands_);
    band_weight_.resize(bands_);
    for (size_t b = 0; b < bands_; ++b) {
        band_norm_[b] = static_cast<float>(std::max(weight_sum[b], 1e-12) * window_energy);
        band_weight_[b] = static_cast<float>(std::max(weight_sum[b], 1e-12));
    }
    if (m.guided) {
        dsp_ = std::make_unique<DspMaskEstimator>(format, DspTuning::network_guide());
        dsp_ring_.assign((m.lookahead + 1) * kStemCount * bins_,
                         1.0f / static_cast<float>(kStemCount));
        finite_left_.resize(bins_);
        finite_right_.resize(bins_);
    }

    const size_t in_features = m.input_features();
    const size_t c = channels_;
    in_w_t_ = transpose(m.in_weight, c, in_features);
    out_w_t_ = transpose(m.out_weight, 4 * bands_, c);
    const size_t k = m.kernel;
    conv_w_t_.resize(m.layers());
    mix_w_t_.resize(m.layers());
    history_.resize(m.layers());
    history_pos_.assign(m.layers(), 0);
    for (size_t l = 0; l < m.layers(); ++l) {
        // PyTorch conv weight (out, in, tap) -> (tap, in, out).
        std::vector<float>& t = conv_w_t_[l];
        t.resize(k * c * c);
        for (size_t o = 0; o < c; ++o) {
            for (size_t i = 0; i < c; ++i) {
                for (size_t tap = 0; tap < k; ++tap) {
                    t[(tap * c + i) * c + o] = m.conv_weight[l][(o * c + i) * k + tap];
                }
            }
        }
        mix_w_t_[l] = transpose(m.mix_weight[l], c, c);
        history_[l].assign(((k - 1) * m.dilations[l] + 1) * c, 0.0f);
    }
    band_mid_.resize(bands_);
    band_side_.resize(bands_);
    features_.resize(in_features);
    hidden_.resize(c);
    conv_out_.resize(c);
    mix_out_.resize(c);
    logits_.resize(4 * bands_);
}

void NeuralMaskEstimator::reset() {
    for (auto& h : history_) std::fill(h.begin(), h.end(), 0.0f);
    std::fill(history_pos_.begin(), history_pos_.end(), size_t{0});
    if (dsp_) {
        dsp_->reset();
        // Frames before the first have no DSP masks: an even split (PyTorch pads the same way).
        std::fill(dsp_ring_.begin(), dsp_ring_.end(), 1.0f / static_cast<float>(kStemCount));
        dsp_pos_ = 0;
    }
}

void NeuralMaskEstimator::guided_inputs(const std::complex<float>* left,
                                        const std::complex<float>* right) {
    const NeuralModel& m = *model_;
    float* newest = dsp_ring_.data() + dsp_pos_ * kStemCount * bins_;
    const auto finite = [](std::complex<float> v) {
        return std::isfinite(v.real()) && std::isfinite(v.imag()) ? v : std::complex<float>{};
    };
    for (size_t k = 0; k < bins_; ++k) {
        finite_left_[k] = finite(left[k]);
        finite_right_[k] = finite(right[k]);
    }
    dsp_->estimate(finite_left_.data(), finite_right_.data(), newest);
    for (size_t s = 0; s < kStemCount; ++s) {
        float* band = features_.data() + (2 + s) * bands_;
        std::fill(band, band + bands_, 0.0f);
        const float* mask = newest + s * bins_;
        for (size_t k = 0; k < bins_; ++k) {
            const size_t j = bin_band_[k];
            const float hi = bin_frac_[k];
            band[j] += (1.0f - hi) * mask[k];
            band[j + 1] += hi * mask[k];
        }
        for (size_t b = 0; b < bands_; ++b) {
            const size_t f = (2 + s) * bands_ + b;
            features_[f] = (band[b] / band_weight_[b] - m.feat_mean[f]) / m.feat_std[f];
        }
    }
}

void NeuralMaskEstimator::guided_masks(float* masks) {
    // The ring holds lookahead + 1 frames; the slot after the newest is the oldest, the frame
    // these outputs belong to.
    const size_t slots = dsp_ring_.size() / (kStemCount * bins_);
    dsp_pos_ = (dsp_pos_ + 1) % slots;
    const float* dsp = dsp_ring_.data() + dsp_pos_ * kStemCount * bins_;
    for (size_t k = 0; k < bins_; ++k) {
        const size_t j = bin_band_[k];
        const float hi = bin_frac_[k];
        float z[kStemCount];
        float peak = -INFINITY;
        for (size_t s = 0; s < kStemCount; ++s) {
            const float* c = logits_.data() + s * bands_;
            z[s] = std::log(dsp[s * bins_ + k] + kGuideFloor) + (1.0f - hi) * c[j] + hi * c[j + 1];
            peak = std::max(peak, z[s]);
        }
        float sum = 0.0f;
        for (size_t s = 0; s < kStemCount; ++s) {
            z[s] = std::exp(z[s] - peak);
            sum += z[s];
        }
        const float inv = 1.0f / sum;
        for (size_t s = 0; s < kStemCount; ++s) masks[s * bins_ + k] = z[s] * inv;
    }
}

void NeuralMaskEstimator::matvec_add(const float* w_t, size_t in, size_t out, const float* x,
                                     float* y) {
    for (size_t i = 0; i < in; ++i) {
        const float xi = x[i];
        const float* row = w_t + i * out;
        for (size_t o = 0; o < out; ++o) y[o] += row[o] * xi;
    }
}

void NeuralMaskEstimator::estimate(const std::complex<float>* left,
                                   const std::complex<float>* right, float* masks) {
    const NeuralModel& m = *model_;
    const size_t c = channels_;

    // Mid/side band powers.
    std::fill(band_mid_.begin(), band_mid_.end(), 0.0f);
    std::fill(band_side_.begin(), band_side_.end(), 0.0f);
    for (size_t k = 0; k < bins_; ++k) {
        const std::complex<float> mid = 0.5f * (left[k] + right[k]);
        const std::complex<float> side = 0.5f * (left[k] - right[k]);
        const float pm = mid.real() * mid.real() + mid.imag() * mid.imag();
        const float ps = side.real() * side.real() + side.imag() * side.imag();
        const size_t j = bin_band_[k];
        const float hi = bin_frac_[k];
        const float lo = 1.0f - hi;
        band_mid_[j] += lo * pm;
        band_mid_[j + 1] += hi * pm;
        band_side_[j] += lo * ps;
        band_side_[j + 1] += hi * ps;
    }
    for (size_t b = 0; b < bands_; ++b) {
        float fm = std::log(band_mid_[b] / band_norm_[b] + m.power_floor);
        float fs = std::log(band_side_[b] / band_norm_[b] + m.power_floor);
        // Non-finite input (NaN/Inf spectra) must not poison the convolution history.
        if (!std::isfinite(fm)) fm = 0.0f;
        if (!std::isfinite(fs)) fs = 0.0f;
        features_[b] = (fm - m.feat_mean[b]) / m.feat_std[b];
        features_[bands_ + b] = (fs - m.feat_mean[bands_ + b]) / m.feat_std[bands_ + b];
    }
    if (dsp_) guided_inputs(left, right);

    // Input layer.
    std::copy(m.in_bias.begin(), m.in_bias.end(), hidden_.begin());
    matvec_add(in_w_t_.data(), features_.size(), c, features_.data(), hidden_.data());
    for (float& h : hidden_) h = relu(h);

    // Residual stack of causal dilated convolutions.
    for (size_t l = 0; l < m.layers(); ++l) {
        std::vector<float>& ring = history_[l];
        const size_t slots = ring.size() / c;
        size_t& pos = history_pos_[l];
        std::copy(hidden_.begin(), hidden_.end(), ring.begin() + static_cast<long>(pos * c));
        const size_t d = m.dilations[l];
        std::copy(m.conv_bias[l].begin(), m.conv_bias[l].end(), conv_out_.begin());
        for (size_t tap = 0; tap < m.kernel; ++tap) {
            // Tap `tap` reads the input (K−1−tap)·d frames ago.
            const size_t back = (m.kernel - 1 - tap) * d;
            const size_t slot = (pos + slots - back) % slots;
            matvec_add(conv_w_t_[l].data() + tap * c * c, c, c, ring.data() + slot * c,
                       conv_out_.data());
        }
        for (float& y : conv_out_) y = relu(y);
        std::copy(m.mix_bias[l].begin(), m.mix_bias[l].end(), mix_out_.begin());
        matvec_add(mix_w_t_[l].data(), c, c, conv_out_.data(), mix_out_.data());
        for (size_t o = 0; o < c; ++o) hidden_[o] += relu(mix_out_[o]);
        pos = (pos + 1) % slots;
    }

    std::copy(m.out_bias.begin(), m.out_bias.end(), logits_.begin());
    matvec_add(out_w_t_.data(), c, 4 * bands_, hidden_.data(), logits_.data());
    if (dsp_) {
        const float bound = m.correction_bound;
        if (bound > 0.0f) {
            for (float& v : logits_) v = bound * std::tanh(v / bound);
        }
        guided_masks(masks);
        return;
    }

    // Logits -> per-band softmax over the stems (stored back into logits_).
    for (size_t b = 0; b < bands_; ++b) {
        float peak = logits_[b];
        for (size_t s = 1; s < kStemCount; ++s) peak = std::max(peak, logits_[s * bands_ + b]);
        float sum = 0.0f;
        for (size_t s = 0; s < kStemCount; ++s) {
            float& v = logits_[s * bands_ + b];
            v = std::exp(v - peak);
            sum += v;
        }
        const float inv = 1.0f / sum;
        for (size_t s = 0; s < kStemCount; ++s) logits_[s * bands_ + b] *= inv;
    }

    // Band masks -> bin masks.
    for (size_t s = 0; s < kStemCount; ++s) {
        const float* band = logits_.data() + s * bands_;
        float* out = masks + s * bins_;
        for (size_t k = 0; k < bins_; ++k) {
            const size_t j = bin_band_[k];
            const float hi = bin_frac_[k];
            out[k] = (1.0f - hi) * band[j] + hi * band[j + 1];
        }
    }
}

std::unique_ptr<MaskEstimator> make_neural_estimator(const std::string& path,
                                                     const StftFormat& format, std::string* error) {
    auto model = NeuralModel::load(path, error);
    if (!model) return nullptr;
    return std::make_unique<NeuralMaskEstimator>(std::move(model), format);
}

}  // namespace stemsphere
