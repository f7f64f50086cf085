#include "engine/neural/stem_choice_estimator.h"

#include <algorithm>
#include <cassert>

namespace stemsphere {

StemChoiceEstimator::StemChoiceEstimator(std::unique_ptr<MaskEstimator> network,
                                         std::unique_ptr<MaskEstimator> dsp, size_t bins,
                                         const StemChoice& choice)
    : network_(std::move(network)),
      dsp_(std::move(dsp)),
      bins_(bins),
      choice_(choice),
      lookahead_(network_->lookahead_frames()) {
    for (float& w : choice_.network_weight) w = std::clamp(w, 0.0f, 1.0f);
    choice_.vocal_agreement = std::clamp(choice_.vocal_agreement, 0.0f, 1.0f);
    choice_.vocal_expand_below = std::clamp(choice_.vocal_expand_below, 0.0f, 1.0f);
    if (!dsp_) return;  // the choice reads only the network's masks
    assert(dsp_->lookahead_frames() <= lookahead_);
    delay_ = lookahead_ - dsp_->lookahead_frames();
    // Until the DSP's first frame leaves the delay, an even split stands in (any valid masks).
    ring_.assign((delay_ + 1) * kStemCount * bins_, 1.0f / static_cast<float>(kStemCount));
}

void StemChoiceEstimator::reset() {
    network_->reset();
    if (dsp_) dsp_->reset();
    std::fill(ring_.begin(), ring_.end(), 1.0f / static_cast<float>(kStemCount));
    ring_pos_ = 0;
}

void StemChoiceEstimator::estimate(const std::complex<float>* left,
                                   const std::complex<float>* right, float* masks) {
    const size_t frame = kStemCount * bins_;
    network_->estimate(left, right, masks);
    // Without a DSP back end the network stands in for it (each bin is read before it is
    // written below).
    const float* dsp = masks;
    if (dsp_) {
        dsp_->estimate(left, right, ring_.data() + ring_pos_ * frame);
        ring_pos_ = (ring_pos_ + 1) % (delay_ + 1);  // the oldest slot is the one written next
        dsp = ring_.data() + ring_pos_ * frame;
    }

    constexpr float kTiny = 1e-12f;
    const auto& w = choice_.network_weight;
    const float a = choice_.vocal_agreement;
    const float t = choice_.vocal_expand_below;
    constexpr size_t v = static_cast<size_t>(Stem::kVocals);
    for (size_t k = 0; k < bins_; ++k) {
        float m[kStemCount];
        float sum = 0.0f;
        for (size_t s = 0; s < kStemCount; ++s) {
            const float n = masks[s * bins_ + k];
            const float d = dsp[s * bins_ + k];
            m[s] = w[s] * n + (1.0f - w[s]) * d;
            sum += m[s];
        }
        // Both inputs sum to 1, so sum lies in [min w, max w]... > 0 unless every mask is 0.
        if (sum > kTiny) {
            for (float& x : m) x /= sum;
        } else {
            for (float& x : m) x = 1.0f / static_cast<float>(kStemCount);
        }
        float vocal = m[v];
        if (a > 0.0f) {
            const float agreed = std::min(masks[v * bins_ + k], dsp[v * bins_ + k]);
            vocal = std::min(vocal, (1.0f - a) * vocal + a * agreed);
        }
        if (vocal < t) vocal = vocal * vocal / t;
        if (vocal < m[v]) {
            // The other stems take what the voice gave up, in proportion to their masks.
            const float rest = 1.0f - m[v];
            const float grow = rest > kTiny ? (1.0f - vocal) / rest : 0.0f;
            for (size_t s = 0; s < kStemCount; ++s) m[s] = s == v ? vocal : m[s] * grow;
            if (rest <= kTiny) m[static_cast<size_t>(Stem::kOther)] = 1.0f - vocal;
        }
        for (size_t s = 0; s < kStemCount; ++s) masks[s * bins_ + k] = m[s];
    }
}

}  // namespace stemsphere
