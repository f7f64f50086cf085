#include "engine/neural/blended_mask_estimator.h"

#include <algorithm>
#include <cassert>

namespace stemsphere {

BlendedMaskEstimator::BlendedMaskEstimator(std::unique_ptr<MaskEstimator> primary,
                                           std::unique_ptr<MaskEstimator> secondary, size_t bins,
                                           float secondary_weight)
    : primary_(std::move(primary)),
      secondary_(std::move(secondary)),
      bins_(bins),
      weight_(std::clamp(secondary_weight, 0.0f, 1.0f)),
      target_(weight_),
      lookahead_(primary_->lookahead_frames()) {
    assert(secondary_->lookahead_frames() <= lookahead_);
    delay_ = lookahead_ - secondary_->lookahead_frames();
    // Until the secondary's first frame comes out of the delay, blend with an even split (any
    // valid masks keep Σ = 1).
    pending_.assign((delay_ + 1) * kStemCount * bins_, 1.0f / static_cast<float>(kStemCount));
}

void BlendedMaskEstimator::set_secondary_weight_target(float target, size_t ramp_frames) {
    target_ = std::clamp(target, 0.0f, 1.0f);
    step_ = ramp_frames == 0 ? 1.0f : 1.0f / static_cast<float>(ramp_frames);
}

void BlendedMaskEstimator::reset() {
    weight_ = target_;
    primary_->reset();
    secondary_->reset();
    std::fill(pending_.begin(), pending_.end(), 1.0f / static_cast<float>(kStemCount));
    pending_pos_ = 0;
}

void BlendedMaskEstimator::estimate(const std::complex<float>* left,
                                    const std::complex<float>* right, float* masks) {
    const size_t frame = kStemCount * bins_;
    float* newest = pending_.data() + pending_pos_ * frame;
    secondary_->estimate(left, right, newest);
    // The ring holds delay_ + 1 frames: the oldest is the slot written next.
    pending_pos_ = (pending_pos_ + 1) % (delay_ + 1);
    const float* aligned = pending_.data() + pending_pos_ * frame;
    primary_->estimate(left, right, masks);
    if (weight_ < target_) weight_ = std::min(target_, weight_ + step_);
    if (weight_ > target_) weight_ = std::max(target_, weight_ - step_);
    const float keep = 1.0f - weight_;
    for (size_t i = 0; i < frame; ++i) masks[i] = keep * masks[i] + weight_ * aligned[i];
}

}  // namespace stemsphere
