#include "engine/separation_engine.h"

#include <algorithm>
#include <cassert>

namespace stemsphere {

StftFormat stft_format_for_rate(double sample_rate) {
    // The largest power-of-two window that keeps the total latency (one window) under 23.5 ms:
    // 1024 at 44.1/48 kHz, 512 at 22.05-32 kHz, 2048 at 88.2/96 kHz, 4096 at 176.4/192 kHz.
    StftFormat f;
    f.sample_rate = sample_rate;
    f.fft_size = 128;
    while (static_cast<double>(f.fft_size * 2) <= 0.0235 * sample_rate) f.fft_size *= 2;
    f.hop = f.fft_size / 4;
    return f;
}

namespace {
constexpr size_t kSynthesisedStems = 3;  // vocals, drums, bass; other is the residual
}

SeparationEngine::SeparationEngine(const StftFormat& format,
                                   std::unique_ptr<MaskEstimator> estimator)
    : format_(format),
      estimator_(std::move(estimator)),
      lookahead_(estimator_->lookahead_frames()),
      stft_(format.fft_size, format.hop),
      bins_(format.bins()) {
    const size_t history = format_.fft_size + lookahead_ * format_.hop;
    history_[0].assign(history, 0.0f);
    history_[1].assign(history, 0.0f);
    frame_.assign(format_.fft_size, 0.0f);
    spectra_.assign((lookahead_ + 1) * 2 * bins_, {});
    masks_.assign(kStemCount * bins_, 0.0f);
    masked_.assign(bins_, {});
    ola_.assign(kSynthesisedStems * 2 * format_.fft_size, 0.0f);
}

void SeparationEngine::reset() {
    for (auto& h : history_) std::fill(h.begin(), h.end(), 0.0f);
    history_write_ = 0;
    std::fill(spectra_.begin(), spectra_.end(), std::complex<float>{});
    std::fill(ola_.begin(), ola_.end(), 0.0f);
    estimator_->reset();
}

void SeparationEngine::process_hop(const float* in_l, const float* in_r, float* const* out) {
    const size_t n = format_.fft_size;
    const size_t hop = format_.hop;
    const size_t cap = history_[0].size();
    const float* in[2] = {in_l, in_r};

    // The dry sample is read hop_latency() = cap − hop samples behind the one being written,
    // i.e. hop slots ahead of the write position (not yet overwritten in this hop).
    for (size_t ch = 0; ch < 2; ++ch) {
        float* h = history_[ch].data();
        size_t w = history_write_;
        size_t r = (history_write_ + hop) % cap;
        for (size_t i = 0; i < hop; ++i) {
            out[ch][i] = h[r];
            h[w] = in[ch][i];
            if (++w == cap) w = 0;
            if (++r == cap) r = 0;
        }
    }
    history_write_ = (history_write_ + hop) % cap;

    // Analyse the newest fft_size samples of each channel.
    spectra_newest_ = (spectra_newest_ + 1) % (lookahead_ + 1);
    std::complex<float>* newest = spectra_.data() + spectra_newest_ * 2 * bins_;
    for (size_t ch = 0; ch < 2; ++ch) {
        const float* h = history_[ch].data();
        size_t r = (history_write_ + cap - n) % cap;
        for (size_t i = 0; i < n; ++i) {
            frame_[i] = h[r];
            if (++r == cap) r = 0;
        }
        stft_.analyze(frame_.data(), newest + ch * bins_);
    }

    estimator_->estimate(newest, newest + bins_, masks_.data());

    // Masks belong to the frame lookahead_ hops old, which is the next slot of the ring.
    const size_t oldest_slot = (spectra_newest_ + 1) % (lookahead_ + 1);
    const std::complex<float>* target = spectra_.data() + oldest_slot * 2 * bins_;
    for (size_t s = 0; s < kSynthesisedStems; ++s) {
        const float* mask = masks_.data() + s * bins_;
        for (size_t ch = 0; ch < 2; ++ch) {
            const std::complex<float>* x = target + ch * bins_;
            for (size_t k = 0; k < bins_; ++k) masked_[k] = x[k] * mask[k];
            float* ola = ola_.data() + (s * 2 + ch) * n;
            stft_.synthesize_add(masked_.data(), ola);
            float* dst = out[kDryChannels + s * 2 + ch];
            std::copy(ola, ola + hop, dst);
            std::copy(ola + hop, ola + n, ola);
            std::fill(ola + n - hop, ola + n, 0.0f);
        }
    }

    // Other = dry − Σ synthesised stems: the stems sum to the delayed input by construction.
    for (size_t ch = 0; ch < 2; ++ch) {
        float* other = out[kDryChannels + static_cast<size_t>(Stem::kOther) * 2 + ch];
        for (size_t i = 0; i < hop; ++i) {
            float v = out[ch][i];
            for (size_t s = 0; s < kSynthesisedStems; ++s) v -= out[kDryChannels + s * 2 + ch][i];
            other[i] = v;
        }
    }
}

}  // namespace stemsphere
