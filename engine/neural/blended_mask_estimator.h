#pragma once
// Convex blend of two mask estimators: masks = (1 − w) · primary + w · secondary, per bin and
// stem. Both inputs sum to 1 over the stems, so the blend does too (mixture consistency holds).
// Used to let the free DSP back end's priors (harmonic/percussive split, centre panning, bass
// band) temper the small network where it is unsure; w is chosen on the synthetic held-out set
// (docs/models.md §6).
//
// The secondary's masks are delayed inside so both describe the same frame when the primary has
// more look-ahead (e.g. Studio model + causal DSP). All buffers are allocated in the constructor.
#include <memory>
#include <vector>

#include "engine/mask_estimator.h"

namespace stemsphere {

class BlendedMaskEstimator final : public MaskEstimator {
  public:
    // secondary_weight in [0, 1]; secondary->lookahead_frames() <= primary->lookahead_frames().
    BlendedMaskEstimator(std::unique_ptr<MaskEstimator> primary,
                         std::unique_ptr<MaskEstimator> secondary, size_t bins,
                         float secondary_weight);

    // Real-time safe: moves the secondary's weight to `target` (clamped to [0, 1]) in equal steps
    // over the next `ramp_frames` estimate() calls (at once when 0). reset() jumps to the target.
    // The plugin fades a metered neural mode to the DSP back end this way, at constant latency.
    void set_secondary_weight_target(float target, size_t ramp_frames);
    float secondary_weight() const { return weight_; }

    size_t lookahead_frames() const override { return lookahead_; }
    void estimate(const std::complex<float>* left, const std::complex<float>* right,
                  float* masks) override;
    void reset() override;

  private:
    std::unique_ptr<MaskEstimator> primary_, secondary_;
    size_t bins_;
    float weight_;
    float target_;
    float step_ = 0.0f;  // per estimate() call, towards target_
    size_t lookahead_;
    size_t delay_;                // frames the secondary's masks wait
    std::vector<float> pending_;  // (delay_ + 1) × kStemCount × bins ring of secondary masks
    size_t pending_pos_ = 0;
};

}  // namespace stemsphere
